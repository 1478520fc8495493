"""Retries on a real three-node MariaDB Galera cluster (``scripts/cluster up`` exports
``LUCID_GALERA_URLS``): two transactions that change the same row through two different nodes
both run to their COMMIT (Galera locks nothing across nodes); the cluster certifies the first
and refuses the second (error 1213 at commit, or the same error on the next statement once
the first one's write set reaches its node). ``db.transaction(callback, retries=N)`` runs the
loser again, which then sees the winner's change: no lost update.

Skipped without ``LUCID_GALERA_URLS``; under ``CI=true`` a cluster that is named but does not
answer fails."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest

from lucid_orm.database import Database, TransactionClient
from lucid_orm.errors import LucidError, TransactionConflictError

TABLE = "lucid_galera_retries"
URLS = [u.strip() for u in os.environ.get("LUCID_GALERA_URLS", "").split(",") if u.strip()]

pytestmark = pytest.mark.skipif(
    len(URLS) < 2, reason="no Galera cluster: run scripts/cluster up and source its env file"
)


@pytest.fixture
async def nodes() -> AsyncIterator[Database]:
    """A ``Database`` with connections ``"node1"`` and ``"node2"`` on two nodes, and a table
    holding one counter row at 0."""
    # Causal reads: a node answers a read once it has applied every write the cluster
    # committed before it (Galera applies them on the other nodes asynchronously).
    causal = {"init_command": "set session wsrep_sync_wait = 1"}
    cluster = Database()
    cluster.configure(
        connection="node1",
        connections={
            "node1": {"url": URLS[0], "connect_args": causal},
            "node2": {"url": URLS[1], "connect_args": causal},
        },
    )
    try:
        for node in ("node1", "node2"):
            await cluster.raw_query("select 1", connection=node)
    except LucidError as exc:
        await cluster.close()
        reason = f"the Galera cluster in LUCID_GALERA_URLS is not reachable: {exc}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    try:
        await cluster.raw_query(f"drop table if exists {TABLE}")
        await cluster.raw_query(f"create table {TABLE} (id integer primary key, amount integer)")
        await cluster.table(TABLE).insert({"id": 1, "amount": 0})
        yield cluster
    finally:
        try:
            await cluster.raw_query(f"drop table if exists {TABLE}")
        finally:
            await cluster.close()


class Race:
    """Two read-modify-write transactions of the counter, one per node: on their first
    attempt both read, then both update, before either commits."""

    def __init__(self, cluster: Database) -> None:
        self.cluster = cluster
        self.read = [asyncio.Event(), asyncio.Event()]
        self.written = [asyncio.Event(), asyncio.Event()]
        self.attempts = [0, 0]

    async def add_one(self, trx: TransactionClient, me: int) -> None:
        self.attempts[me] += 1
        first = self.attempts[me] == 1
        row = await trx.from_(TABLE).where("id", 1).first()
        assert row is not None
        if first:
            self.read[me].set()
            await self.read[1 - me].wait()
        await trx.from_(TABLE).where("id", 1).update({"amount": row["amount"] + 1})
        if first:
            self.written[me].set()
            await self.written[1 - me].wait()

    async def run(self, retries: int) -> list[Any]:
        async def task(me: int) -> Any:
            return await self.cluster.transaction(
                lambda trx: self.add_one(trx, me), connection=f"node{me + 1}", retries=retries
            )

        gathered = asyncio.gather(task(0), task(1), return_exceptions=True)
        # A guard against a hang (a conflict never reported), not a timing assertion.
        return list(await asyncio.wait_for(gathered, 60))


async def _amount(cluster: Database, node: str) -> int:
    row = await cluster.from_(TABLE, connection=node).where("id", 1).first()
    assert row is not None
    return int(row["amount"])


async def test_a_certification_failure_is_retried_and_no_update_is_lost(
    nodes: Database,
) -> None:
    race = Race(nodes)
    assert await race.run(retries=3) == [None, None]
    assert sorted(race.attempts) == [1, 2]
    assert await _amount(nodes, "node1") == 2
    assert await _amount(nodes, "node2") == 2


async def test_without_retries_the_loser_raises_a_transaction_conflict(
    nodes: Database,
) -> None:
    race = Race(nodes)
    results = await race.run(retries=0)
    errors = [r for r in results if isinstance(r, BaseException)]
    assert len(errors) == 1, results
    (error,) = errors
    assert isinstance(error, TransactionConflictError)
    assert error.code == "E_TRANSACTION_CONFLICT"
    assert getattr(error.original, "args", (None,))[0] == 1213
    assert race.attempts == [1, 1]
    assert await _amount(nodes, "node1") == 1
