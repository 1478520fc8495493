"""One named connection: its URL, its engines (write, read replicas) and their event wiring."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
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
    except (ArgumentError, ValueError) as exc:
        # Both the URL and the parser's message may hold the password.
        raise LucidError(
            f"Invalid database URL {mask_text(str(url))!r}: {mask_text(str(exc))}",
            code="E_INVALID_URL",
        ) from exc
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


# Query parameters that carry a secret (``postgresql://app@host/db?password=...``).
_SECRET_PARAMS = frozenset(
    {"password", "passwd", "pwd", "pass", "sslpassword", "secret", "token", "api_key", "apikey"}
)
_HIDDEN = "***"
_USERINFO_SECRET = re.compile(r"(://[^:/@\s]*:)[^@\s]*@")
_PARAM_SECRET = re.compile(
    r"(\b(?:" + "|".join(sorted(_SECRET_PARAMS)) + r")=)[^&\s'\"]*", re.IGNORECASE
)


def mask(url: URL | str) -> str:
    """The URL as text with every password hidden (userinfo and query parameters such as
    ``?password=``), for messages and reprs."""
    if isinstance(url, str):
        text = url
        try:
            url = make_url(text)
        except (ArgumentError, ValueError):
            return mask_text(text)
    if any(key.lower() in _SECRET_PARAMS for key in url.query):
        query = {k: (_HIDDEN if k.lower() in _SECRET_PARAMS else v) for k, v in url.query.items()}
        url = url.set(query=query)
    # The renderer percent-encodes query values: put the marker back as written.
    return url.render_as_string(hide_password=True).replace("%2A%2A%2A", _HIDDEN)


def mask_text(text: str) -> str:
    """``text`` with the passwords of any URL in it hidden (for messages that quote a URL the
    parser rejected)."""
    return _PARAM_SECRET.sub(r"\1" + _HIDDEN, _USERINFO_SECRET.sub(r"\1" + _HIDDEN + "@", text))


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


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

    def __repr__(self) -> str:
        return f"<Connection {self.name!r} {mask(self.url)}>"

    # -- engines -------------------------------------------------------------------------------
    def _ensure(self) -> _Engines:
        write = self._write
        if write is None:
            if self.closed:
                raise LucidError(
                    f'Connection "{self.name}" is closed: call db.configure() to open it again',
                    code="E_CONNECTION_CLOSED",
                )
            self._write = write = _Engines(self, self._write_cfg)
            count = len(self._read_cfgs)
            self._reads = [
                _Engines(self, cfg, f"read replica {i} of {count}")
                for i, cfg in enumerate(self._read_cfgs, 1)
            ]
            if self._reads:
                self._read_cycle = itertools.cycle(self._reads)
        elif write.loop_bound:
            # asyncpg and asyncmy connections belong to the loop that opened them: another
            # loop (a second asyncio.run(), a test loop of another scope) gets engines of its own.
            loop = _running_loop()
            if loop is not write.loop and loop is not None:
                return self._rebind(write, loop)
        return write

    def _rebind(self, write: _Engines, loop: asyncio.AbstractEventLoop) -> _Engines:
        old = write.loop
        if old is None:
            # Created outside any loop: nothing is connected yet, this loop adopts them.
            for eng in [write, *self._reads]:
                eng.loop = loop
            return write
        if old.is_running() and not old.is_closed():
            raise LucidError(
                f'Connection "{self.name}" is in use by an event loop running in another '
                "thread: its pooled connections cannot serve two loops. Give each thread its "
                "own Database() (or await db.close() in the other loop first)",
                code="E_EVENT_LOOP_CHANGED",
            )
        # The old loop is closed or idle: its connections can't be awaited from here, so they
        # are dropped unawaited (the garbage collector closes their sockets).
        self._abandon()
        return self._ensure()

    def _abandon(self) -> None:
        """Forget the engines without closing them (their loop is gone)."""
        for eng in ([self._write] if self._write else []) + self._reads:
            idle, eng.idle = eng.idle, []
            for raw, _driver in idle:
                # Checked out: detached, the pool won't try to terminate it on the dead loop
                # when it is garbage collected.
                with contextlib.suppress(Exception):
                    raw.detach()
        self._write, self._reads, self._read_cycle = None, [], None
        if self.owner is not None and self.owner[0] is None:
            self.owner = None

    def engines_loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop the open engines belong to (``None``: no engines, or not bound)."""
        return self._write.loop if self._write is not None else None

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
        write = self._write
        if write is not None and write.loop_bound and write.loop not in (None, _running_loop()):
            # Opened by another event loop (a previous asyncio.run()): their connections
            # can't be awaited from this one.
            self._abandon()
            self.closed = True
            return
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

    def __init__(self, conn: Connection, cfg: Mapping[str, Any], role: str | None = None) -> None:
        url, memory = parse_url(cfg["url"])
        backend = url.get_backend_name()
        self.url = url
        # Which side of the connection this is, for messages ("read replica 1 of 2").
        self.role = role
        # The event loop its driver connections belong to (asyncpg/asyncmy; see
        # Connection._ensure); set when created inside a running loop.
        self.loop_bound = backend != "sqlite"
        self.loop = _running_loop()
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
        if pool.get("pre_ping"):
            # Opt-in: one round trip per checkout to find connections the server dropped
            # before a statement fails on them (reads outside transactions heal without it).
            kwargs["pool_pre_ping"] = True
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
        # Driver connections kept checked out between lean reads (executor.py), never more
        # than leaves a capped pool at least one connection for everything else. They hold no
        # state: SQLite and PostgreSQL reads run in autocommit, MySQL reads end with COMMIT.
        # (pooled connection, its driver connection) pairs
        self.idle: list[tuple[Any, Any]] = []
        if memory or "max" not in pool:
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

    def __repr__(self) -> str:
        return f"<_Engines {self.role or 'write'} {mask(self.url)}>"

    def describe(self, name: str) -> str:
        """``"pg" (postgresql+asyncpg://app:***@host/db)``, naming the replica when it is one."""
        where = f'{self.role} of "{name}"' if self.role else f'"{name}"'
        return f"{where} ({mask(self.url)})"

    def is_disconnect(self, exc: BaseException, driver: Any) -> bool:
        """Whether ``exc``, raised by the driver connection ``driver`` (lean path), means the
        server dropped the connection."""
        if isinstance(exc, OSError):
            return True
        backend = self.backend
        if backend == "postgresql":
            # asyncpg closes the connection on any fatal error (terminated backend, admin
            # shutdown, reset socket); whatever it then raised, is_closed() tells.
            return bool(driver.is_closed())
        if backend == "mysql":
            try:
                return bool(self.dialect.is_disconnect(exc, None, None))  # type: ignore[arg-type]
            except (IndexError, TypeError):
                return False
        return False

    async def invalidate(self, raw: Any, exc: BaseException | None) -> None:
        """Drop the pooled connection ``raw`` (lean path) after a disconnect, with every
        connection of its generation: the pool reconnects those on their next checkout, and
        the lean path's idle ones are closed now (they came from the same server)."""
        from sqlalchemy.util.concurrency import greenlet_spawn

        # Emptied in place: a concurrent read keeps its reference to this list and may
        # append a connection to it after this (a swapped-out list would orphan it).
        idle = self.idle[:]
        self.idle.clear()
        pool = self.engine.sync_engine.pool

        def drop() -> None:
            pool._invalidate(raw, exc)
            for other, _driver in idle:
                other.invalidate(exc)

        await greenlet_spawn(drop)

    async def forget_idle(self, exc: BaseException | None) -> None:
        """After SQLAlchemy found a dropped connection (it already invalidated the pool's
        generation): close the lean path's idle connections too."""
        if not self.idle:
            return
        from sqlalchemy.util.concurrency import greenlet_spawn

        idle = self.idle[:]
        self.idle.clear()

        def drop() -> None:
            for other, _driver in idle:
                other.invalidate(exc)

        await greenlet_spawn(drop)

    async def release_idle(self) -> None:
        """Return the connections kept for lean reads to the pool."""
        from sqlalchemy.util.concurrency import greenlet_spawn

        idle, self.idle = self.idle, []
        for raw, _driver in idle:
            await greenlet_spawn(raw.close)
