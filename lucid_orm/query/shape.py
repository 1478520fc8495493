"""Statement shapes: a model query's structure with its bound values abstracted.

A model query whose shape was seen before on a connection skips building its SQLAlchemy
statement, SQLAlchemy's cache key and its parameter extraction: the SQL compiled for the first
query of that shape is run with this query's values (``QueryClient.read_shaped``). Its slow
twin is the statement built and run as usual (``to_core()`` + ``QueryClient.execute``): what
runs when the lean read path is off, in a transaction, or when a query has no shape.

A shape is only taken from parts whose SQL this module reads completely; anything else (a raw
fragment, a subquery, a join, a function, an ``IN`` list, an alias…) makes the query
shapeless, and it runs as before — except a ``with_count`` without callback, whose correlated
``count(*)`` is keyed by its relation, its subquery builder class, its alias and its condition
(``ModelQueryBuilder._count_shape``), and a ``has``/``where_has`` ``[NOT] EXISTS`` whose
subquery has nothing but a WHERE this module reads (its callback's conditions included), keyed
by its relation, its subquery builder class, the negation and that WHERE (``_exists_shape``).
What a shape key holds:

- the FROM table, the SELECT list and the ORDER BY columns by identity (model tables and
  columns live as long as their models, and the compiled entry keeps every object it was keyed
  by alive, so an identity is never reused for another object while the entry exists);
- the WHERE condition as a tree (``AND``/``OR``, groups, ``column <op> :value``, ``IS NULL``,
  ``column <op> column``),
  each comparison by its column, its operator, its modifiers and the SQL type of its value —
  the global scopes (soft deletes included) are applied first, so they are part of it;
- whether LIMIT and OFFSET are there (their values are bound), DISTINCT, the row lock and its
  options, and the dialect of the connection.

The values are the comparison parameters, in the order the tree lists them, then LIMIT and
OFFSET. On the first query of a shape the statement is built and compiled, and the position of
each of those values among the compiled statement's parameters recorded (by the identity of the
parameter objects); a compiled statement whose parameters are not all accounted for (SQLAlchemy
added one of its own, or expands a parameter when it runs) is remembered as shapeless.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select
from sqlalchemy.sql import ColumnElement, operators, sqltypes, visitors
from sqlalchemy.sql.elements import (
    BinaryExpression,
    BindParameter,
    BooleanClauseList,
    Grouping,
    Null,
    UnaryExpression,
    _anonymous_label,
)
from sqlalchemy.sql.schema import Column
from sqlalchemy.sql.type_api import TypeEngine
from sqlalchemy.types import TypeDecorator, UserDefinedType

if TYPE_CHECKING:
    from sqlalchemy.engine.interfaces import Dialect

    from ..database.executor import Compiled

# SQL types SQLAlchemy gives a value compared with an untyped column: one shared instance per
# Python type, so they key by identity (any other type not the column's own makes no shape).
_SHARED_TYPES = frozenset(id(t) for t in sqltypes._type_map.values())


class Shape:
    """One query's shape: ``key`` (hashable), the parameter objects whose values it binds (in
    the order of the key), LIMIT and OFFSET, and the WHERE it was read from (the statement of a
    first query is built around that same condition, so its parameters are these)."""

    __slots__ = ("binds", "key", "limit", "offset", "where")

    def __init__(
        self,
        key: Hashable,
        binds: list[BindParameter[Any]],
        limit: int | None,
        offset: int | None,
        where: ColumnElement[Any] | None,
    ) -> None:
        self.key = key
        self.binds = binds
        self.limit = limit
        self.offset = offset
        self.where = where

    def values(self) -> list[Any]:
        """The slot values: the parameters', then LIMIT and OFFSET (``None`` when absent)."""
        out = [bp.value for bp in self.binds]
        out.append(self.limit)
        out.append(self.offset)
        return out


