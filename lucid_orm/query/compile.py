"""Compilation helpers: ``to_sql()`` / ``to_query()`` and the executable wrapper for raw SQL."""

from __future__ import annotations

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
    order = compiled.positiontup
    if order is not None:
        return str(compiled), [params[name] for name in order]
    return str(compiled), list(params.values())


def to_query(element: ClauseElement, dialect: Dialect) -> str:
    """The SQL with values inlined, for reading; the bound form where a value can't render."""
    try:
        return str(element.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
    except Exception:
        return str(element.compile(dialect=dialect))
