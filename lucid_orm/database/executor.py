"""The lean read path: SELECTs outside a transaction run on the driver connection directly.

SQLAlchemy still compiles each statement shape once (its cache key, bind processors and
result processors are reused); what is skipped is its per-execution machinery — the execution
context, the DBAPI cursor emulation over the async driver and several thread hops or round
trips — which dominated short queries. Anything this path does not handle (writes, raw SQL,
statements SQLAlchemy can't cache) goes through SQLAlchemy as before.

This module and ``query/shape.py`` (statement shapes, plain comparisons) are the only ones
that use SQLAlchemy's private APIs (cache keys, compiled bind and result processors, its type
map); everything else goes through the helpers here and there.

The fast paths, all governed by one switch, ``Connection.fast_reads`` (connection option
``fast_reads``, default on; ``LUCID_FAST_PATHS=0`` in the environment turns it off
process-wide, and ``make test-slow-paths`` runs the ORM and relation tests that way):

==========================  ============================================  =====================
fast path                   where                                         slow twin
==========================  ============================================  =====================
lean reads                  ``fetch``/``run`` here, called by             ``run_statement``
                            ``QueryClient.execute``                       (query_client.py)
model query by shape        ``QueryClient.read_shaped`` (the statement    ``to_core()`` +
                            compiled for the first query of a shape,      ``execute``
                            ``query/shape.py``)
``find`` by key             ``compile_static`` + ``QueryClient.           ``query().where()
                            fetch_compiled`` (static statement per model)  .first()``
preload without callback    ``preloader._static_start`` (static           ``eager_query(...)
(belongs_to, has_one,       statement per relation and key form, through  .exec()``
has_many)                   ``QueryClient.read_compiled``)
lean streams (PostgreSQL,   ``stream`` here (the driver's server-side     ``stream_statement``
MySQL, SQLite files)        cursor), called by ``QueryClient.stream``     (query_client.py)
SQLite multi-row INSERT     ``SqliteDialect.insert_many_returning``       insertmanyvalues
(``create_many``)           (dialects/sqlite.py)                          (dialects/base.py)
SQLite bulk UPDATE          ``SqliteDialect.bulk_update_fast`` (UPDATE    ``bulk_update_bound``
(``update_many``)           … FROM a multi-row VALUES on the driver       (json_each) through
                            connection)                                   SQLAlchemy
SQLite upsert               ``SqliteDialect.upsert_fast`` (multi-row      ``upsert_bound``'s
(``upsert_many``)           VALUES … ON CONFLICT on a transaction's       json_each statement
                            driver connection)                            through SQLAlchemy
PostgreSQL bulk UPDATE      ``PostgresqlDialect.bulk_update_fast``        ``bulk_update_bound``
(``update_many``)           (UPDATE … FROM unnest of one array per        (the same statement)
                            column, compiled once, on the transaction's   through SQLAlchemy
                            driver connection)
PostgreSQL multi-row        ``PostgresqlDialect.insert_many_returning``   the same statement
INSERT (``create_many``)    (INSERT … SELECT … FROM unnest … WITH         through SQLAlchemy
                            ORDINALITY, compiled once, on the
                            transaction's driver connection)
MySQL/MariaDB multi-row     ``MysqlDialect.insert_many_returning`` (its   insertmanyvalues
INSERT (``create_many``)    statement compiled once per shape, on the     (dialects/base.py)
                            transaction's driver connection)
MariaDB bulk UPDATE         ``MysqlDialect.bulk_update_fast`` (UPDATE t,  ``bulk_update_bound``
(``update_many``)           (SELECT … UNION ALL VALUES …); MySQL 8:       (JSON_TABLE) or the
                            the JSON_TABLE one compiled once)             chunked UNION ALL
MariaDB upsert              ``MysqlDialect.upsert_fast`` (the JSON_TABLE  ``upsert_bound``'s
(``upsert_many``)           statement compiled once per shape)            statement through
                                                                          SQLAlchemy
SQLite BEGIN (every root    ``SqliteDialect.begin`` (BEGIN IMMEDIATE in   SQLAlchemy's
transaction)                one trip to the driver; a bulk write's own    ``conn.begin()``
                            transaction queues its first statement
                            behind it: ``transaction.implicit``)
PostgreSQL/MySQL BEGIN      ``begin_inline`` here, from ``Dialect.begin`` SQLAlchemy's
(every root transaction)    (SQLAlchemy's ``Connection.begin()`` without  ``conn.begin()``
                            its greenlet, when the dialect's BEGIN sends
                            nothing and no "begin" listener is set)
SQLite inline reads         ``fetch_sqlite`` here (a lean read on the     the same read on
                            event-loop thread, interrupted after          aiosqlite's worker
                            ``INLINE_BUDGET_S``)                          thread
==========================  ============================================  =====================

SQLite inline reads have a switch of their own besides the two above: the connection option
``inline_reads`` (default on for file databases in WAL mode) and ``LUCID_SQLITE_INLINE=0``
process-wide (``SqliteDialect.inline_reads``).

Lean reads and streams share the driver connections they take from the pool: kept between reads
(``Engines.idle``) and, when more lean reads run than a capped pool leaves room for, handed from
a finishing read to the next waiting one (``acquire``/``release`` below).

In the ORM, under the process-wide switch only (``LUCID_FAST_PATHS``, read once at import:
``orm/hydration.FAST_PATHS``): the generated fill loop per result shape (slow twin: the general
loop ``_fill_general``), ``stream()``'s instance-per-row hydration (``hydrate_each``, and for
rows of the model's own columns the plan's generated async loop ``HydrationPlan.stream``; slow
twin: the batch's list) and ``new_many``'s direct state setup (slow twin: ``model().merge``).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import datetime as _dt
import functools
import itertools
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, cast

from sqlalchemy.engine.default import DefaultDialect
from sqlalchemy.engine.interfaces import Dialect
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncTransaction
from sqlalchemy.pool import QueuePool
from sqlalchemy.sql import Select
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.util.concurrency import greenlet_spawn

from ..errors import ConnectionLostError, LucidError, QueryError, TransactionConflictError
from .events import DEBUG, enabled
from .result import ExecResult

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from .connection import Connection, Engines

Processor = Callable[[Any], Any] | None
_datetime = _dt.datetime
_datetime_utc = _dt.UTC

_CACHE_SIZE = 2000
V = TypeVar("V")


class LRU(OrderedDict[Any, V]):
    """A dict of compiled shapes that keeps its ``size`` most recently used entries."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def recent(self, key: Any) -> V | None:
        """The value of ``key``, now the most recently used one; ``None`` if absent."""
        value = self.get(key)
        if value is not None:
            self.move_to_end(key)
        return value

    def cached(self, key: Any, make: Callable[[], V]) -> V:
        """The value of ``key``, now the most recently used one; made by ``make()`` and kept
        when absent (a ``None`` it makes is kept too: "this shape has no fast form")."""
        if key in self:
            self.move_to_end(key)
            return self[key]
        return self.keep(key, make())

    def keep(self, key: Any, value: V) -> V:
        """Store ``value`` under ``key`` and drop the least recently used entry past
        ``size``; returns ``value``."""
        self[key] = value
        if len(self) > self.size:
            self.popitem(last=False)
        return value


