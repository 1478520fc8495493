"""Bulk writes whose rows travel as one array per column on PostgreSQL (``create_many``'s
multi-row INSERT and ``upsert_many`` through ``unnest``, ``update_many``'s UPDATE on the
transaction's driver connection), checked on every dialect against what the rows must hold:
each column type's values round-trip (and the types that can't travel as arrays keep the
per-row form), the generated keys land on the right instances, the query events report the
statement, and a failed, cancelled or nested write leaves rows and instances as they were."""

from __future__ import annotations

import asyncio
import enum
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Time,
)
from sqlalchemy.dialects import mysql

from lucid_orm import BaseModel, IntegrityError, QueryError, after, column, db
from lucid_orm.database import Database
from tests.helpers import count_queries, through_sqlalchemy

ba_metadata = MetaData()
# MySQL's DATETIME drops microseconds unless asked for them.
_DateTime = DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")

ba_things = Table(
    "ba_things",
    ba_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("big", BigInteger, nullable=True),
    Column("price", Numeric(12, 2), nullable=True),
    Column("flag", Boolean, nullable=True),
    Column("day", Date, nullable=True),
    Column("at", _DateTime, nullable=True),
    Column("clock", Time, nullable=True),
    Column("token", String(36), nullable=True),
    Column("level", String(10), nullable=True),
)
ba_docs = Table(
    "ba_docs",
    ba_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("payload", JSON, nullable=True),
)


class Level(enum.Enum):
    LOW = "low"
    HIGH = "high"


class Thing(BaseModel):
    table = "ba_things"
    id: int = column(is_primary=True)
    name: str = column()
    big: int | None = column()
    price: Decimal | None = column()
    flag: bool | None = column()
    day: date | None = column.date()
    at: datetime | None = column.date_time()
    clock: time | None = column()
    token: uuid.UUID | None = column()
    level: Level | None = column()


class PickyThing(Thing):
    """Refuses a row named "boom" once it is written: the write must be undone."""

    @after("create")
    def refuse(thing: PickyThing) -> None:
        if thing.name == "boom":
            raise ValueError("boom")


class Doc(BaseModel):
    table = "ba_docs"
    id: int = column(is_primary=True)
    name: str = column()
    payload: dict[str, Any] | None = column()


@pytest.fixture
async def ba(database: Database, dialect: str) -> AsyncIterator[Database]:
    """This file's tables on the running dialect, dropped after the test."""
    async with db.engine().begin() as conn:
        await conn.run_sync(ba_metadata.drop_all)
        await conn.run_sync(ba_metadata.create_all)
    try:
        yield database
    finally:
        async with db.engine().begin() as conn:
            await conn.run_sync(ba_metadata.drop_all)


def _row(i: int) -> dict[str, Any]:
    """Row ``i``: every column set, ``None`` in a different column for some rows."""
    row: dict[str, Any] = {
        "name": f"t{i}",
        "big": 2**40 + i,
        "price": Decimal(f"{i}.25"),
        "flag": i % 2 == 0,
        "day": date(2024, 1, 1) + timedelta(days=i),
        # An aware datetime in another zone: stored as the same instant in UTC.
        "at": datetime(2024, 5, 1, 12, 0, 0, 500, tzinfo=timezone(timedelta(hours=2)))
        + timedelta(minutes=i),
        "clock": time(10, i % 60, 30),
        "token": uuid.UUID(int=i + 1),
        "level": Level.HIGH if i % 2 else Level.LOW,
    }
    if i % 3 == 1:
        row[["big", "price", "flag", "day", "at", "clock", "token", "level"][i % 8]] = None
    return row


def _as_read(thing: Thing) -> tuple[Any, ...]:
    return (
        thing.id,
        thing.name,
        thing.big,
        thing.price,
        thing.flag,
        thing.day,
        thing.at,
        thing.clock,
        thing.token,
        thing.level,
    )


def _expected(i: int) -> tuple[Any, ...]:
    row = _row(i)
    at = row["at"]
    return (
        row["name"],
        row["big"],
        row["price"],
        row["flag"],
        row["day"],
        None if at is None else at.astimezone(UTC),
        row["clock"],
        row["token"],
        row["level"],
    )


def _inserts(sqls: list[str]) -> list[str]:
    return [s for s in sqls if s.lstrip().upper().startswith("INSERT")]


