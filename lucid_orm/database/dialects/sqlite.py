"""SQLite: PRAGMAs on connect, ``json_each`` key lists, the driver's multi-row INSERT, and
DELETE for TRUNCATE."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import sqlite3
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event, func, insert, literal, literal_column, select
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection as SyncConnection
from sqlalchemy.engine import Engine as SyncEngine
from sqlalchemy.engine.interfaces import Dialect as SADialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql import ColumnElement, TableClause

from ...errors import LucidError, QueryError
from ..events import DEBUG, enabled
from ..executor import (
    LRU,
    Compiled,
    bind_processor,
    compile_insert,
    compile_returning,
    failed,
    interrupt_sqlite,
    raw_connection,
    restore_busy_timeout,
    returned_rows,
    write_sqlite,
)
from .base import (
    Dialect,
    EngineSetup,
    Key,
    Rows,
    joined_update,
    merge_set,
    named_table,
    update_from,
)
from .json import SqliteJson, register_sqlite_functions
from .shapes import RowsShape, bind_values, compile_update_rows

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncTransaction

    from ...query.client import Client
    from ..connection import Connection
    from ..transaction import TransactionClient

# json_each is built into SQLite from 3.38 (Python's sqlite3 may be older).
JSON_EACH = sqlite3.sqlite_version_info >= (3, 38, 0)
# RETURNING arrived in SQLite 3.35; the bound-parameter limit rose from 999 in 3.32.
RETURNING = sqlite3.sqlite_version_info >= (3, 35, 0)
MAX_PARAMS = 32766 if sqlite3.sqlite_version_info >= (3, 32, 0) else 999
# UPDATE … FROM arrived in SQLite 3.33.
UPDATE_FROM = sqlite3.sqlite_version_info >= (3, 33, 0)

# SQLite's wait for a locked database (ms) unless the connection sets ``busy_timeout_ms``.
BUSY_TIMEOUT_MS = 5000

# Bytes of a file database that SQLite reads through a memory map unless the connection sets
# ``mmap_size``: pages come straight from the OS page cache, shared by every connection,
# instead of a read() into each connection's own page cache (2 MiB by default).
MMAP_SIZE = 128 * 1024 * 1024

# The transaction SQLite's connections begin (see ``install_events``), and the key of
# ``Connection.info`` that mutes the "begin" listener while ``SqliteDialect.begin`` sends it.
_BEGIN = "BEGIN IMMEDIATE"
_DRIVER_BEGIN = "lucid_driver_begin"
# Noted on an aiosqlite connection (its ``__dict__``, on its own thread) when a pipelined
# BEGIN failed; what a driver statement queued behind it answers instead of running.
_BEGIN_FAILED = "_lucid_begin_failed"
_SKIPPED: Any = object()

_INT64 = (-(2**63), 2**63)
# SQLite's answer to ``abs(-2**63)``: the statement's deliberate failure when a row's key
# can't be shown to follow the rows before it (``_ordered_key``).
_UNORDERED = "integer overflow"
# Compiled INSERT shapes kept per (table, columns, key).
_INSERT_CACHE_SIZE = 256


def json_keys(keys: Sequence[Any]) -> bool:
    """Keys that survive a JSON round trip as the same SQLite values (integers that fit in 64
    bits, strings, ``NULL``)."""
    low, high = _INT64
    for k in keys:
        kind = type(k)
        if kind is str or k is None:
            continue
        if kind is not int or not low <= k < high:
            return False
    return True


def typed(column: Any) -> sa.types.TypeEngine[Any] | None:
    """The column's SQL type, ``None`` when it has none (``db.from_`` columns)."""
    type_: sa.types.TypeEngine[Any] | None = getattr(column, "type", None)
    if type_ is None or isinstance(type_, sa.types.NullType):
        return None
    return type_


def _stored_values(column: Any, keys: Sequence[Any], dialect: SADialect) -> list[Any] | None:
    """The keys as SQLite stores them (the column type's bind processor applied, so UUID,
    date and boolean keys compare as they are written), or ``None`` when they can't travel as
    JSON."""
    type_ = typed(column)
    process = bind_processor(type_, dialect) if type_ is not None else None
    values = list(keys) if process is None else [None if k is None else process(k) for k in keys]
    return values if json_keys(values) else None


def _json_param(values: list[Any]) -> Any:
    # ``key_parameter`` gives the value of this parameter for the same keys.
    return sa.bindparam(None, json.dumps(values), unique=True)


def _busy_timeout(name: str, cfg: Mapping[str, Any]) -> int:
    return _whole_number(name, cfg, "busy_timeout_ms", BUSY_TIMEOUT_MS, "milliseconds (0 or more)")


def _mmap_size(name: str, cfg: Mapping[str, Any]) -> int:
    return _whole_number(name, cfg, "mmap_size", MMAP_SIZE, "bytes (0 turns the memory map off)")


def _whole_number(name: str, cfg: Mapping[str, Any], key: str, default: int, unit: str) -> int:
    value = cfg.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise LucidError(
            f'Connection "{name}": "{key}" must be a whole number of {unit}, got {value!r}',
            code="E_INVALID_CONFIG",
        )
    return value


def inline_reads_default() -> bool:
    """Whether SQLite connections run short lean reads on the event-loop thread unless
    configured: ``LUCID_SQLITE_INLINE=0`` (or ``LUCID_FAST_PATHS=0``) turns it off
    process-wide."""
    for name in ("LUCID_SQLITE_INLINE", "LUCID_FAST_PATHS"):
        if os.environ.get(name, "1").strip().lower() in ("0", "false", "off"):
            return False
    return True


