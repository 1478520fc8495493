"""What the driver-level bulk writes of SQLite and MySQL/MariaDB share: the bulk UPDATE's
statement shape (rows as ``SELECT ? AS a, ? AS b UNION ALL VALUES (?, ?), …``) and the bind
processors applied to a flat list of values."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine.interfaces import Dialect as SADialect
from sqlalchemy.sql import TableClause

from ..executor import bind_processor, refused
from .base import update_from


@dataclass(frozen=True, slots=True)
class RowsShape:
    """A statement over rows given as ``SELECT ? AS a, ? AS b``, compiled by SQLAlchemy:
    ``head`` ends with that first row, more rows follow as ``UNION ALL VALUES`` groups;
    ``processors``: each column's bind processor (``None``: the value goes as is)."""

    head: str
    group: str
    tail: str
    processors: list[Callable[[Any], Any] | None]

    def sql(self, rows: int) -> str:
        if rows == 1:
            return self.head + self.tail
        return self.head + " UNION ALL VALUES " + ", ".join([self.group] * (rows - 1)) + self.tail


def compile_update_rows(
    dialect: SADialect, table: TableClause, key: str, columns: Sequence[str]
) -> RowsShape | None:
    """The bulk UPDATE of ``columns`` keyed on ``key`` for one row, ``UPDATE t … FROM
    (SELECT ? AS id, ? AS c) AS lucid_rows WHERE t.id = lucid_rows.id`` (``update_from``;
    MySQL: ``UPDATE t, (…) AS lucid_rows SET …``), compiled from Core and cut around its row
    so that more rows follow as ``UNION ALL VALUES (?, ?), …``; each value bound with its
    column's type. ``None`` when the compiled form is not that (the caller takes another
    path)."""
    names = [key, *columns]
    row = sa.select(
        *[sa.bindparam(f"lucid_{i}", type_=table.c[n].type).label(n) for i, n in enumerate(names)]
    )
    stmt = update_from(table, key, columns, row.subquery("lucid_rows"))
    compiled = stmt.compile(dialect=dialect)
    one = str(row.compile(dialect=dialect))
    head, found, tail = compiled.string.partition(one)
    order = list(getattr(compiled, "positiontup", None) or [])
    if not found or order != [f"lucid_{i}" for i in range(len(names))] or one in tail:
        return None
    mark = str(sa.bindparam("lucid_mark").compile(dialect=dialect))
    processors = [bind_processor(table.c[n].type, dialect) for n in names]
    group = "(" + ", ".join([mark] * len(names)) + ")"
    return RowsShape(head + one, group, tail, processors)


def bind_values(
    processors: Sequence[Callable[[Any], Any] | None], values: list[Any], width: int, sql: str
) -> None:
    """Apply each column's bind processor to its values in ``values`` (one flat list, ``width``
    values a row), in place; a value a processor refuses is the ``QueryError`` SQLAlchemy's
    path gives (its ``StatementError``)."""
    try:
        for i, process in enumerate(processors):
            if process is not None:
                values[i::width] = map(process, values[i::width])
    except (TypeError, ValueError, ArithmeticError) as exc:
        raise refused(exc, sql, values) from exc
