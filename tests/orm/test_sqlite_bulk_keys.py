"""Generated keys of ``create_many`` (issue 12, finding 9): every instance gets the key of its
own row, whatever order the database hands keys back in.

SQLite's multi-row ``INSERT … RETURNING`` promises no order, and once a table holds rowid
2**63-1 SQLite gives new rows random free rowids: sorted keys then no longer follow the rows.
Each test writes through ``create_many``, reads every row back independently (by key, all
columns) and checks that ``save()`` after a change updates the instance's own row. The
dialects differ only at the key limit: SQLite picks random rowids (rows still get their own
keys), PostgreSQL's sequence ignores explicit keys, MariaDB refuses to go past the limit.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table, text

from lucid_orm import BaseModel, LucidError, QueryError, column
from lucid_orm.database import Database, QueryEvent
from tests.helpers import count_queries

MAX_KEY = 2**63 - 1

bk_metadata = MetaData()
# BIGINT keys (2**63-1 must fit); on SQLite an INTEGER PRIMARY KEY, the rowid itself.
_Key = BigInteger().with_variant(Integer(), "sqlite")


def _columns() -> list[Column[Any]]:
    return [
        Column("id", _Key, primary_key=True, autoincrement=True),
        Column("title", String(50), nullable=False),
        Column("n", Integer, nullable=True),
        Column("note", String(50), nullable=True),
    ]


bk_items = Table("bk_items", bk_metadata, *_columns())
# AUTOINCREMENT on SQLite: keys past every key ever used, SQLITE_FULL at the limit.
bk_auto = Table("bk_auto", bk_metadata, *_columns(), sqlite_autoincrement=True)

_UUID_DEFAULT = {
    "sqlite": "(lower(hex(randomblob(16))))",
    "postgresql": "(gen_random_uuid()::text)",
    "mysql": "(uuid())",
}


@pytest.fixture
async def bk(database: Database, dialect: str) -> AsyncIterator[Database]:
    """``database`` plus fresh tables of this file (fresh so sequences start over), and a
    text-keyed table whose key the database makes."""
    codes = Table(
        "bk_codes",
        MetaData(),
        Column("code", String(36), primary_key=True, server_default=text(_UUID_DEFAULT[dialect])),
        Column("title", String(50), nullable=False),
        Column("n", Integer, nullable=True),
    )
    tables = [bk_items, bk_auto]

    async def drop() -> None:
        async with database.engine().begin() as conn:
            await conn.run_sync(lambda c: bk_metadata.drop_all(c, tables=tables))
            await conn.run_sync(lambda c: codes.drop(c, checkfirst=True))

    await drop()
    async with database.engine().begin() as conn:
        await conn.run_sync(lambda c: bk_metadata.create_all(c, tables=tables))
        await conn.run_sync(lambda c: codes.create(c))
    try:
        yield database
    finally:
        await drop()


class BkItem(BaseModel):
    table = "bk_items"
    id: int = column(is_primary=True)
    title: str = column()
    n: int | None = column()
    note: str | None = column()


class BkAuto(BaseModel):
    table = "bk_auto"
    id: int = column(is_primary=True)
    title: str = column()
    n: int | None = column()
    note: str | None = column()


class BkCode(BaseModel):
    table = "bk_codes"
    code: str = column(is_primary=True)
    title: str = column()
    n: int | None = column()


def inserts(events: list[QueryEvent]) -> list[QueryEvent]:
    return [e for e in events if e.sql.lstrip().upper().startswith("INSERT")]


def payload(count: int, prefix: str = "t") -> list[dict[str, Any]]:
    # Titles descending and distinct: a key handed to the wrong instance shows in any column.
    return [
        {"title": f"{prefix}{count - i:03d}", "n": i, "note": f"note {i}"} for i in range(count)
    ]


async def rows_by_key(database: Database, table: str, key: str = "id") -> dict[Any, dict[str, Any]]:
    rows = await database.from_(table).select("*")
    return {r[key]: dict(r) for r in rows}


async def assert_own_rows(database: Database, instances: list[Any], table: str) -> None:
    """Each instance's key reads back its own row, every column equal; keys distinct."""
    stored = await rows_by_key(database, table)
    keys = [inst.id for inst in instances]
    assert len(set(keys)) == len(keys)
    for inst in instances:
        assert stored[inst.id] == {
            "id": inst.id,
            "title": inst.title,
            "n": inst.n,
            "note": inst.note,
        }
        assert inst.is_persisted and not inst.is_dirty


