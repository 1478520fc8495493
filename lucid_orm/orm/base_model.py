"""``BaseModel``: the Active Record base class — columns, state, CRUD, the static finders, and
serialization. Relations hook in through ``relations`` and the ``preloaded`` values."""

from __future__ import annotations

import base64
import datetime as _dt
import enum
import gc
import operator
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from decimal import Decimal
from typing import (
    TYPE_CHECKING,
    Any,
    ClassVar,
    Self,
    TypeVar,
    dataclass_transform,
)

from sqlalchemy import Integer, String, Uuid, bindparam, insert, select
from sqlalchemy import update as sa_update
from sqlalchemy.sql import delete as sa_delete

from ..database import bulk
from ..database.manager import db
from ..database.result import ExecResult
from ..errors import LucidError, ModelNotFoundError
from . import persistence
from .columns import _UNSET, ColumnDef, UUIDType, computed
from .hooks import Scope, collect_hooks, run_hooks
from .model_info import ModelInfo, snapshot
from .naming import NamingStrategy, SnakeCaseNamingStrategy
from .payload import as_mapping_list, keys_list
from .persistence import ABSENT, binding, client_for, track
from .relations import belongs_to, has_many, has_many_through, has_one, many_to_many

if TYPE_CHECKING:
    from ..database.query_client import Client
    from ..database.transaction import TransactionClient
    from .query_builder import ModelQueryBuilder

R = TypeVar("R")

_GC_PAUSE_ROWS = 1000


@contextmanager
def _gc_paused(rows: int) -> Iterator[None]:
    """Pause the cyclic garbage collector around a loop that builds ``rows`` instances when
    that is many: they can't form cycles, and the collections their allocations would trigger
    (each scanning every young object) cost as much as the loop itself."""
    if rows < _GC_PAUSE_ROWS or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


CLASS_OPTIONS = frozenset(
    {"table", "connection", "naming_strategy", "serialize_extras", "primary_key"}
)


def _model_error(message: str) -> LucidError:
    return LucidError(message, code="E_INVALID_MODEL")


def _unknown_attribute(model: str, key: str) -> LucidError:
    return LucidError(
        f'Cannot set "{key}" on "{model}" model: it is not a column',
        code="E_UNKNOWN_ATTRIBUTE",
    )


def _key_types(info: ModelInfo) -> tuple[type, ...]:
    """The Python types a primary-key value may have (empty: not checked beyond scalars)."""
    col = info.columns.get(info.primary_key or "")
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


def _row_gone(model: type[BaseModel], action: str, key: Any) -> ModelNotFoundError:
    """A persisted instance whose row is gone (deleted behind its back)."""
    return ModelNotFoundError(
        f'Cannot {action} "{model.__name__}" with {model.primary_key}={key!r}: its row no '
        f'longer exists in "{model._lucid.table_name}"',
        model=model.__name__,
    )


def _deleted_error() -> LucidError:
    return LucidError("Cannot mutate a deleted model instance", code="E_MODEL_DELETED")


