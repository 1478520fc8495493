"""The driver-level bulk writes (``create_many``, ``update_many``, ``upsert_many``) against
their SQLAlchemy twins, on every dialect and with the fast paths on and off: the rows written,
the instances' state, the values of every column type (booleans, decimals, floats, JSON,
aware datetimes, ``None``), errors and rollback, and on MariaDB and SQLite that the fast path
is what ran (its statements never pass through SQLAlchemy's execution layer)."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from lucid_orm import BaseModel, ConnectionLostError, IntegrityError, QueryError, column, db
from lucid_orm.database import Database
from lucid_orm.database.dialects import mysql as mysql_ops
from lucid_orm.orm.model_info import info_of
from tests.helpers import count_queries, through_sqlalchemy

KOLKATA = ZoneInfo("Asia/Kolkata")  # UTC+05:30
_DateTime = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")

meta = sa.MetaData()
gear = sa.Table(
    "dbw_gear",
    meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("code", sa.String(40), nullable=False, unique=True),
    sa.Column("name", sa.String(100), nullable=True),
    sa.Column("qty", sa.Integer, nullable=True),
    sa.Column("price", sa.Numeric(10, 2), nullable=True),
    sa.Column("ratio", sa.Float, nullable=True),
    sa.Column("is_on", sa.Boolean, nullable=True),
    sa.Column("meta", sa.JSON, nullable=True),
    sa.Column("seen_at", _DateTime, nullable=True),
    sa.Column("due_on", sa.Date, nullable=True),
)


class Gear(BaseModel):
    table = "dbw_gear"
    id: int = column(is_primary=True)
    code: str = column()
    name: str | None = column()
    qty: int | None = column()
    price: Decimal | None = column()
    ratio: float | None = column()
    is_on: bool | None = column()
    meta: dict[str, Any] | None = column()
    seen_at: dt.datetime | None = column.date_time()
    due_on: dt.date | None = column.date()


@pytest.fixture
async def gears(database: Database) -> AsyncIterator[Database]:
    async with database.engine().begin() as conn:
        await conn.run_sync(lambda c: meta.drop_all(c, tables=[gear]))
        await conn.run_sync(lambda c: meta.create_all(c, tables=[gear]))
    try:
        yield database
    finally:
        async with database.engine().begin() as conn:
            await conn.run_sync(lambda c: meta.drop_all(c, tables=[gear]))


def _driver_level(database: Database, dialect: str, fast: bool) -> bool:
    """Whether this dialect's bulk writes run on the driver connection here."""
    mariadb = bool(getattr(database.get_connection().dialect, "is_mariadb", False))
    return fast and (dialect == "sqlite" or mariadb)


def _writes(sqls: list[str]) -> list[str]:
    return [s for s in sqls if s.lstrip().split(" ", 1)[0].upper() in ("INSERT", "UPDATE")]


def _row(i: int) -> dict[str, Any]:
    """Row ``i`` with a value of every type, some ``None``."""
    return {
        "code": f"c{i}",
        "name": None if i % 4 == 0 else f"name {i} 'quoted' \\ back",
        "qty": i * 7,
        "price": Decimal(f"{i}.25"),
        "ratio": i / 8,
        "is_on": i % 2 == 0,
        "meta": {"i": i, "tags": ["a", "b"]} if i % 3 else None,
        "seen_at": dt.datetime(2024, 5, 1, 10, i, 30, 123456, tzinfo=KOLKATA),
        "due_on": dt.date(2024, 6, 1 + i % 28),
    }


def _seen(gear_: Gear) -> tuple[Any, ...]:
    return (
        gear_.code,
        gear_.name,
        gear_.qty,
        gear_.price,
        gear_.ratio,
        gear_.is_on,
        gear_.meta,
        gear_.seen_at,
        gear_.due_on,
    )


async def _stored() -> list[tuple[Any, ...]]:
    return [_seen(g) for g in await Gear.query().order_by("id")]


