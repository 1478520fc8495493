"""Static typing of model factories, checked by ``mypy --strict tests/typing`` (never run)."""

from __future__ import annotations

from typing import assert_type

from lucid_orm import BaseModel, column
from lucid_orm.factories import Factory, FactoryBuilder, FactoryBuilderQuery, FactoryModel


class User(BaseModel):
    id: int = column(is_primary=True)
    email: str = column()


definition = Factory.define(User, lambda faker: {"email": faker.email()})
assert_type(definition, FactoryModel[User])
UserFactory = definition.state("x", lambda user: None).build()
assert_type(UserFactory, FactoryBuilderQuery[User])
assert_type(UserFactory.merge({"email": "a"}).apply("x"), FactoryBuilder[User])
assert_type(UserFactory.make(), User)
assert_type(UserFactory.make_many(2), list[User])
assert_type(UserFactory.make_stubbed(), User)


async def created() -> None:
    assert_type(await UserFactory.create(), User)
    assert_type(await UserFactory.with_("posts", 2).create_many(2), list[User])
