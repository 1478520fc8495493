"""Common table expressions and window functions (Knex's names), mixed into every builder.

``with_(alias, query, columns=None)`` records a ``WITH alias AS (…)``; ``with_recursive``,
``with_materialized`` and ``with_not_materialized`` are its variants. The body is a query
builder, a callback that builds one on a fresh ``db.from_``-style builder, a Core ``select``, a
``db.raw(...)`` fragment, or (recursive CTEs) a list ``[anchor, step]`` joined by ``UNION
ALL``. The CTE name is then a table name like any other: ``from_``, ``join``, ``where_in``
subqueries. Compiled with SQLAlchemy Core (``Select.cte()`` + ``add_cte``) at ``to_core()``
time, so CTEs of a subquery rise to the statement's ``WITH``.

``row_number(alias, order_by, partition_by=None)``, ``rank`` and ``dense_rank`` add a window
function to the SELECT list (``func.row_number().over(...)``); model queries put it in
``extras``. ``order_by`` is a column, a list of columns, or ``{"column", "order"}`` dicts.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self

from sqlalchemy import Select, column, func, text
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.selectable import CTE, SelectBase, TextualSelect

from ..errors import LucidError
from .raw import Raw

if TYPE_CHECKING:
    from .chainable import Chainable
    from .client import Client
    from .state import BuilderState

__all__ = ["CteMethods", "CteSpec", "RawSelect", "add_ctes"]

# SQLite reads MATERIALIZED / NOT MATERIALIZED from 3.35 on.
SQLITE_MATERIALIZED = sqlite3.sqlite_version_info >= (3, 35)


def _invalid(message: str) -> LucidError:
    return LucidError(message, code="E_INVALID_ARGUMENT")


class RawSelect(TextualSelect):
    """A ``db.raw(...)`` fragment as a SELECT with named columns, so it can be a CTE body."""

    __visit_name__ = "lucid_raw_select"
    inherit_cache = False

    def __init__(self, raw: Raw, columns: Sequence[str]) -> None:
        super().__init__(text(""), [column(c) for c in columns])
        self.raw = raw

    def get_children(self, **kw: Any) -> list[Any]:
        return [self.raw]


@compiles(RawSelect)
def _compile_raw_select(element: RawSelect, compiler: SQLCompiler, **kw: Any) -> str:
    kw.pop("asfrom", None)
    return compiler.process(element.raw, **kw)


@dataclass(slots=True, frozen=True)
class CteSpec:
    """One recorded CTE. ``body``: builders (copied when recorded), a ``Select`` or a
    ``Raw``; several bodies are the anchor and steps of a recursive CTE (``UNION ALL``)."""

    alias: str
    bodies: tuple[Any, ...]
    columns: tuple[str, ...] | None
    recursive: bool
    materialized: bool | None


def _select_of(body: Any, spec: CteSpec) -> SelectBase:
    from .chainable import Chainable

    if isinstance(body, Chainable):
        sel: SelectBase = body.to_core()
    elif isinstance(body, Raw):
        if spec.columns is None:
            raise _invalid(
                f'with_("{spec.alias}", db.raw(...)) needs the CTE\'s column names: '
                f'with_("{spec.alias}", db.raw(...), ["id", "name"])'
            )
        return RawSelect(body, spec.columns)
    else:
        sel = body
    return sel


def _relabel(sel: SelectBase, spec: CteSpec) -> SelectBase:
    """The anchor's columns named as ``spec.columns`` say."""
    if spec.columns is None:
        return sel
    if not isinstance(sel, Select):
        return sel
    current = list(sel.selected_columns)
    if len(current) != len(spec.columns) or any(getattr(c, "name", None) == "*" for c in current):
        raise _invalid(
            f'with_("{spec.alias}", ..., columns) names {len(spec.columns)} columns: the query '
            f"must select as many, by name (it selects {len(current)})"
        )
    return sel.with_only_columns(*(c.label(n) for c, n in zip(current, spec.columns, strict=True)))


