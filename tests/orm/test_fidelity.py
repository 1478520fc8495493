"""Values come back as they were written (issue 12, finding 11): exact ``Decimal``s on every
dialect (SQLite included, beyond float precision), float NaN/infinity stored where the database
holds them and refused with a ``LucidError`` before the write elsewhere (never NULL), and aware
UTC datetimes at the extremes (``datetime.max``/``min``: PostgreSQL's ``infinity``).

Each value is written with ``create``, ``save`` (update) and ``create_many``, then read back
with ``find``, ``query()`` and a preload, the lean read path on and off (``fast_paths``), and
compared exactly; where it matters the stored value is read raw as well.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Column, DateTime, Double, Integer, MetaData, Numeric, String, Table
from sqlalchemy.dialects import mysql

from lucid_orm import BaseModel, LucidError, QueryError, column, has_many
from lucid_orm.database import Database, QueryEvent
from lucid_orm.errors import UnstorableValueError
from lucid_orm.relations import HasMany
from tests.helpers import count_queries

fid_metadata = MetaData()
_DateTime = DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
_DateTimeTZ = DateTime(timezone=True).with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")

fid_parents = Table(
    "fid_parents",
    fid_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(50)),
)
fid_values = Table(
    "fid_values",
    fid_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("parent_id", Integer, nullable=True),
    Column("label", String(50), nullable=True),
    # What the schema builder's ``decimal(38, 10)`` creates: NUMERIC(38, 10) everywhere.
    Column("amount", Numeric(38, 10), nullable=True),
    Column("ratio", Double(), nullable=True),
    Column("at_plain", _DateTime, nullable=True),
    # timestamptz on PostgreSQL.
    Column("at_tz", _DateTimeTZ, nullable=True),
)


@pytest.fixture(scope="module")
async def fid_tables(dialect: str) -> AsyncIterator[None]:
    from lucid_orm import db

    async with db.engine().begin() as conn:
        await conn.run_sync(fid_metadata.drop_all)
        await conn.run_sync(fid_metadata.create_all)
    try:
        yield
    finally:
        async with db.engine().begin() as conn:
            await conn.run_sync(fid_metadata.drop_all)


@pytest.fixture
async def fid(database: Database, fid_tables: None) -> AsyncIterator[Database]:
    try:
        yield database
    finally:
        async with database.engine().begin() as conn:
            await conn.execute(fid_values.delete())
            await conn.execute(fid_parents.delete())


class Parent(BaseModel):
    table = "fid_parents"
    id: int = column(is_primary=True)
    name: str | None = column()

    values: HasMany[Value] = has_many(lambda: Value)


class Value(BaseModel):
    table = "fid_values"
    id: int = column(is_primary=True)
    parent_id: int | None = column()
    label: str | None = column()
    amount: Decimal | None = column()
    ratio: float | None = column()
    at_plain: datetime | None = column.date_time()
    at_tz: datetime | None = column.date_time()


DECIMALS = [
    Decimal("12345678901234567890.123456789"),  # 29 significant digits
    Decimal("-98765432109876543210.0000000001"),
    Decimal("9999999999999999999999999999.9999999999"),  # NUMERIC(38, 10)'s largest
    Decimal("123456789012345.6789012345"),
    Decimal("9007199254740993"),  # 2**53 + 1: no double holds it
    Decimal("0.1"),
    Decimal("1.10"),
    Decimal("-0.0000000001"),
    Decimal("0"),
    Decimal("1E+2"),
    Decimal("42"),
]

KOLKATA = ZoneInfo("Asia/Kolkata")  # +05:30 today; its year-1 offset is LMT (+05:53:28)
IST = timezone(timedelta(hours=5, minutes=30))
MAX_UTC = datetime.max.replace(tzinfo=UTC)
MIN_UTC = datetime.min.replace(tzinfo=UTC)


def inserts_and_updates(events: list[QueryEvent]) -> list[QueryEvent]:
    return [e for e in events if e.sql.lstrip().upper().startswith(("INSERT", "UPDATE"))]


async def read_back(ids: list[int], attr: str) -> list[list[Any]]:
    """The ``attr`` of rows ``ids`` by every read path: find, query, preload."""
    by_find = [getattr(await Value.find_or_fail(i), attr) for i in ids]
    rows = await Value.query().where_in("id", ids)
    by_query = [getattr({r.id: r for r in rows}[i], attr) for i in ids]
    parents = await Parent.query().preload("values")
    loaded = {v.id: v for p in parents for v in p.values}
    by_preload = [getattr(loaded[i], attr) for i in ids]
    return [by_find, by_query, by_preload]


async def write_all_ways(values: list[Any], attr: str) -> list[int]:
    """Rows holding ``values`` in ``attr``, value ``i`` written the ``i % 5``-th way:
    ``create``, ``save`` (an update of a row created with another value), ``create_many``,
    ``update_many`` and ``upsert_many`` (rows created with another value, conflict on the key:
    the bulk writes bind their rows as arrays or JSON where they can); ids in the order of
    ``values``."""
    parent = await Parent.create({"name": "p"})
    ids: list[int] = [0] * len(values)
    ways: list[list[int]] = [list(range(len(values)))[w::5] for w in range(5)]
    for i in ways[0]:
        ids[i] = (await Value.create({"parent_id": parent.id, attr: values[i]})).id
    for i in ways[1]:
        row = await Value.create({"parent_id": parent.id, "label": "before"})
        setattr(row, attr, values[i])
        await row.save()
        ids[i] = row.id
    created = await Value.create_many([{"parent_id": parent.id, attr: values[i]} for i in ways[2]])
    for i, row in zip(ways[2], created, strict=True):
        ids[i] = row.id
    if ways[3]:
        rows = await Value.create_many([{"parent_id": parent.id, "label": "b"} for _ in ways[3]])
        for i, row in zip(ways[3], rows, strict=True):
            setattr(row, attr, values[i])
            ids[i] = row.id
        await Value.update_many(rows)
        assert not any(row.is_dirty for row in rows)
    if ways[4]:
        rows = await Value.create_many([{"parent_id": parent.id, "label": "b"} for _ in ways[4]])
        payload = [
            {"id": row.id, "parent_id": parent.id, attr: values[i]}
            for i, row in zip(ways[4], rows, strict=True)
        ]
        upserted = await Value.upsert_many(payload, conflict="id")
        for i, row, again in zip(ways[4], rows, upserted, strict=True):
            assert again.id == row.id
            ids[i] = row.id
    return ids


class TestDecimals:
    async def test_decimals_round_trip_exactly(self, fid: Database, fast_paths: bool) -> None:
        ids = await write_all_ways(DECIMALS, "amount")
        for read in await read_back(ids, "amount"):
            assert read == DECIMALS
            assert all(type(v) is Decimal for v in read)

    async def test_the_stored_value_is_exact(self, fid: Database, dialect: str) -> None:
        big = Decimal("12345678901234567890.123456789")
        created = await Value.create_many([{"amount": big}, {"amount": Decimal("0.1")}])
        if dialect != "sqlite":
            raw = await fid.from_("fid_values").select("id", "amount").order_by("id")
            assert [r["amount"] for r in raw] == [big, Decimal("0.1")]
            return
        # SQLite: a number while 15 significant digits hold it (it compares and sorts as one),
        # else the exact text as a BLOB (NUMERIC affinity would round numeric text to a double).
        raw = await fid.raw_query(
            "select typeof(amount) as kind, amount from fid_values order by id"
        )
        assert [(r["kind"], r["amount"]) for r in raw] == [
            ("blob", b"12345678901234567890.123456789"),
            ("real", 0.1),
        ]
        assert [c.amount for c in created] == [big, Decimal("0.1")]

    async def test_sql_compares_and_sorts_as_numbers(self, fid: Database) -> None:
        # Within 15 significant digits (every dialect; beyond them SQLite sorts the BLOBs
        # after all numbers, see test_beyond_15_digits_sqlite_sorts_after_numbers).
        amounts = [Decimal("10.5"), Decimal("9.25"), Decimal("-3"), Decimal("100"), Decimal("0.1")]
        await Value.create_many([{"label": str(a), "amount": a} for a in amounts])
        ordered = await Value.query().order_by("amount")
        assert [v.amount for v in ordered] == sorted(amounts)
        above = await Value.query().where("amount", ">", Decimal("9.5")).order_by("amount")
        assert [v.amount for v in above] == [Decimal("10.5"), Decimal("100")]
        exact = await Value.query().where("amount", Decimal("0.1"))
        assert [v.label for v in exact] == ["0.1"]
        rows = await fid.from_("fid_values").sum("amount as total")
        assert Decimal(str(rows[0]["total"])) == sum(amounts)

    async def test_beyond_15_digits_sqlite_sorts_after_numbers(
        self, fid: Database, dialect: str
    ) -> None:
        big = Decimal("-12345678901234567890.123456789")
        await Value.create_many([{"amount": big}, {"amount": Decimal("1")}])
        ordered = [v.amount for v in await Value.query().order_by("amount")]
        if dialect == "sqlite":
            # The documented trade-off: exact, found by equality, but not ordered as a number.
            assert ordered == [Decimal("1"), big]
        else:
            assert ordered == [big, Decimal("1")]
        assert [v.amount for v in await Value.query().where("amount", big)] == [big]

    async def test_builder_update_through_the_model(self, fid: Database) -> None:
        big = Decimal("12345678901234567890.123456789")
        row = await Value.create({"amount": Decimal("1")})
        await Value.query().where("id", row.id).update({"amount": big})
        await row.refresh()
        assert row.amount == big


class TestNotANumber:
    async def test_float_specials(self, fid: Database, dialect: str, fast_paths: bool) -> None:
        specials = [math.inf, -math.inf, math.nan, 1.5]
        if dialect == "mysql":
            await self._refused(fid, "ratio", math.inf, "MariaDB/MySQL floats hold no infinity")
            await self._refused(fid, "ratio", -math.inf, "no infinity")
            await self._refused(fid, "ratio", math.nan, "has no NaN")
            return
        if dialect == "sqlite":
            await self._refused(fid, "ratio", math.nan, "SQLite has no NaN")
            specials.remove(math.nan)
        ids = await write_all_ways(specials * 2, "ratio")
        for read in await read_back(ids, "ratio"):
            for got, wanted in zip(read, specials * 2, strict=True):
                assert type(got) is float
                assert got == wanted or (math.isnan(got) and math.isnan(wanted))

    async def test_decimal_specials(self, fid: Database, dialect: str) -> None:
        if dialect == "postgresql":
            ids = await write_all_ways([Decimal("NaN")] * 3, "amount")
            for read in await read_back(ids, "amount"):
                assert all(v.is_nan() for v in read)
            # NUMERIC(38, 10) holds no infinity: PostgreSQL says so, nothing is written.
            with pytest.raises(QueryError, match="infinite"):
                await Value.create({"amount": Decimal("Infinity")})
            assert await fid.from_("fid_values").count_rows() == 3
            return
        if dialect == "sqlite":
            await self._refused(fid, "amount", Decimal("NaN"), "SQLite has no NaN")
            ids = await write_all_ways([Decimal("Infinity"), Decimal("-Infinity")] * 2, "amount")
            for read in await read_back(ids, "amount"):
                assert read == [Decimal("Infinity"), Decimal("-Infinity")] * 2
            return
        for value in (Decimal("NaN"), Decimal("Infinity"), Decimal("-Infinity")):
            await self._refused(fid, "amount", value, "hold neither NaN nor infinity")

    @staticmethod
    async def _refused(database: Database, attr: str, value: Any, message: str) -> None:
        """``value`` is refused by create, save and create_many before any write."""
        kept = await Value.create({"label": "kept", attr: None})
        with count_queries() as q:
            with pytest.raises(UnstorableValueError, match=message) as caught:
                await Value.create({attr: value})
            assert isinstance(caught.value, LucidError)
            assert caught.value.code == "E_INVALID_VALUE"
            kept_value = getattr(kept, attr)
            setattr(kept, attr, value)
            with pytest.raises(UnstorableValueError, match=message):
                await kept.save()
            with pytest.raises(UnstorableValueError, match=message):
                await Value.update_many([kept])
            assert kept.is_dirty
            setattr(kept, attr, kept_value)
            with pytest.raises(UnstorableValueError, match=message):
                await Value.create_many([{attr: None}, {attr: value}, {attr: None}])
        assert inserts_and_updates(q.events) == []
        rows = await database.from_("fid_values").select("label", attr)
        assert rows == [{"label": "kept", attr: None}]
        await database.from_("fid_values").delete()


class TestDatetimes:
    async def test_aware_at_the_extremes(self, fid: Database, fast_paths: bool) -> None:
        moments = [
            MAX_UTC,
            MIN_UTC,
            datetime(9999, 12, 31, 18, 0, tzinfo=timezone(timedelta(hours=-5))),  # 23:00 UTC
            datetime(2024, 3, 5, 12, 0, 0, 250, tzinfo=KOLKATA),
            datetime(1, 1, 1, 5, 30, tzinfo=IST),  # datetime.min in UTC
            datetime(9999, 12, 31, 23, 59, 59, 999998, tzinfo=UTC),
        ]
        for attr in ("at_plain", "at_tz"):
            ids = await write_all_ways(moments, attr)
            for read in await read_back(ids, attr):
                assert read == moments
                assert all(v.tzinfo is UTC for v in read)
            # The same statement, other values each time: each finds the rows of its instant.
            for moment in moments:
                found = await Value.query().where(attr, moment).select("id").order_by("id")
                assert [v.id for v in found] == [
                    i for i, other in zip(ids, moments, strict=True) if other == moment
                ]
            await Value.query().delete()

    async def test_naive_aware_and_subclassed_datetimes_store_the_same_instant(
        self, fid: Database, fast_paths: bool
    ) -> None:
        class Stamp(datetime):
            pass

        instant = datetime(2024, 5, 6, 7, 8, 9, 10, tzinfo=UTC)
        moments = [
            datetime(2024, 5, 6, 7, 8, 9, 10),  # naive: UTC
            instant,
            datetime(2024, 5, 6, 9, 8, 9, 10, tzinfo=timezone(timedelta(hours=2))),
            Stamp(2024, 5, 6, 7, 8, 9, 10, tzinfo=UTC),  # a subclass: the general binding
            Stamp(2024, 5, 6, 7, 8, 9, 10),
        ]
        made = await Value.create_many([{"at_plain": m, "at_tz": m} for m in moments])
        made.append(await Value.create({"at_plain": moments[2], "at_tz": moments[3]}))
        read = await Value.query().order_by("id")
        assert [(v.at_plain, v.at_tz) for v in read] == [(instant, instant)] * 6
        assert all(v.at_plain.tzinfo is UTC and v.at_tz.tzinfo is UTC for v in read)
        for attr in ("at_plain", "at_tz"):
            for moment in moments:
                assert len(await Value.query().where(attr, moment).select("id")) == 6
        await Value.update_many([*made])  # clean: nothing written
        later = datetime(2025, 1, 1, 1, 0, tzinfo=timezone(timedelta(hours=1)))
        for v in made:
            v.at_tz = later
        await Value.update_many(made)
        read = await Value.query().order_by("id")
        assert {v.at_tz for v in read} == {datetime(2025, 1, 1, tzinfo=UTC)}
        await Value.query().delete()

    async def test_stored_extremes(self, fid: Database, dialect: str) -> None:
        row = await Value.create({"at_plain": MAX_UTC, "at_tz": MIN_UTC})
        found = await Value.query().where("at_tz", MIN_UTC).where("at_plain", MAX_UTC).first()
        assert found is not None and found.id == row.id
        assert (found.at_plain, found.at_tz) == (MAX_UTC, MIN_UTC)
        if dialect == "postgresql":
            # asyncpg can only send datetime.max/min as infinity/-infinity; lucid's SELECTs
            # read those back as the aware last/first microsecond.
            raw = await fid.raw_query(
                "select at_plain::text as p, at_tz::text as t from ??", ["fid_values"]
            )
            assert (raw[0]["p"], raw[0]["t"]) == ("infinity", "-infinity")

    async def test_extremes_are_made_aware_on_the_client(
        self, fid: Database, fast_paths: bool
    ) -> None:
        # The SELECT reads the columns as they are (no per-row CASE for the server to evaluate
        # on every row a sort reads); the result processor makes infinity aware.
        await Value.create({"at_plain": MAX_UTC, "at_tz": MIN_UTC})
        await Value.create({"at_plain": MIN_UTC, "at_tz": MAX_UTC})
        with count_queries() as q:
            rows = await Value.query().order_by("at_tz", "desc").limit(1)
        assert "CASE" not in q.sqls[0].upper()
        assert (rows[0].at_plain, rows[0].at_tz) == (MIN_UTC, MAX_UTC)
        assert rows[0].at_tz.tzinfo is UTC and rows[0].at_plain.tzinfo is UTC
        streamed = [v async for v in Value.query().order_by("at_tz").stream()]
        assert [(v.at_plain, v.at_tz) for v in streamed] == [(MAX_UTC, MIN_UTC), (MIN_UTC, MAX_UTC)]
        await Value.query().delete()

    async def test_extremes_among_finite_rows(self, fid: Database, fast_paths: bool) -> None:
        # The lean path rebuilds only the rows holding an infinity (a naive value from
        # asyncpg) and keeps the others as the driver gave them: every value comes back aware
        # and equal to what was written, whichever rows hold the extremes.
        written = [
            {"at_plain": MAX_UTC, "at_tz": datetime(2024, 5, 1, 12, 0, tzinfo=UTC)},
            {"at_plain": datetime(2023, 1, 2, 3, 4, 5, 6, tzinfo=UTC), "at_tz": MIN_UTC},
            {"at_plain": datetime(2020, 2, 29, tzinfo=UTC), "at_tz": None},
            {"at_plain": None, "at_tz": MAX_UTC},
        ]
        created = [await Value.create(row) for row in written]
        read = await Value.query().order_by("id")
        assert [(v.at_plain, v.at_tz) for v in read] == [
            (row["at_plain"], row["at_tz"]) for row in written
        ]
        for v in read:
            for value in (v.at_plain, v.at_tz):
                assert value is None or value.tzinfo is UTC
        assert [v.id for v in read] == [c.id for c in created]
        # Only the timestamptz column (PostgreSQL: the one processor is the naive-only check).
        tz_only = await Value.query().select("id", "at_tz").order_by("id")
        assert [v.at_tz for v in tz_only] == [row["at_tz"] for row in written]
        assert all(v.at_tz is None or v.at_tz.tzinfo is UTC for v in tz_only)
        await Value.query().delete()

    async def test_unrepresentable_in_utc_is_refused(self, fid: Database) -> None:
        east = datetime.min.replace(tzinfo=IST)  # 5:30 before year 1 in UTC
        west = datetime.max.replace(tzinfo=timezone(timedelta(hours=-1)))
        for value in (east, west):
            await TestNotANumber._refused(fid, "at_tz", value, "outside years 1-9999")
