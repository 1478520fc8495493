"""One named connection: its URL, its engines (write, read replicas) and their event wiring."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.engine.interfaces import Dialect
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from ..errors import LucidError
from .events import QueryEmitter, QueryEvent
from .executor import StatementCache

_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "mysql": "mysql+asyncmy",
    "mariadb": "mysql+asyncmy",
}

_MEMORY = "sqlite://:memory:"


def parse_url(url: str | URL) -> tuple[URL, bool]:
    """Turn a plain URL into an async SQLAlchemy URL; returns ``(url, is_memory_sqlite)``."""
    if isinstance(url, str) and url.strip() in (_MEMORY, "sqlite:///:memory:", "sqlite://"):
        return make_url("sqlite+aiosqlite://"), True
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise LucidError(f"Invalid database URL {url!r}: {exc}", code="E_INVALID_URL") from exc
    name = parsed.drivername
    if "+" not in name:
        if name not in _DRIVERS:
            raise LucidError(
                f'Unsupported database "{name}": use sqlite, postgresql or mysql',
                code="E_INVALID_URL",
            )
        parsed = parsed.set(drivername=_DRIVERS[name])
    memory = parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:")
    return parsed, memory


def fast_paths_default() -> bool:
    """Whether connections use the lean read path unless configured: ``LUCID_FAST_PATHS=0``
    turns it off process-wide."""
    return os.environ.get("LUCID_FAST_PATHS", "1").strip().lower() not in ("0", "false", "off")


def mask(url: URL) -> str:
    """The URL as text with its password hidden, for messages."""
    return url.render_as_string(hide_password=True)


class Connection:
    """A named connection. Engines are created lazily, on first use, inside the running loop."""

    def __init__(self, name: str, config: Mapping[str, Any], emitter: QueryEmitter) -> None:
        self.name = name
        self.config = dict(config)
        self.debug = bool(config.get("debug", False))
        self._emitter = emitter
        replicas = config.get("replicas")
        if replicas:
            write = replicas.get("write")
            reads = replicas.get("read") or []
            if not write or not reads:
                raise LucidError(
                    f'Connection "{name}": replicas need a "write" config and a "read" list',
                    code="E_INVALID_CONFIG",
                )
            self._write_cfg: dict[str, Any] = {**config, **write}
            self._read_cfgs: list[dict[str, Any]] = [{**config, **r} for r in reads]
        else:
            if not config.get("url"):
                raise LucidError(f'Connection "{name}" has no "url"', code="E_INVALID_CONFIG")
            self._write_cfg = dict(config)
            self._read_cfgs = []
        self.url, self.is_memory = parse_url(self._write_cfg["url"])
        self.dialect_name = self.url.get_backend_name()
        self._write: _Engines | None = None
        self._reads: list[_Engines] = []
        self._read_cycle: Iterator[_Engines] | None = None
        # sqlite://:memory: is one shared connection: transactions of two tasks must not mix.
        self.lock: asyncio.Lock | None = asyncio.Lock() if self.is_memory else None
        # (task, root transaction) that statements on this connection join instead of taking
        # a connection: on in-memory SQLite, the task holding the single connection; task
        # ``None`` is a global transaction, joined by every task (db.begin_global_transaction).
        self.owner: tuple[asyncio.Task[Any] | None, Any] | None = None
        self.closed = False
        # Plain SELECTs run on the driver directly (see executor.py); ``fast_reads: False``
        # (or ``LUCID_FAST_PATHS=0`` in the environment) sends them through SQLAlchemy's
        # execution layer instead, so the suite can prove both paths give the same answers.
        self.fast_reads = bool(config.get("fast_reads", fast_paths_default()))
        self.statements = StatementCache()
        self.static_statements: dict[Any, Any] = {}

    # -- engines -------------------------------------------------------------------------------
    def _ensure(self) -> _Engines:
        if self.closed:
            raise LucidError(
                f'Connection "{self.name}" is closed: call db.configure() to open it again',
                code="E_CONNECTION_CLOSED",
            )
        if self._write is None:
            self._write = _Engines(self, self._write_cfg)
            self._reads = [_Engines(self, cfg) for cfg in self._read_cfgs]
            if self._reads:
                self._read_cycle = itertools.cycle(self._reads)
        return self._write

    @property
    def dialect(self) -> Dialect:
        return self._ensure().engine.dialect

    def write_engines(self) -> _Engines:
        return self._ensure()

    def read_engines(self) -> _Engines:
        write = self._ensure()
        return next(self._read_cycle) if self._read_cycle is not None else write

    @property
    def has_replicas(self) -> bool:
        return bool(self._read_cfgs)

    async def close(self) -> None:
        trx = self.global_transaction()
        if trx is not None:
            # Its connection is checked out: disposing the pool would leave it (and its locks)
            # open.
            await trx.rollback()
        engines = ([self._write] if self._write else []) + self._reads
        self._write, self._reads, self._read_cycle = None, [], None
        self.closed = True
        for eng in engines:
            await eng.release_idle()
            await eng.engine.dispose()

    def ambient_transaction(self) -> Any:
        """The open transaction the current task's statements join instead of taking a
        connection of their own: the global transaction, else (in-memory SQLite) the root
        transaction this task holds; ``None`` when there is none."""
        owner = self.owner
        if owner is None or owner[1].is_completed:
            return None
        task, trx = owner
        if task is not None and task is not asyncio.current_task():
            return None
        return trx

    def report(
        self,
        sql: str,
        bindings: Sequence[Any],
        started: float,
        model: str | None,
        *,
        in_transaction: bool,
    ) -> None:
        """Hand a statement run on the driver directly (outside SQLAlchemy's execution events)
        to the ``db.on_query`` listeners and the debug log; ``started`` is its perf_counter."""
        if self._emitter.listeners or self.debug:
            self._emitter.emit(
                QueryEvent(
                    sql=sql,
                    bindings=list(bindings),
                    connection=self.name,
                    duration_ms=(time.perf_counter() - started) * 1000.0,
                    model=model,
                    in_transaction=in_transaction,
                ),
                debug=self.debug,
            )

    def global_transaction(self) -> Any:
        """The open global transaction of this connection, or ``None``."""
        owner = self.owner
        if owner is None or owner[0] is not None or owner[1].is_completed:
            return None
        return owner[1]

    def guard(self) -> contextlib.AbstractAsyncContextManager[Any]:
        """Serialises use of the single in-memory SQLite connection; a no-op elsewhere (a
        shared object: this wraps every lean read)."""
        return self.lock if self.lock is not None else _NO_GUARD


_NO_GUARD: contextlib.nullcontext[None] = contextlib.nullcontext()

# SQLite's wait for a locked database (ms) unless the connection sets ``busy_timeout_ms``.
SQLITE_BUSY_TIMEOUT_MS = 5000


def _busy_timeout(name: str, cfg: Mapping[str, Any]) -> int:
    value = cfg.get("busy_timeout_ms", SQLITE_BUSY_TIMEOUT_MS)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise LucidError(
            f'Connection "{name}": "busy_timeout_ms" must be a whole number of milliseconds '
            f"(0 or more), got {value!r}",
            code="E_INVALID_CONFIG",
        )
    return value


class _Engines:
    """A transactional engine and its autocommit twin (same pool) for one database URL."""

    def __init__(self, conn: Connection, cfg: Mapping[str, Any]) -> None:
        url, memory = parse_url(cfg["url"])
        backend = url.get_backend_name()
        self.url = url
        kwargs: dict[str, Any] = {}
        pool = dict(cfg.get("pool") or {})
        connect_args: dict[str, Any] = dict(cfg.get("connect_args") or {})
        if backend == "sqlite":
            # Connections run in autocommit mode (no BEGIN outside transactions, see below) and
            # SQLAlchemy rolls back its own transactions on close: a reset is a wasted hop.
            kwargs["pool_reset_on_return"] = None
            # How long a statement waits for another connection's write lock before "database
            # is locked" (pysqlite's ``timeout`` sets SQLite's busy timeout, no extra statement).
            if "busy_timeout_ms" in cfg or "timeout" not in connect_args:
                connect_args["timeout"] = _busy_timeout(conn.name, cfg) / 1000.0
        if memory:
            kwargs["poolclass"] = StaticPool
            connect_args.setdefault("check_same_thread", False)
        elif backend != "sqlite" or pool:
            if "max" in pool:
                kwargs["pool_size"] = int(pool["max"])
                kwargs["max_overflow"] = 0
            if "timeout" in pool:
                kwargs["pool_timeout"] = float(pool["timeout"])
        if backend == "postgresql":
            # Datetimes travel as UTC: naive values mean UTC whatever the server's zone is.
            settings = dict(connect_args.get("server_settings") or {})
            settings.setdefault("timezone", "UTC")
            connect_args["server_settings"] = settings
        elif backend == "mysql":
            connect_args.setdefault("init_command", "SET time_zone = '+00:00'")
        kwargs["connect_args"] = connect_args
        kwargs.update(cfg.get("engine_options") or {})
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        self.dialect = self.engine.dialect
        self.backend = backend
        autocommit: dict[str, Any] = {"lucid_autocommit": True}
        if backend == "postgresql":
            # asyncpg switches AUTOCOMMIT locally: plain queries skip BEGIN/COMMIT round trips.
            autocommit["isolation_level"] = "AUTOCOMMIT"
        self.autocommit_engine: AsyncEngine = self.engine.execution_options(**autocommit)
        # Driver connections kept checked out between lean reads (executor.py): never on
        # MySQL (its reads open implicit transactions), and never more than leaves a capped
        # pool at least one connection for everything else.
        # (pooled connection, its driver connection) pairs
        self.idle: list[tuple[Any, Any]] = []
        if backend == "mysql":
            self.hold = 0
        elif memory or "max" not in pool:
            self.hold = 2
        else:
            self.hold = max(0, min(2, int(pool["max"]) - 1))
        sync = self.engine.sync_engine
        if backend == "sqlite":
            foreign_keys = cfg.get("foreign_keys", True)

            # WAL lets readers run beside the one writer; a file database keeps it once set.
            # In-memory databases have no journal to change.
            wal = not memory and cfg.get("wal", True)

            @event.listens_for(sync, "connect")
            def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
                # Let SQLAlchemy, not pysqlite, emit BEGIN so SAVEPOINTs work (SQLAlchemy docs).
                dbapi_conn.isolation_level = None
                cursor = dbapi_conn.cursor()
                if wal:
                    cursor.execute("PRAGMA journal_mode = WAL")
                if foreign_keys:
                    cursor.execute("PRAGMA foreign_keys = ON")
                cursor.close()

            @event.listens_for(sync, "invalidate")
            def _sqlite_invalidate(dbapi_conn: Any, _record: Any, _exc: Any) -> None:
                # SQLAlchemy discards a connection whose statement was cancelled, but aiosqlite
                # would close it only after that statement ran to its end, and a close that
                # finds the statement unfinalized leaves the connection (and its write lock)
                # open until the garbage collector runs. So: interrupt the statement (sqlite3
                # allows that from any thread), then roll back before the close.
                with contextlib.suppress(Exception):
                    dbapi_conn._connection._conn.interrupt()
                with contextlib.suppress(Exception):
                    dbapi_conn.rollback()

            @event.listens_for(sync, "begin")
            def _sqlite_begin(sa_conn: Any) -> None:
                if not sa_conn.get_execution_options().get("lucid_autocommit"):
                    # IMMEDIATE takes the write lock now (waiting up to the busy timeout): a
                    # deferred transaction that read and then writes fails at once with
                    # SQLITE_BUSY_SNAPSHOT, which no busy timeout retries. It also stands in
                    # for SELECT ... FOR UPDATE, which SQLite has not.
                    sa_conn.exec_driver_sql("BEGIN IMMEDIATE")

        emitter = conn._emitter
        name = conn.name
        debug = conn.debug

        @event.listens_for(sync, "before_cursor_execute")
        def _before(_c: Any, _cur: Any, _sql: str, _params: Any, context: Any, _many: bool) -> None:
            if context is not None:
                context._lucid_t0 = time.perf_counter()

        @event.listens_for(sync, "after_cursor_execute")
        def _after(
            sa_conn: Any, _cur: Any, sql: str, params: Any, context: Any, many: bool
        ) -> None:
            if not (emitter.listeners or debug) or emitter.is_control(sql):
                return
            t0 = getattr(context, "_lucid_t0", None)
            duration = (time.perf_counter() - t0) * 1000.0 if t0 is not None else 0.0
            options = context.execution_options if context is not None else {}
            if many:
                bindings = [list(p) if isinstance(p, list | tuple) else p for p in params]
            elif isinstance(params, Mapping):
                bindings = list(params.values())
            else:
                bindings = list(params or ())
            emitter.emit(
                QueryEvent(
                    sql=sql,
                    bindings=bindings,
                    connection=name,
                    duration_ms=duration,
                    model=options.get("lucid_model"),
                    in_transaction=not sa_conn.get_execution_options().get("lucid_autocommit"),
                ),
                debug=debug,
            )

    async def release_idle(self) -> None:
        """Return the connections kept for lean reads to the pool."""
        from sqlalchemy.util.concurrency import greenlet_spawn

        idle, self.idle = self.idle, []
        for raw, _driver in idle:
            await greenlet_spawn(raw.close)
