"""PostgreSQL: key lists as one array parameter, UTC sessions, AUTOCOMMIT reads, TRUNCATE …
RESTART IDENTITY, DROP … CASCADE."""

from __future__ import annotations

import asyncio
import datetime as _dt
import hashlib
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    Numeric,
    Text,
    Uuid,
    all_,
    any_,
    bindparam,
    cast,
    func,
    literal_column,
    select,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection as SyncConnection
from sqlalchemy.engine.interfaces import Dialect as SADialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import ColumnElement
from sqlalchemy.types import ARRAY, TypeEngine, UserDefinedType

from ...errors import QueryError
from ..events import DEBUG, enabled
from ..executor import (
    LRU,
    Compiled,
    asyncpg_turn,
    bind_processor,
    compile_returning,
    connection_lost,
    raw_connection,
    refused,
    returned_rows,
    sorts_by_generated_key,
)
from .base import (
    UPSERT_INSERTED,
    AdvisoryLock,
    ColumnRows,
    Dialect,
    EngineSetup,
    Key,
    Rows,
    merge_set,
    named_table,
    truncate_statement,
    update_from,
)
from .json import PostgresqlJson
from .sqlite import typed

if TYPE_CHECKING:
    from ...query.client import Client
    from ..connection import Connection
    from ..transaction import TransactionClient

# Tuple keys on untyped columns (``db.from_``) keep the plain row-value list while it fits in
# one statement: there the server types each value from its column; the arrays of the
# one-parameter form need a type named from the Python values (asyncpg 32,767 parameters).
PLAIN_ROWS_UP_TO = 30_000

# Element types of the arrays for tuple keys on untyped columns (``db.from_``).
_PG_TYPES: list[tuple[type, TypeEngine[Any]]] = [
    (bool, Boolean()),
    (int, BigInteger()),
    (str, Text()),
    (uuid.UUID, Uuid()),
    (_dt.datetime, DateTime()),
    (_dt.date, Date()),
    (Decimal, Numeric()),
    (float, Float(53)),
]


class KeyArray(UserDefinedType[list[Any]]):
    """Keys as one PostgreSQL array parameter, bound without a cast: the server types ``$1``
    from the column it is compared with (``int4[]`` for an INTEGER column even though ``int``
    attributes map to BigInteger; a cross-type ``int4 = ANY(int8[])`` index scan is measurably
    slower). Each key still goes through the column type's bind processor."""

    cache_ok = True
    render_bind_cast = False

    def __init__(self, element: TypeEngine[Any]) -> None:
        self.element = element

    def get_col_spec(self, **kw: Any) -> str:
        return "ARRAY"  # never rendered: this type only binds parameters

    def bind_processor(self, dialect: SADialect) -> Any:
        inner = self.element.dialect_impl(dialect).bind_processor(dialect)
        if inner is None:
            return None

        def process(value: Any) -> Any:
            return [inner(v) if v is not None else None for v in value]

        return process


def _element_type(column: Any, values: list[Any]) -> TypeEngine[Any] | None:
    """The array element type for one column of tuple keys: the column's own type, else the
    one Python type of its values (``None``: mixed or unknown)."""
    column_type = typed(column)
    if column_type is not None:
        return column_type
    kinds = {type(v) for v in values if v is not None}
    if len(kinds) != 1:
        return None
    (kind,) = kinds
    for python_type, sql_type in _PG_TYPES:
        if kind is python_type:
            if python_type is _dt.datetime:
                aware = any(v.tzinfo is not None for v in values if v is not None)
                return DateTime(timezone=aware)
            return sql_type
    return None


Processor = Callable[[Any], Any] | None
T = TypeVar("T")

# Compiled-shape facts kept per (table, columns, key).
_SHAPE_CACHE_SIZE = 256
# The column of ``unnest(…) WITH ORDINALITY`` numbering the rows of a bulk INSERT.
_ORDINAL = "lucid_ordinal"

# Column types whose values travel exactly as arrays of that type (``bulk_update_bound``).
_ARRAYABLE = (sa.Integer, sa.String, sa.Boolean, sa.DateTime, sa.Date, sa.Time, Numeric, Uuid)