def _column_key(element: Any) -> int | None:
    """A table column by identity; anything else has no shape."""
    if type(element) is Column and element.table is not None:
        return id(element)
    return None


def condition_shape(
    element: Any,
    binds: list[BindParameter[Any]],
    known: tuple[tuple[Any, Hashable, list[BindParameter[Any]]], ...] = (),
) -> Hashable | None:
    """The shape of a WHERE condition, appending its parameters to ``binds``; ``None`` when
    a part of it is not one this module reads completely. ``known``: ``(clause, key,
    parameters)`` for conditions whose shape their builder took when it made them (a
    ``where_has`` EXISTS), matched by identity."""
    for clause, key, parameters in known:
        if clause is element:
            binds.extend(parameters)
            return key
    kind = type(element)
    # A comparison first: the usual WHERE (``where(pk, k)``) is one.
    if kind is BinaryExpression:
        column = element.left
        if type(column) is not Column or column.table is None:
            return None
        left = id(column)
        modifiers = element.modifiers
        mods: Hashable = ()
        if modifiers:
            try:
                mods = tuple(sorted(modifiers.items()))
                hash(mods)
            except TypeError:
                return None
        right = element.right
        right_kind = type(right)
        if right_kind is BindParameter:
            if right.expanding or right.literal_execute or right.callable is not None:
                return None
            type_ = right.type
            if type_ is column.type:
                type_key: Hashable = "column"
            elif id(type_) in _SHARED_TYPES:
                type_key = id(type_)
            else:
                return None
            binds.append(right)
            return ("?", left, element.operator, element.negate, mods, type_key)
        if right_kind is Null:
            return ("null", left, element.operator, element.negate, mods)
        right_column = _column_key(right)
        if right_column is not None:
            # Two table columns (a relation's correlation): no value, both by identity.
            return ("column", left, right_column, element.operator, element.negate, mods)
        return None
    if kind is BooleanClauseList:
        parts: list[Hashable] = [element.operator]
        for clause in element.clauses:
            shape = condition_shape(clause, binds, known)
            if shape is None:
                return None
            parts.append(shape)
        return tuple(parts)
    if kind is Grouping:
        inner = condition_shape(element.element, binds, known)
        return None if inner is None else ("(", inner)
    return None


def order_shape(items: list[Any]) -> Hashable | None:
    """The shape of an ORDER BY: table columns with a direction, by identity."""
    parts: list[Hashable] = []
    for item in items:
        if type(item) is UnaryExpression and item.operator is None:
            column = _column_key(item.element)
            if column is None:
                return None
            parts.append((column, item.modifier))
        else:
            return None
    return tuple(parts)


def columns_shape(columns: list[Any]) -> Hashable | None:
    """The shape of a SELECT list: each item by identity (``None`` for an empty list)."""
    parts: list[int] = []
    for column in columns:
        if (type(column) is Column and column.table is not None) or column is COUNT_TOTAL:
            parts.append(id(column))
        else:
            return None
    return tuple(parts)


# -- plain comparisons, built directly ------------------------------------------------------
#
# ``column <op> value`` through SQLAlchemy's operator dispatch (the type's comparator, the
# operator lookup, the coercion of the value) costs several times the two objects it makes.
# For a table column of a plain type (numbers, strings: their comparator is the default one)
# and a value of an exact built-in type, ``plain_compare`` makes the same objects directly:
# the parameter SQLAlchemy would make (the column's name as key, the type the column's type
# gives a compared value) and the comparison with its negation.

_NEGATIONS: dict[Any, Any] = {
    operator.eq: operator.ne,
    operator.ne: operator.eq,
    operator.lt: operator.ge,
    operator.ge: operator.lt,
    operator.gt: operator.le,
    operator.le: operator.gt,
}
_PLAIN_VALUES = frozenset({int, str, float})
_PLAIN_BASES = (sqltypes.Integer, sqltypes.String, sqltypes.Float, sqltypes.Numeric)
_NOT_PLAIN = (sqltypes.Enum, sqltypes.JSON, sqltypes.ARRAY, TypeDecorator, UserDefinedType)
_plain_types: dict[type, bool] = {}


