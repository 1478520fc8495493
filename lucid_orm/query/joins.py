"""``join_raw``: a FROM item that renders its left side followed by raw join SQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import FromClause
from sqlalchemy.sql.compiler import SQLCompiler

from .raw import Raw


class RawJoin(FromClause):
    """``<left> <raw sql>``; hides the left side's tables so they are not listed twice."""

    __visit_name__ = "lucid_raw_join"
    inherit_cache = False
    named_with_column = False

    def __init__(self, left: FromClause, raw: Raw) -> None:
        super().__init__()
        self.left = left
        self.raw = raw

    @property
    def _hide_froms(self) -> list[FromClause]:
        return [*self.left._from_objects, *self.left._hide_froms]

    @property
    def _from_objects(self) -> list[FromClause]:
        return [self]

    def get_children(self, **kw: Any) -> list[Any]:
        return [self.left, self.raw]


@compiles(RawJoin)
def _compile_raw_join(element: RawJoin, compiler: SQLCompiler, **kw: Any) -> str:
    kw["asfrom"] = True
    left = compiler.process(element.left, **kw)
    kw.pop("asfrom", None)
    return f"{left} {compiler.process(element.raw, **kw)}"
