"""Per-model metadata computed once at class creation (``ModelInfo.build``): columns, table,
hooks, scopes, relations, the hydration plans per result shape; and the public accessors the
rest of the ORM reads a model through (``info_of``, ``pk_column``, ``column_name``…)."""

from __future__ import annotations

import inspect
import sys
import typing
import uuid
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Column, Integer, MetaData, String, Table, Uuid
from sqlalchemy.sql import ColumnElement, TableClause
from sqlalchemy.types import NullType

from ..errors import LucidError
from ..query.shape import columns_shape
from .columns import (
    UNSET,
    ColumnAttribute,
    ColumnDef,
    UUIDType,
    allows_none,
    computed,
    sql_type_for,
)
from .hooks import GlobalScopeFn, Scope, collect_global_scopes, collect_hooks

if TYPE_CHECKING:
    from .base_model import BaseModel
    from .hydration import HydrationPlan

# Class attributes of a model that are options, not columns.
CLASS_OPTIONS = frozenset(
    {"table", "connection", "naming_strategy", "serialize_extras", "primary_key", "global_scopes"}
)

#: The name of the global scope a ``soft_deletes=True`` model gets (``with_trashed()`` lifts it).
SOFT_DELETES = "soft_deletes"


def soft_delete_scope(column: str) -> GlobalScopeFn:
    """The global scope of a soft-deleting model: rows whose ``column`` is NULL."""
    # ``<table>.<column> IS NULL`` built once (constructs are immutable): on every query of the
    # model, SQLAlchemy's coercion would cost more than the rest of the scope.
    cached: list[tuple[ColumnElement[Any], ColumnElement[Any]]] = []

    def not_trashed(query: Any) -> None:
        target = query._unqualified(column)
        if cached and cached[0][0] is target:
            query.where(cached[0][1])
            return
        clause = target.is_(None)
        if not cached and target is query._info.table.c.get(column):
            cached.append((target, clause))  # the table's own column, not an alias's
        query.where(clause)

    return not_trashed


