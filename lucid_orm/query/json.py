"""Conditions on JSON columns (Knex's names) and ``json_extract`` for the SELECT list.

``where_json_object(column, value)`` (equal), ``where_json_superset_of`` (``column ⊇ value``),
``where_json_subset_of`` (``column ⊆ value``), each with ``or_``/``not`` forms, and
``where_json_path(column, "$.a.b", operator, value)``. Semantics are PostgreSQL's ``jsonb``
ones on every database (see database/dialects/json.py, which builds the expressions).
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any, Self

from sqlalchemy import not_
from sqlalchemy.sql import ColumnElement

from ..database.dialects.json import EQUALITY_OPS, ORDERED_OPS, JsonOps, json_text
from ..errors import LucidError

if TYPE_CHECKING:
    from .client import Client

_MISSING: Any = object()


def _invalid(message: str) -> LucidError:
    return LucidError(message, code="E_INVALID_ARGUMENT")


def _check_value(value: Any, method: str) -> Any:
    try:
        json_text(value)
    except (TypeError, ValueError) as exc:
        raise _invalid(
            f"{method}() expects a JSON value (dict, list, str, number, bool or None), "
            f"got {value!r}: {exc}"
        ) from None
    return value


def _check_path(path: Any, method: str) -> str:
    if not isinstance(path, str) or not path.startswith("$"):
        raise _invalid(
            f'{method}() expects a JSON path starting with "$" (e.g. "$.a.b[0]"), got {path!r}'
        )
    return path


class JsonExtract:
    """``json_extract(column, path)``: the JSON value at ``path`` of ``column`` in a SELECT
    list, decoded when read (model queries put it in ``extras``). Name it with ``as_()``."""

    __slots__ = ("alias", "column", "path")

    def __init__(self, column: str, path: str, alias: str | None = None) -> None:
        self.column = column
        self.path = _check_path(path, "json_extract")
        self.alias = alias

    def as_(self, alias: str) -> JsonExtract:
        return JsonExtract(self.column, self.path, alias)

    def __repr__(self) -> str:
        return f"json_extract({self.column!r}, {self.path!r})"


def json_extract(column: str, path: str) -> JsonExtract:
    """The JSON value at ``path`` of ``column``, for ``select()``:
    ``query.select("id", json_extract("meta", "$.color").as_("color"))``."""
    return JsonExtract(column, path)


class JsonConditions:
    """The ``where_json_*`` methods of every query builder (mixed into ``Chainable``)."""

    if TYPE_CHECKING:
        client: Client

        def _col(self, name: Any) -> ColumnElement[Any]: ...
        def _add_where(self, is_or: bool, clause: ColumnElement[Any]) -> Self: ...

    def _json(self) -> JsonOps:
        return self.client.dialect_ops.json

    def _json_extract(self, item: JsonExtract) -> ColumnElement[Any]:
        value = self._json().path_value(self._col(item.column), item.path)
        return value.label(item.alias or item.path.lstrip("$.").replace(".", "_") or "json")

    def _json_equal(self, column: str, value: Any, method: str) -> ColumnElement[Any]:
        _check_value(value, method)
        return self._json().equals(self._col(column), value, self.client.dialect)

    def _json_superset(self, column: str, value: Any, method: str) -> ColumnElement[Any]:
        return self._json().contains(self._col(column), _check_value(value, method))

    def _json_subset(self, column: str, value: Any, method: str) -> ColumnElement[Any]:
        return self._json().contained_in(self._col(column), _check_value(value, method))

    # -- equality ----------------------------------------------------------------------------
    def where_json_object(self, column: str, value: Any) -> Self:
        """``column`` holds the JSON value ``value`` (objects compare without regard to key
        order): ``where_json_object("settings", {"theme": "dark", "beta": True})``."""
        return self._add_where(False, self._json_equal(column, value, "where_json_object"))

    def or_where_json_object(self, column: str, value: Any) -> Self:
        return self._add_where(True, self._json_equal(column, value, "or_where_json_object"))

    def where_not_json_object(self, column: str, value: Any) -> Self:
        clause = self._json_equal(column, value, "where_not_json_object")
        return self._add_where(False, not_(clause))

    def or_where_not_json_object(self, column: str, value: Any) -> Self:
        clause = self._json_equal(column, value, "or_where_not_json_object")
        return self._add_where(True, not_(clause))

    # -- a value at a path ---------------------------------------------------------------------
    def _json_path(
        self, column: str, path: str, operator: Any, value: Any, method: str
    ) -> ColumnElement[Any]:
        if value is _MISSING:
            operator, value = "=", operator
        _check_path(path, method)
        _check_value(value, method)
        if operator not in ORDERED_OPS:
            raise _invalid(
                f"{method}() operator must be one of {sorted(ORDERED_OPS)}, got {operator!r}"
            )
        ordered = isinstance(value, str | int | float | Decimal) and not isinstance(value, bool)
        if not ordered and operator not in EQUALITY_OPS:
            raise _invalid(f"{method}() compares {value!r} with =, != or <> only")
        return self._json().path_compare(
            self._col(column), path, operator, value, self.client.dialect
        )

    def where_json_path(self, column: str, path: str, operator: Any, value: Any = _MISSING) -> Self:
        """The value at JSON ``path`` compared with ``value``:
        ``where_json_path("meta", "$.address.city", "=", "Paris")``,
        ``where_json_path("meta", "$.score", ">", 10)`` (the operator may be left out for
        ``=``). A value matches only a stored value of its JSON type (``10`` never matches
        ``"10"``); ``None`` matches a JSON ``null`` (not an absent key)."""
        clause = self._json_path(column, path, operator, value, "where_json_path")
        return self._add_where(False, clause)

    def or_where_json_path(
        self, column: str, path: str, operator: Any, value: Any = _MISSING
    ) -> Self:
        clause = self._json_path(column, path, operator, value, "or_where_json_path")
        return self._add_where(True, clause)

    # -- containment ---------------------------------------------------------------------------
    def where_json_superset_of(self, column: str, value: Any) -> Self:
        """``column`` contains ``value``: every key of an object with a contained value, every
        array element in the stored array (PostgreSQL's ``@>``)."""
        clause = self._json_superset(column, value, "where_json_superset_of")
        return self._add_where(False, clause)

    def or_where_json_superset_of(self, column: str, value: Any) -> Self:
        clause = self._json_superset(column, value, "or_where_json_superset_of")
        return self._add_where(True, clause)

    def where_json_not_superset_of(self, column: str, value: Any) -> Self:
        clause = self._json_superset(column, value, "where_json_not_superset_of")
        return self._add_where(False, not_(clause))

    def or_where_json_not_superset_of(self, column: str, value: Any) -> Self:
        clause = self._json_superset(column, value, "or_where_json_not_superset_of")
        return self._add_where(True, not_(clause))

    def where_json_subset_of(self, column: str, value: Any) -> Self:
        """``value`` contains ``column`` (PostgreSQL's ``<@``)."""
        clause = self._json_subset(column, value, "where_json_subset_of")
        return self._add_where(False, clause)

    def or_where_json_subset_of(self, column: str, value: Any) -> Self:
        clause = self._json_subset(column, value, "or_where_json_subset_of")
        return self._add_where(True, clause)

    def where_json_not_subset_of(self, column: str, value: Any) -> Self:
        clause = self._json_subset(column, value, "where_json_not_subset_of")
        return self._add_where(False, not_(clause))

    def or_where_json_not_subset_of(self, column: str, value: Any) -> Self:
        clause = self._json_subset(column, value, "or_where_json_not_subset_of")
        return self._add_where(True, not_(clause))
