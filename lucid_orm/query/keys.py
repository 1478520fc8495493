"""Lists of keys bound as one parameter, so ``IN`` takes any number of them.

A plain ``column IN (?, ?, …)`` binds one parameter per key, and the drivers cap a statement's
parameters (asyncpg 32,767; SQLite 32,766 in its default build). ``where_in``, ``find_many``,
the ``*_many`` upserts, the many_to_many writes and preloads therefore send their keys in the
form their dialect chooses (``Dialect.bind_keys``/``bind_rows`` in ``database/dialects``):

- PostgreSQL: one array, ``column = ANY($1)`` (``column <> ALL($1)`` for ``NOT IN``), and
  ``(a, b) IN (SELECT * FROM unnest($1::t1[], $2::t2[]))`` for tuples;
- SQLite: one JSON text, ``column IN (SELECT value FROM json_each(?))``, and
  ``json_extract(value, '$[i]')`` over an array of arrays for tuples (a preload of a
  single key: the plain ``IN (?)``, cheaper there, ``Dialect.plain_single_key``);
- MySQL/MariaDB: the plain list. The driver interpolates it into the SQL text client-side, so
  the only limit is the server's ``max_allowed_packet`` (16 MB by default on MariaDB 10.11,
  well over a million integer keys; 100,000 keys measured 0.8 s, no chunking needed).

Each form keeps ``IN``'s semantics: a ``NULL`` key matches nothing, and ``NOT IN`` of a list
that holds ``NULL`` matches nothing either.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import tuple_
from sqlalchemy.engine.interfaces import Dialect
from sqlalchemy.sql import ColumnElement

from ..database.dialects import dialect_of


def keys_in(
    column: ColumnElement[Any], keys: list[Any], dialect: Dialect, negate: bool = False
) -> ColumnElement[Any]:
    """``column IN (keys)`` (``NOT IN`` with ``negate``) with the keys as one parameter on
    PostgreSQL and SQLite; see the module docstring. An empty list keeps SQLAlchemy's form."""
    return dialect_of(dialect).bind_keys(column, keys, dialect, negate)


def rows_in(
    columns: list[ColumnElement[Any]],
    rows: list[tuple[Any, ...]],
    dialect: Dialect,
    negate: bool = False,
) -> ColumnElement[Any]:
    """``(a, b) IN (rows)`` with one parameter per column (PostgreSQL, ``unnest`` of arrays)
    or one in all (SQLite, ``json_each`` over an array of arrays); the plain row-value list on
    MySQL, for an empty list, and where a column's values have no single type to bind."""
    width = len(columns)
    if rows and all(len(r) == width for r in rows):
        bound = dialect_of(dialect).bind_rows(columns, rows, dialect, negate)
        if bound is not None:
            return bound
    target = tuple_(*columns)
    return target.not_in(rows) if negate else target.in_(rows)
