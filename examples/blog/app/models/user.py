"""``User``: its columns come from the generated ``UsersSchema``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lucid_orm import before, belongs_to, column, computed, has_many, has_one, scope
from lucid_orm.relations import BelongsTo, HasMany, HasOne

from app import models
from database.schema import UsersSchema

if TYPE_CHECKING:
    from lucid_orm import ModelQueryBuilder


class User(UsersSchema):
    # Redeclared to change its options: a password is never serialized.
    password: str | None = column(serialize_as=None)

    country: BelongsTo[models.Country] = belongs_to(lambda: models.Country)
    profile: HasOne[models.Profile] = has_one(lambda: models.Profile)
    posts: HasMany[models.Post] = has_many(lambda: models.Post)
    comments: HasMany[models.Comment] = has_many(lambda: models.Comment)

    @computed
    def initials(self) -> str:
        return "".join(word[0] for word in self.full_name.split())

    @before("save")
    def normalize_email(user: User) -> None:
        user.email = user.email.strip().lower()

    @scope
    def admins(query: ModelQueryBuilder[User]) -> None:
        query.where("is_admin", True)
