"""Per-model metadata computed once at class creation: columns, table, hooks, scopes, and the
hydration plans (one per result shape) that keep row → model conversion cheap."""

from __future__ import annotations

import copy
import inspect
import sys
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Column, Integer, MetaData, Table
from sqlalchemy.sql import ColumnElement, TableClause
from sqlalchemy.types import NullType

from .columns import ColumnDef, computed, sql_type_for
from .hooks import Scope

if TYPE_CHECKING:
    from .base_model import BaseModel


@dataclass(slots=True)
class HydrationPlan:
    """How to turn rows of one result shape into model attributes and extras."""

    attributes: list[str]  # attribute name per result column
    extras_index: list[tuple[int, str]]  # result columns that go to extras
    deep_copy: list[str]  # JSON attributes whose original must be a copy
    consume: list[tuple[str, Callable[[Any, str, Any], Any]]]
    # ``fill(cls, rows, stamp) -> instances`` (``stamp``: the binding state, or None) for rows
    # of exactly this width, written out once per shape (see _filler); None when JSON copies or
    # consume functions need the slow path.
    fill: Callable[..., list[Any]] | None = None


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
    prepare_map: dict[str, tuple[str, Any]] = field(default_factory=dict)
    timestamps: list[tuple[str, ColumnDef]] = field(default_factory=list)
    # the Python types a primary-key value may have (BaseModel._check_pk_value), once known
    key_types: tuple[type, ...] | None = None

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
                    # In the module of the class that declared it: a model extending a
                    # generated schema class lives in another module, with other imports.
                    module = _module_of(self._declaring_class(name))
                    ann = eval(ann, {**vars(typing), **vars(module), **(namespace or {})})
                except Exception:
                    pending = True
                    continue
            col.type_ = sql_type_for(ann) if ann is not None else NullType()
        self.types_resolved = not pending

    def _declaring_class(self, name: str) -> type:
        """The class whose body annotated column ``name`` (a base for inherited columns)."""
        for klass in self.model.__mro__:
            if name in inspect.get_annotations(klass):
                return klass
        return self.model

    def build_table(self) -> None:
        # A real ``Table`` (in a MetaData of its own) so SQLAlchemy knows the primary key:
        # bulk inserts use it to return generated keys in parameter order.
        cols: list[Column[Any]] = []
        for col in self.columns.values():
            cols.append(
                Column(
                    col.column_name,
                    col.type_ or NullType(),
                    primary_key=col.is_primary,
                    autoincrement=col.is_primary and isinstance(col.type_, Integer),
                )
            )
        schema, _, name = self.table_name.rpartition(".")
        table = Table(name, MetaData(), *cols, schema=schema or None)
        self.table = table
        self.by_column = {c.column_name: c for c in self.columns.values() if c.column_name}
        self.prepare_map = {n: (c.column_name, c.prepare) for n, c in self.columns.items()}
        self.timestamps = [
            (n, c) for n, c in self.columns.items() if c.kind in ("datetime", "date")
        ]
        self.select_columns = [
            table.c[c.column_name] for c in self.columns.values() if c.column_name
        ]
        self.plans = {}
        self.key_types = None

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
        found = HydrationPlan(attributes, extras, deep, consume)
        if not deep and not consume:
            found.fill = _filler(attributes, extras)
        self.plans[key] = found
        return found


def _filler(attributes: list[str], extras: list[tuple[int, str]]) -> Callable[..., list[Any]]:
    """The hydration loop for one result shape, generated: each row is unpacked into locals
    and stored with one subscript per attribute, which is several times cheaper per row than
    ``dict.update(zip(...))``. The code holds only quoted attribute names; ``original`` is
    built lazily from ``_lucid_row`` (the column values) and ``_lucid_row_attrs``."""
    extra_at = {i: k for i, k in extras}
    values = [f"v{i}" for i in range(len(attributes))]
    lines = [f"        {_tuple(values)} = row"]
    column_values: list[str] = []
    names: list[str] = []  # the column attributes, in row order
    for i, attr in enumerate(attributes):
        if i not in extra_at:
            lines.append(f"        d[{attr!r}] = v{i}")
            column_values.append(f"v{i}")
            names.append(attr)
    if extras:
        lines.append(f"        d['_lucid_row'] = {_tuple(column_values)}")
        pairs = ", ".join(f"{k!r}: v{i}" for i, k in extras)
        lines.append(f"        d['_lucid_extras'] = {{{pairs}}}")
    else:
        lines.append("        d['_lucid_row'] = row")
    source = "\n".join(
        [
            "def fill(cls, rows, stamp):",
            "    out = []",
            "    append = out.append",
            "    for row in rows:",
            "        obj = new(cls)",
            "        d = obj.__dict__",
            *lines,
            "        d['_lucid_row_attrs'] = names",
            "        d['_lucid_persisted'] = True",
            "        if stamp is not None:",
            "            d.update(stamp)",
            "        append(obj)",
            "    return out",
        ]
    )
    namespace: dict[str, Any] = {"new": object.__new__, "names": tuple(names)}
    exec(source, namespace)
    return namespace["fill"]  # type: ignore[no-any-return]


def _tuple(names: list[str]) -> str:
    return f"({', '.join(names)},)" if names else "()"


def _module_of(klass: type) -> Any:
    # sys.modules first: a module loaded from a file path (importlib) may not be importable
    # by name.
    return sys.modules.get(klass.__module__) or __import__(klass.__module__, fromlist=["_"])


def snapshot(values: dict[str, Any], deep: list[str]) -> dict[str, Any]:
    """A copy of attribute values for ``original``; JSON values are copied deeply so in-place
    changes show up as dirty."""
    orig = dict(values)
    for name in deep:
        if name in orig:
            orig[name] = copy.deepcopy(orig[name])
    return orig