class TestCreateMany:
    async def test_keys_in_payload_order_and_values_of_every_type(
        self, gears: Database, dialect: str, fast_paths: bool
    ) -> None:
        payload = [_row(i) for i in range(25)]
        with count_queries() as q, through_sqlalchemy(gears) as sent:
            made = await Gear.create_many(payload)
        ids = [g.id for g in made]
        assert ids == sorted(ids) and len(set(ids)) == 25
        assert [g.code for g in made] == [f"c{i}" for i in range(25)]
        by_key = {g.id: g.code for g in await Gear.query()}
        assert [by_key[g.id] for g in made] == [g.code for g in made]
        assert all(g.is_persisted and not g.is_dirty for g in made)
        stored = await _stored()
        assert stored == [_seen(g) for g in made]
        # The aware datetime is stored as UTC and read back aware.
        assert stored[0][7] == payload[0]["seen_at"] and stored[0][7].tzinfo is not None
        assert [type(s[5]) for s in stored] == [bool] * 25
        inserts = _writes(q.sqls)
        assert len(inserts) == 1 and q.events[-1].in_transaction is True
        assert q.events[-1].model == "Gear"
        assert len(_writes(sent)) == (0 if _driver_level(gears, dialect, fast_paths) else 1)

    async def test_a_duplicate_writes_nothing_and_raises_integrity_error(
        self, gears: Database, dialect: str, fast_paths: bool
    ) -> None:
        await Gear.create({"code": "c3"})
        with count_queries() as q, pytest.raises(IntegrityError) as caught:
            await Gear.create_many([_row(i) for i in range(6)])
        assert caught.value.sql is not None and "INSERT" in caught.value.sql.upper()
        assert caught.value.original is not None
        assert q.count == 0  # db.on_query hears of statements that succeeded
        assert await db.from_("dbw_gear").count_rows() == 1


class TestUpdateMany:
    async def test_values_of_every_type_per_row(
        self, gears: Database, dialect: str, fast_paths: bool
    ) -> None:
        await Gear.create_many([_row(i) for i in range(12)])
        found = await Gear.query().order_by("id")
        for i, g in enumerate(found):
            # Every column changes in every row: one set of columns, one statement.
            g.name = None if i % 4 == 1 else f"new {i} \"dq\" 'sq'"
            g.qty = None if i == 5 else -i - 1
            g.price = Decimal(f"-{i}.50")
            g.ratio = i * 1.5 + 0.5
            g.is_on = i % 2 == 1
            g.code = f"k{i}"
            g.meta = {"new": i}
            g.seen_at = dt.datetime(2025, 1, 2, 3, 4, 5, i, tzinfo=dt.UTC)
            g.due_on = dt.date(2025, 2, 1 + i)
        expected = [_seen(g) for g in found]
        with count_queries() as q, through_sqlalchemy(gears) as sent:
            await Gear.update_many(found)
        assert not any(g.is_dirty for g in found)
        assert await _stored() == expected
        updates = _writes(q.sqls)
        assert updates and all(e.in_transaction and e.model == "Gear" for e in q.events)
        driver = _driver_level(gears, dialect, fast_paths)
        assert len(_writes(sent)) == (0 if driver else len(updates))
        if driver:
            # Every value a parameter of one multi-row VALUES, bound by its column's type:
            # (id, code, name, qty, price, ratio, is_on, meta, seen_at, due_on) per row.
            assert len(updates) == 1 and "UNION ALL VALUES" in updates[0]
            bindings = q.events[-1].bindings
            assert len(bindings) == 12 * 10
            assert bindings[0::10] == [g.id for g in found]
            assert bindings[1::10] == [f"k{i}" for i in range(12)]

    async def test_a_unique_violation_raises_and_leaves_the_instances_dirty(
        self, gears: Database, dialect: str, fast_paths: bool
    ) -> None:
        await Gear.create_many([_row(i) for i in range(3)])
        found = await Gear.query().order_by("id")
        found[0].code = "z"
        found[1].code = "c2"  # taken by found[2], which is not written
        with count_queries() as q, pytest.raises(IntegrityError) as caught:
            await Gear.update_many(found[:2])
        assert caught.value.sql is not None and "UPDATE" in caught.value.sql.upper()
        assert caught.value.original is not None
        assert q.count == 0
        assert [g.dirty for g in found] == [{"code": "z"}, {"code": "c2"}, {}]
        assert [r[0] for r in await _stored()] == ["c0", "c1", "c2"]

    async def test_a_value_the_column_refuses_is_a_query_error(
        self, gears: Database, dialect: str, fast_paths: bool
    ) -> None:
        await Gear.create_many([_row(i) for i in range(2)])
        found = await Gear.query().order_by("id")
        found[0].qty = 5
        found[1].qty = 2**70  # beyond any integer column (and beyond SQLite's 64 bits)
        with pytest.raises(QueryError):
            await Gear.update_many(found)
        assert [g.dirty for g in found] == [{"qty": 5}, {"qty": 2**70}]
        assert [r[2] for r in await _stored()] == [0, 7]

    async def test_an_enclosing_rollback_puts_the_instances_back(
        self, gears: Database, fast_paths: bool
    ) -> None:
        await Gear.create_many([_row(i) for i in range(2)])
        found = await Gear.query().order_by("id")
        async with db.transaction() as trx:
            for g in found:
                g.qty = 99
            await Gear.update_many(found, client=trx)
            assert await trx.from_("dbw_gear").where("qty", 99).count_rows() == 2
            await trx.rollback()
        assert [g.dirty for g in found] == [{"qty": 99}, {"qty": 99}]
        assert [r[2] for r in await _stored()] == [0, 7]