async def assert_saves_hit_own_rows(database: Database, instances: list[Any], table: str) -> None:
    """``save()`` after a change updates the instance's own row and no other."""
    before = await rows_by_key(database, table)
    for inst in instances:
        inst.note = f"saved {inst.title}"
        await inst.save()
    after = await rows_by_key(database, table)
    expected = dict(before)
    for inst in instances:
        expected[inst.id] = {**before[inst.id], "note": f"saved {inst.title}"}
    assert after == expected


class TestKeysAtTheRowidLimit:
    @pytest.mark.parametrize("below", [0, 5], ids=["at_limit", "reaching_limit"])
    async def test_every_instance_gets_its_own_row(
        self, bk: Database, dialect: str, below: int
    ) -> None:
        # The table's largest key is 2**63-1 (or 2**63-6: the batch reaches the limit after 5
        # rows). SQLite then picks random rowids for the new rows.
        await bk.table("bk_items").insert({"id": MAX_KEY - below, "title": "limit", "n": -1})
        if dialect == "mysql":
            # MariaDB's AUTO_INCREMENT continues from the largest key: it refuses to pass
            # 2**63-1 (the statement fails, nothing of it is written).
            with pytest.raises(QueryError):
                await BkItem.create_many(payload(20))
            assert list(await rows_by_key(bk, "bk_items")) == [MAX_KEY - below]
            return
        with count_queries() as q:
            items = await BkItem.create_many(payload(20))
        assert len(items) == 20
        await assert_own_rows(bk, items, "bk_items")
        assert len(await rows_by_key(bk, "bk_items")) == 21
        if dialect == "sqlite":
            # The multi-row statement saw a key out of order and wrote nothing; the rows went
            # in one per statement, each key read from its own INSERT.
            statements = inserts(q.events)
            assert len(statements) == 20
            assert all(len(e.bindings) == 3 for e in statements)
            keys = sorted(item.id for item in items)
            assert keys != list(range(keys[0], keys[0] + 20))  # really not counted up
        await assert_saves_hit_own_rows(bk, items, "bk_items")

    async def test_related_writes_after_the_limit(self, bk: Database, dialect: str) -> None:
        if dialect == "mysql":
            pytest.skip("MariaDB refuses keys past 2**63-1 (test_every_instance_gets_its_own_row)")
        await bk.table("bk_items").insert({"id": MAX_KEY, "title": "limit", "n": -1})
        items = await BkItem.create_many(payload(20))
        titles = {item.id: item.title for item in items}
        # Deleting and refreshing by key also finds each instance's own row.
        for item in items[::2]:
            await item.delete()
        for item in items[1::2]:
            await bk.from_("bk_items").where("id", item.id).update({"note": "changed"})
            await item.refresh()
            assert (item.title, item.note) == (titles[item.id], "changed")
        remaining = await rows_by_key(bk, "bk_items")
        assert sorted(remaining) == sorted([MAX_KEY] + [item.id for item in items[1::2]])
        assert {k: r["title"] for k, r in remaining.items() if k != MAX_KEY} == {
            i.id: titles[i.id] for i in items[1::2]
        }


