"""Static typing of has_one_through and deep has_many_through chains, checked by
``mypy --strict tests/typing`` (never run): ``mechanic.car_owner`` is ``CarOwner | None``,
a chain's ``country.comments`` is ``list[Comment]``, and the declarations take only the
through kinds' options."""

from __future__ import annotations

from typing import assert_type

from lucid_orm import BaseModel, column, has_many_through, has_one_through
from lucid_orm.relations import HasManyThrough, HasOneThrough


class CarOwner(BaseModel):
    id: int = column(is_primary=True)
    car_id: int = column()


class Car(BaseModel):
    id: int = column(is_primary=True)
    mechanic_id: int = column()


class Mechanic(BaseModel):
    id: int = column(is_primary=True)
    car_owner: HasOneThrough[CarOwner] = has_one_through((lambda: CarOwner, lambda: Car))
    listed: HasOneThrough[CarOwner] = has_one_through([lambda: CarOwner, lambda: Car])
    owner: HasOneThrough[CarOwner] = has_one_through(
        lambda: CarOwner, through=lambda: Car, through_foreign_key="car_id", serialize_as=None
    )


class Comment(BaseModel):
    id: int = column(is_primary=True)
    post_id: int = column()


class Skill(BaseModel):
    id: int = column(is_primary=True)


class Post(BaseModel):
    id: int = column(is_primary=True)
    user_id: int = column()


class User(BaseModel):
    id: int = column(is_primary=True)
    country_id: int = column()


class Country(BaseModel):
    id: int = column(is_primary=True)
    comments: HasManyThrough[Comment] = has_many_through(
        lambda: Comment, through=[User, Post], foreign_key=["country_id", None, "post_id"]
    )
    skills: HasManyThrough[Skill] = has_many_through(
        lambda: Skill, through=[lambda: User, "skill_user"], distinct=True
    )
    latest_comment: HasOneThrough[Comment] = has_one_through(lambda: Comment, through=[User, Post])


def typed_access(m: Mechanic, c: Country) -> None:
    assert_type(m.car_owner, CarOwner | None)
    assert_type(Mechanic.car_owner, HasOneThrough[CarOwner])
    assert_type(m.owner, CarOwner | None)
    assert_type(m.listed, CarOwner | None)
    assert_type(c.comments, list[Comment])
    assert_type(c.skills, list[Skill])
    assert_type(c.latest_comment, Comment | None)
    assert_type(Country.latest_comment, HasOneThrough[Comment])
    Mechanic(id=1)
    has_one_through(lambda: CarOwner, through=lambda: Car, pivot_table="x")  # type: ignore[call-arg]
    has_many_through(lambda: Comment, through=[User], distinct="yes")  # type: ignore[arg-type]


def not_optional(m: Mechanic) -> CarOwner:
    return m.car_owner  # type: ignore[return-value]