@dataclass
class ModelInfo:
    """Everything the ORM needs to know about one model class."""

    model: type[BaseModel]
    table_name: str
    columns: dict[str, ColumnDef]  # attribute name -> definition
    #: The primary-key attribute; ``None`` for a composite key (see ``primary_keys``).
    primary_key: str | None
    abstract: bool
    hooks: dict[str, list[Callable[..., Any]]]
    scopes: dict[str, Scope]
    computed: dict[str, computed[Any]]
    annotations: dict[str, Any]
    table: TableClause | None = None
    by_column: dict[str, ColumnDef] = field(default_factory=dict)
    # The table's column of each name in ``by_column`` (``column_for_db``: a dict read instead
    # of ``table.c[name]``'s method call; set with them in ``build_table``).
    db_columns: dict[str, ColumnElement[Any]] = field(default_factory=dict)
    select_columns: list[ColumnElement[Any]] = field(default_factory=list)
    # ``columns_shape`` of ``select_columns``: the SELECT list of every query that selects
    # nothing itself (query/shape.py), taken once per table.
    select_shape: Hashable | None = None
    # The primary-key columns, in key order: the tie-breakers of cursor pages.
    key_columns: tuple[ColumnElement[Any], ...] = ()
    plans: dict[tuple[str, ...], HydrationPlan] = field(default_factory=dict)
    # Column attribute -> annotated optional (``is_optional``), as found.
    optional: dict[str, bool] = field(default_factory=dict)
    types_resolved: bool = False
    relations: dict[str, Any] = field(default_factory=dict)
    prepare_map: dict[str, tuple[str, Any]] = field(default_factory=dict)
    timestamps: list[tuple[str, ColumnDef]] = field(default_factory=list)
    # Attributes of JSON columns: their ``original`` must be a deep copy after a write.
    json_attributes: list[str] = field(default_factory=list)
    # the Python types a primary-key value may have (check_key_value), once known
    key_types: tuple[type, ...] | None = None
    #: Global scopes by name, applied to every query of the model (``without_global_scopes``
    #: lifts them per query); ``Model.add_global_scope`` adds to it at run time.
    global_scopes: dict[str, GlobalScopeFn] = field(default_factory=dict)
    #: The attribute stamped by a soft delete (``soft_deletes=``), or ``None``.
    soft_delete: str | None = None
    #: Every primary-key attribute, in key order: one for a single key, several for a
    #: composite one (``primary_key = ("tenant_id", "id")``).
    primary_keys: tuple[str, ...] = ()
    #: ``len(primary_keys) > 1``: code that handles both branches once on this flag.
    composite: bool = False
    # the Python types of each component of a composite key (check_key_value), once known
    composite_key_types: tuple[tuple[type, ...], ...] | None = None

    @classmethod
    def build(
        cls, model: type[BaseModel], abstract: bool = False, soft_deletes: bool | str | None = None
    ) -> ModelInfo:
        """Build and install the metadata of ``model`` (``BaseModel.__init_subclass__``):
        inherited declarations, then the class's own, named by its naming strategy, checked
        (reserved names, one primary key), with its table. ``soft_deletes``: ``True`` (the
        ``deleted_at`` attribute), another attribute name, ``False``, or ``None`` to inherit."""
        parts = _inherited(model)
        _collect_own(model, parts)
        _name_columns(model, parts.columns)
        global_scopes = _soft_deletes(model, parts, soft_deletes)
        primaries = _primary_key(model, parts.columns, abstract)
        composite = len(primaries) > 1
        info = cls(
            model=model,
            table_name=_table_name(model, abstract),
            columns=parts.columns,
            primary_key=primaries[0] if len(primaries) == 1 else None,
            abstract=abstract,
            hooks=parts.hooks,
            scopes=parts.scopes,
            computed=parts.computed,
            annotations=parts.annotations,
            relations=parts.relations,
            global_scopes=global_scopes,
            soft_delete=parts.soft_delete,
            primary_keys=primaries,
            composite=composite,
        )
        if primaries:
            model.primary_key = primaries if composite else primaries[0]
        model._lucid = info
        model.columns = parts.columns
        model.relations = parts.relations
        _column_attributes(model, info)
        for name, rel in parts.relations.items():
            rel.attach(model, name)
        info.resolve_types()
        info.build_table()
        return info

    def resolve_types(self, namespace: dict[str, Any] | None = None) -> None:
        """Map annotations to SQLAlchemy types; string annotations that name something not yet
        defined are retried on first use."""
        pending = False
        for name, col in self.columns.items():
            if col.has_explicit_type and col.type_ is not None:
                continue
            try:
                ann = self.annotation(name, namespace)
            except Exception:
                pending = True
                continue
            col.type_ = sql_type_for(ann) if ann is not None else NullType()
        self.types_resolved = not pending

    def annotation(self, name: str, namespace: dict[str, Any] | None = None) -> Any:
        """Column ``name``'s annotation (``None`` when it has none), a string one evaluated in
        the module of the class that declared it — a model extending a generated schema class
        lives in another module, with other imports. Raises when it names something not
        (yet) defined."""
        ann = self.annotations.get(name)
        if isinstance(ann, str):
            module = _module_of(self._declaring_class(name))
            ann = eval(ann, {**vars(typing), **vars(module), **(namespace or {})})
        return ann

    def is_optional(self, name: str) -> bool:
        """Whether column attribute ``name`` is annotated optional (``X | None``,
        ``Optional[X]``): it may hold NULL. Found once per attribute."""
        known = self.optional.get(name)
        if known is None:
            try:
                ann = self.annotation(name)
            except Exception:
                return False  # not resolvable yet: asked again next time
            known = self.optional[name] = allows_none(ann)
        return known

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
                    # A composite key is given, not generated.
                    autoincrement=col.is_primary
                    and not self.composite
                    and isinstance(col.type_, Integer),
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
        self.json_attributes = [n for n, c in self.columns.items() if c.is_json]
        self.db_columns = {name: table.c[name] for name in self.by_column}
        self.select_columns = [
            table.c[c.column_name] for c in self.columns.values() if c.column_name
        ]
        self.select_shape = columns_shape(self.select_columns)
        self.key_columns = tuple(table.c[self.columns[k].column_name] for k in self.primary_keys)
        self.plans = {}
        self.key_types = None
        self.composite_key_types = None

    def column_for_db(self, name: str) -> ColumnElement[Any] | None:
        """The table's column named ``name`` among the model's; ``None`` for another name (or
        before the table is built)."""
        return self.db_columns.get(name)

    def plan(self, keys: Sequence[str]) -> HydrationPlan:
        """The hydration plan of result columns ``keys``, built once per shape."""
        found = self.plans.get(tuple(keys))
        if found is None:
            from .hydration import build_plan  # hydration reads models through info_of

            found = self.plans[tuple(keys)] = build_plan(self.by_column, keys, tuple(self.columns))
        return found


