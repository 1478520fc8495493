"""Observability on every statement: ``db.on_query`` events, the ``lucid_orm.query`` logger and
OpenTelemetry spans (``lucid_orm.contrib.opentelemetry``) all come from one instrumentation
point, which the fast paths (lean reads, ``find``'s static statement, SQLite's driver-level
multi-row INSERT) pass as SQLAlchemy's execution does: N statements give N events and N spans,
with the fast paths on and off. Failures give an ERROR span and a ``QueryError`` whose message
holds the SQL."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from sqlalchemy.engine import make_url

from lucid_orm import column, has_many
from lucid_orm.contrib.opentelemetry import instrument, is_instrumented, uninstrument
from lucid_orm.database import Database, QueryEvent
from lucid_orm.errors import IntegrityError, QueryError
from lucid_orm.relations import HasMany
from tests import models
from tests.helpers import PG_REPLICA_URL, PG_URL, DialectConfig, count_queries
from tests.models import Thing

_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "START TRANSACTION")
# A value no SQL text, span attribute or log line may show.
SECRET = "s3cret-value-4711"


class Post(models.Post):
    body: str | None = column()


class User(models.BaseUser):
    email: str | None = column()
    posts: HasMany[Post] = has_many(lambda: Post)


class Traced:
    """The spans of one in-memory exporter, the tracer provider that feeds it."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))

    @property
    def spans(self) -> tuple[ReadableSpan, ...]:
        return self.exporter.get_finished_spans()

    def texts(self) -> list[str]:
        return [str((s.attributes or {}).get("db.query.text")) for s in self.spans]


@pytest.fixture
def traced(database: Database) -> Iterator[Traced]:
    """``database`` instrumented with an in-memory exporter for the test."""
    tracing = Traced()
    instrument(database, tracer_provider=tracing.provider)
    try:
        yield tracing
    finally:
        uninstrument(database)


async def _users(n: int) -> list[User]:
    return await User.create_many([{"username": f"u{i}", "email": f"u{i}@x"} for i in range(n)])


def _same(log_events: list[QueryEvent], tracing: Traced) -> None:
    """Every event has its span, in the same order, with the same SQL."""
    assert [e.sql for e in log_events] == tracing.texts()


class TestOneSpanPerStatement:
    async def test_reads(self, traced: Traced, fast_paths: bool) -> None:
        (user,) = await _users(1)
        await Post.create({"user_id": user.id, "title": "t"})
        traced.exporter.clear()
        with count_queries() as log:
            assert (await User.find(user.id)) is not None
            assert (await User.query().where("username", "u0").first()) is not None
            assert len(await User.query().where("id", ">", 0)) == 1
            (loaded,) = await User.query().preload("posts")
            assert len(loaded.posts) == 1
        # find, first, a list, and the preload's two queries.
        assert log.count == 5
        assert len(traced.spans) == 5
        _same(log.events, traced)
        assert all(
            s.attributes and s.attributes["db.operation.name"] == "SELECT" for s in traced.spans
        )

    async def test_writes(self, traced: Traced, fast_paths: bool) -> None:
        with count_queries() as log:
            user = await User.create({"username": "a", "email": "a@x"})
            user.username = "b"
            await user.save()
            await user.delete()
        assert log.count >= 3
        assert len(traced.spans) == log.count
        _same(log.events, traced)
        operations = [(s.attributes or {}).get("db.operation.name") for s in traced.spans]
        assert {"INSERT", "UPDATE", "DELETE"} <= set(operations)

    async def test_create_many(self, traced: Traced, fast_paths: bool, dialect: str) -> None:
        with count_queries() as log:
            users = await _users(3)
        assert len(users) == 3
        inserts = [e for e in log.events if e.sql.lstrip().upper().startswith("INSERT")]
        if dialect == "sqlite":
            # One multi-row INSERT, on the driver (fast) or through SQLAlchemy (slow).
            assert len(inserts) == 1
        assert inserts
        assert len(traced.spans) == log.count
        _same(log.events, traced)
        # SQLite: one statement outside a transaction runs without one (test_writes_alone.py).
        assert all(e.in_transaction is (dialect != "sqlite") for e in inserts)

    async def test_transactions(self, database: Database, traced: Traced, fast_paths: bool) -> None:
        with count_queries() as log:
            async with database.transaction() as trx:
                await trx.table("tags").insert({"name": "a"})
                async with trx.transaction() as savepoint:
                    await savepoint.from_("tags").select("id")
                rolled = await trx.transaction()
                await rolled.table("tags").insert({"name": "b"})
                await rolled.rollback()
            await database.from_("tags").select("id", "name")
        assert log.count == 4
        assert len(traced.spans) == 4
        _same(log.events, traced)
        for text in traced.texts():
            assert not text.lstrip().upper().startswith(_CONTROL), text
        assert [e.in_transaction for e in log.events] == [True, True, True, False]

    async def test_raw_and_ddl(self, database: Database, traced: Traced) -> None:
        await database.raw_query("create table lucid_trace_ddl (id integer)")
        await database.raw_query("select count(*) as n from lucid_trace_ddl")
        await database.raw_query("drop table lucid_trace_ddl")
        names = [(s.attributes or {}).get("db.operation.name") for s in traced.spans]
        assert names == ["CREATE", "SELECT", "DROP"]


