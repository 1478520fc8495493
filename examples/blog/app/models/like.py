"""``Like``: a user's like of a post or a comment, a polymorphic ``morph_to``."""

from __future__ import annotations

from lucid_orm import belongs_to, morph_to
from lucid_orm.relations import BelongsTo, MorphTo

from app import models
from database.schema import LikesSchema


class Like(LikesSchema):
    user: BelongsTo[models.User] = belongs_to(lambda: models.User)
    # Reads ``likeable_type`` + ``likeable_id``: ``like.likeable`` is a Post, a Comment or None.
    likeable: MorphTo[models.Post | models.Comment] = morph_to()
