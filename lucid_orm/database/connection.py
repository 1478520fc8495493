"""One named connection: its URL, its engines (write, read replicas) and their event wiring."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import importlib.util
import itertools
import os
import re
import time
from asyncio.events import _get_running_loop
from collections.abc import Iterator, Mapping
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.engine.interfaces import Dialect as SADialect
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.util.concurrency import greenlet_spawn

from ..errors import LucidError
from .dialects import Dialect, dialect_for
from .dialects.base import EngineSetup
from .events import DEBUG, Endpoint, QueryEmitter, driver_exception, enabled
from .executor import StatementCache, checkin, invalidate_generation, lean_capacity
from .replicas import (
    DEFAULT_COOLDOWN,
    DEFAULT_LAG_INTERVAL,
    HostState,
    LagProbe,
    install_failover,
    note_write,
    seconds_option,
    write_hosts,
    wrote_in_scope,
)

_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "mysql": "mysql+asyncmy",
    "mariadb": "mysql+asyncmy",
}

# Driver module -> the lucid-orm extra that installs it (None: a base dependency).
_DRIVER_EXTRAS = {"asyncpg": "postgresql", "asyncmy": "mysql", "aiosqlite": None}

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


def require_driver(url: URL) -> None:
    """Raise ``LucidError`` (``E_MISSING_DEPENDENCY``) naming the extra to install when the
    driver of ``url`` (asyncpg, asyncmy, aiosqlite) is not installed. Server drivers are
    extras: ``pip install lucid-orm`` brings SQLite's alone."""
    module = url.get_driver_name()
    if module not in _DRIVER_EXTRAS:
        return  # a driver named in the URL: SQLAlchemy reports it if missing
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    if found:
        return
    extra = _DRIVER_EXTRAS[module]
    install = f"pip install 'lucid-orm[{extra}]'" if extra else f"pip install {module}"
    raise LucidError(
        f"A {url.get_backend_name()} connection needs the {module} driver, which is not "
        f"installed: {install}",
        code="E_MISSING_DEPENDENCY",
    )


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


# Event loops whose connections keep engines of their own (``lucid_orm.sync``'s loops, one per
# thread), each with the connections that opened engines in it, so that the loop's owner can
# close them (``release_loop``). Empty unless ``lucid_orm.sync`` is used: every other statement
# pays one truthiness test for it.
DEDICATED_LOOPS: dict[asyncio.AbstractEventLoop, list[Connection]] = {}