@dataclass(slots=True)
class Compiled:
    """One compiled statement shape."""

    compiled: SQLCompiler
    sql: str
    positiontup: list[str]
    bind_processors: dict[str, Callable[[Any], Any]]
    keys: list[str]
    types: list[Any]
    expanding: bool
    # result processors, resolved on first execution (PostgreSQL needs the column type codes)
    processors: list[Processor] | None = None
    any_processor: bool = False
    convert: Callable[[Sequence[Sequence[Any]]], Sequence[Sequence[Any]]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # SQLite inline reads: per size class of the bound values that ran over the budget,
    # ``[runs still sent straight to the worker thread, inline attempts in a row that ran
    # over]``; ``None`` while no class has a back-off pending (``fetch_sqlite``).
    inline_backoff: dict[int, list[int]] | None = None


class StatementCache:
    """Compiled statement shapes per dialect, keyed by SQLAlchemy's cache key (LRU)."""

    def __init__(self, size: int = _CACHE_SIZE) -> None:
        self.size = size
        self._entries: LRU[Compiled] = LRU(size)
        # Statements compiled per model query shape (query/shape.py), LRU as well.
        self._shapes: LRU[Compiled] = LRU(size)

    def shaped(self, key: Any) -> Compiled | None:
        """The statement compiled for the query shape ``key``, if one was."""
        return self._shapes.recent(key)

    def keep_shape(self, key: Any, entry: Compiled) -> None:
        """Remember ``entry`` for the query shape ``key`` (the least recent one goes when the
        cache is full; the entry holds its statement, so the objects the key names by
        identity live as long as it does)."""
        self._shapes.keep(key, entry)

    def prepare(
        self, stmt: Select[Any], dialect: Dialect
    ) -> tuple[Compiled, str, list[Any]] | None:
        """``(entry, sql, params)`` for ``stmt``, or ``None`` when it can't be cached."""
        key = stmt._generate_cache_key()
        if key is None:
            return None
        entries = self._entries
        entry = entries.recent(key.key)
        if entry is None:
            compiled = stmt.compile(dialect=dialect, cache_key=key)
            if not isinstance(compiled, SQLCompiler) or compiled.positiontup is None:
                return None
            entry = _entry(compiled)
            if not entry.keys or "*" in entry.keys:
                # ``SELECT *``: the columns are only known from the cursor; SQLAlchemy's path
                # reads them there.
                return None
            entries.keep(key.key, entry)
        params = entry.compiled.construct_params(
            extracted_parameters=key.bindparams, escape_names=False, _no_postcompile=True
        )
        try:
            if entry.expanding:
                expanded = entry.compiled._process_parameters_for_postcompile(params)
                values = expanded.parameters
                procs: Any = expanded.processors
                out: list[Any] = []
                for name in expanded.positiontup or ():
                    value = values[name]
                    proc = procs.get(name)
                    out.append(proc(value) if proc is not None and value is not None else value)
                return entry, expanded.statement, out
            out = []
            procs = entry.bind_processors
            for name in entry.positiontup:
                value = params[name]
                proc = procs.get(name)
                out.append(proc(value) if proc is not None and value is not None else value)
        except (TypeError, ValueError, ArithmeticError) as exc:
            # A value the column type's bind processor refuses (SQLAlchemy raises StatementError).
            raise QueryError(
                with_sql(f"Cannot bind a value: {exc}", entry.sql),
                sql=entry.sql,
                bindings=list(params.values()),
                original=exc,
            ) from exc
        return entry, entry.sql, out


def _resolve_processors(entry: Compiled, dialect: Dialect, coltypes: Sequence[Any]) -> None:
    procs: list[Processor] = []
    for type_, coltype in zip(entry.types, coltypes, strict=False):
        procs.append(type_.dialect_impl(dialect).result_processor(dialect, coltype))
    entry.processors = procs
    entry.any_processor = any(p is not None for p in procs)
    entry.convert = _converter(procs) if entry.any_processor else None


# A result processor flagged with this attribute returns its value unchanged unless the value
# is a naive datetime (asyncpg's ``timestamptz`` ``infinity``, see columns.UTCDateTime).
NAIVE_ONLY = "lucid_naive_only"
# A result processor flagged with this attribute returns ``combine(value.date(), value.time(),
# UTC)`` for a naive value of class ``datetime`` itself (what the MySQL and PostgreSQL drivers
# give for a ``DATETIME``/``timestamp`` column): ``_converter`` writes that out for such values
# and calls the processor for the others (strings, aware values, subclasses).
NAIVE_TO_UTC = "lucid_naive_to_utc"


def _converter(
    procs: Sequence[Processor],
) -> Callable[[Sequence[Sequence[Any]]], Sequence[Sequence[Any]]]:
    """A ``rows -> rows`` function for one result shape, written out once: one list
    comprehension unpacking each row into locals, each processed column becoming
    ``p3(v3) if v3 is not None else None``, the others ``v3`` (no call per row; a
    ``NAIVE_TO_UTC`` processor's usual value converted in place, no call per value either).
    The code holds only indexes; the processors and ``datetime.combine`` are passed in as
    names.

    When every processor is ``NAIVE_ONLY``, a row is rebuilt only if one of its values is a
    naive datetime, and the others are kept as the driver gave them: a check per value instead
    of a call and a tuple per row (a third of the cost on 10,000 rows)."""
    names: dict[str, Any] = {"combine": _datetime.combine, "utc": _datetime_utc, "dt": _datetime}
    parts: list[str] = []
    indexed: list[str] = []
    checks: list[str] = []
    for i, proc in enumerate(procs):
        if proc is None:
            parts.append(f"v{i}")
            indexed.append(f"r[{i}]")
            continue
        names[f"p{i}"] = proc
        indexed.append(f"(p{i}(r[{i}]) if r[{i}] is not None else None)")
        checks.append(f"(r[{i}] is None or r[{i}].tzinfo is not None)")
        if getattr(proc, NAIVE_TO_UTC, False):
            parts.append(
                f"((combine(v{i}.date(), v{i}.time(), utc) if v{i}.__class__ is dt"
                f" and v{i}.tzinfo is None else p{i}(v{i})) if v{i} is not None else None)"
            )
        else:
            parts.append(f"(p{i}(v{i}) if v{i} is not None else None)")
    names["convert"] = eval(f"lambda r: ({', '.join(indexed)},)", names)
    if all(p is None or getattr(p, NAIVE_ONLY, False) for p in procs):
        # A scan that stops at the first row needing conversion, the rows given back as they
        # are when none does (the usual result: no ``infinity``): a list comprehension would
        # build a new list of the same rows, twice the cost of the scan on a 100-row page.
        ok = " and ".join(checks)
        names["scan"] = eval(f"lambda rows: [r if {ok} else convert(r) for r in rows]", names)
        lines = [
            "def rows_of(rows):",
            " for r in rows:",
            f"  if not ({ok}):",
            "   return scan(rows)",
            " return rows",
        ]
        return _rows_of(lines, names)
    # Unpacking a row into locals costs less than indexing it once per column. A driver's
    # rows hold exactly the result's columns (``procs``); a row of another width (which
    # unpacking refuses), or a processor's ValueError, takes the indexed form, which
    # converts as before (a processor raising raises the same again there).
    values = ", ".join(f"v{i}" for i in range(len(procs)))
    lines = [
        "def rows_of(rows):",
        " try:",
        f"  return [({', '.join(parts)},) for {values}, in rows]",
        " except ValueError:",
        "  return [convert(r) for r in rows]",
    ]
    return _rows_of(lines, names)


def _rows_of(
    lines: list[str], names: dict[str, Any]
) -> Callable[[Sequence[Sequence[Any]]], Sequence[Sequence[Any]]]:
    """The ``rows_of`` function ``lines`` define, with ``names`` as its globals."""
    exec("\n".join(lines), names)
    defined: Callable[[Sequence[Sequence[Any]]], Sequence[Sequence[Any]]] = names["rows_of"]
    return defined


def _process(entry: Compiled, rows: Sequence[Sequence[Any]]) -> Sequence[Sequence[Any]]:
    convert = entry.convert
    if convert is None:
        return rows
    return convert(rows)


async def fetch(
    connection: Connection,
    engines: Engines,
    cache: StatementCache,
    stmt: Select[Any],
    model: str | None,
) -> ExecResult | None:
    """Run a SELECT on a pooled driver connection; ``None`` means: use SQLAlchemy instead."""
    prepared = prepare_read(cache, stmt, engines.dialect)
    if prepared is None:
        return None
    entry, sql, params = prepared
    return await run(connection, engines, entry, sql, params, model)


def prepare_read(
    cache: StatementCache, stmt: Select[Any], dialect: Dialect
) -> tuple[Compiled, str, list[Any]] | None:
    """``StatementCache.prepare`` with its errors as ``QueryError``."""
    try:
        return cache.prepare(stmt, dialect)
    except (SQLAlchemyError, TypeError, ValueError) as exc:
        # A statement SQLAlchemy can't compile for this dialect, or a value a bind processor
        # refuses: the same QueryError the SQLAlchemy path gives.
        raise QueryError(f"Cannot run the statement: {exc}", bindings=[], original=exc) from exc


def _entry(compiled: SQLCompiler) -> Compiled:
    assert compiled.positiontup is not None
    result_columns = compiled._result_columns
    return Compiled(
        compiled=compiled,
        sql=compiled.string,
        positiontup=list(compiled.positiontup),
        bind_processors=cast(dict[str, Callable[[Any], Any]], dict(compiled._bind_processors)),
        keys=[c.keyname for c in result_columns],
        types=[c.type for c in result_columns],
        expanding=bool(compiled.literal_execute_params or compiled.post_compile_params),
    )


def bind_processor(type_: Any, dialect: Dialect) -> Processor:
    """The bind processor of SQL type ``type_`` for ``dialect`` (its dialect implementation
    is cached by SQLAlchemy; callers keep the processor per statement shape or query)."""
    process: Processor = type_.dialect_impl(dialect).bind_processor(dialect)
    return process


def invalidate_generation(pool: Any, raw: Any, exc: BaseException | None) -> None:
    """Invalidate the pooled connection ``raw`` and every connection of its generation (what
    SQLAlchemy does itself when its own execution finds a disconnect)."""
    pool._invalidate(raw, exc)


def interrupt_sqlite(dbapi_conn: Any) -> None:
    """Interrupt the statement an aiosqlite connection runs (sqlite3 allows that from any
    thread)."""
    dbapi_conn._connection._conn.interrupt()


def compile_insert(stmt: Any, dialect: Dialect) -> tuple[str, str, str, list[str]]:
    """A one-row ``INSERT … VALUES (…)`` compiled for a positional-paramstyle ``dialect``,
    cut around its VALUES group: ``(head, group, tail, parameter names in order)``."""
    # Compiled as for executemany: SQLAlchemy then records the VALUES group it would repeat.
    compiled = stmt.compile(dialect=dialect, for_executemany=True)
    return _cut_insert(compiled)


def compile_sorted_insert(stmt: Any, dialect: Dialect) -> tuple[str, str, str, list[str]] | None:
    """``compile_insert`` of an ``INSERT … RETURNING`` with ``sort_by_parameter_order`` when
    ``sorts_by_generated_key`` holds for it; ``None`` when SQLAlchemy orders its returned rows
    otherwise (row by row, or by a sentinel value sent with each row)."""
    compiled = stmt.compile(dialect=dialect, for_executemany=True)
    return _cut_insert(compiled) if _sorts_on_key(compiled) else None


def sorts_by_generated_key(stmt: Any, dialect: Dialect) -> bool:
    """Whether SQLAlchemy's "insertmanyvalues" runs ``stmt`` (an ``INSERT … RETURNING`` with
    ``sort_by_parameter_order``) by sorting each batch's returned rows on the generated integer
    key (its "implicit sentinel": the database counts the keys up in the order of the rows,
    returned last) rather than by a sentinel it sends or row by row."""
    return _sorts_on_key(stmt.compile(dialect=dialect, for_executemany=True))


def _sorts_on_key(compiled: Any) -> bool:
    # A private attribute of SQLAlchemy's compiler: kept here, with the other internals.
    imv = getattr(compiled, "_insertmanyvalues", None)
    return bool(imv is not None and imv.implicit_sentinel and imv.num_sentinel_columns == 1)


def _cut_insert(compiled: Any) -> tuple[str, str, str, list[str]]:
    assert isinstance(compiled, SQLCompiler) and compiled.positiontup is not None
    expr = compiled.insert_single_values_expr
    assert expr is not None
    head, group, tail = compiled.string.partition("(" + expr + ")")
    assert group
    return head, group, tail, list(compiled.positiontup)


async def raw_connection(conn: AsyncConnection) -> Any:
    """``conn.get_raw_connection()`` (the pooled connection a transaction holds) without
    its trip through a greenlet when that connection is at hand: SQLAlchemy's
    ``Connection.connection`` then returns it as it is. Otherwise (not at hand: it
    revalidates, or raises the error SQLAlchemy maps) that call itself."""
    sync: Any = conn.sync_connection
    raw = None if sync is None else sync._dbapi_connection
    if raw is not None:
        return raw
    return await conn.get_raw_connection()


def begin_inline(conn: AsyncConnection) -> AsyncTransaction | None:
    """``await conn.begin()`` run here, without its trip through SQLAlchemy's greenlet, when
    that BEGIN sends nothing: the dialect's ``do_begin`` is SQLAlchemy's default one (a no-op:
    asyncpg's and asyncmy's adapters begin lazily, before the transaction's first statement),
    no "begin" listener is installed, and the pooled connection is at hand. ``None``
    otherwise: the caller awaits ``conn.begin()``."""
    sync: Any = conn.sync_connection
    if (
        sync is None
        or sync._dbapi_connection is None
        or type(sync.dialect).do_begin is not DefaultDialect.do_begin
        or sync.dispatch.begin
    ):
        return None
    trx = AsyncTransaction(conn)
    trx.sync_transaction = trx._assign_proxied(sync.begin())
    return trx


@contextlib.asynccontextmanager
async def asyncpg_turn(raw: Any) -> AsyncIterator[Any]:
    """The asyncpg connection of ``raw`` (a pooled connection SQLAlchemy holds inside a
    transaction) for statements run on it directly: under the lock SQLAlchemy's adapter runs
    each of its statements under, with the transaction's BEGIN sent first when the adapter
    has not sent it yet (it sends it lazily, before the transaction's first statement), so
    that the adapter's COMMIT or ROLLBACK ends what runs here."""
    adapter = raw.dbapi_connection
    async with adapter._execute_mutex:
        if adapter._transaction is None:
            await adapter._start_transaction()
        yield raw.driver_connection


def compile_static(stmt: Select[Any], dialect: Dialect) -> Compiled:
    """A statement compiled once for reuse with positional values (``find`` by key)."""
    compiled = stmt.compile(dialect=dialect)
    assert isinstance(compiled, SQLCompiler)
    return _entry(compiled)


def compile_returning(stmt: Any, dialect: Dialect) -> Compiled:
    """A writing statement with ``RETURNING`` compiled once for a write fast path: its
    result keys and, resolved now, the result processors of its returned columns (without
    driver column types: SQLite's)."""
    compiled = stmt.compile(dialect=dialect)
    assert isinstance(compiled, SQLCompiler)
    entry = _entry(compiled)
    _resolve_processors(entry, dialect, [None] * len(entry.types))
    return entry


def returned_rows(entry: Compiled, rows: Sequence[Sequence[Any]]) -> Sequence[Sequence[Any]]:
    """The rows a write fast path read back, through the result processors of ``entry``
    (``compile_returning``), as SQLAlchemy's result would give them."""
    return _process(entry, rows)


async def run(
    connection: Connection,
    engines: Engines,
    entry: Compiled,
    sql: str,
    params: list[Any],
    model: str | None,
    retry: bool = True,
    wrap: Callable[[Connection, Engines, Exception], Exception] | None = None,
) -> ExecResult:
    """Run a compiled SELECT with its positional values on a pooled driver connection, and
    report it (``QueryEmitter.record``) like SQLAlchemy's path does.

    A connection the server dropped (restart, failover, idle kill) is invalidated with its
    whole generation and the read runs once more on a fresh one (``retry``). ``wrap``, when
    given, makes the error raised (from it) for an exception that escapes the read other than
    a ``LucidError`` (a failed check-out: the lean path's guard, ``QueryClient``'s, without a
    coroutine of its own around this one)."""
    started = 0.0  # set once the connection is taken
    try:
        backend = engines.backend
        # An idle connection of the current generation is taken without a coroutine (``acquire``
        # does the same first).
        idle = engines.idle
        if idle and _current(engines, idle[-1][0]):
            raw, driver = idle.pop()
            engines.busy += 1
        elif not idle and engines.cap and engines.busy >= engines.cap:
            # ``acquire``'s wait for a finishing read's connection, without its coroutine: the
            # usual case under contention (every read of 200 concurrent tasks on 10 connections).
            waiter: asyncio.Future[tuple[Any, Any] | None] = (
                asyncio.get_running_loop().create_future()
            )
            engines.waiters.append(waiter)
            try:
                pair = await waiter
            except asyncio.CancelledError:
                await _cancelled_wait(engines, waiter)
                raise
            raw, driver = pair if pair is not None else await _checkout_place(engines)
        else:
            raw, driver = await acquire(engines)
        # The statement's own time, as SQLAlchemy's cursor events measure it (no checkout).
        started = time.perf_counter()
        try:
            dialect = engines.dialect
            if backend == "sqlite":
                if entry.processors is None:
                    _resolve_processors(entry, dialect, [None] * len(entry.types))
                rows: Sequence[Sequence[Any]]
                if engines.inline_reads:
                    rows = await fetch_sqlite(driver, entry, sql, params, engines)
                else:
                    rows = await driver.execute_fetchall(sql, params)
            elif backend == "postgresql":
                if entry.processors is None:
                    prepared_stmt = await driver.prepare(sql)
                    oids = [a.type.oid for a in prepared_stmt.get_attributes()]
                    _resolve_processors(entry, dialect, oids)
                    rows = await prepared_stmt.fetch(*params)
                else:
                    rows = await driver.fetch(sql, *params)
            else:
                # The connection is in autocommit mode while the lean path holds it
                # (``acquire``): a SELECT that writes (a stored function) is committed and no
                # snapshot outlives the statement, without a COMMIT round trip per read.
                async with driver.cursor() as cursor:
                    await cursor.execute(sql, params)
                    rows = await cursor.fetchall()
                    if entry.processors is None:
                        _resolve_processors(entry, dialect, [d[1] for d in cursor.description])
        except Exception as exc:
            emitter = connection.emitter
            if emitter.active or enabled(DEBUG):
                emitter.record(engines.endpoint, sql, params, started, model, False, exc)
            if engines.is_disconnect(exc, driver):
                engines.dropped()
                await engines.invalidate(raw, exc)
                if retry:
                    return await run(connection, engines, entry, sql, params, model, False)
                raise connection_lost(exc, sql, params, "retried") from exc
            await discard(engines, raw, driver)
            # (imported here: the dialects import this module)
            from .dialects import is_conflict

            kind = TransactionConflictError if is_conflict(exc) else QueryError
            raise failed(exc, sql, params, kind) from exc
        except BaseException:
            await discard(engines, raw, driver)
            raise
        # Reads run in autocommit: the connection holds no state and goes to the next lean read
        # (a waiting one first, else kept idle), with no pool round trip and no greenlet hop.
        if not release_now(engines, raw, driver):
            await _release_rest(engines, raw, driver)
        # The instrumentation point (events.py); when nothing listens, one attribute and the
        # logger's cached level are all this costs.
        emitter = connection.emitter
        if emitter.active or enabled(DEBUG):
            emitter.record(engines.endpoint, sql, params, started, model, False)
        try:
            return ExecResult(_process(entry, rows), entry.keys, len(rows))
        except Exception as exc:
            # A result processor refused a stored value (text that is no datetime): the
            # statement's error, as SQLAlchemy's result reports it on the slow twin.
            raise refused(exc, sql, params) from exc
    except LucidError:
        raise
    except Exception as exc:
        # ``wrap`` is for a failed check-out only: whatever fails once the statement has been
        # sent is reported as it is.
        if wrap is None or started:
            raise
        raise wrap(connection, engines, exc) from exc


# -- SQLite inline reads ---------------------------------------------------------------------------
#
# aiosqlite runs every statement of a connection on that connection's worker thread: a read
# costs two thread hops (queue the call, wake the loop with the result), ~40 µs, several times
# what a primary-key SELECT costs SQLite itself. A lean read (a plain SELECT outside a
# transaction, on a connection this task holds and whose worker is idle) instead runs on the
# event-loop thread, under a time budget: SQLite's progress handler looks at the clock every
# ``INLINE_STEPS`` virtual-machine instructions and interrupts the statement once it has run
# ``INLINE_BUDGET_S``; the read then runs again on the worker thread (a SELECT has no side
# effects; the partial rows are dropped) and the next ``INLINE_BACKOFF`` executions of that
# statement shape with bound values of the same size class (see below) go to the worker
# directly (doubled per further attempt in a row of that class that ran over). Once one turn
# of the loop has run a budget of inline reads, the next read lets the loop turn before it
# runs (``_held``). The loop is therefore never held longer than about two budgets by reads
# (the interpreter lock and the OS scheduler aside). Lock waits are the other way a statement
# can block: the connection's busy timeout is 0 while the lean path holds it, so a read that
# would wait for a lock fails at once inline and waits on the worker thread instead (with the
# configured timeout restored for that call); it is restored for good when the connection
# goes back to the pool (``SqliteDialect.install_events``).
#
# Reads run inline only while no other thread runs a statement of the pool (``pool_alone``):
# every checked-out connection is held by a lean read or kept idle by the lean path, and no
# lean read waits on a worker thread (``Engines.on_worker``). With statements running on other
# worker threads (a transaction, a stream, a read over the budget), a busy loop thread makes
# those threads wait for the interpreter lock (measured: 200 concurrent find + preload tasks
# ran twice as long). Concurrent lean reads alone run inline, each between two turns of the
# loop, with no thread hop. The first read of a connection the lean path checks out runs on
# the worker: a cancelled task may have left a statement running there. Not so when the lean
# path itself gave it back and nothing used it since: the busy-timeout restore it queued at
# check-in has run, and so has everything queued before it (``DRAINED_ATTR``). Writes always
# run on the worker.
#
# Why a size class (``_size_class``): one statement shape can serve very different amounts of
# work. A preload binds its 2..N keys as one JSON text (``json_each``), so the posts of 20
# users and of 1,000 users are one shape, as are two ``where_in`` lists, or two pages whose
# LIMIT and OFFSET are bound values. The preload of 1,000 users running over the budget must
# not send the next 32 to 1,024 preloads of 5 users to the worker (two thread hops each, and
# every other read of the pool with them while one runs there). The class is the bit length
# of the parameter count plus the length of the text and bytes values, and apart from it that
# of the sum of the positive integers (a LIMIT, an OFFSET; a key's value merely splits its
# shape by magnitude): two parts, so that an integer key bound beside a JSON key list does
# not swamp the list's length. Sizes within a factor of two share a class. The back-off
# period of a class counts the runs of that class, so a shape that is always long still
# wastes one budget per period of each class it runs with: more classes add their first
# attempts (six each before the longest period), not a higher rate of wasted budgets. A
# shape with no back-off pending pays one attribute test per read (``Compiled.inline_backoff``);
# only the reads of a shape that has one compute their class (the cost of a few calls).

# The longest a read may hold the event loop, in seconds.
INLINE_BUDGET_S = 0.001
# SQLite virtual-machine instructions between two looks at the clock (~10-50 µs of work).
INLINE_STEPS = 1000
# Executions of a statement shape and size class sent to the worker directly after one ran
# over the budget, doubled for each further attempt in a row that did (a shape that is always
# long wastes a budget once per ``INLINE_BACKOFF << INLINE_MAX_DOUBLINGS`` runs of a class, not
# once per 33).
INLINE_BACKOFF = 32
INLINE_MAX_DOUBLINGS = 5
_SQLITE_BUSY = 5


@dataclass(slots=True)
class InlineStats:
    """Process-wide counters of SQLite lean reads: run ``inline`` on the loop thread,
    ``interrupted`` over the budget (then run on the worker), ``busy`` (a lock wait, then on
    the worker), ``worker`` (all reads run on the worker thread, for whatever reason),
    ``backed_off`` (of those, sent there directly by the back-off of their statement shape
    and size class); ``longest``: the longest an inline read held the loop, in seconds."""

    inline: int = 0
    interrupted: int = 0
    busy: int = 0
    worker: int = 0
    backed_off: int = 0
    # Inline reads that let the loop turn first (a turn had run a budget of them already).
    yielded: int = 0
    # The longest an inline read held the loop (seconds), interrupted ones included.
    longest: float = 0.0


inline_stats = InlineStats()


class _Budget:
    """The progress handler of one connection: true (interrupt) once the deadline passed."""

    __slots__ = ("busy_ms", "deadline", "fired")

    def __init__(self, busy_ms: int) -> None:
        self.busy_ms = busy_ms  # the connection's configured busy timeout
        self.deadline = 0.0
        self.fired = False

    def __call__(self) -> bool:
        if time.perf_counter() > self.deadline:
            self.fired = True
            return True
        return False


INLINE_ATTR = "_lucid_inline"
# ``(future, busy timeout)`` of the busy-timeout restore queued when the lean path gave the
# connection back (``restore_busy_timeout``); dropped by any other check-in.
DRAINED_ATTR = "_lucid_drained"


class _Held(threading.local):
    """The event loop of this thread while a mark is pending (``fetch_sqlite``), and when the
    first inline read of that turn of the loop started."""

    loop: asyncio.AbstractEventLoop | None = None
    since = 0.0


def _turned() -> None:
    _held.loop = None


_held = _Held()


# The mark of a connection whose first lean read since check-out ran on its worker thread.
_CHECKED = object()


def _on_worker(conn: sqlite3.Connection, sql: str, params: list[Any], busy_ms: int) -> Any:
    """A read on the worker thread of a connection whose busy timeout is 0 while idle."""
    conn.execute(f"PRAGMA busy_timeout = {int(busy_ms)}")
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.execute("PRAGMA busy_timeout = 0")


def pool_alone(engines: Engines) -> bool:
    """Whether no thread but the event loop's runs a statement of ``engines``' pool: every
    checked-out connection is held by a lean read (or kept idle, or being given back, by the
    lean path), and none of those reads runs on its worker thread. Streams, transactions and
    writes hold their connections outside ``Engines.busy`` and run on their worker threads:
    while one holds a connection, the pool is not alone."""
    pool = engines.engine.pool
    return (
        not engines.on_worker
        and isinstance(pool, QueuePool)
        and pool.checkedout() <= len(engines.idle) + engines.busy + engines.returning
    )


async def fetch_sqlite(
    driver: Any,
    entry: Compiled,
    sql: str,
    params: list[Any],
    engines: Engines | None = None,
) -> Sequence[Sequence[Any]]:
    """The rows of a lean read on an aiosqlite connection: on the event-loop thread within
    ``INLINE_BUDGET_S``, else on the connection's worker thread (see above); on the worker
    too while another thread runs a statement of ``engines``' pool (``pool_alone``; no
    ``engines``: the connection is taken to be alone)."""
    conn: sqlite3.Connection | None = driver._connection
    if conn is None or not driver._tx.empty():
        # Closed (aiosqlite raises its own error), or a call still queued on the worker.
        inline_stats.worker += 1
        return await _on_worker_thread(engines, driver.execute_fetchall(sql, params))
    budget: Any = getattr(driver, INLINE_ATTR, None)
    if budget is None:
        drained = driver.__dict__.pop(DRAINED_ATTR, None)
        if drained is not None and _finished(drained[0]):
            # Back from the pool after lean reads, and nothing used it since: the restore of
            # its busy timeout queued at check-in has run, so has everything queued before it
            # (a cancelled read's statement included), and nothing is queued now. The
            # worker is idle: inline reads from this one on.
            conn.execute("PRAGMA busy_timeout = 0")
            budget = _Budget(drained[1])
            setattr(driver, INLINE_ATTR, budget)
    if budget is None:
        # A connection just checked out from the pool: its worker may still be finishing a
        # statement of a cancelled task, which an inline read would wait for. Its first read
        # runs on the worker (queued behind anything in flight); once that returned, the
        # worker is idle for as long as the lean path keeps the connection.
        # Not counted in ``Engines.on_worker``: a short read, once per check-out, and
        # counting it would send every read of a burst's start to the workers too.
        setattr(driver, INLINE_ATTR, _CHECKED)
        inline_stats.worker += 1
        rows: Sequence[Sequence[Any]] = await driver.execute_fetchall(sql, params)
        return rows
    if budget is _CHECKED:
        # The second read: the lean path kept the connection (a connection it gives back
        # after one read never pays for this).
        busy_ms = conn.execute("PRAGMA busy_timeout").fetchone()[0]
        conn.execute("PRAGMA busy_timeout = 0")
        budget = _Budget(int(busy_ms))
        setattr(driver, INLINE_ATTR, budget)
    # An inline read never suspends its task: a task reading in a loop would keep the event
    # loop to itself. So the first inline read of each turn of the loop schedules a mark, and
    # a read that finds the mark still pending a whole budget later first lets the loop turn
    # (``asyncio.sleep(0)``: the mark and everything else that was ready run), then runs.
    held = _held
    loop = asyncio.get_running_loop()
    # The size class of the bound values is computed only for a shape with a back-off pending,
    # once (a read that yields may find one that another read set meanwhile).
    size = None if entry.inline_backoff is None else _size_class(params)
    if size is not None and _backing_off(entry, size):
        inline_stats.backed_off += 1
        alone = False
    else:
        alone = engines is None or pool_alone(engines)
        while alone and held.loop is loop and time.perf_counter() - held.since > INLINE_BUDGET_S:
            # This turn of the loop already ran a budget of inline reads: let it turn (the
            # mark and everything else that was ready run) before this one runs inline, rather
            # than send it to the worker thread, which would make every other read of the
            # pool go there too while it runs (``pool_alone``). Again if the reads that
            # yielded before it used up the next turn's budget (at most one per connection
            # the lean path holds). Cancelled here, the read has not started: the
            # connection is as it was.
            inline_stats.yielded += 1
            await asyncio.sleep(0)
            # Meanwhile another read may have gone to a worker, or a transaction begun.
            alone = engines is None or pool_alone(engines)
    now = time.perf_counter()
    if alone and (held.loop is not loop or now - held.since <= INLINE_BUDGET_S):
        if held.loop is not loop:
            held.loop = loop
            held.since = now
            loop.call_soon(_turned)
        budget.fired = False
        budget.deadline = now + INLINE_BUDGET_S
        conn.set_progress_handler(budget, INLINE_STEPS)
        try:
            rows = conn.execute(sql, params).fetchall()
            inline_stats.inline += 1
            if entry.inline_backoff is not None:
                _fitted(entry, _size_class(params) if size is None else size)
            return rows
        except sqlite3.OperationalError as exc:
            if budget.fired:
                inline_stats.interrupted += 1
                _ran_over(entry, _size_class(params) if size is None else size)
            elif exc.sqlite_errorcode & 0xFF == _SQLITE_BUSY:
                inline_stats.busy += 1
            else:
                raise
        finally:
            conn.set_progress_handler(None, 0)
            held_for = time.perf_counter() - now
            if held_for > inline_stats.longest:
                inline_stats.longest = held_for
    inline_stats.worker += 1
    return await _on_worker_thread(
        engines, driver._execute(_on_worker, conn, sql, params, budget.busy_ms)
    )


def _size_class(params: list[Any]) -> int:
    """The size class of a read's bound values: the bit length of their count plus the total
    length of the text and bytes among them, and above it that of the sum of the positive
    integers (sizes within a factor of two share a class)."""
    text = len(params)
    ints = 0
    for value in params:
        kind = type(value)
        if kind is str or kind is bytes:
            text += len(value)
        elif kind is int and value > 0:
            ints += value
    return text.bit_length() | ints.bit_length() << 8


def _backing_off(entry: Compiled, size: int) -> bool:
    """Whether this read goes to the worker directly, its size class ``size`` backing off (one
    run of the back-off counted)."""
    backoff = entry.inline_backoff
    state = None if backoff is None else backoff.get(size)
    if state is None or not state[0]:
        return False
    state[0] -= 1
    return True


def _ran_over(entry: Compiled, size: int) -> None:
    """Back this read's size class ``size`` off: it ran over the budget."""
    backoff = entry.inline_backoff
    if backoff is None:
        backoff = entry.inline_backoff = {}
    state = backoff.get(size)
    misses = 0 if state is None else state[1]
    backoff[size] = [INLINE_BACKOFF << misses, min(misses + 1, INLINE_MAX_DOUBLINGS)]


def _fitted(entry: Compiled, size: int) -> None:
    """Forget the back-off of this read's size class ``size``: it fitted the budget, so the
    next run over starts at ``INLINE_BACKOFF`` again; with no class backing off, the shape is
    back to one attribute test per read."""
    backoff = entry.inline_backoff
    if backoff is not None:
        backoff.pop(size, None)
        if not backoff:
            entry.inline_backoff = None


async def _on_worker_thread(
    engines: Engines | None, call: Awaitable[Sequence[Sequence[Any]]]
) -> Sequence[Sequence[Any]]:
    """Await a read on a connection's worker thread, counted in ``Engines.on_worker`` while
    it runs (``pool_alone``). A cancelled read stops being counted at once, though its
    statement may run on a little longer: its connection goes back to the pool (``discard``)
    and the next lean read that checks it out runs on the worker first."""
    if engines is None:
        return await call
    engines.on_worker += 1
    try:
        return await call
    finally:
        engines.on_worker -= 1


# -- SQLite writes of one statement outside a transaction ----------------------------------------
#
# A write that is one statement, outside any transaction, with no user code around it (an
# upsert of one statement), needs no transaction of the caller's: SQLite applies one statement
# whole or not at all. Through a transaction of its own it costs three trips to aiosqlite's
# thread (BEGIN, the statement, COMMIT; BEGIN pipelined with the statement) plus SQLAlchemy's
# check-out, begin, commit and check-in. ``write_sqlite`` runs it on a lean-path connection in
# one trip instead: BEGIN IMMEDIATE, the statement, COMMIT, in one call on the connection's
# worker thread. The explicit transaction is what keeps a cancellation honest: the call looks
# at a flag before its COMMIT, so a task cancelled while its statement runs (the statement is
# interrupted too) or waits in the queue leaves nothing written, as the transaction path's
# rollback does; one cancelled during the COMMIT itself doesn't know the outcome, as before.


class _WriteCall:
    """The cancellation flag of one ``write_sqlite`` call, read on the worker thread."""

    __slots__ = ("cancelled",)

    def __init__(self) -> None:
        self.cancelled = False

    def stopped(self) -> bool:
        """Whether the task waiting for the call was cancelled (set from the loop's thread)."""
        return self.cancelled


# A write whose task was cancelled before its COMMIT: rolled back, nothing written.
_ROLLED_BACK: Any = object()


def _write_on_worker(
    conn: sqlite3.Connection, call: _WriteCall, sql: str, params: list[Any], busy_ms: int | None
) -> Any:
    """On aiosqlite's thread: ``sql`` in a transaction of its own, its rows; rolled back on
    an error or once ``call`` was cancelled. ``busy_ms``: the busy timeout to wait for the
    write lock with (a connection the lean path holds has 0 while idle), restored after."""
    if call.stopped():
        return _ROLLED_BACK
    if busy_ms is not None:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_ms)}")
    try:
        conn.execute("BEGIN IMMEDIATE").close()
        try:
            cursor = conn.execute(sql, params)
            try:
                rows = cursor.fetchall()
            finally:
                cursor.close()
            if call.stopped():
                conn.execute("ROLLBACK").close()
                return _ROLLED_BACK
            conn.execute("COMMIT").close()
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK").close()
            raise
        return rows
    finally:
        if busy_ms is not None:
            conn.execute("PRAGMA busy_timeout = 0")


