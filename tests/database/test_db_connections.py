"""Connections: configuration, named connections, close/re-configure, in-memory SQLite, pools."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from lucid_orm.database import Database, QueryClient, QueryEvent
from lucid_orm.errors import LucidError
from tests.helpers import DialectConfig

FULL_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "mysql": "mysql+asyncmy",
}


@pytest.fixture
async def private() -> AsyncIterator[Database]:
    """A ``Database`` of the test's own, closed afterwards (the global ``db`` is left alone)."""
    instance = Database()
    try:
        yield instance
    finally:
        await instance.close()


class TestConfigure:
    async def test_configured_for_the_dialect(self, database: Database, dialect: str) -> None:
        assert database.is_configured
        assert database.primary_connection_name == dialect
        assert database.dialect_name() == dialect
        client = database.connection()
        assert isinstance(client, QueryClient)
        assert client is database.connection(dialect)
        assert client.connection_name == dialect
        assert client.dialect_name == dialect
        assert client.is_transaction is False
        assert isinstance(database.engine(), AsyncEngine)

    async def test_url_shorthand_names_the_connection_default(
        self, private: Database, tmp_path: Path
    ) -> None:
        private.configure(url=f"sqlite:///{tmp_path / 'x.db'}")
        assert private.primary_connection_name == "default"
        assert await private.raw_query("select 1 as one") == [{"one": 1}]

    async def test_full_sqlalchemy_urls(
        self, private: Database, dialect: str, dialect_config: DialectConfig
    ) -> None:
        url = make_url(dialect_config.url).set(drivername=FULL_DRIVERS[dialect])
        private.configure(url=url.render_as_string(hide_password=False))
        assert private.dialect_name() == dialect
        assert await private.raw_query("select 1 as one") == [{"one": 1}]

    async def test_postgres_alias_scheme(self, private: Database, dialect: str) -> None:
        if dialect != "postgresql":
            pytest.skip("postgres:// is PostgreSQL's")
        from tests.helpers import PG_URL

        private.configure(url=PG_URL.replace("postgresql://", "postgres://", 1))
        assert await private.raw_query("select 1 as one") == [{"one": 1}]

    async def test_several_named_connections(
        self, private: Database, dialect: str, dialect_config: DialectConfig
    ) -> None:
        events: list[QueryEvent] = []
        private.on_query(events.append)
        private.configure(
            connection=dialect,
            connections={**dialect_config.connections, "mem": {"url": "sqlite://:memory:"}},
        )
        await private.raw_query("create table notes (body text)", connection="mem")
        await private.table("notes", connection="mem").insert({"body": "hi"})
        assert await private.from_("notes", connection="mem") == [{"body": "hi"}]
        assert await private.from_("tags").count_rows() == 0  # the default connection
        assert private.dialect_name("mem") == "sqlite"
        assert [e.connection for e in events] == ["mem", "mem", "mem", dialect]

    async def test_close_one_connection(
        self, private: Database, dialect: str, dialect_config: DialectConfig
    ) -> None:
        private.configure(
            connection=dialect,
            connections={**dialect_config.connections, "mem": {"url": "sqlite://:memory:"}},
        )
        await private.raw_query("select 1", connection="mem")
        await private.close("mem")
        with pytest.raises(LucidError) as info:
            await private.raw_query("select 1", connection="mem")
        assert info.value.code == "E_CONNECTION_CLOSED"
        assert await private.raw_query("select 1 as one") == [{"one": 1}]

    async def test_async_with_closes(self, tmp_path: Path) -> None:
        instance = Database()
        instance.configure(url=f"sqlite:///{tmp_path / 'x.db'}")
        async with instance as entered:
            assert entered is instance
            assert await instance.raw_query("select 1 as one") == [{"one": 1}]
        with pytest.raises(LucidError) as info:
            await instance.raw_query("select 1")
        assert info.value.code == "E_CONNECTION_CLOSED"
        instance.configure(url=f"sqlite:///{tmp_path / 'x.db'}")  # configure again after close
        assert await instance.raw_query("select 2 as two") == [{"two": 2}]
        await instance.close()

    async def test_close_and_configure_the_global_db(
        self, database: Database, dialect_config: DialectConfig
    ) -> None:
        await database.table("tags").insert({"name": "kept"})
        await database.close()
        dialect_config.configure()
        assert [r["name"] for r in await database.from_("tags")] == ["kept"]

    def test_invalid_configurations(self) -> None:
        cases: list[tuple[dict[str, object], str]] = [
            ({}, "E_INVALID_CONFIG"),
            ({"url": "oracle://scott@localhost/x"}, "E_INVALID_URL"),
            ({"url": "not a url"}, "E_INVALID_URL"),
            ({"connections": {"a": {}}}, "E_INVALID_CONFIG"),
            (
                {"connections": {"a": {"url": "sqlite://"}}, "connection": "b"},
                "E_UNMANAGED_DB_CONNECTION",
            ),
            (
                {"connections": {"r": {"replicas": {"write": {"url": "sqlite://"}}}}},
                "E_INVALID_CONFIG",
            ),
        ]
        for kwargs, code in cases:
            with pytest.raises(LucidError) as info:
                Database().configure(**kwargs)  # type: ignore[arg-type]
            assert info.value.code == code, kwargs

    def test_not_configured(self) -> None:
        with pytest.raises(LucidError) as info:
            Database().connection()
        assert info.value.code == "E_UNMANAGED_DB_CONNECTION"
        assert "db.configure" in str(info.value)


