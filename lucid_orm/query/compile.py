"""Compilation helpers: ``to_sql()`` / ``to_query()``, the executable wrapper for raw SQL and
``CheckedSelect``, the builders' SELECT that refuses any table its query does not name."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from collections.abc import Set as AbstractSet
from itertools import chain
from typing import Any, cast

from sqlalchemy import Select
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine.interfaces import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import ClauseElement, Executable, FromClause, visitors
from sqlalchemy.sql.base import _expand_cloned
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnClause
from sqlalchemy.sql.selectable import SelectState

from ..errors import LucidError


class RawStatement(Executable, ClauseElement):
    """A raw fragment made executable (``db.raw_query``)."""

    __visit_name__ = "lucid_raw_statement"
    inherit_cache = False

    def __init__(self, element: ClauseElement) -> None:
        self.element = element

    def get_children(self, **kw: Any) -> list[Any]:
        return [self.element]


@compiles(RawStatement)
def _compile_raw_statement(element: RawStatement, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.element, **kw)


def textual(element: ClauseElement) -> RawStatement:
    return RawStatement(element)


class CheckedSelect(Select[Any]):
    """The SELECT every builder compiles to. SQLAlchemy adds a table that a column names but the
    FROM clause lacks to FROM on its own (``select("secrets.token")`` on ``users`` would read
    the secrets); compiling a ``CheckedSelect`` refuses such a table instead. Tables of an
    enclosing query that a subquery correlates to are its own. Checked once per compiled
    statement shape (compiled statements are cached), so reads pay nothing per query."""

    inherit_cache = True


@compiles(CheckedSelect)
def _compile_checked_select(element: CheckedSelect, compiler: SQLCompiler, **kw: Any) -> str:
    explicit: AbstractSet[FromClause] = frozenset()
    implicit: AbstractSet[FromClause] = frozenset()
    if compiler.stack:
        # The enclosing FROMs visit_select correlates to, so that both agree on the result.
        explicit, implicit = compiler._enclosing_correlate_froms(
            compiler.stack[-1], kw.get("asfrom", False), kw.get("lateral", False)
        )
    own = element._from_obj
    # The FROM list SQLAlchemy derives (SelectState._get_froms, without building the whole
    # compile state): the explicit FROMs plus every table a column or condition names…
    derived = SelectState._normalize_froms(
        chain(
            own,
            chain.from_iterable(c._from_objects for c in element._raw_columns),
            chain.from_iterable(c._from_objects for c in element._where_criteria),
        ),
        check_statement=element,
    )
    try:
        froms = SelectState._correlate_froms(
            derived,
            element,
            element._correlate,
            element._correlate_except,
            element._auto_correlate,
            cast(Sequence[FromClause], explicit),
            cast(Sequence[FromClause], implicit),
        )
    except sa_exc.InvalidRequestError as exc:  # every table correlated away
        raise LucidError(str(exc), code="E_INVALID_QUERY") from exc
    # …less those the query names itself or correlates to: anything else would be added.
    known = set(_expand_cloned(own))
    extra = [f for f in froms if f not in known]
    # ORDER BY, GROUP BY and HAVING add no FROM but would fail on the server, once sent.
    if element._order_by_clauses or element._group_by_clauses or element._having_criteria:
        known.update(_expand_cloned(chain.from_iterable(f._hide_froms for f in own)))
        known.update(_expand_cloned(explicit))
        extra.extend(
            f
            for c in chain(
                element._order_by_clauses, element._group_by_clauses, element._having_criteria
            )
            for f in c._from_objects
            if f not in known and f not in extra
        )
    if extra:
        raise foreign_table_error(
            _identifiers_of(element, extra), _names(extra)[0], _names([*own, *explicit])
        )
    visit: Callable[..., str] = compiler.visit_select
    return visit(element, **kw)


def foreign_table_error(
    identifiers: Sequence[str],
    table: str,
    tables: Iterable[str],
    hint: str = "join it first, or write your own SQL with db.raw()",
) -> LucidError:
    """``E_INVALID_IDENTIFIER`` for a qualified column whose table is not part of its query."""
    names = ", ".join(f'"{t}"' for t in dict.fromkeys(tables)) or "none"
    shown = ", ".join(f'"{i}"' for i in identifiers) or f'"{table}"'
    return LucidError(
        f'{shown} names table "{table}", which is not a table, alias or subquery of this query '
        f"(its tables: {names}): {hint}",
        code="E_INVALID_IDENTIFIER",
    )


def _names(froms: Iterable[Any]) -> list[str]:
    out: list[str] = []
    for item in froms:
        left, right = getattr(item, "left", None), getattr(item, "right", None)
        if left is not None:
            out.extend(_names([left]))
            if right is not None:
                out.extend(_names([right]))
            continue
        name = getattr(item, "name", None)
        if isinstance(name, str):
            out.append(name)
    return out


def _identifiers_of(element: ClauseElement, tables: Sequence[FromClause]) -> list[str]:
    """The qualified columns of ``element`` that name one of ``tables`` (for the message)."""
    found: dict[str, None] = {}
    for node in visitors.iterate(element):
        if isinstance(node, ColumnClause) and any(node.table is t for t in tables):
            found[f"{getattr(node.table, 'name', '?')}.{node.name}"] = None
    return list(found)


def to_sql(element: ClauseElement, dialect: Dialect) -> tuple[str, list[Any]]:
    """The SQL in the driver's paramstyle and the bindings as a list, in order."""
    compiled = element.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    params = compiled.params
    order: list[str] | None = getattr(compiled, "positiontup", None)
    if order is None:
        return str(compiled), list(params.values())
    sql, bindings = str(compiled), [params[name] for name in order]
    style = dialect.paramstyle
    if style.startswith("numeric"):
        sql, bindings = _renumber(sql, bindings, "$" if style.endswith("dollar") else ":")
    return sql, bindings


def _renumber(sql: str, bindings: list[Any], char: str) -> tuple[str, list[Any]]:
    """Number ``$n`` placeholders in order of appearance. SQLAlchemy numbers an expanded
    ``IN`` list after every other parameter (``a = $1 AND b IN ($3, $4) AND c = $2``), so the
    bindings would not read in the order of the SQL. Left alone unless each number appears once.
    """
    pattern = re.compile(re.escape(char) + r"(\d+)(?!\d)")
    seen = [int(m.group(1)) for m in pattern.finditer(sql)]
    expected = list(range(1, len(bindings) + 1))
    if seen == expected or sorted(seen) != expected:
        return sql, bindings
    new_number = {old: new for new, old in enumerate(seen, 1)}
    sql = pattern.sub(lambda m: f"{char}{new_number[int(m.group(1))]}", sql)
    return sql, [bindings[old - 1] for old in seen]


def to_query(element: ClauseElement, dialect: Dialect) -> str:
    """The SQL with values inlined, for reading; the bound form where a value can't render."""
    try:
        return str(element.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
    except Exception:
        return str(element.compile(dialect=dialect))