async def write_sqlite(
    connection: Connection,
    engines: Engines,
    sql: str,
    params: list[Any],
    model: str | None,
    error_of: Callable[[sqlite3.Error | OverflowError, str, list[Any]], Exception],
    wrap: Callable[[Connection, Engines, Exception], Exception],
) -> Sequence[Sequence[Any]] | None:
    """The rows of one write statement (``params`` bound already) run alone on a lean-path
    connection of ``engines`` (SQLite, the write side): see above. Reported to the query
    listeners as a statement outside a transaction; a driver error raised as ``error_of``
    makes it (the statement rolled back, the connection healthy), a failed check-out as
    ``wrap`` does (``run``'s). ``None`` when the lean path has no usable connection
    (closed): the caller takes SQLAlchemy's path."""
    try:
        raw, driver = await acquire(engines)
    except LucidError:
        raise
    except Exception as exc:
        raise wrap(connection, engines, exc) from exc
    conn: sqlite3.Connection | None = driver._connection
    if conn is None or not driver._running:
        await discard(engines, raw, driver)
        return None
    budget = getattr(driver, INLINE_ATTR, None)
    busy_ms = budget.busy_ms if isinstance(budget, _Budget) else None
    call = _WriteCall()
    started = time.perf_counter()
    emitter = connection.emitter
    try:
        rows = await _on_worker_thread(
            engines, driver._execute(_write_on_worker, conn, call, sql, params, busy_ms)
        )
    except (sqlite3.Error, OverflowError) as exc:
        # OverflowError: an integer sqlite3 can't bind (beyond 64 bits). Rolled back on the
        # worker: the connection goes on.
        if emitter.active or enabled(DEBUG):
            emitter.record(engines.endpoint, sql, params, started, model, False, exc)
        if conn.in_transaction:
            # Its ROLLBACK failed too: not a connection for the next read.
            await discard(engines, raw, driver)
        else:
            await release(engines, raw, driver)
        raise error_of(exc, sql, params) from exc
    except BaseException:
        # Cancelled (or the worker failed): a write still queued or running is rolled back
        # rather than committed (``_write_on_worker``); the connection goes back to the pool,
        # where whatever uses it next queues behind that call.
        call.cancelled = True
        with contextlib.suppress(Exception):
            conn.interrupt()
        await discard(engines, raw, driver)
        raise
    await release(engines, raw, driver)
    if emitter.active or enabled(DEBUG):
        emitter.record(engines.endpoint, sql, params, started, model, False)
    return rows


