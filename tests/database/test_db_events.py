"""Query events: ``db.on_query`` listeners and the ``QueryEvent`` they receive."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from lucid_orm.database import Database, QueryEvent
from lucid_orm.errors import QueryError
from tests.helpers import DialectConfig, count_queries

_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "START TRANSACTION")


class TestQueryEvent:
    async def test_fields(self, database: Database, dialect: str) -> None:
        events: list[QueryEvent] = []
        unsubscribe = database.on_query(events.append)
        try:
            await database.from_("tags").where("name", "a").where("id", ">", 0)
        finally:
            unsubscribe()
        (event,) = events
        assert isinstance(event, QueryEvent)
        assert event.sql.upper().startswith("SELECT")
        assert "tags" in event.sql
        assert event.bindings == ["a", 0]
        assert event.connection == dialect
        assert isinstance(event.duration_ms, float)
        assert event.duration_ms > 0
        assert event.model is None
        assert event.in_transaction is False

    async def test_sql_is_what_the_driver_got(self, database: Database, dialect: str) -> None:
        with count_queries() as log:
            await database.from_("tags").where("name", "a")
        placeholder = {"sqlite": "?", "postgresql": "$1", "mysql": "%s"}[dialect]
        assert placeholder in log.sqls[0]

    async def test_writes_and_raw_are_reported(self, database: Database) -> None:
        with count_queries() as log:
            await database.table("tags").insert({"name": "a"})
            await database.from_("tags").where("name", "a").update({"name": "b"})
            await database.from_("tags").increment("id", 0)
            await database.raw_query("select name from tags where name = ?", ["b"])
            await database.from_("tags").delete()
        assert [sql.split()[0].upper() for sql in log.sqls] == [
            "INSERT",
            "UPDATE",
            "UPDATE",
            "SELECT",
            "DELETE",
        ]
        assert log.bindings[0] == ["a"]
        assert log.bindings[3] == ["b"]
        assert all(not e.in_transaction for e in log.events)

    async def test_ddl_is_reported(self, database: Database) -> None:
        with count_queries() as log:
            await database.raw_query("create table lucid_events_ddl (id integer)")
            await database.raw_query("drop table lucid_events_ddl")
        assert [sql.split()[0].lower() for sql in log.sqls] == ["create", "drop"]

    async def test_in_transaction(self, database: Database) -> None:
        with count_queries() as log:
            async with database.transaction() as trx:
                await trx.table("tags").insert({"name": "a"})
                await trx.from_("tags")
            await database.from_("tags")
        assert [e.in_transaction for e in log.events] == [True, True, False]

    async def test_transaction_control_is_not_reported(self, database: Database) -> None:
        with count_queries() as log:
            trx = await database.transaction()
            await trx.table("tags").insert({"name": "a"})
            sp = await trx.transaction()
            await sp.table("tags").insert({"name": "b"})
            await sp.rollback()
            sp = await trx.transaction()
            await sp.from_("tags")
            await sp.commit()
            await trx.commit()
            trx = await database.transaction(isolation_level="serializable")
            await trx.rollback()
        assert log.count == 3
        for sql in log.sqls:
            assert not sql.lstrip().upper().startswith(_CONTROL), sql

    async def test_failed_statement_is_not_reported_as_success(self, database: Database) -> None:
        with count_queries() as log, pytest.raises(QueryError):
            await database.from_("lucid_no_such_table")
        assert log.count == 0


class TestListeners:
    async def test_unsubscribe(self, database: Database) -> None:
        events: list[QueryEvent] = []
        unsubscribe = database.on_query(events.append)
        await database.from_("tags")
        unsubscribe()
        await database.from_("tags")
        unsubscribe()  # a second call is harmless
        assert len(events) == 1

    async def test_several_listeners(self, database: Database) -> None:
        first: list[str] = []
        second: list[str] = []
        off1 = database.on_query(lambda e: first.append(e.sql))
        off2 = database.on_query(lambda e: second.append(e.sql))
        try:
            await database.from_("tags")
            off1()
            await database.from_("tags")
        finally:
            off2()
        assert len(first) == 1
        assert len(second) == 2

    async def test_listeners_survive_close_and_configure(self, tmp_path: Path) -> None:
        private = Database()
        events: list[QueryEvent] = []
        private.on_query(events.append)
        private.configure(url=f"sqlite:///{tmp_path / 'a.db'}")
        await private.raw_query("select 1 as one")
        await private.close()
        private.configure(connection="other", connections={"other": {"url": "sqlite://:memory:"}})
        await private.raw_query("select 2 as two")
        await private.close()
        assert [e.connection for e in events] == ["default", "other"]

    async def test_global_db_listeners_survive_close(
        self, database: Database, dialect_config: DialectConfig
    ) -> None:
        with count_queries() as log:
            await database.from_("tags")
            await database.close()
            dialect_config.configure()
            await database.from_("tags")
        assert log.count == 2

    async def test_debug_logs_queries(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        private = Database()
        private.configure(
            connection="dbg",
            connections={"dbg": {"url": f"sqlite:///{tmp_path / 'd.db'}", "debug": True}},
        )
        try:
            with caplog.at_level(logging.INFO, logger="lucid_orm.query"):
                await private.raw_query("select ? as v", [42])
        finally:
            await private.close()
        (record,) = [r for r in caplog.records if r.name == "lucid_orm.query"]
        assert "[dbg]" in record.getMessage()
        assert "select ? as v" in record.getMessage()
        assert "42" in record.getMessage()
