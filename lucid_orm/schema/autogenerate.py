"""``make:migration NAME --auto``: the differences between the models and the live database,
found by Alembic's ``compare_metadata`` and written as a migration in the schema builder's
vocabulary (``create_table``/``alter_table`` callbacks, ``t.string("bio")``, ``.alter()``,
``drop_column``), with a ``down()`` that undoes it. Nothing runs: the file is for review.

What is compared, for the tables of the models only (other tables are never touched):

* tables the models have and the database lacks → ``create_table`` (with the columns, keys
  and foreign keys ``schema/models.py`` infers);
* columns added to a model → added; columns the database has and the model lacks → dropped
  (``down()`` adds them back, empty);
* nullability changes, and type changes across kinds (integer, decimal, float, string,
  boolean, date, time, datetime, json, binary, uuid) → ``.alter()``, restating the column
  (a change of width within a kind — ``INTEGER``/``BIGINT``, ``VARCHAR(100)``/``(255)`` —
  is not reported: the models don't say it);
* foreign keys the relations imply on existing columns → ``t.foreign(...)``.

Not compared: indexes, unique constraints, server defaults, and foreign keys the database has
beyond the models'.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.dialects import mysql
from sqlalchemy.types import TypeDecorator, TypeEngine

from .._loader import defined_subclasses
from ..errors import LucidError
from .builder import TableBuilder
from .ddl import NAMING, _table_items, pk_name
from .models import ColumnSpec, TableSpec, spec_for_type, table_specs

if TYPE_CHECKING:
    from ..orm.base_model import BaseModel


# -- finding the models ------------------------------------------------------------------------
def find_models(module: str | None, folder: Path, root: Path) -> list[type[BaseModel]]:
    """The concrete models defined in ``module`` (a dotted path, a package's modules
    included) or else in the Python files under ``folder`` (the configuration's
    ``MODELS_PATH``), imported with ``root`` on ``sys.path``. One model per table: the first
    found (a subclass mapping the same table adds no columns of its own to compare)."""
    from ..orm.base_model import BaseModel

    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    modules = _import_package(module) if module else _import_folder(folder, root)
    found: dict[str, type[BaseModel]] = {}
    for mod in modules:
        for model in defined_subclasses(mod, BaseModel):
            if not model._lucid.abstract:
                found.setdefault(model._lucid.table_name, model)
    if not found:
        where = f'module "{module}"' if module else f'"{folder}" (MODELS_PATH)'
        raise LucidError(
            f"No models found in {where}: point --models at the module that defines them",
            code="E_NO_MODELS",
        )
    return list(found.values())


def _import(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise LucidError(f'Cannot import models module "{name}": {exc}') from exc


def _import_package(name: str) -> list[ModuleType]:
    top = _import(name)
    modules = [top]
    for info in pkgutil.walk_packages(getattr(top, "__path__", []), prefix=f"{name}."):
        modules.append(_import(info.name))
    return modules


def _import_folder(folder: Path, root: Path) -> list[ModuleType]:
    if not folder.is_dir():
        raise LucidError(
            f'No models folder "{folder}": set MODELS_PATH or pass --models module.path',
            code="E_NO_MODELS",
        )
    modules = []
    for path in sorted(folder.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts if path.is_relative_to(root) else ()
        if not parts or not all(p.isidentifier() for p in parts):
            raise LucidError(
                f'Cannot import "{path}": MODELS_PATH must be a folder inside the project '
                f'("{root}") made of Python identifiers, or pass --models module.path',
                code="E_INVALID_CONFIG",
            )
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules.append(_import(".".join(parts)))
    return modules


# -- the differences ---------------------------------------------------------------------------
@dataclass
class ColumnChange:
    """A column restated with ``.alter()``: ``new`` in ``up()``, ``old`` in ``down()``."""

    new: ColumnSpec
    old: ColumnSpec
    changes: list[str]


@dataclass
class TableChanges:
    """What changes in one existing table."""

    name: str
    added: list[ColumnSpec] = field(default_factory=list)
    dropped: list[ColumnSpec] = field(default_factory=list)
    altered: list[ColumnChange] = field(default_factory=list)
    foreign: list[ColumnSpec] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.added or self.dropped or self.altered or self.foreign)


@dataclass
class Plan:
    """The differences between the models and the database."""

    created: list[TableSpec] = field(default_factory=list)
    altered: list[TableChanges] = field(default_factory=list)
    compared: int = 0

    def __bool__(self) -> bool:
        return bool(self.created or self.altered)

    def summary(self) -> list[str]:
        """One line per change, for the console and the file's docstring."""
        lines = [f"+ table {t.name} ({len(t.columns)} columns)" for t in self.created]
        for table in self.altered:
            name = table.name
            lines += [
                f"+ column {name}.{c.name} {c.type_label()}"
                + ("" if c.nullable else " NOT NULL (existing rows need a value: review)")
                for c in table.added
            ]
            lines += [f"- column {name}.{c.name}" for c in table.dropped]
            lines += [
                f"~ column {name}.{c.new.name}: {', '.join(c.changes)}" for c in table.altered
            ]
            lines += [f"+ foreign key {name}.{c.name} -> {c.references}" for c in table.foreign]
        return lines


