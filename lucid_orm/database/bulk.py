"""Multi-row ``INSERT … RETURNING`` on SQLite, rendered here and run on the transaction's
driver connection.

SQLAlchemy's "insertmanyvalues" builds one parameter dict per row, processes it, and renders
the batch again on every call; for ``create_many`` of a thousand rows that bookkeeping costs
more than SQLite's own work. Here the statement is one string of ``(?, ?, …)`` groups, the
values one flat list with each column's bind processor applied once per value, and it takes
one trip to aiosqlite's thread. Errors and query events are those of every other statement.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy.sql import TableClause

from ..errors import IntegrityError, QueryError

if TYPE_CHECKING:
    from .transaction import TransactionClient

# RETURNING arrived in SQLite 3.35; the bound-parameter limit rose from 999 in 3.32.
RETURNING = sqlite3.sqlite_version_info >= (3, 35, 0)
_MAX_PARAMS = 32766 if sqlite3.sqlite_version_info >= (3, 32, 0) else 999


async def insert_returning(
    trx: TransactionClient,
    table: TableClause,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    returning: str,
    model: str | None,
) -> list[Any]:
    """Insert ``rows`` (values in ``columns`` order) into ``table`` inside ``trx``; the
    ``returning`` column of each inserted row, in the order SQLite hands them back."""
    trx._check_open()
    dialect = trx.dialect
    quote = dialect.identifier_preparer.quote
    width = len(columns)
    head = (
        f"INSERT INTO {dialect.identifier_preparer.format_table(table)} "
        f"({', '.join(quote(c) for c in columns)}) VALUES "
    )
    tail = f" RETURNING {quote(returning)}"
    group = "(" + ", ".join("?" * width) + ")"
    processors = [table.c[c].type._cached_bind_processor(dialect) for c in columns]
    raw = await trx._conn.get_raw_connection()
    driver: Any = raw.driver_connection
    per_statement = max(1, _MAX_PARAMS // max(width, 1))
    out: list[Any] = []
    for start in range(0, len(rows), per_statement):
        chunk = rows[start : start + per_statement]
        values = [value for row in chunk for value in row]
        for i, process in enumerate(processors):
            if process is not None:
                values[i::width] = map(process, values[i::width])
        sql = head + ", ".join([group] * len(chunk)) + tail
        started = time.perf_counter()
        try:
            out.extend(await driver.execute_fetchall(sql, values))
        except sqlite3.Error as exc:
            kind = IntegrityError if isinstance(exc, sqlite3.IntegrityError) else QueryError
            raise kind(
                str(exc).strip() or type(exc).__name__, sql=sql, bindings=values, original=exc
            ) from exc
        trx._connection.report(sql, values, started, model, in_transaction=True)
    return out
