"""Serialization (SPEC §6, §9): JSON-ready ``serialize()``, ``serialize_as`` and custom
``serialize=``, ``@computed``, ``serialize_extras``, cherry picking, ``to_dict()``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from lucid_orm import BaseModel, column, computed
from lucid_orm.database import Database


class User(BaseModel):
    id: int = column(is_primary=True)
    username: str | None = column(serialize_as="handle")
    email: str | None = column(serialize_as=None)
    points: int | None = column(serialize=lambda value, _attr, _model: f"{value or 0} pts")
    is_active: bool | None = column()
    meta: dict[str, Any] | None = column()
    created_at: datetime | None = column.date_time(auto_create=True)

    @computed
    def initials(self) -> str:
        return (self.username or "?")[:2].upper()

    @computed(serialize_as="isAdmin")
    def is_admin(self) -> bool:
        return self.username == "virk"

    @computed(serialize_as=None)
    def secret(self) -> str:
        return "hidden"


class Counted(BaseModel):
    table = "users"
    serialize_extras = True
    id: int = column()
    country_id: int | None = column()


STAMP = datetime(2024, 2, 29, 10, 20, 30, 123456, tzinfo=UTC)


async def make_user() -> User:
    user = await User.create(
        {
            "username": "virk",
            "email": "virk@adonisjs.com",
            "points": 5,
            "is_active": True,
            "meta": {"theme": "dark"},
            "created_at": STAMP,
        }
    )
    return await User.find_or_fail(user.id)


class TestSerialize:
    async def test_serialize_is_json_ready(self, database: Database) -> None:
        user = await make_user()
        data = user.serialize()
        assert data == {
            "id": user.id,
            "handle": "virk",
            "points": "5 pts",
            "is_active": True,
            "meta": {"theme": "dark"},
            "created_at": "2024-02-29T10:20:30.123456+00:00",
            "initials": "VI",
            "isAdmin": True,
        }
        assert json.loads(json.dumps(data)) == data

    async def test_to_json_is_serialize(self, database: Database) -> None:
        user = await make_user()
        assert user.to_json() == user.serialize()

    def test_only_set_attributes_are_serialized(self) -> None:
        user = User(username="romain")
        assert user.serialize() == {"handle": "romain", "initials": "RO", "isAdmin": False}

    async def test_serialize_attributes(self, database: Database) -> None:
        user = await make_user()
        assert user.serialize_attributes() == {
            "id": user.id,
            "handle": "virk",
            "points": "5 pts",
            "is_active": True,
            "meta": {"theme": "dark"},
            "created_at": "2024-02-29T10:20:30.123456+00:00",
        }

    def test_computed_is_a_read_only_property(self) -> None:
        user = User(username="nikk")
        assert user.initials == "NI"
        assert user.is_admin is False
        assert user.secret == "hidden"

    def test_serialize_relations_is_empty_without_loaded_relations(self) -> None:
        assert User(username="a").serialize_relations() == {}


class TestCherryPicking:
    async def test_pick(self, database: Database) -> None:
        user = await make_user()
        assert user.serialize({"fields": {"pick": ["id", "handle", "initials"]}}) == {
            "id": user.id,
            "handle": "virk",
            "initials": "VI",
        }

    async def test_omit(self, database: Database) -> None:
        user = await make_user()
        data = user.serialize({"fields": {"omit": ["meta", "created_at", "isAdmin"]}})
        assert data == {
            "id": user.id,
            "handle": "virk",
            "points": "5 pts",
            "is_active": True,
            "initials": "VI",
        }

    async def test_list_is_a_pick(self, database: Database) -> None:
        user = await make_user()
        assert user.serialize({"fields": ["handle", "is_active"]}) == {
            "handle": "virk",
            "is_active": True,
        }

    async def test_pick_cannot_reveal_a_hidden_column(self, database: Database) -> None:
        user = await make_user()
        assert user.serialize({"fields": ["email", "id"]}) == {"id": user.id}


class TestExtras:
    async def test_serialize_extras_adds_meta(self, database: Database) -> None:
        await User.create_many([{"username": "a"}, {"username": "b"}])
        [row] = await Counted.query().count("* as total")
        assert row.serialize() == {"meta": {"total": 2}}
        [user] = await Counted.query().select("id").count("* as total").group_by("id").limit(1)
        assert user.serialize() == {"id": user.id, "meta": {"total": 1}}

    async def test_extras_are_not_serialized_by_default(self, database: Database) -> None:
        await User.create({"username": "a"})
        [row] = await User.query().select("id").count("* as total").group_by("id")
        assert "meta" not in row.serialize()
        assert "total" not in row.serialize()


class TestToDict:
    async def test_to_dict_keeps_python_values(self, database: Database) -> None:
        user = await make_user()
        data = user.to_dict()
        assert data == {
            "id": user.id,
            "username": "virk",
            "email": "virk@adonisjs.com",
            "points": 5,
            "is_active": True,
            "meta": {"theme": "dark"},
            "created_at": STAMP,
            "extras": {},
        }
        assert isinstance(data["created_at"], datetime)

    async def test_to_dict_includes_extras(self, database: Database) -> None:
        await User.create({"username": "a"})
        [row] = await User.query().count("* as total")
        assert row.to_dict() == {"extras": {"total": 1}}