def diff(sync_conn: Any, models: Sequence[type[BaseModel]]) -> Plan:
    """Compare ``models`` with the database of ``sync_conn`` (run it with ``run_sync``)."""
    dialect = sync_conn.dialect
    inspector = sa.inspect(sync_conn)
    existing = set(inspector.get_table_names())
    specs = table_specs(models, dialect)
    _match_referenced_types(specs, existing, inspector, dialect)
    metadata = _metadata(specs, dialect.name)
    context = MigrationContext.configure(
        connection=sync_conn,
        opts={
            "compare_type": _compare_type,
            "include_object": _include,
            "target_metadata": metadata,
        },
    )
    by_name = {spec.name: spec for spec in specs}
    plan = Plan(compared=len(specs))
    changes: dict[str, TableChanges] = {}
    for entry in compare_metadata(context, metadata):
        items = entry if isinstance(entry, list) else [entry]
        _record(items, plan, changes, by_name, dialect)
    order = [spec.name for spec in specs]
    plan.created.sort(key=lambda t: order.index(t.name))
    added_names = {(t.name, c.name) for t in changes.values() for c in t.added}
    plan.altered = [
        _without_duplicate_keys(t, added_names)
        for t in sorted(changes.values(), key=lambda t: order.index(t.name))
    ]
    plan.altered = [t for t in plan.altered if t]
    return plan


def _without_duplicate_keys(table: TableChanges, added: set[tuple[str, str]]) -> TableChanges:
    # An added column's ``.references()`` makes its foreign key already.
    table.foreign = [c for c in table.foreign if (table.name, c.name) not in added]
    return table


def _record(
    items: list[Any],
    plan: Plan,
    changes: dict[str, TableChanges],
    specs: dict[str, TableSpec],
    dialect: Any,
) -> None:
    kind = items[0][0]
    if kind == "add_table":
        plan.created.append(specs[items[0][1].name])
        return
    if kind == "add_column":
        _, _, table, col = items[0]
        found = specs[table].column(col.name)
        if found is not None:
            changes.setdefault(table, TableChanges(table)).added.append(found)
        return
    if kind == "remove_column":
        _, _, table, col = items[0]
        changes.setdefault(table, TableChanges(table)).dropped.append(
            reflected_spec(col.name, col.type, col.nullable, col.server_default, dialect)
        )
        return
    if kind == "add_fk":
        constraint = items[0][1]
        table = constraint.table.name
        for name in constraint.column_keys:
            found = specs[table].column(name)
            if found is not None and found.references:
                changes.setdefault(table, TableChanges(table)).foreign.append(found)
        return
    if kind in ("modify_type", "modify_nullable"):
        _alteration(items, changes, specs, dialect)


