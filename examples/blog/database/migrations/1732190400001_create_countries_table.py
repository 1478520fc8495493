"""Create the ``countries`` table."""

from lucid_orm.migrations import BaseSchema
from lucid_orm.schema import TableBuilder


class CreateCountriesTable(BaseSchema):
    table_name = "countries"

    async def up(self) -> None:
        def define(table: TableBuilder) -> None:
            table.increments("id")
            table.string("code", 2).not_nullable().unique()
            table.string("name", 80).not_nullable()

        self.schema.create_table(self.table_name, define)

    async def down(self) -> None:
        self.schema.drop_table(self.table_name)