def _arrayable(type_: TypeEngine[Any]) -> bool:
    """Whether a column of ``type_`` can take its values from an ``unnest`` of an array of
    ``type_`` (a decorated type by its implementation): not enums (named server types),
    JSON, arrays or types of their own."""
    impl = type_.impl_instance if isinstance(type_, sa.TypeDecorator) else type_
    return isinstance(impl, _ARRAYABLE) and not isinstance(impl, sa.Enum | sa.ARRAY)


class PostgresqlDialect(Dialect):
    """PostgreSQL through asyncpg."""

    name = "postgresql"
    default_port = 5432
    transactional_ddl = True
    json = PostgresqlJson()
    cursors_need_transaction = True
    nulls_sort_high = True
    # A failed statement aborts the transaction until a rollback (to a savepoint).
    aborts_on_error = True
    # Statements outside transactions run in AUTOCOMMIT: nothing to commit after them.
    commit_after_write = False
    # A standby that has replayed everything it received is not behind, however old its last
    # replayed commit; one with WAL waiting is as far behind as that commit. NULL (nothing
    # replayed since it started, WAL waiting) counts as behind.
    replica_lag_sql = (
        "select case when not pg_is_in_recovery() then 0"
        " when pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() then 0"
        " else extract(epoch from now() - pg_last_xact_replay_timestamp()) end"
    )
    # serialization_failure, deadlock_detected.
    conflict_error_codes = frozenset({"40001", "40P01"})

    def __init__(self) -> None:
        # (table, columns, key) -> whether SQLAlchemy sorts a multi-row INSERT's returned
        # rows on the generated key (``insert_many_returning``)
        self._sorted_inserts: LRU[bool] = LRU(_SHAPE_CACHE_SIZE)
        # (table, key, columns) -> the driver-level bulk UPDATE (None: not this form)
        self._updates: LRU[_ArrayUpdate | None] = LRU(_SHAPE_CACHE_SIZE)
        # (table, columns, key) -> the driver-level multi-row INSERT (None: not this form)
        self._inserts: LRU[_ArrayInsert | None] = LRU(_SHAPE_CACHE_SIZE)

    def engine_options(self, setup: EngineSetup) -> None:
        # Datetimes travel as UTC: naive values mean UTC whatever the server's zone is.
        settings = dict(setup.connect_args.get("server_settings") or {})
        settings.setdefault("timezone", "UTC")
        setup.connect_args["server_settings"] = settings

    def autocommit_options(self) -> dict[str, Any]:
        # asyncpg switches AUTOCOMMIT locally: plain queries skip BEGIN/COMMIT round trips.
        return {**super().autocommit_options(), "isolation_level": "AUTOCOMMIT"}

    def isolation_level(self, level: str) -> str:
        name = super().isolation_level(level)
        # PostgreSQL runs READ UNCOMMITTED as READ COMMITTED, and SQLAlchemy's asyncpg dialect
        # only accepts the levels PostgreSQL really has.
        return "READ COMMITTED" if name == "READ UNCOMMITTED" else name

    def is_disconnect(self, exc: BaseException, driver: Any, dialect: SADialect) -> bool:
        # asyncpg closes the connection on any fatal error (terminated backend, admin
        # shutdown, reset socket); whatever it then raised, is_closed() tells.
        return isinstance(exc, OSError) or bool(driver.is_closed())

    def advisory_lock(self, name: str, database: str | None) -> AdvisoryLock:
        """``pg_try_advisory_lock`` of a 64-bit key hashed from ``name`` (per database)."""
        digest = hashlib.sha1(name.encode()).digest()
        key = int.from_bytes(digest[:8], "big", signed=True)
        # pg_locks shows a bigint key as classid (high 32 bits) and objid (low 32 bits).
        locks = sa.table(
            "pg_locks",
            *(sa.column(c) for c in ("pid", "locktype", "database", "classid", "objid")),
            sa.column("objsubid"),
            sa.column("granted"),
        )
        databases = sa.table("pg_database", sa.column("oid"), sa.column("datname"))
        holder = (
            select(locks.c.pid)
            .select_from(locks)
            .where(
                locks.c.locktype == "advisory",
                locks.c.database
                == select(databases.c.oid)
                .where(databases.c.datname == func.current_database())
                .scalar_subquery(),
                sa.cast(locks.c.classid, sa.BigInteger) == ((key >> 32) & 0xFFFFFFFF),
                sa.cast(locks.c.objid, sa.BigInteger) == (key & 0xFFFFFFFF),
                locks.c.objsubid == 1,
                locks.c.granted.is_(True),
            )
            .limit(1)
            .scalar_subquery()
        )
        return AdvisoryLock(
            select(func.pg_try_advisory_lock(key)),
            select(func.pg_advisory_unlock(key)),
            f"pg_advisory_lock({key})",
            select(holder),
            lambda pid: select(func.pg_terminate_backend(pid)),
        )

    # -- keys as parameters --------------------------------------------------------------------
    def keys_as_one_parameter(self, keys: Sequence[Any]) -> bool:
        return True

    def key_parameter(self, column: ColumnElement[Any], keys: list[Any], dialect: SADialect) -> Any:
        """The keys as they are: one array parameter (its type's processor binds it)."""
        return keys

    def bind_keys(
        self, column: ColumnElement[Any], keys: list[Any], dialect: SADialect, negate: bool
    ) -> ColumnElement[Any]:
        """``column = ANY($1)`` (``column <> ALL($1)`` for ``NOT IN``)."""
        if not keys:
            return super().bind_keys(column, keys, dialect, negate)
        array = bindparam(None, keys, type_=KeyArray(column.type), unique=True)
        clause: ColumnElement[Any] = column != all_(array) if negate else column == any_(array)
        return clause

    def bind_rows(
        self, columns: list[Key], rows: list[tuple[Any, ...]], dialect: SADialect, negate: bool
    ) -> Key | None:
        """``(a, b) IN (SELECT * FROM unnest($1::t1[], $2::t2[]))``."""
        if len(rows) * len(columns) <= PLAIN_ROWS_UP_TO and any(typed(c) is None for c in columns):
            return None
        arrays: list[Any] = []
        for i, column in enumerate(columns):
            values = [r[i] for r in rows]
            element = _element_type(column, values)
            if element is None:
                return None
            array = bindparam(None, values, type_=KeyArray(element), unique=True)
            arrays.append(cast(array, ARRAY(element)))
        sub: Any = select(literal_column("*")).select_from(func.unnest(*arrays))
        target = sa.tuple_(*columns)
        return target.not_in(sub) if negate else target.in_(sub)

    # -- writes --------------------------------------------------------------------------------
    def bulk_update_statement(
        self,
        table: sa.TableClause,
        key: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
    ) -> sa.Update:
        """``UPDATE t SET c = v.c FROM (VALUES ($1::int, $2::text), …) AS v (id, c) WHERE
        t.id = v.id``: typed parameters, one join, no per-row CASE scan."""
        names = [key, *columns]
        source = (
            sa.values(*[sa.column(n, table.c[n].type) for n in names], name="lucid_rows")
            .data([tuple(r) for r in rows])
            .alias("lucid_rows")
        )
        return update_from(table, key, columns, source)

    def bulk_update_bound(
        self,
        table: sa.TableClause,
        key: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        dialect: SADialect,
    ) -> sa.Update | None:
        """``UPDATE t SET c = v.c FROM unnest($1::int[], $2::text[]) AS v (id, c) WHERE
        t.id = v.id``: one array per column, of the column's own type (each value through
        that type's bind processor, as a plain parameter would be), for column types whose
        arrays asyncpg encodes exactly; ``None`` for the others (JSON, enums, arrays)."""
        names = [key, *columns]
        types = [table.c[n].type for n in names]
        if not all(_arrayable(t) for t in types):
            return None
        arrays = [
            cast(bindparam(None, [r[i] for r in rows], type_=KeyArray(t), unique=True), ARRAY(t))
            for i, t in enumerate(types)
        ]
        source = (
            func.unnest(*arrays)
            .table_valued(*[sa.column(n, t) for n, t in zip(names, types, strict=True)])
            .render_derived(name="lucid_rows")
        )
        return update_from(table, key, columns, source)

    async def bulk_update_fast(
        self,
        trx: TransactionClient,
        table: sa.TableClause,
        key: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        model: str | None,
    ) -> int | None:
        """``bulk_update_bound``'s statement on the transaction's asyncpg connection: its SQL
        compiled once per (table, key, columns) and kept, each column's values one array with
        the column type's bind processor applied to each value (as ``KeyArray`` does), no
        SQLAlchemy execution per call. Errors, query events, the transaction's state and
        cancellation are those of ``TransactionClient.execute``. ``None`` (the caller runs
        ``bulk_update_bound`` through SQLAlchemy, its twin) with the fast paths off
        (``LUCID_FAST_PATHS=0``) and for the column types ``bulk_update_bound`` declines."""
        from ..query_client import connection_of

        connection = connection_of(trx)
        if not rows or not connection.fast_reads:
            return None
        shape = self._compiled_update(trx.dialect, table, key, columns)
        if shape is None:
            return None
        if type(rows) is ColumnRows:
            arrays = [list(values) for values in rows.columns]
        else:
            arrays = [list(values) for values in zip(*rows, strict=True)]
        sql = shape.sql
        _bind_arrays(shape.processors, arrays, sql)
        status = await run_on_driver(
            trx, connection, sql, arrays, model, lambda driver: driver.execute(sql, *arrays)
        )
        if status is None:
            return None
        return _affected(status)

    def _compiled_update(
        self, dialect: SADialect, table: sa.TableClause, key: str, columns: Sequence[str]
    ) -> _ArrayUpdate | None:
        """``bulk_update_fast``'s statement: ``bulk_update_bound``'s for named array
        parameters, compiled once per (table, key, columns) and kept (LRU); ``None`` for
        column types it declines, or when the compiled parameters are not the columns in
        order."""
        shape_key = (table, key, tuple(columns))
        cache = self._updates

        def make() -> _ArrayUpdate | None:
            names = [key, *columns]
            types = [table.c[n].type for n in names]
            shape: _ArrayUpdate | None = None
            if all(_arrayable(t) for t in types):
                arrays = [
                    cast(bindparam(f"lucid_{i}", type_=KeyArray(t)), ARRAY(t))
                    for i, t in enumerate(types)
                ]
                source = (
                    func.unnest(*arrays)
                    .table_valued(*[sa.column(n, t) for n, t in zip(names, types, strict=True)])
                    .render_derived(name="lucid_rows")
                )
                compiled = update_from(table, key, columns, source).compile(dialect=dialect)
                order = list(getattr(compiled, "positiontup", None) or [])
                if order == [f"lucid_{i}" for i in range(len(names))]:
                    processors = [bind_processor(t, dialect) for t in types]
                    shape = _ArrayUpdate(compiled.string, processors)
            return shape

        return cache.cached(shape_key, make)

    def bulk_update_parameters(self, columns: int) -> int:
        return max(1, min(1000, 30000 // (columns + 1)))

    async def insert_many_returning(
        self,
        trx: TransactionClient,
        table: sa.TableClause,
        params: Rows,
        key: Key,
        model: str | None,
    ) -> list[Any]:
        """``INSERT INTO t (a, b) SELECT … FROM unnest($1::t1[], $2::t2[]) WITH ORDINALITY
        … ORDER BY ordinality RETURNING key``: one array per column, of the column's own type
        (each value through that type's bind processor, as a plain parameter would be), so
        the SQL is the same for any row count and SQLAlchemy has nothing to do per row.

        The keys come back in parameter order as SQLAlchemy's "insertmanyvalues" gives them
        (its ``INSERT … SELECT … FROM (VALUES …) ORDER BY sen_counter``): the database counts
        the generated keys up in the order the SELECT hands over the rows, so the sorted keys
        are the rows' keys. Used where SQLAlchemy itself relies on that (an integer key it
        takes as the "implicit sentinel") and every column's values travel exactly as arrays
        (``bulk_update_bound``'s types); anything else takes SQLAlchemy's path."""
        names = list(params[0]) if params else []
        types = [table.c[n].type for n in names]
        dialect = trx.dialect
        if (
            not names
            or _ORDINAL in names
            or not all(_arrayable(t) for t in types)
            or not self._sorted_on_key(dialect, table, names, key)
        ):
            return await super().insert_many_returning(trx, table, params, key, model)
        from ..query_client import connection_of

        columns = [[r[n] for r in params] for n in names]
        connection = connection_of(trx)
        if connection.fast_reads:
            # The fast path: the statement compiled once per shape, run on the driver.
            shape = self._compiled_insert(dialect, table, names, key)
            if shape is not None:
                sql = shape.sql
                _bind_arrays(shape.processors, columns, sql)
                fetched = await run_on_driver(
                    trx, connection, sql, columns, model, lambda d: d.fetch(sql, *columns)
                )
                if fetched is not None:
                    returned = returned_rows(shape.result, fetched)
                    return [(k,) for k in sorted(row[0] for row in returned)]
                # (the connection is closed: SQLAlchemy's path binds the values afresh)
                columns = [[r[n] for r in params] for n in names]
        arrays = [
            bindparam(None, values, type_=KeyArray(t), unique=True)
            for values, t in zip(columns, types, strict=True)
        ]
        stmt = _ordered_insert(table, names, types, key, arrays)
        result = await trx.execute(stmt, write=True, model=model)
        return [(k,) for k in sorted(row[0] for row in result.rows)]

    def _compiled_insert(
        self, dialect: SADialect, table: sa.TableClause, names: list[str], key: Key
    ) -> _ArrayInsert | None:
        """``insert_many_returning``'s statement for named array parameters, compiled once
        per (table, columns, key) and kept (LRU); ``None`` when the compiled parameters are
        not the columns in order (SQLAlchemy's path runs)."""
        shape_key = ("insert", table, tuple(names), key.name)
        cache = self._inserts

        def make() -> _ArrayInsert | None:
            types = [table.c[n].type for n in names]
            params = [bindparam(f"lucid_{i}", type_=KeyArray(t)) for i, t in enumerate(types)]
            stmt = _ordered_insert(table, names, types, key, params)
            compiled = stmt.compile(dialect=dialect)
            order = list(getattr(compiled, "positiontup", None) or [])
            shape: _ArrayInsert | None = None
            if order == [f"lucid_{i}" for i in range(len(names))]:
                processors = [bind_processor(t, dialect) for t in types]
                shape = _ArrayInsert(compiled.string, processors, compile_returning(stmt, dialect))
            return shape

        return cache.cached(shape_key, make)

    def _sorted_on_key(
        self, dialect: SADialect, table: sa.TableClause, names: list[str], key: Key
    ) -> bool:
        """Whether SQLAlchemy runs the multi-row INSERT of ``names`` into ``table``
        returning ``key`` in parameter order by sorting on the generated key (kept per
        shape, LRU)."""
        shape_key = (table, tuple(names), key.name)
        cache = self._sorted_inserts

        def make() -> bool:
            stmt = sa.insert(table).returning(table.c[key.name], sort_by_parameter_order=True)
            stmt = stmt.values({n: bindparam(n) for n in names})
            return sorts_by_generated_key(stmt, dialect)

        return cache.cached(shape_key, make)

    def upsert_bound(
        self,
        table: sa.TableClause,
        rows: Rows,
        conflict: Sequence[str],
        merge: Sequence[str],
        dialect: SADialect,
    ) -> sa.Insert | None:
        """``INSERT INTO t (a, b) SELECT … FROM unnest($1::t1[], $2::t2[]) ON CONFLICT (…)
        DO UPDATE SET …``: one array per column, of the column's own type, each value through
        that type's bind processor (as ``bulk_update_bound``); ``None`` (the multi-row VALUES)
        for column types whose arrays asyncpg does not encode exactly (JSON, enums, arrays).
        The rows come back in the order of the arrays, which ``upsert_many`` does not rely on
        (it matches them by their conflict key)."""
        if not rows or not conflict:
            return None
        names = list(rows[0])
        types = [table.c[n].type for n in names]
        if not names or not all(_arrayable(t) for t in types):
            return None
        arrays = [
            cast(bindparam(None, [r[n] for r in rows], type_=KeyArray(t), unique=True), ARRAY(t))
            for n, t in zip(names, types, strict=True)
        ]
        source = (
            func.unnest(*arrays)
            .table_valued(*[sa.column(n, t) for n, t in zip(names, types, strict=True)])
            .render_derived(name="lucid_rows")
        )
        stmt = postgresql.insert(table).from_select(names, select(*source.c))
        sets = merge_set(list(merge), names, conflict, lambda name: stmt.excluded[name])
        if not sets:
            sets = {conflict[0]: stmt.excluded[conflict[0]]}
        return stmt.on_conflict_do_update(index_elements=list(conflict), set_=sets)

    def upsert_inserted(self) -> ColumnElement[Any]:
        # A row the statement inserted has no deleting or locking transaction yet (xmax 0);
        # ON CONFLICT DO UPDATE sets it on the row it updates. Unqualified: RETURNING sees
        # only the target table's columns (system ones too), not the source rows.
        return (sa.literal_column("xmax") == sa.literal_column("0")).label(UPSERT_INSERTED)

    def insert_for(self, table: sa.TableClause) -> Any:
        return postgresql.insert(table)

    def is_unique_violation(self, exc: BaseException) -> bool:
        return _sqlstate(exc) == "23505"

    def is_deadlock(self, exc: BaseException) -> bool:
        return _sqlstate(exc) == "40P01"

    def missing_conflict_index(self, exc: BaseException) -> bool:
        return _sqlstate(exc) == "42P10"

    async def truncate(self, client: Client, table: str, cascade: bool = False) -> None:
        stmt = truncate_statement(named_table(table), restart=True, cascade=cascade)
        await client.execute(stmt, write=True)

    def drop_tables(self, conn: SyncConnection, names: list[str]) -> None:
        # One statement; CASCADE: foreign keys between them, views on them.
        conn.execute(_DropTables([sa.table(n) for n in names]))

    def truncate_tables(self, conn: SyncConnection, tables: list[sa.Table]) -> None:
        conn.execute(truncate_statement(*tables, restart=True, cascade=True))


@dataclass(frozen=True, slots=True)
class _ArrayUpdate:
    """A bulk ``UPDATE … FROM unnest($1::t1[], …)`` compiled by SQLAlchemy: its SQL and, per
    array, the bind processor of its elements' column type (``None``: values go as they
    are)."""

    sql: str
    processors: list[Processor]


@dataclass(frozen=True, slots=True)
class _ArrayInsert:
    """``insert_many_returning``'s ``INSERT … SELECT … FROM unnest($1::t1[], …) WITH
    ORDINALITY … RETURNING key`` compiled by SQLAlchemy: its SQL, per array the bind
    processor of its elements' column type, and the returned key's result processing."""

    sql: str
    processors: list[Processor]
    result: Compiled


def _ordered_insert(
    table: sa.TableClause,
    names: list[str],
    types: list[TypeEngine[Any]],
    key: Key,
    arrays: list[Any],
) -> sa.Insert:
    """``INSERT INTO t (a, b) SELECT a, b FROM unnest($1::t1[], $2::t2[]) WITH ORDINALITY AS
    lucid_rows (a, b, n) ORDER BY n RETURNING key``: ``arrays`` are the columns' bound
    arrays (``KeyArray`` parameters), cast to arrays of the columns' types."""
    rows = (
        func.unnest(*[cast(a, ARRAY(t)) for a, t in zip(arrays, types, strict=True)])
        .table_valued(
            *[sa.column(n, t) for n, t in zip(names, types, strict=True)],
            with_ordinality=_ORDINAL,
        )
        .render_derived(name="lucid_rows")
    )
    source = select(*[rows.c[n] for n in names]).order_by(rows.c[_ORDINAL])
    return sa.insert(table).from_select(names, source).returning(table.c[key.name])


def _bind_arrays(processors: Sequence[Processor], arrays: list[list[Any]], sql: str) -> None:
    """Apply each column's bind processor to the values of its array (``None`` stays
    ``None``, as ``KeyArray`` binds it), in place; a value a processor refuses is the
    ``QueryError`` SQLAlchemy's path reports for it."""
    try:
        for values, process in zip(arrays, processors, strict=True):
            if process is not None:
                values[:] = [None if v is None else process(v) for v in values]
    except (TypeError, ValueError, ArithmeticError) as exc:
        raise refused(exc, sql, arrays) from exc


def _affected(status: str) -> int:
    """The row count of an asyncpg command status (``"UPDATE 3"``)."""
    count = status.rsplit(" ", 1)[-1]
    return int(count) if count.isdigit() else -1


async def run_on_driver(
    trx: TransactionClient,
    connection: Connection,
    sql: str,
    values: list[Any],
    model: str | None,
    call: Callable[[Any], Awaitable[T]],
) -> T | None:
    """Run one statement, ``call(asyncpg connection)``, inside ``trx`` on its driver
    connection, as ``TransactionClient.execute`` runs one through SQLAlchemy: the
    transaction's BEGIN sent first when SQLAlchemy's adapter has not sent it yet (it does so
    lazily, before a transaction's first statement) and under the adapter's lock, the
    statement reported to the query listeners, a driver error mapped to the error the
    SQLAlchemy path raises (the transaction marked failed), a lost connection as
    ``ConnectionLostError``, a cancellation leaving the transaction only able to roll back
    (the connection is then discarded). ``None``: the driver connection is closed (the
    caller takes SQLAlchemy's path, which raises the error it maps)."""
    from ..transaction import open_connection

    trx._check_open()
    raw = await raw_connection(open_connection(trx))
    driver: Any = raw.driver_connection
    if driver is None or driver.is_closed():
        return None
    emitter = connection.emitter
    started = time.perf_counter()
    try:
        async with asyncpg_turn(raw):
            result = await call(driver)
    except asyncio.CancelledError:
        # Cancelled while the driver ran the statement: the connection's state is unknown.
        trx._root._broken = True
        raise
    except Exception as exc:
        # SQLAlchemy's adapter (BEGIN) raises its own error, the driver's as the cause.
        cause = exc.__cause__
        original = cause if type(exc).__module__.startswith("sqlalchemy") and cause else exc
        if emitter.active or enabled(DEBUG):
            endpoint = connection.write_engines().endpoint
            emitter.record(endpoint, sql, values, started, model, True, original)
        if isinstance(original, OSError) or driver.is_closed():
            trx._root._broken = True
            raise connection_lost(original, sql, values, "transaction") from exc
        error = _driver_error(original, sql, values)
        trx._failed(error)
        raise error from exc
    if emitter.active or enabled(DEBUG):
        emitter.record(connection.write_engines().endpoint, sql, values, started, model, True)
    return result


def _driver_error(original: BaseException, sql: str, values: list[Any]) -> QueryError:
    """An asyncpg error as the error SQLAlchemy's path raises for it (``wrap_error``):
    ``IntegrityError`` for constraint violations (SQLSTATE class 23),
    ``TransactionConflictError`` for serialization failures and deadlocks, else
    ``QueryError``."""
    from ..query_client import mapped_error

    code = str(getattr(original, "sqlstate", None) or "")
    return mapped_error(original, sql, values, integrity=code.startswith("23"))


def _sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a wrapped asyncpg error."""
    original = getattr(exc, "original", None)
    return getattr(original, "sqlstate", None) or getattr(original, "pgcode", None)


class _DropTables(sa.sql.expression.Executable, sa.sql.expression.ClauseElement):
    """``DROP TABLE IF EXISTS a, b CASCADE`` (Core's DropTable names one table)."""

    inherit_cache = False

    def __init__(self, tables: list[sa.TableClause]) -> None:
        self.tables = tables


@compiles(_DropTables)
def _compile_drop_tables(element: _DropTables, compiler: Any, **kw: Any) -> str:
    names = ", ".join(compiler.preparer.format_table(t) for t in element.tables)
    return f"DROP TABLE IF EXISTS {names} CASCADE"