def _is_plain(type_: Any) -> bool:
    """Whether SQLAlchemy compares a column of ``type_`` through its default comparator."""
    cls = type(type_)
    found = _plain_types.get(cls)
    if found is None:
        found = (
            isinstance(type_, _PLAIN_BASES)
            and not isinstance(type_, _NOT_PLAIN)
            and cls.comparator_factory.operate is TypeEngine.Comparator.operate
            and cls.comparator_factory._resolve_operator_lookup
            is TypeEngine.Comparator._resolve_operator_lookup
        )
        classes = getattr(operators, "_OPERATOR_CLASSES", None)
        if found and classes is not None:
            # SQLAlchemy 2.1 warns on an operator outside the type's operator classes.
            found = all(classes[op] & type_.operator_classes for op in _NEGATIONS)
        _plain_types[cls] = found
    return found


# ``BindParameter(key, value, type_=type_, unique=True)`` and ``BinaryExpression(column, bind,
# op, type_=BOOLEANTYPE, negate=..., modifiers=...)`` run a dozen Python calls each (the
# anonymous key's regex, ``self_group`` twice, the type coercion) to set attributes that,
# for a table column compared with a fresh parameter, depend only on the key, the type and
# the operator. ``_bind`` and ``_binary`` set the same attributes directly: a parameter's
# from the snapshot of one SQLAlchemy made for that key and type (its anonymous key made
# anew from this object's identity, as SQLAlchemy does), a comparison's as its __init__
# would (``self_group`` of a column and of a parameter under a comparison is the element
# itself). tests/orm/test_statement_shapes.py compares every attribute with SQLAlchemy's.
_BINDS: dict[tuple[str | None, int], tuple[TypeEngine[Any], dict[str, Any], str]] = {}
_BINDS_MAX = 4096
_new_str = str.__new__


def _bind(key: str | None, value: Any, type_: TypeEngine[Any]) -> BindParameter[Any]:
    """``BindParameter(key, value, type_=type_, unique=True)``: the same attributes."""
    found = _BINDS.get((key, id(type_)))
    if found is None or found[0] is not type_:
        made: BindParameter[Any] = BindParameter(key, value, type_=type_, unique=True)
        if len(_BINDS) >= _BINDS_MAX:
            _BINDS.clear()
        # The entry keeps the type alive: its identity is not reused while it is cached.
        anon_key = made._anon_map_key
        # Kept only when the parameter's keys have the form set below (always, for a
        # unique parameter of SQLAlchemy 2.1): else every call takes the constructor.
        if (
            anon_key is not None
            and type(made.key) is _anonymous_label
            and made.key == f"%({anon_key})s"
            and made._identifying_key is made.key
            and anon_key.startswith(f"{id(made)} ")
        ):
            body = anon_key.split(" ", 1)[1]
            _BINDS[(key, id(type_))] = (type_, dict(made.__dict__), body)
        return made
    bind: BindParameter[Any] = BindParameter.__new__(BindParameter)
    anon = f"{id(bind)} {found[2]}"
    # ``_anonymous_label(text)``: a str with ``quote`` None (its constructor's two Python
    # ``__new__`` calls set nothing else).
    label = _new_str(_anonymous_label, f"%({anon})s")
    label.quote = None
    attrs = found[1].copy()
    attrs["key"] = attrs["_identifying_key"] = label
    attrs["_anon_map_key"] = anon
    attrs["value"] = value
    bind.__dict__ = attrs
    return bind