def dedicate_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Give ``loop`` engines of its own on every connection used inside it: they never rebind
    or drop the engines of another loop (another thread's, or the application's), and another
    loop never touches them. ``release_loop()``, run in ``loop``, closes them."""
    DEDICATED_LOOPS.setdefault(loop, [])


async def release_loop() -> None:
    """Close the engines that the running (dedicated) loop opened on any connection, and
    forget the loop; the connections stay configured (another use opens new engines)."""
    loop = asyncio.get_running_loop()
    for conn in DEDICATED_LOOPS.pop(loop, []):
        await conn.release_engines_of(loop)


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The running event loop, ``None`` outside one."""
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
        # Values on log lines (``debug`` implies it): an opt-in, they may be personal data.
        self.log_bindings = bool(config.get("log_bindings", False)) or self.debug
        self.emitter = emitter
        emitter.set_debug(name, self.debug)
        replicas = config.get("replicas")
        if replicas:
            write = replicas.get("write")
            reads = replicas.get("read") or []
            if not write or (not reads and isinstance(write, Mapping)):
                raise LucidError(
                    f'Connection "{name}": replicas need a "write" config and a "read" list, '
                    'or a "write" list (several write hosts)',
                    code="E_INVALID_CONFIG",
                )
            self._read_cfgs: list[dict[str, Any]] = [{**config, **r} for r in reads]
        else:
            if not config.get("url") and not config.get("hosts"):
                raise LucidError(f'Connection "{name}" has no "url"', code="E_INVALID_CONFIG")
            write = None
            self._read_cfgs = []
        # Several write hosts (a multi-primary cluster): new connections fail over in order.
        self._write_hosts = write_hosts(name, config, write)
        self._write_cfg: dict[str, Any] = self._write_hosts[0]
        self.url, self.is_memory = parse_url(self._write_cfg["url"])
        # At configure time, not on the first statement: the missing extra is named before
        # the application starts serving.
        require_driver(self.url)
        self.dialect_name = self.url.get_backend_name()
        # What this database does differently (dialects/): capabilities and operations.
        self.dialect_ops: Dialect = dialect_for(self.dialect_name)
        # Read-your-writes: after a write in the current scope, its reads use the write side.
        self.sticky = bool(config.get("sticky", False))
        cooldown = seconds_option(config, "replica_cooldown", name)
        self.replica_cooldown = DEFAULT_COOLDOWN if cooldown is None else cooldown
        self.max_replica_lag = seconds_option(config, "max_replica_lag", name)
        self.replica_lag_interval = seconds_option(config, "replica_lag_interval", name)
        if self.max_replica_lag is not None and self.dialect_ops.replica_lag_sql is None:
            raise LucidError(
                f'Connection "{name}": max_replica_lag is supported on PostgreSQL streaming '
                f"replicas, not on {self.dialect_name}",
                code="E_INVALID_CONFIG",
            )
        # Reads choose among replicas (their health, the scope's writes, their lag) on the
        # async path (QueryClient); connections without replicas never pay for it.
        self.routed = bool(self._read_cfgs)
        self._write: Engines | None = None
        self._reads: list[Engines] = []
        self._read_cycle: Iterator[Engines] | None = None
        # The engines of dedicated loops (DEDICATED_LOOPS), apart from the ones above.
        self._dedicated: dict[asyncio.AbstractEventLoop, _EngineSet] = {}
        # sqlite://:memory: is one shared connection: transactions of two tasks must not mix.
        self.lock: asyncio.Lock | None = asyncio.Lock() if self.is_memory else None
        # (task, root transaction) that statements on this connection join instead of taking
        # a connection: on in-memory SQLite, the task holding the single connection; task
        # ``None`` is a global transaction, joined by every task (db.begin_global_transaction).
        self.owner: tuple[asyncio.Task[Any] | None, Any] | None = None
        self.closed = False
        # The one switch of every fast path (the table in executor.py: lean reads, find's
        # static statement, SQLite's multi-row INSERT); ``fast_reads: False`` (or
        # ``LUCID_FAST_PATHS=0`` in the environment) sends everything through SQLAlchemy's
        # execution layer instead, so the suite can prove both paths give the same answers.
        self.fast_reads = bool(config.get("fast_reads", fast_paths_default()))
        self.statements = StatementCache()
        self.static_statements: dict[Any, Any] = {}

    def __repr__(self) -> str:
        return f"<Connection {self.name!r} {mask(self.url)}>"

    # -- engines -------------------------------------------------------------------------------
    def _ensure(self) -> Engines:
        if DEDICATED_LOOPS:
            own = self._dedicated_set()
            if own is not None:
                return own.write
        write = self._write
        if write is None:
            self._check_open()
            engines = self._new_set()
            self._write, self._reads, self._read_cycle = engines.write, engines.reads, engines.cycle
            write = engines.write
        elif write.loop_bound:
            # asyncpg and asyncmy connections belong to the loop that opened them: another
            # loop (a second asyncio.run(), a test loop of another scope) gets engines of its own.
            # (``running_loop()``, without its frame and ``try``: asyncio's C getter gives
            # ``None`` outside a loop; twice a find + preload, every read.)
            loop = _get_running_loop()
            if loop is not write.loop and loop is not None:
                return self._rebind(write, loop)
        return write

    def _check_open(self) -> None:
        if self.closed:
            raise LucidError(
                f'Connection "{self.name}" is closed: call db.configure() to open it again',
                code="E_CONNECTION_CLOSED",
            )

    def _new_set(self) -> _EngineSet:
        write = Engines(self, self._write_cfg)
        if len(self._write_hosts) > 1:
            urls = [parse_url(cfg["url"])[0] for cfg in self._write_hosts]
            count = len(urls)
            states = [
                HostState(
                    f'write host {i} of {count} of "{self.name}" ({mask(url)})',
                    self.replica_cooldown,
                )
                for i, url in enumerate(urls, 1)
            ]
            install_failover(write, urls, states)
        count = len(self._read_cfgs)
        reads = [
            Engines(self, cfg, f"read replica {i} of {count}")
            for i, cfg in enumerate(self._read_cfgs, 1)
        ]
        lag_sql = self.dialect_ops.replica_lag_sql
        for eng in reads:
            eng.state = HostState(eng.describe(self.name), self.replica_cooldown)
            if self.max_replica_lag is not None and lag_sql is not None:
                interval = self.replica_lag_interval
                eng.lag = LagProbe(lag_sql, DEFAULT_LAG_INTERVAL if interval is None else interval)
        return _EngineSet(write, reads, itertools.cycle(reads) if reads else None)

    def _dedicated_set(self) -> _EngineSet | None:
        """The engines of the running loop when it is a dedicated one (``None`` otherwise),
        opened on first use."""
        loop = running_loop()
        if loop is None:
            return None
        users = DEDICATED_LOOPS.get(loop)
        if users is None:
            return None
        self._check_open()
        found = self._dedicated.get(loop)
        if found is None:
            found = self._dedicated[loop] = self._new_set()
            users.append(self)
        return found

    async def release_engines_of(self, loop: asyncio.AbstractEventLoop) -> None:
        """Close the engines dedicated loop ``loop`` (the running one) opened."""
        found = self._dedicated.pop(loop, None)
        if found is not None:
            await found.close()

    def _rebind(self, write: Engines, loop: asyncio.AbstractEventLoop) -> Engines:
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
                "own Database(), run the thread's queries through lucid_orm.sync (a loop per "
                "thread, with connections of its own), or await db.close() in the other loop "
                "first",
                code="E_EVENT_LOOP_CHANGED",
            )
        # The old loop is closed or idle: its connections can't be awaited from here, so they
        # are dropped unawaited (the garbage collector closes their sockets).
        self.abandon()
        return self._ensure()

    def abandon(self) -> None:
        """Forget the engines without closing them (their loop is gone)."""
        for eng in ([self._write] if self._write else []) + self._reads:
            idle, eng.idle = eng.idle, []
            for pair in idle:
                # Checked out: detached, the pool won't try to terminate it on the dead loop
                # when it is garbage collected.
                with contextlib.suppress(Exception):
                    pair[0].detach()
        self._write, self._reads, self._read_cycle = None, [], None
        if self.owner is not None and self.owner[0] is None:
            self.owner = None

    def engines_loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop the open engines belong to (``None``: no engines, or not bound)."""
        return self._write.loop if self._write is not None else None

    @property
    def dialect(self) -> SADialect:
        return self._ensure().engine.dialect

    def write_engines(self) -> Engines:
        """The write side, for a write or a transaction: on a ``sticky`` connection the
        current scope's reads follow it from now on."""
        if self.sticky:
            note_write(self.name)
        return self._ensure()

    def primary_engines(self) -> Engines:
        """The write side, for a read sent there (fallback, ``mode="write"``, sticky)."""
        return self._ensure()

    def read_engines(self) -> Engines:
        """The write side, or on a connection with replicas the next replica in the rotation
        (any; ``pick_read`` chooses one that answers)."""
        if DEDICATED_LOOPS:
            own = self._dedicated_set()
            if own is not None:
                return next(own.cycle) if own.cycle is not None else own.write
        write = self._ensure()
        return next(self._read_cycle) if self._read_cycle is not None else write

    async def pick_read(self) -> Engines:
        """Where a read outside a transaction goes on a connection with replicas: the write
        side after a write in this scope (``sticky``), else the next replica in the rotation
        that is not in its cool-down after a failed connection and not behind by more than
        ``max_replica_lag``; the write side when none is."""
        write = self._ensure()
        if self.sticky and wrote_in_scope(self.name):
            return write
        now = time.monotonic()
        for _ in range(len(self._read_cfgs)):
            eng = self.read_engines()
            state = eng.state
            if state is None or not state.available(now):
                continue
            probe = eng.lag
            if probe is None:
                return eng
            try:
                behind = await probe.seconds(eng)
            except Exception as exc:
                # Unreachable: the same as a failed read (skipped for its cool-down).
                self.replica_failed(eng, exc)
                continue
            assert self.max_replica_lag is not None
            if behind <= self.max_replica_lag:
                return eng
        return self.primary_engines()

    def replica_failed(self, engines: Engines, exc: BaseException) -> None:
        """A read replica did not answer: skip it for ``replica_cooldown`` seconds."""
        if engines.state is not None:
            engines.state.failed(exc, "reads go to the other replicas or the write side")

    @property
    def has_replicas(self) -> bool:
        return bool(self._read_cfgs)

    async def close(self) -> None:
        loop = running_loop()
        if loop is not None and loop in DEDICATED_LOOPS:
            await self.release_engines_of(loop)
        write = self._write
        if write is not None and write.loop_bound and write.loop not in (None, running_loop()):
            # Opened by another event loop (a previous asyncio.run()): their connections
            # can't be awaited from this one.
            self.abandon()
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


