"""Statements are routed by the API that issued them, never by sniffing SQL (issue 12,
finding 6): ``raw_query`` runs on the write connection unless ``read=True``; builders' reads
may go to a replica; and no read path rolls back work a SELECT did (a stored function that
writes), on MariaDB's lean path included."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest

from lucid_orm.database import Database
from lucid_orm.errors import LucidError
from tests.helpers import PG_REPLICA_URL, PG_URL, DialectConfig

REPLICA_URL = PG_REPLICA_URL

LOG = "rt_log"
VIEW = "rt_calls"


def _function_ddl(dialect: str) -> list[str]:
    """A stored function that writes a row (``rt_note(text)``) and a view that calls it."""
    if dialect == "postgresql":
        return [
            f"create table {LOG} (id serial primary key, note varchar(50))",
            f"create function rt_note(v varchar) returns integer language sql as "
            f"'insert into {LOG} (note) values (v); select 1'",
            f"create view {VIEW} as select rt_note('view') as r",
        ]
    return [
        f"create table {LOG} (id integer auto_increment primary key, note varchar(50))",
        f"create function rt_note(v varchar(50)) returns integer modifies sql data "
        f"begin insert into {LOG} (note) values (v); return 1; end",
        f"create view {VIEW} as select rt_note('view') as r",
    ]


async def _drop_function(db: Database, dialect: str, connection: str | None = None) -> None:
    for sql in (
        f"drop view if exists {VIEW}",
        "drop function if exists rt_note" + ("(varchar)" if dialect == "postgresql" else ""),
        f"drop table if exists {LOG}",
    ):
        await db.raw_query(sql, connection=connection)


async def _notes(url: str) -> list[str]:
    """The log rows, read back through a connection of their own."""
    reader = Database()
    reader.configure(url=url)
    try:
        rows = await reader.from_(LOG).select("note").order_by("id")
        return [r["note"] for r in rows]
    finally:
        await reader.close()


# -- a SELECT that writes: nothing is rolled back ----------------------------------------------


@pytest.fixture
async def writing_function(database: Database, dialect: str) -> AsyncIterator[None]:
    if dialect == "sqlite":
        pytest.skip("SQLite has no stored functions (a SELECT cannot write)")
    await _drop_function(database, dialect)
    for sql in _function_ddl(dialect):
        await database.raw_query(sql)
    try:
        yield
    finally:
        await _drop_function(database, dialect)


class TestSelectsThatWrite:
    async def test_the_writes_of_a_select_persist_on_every_path(
        self,
        database: Database,
        dialect_config: DialectConfig,
        fast_paths: bool,
        writing_function: None,
    ) -> None:
        assert await database.raw_query("select rt_note(?) as r", ["raw"]) == [{"r": 1}]
        assert await database.raw_query("select rt_note(?) as r", ["raw read"], read=True) == [
            {"r": 1}
        ]
        rows = await database.query().select(database.raw("rt_note(?) as r", ["builder"]))
        assert rows == [{"r": 1}]
        # A cacheable builder select: the lean read path when it is on.
        assert await database.from_(VIEW).select("r") == [{"r": 1}]
        assert await database.from_(VIEW).select("r").first() == {"r": 1}
        assert await _notes(dialect_config.url) == ["raw", "raw read", "builder", "view", "view"]

    async def test_after_a_select_that_wrote_the_pool_is_clean(
        self,
        database: Database,
        dialect_config: DialectConfig,
        fast_paths: bool,
        writing_function: None,
    ) -> None:
        # The connection that ran the SELECT goes back without an open transaction: a later
        # transaction's rollback can't take the SELECT's write with it.
        await database.from_(VIEW).select("r")
        async with database.transaction() as trx:
            await trx.raw_query(f"insert into {LOG} (note) values (?)", ["in trx"])
            await trx.rollback()
        assert await _notes(dialect_config.url) == ["view"]


class TestRawWritesReturningRows:
    async def test_insert_returning_through_raw_query_is_committed(
        self, database: Database, dialect_config: DialectConfig, fast_paths: bool
    ) -> None:
        rows = await database.raw_query(
            "insert into tags (name) values (?) returning name", ["returned"]
        )
        assert rows == [{"name": "returned"}]
        reader = Database()
        reader.configure(url=dialect_config.url)
        try:
            assert await reader.from_("tags").select("name") == [{"name": "returned"}]
        finally:
            await reader.close()


# -- replicas: raw_query goes to the primary unless read=True ----------------------------------

TABLE = "rt_probe"


@pytest.fixture
async def replicated(dialect: str) -> AsyncIterator[Database]:
    if dialect != "postgresql":
        pytest.skip("replicas are exercised on PostgreSQL (two databases on one server)")
    db = Database()
    db.configure(
        connection="replicated",
        connections={
            "primary": {"url": PG_URL},
            "replica": {"url": REPLICA_URL},
            "replicated": {"replicas": {"write": {"url": PG_URL}, "read": [{"url": REPLICA_URL}]}},
        },
    )
    try:
        for name in ("primary", "replica"):
            await _drop_function(db, dialect, name)
            await db.raw_query(f"drop table if exists {TABLE}", connection=name)
            await db.raw_query(
                f"create table {TABLE} (id serial primary key, origin varchar(20))",
                connection=name,
            )
            await db.table(TABLE, connection=name).insert({"origin": name})
            # The function exists on both sides: a call sent to the replica would succeed
            # there, so where its row lands shows where it ran.
            for sql in _function_ddl(dialect):
                await db.raw_query(sql, connection=name)
        yield db
    finally:
        for name in ("primary", "replica"):
            with contextlib.suppress(LucidError):
                await db.raw_query(f"drop table if exists {TABLE}", connection=name)
                await _drop_function(db, dialect, name)
        await db.close()


def _origin(rows: list[dict[str, object]]) -> list[object]:
    return [r["origin"] for r in rows]


class TestReplicaRouting:
    async def test_raw_query_runs_on_the_primary(self, replicated: Database) -> None:
        db = replicated
        sql = f"select origin from {TABLE}"
        assert _origin(await db.raw_query(sql)) == ["primary"]
        assert _origin(await db.raw_query("  SELECT origin FROM " + TABLE)) == ["primary"]
        assert _origin(await db.connection().raw_query(sql)) == ["primary"]

    async def test_read_true_opts_in_to_the_replica(self, replicated: Database) -> None:
        db = replicated
        sql = f"select origin from {TABLE}"
        assert _origin(await db.raw_query(sql, read=True)) == ["replica"]
        assert _origin(await db.connection("replicated").raw_query(sql, read=True)) == ["replica"]
        # Whatever the SQL looks like: routing never reads it.
        cte = f"with t as (select origin from {TABLE}) select origin from t"
        assert _origin(await db.raw_query(cte, read=True)) == ["replica"]
        assert _origin(await db.raw_query(cte)) == ["primary"]
        # Builders' reads still go to the replica.
        assert _origin(await db.from_(TABLE).select("origin")) == ["replica"]

    async def test_a_select_that_writes_runs_on_the_primary(self, replicated: Database) -> None:
        db = replicated
        assert await db.raw_query("select rt_note(?) as r", ["primary please"]) == [{"r": 1}]
        assert await _notes(PG_URL) == ["primary please"]
        assert await _notes(REPLICA_URL) == []

    async def test_read_true_inside_a_transaction_stays_on_its_connection(
        self, replicated: Database
    ) -> None:
        db = replicated
        async with db.transaction() as trx:
            await trx.table(TABLE).insert({"origin": "in trx"})
            rows = await trx.raw_query(f"select origin from {TABLE} order by id", read=True)
            assert _origin(rows) == ["primary", "in trx"]
