"""Create the ``posts`` table. A post belongs to its author and goes with them."""

from lucid_orm.migrations import BaseSchema
from lucid_orm.schema import TableBuilder


class CreatePostsTable(BaseSchema):
    table_name = "posts"

    async def up(self) -> None:
        def define(table: TableBuilder) -> None:
            table.increments("id")
            table.integer("user_id").unsigned().not_nullable()
            table.string("title", 200).not_nullable()
            table.text("body").not_nullable()
            table.timestamp("published_at", use_tz=True)
            table.timestamps(use_tz=True)
            table.foreign("user_id").references("users.id").on_delete("CASCADE")

        self.schema.create_table(self.table_name, define)

    async def down(self) -> None:
        self.schema.drop_table(self.table_name)
