"""SQLite inline reads (``executor.fetch_sqlite``): a lean read runs on the event-loop thread
under a time budget; one that runs over it is interrupted and runs again on aiosqlite's worker
thread, as does one that would wait for a lock. The answers are those of the worker thread's;
every read is reported and its errors are the same. SQLite only: the other dialects have no
inline reads. Each test uses a fresh file database of its own (every option at its default)
beside one with ``inline_reads: False``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import sqlite as sqlite_dialect

from lucid_orm import LucidError, QueryError, belongs_to
from lucid_orm.database import Database, executor
from lucid_orm.database.events import QueryEvent
from lucid_orm.database.executor import (
    INLINE_BACKOFF,
    InlineStats,
    compile_static,
    fetch_sqlite,
    inline_stats,
    restore_busy_timeout,
)
from lucid_orm.relations import BelongsTo
from tests import models


class SizedPost(models.Post):
    table = "posts"
    user: BelongsTo[models.User] = belongs_to(lambda: models.User, foreign_key="user_id")


# Enough rows that a full scan with LIKE runs for far more than the 1 ms budget.
BIG = 200_000


@dataclass
class Pair:
    inline: Database
    worker: Database
    path: Path


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[Pair]:
    path = tmp_path / "inline.db"
    inline, worker = Database(), Database()
    # Both explicit, so that the pair holds under LUCID_FAST_PATHS=0 / LUCID_SQLITE_INLINE=0 too.
    url = f"sqlite:///{path}"
    inline.configure(
        connections={"default": {"url": url, "fast_reads": True, "inline_reads": True}}
    )
    worker.configure(
        connections={"default": {"url": url, "fast_reads": True, "inline_reads": False}}
    )
    await inline.raw_query("create table t (id integer primary key, v text, n integer)")
    await inline.raw_query(
        "insert into t (v, n) select 'row ' || x, x % 7 from (with recursive c(x) as "
        f"(select 1 union all select x + 1 from c where x < {BIG}) select x from c)"
    )
    # The first lean read of a checked-out connection runs on its worker thread (see
    # test_a_connection_s_first_read_runs_on_the_worker); the tests start after it.
    await short_read(inline, 1)
    await short_read(worker, 1)
    try:
        yield Pair(inline, worker, path)
    finally:
        await inline.close()
        await worker.close()


COUNTERS = ("inline", "interrupted", "busy", "worker")


def counts() -> InlineStats:
    return InlineStats(**{k: getattr(inline_stats, k) for k in COUNTERS})


def delta(before: InlineStats) -> dict[str, int]:
    now = counts()
    return {k: getattr(now, k) - getattr(before, k) for k in COUNTERS}


async def short_read(database: Database, ident: int) -> list[dict[str, Any]]:
    # A new turn of the event loop first: the read is then the first inline read of its turn,
    # which always runs inline (later ones of a long turn go to the worker).
    await asyncio.sleep(0)
    rows: list[dict[str, Any]] = await database.from_("t").select("id", "v", "n").where("id", ident)
    return rows


async def short_f(database: Database) -> list[dict[str, Any]]:
    await asyncio.sleep(0)
    rows: list[dict[str, Any]] = await database.from_("f").select("id").where("id", 1)
    return rows


async def long_read(database: Database) -> list[dict[str, Any]]:
    await asyncio.sleep(0)
    rows: list[dict[str, Any]] = await (
        database.from_("t").select("id", "n").where_like("v", "%77%").order_by("id")
    )
    return rows


class TestInlineReads:
    async def test_short_reads_run_inline_with_the_worker_s_answers(self, pair: Pair) -> None:
        before = counts()
        inline = [await short_read(pair.inline, i) for i in (1, 2, BIG, BIG + 1)]
        assert delta(before)["inline"] == 4
        before = counts()
        worker = [await short_read(pair.worker, i) for i in (1, 2, BIG, BIG + 1)]
        assert delta(before) == {"inline": 0, "interrupted": 0, "busy": 0, "worker": 0}
        assert inline == worker
        assert inline[0] == [{"id": 1, "v": "row 1", "n": 1}]
        assert inline[3] == []

    async def test_a_long_read_is_interrupted_and_completes_on_the_worker(self, pair: Pair) -> None:
        before = counts()
        rows = await long_read(pair.inline)
        assert delta(before) == {"inline": 0, "interrupted": 1, "busy": 0, "worker": 1}
        assert rows == await long_read(pair.worker)
        assert len(rows) > 1000
        # The statement shape now goes to the worker directly, for INLINE_BACKOFF runs.
        before = counts()
        again = await long_read(pair.inline)
        assert delta(before) == {"inline": 0, "interrupted": 0, "busy": 0, "worker": 1}
        assert again == rows
        # Other shapes still run inline.
        before = counts()
        await short_read(pair.inline, 3)
        assert delta(before)["inline"] == 1
        assert INLINE_BACKOFF > 1

    async def test_a_shape_that_keeps_running_over_the_budget_backs_off_longer(
        self, pair: Pair, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # One statement shape, long or short by its bound ``top`` (two size classes):
        # each inline attempt in a row of a class that runs over the budget doubles the runs
        # of that class sent straight to the worker; one that fits starts over. The short
        # class runs inline throughout.
        t = sa.table("t", sa.column("id"), sa.column("v"))
        stmt = sa.select(t.c.id).where(t.c.id <= sa.bindparam("top"), t.c.v.like("%77%"))
        entry = compile_static(stmt, sqlite_dialect.dialect())
        values = {"top": BIG}
        values.update({k: "%77%" for k in entry.positiontup if k != "top"})
        long = [values[k] for k in entry.positiontup]
        short = [10 if k == "top" else values[k] for k in entry.positiontup]
        driver = await aiosqlite.connect(pair.path, check_same_thread=False)
        direct = sqlite3.connect(pair.path)

        def skips() -> list[int]:
            assert entry.inline_backoff is not None
            return [state[0] for state in entry.inline_backoff.values()]

        try:
            expected_long = direct.execute(entry.sql, long).fetchall()
            assert len(expected_long) > 1000
            # The first read of a connection runs on the worker.
            assert list(await fetch_sqlite(driver, entry, entry.sql, long)) == expected_long
            seen = []
            for _ in range(3):
                await asyncio.sleep(0)  # a new turn of the loop: the read starts inline
                before = counts()
                rows = await fetch_sqlite(driver, entry, entry.sql, long)
                assert delta(before) == {"inline": 0, "interrupted": 1, "busy": 0, "worker": 1}
                assert list(rows) == expected_long
                [skip] = skips()
                seen.append(skip)
                await asyncio.sleep(0)
                before = counts()
                with budget(FITS):
                    assert list(await fetch_sqlite(driver, entry, entry.sql, short)) == []
                assert delta(before) == {"inline": 1, "interrupted": 0, "busy": 0, "worker": 0}
                assert skips() == [skip]
                assert entry.inline_backoff is not None
                [state] = entry.inline_backoff.values()
                state[0] = 0  # as if that many runs had gone to the worker
            assert seen == [INLINE_BACKOFF, 2 * INLINE_BACKOFF, 4 * INLINE_BACKOFF]
            # With a budget it fits in, the long class starts over.
            monkeypatch.setattr(executor, "INLINE_BUDGET_S", 60.0)
            await asyncio.sleep(0)
            before = counts()
            assert list(await fetch_sqlite(driver, entry, entry.sql, long)) == expected_long
            assert delta(before)["inline"] == 1
            assert entry.inline_backoff is None
            monkeypatch.undo()
            await asyncio.sleep(0)
            assert list(await fetch_sqlite(driver, entry, entry.sql, long)) == expected_long
            assert skips() == [INLINE_BACKOFF]
        finally:
            direct.close()
            await driver.close()

    async def test_concurrent_tasks_get_their_own_answers(self, pair: Pair) -> None:
        async def writer() -> None:
            for i in range(20):
                await pair.inline.table("t").insert({"v": f"new {i}", "n": -1})

        results = await asyncio.gather(
            long_read(pair.inline),
            *(short_read(pair.inline, i) for i in range(1, 40)),
            writer(),
            long_read(pair.inline),
        )
        expected = await long_read(pair.worker)
        assert results[0] == expected
        assert results[-1] == expected
        for i, rows in enumerate(results[1:40], start=1):
            assert rows == [{"id": i, "v": f"row {i}", "n": i % 7}]
        assert len(await pair.inline.from_("t").select("id").where("n", -1)) == 20

    async def test_a_read_that_would_wait_for_a_lock_waits_on_the_worker(
        self, tmp_path: Path
    ) -> None:
        # WAL readers wait for a lock only in rare cases (another connection in exclusive
        # locking mode, recovery); a rollback-journal database shows the same wait at will:
        # fetch_sqlite on a driver connection while another connection holds the exclusive
        # lock, released 0.3 s later.
        path = tmp_path / "journal.db"
        setup = sqlite3.connect(path, isolation_level=None)
        setup.execute("create table t (id integer primary key, v text)")
        setup.execute("insert into t (v) values ('before')")
        setup.close()
        driver = await aiosqlite.connect(path, timeout=5, check_same_thread=False)
        entry = compile_static(
            sa.select(sa.column("v")).select_from(sa.table("t")).where(sa.column("id") == 1),
            sqlite_dialect.dialect(),
        )
        try:
            assert list(await fetch_sqlite(driver, entry, entry.sql, [1])) == [("before",)]
            other = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            other.execute("BEGIN EXCLUSIVE")
            other.execute("UPDATE t SET v = 'after' WHERE id = 1")
            timer = threading.Timer(0.3, lambda: (other.execute("COMMIT"), other.close()))
            timer.start()
            before = counts()
            await asyncio.sleep(0)  # a new turn of the loop: this read starts inline
            try:
                rows = await fetch_sqlite(driver, entry, entry.sql, [1])
            finally:
                timer.join()
            assert delta(before) == {"inline": 0, "interrupted": 0, "busy": 1, "worker": 1}
            assert list(rows) == [("after",)]
            # Between reads the connection keeps busy timeout 0; given back, its own again.
            assert (await driver.execute_fetchall("PRAGMA busy_timeout", [])) == [(0,)]
            restore_busy_timeout(driver)
            assert (await driver.execute_fetchall("PRAGMA busy_timeout", [])) == [(5000,)]
        finally:
            await driver.close()

    async def test_a_task_reading_in_a_loop_lets_the_loop_turn(self, pair: Pair) -> None:
        # Reads back to back never suspend the task while they run inline; once a turn of
        # the loop has run a budget of them, the next read lets the loop turn first (the
        # other tasks run), then runs inline. 2,000 reads take far longer than the 1 ms budget.
        seen_at: list[int] = []
        done = 0

        async def reader() -> None:
            nonlocal done
            for i in range(2000):
                rows = await pair.inline.from_("t").select("id").where("id", i % 100 + 1)
                assert rows == [{"id": i % 100 + 1}]
                done += 1

        async def other() -> None:
            await asyncio.sleep(0)
            seen_at.append(done)

        before = counts()
        yielded = inline_stats.yielded
        await asyncio.gather(reader(), other())
        changed = delta(before)
        # No other thread runs a statement of the pool: no read needs the worker thread (but
        # the first of a connection the lean path checks out, if it gave the fixture's back).
        assert changed["inline"] + changed["worker"] == 2000
        # On a loaded machine a few reads may still take the worker: one the OS preempted for
        # more than the budget is interrupted, and it and the next reads of its shape go there
        # (the back-off); one may find the worker still busy with the connection's queued
        # call (its busy-timeout restore). A few of these 2,000, never most of them.
        backoff = sum(INLINE_BACKOFF << n for n in range(changed["interrupted"]))
        assert changed["interrupted"] <= 3 and changed["busy"] == 0
        assert changed["worker"] <= 20 + changed["interrupted"] + backoff
        assert inline_stats.yielded > yielded
        assert 0 < seen_at[0] < 2000

    async def test_concurrent_reads_run_inline_while_only_lean_reads_hold_connections(
        self, pair: Pair, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # 100 tasks, two reads each: every checked-out connection is held by a lean read, so
        # they run inline; only a connection's first read after a check-out goes to its
        # worker thread (at most one per connection the lean path may hold). The budget is
        # raised for this test: on a loaded machine an OS preemption past 1 ms would interrupt
        # a read and back its shape off to the worker, which is not what this test is about.
        monkeypatch.setattr(executor, "INLINE_BUDGET_S", 0.25)
        engines = pair.inline.get_connection().write_engines()
        assert engines.cap

        async def task(i: int) -> list[list[dict[str, Any]]]:
            return [await short_read(pair.inline, i), await short_read(pair.inline, i + 1)]

        before = counts()
        results = await asyncio.gather(*(task(i) for i in range(1, 101)))
        assert results == [
            [[{"id": j, "v": f"row {j}", "n": j % 7}] for j in (i, i + 1)] for i in range(1, 101)
        ]
        changed = delta(before)
        assert changed["inline"] + changed["worker"] == 200
        assert changed["interrupted"] == 0
        assert changed["worker"] <= engines.cap
        assert engines.on_worker == 0 and engines.busy == 0 and not engines.waiters

    async def test_reads_go_to_the_worker_while_a_transaction_holds_a_connection(
        self, pair: Pair
    ) -> None:
        # The transaction's statements run on its connection's worker thread: a busy loop
        # would make that thread wait for the interpreter lock.
        async with pair.inline.transaction() as trx:
            await trx.from_("t").select("id").where("id", 1)
            before = counts()
            assert await short_read(pair.inline, 2) == [{"id": 2, "v": "row 2", "n": 2}]
            assert delta(before) == {"inline": 0, "interrupted": 0, "busy": 0, "worker": 1}
        before = counts()
        assert await short_read(pair.inline, 2) == [{"id": 2, "v": "row 2", "n": 2}]
        assert delta(before) == {"inline": 1, "interrupted": 0, "busy": 0, "worker": 0}

    async def test_reads_go_to_the_worker_while_another_read_runs_there(self, pair: Pair) -> None:
        # A long read runs on a worker thread (its shape backs off after one interruption):
        # the short reads started meanwhile go to theirs too; once it is done, inline again.
        await long_read(pair.inline)
        engines = pair.inline.get_connection().write_engines()
        long_task = asyncio.ensure_future(long_read(pair.inline))
        while not engines.on_worker:
            await asyncio.sleep(0)
        before = counts()
        assert await short_read(pair.inline, 3) == [{"id": 3, "v": "row 3", "n": 3}]
        assert delta(before)["worker"] == 1
        assert await long_task == await long_read(pair.worker)
        assert engines.on_worker == 0
        before = counts()
        assert await short_read(pair.inline, 3) == [{"id": 3, "v": "row 3", "n": 3}]
        assert delta(before) == {"inline": 1, "interrupted": 0, "busy": 0, "worker": 0}

    async def test_a_read_cancelled_while_the_loop_turns_leaks_nothing(self, pair: Pair) -> None:
        # Tasks whose read lets the loop turn first, cancelled there: their connections and
        # places go back, and the reads after them answer.
        engines = pair.inline.get_connection().write_engines()

        async def reader() -> None:
            while True:
                await pair.inline.from_("t").select("id").where("id", 1)

        tasks = [asyncio.ensure_future(reader()) for _ in range(8)]
        yielded = inline_stats.yielded
        while inline_stats.yielded < yielded + 20:
            await asyncio.sleep(0)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert engines.busy == 0 and engines.on_worker == 0 and not engines.waiters
        assert len(engines.idle) <= engines.hold
        assert await short_read(pair.inline, 4) == [{"id": 4, "v": "row 4", "n": 4}]

    async def test_a_connection_s_first_read_runs_on_the_worker(self, tmp_path: Path) -> None:
        database = Database()
        url = f"sqlite:///{tmp_path / 'first.db'}"
        database.configure(
            connections={"default": {"url": url, "fast_reads": True, "inline_reads": True}}
        )
        await database.raw_query("create table f (id integer primary key)")
        await database.table("f").insert({"id": 1})
        before = counts()
        assert await short_f(database) == [{"id": 1}]
        assert delta(before) == {"inline": 0, "interrupted": 0, "busy": 0, "worker": 1}
        before = counts()
        assert await short_f(database) == [{"id": 1}]
        assert delta(before) == {"inline": 1, "interrupted": 0, "busy": 0, "worker": 0}
        await database.close()

    async def test_a_connection_the_lean_path_gave_back_reads_inline_at_once(
        self, tmp_path: Path
    ) -> None:
        # Back in the pool after lean reads, then checked out again by one: its worker ran the
        # busy-timeout restore queued at check-in, so it is known idle. Used by a transaction
        # in between, the first read goes to the worker again.
        database = Database()
        url = f"sqlite:///{tmp_path / 'back.db'}"
        database.configure(
            connections={"default": {"url": url, "fast_reads": True, "inline_reads": True}}
        )
        await database.raw_query("create table f (id integer primary key)")
        await database.table("f").insert({"id": 1})
        engines = database.get_connection().write_engines()
        assert await short_f(database) == [{"id": 1}]  # on the worker: first of its checkout
        assert await short_f(database) == [{"id": 1}]  # inline
        await engines.release_idle()
        await asyncio.sleep(0.05)  # the worker runs the restore; the loop sees it done
        before = counts()
        assert await short_f(database) == [{"id": 1}]
        assert delta(before) == {"inline": 1, "interrupted": 0, "busy": 0, "worker": 0}
        # Its lock waits as configured once back in the pool, and a lean read after that
        # transaction goes to the worker first.
        await engines.release_idle()
        async with database.transaction() as trx:
            rows = await trx.raw_query("PRAGMA busy_timeout")
            assert list(rows[0].values()) == [5000]
        before = counts()
        assert await short_f(database) == [{"id": 1}]
        assert delta(before) == {"inline": 0, "interrupted": 0, "busy": 0, "worker": 1}
        await database.close()

    async def test_a_read_cancelled_on_the_worker_leaves_the_next_read_correct(
        self, pair: Pair
    ) -> None:
        # A long read cancelled while its statement runs on the worker thread: the connection
        # goes back to the pool with the statement still running there. The next reads (on
        # whichever connection) answer correctly, and a transaction finds its busy timeout.
        await long_read(pair.inline)  # interrupted once: the shape now runs on the worker
        task = asyncio.ensure_future(long_read(pair.inline))
        await asyncio.sleep(0.001)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        results = await asyncio.gather(*(short_read(pair.inline, i) for i in (1, 2, 3)))
        assert results == [[{"id": i, "v": f"row {i}", "n": i % 7}] for i in (1, 2, 3)]
        async with pair.inline.transaction() as trx:
            rows = await trx.raw_query("PRAGMA busy_timeout")
        assert list(rows[0].values()) == [5000]

    async def test_connections_go_back_to_the_pool_with_their_busy_timeout(
        self, pair: Pair
    ) -> None:
        for _ in range(5):
            await asyncio.gather(*(short_read(pair.inline, j) for j in range(1, 6)))
        async with pair.inline.transaction() as trx:
            rows = await trx.raw_query("PRAGMA busy_timeout")
        assert list(rows[0].values()) == [5000]

    async def test_errors_and_events_are_those_of_the_worker_path(self, pair: Pair) -> None:
        seen: dict[str, list[QueryEvent]] = {"inline": [], "worker": []}
        pair.inline.on_query(seen["inline"].append)
        pair.worker.on_query(seen["worker"].append)
        assert await short_read(pair.inline, 1) == await short_read(pair.worker, 1)
        await long_read(pair.inline)  # interrupted, then on the worker: reported once
        await long_read(pair.worker)
        inline_events = [(e.sql, e.bindings) for e in seen["inline"]]
        assert inline_events == [(e.sql, e.bindings) for e in seen["worker"]]
        assert len(inline_events) == 2 and inline_events[0][1] == [1]
        with pytest.raises(QueryError) as inline_error:
            await pair.inline.from_("t").select("id", "missing_column")
        with pytest.raises(QueryError) as worker_error:
            await pair.worker.from_("t").select("id", "missing_column")
        assert str(inline_error.value) == str(worker_error.value)
        assert "no such column" in str(inline_error.value)
        assert isinstance(inline_error.value.original, sqlite3.OperationalError)
        # The connection that failed is not reused in a broken state.
        assert await short_read(pair.inline, 2) == [{"id": 2, "v": "row 2", "n": 2}]


COUNTED = (*COUNTERS, "backed_off")


def counted() -> dict[str, int]:
    return {k: getattr(inline_stats, k) for k in COUNTED}


def since(before: dict[str, int]) -> dict[str, int]:
    return {k: getattr(inline_stats, k) - before[k] for k in COUNTED}


@contextlib.contextmanager
def budget(seconds: float) -> Iterator[None]:
    """The inline budget set to ``seconds`` meanwhile: 0 interrupts any read past its first
    progress check (a big one, surely), a minute none (a small one, even on a machine so
    loaded that a preemption outlasts 1 ms). The back-off under test is then decided by the
    reads' sizes, not by the clock."""
    saved = executor.INLINE_BUDGET_S
    executor.INLINE_BUDGET_S = seconds
    try:
        yield
    finally:
        executor.INLINE_BUDGET_S = saved