def _column_attributes(model: type[BaseModel], info: ModelInfo) -> None:
    """Make each column a column reference on the class (``Post.title``): the class's own
    ones and the inherited ones, so that a subclass's name its own table and column names."""
    own = model.__dict__
    plain: list[str] = []
    for name, col in info.columns.items():
        current = own.get(name)  # None: inherited, or the class's own column (see below)
        if current is None or isinstance(current, ColumnAttribute):
            setattr(model, name, ColumnAttribute(model, info.table_name, col))
            plain.append(name)
    # Assignments to these go straight into the instance ``__dict__`` (BaseModel.__setattr__).
    model._lucid_plain_columns = frozenset(plain)


def _module_of(klass: type) -> Any:
    # sys.modules first: a module loaded from a file path (importlib) may not be importable
    # by name.
    return sys.modules.get(klass.__module__) or __import__(klass.__module__, fromlist=["_"])


@dataclass
class _Parts:
    """The declarations a model class collects: its bases' (copied), then its own."""

    annotations: dict[str, Any] = field(default_factory=dict)
    columns: dict[str, ColumnDef] = field(default_factory=dict)
    hooks: dict[str, list[Callable[..., Any]]] = field(default_factory=dict)
    scopes: dict[str, Scope] = field(default_factory=dict)
    computed: dict[str, computed[Any]] = field(default_factory=dict)
    relations: dict[str, Any] = field(default_factory=dict)
    global_scopes: dict[str, GlobalScopeFn] = field(default_factory=dict)
    soft_delete: str | None = None


def _inherited(model: type[BaseModel]) -> _Parts:
    """The declarations of every model base, the nearest last; columns are copied (a subclass
    may rename them) and relations cloned for ``model``."""
    parts = _Parts()
    for base in reversed(model.__mro__[1:]):
        info: ModelInfo | None = base.__dict__.get("_lucid")
        if info is None:
            continue
        parts.annotations.update(info.annotations)
        for name, col in info.columns.items():
            parts.columns[name] = ColumnDef(**{f: getattr(col, f) for f in col.__slots__})
        for event, fns in info.hooks.items():
            parts.hooks.setdefault(event, []).extend(fns)
        parts.scopes.update(info.scopes)
        parts.global_scopes.update(info.global_scopes)
        parts.soft_delete = info.soft_delete
        parts.computed.update(info.computed)
        parts.relations.update({k: v.clone_for(model) for k, v in info.relations.items()})
    return parts


def _collect_own(model: type[BaseModel], parts: _Parts) -> None:
    """Add what the class body of ``model`` declares: columns (their class attribute becomes
    a ``ColumnAttribute`` once named: unset columns read as None), scopes, computed values,
    relations and hooks."""
    own = model.__dict__
    parts.annotations.update(own.get("__annotations__", {}))
    reserved = reserved_names()
    for name, value in list(own.items()):
        if isinstance(value, ColumnDef):
            if name in reserved:
                raise _model_error(
                    f'"{model.__name__}.{name}" cannot be a column: "{name}" is a reserved '
                    "model name (choose another attribute and set column_name)"
                )
            value.attribute_name = name
            parts.columns[name] = value
            setattr(model, name, None)  # until _column_attributes replaces it
        elif isinstance(value, Scope):
            parts.scopes[name] = value
        elif isinstance(value, computed):
            parts.computed[name] = value
        elif hasattr(value, "_lucid_relation"):
            if name in reserved:
                raise _model_error(
                    f'"{model.__name__}.{name}" cannot be a relation: "{name}" is a reserved '
                    "model name"
                )
            parts.relations[name] = value
    for event, fns in collect_hooks(dict(own)).items():
        parts.hooks.setdefault(event, []).extend(fns)
    parts.global_scopes.update(collect_global_scopes(dict(own)))


