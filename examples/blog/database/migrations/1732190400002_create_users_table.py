"""Create the ``users`` table: each user lives in a country."""

from lucid_orm.migrations import BaseSchema
from lucid_orm.schema import TableBuilder


class CreateUsersTable(BaseSchema):
    table_name = "users"

    async def up(self) -> None:
        def define(table: TableBuilder) -> None:
            table.increments("id")
            table.integer("country_id").unsigned()
            table.string("email", 255).not_nullable().unique()
            table.string("full_name", 120).not_nullable()
            table.string("password", 255)
            table.boolean("is_admin").not_nullable().default_to(False)
            table.timestamps(use_tz=True)
            table.foreign("country_id").references("countries.id").on_delete("SET NULL")

        self.schema.create_table(self.table_name, define)

    async def down(self) -> None:
        self.schema.drop_table(self.table_name)
