"""Create ``likes``: a user likes a post or a comment. One table for both, through a
polymorphic pair of columns: ``likeable_type`` (the morph-map alias, ``"post"`` or
``"comment"``) and ``likeable_id``."""

from lucid_orm.migrations import BaseSchema
from lucid_orm.schema import TableBuilder


class CreateLikesTable(BaseSchema):
    table_name = "likes"

    async def up(self) -> None:
        def define(table: TableBuilder) -> None:
            table.increments("id")
            table.integer("user_id").unsigned().not_nullable()
            table.string("likeable_type", 20).not_nullable()
            table.integer("likeable_id").unsigned().not_nullable()
            table.timestamp("created_at", use_tz=True)
            # One like per user and target; the index also serves "likes of this post".
            table.unique(["likeable_type", "likeable_id", "user_id"])
            table.foreign("user_id").references("users.id").on_delete("CASCADE")

        self.schema.create_table(self.table_name, define)

    async def down(self) -> None:
        self.schema.drop_table(self.table_name)
