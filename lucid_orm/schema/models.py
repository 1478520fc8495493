"""Tables from models: what a model class declares, said in the schema builder's vocabulary.

One ``ColumnSpec`` per model column — the ``TableBuilder`` method and modifiers that make it —
serves both ``db.create_tables(User, Post)`` (the calls made on a ``TableBuilder``) and
``make:migration --auto`` (the same calls written as code, ``schema/autogenerate.py``).

What is inferred from a model:

* the column type from the annotation or ``column(type_=...)``: ``int`` → ``big_integer``,
  ``str`` → ``string`` (``VARCHAR(255)``; ``type_=String(n)``/``Text()`` for others), ``bool``,
  ``float`` → ``double``, ``Decimal`` → ``decimal(20, 6)`` (``type_=Numeric(p, s)`` for
  others), ``datetime`` → ``timestamp``, ``date``, ``time``, ``dict``/``list``/``Any`` →
  ``json``, ``bytes`` → ``binary``, ``uuid.UUID`` → ``uuid``, an ``Enum`` → ``string``; any
  other explicit type is written as its SQL (``specific_type``);
* nullability: ``X | None`` (or ``Optional[X]``) is nullable, anything else ``NOT NULL``;
* the primary key: an ``int`` key auto-increments (``big_increments``), others are plain
  primary keys;
* foreign keys: a ``belongs_to``, ``has_one`` or ``has_many`` between two of the given models
  whose key on the parent is its primary key makes ``child.fk REFERENCES parent(pk)`` (no
  ``ON DELETE`` action). ``many_to_many`` pivot tables and ``has_many_through`` are not models:
  nothing is inferred for them.

Not inferred: indexes, unique constraints, server defaults, check constraints.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine.interfaces import Dialect as SADialect
from sqlalchemy.types import NullType, TypeDecorator, TypeEngine

from ..errors import LucidError
from ..orm.columns import (
    BoolType,
    DecimalType,
    EnumValue,
    FloatType,
    UTCDateTime,
    UUIDType,
    allows_none,
)
from ..orm.model_info import info_of
from ..query.raw import Raw
from .builder import ColumnBuilder, Schema, TableBuilder

if TYPE_CHECKING:
    from ..database.query_client import Client
    from ..orm.base_model import BaseModel

_INCREMENTS = ("increments", "big_increments")
# Decimal columns without a declared precision: 20 digits, 6 after the point.
DECIMAL_DEFAULT = (20, 6)
STRING_DEFAULT = 255


@dataclass
class ColumnSpec:
    """One column as the schema builder makes it: ``method`` is the ``TableBuilder`` method
    (``"string"``), ``args`` its arguments after the name, then the modifiers."""

    name: str
    method: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    nullable: bool = True
    primary: bool = False
    unsigned: bool = False
    references: str | None = None
    default_sql: str | None = None

    def declare(self, table: TableBuilder) -> ColumnBuilder:
        """Make this column on ``table`` (a ``create_table``/``alter_table`` callback's ``t``)."""
        col: ColumnBuilder = getattr(table, self.method)(self.name, *self.args, **self.kwargs)
        if self.unsigned:
            col.unsigned()
        if self.primary and self.method not in _INCREMENTS:
            col.primary()
        if not self.nullable and not self.primary:
            col.not_nullable()
        if self.references is not None:
            col.references(self.references)
        if self.default_sql is not None:
            col.default_to(Raw(self.default_sql))
        return col

    def render(self, var: str = "table") -> str:
        """The same call as Python source: ``table.string("email").not_nullable()``."""
        parts = [json.dumps(self.name), *(_literal(a) for a in self.args)]
        parts += [f"{k}={_literal(v)}" for k, v in self.kwargs.items()]
        code = f"{var}.{self.method}({', '.join(parts)})"
        if self.unsigned:
            code += ".unsigned()"
        if self.primary and self.method not in _INCREMENTS:
            code += ".primary()"
        if not self.nullable and not self.primary:
            code += ".not_nullable()"
        if self.references is not None:
            code += f".references({json.dumps(self.references)})"
        if self.default_sql is not None:
            code += f".default_to(db.raw({json.dumps(self.default_sql)}))"
        return code

    def type_label(self) -> str:
        """``string(255)`` for summaries."""
        args = ", ".join(_literal(a) for a in self.args)
        return f"{self.method}({args})"


def _literal(value: Any) -> str:
    return json.dumps(value) if isinstance(value, str) else repr(value)


@dataclass
class TableSpec:
    """A model's table: its name, its columns in declaration order."""

    name: str
    model: type[BaseModel] | None
    columns: list[ColumnSpec]

    def column(self, name: str) -> ColumnSpec | None:
        return next((c for c in self.columns if c.name == name), None)


# -- types -------------------------------------------------------------------------------------
def spec_for_type(name: str, type_: TypeEngine[Any], dialect: SADialect | None) -> ColumnSpec:
    """The builder method (and its arguments) of a column of SQLAlchemy type ``type_``: the
    model's types first, then SQLAlchemy's generic ones, else ``specific_type``."""
    found = _model_type(name, type_) or _generic_type(name, type_)
    if found is not None:
        return found
    if isinstance(type_, TypeDecorator):
        return spec_for_type(name, type_.impl_instance, dialect)
    if isinstance(type_, NullType):
        raise LucidError(
            f'Cannot tell the type of column "{name}": annotate it (int, str, datetime…) or '
            "give column(type_=...)",
            code="E_INVALID_MODEL",
        )
    if dialect is None:
        raise LucidError(f'Column "{name}" has a type only a dialect can spell: {type_!r}')
    return ColumnSpec(name, "specific_type", (type_.compile(dialect=dialect),))


def _model_type(name: str, type_: TypeEngine[Any]) -> ColumnSpec | None:
    if isinstance(type_, BoolType):
        return ColumnSpec(name, "boolean")
    if isinstance(type_, UTCDateTime):
        return ColumnSpec(name, "timestamp")
    if isinstance(type_, FloatType):
        return ColumnSpec(name, "double")
    if isinstance(type_, DecimalType):
        return ColumnSpec(name, "decimal", DECIMAL_DEFAULT)
    if isinstance(type_, UUIDType):
        return ColumnSpec(name, "uuid")
    if isinstance(type_, EnumValue):
        return ColumnSpec(name, "string")
    return None


def _generic_type(name: str, type_: TypeEngine[Any]) -> ColumnSpec | None:
    # Subclasses before their bases: Boolean, Float before Numeric, Text before String…
    if isinstance(type_, sa.Boolean):
        return ColumnSpec(name, "boolean")
    if isinstance(type_, sa.DateTime):
        return ColumnSpec(name, "timestamp", kwargs={"use_tz": True} if type_.timezone else {})
    if isinstance(type_, sa.Date):
        return ColumnSpec(name, "date")
    if isinstance(type_, sa.Time):
        return ColumnSpec(name, "time")
    if isinstance(type_, sa.Uuid):
        return ColumnSpec(name, "uuid")
    if isinstance(type_, sa.Float):
        return ColumnSpec(name, "double")
    if isinstance(type_, sa.Numeric) and not isinstance(type_, sa.Integer):
        precision = type_.precision or DECIMAL_DEFAULT[0]
        scale = type_.scale if type_.scale is not None else DECIMAL_DEFAULT[1]
        return ColumnSpec(name, "decimal", (precision, scale))
    if isinstance(type_, sa.SmallInteger):
        return ColumnSpec(name, "small_integer")
    if isinstance(type_, sa.BigInteger):
        return ColumnSpec(name, "big_integer")
    if isinstance(type_, sa.Integer):
        return ColumnSpec(name, "integer")
    if isinstance(type_, sa.Text):
        return ColumnSpec(name, "text")
    if isinstance(type_, sa.Enum):
        return ColumnSpec(name, "string")
    if isinstance(type_, sa.String):
        length = type_.length
        return ColumnSpec(name, "string", (length,) if length and length != STRING_DEFAULT else ())
    if isinstance(type_, sa.JSON):
        return ColumnSpec(name, "json")
    if isinstance(type_, sa.LargeBinary):
        return ColumnSpec(name, "binary")
    return None


def _nullable(annotation: Any) -> bool:
    """Whether a column annotation admits ``None`` (no annotation: nullable)."""
    if isinstance(annotation, str):
        return bool(re.search(r"\bNone\b|\bOptional\[|\bAny\b", annotation))
    return allows_none(annotation, untyped=True)


# -- models → tables ---------------------------------------------------------------------------
def table_specs(
    models: Sequence[type[BaseModel]], dialect: SADialect | None = None
) -> list[TableSpec]:
    """The tables of ``models``, referenced tables before the tables referencing them, with
    the foreign keys the relations between them imply (see the module docstring). A foreign
    key that would close a cycle of tables is left out."""
    if not models:
        raise LucidError("Name at least one model", code="E_INVALID_ARGUMENT")
    specs: dict[str, TableSpec] = {}
    for model in models:
        spec = _table_spec(model, dialect)
        if spec.name in specs:
            continue
        specs[spec.name] = spec
    references = _references(models, specs)
    order = _dependency_order(list(specs), references)
    for (child, column), (parent, key) in references.items():
        if order.index(parent) > order.index(child):
            continue  # a cycle: this key would point at a table created later
        col = specs[child].column(column)
        target = specs[parent].column(key)
        if col is None or target is None:
            continue
        col.references = f"{parent}.{key}"
        if target.method in _INCREMENTS and col.method in ("integer", "big_integer"):
            # MySQL requires a key's type to equal the referenced one (unsigned there).
            col.unsigned = True
    return [specs[name] for name in order]


def _table_spec(model: type[BaseModel], dialect: SADialect | None) -> TableSpec:
    info = info_of(model)
    columns: list[ColumnSpec] = []
    for attribute, col in info.columns.items():
        spec = spec_for_type(col.column_name, col.type_ or NullType(), dialect)
        if col.is_primary:
            spec.primary = True
            spec.nullable = False
            if spec.method in ("integer", "big_integer"):
                spec.method = "big_increments"
        else:
            spec.nullable = _nullable(info.annotations.get(attribute))
        columns.append(spec)
    return TableSpec(info.table_name, model, columns)


def _references(
    models: Iterable[type[BaseModel]], specs: dict[str, TableSpec]
) -> dict[tuple[str, str], tuple[str, str]]:
    """``(child table, column) -> (parent table, primary key column)`` from the relations."""
    found: dict[tuple[str, str], tuple[str, str]] = {}
    for model in models:
        for relation in info_of(model).relations.values():
            kind = getattr(relation, "type", "")
            if kind not in ("belongsTo", "hasOne", "hasMany"):
                continue
            relation.boot()
            related = relation.related_model()
            child, parent = (model, related) if kind == "belongsTo" else (related, model)
            child_table, parent_table = info_of(child).table_name, info_of(parent).table_name
            if child_table not in specs or parent_table not in specs:
                continue
            parent_info = info_of(parent)
            if parent_info.primary_key is None:
                continue
            pk = parent_info.columns[parent_info.primary_key].column_name
            if relation.local_key_column_name != pk:
                continue  # only keys that reference a primary key (unique by definition)
            found.setdefault((child_table, relation.foreign_key_column_name), (parent_table, pk))
    return found


def _dependency_order(
    names: list[str], references: dict[tuple[str, str], tuple[str, str]]
) -> list[str]:
    """``names`` with each table after the tables it references, else in the given order."""
    depends: dict[str, set[str]] = {name: set() for name in names}
    for (child, _), (parent, _) in references.items():
        if child != parent:
            depends[child].add(parent)
    order: list[str] = []
    pending = list(names)
    while pending:
        ready = next((n for n in pending if depends[n] <= set(order)), pending[0])
        order.append(ready)
        pending.remove(ready)
    return order


# -- db.create_tables / drop_tables -------------------------------------------------------------
async def create_tables(
    client: Client, models: Sequence[type[BaseModel]], *, if_not_exists: bool = False
) -> list[str]:
    """Create the tables of ``models`` on ``client`` in dependency order; returns their names.
    ``if_not_exists``: tables that exist already are left as they are."""
    from ..database.ddl import client_connection

    dialect = client_connection(client).dialect
    specs = table_specs(models, dialect)
    schema = Schema()
    for spec in specs:
        define = _definer(spec)
        if if_not_exists:
            schema.create_table_if_not_exists(spec.name, define)
        else:
            schema.create_table(spec.name, define)
    await schema.execute(client)
    return [spec.name for spec in specs]


def _definer(spec: TableSpec) -> Any:
    def define(table: TableBuilder) -> None:
        for col in spec.columns:
            col.declare(table)

    return define


async def drop_tables(client: Client, models: Sequence[type[BaseModel]]) -> list[str]:
    """Drop the tables of ``models`` that exist, referencing tables first; returns their
    names in the order dropped."""
    names = [spec.name for spec in reversed(table_specs(models))]
    schema = Schema()
    for name in names:
        schema.drop_table_if_exists(name)
    await schema.execute(client)
    return names
