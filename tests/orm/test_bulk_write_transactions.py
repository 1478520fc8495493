"""The implicit transaction of a bulk write (``update_many``, ``create_many``, ``upsert_many``):
on SQLite its BEGIN IMMEDIATE goes to the driver connection directly (``SqliteDialect.begin``,
one trip to aiosqlite's thread instead of SQLAlchemy's three), which must change nothing one can
observe: the write lock taken up front, rollback of rows and instances on a violated
constraint, a savepoint inside a user's transaction, cancellation while BEGIN waits for the
lock, concurrent writers on one file, and no transaction control in the query events. Every
test runs with the fast paths on and off (``fast_reads``)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import ClassVar

import pytest

from lucid_orm import BaseModel, IntegrityError, QueryError, before, column, db, has_many
from lucid_orm.database import Database
from lucid_orm.relations import HasMany
from tests.helpers import DialectConfig, count_queries
from tests.schema import metadata

CONN = "bulk_trx"


class Thing(BaseModel):
    """``things.name`` is NOT NULL and unique: a reliable way to make a write fail."""

    connection = CONN
    table = "things"
    id: int = column(is_primary=True)
    name: str | None = column()
    amount: int | None = column()


@pytest.fixture(params=[True, False], ids=["fast", "slow"])
async def bulk_db(
    request: pytest.FixtureRequest,
    database: Database,
    dialect: str,
    dialect_config: DialectConfig,
    tmp_path: Path,
) -> AsyncIterator[str]:
    """The ``bulk_trx`` connection on the global ``db``: on SQLite a fresh file database
    (default pool), elsewhere a second pool on the test database; fast paths on or off.
    Yields the dialect."""
    FAST[0] = request.param
    url = f"sqlite:///{tmp_path / 'bulk.db'}" if dialect == "sqlite" else dialect_config.url
    await db.close()  # the ``database`` fixture re-opens the dialect's connection afterwards
    db.configure(
        connection=dialect,
        connections={**dialect_config.connections, CONN: {"url": url, "fast_reads": request.param}},
    )
    if dialect == "sqlite":
        async with db.engine(CONN).begin() as conn:
            await conn.run_sync(metadata.create_all)
    try:
        yield dialect
    finally:
        await db.close()


class LockProbe(Thing):
    """Its before:update hook tries to take SQLite's write lock from another connection."""

    path: ClassVar[Path]
    seen: ClassVar[list[str]] = []

    @before("update")
    def probe(self) -> None:
        if LockProbe.seen:
            return
        other = sqlite3.connect(LockProbe.path, timeout=0)
        try:
            other.execute("BEGIN IMMEDIATE")
            LockProbe.seen.append("got the lock")
            other.rollback()
        except sqlite3.OperationalError as exc:
            LockProbe.seen.append(str(exc))
        finally:
            other.close()


class Counted(Thing):
    """Counts its before:update hook's calls."""

    calls: ClassVar[int] = 0

    @before("update")
    def count(self) -> None:
        Counted.calls += 1


class CreateProbe(Thing):
    """Its before:create hook tries to take SQLite's write lock from another connection."""

    seen: ClassVar[list[str]] = []

    @before("create")
    def probe(self) -> None:
        if not CreateProbe.seen:
            CreateProbe.seen.append(_try_lock(LockProbe.path))


class CountedCreate(Thing):
    """Counts its before:create hook's calls."""

    calls: ClassVar[int] = 0

    @before("create")
    def count(self) -> None:
        CountedCreate.calls += 1


class Task(BaseModel):
    connection = CONN
    table = "hm_tasks"
    id: int = column(is_primary=True)
    user_id: int | None = column()
    name: str = column()
    points: int | None = column()


class Owner(BaseModel):
    connection = CONN
    table = "users"
    id: int = column(is_primary=True)
    username: str | None = column()
    tasks: HasMany[Task] = has_many(lambda: Task, foreign_key="user_id")


class ProbedOwner(Owner):
    """Its before:save hook (the parent's save of a relation write) probes the lock."""

    seen: ClassVar[list[str]] = []

    @before("save")
    def probe(self) -> None:
        ProbedOwner.seen.append(_try_lock(LockProbe.path))


def _try_lock(path: Path) -> str:
    other = sqlite3.connect(path, timeout=0)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.rollback()
        return "got the lock"
    except sqlite3.OperationalError as exc:
        return str(exc)
    finally:
        other.close()


# Whether the current ``bulk_db`` runs with the fast paths (its parameter).
FAST = [True]


