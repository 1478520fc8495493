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
        # on_conflict(...): the conflict columns, then merge() or ignore() says what to do.
        self._conflict: tuple[str, ...] | None = None
        self._merge: Any = None
        self._ignore = False

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

    def on_conflict(self, *columns: str) -> OnConflict:
        """Knex's ``onConflict``: what to do when a row duplicates ``columns`` (the columns of
        a unique index), finished by ``.merge()`` or ``.ignore()``::

            await db.table("users").insert(row).on_conflict("email").merge()

        PostgreSQL and SQLite need a unique index on exactly ``columns``; MySQL/MariaDB have no
        conflict target and resolve a duplicate of any unique key."""
        for c in columns:
            check_identifier(c)
        self._conflict = columns
        return OnConflict(self)

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
            stmt = self._insert(table, values if len(values) > 1 else values[0])
            if self._returning:
                stmt = stmt.returning(
                    *[table_column(table, self._column_name(table, c)) for c in self._returning]
                )
            statements.append(stmt)
        return statements

    def _insert(self, table: TableClause, values: Any) -> Any:
        if self._conflict is None:
            return insert(table).values(values)
        if not (self._ignore or self._merge is not None):
            raise LucidError(
                "on_conflict() needs merge() or ignore() after it", code="E_INVALID_ARGUMENT"
            )
        conflict = [self._column_name(table, c) for c in self._conflict]
        for c in conflict:
            table_column(table, c)  # the index columns must exist on the TableClause
        merge = None if self._merge is True else self._merge
        if isinstance(merge, Mapping):
            merge = {
                table_column(table, self._column_name(table, check_identifier(k))): _value(v)
                for k, v in merge.items()
            }
        elif merge is not None:
            merge = [self._column_name(table, check_identifier(c)) for c in merge]
        return self.client.dialect_ops.upsert_statement(
            table, values, conflict, merge, ignore=self._ignore
        )

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


class OnConflict:
    """What ``on_conflict(*columns)`` returns: say ``merge()`` or ``ignore()``."""

    def __init__(self, builder: InsertQueryBuilder) -> None:
        self._builder = builder

    def merge(self, columns: Sequence[str] | Mapping[str, Any] | None = None) -> InsertQueryBuilder:
        """Update the existing row instead: ``None`` with every inserted column but the
        conflict columns, a list with those columns of the inserted row, a dict with its
        values (``PostgreSQL/SQLite: DO UPDATE SET c = excluded.c``; MySQL: ``ON DUPLICATE KEY
        UPDATE c = VALUES(c)``)."""
        if isinstance(columns, str):
            columns = [columns]
        self._builder._merge = True if columns is None else columns
        self._builder._ignore = False
        return self._builder

    def ignore(self) -> InsertQueryBuilder:
        """Keep the existing row and skip the duplicate (PostgreSQL/SQLite ``DO NOTHING``;
        MySQL ``ON DUPLICATE KEY UPDATE k = k``, which, unlike ``INSERT IGNORE``, still fails
        on NOT NULL, foreign-key and bad-value errors)."""
        self._builder._ignore = True
        self._builder._merge = None
        return self._builder


def _value(value: Any, inline: bool = False) -> Any:
    if hasattr(value, "to_core") and callable(value.to_core):
        core = value.to_core()
        return core.scalar_subquery() if hasattr(core, "scalar_subquery") else core
    if inline and value is not None and not isinstance(value, ClauseElement):
        # The columns are untyped: type the value itself so that to_query() can render it.
        return literal(value)
    return dml_value(value)
