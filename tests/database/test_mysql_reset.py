"""MySQL/MariaDB: the pool's rollback on check-in. A connection closed right after its root
transaction's COMMIT goes back to the pool without the ROLLBACK SQLAlchemy would send (it
holds no transaction); every other check-in still rolls back: a rolled back or failed
transaction, and a connection that read on its driver with autocommit off, whose REPEATABLE
READ snapshot must not outlive its check-in. Statements are counted by the server itself
(``Com_commit``/``Com_rollback`` of the session), on a pool of one connection."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy.util import greenlet_spawn

from lucid_orm import QueryError
from lucid_orm.database import Database
from tests.helpers import DialectConfig


@pytest.fixture
async def single(
    dialect: str, dialect_config: DialectConfig, database: Database
) -> AsyncIterator[Database]:
    """A database of its own on the MySQL test database, with a pool of one connection: every
    statement runs on the same server session (the tables emptied after the test by
    ``database``)."""
    if dialect != "mysql":
        pytest.skip("MySQL/MariaDB only: the other dialects' pools do not roll back on return")
    other = Database()
    other.configure(
        connection="single",
        connections={"single": {"url": dialect_config.url, "pool": {"max": 1, "timeout": 5}}},
    )
    try:
        yield other
    finally:
        await other.close()


async def _counters(database: Database) -> tuple[int, int, int]:
    """``(session id, COMMITs, ROLLBACKs)`` the server counted on the pool's connection.
    Read through SQLAlchemy, whose close rolls back the read's own transaction: each reading
    adds one ROLLBACK, counted by the next one (``_rollbacks_of`` subtracts it)."""
    async with database.engine().connect() as conn:
        session = (await conn.exec_driver_sql("SELECT CONNECTION_ID()")).scalar_one()
        rows = await conn.exec_driver_sql(
            "SHOW SESSION STATUS WHERE Variable_name IN ('Com_commit', 'Com_rollback')"
        )
        status = {name.lower(): int(value) for name, value in rows.all()}
    return int(session), status["com_commit"], status["com_rollback"]


class _Count:
    """The COMMITs and ROLLBACKs the server counted between ``start`` and ``stop`` on the one
    pooled connection (the same session throughout), the readings' own left out."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.session = 0
        self.commits = 0
        self.rollbacks = 0

    async def start(self) -> None:
        self.session, self.commits, self.rollbacks = await _counters(self.database)

    async def stop(self) -> None:
        session, commits, rollbacks = await _counters(self.database)
        assert session == self.session  # one server session throughout
        self.commits = commits - self.commits
        # The first reading's close rolled back once.
        self.rollbacks = rollbacks - self.rollbacks - 1


async def _counted(database: Database, work: Any) -> _Count:
    count = _Count(database)
    await count.start()
    await work()
    await count.stop()
    return count


async def test_readings_count_their_own_rollback(single: Database) -> None:
    count = await _counted(single, _noop)
    assert (count.commits, count.rollbacks) == (0, 0)


async def _noop() -> None:
    return None


async def test_committed_transaction_sends_no_rollback(single: Database) -> None:
    async def work() -> None:
        async with single.transaction() as trx:
            await trx.table("tags").insert({"name": "a"})

    count = await _counted(single, work)
    assert (count.commits, count.rollbacks) == (1, 0)
    assert [r["name"] for r in await single.from_("tags")] == ["a"]


async def test_unmanaged_and_callback_commits_send_no_rollback(single: Database) -> None:
    async def work() -> None:
        trx = await single.transaction()
        await trx.table("tags").insert({"name": "a"})
        async with trx.transaction() as nested:  # a savepoint: released, not rolled back
            await nested.table("tags").insert({"name": "b"})
        await trx.commit()
        await single.transaction(lambda t: t.table("tags").insert({"name": "c"}))

    count = await _counted(single, work)
    assert (count.commits, count.rollbacks) == (2, 0)
    assert sorted(r["name"] for r in await single.from_("tags")) == ["a", "b", "c"]


async def test_rolled_back_transaction_still_rolls_back_on_checkin(single: Database) -> None:
    async def work() -> None:
        trx = await single.transaction()
        await trx.table("tags").insert({"name": "a"})
        await trx.rollback()

    count = await _counted(single, work)
    # Its own ROLLBACK, then the pool's on check-in, as SQLAlchemy's default reset does.
    assert (count.commits, count.rollbacks) == (0, 2)
    assert await single.from_("tags") == []


