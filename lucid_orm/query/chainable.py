"""The Knex vocabulary (``where``, ``join``, ``order_by``…) as a chainable builder.

Each call records SQLAlchemy Core constructs at once (so callbacks run when passed and
``to_sql()`` sees them); ``to_core()`` assembles a fresh ``select()`` from them. Identifiers are
always Core columns/tables quoted by the dialect; values are always bound parameters.
"""

from __future__ import annotations

import inspect
import operator
import re
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Self, TypeVar, cast
from uuid import UUID

from sqlalchemy import (
    Boolean,
    Select,
    and_,
    bindparam,
    delete,
    distinct,
    exists,
    func,
    literal,
    literal_column,
    not_,
    select,
    true,
    tuple_,
    update,
)
from sqlalchemy.sql import ColumnElement, FromClause, TableClause, visitors
from sqlalchemy.sql.elements import ClauseElement, ColumnClause, Label
from sqlalchemy.sql.schema import Column, Table
from sqlalchemy.sql.selectable import Alias
from sqlalchemy.types import ARRAY, JSON, Enum, NullType, TypeDecorator, UserDefinedType

from ..errors import LucidError
from .compile import CheckedSelect, foreign_table_error, to_query, to_sql
from .cte import CteMethods, add_ctes
from .json import JsonConditions, JsonExtract
from .keys import keys_in, rows_in
from .raw import Raw
from .run_sync import RunSync
from .shape import COUNT_TOTAL, plain_compare, plain_like, plain_order
from .state import BuilderState, fold

if TYPE_CHECKING:
    from .client import Client

_IDENT_PART = r"[^\W\d][\w$]*"
_IDENT = re.compile(rf"^{_IDENT_PART}(?:\.{_IDENT_PART}){{0,2}}(?:\.\*)?$|^\*$")
_ALIASED = re.compile(r"^\s*(.+?)\s+as\s+(" + _IDENT_PART + r")\s*$", re.I)

_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "=": operator.eq,
    "==": operator.eq,
    "!=": operator.ne,
    "<>": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "like": lambda c, v: c.like(v),
    "not like": lambda c, v: c.not_like(v),
    "ilike": lambda c, v: c.ilike(v),
    "not ilike": lambda c, v: c.not_ilike(v),
    "in": lambda c, v: c.in_(v),
    "not in": lambda c, v: c.not_in(v),
    "is": lambda c, v: c.is_(v),
    "is not": lambda c, v: c.is_not(v),
    "&": lambda c, v: c.op("&")(v),
    "|": lambda c, v: c.op("|")(v),
    "^": lambda c, v: c.op("^")(v),
    "<<": lambda c, v: c.op("<<")(v),
    ">>": lambda c, v: c.op(">>")(v),
}

_E = TypeVar("_E", bound=visitors.ExternallyTraversible)

# Values any driver binds to a column of unknown type (bool is an int, datetime a date).
_BINDABLE: tuple[type, ...] = (str, int, float, Decimal, date, time, timedelta, UUID)
_BINDABLE += (bytes, bytearray, memoryview, ClauseElement)
# Column types whose values may be structured (dicts, lists, enum members, custom objects).
_STRUCTURED_TYPES = (JSON, ARRAY, Enum, TypeDecorator, UserDefinedType)

_IN = _OPERATORS["in"]
_IN_OPERATORS = (_IN, _OPERATORS["not in"])

_SHARED_TABLES: dict[tuple[str | None, str], TableClause] = {}

# Column names ``_col`` has checked (``check_identifier``) and found unqualified: the check (a
# regular expression) and the split run once per name, not on every ``where``/``order_by``.
# Bounded, so names made on the fly can't grow it without limit (past it, names are checked
# each time, as before).
_PLAIN_NAMES: set[str] = set()
_PLAIN_NAMES_MAX = 4096


def shared_table(name: str) -> TableClause:
    """The one ``TableClause`` for a table name, so subqueries correlate by identity."""
    schema, _, table = name.rpartition(".")
    key = (schema or None, table)
    found = _SHARED_TABLES.get(key)
    if found is None:
        found = TableClause(table, schema=schema or None)
        _SHARED_TABLES[key] = found
    return found


def check_identifier(name: str, what: str = "column") -> str:
    """Reject anything that is not a (dotted) identifier before it reaches the database."""
    if not isinstance(name, str) or _IDENT.match(name) is None:
        raise LucidError(
            f'Invalid {what} name {name!r}: expected an identifier like "email" or '
            f'"users.email" (use db.raw() for expressions)',
            code="E_INVALID_IDENTIFIER",
        )
    return name


def table_column(source: FromClause, name: str) -> ColumnElement[Any]:
    """The column ``name`` of ``source``; unknown columns are added to a TableClause on demand
    (so DML on it works) and referenced by name on aliases and subqueries."""
    if name == "*":
        return ColumnClause("*", is_literal=True, _selectable=source)
    if isinstance(source, TableClause):
        found = source.c.get(name)
        if found is None:
            # A Table takes Column objects; a lightweight TableClause takes ColumnClauses.
            found = Column(name, NullType()) if isinstance(source, Table) else ColumnClause(name)
            source.append_column(found)
        return cast(ColumnElement[Any], found)
    return ColumnClause(name, _selectable=source)


class ColumnReference:
    """A column named by an object instead of a string: the ORM's column attributes
    (``Post.title`` on the class) are these. The builders take one wherever they take a
    column name and read it as ``"<table>.<column>"`` (a model query, its own table's column
    by name), so a column of a table the query does not name is refused as a qualified name
    would be."""

    __slots__ = ("column_name", "owner", "table_name")

    def __init__(self, table_name: str, column_name: str, owner: Any = None) -> None:
        self.table_name = table_name
        self.column_name = column_name
        #: What declares the column (a model class), or ``None``.
        self.owner = owner

    def qualified_name(self) -> str:
        """``"<table>.<column>"``."""
        return f"{self.table_name}.{self.column_name}"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.qualified_name()}>"


def utc_naive(value: datetime) -> datetime:
    """An aware datetime as naive UTC, the form datetimes travel in (models write the same):
    bound as is, SQLite and MySQL would keep its wall-clock time and drop the offset."""
    if value.tzinfo is None:
        return value
    value = value.astimezone(UTC)
    # ``combine`` drops the zone; ``replace(tzinfo=None)`` is slower.
    return datetime.combine(value.date(), value.time())


def column_value(column: ColumnElement[Any], value: Any) -> Any:
    """A value for INSERT/UPDATE of ``column``: a typed column (a model's) binds through its
    own type, a by-name (untyped) one as ``dml_value``."""
    return dml_value(value) if isinstance(column.type, NullType) else value


def dml_value(value: Any) -> Any:
    """A value for INSERT/UPDATE of a by-name (untyped) column. Decimals, dates and times bind
    with the type SQLAlchemy infers from them: untyped, aiosqlite would refuse a ``Decimal`` and
    store dates through Python's deprecated sqlite3 adapters, in another format than the one
    ``where()`` compares with."""
    if isinstance(value, datetime):
        return literal(utc_naive(value))
    if isinstance(value, Decimal | date | time):
        return literal(value)
    return value


def _invalid(message: str) -> LucidError:
    return LucidError(message, code="E_INVALID_ARGUMENT")