class TestCreateMany:
    async def test_every_type_round_trips_and_keys_match_their_rows(
        self, ba: Database, dialect: str
    ) -> None:
        payload = [_row(i) for i in range(40)]
        with count_queries() as q:
            made = await Thing.create_many(payload)
        inserts = _inserts(q.sqls)
        assert len(inserts) == 1
        event = next(e for e in q.events if e.sql in inserts)
        # SQLite: one statement outside a transaction runs without one (test_writes_alone.py).
        assert event.model == "Thing" and event.in_transaction is (dialect != "sqlite")
        if dialect == "postgresql":
            # One array per column (the enum's column is text here): the SQL is the same for
            # any row count, nothing of the values in it.
            assert "unnest(" in event.sql and "WITH ORDINALITY" in event.sql
            assert "t3" not in event.sql
            assert len(event.bindings) == 9 and all(len(b) == 40 for b in event.bindings)
        assert all(m.is_persisted and not m.is_dirty for m in made)
        # Each instance got the key of its own row.
        stored = {t.id: t for t in await Thing.query()}
        assert len(stored) == 40
        for i, m in enumerate(made):
            assert _as_read(stored[m.id])[1:] == _expected(i)

    async def test_postgresql_sends_the_insert_on_the_driver_only_on_the_fast_path(
        self, ba: Database, dialect: str, fast_paths: bool
    ) -> None:
        if dialect != "postgresql":
            pytest.skip("the driver-level multi-row INSERT with arrays is PostgreSQL's")
        payload = [{"name": f"n{i}", "big": i, "day": date(2024, 3, i + 1)} for i in range(3)]
        async with db.transaction() as trx:
            with count_queries() as q, through_sqlalchemy(ba) as sent:
                made = await Thing.create_many(payload, client=trx)
        (event,) = q.events
        assert len(_inserts(sent)) == (0 if fast_paths else 1)
        # Both paths: the same SQL (the twin's), the same bindings (one array per column).
        assert "WITH ORDINALITY" in event.sql and event.model == "Thing"
        assert event.bindings == [
            ["n0", "n1", "n2"],
            [0, 1, 2],
            [date(2024, 3, 1), date(2024, 3, 2), date(2024, 3, 3)],
        ]
        stored = {t.id: (t.name, t.big, t.day) for t in await Thing.query()}
        assert [stored[m.id] for m in made] == [(p["name"], p["big"], p["day"]) for p in payload]

    async def test_json_columns_keep_the_per_row_form(self, ba: Database, dialect: str) -> None:
        payload = [{"name": f"d{i}", "payload": {"i": i, "tags": ["a", None]}} for i in range(5)]
        payload[2]["payload"] = None
        with count_queries() as q:
            made = await Doc.create_many(payload)
        (insert,) = _inserts(q.sqls)
        assert "unnest(" not in insert
        stored = {d.id: d for d in await Doc.query()}
        assert [stored[m.id].payload for m in made] == [p["payload"] for p in payload]

    async def test_a_violated_constraint_writes_nothing_and_leaves_the_instances_new(
        self, ba: Database, dialect: str
    ) -> None:
        await Thing.create({"name": "taken"})
        payload = [{"name": "a"}, {"name": "b"}, {"name": "taken"}, {"name": "c"}]
        with pytest.raises(IntegrityError) as caught:
            await Thing.create_many(payload)
        assert caught.value.sql is not None and "INSERT" in caught.value.sql.upper()
        assert [t.name for t in await Thing.query()] == ["taken"]
        # Nothing persisted: the same payload (without the duplicate) is created afresh.
        again = await Thing.create_many([p for p in payload if p["name"] != "taken"])
        assert sorted(t.name for t in await Thing.query()) == ["a", "b", "c", "taken"]
        assert all(m.is_persisted for m in again)

    async def test_a_failure_after_the_insert_undoes_it(self, ba: Database, dialect: str) -> None:
        # The INSERT is the first statement of create_many's own transaction; an after hook
        # that raises rolls that transaction back, the rows with it.
        payload = [{"name": "a"}, {"name": "boom"}, {"name": "c"}]
        with pytest.raises(ValueError, match="boom"):
            await PickyThing.create_many(payload)
        assert await Thing.query() == []

    async def test_an_enclosing_rollback_undoes_the_rows_and_the_keys(
        self, ba: Database, dialect: str
    ) -> None:
        trx = await db.transaction()
        try:
            made = await Thing.create_many([{"name": f"n{i}"} for i in range(3)], client=trx)
            assert all(m.is_persisted and m.id is not None for m in made)
        finally:
            await trx.rollback()
        assert await Thing.query() == []
        # The journal made them new again: they are created afresh, with new keys.
        assert not any(m.is_persisted for m in made)
        await Thing.create_many([{"name": m.name} for m in made])
        assert sorted(t.name for t in await Thing.query()) == ["n0", "n1", "n2"]

    async def test_a_value_the_column_refuses_raises_the_query_error(
        self, ba: Database, dialect: str
    ) -> None:
        if dialect == "sqlite":
            pytest.skip("SQLite stores any value in any column")
        with pytest.raises(QueryError):
            await Thing.create_many([{"name": "ok", "big": 1}, {"name": "bad", "big": "x"}])
        assert await Thing.query() == []