# What ``BinaryExpression.__init__`` sets for a comparison of a column with a parameter
# (``_binary``); ``_binary_direct``: whether it was so (``None`` until the first comparison).
_BINARY_ATTRIBUTES = frozenset(
    {
        "_orig",
        "_propagate_attrs",
        "left",
        "right",
        "operator",
        "type",
        "negate",
        "_is_implicitly_boolean",
        "modifiers",
    }
)
_binary_direct: bool | None = None
_new_object = object.__new__


def _binary(
    column: Column[Any], bind: BindParameter[Any], op: Any, negate: Any, modifiers: dict[str, Any]
) -> BinaryExpression[Any]:
    """``BinaryExpression(column, bind, op, type_=BOOLEANTYPE, negate=negate,
    modifiers=modifiers)`` for a comparison ``op`` (``_NEGATIONS`` or LIKE)."""
    global _binary_direct
    if not _binary_direct:
        made = BinaryExpression(
            column, bind, op, type_=sqltypes.BOOLEANTYPE, negate=negate, modifiers=modifiers
        )
        if _binary_direct is None:
            # The first comparison says whether SQLAlchemy's constructor makes what the
            # direct path below does: exactly these attributes, an ``_orig`` (the operands'
            # ``__hash__()``) that ``hash()`` gives as well (no method call), and no
            # ``__new__`` of the class's own. If a release differs, every comparison takes it.
            _binary_direct = (
                made.__dict__.keys() == _BINARY_ATTRIBUTES
                and made._orig == (hash(column), hash(bind))
                and BinaryExpression.__new__ is _new_object
            )
        return made
    expr: BinaryExpression[Any] = _new_object(BinaryExpression)
    expr.__dict__ = {
        "_orig": (hash(column), hash(bind)),
        "_propagate_attrs": column._propagate_attrs or bind._propagate_attrs,
        "left": column,
        "right": bind,
        "operator": op,
        "type": sqltypes.BOOLEANTYPE,
        "negate": negate,
        "_is_implicitly_boolean": True,
        "modifiers": modifiers,
    }
    return expr


def plain_compare(column: Any, op: Any, value: Any) -> ColumnElement[Any] | None:
    """``column <op> value`` as SQLAlchemy makes it, without its dispatch; ``None`` unless
    ``column`` is a table column of a plain type, ``op`` a comparison and ``value`` an int, a
    str or a float (not a bool, not a subclass)."""
    if type(column) is not Column or type(value) not in _PLAIN_VALUES:
        return None
    negate = _NEGATIONS.get(op)
    if negate is None:
        return None
    type_ = column.type
    plain = _plain_types.get(type(type_))  # (``_is_plain``'s memo, read here first)
    if not (plain if plain is not None else _is_plain(type_)):
        return None
    bind_type = type_.coerce_compared_value(op, value)
    if bind_type._isnull:
        return None
    return _binary(column, _bind(column.key, value, bind_type), op, negate, {})


def plain_like(column: Any, value: Any) -> ColumnElement[Any] | None:
    """``column.like(value)`` as SQLAlchemy makes it, without its dispatch; ``None`` unless
    ``column`` is a table column of a plain string type and ``value`` a str."""
    if type(column) is not Column or type(value) is not str:
        return None
    type_ = column.type
    if not isinstance(type_, sqltypes.String) or not _is_plain(type_):
        return None
    classes = getattr(operators, "_OPERATOR_CLASSES", None)
    if classes is not None and not classes[operators.like_op] & type_.operator_classes:
        return None
    op = operators.like_op
    bind_type = type_.coerce_compared_value(op, value)
    if bind_type._isnull:
        return None
    bind = _bind(column.key, value, bind_type)
    return _binary(column, bind, op, operators.not_like_op, {"escape": None})


def plain_literal_compare(column: Any, op: Any, value: Any) -> ColumnElement[Any] | None:
    """``column <op> literal(value, column.type)`` without the dispatch (the keyset of a
    cursor page), under ``plain_compare``'s conditions."""
    if type(column) is not Column or type(value) not in _PLAIN_VALUES:
        return None
    negate = _NEGATIONS.get(op)
    if negate is None or not _is_plain(column.type):
        return None
    return _binary(column, _bind(None, value, column.type), op, negate, {})