def _soft_deletes(
    model: type[BaseModel], parts: _Parts, option: bool | str | None
) -> dict[str, GlobalScopeFn]:
    """Settle the soft-delete attribute (``option``, else the base's) and return the model's
    global scopes with the soft-delete scope first when there is one."""
    if option is not None:
        if option is True:
            parts.soft_delete = "deleted_at"
        elif option is False:
            parts.soft_delete = None
        elif isinstance(option, str) and option:
            parts.soft_delete = option
        else:
            raise _model_error(
                f'"{model.__name__}": soft_deletes must be True, False or an attribute name'
            )
    scopes = dict(parts.global_scopes)
    scopes.pop(SOFT_DELETES, None)
    name = parts.soft_delete
    if name is None:
        return scopes
    col = parts.columns.get(name)
    if col is None:
        raise _model_error(
            f'"{model.__name__}" soft-deletes rows through "{name}", which is not a column: '
            f"declare it (``{name}: datetime | None = column.date_time()``)"
        )
    return {SOFT_DELETES: soft_delete_scope(col.column_name), **scopes}


def _name_columns(model: type[BaseModel], columns: dict[str, ColumnDef]) -> None:
    """Column and serialized names from the naming strategy, where not given."""
    strategy = model.naming_strategy
    for name, col in columns.items():
        if not col.column_name or col.attribute_name != name:
            col.attribute_name = name
            if not col.column_name:
                col.column_name = strategy.column_name(model, name)
        if col.serialize_as is UNSET:
            col.serialize_as = strategy.serialized_name(model, name)


def _primary_key(
    model: type[BaseModel], columns: dict[str, ColumnDef], abstract: bool
) -> tuple[str, ...]:
    """The primary-key attributes: the ``primary_key`` class option (an attribute name or a
    tuple of them: a composite key), else the one column declared ``is_primary``, else
    ``id``."""
    option = model.__dict__.get("primary_key")
    primaries = [n for n, c in columns.items() if c.is_primary]
    if option is not None:
        names = (option,) if isinstance(option, str) else option
        if (
            not isinstance(names, tuple | list)
            or not names
            or not all(isinstance(n, str) and n for n in names)
            or len(set(names)) != len(names)
        ):
            raise _model_error(
                f'"{model.__name__}.primary_key" must be an attribute name or a tuple of '
                f"distinct attribute names, got {option!r}"
            )
        for name in names:
            if name not in columns:
                raise _model_error(
                    f'"{model.__name__}.primary_key" names "{name}", which is not a column'
                )
        extra = [n for n in primaries if n not in names]
        if extra and any(n in inspect.get_annotations(model) for n in extra):
            raise _model_error(
                f'"{model.__name__}" declares primary_key={option!r} and also '
                f"column(is_primary=True) on {', '.join(extra)}"
            )
        for name, col in columns.items():
            col.is_primary = name in names
        return tuple(names)
    if len(primaries) > 1:
        for base in model.__mro__[1:]:
            inherited: ModelInfo | None = base.__dict__.get("_lucid")
            if inherited is not None and inherited.composite:
                if set(inherited.primary_keys) == set(primaries):
                    return inherited.primary_keys
                break
        raise _model_error(
            f'"{model.__name__}" declares more than one primary key: {", ".join(primaries)} '
            f"(a composite key is declared with primary_key = ({', '.join(map(repr, primaries))}))"
        )
    if primaries:
        return (primaries[0],)
    if "id" in columns:
        columns["id"].is_primary = True
        return ("id",)
    if not abstract:
        raise _model_error(
            f'"{model.__name__}" has no primary key: declare one with column(is_primary=True) '
            'or a column named "id"'
        )
    return ()


