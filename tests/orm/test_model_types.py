"""Column types round-trip on every dialect (SPEC §9): bool, UTC datetimes, dates, Decimal,
JSON (with in-place mutations seen as dirty), UUID primary keys, ``prepare``/``consume``."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from sqlalchemy import String

from lucid_orm import BaseModel, column
from lucid_orm.database import Database
from tests import models
from tests.helpers import count_queries


class User(models.BaseUser):
    is_active: bool | None = column()
    points: int | None = column()
    meta: dict[str, Any] | None = column()
    created_at: datetime | None = column.date_time(auto_create=True)
    updated_at: datetime | None = column.date_time(auto_create=True, auto_update=True)


class Gadget(BaseModel):
    uuid: uuid.UUID = column(is_primary=True)
    name: str = column()
    price: Decimal | None = column()
    is_enabled: bool | None = column()
    released_on: date | None = column()
    payload: list[Any] | None = column()


def _split(value: str | None, attribute: str, model: Any) -> list[str] | None:
    return value.split(",") if value is not None else None


def _join(value: list[str] | None, attribute: str, model: Any) -> str | None:
    return ",".join(value) if value is not None else None


class Tagged(BaseModel):
    table = "users"
    id: int = column()
    # A list kept as comma-separated text: prepare on the way in, consume on the way out;
    # type_ says what the database holds (the annotation alone would make it JSON).
    tags: list[str] | None = column(
        column_name="username", type_=String(), prepare=_join, consume=_split
    )
    email: str | None = column(prepare=lambda v, _a, _m: v.lower() if v else v)


class TestBool:
    async def test_bools_read_back_as_bools(self, database: Database) -> None:
        yes = await User.create({"username": "yes", "is_active": True})
        no = await User.create({"username": "no", "is_active": False})
        default = await User.create({"username": "default"})
        found = {u.username: u.is_active for u in await User.all()}
        assert found == {"yes": True, "no": False, "default": False}
        for value in found.values():
            assert type(value) is bool
        assert (await User.find_or_fail(yes.id)).is_active is True
        assert (await User.find_or_fail(no.id)).is_active is False
        assert (await User.find_or_fail(default.id)).is_active is False

    async def test_where_on_a_bool_column(self, database: Database) -> None:
        await User.create_many([{"username": "a", "is_active": True}, {"username": "b"}])
        active = await User.query().where("is_active", True)
        assert [u.username for u in active] == ["a"]

    async def test_bool_is_not_dirty_after_fetch(self, database: Database) -> None:
        await User.create({"username": "a", "is_active": True})
        user = await User.first_or_fail()
        assert not user.is_dirty
        user.is_active = True
        assert not user.is_dirty


class TestDateTime:
    async def test_aware_datetime_round_trips_as_utc(self, database: Database) -> None:
        ist = timezone(timedelta(hours=5, minutes=30))
        written = datetime(2024, 2, 29, 23, 15, 30, 123456, tzinfo=ist)
        user = await User.create({"username": "a", "created_at": written})
        assert user.created_at == written
        found = await User.find_or_fail(user.id)
        assert found.created_at == written
        assert found.created_at is not None
        assert found.created_at.tzinfo is UTC
        assert found.created_at.microsecond == 123456
        assert found.created_at.hour == 17 and found.created_at.minute == 45
        assert not found.is_dirty

    async def test_stored_as_utc(self, database: Database) -> None:
        written = datetime(2024, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=-3)))
        await User.create({"username": "a", "created_at": written})
        [row] = await database.from_("users").select("created_at")
        value = row["created_at"]
        if isinstance(value, str):  # SQLite through the plain query builder
            value = datetime.fromisoformat(value)
        assert value.replace(tzinfo=None) == datetime(2024, 1, 1, 15, 0)

    async def test_where_with_an_aware_datetime(self, database: Database) -> None:
        written = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)
        await User.create({"username": "a", "created_at": written})
        found = await User.query().where("created_at", "<", written + timedelta(seconds=1))
        assert [u.username for u in found] == ["a"]

    async def test_auto_create_and_auto_update(self, database: Database) -> None:
        before = datetime.now(UTC)
        user = await User.create({"username": "a"})
        after = datetime.now(UTC)
        assert user.created_at is not None and user.updated_at is not None
        assert before <= user.created_at <= after
        assert user.created_at.tzinfo is not None
        assert user.updated_at == user.created_at
        fetched = await User.find_or_fail(user.id)
        assert fetched.created_at == user.created_at
        assert fetched.updated_at == user.updated_at

        created_at = user.created_at
        user.points = 1
        await user.save()
        assert user.created_at == created_at
        assert user.updated_at >= created_at
        fetched = await User.find_or_fail(user.id)
        assert fetched.created_at == created_at
        assert fetched.updated_at == user.updated_at

    async def test_auto_create_keeps_an_explicit_value(self, database: Database) -> None:
        past = datetime(2020, 5, 17, 8, 30, tzinfo=UTC)
        user = await User.create({"username": "a", "created_at": past, "updated_at": past})
        assert user.created_at == past and user.updated_at == past
        found = await User.find_or_fail(user.id)
        assert found.created_at == past

    async def test_create_many_sets_timestamps(self, database: Database) -> None:
        users = await User.create_many([{"username": "a"}, {"username": "b"}])
        assert all(u.created_at is not None for u in users)
        assert all(u.created_at is not None for u in await User.all())


class TestGadgetTypes:
    async def test_uuid_primary_key_and_values_round_trip(self, database: Database) -> None:
        key = uuid.uuid4()
        gadget = await Gadget.create(
            {
                "uuid": key,
                "name": "Widget",
                "price": Decimal("1234.56"),
                "is_enabled": True,
                "released_on": date(2024, 2, 29),
                "payload": [1, "two", {"three": 3}],
            }
        )
        assert gadget.uuid == key
        assert isinstance(gadget.uuid, uuid.UUID)
        found = await Gadget.find_or_fail(key)
        assert isinstance(found.uuid, uuid.UUID) and found.uuid == key
        assert found.name == "Widget"
        assert isinstance(found.price, Decimal) and found.price == Decimal("1234.56")
        assert found.is_enabled is True
        assert found.released_on == date(2024, 2, 29)
        assert type(found.released_on) is date
        assert found.payload == [1, "two", {"three": 3}]
        assert not found.is_dirty

    async def test_uuid_is_stored_as_text(self, database: Database) -> None:
        key = uuid.uuid4()
        await Gadget.create({"uuid": key, "name": "Widget"})
        assert await database.from_("gadgets").select("uuid") == [{"uuid": str(key)}]

    async def test_update_and_delete_by_uuid(self, database: Database) -> None:
        a, b = uuid.uuid4(), uuid.uuid4()
        await Gadget.create_many([{"uuid": a, "name": "A"}, {"uuid": b, "name": "B"}])
        gadget = await Gadget.find_or_fail(a)
        gadget.price = Decimal("9.99")
        await gadget.save()
        assert (await Gadget.find_or_fail(a)).price == Decimal("9.99")
        await gadget.delete()
        assert [g.uuid for g in await Gadget.all()] == [b]
        assert [g.name for g in await Gadget.find_many([a, b])] == ["B"]

    async def test_decimal_in_where(self, database: Database) -> None:
        await Gadget.create_many(
            [
                {"uuid": uuid.uuid4(), "name": "cheap", "price": Decimal("1.50")},
                {"uuid": uuid.uuid4(), "name": "dear", "price": Decimal("100.25")},
            ]
        )
        found = await Gadget.query().where("price", ">", Decimal("2"))
        assert [g.name for g in found] == ["dear"]

    async def test_serialize_is_json_ready(self, database: Database) -> None:
        key = uuid.uuid4()
        gadget = await Gadget.create(
            {
                "uuid": key,
                "name": "Widget",
                "price": Decimal("3.10"),
                "released_on": date(2024, 2, 29),
            }
        )
        found = await Gadget.find_or_fail(gadget.uuid)
        data = found.serialize()
        assert data["uuid"] == str(key)
        assert data["released_on"] == "2024-02-29"
        assert Decimal(data["price"]) == Decimal("3.10")


class TestJson:
    async def test_dict_round_trips(self, database: Database) -> None:
        meta = {"theme": "dark", "nested": {"a": [1, 2, 3]}, "flag": True, "none": None}
        user = await User.create({"username": "a", "meta": meta})
        found = await User.find_or_fail(user.id)
        assert found.meta == meta
        assert not found.is_dirty

    async def test_in_place_mutation_is_dirty(self, database: Database) -> None:
        await User.create({"username": "a", "meta": {"theme": "dark", "nested": {"a": 1}}})
        user = await User.first_or_fail()
        assert user.meta is not None
        user.meta["nested"]["a"] = 2
        assert user.is_dirty
        assert user.dirty == {"meta": {"theme": "dark", "nested": {"a": 2}}}
        assert user.original["meta"] == {"theme": "dark", "nested": {"a": 1}}
        with count_queries() as q:
            await user.save()
        assert q.count == 1
        assert not user.is_dirty
        # Mutating again after the save is detected too (the original is a deep copy).
        user.meta["theme"] = "light"
        assert user.is_dirty
        await user.save()
        found = await User.first_or_fail()
        assert found.meta == {"theme": "light", "nested": {"a": 2}}

    async def test_in_place_mutation_after_create_is_dirty(self, database: Database) -> None:
        user = await User.create({"username": "a", "meta": {"n": 1}})
        assert user.meta is not None
        user.meta["n"] = 2
        assert user.dirty == {"meta": {"n": 2}}

    async def test_json_null(self, database: Database) -> None:
        user = await User.create({"username": "a", "meta": None})
        assert (await User.find_or_fail(user.id)).meta is None


class TestPrepareConsume:
    async def test_prepare_and_consume(self, database: Database) -> None:
        tagged = await Tagged.create({"tags": ["a", "b"], "email": "MiXeD@Example.com"})
        # The instance keeps the Python value; the row holds the prepared one.
        assert tagged.tags == ["a", "b"]
        rows = await database.from_("users").select("username", "email")
        assert rows == [{"username": "a,b", "email": "mixed@example.com"}]
        found = await Tagged.find_or_fail(tagged.id)
        assert found.tags == ["a", "b"]
        assert not found.is_dirty

    async def test_prepare_applies_on_update(self, database: Database) -> None:
        tagged = await Tagged.create({"tags": ["a"]})
        tagged.tags = ["x", "y", "z"]
        await tagged.save()
        rows = await database.from_("users").select("username")
        assert rows == [{"username": "x,y,z"}]
        assert (await Tagged.all())[0].tags == ["x", "y", "z"]

    async def test_consume_receives_null(self, database: Database) -> None:
        await Tagged.create({"email": "a@b.c"})
        found = await Tagged.first_or_fail()
        assert found.tags is None
