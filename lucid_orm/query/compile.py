"""Compilation helpers: ``to_sql()`` / ``to_query()`` and the executable wrapper for raw SQL."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy.engine.interfaces import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import ClauseElement, Executable
from sqlalchemy.sql.compiler import SQLCompiler


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
