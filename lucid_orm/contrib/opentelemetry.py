"""OpenTelemetry tracing: one CLIENT span per statement, fast paths included.

::

    from lucid_orm import db
    from lucid_orm.contrib.opentelemetry import instrument, uninstrument

    instrument(db)  # the global tracer provider; tracer_provider=... to choose one
    ...
    uninstrument(db)

Spans follow OpenTelemetry's database semantic conventions: ``db.system.name`` (and the
older ``db.system``, which many back ends still read) — ``sqlite``, ``postgresql``,
``mysql`` or ``mariadb``; ``db.namespace`` (the database name, the file path on SQLite);
``db.operation.name`` (the statement's first keyword); ``db.query.text`` (the SQL as sent to
the driver: placeholders, the bound values never inlined nor recorded); ``server.address``
and ``server.port`` (server databases). A failed statement has status ERROR, ``error.type``,
``db.response.status_code`` when the driver gives one, and the exception as an event.

The spans come from lucid_orm's own instrumentation point (``database/events.py``), which
every statement passes, also those the lean read path and SQLite's multi-row INSERT send to
the driver directly (SQLAlchemy's instrumentation sees none of those). Transaction control
(BEGIN, COMMIT, SAVEPOINT…) gets no span. A span is made when its statement ends, with the
statement's start and end times, under the span current at that moment.

Needs the ``otel`` extra (``opentelemetry-api``): ``pip install 'lucid-orm[otel]'``.
"""

from __future__ import annotations

import re
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lucid_orm.errors import LucidError

try:
    from opentelemetry import trace
    from opentelemetry.trace import SpanKind, Status, StatusCode
except ImportError as exc:  # pragma: no cover - exercised in a clean install
    raise LucidError(
        "lucid_orm.contrib.opentelemetry needs OpenTelemetry, which is not installed: "
        "pip install 'lucid-orm[otel]'",
        code="E_MISSING_DEPENDENCY",
    ) from exc

if TYPE_CHECKING:
    from lucid_orm.database import Database
    from lucid_orm.database.events import Statement

__all__ = ["instrument", "is_instrumented", "uninstrument"]

_OPERATION = re.compile(r"\s*\(*\s*([A-Za-z]+)")

# Database -> the function that stops its observer (weak: a dropped Database is forgotten).
_active: weakref.WeakKeyDictionary[Database, Callable[[], None]] = weakref.WeakKeyDictionary()


def instrument(
    database: Database | None = None, *, tracer_provider: trace.TracerProvider | None = None
) -> None:
    """Emit a span for every statement of ``database`` (default: the global ``db``), on the
    tracer of ``tracer_provider`` (default: the global one, ``trace.set_tracer_provider``).
    Instrumenting an instrumented database again replaces its tracer (never two spans per
    statement). Listeners and observers survive ``db.configure()`` and ``db.close()``."""
    target = _database(database)
    tracer = trace.get_tracer("lucid_orm", _version(), tracer_provider=tracer_provider)
    stop = _active.pop(target, None)
    if stop is not None:
        stop()
    _active[target] = target._emitter.observe(_Spans(tracer))


def uninstrument(database: Database | None = None) -> None:
    """Stop the spans of ``database`` (default: the global ``db``); harmless when it was not
    instrumented."""
    stop = _active.pop(_database(database), None)
    if stop is not None:
        stop()


def is_instrumented(database: Database | None = None) -> bool:
    """Whether ``instrument()`` is in effect for ``database`` (default: the global ``db``)."""
    return _database(database) in _active


def _database(database: Database | None) -> Database:
    if database is not None:
        return database
    from lucid_orm.database import db

    return db


def _version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lucid-orm")
    except PackageNotFoundError:
        return None


def operation_name(sql: str) -> str | None:
    """The statement's first keyword, upper-cased (``SELECT``, ``INSERT``, ``WITH``…)."""
    match = _OPERATION.match(sql)
    return match.group(1).upper() if match else None


def _status_code(error: BaseException) -> str | None:
    """The driver's error code as the conventions ask for it: SQLite's extended result code,
    MySQL's error number (asyncmy errors also carry a SQLSTATE), PostgreSQL's SQLSTATE."""
    code = getattr(error, "sqlite_errorcode", None)
    if isinstance(code, int):
        return str(code)
    args = getattr(error, "args", ())
    if args and isinstance(args[0], int):
        return str(args[0])
    sqlstate = getattr(error, "sqlstate", None)
    return sqlstate if isinstance(sqlstate, str) else None


class _Spans:
    """The observer: one finished CLIENT span per statement."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self.tracer = tracer

    def __call__(self, statement: Statement) -> None:
        event, endpoint, error = statement.event, statement.endpoint, statement.error
        end = time.time_ns()
        start = end - int(event.duration_ms * 1_000_000)
        system = endpoint.system
        operation = operation_name(event.sql)
        attributes: dict[str, Any] = {
            "db.system.name": system,
            "db.system": system,
            "db.query.text": event.sql,
        }
        if endpoint.database:
            attributes["db.namespace"] = endpoint.database
        if operation:
            attributes["db.operation.name"] = operation
        if endpoint.host:
            attributes["server.address"] = endpoint.host
            if endpoint.port is not None:
                attributes["server.port"] = endpoint.port
        # Span name per the conventions: "{operation} {target}", the namespace the target.
        target = endpoint.database
        if operation and target:
            name = f"{operation} {target}"
        else:
            name = operation or target or system
        span = self.tracer.start_span(
            name, kind=SpanKind.CLIENT, attributes=attributes, start_time=start
        )
        if error is not None:
            span.set_attribute("error.type", _error_type(error))
            code = _status_code(error)
            if code is not None:
                span.set_attribute("db.response.status_code", code)
            span.record_exception(error, timestamp=end)
            span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        span.end(end_time=end)


def _error_type(error: BaseException) -> str:
    kind = type(error)
    return f"{kind.__module__}.{kind.__qualname__}"
