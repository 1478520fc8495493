"""A real three-node MariaDB Galera cluster (``scripts/cluster``): every node takes writes, a
write through node 1 is read from node 3, and a connection that lists several write hosts opens
its new connections on the next node when one is down, also when a node stops mid-run.

Where a statement ran shows in ``select @@port``."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from sqlalchemy.engine import make_url

from lucid_orm.database import Database
from lucid_orm.errors import LucidError
from tests.cluster.conftest import cluster

TABLE = "lucid_galera_probe"
LOGGER = "lucid_orm.replicas"


@dataclass
class Galera:
    db: Database
    ports: list[int]
    stopped: list[str] = field(default_factory=list)

    def stop(self, node: int) -> None:
        """Stop node ``node`` (1-3) for real; the fixture starts it again after the test."""
        name = f"galera{node}"
        self.stopped.append(name)
        cluster("stop", name)


async def _port(db: Database, connection: str) -> int:
    rows = await db.raw_query("select @@port as port", connection=connection, read=True)
    return int(rows[0]["port"])


async def _notes(db: Database, connection: str) -> list[str]:
    rows = await db.from_(TABLE, connection=connection).select("note").order_by("id")
    return [r["note"] for r in rows]


@pytest.fixture
async def galera(galera_urls: list[str]) -> AsyncIterator[Galera]:
    urls = galera_urls[:3]
    hosts = [f"{make_url(u).host}:{make_url(u).port}" for u in urls]
    # Causal reads: a node answers a read once it has applied every write the cluster
    # committed before it (Galera applies them on the other nodes asynchronously).
    causal = {"init_command": "set session wsrep_sync_wait = 1"}
    db = Database()
    db.configure(
        connection="cluster",
        connections={
            # Causal on both: the test reads from node 1 what node 3 wrote, and the other way.
            "node1": {"url": urls[0], "connect_args": causal},
            "node3": {"url": urls[2], "connect_args": causal},
            # Several write hosts: new connections go to the first one that answers.
            "cluster": {
                "replicas": {"write": [{"url": u} for u in urls]},
                "pool": {"pre_ping": True},
                "connect_args": causal,
            },
            # The same with one URL and a hosts list, without pre_ping.
            "hosts": {"url": urls[0], "hosts": hosts, "connect_args": causal},
        },
    )
    found = Galera(db, [int(make_url(u).port or 3306) for u in urls])
    try:
        await db.raw_query(f"drop table if exists {TABLE}", connection="node1")
        await db.raw_query(
            f"create table {TABLE} (id integer auto_increment primary key, note varchar(40))",
            connection="node1",
        )
        yield found
    finally:
        for name in found.stopped:
            cluster("start", name)
        with contextlib.suppress(LucidError):
            await db.raw_query(f"drop table if exists {TABLE}", connection="node1")
        await db.close()


class TestGalera:
    async def test_a_write_through_node_1_is_read_from_node_3(self, galera: Galera) -> None:
        db = galera.db
        assert await _port(db, "node1") == galera.ports[0]
        assert await _port(db, "node3") == galera.ports[2]
        size = await db.raw_query("show status like 'wsrep_cluster_size'", connection="node3")
        assert size[0]["Value"] == "3"
        await db.table(TABLE, connection="node1").insert({"note": "from node 1"})
        assert await _notes(db, "node3") == ["from node 1"]
        await db.table(TABLE, connection="node3").insert({"note": "from node 3"})
        assert await _notes(db, "node1") == ["from node 1", "from node 3"]

    async def test_new_connections_skip_a_node_that_is_down(
        self, galera: Galera, caplog: pytest.LogCaptureFixture
    ) -> None:
        db = galera.db
        caplog.set_level(logging.INFO, logger=LOGGER)
        galera.stop(1)
        await db.table(TABLE, connection="cluster").insert({"note": "failed over"})
        assert await _port(db, "cluster") == galera.ports[1]
        assert await _port(db, "hosts") == galera.ports[1]
        await db.table(TABLE, connection="hosts").insert({"note": "hosts list"})
        assert await _notes(db, "node3") == ["failed over", "hosts list"]
        warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        # One warning per connection that found node 1 down, however many connections it
        # opened meanwhile (node 1 is skipped during its cool-down).
        assert len(warnings) == 2
        assert all("write host 1 of 3" in w and "unreachable" in w for w in warnings)
        assert any('of "cluster"' in w for w in warnings)
        assert any('of "hosts"' in w for w in warnings)

    async def test_a_node_stopped_mid_run(self, galera: Galera) -> None:
        db = galera.db
        await db.table(TABLE, connection="cluster").insert({"note": "before"})
        assert await _port(db, "cluster") == galera.ports[0]
        assert await _port(db, "hosts") == galera.ports[0]
        galera.stop(1)
        # pre_ping finds the pooled connection to node 1 dead before the write uses it; its
        # replacement is opened on node 2.
        await db.table(TABLE, connection="cluster").insert({"note": "after"})
        assert await _port(db, "cluster") == galera.ports[1]
        # Without pre_ping, a read on a dropped connection is retried on a new one.
        assert await _port(db, "hosts") == galera.ports[1]
        await db.table(TABLE, connection="hosts").insert({"note": "hosts after"})
        assert await _notes(db, "node3") == ["before", "after", "hosts after"]
        async with db.transaction(connection="cluster") as trx:
            await trx.table(TABLE).insert({"note": "in trx"})
        assert await _notes(db, "cluster") == ["before", "after", "hosts after", "in trx"]


class TestConfiguration:
    def test_bad_host_lists(self) -> None:
        cases: list[dict[str, object]] = [
            {"url": "mysql://root@127.0.0.1/x", "hosts": []},
            {"url": "mysql://root@127.0.0.1/x", "hosts": "127.0.0.1:3307"},
            {"url": "mysql://root@127.0.0.1/x", "hosts": ["127.0.0.1:port"]},
            {"hosts": ["127.0.0.1:3307"]},
            {"replicas": {"write": []}},
            {"url": "mysql://root@127.0.0.1/x", "replica_cooldown": -1},
            {"url": "mysql://root@127.0.0.1/x", "max_replica_lag": "1"},
        ]
        for config in cases:
            with pytest.raises(LucidError) as info:
                Database().configure(connections={"c": config})
            assert info.value.code == "E_INVALID_CONFIG", config

    def test_mode_must_be_write(self) -> None:
        db = Database()
        db.configure(url="mysql://root@127.0.0.1/x")
        with pytest.raises(LucidError) as info:
            db.connection(mode="read")  # type: ignore[arg-type]
        assert info.value.code == "E_INVALID_ARGUMENT"
