"""Create ``tags`` (unique names) and ``post_tags``, the pivot table of ``Post.tags``: a pair
once, removed with its post or tag."""

from lucid_orm.migrations import BaseSchema
from lucid_orm.schema import TableBuilder


class CreateTagsTable(BaseSchema):
    async def up(self) -> None:
        def tags(table: TableBuilder) -> None:
            table.increments("id")
            table.string("name", 40).not_nullable().unique()

        def post_tags(table: TableBuilder) -> None:
            table.increments("id")
            table.integer("post_id").unsigned().not_nullable()
            table.integer("tag_id").unsigned().not_nullable()
            table.unique(["post_id", "tag_id"])
            table.foreign("post_id").references("posts.id").on_delete("CASCADE")
            table.foreign("tag_id").references("tags.id").on_delete("CASCADE")

        self.schema.create_table("tags", tags)
        self.schema.create_table("post_tags", post_tags)

    async def down(self) -> None:
        self.schema.drop_table("post_tags")
        self.schema.drop_table("tags")