def _set_busy_timeout(conn: sqlite3.Connection, busy_ms: int) -> None:
    conn.execute(f"PRAGMA busy_timeout = {int(busy_ms)}")


def restore_busy_timeout(driver: Any) -> None:
    """Give a connection that ran lean reads its configured busy timeout back as it goes back
    to the pool, where writes and transactions need it: queued on its worker thread, ahead of
    whatever the connection runs next (its worker may still run a cancelled statement)."""
    budget = driver.__dict__.pop(INLINE_ATTR, None)
    # Whoever held the connection since the last mark (a transaction, a write, a stream) may
    # have left work on its worker thread: no mark unless this check-in sets a new one.
    driver.__dict__.pop(DRAINED_ATTR, None)
    conn = driver._connection
    if isinstance(budget, _Budget) and conn is not None:
        restore = functools.partial(_set_busy_timeout, conn, budget.busy_ms)
        try:
            # A future nobody awaits: aiosqlite before 0.22 sets a result on every queued
            # call (a ``None`` there would end the connection's worker thread).
            future = asyncio.get_running_loop().create_future()
        except RuntimeError:
            # No loop (a connection collected outside one): nothing can be queued; SQLite
            # serializes calls on a connection, so set it from here.
            restore()
            return
        driver._tx.put_nowait((future, restore))
        # Done once the worker has run the restore and everything queued before it: the
        # next lean read to check the connection out needs no trip to the worker to know
        # it idle (``fetch_sqlite``), unless something else used the connection meanwhile.
        driver.__dict__[DRAINED_ATTR] = (future, budget.busy_ms)


