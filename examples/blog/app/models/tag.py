"""``Tag``: its columns come from the generated ``TagsSchema``; linked to posts through the
``post_tags`` pivot table."""

from __future__ import annotations

from lucid_orm import many_to_many
from lucid_orm.relations import ManyToMany

from app import models
from database.schema import TagsSchema


class Tag(TagsSchema):
    posts: ManyToMany[models.Post] = many_to_many(
        lambda: models.Post,
        pivot_table="post_tags",
        pivot_columns=["relevance"],
        pivot_timestamps=True,
    )
