"""Read replicas (PostgreSQL): selects read a replica (round robin), writes and transactions
use the write connection.

The "replica" is a second database on the same server (``test_replica``, or
``LUCID_PG_REPLICA_URL``) holding different rows, so where a query ran shows in what it returns.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from lucid_orm.database import Database, QueryEvent
from lucid_orm.errors import LucidError
from tests.helpers import PG_REPLICA_URL, PG_URL, count_queries

REPLICA_URL = PG_REPLICA_URL

TABLE = "lucid_replica_probe"


@dataclass
class Replicated:
    db: Database
    events: list[QueryEvent]


async def _where(db: Database, connection: str) -> list[str]:
    return [r["origin"] for r in await db.from_(TABLE, connection=connection).order_by("id")]


@pytest.fixture
async def replicated(dialect: str) -> AsyncIterator[Replicated]:
    if dialect != "postgresql":
        pytest.skip("replicas are exercised on PostgreSQL (two databases on one server)")
    db = Database()
    events: list[QueryEvent] = []
    db.on_query(events.append)
    db.configure(
        connection="replicated",
        connections={
            "primary": {"url": PG_URL},
            "replica": {"url": REPLICA_URL},
            "replicated": {"replicas": {"write": {"url": PG_URL}, "read": [{"url": REPLICA_URL}]}},
            "round_robin": {
                "replicas": {
                    "write": {"url": PG_URL},
                    "read": [{"url": REPLICA_URL}, {"url": PG_URL}],
                }
            },
        },
    )
    try:
        for name in ("primary", "replica"):
            try:
                await db.raw_query(f"drop table if exists {TABLE}", connection=name)
            except LucidError as exc:
                if name == "replica" and os.environ.get("CI", "").lower() != "true":
                    pytest.skip(f"the replica database is not reachable: {exc}")
                raise
            await db.raw_query(
                f"create table {TABLE} (id serial primary key, origin varchar(20))",
                connection=name,
            )
            await db.table(TABLE, connection=name).insert({"origin": name})
        events.clear()
        yield Replicated(db, events)
    finally:
        for name in ("primary", "replica"):
            with contextlib.suppress(LucidError):
                await db.raw_query(f"drop table if exists {TABLE}", connection=name)
        await db.close()


class TestReplicas:
    async def test_selects_read_the_replica(self, replicated: Replicated) -> None:
        db = replicated.db
        assert await _where(db, "replicated") == ["replica"]
        assert await db.from_(TABLE).count_rows() == 1
        assert await db.from_(TABLE).where("origin", "replica").exists()
        assert (await db.from_(TABLE).first() or {})["origin"] == "replica"
        assert await db.raw_query(f"select origin from {TABLE}", read=True) == [
            {"origin": "replica"}
        ]
        assert all(e.connection == "replicated" for e in replicated.events)

    async def test_writes_go_to_the_primary(self, replicated: Replicated) -> None:
        db = replicated.db
        await db.table(TABLE).insert({"origin": "written"})
        assert await _where(db, "primary") == ["primary", "written"]
        assert await _where(db, "replica") == ["replica"]
        assert await _where(db, "replicated") == ["replica"]

        assert await db.from_(TABLE).where("origin", "primary").update({"origin": "updated"}) == 1
        assert await _where(db, "primary") == ["updated", "written"]
        assert await db.from_(TABLE).where("origin", "written").delete() == 1
        assert await db.raw_query(f"insert into {TABLE} (origin) values (?)", ["raw"]) == 1
        assert await _where(db, "primary") == ["updated", "raw"]
        assert await _where(db, "replica") == ["replica"]

    async def test_transactions_use_the_primary(self, replicated: Replicated) -> None:
        db = replicated.db
        async with db.transaction() as trx:
            assert [r["origin"] for r in await trx.from_(TABLE)] == ["primary"]
            await trx.table(TABLE).insert({"origin": "in trx"})
            assert await trx.from_(TABLE).count_rows() == 2
        assert await _where(db, "primary") == ["primary", "in trx"]
        assert await _where(db, "replicated") == ["replica"]

    @pytest.mark.parametrize("fast", [True, False], ids=["fast", "slow"])
    async def test_streams_read_the_replica(self, replicated: Replicated, fast: bool) -> None:
        db = replicated.db
        db.get_connection("replicated").fast_reads = fast
        assert [r["origin"] async for r in db.from_(TABLE).select("origin").stream()] == ["replica"]
        async with db.transaction() as trx:
            assert [r["origin"] async for r in trx.from_(TABLE).stream()] == ["primary"]
        assert [e.connection for e in replicated.events] == ["replicated", "replicated"]

    async def test_round_robin(self, replicated: Replicated) -> None:
        db = replicated.db
        seen = [(await _where(db, "round_robin"))[0] for _ in range(4)]
        assert seen in (
            ["replica", "primary", "replica", "primary"],
            ["primary", "replica", "primary", "replica"],
        )
        with count_queries(db) as log:
            await db.table(TABLE, connection="round_robin").insert({"origin": "rr"})
        assert log.count == 1
        assert await _where(db, "primary") == ["primary", "rr"]
        assert await _where(db, "replica") == ["replica"]