class TestAttributes:
    async def test_semantic_conventions(
        self, database: Database, traced: Traced, dialect: str, dialect_config: DialectConfig
    ) -> None:
        await database.from_("tags").select("id", "name").where("name", SECRET)
        (span,) = traced.spans
        attrs = dict(span.attributes or {})
        url = make_url(dialect_config.url)
        system = {"sqlite": "sqlite", "postgresql": "postgresql"}.get(dialect)
        if system is None:
            mariadb = getattr(database.get_connection().dialect, "is_mariadb", False)
            system = "mariadb" if mariadb else "mysql"
        assert span.kind is SpanKind.CLIENT
        assert attrs["db.system.name"] == system
        assert attrs["db.system"] == system
        assert attrs["db.namespace"] == url.database
        assert attrs["db.operation.name"] == "SELECT"
        placeholder = {"sqlite": "?", "postgresql": "$1", "mysql": "%s"}[dialect]
        assert placeholder in str(attrs["db.query.text"])
        assert "tags" in str(attrs["db.query.text"])
        assert SECRET not in repr(attrs)
        assert span.name == f"SELECT {url.database}"
        if dialect == "sqlite":
            assert "server.address" not in attrs
            assert "server.port" not in attrs
        else:
            assert attrs["server.address"] == url.host
            assert attrs["server.port"] == (url.port or {"postgresql": 5432}.get(dialect, 3306))
        assert span.status.status_code is StatusCode.UNSET
        assert span.end_time is not None and span.start_time is not None
        assert span.end_time >= span.start_time

    async def test_spans_nest_under_the_current_span(
        self, traced: Traced, fast_paths: bool
    ) -> None:
        await _users(1)
        traced.exporter.clear()
        tracer = traced.provider.get_tracer("test")
        with tracer.start_as_current_span("request") as parent:
            await User.query().where("username", "u0").first()
            await User.query().where("username", "u0").update({"email": "b@x"})
        request = parent.get_span_context()
        children = [s for s in traced.spans if s.name != "request"]
        assert len(children) == 2
        for span in children:
            assert span.parent is not None
            assert span.parent.span_id == request.span_id
            assert span.context is not None and span.context.trace_id == request.trace_id

    async def test_a_read_replica_is_its_own_endpoint(self, dialect: str) -> None:
        if dialect != "postgresql":
            pytest.skip("replicas are exercised on PostgreSQL (two databases on one server)")
        private, tracing = Database(), Traced()
        private.configure(
            connection="replicated",
            connections={
                "replicated": {
                    "replicas": {"write": {"url": PG_URL}, "read": [{"url": PG_REPLICA_URL}]}
                }
            },
        )
        instrument(private, tracer_provider=tracing.provider)
        try:
            await private.raw_query("select 1 as one")
            await private.raw_query("select 2 as two", read=True)
        finally:
            uninstrument(private)
            await private.close()
        namespaces = [(s.attributes or {}).get("db.namespace") for s in tracing.spans]
        assert namespaces == [make_url(PG_URL).database, make_url(PG_REPLICA_URL).database]


