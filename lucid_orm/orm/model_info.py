"""Per-model metadata computed once at class creation: columns, table, hooks, scopes, and the
hydration plans (one per result shape) that keep row → model conversion cheap."""

from __future__ import annotations

import copy
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy.sql import ColumnElement, TableClause
from sqlalchemy.sql.elements import ColumnClause
from sqlalchemy.types import NullType

from .columns import ColumnDef, computed, sql_type_for
from .hooks import Scope

if TYPE_CHECKING:
    from .base_model import BaseModel


@dataclass(slots=True)
class HydrationPlan:
    """How to turn rows of one result shape into model attributes and extras."""

    attributes: list[str]  # attribute name per result column
    all_columns: bool  # every result column is a model column: no extras
    extras_index: list[tuple[int, str]]  # result columns that go to extras
    deep_copy: list[str]  # JSON attributes whose original must be a copy
    consume: list[tuple[str, Callable[[Any, str, Any], Any]]]


@dataclass
class ModelInfo:
    """Everything the ORM needs to know about one model class."""

    model: type[BaseModel]
    table_name: str
    columns: dict[str, ColumnDef]  # attribute name -> definition
    primary_key: str | None
    abstract: bool
    hooks: dict[str, list[Callable[..., Any]]]
    scopes: dict[str, Scope]
    computed: dict[str, computed[Any]]
    annotations: dict[str, Any]
    table: TableClause | None = None
    by_column: dict[str, ColumnDef] = field(default_factory=dict)
    select_columns: list[ColumnElement[Any]] = field(default_factory=list)
    plans: dict[tuple[str, ...], HydrationPlan] = field(default_factory=dict)
    types_resolved: bool = False
    relations: dict[str, Any] = field(default_factory=dict)

    def resolve_types(self, namespace: dict[str, Any] | None = None) -> None:
        """Map annotations to SQLAlchemy types; string annotations that name something not yet
        defined are retried on first use."""
        pending = False
        for name, col in self.columns.items():
            if col.has_explicit_type and col.type_ is not None:
                continue
            ann = self.annotations.get(name)
            if isinstance(ann, str):
                try:
                    module = __import__(self.model.__module__, fromlist=["_"])
                    ann = eval(ann, {**vars(typing), **vars(module), **(namespace or {})})
                except Exception:
                    pending = True
                    continue
            col.type_ = sql_type_for(ann) if ann is not None else NullType()
        self.types_resolved = not pending

    def build_table(self) -> None:
        cols: list[ColumnClause[Any]] = []
        for col in self.columns.values():
            cols.append(ColumnClause(col.column_name, col.type_ or NullType()))
        table = TableClause(self.table_name, *cols)
        self.table = table
        self.by_column = {c.column_name: c for c in self.columns.values() if c.column_name}
        self.select_columns = [
            table.c[c.column_name] for c in self.columns.values() if c.column_name
        ]
        self.plans = {}

    def column_for_db(self, name: str) -> ColumnElement[Any] | None:
        if self.table is None or name not in self.by_column:
            return None
        return self.table.c[name]

    def plan(self, keys: Sequence[str]) -> HydrationPlan:
        key = tuple(keys)
        found = self.plans.get(key)
        if found is not None:
            return found
        attributes: list[str] = []
        extras: list[tuple[int, str]] = []
        deep: list[str] = []
        consume: list[tuple[str, Callable[[Any, str, Any], Any]]] = []
        for i, k in enumerate(keys):
            col = self.by_column.get(k)
            if col is None:
                attributes.append(f"\x00{k}")
                extras.append((i, k))
                continue
            attributes.append(col.attribute_name)
            if col.is_json:
                deep.append(col.attribute_name)
            if col.consume is not None:
                consume.append((col.attribute_name, col.consume))
        found = HydrationPlan(attributes, not extras, extras, deep, consume)
        self.plans[key] = found
        return found


def snapshot(values: dict[str, Any], deep: list[str]) -> dict[str, Any]:
    """A copy of attribute values for ``original``; JSON values are copied deeply so in-place
    changes show up as dirty."""
    orig = dict(values)
    for name in deep:
        if name in orig:
            orig[name] = copy.deepcopy(orig[name])
    return orig