def plain_order(column: Any, descending: bool) -> ColumnElement[Any] | None:
    """``column.asc()``/``.desc()`` as SQLAlchemy makes it, without its dispatch (several
    calls deep in 2.1, ``sqlalchemy.asc()`` included); ``None`` unless ``column`` is a table
    column."""
    if type(column) is not Column:
        return None
    # Immutable, so one per column and direction serves every query (the entry keeps the
    # column alive: its identity is not reused while it is cached).
    found = _ORDERS.get((id(column), descending))
    if found is not None and found.element is column:
        return found
    ordered: UnaryExpression[Any] = UnaryExpression(
        column, modifier=operators.desc_op if descending else operators.asc_op
    )
    if len(_ORDERS) >= _ORDERS_MAX:
        _ORDERS.clear()
    _ORDERS[(id(column), descending)] = ordered
    return ordered


# ``plain_order``'s constructs, by column identity and direction. Bounded: columns of ad-hoc
# tables would otherwise pile up (past the bound it starts over).
_ORDERS: dict[tuple[int, bool], UnaryExpression[Any]] = {}
_ORDERS_MAX = 4096


def _count_total() -> ColumnElement[Any]:
    from sqlalchemy import func

    return func.count().label("total")


#: ``count(*) AS total``, the SELECT list of ``count_rows`` (one shared construct, immutable).
COUNT_TOTAL: ColumnElement[Any] = _count_total()


def compile_shape(
    shape: Shape, build: Callable[[], Select[Any]], dialect: Dialect
) -> Compiled | None:
    """Compile the statement of ``shape``'s first query (``build``, made around
    ``shape.where``) and record where each slot value goes among its parameters
    (``entry.extra["slots"]``, ``None`` when the statement has parameters no slot fills).
    ``None`` when the statement does not build or compile: the slow twin raises the error."""
    from ..database.executor import compile_static

    try:
        stmt = build()
        entry = compile_static(stmt, dialect)
    except Exception:
        return None
    entry.extra["slots"], entry.extra["constants"] = _slots(shape, stmt, entry)
    return entry


def _slots(shape: Shape, stmt: Select[Any], entry: Compiled) -> tuple[list[int] | None, list[Any]]:
    """Where each parameter of ``entry`` takes its value from: the index of a slot of
    ``shape.values()`` (then of the constants that follow them), and those constants: the
    parameters the compiler made itself, outside the statement (SQLite's ``OFFSET 0`` after a
    LIMIT without offset). ``None`` when a parameter of the statement is not one of the shape's.
    """
    if entry.expanding or not entry.keys or "*" in entry.keys:
        return None, []
    binds = entry.compiled.binds
    index = {id(bp): i for i, bp in enumerate(shape.binds)}
    count = len(shape.binds)
    limit = getattr(stmt, "_limit_clause", None)
    offset = getattr(stmt, "_offset_clause", None)
    # Every parameter object of the statement itself: one of them the shape does not hold
    # carries a value of this query that another query of the shape would not share.
    own = {id(node) for node in visitors.iterate(stmt) if isinstance(node, BindParameter)}
    slots: list[int] = []
    constants: list[Any] = []
    for name in entry.positiontup:
        bp = binds.get(name)
        found = index.get(id(bp))
        if found is not None:
            slots.append(found)
        elif bp is None:
            return None, []
        elif bp is limit and shape.limit is not None:
            slots.append(count)
        elif bp is offset and shape.offset is not None:
            slots.append(count + 1)
        elif (
            id(bp) not in own
            and bp is not limit
            and bp is not offset
            and bp.callable is None
            and not bp.expanding
        ):
            slots.append(count + 2 + len(constants))
            constants.append(bp.value)
        else:
            return None, []
    return slots, constants