class TestUpsertMany:
    async def test_every_type_round_trips_on_insert_and_merge(
        self, ba: Database, dialect: str
    ) -> None:
        first = await Thing.create_many([_row(i) for i in range(0, 20, 2)])
        payload = [_row(i) for i in range(20)]  # half new, half existing
        for row in payload:
            row["big"] = None if row["big"] is None else row["big"] + 1
        with count_queries() as q:
            made = await Thing.upsert_many(payload, conflict="name")
        assert len(_inserts(q.sqls)) == 1
        if dialect == "postgresql":
            assert "unnest(" in q.sqls[0] and "ON CONFLICT (name)" in q.sqls[0]
        assert [m.name for m in made] == [f"t{i}" for i in range(20)]
        assert {m.id for m in made[0::2]} == {m.id for m in first}
        stored = {t.name: t for t in await Thing.query()}
        for i, m in enumerate(made):
            expected = list(_expected(i))
            expected[1] = None if expected[1] is None else expected[1] + 1
            assert _as_read(stored[m.name])[1:] == tuple(expected)
            assert _as_read(m) == _as_read(stored[m.name])

    async def test_json_columns_keep_the_per_row_form(self, ba: Database, dialect: str) -> None:
        await Doc.create({"name": "a", "payload": {"v": 1}})
        with count_queries() as q:
            made = await Doc.upsert_many(
                [{"name": "a", "payload": {"v": 2}}, {"name": "b", "payload": [1, 2]}],
                conflict="name",
            )
        assert "unnest(" not in q.sqls[0]
        assert [(d.name, d.payload) for d in made] == [("a", {"v": 2}), ("b", [1, 2])]

    async def test_a_violated_constraint_changes_no_row(self, ba: Database, dialect: str) -> None:
        await Thing.create_many([{"name": "a", "big": 1}, {"name": "b", "big": 2}])
        with pytest.raises(QueryError):
            # NOT NULL name: the whole statement fails, the existing rows keep their values.
            await Thing.upsert_many(
                [{"name": "a", "big": 10}, {"name": None, "big": 20}], conflict="name"
            )
        assert [(t.name, t.big) for t in await Thing.query().order_by("id")] == [
            ("a", 1),
            ("b", 2),
        ]


