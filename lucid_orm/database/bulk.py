"""Multi-row ``INSERT … RETURNING`` on SQLite, rendered here and run on the transaction's
driver connection.

SQLAlchemy's "insertmanyvalues" builds one parameter dict per row, processes it, and renders
the batch again on every call; for ``create_many`` of a thousand rows that bookkeeping costs
more than SQLite's own work. Here the statement is one string of ``(?, ?, …)`` groups, the
values one flat list with each column's bind processor applied once per value, and it takes
one trip to aiosqlite's thread. Errors and query events are those of every other statement.

SQLite doesn't say in which order ``RETURNING`` hands rows back, nor that generated keys
ascend: once a table holds rowid 2**63-1 it picks random free rowids. ``insert_keys`` has the
statement itself prove that the keys ascend with the rows (see ``_ordered_key``) and goes row
by row when they don't, so each row gets its own key in every case.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert
from sqlalchemy.sql import ColumnElement, TableClause

from ..errors import IntegrityError, QueryError

if TYPE_CHECKING:
    from .transaction import TransactionClient

# RETURNING arrived in SQLite 3.35; the bound-parameter limit rose from 999 in 3.32.
RETURNING = sqlite3.sqlite_version_info >= (3, 35, 0)
_MAX_PARAMS = 32766 if sqlite3.sqlite_version_info >= (3, 32, 0) else 999
# SQLite's answer to ``abs(-2**63)``: the statement's deliberate failure when a row's key
# can't be shown to follow the rows before it (``_ordered_key``).
_UNORDERED = "integer overflow"


def _ordered_key(quote: Any, table: str, key: str) -> str:
    """The ``RETURNING`` expression of ``insert_keys``: the row's key when it is the largest
    key of the table right after the row went in, else an error that undoes the statement.

    Why that proves the order: SQLite inserts the rows of a ``VALUES`` list one after
    another in list order and computes each row's ``RETURNING`` values right after inserting
    it (a correlated subquery there sees the rows inserted so far). A row whose key exceeds
    every key in the table at that moment exceeds the keys of all rows of the list before it;
    if that holds for every row, the keys ascend in list order and the sorted keys are the
    rows' keys in list order, whatever order ``RETURNING`` hands them back in. It holds
    whenever SQLite counts keys up (``max(rowid) + 1``, or past ``sqlite_sequence`` for
    AUTOINCREMENT tables, which fail with SQLITE_FULL rather than wrap); it fails once the
    table holds rowid 2**63-1 and SQLite picks random free rowids, for keys a default or a
    trigger makes, and for NULL keys. The check is fail-safe: were SQLite ever to compute
    ``RETURNING`` after all rows, only the last row would pass and every batch would take
    the row-by-row path. Cost: one index seek per row, no extra round trip.

    The failure is ``abs(-2**63)`` ("integer overflow"), a runtime error: SQLite rolls back
    the statement (only it; the transaction stays open) and ``insert_keys`` goes row by row.
    """
    alias = "lucid_later" if table != "lucid_later" else "lucid_later_"
    outer, inner = f"{quote(table)}.{quote(key)}", f"{quote(alias)}.{quote(key)}"
    return (
        f"CASE WHEN {outer} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {quote(table)} AS "
        f"{quote(alias)} WHERE {inner} > {outer}) THEN {outer} "
        "ELSE abs(-9223372036854775807 - 1) END"
    )


async def insert_keys(
    trx: TransactionClient,
    table: TableClause,
    params: Sequence[Mapping[str, Any]],
    key: ColumnElement[Any],
    model: str | None,
) -> list[Any]:
    """Insert ``params`` (dicts with the same keys, in the same order) into ``table`` inside
    ``trx``; one row ``(key,)`` per dict, in ``params`` order, with the generated integer
    ``key`` of that dict's row."""
    columns = list(params[0]) if params else []
    if not RETURNING or not columns:
        # No RETURNING before SQLite 3.35, and DEFAULT VALUES rows: SQLAlchemy's path, which
        # runs row by row on SQLite when asked for parameter order.
        stmt = insert(table).returning(key, sort_by_parameter_order=True)
        result = await trx.execute(stmt, write=True, model=model, params=params)
        return list(result.rows)
    rows = [tuple(p.values()) for p in params]
    trx._check_open()
    dialect = trx.dialect
    preparer = dialect.identifier_preparer
    quote = preparer.quote
    width = len(columns)
    head = (
        f"INSERT INTO {preparer.format_table(table)} "
        f"({', '.join(quote(c) for c in columns)}) VALUES "
    )
    ordered = f" RETURNING {_ordered_key(quote, table.name, key.name)}"
    group = "(" + ", ".join("?" * width) + ")"
    processors = [table.c[c].type._cached_bind_processor(dialect) for c in columns]
    raw = await trx._conn.get_raw_connection()
    driver: Any = raw.driver_connection

    async def run(sql: str, values: list[Any]) -> list[Any]:
        started = time.perf_counter()
        try:
            fetched: list[Any] = await driver.execute_fetchall(sql, values)
        except sqlite3.Error as exc:
            if str(exc) == _UNORDERED and sql.endswith(ordered):
                raise
            kind = IntegrityError if isinstance(exc, sqlite3.IntegrityError) else QueryError
            raise kind(
                str(exc).strip() or type(exc).__name__, sql=sql, bindings=values, original=exc
            ) from exc
        trx._connection.report(sql, values, started, model, in_transaction=True)
        return fetched

    per_statement = max(1, _MAX_PARAMS // width)
    out: list[Any] = []
    for start in range(0, len(rows), per_statement):
        chunk = rows[start : start + per_statement]
        values = [value for row in chunk for value in row]
        for i, process in enumerate(processors):
            if process is not None:
                values[i::width] = map(process, values[i::width])
        try:
            returned = await run(head + ", ".join([group] * len(chunk)) + ordered, values)
        except sqlite3.Error:
            # A key out of order: nothing of this chunk was written. One row per statement
            # ties each key to its row.
            single = head + group + f" RETURNING {quote(key.name)}"
            for i in range(0, len(values), width):
                out.extend(await run(single, values[i : i + width]))
        else:
            returned.sort()
            out.extend(returned)
    return out