def _inline_reads(name: str, cfg: Mapping[str, Any], memory: bool) -> bool:
    value = cfg.get("inline_reads", None)
    if value is not None and not isinstance(value, bool):
        raise LucidError(
            f'Connection "{name}": "inline_reads" must be True or False, got {value!r}',
            code="E_INVALID_CONFIG",
        )
    if value is False or (value is None and not inline_reads_default()):
        return False
    # In-memory databases share one connection (StaticPool) between tasks; without WAL a
    # read can wait for a writer's lock; a connection pinned to its thread can't be reached.
    thread_bound = (cfg.get("connect_args") or {}).get("check_same_thread") is True
    return not memory and bool(cfg.get("wal", True)) and not thread_bound


@dataclass(frozen=True, slots=True)
class InsertShape:
    """A one-row ``INSERT … VALUES (?, ?) RETURNING …`` compiled by SQLAlchemy, cut around
    its VALUES group so that a batch repeats the group (SQLAlchemy's own batching scheme,
    ``SQLCompiler.insert_single_values_expr``); ``order``: the columns in parameter order,
    ``processors``: their bind processors for this dialect (``None``: the value goes as is)."""

    head: str
    group: str
    ordered: str
    single: str
    order: list[str]
    processors: list[Callable[[Any], Any] | None]

    def sql(self, rows: int) -> str:
        """The statement for ``rows`` rows: returning ``_ordered_key`` for more than one."""
        if rows == 1:
            return self.head + self.group + self.single
        return self.head + ", ".join([self.group] * rows) + self.ordered


@dataclass(frozen=True, slots=True)
class UpsertShape:
    """A one-row ``INSERT … VALUES (?, ?) ON CONFLICT (…) DO UPDATE SET … RETURNING …``
    compiled by SQLAlchemy, cut around its VALUES group (as ``InsertShape``); ``result``: the
    returned columns' keys and result processors."""

    head: str
    group: str
    tail: str
    order: list[str]
    processors: list[Callable[[Any], Any] | None]
    result: Compiled

    def sql(self, rows: int) -> str:
        return self.head + ", ".join([self.group] * rows) + self.tail