def _finished(future: asyncio.Future[Any]) -> bool:
    """Whether the worker ran the call of ``future`` without an error (its exception is
    retrieved, so a failed restore is not reported as never retrieved)."""
    return future.done() and not future.cancelled() and future.exception() is None


# -- the lean path's connections ------------------------------------------------------------
#
# Lean reads take driver connections out of SQLAlchemy's pool and keep them between reads:
# ``Engines.idle`` holds up to ``Engines.hold`` of them while nothing waits, and while more
# than ``Engines.cap`` lean reads run at once (a capped pool, one connection always left for
# transactions and writes), the next ones queue on ``Engines.waiters`` and get a connection
# straight from a read that finished, instead of a check-in and a check-out through the pool
# (its queue, events and reset-on-return). A connection a read had to give up (a disconnect,
# an error) passes its place to the first waiter, which then checks one out of the pool.
# ``Engines.busy`` counts lean reads holding a connection: every path out of ``run`` gives
# its place back (``release``, ``discard`` or ``Engines.dropped``).


def lean_capacity(pool: Any) -> int:
    """How many lean reads may hold a connection of ``pool`` at once before the next ones
    wait for one of theirs (``0``: no limit of the lean path's own, the pool's applies)."""
    size = getattr(pool, "size", None)
    overflow = getattr(pool, "_max_overflow", -1)
    if not callable(size) or not isinstance(overflow, int) or overflow < 0:
        return 0
    return max(0, int(size()) + overflow - 1)