async def _rows() -> list[tuple[int, str, int | None]]:
    found = await db.from_("things", connection=CONN).select("id", "name", "amount").order_by("id")
    return [(r["id"], r["name"], r["amount"]) for r in found]


async def _seed() -> list[Thing]:
    await Thing.create_many([{"name": f"t{i}", "amount": i} for i in range(1, 6)])
    return await Thing.query().order_by("id")


def _sqlite_only(dialect: str) -> None:
    if dialect != "sqlite":
        pytest.skip("SQLite's write lock and file database")


class TestRollback:
    async def test_a_violated_constraint_leaves_rows_and_instances_as_they_were(
        self, bulk_db: str
    ) -> None:
        things = await _seed()
        before = await _rows()
        for thing in things:
            thing.amount = (thing.amount or 0) * 10
        things[-1].name = "t1"  # unique violation on the last row
        with pytest.raises(IntegrityError):
            await Thing.update_many(things)
        assert await _rows() == before
        assert all(t.is_dirty for t in things)
        assert things[0].dirty == {"amount": 10}
        # The connection is clean: the same instances write once fixed.
        things[-1].name = "t5"
        await Thing.update_many(things)
        assert [r[2] for r in await _rows()] == [10, 20, 30, 40, 50]
        assert not any(t.is_dirty for t in things)

    async def test_a_failed_create_many_inserts_nothing_and_leaves_instances_new(
        self, bulk_db: str
    ) -> None:
        await _seed()
        before = await _rows()
        with pytest.raises(IntegrityError):
            await Thing.create_many([{"name": "n1"}, {"name": "t2"}])
        assert await _rows() == before
        made = await Thing.create_many([{"name": "n1"}, {"name": "n2"}])
        assert [m.is_persisted for m in made] == [True, True]
        assert len(await _rows()) == 7

    async def test_a_failed_upsert_changes_no_row(self, bulk_db: str) -> None:
        await _seed()
        before = await _rows()
        with pytest.raises(QueryError):
            # ``name`` NOT NULL: the new row fails, the merged one is not written either.
            await Thing.upsert_many(
                [{"name": "t1", "amount": 100}, {"name": None, "amount": 1}],
                conflict="name",
                merge=["amount"],
            )
        assert await _rows() == before


class TestInsideAUserTransaction:
    async def test_update_many_in_a_rolled_back_transaction_writes_nothing(
        self, bulk_db: str
    ) -> None:
        things = await _seed()
        before = await _rows()
        async with db.transaction(connection=CONN) as trx:
            for thing in things:
                thing.amount = 0
            await Thing.update_many(things, client=trx)
            assert [r["amount"] for r in await trx.from_("things").select("amount")] == [0] * 5
            await trx.rollback()
        assert await _rows() == before
        assert all(t.dirty == {"amount": 0} for t in things)

    async def test_a_failed_bulk_write_rolls_back_to_its_savepoint_only(self, bulk_db: str) -> None:
        things = await _seed()
        async with db.transaction(connection=CONN) as trx:
            await trx.table("things").insert({"name": "kept", "amount": 0})
            for thing in things:
                thing.amount = -1
            things[0].name = "t2"
            with pytest.raises(IntegrityError):
                await Thing.update_many(things, client=trx)
        rows = await _rows()
        assert [r[1] for r in rows] == ["t1", "t2", "t3", "t4", "t5", "kept"]
        assert [r[2] for r in rows[:5]] == [1, 2, 3, 4, 5]
        assert things[1].dirty == {"amount": -1}


class TestEvents:
    async def test_bulk_writes_report_their_statements_and_no_transaction_control(
        self, bulk_db: str
    ) -> None:
        things = await _seed()
        for thing in things:
            thing.amount = 7
        with count_queries(db) as q:
            await Thing.update_many(things)
            await Thing.create_many([{"name": "x"}, {"name": "y"}])
            await Thing.upsert_many([{"name": "x", "amount": 1}], conflict="name")
        assert q.count == 3, q.sqls
        assert [s.split()[0].upper() for s in q.sqls] == ["UPDATE", "INSERT", "INSERT"]


