"""Lists of keys bound as one parameter, so ``IN`` takes any number of them.

A plain ``column IN (?, ?, …)`` binds one parameter per key, and the drivers cap a statement's
parameters (asyncpg 32,767; SQLite 32,766 in its default build). ``where_in``, ``find_many``,
the ``*_many`` upserts, the many_to_many writes and preloads therefore send their keys as:

- PostgreSQL: one array, ``column = ANY($1)`` (``column <> ALL($1)`` for ``NOT IN``), and
  ``(a, b) IN (SELECT * FROM unnest($1::t1[], $2::t2[]))`` for tuples;
- SQLite: one JSON text, ``column IN (SELECT value FROM json_each(?))``, and
  ``json_extract(value, '$[i]')`` over an array of arrays for tuples;
- MySQL/MariaDB: the plain list. The driver interpolates it into the SQL text client-side, so
  the only limit is the server's ``max_allowed_packet`` (16 MB by default on MariaDB 10.11,
  well over a million integer keys; 100,000 keys measured 0.8 s, no chunking needed).

Each form keeps ``IN``'s semantics: a ``NULL`` key matches nothing, and ``NOT IN`` of a list
that holds ``NULL`` matches nothing either.
"""

from __future__ import annotations

import datetime as _dt
import json
import sqlite3
import uuid
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

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
    literal,
    literal_column,
    select,
    tuple_,
)
from sqlalchemy.engine.interfaces import Dialect
from sqlalchemy.sql import ColumnElement
from sqlalchemy.types import ARRAY, NullType, TypeEngine, UserDefinedType

# json_each is built into SQLite from 3.38 (Python's sqlite3 may be older).
JSON_EACH = sqlite3.sqlite_version_info >= (3, 38, 0)

# Tuple keys on untyped columns (``db.from_``) keep the plain row-value list while it fits in
# one statement: there the server types each value from its column; the arrays of the
# one-parameter form need a type named from the Python values (asyncpg 32,767 parameters).
PLAIN_ROWS_UP_TO = 30_000

_INT64 = (-(2**63), 2**63)


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

    def bind_processor(self, dialect: Dialect) -> Any:
        inner = self.element.dialect_impl(dialect).bind_processor(dialect)
        if inner is None:
            return None

        def process(value: Any) -> Any:
            return [inner(v) if v is not None else None for v in value]

        return process


def json_keys(keys: Sequence[Any]) -> bool:
    """Keys that survive a JSON round trip as the same SQLite values (integers that fit in 64
    bits, strings, ``NULL``)."""
    low, high = _INT64
    for k in keys:
        kind = type(k)
        if kind is str or k is None:
            continue
        if kind is not int or not low <= k < high:
            return False
    return True


def _typed(column: Any) -> TypeEngine[Any] | None:
    type_ = getattr(column, "type", None)
    if type_ is None or isinstance(type_, NullType):
        return None
    return type_  # type: ignore[no-any-return]


def _sqlite_values(column: Any, keys: Sequence[Any], dialect: Dialect) -> list[Any] | None:
    """The keys as SQLite stores them (the column type's bind processor applied, so UUID,
    date and boolean keys compare as they are written), or ``None`` when they can't travel as
    JSON."""
    type_ = _typed(column)
    process = type_._cached_bind_processor(dialect) if type_ is not None else None
    values = list(keys) if process is None else [None if k is None else process(k) for k in keys]
    return values if json_keys(values) else None


def _json_param(values: list[Any]) -> Any:
    return bindparam(None, json.dumps(values), unique=True)


def keys_in(
    column: ColumnElement[Any], keys: list[Any], dialect: Dialect, negate: bool = False
) -> ColumnElement[Any]:
    """``column IN (keys)`` (``NOT IN`` with ``negate``) with the keys as one parameter on
    PostgreSQL and SQLite; see the module docstring. An empty list keeps SQLAlchemy's form."""
    name = dialect.name
    if keys:
        if name == "postgresql":
            array = bindparam(None, keys, type_=KeyArray(column.type), unique=True)
            clause: ColumnElement[Any] = column != all_(array) if negate else column == any_(array)
            return clause
        if name == "sqlite" and JSON_EACH:
            values = _sqlite_values(column, keys, dialect)
            if values is not None:
                sub = (
                    select(literal_column("value"))
                    .select_from(func.json_each(_json_param(values)))
                    .scalar_subquery()
                )
                return column.not_in(sub) if negate else column.in_(sub)
    return column.not_in(keys) if negate else column.in_(keys)


# Element types of the PostgreSQL arrays for tuple keys on untyped columns (``db.from_``).
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


def _pg_element_type(column: Any, values: list[Any]) -> TypeEngine[Any] | None:
    """The array element type for one column of tuple keys: the column's own type, else the
    one Python type of its values (``None``: mixed or unknown)."""
    typed = _typed(column)
    if typed is not None:
        return typed
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


def rows_in(
    columns: list[ColumnElement[Any]],
    rows: list[tuple[Any, ...]],
    dialect: Dialect,
    negate: bool = False,
) -> ColumnElement[Any]:
    """``(a, b) IN (rows)`` with one parameter per column (PostgreSQL, ``unnest`` of arrays)
    or one in all (SQLite, ``json_each`` over an array of arrays); the plain row-value list on
    MySQL, for an empty list, and where a column's values have no single type to bind."""
    target = tuple_(*columns)
    name = dialect.name
    width = len(columns)
    if rows and all(len(r) == width for r in rows):
        sub: Any = None
        if name == "postgresql" and (
            len(rows) * width > PLAIN_ROWS_UP_TO or all(_typed(c) is not None for c in columns)
        ):
            arrays: list[Any] = []
            for i, column in enumerate(columns):
                values = [r[i] for r in rows]
                element = _pg_element_type(column, values)
                if element is None:
                    break
                array = bindparam(None, values, type_=KeyArray(element), unique=True)
                arrays.append(cast(array, ARRAY(element)))
            else:
                sub = select(literal_column("*")).select_from(func.unnest(*arrays))
        elif name == "sqlite" and JSON_EACH:
            per_column = [
                _sqlite_values(column, [r[i] for r in rows], dialect)
                for i, column in enumerate(columns)
            ]
            if all(v is not None for v in per_column):
                packed = [list(r) for r in zip(*per_column, strict=True)]
                parts = [
                    func.json_extract(literal_column("value"), literal(f"$[{i}]"))
                    for i in range(width)
                ]
                sub = select(*parts).select_from(func.json_each(_json_param(packed)))
        if sub is not None:
            return target.not_in(sub) if negate else target.in_(sub)
    return target.not_in(rows) if negate else target.in_(rows)
