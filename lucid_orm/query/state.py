"""``BuilderState``: what a chainable builder has recorded (tables, columns, conditions, order,
paging), kept apart from the vocabulary that records it. The documented extension contract for
builders in ``orm/`` and ``orm/relations/``: they read these fields and override compile hooks."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, or_
from sqlalchemy.sql import ColumnElement, FromClause, TableClause

if TYPE_CHECKING:
    from .chainable import Chainable
    from .cte import CteSpec
    from .raw import Raw

# A join: the joined table (or a raw fragment), its ON condition and its kind
# ("inner", "left", "full", "cross" or "raw").
Join = tuple["FromClause | Raw", "ColumnElement[Any] | None", str]


def fold(clauses: list[tuple[bool, ColumnElement[Any]]]) -> ColumnElement[Any] | None:
    """Combine ``(is_or, clause)`` pairs with SQL precedence: AND binds tighter than OR."""
    if not clauses:
        return None
    if len(clauses) == 1:  # one condition (``where(pk, k)``): itself, whatever its joiner
        return clauses[0][1]
    groups: list[list[ColumnElement[Any]]] = [[]]
    for is_or, clause in clauses:
        if is_or and groups[-1]:
            groups.append([])
        groups[-1].append(clause)
    terms = [g[0] if len(g) == 1 else and_(*g) for g in groups]
    return terms[0] if len(terms) == 1 else or_(*terms)


@dataclass(slots=True, eq=False)
class BuilderState:
    """The recorded parts of one query. Builders mutate it through their vocabulary; compile
    hooks read it and return new constructs, never write it (a builder compiles any number of
    times to the same SQL). ``clone()`` copies every container, so a copy is independent.
    Builders construct it positionally (``Chainable.__init__``, ``clone()``): the keyword form
    calls a default factory per container, twice the cost, on every query built."""

    from_: FromClause | None = None
    #: Tables, aliases and subqueries this query names, by the name a column qualifier uses.
    aliases: dict[str, FromClause] = field(default_factory=dict)
    #: Qualifiers no source had when they were written: name -> (placeholder, identifier).
    early_refs: dict[str, tuple[TableClause, str]] = field(default_factory=dict)
    #: The enclosing query of a subquery (its tables are in scope for qualified names).
    parent: Chainable | None = None
    columns: list[ColumnElement[Any]] = field(default_factory=list)
    #: The user's conditions, ``(is_or, clause)``, folded with SQL precedence.
    wheres: list[tuple[bool, ColumnElement[Any]]] = field(default_factory=list)
    #: Groups AND-ed around the user's conditions (a relation's ``on_query``, see
    #: ``Chainable.scoped``): an ``or_where`` can't escape them.
    scoped: list[ColumnElement[Any]] = field(default_factory=list)
    joins: list[Join] = field(default_factory=list)
    group_by: list[ColumnElement[Any]] = field(default_factory=list)
    havings: list[tuple[bool, ColumnElement[Any]]] = field(default_factory=list)
    order_by: list[ColumnElement[Any]] = field(default_factory=list)
    limit: int | None = None
    offset: int | None = None
    distinct: bool = False
    #: The name of this query as a subquery (``as_()``).
    alias: str | None = None
    #: The index in ``columns`` of an unaliased aggregate that ``as_()`` would name.
    pending_aggregate: int | None = None
    has_aggregates: bool = False
    #: ``with_``/``with_recursive`` CTEs, in order; ``None`` when there are none. Replaced, never
    #: appended to in place, so ``clone()`` shares it.
    ctes: list[CteSpec] | None = None

    def clone(self) -> BuilderState:
        """An independent copy (containers copied, constructs shared: they are immutable).
        On the hot path of every ``paginate``/``count_rows``: positional, no reflection."""
        return BuilderState(
            self.from_,
            dict(self.aliases),
            dict(self.early_refs),
            self.parent,
            list(self.columns),
            list(self.wheres),
            list(self.scoped),
            list(self.joins),
            list(self.group_by),
            list(self.havings),
            list(self.order_by),
            self.limit,
            self.offset,
            self.distinct,
            self.alias,
            self.pending_aggregate,
            self.has_aggregates,
            self.ctes,
        )

    def group(self) -> BuilderState:
        """The state of a where/having callback group: the same tables and columns (shared,
        so a join or an alias made inside is the query's), empty conditions of its own."""
        return replace(self, wheres=[], havings=[])

    def add_where(self, is_or: bool, clause: ColumnElement[Any]) -> None:
        """Record a condition, joined with OR when ``is_or`` (as ``where``/``or_where``)."""
        self.wheres.append((is_or, clause))
