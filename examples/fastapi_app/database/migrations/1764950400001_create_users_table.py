"""Create the ``users`` table: a unique e-mail address, a name and a password hash."""

from lucid_orm.migrations import BaseSchema
from lucid_orm.schema import TableBuilder


class CreateUsersTable(BaseSchema):
    table_name = "users"

    async def up(self) -> None:
        def define(table: TableBuilder) -> None:
            table.increments("id")
            table.string("email", 255).not_nullable().unique()
            table.string("name", 120).not_nullable()
            table.string("password", 255)
            table.timestamps(use_tz=True)

        self.schema.create_table(self.table_name, define)

    async def down(self) -> None:
        self.schema.drop_table(self.table_name)
