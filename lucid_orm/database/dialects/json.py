"""JSON conditions and extraction per database: containment, equality, and a value at a JSON
path, as SQLAlchemy Core expressions (every value and path bound, never inlined).

The semantics are PostgreSQL's ``jsonb`` ones on every database: objects compare without
regard to key order, arrays in order; ``a ⊇ b`` (containment) holds when every key of an object
in ``b`` is in ``a`` with a contained value and every element of an array in ``b`` is contained
in some element of ``a``'s array. MySQL/MariaDB have them natively (``JSON_CONTAINS``,
``JSON_EQUALS``); SQLite has no such functions, so each SQLite connection gets two small ones
(``lucid_json_contains``, ``lucid_json_equal``) registered when it opens.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine.interfaces import Dialect as SADialect
from sqlalchemy.sql import ColumnElement

Expr = ColumnElement[Any]

# Comparison operators a JSON path condition takes, and those that make sense for values
# without an order (booleans, null, objects and arrays).
ORDERED_OPS = frozenset({"=", "!=", "<>", "<", "<=", ">", ">="})
EQUALITY_OPS = frozenset({"=", "!=", "<>"})


def json_text(value: Any) -> str:
    """``value`` as JSON text for a bound parameter (``ValueError`` if it is not JSON)."""
    return json.dumps(value, allow_nan=False, separators=(",", ":"), default=_no_default)


def _no_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def _bind(value: Any, type_: Any = None) -> Expr:
    return sa.bindparam(None, value, type_=type_ or sa.String(), unique=True)


def _kind(value: Any) -> str:
    """How a path condition compares ``value``: ``text``, ``number``, ``boolean``, ``null``
    or ``json`` (an object or array)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float | Decimal):
        return "number"
    if isinstance(value, str):
        return "text"
    return "json"


def _compare(left: Expr, op: str, right: Expr) -> Expr:
    return left.op("<>" if op == "!=" else op, is_comparison=True)(right)


class JsonOps:
    """The portable interface; each database's class below implements it."""

    def contains(self, target: Expr, candidate: Any) -> Expr:
        """``target ⊇ candidate`` (``candidate`` a Python JSON value)."""
        raise NotImplementedError

    def contained_in(self, target: Expr, candidate: Any) -> Expr:
        """``target ⊆ candidate``."""
        raise NotImplementedError

    def equals(self, target: Expr, candidate: Any, dialect: SADialect) -> Expr:
        """``target`` is the JSON value ``candidate``."""
        raise NotImplementedError

    def path_value(self, column: Expr, path: str) -> Expr:
        """The JSON value at ``path`` (decoded when read: a dict, list, str, number, bool or
        ``None``; ``None`` too when the path is absent)."""
        raise NotImplementedError

    def path_compare(
        self, column: Expr, path: str, op: str, value: Any, dialect: SADialect
    ) -> Expr:
        """The value at ``path`` ``op`` ``value``, true only for a stored value of the same
        JSON type (a number never equals a string)."""
        raise NotImplementedError


class PostgresqlJson(JsonOps):
    # SQLAlchemy's PostgreSQL types are imported when used: the dialect module costs ~40 ms
    # at start-up and loads only for a PostgreSQL connection.
    def _jsonb(self, expr: Expr) -> Expr:
        from sqlalchemy.dialects.postgresql import JSONB

        return sa.cast(expr, JSONB)

    def _candidate(self, value: Any) -> Expr:
        from sqlalchemy.dialects.postgresql import JSONB

        return sa.cast(_bind(json_text(value)), JSONB)

    def contains(self, target: Expr, candidate: Any) -> Expr:
        return self._jsonb(target).op("@>", is_comparison=True)(self._candidate(candidate))

    def contained_in(self, target: Expr, candidate: Any) -> Expr:
        return self._jsonb(target).op("<@", is_comparison=True)(self._candidate(candidate))

    def equals(self, target: Expr, candidate: Any, dialect: SADialect) -> Expr:
        return self._jsonb(target) == self._candidate(candidate)

    def _at(self, column: Expr, path: str) -> Expr:
        from sqlalchemy.dialects.postgresql import JSONPATH

        return sa.func.jsonb_path_query_first(self._jsonb(column), sa.cast(_bind(path), JSONPATH))

    def path_value(self, column: Expr, path: str) -> Expr:
        return sa.type_coerce(self._at(column, path), sa.JSON())

    def path_compare(
        self, column: Expr, path: str, op: str, value: Any, dialect: SADialect
    ) -> Expr:
        found = self._at(column, path)
        kind = _kind(value)
        if kind == "json" or kind == "boolean":
            return _compare(found, op, self._candidate(value))
        if kind == "null":
            return _compare(sa.func.jsonb_typeof(found), op, sa.literal_column("'null'"))
        # The scalar as text (``#>> '{}'``), compared when the stored type matches.
        text = found.op("#>>")(sa.literal_column("'{}'"))
        if kind == "number":
            typed = sa.case(
                (sa.func.jsonb_typeof(found) == "number", sa.cast(text, sa.Numeric())),
            )
            return _compare(typed, op, _bind(value, sa.Numeric()))
        typed = sa.case((sa.func.jsonb_typeof(found) == "string", text))
        return _compare(typed, op, _bind(value))


