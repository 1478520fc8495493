"""Raw SQL: ``db.raw()`` fragments (bindable anywhere a column or condition goes) and the
executable ``db.raw_query()``. Placeholders: ``?`` with a list, ``:name`` with a dict; ``??`` and
``:name:`` bind identifiers, which the dialect quotes."""

from __future__ import annotations

import re
from collections.abc import Generator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import ColumnElement, bindparam, operators
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import BindParameter, Grouping

from ..errors import InvalidArgumentError, LucidError
from .run_sync import RunSync

if TYPE_CHECKING:
    from .client import Client

_POSITIONAL = re.compile(r"\\\?|\?\?|\?")
_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)(:(?=::)|:(?!:))?")

_Part = str | BindParameter[Any] | tuple[str]


def _parse(sql: str, bindings: Any) -> list[_Part]:
    parts: list[_Part] = []
    if bindings is None or (isinstance(bindings, Sequence) and not isinstance(bindings, str)):
        values = list(bindings or [])
        pos = 0
        used = 0
        for match in _POSITIONAL.finditer(sql):
            parts.append(sql[pos : match.start()])
            token = match.group(0)
            pos = match.end()
            if token == "\\?":
                parts.append("?")
                continue
            if used >= len(values):
                raise LucidError(
                    f"Raw query expects more bindings than the {len(values)} given: {sql!r}",
                    code="E_INVALID_BINDINGS",
                )
            value = values[used]
            used += 1
            parts.append((str(value),) if token == "??" else _bind(value))
        parts.append(sql[pos:])
        if used != len(values):
            raise LucidError(
                f"Raw query has {used} placeholder(s) but {len(values)} binding(s) were given: "
                f"{sql!r}",
                code="E_INVALID_BINDINGS",
            )
        return parts
    if isinstance(bindings, Mapping):
        pos = 0
        for match in _NAMED.finditer(sql):
            name, ident = match.group(1), match.group(2)
            if name not in bindings:
                raise LucidError(
                    f'Raw query binding ":{name}" has no value in the given dict: {sql!r}',
                    code="E_INVALID_BINDINGS",
                )
            parts.append(sql[pos : match.start()])
            value = bindings[name]
            parts.append((str(value),) if ident else _bind(value))
            pos = match.end()
        parts.append(sql[pos:])
        return parts
    raise LucidError(
        "Raw query bindings must be a list (for ? placeholders) or a dict (for :name)",
        code="E_INVALID_BINDINGS",
    )


def _bind(value: Any) -> Any:
    if isinstance(value, Raw | ColumnElement):
        return value
    if hasattr(value, "to_core"):
        return value.to_core()
    return bindparam(None, value, unique=True)


class Raw(ColumnElement[Any]):
    """A raw SQL fragment with bound values, usable in ``select``, ``where``, ``order_by``…

    ``db.raw("count(*) > ?", [2])``. Statements that contain one are not statement-cached.
    """

    __visit_name__ = "lucid_raw"
    inherit_cache = False

    def __init__(self, sql: str, bindings: Any = None) -> None:
        if not isinstance(sql, str):
            raise InvalidArgumentError(f"db.raw() expects SQL text, got {sql!r}")
        self.sql = sql
        self.parts = _parse(sql, bindings)
        self._alias: str | None = None

    def as_(self, alias: str) -> Any:
        """Label this fragment (``select(db.raw("count(*)").as_("total"))``)."""
        return self.label(alias)

    @property
    def _non_anon_label(self) -> str:
        # A name of its own keeps SQLAlchemy from appending "AS anon_1" in a select list, so
        # ``select(db.raw("upper(name) as u"))`` renders as written (Knex passes it through).
        return self.sql

    def self_group(self, against: Any = None) -> ColumnElement[Any]:
        # The fragment's own precedence is unknown: parenthesise it wherever SQLAlchemy or a
        # builder asks for a group, so ``where_raw("a or b")`` cannot leak out of an AND and
        # ``where_in(col, db.raw("select ..."))`` renders ``IN (select ...)``. Function arguments
        # are already delimited (``count(distinct x)`` must stay as written).
        if against is operators.comma_op:
            return self
        return Grouping(self)

    def get_children(self, **kw: Any) -> list[Any]:
        return [p for p in self.parts if not isinstance(p, str | tuple)]

    def bindings(self) -> list[Any]:
        return [p.value for p in self.parts if isinstance(p, BindParameter)]


@compiles(Raw)
def _compile_raw(element: Raw, compiler: SQLCompiler, **kw: Any) -> str:
    out: list[str] = []
    for part in element.parts:
        if isinstance(part, str):
            out.append(compiler.post_process_text(part))  # type: ignore[no-untyped-call]
        elif isinstance(part, tuple):
            out.append(".".join(compiler.preparer.quote(p) for p in part[0].split(".")))
        else:
            out.append(compiler.process(part, **kw))
    return "".join(out)


class RawQueryBuilder(RunSync):
    """An executable raw query: ``await db.raw_query("select * from users where id = ?", [1])``.

    Awaiting it returns a list of dicts for statements that return rows, else the number of
    affected rows. It runs on the write connection, whatever the SQL says (a SELECT may call a
    function that writes); ``read=True`` routes it like a builder's read (a replica, when the
    connection has some). The SQL text is never inspected to decide.
    """

    def __init__(
        self, client: Client, sql: str, bindings: Any = None, *, read: bool = False
    ) -> None:
        self.client = client
        self.raw = Raw(sql, bindings)
        self.read = read

    def to_core(self) -> Raw:
        return self.raw

    def to_sql(self) -> tuple[str, list[Any]]:
        from .compile import to_sql

        return to_sql(self.raw, self.client.dialect)

    def to_query(self) -> str:
        from .compile import to_query

        return to_query(self.raw, self.client.dialect)

    async def exec(self) -> Any:
        from .compile import textual

        result = await self.client.execute(textual(self.raw), write=not self.read)
        if result.keys:
            return result.dicts()
        return result.rowcount

    def __await__(self) -> Generator[Any, None, Any]:
        return self.exec().__await__()
