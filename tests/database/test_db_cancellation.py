"""A cancelled or timed-out transaction rolls back and releases its locks at once (issue 12,
finding 4): ``async with db.transaction()``, the callback form, a model's own transaction and an
unmanaged transaction whose task rolls back, cancelled by ``asyncio.wait_for`` while waiting
between statements or while the driver runs one.

"At once" is checked without timing: right after the cancellation, a second writer on a
separate connection that waits for locks only briefly (SQLite ``busy_timeout_ms=200``,
PostgreSQL ``lock_timeout = 200ms``, MariaDB ``innodb_lock_wait_timeout = 1``) must write the
same row; the cancelled write must not be in the database, and the pool must serve the next
statements normally.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import event

from lucid_orm import before, column, db
from lucid_orm.database import Database, TransactionClient
from tests import models
from tests.helpers import DialectConfig

# A statement that runs for seconds: long enough to be cancelled while the driver runs it.
SLOW = {
    "sqlite": "with recursive c(x) as (select 1 union all select x + 1 from c where x < 300000000)"
    " select count(*) as n from c",
    "postgresql": "select pg_sleep(30)",
    "mysql": "select sleep(30)",
}


class Account(models.BaseUser):
    table = "users"
    points: int | None = column()

    @before("save")
    async def _stall(self) -> None:
        # Keeps a model's own transaction open (row locked, written or not) until cancelled.
        if self.username == "stall":
            await asyncio.sleep(30)


@pytest.fixture
async def row(database: Database) -> int:
    """The row every test fights over."""
    await database.table("users").insert({"id": 1, "username": "original", "points": 0})
    return 1


@pytest.fixture
async def second_writer(
    dialect: str, dialect_config: DialectConfig, row: int
) -> AsyncIterator[Callable[[str], Awaitable[None]]]:
    """``await second_writer(name)``: on its own connection, sets the row's username to
    ``name`` in a transaction that waits only briefly for locks held by others."""
    private = Database()
    config: dict[str, Any] = {"url": dialect_config.url}
    if dialect == "sqlite":
        config["busy_timeout_ms"] = 200
    private.configure(connections={"second": config})

    async def write(name: str) -> None:
        async with private.transaction() as trx:
            if dialect == "postgresql":
                await trx.raw_query("set local lock_timeout = '200ms'")
            elif dialect == "mysql":
                await trx.raw_query("set session innodb_lock_wait_timeout = 1")
            updated = await trx.from_("users").where("id", row).update({"username": name})
            assert updated == 1

    try:
        yield write
    finally:
        await private.close()


# ``cancel`` waits until the work has sent no statement for STALLED seconds (it is sleeping,
# or waiting for the driver to finish one), at most MAX_WAIT seconds.
STALLED = 0.1
MAX_WAIT = 0.3


async def cancel(work: Awaitable[Any]) -> None:
    """Run ``work`` (it never finishes) in a task of its own, as ``asyncio.wait_for`` does, and
    cancel it once it stalls: between statements or while the driver runs one."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    sent: list[float] = []

    def record(*_: Any) -> None:
        sent.append(loop.time())

    engine = db.engine().sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        task = asyncio.ensure_future(work)
        while not task.done():
            await asyncio.sleep(STALLED / 4)
            now = loop.time()
            if now - started >= MAX_WAIT or (sent and now - sent[-1] >= STALLED):
                break
    finally:
        event.remove(engine, "before_cursor_execute", record)
    with pytest.raises(TimeoutError):
        # A timeout of 0 cancels the task and waits for it to end, as a timed-out wait_for.
        await asyncio.wait_for(task, 0)


async def stall(trx: TransactionClient, dialect: str, in_driver: bool) -> None:
    await trx.from_("users").where("id", 1).update({"username": "cancelled"})
    if in_driver:
        await trx.raw_query(SLOW[dialect])
    else:
        await asyncio.sleep(30)


async def usernames() -> list[str]:
    return [r["username"] for r in await db.from_("users").select("username").order_by("id")]


