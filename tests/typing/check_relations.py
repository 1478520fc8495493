"""Static typing of relation declarations, checked by ``mypy --strict tests/typing`` (never run):
class access gives the relation, instance access the loaded value (``R | None`` or ``list[R]``),
the declaration functions take only their kind's options."""

from __future__ import annotations

from typing import assert_type

from lucid_orm import (
    BaseModel,
    belongs_to,
    column,
    has_many,
    has_many_through,
    has_one,
    many_to_many,
)
from lucid_orm.relations import BelongsTo, HasMany, HasManyThrough, HasOne, ManyToMany


class Country(BaseModel):
    id: int = column(is_primary=True)
    posts: HasManyThrough[Post] = has_many_through((lambda: Post, lambda: User))


class Profile(BaseModel):
    id: int = column(is_primary=True)
    user_id: int = column()


class Skill(BaseModel):
    id: int = column(is_primary=True)


class Post(BaseModel):
    id: int = column(is_primary=True)
    user_id: int = column()
    author: BelongsTo[User] = belongs_to(lambda: User, foreign_key="user_id")


class User(BaseModel):
    id: int = column(is_primary=True)
    country_id: int = column()
    profile: HasOne[Profile] = has_one(lambda: Profile)
    posts: HasMany[Post] = has_many(lambda: Post, serialize_as=None)
    skills: ManyToMany[Skill] = many_to_many(lambda: Skill, pivot_timestamps=True, meta=1)


def typed_access(u: User, p: Post, c: Country) -> None:
    assert_type(p.author, User | None)
    assert_type(Post.author, BelongsTo[User])
    assert_type(u.profile, Profile | None)
    assert_type(User.profile, HasOne[Profile])
    assert_type(u.posts, list[Post])
    assert_type(User.posts, HasMany[Post])
    assert_type(u.skills, list[Skill])
    assert_type(User.skills, ManyToMany[Skill])
    assert_type(c.posts, list[Post])
    assert_type(Country.posts, HasManyThrough[Post])
    User(id=1, country_id=2)
    has_many(lambda: Post, bogus=1)  # type: ignore[call-arg]
    many_to_many(lambda: Skill, foreign_key="x")  # type: ignore[call-arg]