class TestMemorySqlite:
    @pytest.mark.parametrize("url", ["sqlite://:memory:", "sqlite:///:memory:", "sqlite://"])
    async def test_data_persists_across_queries(self, private: Database, url: str) -> None:
        private.configure(url=url)
        await private.raw_query("create table notes (id integer primary key, body text)")
        await private.table("notes").insert({"body": "a"})
        async with private.transaction() as trx:
            await trx.table("notes").insert({"body": "b"})
        assert [r["body"] for r in await private.from_("notes").order_by("id")] == ["a", "b"]

    async def test_two_tasks_transactions_do_not_interleave(self, private: Database) -> None:
        private.configure(url="sqlite://:memory:")
        await private.raw_query("create table notes (body text)")
        log: list[str] = []

        async def worker(name: str) -> None:
            async with private.transaction() as trx:
                log.append(f"{name} start")
                await trx.table("notes").insert({"body": name})
                await asyncio.sleep(0.02)
                assert [r["body"] for r in await trx.from_("notes").where("body", name)] == [name]
                log.append(f"{name} end")

        await asyncio.gather(worker("a"), worker("b"))
        assert log in (
            ["a start", "a end", "b start", "b end"],
            ["b start", "b end", "a start", "a end"],
        )
        assert await private.from_("notes").count_rows() == 2

    async def test_a_query_waits_for_another_tasks_transaction(self, private: Database) -> None:
        private.configure(url="sqlite://:memory:")
        await private.raw_query("create table notes (body text)")
        trx = await private.transaction()
        await trx.table("notes").insert({"body": "a"})
        reader = asyncio.create_task(private.from_("notes").count_rows())
        await asyncio.sleep(0.05)
        assert not reader.done()
        await trx.rollback()
        assert await reader == 0

    async def test_the_task_holding_a_transaction_does_not_deadlock(
        self, private: Database
    ) -> None:
        # One connection: while this task's transaction holds it, this task's other queries
        # and transactions run inside that transaction (waiting would hang forever).
        private.configure(url="sqlite://:memory:")
        await private.raw_query("create table notes (body text)")
        trx = await private.transaction()
        await trx.table("notes").insert({"body": "a"})
        async with asyncio.timeout(2):  # same task (asyncio.wait_for would start another)
            assert await private.from_("notes").count_rows() == 1
            nested = await private.transaction()
            await nested.table("notes").insert({"body": "b"})
            await nested.rollback()
        await trx.rollback()
        assert await private.from_("notes").count_rows() == 0

    async def test_failed_begin_releases_the_connection(self, private: Database) -> None:
        private.configure(url="sqlite://:memory:")
        with pytest.raises(LucidError):
            async with private.transaction() as trx:
                await trx.raw_query("selec")
        assert await private.raw_query("select 1 as one") == [{"one": 1}]


class TestPool:
    async def test_max_caps_the_pool(
        self, private: Database, dialect: str, dialect_config: DialectConfig
    ) -> None:
        private.configure(
            connection=dialect,
            connections={dialect: {"url": dialect_config.url, "pool": {"max": 1}}},
        )
        trx = await private.transaction()  # holds the only connection
        await trx.from_("tags").count_rows()
        reader = asyncio.create_task(private.from_("tags").count_rows())
        await asyncio.sleep(0.1)
        assert not reader.done()
        await trx.commit()
        assert await asyncio.wait_for(reader, 5) == 0
        pool = private.engine().pool
        assert pool.size() == 1  # type: ignore[attr-defined]

    async def test_pool_timeout(
        self, private: Database, dialect: str, dialect_config: DialectConfig
    ) -> None:
        private.configure(
            connection=dialect,
            connections={dialect: {"url": dialect_config.url, "pool": {"max": 1, "timeout": 0.1}}},
        )
        trx = await private.transaction()
        try:
            with pytest.raises(LucidError) as info:
                await private.from_("tags")
            assert info.value.code == "E_CONNECTION_FAILED"
            assert "timed out" in str(info.value)
            with pytest.raises(LucidError) as info:
                await private.transaction()
            assert info.value.code == "E_CONNECTION_FAILED"
        finally:
            await trx.rollback()
        assert await private.from_("tags") == []

    async def test_concurrent_queries_share_a_bigger_pool(
        self, private: Database, dialect: str, dialect_config: DialectConfig
    ) -> None:
        private.configure(
            connection=dialect,
            connections={dialect: {"url": dialect_config.url, "pool": {"max": 3}}},
        )
        results = await asyncio.gather(
            *(private.raw_query("select ? as n", [i]) for i in range(10))
        )
        assert [r[0]["n"] for r in results] == list(range(10))
