"""Concurrent writers (issue 12, finding 4): SQLite file databases run in WAL mode with a busy
timeout and begin transactions ``IMMEDIATE``, so concurrent read-modify-write transactions and
concurrent many-to-many ``sync`` calls all commit on the default pool. The same targets run on
PostgreSQL and MariaDB, where ``for_update()`` really locks the row.

The SQLite runs use a dedicated file database under ``tmp_path`` (a connection of its own, with
the default pool); PostgreSQL and MariaDB use a second connection to the test database.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from lucid_orm import LucidError, QueryError, column, db, many_to_many
from lucid_orm.database import Database
from lucid_orm.relations import ManyToMany
from tests import models
from tests.helpers import DialectConfig
from tests.schema import metadata

CONN = "concurrency"


def only_on(dialect: str, wanted: str, reason: str) -> None:
    if dialect != wanted:
        pytest.skip(reason)


class Skill(models.Skill):
    connection = CONN


class Member(models.BaseUser):
    connection = CONN
    table = "users"
    points: int | None = column()
    skills: ManyToMany[Skill] = many_to_many(
        lambda: Skill, pivot_table="skill_user", pivot_foreign_key="user_id"
    )


@pytest.fixture
async def concurrency(
    database: Database, dialect: str, dialect_config: DialectConfig, tmp_path: Path
) -> AsyncIterator[str]:
    """Adds the ``concurrency`` connection to the global ``db``: a fresh SQLite file (default
    pool, every option at its default) or a second pool on the PostgreSQL/MariaDB test
    database. Yields its URL."""
    url = f"sqlite:///{tmp_path / 'concurrency.db'}" if dialect == "sqlite" else dialect_config.url
    await db.close()  # the ``database`` fixture re-opens the dialect's connection afterwards
    db.configure(connection=dialect, connections={**dialect_config.connections, CONN: {"url": url}})
    if dialect == "sqlite":
        async with db.engine(CONN).begin() as conn:
            await conn.run_sync(metadata.create_all)
    try:
        yield url
    finally:
        await db.close()


async def read_points(member_id: int) -> int:
    rows = await db.from_("users", connection=CONN).select("points").where("id", member_id)
    return int(rows[0]["points"])


class TestReadModifyWrite:
    async def test_50_concurrent_for_update_transactions_all_commit(
        self, concurrency: str, dialect: str
    ) -> None:
        member = await Member.create({"username": "counter", "points": 0})

        async def bump() -> None:
            async with db.transaction(connection=CONN) as trx:
                fresh = await Member.query(client=trx).for_update().where("id", member.id).first()
                assert fresh is not None
                fresh.points = (fresh.points or 0) + 1
                await fresh.save()

        results = await asyncio.gather(*(bump() for _ in range(50)), return_exceptions=True)
        assert [r for r in results if r is not None] == []
        assert await read_points(member.id) == 50

    async def test_lock_for_update_serialises_writers(self, concurrency: str) -> None:
        member = await Member.create({"username": "counter", "points": 0})

        async def bump(fresh: Member) -> None:
            fresh.points = (fresh.points or 0) + 1
            await fresh.save()

        results = await asyncio.gather(
            *(member.lock_for_update(bump) for _ in range(30)), return_exceptions=True
        )
        assert [r for r in results if r is not None] == []
        assert await read_points(member.id) == 30


@pytest.fixture
async def pivot_index(concurrency: str, dialect: str) -> AsyncIterator[None]:
    """On MariaDB, an index on the pivot's foreign key: without it InnoDB locks every pivot
    row a sync's DELETE scans (next-key locks), and concurrent syncs of different parents
    deadlock (error 1213) — a schema matter, documented with the guarantee."""
    if dialect != "mysql":
        yield
        return
    await db.raw_query("create index conc_skill_user on skill_user (user_id, skill_id)")
    try:
        yield
    finally:
        await db.raw_query("drop index conc_skill_user on skill_user")


class TestConcurrentSync:
    async def test_20_concurrent_syncs_on_different_parents(
        self, concurrency: str, pivot_index: None
    ) -> None:
        skills = [await Skill.create({"name": f"skill{i}"}) for i in range(6)]
        members = [await Member.create({"username": f"m{i}", "points": 0}) for i in range(20)]
        # Every parent starts with two links, so each sync deletes as well as inserts.
        for member in members:
            await member.related("skills").attach([skills[0].id, skills[1].id])
        wanted = {
            m.id: sorted({skills[i % 6].id, skills[(i + 2) % 6].id, skills[(i + 3) % 6].id})
            for i, m in enumerate(members)
        }
        results = await asyncio.gather(
            *(m.related("skills").sync(wanted[m.id]) for m in members), return_exceptions=True
        )
        assert [r for r in results if r is not None] == []
        rows = await db.from_("skill_user", connection=CONN).select("user_id", "skill_id")
        found: dict[int, list[int]] = {}
        for row in rows:
            found.setdefault(row["user_id"], []).append(row["skill_id"])
        assert {k: sorted(v) for k, v in found.items()} == wanted
        assert len(rows) == 60  # exactly the synced links, no duplicates


async def pragma(name: str, connection: str = CONN, database: Database = db) -> Any:
    rows = await database.raw_query(f"PRAGMA {name}", connection=connection)
    return next(iter(rows[0].values()))


class TestSQLiteSettings:
    async def test_file_database_defaults_to_wal_and_a_5_second_busy_timeout(
        self, concurrency: str, dialect: str
    ) -> None:
        only_on(dialect, "sqlite", "WAL and the busy timeout are SQLite settings")
        assert await pragma("journal_mode") == "wal"
        assert await pragma("busy_timeout") == 5000

    async def test_busy_timeout_is_configurable(self, tmp_path: Path) -> None:
        private = Database()
        url = f"sqlite:///{tmp_path / 'busy.db'}"
        private.configure(connections={"s": {"url": url, "busy_timeout_ms": 250}})
        try:
            assert await pragma("busy_timeout", "s", private) == 250
        finally:
            await private.close()

    async def test_wal_can_be_turned_off(self, tmp_path: Path) -> None:
        private = Database()
        url = f"sqlite:///{tmp_path / 'nowal.db'}"
        private.configure(connections={"s": {"url": url, "wal": False}})
        try:
            assert await pragma("journal_mode", "s", private) == "delete"
        finally:
            await private.close()

    async def test_memory_database_has_no_wal(self) -> None:
        private = Database()
        private.configure(connections={"m": {"url": "sqlite://:memory:"}})
        try:
            assert await pragma("journal_mode", "m", private) == "memory"
        finally:
            await private.close()

    @pytest.mark.parametrize("value", [-1, 1.5, "5000", True])
    async def test_bad_busy_timeout_is_refused(self, tmp_path: Path, value: Any) -> None:
        private = Database()
        url = f"sqlite:///{tmp_path / 'bad.db'}"
        private.configure(connections={"s": {"url": url, "busy_timeout_ms": value}})
        try:
            with pytest.raises(LucidError) as info:
                await private.raw_query("select 1")
            assert info.value.code == "E_INVALID_CONFIG"
            assert "busy_timeout_ms" in info.value.message
        finally:
            await private.close()

    async def test_file_database_reads_through_a_128_mib_memory_map(
        self, concurrency: str, dialect: str
    ) -> None:
        only_on(dialect, "sqlite", "the memory map is a SQLite setting")
        assert await pragma("mmap_size") == 128 * 1024 * 1024
        # Every connection of the pool, those of lean reads and streams included.
        rows = [r async for r in db.from_("users", connection=CONN).select("id").stream()]
        assert rows == []
        assert await db.from_("users", connection=CONN).select("id") == []

    @pytest.mark.parametrize("value", [0, 4096])
    async def test_the_memory_map_is_configurable(self, tmp_path: Path, value: int) -> None:
        private = Database()
        url = f"sqlite:///{tmp_path / 'mmap.db'}"
        private.configure(connections={"s": {"url": url, "mmap_size": value}})
        try:
            assert await pragma("mmap_size", "s", private) == value
        finally:
            await private.close()

    @pytest.mark.parametrize("value", [-1, 1.5, "4096", True])
    async def test_bad_memory_map_size_is_refused(self, tmp_path: Path, value: Any) -> None:
        private = Database()
        url = f"sqlite:///{tmp_path / 'bad.db'}"
        private.configure(connections={"s": {"url": url, "mmap_size": value}})
        try:
            with pytest.raises(LucidError) as info:
                await private.raw_query("select 1")
            assert info.value.code == "E_INVALID_CONFIG"
            assert "mmap_size" in info.value.message
        finally:
            await private.close()

    async def test_transactions_take_the_write_lock_up_front(self, tmp_path: Path) -> None:
        """A transaction that has only read already holds the write lock (BEGIN IMMEDIATE): a
        second one waits for it (here: gives up after its short busy timeout, with a
        ``QueryError``) instead of both reading and then failing on their writes."""
        url = f"sqlite:///{tmp_path / 'lock.db'}"
        holder, waiter = Database(), Database()
        holder.configure(connections={"s": {"url": url}})
        waiter.configure(connections={"s": {"url": url, "busy_timeout_ms": 100}})
        try:
            await holder.raw_query("create table t (x integer)")
            trx = await holder.transaction()
            await trx.from_("t").count_rows()  # a read only
            with pytest.raises(QueryError) as info:
                await waiter.transaction()
            assert "database is locked" in info.value.message
            assert info.value.message.startswith("Cannot begin a transaction")
            assert isinstance(info.value.original, sqlite3.OperationalError)
            # Reads outside a transaction are not blocked (WAL).
            assert await waiter.from_("t").count_rows() == 0
            await trx.table("t").insert({"x": 1})
            await trx.commit()
            async with waiter.transaction() as second:
                await second.table("t").insert({"x": 2})
            assert await holder.from_("t").count_rows() == 2
        finally:
            await holder.close()
            await waiter.close()
