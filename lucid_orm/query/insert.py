"""``InsertQueryBuilder``: ``await db.table("users").insert({...})``, multi-row, ``returning``."""

from __future__ import annotations

from collections.abc import Generator, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Self

from sqlalchemy import insert, literal
from sqlalchemy.sql import ClauseElement, TableClause

from ..errors import LucidError
from .chainable import check_identifier, dml_value, shared_table, table_column
from .compile import foreign_table_error, to_query, to_sql
from .run_sync import RunSync

if TYPE_CHECKING:
    from .client import Client


class InsertQueryBuilder(RunSync):
    """Insert one or many rows. Awaiting runs it and returns the ``returning`` rows as dicts
    when ``returning(...)`` was called, else the number of inserted rows.

    ``await db.table("users").returning("id").insert({"email": "a@b.c"})``
    """

    def __init__(self, client: Client) -> None:
        self.client = client
        self._table: TableClause | None = None
        self._rows: list[Mapping[str, Any]] = []
        self._returning: list[str] = []

    def table(self, name: str) -> Self:
        """The table to insert into."""
        check_identifier(name, "table")
        self._table = shared_table(name)
        return self

    into = table

    def returning(self, *columns: str) -> Self:
        """Columns to return from the inserted rows (``RETURNING``; SQLite 3.35+,
        PostgreSQL, MariaDB 10.5+)."""
        for c in columns:
            check_identifier(c)
        self._returning.extend(columns)
        return self

    def insert(self, values: Mapping[str, Any]) -> Self:
        """One row."""
        if not isinstance(values, Mapping):
            raise LucidError(
                f"insert() expects a dict of column -> value, got {values!r}",
                code="E_INVALID_ARGUMENT",
            )
        self._rows = [values]
        return self

    def multi_insert(self, rows: Sequence[Mapping[str, Any]]) -> Self:
        """Several rows in one statement (rows with other keys go in their own statement)."""
        if isinstance(rows, str | bytes | Mapping) or not isinstance(rows, Iterable):
            raise LucidError(
                f"multi_insert() expects a list of dicts, got {rows!r}", code="E_INVALID_ARGUMENT"
            )
        rows = list(rows)
        if not all(isinstance(r, Mapping) for r in rows):
            raise LucidError("multi_insert() expects a list of dicts", code="E_INVALID_ARGUMENT")
        self._rows = rows
        return self

    def _statements(self, inline: bool = False) -> list[Any]:
        table = self._table
        if table is None:
            raise LucidError("insert needs a table: call table(name) first")
        if not self._rows:
            raise LucidError("Nothing to insert: call insert() or multi_insert() with rows")
        groups: list[tuple[tuple[str, ...], list[Mapping[str, Any]]]] = []
        for row in self._rows:
            keys = tuple(row)
            for key in keys:
                check_identifier(key)
            if groups and groups[-1][0] == keys:
                groups[-1][1].append(row)
            else:
                groups.append((keys, [row]))
        statements = []
        for keys, rows in groups:
            cols = [table_column(table, self._column_name(table, k)) for k in keys]
            values = [
                {c: _value(r[k], inline) for c, k in zip(cols, keys, strict=True)} for r in rows
            ]
            stmt = insert(table).values(values if len(values) > 1 else values[0])
            if self._returning:
                stmt = stmt.returning(
                    *[table_column(table, self._column_name(table, c)) for c in self._returning]
                )
            statements.append(stmt)
        return statements

    def _column_name(self, table: TableClause, key: str) -> str:
        """``key`` without its qualifier, which must name the table inserted into."""
        qualifier, _, name = key.rpartition(".")
        if qualifier and qualifier not in (table.name, table.fullname):
            raise foreign_table_error(
                [key], qualifier, [table.fullname], "an insert names the columns of its table"
            )
        return name

    def to_sql(self) -> tuple[str, list[Any]]:
        return to_sql(self._statements()[0], self.client.dialect)

    def to_query(self) -> str:
        return to_query(self._statements(inline=True)[0], self.client.dialect)

    async def exec(self) -> Any:
        statements = self._statements()
        if self._returning:
            out: list[dict[str, Any]] = []
            for stmt in statements:
                out.extend((await self.client.execute(stmt, write=True)).dicts())
            return out
        count = 0
        for stmt in statements:
            count += (await self.client.execute(stmt, write=True)).rowcount
        return count

    def __await__(self) -> Generator[Any, None, Any]:
        return self.exec().__await__()


def _value(value: Any, inline: bool = False) -> Any:
    if hasattr(value, "to_core") and callable(value.to_core):
        core = value.to_core()
        return core.scalar_subquery() if hasattr(core, "scalar_subquery") else core
    if inline and value is not None and not isinstance(value, ClauseElement):
        # The columns are untyped: type the value itself so that to_query() can render it.
        return literal(value)
    return dml_value(value)