OVER, FITS = 0.0, 60.0


class TestSizeClasses:
    """The back-off of a statement shape that ran over the budget holds for the size class of
    its bound values only: a key list bound as one JSON text makes reads of 5 keys and of
    20,000 keys one shape, and the big one backing off leaves the small ones inline."""

    async def keys_read(self, database: Database, keys: list[int]) -> list[dict[str, Any]]:
        await asyncio.sleep(0)  # a new turn of the loop: the read is the first of its turn
        rows: list[dict[str, Any]] = await (
            database.from_("t").select("id", "v").where_in("id", keys).order_by("id")
        )
        return rows

    async def test_a_big_key_list_backs_off_alone(self, pair: Pair) -> None:
        big, small = list(range(1, 20_001)), [3, 1, 4, 15, 9]
        expected_big = await self.keys_read(pair.worker, big)
        expected_small = await self.keys_read(pair.worker, small)
        assert len(expected_big) == 20_000
        assert expected_small == [{"id": i, "v": f"row {i}"} for i in sorted(small)]

        before = counted()
        with budget(OVER):
            assert await self.keys_read(pair.inline, big) == expected_big
        assert since(before) == {
            "inline": 0, "interrupted": 1, "busy": 0, "worker": 1, "backed_off": 0
        }  # fmt: skip
        # The small lists of the same statement shape still run inline, the big one goes to
        # the worker directly, and each answers as the worker does.
        for _ in range(3):
            before = counted()
            with budget(FITS):
                assert await self.keys_read(pair.inline, small) == expected_small
            assert since(before) == {
                "inline": 1, "interrupted": 0, "busy": 0, "worker": 0, "backed_off": 0
            }  # fmt: skip
            before = counted()
            with budget(OVER):
                assert await self.keys_read(pair.inline, big) == expected_big
            assert since(before) == {
                "inline": 0, "interrupted": 0, "busy": 0, "worker": 1, "backed_off": 1
            }  # fmt: skip

    async def test_a_small_read_that_fits_leaves_the_big_one_s_back_off(self, pair: Pair) -> None:
        # The class that fits forgets only its own back-off: the next big read still goes to
        # the worker directly rather than wasting another budget.
        t = sa.table("t", sa.column("id"), sa.column("v"))
        stmt = sa.select(t.c.id).where(
            t.c.id.in_(
                sa.select(sa.literal_column("value"))
                .select_from(sa.func.json_each(sa.bindparam("keys")))
                .scalar_subquery()
            )
        )
        entry = compile_static(stmt, sqlite_dialect.dialect())
        big = ["[" + ",".join(map(str, range(1, 40_001))) + "]"]
        small = ["[1,2]"]
        driver = await aiosqlite.connect(pair.path, check_same_thread=False)
        try:
            assert len(await fetch_sqlite(driver, entry, entry.sql, big)) == 40_000  # 1st: worker
            await asyncio.sleep(0)
            before = counted()
            with budget(OVER):
                assert len(await fetch_sqlite(driver, entry, entry.sql, big)) == 40_000
            assert since(before)["interrupted"] == 1
            assert entry.inline_backoff is not None
            assert [state[0] for state in entry.inline_backoff.values()] == [INLINE_BACKOFF]
            await asyncio.sleep(0)
            before = counted()
            with budget(FITS):
                assert list(await fetch_sqlite(driver, entry, entry.sql, small)) == [(1,), (2,)]
            assert since(before)["inline"] == 1
            assert [state[0] for state in entry.inline_backoff.values()] == [INLINE_BACKOFF]
            await asyncio.sleep(0)
            before = counted()
            with budget(OVER):
                assert len(await fetch_sqlite(driver, entry, entry.sql, big)) == 40_000
            assert since(before) == {
                "inline": 0, "interrupted": 0, "busy": 0, "worker": 1, "backed_off": 1
            }  # fmt: skip
            assert [state[0] for state in entry.inline_backoff.values()] == [INLINE_BACKOFF - 1]
        finally:
            await driver.close()

    async def test_a_big_preload_backs_off_alone(self, database: Database, dialect: str) -> None:
        # The preload of 20,000 posts' users and that of 5 are one statement shape (the keys
        # as one JSON text); so are the two posts queries (``where_in``). The big ones run over
        # the budget once, then go to the worker directly; the small ones keep running inline.
        engines = database.get_connection().write_engines()
        if dialect != "sqlite" or not engines.inline_reads:
            pytest.skip("inline reads are SQLite's, and on only with the fast paths")
        n = 20_000
        series = f"(with recursive c(x) as (select 1 union all select x + 1 from c where x < {n}) "
        await database.raw_query(
            f"insert into users (id, username) select x, 'user ' || x from {series}select x from c)"
        )
        await database.raw_query(
            f"insert into posts (id, user_id, title) select x, x, 'post ' || x from {series}"
            "select x from c)"
        )

        async def load(ids: list[int]) -> list[tuple[int, int, str | None]]:
            await asyncio.sleep(0)
            posts = await SizedPost.query().where_in("id", ids).preload("user").order_by("id")
            return [(p.id, p.user.id, p.user.username) for p in posts]

        big, small = list(range(1, n + 1)), [7, 70, 700, 7_000, 17_000]
        await load(small)  # a connection's first read runs on the worker
        before = counted()
        with budget(OVER):
            assert len(await load(big)) == n
        assert since(before)["interrupted"] == 2  # the posts query and the users preload
        for _ in range(3):
            before = counted()
            with budget(FITS):
                assert await load(small) == [(i, i, f"user {i}") for i in small]
            assert since(before) == {
                "inline": 2, "interrupted": 0, "busy": 0, "worker": 0, "backed_off": 0
            }  # fmt: skip
            before = counted()
            with budget(OVER):
                loaded = await load(big)
            assert since(before) == {
                "inline": 0, "interrupted": 0, "busy": 0, "worker": 2, "backed_off": 2
            }  # fmt: skip
            assert loaded == [(i, i, f"user {i}") for i in big]

    async def test_a_far_page_backs_off_alone(self, pair: Pair) -> None:
        # LIMIT and OFFSET are bound values: a page far into the table (SQLite steps over
        # every row before it) and the first page are one statement shape.
        async def page(offset: int) -> list[dict[str, Any]]:
            await asyncio.sleep(0)
            rows: list[dict[str, Any]] = await (
                pair.inline.from_("t").select("id").order_by("id").limit(3).offset(offset)
            )
            return rows

        far = BIG - 3
        before = counted()
        with budget(OVER):
            assert await page(far) == [{"id": i} for i in range(far + 1, far + 4)]
        assert since(before)["interrupted"] == 1
        for _ in range(3):
            before = counted()
            with budget(FITS):
                assert await page(0) == [{"id": 1}, {"id": 2}, {"id": 3}]
            assert since(before) == {
                "inline": 1, "interrupted": 0, "busy": 0, "worker": 0, "backed_off": 0
            }  # fmt: skip
            before = counted()
            with budget(OVER):
                assert await page(far) == [{"id": i} for i in range(far + 1, far + 4)]
            assert since(before) == {
                "inline": 0, "interrupted": 0, "busy": 0, "worker": 1, "backed_off": 1
            }  # fmt: skip

    def test_size_classes(self) -> None:
        # Text and bytes count by their length and every value by one; apart, the positive
        # integers by their sum. Sizes within a factor of two share a class.
        size_class = executor._size_class
        few = json.dumps(list(range(1, 21)))
        many = json.dumps(list(range(1, 1001)))
        assert size_class([few]) != size_class([many])
        assert size_class([json.dumps(list(range(501, 521)))]) == size_class([few])
        assert size_class([b"x" * 100, 7]) == size_class([7, "x" * 100])
        # An integer key beside the list does not swamp its length.
        assert size_class([70_000, few]) != size_class([70_000, many])
        # The first page and a far one (LIMIT, OFFSET).
        assert size_class([5, 20, 0]) != size_class([5, 20, 100_000])
        # Other values count by one: booleans, floats, None, negative integers.
        assert size_class([True]) == size_class([1.5]) == size_class([None]) == size_class([-9])


class TestSwitch:
    async def test_inline_reads_false_runs_every_read_on_the_worker(self, pair: Pair) -> None:
        before = counts()
        await short_read(pair.worker, 1)
        await long_read(pair.worker)
        assert delta(before) == {"inline": 0, "interrupted": 0, "busy": 0, "worker": 0}

    async def test_the_option_must_be_a_boolean(self, tmp_path: Path) -> None:
        database = Database()
        database.configure(
            connections={"default": {"url": f"sqlite:///{tmp_path / 'x.db'}", "inline_reads": 1}}
        )
        with pytest.raises(LucidError) as error:
            await database.raw_query("select 1")
        assert error.value.code == "E_INVALID_CONFIG"
        assert '"inline_reads" must be True or False' in str(error.value)
        await database.close()

    async def test_in_memory_databases_read_on_the_worker(self) -> None:
        database = Database()
        database.configure(url="sqlite://:memory:")
        await database.raw_query("create table m (id integer primary key)")
        before = counts()
        assert await database.from_("m").select("id") == []
        assert delta(before)["inline"] == 0
        await database.close()