def _pool_options(pool: Mapping[str, Any], backend: str, memory: bool) -> dict[str, Any]:
    """``create_async_engine`` keyword arguments of the ``pool`` config."""
    kwargs: dict[str, Any] = {}
    if not memory and (backend != "sqlite" or pool):
        if "max" in pool:
            kwargs["pool_size"] = int(pool["max"])
            kwargs["max_overflow"] = 0
        if "timeout" in pool:
            kwargs["pool_timeout"] = float(pool["timeout"])
    if pool.get("pre_ping"):
        # Opt-in: one round trip per checkout to find connections the server dropped before
        # a statement fails on them (reads outside transactions heal without it).
        kwargs["pool_pre_ping"] = True
    return kwargs


class _EngineSet:
    """The write engines, read replicas and the replica rotation of one event loop."""

    __slots__ = ("cycle", "reads", "write")

    def __init__(self, write: Engines, reads: list[Engines], cycle: Iterator[Engines] | None):
        self.write = write
        self.reads = reads
        self.cycle = cycle

    async def close(self) -> None:
        for eng in [self.write, *self.reads]:
            await eng.release_idle()
            await eng.engine.dispose()


class Engines:
    """A transactional engine and its autocommit twin (same pool) for one database URL, with
    the driver connections the lean read path keeps between reads."""

    def __init__(self, conn: Connection, cfg: Mapping[str, Any], role: str | None = None) -> None:
        url, memory = parse_url(cfg["url"])
        backend = url.get_backend_name()
        ops = dialect_for(backend)
        self.url = url
        self.backend = backend
        self.dialect_ops = ops
        # Which side of the connection this is, for messages ("read replica 1 of 2").
        self.role = role
        # The event loop its driver connections belong to (asyncpg/asyncmy; see
        # Connection.write_engines); set when created inside a running loop.
        self.loop_bound = ops.loop_bound
        self.loop = running_loop()
        pool = dict(cfg.get("pool") or {})
        connect_args: dict[str, Any] = dict(cfg.get("connect_args") or {})
        kwargs = _pool_options(pool, backend, memory)
        ops.engine_options(EngineSetup(conn.name, cfg, memory, kwargs, connect_args))
        kwargs["connect_args"] = connect_args
        kwargs.update(cfg.get("engine_options") or {})
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        self.dialect = self.engine.dialect
        # Read replicas only: whether it answers (replicas.HostState) and its replay lag
        # (replicas.LagProbe, with ``max_replica_lag``).
        self.state: HostState | None = None
        self.lag: LagProbe | None = None
        self.autocommit_engine: AsyncEngine = self.engine.execution_options(
            **ops.autocommit_options()
        )
        # Driver connections kept checked out between lean reads (executor.py), never more
        # than leaves a capped pool at least one connection for everything else. They hold no
        # state: SQLite and PostgreSQL reads run in autocommit, MySQL reads end with COMMIT.
        # (pooled connection, its driver connection) pairs
        self.idle: list[tuple[Any, Any]] = []
        # SQLite: short lean reads run on the event-loop thread (executor.fetch_sqlite).
        self.inline_reads = ops.inline_reads(cfg, memory)
        if memory or "max" not in pool:
            self.hold = 2
        else:
            self.hold = max(0, min(2, int(pool["max"]) - 1))
        # Lean reads holding a connection, the most that may (0: no limit of their own) and
        # those waiting for one of theirs to finish (executor.acquire).
        self.busy = 0
        self.cap = 0 if memory else lean_capacity(self.engine.sync_engine.pool)
        self.waiters: collections.deque[asyncio.Future[Any]] = collections.deque()
        # SQLite: lean reads whose statement runs on a worker thread, and connections of
        # finished lean reads on their way back to the pool (executor.pool_alone).
        self.on_worker = 0
        self.returning = 0
        # Where its statements run, for observers (spans) and log lines.
        self.endpoint = Endpoint(
            connection=conn.name,
            backend=backend,
            database=url.database or (":memory:" if backend == "sqlite" else None),
            host=url.host,
            port=url.port or ops.default_port,
            dialect=self.dialect,
            log_bindings=conn.log_bindings,
            debug=conn.debug,
        )
        sync = self.engine.sync_engine
        ops.install_events(sync, cfg, memory)
        _report_statements(sync, conn.emitter, self.endpoint)

    def __repr__(self) -> str:
        return f"<Engines {self.role or 'write'} {mask(self.url)}>"

    def describe(self, name: str) -> str:
        """``"pg" (postgresql+asyncpg://app:***@host/db)``, naming the replica when it is one."""
        where = f'{self.role} of "{name}"' if self.role else f'"{name}"'
        return f"{where} ({mask(self.url)})"

    def is_disconnect(self, exc: BaseException, driver: Any) -> bool:
        """Whether ``exc``, raised by the driver connection ``driver`` (lean path), means the
        server dropped the connection."""
        return self.dialect_ops.is_disconnect(exc, driver, self.dialect)

    async def invalidate(self, raw: Any, exc: BaseException | None) -> None:
        """Drop the pooled connection ``raw`` (lean path) after a disconnect, with every
        connection of its generation: the pool reconnects those on their next checkout, and
        the lean path's idle ones are closed now (they came from the same server)."""
        # Emptied in place: a concurrent read keeps its reference to this list and may
        # append a connection to it after this (a swapped-out list would orphan it).
        idle = self.idle[:]
        self.idle.clear()
        pool = self.engine.sync_engine.pool

        def drop() -> None:
            invalidate_generation(pool, raw, exc)
            for pair in idle:
                pair[0].invalidate(exc)

        await greenlet_spawn(drop)

    async def forget_idle(self, exc: BaseException | None) -> None:
        """After SQLAlchemy found a dropped connection (it already invalidated the pool's
        generation): close the lean path's idle connections too."""
        if not self.idle:
            return
        idle = self.idle[:]
        self.idle.clear()

        def drop() -> None:
            for pair in idle:
                pair[0].invalidate(exc)

        await greenlet_spawn(drop)

    def pool_full(self) -> bool:
        """Whether every connection of a capped pool is checked out (the lean path's idle
        ones included); ``False`` when the pool has no cap of the lean path's (``cap``)."""
        return bool(self.cap) and self.engine.sync_engine.pool.checkedout() > self.cap  # type: ignore[attr-defined]

    def dropped(self) -> None:
        """A lean read gave up its connection (executor.py): its place goes to the first
        waiting read, which checks one out of the pool."""
        waiters = self.waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self.busy -= 1

    async def release_idle(self) -> None:
        """Return the connections kept for lean reads to the pool."""
        idle, self.idle = self.idle, []
        for pair in idle:
            await checkin(*pair)