class MysqlJson(JsonOps):
    def contains(self, target: Expr, candidate: Any) -> Expr:
        return sa.func.json_contains(target, _bind(json_text(candidate))) == 1

    def contained_in(self, target: Expr, candidate: Any) -> Expr:
        return sa.func.json_contains(_bind(json_text(candidate)), target) == 1

    def _equal(self, left: Expr, right: Expr, dialect: SADialect) -> Expr:
        if getattr(dialect, "is_mariadb", False):
            return sa.func.json_equals(left, right) == 1
        return sa.cast(left, sa.JSON()) == sa.cast(right, sa.JSON())

    def equals(self, target: Expr, candidate: Any, dialect: SADialect) -> Expr:
        return self._equal(target, _bind(json_text(candidate)), dialect)

    def path_value(self, column: Expr, path: str) -> Expr:
        return sa.type_coerce(sa.func.json_extract(column, _bind(path)), sa.JSON())

    def path_compare(
        self, column: Expr, path: str, op: str, value: Any, dialect: SADialect
    ) -> Expr:
        found = sa.func.json_extract(column, _bind(path))
        kind = _kind(value)
        if kind == "json" or kind == "boolean":
            equal = self._equal(found, _bind(json_text(value)), dialect)
            return sa.not_(equal) if op != "=" else equal
        type_ = sa.func.json_type(found)
        if kind == "null":
            return _compare(type_, op, sa.literal_column("'NULL'"))
        if kind == "number":
            numeric = ("INTEGER", "UNSIGNED INTEGER", "DOUBLE", "DECIMAL")
            typed = sa.case((type_.in_(numeric), sa.func.json_value(column, _bind(path))))
            return _compare(sa.cast(typed, sa.Numeric(65, 30)), op, _bind(value, sa.Numeric()))
        typed = sa.case((type_ == "STRING", sa.func.json_unquote(found)))
        return _compare(typed, op, _bind(value))


class SqliteJson(JsonOps):
    def contains(self, target: Expr, candidate: Any) -> Expr:
        return sa.func.lucid_json_contains(target, _bind(json_text(candidate))) == 1

    def contained_in(self, target: Expr, candidate: Any) -> Expr:
        return sa.func.lucid_json_contains(_bind(json_text(candidate)), target) == 1

    def equals(self, target: Expr, candidate: Any, dialect: SADialect) -> Expr:
        return sa.func.lucid_json_equal(target, _bind(json_text(candidate))) == 1

    def path_value(self, column: Expr, path: str) -> Expr:
        # ``->`` returns JSON text for every kind of value (json_extract returns SQL values).
        return sa.type_coerce(column.op("->")(_bind(path)), sa.JSON())

    def path_compare(
        self, column: Expr, path: str, op: str, value: Any, dialect: SADialect
    ) -> Expr:
        kind = _kind(value)
        if kind == "json":
            equal = sa.func.lucid_json_equal(column.op("->")(_bind(path)), _bind(json_text(value)))
            return (equal == 1) if op == "=" else sa.func.coalesce(equal, 0) == 0
        type_ = sa.func.json_type(column, _bind(path))
        if kind == "null":
            return _compare(type_, op, sa.literal_column("'null'"))
        if kind == "boolean":
            return _compare(type_, op, sa.literal_column("'true'" if value else "'false'"))
        found = sa.func.json_extract(column, _bind(path))
        types = ("integer", "real") if kind == "number" else ("text",)
        typed = sa.case((type_.in_(types), found))
        bound = _bind(value, sa.Numeric() if kind == "number" else None)
        return _compare(typed, op, bound)


# -- SQLite's functions (registered on each connection by the SQLite dialect) ----------------------
def _scalar_equal(a: Any, b: Any) -> bool:
    # JSON true is not 1, nor "1" 1: compare within one JSON type.
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    a_number, b_number = isinstance(a, int | float), isinstance(b, int | float)
    if a_number or b_number:
        return a_number and b_number and a == b
    return bool(a == b)


def _equal(a: Any, b: Any) -> bool:
    if isinstance(b, dict):
        return isinstance(a, dict) and a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in b)
    if isinstance(b, list):
        return isinstance(a, list) and len(a) == len(b) and all(map(_equal, a, b))
    if isinstance(a, dict | list):
        return False
    return _scalar_equal(a, b)


def _contains(a: Any, b: Any) -> bool:
    if isinstance(b, dict):
        return isinstance(a, dict) and all(k in a and _contains(a[k], v) for k, v in b.items())
    if isinstance(b, list):
        return isinstance(a, list) and all(any(_contains(x, y) for x in a) for y in b)
    if isinstance(a, list):  # an array contains a scalar it holds (as PostgreSQL's @>)
        return any(_contains(x, b) for x in a)
    if isinstance(a, dict):
        return False
    return _scalar_equal(a, b)


def _decoded(a: Any, b: Any) -> tuple[Any, Any] | None:
    if a is None or b is None:
        return None
    try:
        return json.loads(a), json.loads(b)
    except (TypeError, ValueError):  # not JSON text: no match (NULL), not an error
        return None


def sqlite_json_contains(a: Any, b: Any) -> int | None:
    pair = _decoded(a, b)
    return None if pair is None else int(_contains(*pair))


def sqlite_json_equal(a: Any, b: Any) -> int | None:
    pair = _decoded(a, b)
    return None if pair is None else int(_equal(*pair))


def register_sqlite_functions(dbapi_conn: Any) -> None:
    """Add ``lucid_json_contains``/``lucid_json_equal`` to a SQLite connection."""
    dbapi_conn.create_function("lucid_json_contains", 2, sqlite_json_contains, deterministic=True)
    dbapi_conn.create_function("lucid_json_equal", 2, sqlite_json_equal, deterministic=True)
