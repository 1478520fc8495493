"""MySQL/MariaDB: UTC sessions, constraint errors filed elsewhere by the driver, COMMIT after
reads, FOREIGN_KEY_CHECKS around whole-database chores."""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Connection as SyncConnection
from sqlalchemy.engine.interfaces import Dialect as SADialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import Insert

from ...errors import LucidError
from ..executor import bind_processor
from .base import (
    AdvisoryLock,
    Dialect,
    EngineSetup,
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

if TYPE_CHECKING:
    from ...query.client import Client


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
    # An unbuffered cursor must be read to its end before the next statement.
    interleaved_cursors = False

    def engine_options(self, setup: EngineSetup) -> None:
        setup.connect_args.setdefault("init_command", "SET time_zone = '+00:00'")

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
        if not _json_table(dialect) or not isinstance(table.c[key].type, sa.Integer):
            return None
        names = [key, *columns]
        source = _json_rows(
            table, names, [[r[i] for r in rows] for i in range(len(names))], dialect
        )
        if source is None or source.spec[0][1] != "BIGINT":
            return None
        return update_from(table, key, columns, source)

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
        mariadb = getattr(dialect, "is_mariadb", False)
        if not mariadb or not _json_table(dialect) or not rows or not conflict:
            return None
        names = list(rows[0])
        source = _json_rows(table, names, [[r[n] for r in rows] for n in names], dialect)
        if source is None:
            return None
        stmt = mysql.insert(table).from_select(names, sa.select(*[source.c[n] for n in names]))
        sets = merge_set(list(merge), names, conflict, lambda name: stmt.inserted[name])
        if not sets:
            sets = {conflict[0]: table.c[conflict[0]]}
        return stmt.on_duplicate_key_update(sets)

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


def _json_table(dialect: SADialect) -> bool:
    """Whether the server has ``JSON_TABLE`` (MariaDB 10.6, MySQL 8.0.4)."""
    version = dialect.server_version_info or ()
    if getattr(dialect, "is_mariadb", False):
        return tuple(version) >= (10, 6)
    return tuple(version) >= (8, 0, 4)


def _json_rows(
    table: sa.TableClause, names: list[str], columns: list[list[Any]], dialect: SADialect
) -> _JsonRows | None:
    """The values of ``columns`` (one list per name in ``names``) as a ``JSON_TABLE``, each
    through its column type's bind processor, then as the driver writes it into the SQL text:
    integers (64-bit) as numbers (a ``BIGINT`` column), naive datetimes, dates and strings as
    text (``LONGTEXT``); the server converts them on assignment as it does a plain value.
    ``None`` for any other value (floats, decimals, bytes, booleans, aware datetimes)."""
    packed: list[list[Any]] = [[] for _ in columns[0]] if columns else []
    kinds: list[str] = []
    low, high = _INT64
    for name, values in zip(names, columns, strict=True):
        process = bind_processor(table.c[name].type, dialect)
        numbers = True
        for value, out in zip(values, packed, strict=True):
            if value is not None and process is not None:
                value = process(value)
            kind = type(value)
            if value is None:
                pass
            elif kind is int:
                if not low <= value < high:
                    return None
            elif kind is str:
                numbers = False
            elif (kind is _dt.datetime and value.tzinfo is None) or kind is _dt.date:
                value = value.isoformat(" ") if kind is _dt.datetime else value.isoformat()
                numbers = False
            else:
                return None
            out.append(value)
        kinds.append("BIGINT" if numbers else "LONGTEXT")
    rows = json.dumps(packed, ensure_ascii=False)
    return _JsonRows("lucid_rows", rows, list(zip(names, kinds, strict=True)))


class _JsonRows(sa.TableClause):
    """``JSON_TABLE(%s, '$[*]' COLUMNS (name TYPE PATH '$[i]', …)) AS name`` in a FROM list:
    the rows of one JSON array of arrays as a table. Its SQL depends on the bound text, so it
    is not cached."""

    inherit_cache = False

    def __init__(self, name: str, rows: str, columns: list[tuple[str, str]]) -> None:
        super().__init__(name, *[sa.column(n) for n, _ in columns])
        self.rows = sa.bindparam(None, rows, type_=sa.Text(), unique=True)
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