async def test_failed_transaction_still_rolls_back_on_checkin(single: Database) -> None:
    await single.table("tags").insert({"id": 1, "name": "a"})

    async def work() -> None:
        with pytest.raises(QueryError):
            async with single.transaction() as trx:
                await trx.table("tags").insert({"name": "b"})
                await trx.table("tags").insert({"id": 1, "name": "duplicate"})

    count = await _counted(single, work)
    assert (count.commits, count.rollbacks) == (0, 2)
    assert [r["name"] for r in await single.from_("tags")] == ["a"]


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "slow"])
async def test_statements_outside_transactions_send_no_rollback(
    single: Database, fast: bool
) -> None:
    """A write outside a transaction (its own COMMIT) and a read on the slow path (which ends
    with COMMIT too: a SELECT may call a writing function) go back to the pool without the
    rollback."""
    single.get_connection().fast_reads = fast

    async def work() -> None:
        await single.table("tags").insert({"name": "a"})
        assert [r["name"] for r in await single.from_("tags")] == ["a"]

    count = await _counted(single, work)
    # The insert's COMMIT, and the read's on the slow path (a lean read may have run on the
    # slow path too: a pool of one connection leaves the lean path no share of it).
    assert count.rollbacks == 0 and count.commits >= (1 if fast else 2)


async def test_failed_write_outside_a_transaction_still_rolls_back(single: Database) -> None:
    await single.table("tags").insert({"id": 1, "name": "a"})

    async def work() -> None:
        with pytest.raises(QueryError):
            await single.table("tags").insert({"id": 1, "name": "duplicate"})

    count = await _counted(single, work)
    assert (count.commits, count.rollbacks) == (0, 1)


async def _driver_read(database: Database) -> list[str]:
    """The tags' names read on the pooled connection's driver with autocommit off (a driver
    level read SQLAlchemy does not know of): the SELECT opens a REPEATABLE READ snapshot that
    only a rollback (or commit) ends; the connection then goes back to the pool."""
    raw = await database.engine().raw_connection()
    try:
        driver: Any = raw.driver_connection
        assert not driver.get_autocommit()
        async with driver.cursor() as cursor:
            await cursor.execute("SELECT name FROM tags ORDER BY name")
            return [row[0] for row in await cursor.fetchall()]
    finally:
        await greenlet_spawn(raw.close)


async def test_driver_read_snapshot_ends_at_checkin(single: Database, database: Database) -> None:
    """Fails if the check-in skipped its rollback: the pooled connection would keep the
    first read's snapshot and miss a row another connection committed since."""
    assert await _driver_read(single) == []
    await database.table("tags").insert({"name": "committed elsewhere"})
    assert await _driver_read(single) == ["committed elsewhere"]


async def test_commit_mark_does_not_outlive_its_checkin(
    single: Database, database: Database
) -> None:
    """After a committed transaction skipped its rollback, the next check-in of the same
    connection (a driver-level read) still rolls back."""
    async with single.transaction() as trx:
        await trx.table("tags").insert({"name": "a"})
    assert await _driver_read(single) == ["a"]
    await database.table("tags").insert({"name": "b"})
    assert await _driver_read(single) == ["a", "b"]


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "slow"])
async def test_lean_read_then_fresh_snapshot(
    single: Database, database: Database, fast: bool
) -> None:
    """Reads outside transactions (the lean path in autocommit, or its slow twin ending with
    COMMIT) leave no snapshot on the pooled connection: the next read sees another
    connection's committed row."""
    single.get_connection().fast_reads = fast
    assert [r["name"] for r in await single.from_("tags")] == []
    await database.table("tags").insert({"name": "committed elsewhere"})
    assert [r["name"] for r in await single.from_("tags")] == ["committed elsewhere"]


async def test_configured_reset_is_left_to_sqlalchemy(
    dialect: str, dialect_config: DialectConfig, database: Database
) -> None:
    """A ``pool_reset_on_return`` in the connection's ``engine_options`` wins: SQLAlchemy's
    own rollback runs, after a commit too."""
    if dialect != "mysql":
        pytest.skip("MySQL/MariaDB only")
    other = Database()
    other.configure(
        connection="single",
        connections={
            "single": {
                "url": dialect_config.url,
                "pool": {"max": 1},
                "engine_options": {"pool_reset_on_return": "rollback"},
            }
        },
    )
    try:

        async def work() -> None:
            async with other.transaction() as trx:
                await trx.table("tags").insert({"name": "a"})

        count = await _counted(other, work)
        assert (count.commits, count.rollbacks) == (1, 1)
    finally:
        await other.close()