def _json_ready(value: Any) -> Any:
    if isinstance(value, _dt.datetime | _dt.date | _dt.time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return value


def _pick(name: str, fields: Any) -> bool:
    """Whether ``name`` survives a cherry-pick ``fields`` spec (a list = pick)."""
    if not fields:
        return True
    if isinstance(fields, list | tuple | set | frozenset):
        return name in fields
    pick = fields.get("pick")
    omit = fields.get("omit")
    if pick is not None and name not in pick:
        return False
    return not (omit is not None and name in omit)


@dataclass_transform(
    kw_only_default=True,
    eq_default=False,
    field_specifiers=(belongs_to, has_one, has_many, many_to_many, has_many_through),
)
class BaseModel:
    """Base class of every model.

    Declare columns as annotated class attributes assigned ``column()``; the table name comes
    from the naming strategy (``User`` → ``users``) unless ``table = "..."`` is set::

        class User(BaseModel):
            id: int = column(is_primary=True)
            email: str = column()
    """

    # -- class options (not columns) -----------------------------------------------------------
    table: ClassVar[str]
    connection: ClassVar[str | None] = None
    primary_key: ClassVar[str] = "id"
    naming_strategy: ClassVar[NamingStrategy] = SnakeCaseNamingStrategy()
    serialize_extras: ClassVar[bool] = False
    columns: ClassVar[dict[str, ColumnDef]] = {}
    relations: ClassVar[dict[str, Any]] = {}
    _lucid: ClassVar[ModelInfo]
    _lucid_table: ClassVar[str]

    # -- class creation ------------------------------------------------------------------------
    def __init_subclass__(cls, *, abstract: bool = False, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = cls.__dict__
        annotations: dict[str, Any] = {}
        columns: dict[str, ColumnDef] = {}
        hooks: dict[str, list[Callable[..., Any]]] = {}
        scopes: dict[str, Scope] = {}
        computeds: dict[str, computed[Any]] = {}
        relations: dict[str, Any] = {}
        for base in reversed(cls.__mro__[1:]):
            info: ModelInfo | None = base.__dict__.get("_lucid")
            if info is None:
                continue
            annotations.update(info.annotations)
            for name, col in info.columns.items():
                columns[name] = ColumnDef(**{f: getattr(col, f) for f in col.__slots__})
            for event, fns in info.hooks.items():
                hooks.setdefault(event, []).extend(fns)
            scopes.update(info.scopes)
            computeds.update(info.computed)
            relations.update({k: v.clone_for(cls) for k, v in info.relations.items()})
        annotations.update(own.get("__annotations__", {}))
        reserved = _reserved_names()
        for name, value in list(own.items()):
            if isinstance(value, ColumnDef):
                if name in reserved:
                    raise _model_error(
                        f'"{cls.__name__}.{name}" cannot be a column: "{name}" is a reserved '
                        "model name (choose another attribute and set column_name)"
                    )
                value.attribute_name = name
                columns[name] = value
                setattr(cls, name, None)  # unset columns read as None
            elif isinstance(value, Scope):
                scopes[name] = value
            elif isinstance(value, computed):
                computeds[name] = value
            elif hasattr(value, "_lucid_relation"):
                if name in reserved:
                    raise _model_error(
                        f'"{cls.__name__}.{name}" cannot be a relation: "{name}" is a reserved '
                        "model name"
                    )
                relations[name] = value
        for event, fns in collect_hooks(dict(own)).items():
            hooks.setdefault(event, []).extend(fns)

        strategy = cls.naming_strategy
        for name, col in columns.items():
            if not col.column_name or col.attribute_name != name:
                col.attribute_name = name
                if not col.column_name:
                    col.column_name = strategy.column_name(cls, name)
            if col.serialize_as is _UNSET:
                col.serialize_as = strategy.serialized_name(cls, name)

        primaries = [n for n, c in columns.items() if c.is_primary]
        if len(primaries) > 1:
            raise _model_error(
                f'"{cls.__name__}" declares more than one primary key: {", ".join(primaries)}'
            )
        primary: str | None = primaries[0] if primaries else None
        if primary is None and "id" in columns:
            primary = "id"
            columns["id"].is_primary = True
        if primary is None and not abstract:
            raise _model_error(
                f'"{cls.__name__}" has no primary key: declare one with column(is_primary=True) '
                'or a column named "id"'
            )
        # An explicit ``table`` is inherited (schema classes name their table for the models
        # extending them); a table named by the naming strategy is each class's own.
        explicit = own.get("table")
        if explicit is None:
            explicit = next(
                (
                    b.__dict__["_lucid_table"]
                    for b in cls.__mro__[1:]
                    if "_lucid_table" in b.__dict__
                ),
                None,
            )
        if explicit is not None:
            if not isinstance(explicit, str) or not explicit:
                raise _model_error(f'"{cls.__name__}.table" must be a non-empty string')
            cls._lucid_table = explicit
            table_name = explicit
            cls.table = explicit
        else:
            table_name = strategy.table_name(cls)
            if not abstract:
                cls.table = table_name
        if primary is not None:
            cls.primary_key = primary
        info = ModelInfo(
            model=cls,
            table_name=table_name,
            columns=columns,
            primary_key=primary,
            abstract=abstract,
            hooks=hooks,
            scopes=scopes,
            computed=computeds,
            annotations=annotations,
            relations=relations,
        )
        cls._lucid = info
        cls.columns = columns
        cls.relations = relations
        for name, rel in relations.items():
            rel.attach(cls, name)
        info.resolve_types()
        info.build_table()

    @classmethod
    def _info(cls) -> ModelInfo:
        info = cls._lucid
        if not info.types_resolved:
            info.resolve_types()
            info.build_table()
        if info.abstract:
            raise _model_error(f'"{cls.__name__}" is abstract: it maps no table')
        return info

    # -- construction --------------------------------------------------------------------------
    def __init__(self, **values: Any) -> None:
        d = self.__dict__
        d["_lucid_persisted"] = False
        d["_lucid_local"] = True
        d["_lucid_original"] = {}
        if values:
            self.merge(values)

    @classmethod
    def _new_many(
        cls, rows: Sequence[Mapping[str, Any]], allow_extra_properties: bool = False
    ) -> list[Self]:
        """``[cls().merge(row) for row in rows]``, without the per-row checks where a row only
        names columns (the usual ``create_many`` payload): its values go in with one update."""
        if cls.__init__ is not BaseModel.__init__:
            return [cls().merge(row, allow_extra_properties) for row in rows]
        cols = cls.columns.keys()
        new = object.__new__
        init = BaseModel.__init__  # the new-instance state, without values
        out: list[Self] = []
        with _gc_paused(len(rows)):
            for row in rows:
                if not row.keys() <= cols:
                    out.append(cls().merge(row, allow_extra_properties))
                    continue
                obj = new(cls)
                init(obj)
                obj.__dict__.update(row)
                out.append(obj)
        return out

    def __setattr__(self, name: str, value: Any) -> None:
        if self.__dict__.get("_lucid_deleted"):
            raise _deleted_error()
        object.__setattr__(self, name, value)

    def __repr__(self) -> str:
        pk = self.__dict__.get(type(self).primary_key, None)
        state = "persisted" if self.is_persisted else "new"
        return f"<{type(self).__name__} {type(self).primary_key}={pk!r} ({state})>"

    @classmethod
    def _hydrate(
        cls, keys: Sequence[str], rows: Sequence[Sequence[Any]], client: Client | None = None
    ) -> list[Self]:
        """Rows → persisted instances (the garbage collector paused for large batches)."""
        if len(rows) < _GC_PAUSE_ROWS:  # a find: no context manager to enter
            return cls._hydrate_rows(keys, rows, client)
        with _gc_paused(len(rows)):
            return cls._hydrate_rows(keys, rows, client)

    @classmethod
    def _hydrate_rows(
        cls, keys: Sequence[str], rows: Sequence[Sequence[Any]], client: Client | None = None
    ) -> list[Self]:
        """Rows → persisted instances: one plan per result shape, one dict copy per row."""
        info = cls._lucid
        plan = info.plan(keys)
        attrs = plan.attributes
        new = object.__new__
        out: list[Self] = []
        append = out.append
        # The binding (persistence.py): rows read through another connection than the model's
        # default, or through a transaction, keep it for their own statements.
        stamp = binding(cls, client)
        trx = stamp.get("_lucid_trx") if stamp is not None else None
        fill = plan.fill
        if fill is not None and (not rows or len(rows[0]) == len(attrs)):
            out = fill(cls, rows, stamp)
            if trx is not None and out:
                track(trx, out)
            return out
        deep = plan.deep_copy
        consume = plan.consume
        for row in rows:
            obj = new(cls)
            values = dict(zip(attrs, row, strict=False))
            extras = {k: row[i] for i, k in plan.extras_index} if plan.extras_index else None
            if extras:
                for _i, k in plan.extras_index:
                    values.pop(f"\x00{k}", None)
            for attr, fn in consume:
                if attr in values:
                    values[attr] = fn(values[attr], attr, obj)
            state = values.copy()
            state["_lucid_original"] = snapshot(values, deep) if deep else values
            state["_lucid_persisted"] = True
            if extras:
                state["_lucid_extras"] = extras
            if stamp is not None:
                state.update(stamp)
            obj.__dict__.update(state)
            append(obj)
        if trx is not None and out:
            track(trx, out)
        return out

    # -- state ---------------------------------------------------------------------------------
    @property
    def attributes(self) -> dict[str, Any]:
        """Column values that are set, by attribute name (absent ≠ ``None``)."""
        d = self.__dict__
        return {k: d[k] for k in type(self).columns if k in d}

    def _original(self) -> dict[str, Any]:
        d = self.__dict__
        found = d.get("_lucid_original")
        if found is None:
            row = d.pop("_lucid_row", None)
            if row is None:
                return {}
            found = d["_lucid_original"] = dict(zip(d.pop("_lucid_row_attrs"), row, strict=False))
        return found

    @property
    def original(self) -> dict[str, Any]:
        """Attribute values as last read from or written to the database."""
        return dict(self._original())

    @property
    def dirty(self) -> dict[str, Any]:
        """Attributes changed since they were read or saved (all set ones for a new model)."""
        d = self.__dict__
        orig = self._original()
        persisted = d.get("_lucid_persisted", False)
        out: dict[str, Any] = {}
        for k in type(self).columns:
            if k not in d:
                continue
            v = d[k]
            if not persisted or k not in orig or orig[k] != v or type(orig[k]) is not type(v):
                out[k] = v
        return out

    @property
    def is_dirty(self) -> bool:
        """Whether ``save()`` would write anything."""
        return bool(self.dirty)

    @property
    def is_persisted(self) -> bool:
        """Whether the row exists in the database (fetched or saved)."""
        return bool(self.__dict__.get("_lucid_persisted", False))

    @property
    def is_new(self) -> bool:
        """The opposite of ``is_persisted``."""
        return not self.is_persisted

    @property
    def is_deleted(self) -> bool:
        """Whether ``delete()`` removed this row."""
        return bool(self.__dict__.get("_lucid_deleted", False))

    @property
    def is_local(self) -> bool:
        """True when the instance was made in code (``User(...)``, ``create``), False when it
        was fetched from the database."""
        return bool(self.__dict__.get("_lucid_local", False))

    @property
    def extras(self) -> dict[str, Any]:
        """Values the query selected that are not columns (aggregates, pivot columns…)."""
        d = self.__dict__
        found = d.get("_lucid_extras")
        if found is None:
            found = d["_lucid_extras"] = {}
        return found

    @property
    def preloaded(self) -> dict[str, Any]:
        """Relations loaded on this instance, by relation name (a snapshot)."""
        d = self.__dict__
        return {name: d[name] for name in type(self).relations if name in d}

    @property
    def sideloaded(self) -> dict[str, Any]:
        """Values handed down with ``query.sideload({...})``."""
        d = self.__dict__
        found = d.get("_lucid_sideloaded")
        if found is None:
            found = d["_lucid_sideloaded"] = {}
        return found

    @property
    def trx(self) -> TransactionClient | None:
        """The transaction this instance was fetched or saved through (cleared when it ends)."""
        trx: TransactionClient | None = self.__dict__.get("_lucid_trx")
        return trx if trx is not None and not trx.is_completed else None

    def use_transaction(self, trx: TransactionClient) -> Self:
        """Run this instance's next queries (save, delete, relations) in ``trx``, while it
        lasts."""
        persistence.bind_transaction([self], trx)
        return self

    def _ensure_not_deleted(self) -> None:
        if self.__dict__.get("_lucid_deleted"):
            raise _deleted_error()

    # -- filling -------------------------------------------------------------------------------
    def merge(self, values: Mapping[str, Any], allow_extra_properties: bool = False) -> Self:
        """Set the given attributes, keeping the others. Unknown keys raise
        ``E_UNKNOWN_ATTRIBUTE`` unless ``allow_extra_properties=True`` (then they go to
        ``extras``)."""
        self._ensure_not_deleted()
        if not isinstance(values, Mapping):
            raise LucidError(f"Expected a mapping of attributes, got {values!r}")
        cols = type(self).columns
        for key in values:
            if key not in cols and not allow_extra_properties:
                raise _unknown_attribute(type(self).__name__, key)
        d = self.__dict__
        for key, value in values.items():
            if key in cols:
                d[key] = value
            else:
                self.extras[key] = value
        return self

    def fill(self, values: Mapping[str, Any], allow_extra_properties: bool = False) -> Self:
        """Replace all attributes with ``values`` (Lucid's ``fill``); the primary key of a
        persisted instance is kept."""
        self._ensure_not_deleted()
        cols = type(self).columns
        for key in values:
            if key not in cols and not allow_extra_properties:
                raise _unknown_attribute(type(self).__name__, key)
        d = self.__dict__
        pk = type(self).primary_key
        for key in cols:
            if key in d and not (key == pk and self.is_persisted):
                del d[key]
        return self.merge(values, allow_extra_properties)

    # -- persistence ---------------------------------------------------------------------------
    def _prepared(self, attrs: Mapping[str, Any]) -> dict[str, Any]:
        """Attribute values for a write, keyed by column name, ``prepare`` functions applied."""
        prepare = type(self)._info().prepare_map
        out: dict[str, Any] = {}
        for key, value in attrs.items():
            column_name, fn = prepare[key]
            out[column_name] = fn(value, key, self) if fn is not None else value
        return out

    @classmethod
    def _touch_all(
        cls, instances: Sequence[BaseModel], creating: bool
    ) -> dict[str, tuple[Any, Any]] | None:
        """Set the auto timestamps (``auto_create``/``auto_update``) of ``instances``, all to
        the same moment. Returns ``{attribute: (previous value, value set)}`` for the write
        journal (the previous value of the first instance: "absent" for a batch of creates,
        whose stamps are only set where they were not)."""
        stamps = cls._lucid.timestamps
        if not stamps:
            return None
        now = _dt.datetime.now(_dt.UTC)
        out: dict[str, tuple[Any, Any]] = {}
        first = instances[0].__dict__ if len(instances) == 1 else None
        for name, col in stamps:
            value = now if col.kind == "datetime" else now.date()
            if creating and (col.auto_create or col.auto_update):
                before = first.get(name, ABSENT) if first is not None else ABSENT
                for inst in instances:
                    d = inst.__dict__
                    if d.get(name) is None:
                        d[name] = value
                out[name] = (before, value)
            elif not creating and col.auto_update:
                before = first.get(name, ABSENT) if first is not None else ABSENT
                for inst in instances:
                    inst.__dict__[name] = value
                out[name] = (before, value)
        return out

    async def save(self, *, client: Client | None = None) -> Self:
        """Insert (new instance) or update the dirty attributes (persisted instance). An
        unchanged persisted instance issues no query. Runs the save/create/update hooks.

        The statement runs on ``client`` when given, else on the instance's binding: the
        transaction it belongs to, else the connection it was read or created with. Raises
        ``ModelNotFoundError`` (``E_ROW_NOT_FOUND``) when the row of a persisted instance is
        gone."""
        self._ensure_not_deleted()
        cls = type(self)
        hooks = cls._lucid.hooks
        creating = not self.is_persisted
        event = "create" if creating else "update"
        await run_hooks(hooks.get(f"before:{event}"), self)
        await run_hooks(hooks.get("before:save"), self)
        if not creating and not self.is_dirty:
            # Lucid: the before hooks may dirty the model; if not, nothing else runs.
            return self
        after = hooks.get(f"after:{event}") or hooks.get("after:save")
        base = client_for(self, client)
        # A failed write (or after hook) leaves the instance as it was: unsaved, still dirty.
        state = dict(self.__dict__)
        try:
            if after:
                # An after hook that raises must leave nothing written: write + hooks together,
                # the instance bound to that transaction while the hooks run.
                async with base.transaction() as trx:
                    await self._write(trx, creating)
                    await run_hooks(hooks.get(f"after:{event}"), self)
                    await run_hooks(hooks.get("after:save"), self)
            else:
                await self._write(base, creating)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(state)
            raise
        return self

    async def _write(self, client: Client, creating: bool) -> None:
        cls = type(self)
        info = cls._info()
        table = info.table
        assert table is not None and info.primary_key is not None
        pk_attr = info.primary_key
        pk_col = info.columns[pk_attr]
        d = self.__dict__
        in_trx = client.is_transaction
        if creating:
            had_key = d.get(pk_attr) is not None
            stamps = cls._touch_all([self], True)
            values = self._prepared(self.attributes)
            stmt = insert(table).values(values).returning(table.c[pk_col.column_name])
            result = await client.execute(stmt, write=True, model=cls.__name__)
            if result.rows and result.rows[0][0] is not None:
                d[pk_attr] = result.rows[0][0]
            d["_lucid_persisted"] = True
            if in_trx:
                persistence.created(client, [self], pk_attr, [not had_key], stamps)
        else:
            original = self._original()
            stamps = cls._touch_all([self], False)
            dirty = self.dirty
            if dirty:
                pk_value = self._pk_value("update")
                stmt_u = (
                    sa_update(table)
                    .values(self._prepared(dirty))
                    .where(table.c[pk_col.column_name] == pk_value)
                )
                result = await client.execute(stmt_u, write=True, model=cls.__name__)
                # MySQL counts matched rows here too (the FOUND_ROWS client flag), so an
                # UPDATE that changes nothing still counts its row.
                if result.rowcount == 0:
                    raise _row_gone(cls, "update", pk_value)
                if in_trx:
                    persistence.updated(client, self, original, stamps)
        attrs = self.attributes
        deep = [n for n, c in cls.columns.items() if c.is_json]
        d["_lucid_original"] = snapshot(attrs, deep) if deep else attrs
        d.pop("_lucid_row", None)
        persistence.bind([self], client)

    def _pk_value(self, action: str) -> Any:
        cls = type(self)
        pk = cls.primary_key
        value = self.__dict__.get(pk)
        if value is None:
            raise LucidError(
                f'Cannot {action} "{cls.__name__}" instance: its primary key "{pk}" is not set',
                code="E_MISSING_MODEL_ATTRIBUTE",
            )
        return value

    async def delete(self, *, client: Client | None = None) -> None:
        """Delete the row; the instance becomes read-only (``is_deleted``). Runs on ``client``
        when given, else on the instance's binding; raises ``ModelNotFoundError``
        (``E_ROW_NOT_FOUND``) when the row is already gone."""
        self._ensure_not_deleted()
        cls = type(self)
        info = cls._info()
        table = info.table
        assert table is not None and info.primary_key is not None
        hooks = info.hooks
        await run_hooks(hooks.get("before:delete"), self)
        pk_col = table.c[info.columns[info.primary_key].column_name]
        pk_value = self._pk_value("delete")
        stmt = sa_delete(table).where(pk_col == pk_value)
        target = client_for(self, client)
        result = await target.execute(stmt, write=True, model=cls.__name__)
        if result.rowcount == 0:
            raise _row_gone(cls, "delete", pk_value)
        self.__dict__["_lucid_deleted"] = True
        if target.is_transaction:
            persistence.deleted(target, self)
        await run_hooks(hooks.get("after:delete"), self)

    async def refresh(self, *, client: Client | None = None) -> Self:
        """Re-read every attribute from the database (through ``client`` when given, else
        the instance's binding)."""
        self._ensure_not_deleted()
        cls = type(self)
        if not self.is_persisted:
            raise LucidError("Cannot refresh an unpersisted model instance")
        pk_value = self._pk_value("refresh")
        fresh = (
            await cls.query(client=client_for(self, client))
            .where(cls._pk_column(), pk_value)
            .first()
        )
        if fresh is None:
            raise ModelNotFoundError(
                f'"{cls.__name__}.refresh" failed: no row in "{cls._lucid.table_name}" where '
                f'"{cls.primary_key}" = {pk_value!r}',
                model=cls.__name__,
            )
        d = self.__dict__
        for key in cls.columns:
            d.pop(key, None)
        fd = fresh.__dict__
        for key in cls.columns:
            if key in fd:
                d[key] = fd[key]
        d["_lucid_original"] = fresh._original()
        d.pop("_lucid_row", None)
        return self

    async def lock_for_update(self, callback: Callable[[Self], Any]) -> Any:
        """Re-fetch this row ``FOR UPDATE`` in a transaction and call ``callback(fresh)``
        (awaited when async); returns its result."""
        import inspect

        cls = type(self)
        pk_value = self._pk_value("lock")
        async with client_for(self).transaction() as trx:
            fresh = (
                await cls.query(client=trx).for_update().where(cls._pk_column(), pk_value).first()
            )
            if fresh is None:
                raise LucidError("Cannot mutate a deleted model instance", code="E_MODEL_DELETED")
            result = callback(fresh)
            if inspect.isawaitable(result):
                result = await result
            return result

    # -- static API ----------------------------------------------------------------------------
    @classmethod
    def query(
        cls, *, client: Client | None = None, connection: str | None = None
    ) -> ModelQueryBuilder[Self]:
        """A query builder returning instances of this model: ``await User.query().where(...)``.
        ``client=trx`` runs it in a transaction; ``connection=`` picks a named connection."""
        from .query_builder import ModelQueryBuilder

        return ModelQueryBuilder(cls, client_for(cls, client, connection))

    @classmethod
    def _pk_column(cls) -> str:
        info = cls._info()
        assert info.primary_key is not None
        return info.columns[info.primary_key].column_name

    @classmethod
    def _column_name(cls, attribute: str) -> str:
        col = cls.columns.get(attribute)
        if col is None:
            raise LucidError(
                f'"{attribute}" is not a column of "{cls.__name__}" model',
                code="E_UNKNOWN_ATTRIBUTE",
            )
        return col.column_name

    @classmethod
    def _check_pk_value(cls, value: Any) -> None:
        """Refuse a key value that is not exactly of the key's type before any query: on
        PostgreSQL ``find(1.9)`` would otherwise match row 1 (the value is cast)."""
        info = cls._lucid
        accepted = info.key_types
        if accepted is None:
            accepted = info.key_types = _key_types(info)
        kind = value.__class__
        if kind in accepted:
            return
        if (
            value is None
            or kind is bool
            or isinstance(value, list | dict | tuple | set | BaseModel)
            or (accepted and not _key_value_ok(value, accepted))
        ):
            expected = " or ".join(t.__name__ for t in accepted) or "a scalar"
            raise LucidError(
                f'Invalid value {value!r} for primary key "{cls.__name__}.{cls.primary_key}": '
                f"expected {expected}, got {kind.__name__}",
                code="E_INVALID_ARGUMENT",
            )

    @classmethod
    async def find(
        cls, value: Any, *, client: Client | None = None, connection: str | None = None
    ) -> Self | None:
        """The row with this primary key, or ``None``."""
        cls._check_pk_value(value)
        info = cls._lucid
        if client is None and "before:find" not in info.hooks and "after:find" not in info.hooks:
            # The short path: one statement per model compiled once, no builder.
            query_client = db.connection(connection or cls.connection)
            result = await query_client.fetch_compiled(
                (cls, "find"), cls._find_statement, [value], cls.__name__
            )
            if result is not None:
                rows = cls._hydrate(result.keys, result.rows, query_client)
                return rows[0] if rows else None
        return (
            await cls.query(client=client, connection=connection)
            .where(cls._pk_column(), value)
            .first()
        )

    @classmethod
    def _find_statement(cls) -> Any:
        info = cls._info()
        table = info.table
        assert table is not None
        pk = table.c[cls._pk_column()]
        return select(*info.select_columns).where(pk == bindparam("lucid_pk", type_=pk.type))

    @classmethod
    async def find_or_fail(
        cls, value: Any, *, client: Client | None = None, connection: str | None = None
    ) -> Self:
        """Like ``find``; raises ``ModelNotFoundError`` (``E_ROW_NOT_FOUND``, 404) when absent."""
        found = await cls.find(value, client=client, connection=connection)
        if found is None:
            raise ModelNotFoundError(model=cls.__name__)
        return found

    @classmethod
    def _search_query(
        cls, search: Any, value: Any, client: Client | None, connection: str | None
    ) -> ModelQueryBuilder[Self]:
        if isinstance(search, str):
            search = {search: value}
        if not isinstance(search, Mapping) or not search:
            raise LucidError("Expected an attribute name and a value, or a dict of them")
        query = cls.query(client=client, connection=connection)
        for key, val in search.items():
            if key == cls.primary_key:
                cls._check_pk_value(val)
            query.where(cls._column_name(key), val)
        return query

    @classmethod
    async def find_by(
        cls,
        key: str | Mapping[str, Any],
        value: Any = None,
        *,
        client: Client | None = None,
        connection: str | None = None,
    ) -> Self | None:
        """The first row where attribute ``key`` equals ``value`` (or every pair of a dict)."""
        return await cls._search_query(key, value, client, connection).first()

    @classmethod
    async def find_by_or_fail(
        cls,
        key: str | Mapping[str, Any],
        value: Any = None,
        *,
        client: Client | None = None,
        connection: str | None = None,
    ) -> Self:
        """Like ``find_by``; raises ``ModelNotFoundError`` when absent."""
        found = await cls.find_by(key, value, client=client, connection=connection)
        if found is None:
            raise ModelNotFoundError(model=cls.__name__)
        return found

    @classmethod
    async def find_many(
        cls, values: Sequence[Any], *, client: Client | None = None, connection: str | None = None
    ) -> list[Self]:
        """Rows whose primary key is in ``values`` (ordered by primary key, descending)."""
        for v in values:
            cls._check_pk_value(v)
        pk = cls._pk_column()
        return (
            await cls.query(client=client, connection=connection)
            .where_in(pk, list(dict.fromkeys(values)))
            .order_by(pk, "desc")
        )

    @classmethod
    async def find_many_by(
        cls,
        key: str | Mapping[str, Any],
        value: Any = None,
        *,
        client: Client | None = None,
        connection: str | None = None,
    ) -> list[Self]:
        """Every row where attribute ``key`` equals ``value`` (or every pair of a dict)."""
        return await cls._search_query(key, value, client, connection)

    @classmethod
    async def first(
        cls, *, client: Client | None = None, connection: str | None = None
    ) -> Self | None:
        """The first row by primary key."""
        return (
            await cls.query(client=client, connection=connection).order_by(cls._pk_column()).first()
        )

    @classmethod
    async def first_or_fail(
        cls, *, client: Client | None = None, connection: str | None = None
    ) -> Self:
        found = await cls.first(client=client, connection=connection)
        if found is None:
            raise ModelNotFoundError(model=cls.__name__)
        return found

    @classmethod
    async def all(
        cls, *, client: Client | None = None, connection: str | None = None
    ) -> list[Self]:
        """Every row, ordered by primary key descending (as Lucid)."""
        return await cls.query(client=client, connection=connection).order_by(
            cls._pk_column(), "desc"
        )

    @classmethod
    async def create(
        cls,
        values: Mapping[str, Any],
        *,
        client: Client | None = None,
        connection: str | None = None,
        allow_extra_properties: bool = False,
    ) -> Self:
        """Make an instance from ``values`` and save it (on ``client``/``connection`` when
        given: the instance stays bound to it)."""
        instance = cls()
        instance.merge(values, allow_extra_properties)
        return await instance.save(client=client_for(cls, client, connection))

    @classmethod
    async def create_many(
        cls,
        values: Sequence[Mapping[str, Any]],
        *,
        client: Client | None = None,
        connection: str | None = None,
        allow_extra_properties: bool = False,
    ) -> list[Self]:
        """Create several rows in one transaction (all or none); hooks run per instance.
        Rows go in one multi-row ``INSERT … RETURNING`` when they share their columns."""
        rows = as_mapping_list(values, "create_many")
        instances = cls._new_many(rows, allow_extra_properties)
        if not instances:
            return []
        base = client_for(cls, client, connection)
        async with base.transaction() as trx:
            await cls._insert_many(instances, trx)
        return instances

    @classmethod
    async def _insert_many(cls, instances: list[Self], trx: TransactionClient) -> None:
        info = cls._info()
        hooks = info.hooks
        table = info.table
        assert table is not None and info.primary_key is not None
        persistence.bind(instances, trx)  # hooks see the transaction, as ``trx``
        before_create, before_save = hooks.get("before:create"), hooks.get("before:save")
        if before_create or before_save:
            for inst in instances:
                await run_hooks(before_create, inst)
                await run_hooks(before_save, inst)
        stamps = cls._touch_all(instances, True)
        pk_attr = info.primary_key
        pk_col = table.c[info.columns[pk_attr].column_name]
        with _gc_paused(len(instances)):
            values = _set_columns(instances, list(cls.columns))
        # Journaled before the statements run: every caller runs this inside a transaction
        # (or savepoint) of its own, whose rollback then clears the keys already assigned.
        persistence.created(
            trx, instances, pk_attr, [pk_attr not in attrs for attrs in values], stamps
        )
        # Consecutive instances with the same set of columns share one statement.
        start = 0
        while start < len(instances):
            keys = values[start].keys()
            end = start + 1
            while end < len(instances) and values[end].keys() == keys:
                end += 1
            if pk_attr not in keys and not isinstance(pk_col.type, Integer):
                # A key the database makes otherwise than by counting up (a text or uuid
                # default): nothing ties returned keys to rows in a multi-row INSERT.
                end = start + 1
            batch = instances[start:end]
            if len(batch) == 1:
                stmt = insert(table).values(batch[0]._prepared(values[start]))
                result = await trx.execute(stmt.returning(pk_col), write=True, model=cls.__name__)
            else:
                # SQLAlchemy's "insertmanyvalues": one compiled statement, sent as multi-row
                # INSERT … RETURNING batches, rows returned in parameter order.
                params = cls._prepared_many(batch, values[start:end])
                if trx.dialect_name == "sqlite" and pk_attr not in keys:
                    # SQLite doesn't promise RETURNING order nor ascending keys (SQLAlchemy
                    # would go row by row): bulk.insert_keys proves each row's key.
                    returned = await bulk.insert_keys(trx, table, params, pk_col, cls.__name__)
                    result = ExecResult(returned, [], len(returned))
                else:
                    stmt = insert(table).returning(pk_col, sort_by_parameter_order=True)
                    result = await trx.execute(stmt, write=True, model=cls.__name__, params=params)
            for inst, row in zip(batch, result.rows, strict=False):
                if row[0] is not None:
                    inst.__dict__[pk_attr] = row[0]
            start = end
        deep = [n for n, c in cls.columns.items() if c.is_json]
        for inst, attrs in zip(instances, values, strict=True):
            d = inst.__dict__
            d["_lucid_persisted"] = True
            if pk_attr in d:
                attrs[pk_attr] = d[pk_attr]
            d["_lucid_original"] = snapshot(attrs, deep) if deep else attrs
        after_create, after_save = hooks.get("after:create"), hooks.get("after:save")
        if after_create or after_save:
            for inst in instances:
                await run_hooks(after_create, inst)
                await run_hooks(after_save, inst)

    @classmethod
    def _prepared_many(
        cls, instances: Sequence[BaseModel], values: Sequence[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """Write parameters for rows that set the same attributes: ``_prepared`` per row, or
        the attribute dicts themselves when no column has a different name or a ``prepare``
        (they are only read)."""
        if not values:
            return []
        prepare = cls._info().prepare_map
        if all(prepare[key] == (key, None) for key in values[0]):
            return list(values)
        return [inst._prepared(attrs) for inst, attrs in zip(instances, values, strict=True)]

    @classmethod
    async def first_or_new(
        cls,
        search: Mapping[str, Any],
        save_payload: Mapping[str, Any] | None = None,
        *,
        client: Client | None = None,
        connection: str | None = None,
    ) -> Self:
        """The first row matching ``search``, else a new unsaved instance of
        ``search + save_payload``."""
        found = await cls.find_by(dict(search), client=client, connection=connection)
        if found is not None:
            return found
        instance = cls().merge({**search, **(save_payload or {})})
        persistence.bind([instance], client_for(cls, client, connection))
        return instance

    @classmethod
    async def first_or_create(
        cls,
        search: Mapping[str, Any],
        save_payload: Mapping[str, Any] | None = None,
        *,
        client: Client | None = None,
        connection: str | None = None,
    ) -> Self:
        """The first row matching ``search``, else create ``search + save_payload``."""
        instance = await cls.first_or_new(
            search, save_payload, client=client, connection=connection
        )
        if not instance.is_persisted:
            await instance.save(client=client_for(cls, client, connection))
        return instance

    @classmethod
    async def update_or_create(
        cls,
        search: Mapping[str, Any],
        update_payload: Mapping[str, Any],
        *,
        client: Client | None = None,
        connection: str | None = None,
    ) -> Self:
        """Update the row matching ``search`` with ``update_payload`` (locked ``FOR UPDATE``
        in a transaction), or create ``search + update_payload``."""
        base = client_for(cls, client, connection)
        async with base.transaction() as trx:
            query = cls._search_query(dict(search), None, trx, None).for_update()
            found = await query.first()
            if found is not None:
                found.merge(update_payload)
                await found.save(client=trx)
                return found
            instance = cls().merge({**search, **update_payload})
            await instance.save(client=trx)
            return instance

    @classmethod
    async def _fetch_existing(
        cls, keys: list[str], payload: list[Mapping[str, Any]], client: Client
    ) -> dict[tuple[Any, ...], Self]:
        for row in payload:
            missing = [k for k in keys if k not in row]
            if missing:
                raise LucidError(
                    f"Every payload entry needs the key(s) {', '.join(keys)}; missing "
                    f'"{missing[0]}" in {dict(row)!r}',
                    code="E_INVALID_ARGUMENT",
                )
        query = cls.query(client=client)
        columns = [cls._column_name(k) for k in keys]
        values = list(dict.fromkeys(tuple(row[k] for k in keys) for row in payload))
        if len(columns) == 1:
            query.where_in(columns[0], [v[0] for v in values])
        else:
            query.where_in(columns, [list(v) for v in values])
        found = await query
        return {tuple(getattr(m, k) for k in keys): m for m in found}

    @classmethod
    async def fetch_or_new_up_many(
        cls,
        keys: str | Sequence[str],
        payload: Sequence[Mapping[str, Any]],
        *,
        client: Client | None = None,
        connection: str | None = None,
    ) -> list[Self]:
        """For each payload entry, the existing row matching it on ``keys``, else a new unsaved
        instance. Results follow the payload's order."""
        key_list = keys_list(keys, "fetch_or_new_up_many")
        rows = as_mapping_list(payload, "fetch_or_new_up_many")
        existing = await cls._fetch_existing(key_list, rows, client_for(cls, client, connection))
        out: list[Self] = []
        for row in rows:
            found = existing.get(tuple(row[k] for k in key_list))
            out.append(found if found is not None else cls().merge(row))
        return out

    @classmethod
    async def fetch_or_create_many(
        cls,
        keys: str | Sequence[str],
        payload: Sequence[Mapping[str, Any]],
        *,
        client: Client | None = None,
        connection: str | None = None,
    ) -> list[Self]:
        """For each payload entry, the existing row matching it on ``keys``, else create it.
        One transaction; results follow the payload's order."""
        key_list = keys_list(keys, "fetch_or_create_many")
        rows = as_mapping_list(payload, "fetch_or_create_many")
        async with client_for(cls, client, connection).transaction() as trx:
            existing = await cls._fetch_existing(key_list, rows, trx)
            out: list[Self] = []
            fresh: list[Self] = []
            seen: dict[tuple[Any, ...], Self] = {}
            for row in rows:
                key = tuple(row[k] for k in key_list)
                found = existing.get(key) or seen.get(key)
                if found is None:
                    found = seen[key] = cls().merge(row)
                    fresh.append(found)
                out.append(found)
            if fresh:
                await cls._insert_many(fresh, trx)
        return out

    @classmethod
    async def update_or_create_many(
        cls,
        keys: str | Sequence[str],
        payload: Sequence[Mapping[str, Any]],
        *,
        client: Client | None = None,
        connection: str | None = None,
    ) -> list[Self]:
        """For each payload entry, update the row matching it on ``keys`` or create it. One
        transaction; results follow the payload's order."""
        key_list = keys_list(keys, "update_or_create_many")
        rows = as_mapping_list(payload, "update_or_create_many")
        async with client_for(cls, client, connection).transaction() as trx:
            existing = await cls._fetch_existing(key_list, rows, trx)
            out: list[Self] = []
            fresh: list[Self] = []
            seen: dict[tuple[Any, ...], Self] = {}
            for row in rows:
                key = tuple(row[k] for k in key_list)
                found = existing.get(key) or seen.get(key)
                if found is None:
                    found = seen[key] = cls().merge(row)
                    fresh.append(found)
                else:
                    found.merge(row)
                    if found.is_persisted:
                        await found.save(client=trx)
                out.append(found)
            if fresh:
                await cls._insert_many(fresh, trx)
        return out

    @classmethod
    async def truncate(
        cls, cascade: bool = False, *, client: Client | None = None, connection: str | None = None
    ) -> None:
        """Remove every row of the table (``TRUNCATE``; ``DELETE`` on SQLite)."""
        target = client_for(cls, client, connection)
        table = cls._info().table_name
        if target.dialect_name == "sqlite":
            await target.raw_query("DELETE FROM ??", [table])
        elif target.dialect_name == "postgresql":
            await target.raw_query(
                "TRUNCATE ?? RESTART IDENTITY" + (" CASCADE" if cascade else ""), [table]
            )
        else:
            await target.raw_query("TRUNCATE ??", [table])

    # -- relationships -------------------------------------------------------------------------
    def related(self, name: str) -> Any:
        """The query client of relation ``name`` for this instance: ``.query()`` and the
        relation's writes (``associate``, ``create``, ``save_many``…), on the instance's
        binding unless a write is given ``client=``."""
        relation = type(self).get_relation(name)
        relation.boot()
        return relation.client(self, client_for(self))

    def _lazy_load_guard(self) -> None:
        self._ensure_not_deleted()
        if not self.is_persisted:
            raise LucidError(
                "Cannot lazy load relationship for an unpersisted model instance",
                code="E_RUNTIME_EXCEPTION",
            )

    async def load(
        self,
        relation: str | Callable[[Any], Any],
        callback: Callable[[Any], Any] | None = None,
        *,
        client: Client | None = None,
    ) -> Self:
        """Load a relation onto this instance (one query): ``await post.load("author")``,
        ``await user.load("posts", lambda q: q.where(...))``, or several at once with
        ``await post.load(lambda loader: loader.load("author").load("comments"))``."""
        from .preloader import Preloader

        self._lazy_load_guard()
        loader = Preloader(type(self))
        if callable(relation) and not isinstance(relation, str):
            relation(loader)
        else:
            loader.add(relation, callback)
        await loader.process(
            [self], client_for(self, client), self.__dict__.get("_lucid_sideloaded")
        )
        return self

    async def load_once(self, relation: str) -> Self:
        """``load`` unless the relation is already loaded (a one-relation that resolved to
        ``None`` counts as loaded)."""
        if relation in self.__dict__:
            return self
        return await self.load(relation)

    async def _load_aggregate(self, relation: str, configure: Callable[[Any], Any]) -> Self:
        self._lazy_load_guard()
        cls = type(self)
        pk = cls._pk_column()
        query = cls.query(client=client_for(self)).select(pk).where(pk, self._pk_value("select"))
        configure(query)
        rows: list[dict[str, Any]] = await query.pojo()  # type: ignore[assignment]
        if rows:
            for key, value in rows[0].items():
                if key != pk:
                    self.extras[key] = value
        return self

    async def load_count(self, relation: str, callback: Callable[[Any], Any] | None = None) -> Self:
        """Count related rows into ``extras["<relation>_count"]`` (one query)."""
        return await self._load_aggregate(relation, lambda q: q.with_count(relation, callback))

    async def load_aggregate(self, relation: str, callback: Callable[[Any], Any]) -> Self:
        """Any aggregate of related rows into ``extras`` (the callback names it with ``as_``)."""
        return await self._load_aggregate(relation, lambda q: q.with_aggregate(relation, callback))

    # -- metadata ------------------------------------------------------------------------------
    @classmethod
    def get_column(cls, name: str) -> ColumnDef | None:
        """The definition of attribute ``name``, or ``None``."""
        return cls.columns.get(name)

    @classmethod
    def has_column(cls, name: str) -> bool:
        return name in cls.columns

    @classmethod
    def has_relation(cls, name: str) -> bool:
        """Whether ``name`` is a relation of this model."""
        return name in cls.relations

    @classmethod
    def get_relation(cls, name: str) -> Any:
        """The relation object ``name``; raises ``E_UNDEFINED_RELATIONSHIP`` when unknown."""
        found = cls.relations.get(name)
        if found is None:
            raise LucidError(
                f'"{name}" is not defined as a relationship on "{cls.__name__}" model',
                code="E_UNDEFINED_RELATIONSHIP",
            )
        return found

    # -- serialization -------------------------------------------------------------------------
    def serialize_attributes(self, fields: Any = None, raw: bool = False) -> dict[str, Any]:
        """Set columns under their serialized names (``serialize_as``; ``None`` hides)."""
        d = self.__dict__
        out: dict[str, Any] = {}
        for name, col in type(self).columns.items():
            if name not in d:
                continue
            key = col.serialize_as
            if key is None or not _pick(key, fields):
                continue
            value = d[name]
            if col.serialize is not None and not raw:
                value = col.serialize(value, name, self)
            out[key] = value if raw else _json_ready(value)
        return out

    def serialize_computed(self, fields: Any = None) -> dict[str, Any]:
        """``@computed`` values under their serialized names."""
        out: dict[str, Any] = {}
        strategy = type(self).naming_strategy
        for name, comp in type(self)._lucid.computed.items():
            key = comp.serialize_as
            if key is _UNSET:
                key = strategy.serialized_name(type(self), name)
            if key is None or not _pick(key, fields):
                continue
            out[key] = _json_ready(getattr(self, name))
        return out

    def serialize_relations(self, cherry_pick: Any = None, raw: bool = False) -> dict[str, Any]:
        """Loaded relations under their ``serialize_as`` names, serialized recursively."""
        preloaded = self.preloaded
        if not preloaded:
            return {}
        out: dict[str, Any] = {}
        rels = type(self).relations
        for name, value in preloaded.items():
            rel = rels.get(name)
            key = rel.serialize_as if rel is not None else name
            if key is None:
                continue
            if cherry_pick is not None and key not in cherry_pick:
                continue
            sub = cherry_pick.get(key) if cherry_pick else None
            if raw:
                out[key] = value
            elif isinstance(value, list):
                out[key] = [v.serialize(sub) for v in value]
            elif value is None:
                out[key] = None
            else:
                out[key] = value.serialize(sub)
        return out

    def serialize(self, cherry_pick: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """A JSON-ready dict: attributes, computed values, loaded relations, and
        ``{"meta": extras}`` when ``serialize_extras = True``. Cherry pick with
        ``{"fields": {"pick": [...]} | {"omit": [...]} | [...], "relations": {name: {...}}}``."""
        fields = cherry_pick.get("fields") if cherry_pick else None
        relations = cherry_pick.get("relations") if cherry_pick else None
        out = self.serialize_attributes(fields)
        out.update(self.serialize_relations(relations))
        out.update(self.serialize_computed(fields))
        if type(self).serialize_extras:
            out["meta"] = {k: _json_ready(v) for k, v in self.extras.items()}
        return out

    to_json = serialize

    def to_dict(self) -> dict[str, Any]:
        """Lucid's ``toObject()``: attribute values as Python objects, loaded relations
        (recursively) and ``extras``."""
        out: dict[str, Any] = dict(self.attributes)
        for name, value in self.preloaded.items():
            if isinstance(value, list):
                out[name] = [v.to_dict() for v in value]
            else:
                out[name] = value.to_dict() if value is not None else None
        out["extras"] = dict(self.extras)
        return out


def _set_columns(instances: Sequence[BaseModel], names: list[str]) -> list[dict[str, Any]]:
    """Each instance's set column attributes, as a new dict. Instances whose ``__dict__`` has
    the same keys as the one before (the usual batch) are read with one C-level getter."""
    out: list[dict[str, Any]] = []
    shape: frozenset[str] | None = None
    present: tuple[str, ...] = ()
    getter: Callable[[Any], Any] | None = None
    for inst in instances:
        d = inst.__dict__
        if getter is not None and d.keys() == shape:
            out.append(dict(zip(present, getter(d), strict=True)))
            continue
        values = {k: d[k] for k in names if k in d}
        out.append(values)
        present = tuple(values)
        shape = frozenset(d)
        getter = operator.itemgetter(*present) if len(present) > 1 else None
    return out


def _reserved_names() -> frozenset[str]:
    global _RESERVED
    if _RESERVED is None:
        names = {n for n in dir(BaseModel) if not n.startswith("_")}
        _RESERVED = frozenset(names | CLASS_OPTIONS)
    return _RESERVED


_RESERVED: frozenset[str] | None = None
