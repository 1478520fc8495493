"""``Comment``: its columns come from the generated ``CommentsSchema``."""

from __future__ import annotations

from lucid_orm import belongs_to, morph_many
from lucid_orm.relations import BelongsTo, MorphMany

from app import models
from database.schema import CommentsSchema


class Comment(CommentsSchema):
    post: BelongsTo[models.Post] = belongs_to(lambda: models.Post)
    author: BelongsTo[models.User] = belongs_to(lambda: models.User)
    likes: MorphMany[models.Like] = morph_many(lambda: models.Like, name="likeable")