async def acquire(engines: Engines) -> tuple[Any, Any]:
    """A ``(pooled connection, driver connection)`` pair for one lean read."""
    idle = engines.idle
    while idle:
        kept = idle.pop()
        if _current(engines, kept[0]):
            engines.busy += 1
            return kept
        await _drop_stale(kept)
    if engines.cap and (engines.busy >= engines.cap or (engines.busy and engines.pool_full())):
        # At the lean path's share of the pool, or the pool has nothing left (streams and
        # transactions hold the rest) while a lean read runs: wait for that read's connection
        # rather than in the pool's queue, which lean reads keep their connections out of.
        waiter: asyncio.Future[tuple[Any, Any] | None] = asyncio.get_running_loop().create_future()
        engines.waiters.append(waiter)
        try:
            pair = await waiter
        except asyncio.CancelledError:
            await _cancelled_wait(engines, waiter)
            raise
        # The finishing read's place is this read's now (``busy`` unchanged).
        if pair is not None:
            return pair
    else:
        engines.busy += 1
    return await _checkout_place(engines)


async def _cancelled_wait(engines: Engines, waiter: asyncio.Future[Any]) -> None:
    """A read cancelled while it waited for a place (``acquire``): what it was handed just
    as it was cancelled, if anything, goes on (its place, or the connection with it)."""
    if waiter.done() and not waiter.cancelled():
        got = waiter.result()
        if got is None:
            engines.dropped()
        else:
            await release(engines, *got)


