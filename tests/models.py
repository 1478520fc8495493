"""The shared test models: one class per table of ``tests/schema.py`` in the shape several test
files declared word for word, and the helpers that create their rows.

A file imports what it uses (``from tests.models import Skill``). A test that needs another
shape — more columns, relations, hooks, scopes, serialization options — subclasses the shared
model in its file (``class User(models.User): posts: HasMany[Post] = ...``; the subclass
inherits the columns and the table), so each file still reads alone and nothing it adds
reaches the other files: a model that registers hooks or options is never shared. ``BaseUser``
(abstract) is the base of the files' ``users`` models that read fewer columns than ``User``.
A file keeps a model of its own only where a subclass cannot express it (other primary keys,
column names or types, a naming strategy or connection under test).
"""

from __future__ import annotations

import uuid
from typing import Any, TypeVar

from lucid_orm import BaseModel, column

M = TypeVar("M", bound=BaseModel)


class BaseUser(BaseModel, abstract=True):
    """``users``' key and username, abstract: the base of a file's own ``User`` that reads
    other columns than the shared one (its subclasses map ``users`` whatever their name)."""

    table = "users"
    id: int = column(is_primary=True)
    username: str | None = column()


class User(BaseUser):
    """``users`` with the columns the query and pagination tests read."""

    points: int | None = column()
    country_id: int | None = column()


class Post(BaseModel):
    """``posts``: the owner and a title."""

    id: int = column(is_primary=True)
    user_id: int | None = column()
    title: str | None = column()


class Comment(BaseModel):
    """``comments``: the post and a body."""

    id: int = column(is_primary=True)
    post_id: int | None = column()
    body: str | None = column()


class Country(BaseModel):
    """``countries``."""

    id: int = column(is_primary=True)
    name: str | None = column()


class Skill(BaseModel):
    """``skills``: the related side of the many-to-many tests."""

    id: int = column(is_primary=True)
    name: str | None = column()


class Profile(BaseModel):
    """``profiles``: the owner, a display name and a bio."""

    id: int = column(is_primary=True)
    user_id: int | None = column()
    display_name: str | None = column()
    bio: str | None = column()


class Tag(BaseModel):
    """``tags``."""

    id: int = column(is_primary=True)
    name: str | None = column()


class Task(BaseModel):
    """``hm_tasks``: the owner and a name."""

    table = "hm_tasks"
    id: int = column(is_primary=True)
    user_id: int | None = column()
    name: str | None = column()


class Thing(BaseModel):
    """``things``: ``name`` is NOT NULL and unique."""

    id: int = column()
    name: str = column()
    amount: int | None = column()


class Gadget(BaseModel):
    """``gadgets``: a text primary key read as a UUID."""

    uuid: uuid.UUID = column(is_primary=True)
    name: str | None = column()


class Membership(BaseModel):
    """``memberships``: ``user_id`` is a NOT NULL foreign key to ``users``."""

    id: int = column(is_primary=True)
    user_id: int | None = column()
    role: str | None = column()


class Player(BaseModel):
    """``m2m_players``: ``uid`` is the key the custom many-to-many pivots use."""

    table = "m2m_players"
    id: int = column(is_primary=True)
    uid: int | None = column()
    name: str | None = column()


async def create_each(model: type[M], *names: str, **values: Any) -> list[M]:
    """One ``model`` row per username, created one by one (``create`` and its hooks per row);
    ``values`` go into every row."""
    return [await model.create({"username": name, **values}) for name in names]


async def create_many(model: type[M], column_name: str, *values: Any) -> list[M]:
    """One ``model`` row per value of ``column_name``, in one ``create_many`` call."""
    return await model.create_many([{column_name: value} for value in values])