def _table_name(model: type[BaseModel], abstract: bool) -> str:
    """The table of ``model``, also set as its ``table`` option. An explicit ``table`` is
    inherited (schema classes name their table for the models extending them); a table named
    by the naming strategy is each class's own."""
    explicit = model.__dict__.get("table")
    if explicit is None:
        explicit = next(
            (b.__dict__["_lucid_table"] for b in model.__mro__[1:] if "_lucid_table" in b.__dict__),
            None,
        )
    if explicit is None:
        table_name = model.naming_strategy.table_name(model)
        if not abstract:
            model.table = table_name
        return table_name
    if not isinstance(explicit, str) or not explicit:
        raise _model_error(f'"{model.__name__}.table" must be a non-empty string')
    model._lucid_table = explicit
    model.table = explicit
    return explicit


def _model_error(message: str) -> LucidError:
    return LucidError(message, code="E_INVALID_MODEL")


# -- accessors (the package's way to read a model's metadata) ---------------------------------


def info_of(model: type[BaseModel]) -> ModelInfo:
    """The metadata of ``model``, its column types resolved (string annotations that named a
    class defined later are retried here). Raises ``E_INVALID_MODEL`` for an abstract model."""
    info = model._lucid
    if info.types_resolved and not info.abstract:
        return info
    if not info.types_resolved:
        info.resolve_types()
        info.build_table()
    if info.abstract:
        raise _model_error(f'"{model.__name__}" is abstract: it maps no table')
    return info


def declared(model: type[BaseModel]) -> ModelInfo:
    """The metadata of ``model`` as declared, without the checks of ``info_of`` (abstract
    models included, string annotations possibly unresolved)."""
    return model._lucid


def pk_column(model: type[BaseModel]) -> str:
    """The column name of the primary key of ``model`` (a single key: see ``pk_columns``)."""
    info = info_of(model)
    if info.primary_key is None:
        raise LucidError(
            f'"{model.__name__}" has a composite primary key {model.primary_key!r}: this '
            "operation needs a single-column key",
            code="E_COMPOSITE_KEY",
        )
    return info.columns[info.primary_key].column_name


def pk_columns(model: type[BaseModel]) -> tuple[str, ...]:
    """The column names of the primary key of ``model``, in key order (one or several)."""
    info = info_of(model)
    return tuple(info.columns[name].column_name for name in info.primary_keys)


def column_name(model: type[BaseModel], attribute: str) -> str:
    """The column name of attribute ``attribute``; ``E_UNKNOWN_ATTRIBUTE`` if it is none."""
    col = model.columns.get(attribute)
    if col is None:
        raise LucidError(
            f'"{attribute}" is not a column of "{model.__name__}" model',
            code="E_UNKNOWN_ATTRIBUTE",
        )
    return col.column_name


def relation_key(model: type[BaseModel], relation: Any) -> str:
    """The name of ``relation`` on ``model``: a name as given (checked where it is looked up),
    or a relation attribute (``Post.author``), which must be a relation of ``model`` or of a
    base it inherits it from (``E_UNDEFINED_RELATIONSHIP`` otherwise)."""
    if isinstance(relation, str):
        return relation
    if getattr(relation, "_lucid_relation", False):
        name: str = relation.relation_name
        owner = relation.model
        if model.relations.get(name) is relation or (
            name in model.relations and isinstance(owner, type) and issubclass(model, owner)
        ):
            return name
        owner_name = getattr(owner, "__name__", "?")
        raise LucidError(
            f'"{owner_name}.{name}" is a relationship of "{owner_name}" model, not of '
            f'"{model.__name__}"',
            code="E_UNDEFINED_RELATIONSHIP",
        )
    raise LucidError(
        f'Expected a relation name ("author") or a relation attribute (Post.author), got '
        f"{relation!r}",
        code="E_INVALID_ARGUMENT",
    )


def reserved_names() -> frozenset[str]:
    """Names a column or relation may not take: the public attributes of ``BaseModel`` and the
    class options (the schema generator renames such columns)."""
    global _RESERVED
    if _RESERVED is None:
        from .base_model import BaseModel

        names = {n for n in dir(BaseModel) if not n.startswith("_")}
        _RESERVED = frozenset(names | CLASS_OPTIONS)
    return _RESERVED