class TestFailures:
    async def test_failed_read(
        self, database: Database, traced: Traced, fast_paths: bool, dialect: str
    ) -> None:
        with count_queries() as log, pytest.raises(QueryError) as info:
            await database.from_("lucid_no_such_table").select("id").where("id", 7)
        assert log.count == 0  # listeners hear of successes only
        (span,) = traced.spans
        attrs = dict(span.attributes or {})
        assert span.status.status_code is StatusCode.ERROR
        # The driver's own error, on both paths (not SQLAlchemy's wrapper of it).
        driver = {"sqlite": "sqlite3.", "postgresql": "asyncpg.", "mysql": "asyncmy."}[dialect]
        assert str(attrs["error.type"]).startswith(driver)
        # SQLite's result code SQLITE_ERROR, PostgreSQL's undefined_table, MySQL's
        # ER_NO_SUCH_TABLE.
        code = {"sqlite": "1", "postgresql": "42P01", "mysql": "1146"}[dialect]
        assert attrs["db.response.status_code"] == code
        assert "lucid_no_such_table" in str(attrs["db.query.text"])
        assert any(e.name == "exception" for e in span.events)
        error = info.value
        assert error.sql is not None and error.sql in str(error)
        assert "lucid_no_such_table" in str(error)
        assert "[SQL: " in str(error)

    async def test_failed_write(self, traced: Traced, fast_paths: bool, dialect: str) -> None:
        await Thing.create({"name": SECRET})
        traced.exporter.clear()
        # Generated keys: on SQLite the driver-level multi-row INSERT (fast) or its twin.
        with pytest.raises(IntegrityError) as info:
            await Thing.create_many([{"name": "other"}, {"name": SECRET}])
        error = info.value
        assert error.sql is not None and error.sql in str(error)
        assert "INSERT" in str(error).upper()
        assert SECRET not in str(error.sql)
        failed = [s for s in traced.spans if s.status.status_code is StatusCode.ERROR]
        assert len(failed) == 1
        attrs = dict(failed[0].attributes or {})
        assert attrs["db.operation.name"] == "INSERT"
        # SQLITE_CONSTRAINT_UNIQUE, unique_violation, ER_DUP_ENTRY.
        code = {"sqlite": "2067", "postgresql": "23505", "mysql": "1062"}[dialect]
        assert attrs["db.response.status_code"] == code
        assert SECRET not in str(attrs["db.query.text"])

    async def test_failed_statement_in_transaction(
        self, database: Database, traced: Traced
    ) -> None:
        async with database.transaction() as trx:
            savepoint = await trx.transaction()
            with pytest.raises(QueryError) as info:
                await savepoint.raw_query("select * from lucid_no_such_table")
            await savepoint.rollback()
            await trx.from_("tags")
        assert "lucid_no_such_table" in str(info.value)
        statuses = [s.status.status_code for s in traced.spans]
        assert statuses == [StatusCode.ERROR, StatusCode.UNSET]