def build_cte(spec: CteSpec) -> CTE:
    """The SQLAlchemy CTE of ``spec``."""
    anchor = _relabel(_select_of(spec.bodies[0], spec), spec)
    cte = anchor.cte(spec.alias, recursive=spec.recursive)
    for step in spec.bodies[1:]:
        cte = cte.union_all(_select_of(step, spec))
    if spec.materialized is not None:
        cte = cte.prefix_with("MATERIALIZED" if spec.materialized else "NOT MATERIALIZED")
    return cte


def add_ctes(stmt: Select[Any], specs: Sequence[CteSpec]) -> Select[Any]:
    """``stmt`` with ``specs`` in its WITH clause (in the order recorded: a CTE may read an
    earlier one)."""
    return stmt.add_cte(*(build_cte(spec) for spec in specs))


_WINDOW_FUNCTIONS: dict[str, Callable[[], Any]] = {
    "row_number": func.row_number,
    "rank": func.rank,
    "dense_rank": func.dense_rank,
}


class CteMethods:
    """``with_`` & co. and the window helpers of every query builder (mixed into
    ``Chainable``)."""

    if TYPE_CHECKING:
        client: Client
        state: BuilderState

        def _col(self, name: Any) -> ColumnElement[Any]: ...
        def _default_columns(self) -> list[ColumnElement[Any]]: ...
        def _subquery_builder(self) -> Chainable: ...

    # -- CTEs ----------------------------------------------------------------------------------
    def _with(
        self,
        method: str,
        alias: str,
        query: Any,
        columns: Sequence[str] | None,
        recursive: bool,
        materialized: bool | None,
    ) -> Self:
        from .chainable import Chainable, check_identifier, run_callback

        if not isinstance(alias, str) or "." in alias:
            raise _invalid(f"{method}() expects a CTE name, got {alias!r}")
        check_identifier(alias, "CTE")
        names: tuple[str, ...] | None = None
        if columns is not None:
            if isinstance(columns, str) or not all(isinstance(c, str) for c in columns):
                raise _invalid(f"{method}() expects a list of column names, got {columns!r}")
            names = tuple(check_identifier(c) for c in columns)
        parts = list(query) if isinstance(query, list | tuple) else [query]
        if not parts or (len(parts) > 1 and not recursive):
            raise _invalid(
                f"{method}() takes one query; a list [anchor, step] is for with_recursive()"
            )
        bodies: list[Any] = []
        for part in parts:
            if isinstance(part, Chainable):
                bodies.append(part.clone())
            elif isinstance(part, Raw | SelectBase):
                bodies.append(part)
            elif callable(part):
                sub = self._subquery_builder()
                sub.state.parent = None  # a CTE body is a query of its own, not correlated
                run_callback(part, method, sub)
                bodies.append(sub)
            else:
                raise _invalid(
                    f"{method}() expects a query builder, a callback, a select or db.raw(...), "
                    f"got {part!r}"
                )
        spec = CteSpec(alias, tuple(bodies), names, recursive, materialized)
        ctes = self.state.ctes
        self.state.ctes = [*(ctes or ()), spec]
        return self

    def with_(self, alias: str, query: Any, columns: Sequence[str] | None = None) -> Self:
        """``WITH alias AS (query)``: ``with_("top", lambda q: q.from_("posts").where("score",
        ">", 10))`` then ``from_("top")``. ``query``: a builder, a callback, a Core select or
        ``db.raw(...)`` (which needs ``columns``); ``columns`` names the CTE's columns."""
        return self._with("with_", alias, query, columns, False, None)

    def with_recursive(self, alias: str, query: Any, columns: Sequence[str] | None = None) -> Self:
        """``WITH RECURSIVE alias(columns) AS (…)``: ``query`` is ``db.raw(...)`` holding the
        whole ``anchor UNION ALL step`` (with ``columns``), or a list ``[anchor, step]`` of
        builders or callbacks, joined by ``UNION ALL`` (the step names ``alias`` as a table)."""
        return self._with("with_recursive", alias, query, columns, True, None)

    def _check_materialized(self, method: str) -> None:
        name = self.client.dialect_name
        if name == "postgresql" or (name == "sqlite" and SQLITE_MATERIALIZED):
            return
        raise LucidError(
            f"{method}() needs PostgreSQL (12+) or SQLite 3.35+: MySQL and MariaDB have no "
            "MATERIALIZED hint for CTEs (use with_())",
            code="E_NOT_SUPPORTED",
        )

    def with_materialized(
        self, alias: str, query: Any, columns: Sequence[str] | None = None
    ) -> Self:
        """``WITH alias AS MATERIALIZED (…)`` (PostgreSQL, SQLite 3.35+; ``E_NOT_SUPPORTED``
        on MySQL/MariaDB): the CTE is computed once rather than inlined."""
        self._check_materialized("with_materialized")
        return self._with("with_materialized", alias, query, columns, False, True)

    def with_not_materialized(
        self, alias: str, query: Any, columns: Sequence[str] | None = None
    ) -> Self:
        """``WITH alias AS NOT MATERIALIZED (…)``: the planner may inline the CTE."""
        self._check_materialized("with_not_materialized")
        return self._with("with_not_materialized", alias, query, columns, False, False)

    # -- window functions ----------------------------------------------------------------------
    def _order_items(self, order_by: Any, method: str) -> list[ColumnElement[Any]]:
        items = order_by if isinstance(order_by, list | tuple) else [order_by]
        out: list[ColumnElement[Any]] = []
        for item in items:
            name, direction = item, "asc"
            if isinstance(item, Mapping):
                if "column" not in item:
                    raise _invalid(f"{method}() order dicts name their column, got {item!r}")
                name, direction = item["column"], str(item.get("order", "asc")).lower()
            if direction not in ("asc", "desc"):
                raise _invalid(f'Invalid order direction "{direction}": use "asc" or "desc"')
            col = self._col(name)
            out.append(col.desc() if direction == "desc" else col.asc())
        return out

    def _window(self, fn: str, alias: str, order_by: Any, partition_by: Any) -> Self:
        from .chainable import check_identifier

        check_identifier(alias, "alias")
        if "." in alias:
            raise _invalid(f"{fn}() expects an alias without a dot, got {alias!r}")
        order = self._order_items(order_by, fn) if order_by is not None else None
        partition = None
        if partition_by is not None:
            names = partition_by if isinstance(partition_by, list | tuple) else [partition_by]
            partition = [self._col(n) for n in names]
        expr = _WINDOW_FUNCTIONS[fn]().over(order_by=order, partition_by=partition)
        columns = self.state.columns
        if not columns:
            columns.extend(self._default_columns())
        columns.append(expr.label(alias))
        return self

    def row_number(self, alias: str, order_by: Any, partition_by: Any = None) -> Self:
        """Select ``ROW_NUMBER() OVER (PARTITION BY … ORDER BY …) AS alias`` (Knex's
        ``rowNumber``): ``row_number("rank_in_user", {"column": "score", "order": "desc"},
        "user_id")``. Model queries put the value in ``extras``."""
        return self._window("row_number", alias, order_by, partition_by)

    def rank(self, alias: str, order_by: Any, partition_by: Any = None) -> Self:
        """Select ``RANK() OVER (…) AS alias``: ties share a rank, gaps follow."""
        return self._window("rank", alias, order_by, partition_by)

    def dense_rank(self, alias: str, order_by: Any, partition_by: Any = None) -> Self:
        """Select ``DENSE_RANK() OVER (…) AS alias``: ties share a rank, no gaps."""
        return self._window("dense_rank", alias, order_by, partition_by)
