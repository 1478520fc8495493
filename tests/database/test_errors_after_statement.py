"""What a caller gets when something fails after the database ran a statement: a stored value
a result processor refuses, and a ``db.on_query`` listener or observer that raises.

The read paths (the lean fast path and SQLAlchemy's, ``fast_paths``) report a refused value as
the statement's ``QueryError`` (never as a failed connection, which a replica read would take
for an unreachable server), and hand the connection back. A listener's exception is logged
and the statement's outcome returned: the statement ran, and a write outside a transaction is
committed, so raising would tell the caller it failed."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from sqlalchemy import String
from sqlalchemy.types import TypeDecorator

from lucid_orm import BaseModel, column
from lucid_orm.database import Database, QueryEvent
from lucid_orm.errors import QueryError
from tests.helpers import count_queries


class Picky(TypeDecorator[str]):
    """Refuses to read back the value ``"refused"``."""

    impl = String(100)
    cache_ok = True

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        if value == "refused":
            raise ValueError("a value this column refuses to read")
        return value


class PickyTag(BaseModel):
    table = "tags"

    id: int = column(is_primary=True)
    name: str | None = column(type_=Picky())


def _assert_statement_error(error: QueryError) -> None:
    assert type(error) is QueryError
    assert error.code == "E_QUERY_FAILED"
    assert str(error).startswith("Cannot run the statement: a value this column refuses")
    assert "[SQL: SELECT" in str(error)
    assert isinstance(error.original, ValueError)


class TestRefusedValue:
    async def test_each_read_reports_the_statements_error(
        self, database: Database, fast_paths: bool
    ) -> None:
        bad = await database.table("tags").insert({"name": "refused"}).returning("id")
        key = bad[0]["id"]
        reads = {
            "query": lambda: PickyTag.query(),
            "first": lambda: PickyTag.query().where("id", key).first(),
            "find": lambda: PickyTag.find(key),
            "paginate": lambda: PickyTag.query().paginate(1, 10),
        }
        for name, read in reads.items():
            with pytest.raises(QueryError) as caught:
                await read()
            _assert_statement_error(caught.value)
            assert name  # (which read failed shows in the traceback's locals)
        # The connections went back: as many reads again as the pool holds, then a good one.
        for _ in range(12):
            with pytest.raises(QueryError):
                await PickyTag.find(key)
        await database.from_("tags").where("id", key).update({"name": "fine"})
        found = await PickyTag.find(key)
        assert found is not None and found.name == "fine"

    async def test_inside_a_transaction(self, database: Database) -> None:
        await database.table("tags").insert({"name": "refused"})
        trx = await database.transaction()
        try:
            with pytest.raises(QueryError) as caught:
                await PickyTag.query(client=trx)
            _assert_statement_error(caught.value)
        finally:
            await trx.rollback()


class TestRaisingListener:
    async def test_the_statement_outcome_is_returned_and_the_error_logged(
        self, database: Database, fast_paths: bool, caplog: pytest.LogCaptureFixture
    ) -> None:
        calls: list[str] = []

        def failing(event: QueryEvent) -> None:
            calls.append(event.sql.split()[0].upper())
            raise RuntimeError("listener failed")

        unsubscribe = database.on_query(failing)
        try:
            with count_queries() as log, caplog.at_level(logging.ERROR, "lucid_orm.query"):
                await database.table("tags").insert({"name": "kept"})
                rows = await database.from_("tags").select("name")
                tags = await PickyTag.query()
                found = await PickyTag.find(tags[0].id)
                async with database.transaction() as trx:
                    await trx.table("tags").insert({"name": "also kept"})
        finally:
            unsubscribe()
        assert rows == [{"name": "kept"}]
        assert [t.name for t in tags] == ["kept"] and found is not None
        # Every statement reached both listeners: the raising one did not stop the other.
        assert calls == ["INSERT", "SELECT", "SELECT", "SELECT", "INSERT"]
        assert [sql.split()[0].upper() for sql in log.sqls] == calls
        failures = [r for r in caplog.records if "on_query listener raised" in r.getMessage()]
        assert len(failures) == 5
        assert all(r.exc_info is not None and r.exc_info[0] is RuntimeError for r in failures)
        names = await database.from_("tags").order_by("id").select("name")
        assert names == [{"name": "kept"}, {"name": "also kept"}]

    async def test_a_raising_observer_is_logged_too(
        self, database: Database, caplog: pytest.LogCaptureFixture
    ) -> None:
        seen: list[Any] = []

        def failing(statement: Any) -> None:
            raise RuntimeError("observer failed")

        stop_failing = database._emitter.observe(failing)
        stop_seen = database._emitter.observe(seen.append)
        try:
            with caplog.at_level(logging.ERROR, "lucid_orm.query"):
                await database.table("tags").insert({"name": "kept"})
        finally:
            stop_failing()
            stop_seen()
        assert len(seen) == 1
        assert any("query observer raised" in r.getMessage() for r in caplog.records)
        assert await database.from_("tags").select("name") == [{"name": "kept"}]


class TestTransactionGoesOn:
    """A value refused on the client's side is no failed statement on the server: the
    transaction goes on and commits what it did (PostgreSQL, which aborts a transaction on a
    server error, included), while a server error still aborts it there."""

    async def test_after_a_refused_stored_value(self, database: Database) -> None:
        await database.table("tags").insert({"name": "refused"})
        async with database.transaction() as trx:
            with pytest.raises(QueryError):
                await PickyTag.query(client=trx)
            await trx.table("tags").insert({"name": "after"})
        names = await database.from_("tags").order_by("id").select("name")
        assert names == [{"name": "refused"}, {"name": "after"}]

    async def test_a_server_error_still_aborts_on_postgresql(
        self, database: Database, dialect: str
    ) -> None:
        if dialect != "postgresql":
            pytest.skip("only PostgreSQL aborts the transaction on a server error")
        trx = await database.transaction()
        await trx.table("tags").insert({"name": "lost"})
        with pytest.raises(QueryError):
            await trx.raw_query("select 1 / 0")
        with pytest.raises(QueryError, match="aborted after a failed statement"):
            await trx.commit()
        assert await database.from_("tags").select("name") == []