class TestInstrumentApi:
    async def test_uninstrument_stops_spans(self, database: Database) -> None:
        tracing = Traced()
        instrument(database, tracer_provider=tracing.provider)
        assert is_instrumented(database)
        await database.from_("tags")
        uninstrument(database)
        uninstrument(database)  # a second call is harmless
        assert not is_instrumented(database)
        await database.from_("tags")
        assert len(tracing.spans) == 1

    async def test_instrument_twice_gives_one_span_per_statement(self, database: Database) -> None:
        first, second = Traced(), Traced()
        instrument(database, tracer_provider=first.provider)
        try:
            instrument(database, tracer_provider=second.provider)
            await database.from_("tags")
        finally:
            uninstrument(database)
        assert len(first.spans) == 0
        assert len(second.spans) == 1

    async def test_spans_survive_close_and_configure(
        self, database: Database, traced: Traced, dialect_config: DialectConfig
    ) -> None:
        await database.from_("tags")
        await database.close()
        dialect_config.configure()
        await database.from_("tags")
        assert len(traced.spans) == 2


def test_missing_extra_names_it() -> None:
    """Without OpenTelemetry installed the module raises a ``LucidError`` naming the extra
    (a fresh interpreter in which ``opentelemetry`` cannot be imported)."""
    code = (
        "import sys; sys.modules['opentelemetry'] = None\n"
        "from lucid_orm.errors import LucidError\n"
        "import lucid_orm\n"
        "try:\n"
        "    import lucid_orm.contrib.opentelemetry\n"
        "except LucidError as exc:\n"
        "    print(exc.code, exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.startswith("E_MISSING_DEPENDENCY ")
    assert "pip install 'lucid-orm[otel]'" in out


class TestLogging:
    async def test_debug_lines(
        self, database: Database, dialect: str, caplog: pytest.LogCaptureFixture, fast_paths: bool
    ) -> None:
        with caplog.at_level(logging.DEBUG, logger="lucid_orm.query"):
            await database.from_("tags").select("id", "name").where("name", SECRET)
            await database.table("tags").insert({"name": SECRET})
        records = [r for r in caplog.records if r.name == "lucid_orm.query"]
        assert len(records) == 2
        for record in records:
            message = record.getMessage()
            assert record.levelno == logging.DEBUG
            assert f"[{dialect}]" in message
            assert " ms " in message
            assert SECRET not in message
        assert "tags" in records[0].getMessage()
        assert records[1].getMessage().split(" ms ")[1].lstrip().upper().startswith("INSERT")

    async def test_failed_statement_is_logged(
        self, database: Database, caplog: pytest.LogCaptureFixture, fast_paths: bool
    ) -> None:
        with (
            caplog.at_level(logging.DEBUG, logger="lucid_orm.query"),
            pytest.raises(QueryError),
        ):
            await database.from_("lucid_no_such_table").select("id")
        (record,) = [r for r in caplog.records if r.name == "lucid_orm.query"]
        assert "failed" in record.getMessage()
        assert "lucid_no_such_table" in record.getMessage()

    async def test_nothing_logged_above_debug(
        self, database: Database, caplog: pytest.LogCaptureFixture
    ) -> None:
        with caplog.at_level(logging.INFO, logger="lucid_orm.query"):
            await database.from_("tags")
        assert [r for r in caplog.records if r.name == "lucid_orm.query"] == []

    @pytest.mark.parametrize("option", ["log_bindings", "debug"])
    async def test_values_when_opted_in(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture, option: str
    ) -> None:
        private = Database()
        cfg: dict[str, Any] = {"url": f"sqlite:///{tmp_path / 'v.db'}", option: True}
        private.configure(connection="opted", connections={"opted": cfg})
        try:
            with caplog.at_level(logging.DEBUG, logger="lucid_orm.query"):
                await private.raw_query("select ? as v", [SECRET])
        finally:
            await private.close()
        (record,) = [r for r in caplog.records if r.name == "lucid_orm.query"]
        assert "[opted]" in record.getMessage()
        assert SECRET in record.getMessage()
        # ``debug`` logs at INFO, so that it shows without configuring the logger.
        assert record.levelno == (logging.INFO if option == "debug" else logging.DEBUG)