class TestUpsertMany:
    async def test_rows_and_instances_agree_with_the_twin(
        self, gears: Database, dialect: str, fast_paths: bool
    ) -> None:
        await Gear.create_many(
            [{"code": f"c{i}", "name": "old", "qty": -1} for i in range(0, 8, 2)]
        )
        payload = [
            {"code": f"c{i}", "name": f"n{i}", "qty": i, "seen_at": _row(i)["seen_at"]}
            for i in range(8)
        ]
        with count_queries() as q, through_sqlalchemy(gears) as sent:
            made = await Gear.upsert_many(payload, conflict="code", merge=["name", "seen_at"])
        assert [(g.code, g.name) for g in made] == [(f"c{i}", f"n{i}") for i in range(8)]
        # Existing rows keep the columns not merged; the instances hold the row.
        assert [g.qty for g in made] == [-1, 1, -1, 3, -1, 5, -1, 7]
        assert [g.seen_at for g in made] == [r["seen_at"] for r in payload]
        assert all(g.is_persisted and not g.is_dirty for g in made)
        assert sorted(await _stored()) == sorted(_seen(g) for g in made)
        assert len(_writes(q.sqls)) == 1 and q.events[-1].model == "Gear"
        assert len(_writes(sent)) == (0 if _driver_level(gears, dialect, fast_paths) else 1)

    async def test_values_json_cannot_carry_take_the_twin_statement(
        self, gears: Database, fast_paths: bool
    ) -> None:
        payload = [_row(i) for i in range(4)]  # decimals, floats, booleans
        made = await Gear.upsert_many(payload, conflict="code")
        assert [_seen(g)[:7] for g in made] == [tuple(r.values())[:7] for r in payload]
        assert sorted(await _stored()) == sorted(_seen(g) for g in made)


class TestLostConnection:
    async def test_a_bulk_write_in_a_dropped_transaction_raises_and_the_next_one_works(
        self, gears: Database, dialect: str, fast_paths: bool
    ) -> None:
        if dialect != "mysql":
            pytest.skip("the MySQL driver-level writes' reconnect handling")
        payload = [{"code": f"c{i}", "name": "new"} for i in range(3)]
        try:
            with pytest.raises(ConnectionLostError) as caught:
                async with db.transaction() as trx:
                    thread = (await trx.raw_query("select connection_id() as id"))[0]["id"]
                    await db.raw_query("kill ?", [int(thread)])
                    # The first statement on the dead connection: the upsert itself.
                    await Gear.upsert_many(payload, conflict="code", client=trx)
            assert "the transaction is gone" in str(caught.value)
            assert caught.value.sql is not None and "INSERT" in caught.value.sql.upper()
            assert await db.from_("dbw_gear").count_rows() == 0
            made = await Gear.upsert_many(payload, conflict="code")
            assert [g.name for g in made] == ["new"] * 3
        finally:
            engines = gears.get_connection().write_engines()
            await engines.forget_idle(None)
            await engines.engine.dispose()


def _model_table() -> sa.TableClause:
    table = info_of(Gear).table
    assert table is not None
    return table


class TestJsonRows:
    """``_json_rows``: what travels in a ``JSON_TABLE`` and what keeps the other statement."""

    dialect = mysql.dialect()

    def _pack(self, column: str, values: list[Any]) -> tuple[str, list[tuple[str, str]]] | None:
        return mysql_ops._json_rows(_model_table(), [column], [values], self.dialect)

    def test_integers_alone_are_a_bigint_column(self) -> None:
        assert self._pack("qty", [1, None, -(2**63)]) == (
            "[[1],[null],[-9223372036854775808]]",
            [("qty", "BIGINT")],
        )
        assert self._pack("qty", [2**63]) is None

    def test_booleans_travel_as_the_integers_their_processor_makes(self) -> None:
        assert self._pack("is_on", [True, False, None]) == (
            "[[1],[0],[null]]",
            [("is_on", "BIGINT")],
        )

    def test_text_dates_and_mixed_columns_are_longtext(self) -> None:
        naive = dt.datetime(2024, 1, 2, 3, 4, 5, 6)
        text, spec = self._pack("name", ["a", None, 3]) or ("", [])
        assert (text, spec) == ('[["a"],[null],[3]]', [("name", "LONGTEXT")])
        assert self._pack("due_on", [dt.date(2024, 1, 2)]) == (
            '[["2024-01-02"]]',
            [("due_on", "LONGTEXT")],
        )
        # The column type's bind processor first: an aware datetime becomes naive UTC.
        aware = dt.datetime(2024, 1, 2, 8, 34, 5, 6, tzinfo=KOLKATA)
        for value in (naive, aware):
            assert self._pack("seen_at", [value]) == (
                '[["2024-01-02 03:04:05.000006"]]',
                [("seen_at", "LONGTEXT")],
            )

    def test_other_values_do_not_travel(self) -> None:
        for column_, value in [
            ("ratio", 1.5),
            ("price", Decimal("1.50")),
            ("name", b"bytes"),
        ]:
            assert self._pack(column_, [value]) is None, value
        aware = dt.datetime(2024, 1, 2, tzinfo=KOLKATA)
        assert self._pack("name", [aware]) is None


