"""A real PostgreSQL hot standby (``scripts/cluster``: ``pg_basebackup -R``, streaming from the
primary): reads go to the standby, writes and transactions to the primary; a write shows on the
standby once replayed; a stopped standby sends reads to the primary; ``sticky`` scopes read
their own writes; ``max_replica_lag`` skips a standby whose replay is paused.

Where a statement ran shows in what it returns: ``inet_server_port()`` (5432 the primary, 5433
the standby), and, while replay is paused (``pg_wal_replay_pause()``), whether a row written on
the primary is there."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.engine import make_url

from lucid_orm import BaseModel, column, db
from lucid_orm.database import Database
from lucid_orm.errors import LucidError, QueryError
from tests.cluster.conftest import Standby, cluster

TABLE = "lucid_standby_probe"
# inet_server_port() of each server (scripts/cluster: 5432 and 5433).
PRIMARY_PORT = make_url(os.environ.get("LUCID_PG_PRIMARY_URL") or "postgresql://h:5432/d").port
STANDBY_PORT = make_url(os.environ.get("LUCID_PG_STANDBY_URL") or "postgresql://h:5433/d").port
LOGGER = "lucid_orm.replicas"


class Probe(BaseModel):
    table = TABLE
    id: int = column(is_primary=True)
    note: str | None = column()


async def _port(db: Database, connection: str) -> int:
    row = await db.query(connection).select(db.raw("inet_server_port() as port")).first()
    assert row is not None
    return int(row["port"])


async def _notes(db: Database, connection: str) -> list[str]:
    rows = await db.from_(TABLE, connection=connection).select("note").order_by("id")
    return [r["note"] for r in rows]


async def _caught_up(db: Database) -> None:
    """Wait until the standby has replayed everything the primary has written so far."""
    row = (await db.raw_query("select pg_current_wal_lsn()::text as lsn", connection="primary"))[0]
    for _ in range(600):
        done = await db.raw_query(
            "select pg_last_wal_replay_lsn() >= cast(? as pg_lsn) as done",
            [row["lsn"]],
            connection="standby",
        )
        if done[0]["done"]:
            return
        await asyncio.sleep(0.05)
    pytest.fail("the standby did not replay the primary's WAL within 30 s")


async def _pause_replay(db: Database) -> None:
    await db.raw_query("select pg_wal_replay_pause()", connection="standby")
    for _ in range(600):
        state = await db.raw_query(
            "select pg_get_wal_replay_pause_state() as s", connection="standby"
        )
        if state[0]["s"] == "paused":
            return
        await asyncio.sleep(0.05)
    pytest.fail("the standby's replay did not pause")


def _replicated(primary: str, standby: str, **options: object) -> dict[str, object]:
    return {**options, "replicas": {"write": {"url": primary}, "read": [{"url": standby}]}}


@pytest.fixture
async def pg(standby_urls: Standby) -> AsyncIterator[Database]:
    primary, standby = standby_urls.primary, standby_urls.standby
    # The global manager: models run on it (these tests run in a pytest process of their own).
    db.configure(
        connection="replicated",
        connections={
            "primary": {"url": primary},
            "standby": {"url": standby},
            "replicated": _replicated(primary, standby),
            "sticky": _replicated(primary, standby, sticky=True),
            "lagged": _replicated(primary, standby, max_replica_lag=0.2, replica_lag_interval=0),
            "fallback": _replicated(primary, standby, replica_cooldown=1),
        },
    )
    try:
        await db.raw_query(f"drop table if exists {TABLE}", connection="primary")
        await db.raw_query(
            f"create table {TABLE} (id serial primary key, note varchar(40))",
            connection="primary",
        )
        await _caught_up(db)
        yield db
    finally:
        with contextlib.suppress(LucidError):
            await db.raw_query("select pg_wal_replay_resume()", connection="standby")
        with contextlib.suppress(LucidError):
            await db.raw_query(f"drop table if exists {TABLE}", connection="primary")
        await db.close()


class TestStandby:
    async def test_reads_go_to_the_standby(self, pg: Database) -> None:
        assert PRIMARY_PORT != STANDBY_PORT
        assert await _port(pg, "replicated") == STANDBY_PORT
        assert await pg.raw_query(
            "select inet_server_port() as port", connection="replicated", read=True
        ) == [{"port": STANDBY_PORT}]
        # A real standby: it is in recovery and refuses writes.
        assert await pg.raw_query("select pg_is_in_recovery() as r", connection="standby") == [
            {"r": True}
        ]
        with pytest.raises(QueryError, match="read-only transaction"):
            await pg.table(TABLE, connection="standby").insert({"note": "x"})

    async def test_writes_and_transactions_go_to_the_primary(self, pg: Database) -> None:
        await pg.table(TABLE, connection="replicated").insert({"note": "written"})
        assert await _notes(pg, "primary") == ["written"]
        assert await pg.raw_query("select inet_server_port() as port") == [{"port": PRIMARY_PORT}]
        async with pg.transaction(connection="replicated") as trx:
            row = await trx.query().select(pg.raw("inet_server_port() as port")).first()
            assert row == {"port": PRIMARY_PORT}
            await trx.table(TABLE).insert({"note": "in trx"})
        assert await _notes(pg, "primary") == ["written", "in trx"]

    async def test_a_write_shows_on_the_standby_once_replayed(self, pg: Database) -> None:
        await pg.table(TABLE, connection="replicated").insert({"note": "replayed"})
        await _caught_up(pg)
        assert await _notes(pg, "replicated") == ["replayed"]
        found = await Probe.query(client=pg.connection("replicated")).where("note", "replayed")
        assert [p.note for p in found] == ["replayed"]
        assert await _port(pg, "replicated") == STANDBY_PORT


class TestStandbyDown:
    async def test_reads_fall_back_to_the_primary(
        self, pg: Database, caplog: pytest.LogCaptureFixture
    ) -> None:
        await pg.table(TABLE, connection="primary").insert({"note": "one"})
        await _caught_up(pg)
        # Pooled connections to the standby exist when it goes away.
        assert await _port(pg, "fallback") == STANDBY_PORT
        probe_id = (await pg.from_(TABLE, connection="primary").first() or {})["id"]
        caplog.set_level(logging.INFO, logger=LOGGER)
        cluster("stop", "standby")
        try:
            for _ in range(3):
                assert await _port(pg, "fallback") == PRIMARY_PORT
                assert await _notes(pg, "fallback") == ["one"]
                found = await Probe.find(probe_id, client=pg.connection("fallback"))
                assert found is not None and found.note == "one"
                rows = [r async for r in pg.from_(TABLE, connection="fallback").stream()]
                assert [r["note"] for r in rows] == ["one"]
            warnings = [r for r in caplog.records if r.name == LOGGER and r.levelname == "WARNING"]
            assert len(warnings) == 1
            assert 'read replica 1 of 1 of "fallback"' in warnings[0].getMessage()
            assert "unreachable" in warnings[0].getMessage()
        finally:
            cluster("start", "standby")
        # After the cool-down (1 s) the standby is tried again, and answers.
        await asyncio.sleep(1.1)
        assert await _port(pg, "fallback") == STANDBY_PORT
        assert any("answers again" in r.getMessage() for r in caplog.records if r.name == LOGGER)
        warnings = [r for r in caplog.records if r.name == LOGGER and r.levelname == "WARNING"]
        assert len(warnings) == 1

    async def test_a_transaction_is_never_moved(self, pg: Database) -> None:
        """The fallback is for reads outside transactions: a transaction runs on the primary
        whatever the standby does, and a failed one is not retried elsewhere."""
        cluster("stop", "standby")
        try:
            async with pg.transaction(connection="fallback") as trx:
                await trx.table(TABLE).insert({"note": "trx"})
            assert await _notes(pg, "fallback") == ["trx"]
        finally:
            cluster("start", "standby")


class TestSticky:
    async def test_reads_after_a_write_use_the_primary_in_that_scope(self, pg: Database) -> None:
        await _pause_replay(pg)
        async with pg.sticky_scope():
            assert await _port(pg, "sticky") == STANDBY_PORT
            await pg.table(TABLE, connection="sticky").insert({"note": "mine"})
            assert await _notes(pg, "sticky") == ["mine"]
            assert await _port(pg, "sticky") == PRIMARY_PORT
            row = (await pg.from_(TABLE, connection="primary").first()) or {}
            found = await Probe.find(row["id"], client=pg.connection("sticky"))
            assert found is not None and found.note == "mine"
            # Only the connection written through follows its writes.
            assert await _notes(pg, "replicated") == []
        async with pg.sticky_scope():
            assert await _notes(pg, "sticky") == []
            assert await _port(pg, "sticky") == STANDBY_PORT

    async def test_each_task_has_its_own_scope(self, pg: Database) -> None:
        await _pause_replay(pg)
        wrote = asyncio.Event()

        async def writer() -> list[str]:
            await pg.table(TABLE, connection="sticky").insert({"note": "task"})
            wrote.set()
            return await _notes(pg, "sticky")

        async def reader() -> list[str]:
            await wrote.wait()
            return await _notes(pg, "sticky")

        async with pg.sticky_scope():
            seen_by_writer, seen_by_reader = await asyncio.gather(writer(), reader())
            # The writer's scope was its own: this task did not write.
            assert await _notes(pg, "sticky") == []
            # A task started after a write of this scope sees it.
            await pg.table(TABLE, connection="sticky").insert({"note": "parent"})
            seen_by_child = await asyncio.create_task(_notes(pg, "sticky"))
        assert seen_by_writer == ["task"]
        assert seen_by_reader == []
        assert seen_by_child == ["task", "parent"]

    async def test_a_scope_per_web_request(self, pg: Database) -> None:
        fastapi = pytest.importorskip("fastapi")
        httpx = pytest.importorskip("httpx")
        from lucid_orm.contrib.fastapi import StickyScopeMiddleware

        app = fastapi.FastAPI()
        app.add_middleware(StickyScopeMiddleware)

        @app.post("/notes")
        async def write() -> list[str]:
            await pg.table(TABLE, connection="sticky").insert({"note": "request"})
            return await _notes(pg, "sticky")

        @app.get("/notes")
        async def read() -> list[str]:
            return await _notes(pg, "sticky")

        await _pause_replay(pg)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            # The request that wrote reads its write; the next request reads the standby.
            assert (await client.post("/notes")).json() == ["request"]
            assert (await client.get("/notes")).json() == []

    async def test_a_transaction_makes_the_scope_sticky(self, pg: Database) -> None:
        await _pause_replay(pg)
        async with pg.sticky_scope():
            async with pg.transaction(connection="sticky") as trx:
                await trx.table(TABLE).insert({"note": "committed"})
            assert await _notes(pg, "sticky") == ["committed"]

    async def test_without_sticky_reads_stay_on_the_replica(self, pg: Database) -> None:
        await _pause_replay(pg)
        async with pg.sticky_scope():
            await pg.table(TABLE, connection="replicated").insert({"note": "unseen"})
            assert await _notes(pg, "replicated") == []
            # Forced per client: mode="write" reads the primary.
            client = pg.connection("replicated", mode="write")
            assert client.mode == "write"
            assert [r["note"] for r in await client.from_(TABLE)] == ["unseen"]
            found = await Probe.query(client=client).where("note", "unseen").first()
            assert found is not None
            assert pg.connection("replicated").mode == "dual"


class TestReplicaLag:
    async def test_a_lagging_standby_is_skipped(self, pg: Database) -> None:
        assert await _port(pg, "lagged") == STANDBY_PORT
        await _pause_replay(pg)
        await pg.table(TABLE, connection="primary").insert({"note": "late"})
        # Replay is paused: the standby falls further behind until it is over the limit
        # (0.2 s), then the reads go to the primary.
        for _ in range(600):
            if await _notes(pg, "lagged") == ["late"]:
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail("the lagging standby kept serving reads")
        assert await _port(pg, "lagged") == PRIMARY_PORT
        assert await _notes(pg, "replicated") == []
        await pg.raw_query("select pg_wal_replay_resume()", connection="standby")
        await _caught_up(pg)
        assert await _port(pg, "lagged") == STANDBY_PORT
        assert await _notes(pg, "lagged") == ["late"]

    def test_max_replica_lag_needs_postgresql(self) -> None:
        db = Database()
        with pytest.raises(LucidError) as info:
            db.configure(
                connections={
                    "m": {
                        "max_replica_lag": 1,
                        "replicas": {
                            "write": {"url": "mysql://root@127.0.0.1:3307/x"},
                            "read": [{"url": "mysql://root@127.0.0.1:3308/x"}],
                        },
                    }
                }
            )
        assert info.value.code == "E_INVALID_CONFIG"
        assert "max_replica_lag is supported on PostgreSQL" in str(info.value)