def _alteration(
    items: list[Any], changes: dict[str, TableChanges], specs: dict[str, TableSpec], dialect: Any
) -> None:
    """One column's ``modify_type``/``modify_nullable`` entries → a restated column."""
    _, _, table, name, existing, *_ = items[0]
    model = specs[table].column(name)
    if model is None:
        return
    # modify_nullable carries the current type among its keywords, modify_type after them.
    typed = next((i for i in items if i[0] == "modify_type"), None)
    current = typed[5] if typed is not None else existing["existing_type"]
    old = reflected_spec(
        name,
        current,
        existing.get("existing_nullable", True),
        existing.get("existing_server_default"),
        dialect,
    )
    new = replace(old, kwargs=dict(old.kwargs))
    notes: list[str] = []
    for kind, *_rest in items:
        if kind == "modify_nullable":
            old.nullable, new.nullable = items_value(items, kind)
            notes.append(
                f"{'nullable' if old.nullable else 'not null'} -> "
                f"{'nullable' if new.nullable else 'not null'}"
            )
        elif kind == "modify_type":
            notes.append(f"type {old.type_label()} -> {model.type_label()}")
            new.method, new.args, new.kwargs = model.method, model.args, dict(model.kwargs)
            new.unsigned = model.unsigned
    if "modify_nullable" not in [i[0] for i in items]:
        new.nullable = old.nullable
    new.primary = old.primary = False
    changes.setdefault(table, TableChanges(table)).altered.append(ColumnChange(new, old, notes))


def items_value(items: list[Any], kind: str) -> tuple[bool, bool]:
    """``(existing, new)`` nullability of a ``modify_nullable`` entry."""
    entry = next(i for i in items if i[0] == kind)
    return bool(entry[5]), bool(entry[6])


def reflected_spec(
    name: str, type_: TypeEngine[Any], nullable: bool | None, default: Any, dialect: Any
) -> ColumnSpec:
    """A column as the database has it, in the builder's vocabulary (to restate or restore)."""
    if isinstance(type_, mysql.TINYINT):
        spec = ColumnSpec(name, "boolean" if type_.display_width == 1 else "tiny_integer")
    elif type(type_).__name__ == "JSONB":
        spec = ColumnSpec(name, "jsonb")
    else:
        spec = spec_for_type(name, type_, dialect)
    if getattr(type_, "unsigned", False) and spec.method.endswith("integer"):
        spec.unsigned = True
    spec.nullable = bool(nullable) if nullable is not None else True
    text = _default_text(default)
    if text is not None:
        spec.default_sql = text
    return spec


def _default_text(default: Any) -> str | None:
    if default is None or default is False:
        return None
    if isinstance(default, str):
        return default
    arg = getattr(default, "arg", default)
    return str(getattr(arg, "text", arg))


def _match_referenced_types(
    specs: list[TableSpec], existing: set[str], inspector: Any, dialect: Any
) -> None:
    """A foreign key column takes the type of the column it references when that table
    exists already (MySQL refuses a ``BIGINT`` key to an ``INT UNSIGNED`` one)."""
    for spec in specs:
        for col in spec.columns:
            if col.references is None:
                continue
            table, _, key = col.references.rpartition(".")
            if table not in existing:
                continue
            found = next((c for c in inspector.get_columns(table) if c["name"] == key), None)
            if found is None:
                continue
            target = reflected_spec(key, found["type"], True, None, dialect)
            if target.method in ("integer", "big_integer", "small_integer", "tiny_integer"):
                col.method, col.args, col.unsigned = target.method, target.args, target.unsigned


def _metadata(specs: list[TableSpec], dialect: str) -> sa.MetaData:
    naming = dict(NAMING)
    if pk_name(dialect, "") is None:
        del naming["pk"]
    metadata = sa.MetaData(naming_convention=naming)
    for spec in specs:
        builder = TableBuilder(spec.name, False)
        for col in spec.columns:
            col.declare(builder)
        sa.Table(spec.name, metadata, *_table_items(builder, dialect))
    return metadata