async def pool_is_healthy(database: Database) -> None:
    """Several statements, in and out of transactions, on every pooled connection."""
    reads = await asyncio.gather(*(database.from_("users").count_rows() for _ in range(8)))
    assert reads == [1] * 8
    async with database.transaction() as trx:
        assert await trx.from_("users").count_rows() == 1
    assert await database.raw_query("select 1 as one") == [{"one": 1}]


@pytest.mark.parametrize("in_driver", [False, True], ids=["between", "in_driver"])
@pytest.mark.usefixtures("fast_paths")  # the pool's next reads take both read paths
class TestCancelledTransactionReleasesAtOnce:
    async def test_async_with(
        self, database: Database, dialect: str, second_writer: Any, in_driver: bool
    ) -> None:
        async def work() -> None:
            async with database.transaction() as trx:
                await stall(trx, dialect, in_driver)

        await cancel(work())
        await second_writer("second")
        assert await usernames() == ["second"]
        await pool_is_healthy(database)

    async def test_callback(
        self, database: Database, dialect: str, second_writer: Any, in_driver: bool
    ) -> None:
        await cancel(database.transaction(lambda trx: stall(trx, dialect, in_driver)))
        await second_writer("second")
        assert await usernames() == ["second"]
        await pool_is_healthy(database)

    async def test_savepoint_inside(
        self, database: Database, dialect: str, second_writer: Any, in_driver: bool
    ) -> None:
        async def work() -> None:
            async with database.transaction() as trx, trx.transaction() as savepoint:
                await stall(savepoint, dialect, in_driver)

        await cancel(work())
        await second_writer("second")
        assert await usernames() == ["second"]
        await pool_is_healthy(database)

    async def test_unmanaged_rolled_back_by_the_task(
        self, database: Database, dialect: str, second_writer: Any, in_driver: bool
    ) -> None:
        """An unmanaged transaction is the caller's to end: ``rollback()`` in ``except`` (or
        ``finally``) works in the cancelled task."""
        holder: list[TransactionClient] = []

        async def work() -> None:
            trx = await database.transaction()
            holder.append(trx)
            try:
                await stall(trx, dialect, in_driver)
            except BaseException:
                await trx.rollback()
                raise

        await cancel(work())
        assert holder[0].is_completed
        await second_writer("second")
        assert await usernames() == ["second"]
        await pool_is_healthy(database)


class TestModelTransactions:
    async def test_update_or_create_cancelled_in_a_hook(
        self, database: Database, second_writer: Any
    ) -> None:
        """``update_or_create`` locks the row in a transaction of its own and runs the save
        hooks inside it; cancelled there, it rolls back at once."""
        await cancel(Account.update_or_create({"id": 1}, {"username": "stall"}))
        await second_writer("second")
        assert await usernames() == ["second"]

    async def test_lock_for_update_cancelled_in_the_callback(
        self, database: Database, second_writer: Any
    ) -> None:
        account = await Account.find_or_fail(1)

        async def change(fresh: Account) -> None:
            fresh.username = "cancelled"
            await fresh.save()
            await asyncio.sleep(30)

        await cancel(account.lock_for_update(change))
        await second_writer("second")
        assert await usernames() == ["second"]


class TestRollbackUnderRepeatedCancellation:
    async def test_a_second_cancel_during_the_rollback_does_not_cut_it_short(
        self, database: Database, dialect: str, second_writer: Any
    ) -> None:
        holder: list[TransactionClient] = []
        entered = asyncio.Event()
        rolling_back = asyncio.Event()

        async def work() -> None:
            async with database.transaction() as trx:
                holder.append(trx)
                await trx.from_("users").where("id", 1).update({"username": "cancelled"})
                entered.set()
                try:
                    await asyncio.sleep(30)
                finally:
                    rolling_back.set()

        task = asyncio.create_task(work())
        await entered.wait()
        task.cancel()
        await rolling_back.wait()
        await asyncio.sleep(0)  # the task is now awaiting its rollback
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert holder[0].is_completed
        await second_writer("second")
        assert await usernames() == ["second"]
        await pool_is_healthy(database)
