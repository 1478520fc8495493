"""Statement instrumentation: the one point every statement passes, and what it feeds.

Every statement sent to a database — through SQLAlchemy's execution layer (its cursor
events, registered per engine in ``connection.py``) or on the driver connection directly (the
fast paths: lean reads and ``find`` in ``executor.py``, SQLite's multi-row INSERT in
``dialects/sqlite.py``) — ends in ``QueryEmitter.record``, once, after it ran or failed. From
there it goes to:

- the ``db.on_query`` listeners (a ``QueryEvent`` per successful statement); an exception a
  listener or observer raises is logged on ``lucid_orm.query`` (ERROR, with its traceback)
  and never reaches the statement's caller;
- the ``lucid_orm.query`` logger (a DEBUG line per statement: connection, duration, SQL;
  values only with the connection option ``log_bindings``; ``debug: True`` logs at INFO with
  values);
- observers (``QueryEmitter.observe``), which also see failures and where the statement ran
  (``Endpoint``): ``lucid_orm.contrib.opentelemetry`` makes a span of each.

Transaction control (BEGIN, COMMIT, ROLLBACK, SAVEPOINT, RELEASE, START TRANSACTION) is
reported nowhere: SQLAlchemy runs most of it through the driver's own calls, which no event
sees, so reporting the few that pass its cursor (SQLite's ``BEGIN IMMEDIATE``, savepoints)
would only be inconsistent. Connection set-up (SQLite's PRAGMAs on connect) and MySQL's
``KILL`` of a discarded connection are not statements of the application either.

Cost when nothing listens: the callers check ``emitter.active or enabled(DEBUG)`` (an
attribute and the logger's cached level) and build nothing.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger("lucid_orm.query")
# Bound once: the hot paths' second check (``Logger.isEnabledFor`` caches its answer).
enabled = logger.isEnabledFor
DEBUG = logging.DEBUG

# Transaction control statements are not reported (SPEC §8): only real statements are.
_CONTROL = re.compile(r"^\s*(BEGIN|COMMIT|ROLLBACK|SAVEPOINT|RELEASE|START TRANSACTION)\b", re.I)


@dataclass(slots=True)
class QueryEvent:
    """One executed statement, as handed to ``db.on_query`` listeners."""

    sql: str
    bindings: list[Any] = field(default_factory=list)
    connection: str = "default"
    duration_ms: float = 0.0
    model: str | None = None
    in_transaction: bool = False


@dataclass(slots=True)
class Endpoint:
    """Where statements run: one per engine (the write side, or one read replica).

    ``backend`` is SQLAlchemy's backend name (``sqlite``, ``postgresql``, ``mysql``);
    ``dialect`` is SQLAlchemy's dialect object, which knows after the first connection
    whether a ``mysql`` URL reached MariaDB (``system``)."""

    connection: str
    backend: str
    database: str | None
    host: str | None
    port: int | None
    dialect: Any = None
    # Values appended to log lines (connection option ``log_bindings``, implied by ``debug``).
    log_bindings: bool = False
    # Log lines at INFO instead of DEBUG (connection option ``debug``).
    debug: bool = False

    @property
    def system(self) -> str:
        """The database product: ``sqlite``, ``postgresql``, ``mysql`` or ``mariadb``."""
        if self.backend == "mysql" and getattr(self.dialect, "is_mariadb", False):
            return "mariadb"
        return self.backend


@dataclass(slots=True)
class Statement:
    """One statement as observers see it: the event (what ``db.on_query`` gets), where it ran,
    and the error it failed with (``None``: it succeeded)."""

    event: QueryEvent
    endpoint: Endpoint
    error: BaseException | None = None


QueryListener = Callable[[QueryEvent], None]
Observer = Callable[[Statement], None]


class QueryEmitter:
    """Holds the listeners and observers; survives ``configure()`` and ``close()`` of the
    manager. ``active`` is true while any listener, observer or ``debug`` connection wants
    statements (kept up to date here so that the hot paths read one attribute)."""

    def __init__(self) -> None:
        self.listeners: list[QueryListener] = []
        self.observers: list[Observer] = []
        self.debugging: set[str] = set()
        self.active = False

    def _update(self) -> None:
        self.active = bool(self.listeners or self.observers or self.debugging)

    def subscribe(self, listener: QueryListener) -> Callable[[], None]:
        """Call ``listener(QueryEvent)`` after every successful statement; returns the
        unsubscribe function (safe to call twice)."""
        self.listeners.append(listener)
        self._update()

        def unsubscribe() -> None:
            if listener in self.listeners:
                self.listeners.remove(listener)
                self._update()

        return unsubscribe

    def observe(self, observer: Observer) -> Callable[[], None]:
        """Call ``observer(Statement)`` after every statement, failed ones included; returns
        the function that stops it (safe to call twice)."""
        self.observers.append(observer)
        self._update()

        def stop() -> None:
            if observer in self.observers:
                self.observers.remove(observer)
                self._update()

        return stop

    def set_debug(self, connection: str, on: bool) -> None:
        """Record whether connection ``connection`` logs its statements at INFO (``debug``)."""
        if on:
            self.debugging.add(connection)
        else:
            self.debugging.discard(connection)
        self._update()

    @staticmethod
    def is_control(sql: str) -> bool:
        return _CONTROL.match(sql) is not None

    def record(
        self,
        endpoint: Endpoint,
        sql: str,
        bindings: Sequence[Any],
        started: float,
        model: str | None,
        in_transaction: bool,
        error: BaseException | None = None,
    ) -> None:
        """The instrumentation point: statement ``sql`` ran on ``endpoint`` from ``started``
        (its ``time.perf_counter()``) until now, and failed with ``error`` unless ``None``.
        Callers check ``emitter.active or enabled(DEBUG)`` first."""
        event = QueryEvent(
            sql=sql,
            bindings=list(bindings),
            connection=endpoint.connection,
            duration_ms=(time.perf_counter() - started) * 1000.0,
            model=model,
            in_transaction=in_transaction,
        )
        level = logging.INFO if endpoint.debug else DEBUG
        if enabled(level):
            _log(level, event, endpoint.log_bindings or endpoint.debug, error)
        # A listener or observer that raises is reported on the logger and the others still
        # run: the statement has already run (a write outside a transaction is committed), so
        # its caller must get its outcome, not an error that would read as the statement's.
        if error is None:
            for listener in list(self.listeners):
                try:
                    listener(event)
                except Exception:
                    logger.exception("[%s] a db.on_query listener raised", event.connection)
        if self.observers:
            statement = Statement(event, endpoint, error)
            for observer in list(self.observers):
                try:
                    observer(statement)
                except Exception:
                    logger.exception("[%s] a query observer raised", event.connection)


def driver_exception(exc: BaseException) -> BaseException:
    """The driver's own exception behind the one SQLAlchemy's execution hands over (its
    asyncpg adapter wraps asyncpg's errors, the cause), so that both paths report the same."""
    cause = exc.__cause__
    if cause is not None and type(exc).__module__.startswith("sqlalchemy"):
        return cause
    return exc


def _log(level: int, event: QueryEvent, values: bool, error: BaseException | None) -> None:
    """One line per statement; the connection's name, never its URL (which may hold a
    password); the values only when the connection opted in."""
    # The error's class only: a driver's message may quote values (PostgreSQL's DETAIL).
    failed = f" failed ({type(error).__name__})" if error is not None else ""
    if values:
        logger.log(
            level,
            "[%s] %.2f ms%s %s %r",
            event.connection,
            event.duration_ms,
            failed,
            event.sql,
            event.bindings,
        )
    else:
        logger.log(
            level, "[%s] %.2f ms%s %s", event.connection, event.duration_ms, failed, event.sql
        )