def _include(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Only the models' tables; indexes and unique constraints are not inferred from models,
    nor are foreign keys the database has beyond the models'."""
    if type_ == "table":
        return not (reflected and compare_to is None)
    if type_ in ("index", "unique_constraint"):
        return False
    if type_ == "foreign_key_constraint":
        return not reflected
    return True


# Kinds of column types: a change within one (width, length, precision) is not reported.
def _kind(type_: TypeEngine[Any], dialect: Any) -> str:
    mapping = getattr(type_, "_variant_mapping", None) or {}
    type_ = mapping.get(dialect.name, type_)
    while isinstance(type_, TypeDecorator):
        type_ = type_.impl_instance
    is_mysql = dialect.name in ("mysql", "mariadb")
    checks: list[tuple[type, str]] = [
        (sa.Boolean, "integer" if is_mysql else "boolean"),  # MySQL: TINYINT(1)
        (sa.DateTime, "datetime"),
        (sa.Date, "date"),
        (sa.Time, "time"),
        (sa.Uuid, "uuid" if dialect.name == "postgresql" else "string"),
        (sa.Float, "float"),
        (sa.Integer, "integer"),
        (sa.Numeric, "decimal"),
        # MariaDB's JSON is LONGTEXT with a check: it reflects as text.
        (sa.JSON, "string" if is_mysql else "json"),
        (sa.String, "string"),
        (sa.LargeBinary, "binary"),
    ]
    for cls, kind in checks:
        if isinstance(type_, cls):
            return kind
    return f"other:{type(type_).__name__}"


def _compare_type(
    context: Any,
    inspected_column: Any,
    metadata_column: Any,
    inspected_type: TypeEngine[Any],
    metadata_type: TypeEngine[Any],
) -> bool:
    dialect = context.dialect
    old, new = _kind(inspected_type, dialect), _kind(metadata_type, dialect)
    if old.startswith("other:") or new.startswith("other:"):
        return False  # a type the models can't express: never restated from them
    return old != new


# -- the migration file ------------------------------------------------------------------------
def render(plan: Plan, class_name: str) -> str:
    """The migration file of ``plan`` (``ruff format`` style)."""
    up: list[str] = []
    down: list[str] = []
    for table in plan.created:
        fn = f"create_{table.name}"
        up += _callback(fn, [c.render() for c in table.columns])
        up.append(f'        self.schema.create_table("{table.name}", {fn})')
        up.append("")
    for changes in plan.altered:
        fn, back = f"alter_{changes.name}", f"revert_{changes.name}"
        lines = [c.render() for c in changes.added]
        lines += [f"table.drop_column({json.dumps(c.name)})" for c in changes.dropped]
        lines += [f"{c.new.render()}.alter()" for c in changes.altered]
        lines += [
            f"table.foreign({json.dumps(c.name)}).references({json.dumps(c.references)})"
            for c in changes.foreign
        ]
        up += _callback(fn, lines)
        up.append(f'        self.schema.alter_table("{changes.name}", {fn})')
        up.append("")
        undo = [f"table.drop_foreign({json.dumps(c.name)})" for c in changes.foreign]
        undo += [f"{c.old.render()}.alter()" for c in changes.altered]
        # Back, without their rows: nullable, or the table's rows would refuse them.
        undo += [replace(c, nullable=True).render() for c in changes.dropped]
        undo += [f"table.drop_column({json.dumps(c.name)})" for c in changes.added]
        block = _callback(back, undo)
        block.append(f'        self.schema.alter_table("{changes.name}", {back})')
        block.append("")
        down = block + down
    for table in reversed(plan.created):
        down.append(f'        self.schema.drop_table("{table.name}")')
    body_up = "\n".join(up).rstrip()
    body_down = "\n".join(down).rstrip()
    summary = "\n".join(plan.summary())
    uses_db = "db.raw(" in body_up or "db.raw(" in body_down
    imports = "from lucid_orm import db\n" if uses_db else ""
    return f'''"""Written by ``make:migration --auto`` from the models: review it before running it.

{summary}
"""

{imports}from lucid_orm.migrations import BaseSchema
from lucid_orm.schema import TableBuilder


class {class_name}(BaseSchema):
    async def up(self) -> None:
{body_up}

    async def down(self) -> None:
{body_down}
'''


def _callback(name: str, lines: list[str]) -> list[str]:
    return [
        f"        def {name}(table: TableBuilder) -> None:",
        *(f"            {line}" for line in lines),
        "",
    ]