class TestUpdateMany:
    async def test_postgresql_sends_the_update_on_the_driver_only_on_the_fast_path(
        self, ba: Database, dialect: str, fast_paths: bool
    ) -> None:
        if dialect != "postgresql":
            pytest.skip("the driver-level bulk UPDATE with arrays is PostgreSQL's")
        await Thing.create_many([{"name": f"n{i}", "big": i} for i in range(3)])
        things = await Thing.query().order_by("id")
        for i, t in enumerate(things):
            t.big = 10 + i
            t.day = date(2024, 2, i + 1)
        with count_queries() as q, through_sqlalchemy(ba) as sent:
            await Thing.update_many(things)
        (event,) = q.events
        updated = [s for s in sent if s.lstrip().upper().startswith("UPDATE")]
        assert len(updated) == (0 if fast_paths else 1)
        # Both paths: the same SQL (the twin's), the same bindings (one array per column).
        assert "FROM unnest(" in event.sql and event.model == "Thing" and event.in_transaction
        assert event.bindings == [
            [t.id for t in things],
            [10, 11, 12],
            [date(2024, 2, 1), date(2024, 2, 2), date(2024, 2, 3)],
        ]
        assert [(t.big, t.day) for t in await Thing.query().order_by("id")] == [
            (10 + i, date(2024, 2, i + 1)) for i in range(3)
        ]

    async def test_every_type_round_trips(self, ba: Database, dialect: str) -> None:
        await Thing.create_many([_row(i) for i in range(30)])
        things = await Thing.query().order_by("id")
        for i, t in enumerate(things):
            other = _row(i + 100)
            for name in ("big", "price", "flag", "day", "at", "clock", "token", "level"):
                setattr(t, name, other[name])
        with count_queries() as q:
            await Thing.update_many(things)
        updates = [e for e in q.events if e.sql.lstrip().upper().startswith("UPDATE")]
        # One UPDATE per set of changed columns (rows whose old and new values agree in a
        # column don't change it).
        assert updates and all(e.model == "Thing" and e.in_transaction for e in updates)
        assert not any(t.is_dirty for t in things)
        stored = {t.id: t for t in await Thing.query()}
        for i, t in enumerate(things):
            assert _as_read(stored[t.id])[2:] == _expected(i + 100)[1:]

    async def test_failure_leaves_rows_and_instances_as_they_were(
        self, ba: Database, dialect: str
    ) -> None:
        await Thing.create_many([{"name": f"n{i}", "big": i} for i in range(4)])
        things = await Thing.query().order_by("id")
        for t in things:
            t.big = (t.big or 0) + 100
        things[1].name = "n3"  # taken by things[3], which keeps its name
        things[3].big = None
        with pytest.raises(IntegrityError):
            await Thing.update_many(things)
        assert [(t.name, t.big) for t in await Thing.query().order_by("id")] == [
            (f"n{i}", i) for i in range(4)
        ]
        # Still dirty with the values set, as before the call.
        assert [t.dirty for t in things] == [
            {"big": 100},
            {"name": "n3", "big": 101},
            {"big": 102},
            {"big": None},
        ]

    async def test_nested_in_a_transaction_a_failure_rolls_back_only_its_savepoint(
        self, ba: Database, dialect: str
    ) -> None:
        await Thing.create_many([{"name": f"n{i}", "big": i} for i in range(3)])
        async with db.transaction() as trx:
            things = await Thing.query(client=trx).order_by("id")
            things[0].big = 50
            await Thing.update_many(things[:1], client=trx)
            things[1].name = "n2"  # a duplicate: this bulk write fails
            things[2].big = 70
            with pytest.raises(IntegrityError):
                await Thing.update_many(things[1:], client=trx)
            # The transaction goes on (PostgreSQL would refuse every statement after a
            # failure that no savepoint contained) and commits the first write only.
            assert len(await Thing.query(client=trx).where("big", 50)) == 1
            things[2].name = "n2b"
            await Thing.update_many(things[2:], client=trx)
        assert [(t.name, t.big) for t in await Thing.query().order_by("id")] == [
            ("n0", 50),
            ("n1", 1),
            ("n2b", 70),
        ]

    async def test_an_enclosing_rollback_undoes_the_write_and_the_instances(
        self, ba: Database, dialect: str
    ) -> None:
        await Thing.create_many([{"name": f"n{i}", "big": i} for i in range(3)])
        things = await Thing.query().order_by("id")
        trx = await db.transaction()
        try:
            for t in things:
                t.big = 9
            await Thing.update_many(things, client=trx)
            assert not any(t.is_dirty for t in things)
        finally:
            await trx.rollback()
        assert [t.big for t in await Thing.query().order_by("id")] == [0, 1, 2]
        # The journal put the instances back: their changes are pending again.
        assert [t.dirty for t in things] == [{"big": 9}] * 3

    async def test_a_cancelled_write_rolls_back_and_returns_a_clean_connection(
        self, ba: Database, dialect: str
    ) -> None:
        if dialect == "sqlite":
            pytest.skip("SQLite has no row locks to hold an UPDATE mid-statement")
        await Thing.create_many([{"name": f"n{i}", "big": i} for i in range(3)])
        things = await Thing.query().order_by("id")
        for t in things:
            t.big = 7
        # Another transaction holds the last row: the bulk UPDATE waits for it mid-statement.
        locker = await db.transaction()
        try:
            await Thing.query(client=locker).where("id", things[2].id).for_update().first()
            task = asyncio.ensure_future(Thing.update_many(things))
            await asyncio.sleep(0.3)
            assert not task.done()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        finally:
            await locker.rollback()
        assert [t.big for t in await Thing.query().order_by("id")] == [0, 1, 2]
        assert [t.dirty for t in things] == [{"big": 7}] * 3
        # The connections left behind are clean: the same write now goes through.
        await Thing.update_many(things)
        assert [t.big for t in await Thing.query().order_by("id")] == [7, 7, 7]
        assert not any(t.is_dirty for t in things)