_RESERVED: frozenset[str] | None = None


def _key_types(info: ModelInfo, attribute: str | None = None) -> tuple[type, ...]:
    """The Python types a value of the primary key (or of its component ``attribute``) may
    have (empty: not checked beyond scalars)."""
    col = info.columns.get(attribute or info.primary_key or "")
    type_ = col.type_ if col is not None else None
    if isinstance(type_, Integer):
        return (int,)
    if isinstance(type_, UUIDType | Uuid):
        return (uuid.UUID,)  # and text that parses as one (_key_value_ok)
    if isinstance(type_, String):
        return (str,)
    try:
        python_type = type_.python_type if type_ is not None else None
    except NotImplementedError:
        python_type = None
    return (python_type,) if isinstance(python_type, type) else ()


def _key_value_ok(value: Any, accepted: tuple[type, ...]) -> bool:
    if isinstance(value, str) and uuid.UUID in accepted:
        try:
            uuid.UUID(value)
        except ValueError:
            return False
        return True
    return isinstance(value, accepted)


def check_key_value(model: type[BaseModel], value: Any) -> None:
    """Refuse a key value that is not exactly of the key's type before any query: on
    PostgreSQL ``find(1.9)`` would otherwise match row 1 (the value is cast)."""
    info = model._lucid
    if info.composite:
        check_composite_key(model, value)
        return
    accepted = info.key_types
    if accepted is None:
        accepted = info.key_types = _key_types(info)
    kind = value.__class__
    if kind in accepted:
        return
    if _refused_key(value, accepted):
        expected = " or ".join(t.__name__ for t in accepted) or "a scalar"
        raise LucidError(
            f'Invalid value {value!r} for primary key "{model.__name__}.{model.primary_key}": '
            f"expected {expected}, got {kind.__name__}",
            code="E_INVALID_ARGUMENT",
        )


def _refused_key(value: Any, accepted: tuple[type, ...]) -> bool:
    """Whether ``value``, not exactly of an ``accepted`` type, is no key value: None, a bool, a
    container, a model instance, or a value that does not convert exactly."""
    kind = value.__class__
    return (
        value is None
        or kind is bool
        or isinstance(value, list | dict | tuple | set)
        or hasattr(kind, "_lucid")  # a model instance
        or bool(accepted and not _key_value_ok(value, accepted))
    )


def check_component(model: type[BaseModel], attribute: str, value: Any, where: str) -> None:
    """Refuse ``value`` for component ``attribute`` of a composite key (``where`` names the
    key in the message) unless it is exactly of the component's type."""
    col = model.columns.get(attribute)
    accepted = _key_types(model._lucid, attribute) if col is not None else ()
    kind = value.__class__
    if kind in accepted:
        return
    if _refused_key(value, accepted):
        expected = " or ".join(t.__name__ for t in accepted) or "a scalar"
        raise LucidError(
            f'Invalid value {value!r} for "{attribute}" of {where}: expected {expected}, got '
            f"{kind.__name__}",
            code="E_INVALID_ARGUMENT",
        )


def check_composite_key(model: type[BaseModel], value: Any) -> None:
    """Refuse a value of a composite primary key that is not a tuple of one value per
    component, each exactly of its component's type (``check_key_value``)."""
    info = model._lucid
    names = info.primary_keys
    where = f'primary key "{model.__name__}.{names!r}"'
    if not isinstance(value, tuple) or len(value) != len(names):
        raise LucidError(
            f"Invalid value {value!r} for composite {where}: expected a tuple of "
            f"{len(names)} values ({', '.join(names)})",
            code="E_INVALID_ARGUMENT",
        )
    accepted = info.composite_key_types
    if accepted is None:
        accepted = info.composite_key_types = tuple(_key_types(info, n) for n in names)
    for name, types, component in zip(names, accepted, value, strict=True):
        if component.__class__ not in types:
            check_component(model, name, component, where)
