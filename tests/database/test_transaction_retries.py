"""``db.transaction(callback, retries=N)`` and ``TransactionConflictError`` (SPEC §10, issue 17
item 4), with real conflicts: two tasks locking two rows in opposite orders (a deadlock,
PostgreSQL ``40P01``, MySQL/MariaDB ``1213``) and a row changed under a ``REPEATABLE READ`` /
``SERIALIZABLE`` transaction's snapshot (PostgreSQL ``40001``). The Galera certification
failure is in ``tests/cluster/test_galera_retries.py``.

SQLite's transactions begin ``IMMEDIATE`` (one writer at a time): it has no conflicts to retry.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from lucid_orm import Database, QueryError, TransactionClient, TransactionConflictError, db
from lucid_orm.errors import IntegrityError, InvalidArgumentError
from tests.helpers import DialectConfig, count_queries
from tests.models import Thing

# A guard against a hang if a conflict were never detected (not a timing assertion).
_HANG = 60


def _needs_conflicts(dialect: str) -> None:
    if dialect == "sqlite":
        pytest.skip("SQLite transactions begin IMMEDIATE: one writer at a time, no conflicts")


def _needs_snapshot_errors(dialect: str) -> None:
    if dialect != "postgresql":
        pytest.skip("only PostgreSQL refuses to update a row changed since the snapshot")


async def _counters(n: int = 2) -> list[int]:
    ids = []
    for i in range(n):
        thing = await Thing.create({"name": f"counter-{i}", "amount": 0})
        ids.append(thing.id)
    return ids


async def _amounts(ids: list[int]) -> list[int]:
    rows = await db.from_("things").where_in("id", ids).order_by("id").select("amount")
    return [r["amount"] for r in rows]


class Crossing:
    """Two tasks that lock the same two rows in opposite orders; on their first attempt each
    waits, holding its first row, until the other holds its own: a deadlock the server breaks
    by rolling one of them back."""

    def __init__(self, ids: list[int]) -> None:
        self.ids = ids
        self.holding = [asyncio.Event(), asyncio.Event()]
        self.attempts = [0, 0]

    async def cross(self, trx: TransactionClient, me: int) -> None:
        self.attempts[me] += 1
        first, second = self.ids if me == 0 else self.ids[::-1]
        await trx.from_("things").where("id", first).increment("amount")
        if self.attempts[me] == 1:
            self.holding[me].set()
            await self.holding[1 - me].wait()
        await trx.from_("things").where("id", second).increment("amount")

    async def run(
        self, body: Callable[[TransactionClient, int], Awaitable[Any]], retries: int
    ) -> list[Any]:
        """Both tasks, each ``await db.transaction(lambda trx: body(trx, me), retries=...)``;
        their results or errors."""

        async def task(me: int) -> Any:
            return await db.transaction(lambda trx: body(trx, me), retries=retries)

        gathered = asyncio.gather(task(0), task(1), return_exceptions=True)
        return list(await asyncio.wait_for(gathered, _HANG))


class TestArguments:
    async def test_retries_need_the_callback_form(self, database: Database) -> None:
        with count_queries() as log:
            with pytest.raises(InvalidArgumentError) as info:
                async with database.transaction(retries=2):  # type: ignore[call-overload]
                    pass
            assert info.value.code == "E_INVALID_ARGUMENT"
            assert "callback form" in info.value.message
            with pytest.raises(InvalidArgumentError):
                await database.transaction(retries=1)  # type: ignore[call-overload]
        assert log.count == 0

    @pytest.mark.parametrize("retries", [-1, 1.5, 0.0, True, "2", None])
    async def test_retries_must_be_a_count(self, database: Database, retries: Any) -> None:
        calls = 0

        async def body(trx: TransactionClient) -> None:
            nonlocal calls
            calls += 1

        with count_queries() as log, pytest.raises(InvalidArgumentError) as info:
            await database.transaction(body, retries=retries)
        assert "retries must be a whole number" in info.value.message
        assert (calls, log.count) == (0, 0)

    async def test_other_errors_are_not_retried(self, database: Database) -> None:
        await Thing.create({"name": "taken"})
        calls = 0

        async def body(trx: TransactionClient) -> None:
            nonlocal calls
            calls += 1
            await Thing.create({"name": "taken"}, client=trx)

        with pytest.raises(IntegrityError):
            await database.transaction(body, retries=3)
        assert calls == 1

    async def test_sqlite_writers_queue_instead_of_conflicting(
        self, database: Database, dialect: str
    ) -> None:
        if dialect != "sqlite":
            pytest.skip("SQLite's IMMEDIATE transactions")
        (counter,) = await _counters(1)
        calls = 0

        async def read_modify_write(trx: TransactionClient) -> None:
            nonlocal calls
            calls += 1
            row = await trx.from_("things").where("id", counter).first()
            assert row is not None
            await asyncio.sleep(0)  # let the other task try to begin meanwhile
            await trx.from_("things").where("id", counter).update({"amount": row["amount"] + 1})

        await asyncio.gather(*(database.transaction(read_modify_write) for _ in range(2)))
        assert await _amounts([counter]) == [2]
        assert calls == 2


class TestDeadlocks:
    async def test_the_victim_is_retried_and_both_commit(
        self, database: Database, dialect: str
    ) -> None:
        _needs_conflicts(dialect)
        crossing = Crossing(await _counters())
        results = await crossing.run(crossing.cross, retries=2)
        assert results == [None, None]
        # One of them was rolled back once and ran again; both increments of both rows stand.
        assert sorted(crossing.attempts) == [1, 2]
        assert await _amounts(crossing.ids) == [2, 2]

    async def test_without_retries_the_victim_raises_a_conflict(
        self, database: Database, dialect: str
    ) -> None:
        _needs_conflicts(dialect)
        crossing = Crossing(await _counters())
        results = await crossing.run(crossing.cross, retries=0)
        errors = [r for r in results if isinstance(r, BaseException)]
        assert len(errors) == 1, results
        (error,) = errors
        assert isinstance(error, TransactionConflictError)
        assert isinstance(error, QueryError)
        assert error.code == "E_TRANSACTION_CONFLICT"
        assert "deadlock" in error.message.lower()
        assert "attempts" not in error.message
        assert crossing.attempts == [1, 1]
        # The survivor's two increments only.
        assert await _amounts(crossing.ids) == [1, 1]

    async def test_the_rerun_starts_from_the_state_before_the_failed_attempt(
        self, database: Database, dialect: str
    ) -> None:
        """The rolled-back attempt's writes are undone on the instances too (their journal):
        an instance it inserted is new again, one it updated is dirty again, so the rerun
        inserts and updates them again instead of skipping them or updating a missing row."""
        _needs_conflicts(dialect)
        crossing = Crossing(await _counters())
        existing = [await Thing.create({"name": f"old-{me}"}) for me in (0, 1)]
        fresh = [Thing(name=f"fresh-{me}") for me in (0, 1)]

        async def body(trx: TransactionClient, me: int) -> None:
            existing[me].name = f"renamed-{me}"
            await existing[me].save(client=trx)
            await fresh[me].save(client=trx)
            await crossing.cross(trx, me)

        assert await crossing.run(body, retries=2) == [None, None]
        assert sorted(crossing.attempts) == [1, 2]
        rows = await db.from_("things").order_by("name")
        assert [(r["id"], r["name"]) for r in rows if r["name"][0] != "c"] == [
            (fresh[0].id, "fresh-0"),
            (fresh[1].id, "fresh-1"),
            (existing[0].id, "renamed-0"),
            (existing[1].id, "renamed-1"),
        ]
        for thing in (*existing, *fresh):
            assert thing.is_persisted and not thing.is_dirty
            assert thing.trx is None

    async def test_a_conflict_in_a_savepoint_retries_the_outermost_callback(
        self, database: Database, dialect: str
    ) -> None:
        _needs_conflicts(dialect)
        crossing = Crossing(await _counters())
        outer = [0, 0]

        async def body(trx: TransactionClient, me: int) -> None:
            outer[me] += 1
            await trx.transaction(lambda nested: crossing.cross(nested, me))

        assert await crossing.run(body, retries=1) == [None, None]
        assert sorted(outer) == [1, 2]
        assert await _amounts(crossing.ids) == [2, 2]

    async def test_a_swallowed_conflict_still_refuses_the_commit(
        self, database: Database, dialect: str
    ) -> None:
        """A callback that catches the conflict cannot commit what is left (MySQL has rolled
        it all back already): the commit raises the conflict, which the retry then handles."""
        _needs_conflicts(dialect)
        crossing = Crossing(await _counters())
        swallowed: list[TransactionConflictError] = []

        async def body(trx: TransactionClient, me: int) -> None:
            try:
                await crossing.cross(trx, me)
            except TransactionConflictError as exc:
                swallowed.append(exc)

        results = await crossing.run(body, retries=0)
        assert len(swallowed) == 1
        errors = [r for r in results if isinstance(r, BaseException)]
        assert len(errors) == 1 and isinstance(errors[0], TransactionConflictError)
        assert errors[0].message.startswith(
            "Cannot commit: the database rolled the transaction back to resolve a conflict"
        )
        assert errors[0].__cause__ is swallowed[0]
        assert await _amounts(crossing.ids) == [1, 1]

        crossing = Crossing(crossing.ids)
        assert await crossing.run(body, retries=1) == [None, None]
        assert len(swallowed) == 2
        assert await _amounts(crossing.ids) == [3, 3]


class TestSnapshotConflicts:
    """PostgreSQL: a ``REPEATABLE READ``/``SERIALIZABLE`` transaction that updates a row another
    transaction changed since its snapshot fails with ``40001``."""

    async def test_two_read_modify_writes_both_apply_with_retries(
        self, database: Database, dialect: str
    ) -> None:
        _needs_snapshot_errors(dialect)
        (counter,) = await _counters(1)
        read = [asyncio.Event(), asyncio.Event()]
        attempts = [0, 0]

        async def add_one(trx: TransactionClient, me: int) -> None:
            attempts[me] += 1
            row = await trx.from_("things").where("id", counter).first()
            assert row is not None
            if attempts[me] == 1:
                # Both read the same value before either writes.
                read[me].set()
                await read[1 - me].wait()
            await trx.from_("things").where("id", counter).update({"amount": row["amount"] + 1})

        async def task(me: int) -> None:
            await database.transaction(
                lambda trx: add_one(trx, me), isolation_level="serializable", retries=3
            )

        await asyncio.wait_for(asyncio.gather(task(0), task(1)), _HANG)
        # No lost update: the second writer's first attempt was refused and ran again.
        assert await _amounts([counter]) == [2]
        assert sorted(attempts) == [1, 2]

    async def test_spent_retries_raise_the_last_conflict_with_the_attempts(
        self, database: Database, dialect: str
    ) -> None:
        _needs_snapshot_errors(dialect)
        (counter,) = await _counters(1)
        calls = 0

        async def lose_every_time(trx: TransactionClient) -> None:
            nonlocal calls
            calls += 1
            await trx.from_("things").where("id", counter).first()
            # Another connection changes the row after this snapshot was taken.
            await database.from_("things").where("id", counter).increment("amount", 10)
            await trx.from_("things").where("id", counter).increment("amount")

        with pytest.raises(TransactionConflictError) as info:
            await database.transaction(
                lose_every_time, isolation_level="repeatable_read", retries=2
            )
        assert calls == 3
        assert info.value.message.startswith(
            "Transaction conflict, gave up after 3 attempts (retries=2): "
        )
        assert "could not serialize access" in info.value.message
        assert info.value.sql is not None and "UPDATE things" in info.value.sql
        assert await _amounts([counter]) == [30]  # only the other connection's changes

    async def test_a_transaction_inside_a_global_transaction_is_not_retried(
        self, database: Database, dialect: str, dialect_config: DialectConfig
    ) -> None:
        """Inside a global transaction ``db.transaction()`` is a savepoint: the conflict
        belongs to the enclosing transaction, which a rerun of the savepoint cannot repair."""
        _needs_snapshot_errors(dialect)
        (counter,) = await _counters(1)
        other = Database()
        other.configure(url=dialect_config.url)
        calls = 0

        async def body(trx: TransactionClient) -> None:
            nonlocal calls
            calls += 1
            await trx.from_("things").where("id", counter).increment("amount")

        glob = await database.begin_global_transaction(isolation_level="repeatable_read")
        try:
            await glob.from_("things").where("id", counter).first()  # the snapshot
            await other.from_("things").where("id", counter).increment("amount", 10)
            with pytest.raises(TransactionConflictError) as info:
                await database.transaction(body, retries=3)
        finally:
            await database.rollback_global_transaction()
            await other.close()
        assert calls == 1
        assert info.value.message.startswith(
            "Transaction conflict, not retried: it ran in a savepoint, retry the outermost: "
        )
        assert await _amounts([counter]) == [10]