class TestSqliteWriteLock:
    async def test_the_implicit_transaction_holds_the_write_lock_from_its_begin(
        self, bulk_db: str, tmp_path: Path
    ) -> None:
        """While a bulk write's before hook runs (after BEGIN, before the write), another
        connection can't take the write lock: the BEGIN was IMMEDIATE."""
        _sqlite_only(bulk_db)
        await _seed()
        LockProbe.path = tmp_path / "bulk.db"
        LockProbe.seen = []
        probes = await LockProbe.query().order_by("id")
        for p in probes:
            p.amount = 0
        await LockProbe.update_many(probes)
        assert LockProbe.seen == ["database is locked"]
        assert [r[2] for r in await _rows()] == [0] * 5

    async def test_a_begin_that_waits_for_the_lock_then_gives_up_maps_the_error(
        self, bulk_db: str, tmp_path: Path
    ) -> None:
        _sqlite_only(bulk_db)
        things = await _seed()
        await db.close()
        db.configure(
            connections={
                CONN: {
                    "url": f"sqlite:///{tmp_path / 'bulk.db'}",
                    "busy_timeout_ms": 50,
                    "fast_reads": FAST[0],
                }
            }
        )
        holder = sqlite3.connect(tmp_path / "bulk.db")
        holder.isolation_level = None
        holder.execute("BEGIN IMMEDIATE")
        try:
            for thing in things:
                thing.amount = 0
            with pytest.raises(QueryError) as info:
                await Thing.update_many(things)
            assert info.value.message.startswith("Cannot begin a transaction")
            assert "database is locked" in info.value.message
            assert all(t.dirty == {"amount": 0} for t in things)
            # (one statement: in a transaction of its own on the fast path, else autocommit)
            with pytest.raises(QueryError, match="database is locked"):
                await Thing.upsert_many([{"name": "t1", "amount": 9}], conflict="name")
        finally:
            holder.rollback()
            holder.close()
        await Thing.update_many(things)
        assert [r[2] for r in await _rows()] == [0] * 5
        await Thing.upsert_many([{"name": "t1", "amount": 9}], conflict="name")
        assert [r[2] for r in await _rows()] == [9, 0, 0, 0, 0]

    async def test_a_begin_that_fails_runs_no_hook_and_fails_with_nothing_to_write(
        self, bulk_db: str, tmp_path: Path
    ) -> None:
        """The BEGIN's error comes before any before hook runs, and also when no instance
        is dirty (the transaction then only begins and commits)."""
        _sqlite_only(bulk_db)
        await _seed()
        await db.close()
        db.configure(
            connections={
                CONN: {
                    "url": f"sqlite:///{tmp_path / 'bulk.db'}",
                    "busy_timeout_ms": 50,
                    "fast_reads": FAST[0],
                }
            }
        )
        Counted.calls = 0
        counted = await Counted.query().order_by("id")
        holder = sqlite3.connect(tmp_path / "bulk.db")
        holder.isolation_level = None
        holder.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(QueryError, match=r"^Cannot begin a transaction"):
                await Counted.update_many(counted)  # nothing dirty
            counted[0].amount = 0
            with pytest.raises(QueryError, match=r"^Cannot begin a transaction"):
                await Counted.update_many(counted)
            assert Counted.calls == 0
            assert counted[0].dirty == {"amount": 0}
        finally:
            holder.rollback()
            holder.close()
        await Counted.update_many(counted)
        assert Counted.calls == 5
        assert [r[2] for r in await _rows()] == [0, 2, 3, 4, 5]

    async def test_a_task_cancelled_while_its_begin_waits_leaves_no_lock_behind(
        self, bulk_db: str, tmp_path: Path
    ) -> None:
        _sqlite_only(bulk_db)
        things = await _seed()
        holder = sqlite3.connect(tmp_path / "bulk.db", check_same_thread=False)
        holder.isolation_level = None
        holder.execute("BEGIN IMMEDIATE")
        for thing in things:
            thing.amount = 0
        task = asyncio.ensure_future(Thing.update_many(things))
        await asyncio.sleep(0.2)  # BEGIN IMMEDIATE is waiting for the holder's lock
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        holder.rollback()
        holder.close()
        assert all(t.dirty == {"amount": 0} for t in things)
        assert [r[2] for r in await _rows()] == [1, 2, 3, 4, 5]
        # No connection of the pool is left inside a transaction holding the lock.
        checker = sqlite3.connect(tmp_path / "bulk.db", timeout=2)
        try:
            checker.execute("BEGIN IMMEDIATE")
            checker.rollback()
        finally:
            checker.close()
        await Thing.update_many(things)
        assert [r[2] for r in await _rows()] == [0] * 5

    async def test_create_many_holds_the_write_lock_when_its_before_hooks_run(
        self, bulk_db: str, tmp_path: Path
    ) -> None:
        """create_many's BEGIN may be left running on the driver while the rows are
        prepared, but a before hook (user code) runs only once it has taken the lock."""
        _sqlite_only(bulk_db)
        LockProbe.path = tmp_path / "bulk.db"
        CreateProbe.seen = []
        made = await CreateProbe.create_many([{"name": "p1"}, {"name": "p2"}])
        assert CreateProbe.seen == ["database is locked"]
        assert [m.is_persisted for m in made] == [True, True]
        assert [r[1] for r in await _rows()] == ["p1", "p2"]

    async def test_a_relation_create_many_waits_for_begin_before_the_parents_hooks(
        self, bulk_db: str, tmp_path: Path
    ) -> None:
        _sqlite_only(bulk_db)
        LockProbe.path = tmp_path / "bulk.db"
        owner = await Owner.create({"username": "o"})
        probed = await ProbedOwner.find_or_fail(owner.id)
        ProbedOwner.seen = []
        tasks = await probed.related("tasks").create_many([{"name": "a"}, {"name": "b"}])
        assert ProbedOwner.seen == ["database is locked"]
        assert [(t.user_id, t.is_persisted) for t in tasks] == [(owner.id, True)] * 2

    async def test_a_create_many_whose_begin_fails_runs_no_hook_and_writes_nothing(
        self, bulk_db: str, tmp_path: Path
    ) -> None:
        _sqlite_only(bulk_db)
        await _seed()
        await db.close()
        db.configure(
            connections={
                CONN: {
                    "url": f"sqlite:///{tmp_path / 'bulk.db'}",
                    "busy_timeout_ms": 50,
                    "fast_reads": FAST[0],
                }
            }
        )
        owner = await Owner.create({"username": "o"})
        CountedCreate.calls = 0
        holder = sqlite3.connect(tmp_path / "bulk.db")
        holder.isolation_level = None
        holder.execute("BEGIN IMMEDIATE")
        try:
            rows = [{"name": "n1"}, {"name": "n2"}]
            for create, alone in (
                (lambda: CountedCreate.create_many(rows), False),
                # One column set: the general path (a transaction) takes it.
                (lambda: Thing.create_many(rows), False),
                # No hook, nothing to save first, two columns: one statement without a
                # transaction of the caller's (test_writes_alone.py); the write lock it
                # could not take is the statement's.
                (lambda: owner.related("tasks").create_many(rows), True),
            ):
                with count_queries(db) as q, pytest.raises(QueryError) as info:
                    await create()
                if alone:
                    assert (info.value.sql or "").upper().startswith("INSERT")
                else:
                    assert info.value.message.startswith("Cannot begin a transaction")
                assert "database is locked" in info.value.message
                # The INSERT queued behind the failed BEGIN did not run, nor was reported.
                assert q.count == 0, q.sqls
            assert CountedCreate.calls == 0
        finally:
            holder.rollback()
            holder.close()
        assert len(await _rows()) == 5
        made = await Thing.create_many(rows)
        assert [m.is_persisted for m in made] == [True, True]
        tasks = await owner.related("tasks").create_many([{"name": "a"}])
        assert tasks[0].is_persisted and tasks[0].user_id == owner.id

    async def test_a_task_cancelled_while_its_create_many_begin_waits_leaves_no_lock_behind(
        self, bulk_db: str, tmp_path: Path
    ) -> None:
        _sqlite_only(bulk_db)
        await _seed()
        holder = sqlite3.connect(tmp_path / "bulk.db", check_same_thread=False)
        holder.isolation_level = None
        holder.execute("BEGIN IMMEDIATE")
        things = [Thing(name="c1"), Thing(name="c2")]
        task = asyncio.ensure_future(Thing.create_many([{"name": "c1"}, {"name": "c2"}]))
        await asyncio.sleep(0.2)  # BEGIN IMMEDIATE is waiting for the holder's lock
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        holder.rollback()
        holder.close()
        assert len(await _rows()) == 5
        checker = sqlite3.connect(tmp_path / "bulk.db", timeout=2)
        try:
            checker.execute("BEGIN IMMEDIATE")
            checker.rollback()
        finally:
            checker.close()
        assert not any(t.is_persisted for t in things)
        made = await Thing.create_many([{"name": "c1"}, {"name": "c2"}])
        assert [m.is_persisted for m in made] == [True, True]

    async def test_concurrent_bulk_writers_on_one_file_all_commit(self, bulk_db: str) -> None:
        _sqlite_only(bulk_db)
        await Thing.create_many([{"name": f"w{i}", "amount": 0} for i in range(40)])
        things = await Thing.query().order_by("id")

        async def writer(part: list[Thing], value: int) -> None:
            for rnd in range(5):
                for thing in part:
                    thing.amount = value * 100 + rnd
                await Thing.update_many(part)

        await asyncio.gather(*(writer(things[i::8], i) for i in range(8)))
        rows = await _rows()
        assert [r[2] for r in rows] == [(i % 8) * 100 + 4 for i in range(40)]
