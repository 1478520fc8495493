"""Lean reads on a capped pool: more concurrent reads than the pool has connections share
them (a finishing read hands its connection to the next waiting one), one connection stays
free for transactions and writes, a failed or cancelled read passes its place on, and the
connections go back to the pool as they came (a transaction's rollback still undoes it)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from lucid_orm import QueryError, has_many
from lucid_orm.database import Database
from lucid_orm.relations import HasMany
from tests import models
from tests.helpers import DialectConfig, count_queries


class LpUser(models.BaseUser):
    posts: HasMany[models.Post] = has_many(lambda: models.Post, foreign_key="user_id")


POOL = 3
READS = 40


@pytest.fixture
async def users(database: Database) -> list[int]:
    await database.table("users").multi_insert([{"username": f"u{i}"} for i in range(5)])
    rows = await database.from_("users").select("id").order_by("id")
    return [row["id"] for row in rows]


@pytest.fixture
async def capped(dialect_config: DialectConfig) -> AsyncIterator[Database]:
    """A database of its own on the test database, with a pool of ``POOL`` connections."""
    other = Database()
    other.configure(
        connection="capped",
        connections={"capped": {"url": dialect_config.url, "pool": {"max": POOL, "timeout": 5}}},
    )
    try:
        yield other
    finally:
        await other.close()


def _settled(database: Database) -> None:
    """No lean read holds a connection or waits for one; the idle ones within their limit."""
    engines = database.get_connection().write_engines()
    assert engines.busy == 0
    assert not engines.waiters
    assert len(engines.idle) <= engines.hold


async def _name(database: Database, key: int) -> Any:
    row = await database.from_("users").select("username").where("id", key).first()
    return row["username"] if row else None


async def test_more_reads_than_connections_all_answer(
    capped: Database, users: list[int], dialect: str
) -> None:
    keys = [users[i % len(users)] for i in range(READS)]
    with count_queries(capped) as log:
        names = await asyncio.gather(*(_name(capped, key) for key in keys))
    assert names == [f"u{users.index(key)}" for key in keys]
    assert log.count == READS
    engines = capped.get_connection().write_engines()
    if dialect != "sqlite" or engines.cap:
        assert engines.cap == POOL - 1
    _settled(capped)


async def test_a_transaction_gets_a_connection_while_reads_queue(
    capped: Database, users: list[int]
) -> None:
    reads = [asyncio.ensure_future(_name(capped, users[0])) for _ in range(READS)]
    await asyncio.sleep(0)
    async with capped.transaction() as trx:
        await trx.table("users").insert({"username": "written"})
    assert await asyncio.gather(*reads) == ["u0"] * READS
    row = await capped.from_("users").select("username").where("username", "written").first()
    assert row is not None
    _settled(capped)


async def test_failed_reads_pass_their_place_on(capped: Database, users: list[int]) -> None:
    async def bad() -> Any:
        return await capped.from_("no_such_table").select("id").first()

    calls = [bad() if i % 3 == 0 else _name(capped, users[1]) for i in range(READS)]
    results = await asyncio.gather(*calls, return_exceptions=True)
    for i, result in enumerate(results):
        if i % 3 == 0:
            assert isinstance(result, QueryError)
        else:
            assert result == "u1"
    _settled(capped)
    assert await _name(capped, users[2]) == "u2"


async def test_cancelled_reads_pass_their_place_on(capped: Database, users: list[int]) -> None:
    tasks = [asyncio.ensure_future(_name(capped, users[3])) for _ in range(READS)]
    await asyncio.sleep(0)
    for task in tasks[POOL::2]:
        task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    kept = [r for r in results if not isinstance(r, asyncio.CancelledError)]
    assert kept and all(r == "u3" for r in kept)
    _settled(capped)
    names = await asyncio.gather(*(_name(capped, users[4]) for _ in range(READS)))
    assert names == ["u4"] * READS
    _settled(capped)


async def test_connections_go_back_to_the_pool_transactional(
    capped: Database, users: list[int]
) -> None:
    # Enough reads that connections pass from the lean path back to the pool; then every
    # pooled connection runs a rolled-back transaction: none of its writes may stay.
    await asyncio.gather(*(_name(capped, users[0]) for _ in range(READS)))
    await capped.get_connection().write_engines().release_idle()

    class Undo(Exception):
        pass

    async def rolled_back(i: int) -> None:
        with pytest.raises(Undo):
            async with capped.transaction() as trx:
                await trx.table("users").insert({"username": f"undone{i}"})
                await asyncio.sleep(0.01)
                raise Undo

    await asyncio.gather(*(rolled_back(i) for i in range(POOL)))
    rows = await capped.from_("users").where_like("username", "undone%")
    assert rows == []


@pytest.mark.parametrize("pool", [2, 3])
async def test_streams_whose_batches_preload_finish(
    dialect_config: DialectConfig, users: list[int], database: Database, pool: int
) -> None:
    # A stream holds its connection while the loop body runs; each batch's preload is a read
    # of its own. Streams at the pool's lean capacity must not leave those reads waiting for a
    # connection that only the streams could give back.
    await database.table("posts").multi_insert(
        [{"user_id": key, "title": f"t{key}"} for key in users]
    )
    other = Database()
    other.configure(
        connection="small",
        connections={"small": {"url": dialect_config.url, "pool": {"max": pool, "timeout": 5}}},
    )
    try:
        client = other.connection()

        async def titles() -> list[list[str]]:
            query = LpUser.query(client=client).preload("posts").order_by("id")
            return [[p.title for p in u.posts] async for u in query.stream(batch_size=2)]

        expected = [[f"t{key}"] for key in users]
        # (a hang guard, not a timing check: a deadlock would never finish)
        done = await asyncio.wait_for(
            asyncio.gather(*(titles() for _ in range(pool - 1))), timeout=60
        )
        assert done == [expected] * (pool - 1)
        _settled(other)
    finally:
        await other.close()


async def test_reads_one_after_another_keep_their_connection_after_a_burst(
    users: list[int], dialect_config: DialectConfig
) -> None:
    """Idle connections are taken in the order of their first lean checkout: a read after a
    burst of concurrent ones runs on the connection the reads before the burst ran on (its
    prepared statements and plans are there), not on whichever finished last."""
    other = Database()
    other.configure(
        connection="wide",
        connections={"wide": {"url": dialect_config.url, "pool": {"max": 6, "timeout": 5}}},
    )
    try:
        if not other.get_connection().fast_reads:
            pytest.skip("no lean reads with the fast paths off")
        engines = other.get_connection().write_engines()
        assert await _name(other, users[0]) == "u0"
        first = engines.idle[-1][1]
        pool = engines.engine.sync_engine.pool
        for _ in range(3):
            names = await asyncio.gather(*(_name(other, key) for key in users * 8))
            assert names == [f"u{i}" for i in range(len(users))] * 8
            _settled(other)
            assert await _name(other, users[1]) == "u1"
            assert engines.idle[-1][1] is first
        # The bursts did spread over several connections.
        assert pool.checkedin() + pool.checkedout() > 1
    finally:
        await other.close()