part = sa.Table(
    "dbw_part",
    meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("code", sa.String(40), nullable=False, unique=True),
    sa.Column("qty", sa.Integer, nullable=True),
    sa.Column("seen_at", _DateTime, nullable=True),
)


class Part(BaseModel):
    """No JSON column, no ``prepare``: ``create_many`` of rows that set the same columns
    takes the lean form (value tuples, ``original`` kept as the row)."""

    table = "dbw_part"
    id: int = column(is_primary=True)
    code: str = column()
    qty: int | None = column()
    seen_at: dt.datetime | None = column.date_time()


@pytest.fixture
async def parts(database: Database) -> AsyncIterator[Database]:
    async with database.engine().begin() as conn:
        await conn.run_sync(lambda c: meta.drop_all(c, tables=[part]))
        await conn.run_sync(lambda c: meta.create_all(c, tables=[part]))
    try:
        yield database
    finally:
        async with database.engine().begin() as conn:
            await conn.run_sync(lambda c: meta.drop_all(c, tables=[part]))


def _part(i: int) -> dict[str, Any]:
    return {
        "code": f"p{i}",
        "qty": i,
        "seen_at": dt.datetime(2024, 5, 1, 10, i, 30, tzinfo=KOLKATA),
    }


class TestCreateManyState:
    async def test_created_instances_are_clean_and_their_original_is_what_was_written(
        self, parts: Database, fast_paths: bool
    ) -> None:
        with count_queries() as q:
            made = await Part.create_many([_part(i) for i in range(5)])
        assert len(_writes(q.sqls)) == 1
        for i, p in enumerate(made):
            assert p.is_persisted and not p.is_dirty
            assert p.original == {"id": p.id, **_part(i)}
            assert p.original == p.attributes
        made[1].qty = 100
        made[3].code = "renamed"
        assert made[1].dirty == {"qty": 100} and made[3].dirty == {"code": "renamed"}
        await Part.update_many(made)
        assert not any(p.is_dirty for p in made)
        stored = [(p.code, p.qty) for p in await Part.query().order_by("id")]
        assert stored == [("p0", 0), ("p1", 100), ("p2", 2), ("renamed", 3), ("p4", 4)]
        made[0].qty = -1
        await made[0].save()
        assert (await Part.find_or_fail(made[0].id)).qty == -1

    async def test_a_rolled_back_create_many_leaves_its_instances_new(
        self, parts: Database, fast_paths: bool
    ) -> None:
        async with db.transaction() as trx:
            made = await Part.create_many([_part(i) for i in range(3)], client=trx)
            assert all(p.is_persisted and p.id is not None for p in made)
            await trx.rollback()
        assert not any(p.is_persisted for p in made)
        assert all("id" not in p.attributes and p.original == {} for p in made)
        assert await Part.query() == []
        again = await Part.create_many([{"code": p.code, "qty": p.qty} for p in made])
        assert [p.original == p.attributes for p in again] == [True] * 3

    async def test_rows_that_set_other_columns_each_keep_their_own(
        self, parts: Database, fast_paths: bool
    ) -> None:
        rows: list[dict[str, Any]] = [
            {"code": "a", "qty": 1},
            {"code": "b"},
            {"code": "c", "qty": 3, "seen_at": None},
            {"code": "d", "qty": 4},
        ]
        made = await Part.create_many(rows)
        assert [p.original == {"id": p.id, **r} for p, r in zip(made, rows, strict=True)] == [
            True
        ] * 4
        assert [(p.code, p.qty) for p in await Part.query().order_by("id")] == [
            ("a", 1),
            ("b", None),
            ("c", 3),
            ("d", 4),
        ]