def _report_statements(sync: Any, emitter: QueryEmitter, endpoint: Endpoint) -> None:
    """Hand every statement SQLAlchemy runs on ``sync`` to the instrumentation point
    (``QueryEmitter.record``), failed ones included; transaction control is left out."""

    @event.listens_for(sync, "before_cursor_execute")
    def _before(_c: Any, _cur: Any, _sql: str, _params: Any, context: Any, _many: bool) -> None:
        if context is not None:
            context._lucid_t0 = time.perf_counter()

    @event.listens_for(sync, "after_cursor_execute")
    def _after(sa_conn: Any, _cur: Any, sql: str, params: Any, context: Any, many: bool) -> None:
        if not (emitter.active or enabled(DEBUG)) or emitter.is_control(sql):
            return
        _record(sa_conn, sql, params, context, many, None)

    @event.listens_for(sync, "handle_error")
    def _failed(ctx: Any) -> None:
        sql = ctx.statement
        if (
            sql is None
            or ctx.connection is None
            or not (emitter.active or enabled(DEBUG))
            or emitter.is_control(sql)
        ):
            # Nothing reached the database (a checkout, a compile error), or nobody listens.
            return
        context = ctx.execution_context
        many = bool(getattr(context, "executemany", False))
        error = driver_exception(ctx.original_exception)
        _record(ctx.connection, sql, ctx.parameters, context, many, error)

    def _record(
        sa_conn: Any, sql: str, params: Any, context: Any, many: bool, error: BaseException | None
    ) -> None:
        t0 = getattr(context, "_lucid_t0", None)
        options = context.execution_options if context is not None else {}
        if many:
            bindings = [list(p) if isinstance(p, list | tuple) else p for p in params]
        elif isinstance(params, Mapping):
            bindings = list(params.values())
        else:
            bindings = list(params or ())
        emitter.record(
            endpoint,
            sql,
            bindings,
            t0 if t0 is not None else time.perf_counter(),
            options.get("lucid_model"),
            not sa_conn.get_execution_options().get("lucid_autocommit"),
            error,
        )
