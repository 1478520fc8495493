"""Create the ``profiles`` table: one profile per user."""

from lucid_orm.migrations import BaseSchema
from lucid_orm.schema import TableBuilder


class CreateProfilesTable(BaseSchema):
    table_name = "profiles"

    async def up(self) -> None:
        def define(table: TableBuilder) -> None:
            table.increments("id")
            table.integer("user_id").unsigned().not_nullable().unique()
            table.text("bio")
            table.string("website", 255)
            table.timestamps(use_tz=True)
            table.foreign("user_id").references("users.id").on_delete("CASCADE")

        self.schema.create_table(self.table_name, define)

    async def down(self) -> None:
        self.schema.drop_table(self.table_name)
