"""``Post``: its columns come from the generated ``PostsSchema``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lucid_orm import belongs_to, has_many, many_to_many, morph_many, scope
from lucid_orm.relations import BelongsTo, HasMany, ManyToMany, MorphMany

from app import models
from database.schema import PostsSchema

if TYPE_CHECKING:
    from lucid_orm import ModelQueryBuilder


class Post(PostsSchema):
    author: BelongsTo[models.User] = belongs_to(lambda: models.User)
    comments: HasMany[models.Comment] = has_many(lambda: models.Comment)
    # Likes of posts and of comments share one table (see Like.likeable).
    likes: MorphMany[models.Like] = morph_many(lambda: models.Like, name="likeable")
    tags: ManyToMany[models.Tag] = many_to_many(
        lambda: models.Tag,
        pivot_table="post_tags",
        pivot_columns=["relevance"],
        pivot_timestamps=True,
    )

    @scope
    def published(query: ModelQueryBuilder[Post]) -> None:
        query.where_not_null("published_at")