class TestCountedKeys:
    async def test_ascending_keys_take_one_statement(self, bk: Database, dialect: str) -> None:
        # Keys don't start at 1 and have gaps below: the batch still counts up from the top.
        seeded = await BkItem.create_many(payload(5, "seed"))
        await seeded[1].delete()
        await seeded[4].delete()
        with count_queries() as q:
            items = await BkItem.create_many(payload(300))
        statements = inserts(q.events)
        if dialect == "sqlite":
            assert len(statements) == 1
            assert len(statements[0].bindings) == 300 * 3
            assert q.count == 1
        await assert_own_rows(bk, items, "bk_items")
        await assert_saves_hit_own_rows(bk, items[:20], "bk_items")

    async def test_autoincrement_keys_past_deleted_ones(self, bk: Database, dialect: str) -> None:
        # AUTOINCREMENT: new keys continue past deleted ones (sqlite_sequence), not from the
        # largest key in the table; they still ascend with the rows.
        seeded = await BkAuto.create_many(payload(10, "seed"))
        for item in seeded[3:]:
            await item.delete()
        with count_queries() as q:
            items = await BkAuto.create_many(payload(50))
        if dialect == "sqlite":
            assert len(inserts(q.events)) == 1
        assert min(item.id for item in items) > max(item.id for item in seeded)
        await assert_own_rows(bk, items, "bk_auto")
        await assert_saves_hit_own_rows(bk, items, "bk_auto")

    async def test_autoincrement_at_the_limit_fails_writing_nothing(
        self, bk: Database, dialect: str
    ) -> None:
        if dialect == "postgresql":
            pytest.skip("PostgreSQL's sequence ignores explicit keys: nothing to exhaust")
        await bk.table("bk_auto").insert({"id": MAX_KEY, "title": "limit", "n": -1})
        with pytest.raises(QueryError) as caught:
            await BkAuto.create_many(payload(20))
        assert isinstance(caught.value, LucidError)
        if dialect == "sqlite":
            assert isinstance(caught.value.original, sqlite3.OperationalError)
            assert "full" in str(caught.value).lower()  # SQLITE_FULL: "database or disk is full"
        assert list(await rows_by_key(bk, "bk_auto")) == [MAX_KEY]


class TestMixedBatches:
    async def test_explicit_keys_mixed_with_generated_ones(self, bk: Database) -> None:
        # Explicit keys above and below the generated ones, out of order, between rows whose
        # keys the database makes.
        rows: list[dict[str, Any]] = payload(12)
        rows[2]["id"] = 5000
        rows[3]["id"] = 4000
        rows[7]["id"] = 6000
        items = await BkItem.create_many(rows)
        assert [item.id for item in items][2:4] == [5000, 4000]
        assert items[7].id == 6000
        await assert_own_rows(bk, items, "bk_items")
        await assert_saves_hit_own_rows(bk, items, "bk_items")

    async def test_explicit_limit_key_inside_the_batch(self, bk: Database, dialect: str) -> None:
        if dialect == "mysql":
            pytest.skip("MariaDB refuses keys past 2**63-1 (test_every_instance_gets_its_own_row)")
        rows = payload(15)
        rows[4]["id"] = MAX_KEY  # the rows after it get random rowids on SQLite
        items = await BkItem.create_many(rows)
        assert items[4].id == MAX_KEY
        await assert_own_rows(bk, items, "bk_items")
        await assert_saves_hit_own_rows(bk, items, "bk_items")

    # The model's table doesn't know the key's server default; SQLAlchemy warns about it.
    @pytest.mark.filterwarnings("ignore:Column 'bk_codes.code' is marked")
    async def test_text_keys_the_database_makes(self, bk: Database) -> None:
        rows = [{"title": f"c{9 - i}", "n": i} for i in range(10)]
        items = await BkCode.create_many(rows)
        stored = await rows_by_key(bk, "bk_codes", "code")
        assert len({item.code for item in items}) == 10
        for item in items:
            assert stored[item.code] == {"code": item.code, "title": item.title, "n": item.n}
        for item in items:
            item.n = (item.n or 0) + 100
            await item.save()
        stored = await rows_by_key(bk, "bk_codes", "code")
        assert {k: r["n"] for k, r in stored.items()} == {i.code: i.n for i in items}
        assert all(r["title"] == f"c{9 - (r['n'] - 100)}" for r in stored.values())