def _values_list(values: Any, what: str) -> list[Any]:
    """A list of bindable values from any iterable but a string, bytes or a dict."""
    if isinstance(values, str | bytes | Mapping) or not isinstance(values, Iterable):
        raise _invalid(f"{what} expects a list of values, got {values!r}")
    return list(values)


def _label(alias: Any) -> str:
    """A ``{alias: column}`` key: any non-empty string (the dialect quotes it)."""
    if not isinstance(alias, str) or not alias:
        raise LucidError(
            f"Invalid alias {alias!r}: a select alias is a non-empty string",
            code="E_INVALID_IDENTIFIER",
        )
    return alias


def _raw(sql: Any, bindings: Any, method: str) -> Raw:
    if not isinstance(sql, str):
        raise _invalid(f"{method}() expects SQL text, got {sql!r}")
    return Raw(sql, bindings)


def check_page(page: Any, per_page: Any, method: str) -> None:
    """Pages count from 1 and hold at least one row: both positive ints (``True`` is no int)."""
    for name, value in (("page", page), ("per_page", per_page)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise _invalid(f"{method}() expects {name} to be an int of 1 or more, got {value!r}")


def run_callback(callback: Callable[[Any], Any], method: str, target: Any) -> None:
    """Run a user callback of ``method`` on ``target`` (a builder or a clause builder); an
    ``async def`` callback is refused (``E_RUNTIME_EXCEPTION``): it would configure nothing."""
    if inspect.iscoroutinefunction(callback):
        raise LucidError(
            f'"{method}" callbacks must be plain functions that configure the query; '
            "an async def callback is not allowed",
            code="E_RUNTIME_EXCEPTION",
        )
    callback(target)


def _swap_sources(element: _E, swaps: dict[int, FromClause]) -> _E:
    """``element`` with the columns of each swapped source taken from its replacement."""
    if not swaps:
        return element

    def replace(element: Any, **_kw: Any) -> Any:
        if isinstance(element, ColumnClause) and element.table is not None:
            target = swaps.get(id(element.table))
            if target is not None:
                return table_column(target, element.name)
        return None

    root: visitors.ExternallyTraversible = element
    return cast(_E, visitors.replacement_traverse(root, {}, replace))


def _name_of(source: Any) -> str:
    name = getattr(source, "name", None)
    return name if isinstance(name, str) else repr(source)


def _columns_of(element: Any, source: Any) -> list[str]:
    return [
        f"{_name_of(source)}.{node.name}"
        for node in visitors.iterate(element)
        if isinstance(node, ColumnClause) and node.table is source
    ]


# ``count(*)`` and ``count(*) AS count`` (``count()``, ``with_count``, ``has``): immutable
# constructs, one of each shared by every query instead of made anew for each.
_COUNT_STAR: ColumnElement[Any] = func.count()
_COUNT_STAR_LABEL: ColumnElement[Any] = _COUNT_STAR.label("count")


def compare(builder: Chainable, column: Any, op: Any, value: Any) -> ColumnElement[Any]:
    """``column <op> value`` as the builders write it: operators checked, values bound (a
    boolean too), a list with ``in`` as ``keys_in`` (any number of keys)."""
    # An operator already in its normal form (``"="``, ``"like"``: the usual spelling) is
    # looked up as is.
    fn = _OPERATORS.get(op) if type(op) is str else None
    key = op
    if fn is None:
        if not isinstance(op, str):
            raise LucidError(f"Invalid operator {op!r}", code="E_INVALID_OPERATOR")
        key = op.lower().strip()
        fn = _OPERATORS.get(key)
    if fn is None:
        raise LucidError(
            f'Invalid operator "{op}": use one of {", ".join(sorted(_OPERATORS))}',
            code="E_INVALID_OPERATOR",
        )
    plain = plain_compare(column, fn, value)
    if plain is not None:
        # A table column of a plain type against an int, str or float: the same construct,
        # without SQLAlchemy's operator dispatch (query/shape.py).
        return plain
    if fn in _IN_OPERATORS and isinstance(value, list | tuple) and isinstance(column, ColumnClause):
        # ``where(col, "in", keys)`` is a where_in: any number of keys (see keys.py).
        return keys_in(column, list(value), builder.client.dialect, fn is not _IN)
    value = builder._value(value)
    if key in ("in", "not in"):
        if not isinstance(value, ClauseElement):
            value = _values_list(value, f'The "{key}" operator')
    elif key in ("is", "is not"):
        if value is not None and not isinstance(value, bool | ClauseElement):
            raise _invalid(f'"{op}" compares with None, True or False, got {value!r}')
    elif value is None:
        if fn is not operator.eq and fn is not operator.ne:
            raise _invalid(
                f'Cannot compare NULL with "{op}": use where_null()/where_not_null(), "=" or "!="'
            )
    elif not isinstance(value, _BINDABLE):
        builder._check_bindable(column, value)
    if isinstance(value, Select):
        value = value.scalar_subquery()
    elif isinstance(value, bool):
        # SQLAlchemy renders Python booleans as SQL literals; values are always bound.
        col_type = getattr(column, "type", None)
        value = bindparam(
            None,
            value,
            type_=Boolean() if col_type is None or isinstance(col_type, NullType) else col_type,
            unique=True,
        )
    clause: ColumnElement[Any] = fn(column, value)
    return clause


class JoinClause:
    """The ``on`` builder handed to ``join(table, lambda j: j.on(...).or_on(...))``."""

    def __init__(self, builder: Chainable) -> None:
        self._builder = builder
        self.clauses: list[tuple[bool, ColumnElement[Any]]] = []

    def _on(self, is_or: bool, first: Any, op: Any, second: Any) -> JoinClause:
        b = self._builder
        if callable(first) and not isinstance(first, str):
            sub = JoinClause(b)
            first(sub)
            folded = fold(sub.clauses)
            if folded is not None:
                self.clauses.append((is_or, folded.self_group()))
            return self
        if second is None:
            op, second = "=", op
        self.clauses.append(
            (
                is_or,
                compare(
                    b,
                    b._col(first),
                    op,
                    b._col(second) if isinstance(second, str | ColumnReference) else second,
                ),
            )
        )
        return self

    def on(self, first: Any, op: Any = None, second: Any = None) -> JoinClause:
        """``on("users.id", "posts.user_id")`` or ``on("a", ">", "b")``; columns both sides."""
        return self._on(False, first, op, second)

    and_on = on

    def or_on(self, first: Any, op: Any = None, second: Any = None) -> JoinClause:
        return self._on(True, first, op, second)

    def on_val(self, column: str, op: Any, value: Any = None) -> JoinClause:
        """Compare a column with a bound value: ``on_val("posts.published", True)``."""
        b = self._builder
        if value is None and op not in _OPERATORS:
            op, value = "=", op
        self.clauses.append((False, compare(b, b._col(column), op, value)))
        return self

    and_on_val = on_val

    def or_on_val(self, column: str, op: Any, value: Any = None) -> JoinClause:
        b = self._builder
        if value is None and op not in _OPERATORS:
            op, value = "=", op
        self.clauses.append((True, compare(b, b._col(column), op, value)))
        return self

    def on_null(self, column: str) -> JoinClause:
        self.clauses.append((False, self._builder._col(column).is_(None)))
        return self

    def on_not_null(self, column: str) -> JoinClause:
        self.clauses.append((False, self._builder._col(column).is_not(None)))
        return self

    def on_in(self, column: str, values: Iterable[Any]) -> JoinClause:
        column_ = self._builder._col(column)
        self.clauses.append((False, column_.in_(_values_list(values, "on_in()"))))
        return self


class Chainable(JsonConditions, CteMethods, RunSync):
    """Shared query-building vocabulary of the database and model query builders."""

    def __init__(self, client: Client) -> None:
        self.client = client
        #: What this builder has recorded (see query/state.py): the extension contract of the
        #: builders in orm/ and orm/relations/, which read it and override the compile hooks.
        self.state = BuilderState(
            None, {}, {}, None, [], [], [], [], [], [], [], None, None, False, None, None, False
        )

    # -- identifiers ---------------------------------------------------------------------------
    def _lookup(self, name: str) -> FromClause | None:
        """The table, alias or subquery ``name`` of this query or of an enclosing one."""
        builder: Chainable | None = self
        while builder is not None:
            found = builder.state.aliases.get(name)
            if found is not None:
                return found
            builder = builder.state.parent
        return None

    def _source(self, name: str, identifier: str) -> FromClause:
        found = self._lookup(name)
        if found is not None:
            return found
        ref = self.state.early_refs.get(name)
        if ref is not None:
            return ref[0]
        table = shared_table(name)
        # Maybe an alias that a later join() names (``where("p.x")`` before
        # ``join("posts as p", …)``): to_core() rebinds it then, or refuses the name.
        self.state.early_refs[name] = (table, identifier)
        return table

    def _unqualified(self, name: str) -> ColumnElement[Any]:
        """An unqualified column (hook: the model builder returns its typed columns)."""
        return ColumnClause(name)

    def _reference(self, ref: ColumnReference) -> ColumnElement[Any]:
        """A column reference (hook: a model query reads its own model's columns unqualified,
        so they follow the query's alias of the table)."""
        return self._col(ref.qualified_name())

    def _col(self, name: Any) -> ColumnElement[Any]:
        if type(name) is str and name in _PLAIN_NAMES:
            # Checked before: an identifier without qualifier (``check_identifier`` passed).
            return self._unqualified(name)
        if not isinstance(name, str):
            if isinstance(name, ColumnReference):
                return self._reference(name)
            if isinstance(name, ClauseElement | Chainable) or hasattr(name, "to_core"):
                return cast(ColumnElement[Any], self._value(name))
        check_identifier(name)
        if name == "*":
            return literal_column("*")
        qualifier, _, column = name.rpartition(".")
        if not qualifier:
            if type(name) is str and len(_PLAIN_NAMES) < _PLAIN_NAMES_MAX:
                _PLAIN_NAMES.add(name)
            return self._unqualified(name)
        return table_column(self._source(qualifier, name), column)

    def _value(self, value: Any) -> Any:
        if isinstance(value, datetime):
            return utc_naive(value)
        if isinstance(value, Chainable):
            return self._nested(value)._scalar()
        if hasattr(value, "to_core") and not isinstance(value, ClauseElement):
            return value.to_core()
        return value

    def _from_item(self, table: Any) -> FromClause:
        if isinstance(table, Chainable):
            name = table.state.alias or "subquery"
            sub = table.to_core().subquery(name)
            self.state.aliases[name] = sub
            return sub
        if isinstance(table, FromClause):
            return table
        if not isinstance(table, str):
            raise LucidError(f"Expected a table name, got {table!r}", code="E_INVALID_IDENTIFIER")
        match = _ALIASED.match(table)
        if match:
            base_name, alias = match.group(1), match.group(2)
            check_identifier(base_name, "table")
            item: FromClause = shared_table(base_name).alias(alias)
            self.state.aliases[alias] = item
            return item
        check_identifier(table, "table")
        item = shared_table(table)
        name = table.rpartition(".")[2]
        self.state.aliases[name] = item
        if name != table:
            self.state.aliases[table] = item  # "schema.table.column" names it too
        return item

    def _select_item(self, item: Any) -> ColumnElement[Any]:
        if isinstance(item, str):
            match = _ALIASED.match(item)
            if match:
                return self._col(match.group(1)).label(match.group(2))
            return self._col(item)
        if isinstance(item, Chainable):
            sub = self._nested(item)
            label: ColumnElement[Any] = sub._scalar().label(item.state.alias or "subquery")
            return label
        if isinstance(item, JsonExtract):
            return self._json_extract(item)
        return self._col(item)

    def _nested(self, sub: Chainable) -> Chainable:
        """``sub`` as a subquery of this query: a builder made elsewhere gets a copy whose
        qualified names may refer to this query's tables (correlation)."""
        if sub.state.parent is not None or sub is self:
            return sub
        nested = sub.clone()
        nested.state.parent = self
        return nested

    # -- callbacks -----------------------------------------------------------------------------
    def _group(self) -> Self:
        """A copy sharing this builder's tables, with empty where/having lists."""
        group = self.__class__.__new__(self.__class__)
        group.__dict__.update(self.__dict__)
        group.state = self.state.group()
        return group

    def _subquery_builder(self) -> Chainable:
        from .database import DatabaseQueryBuilder

        sub = DatabaseQueryBuilder(self.client)
        sub.state.parent = self
        return sub

    @contextmanager
    def scoped(self) -> Iterator[Self]:
        """Conditions added inside the block become one group AND-ed around the user's own
        (``state.scoped``), so a later ``or_where`` can never OR around them. Relations run
        ``on_query`` in it: ``with query.scoped(): hook(query)``."""
        state = self.state
        outside = state.wheres
        state.wheres = []
        try:
            yield self
        except BaseException:
            state.wheres = outside
            raise
        hooked = fold(state.wheres)
        state.wheres = outside
        if hooked is not None:
            state.scoped.append(hooked.self_group())

    # -- where ---------------------------------------------------------------------------------
    def _check_bindable(self, column: Any, value: Any) -> None:
        """Refuse a value the column can't bind: the MySQL driver would compare with its
        ``str()`` (wrong rows), others fail in the driver. Types made for such values bind
        them (JSON dicts, arrays, enums, custom types); PostgreSQL binds a list as an array."""
        col_type = getattr(column, "type", None)
        if isinstance(col_type, _STRUCTURED_TYPES):
            return
        if isinstance(value, list | tuple) and self.client.dialect_name == "postgresql":
            return
        raise _invalid(
            f"Cannot compare with {value!r} ({type(value).__name__}): bind a str, number, "
            "date/time, bytes, UUID or None (where_in() takes a list of values)"
        )

    def _condition(self, args: tuple[Any, ...], method: str) -> ColumnElement[Any]:
        first = args[0]
        if len(args) == 1:
            if isinstance(first, Raw | ColumnElement):
                return first
            if isinstance(first, Mapping):
                parts = [compare(self, self._col(k), "=", v) for k, v in first.items()]
                return and_(*parts) if parts else true()
            if callable(first):
                group = self._group()
                run_callback(first, method, group)
                folded = fold(group.state.wheres)
                return folded.self_group() if folded is not None else true()
            raise LucidError(f"{method}() needs a column and a value", code="E_INVALID_ARGUMENT")
        if len(args) == 2:
            return compare(self, self._col(first), "=", args[1])
        if len(args) == 3:
            return compare(self, self._col(first), args[1], args[2])
        raise LucidError(f"{method}() takes at most 3 arguments", code="E_INVALID_ARGUMENT")

    def _add_where(self, is_or: bool, clause: ColumnElement[Any]) -> Self:
        self.state.wheres.append((is_or, clause))
        return self

    def where(self, *args: Any) -> Self:
        """Add a condition: ``where("id", 1)``, ``where("age", ">", 18)``,
        ``where({"a": 1, "b": 2})``, ``where(lambda q: q.where(...).or_where(...))`` (a group),
        or ``where(db.raw("..."))``. A ``None`` value compares with ``IS NULL``."""
        if len(args) == 2:
            name = args[0]
            if type(name) is str and name in _PLAIN_NAMES:
                # ``where(column, value)`` on a name checked before: ``_condition``'s
                # ``compare(self, self._col(name), "=", value)`` when ``plain_compare`` takes
                # it, without the three calls between.
                plain = plain_compare(self._unqualified(name), operator.eq, args[1])
                if plain is not None:
                    return self._add_where(False, plain)
        return self._add_where(False, self._condition(args, "where"))

    and_where = where

    def or_where(self, *args: Any) -> Self:
        """Like ``where``, joined with ``OR``."""
        return self._add_where(True, self._condition(args, "or_where"))

    def where_not(self, *args: Any) -> Self:
        """``NOT (condition)``; same arguments as ``where``."""
        return self._add_where(False, not_(self._condition(args, "where_not")))

    and_where_not = where_not

    def or_where_not(self, *args: Any) -> Self:
        return self._add_where(True, not_(self._condition(args, "or_where_not")))

    def _in_clause(self, columns: Any, values: Any, method: str, negate: bool) -> Any:
        values = in_values(self, values, method)
        if isinstance(columns, list | tuple):
            parts = [self._col(c) for c in columns]
            if isinstance(values, list):
                width = len(columns)
                for v in values:
                    if isinstance(v, str | bytes) or not isinstance(v, Sequence) or len(v) != width:
                        raise _invalid(
                            f"{method}() on {width} columns expects a list of {width}-value "
                            f"lists, got {v!r} in it"
                        )
                # Any number of rows: one parameter per column or one in all (see keys.py).
                return rows_in(parts, [tuple(v) for v in values], self.client.dialect, negate)
            target: Any = tuple_(*parts)
        else:
            target = self._col(columns)
            if isinstance(values, list) and isinstance(target, ColumnClause):
                # Any number of keys: one parameter on PostgreSQL and SQLite (see keys.py).
                return keys_in(target, values, self.client.dialect, negate)
        if isinstance(values, Raw):
            return target.op("NOT IN" if negate else "IN")(values.self_group())
        return target.not_in(values) if negate else target.in_(values)

    def where_in(self, column: Any, values: Any) -> Self:
        """``column IN (...)``: a list, a subquery builder or a callback building one.
        ``where_in(["a", "b"], [[1, 2], [3, 4]])`` compares tuples."""
        return self._add_where(False, self._in_clause(column, values, "where_in", False))

    and_where_in = where_in

    def or_where_in(self, column: Any, values: Any) -> Self:
        return self._add_where(True, self._in_clause(column, values, "or_where_in", False))

    def where_not_in(self, column: Any, values: Any) -> Self:
        return self._add_where(False, self._in_clause(column, values, "where_not_in", True))

    and_where_not_in = where_not_in

    def or_where_not_in(self, column: Any, values: Any) -> Self:
        return self._add_where(True, self._in_clause(column, values, "or_where_not_in", True))

    def where_null(self, column: str) -> Self:
        """``column IS NULL``."""
        return self._add_where(False, self._col(column).is_(None))

    and_where_null = where_null

    def or_where_null(self, column: str) -> Self:
        return self._add_where(True, self._col(column).is_(None))

    def where_not_null(self, column: str) -> Self:
        """``column IS NOT NULL``."""
        return self._add_where(False, self._col(column).is_not(None))

    and_where_not_null = where_not_null

    def or_where_not_null(self, column: str) -> Self:
        return self._add_where(True, self._col(column).is_not(None))

    def _between(self, column: str, values: Sequence[Any], negate: bool) -> ColumnElement[Any]:
        if isinstance(values, str | bytes) or not isinstance(values, Sequence) or len(values) != 2:
            raise LucidError(
                f"where_between() expects two values [low, high], got {values!r}",
                code="E_INVALID_ARGUMENT",
            )
        clause = self._col(column).between(self._value(values[0]), self._value(values[1]))
        return not_(clause) if negate else clause

    def where_between(self, column: str, values: Sequence[Any]) -> Self:
        """``column BETWEEN low AND high``: ``where_between("age", [18, 65])``."""
        return self._add_where(False, self._between(column, values, False))

    and_where_between = where_between

    def or_where_between(self, column: str, values: Sequence[Any]) -> Self:
        return self._add_where(True, self._between(column, values, False))

    def where_not_between(self, column: str, values: Sequence[Any]) -> Self:
        return self._add_where(False, self._between(column, values, True))

    and_where_not_between = where_not_between

    def or_where_not_between(self, column: str, values: Sequence[Any]) -> Self:
        return self._add_where(True, self._between(column, values, True))

    def where_like(self, column: str, pattern: Any) -> Self:
        """``column LIKE pattern``."""
        return self._add_where(False, self._like(column, pattern))

    and_where_like = where_like

    def or_where_like(self, column: str, pattern: Any) -> Self:
        return self._add_where(True, self._like(column, pattern))

    def _like(self, column: str, pattern: Any) -> ColumnElement[Any]:
        col = self._col(column)
        # A string column and a str pattern: the construct SQLAlchemy's ``like`` makes, built
        # without its operator dispatch (query/shape.py).
        plain = plain_like(col, pattern)
        if plain is not None:
            return plain
        like: ColumnElement[Any] = col.like(self._value(pattern))
        return like

    def where_ilike(self, column: str, pattern: Any) -> Self:
        """Case-insensitive LIKE (``ILIKE`` on PostgreSQL, ``lower() LIKE lower()`` elsewhere)."""
        return self._add_where(False, self._col(column).ilike(self._value(pattern)))

    and_where_ilike = where_ilike

    def or_where_ilike(self, column: str, pattern: Any) -> Self:
        return self._add_where(True, self._col(column).ilike(self._value(pattern)))

    def _exists(self, query: Any, method: str) -> Any:
        if isinstance(query, Chainable):
            return exists(correlated(self._nested(query)))
        if isinstance(query, Raw):
            return literal_column("EXISTS").op("")(query.self_group())
        if callable(query):
            sub = self._subquery_builder()
            run_callback(query, method, sub)
            return exists(correlated(sub))
        raise _invalid(f"{method}() expects a query builder or a callback, got {query!r}")

    def where_exists(self, query: Any) -> Self:
        """``EXISTS (subquery)``; the callback receives a fresh builder that can refer to this
        query's tables: ``where_exists(lambda q: q.from_("posts").where_column("posts.user_id",
        "users.id"))``."""
        return self._add_where(False, self._exists(query, "where_exists"))

    and_where_exists = where_exists

    def or_where_exists(self, query: Any) -> Self:
        return self._add_where(True, self._exists(query, "or_where_exists"))

    def where_not_exists(self, query: Any) -> Self:
        return self._add_where(False, not_(self._exists(query, "where_not_exists")))

    and_where_not_exists = where_not_exists

    def or_where_not_exists(self, query: Any) -> Self:
        return self._add_where(True, not_(self._exists(query, "or_where_not_exists")))

    def _column_compare(self, first: str, op: str, second: str | None) -> ColumnElement[Any]:
        if second is None:
            op, second = "=", op
        return compare(self, self._col(first), op, self._col(second))

    def where_column(self, first: str, op: str, second: str | None = None) -> Self:
        """Compare two columns: ``where_column("updated_at", ">", "created_at")``."""
        return self._add_where(False, self._column_compare(first, op, second))

    and_where_column = where_column

    def or_where_column(self, first: str, op: str, second: str | None = None) -> Self:
        return self._add_where(True, self._column_compare(first, op, second))

    def where_not_column(self, first: str, op: str, second: str | None = None) -> Self:
        return self._add_where(False, not_(self._column_compare(first, op, second)))

    def where_raw(self, sql: str, bindings: Any = None) -> Self:
        """A raw condition: ``where_raw("age > ?", [18])``."""
        return self._add_where(False, _raw(sql, bindings, "where_raw").self_group())

    and_where_raw = where_raw

    def or_where_raw(self, sql: str, bindings: Any = None) -> Self:
        return self._add_where(True, _raw(sql, bindings, "or_where_raw").self_group())

    # -- select, from, joins -------------------------------------------------------------------
    def select(self, *columns: Any) -> Self:
        """Columns to select: names, ``"col as alias"``, ``db.raw()``, a subquery builder with
        ``as_()``, a dict ``{alias: column}`` or a list of these."""
        for item in columns:
            if isinstance(item, list | tuple):
                self.select(*item)
            elif isinstance(item, Mapping):
                for alias, col in item.items():
                    self.state.columns.append(self._select_item(col).label(_label(alias)))
            else:
                self.state.columns.append(self._select_item(item))
        return self

    column = select
    columns = select

    def from_(self, table: Any) -> Self:
        """The table to select from: ``"users"``, ``"users as u"``, or a subquery builder
        (name it with ``as_()``)."""
        if callable(table) and not isinstance(table, str | Chainable):
            sub = self._subquery_builder()
            run_callback(table, "from_", sub)
            table = sub
        self.state.from_ = self._from_item(table)
        return self

    table = from_

    def _join(self, kind: str, table: Any, first: Any, op: Any, second: Any) -> Self:
        if first is None and kind != "cross":
            # SQLAlchemy would guess the condition from foreign keys (or raise its own error).
            raise _invalid(
                f"{kind} join of {table!r} needs a condition: join(table, first, op, second) "
                "or join(table, lambda j: j.on(...)); cross_join() joins without one"
            )
        target = self._from_item(table)
        if first is None:
            self.state.joins.append((target, None, kind))
            return self
        join = JoinClause(self)
        if callable(first) and not isinstance(first, str):
            run_callback(first, "join", join)
        else:
            join.on(first, op, second)
        on = fold(join.clauses)
        self.state.joins.append((target, on if on is not None else true(), kind))
        return self

    def join(self, table: Any, first: Any = None, op: Any = None, second: Any = None) -> Self:
        """Inner join: ``join("posts", "users.id", "posts.user_id")``,
        ``join("posts as p", "users.id", "=", "p.user_id")`` or
        ``join("posts", lambda j: j.on(...).on_val("p.published", True))``."""
        return self._join("inner", table, first, op, second)

    inner_join = join

    def left_join(self, table: Any, first: Any = None, op: Any = None, second: Any = None) -> Self:
        """Left outer join; arguments as ``join``."""
        return self._join("left", table, first, op, second)

    left_outer_join = left_join

    def full_outer_join(
        self, table: Any, first: Any = None, op: Any = None, second: Any = None
    ) -> Self:
        """Full outer join (PostgreSQL)."""
        return self._join("full", table, first, op, second)

    def cross_join(self, table: Any) -> Self:
        """Cross join."""
        return self._join("cross", table, None, None, None)

    def join_raw(self, sql: str, bindings: Any = None) -> Self:
        """A raw join clause appended after FROM: ``join_raw("natural join posts")``. Name the
        columns of its tables with ``db.raw()`` too: they are not tables of the builder."""
        self.state.joins.append((_raw(sql, bindings, "join_raw"), None, "raw"))
        return self

    # -- grouping, ordering, paging ------------------------------------------------------------
    def group_by(self, *columns: Any) -> Self:
        """``GROUP BY`` columns."""
        for c in columns:
            if isinstance(c, list | tuple):
                self.group_by(*c)
            else:
                self.state.group_by.append(self._col(c))
        return self

    def group_by_raw(self, sql: str, bindings: Any = None) -> Self:
        self.state.group_by.append(_raw(sql, bindings, "group_by_raw"))
        return self

    def _having(self, is_or: bool, args: tuple[Any, ...], method: str) -> Self:
        if len(args) == 1 and callable(args[0]) and not isinstance(args[0], Raw):
            group = self._group()
            run_callback(args[0], method, group)
            folded = fold(group.state.havings)
            if folded is not None:
                self.state.havings.append((is_or, folded.self_group()))
            return self
        if len(args) == 2:
            args = (args[0], "=", args[1])
        if len(args) != 3:
            raise LucidError(f"{method}() takes a column, an operator and a value")
        column, op, value = args
        self.state.havings.append((is_or, compare(self, self._col(column), op, value)))
        return self

    def having(self, *args: Any) -> Self:
        """``HAVING``: ``having("total", ">", 2)`` or ``having(db.raw("count(*)"), ">", 2)``."""
        return self._having(False, args, "having")

    and_having = having

    def or_having(self, *args: Any) -> Self:
        return self._having(True, args, "or_having")

    def having_raw(self, sql: str, bindings: Any = None) -> Self:
        """A raw ``HAVING`` condition: ``having_raw("count(*) > ?", [2])``."""
        self.state.havings.append((False, _raw(sql, bindings, "having_raw").self_group()))
        return self

    and_having_raw = having_raw

    def or_having_raw(self, sql: str, bindings: Any = None) -> Self:
        self.state.havings.append((True, _raw(sql, bindings, "or_having_raw").self_group()))
        return self

    def order_by(self, column: Any, direction: str = "asc") -> Self:
        """``order_by("created_at", "desc")``; also a list of names or of
        ``{"column": ..., "order": ...}`` dicts, a raw fragment or a subquery builder."""
        if isinstance(column, list | tuple):
            for item in column:
                if isinstance(item, Mapping):
                    if "column" not in item:
                        raise _invalid(
                            'order_by() dicts name their column: {"column": "id", "order": '
                            f'"desc"}}, got {item!r}'
                        )
                    self.order_by(item["column"], item.get("order", "asc"))
                else:
                    self.order_by(item)
            return self
        d = str(direction).lower()
        if d not in ("asc", "desc"):
            raise LucidError(
                f'Invalid order direction "{direction}": use "asc" or "desc"',
                code="E_INVALID_ARGUMENT",
            )
        target: Any
        if isinstance(column, Chainable):
            target = self._nested(column)._scalar()
        else:
            target = self._col(column)
        # A table column: what ``target.asc()`` makes, without the operator dispatch.
        ordered = plain_order(target, d == "desc")
        if ordered is None:
            ordered = target.desc() if d == "desc" else target.asc()
        self.state.order_by.append(ordered)
        return self

    def order_by_raw(self, sql: str, bindings: Any = None) -> Self:
        """A raw ``ORDER BY`` fragment: ``order_by_raw("lower(email) desc")``."""
        self.state.order_by.append(_raw(sql, bindings, "order_by_raw"))
        return self

    def clear_order(self) -> Self:
        self.state.order_by = []
        return self

    def clear_select(self) -> Self:
        self.state.columns = []
        self.state.pending_aggregate = None
        self.state.has_aggregates = False
        return self

    def clear_where(self) -> Self:
        self.state.wheres = []
        return self

    def clear_limit(self) -> Self:
        self.state.limit = None
        return self

    def clear_offset(self) -> Self:
        self.state.offset = None
        return self

    def limit(self, value: int) -> Self:
        """``LIMIT``; raises ``E_INVALID_ARGUMENT`` unless ``value`` is an int >= 0."""
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise _invalid(f"limit() expects a non-negative int, got {value!r}")
        self.state.limit = value
        return self

    def offset(self, value: int) -> Self:
        """``OFFSET``; raises ``E_INVALID_ARGUMENT`` unless ``value`` is an int >= 0."""
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise _invalid(f"offset() expects a non-negative int, got {value!r}")
        self.state.offset = value
        return self

    def for_page(self, page: int, per_page: int = 20) -> Self:
        """``LIMIT per_page OFFSET (page - 1) * per_page``: pages count from 1; ``page`` and
        ``per_page`` must be positive ints (``E_INVALID_ARGUMENT``)."""
        check_page(page, per_page, "for_page")
        return self.limit(per_page).offset((page - 1) * per_page)

    def distinct(self, *columns: Any) -> Self:
        """``SELECT DISTINCT``, optionally selecting ``columns``."""
        self.state.distinct = True
        if columns:
            self.select(*columns)
        return self

    # -- aggregates ----------------------------------------------------------------------------
    def _aggregate(self, fn: str, args: tuple[Any, ...], is_distinct: bool = False) -> Self:
        if not args:
            args = ("*",)
        self.state.has_aggregates = True
        for arg in args:
            if isinstance(arg, Mapping):
                for name, col in arg.items():
                    self.state.columns.append(
                        self._agg_expr(fn, col, is_distinct).label(_label(name))
                    )
                continue
            alias: str | None = None
            if isinstance(arg, str):
                match = _ALIASED.match(arg)
                if match:
                    arg, alias = match.group(1), match.group(2)
            expr = self._agg_expr(fn, arg, is_distinct)
            if alias is None:
                self.state.pending_aggregate = len(self.state.columns)
                self.state.columns.append(
                    _COUNT_STAR_LABEL if expr is _COUNT_STAR else expr.label(fn)
                )
            else:
                self.state.columns.append(expr.label(alias))
        return self

    def _agg_expr(self, fn: str, arg: Any, is_distinct: bool) -> ColumnElement[Any]:
        if fn == "count" and arg == "*" and not is_distinct:
            return _COUNT_STAR
        if arg == "*":
            target: Any = literal_column("*")
        else:
            target = self._col(arg)
        if is_distinct:
            target = distinct(target)
        expr: ColumnElement[Any] = getattr(func, fn)(target)
        return expr

    def count(self, *columns: Any) -> Self:
        """``count(*)`` (key ``count``); ``count("id as total")`` or ``.count("id").as_("t")``."""
        return self._aggregate("count", columns)

    def count_distinct(self, *columns: Any) -> Self:
        """``count(DISTINCT col)``."""
        return self._aggregate("count", columns, True)

    def min(self, *columns: Any) -> Self:
        return self._aggregate("min", columns)

    def max(self, *columns: Any) -> Self:
        return self._aggregate("max", columns)

    def sum(self, *columns: Any) -> Self:
        return self._aggregate("sum", columns)

    def sum_distinct(self, *columns: Any) -> Self:
        return self._aggregate("sum", columns, True)

    def avg(self, *columns: Any) -> Self:
        return self._aggregate("avg", columns)

    def avg_distinct(self, *columns: Any) -> Self:
        return self._aggregate("avg", columns, True)

    def as_(self, alias: str) -> Self:
        """Name this query when used as a subquery (or in ``with_count``); also names its single
        unaliased aggregate: ``count("*").as_("total")``."""
        check_identifier(alias, "alias")
        self.state.alias = alias
        if self.state.pending_aggregate is not None:
            idx = self.state.pending_aggregate
            col = self.state.columns[idx]
            inner = col.element if isinstance(col, Label) else col
            self.state.columns[idx] = inner.label(alias)
            self.state.pending_aggregate = None
        return self

    # -- conditionals and copies ---------------------------------------------------------------
    def if_(
        self,
        condition: Any,
        matched: Callable[[Self], Any],
        no_match: Callable[[Self], Any] | None = None,
    ) -> Self:
        """Run ``matched(query)`` when ``condition`` (a value or a callable) is truthy, else
        ``no_match``: ``q.if_(search, lambda q: q.where_like("title", f"%{search}%"))``."""
        value = condition() if callable(condition) else condition
        if value:
            run_callback(matched, "if_", self)
        elif no_match is not None:
            run_callback(no_match, "if_", self)
        return self

    def unless(
        self,
        condition: Any,
        matched: Callable[[Self], Any],
        no_match: Callable[[Self], Any] | None = None,
    ) -> Self:
        """The reverse of ``if_``."""
        value = condition() if callable(condition) else condition
        return self.if_(not value, matched, no_match)

    def clone(self) -> Self:
        """An independent copy of this builder."""
        copy = self.__class__.__new__(self.__class__)
        copy.__dict__.update(self.__dict__)
        # Subclass attributes are replaced, never mutated in place: sharing them is safe.
        copy.state = self.state.clone()
        return copy

    # -- compilation ---------------------------------------------------------------------------
    # ``to_core()`` is a pipeline of hooks that *return* values and never write ``state``:
    # ``_select_list`` → ``_base_from`` (+ the joins: ``_from_clause``) → ``_where_clause`` →
    # ``_finish``. Builders in orm/ and orm/relations/ override a hook and call ``super()``;
    # ``compile_select(builder, columns=…, order_by=…)`` is the statement without ``_finish``,
    # for a variant select of the same rows (the id filter of a relation's UPDATE/DELETE).
    def _default_columns(self) -> list[ColumnElement[Any]]:
        """Hook: the columns selected when the user selects none."""
        return [literal_column("*")]

    def _select_list(self) -> list[ColumnElement[Any]]:
        """Hook: the SELECT list (relation builders add their key columns)."""
        return self.state.columns or self._default_columns()

    def _base_from(self) -> FromClause | None:
        """Hook: the FROM item the user's joins attach to (relation builders join their pivot
        or through table to it, ahead of the user's joins)."""
        return self.state.from_

    def _from_clause(self) -> FromClause | None:
        """The FROM clause: ``_base_from()`` and the user's joins in order."""
        frm = self._base_from()
        for target, on, kind in self.state.joins:
            if frm is None:
                raise LucidError("Cannot join before from_(): name the table first")
            if isinstance(target, Raw):
                from .joins import RawJoin

                frm = RawJoin(frm, target)
            elif kind == "cross":
                frm = frm.join(target, true())
            else:
                frm = frm.join(target, on, isouter=kind == "left", full=kind == "full")
        return frm

    def _own_froms(self) -> list[Any]:
        """Hook: the tables that stay local when this query is a correlated subquery."""
        state = self.state
        froms: list[Any] = [state.from_] if state.from_ is not None else []
        froms.extend(t for t, _on, kind in state.joins if kind != "raw")
        return froms

    def _where_clause(self) -> ColumnElement[Any] | None:
        """Hook: the WHERE condition; relation builders AND their constraint with it.
        ``state.scoped`` conditions (a relation's ``on_query``) are AND-ed around the user's
        own group, so an ``or_where`` can't bypass them."""
        return written_conditions(self)

    def _finish(self, stmt: Select[Any]) -> Select[Any]:
        """Hook: the last step of ``to_core()`` (row locks, a per-parent limit wrap)."""
        return stmt

    def to_core(self) -> Select[Any]:
        """The SQLAlchemy Core ``select()`` this builder describes (built fresh each call).
        Compiling it refuses a table that the query does not name (``E_INVALID_IDENTIFIER``)."""
        return self._finish(compile_select(self))

    def _rebind_early_refs(self, stmt: Select[Any]) -> Select[Any]:
        """Columns qualified by a name that was no alias yet when they were written, and is
        one now: point them at that alias (a table of that name would be a wrong extra FROM)."""
        swaps: dict[int, FromClause] = {}
        for name, ref in self.state.early_refs.items():
            found = self._lookup(name)
            if found is not None and found is not ref[0]:
                swaps[id(ref[0])] = found
        return _swap_sources(stmt, swaps)

    def _unknown_qualifiers(self) -> None:
        """Refuse a qualifier that names no table, alias or subquery of this query (nor of an
        enclosing one). A subquery leaves that to the compiled statement (``CheckedSelect``),
        which sees the enclosing query whole, joins added after this subquery included."""
        for name, ref in self.state.early_refs.items():
            if self._lookup(name) is None:
                raise foreign_table_error([ref[1]], name, self._table_names())

    def _table_names(self) -> list[str]:
        names: list[str] = []
        builder: Chainable | None = self
        while builder is not None:
            names.extend(builder.state.aliases)
            builder = builder.state.parent
        return names

    def _scalar(self) -> Any:
        return correlated(self).scalar_subquery()

    def _in_subquery(self) -> Select[Any]:
        return correlated(self)

    def to_sql(self) -> tuple[str, list[Any]]:
        """``(sql, bindings)``: the dialect-compiled SQL and its bound values in order."""
        return to_sql(self.to_core(), self.client.dialect)

    def to_query(self) -> str:
        """The SQL with values inlined, for reading and debugging."""
        return to_query(self.to_core(), self.client.dialect)

    def __str__(self) -> str:
        return self.to_query()

    # -- writes --------------------------------------------------------------------------------
    def _dml_table(self, method: str) -> TableClause:
        frm = self.state.from_
        if isinstance(frm, Alias):
            frm = frm.element
        if not isinstance(frm, TableClause):
            raise LucidError(f"{method}() needs a table: call from_() first")
        return frm

    def _dml_where(self) -> ColumnElement[Any] | None:
        """The WHERE of an UPDATE/DELETE, on the table itself: columns of the FROM alias are
        the table's, and a column of any other table is refused (SQLAlchemy would add that
        table to the statement, ``UPDATE … FROM other``, and write every matching row)."""
        if self.state.joins:
            raise LucidError("update/delete with joins is not supported: use where_in(subquery)")
        where = self._where_clause()
        if where is None:
            return None
        table = self._dml_table("update")
        alias = self.state.from_
        swaps: dict[int, FromClause] = {}
        for name, ref in self.state.early_refs.items():
            found = self._lookup(name)
            if found is not None and found is not ref[0]:
                swaps[id(ref[0])] = table if found is alias else found
        if alias is not table and alias is not None:
            swaps[id(alias)] = table
        where = _swap_sources(where, swaps)
        # The tables the condition names, as a SELECT of it would list them (a correlated
        # subquery's own tables excluded).
        for frm in select(literal_column("1")).where(where).get_final_froms():
            if frm is not table:
                raise foreign_table_error(
                    _columns_of(where, frm), _name_of(frm), self._table_names()
                )
        return where

    def _dml_column(self, table: TableClause, key: Any) -> ColumnElement[Any]:
        """The column ``key`` of the table written to; a qualifier must name that table."""
        if isinstance(key, ColumnReference):
            key = key.qualified_name()
        check_identifier(key)
        qualifier, _, name = key.rpartition(".")
        if qualifier and self._lookup(qualifier) not in (table, self.state.from_):
            raise foreign_table_error(
                [key], qualifier, self._table_names(), "a write sets the columns of its table"
            )
        return table_column(table, name)

    def _update_values(self, values: Any, value: Any, method: str) -> dict[Any, Any]:
        table = self._dml_table(method)
        if isinstance(values, str):
            values = {values: value}
        if not isinstance(values, Mapping) or not values:
            raise _invalid(f"{method}() expects a dict of column -> value")
        out: dict[Any, Any] = {}
        for key, val in values.items():
            col = self._dml_column(table, key)
            out[col] = column_value(col, self._value(val))
        return out

    async def _run_dml(self, stmt: Any) -> int:
        result = await self.client.execute(stmt, write=True, model=self._model_name())
        return result.rowcount

    def _model_name(self) -> str | None:
        return None

    async def update(self, values: Any, value: Any = None) -> int:
        """Update matching rows; returns the number of affected rows.
        ``update({"name": "x"})`` or ``update("name", "x")``."""
        vals = self._update_values(values, value, "update")
        stmt = update(self._dml_table("update")).values(vals)
        where = self._dml_where()
        if where is not None:
            stmt = stmt.where(where)
        return await self._run_dml(stmt)

    def _counter_values(self, column: Any, amount: Any, sign: int) -> dict[Any, Any]:
        table = self._dml_table("increment")
        pairs = column.items() if isinstance(column, Mapping) else [(column, amount)]
        out: dict[Any, Any] = {}
        for key, by in pairs:
            col = self._dml_column(table, key)
            if isinstance(by, bool) or not isinstance(by, int | float):
                raise _invalid(f"increment/decrement amount must be a number, got {by!r}")
            out[col] = col + by * sign
        return out

    async def increment(self, column: Any, amount: int | float = 1) -> int:
        """``column = column + amount``; ``increment({"a": 1, "b": 2})`` for several."""
        stmt = update(self._dml_table("increment")).values(self._counter_values(column, amount, 1))
        where = self._dml_where()
        if where is not None:
            stmt = stmt.where(where)
        return await self._run_dml(stmt)

    async def decrement(self, column: Any, amount: int | float = 1) -> int:
        """``column = column - amount``."""
        stmt = update(self._dml_table("decrement")).values(self._counter_values(column, amount, -1))
        where = self._dml_where()
        if where is not None:
            stmt = stmt.where(where)
        return await self._run_dml(stmt)

    async def delete(self) -> int:
        """Delete matching rows; returns the number of deleted rows."""
        stmt = delete(self._dml_table("delete"))
        where = self._dml_where()
        if where is not None:
            stmt = stmt.where(where)
        return await self._run_dml(stmt)

    del_ = delete

    # -- reading -------------------------------------------------------------------------------
    async def _fetch_scalar(self, stmt: Any) -> Any:
        result = await self.client.execute(stmt, write=False, model=self._model_name())
        return result.rows[0][0] if result.rows else None

    async def count_rows(self) -> int:
        """The number of rows this query matches (respects distinct and group_by)."""
        return int(await self._fetch_scalar(self._count_statement()) or 0)

    async def exists(self) -> bool:
        """Whether this query matches at least one row."""
        stmt = select(exists(self.clone().clear_order().to_core()))
        return bool(await self._fetch_scalar(stmt))

    def _count_statement(self) -> Select[Any]:
        base = self.clone()
        base.state.order_by = []
        base.state.limit = None
        base.state.offset = None
        if (
            base.state.distinct
            or base.state.group_by
            or base.state.havings
            or base.state.has_aggregates
        ):
            sub = base.to_core().subquery("lucid_count")
            return select(func.count().label("total")).select_from(sub)
        # One shared construct: a count's SELECT list keys its statement shape (shape.py).
        base.state.columns = [COUNT_TOTAL]
        return base.to_core()

    async def exec(self) -> Any:
        """Run the query (each builder returns its own kind of rows)."""
        raise NotImplementedError

    def __await__(self) -> Generator[Any, None, Any]:
        return self.exec().__await__()


# ``compile_select``'s default ``where``: ask the builder's hook.
_HOOK: Any = object()


def compile_select(
    builder: Chainable,
    *,
    columns: list[ColumnElement[Any]] | None = None,
    order_by: list[ColumnElement[Any]] | None = None,
    where: Any = _HOOK,
) -> Select[Any]:
    """``builder``'s statement from its hooks, before ``_finish``; ``columns``/``order_by``
    replace the SELECT list and the ORDER BY when given (a variant select of the same rows:
    the id filter of a relation's UPDATE/DELETE); ``where``, the WHERE condition already made
    by ``_where_clause()`` (the global scopes run once per query: ``query/shape.py``)."""
    state = builder.state
    frm = builder._from_clause()
    if frm is None and not state.columns:
        raise LucidError(
            "This query selects from no table: call from_() first", code="E_INVALID_ARGUMENT"
        )
    stmt = _base_select(builder._select_list() if columns is None else columns, frm)
    if where is _HOOK:
        where = builder._where_clause()
    if where is not None:
        stmt = stmt.where(where)
    if state.group_by:
        stmt = stmt.group_by(*state.group_by)
    having = fold(state.havings)
    if having is not None:
        stmt = stmt.having(having)
    order = state.order_by if order_by is None else order_by
    if order:
        stmt = stmt.order_by(*order)
    if state.limit is not None:
        stmt = stmt.limit(state.limit)
    if state.offset is not None:
        stmt = stmt.offset(state.offset)
    if state.distinct:
        stmt = stmt.distinct()
    if state.early_refs:
        stmt = builder._rebind_early_refs(stmt)
    if state.ctes:
        stmt = add_ctes(stmt, state.ctes)
    return stmt


# ``SELECT <list> FROM <from>`` per (select list, FROM) of the same construct objects: a
# model's default columns and table are the same objects on every query of it, so the SELECT
# they open with (each column coerced, the FROM added) is built once. SQLAlchemy statements
# are immutable (``where``, ``order_by``… return copies), so sharing one is safe. Keys hold
# their constructs, so no id is reused while an entry lives; bounded, cleared when full.
_BASE_SELECTS: dict[tuple[Any, ...], Select[Any]] = {}
_BASE_SELECTS_MAX = 1024


def _base_select(columns: Sequence[Any], frm: FromClause | None) -> Select[Any]:
    # ColumnElement hashes by identity; the tuple compares its items by identity first, and
    # only identical objects share a hash here (both are kept alive by the key).
    key = (frm, *columns)
    try:
        return _BASE_SELECTS[key]
    except KeyError:
        pass
    except TypeError:
        # An unhashable item in the list (never a construct SQLAlchemy makes, but be safe).
        key = ()
    stmt: Select[Any] = CheckedSelect(*columns)
    if frm is not None:
        stmt = stmt.select_from(frm)
    if key:
        if len(_BASE_SELECTS) >= _BASE_SELECTS_MAX:
            _BASE_SELECTS.clear()
        _BASE_SELECTS[key] = stmt
    return stmt


def in_values(builder: Chainable, values: Any, method: str) -> Any:
    """The right side of an ``IN`` written on ``builder``: a list of values, or a subquery
    (a builder, a callback building one, a ``Select``, ``db.raw``)."""
    if isinstance(values, Chainable):
        return builder._nested(values)._in_subquery()
    if isinstance(values, Select):
        return values
    if callable(values) and not isinstance(values, Raw):
        sub = builder._subquery_builder()
        run_callback(values, method, sub)
        return sub._in_subquery()
    if isinstance(values, Raw):
        return values
    if isinstance(values, str | bytes | Mapping) or not isinstance(values, Iterable):
        raise LucidError(
            f"{method}() expects a list of values or a subquery, got {values!r}",
            code="E_INVALID_ARGUMENT",
        )
    return list(values)


def resolve_column(builder: Chainable, name: Any) -> ColumnElement[Any]:
    """``name`` as ``builder``'s vocabulary reads a column: unqualified, a column of its own
    table (typed on a model query); qualified, of its tables, aliases or an enclosing query's;
    a construct or builder, as is (``E_INVALID_IDENTIFIER`` for anything else)."""
    return builder._col(name)


def written_conditions(builder: Chainable) -> ColumnElement[Any] | None:
    """The conditions written on ``builder`` (its scoped groups and the user's wheres), without
    the constraint a builder class adds in ``_where_clause``. A qualifier that names no table of
    the query is refused here, outside a subquery (see ``_unknown_qualifiers``)."""
    state = builder.state
    if state.early_refs and state.parent is None:
        builder._unknown_qualifiers()
    user = fold(state.wheres)
    scoped = state.scoped
    if not scoped:
        return user
    parts = [*scoped, user.self_group()] if user is not None else list(scoped)
    return parts[0] if len(parts) == 1 else and_(*parts)


def correlated(builder: Chainable) -> Select[Any]:
    """``builder`` as a correlated subquery: its own tables stay local (``_own_froms``), other
    names refer to the enclosing query."""
    stmt = builder.to_core()
    own = builder._own_froms()
    return stmt.correlate_except(*own) if own else stmt
