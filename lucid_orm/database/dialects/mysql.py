"""MySQL/MariaDB: UTC sessions, constraint errors filed elsewhere by the driver, COMMIT after
reads, FOREIGN_KEY_CHECKS around whole-database chores, and the bulk writes on the driver
connection (multi-row INSERT, bulk UPDATE, JSON_TABLE upsert), compiled once per shape."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
import hashlib
import json
import operator
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Connection as SyncConnection
from sqlalchemy.engine import Engine as SyncEngine
from sqlalchemy.engine.interfaces import Dialect as SADialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import ColumnElement, Insert

from ...errors import LucidError, QueryError
from ..events import DEBUG, enabled
from ..executor import (
    LRU,
    Compiled,
    bind_processor,
    compile_returning,
    compile_sorted_insert,
    connection_lost,
    raw_connection,
    returned_rows,
    with_sql,
)
from .base import (
    AdvisoryLock,
    Dialect,
    EngineSetup,
    Key,
    Merge,
    Rows,
    inserted_columns,
    joined_update,
    merge_set,
    named_table,
    truncate_statement,
    update_from,
)
from .json import MysqlJson
from .shapes import RowsShape, bind_values, compile_update_rows

if TYPE_CHECKING:
    from ...query.client import Client
    from ..connection import Connection
    from ..transaction import TransactionClient

# Compiled statement shapes kept per kind (INSERT, bulk UPDATE, upsert).
_SHAPE_CACHE_SIZE = 256
# Sessions run in UTC: datetimes travel as UTC, and CURRENT_TIMESTAMP (``schema.now()``, the
# ``timestamps()`` defaults) must give UTC too.
_UTC_SESSION = "SET time_zone = '+00:00'"
_SETS_TIME_ZONE = re.compile(r"\btime_zone\b", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class _InsertShape:
    """A one-row ``INSERT … VALUES (%s, …) RETURNING key, key`` compiled by SQLAlchemy as its
    "insertmanyvalues" sends it (the key returned twice: the second is the sentinel the rows
    are sorted on), cut around its VALUES group so that a batch repeats the group;
    ``order``: the columns in parameter order, ``processors``: their bind processors."""

    head: str
    group: str
    tail: str
    order: list[str]
    processors: list[Callable[[Any], Any] | None]

    def sql(self, rows: int) -> str:
        return self.head + ", ".join([self.group] * rows) + self.tail


@dataclass(frozen=True, slots=True)
class _RowsShape:
    """A statement whose only parameter is its rows as one JSON text (``JSON_TABLE``),
    compiled once; ``result``: its returned columns' keys and result processors (``None``:
    it returns no rows)."""

    sql: str
    result: Compiled | None


class MysqlDialect(Dialect):
    """MySQL and MariaDB through asyncmy. Key lists stay plain: the driver interpolates them
    into the SQL text client-side, so the only limit is ``max_allowed_packet``."""

    name = "mysql"
    json = MysqlJson()
    default_port = 3306
    # Constraint errors that SQLAlchemy files under OperationalError: a NOT NULL column
    # without a default (1364), NULL into NOT NULL (1048), duplicates and foreign keys.
    integrity_error_codes = frozenset({1048, 1062, 1169, 1216, 1217, 1364, 1451, 1452, 1557, 4025})
    # A deadlock victim, also Galera's certification failure at COMMIT (1213); a row changed
    # since the snapshot read it (1020, MariaDB's innodb_snapshot_isolation).
    conflict_error_codes = frozenset({1213, 1020})
    # A read may write too (a stored function in a SELECT): COMMIT ends its implicit
    # transaction instead of the rollback on close.
    commit_after_read = True
    # A discarded connection's server thread is KILLed so its locks go at once.
    kill_on_discard = True
    # An unbuffered cursor must be read to its end before the next statement (a transaction's
    # stream is drained first: ``TransactionClient.stream``).
    interleaved_cursors = False

    def __init__(self) -> None:
        # (SQLAlchemy dialect, table, columns, key) -> the multi-row INSERT's shape (None:
        # SQLAlchemy does not sort the returned rows on the key, its path runs)
        self._inserts: LRU[_InsertShape | None] = LRU(_SHAPE_CACHE_SIZE)
        # (SQLAlchemy dialect, table, key, columns) -> MariaDB's bulk UPDATE (None: not cut)
        self._update_rows: LRU[RowsShape | None] = LRU(_SHAPE_CACHE_SIZE)
        # (SQLAlchemy dialect, table, key, JSON_TABLE columns) -> MySQL's bulk UPDATE
        self._updates: LRU[_RowsShape] = LRU(_SHAPE_CACHE_SIZE)
        # (SQLAlchemy dialect, table, JSON_TABLE columns, conflict, merge, returned) -> upsert
        self._upserts: LRU[_RowsShape] = LRU(_SHAPE_CACHE_SIZE)

    def engine_options(self, setup: EngineSetup) -> None:
        # The session's time zone is set by the driver's ``init_command`` (no round trip of
        # its own), or after the user's own command when there is one (``install_events``).
        setup.connect_args.setdefault("init_command", _UTC_SESSION)
        # The pool's rollback on check-in runs in the "reset" listener of install_events
        # instead, which skips it after a committed transaction.
        setup.kwargs["pool_reset_on_return"] = None

    def install_events(self, engine: SyncEngine, cfg: Mapping[str, Any], memory: bool) -> None:
        """The pool's reset on check-in (``pool_reset_on_return=None`` in ``engine_options``):
        SQLAlchemy's default rollback, skipped only for the check-in that follows a successful
        COMMIT (``query_client.mark_committed``: a root transaction's, or a statement's outside
        transactions): the connection holds no transaction, and its ROLLBACK would be a round
        trip for nothing.
        Every other check-in rolls back as SQLAlchemy's would: a failed or rolled back
        transaction, the REPEATABLE READ snapshot of a read on the driver connection
        (SQLAlchemy's connections do not autocommit, below). The lean path's check-ins skip
        it (``executor.checkin``: in autocommit no transaction is left), but a failed lean
        read's. A ``pool_reset_on_return`` of the connection's ``engine_options`` is left to
        SQLAlchemy (the checkout listener below is installed all the same).

        A pool "checkout" listener switches autocommit off before SQLAlchemy uses a
        connection the lean path switched on and returned so (``executor.checkin``): its
        transactions are implicit, they rely on it being off (a connection configured to
        autocommit is left as it is). The lean path's own checkouts
        (``executor.lean_checkout``) keep it on. A connection dropped meanwhile raises
        ``DisconnectionError``: the pool replaces it and retries, as a pre-ping would; any
        other error invalidates it and raises, as any failed checkout does.

        A ``connect_args`` ``init_command`` of the user's replaces the driver's one that sets
        the session to UTC: a "connect" listener then sets it, unless that command names
        ``time_zone`` itself (the user's choice)."""
        from ..executor import AUTOCOMMIT_SET, lean_checkout
        from ..query_client import COMMITTED

        dialect = engine.dialect

        command = (cfg.get("connect_args") or {}).get("init_command")
        if command is not None and not _SETS_TIME_ZONE.search(str(command)):
            # A user's ``init_command`` takes the driver's place of lucid_orm's (it has one
            # statement): the session is set to UTC right after it, on every new connection,
            # unless the command sets a time zone itself.
            @event.listens_for(engine, "connect")
            def _utc_session(dbapi_conn: Any, record: Any) -> None:
                cursor = dbapi_conn.cursor()
                try:
                    cursor.execute(_UTC_SESSION)
                finally:
                    cursor.close()

        @event.listens_for(engine, "checkout")
        def _autocommit_off(dbapi_conn: Any, record: Any, proxy: Any) -> None:
            # Only a connection the lean path switched (its mark, which the pool clears when
            # it replaces the connection): one in autocommit by configuration stays so. (The
            # driver's flag: the server's status in the connection's last reply.)
            if lean_checkout.get() or not record.info.pop(AUTOCOMMIT_SET, False):
                return
            if not dbapi_conn.get_autocommit():
                return
            try:
                dbapi_conn.autocommit(False)
            except Exception as exc:
                if self.is_disconnect(exc, None, dialect):
                    raise sa.exc.DisconnectionError(str(exc)) from exc
                raise

        if "pool_reset_on_return" in (cfg.get("engine_options") or {}):
            return

        @event.listens_for(engine, "reset")
        def _rollback_unless_committed(dbapi_conn: Any, record: Any, state: Any) -> None:
            # Popped whatever happens next, so a mark never outlives its check-in.
            committed = record is not None and record.info.pop(COMMITTED, False)
            # As SQLAlchemy's reset_rollback (_ConnectionFairy._reset): no I/O outside the
            # event loop (a garbage-collected connection), nothing when Connection.close
            # already rolled back.
            if committed or not state.asyncio_safe or state.transaction_was_reset:
                return
            dialect.do_rollback(dbapi_conn)

    def is_disconnect(self, exc: BaseException, driver: Any, dialect: SADialect) -> bool:
        if isinstance(exc, OSError):
            return True
        check: Any = dialect.is_disconnect
        try:
            return bool(check(exc, None, None))
        except (IndexError, TypeError):
            return False

    def advisory_lock(self, name: str, database: str | None) -> AdvisoryLock:
        """``GET_LOCK`` of ``"prefix:rest"`` as ``"prefix:database:rest"`` (lock names are
        server-wide), hashed past MySQL's 64 characters."""
        prefix, rest = name.split(":", 1) if ":" in name else ("lucid_orm", name)
        full = f"{prefix}:{database}:{rest}"
        if len(full) > 64:
            full = f"{prefix}:{hashlib.sha1(full.encode()).hexdigest()}"
        return AdvisoryLock(
            sa.select(sa.func.get_lock(full, 0)),
            sa.select(sa.func.release_lock(full)),
            f"GET_LOCK('{full}')",
            sa.select(sa.func.is_used_lock(full)),
            # The driver interpolates the id client-side: KILL takes no server-side parameter.
            lambda session: sa.text("KILL :session").bindparams(session=int(session)),
        )

    def bulk_update_statement(
        self, table: sa.TableClause, key: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> sa.Update:
        return joined_update(table, key, columns, rows)

    def bulk_update_bound(
        self,
        table: sa.TableClause,
        key: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        dialect: SADialect,
    ) -> sa.Update | None:
        """``UPDATE t, JSON_TABLE(%s, '$[*]' COLUMNS (id BIGINT PATH '$[0]', c LONGTEXT PATH
        '$[1]', …)) AS lucid_rows SET t.c = lucid_rows.c WHERE t.id = lucid_rows.id``: the rows
        as one JSON text (MariaDB 10.6+, MySQL 8). Each value goes through its column type's
        bind processor, then as the driver would write it into the SQL text: integers as
        numbers, naive datetimes and dates as their text, strings as strings; the server
        converts them to the column's type on assignment, with the errors of a plain value
        (too long, out of range). An integer key only (a text key would compare under the
        JSON column's collation); any other value (floats, decimals, bytes, booleans, aware
        datetimes) keeps the chunked statement (``None``)."""
        packed = _update_rows(table, key, columns, rows, dialect)
        if packed is None:
            return None
        text, spec = packed
        return update_from(table, key, columns, _JsonRows("lucid_rows", _rows_param(text), spec))

    async def bulk_update_fast(
        self,
        trx: TransactionClient,
        table: sa.TableClause,
        key: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        model: str | None,
    ) -> int | None:
        """The bulk UPDATE on the transaction's driver connection, the matched row count read
        from the driver (SQLAlchemy connects with ``FOUND_ROWS``: the twin's count). MariaDB:
        ``UPDATE t, (SELECT %s AS id, %s AS c UNION ALL VALUES (%s, %s), …) AS lucid_rows SET
        …`` (``bulk_update_statement``'s join, its rows a table value constructor), compiled
        once per (table, key, columns) and kept, each column's bind processor applied once per
        value, the driver writing each value into the SQL text as for any statement, at most
        30,000 values a statement; the server reads those rows faster than it
        reads them out of one JSON text, and takes any value. MySQL 8: ``bulk_update_bound``'s
        statement, compiled once per (table, key, columns and their ``JSON_TABLE`` types).
        Errors and query events are those of every other statement; ``None`` (the twin runs:
        ``bulk_update_bound`` or the chunked statement through SQLAlchemy) with the fast paths
        off (``LUCID_FAST_PATHS=0``) or, on MySQL, values ``bulk_update_bound`` does not
        bind."""
        from ..query_client import connection_of

        connection = connection_of(trx)
        if not rows or not connection.fast_reads:
            return None
        dialect = trx.dialect
        if _value_rows(dialect):
            shape = self._compiled_update_rows(dialect, table, key, columns)
            if shape is not None:
                return await _update_rows_on_driver(trx, connection, shape, rows, model)
        packed = _update_rows(table, key, columns, rows, dialect)
        if packed is None:
            return None
        text, spec = packed
        shape_key = (dialect, table, key, tuple(spec))
        entry = self._updates.recent(shape_key)
        if entry is None:
            source = _JsonRows("lucid_rows", _rows_param(None), spec)
            stmt = update_from(table, key, columns, source)
            entry = self._updates.keep(shape_key, _RowsShape(_one_param_sql(stmt, dialect), None))
        _, count = await _on_driver(trx, connection, entry.sql, [text], model, False)
        return count

    def _compiled_update_rows(
        self, dialect: SADialect, table: sa.TableClause, key: str, columns: Sequence[str]
    ) -> RowsShape | None:
        """``compile_update_rows`` once per (dialect, table, key, columns), kept (LRU);
        ``None`` (kept too) when it could not be cut."""
        shape_key = (dialect, table, key, tuple(columns))
        cache = self._update_rows
        return cache.cached(shape_key, lambda: compile_update_rows(dialect, table, key, columns))

    def upsert_bound(
        self,
        table: sa.TableClause,
        rows: Rows,
        conflict: Sequence[str],
        merge: Sequence[str],
        dialect: SADialect,
    ) -> Any:
        """``INSERT INTO t (a, b) SELECT a, b FROM JSON_TABLE(%s, …) AS lucid_rows ON DUPLICATE
        KEY UPDATE …``: the rows as one JSON text, each value as ``bulk_update_bound`` sends it
        (``None`` for a value it does not carry). MariaDB only: MySQL 8 writes the update's
        incoming values with a row alias, which ``INSERT … SELECT`` does not take."""
        if not _json_upserts(dialect) or not rows or not conflict:
            return None
        names = list(rows[0])
        packed = _json_rows(table, names, [[r[n] for r in rows] for n in names], dialect)
        if packed is None:
            return None
        text, spec = packed
        return _json_upsert(table, names, _rows_param(text), spec, conflict, merge)

    def upserts_fast(self, client: Client) -> bool:
        from ..query_client import connection_of

        found: Any = client  # a QueryClient or a TransactionClient
        return bool(connection_of(found).fast_reads) and _json_upserts(client.dialect)

    async def upsert_fast(
        self,
        trx: Client,
        table: sa.TableClause,
        rows: Rows,
        conflict: Sequence[str],
        merge: Sequence[str],
        returning: Sequence[ColumnElement[Any]],
        model: str | None,
    ) -> tuple[list[str], list[Sequence[Any]]] | None:
        """``upsert_bound``'s statement ``RETURNING returning`` on the transaction's driver
        connection: compiled once per (table, columns and their ``JSON_TABLE`` types,
        conflict, merge, returned columns) and kept, the rows' one JSON text its only
        parameter, the returned rows through the columns' result processors. Errors and
        query events are those of every other statement; ``None`` (the twin runs) with the
        fast paths off (``LUCID_FAST_PATHS=0``) or values ``upsert_bound`` does not bind."""
        from ..query_client import connection_of
        from ..transaction import TransactionClient

        if not isinstance(trx, TransactionClient):
            return None  # ``writes_alone`` is false here: the caller opens a transaction
        connection = connection_of(trx)
        dialect = trx.dialect
        if not rows or not conflict or not connection.fast_reads or not _json_upserts(dialect):
            return None
        names = list(rows[0])
        packed = _json_rows(table, names, [[r[n] for r in rows] for n in names], dialect)
        if packed is None:
            return None
        text, spec = packed
        shape_key = (dialect, table, tuple(spec), tuple(conflict), tuple(merge), *returning)
        shape = self._upserts.recent(shape_key)
        if shape is None:
            stmt = _json_upsert(table, names, _rows_param(None), spec, conflict, merge)
            stmt = stmt.returning(*returning)
            entry = compile_returning(stmt, dialect)
            shape = self._upserts.keep(shape_key, _RowsShape(_one_param_sql(stmt, dialect), entry))
        assert shape.result is not None
        fetched, _ = await _on_driver(trx, connection, shape.sql, [text], model, True)
        return list(shape.result.keys), list(returned_rows(shape.result, fetched))

    # -- multi-row INSERT ----------------------------------------------------------------------
    async def insert_many_returning(
        self,
        trx: TransactionClient,
        table: sa.TableClause,
        params: Rows,
        key: Key,
        model: str | None,
    ) -> list[Any]:
        """Fast path of SQLAlchemy's "insertmanyvalues" (its twin, ``LUCID_FAST_PATHS=0``):
        the same multi-row ``INSERT … VALUES … RETURNING`` statements, compiled once per
        (table, columns, key) and kept, run on the transaction's driver connection, the values
        one flat list with each column's bind processor applied once per value, as many rows a
        statement as SQLAlchemy sends, each statement's returned rows sorted on the key as
        SQLAlchemy sorts them (the database counts an autoincrement key up through the rows of
        one statement). Errors and query events are those of every other statement. Where
        SQLAlchemy orders the rows otherwise (no ``RETURNING``; a key that is not the table's
        autoincrement column) its own path runs."""
        from ..query_client import connection_of

        connection = connection_of(trx)
        columns = list(params[0]) if params else []
        dialect = trx.dialect
        shape = None
        if connection.fast_reads and columns and dialect.insert_returning:
            shape = self._compiled_insert(dialect, table, columns, key)
        if shape is None:
            return await super().insert_many_returning(trx, table, params, key, model)
        order = shape.order
        width = len(order)
        page = dialect.insertmanyvalues_page_size
        per_statement = max(1, min(page, dialect.insertmanyvalues_max_parameters // width))
        out: list[Any] = []
        for start in range(0, len(params), per_statement):
            chunk = params[start : start + per_statement]
            if order == columns:
                # The rows set the same columns in the same order (the caller's batches).
                values = [value for row in chunk for value in row.values()]
            else:
                values = [row[c] for row in chunk for c in order]
            sql = shape.sql(len(chunk))
            bind_values(shape.processors, values, width, sql)
            fetched, _ = await _on_driver(trx, connection, sql, values, model, True)
            # Rows of (key, sentinel): SQLAlchemy's sort on its "implicit sentinel".
            fetched.sort(key=_last)
            out.extend((row[0],) for row in fetched)
        return out

    def _compiled_insert(
        self, dialect: SADialect, table: sa.TableClause, columns: list[str], key: Key
    ) -> _InsertShape | None:
        """The statement SQLAlchemy's "insertmanyvalues" sends for rows of ``columns``
        returning ``key``, compiled once per (dialect, table, columns, key) and kept (LRU);
        ``None`` (kept too) when SQLAlchemy does not sort the returned rows on the key."""
        shape_key = (dialect, table, tuple(columns), key.name)
        cache = self._inserts

        def make() -> _InsertShape | None:
            values: dict[str, Any] = {c: sa.bindparam(c) for c in columns}
            stmt = sa.insert(table).values(values)
            stmt = stmt.returning(table.c[key.name], sort_by_parameter_order=True)
            cut = compile_sorted_insert(stmt, dialect)
            shape = None
            if cut is not None:
                head, group, tail, order = cut
                processors = [bind_processor(table.c[c].type, dialect) for c in order]
                shape = _InsertShape(head, group, tail, order, processors)
            return shape

        return cache.cached(shape_key, make)

    def bulk_update_parameters(self, columns: int) -> int:
        return max(1, min(1000, 30000 // (columns + 1)))

    def insert_for(self, table: sa.TableClause) -> Any:
        return mysql.insert(table)

    def upsert_statement(
        self,
        table: sa.TableClause,
        values: Rows | Mapping[str, Any],
        conflict: Sequence[str],
        merge: Merge | None,
        ignore: bool = False,
    ) -> Insert:
        """``ON DUPLICATE KEY UPDATE c = VALUES(c)``. MySQL has no conflict target: a duplicate
        of *any* unique key (the primary key too) takes the update. ``ignore`` is the no-op
        update ``ON DUPLICATE KEY UPDATE k = k`` rather than ``INSERT IGNORE``, which would also
        turn NOT NULL, foreign-key, truncation and bad-value errors into warnings."""
        stmt = mysql.insert(table).values(values)
        inserted = inserted_columns(values)
        if ignore:
            first = (list(conflict) or inserted)[0]
            return stmt.on_duplicate_key_update({first: table.c[first]})
        if not conflict:
            raise LucidError(
                "on_conflict().merge() needs the conflict columns (a unique index): "
                'on_conflict("email").merge()',
                code="E_INVALID_ARGUMENT",
            )
        sets = merge_set(merge, inserted, conflict, lambda name: stmt.inserted[name])
        if not sets:
            sets = {conflict[0]: table.c[conflict[0]]}
        return stmt.on_duplicate_key_update(sets)

    def is_unique_violation(self, exc: BaseException) -> bool:
        original = getattr(exc, "original", None)
        args: tuple[Any, ...] = getattr(original, "args", ())
        return bool(args) and args[0] in (1062, 1169, 1557)

    def is_deadlock(self, exc: BaseException) -> bool:
        original = getattr(exc, "original", None)
        args: tuple[Any, ...] = getattr(original, "args", ())
        return bool(args) and args[0] == 1213

    async def truncate(self, client: Client, table: str, cascade: bool = False) -> None:
        await client.execute(truncate_statement(named_table(table)), write=True)

    def drop_tables(self, conn: SyncConnection, names: list[str]) -> None:
        with _no_foreign_key_checks(conn):
            super().drop_tables(conn, names)

    def truncate_tables(self, conn: SyncConnection, tables: list[sa.Table]) -> None:
        with _no_foreign_key_checks(conn):
            super().truncate_tables(conn, tables)


# Integers a BIGINT column of JSON_TABLE holds.
_INT64 = (-(2**63), 2**63)
_NONE = type(None)
# The Python types of processed values a JSON_TABLE column carries (as text, but integers).
_CARRIED = frozenset({int, str, _dt.datetime, _dt.date, _NONE})
_DATES = frozenset({_dt.datetime, _dt.date})
# Values of one driver-level bulk UPDATE statement at most (the driver writes them into the
# SQL text: no parameter limit, only the server's max_allowed_packet).
_VALUES_PER_STATEMENT = 30_000
# JSON without the spaces after separators: less text for the driver to escape.
_COMPACT = (",", ":")
# The sentinel SQLAlchemy sorts a multi-row INSERT's returned rows on: the last column.
_last = operator.itemgetter(-1)


def _json_table(dialect: SADialect) -> bool:
    """Whether the server has ``JSON_TABLE`` (MariaDB 10.6, MySQL 8.0.4)."""
    version = dialect.server_version_info or ()
    if getattr(dialect, "is_mariadb", False):
        return tuple(version) >= (10, 6)
    return tuple(version) >= (8, 0, 4)


def _value_rows(dialect: SADialect) -> bool:
    """Whether the server takes ``SELECT … UNION ALL VALUES (…), …`` (MariaDB 10.3.3)."""
    version = tuple(dialect.server_version_info or ())
    return bool(getattr(dialect, "is_mariadb", False)) and version >= (10, 3, 3)


async def _update_rows_on_driver(
    trx: TransactionClient,
    connection: Connection,
    shape: RowsShape,
    rows: Sequence[Sequence[Any]],
    model: str | None,
) -> int:
    """Run ``shape`` over ``rows``, ``_VALUES_PER_STATEMENT`` values a statement at most; the
    rows matched."""
    width = len(shape.processors)
    per_statement = max(1, _VALUES_PER_STATEMENT // width)
    total = 0
    for start in range(0, len(rows), per_statement):
        chunk = rows[start : start + per_statement]
        sql = shape.sql(len(chunk))
        values = [value for row in chunk for value in row]
        bind_values(shape.processors, values, width, sql)
        _, count = await _on_driver(trx, connection, sql, values, model, False)
        total += count
    return total


def _json_upserts(dialect: SADialect) -> bool:
    """Whether upserts take their rows as one ``JSON_TABLE`` (``upsert_bound``): MariaDB."""
    return bool(getattr(dialect, "is_mariadb", False)) and _json_table(dialect)


def _json_rows(
    table: sa.TableClause,
    names: list[str],
    columns: Sequence[Sequence[Any]],
    dialect: SADialect,
) -> tuple[str, list[tuple[str, str]]] | None:
    """The values of ``columns`` (one sequence per name in ``names``) as one JSON array of
    rows and the ``JSON_TABLE`` columns that read it, each value through its column type's
    bind processor, then as the driver writes it into the SQL text: integers (64-bit) as
    numbers (a ``BIGINT`` column when the column holds nothing else), naive datetimes, dates
    and strings as text (``LONGTEXT``); the server converts them on assignment as it does a
    plain value. ``None`` for any other value (floats, decimals, bytes, booleans, aware
    datetimes). Checked per column, by the set of the values' types."""
    converted: list[Sequence[Any]] = []
    spec: list[tuple[str, str]] = []
    low, high = _INT64
    for name, values in zip(names, columns, strict=True):
        process = bind_processor(table.c[name].type, dialect)
        if process is not None:
            values = [None if v is None else process(v) for v in values]
        kinds = set(map(type, values))
        if not kinds <= _CARRIED:
            return None
        if int in kinds:
            ints = values if len(kinds) == 1 else [v for v in values if type(v) is int]
            if min(ints) < low or max(ints) >= high:
                return None
        if kinds & _DATES:
            if any(type(v) is _dt.datetime and v.tzinfo is not None for v in values):
                return None
            values = [
                v.isoformat(" ")
                if type(v) is _dt.datetime
                else v.isoformat()
                if type(v) is _dt.date
                else v
                for v in values
            ]
        spec.append((name, "BIGINT" if kinds <= {int, _NONE} else "LONGTEXT"))
        converted.append(values)
    return json.dumps(
        list(zip(*converted, strict=True)), ensure_ascii=False, separators=_COMPACT
    ), spec


def _update_rows(
    table: sa.TableClause,
    key: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    dialect: SADialect,
) -> tuple[str, list[tuple[str, str]]] | None:
    """``_json_rows`` of a bulk UPDATE's ``(key, *values)`` rows, or ``None`` where the
    server has no ``JSON_TABLE``, or the key is not an integer one (a text key would compare
    under the JSON column's collation)."""
    if not rows or not _json_table(dialect) or not isinstance(table.c[key].type, sa.Integer):
        return None
    packed = _json_rows(table, [key, *columns], list(zip(*rows, strict=True)), dialect)
    if packed is None or packed[1][0][1] != "BIGINT":
        return None
    return packed


def _rows_param(text: str | None) -> sa.BindParameter[Any]:
    """The parameter of the rows' JSON text (``None``: a placeholder, for a compiled shape)."""
    if text is None:
        return sa.bindparam("lucid_rows", type_=sa.Text())
    return sa.bindparam(None, text, type_=sa.Text(), unique=True)


def _json_upsert(
    table: sa.TableClause,
    names: list[str],
    rows: sa.BindParameter[Any],
    spec: list[tuple[str, str]],
    conflict: Sequence[str],
    merge: Sequence[str],
) -> Any:
    """``INSERT INTO t (names) SELECT … FROM JSON_TABLE(rows, …) ON DUPLICATE KEY UPDATE``."""
    source = _JsonRows("lucid_rows", rows, spec)
    stmt = mysql.insert(table).from_select(names, sa.select(*[source.c[n] for n in names]))
    sets = merge_set(list(merge), names, conflict, lambda name: stmt.inserted[name])
    if not sets:
        sets = {conflict[0]: table.c[conflict[0]]}
    return stmt.on_duplicate_key_update(sets)


def _one_param_sql(stmt: Any, dialect: SADialect) -> str:
    """The SQL of a statement whose one parameter is its rows' JSON text."""
    compiled = stmt.compile(dialect=dialect)
    assert list(getattr(compiled, "positiontup", None) or []) == ["lucid_rows"]
    return str(compiled.string)


async def _on_driver(
    trx: TransactionClient,
    connection: Connection,
    sql: str,
    values: list[Any],
    model: str | None,
    fetch: bool,
) -> tuple[list[Any], int]:
    """Run one statement on the transaction's asyncmy connection, as
    ``TransactionClient.execute`` runs one: ``(rows when fetch, rowcount)``, reported to the
    query listeners; a driver error mapped as SQLAlchemy's path maps it (and the transaction
    marked failed); a dropped connection invalidated with its pool's generation and raised
    as ``ConnectionLostError``; a cancellation leaving the transaction only able to roll
    back (the server may still run the statement)."""
    from ..transaction import begun, open_connection

    await begun(trx)  # a stream's cursor still open on the connection is drained first
    raw = await raw_connection(open_connection(trx))
    driver: Any = raw.driver_connection
    emitter = connection.emitter
    started = time.perf_counter()
    try:
        async with driver.cursor() as cursor:
            await cursor.execute(sql, values)
            rows: list[Any] = list(await cursor.fetchall()) if fetch else []
            count: int = cursor.rowcount
    except asyncio.CancelledError:
        trx._root._broken = True
        raise
    except Exception as exc:
        engines = connection.write_engines()
        if emitter.active or enabled(DEBUG):
            emitter.record(engines.endpoint, sql, values, started, model, True, exc)
        error: QueryError
        if engines.is_disconnect(exc, driver):
            # As SQLAlchemy's path: the connection and its pool's generation invalidated.
            await engines.invalidate(raw, exc)
            error = connection_lost(exc, sql, values, "transaction")
        else:
            error = _driver_error(exc, sql, values)
        trx._failed(error)
        raise error from exc
    if emitter.active or enabled(DEBUG):
        emitter.record(connection.write_engines().endpoint, sql, values, started, model, True)
    return rows, count


def _driver_error(exc: Exception, sql: str, values: list[Any]) -> QueryError:
    """A driver error of a fast-path statement as the error its SQLAlchemy twin raises
    (``query_client.wrap_error``): ``IntegrityError`` for constraint violations (the driver's
    ``IntegrityError``, or a code the dialects file as one), ``TransactionConflictError`` for
    deadlocks and conflicts, else ``QueryError``; a value the driver can't write into the SQL
    text as ``run_statement`` reports it."""
    from ..query_client import mapped_error
    from . import INTEGRITY_ERROR_CODES

    if isinstance(exc, TypeError | ValueError | ArithmeticError):
        message = with_sql(f"Cannot run the statement: {exc}", sql)
        return QueryError(message, sql=sql, original=exc)
    args: tuple[Any, ...] = getattr(exc, "args", ())
    code = args[0] if args else None
    integrity = any(c.__name__ == "IntegrityError" for c in type(exc).__mro__) or (
        isinstance(code, int) and code in INTEGRITY_ERROR_CODES
    )
    return mapped_error(exc, sql, values, integrity=integrity)


class _JsonRows(sa.TableClause):
    """``JSON_TABLE(%s, '$[*]' COLUMNS (name TYPE PATH '$[i]', …)) AS name`` in a FROM list:
    the rows of one JSON array of arrays as a table, ``rows`` the parameter of that text. Not
    in SQLAlchemy's statement cache (its SQL depends on ``spec``); the fast paths keep their
    compiled statements per shape instead."""

    inherit_cache = False

    def __init__(
        self, name: str, rows: sa.BindParameter[Any], columns: list[tuple[str, str]]
    ) -> None:
        super().__init__(name, *[sa.column(n) for n, _ in columns])
        self.rows = rows
        self.spec = columns


@compiles(_JsonRows)
def _compile_json_rows(element: _JsonRows, compiler: Any, asfrom: bool = False, **kw: Any) -> str:
    preparer = compiler.preparer
    name = preparer.quote(element.name)
    if not asfrom:
        return str(name)
    spec = ", ".join(
        f"{preparer.quote(n)} {kind} PATH '$[{i}]'" for i, (n, kind) in enumerate(element.spec)
    )
    rows = compiler.process(element.rows, **kw)
    return f"JSON_TABLE({rows}, '$[*]' COLUMNS ({spec})) AS {name}"


@contextlib.contextmanager
def _no_foreign_key_checks(conn: SyncConnection) -> Iterator[None]:
    conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS = 0")
    try:
        yield
    finally:
        conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS = 1")
