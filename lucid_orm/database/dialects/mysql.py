"""MySQL/MariaDB: UTC sessions, constraint errors filed elsewhere by the driver, COMMIT after
reads, FOREIGN_KEY_CHECKS around whole-database chores."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Connection as SyncConnection
from sqlalchemy.engine.interfaces import Dialect as SADialect
from sqlalchemy.sql import Insert

from ...errors import LucidError
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


@contextlib.contextmanager
def _no_foreign_key_checks(conn: SyncConnection) -> Iterator[None]:
    conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS = 0")
    try:
        yield
    finally:
        conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS = 1")
