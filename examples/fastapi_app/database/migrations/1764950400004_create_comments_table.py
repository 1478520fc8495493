"""Create the ``comments`` table: a comment on a post by a user, removed with either."""

from lucid_orm.migrations import BaseSchema
from lucid_orm.schema import TableBuilder


class CreateCommentsTable(BaseSchema):
    table_name = "comments"

    async def up(self) -> None:
        def define(table: TableBuilder) -> None:
            table.increments("id")
            table.integer("post_id").unsigned().not_nullable()
            table.integer("user_id").unsigned().not_nullable()
            table.text("body").not_nullable()
            table.timestamps(use_tz=True)
            table.foreign("post_id").references("posts.id").on_delete("CASCADE")
            table.foreign("user_id").references("users.id").on_delete("CASCADE")

        self.schema.create_table(self.table_name, define)

    async def down(self) -> None:
        self.schema.drop_table(self.table_name)