class SqliteDialect(Dialect):
    """SQLite through aiosqlite."""

    name = "sqlite"
    returning = RETURNING
    transactional_ddl = True
    isolation_levels = False
    loop_bound = False
    commit_after_write = True
    json = SqliteJson()
    # ``IN (SELECT value FROM json_each(?))`` of one key runs the virtual table and a list
    # subquery besides the index lookup: about twice what ``IN (?)`` costs on a
    # has_many of ten rows (measured 36 µs against 18).
    plain_single_key = True

    def __init__(self) -> None:
        # (table, columns, rows) -> (sql, the row-by-row sql)
        self._inserts: LRU[InsertShape] = LRU(_INSERT_CACHE_SIZE)
        # (table, key, columns) -> the fast bulk UPDATE's shape (None: not cut)
        self._update_rows: LRU[RowsShape | None] = LRU(_INSERT_CACHE_SIZE)
        # (table, columns, conflict, merge, returning) -> the upsert's shape
        self._upserts: LRU[UpsertShape] = LRU(_INSERT_CACHE_SIZE)

    # -- connections ---------------------------------------------------------------------------
    def engine_options(self, setup: EngineSetup) -> None:
        # Connections run in autocommit mode (no BEGIN outside transactions, see
        # install_events) and SQLAlchemy rolls back its own transactions on close: a reset is
        # a wasted hop.
        kwargs, connect_args, cfg = setup.kwargs, setup.connect_args, setup.cfg
        kwargs["pool_reset_on_return"] = None
        # How long a statement waits for another connection's write lock before "database is
        # locked" (pysqlite's ``timeout`` sets SQLite's busy timeout, no extra statement).
        if "busy_timeout_ms" in cfg or "timeout" not in connect_args:
            connect_args["timeout"] = _busy_timeout(setup.name, cfg) / 1000.0
        _mmap_size(setup.name, cfg)  # a bad value fails at configure time
        if setup.memory:
            kwargs["poolclass"] = StaticPool
            connect_args.setdefault("check_same_thread", False)
        if _inline_reads(setup.name, cfg, setup.memory):
            # Inline reads call the sqlite3 connection from the event-loop thread, only while
            # its worker thread is idle (executor.fetch_sqlite): never two threads at once.
            connect_args["check_same_thread"] = False

    def inline_reads(self, cfg: Mapping[str, Any], memory: bool) -> bool:
        """Short lean reads run on the event-loop thread (``executor.fetch_sqlite``): the
        connection option ``inline_reads`` (default on), file databases in WAL mode only."""
        return _inline_reads(str(cfg.get("name", "")), cfg, memory)

    def install_events(self, engine: SyncEngine, cfg: Mapping[str, Any], memory: bool) -> None:
        foreign_keys = cfg.get("foreign_keys", True)
        # WAL lets readers run beside the one writer; a file database keeps it once set.
        # In-memory databases have no journal to change.
        wal = not memory and cfg.get("wal", True)
        # In-memory databases have no file to map.
        mmap_size = 0 if memory else _mmap_size(str(cfg.get("name", "")), cfg)

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
            # Let SQLAlchemy, not pysqlite, emit BEGIN so SAVEPOINTs work (SQLAlchemy docs).
            dbapi_conn.isolation_level = None
            register_sqlite_functions(dbapi_conn)
            cursor = dbapi_conn.cursor()
            if wal:
                cursor.execute("PRAGMA journal_mode = WAL")
            if foreign_keys:
                cursor.execute("PRAGMA foreign_keys = ON")
            if mmap_size:
                cursor.execute(f"PRAGMA mmap_size = {int(mmap_size)}")
            cursor.close()

        @event.listens_for(engine, "checkin")
        def _sqlite_checkin(dbapi_conn: Any, _record: Any) -> None:
            # A connection the lean path held ran its inline reads with busy timeout 0:
            # back in the pool it serves writes and transactions, which wait for locks.
            if dbapi_conn is not None:
                with contextlib.suppress(Exception):
                    restore_busy_timeout(dbapi_conn._connection)

        @event.listens_for(engine, "invalidate")
        def _sqlite_invalidate(dbapi_conn: Any, _record: Any, _exc: Any) -> None:
            # SQLAlchemy discards a connection whose statement was cancelled, but aiosqlite
            # would close it only after that statement ran to its end, and a close that finds
            # the statement unfinalized leaves the connection (and its write lock) open until
            # the garbage collector runs. So: interrupt the statement (sqlite3 allows that
            # from any thread), then roll back before the close.
            with contextlib.suppress(Exception):
                interrupt_sqlite(dbapi_conn)
            with contextlib.suppress(Exception):
                dbapi_conn.rollback()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(sa_conn: Any) -> None:
            if sa_conn.info.get(_DRIVER_BEGIN):
                return  # ``begin`` sends the same BEGIN IMMEDIATE on the driver connection
            if not sa_conn.get_execution_options().get("lucid_autocommit"):
                # IMMEDIATE takes the write lock now (waiting up to the busy timeout): a
                # deferred transaction that read and then writes fails at once with
                # SQLITE_BUSY_SNAPSHOT, which no busy timeout retries. It also stands in for
                # SELECT ... FOR UPDATE, which SQLite has not.
                sa_conn.exec_driver_sql(_BEGIN)

    async def begin(
        self, conn: AsyncConnection, fast: bool, pipelined: bool = False
    ) -> tuple[AsyncTransaction, asyncio.Future[Any] | None]:
        """SQLAlchemy's ``conn.begin()`` with its BEGIN IMMEDIATE (the "begin" listener of
        ``install_events``) sent on the driver connection: one trip to aiosqlite's thread
        instead of three (cursor, execute, close) and SQLAlchemy's statement execution around
        them. The same statement on the same connection, so the same write lock and busy
        wait; its error is SQLAlchemy's for it (``DBAPIError.instance``), which the caller
        maps as before; a cancellation during it leaves the connection's state unknown, as
        before (the caller discards it). ``pipelined``: queued on aiosqlite's thread and not
        awaited (the future of its outcome is returned): whatever the connection runs next
        queues behind it, and the caller's Python work meanwhile overlaps it. With the fast
        paths off, SQLAlchemy's path."""
        sync = conn.sync_connection
        if not fast or sync is None or sync.get_execution_options().get("lucid_autocommit"):
            return await conn.begin(), None
        driver: Any = sync.connection.driver_connection
        if driver is None or driver._connection is None or not driver._running:
            # Closed under us: SQLAlchemy's path raises the error it maps.
            return await conn.begin(), None
        info = sync.info
        info[_DRIVER_BEGIN] = True
        try:
            trx = await conn.begin()  # no statement: the listener is muted
        finally:
            info.pop(_DRIVER_BEGIN, None)
        if pipelined:
            # Queued now, in order: aiosqlite's own ``_execute`` would queue it only once
            # awaited. Its outcome is a result, never an exception nobody retrieves.
            future = asyncio.get_running_loop().create_future()
            begin = functools.partial(_begin_queued, driver, driver._connection)
            driver._tx.put_nowait((future, begin))
            return trx, future
        try:
            await driver._execute(_begin_immediate, driver._connection)
        except sqlite3.Error as exc:
            raise sa_exc.DBAPIError.instance(_BEGIN, (), exc, sqlite3.Error) from exc
        return trx, None

    # -- keys as parameters --------------------------------------------------------------------
    def keys_as_one_parameter(self, keys: Sequence[Any]) -> bool:
        return JSON_EACH and json_keys(keys)

    def key_parameter(self, column: ColumnElement[Any], keys: list[Any], dialect: SADialect) -> Any:
        """The keys as stored (the column type's bind processor applied), as one JSON text;
        ``None`` when they don't survive the round trip (``bind_keys`` then binds each)."""
        if not JSON_EACH:
            return None
        values = _stored_values(column, keys, dialect)
        return None if values is None else json.dumps(values)

    def bind_keys(
        self, column: ColumnElement[Any], keys: list[Any], dialect: SADialect, negate: bool
    ) -> ColumnElement[Any]:
        """``column IN (SELECT value FROM json_each(?))``: the keys as one JSON text."""
        if keys and JSON_EACH:
            values = _stored_values(column, keys, dialect)
            if values is not None:
                sub = (
                    select(literal_column("value"))
                    .select_from(func.json_each(_json_param(values)))
                    .scalar_subquery()
                )
                return column.not_in(sub) if negate else column.in_(sub)
        return super().bind_keys(column, keys, dialect, negate)

    def bind_rows(
        self, columns: list[Key], rows: list[tuple[Any, ...]], dialect: SADialect, negate: bool
    ) -> Key | None:
        """``json_extract(value, '$[i]')`` over one JSON array of arrays."""
        if not JSON_EACH:
            return None
        per_column = [
            _stored_values(column, [r[i] for r in rows], dialect)
            for i, column in enumerate(columns)
        ]
        if any(v is None for v in per_column):
            return None
        packed = [list(r) for r in zip(*per_column, strict=True)]
        parts = [
            func.json_extract(literal_column("value"), literal(f"$[{i}]"))
            for i in range(len(columns))
        ]
        sub = select(*parts).select_from(func.json_each(_json_param(packed)))
        target = sa.tuple_(*columns)
        return target.not_in(sub) if negate else target.in_(sub)

    # -- writes --------------------------------------------------------------------------------
    async def insert_many_returning(
        self, trx: TransactionClient, table: TableClause, params: Rows, key: Key, model: str | None
    ) -> list[Any]:
        """SQLite doesn't say in which order ``RETURNING`` hands rows back, nor that
        generated keys ascend (SQLAlchemy's insertmanyvalues then goes row by row): this runs
        multi-row INSERTs that prove that the keys ascend with the rows (``_ordered_key``),
        going row by row when they don't.

        Fast path: the statements run on the transaction's driver connection, the values
        one flat list with each column's bind processor applied once per value, one trip to
        aiosqlite's thread per statement; errors and query events are those of every other
        statement. With the fast paths off (``LUCID_FAST_PATHS=0``) the same statements go
        through SQLAlchemy's execution."""
        from ..query_client import connection_of

        columns = list(params[0]) if params else []
        connection = connection_of(trx)
        if not RETURNING or not columns:
            # No RETURNING before SQLite 3.35, and DEFAULT VALUES rows: SQLAlchemy's path,
            # which runs row by row on SQLite when asked for parameter order.
            return await super().insert_many_returning(trx, table, params, key, model)
        return await _BulkInsert(self, trx, connection, table, key, model).run(columns, params)

    async def insert_tuples_returning(
        self,
        trx: TransactionClient,
        table: TableClause,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        key: Key,
        model: str | None,
    ) -> list[Any]:
        """``insert_many_returning`` of value tuples in ``columns`` order: the same
        statements, the values flattened straight from the tuples."""
        if not RETURNING or not columns:
            return await super().insert_tuples_returning(trx, table, columns, rows, key, model)
        from ..query_client import connection_of

        bulk = _BulkInsert(self, trx, connection_of(trx), table, key, model)
        return await bulk.run(list(columns), rows)

    async def insert_tuples_alone(
        self,
        client: Client,
        table: TableClause,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        key: Key,
        model: str | None,
    ) -> list[Any] | None:
        """The multi-row INSERT of ``insert_tuples_returning`` (its order check included) as
        one statement in one trip (``executor.write_sqlite``); ``None`` when the keys did not
        ascend with the rows (the statement undid itself: the caller inserts in a transaction,
        one row per statement) or the connection is closed."""
        from ..query_client import QueryClient

        if not RETURNING or len(rows) < 2 or not columns or not isinstance(client, QueryClient):
            return None
        names = list(columns)
        connection = client._connection
        if not connection.fast_reads or connection.lock is not None:
            # The twin (and the shared in-memory connection): the same statement through
            # SQLAlchemy, in autocommit.
            stmt = insert(table).values([dict(zip(names, row, strict=True)) for row in rows])
            try:
                result = await client.execute(
                    stmt.returning(_ordered_key(table, table.c[key.name])),
                    write=True,
                    model=model,
                )
            except QueryError as exc:
                if _unordered(exc):
                    return None
                raise
            keys = [tuple(row) for row in result.rows]
            keys.sort()
            return keys
        shape = self.compiled_insert(client.dialect, table, names, key)
        order = shape.order
        values = _flat_values(rows, names, order)
        sql = shape.sql(len(rows))
        bind_values(shape.processors, values, len(order), sql)
        try:
            fetched = await _write_alone(connection, sql, values, model)
        except QueryError as exc:
            if _unordered(exc):
                return None
            raise
        if fetched is None:
            return None
        returned: list[Any] = list(fetched)
        returned.sort()
        return returned

    def compiled_insert(
        self, dialect: SADialect, table: TableClause, columns: list[str], key: Key
    ) -> InsertShape:
        """The one-row INSERT of ``columns`` into ``table`` returning ``key``, compiled from
        Core once per (table, columns, key) and kept (LRU)."""
        shape_key = (table, tuple(columns), key.name)
        cache = self._inserts
        shape = cache.recent(shape_key)
        if shape is not None:
            return shape
        values: dict[str, Any] = {c: sa.bindparam(c) for c in columns}
        table_key = table.c[key.name]
        plain = insert(table).values(values).returning(table_key)
        ordered = insert(table).values(values).returning(_ordered_key(table, table_key))
        head, group, tail, order = compile_insert(ordered, dialect)
        single = compile_insert(plain, dialect)[2]
        processors = [bind_processor(table.c[c].type, dialect) for c in order]
        return cache.keep(shape_key, InsertShape(head, group, tail, single, order, processors))

    def bulk_update_statement(
        self, table: TableClause, key: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> sa.Update:
        return joined_update(table, key, columns, rows)

    def upsert_bound(
        self,
        table: TableClause,
        rows: Rows,
        conflict: Sequence[str],
        merge: Sequence[str],
        dialect: SADialect,
    ) -> Any:
        """``INSERT INTO t (a, b) SELECT json_extract(value, '$[0]'), … FROM json_each(?) WHERE
        true ON CONFLICT (…) DO UPDATE SET …``: the rows as one JSON array of arrays, each
        value through its column type's bind processor first (as ``bulk_update_bound``; any
        value JSON can't carry exactly keeps the multi-row VALUES: ``None``). ``WHERE true``:
        SQLite's parser would read ``ON CONFLICT`` after a bare ``FROM`` as a join's ``ON``."""
        if not JSON_EACH or not rows or not conflict:
            return None
        names = list(rows[0])
        per_column = []
        for name in names:
            values = _stored_values(table.c[name], [r[name] for r in rows], dialect)
            if values is None:
                return None
            per_column.append(values)
        packed = [list(r) for r in zip(*per_column, strict=True)]
        parts = [
            func.json_extract(literal_column("value"), literal(f"$[{i}]"))
            for i in range(len(names))
        ]
        source = select(*parts).select_from(func.json_each(_json_param(packed))).where(sa.true())
        stmt = sqlite.insert(table).from_select(names, source)
        sets = merge_set(list(merge), names, conflict, lambda name: stmt.excluded[name])
        if not sets:
            sets = {conflict[0]: stmt.excluded[conflict[0]]}
        return stmt.on_conflict_do_update(index_elements=list(conflict), set_=sets)

    def upserts_fast(self, client: Client) -> bool:
        from ..query_client import connection_of

        found: Any = client  # a QueryClient or a TransactionClient
        return RETURNING and bool(connection_of(found).fast_reads)

    def writes_alone(self, client: Client, rows: int, width: int) -> bool:
        """One bulk write statement of ``rows`` rows of ``width`` values outside a transaction
        (none this task's statements join) runs without one: on a lean-path connection in one
        trip (``executor.write_sqlite``), or through SQLAlchemy in autocommit (the fast paths
        off, or the one shared in-memory connection), as any single write. SQLite applies one
        statement whole or not at all."""
        from ..query_client import QueryClient

        if not RETURNING or type(client) is not QueryClient or rows * width > MAX_PARAMS:
            return False
        connection = client._connection
        return connection.owner is None or connection.ambient_transaction() is None

    async def upsert_fast(
        self,
        trx: Client,
        table: TableClause,
        rows: Rows,
        conflict: Sequence[str],
        merge: Sequence[str],
        returning: Sequence[ColumnElement[Any]],
        model: str | None,
    ) -> tuple[list[str], list[Sequence[Any]]] | None:
        """The upsert as multi-row ``INSERT … VALUES … ON CONFLICT DO UPDATE … RETURNING`` on
        the transaction's driver connection: the statement compiled once per shape and kept
        (``upsert_statement``'s SQL, the VALUES group repeated), each column's bind processor
        applied once per value, at most ``MAX_PARAMS`` values a statement, one trip to
        aiosqlite's thread per statement, the returned rows through the columns' result
        processors; errors and query events are those of every other statement. Its twin
        (``LUCID_FAST_PATHS=0``): the same statement through SQLAlchemy."""
        from ..query_client import connection_of
        from ..transaction import TransactionClient, open_connection

        found: Any = trx  # a TransactionClient, or a QueryClient (``writes_alone``)
        connection = connection_of(found)
        if not RETURNING or not rows or not conflict or not connection.fast_reads:
            return None
        columns = list(rows[0])
        if not columns:
            return None
        shape = self._compiled_upsert(trx.dialect, table, columns, conflict, merge, returning)
        order = shape.order
        width = len(order)
        per_statement = max(1, MAX_PARAMS // width)
        run: Callable[[str, list[Any]], Awaitable[Sequence[Sequence[Any]] | None]]
        if not isinstance(trx, TransactionClient):
            # One statement outside a transaction (``writes_alone``): one trip, no
            # transaction of the caller's (``executor.write_sqlite``). The shared in-memory
            # connection has no lean path: SQLAlchemy's statement, in autocommit.
            if len(rows) > per_statement or connection.lock is not None:
                return None

            def run(sql: str, values: list[Any]) -> Awaitable[Sequence[Sequence[Any]] | None]:
                return _write_alone(connection, sql, values, model)

        else:
            client = trx  # (narrowed for the closure)
            raw = await raw_connection(open_connection(client))
            driver: Any = raw.driver_connection
            if driver._connection is None:
                # Closed under the transaction: SQLAlchemy's path raises the error it maps.
                return None

            def run(sql: str, values: list[Any]) -> Awaitable[Sequence[Sequence[Any]] | None]:
                client._check_open()
                call = _queued(client, driver, driver._execute_fetchall, sql, values)
                return _run_on_driver(client, connection, sql, values, model, call)

        out: list[Sequence[Any]] = []
        for start in range(0, len(rows), per_statement):
            chunk = rows[start : start + per_statement]
            sql = shape.sql(len(chunk))
            values = _flat_values(chunk, columns, order)
            bind_values(shape.processors, values, width, sql)
            fetched = await run(sql, values)
            if fetched is None:
                return None  # the lean path's connection was closed: nothing was written
            out.extend(fetched)
        return list(shape.result.keys), list(returned_rows(shape.result, out))

    def _compiled_upsert(
        self,
        dialect: SADialect,
        table: TableClause,
        columns: list[str],
        conflict: Sequence[str],
        merge: Sequence[str],
        returning: Sequence[ColumnElement[Any]],
    ) -> UpsertShape:
        """``upsert_fast``'s statement shape, compiled once per (table, columns, conflict,
        merge, returned columns) and kept (LRU)."""
        shape_key = ("upsert", table, tuple(columns), tuple(conflict), tuple(merge), *returning)
        cache = self._upserts
        shape = cache.recent(shape_key)
        if shape is not None:
            return shape
        template: dict[str, Any] = {c: sa.bindparam(c) for c in columns}
        stmt = self.upsert_statement(table, template, conflict, list(merge)).returning(*returning)
        head, group, tail, order = compile_insert(stmt, dialect)
        processors = [bind_processor(table.c[c].type, dialect) for c in order]
        result = compile_returning(stmt, dialect)
        return cache.keep(shape_key, UpsertShape(head, group, tail, order, processors, result))

    def bulk_update_bound(
        self,
        table: TableClause,
        key: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        dialect: SADialect,
    ) -> sa.Update | None:
        """``UPDATE t SET c = v.c FROM (SELECT json_extract(value, '$[0]') AS id, … FROM
        json_each(?)) AS v WHERE t.id = v.id``: the rows as one JSON array of arrays, each
        value through its column type's bind processor first. JSON gives back the same SQLite
        value only for 64-bit integers, text and NULL: any other value (a float, bytes, a
        larger integer) keeps the chunked statement (``None``)."""
        if not JSON_EACH:
            return None
        packed = _packed_update(table, key, columns, rows, dialect)
        if packed is None:
            return None
        return _bulk_update(table, key, columns, _json_param(packed))

    async def bulk_update_fast(
        self,
        trx: TransactionClient,
        table: TableClause,
        key: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        model: str | None,
    ) -> int | None:
        """The bulk UPDATE on the transaction's driver connection: ``UPDATE t SET c =
        lucid_rows.c FROM (SELECT ? AS id, ? AS c UNION ALL VALUES (?, ?), …) AS lucid_rows
        WHERE t.id = lucid_rows.id``, compiled once per (table, key, columns) and kept, the
        rows' values one flat list with each column's bind processor applied once per value,
        at most ``MAX_PARAMS`` values a statement (a multi-row VALUES has no compound-SELECT
        limit), one trip to aiosqlite's thread each (execute and rowcount). SQLite runs it
        several times faster than reading the same rows out of one JSON text. Errors and
        query events are those of every other statement. ``None`` (SQLAlchemy's path runs
        ``bulk_update_bound`` instead) with the fast paths off (``LUCID_FAST_PATHS=0``)."""
        from ..query_client import connection_of
        from ..transaction import open_connection

        connection = connection_of(trx)
        if not UPDATE_FROM or not rows or not connection.fast_reads:
            return None
        shape = self._compiled_update_rows(trx.dialect, table, key, columns)
        if shape is None:
            return None
        trx._check_open()
        raw = await raw_connection(open_connection(trx))
        driver: Any = raw.driver_connection
        conn: sqlite3.Connection | None = driver._connection
        if conn is None:
            # Closed under the transaction: SQLAlchemy's path raises the error it maps.
            return None
        width = len(columns) + 1
        per_statement = max(1, MAX_PARAMS // width)
        total = 0
        for start in range(0, len(rows), per_statement):
            chunk = rows[start : start + per_statement]
            sql = shape.sql(len(chunk))
            values = [value for row in chunk for value in row]
            bind_values(shape.processors, values, width, sql)
            count: int = await _run_on_driver(
                trx,
                connection,
                sql,
                values,
                model,
                _queued(trx, driver, _rowcount, conn, sql, values),
            )
            total += count
        return total

    def _compiled_update_rows(
        self, dialect: SADialect, table: TableClause, key: str, columns: Sequence[str]
    ) -> RowsShape | None:
        """``bulk_update_fast``'s statement (``compile_update_rows``), compiled once per
        (table, key, columns) and kept (LRU); ``None`` (kept too) when it could not be cut
        (SQLAlchemy's path runs)."""
        shape_key = ("update_rows", table, key, tuple(columns))
        cache = self._update_rows
        return cache.cached(shape_key, lambda: compile_update_rows(dialect, table, key, columns))

    def bulk_update_parameters(self, columns: int) -> int:
        # SQLite's compound SELECT limit (SQLITE_MAX_COMPOUND_SELECT) is 500.
        return max(1, min(500, 30000 // (columns + 1)))

    def insert_for(self, table: TableClause) -> Any:
        return sqlite.insert(table)

    async def truncate(self, client: Client, table: str, cascade: bool = False) -> None:
        await client.execute(sa.delete(named_table(table)), write=True)

    def drop_tables(self, conn: SyncConnection, names: list[str]) -> None:
        # Checked at COMMIT, when no table is left to violate them; children first so that
        # no ON DELETE RESTRICT fires during the implicit DELETE of a parent.
        conn.exec_driver_sql("PRAGMA defer_foreign_keys = ON")
        wanted = set(names)
        # (name, foreign keys) in creation order; a last (None, …) holds cycles' keys.
        order = [pair[0] for pair in sa.inspect(conn).get_sorted_table_and_fkc_names()]
        ordered = [n for n in reversed(order) if n in wanted]
        placed = set(ordered)
        super().drop_tables(conn, ordered + [n for n in names if n not in placed])

    def truncate_tables(self, conn: SyncConnection, tables: list[sa.Table]) -> None:
        conn.exec_driver_sql("PRAGMA defer_foreign_keys = ON")
        for table in tables:
            conn.execute(table.delete())
        master = sa.table("sqlite_master", sa.column("name"))
        has_sequence = conn.execute(
            sa.select(master.c.name).where(master.c.name == "sqlite_sequence")
        ).first()
        if has_sequence:
            sequence = sa.table("sqlite_sequence", sa.column("name"))
            conn.execute(sequence.delete().where(sequence.c.name.in_([t.name for t in tables])))


def _packed_update(
    table: TableClause,
    key: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    dialect: SADialect,
) -> list[list[Any]] | None:
    """The ``(key, *values)`` rows of a bulk UPDATE as SQLite stores them (each column's bind
    processor applied), one list per row, or ``None`` when a value can't travel as JSON."""
    per_column = []
    for i, name in enumerate([key, *columns]):
        values = _stored_values(table.c[name], [r[i] for r in rows], dialect)
        if values is None:
            return None
        per_column.append(values)
    return [list(r) for r in zip(*per_column, strict=True)]


T = TypeVar("T")


async def _run_on_driver(
    trx: TransactionClient,
    connection: Any,
    sql: str,
    values: list[Any],
    model: str | None,
    call: Awaitable[T],
) -> T:
    """Await ``call``, one statement on the transaction's aiosqlite connection, as
    ``TransactionClient.execute`` runs one: reported to the query listeners, its driver error
    mapped (and the transaction marked failed), a cancellation leaving the transaction only
    able to roll back (the driver may still run the statement: the connection's state is
    unknown). A statement queued behind a pipelined BEGIN (``_queued``) raises the BEGIN's
    error when that failed."""
    emitter = connection.emitter
    started = time.perf_counter()
    try:
        result = await call
        if trx._root._pending is not None:
            # A pipelined BEGIN ran just before (``_queued``): its error, raised as BEGIN's,
            # comes first (the statement was then skipped: nothing to report).
            await trx._begun()
            assert result is not _SKIPPED
    except (sqlite3.Error, OverflowError) as exc:
        # OverflowError: an integer sqlite3 can't bind (beyond 64 bits).
        if emitter.active or enabled(DEBUG):
            emitter.record(
                connection.write_engines().endpoint, sql, values, started, model, True, exc
            )
        error = _fast_error(exc, sql, values)
        trx._failed(error)
        raise error from exc
    except asyncio.CancelledError:
        trx._root._broken = True
        raise
    if emitter.active or enabled(DEBUG):
        emitter.record(connection.write_engines().endpoint, sql, values, started, model, True)
    return result


def _bulk_update(table: TableClause, key: str, columns: Sequence[str], param: Any) -> sa.Update:
    """``UPDATE t SET c = v.c FROM (SELECT json_extract(value, '$[i]') AS … FROM
    json_each(param)) AS v WHERE t.key = v.key``."""
    names = [key, *columns]
    parts = [
        func.json_extract(literal_column("value"), literal(f"$[{i}]")).label(n)
        for i, n in enumerate(names)
    ]
    source = select(*parts).select_from(func.json_each(param)).subquery("lucid_rows")
    return update_from(table, key, columns, source)


def _driver_error(exc: sqlite3.Error, sql: str, values: list[Any]) -> QueryError:
    """A driver error of a fast-path statement as the error its SQLAlchemy twin raises
    (``query_client.wrap_error``): ``IntegrityError`` for constraint violations,
    ``TransactionConflictError`` for a lock that could not be taken, else ``QueryError``."""
    from ..query_client import mapped_error

    return mapped_error(exc, sql, values, integrity=isinstance(exc, sqlite3.IntegrityError))


def _fast_error(exc: sqlite3.Error | OverflowError, sql: str, values: list[Any]) -> QueryError:
    """``_driver_error``, and an integer sqlite3 can't bind (``OverflowError``, beyond 64
    bits) as the ``QueryError`` SQLAlchemy's path raises for it."""
    if isinstance(exc, sqlite3.Error):
        return _driver_error(exc, sql, values)
    return failed(exc, sql, values)


def _flat_values(rows: Sequence[Any], columns: Sequence[str], order: Sequence[str]) -> list[Any]:
    """The values of ``rows`` (dicts keyed by ``columns``, or tuples in ``columns`` order) as
    one list, row after row, each row's in ``order`` (a compiled statement's parameters)."""
    if rows and type(rows[0]) is tuple:
        if order == columns:
            return [value for row in rows for value in row]
        at = [columns.index(c) for c in order]
        return [row[i] for row in rows for i in at]
    if order == columns:
        # The rows set the same columns in the same order (the caller's groups).
        return [value for row in rows for value in row.values()]
    return [row[c] for row in rows for c in order]


def _unordered(exc: QueryError) -> bool:
    """Whether ``exc`` is ``_ordered_key``'s deliberate failure (the keys of a multi-row
    INSERT did not ascend with its rows: the statement undid itself)."""
    return str(exc.original) == _UNORDERED


async def _write_alone(
    connection: Connection, sql: str, values: list[Any], model: str | None
) -> Sequence[Sequence[Any]] | None:
    """``executor.write_sqlite`` on the write side of ``connection``: errors as every other
    fast-path statement's (``_fast_error``), a failed check-out as a lean read's."""
    from ..query_client import _checkout_error

    engines = connection.write_engines()
    return await write_sqlite(connection, engines, sql, values, model, _fast_error, _checkout_error)


def _driver_of(trx: TransactionClient) -> Any:
    """The aiosqlite connection ``trx`` runs on, without a trip through SQLAlchemy's
    greenlet (``get_raw_connection``); ``None`` when the connection is closed or lost
    (SQLAlchemy's path then raises the error it maps)."""
    from ..transaction import open_connection

    sync = open_connection(trx).sync_connection
    if sync is None or sync.closed or sync.invalidated:
        return None
    driver: Any = sync.connection.driver_connection
    if driver is None or driver._connection is None or not driver._running:
        return None
    return driver


def _begin_immediate(conn: sqlite3.Connection) -> None:
    """On aiosqlite's thread: ``BEGIN IMMEDIATE`` (what the "begin" listener sends)."""
    conn.execute(_BEGIN).close()


def _begin_queued(driver: Any, conn: sqlite3.Connection) -> sa_exc.StatementError | None:
    """On aiosqlite's thread: ``_begin_immediate`` run for a pipelined begin, its error
    returned (as SQLAlchemy raises it) rather than raised, and noted on the driver connection
    for the driver statements queued right behind it (``_queued``), which then do not run.
    After a failure the connection begins a DEFERRED transaction instead (no lock taken,
    nothing to wait for): anything else queued behind it runs inside a transaction the caller
    rolls back, never in autocommit."""
    notes = driver.__dict__
    notes.pop(_BEGIN_FAILED, None)
    try:
        _begin_immediate(conn)
    except sqlite3.Error as exc:
        notes[_BEGIN_FAILED] = True
        with contextlib.suppress(sqlite3.Error):
            conn.execute("BEGIN").close()
        return sa_exc.DBAPIError.instance(_BEGIN, (), exc, sqlite3.Error)
    return None


def _queued(trx: TransactionClient, driver: Any, fn: Callable[..., T], *args: Any) -> Awaitable[T]:
    """``fn(*args)`` on aiosqlite's thread. While ``trx``'s pipelined BEGIN has not been
    seen to succeed, it is queued right behind it without waiting for it (one trip for
    both) and runs only if the BEGIN did: ``_SKIPPED`` otherwise (the caller then raises the
    BEGIN's error, ``_run_on_driver``)."""
    if trx._root._pending is None:
        return driver._execute(fn, *args)  # type: ignore[no-any-return]
    return driver._execute(_if_begun, driver, fn, *args)  # type: ignore[no-any-return]


def _if_begun(driver: Any, fn: Callable[..., Any], *args: Any) -> Any:
    """On aiosqlite's thread, after a pipelined BEGIN: ``fn(*args)`` unless it failed."""
    if _BEGIN_FAILED in driver.__dict__:
        return _SKIPPED
    return fn(*args)


def _rowcount(conn: sqlite3.Connection, sql: str, params: list[Any]) -> int:
    """On aiosqlite's thread: run ``sql``, the rows it changed."""
    cursor = conn.execute(sql, params)
    try:
        return cursor.rowcount
    finally:
        cursor.close()


def _ordered_key(table: TableClause, key: ColumnElement[Any]) -> ColumnElement[Any]:
    """The ``RETURNING`` expression of the multi-row INSERT: the row's key when it is the
    largest key of the table right after the row went in, else an error that undoes the
    statement.

    Why that proves the order: SQLite inserts the rows of a ``VALUES`` list one after another
    in list order and computes each row's ``RETURNING`` values right after inserting it (a
    correlated subquery there sees the rows inserted so far). A row whose key exceeds every
    key in the table at that moment exceeds the keys of all rows of the list before it; if
    that holds for every row, the keys ascend in list order and the sorted keys are the rows'
    keys in list order, whatever order ``RETURNING`` hands them back in. It holds whenever
    SQLite counts keys up (``max(rowid) + 1``, or past ``sqlite_sequence`` for AUTOINCREMENT
    tables, which fail with SQLITE_FULL rather than wrap); it fails once the table holds rowid
    2**63-1 and SQLite picks random free rowids, for keys a default or a trigger makes, and
    for NULL keys. The check is fail-safe: were SQLite ever to compute ``RETURNING`` after all
    rows, only the last row would pass and every batch would take the row-by-row path. Cost:
    one index seek per row, no extra round trip.

    The failure is ``abs(-2**63)`` ("integer overflow"), a runtime error: SQLite rolls back the
    statement (only it; the transaction stays open) and the insert goes row by row.
    """
    later = table.alias("lucid_later" if table.name != "lucid_later" else "lucid_later_")
    # Qualified: a correlated subquery, which SQLite runs again for every row (an
    # uncorrelated one runs once), and inside it the bare name would mean ``lucid_later``'s.
    outer = _Qualified(table, key.name)
    later_key = later.c[key.name]
    after = sa.exists().where(later_key > outer)
    overflow = func.abs(literal_column("-9223372036854775807") - literal_column("1"))
    return sa.case((sa.and_(outer.is_not(None), ~after), outer), else_=overflow)


class _Qualified(ColumnElement[Any]):
    """``"table"."column"`` wherever it appears (SQLAlchemy renders the columns of an
    INSERT's own table unqualified in RETURNING, also inside subqueries)."""

    inherit_cache = False

    def __init__(self, table: TableClause, name: str) -> None:
        self.table = table
        self.name = name
        self.type = table.c[name].type


@compiles(_Qualified)
def _compile_qualified(element: _Qualified, compiler: Any, **kw: Any) -> str:
    preparer = compiler.preparer
    return str(preparer.format_table(element.table) + "." + preparer.quote(element.name))


class _Unordered(Exception):
    """A multi-row INSERT whose keys could not be shown to ascend (``_ordered_key``)."""


@dataclass(slots=True)
class _BulkInsert:
    """One ``insert_many_returning`` call: multi-row INSERTs of at most ``MAX_PARAMS``
    values, run on the driver connection (fast path) or through SQLAlchemy (its twin, the
    same statements with ``LUCID_FAST_PATHS=0``)."""

    dialect: SqliteDialect
    trx: TransactionClient
    connection: Connection
    table: TableClause
    key: Key
    model: str | None
    driver: Any = None

    async def run(self, columns: list[str], params: Sequence[Any]) -> list[Any]:
        """Insert ``params`` (dicts keyed by ``columns``, or tuples in ``columns`` order);
        each row's key, in ``params`` order."""
        if self.connection.fast_reads:
            # Not waiting for a pipelined BEGIN: the first INSERT queues right behind it.
            self.driver = _driver_of(self.trx)
        per_statement = max(1, MAX_PARAMS // len(columns))
        out: list[Any] = []
        for start in range(0, len(params), per_statement):
            chunk = params[start : start + per_statement]
            try:
                returned = await self.insert(columns, chunk, len(chunk) > 1)
            except _Unordered:
                # A key out of order: nothing of this chunk was written. One row per
                # statement ties each key to its row.
                for i in range(len(chunk)):
                    out.extend(await self.insert(columns, chunk[i : i + 1], False))
            else:
                returned.sort()
                out.extend(returned)
        return out

    async def insert(self, columns: list[str], chunk: Sequence[Any], ordered: bool) -> list[Any]:
        """Insert ``chunk``; its keys (in any order when ``ordered``, which raises
        ``_Unordered`` when they don't ascend with the rows)."""
        tuples = bool(chunk) and type(chunk[0]) is tuple
        if self.driver is None:
            if tuples:
                chunk = [dict(zip(columns, row, strict=True)) for row in chunk]
            return await self.insert_through_sqlalchemy(chunk, ordered)
        table, sa_dialect = self.table, self.trx.dialect
        shape = self.dialect.compiled_insert(sa_dialect, table, columns, self.key)
        order = shape.order
        width = len(order)
        values = _flat_values(chunk, columns, order)
        for i, process in enumerate(shape.processors):
            if process is not None:
                values[i::width] = map(process, values[i::width])
        sql = shape.sql(len(chunk))
        trx, driver = self.trx, self.driver
        trx._check_open()
        try:
            # Reported as failed also when it is ``_ordered_key``'s deliberate failure: the
            # statement ran (and was undone), as its SQLAlchemy twin reports it.
            fetched: list[Any] = await _run_on_driver(
                trx,
                self.connection,
                sql,
                values,
                self.model,
                _queued(trx, driver, driver._execute_fetchall, sql, values),
            )
        except QueryError as exc:
            if ordered and _unordered(exc):
                raise _Unordered from exc
            raise
        return fetched

    async def insert_through_sqlalchemy(self, chunk: Rows, ordered: bool) -> list[Any]:
        table, key = self.table, self.table.c[self.key.name]
        returned = _ordered_key(table, key) if ordered else key
        stmt = insert(table).values(list(chunk)).returning(returned)
        try:
            result = await self.trx.execute(stmt, write=True, model=self.model)
        except QueryError as exc:
            if ordered and _unordered(exc):
                raise _Unordered from exc
            raise
        return [tuple(row) for row in result.rows]