async def _checkout_place(engines: Engines) -> tuple[Any, Any]:
    """A connection from the pool for a read that holds a place (``busy`` counts it); the
    place goes on if the check-out fails."""
    try:
        return await _checkout(engines)
    except BaseException:
        engines.dropped()
        raise


async def _checkout(engines: Engines, retry: bool = True) -> tuple[Any, Any]:
    # Tells the MySQL dialect's pool "checkout" listener (``install_events``) to leave the
    # connection in autocommit if the lean path left it so: this checkout is the lean path's.
    token = lean_checkout.set(True)
    try:
        raw = await engines.engine.raw_connection()
    finally:
        lean_checkout.reset(token)
    driver: Any = raw.driver_connection
    info = raw.info
    if _LEAN_RANK not in info:
        # Its place among the idle ones, for good (``_keep_or_checkin``); the pool clears
        # ``info`` when it replaces the connection.
        info[_LEAN_RANK] = next(_lean_ranks)
    if engines.backend not in ("sqlite", "postgresql") and not driver.get_autocommit():
        # MySQL: autocommit while the lean path holds it, and after (``checkin``) until
        # SQLAlchemy checks it out (the dialect's "checkout" listener switches it off). The
        # driver's flag is the server's own status of the connection's last reply: a
        # connection last used by SQLAlchemy, or a new one (the driver opens it with
        # autocommit off), is switched here, one the lean path returned is not.
        try:
            await driver.autocommit(True)
        except Exception as exc:
            if not (retry and engines.is_disconnect(exc, driver)):
                await greenlet_spawn(raw.invalidate, exc)
                raise
            # Dropped by the server while it sat in the pool: its generation goes (the idle
            # ones too) and the pool opens a fresh one, as a pre-ping would have.
            await engines.invalidate(raw, exc)
            return await _checkout(engines, False)
        # For the listener: the lean path switched it, SQLAlchemy's checkout switches it back
        # (not a connection that autocommits by configuration, an ``isolation_level`` of
        # ``"AUTOCOMMIT"``). The pool clears ``info`` when it replaces the connection.
        info[AUTOCOMMIT_SET] = True
    return raw, driver


async def acquire_for_stream(engines: Engines) -> tuple[Any, Any]:
    """A pair for a lean stream: an idle one, else one from the pool, never a wait for a lean
    read's. A stream holds its connection while the loop body runs, and the body's own reads
    (a preload per batch) must not wait for it: streams stay out of ``Engines.busy``."""
    idle = engines.idle
    while idle:
        pair = idle.pop()
        if _current(engines, pair[0]):
            return pair
        await _drop_stale(pair)
    return await _checkout(engines)


def _current(engines: Engines, raw: Any) -> bool:
    """Whether the idle connection ``raw`` belongs to the pool's current generation: the
    pool's own check-out recycles a connection opened before its last invalidation, and so
    must the idle list, which check-outs bypass. A pool invalidated by SQLAlchemy's own
    execution (a transaction that found a dropped connection), or while a read still held
    ``raw``, leaves it here though its server may have dropped it; reading on it would also
    defeat the retry, since SQLAlchemy opens no new generation for a connection of an
    invalidated one (the retry would then get a newer connection the server dropped too).
    Private attributes of SQLAlchemy's pool: kept here, with the other internals."""
    record = raw._connection_record
    # (Read through the engine each time: ``dispose()`` gives the engine a new pool.)
    pool: Any = engines.engine.sync_engine.pool
    return record is not None and record.starttime >= pool._invalidate_time


async def _drop_stale(pair: tuple[Any, Any]) -> None:
    """Close an idle connection of an invalidated generation (not counted in ``busy``)."""
    await greenlet_spawn(pair[0].invalidate)


async def release_stream(engines: Engines, raw: Any, driver: Any) -> None:
    """Give back a stream's healthy connection: to a waiting lean read (which counts it from
    now on), else to the idle ones, else to the pool."""
    if not _current(engines, raw):
        await _drop_stale((raw, driver))
        return
    waiters = engines.waiters
    while waiters:
        waiter = waiters.popleft()
        if not waiter.done():
            engines.busy += 1
            waiter.set_result((raw, driver))
            return
    await _keep_or_checkin(engines, raw, driver)


# Marks a pooled connection the lean path switched to autocommit (``_checkout``).
AUTOCOMMIT_SET = "lucid_lean_autocommit"
# Set while the lean path checks a connection out of the pool (``_checkout``).
lean_checkout: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "lucid_lean_checkout", default=False
)
# Idle connections are kept in the order of their first lean checkout, the earliest taken
# first: reads one after another then run on one connection, before and after a burst of
# concurrent ones, instead of on whichever finished last. Its driver-side caches stay warm
# (asyncpg's prepared statements, PostgreSQL's plans for them, which are per connection): a
# read on another connection would prepare its statement again, one more round trip.
_LEAN_RANK = "lucid_lean_rank"
_lean_ranks = itertools.count()


def release_now(engines: Engines, raw: Any, driver: Any) -> bool:
    """``release``'s usual cases, done without a coroutine: the connection goes to a waiting
    read or to the idle ones. ``False``, with nothing done but the waiters found cancelled
    dropped, when the rest of ``release`` (``_release_rest``) must run: the pool was
    invalidated, or the connection goes back to the pool."""
    if not _current(engines, raw):
        return False
    waiters = engines.waiters
    while waiters:
        waiter = waiters.popleft()
        if not waiter.done():
            waiter.set_result((raw, driver))
            return True
    if not engines.hold:
        return False
    idle = engines.idle
    if len(idle) >= engines.hold or engines.pool_full():
        return False
    engines.busy -= 1
    idle.insert(_idle_place(idle, raw) if idle else 0, (raw, driver))
    return True


async def release(engines: Engines, raw: Any, driver: Any) -> None:
    """Give a healthy connection back after a lean read: to the first waiting read, else to
    the idle ones, else to the pool."""
    if not release_now(engines, raw, driver):
        await _release_rest(engines, raw, driver)


async def _release_rest(engines: Engines, raw: Any, driver: Any) -> None:
    """``release`` where ``release_now`` did nothing (no read waits any more): a connection
    of an invalidated pool is dropped (its place handed on), else it goes back to the pool,
    or to the idle ones in the place of the latest-ranked, which goes back instead."""
    if not _current(engines, raw):
        # The pool was invalidated while the read held it: its place, not it, is handed on.
        engines.dropped()
        await _drop_stale((raw, driver))
        return
    engines.busy -= 1
    await _keep_or_checkin(engines, raw, driver)


async def _keep_or_checkin(engines: Engines, raw: Any, driver: Any) -> None:
    # Kept idle unless the pool has nothing left: then someone may be waiting in its queue.
    if engines.hold and not engines.pool_full():
        idle = engines.idle
        at = _idle_place(idle, raw)
        if len(idle) < engines.hold:
            idle.insert(at, (raw, driver))
            return
        if at:
            # Full: the latest-ranked idle connection goes back to the pool instead.
            idle.insert(at, (raw, driver))
            raw, driver = idle.pop(0)
    # Still checked out until the pool has it back (its check-in may suspend): counted as the
    # lean path's meanwhile (``pool_alone``).
    engines.returning += 1
    try:
        await checkin(raw, driver)
    finally:
        engines.returning -= 1


