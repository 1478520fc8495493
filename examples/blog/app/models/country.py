"""``Country``: columns declared by hand; reaches its users' posts through ``has_many_through``."""

from __future__ import annotations

from lucid_orm import BaseModel, column, has_many, has_many_through
from lucid_orm.relations import HasMany, HasManyThrough

from app import models


class Country(BaseModel):
    id: int = column(is_primary=True)
    code: str = column()
    name: str = column()

    users: HasMany[models.User] = has_many(lambda: models.User)
    posts: HasManyThrough[models.Post] = has_many_through(
        lambda: models.Post, through=lambda: models.User
    )