def _idle_place(idle: list[tuple[Any, Any]], raw: Any) -> int:
    """Where ``raw`` goes among the idle connections, which run from the latest ranks to
    the earliest (their end popped first)."""
    rank = _rank(raw)
    at = len(idle)
    while at and _rank(idle[at - 1][0]) < rank:
        at -= 1
    return at


def _rank(raw: Any) -> int:
    rank: int = raw.info.get(_LEAN_RANK, -1)
    return rank


async def discard(engines: Engines, raw: Any, driver: Any) -> None:
    """Return the connection of a read that failed (not a disconnect) to the pool, its place
    to the first waiting read."""
    engines.dropped()
    await checkin(raw, driver, clean=False)


async def checkin(raw: Any, driver: Any, clean: bool = True) -> None:
    """Return a lean-path connection to the pool. ``clean``: it holds no transaction (reads
    run in autocommit), so the pool's rollback-on-return is skipped. MySQL: it goes back in
    autocommit, for the lean path's next checkout to find it so; SQLAlchemy's next checkout
    switches it off first (the dialect's "checkout" listener), one round trip only when the
    connection changes hands rather than two per lean checkout."""
    if clean:
        await greenlet_spawn(raw._close_special, True)
    else:
        await greenlet_spawn(raw.close)


# -- lean streams ---------------------------------------------------------------------------
#
# ``QueryClient.stream`` outside a transaction: the driver's own server-side cursor
# (asyncpg's cursor in a read-only transaction, asyncmy's unbuffered ``SSCursor`` in
# autocommit, the sqlite3 cursor stepped on aiosqlite's worker thread) on a lean-path
# connection, batches converted by the statement shape's result processors. Slow twin:
# ``stream_statement`` (SQLAlchemy's ``stream()``). In-memory SQLite keeps the slow twin: its
# one connection is shared under ``Connection.guard`` per batch.


async def stream(
    connection: Connection,
    engines: Engines,
    pair: tuple[Any, Any],
    entry: Compiled,
    sql: str,
    params: list[Any],
    model: str | None,
    batch_size: int,
) -> AsyncGenerator[ExecResult, None]:
    """Yield the rows of a compiled SELECT ``batch_size`` at a time through a server-side
    cursor on ``pair`` (from ``acquire_for_stream``; given back when the generator closes).
    The statement is reported (``QueryEmitter.record``) once its cursor is open, or with its
    error; driver errors raise ``QueryError`` (a dropped connection is invalidated with its
    generation)."""
    raw, driver = pair
    started = time.perf_counter()
    emitter = connection.emitter
    opened = False
    settled = False
    if engines.backend == "postgresql":
        batches = _pg_batches(driver, entry, engines.dialect, sql, params, batch_size)
    elif engines.backend == "sqlite":
        batches = _sqlite_batches(driver, entry, engines.dialect, sql, params, batch_size)
    else:
        batches = _mysql_batches(driver, entry, engines.dialect, sql, params, batch_size)
    try:
        try:
            while True:
                try:
                    rows = await batches.__anext__()
                except StopAsyncIteration:
                    break
                if not opened:
                    # The cursor is open: the statement ran (SQLAlchemy reports it here).
                    opened = True
                    if emitter.active or enabled(DEBUG):
                        emitter.record(engines.endpoint, sql, params, started, model, False)
                    continue
                assert rows is not None
                yield ExecResult(_process(entry, rows), entry.keys, len(rows))
        finally:
            await batches.aclose()
    except Exception as exc:
        if not opened and (emitter.active or enabled(DEBUG)):
            emitter.record(engines.endpoint, sql, params, started, model, False, exc)
        settled = True
        if engines.is_disconnect(exc, driver):
            await engines.invalidate(raw, exc)
        else:
            await checkin(raw, driver, clean=False)
        raise failed(exc, sql, params) from exc
    except GeneratorExit:
        # Closed early (``break``): the cursor is closed and, on PostgreSQL, its transaction
        # rolled back (``batches.aclose()`` above): the connection is clean.
        raise
    except BaseException:
        # Cancelled: where the driver stood (a cursor, a transaction) is unknown, and the
        # pool's reset doesn't know of them: the connection is closed.
        settled = True
        await greenlet_spawn(raw.invalidate)
        raise
    finally:
        if not settled:
            await release_stream(engines, raw, driver)


async def _pg_batches(
    driver: Any, entry: Compiled, dialect: Dialect, sql: str, params: list[Any], size: int
) -> AsyncGenerator[Sequence[Any] | None, None]:
    """``None`` once the cursor is open, then its batches (a read-only transaction around
    it: asyncpg cursors live in one; rolled back when the generator closes)."""
    trx = driver.transaction(readonly=True)
    await trx.start()
    try:
        if entry.processors is None:
            prepared = await driver.prepare(sql)
            _resolve_processors(entry, dialect, [a.type.oid for a in prepared.get_attributes()])
            cursor = await prepared.cursor(*params)
        else:
            cursor = await driver.cursor(sql, *params)
        yield None
        while batch := await cursor.fetch(size):
            yield batch
    finally:
        await trx.rollback()


async def _mysql_batches(
    driver: Any, entry: Compiled, dialect: Dialect, sql: str, params: list[Any], size: int
) -> AsyncGenerator[Sequence[Any] | None, None]:
    """``None`` once the unbuffered cursor ran the statement, then its batches (the
    connection is in autocommit while the lean path holds it: no transaction is left)."""
    from asyncmy.cursors import SSCursor

    async with driver.cursor(SSCursor) as cursor:
        await cursor.execute(sql, params)
        if entry.processors is None:
            _resolve_processors(entry, dialect, [d[1] for d in cursor.description])
        yield None
        while batch := await cursor.fetchmany(size):
            yield batch


async def _sqlite_batches(
    driver: Any, entry: Compiled, dialect: Dialect, sql: str, params: list[Any], size: int
) -> AsyncGenerator[Sequence[Any] | None, None]:
    """``None`` once the statement ran, then its batches, each fetched on the connection's
    worker thread (the statement's steps run there, never on the event loop). The connection
    reads in autocommit: the cursor's read snapshot ends when it is closed."""
    # The stream waits for locks as a thread-path read does: the connection's configured
    # busy timeout back (queued ahead of the statement), and its inline reads start over.
    restore_busy_timeout(driver)
    # The stream's statement runs on the worker: a later read can't take it for idle.
    driver.__dict__.pop(DRAINED_ATTR, None)
    if entry.processors is None:
        _resolve_processors(entry, dialect, [None] * len(entry.types))
    cursor = await driver.execute(sql, params)
    try:
        yield None
        while batch := await cursor.fetchmany(size):
            yield batch
    finally:
        await cursor.close()


def with_sql(message: str, sql: str | None) -> str:
    """A driver message with the statement it refused (values stay in ``bindings``)."""
    return f"{message} [SQL: {sql}]" if sql else message


def failed(
    exc: BaseException, sql: str, bindings: list[Any], kind: type[QueryError] = QueryError
) -> QueryError:
    """The ``kind`` error for statement ``sql`` that the driver (or the statement's own
    handling of its rows) failed with ``exc``: its message, the statement after it."""
    return kind(
        with_sql(str(exc).strip() or type(exc).__name__, sql),
        sql=sql,
        bindings=bindings,
        original=exc,
    )


def refused(exc: Exception, sql: str, bindings: list[Any]) -> QueryError:
    """The ``QueryError`` SQLAlchemy's path gives (its ``StatementError``) for a value a bind
    or result processor refused in ``sql``."""
    return QueryError(
        with_sql(f"Cannot run the statement: {exc}", sql),
        sql=sql,
        bindings=bindings,
        original=exc,
    )


_LOST_ADVICE = {
    "retried": "it failed again on a fresh connection",
    "write": "a write is never retried automatically (check whether it was applied)",
    "transaction": (
        "the transaction is gone (the server discarded its work): run the whole transaction again"
    ),
}


def connection_lost(
    exc: BaseException, sql: str | None, bindings: list[Any], context: str
) -> ConnectionLostError:
    """The error for a statement whose connection the server dropped; ``context`` is
    ``"retried"``, ``"write"`` or ``"transaction"``."""
    reason = str(exc).strip() or type(exc).__name__
    return ConnectionLostError(
        with_sql(f"Lost the connection to the database ({reason}): {_LOST_ADVICE[context]}", sql),
        sql=sql,
        bindings=bindings,
        original=exc,
    )
