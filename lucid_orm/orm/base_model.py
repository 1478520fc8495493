"""``BaseModel``: the Active Record base class, the public face of a model. Its methods are the
SPEC API and delegate the mechanics: class building to ``model_info``, instance state to
``state``, rows to instances to ``hydration``, writes and client choice to ``persistence``,
dicts to ``serializer``."""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Self, TypeVar, dataclass_transform, overload

from ..errors import LucidError, ModelNotFoundError
from . import persistence, serializer
from .binding import bind, bind_transaction, client_for, client_for_new, search_values
from .columns import ColumnDef
from .model_info import (
    ModelInfo,
    check_key_value,
    declared,
    info_of,
    pk_column,
    pk_columns,
    relation_key,
)
from .naming import NamingStrategy, SnakeCaseNamingStrategy
from .payload import as_mapping_list, keys_list
from .persistence import search_query
from .preloader import load_aggregate_onto, load_onto
from .relations.belongs_to import belongs_to
from .relations.has_many import has_many
from .relations.has_many_through import has_many_through
from .relations.has_one import has_one
from .relations.has_one_through import has_one_through
from .relations.many_to_many import many_to_many
from .relations.morph_many import morph_many
from .relations.morph_one import morph_one
from .relations.morph_to import morph_to
from .relations.morph_to_many import morph_to_many, morphed_by_many
from .state import (
    DELETED,
    EXTRAS,
    EXTRAS_ROW,
    LOCAL,
    ORIGINAL,
    PERSISTED,
    ROW,
    SIDELOADED,
    TRX,
    bound_transaction,
    dirty_of,
    original_of,
    own_dict,
    persisted_in,
)

if TYPE_CHECKING:
    from ..database.query_client import Client
    from ..database.transaction import TransactionClient
    from .query_builder import ModelQueryBuilder, RelationRef
    from .relations.base import Relation, RelationClient
    from .relations.belongs_to import BelongsTo, BelongsToQueryClient
    from .relations.has_many import HasMany, HasManyQueryClient
    from .relations.has_many_through import HasManyThrough, HasManyThroughClient
    from .relations.has_one import HasOne, HasOneQueryClient
    from .relations.has_one_through import HasOneThrough, HasOneThroughClient
    from .relations.many_to_many import ManyToMany, ManyToManyQueryClient
    from .relations.morph_many import MorphMany, MorphManyQueryClient
    from .relations.morph_one import MorphOne, MorphOneQueryClient
    from .relations.morph_to import MorphTo, MorphToQueryClient
    from .relations.morph_to_many import MorphToMany, MorphToManyQueryClient

M = TypeVar("M", bound="BaseModel")
R = TypeVar("R", bound="BaseModel")


def _found(model: type[M], found: M | None) -> M:
    """``found``, else ``ModelNotFoundError`` (the ``*_or_fail`` finders)."""
    if found is None:
        raise ModelNotFoundError(model=model.__name__)
    return found


def _deleted_error() -> LucidError:
    return LucidError("Cannot mutate a deleted model instance", code="E_MODEL_DELETED")


# ``ModelQueryBuilder``, imported on the first ``query()`` (query_builder imports modules that
# import this one) and kept here: an import statement in ``query()`` costs a lookup in
# ``sys.modules`` and the package on every query built.
_builders: list[type[ModelQueryBuilder[Any]]] = []


def _builder_class() -> type[ModelQueryBuilder[Any]]:
    from .query_builder import ModelQueryBuilder

    _builders.append(ModelQueryBuilder)
    return ModelQueryBuilder


@dataclass_transform(
    kw_only_default=True,
    eq_default=False,
    field_specifiers=(
        belongs_to,
        has_one,
        has_many,
        many_to_many,
        has_many_through,
        morph_to,
        morph_one,
        morph_many,
        morph_to_many,
        morphed_by_many,
        has_one_through,
    ),
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
    #: The primary-key attribute, or a tuple of them for a composite key
    #: (``primary_key = ("tenant_id", "id")``; ``find((tenant_id, id))``).
    primary_key: ClassVar[str | tuple[str, ...]] = "id"
    #: Shards: ``shard_for = staticmethod(lambda key: "shard_1")`` names the connection of a
    #: shard key value (``None``: no opinion); ``shard_key`` names its attribute (default:
    #: the primary key). See ``orm/binding.py``.
    shard_for: ClassVar[staticmethod[[Any], str | None] | None] = None
    shard_key: ClassVar[str | None] = None
    #: Global scopes applied to every query of the model, by name: ``{"tenant": fn}`` where
    #: ``fn(query)`` adds conditions (see also ``@global_scope`` and ``add_global_scope``).
    global_scopes: ClassVar[Mapping[str, Callable[[Any], Any]]] = {}
    naming_strategy: ClassVar[NamingStrategy] = SnakeCaseNamingStrategy()
    serialize_extras: ClassVar[bool] = False
    columns: ClassVar[dict[str, ColumnDef]] = {}
    relations: ClassVar[dict[str, Any]] = {}
    # The metadata (model_info.ModelInfo) and an explicit table inherited by subclasses: both
    # written by ModelInfo.build, read through model_info.info_of / declared.
    _lucid: ClassVar[ModelInfo]
    _lucid_table: ClassVar[str]
    # The column attributes an assignment stores straight into the instance ``__dict__``
    # (``__setattr__``): those the class serves with its plain column reference, not an
    # override (a property); written by ModelInfo.build.
    _lucid_plain_columns: ClassVar[frozenset[str]] = frozenset()

    def __init_subclass__(
        cls, *, abstract: bool = False, soft_deletes: bool | str | None = None, **kwargs: Any
    ) -> None:
        super().__init_subclass__(**kwargs)
        ModelInfo.build(cls, abstract, soft_deletes)

    # -- construction --------------------------------------------------------------------------
    def __init__(self, **values: Any) -> None:
        d = self.__dict__
        d[PERSISTED] = False
        d[LOCAL] = True
        d[ORIGINAL] = {}
        if values:
            self.merge(values)

    def __getstate__(self) -> dict[str, Any]:
        """The state ``pickle`` and ``copy.deepcopy`` take: the instance's ``__dict__`` with the
        result rows hydration keeps for lazy reads (``original``, pivot extras) as tuples (a
        driver's row type, asyncpg's ``Record``, can be neither pickled nor copied) and without
        the binding to a transaction (a live connection, which no copy can carry)."""
        d = self.__dict__
        row = d.get(ROW)
        extras_row = d.get(EXTRAS_ROW)
        if (
            (row is None or type(row) is tuple)
            and (extras_row is None or type(extras_row) is tuple)
            and TRX not in d
        ):
            return d
        state = dict(d)
        state.pop(TRX, None)
        if row is not None:
            state[ROW] = tuple(row)
        if extras_row is not None:
            state[EXTRAS_ROW] = tuple(extras_row)
        return state

    def __copy__(self) -> Self:
        """A shallow copy: the same values, state and transaction binding."""
        copied = object.__new__(type(self))
        copied.__dict__.update(self.__dict__)
        return copied

    def __deepcopy__(self, memo: dict[int, Any]) -> Self:
        """A deep copy of the values and state (preloaded relations included), bound to the
        same transaction as this instance, if any: the transaction itself is not copied."""
        copied = object.__new__(type(self))
        memo[id(self)] = copied
        copied.__dict__.update(copy.deepcopy(self.__getstate__(), memo))
        trx = self.__dict__.get(TRX)
        if trx is not None:
            copied.__dict__[TRX] = trx
        return copied

    if not TYPE_CHECKING:
        # Hidden from type checkers: a visible __setattr__ would let mypy and pyright accept an
        # assignment to any attribute name, typos included (``post.titel = ...``).
        def __setattr__(self, name: str, value: Any) -> None:
            d = self.__dict__
            if d.get(DELETED):
                raise _deleted_error()
            if name in type(self)._lucid_plain_columns:
                # What object.__setattr__ does for a name whose class attribute is a
                # non-data descriptor, without its look-up through the class's MRO (a column
                # write costs about 60% of what it did: user code in loops of many).
                d[name] = value
            else:
                object.__setattr__(self, name, value)

    def __repr__(self) -> str:
        key = type(self).primary_key
        d = self.__dict__
        pk = d.get(key) if isinstance(key, str) else tuple(d.get(k) for k in key)
        state = "persisted" if self.is_persisted else "new"
        return f"<{type(self).__name__} {type(self).primary_key}={pk!r} ({state})>"

    # -- state ---------------------------------------------------------------------------------
    @property
    def attributes(self) -> dict[str, Any]:
        """Column values that are set, by attribute name (absent ≠ ``None``)."""
        d = self.__dict__
        return {k: d[k] for k in type(self).columns if k in d}

    @property
    def original(self) -> dict[str, Any]:
        """Attribute values as last read from or written to the database."""
        return dict(original_of(self))

    @property
    def dirty(self) -> dict[str, Any]:
        """Attributes changed since they were read or saved (all set ones for a new model)."""
        return dirty_of(self, type(self).columns)

    @property
    def is_dirty(self) -> bool:
        """Whether ``save()`` would write anything."""
        return bool(self.dirty)

    @property
    def is_persisted(self) -> bool:
        """Whether the row exists in the database (fetched or saved)."""
        return persisted_in(self.__dict__)

    @property
    def is_new(self) -> bool:
        """The opposite of ``is_persisted``."""
        return not self.is_persisted

    @property
    def is_deleted(self) -> bool:
        """Whether ``delete()`` removed this row."""
        return bool(self.__dict__.get(DELETED, False))

    @property
    def is_local(self) -> bool:
        """True when the instance was made in code (``User(...)``, ``create``), False when it
        was fetched from the database."""
        return bool(self.__dict__.get(LOCAL, False))

    @property
    def extras(self) -> dict[str, Any]:
        """Values the query selected that are not columns (aggregates, pivot columns…)."""
        # ``own_dict`` written out: read once per row after a ``with_count`` over thousands of
        # rows, where its two calls and a comprehension cost more than the rest of the read.
        d = self.__dict__
        found: Any = d.get(EXTRAS)
        if type(found) is dict:
            return found
        # Absent, or lazy as hydrated: made or read into the instance's dict (state.py).
        return own_dict(self, EXTRAS)

    @property
    def preloaded(self) -> dict[str, Any]:
        """Relations loaded on this instance, by relation name (a snapshot)."""
        d = self.__dict__
        return {name: d[name] for name in type(self).relations if name in d}

    @property
    def sideloaded(self) -> dict[str, Any]:
        """Values handed down with ``query.sideload({...})``."""
        return own_dict(self, SIDELOADED)

    @property
    def trx(self) -> TransactionClient | None:
        """The transaction this instance was fetched or saved through (cleared when it ends)."""
        return bound_transaction(self)

    def use_transaction(self, trx: TransactionClient) -> Self:
        """Run this instance's next queries (save, delete, relations) in ``trx``, while it
        lasts."""
        bind_transaction([self], trx)
        return self

    def _ensure_not_deleted(self) -> None:
        if self.__dict__.get(DELETED):
            raise _deleted_error()

    # -- filling -------------------------------------------------------------------------------
    def _fillable(self, values: Mapping[str, Any], extra: bool) -> dict[str, ColumnDef]:
        """The columns, once ``values`` are known to fit them (unknown keys only with
        ``extra``) and the instance is not deleted."""
        self._ensure_not_deleted()
        if not isinstance(values, Mapping):
            raise LucidError(f"Expected a mapping of attributes, got {values!r}")
        cols = type(self).columns
        if not extra:
            for key in values:
                if key not in cols:
                    raise LucidError(
                        f'Cannot set "{key}" on "{type(self).__name__}" model: it is not a column',
                        code="E_UNKNOWN_ATTRIBUTE",
                    )
        return cols

    def merge(self, values: Mapping[str, Any], allow_extra_properties: bool = False) -> Self:
        """Set the given attributes, keeping the others. Unknown keys raise
        ``E_UNKNOWN_ATTRIBUTE`` unless ``allow_extra_properties=True`` (then they go to
        ``extras``)."""
        cols = self._fillable(values, allow_extra_properties)
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
        cols = self._fillable(values, allow_extra_properties)
        d = self.__dict__
        pk = type(self).primary_key
        keys = (pk,) if isinstance(pk, str) else pk
        for key in cols:
            if key in d and not (key in keys and self.is_persisted):
                del d[key]
        return self.merge(values, allow_extra_properties)

    # -- persistence (persistence.py does the work, on the client resolved here) ---------------
    async def save(self, *, client: Client | None = None) -> Self:
        """Insert (new instance) or update the dirty attributes (persisted instance). An
        unchanged persisted instance issues no query. Runs the save/create/update hooks.

        The statement runs on ``client`` when given, else on the instance's binding: the
        transaction it belongs to, else the connection it was read or created with. Raises
        ``ModelNotFoundError`` (``E_ROW_NOT_FOUND``) when the row of a persisted instance is
        gone."""
        self._ensure_not_deleted()
        await persistence.save(self, client_for(self, client))
        return self

    async def delete(self, *, client: Client | None = None) -> None:
        """Delete the row; the instance becomes read-only (``is_deleted``). Runs on ``client``
        when given, else on the instance's binding; raises ``ModelNotFoundError``
        (``E_ROW_NOT_FOUND``) when the row is already gone. On a ``soft_deletes`` model it
        stamps ``deleted_at`` instead (the instance stays persisted and ``is_trashed``)."""
        self._ensure_not_deleted()
        await persistence.delete(self, client_for(self, client))

    async def force_delete(self, *, client: Client | None = None) -> None:
        """Delete the row for good, also on a soft-deleting model (its delete hooks run as for
        ``delete()``); the instance becomes read-only (``is_deleted``)."""
        self._ensure_not_deleted()
        await persistence.delete(self, client_for(self, client), force=True)

    async def restore(self, *, client: Client | None = None) -> Self:
        """Clear the soft-delete stamp of a trashed row (hooks ``before/after("restore")``);
        nothing to do when it is not trashed. ``E_RUNTIME_EXCEPTION`` on a model without
        ``soft_deletes``."""
        self._ensure_not_deleted()
        await persistence.restore(self, client_for(self, client))
        return self

    @property
    def is_trashed(self) -> bool:
        """Whether the row is soft-deleted (its ``deleted_at`` is set); False on models
        without ``soft_deletes``."""
        name = declared(type(self)).soft_delete
        return name is not None and self.__dict__.get(name) is not None

    async def refresh(self, *, client: Client | None = None) -> Self:
        """Re-read every attribute from the database (through ``client`` when given, else
        the instance's binding)."""
        self._ensure_not_deleted()
        await persistence.refresh(self, client_for(self, client))
        return self

    async def lock_for_update(self, callback: Callable[[Self], Any]) -> Any:
        """Re-fetch this row ``FOR UPDATE`` in a transaction and call ``callback(fresh)``
        (awaited when async); returns its result."""
        cls = type(self)
        pk_value = persistence.pk_value(self, "lock")
        async with client_for(self).transaction() as trx:
            query = persistence.where_key(cls.query(client=trx), cls, pk_value)
            fresh = await query.for_update().first()
            if fresh is None:
                raise _deleted_error()
            result = callback(fresh)
            if inspect.isawaitable(result):
                result = await result
            return result

    # -- static API ----------------------------------------------------------------------------
    @classmethod
    def add_global_scope(cls, name: str, scope: Callable[[Any], Any]) -> None:
        """Apply ``scope(query)`` to every query of this model from now on (replacing a scope
        of that name). Subclasses defined earlier keep their own scopes."""
        from .hooks import check_global_scope

        check_global_scope(name, scope)
        declared(cls).global_scopes[name] = scope

    @classmethod
    def remove_global_scope(cls, name: str) -> None:
        """Stop applying the global scope ``name`` (no error when there is none)."""
        declared(cls).global_scopes.pop(name, None)

    @classmethod
    def query(
        cls, *, client: Client | None = None, connection: str | None = None
    ) -> ModelQueryBuilder[Self]:
        """A query builder returning instances of this model: ``await User.query().where(...)``.
        ``client=trx`` runs it in a transaction; ``connection=`` picks a named connection."""
        builder = _builders[0] if _builders else _builder_class()
        return builder(cls, client_for(cls, client, connection))

    @classmethod
    async def find(
        cls, value: Any, *, client: Client | None = None, connection: str | None = None
    ) -> Self | None:
        """The row with this primary key, or ``None``."""
        return await persistence.find(cls, value, client, connection)

    @classmethod
    async def find_or_fail(
        cls, value: Any, *, client: Client | None = None, connection: str | None = None
    ) -> Self:
        """Like ``find``; raises ``ModelNotFoundError`` (``E_ROW_NOT_FOUND``, 404) when absent."""
        return _found(cls, await cls.find(value, client=client, connection=connection))

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
        target = client_for(cls, client, connection, values=search_values(key, value))
        return await search_query(cls, key, value, target).first()

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
        return _found(cls, await cls.find_by(key, value, client=client, connection=connection))

    @classmethod
    async def find_many(
        cls, values: Sequence[Any], *, client: Client | None = None, connection: str | None = None
    ) -> list[Self]:
        """Rows whose primary key is in ``values`` (ordered by primary key, descending)."""
        for v in values:
            check_key_value(cls, v)
        query = cls.query(client=client, connection=connection)
        if declared(cls).composite:
            columns = list(pk_columns(cls))
            query.where_in(columns, [list(v) for v in dict.fromkeys(values)])
            for column in columns:
                query.order_by(column, "desc")
            return await query
        pk = pk_column(cls)
        return await query.where_in(pk, list(dict.fromkeys(values))).order_by(pk, "desc")

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
        target = client_for(cls, client, connection, values=search_values(key, value))
        return await search_query(cls, key, value, target)

    @classmethod
    async def first(
        cls, *, client: Client | None = None, connection: str | None = None
    ) -> Self | None:
        """The first row by primary key."""
        query = cls.query(client=client, connection=connection)
        for column in pk_columns(cls):
            query.order_by(column)
        return await query.first()

    @classmethod
    async def first_or_fail(
        cls, *, client: Client | None = None, connection: str | None = None
    ) -> Self:
        return _found(cls, await cls.first(client=client, connection=connection))

    @classmethod
    async def all(
        cls, *, client: Client | None = None, connection: str | None = None
    ) -> list[Self]:
        """Every row, ordered by primary key descending (as Lucid)."""
        query = cls.query(client=client, connection=connection)
        for column in pk_columns(cls):
            query.order_by(column, "desc")
        return await query

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
        return await instance.save(client=client_for(instance, client, connection))

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
        from .hydration import new_many

        rows = as_mapping_list(values, "create_many")
        instances = new_many(cls, rows, allow_extra_properties)
        if not instances:
            return []
        await persistence.create_many(
            cls, instances, client_for_new(cls, instances, client, connection)
        )
        return instances

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
        bind([instance], client_for(cls, client, connection, values=search))
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
        """The first row matching ``search``, else create ``search + save_payload``.

        Race-safe with a unique index on the ``search`` columns: the insert runs in a
        savepoint, and a caller that loses the race to a concurrent one returns the row that
        one created (Eloquent's ``createOrFirst``)."""
        instance = await cls.first_or_new(
            search, save_payload, client=client, connection=connection
        )
        if not instance.is_persisted:
            target = client_for(cls, client, connection, values=search)
            return await persistence.create_or_first(instance, search, target)
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
        return await persistence.retrying(
            client_for(cls, client, connection, values=search),
            lambda trx: persistence.update_or_create(cls, search, update_payload, trx),
        )

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
        base = client_for(cls, client, connection)
        return await persistence.upsert_many(cls, key_list, rows, base, "new_up")

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
        return await persistence.retrying(
            client_for(cls, client, connection),
            lambda trx: persistence.upsert_many(cls, key_list, rows, trx, "create"),
        )

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
        return await persistence.retrying(
            client_for(cls, client, connection),
            lambda trx: persistence.upsert_many(cls, key_list, rows, trx, "update"),
        )

    @classmethod
    async def upsert(
        cls,
        values: Mapping[str, Any],
        *,
        conflict: str | Sequence[str],
        merge: Sequence[str] | None = None,
        client: Client | None = None,
        connection: str | None = None,
    ) -> Self:
        """Insert ``values``, or update the row that has the same ``conflict`` attributes (a
        unique index) with the ``merge`` attributes (``None``: every given attribute but
        ``conflict`` and ``created_at``-style timestamps), in one statement; returns the row
        as an instance with its key. No hooks run (one statement, as Eloquent's ``upsert``).
        Inside a transaction the instance follows a rollback (docs/upsert.md): new again if
        the upsert inserted its row, else persisted with every attribute dirty."""
        rows = [values] if isinstance(values, Mapping) else values
        made = await cls.upsert_many(
            rows, conflict=conflict, merge=merge, client=client, connection=connection
        )
        return made[0]

    @classmethod
    async def upsert_many(
        cls,
        rows: Sequence[Mapping[str, Any]],
        *,
        conflict: str | Sequence[str],
        merge: Sequence[str] | None = None,
        client: Client | None = None,
        connection: str | None = None,
    ) -> list[Self]:
        """``upsert`` of several rows: one ``INSERT … ON CONFLICT … RETURNING`` (MySQL: ``ON
        DUPLICATE KEY UPDATE … RETURNING``) per set of attributes; instances in payload order."""
        payload = as_mapping_list(rows, "upsert_many")
        if not payload:
            return []
        conflict_list = keys_list(conflict, "upsert_many")
        merge_list = None if merge is None else ([merge] if isinstance(merge, str) else list(merge))
        target = client_for(cls, client, connection)
        return await persistence.upsert_rows(cls, payload, conflict_list, merge_list, target)

    @classmethod
    async def update_many(
        cls,
        instances: Sequence[Self],
        *,
        client: Client | None = None,
        connection: str | None = None,
    ) -> list[Self]:
        """Write the changes of persisted instances: one ``UPDATE`` per set of changed columns
        (each row its own values), in one transaction, update/save hooks per instance."""
        items = list(instances)
        if items:
            target = client_for(items[0], client, connection)
            await persistence.update_many(cls, items, target)
        return items

    @classmethod
    async def save_many(
        cls,
        instances: Sequence[Self],
        *,
        client: Client | None = None,
        connection: str | None = None,
    ) -> list[Self]:
        """Save several instances in one transaction: the new ones in one multi-row INSERT
        (``create_many``), the changes of the persisted ones with ``update_many``."""
        items = list(instances)
        if not items:
            return items
        fresh = [m for m in items if not m.is_persisted]
        changed = [m for m in items if m.is_persisted]
        async with client_for(items[0], client, connection).transaction() as trx:
            if fresh:
                await persistence.insert_many(cls, fresh, trx)
            if changed:
                await persistence.update_many(cls, changed, trx)
        return items

    @classmethod
    async def truncate(
        cls, cascade: bool = False, *, client: Client | None = None, connection: str | None = None
    ) -> None:
        """Remove every row of the table (``TRUNCATE``; ``DELETE`` on SQLite)."""
        target = client_for(cls, client, connection)
        await target.dialect_ops.truncate(target, info_of(cls).table_name, cascade)

    # -- relationships -------------------------------------------------------------------------
    # The attribute form returns the kind's own client, typed with this model and the related
    # one; subclasses of a kind come before it (MorphOne before HasOne, …).
    @overload
    def related(self, relation: MorphTo[R]) -> MorphToQueryClient[Self, R]: ...
    @overload
    def related(self, relation: BelongsTo[R]) -> BelongsToQueryClient[Self, R]: ...
    @overload
    def related(self, relation: MorphOne[R]) -> MorphOneQueryClient[Self, R]: ...
    @overload
    def related(self, relation: HasOne[R]) -> HasOneQueryClient[Self, R]: ...
    @overload
    def related(self, relation: MorphMany[R]) -> MorphManyQueryClient[Self, R]: ...
    @overload
    def related(self, relation: HasMany[R]) -> HasManyQueryClient[Self, R]: ...
    @overload
    def related(self, relation: MorphToMany[R]) -> MorphToManyQueryClient[Self, R]: ...
    @overload
    def related(self, relation: ManyToMany[R]) -> ManyToManyQueryClient[Self, R]: ...
    @overload
    def related(self, relation: HasOneThrough[R]) -> HasOneThroughClient[Self, R]: ...
    @overload
    def related(self, relation: HasManyThrough[R]) -> HasManyThroughClient[Self, R]: ...
    @overload
    def related(self, relation: str) -> RelationClient[Self, Any]: ...

    def related(self, relation: str | Relation[Any]) -> Any:
        """The query client of a relation for this instance: ``.query()`` and the relation's
        writes (``associate``, ``create``, ``save_many``…), on the instance's binding unless a
        write is given ``client=``. Name the relation (``post.related("author")``) or pass its
        attribute (``post.related(Post.author)``): the attribute form is typed with both
        models (``BelongsToQueryClient[Post, User]``: ``query()`` builds ``User`` queries,
        ``associate`` takes a ``User``)."""
        found = type(self).get_relation(relation)
        found.boot()
        return found.client(self, client_for(self))

    async def load(
        self,
        relation: RelationRef | Callable[[Any], Any],
        callback: Callable[[Any], Any] | Mapping[Any, Callable[[Any], Any]] | None = None,
        *,
        client: Client | None = None,
    ) -> Self:
        """Load a relation onto this instance (one query): ``await post.load("author")``,
        ``await user.load("posts", lambda q: q.where(...))``, ``await post.load(Post.author)``,
        or several at once with
        ``await post.load(lambda loader: loader.load("author").load("comments"))``."""
        await load_onto(self, relation, callback, client_for(self, client))
        return self

    async def load_once(self, relation: RelationRef) -> Self:
        """``load`` unless the relation is already loaded (a one-relation that resolved to
        ``None`` counts as loaded)."""
        relation = relation_key(type(self), relation)
        if relation in self.__dict__:
            return self
        return await self.load(relation)

    async def load_count(
        self, relation: RelationRef, callback: Callable[[Any], Any] | None = None
    ) -> Self:
        """Count related rows into ``extras["<relation>_count"]`` (one query)."""
        relation = relation_key(type(self), relation)
        await load_aggregate_onto(
            self, relation, lambda q: q.with_count(relation, callback), client_for(self)
        )
        return self

    async def load_aggregate(self, relation: RelationRef, callback: Callable[[Any], Any]) -> Self:
        """Any aggregate of related rows into ``extras`` (the callback names it with ``as_``)."""
        relation = relation_key(type(self), relation)
        await load_aggregate_onto(
            self, relation, lambda q: q.with_aggregate(relation, callback), client_for(self)
        )
        return self

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
    def get_relation(cls, name: RelationRef) -> Any:
        """The relation object ``name`` (a relation attribute is checked to be this model's);
        raises ``E_UNDEFINED_RELATIONSHIP`` when unknown."""
        name = relation_key(cls, name)
        if name not in cls.relations:
            message = f'"{name}" is not defined as a relationship on "{cls.__name__}" model'
            raise LucidError(message, code="E_UNDEFINED_RELATIONSHIP")
        return cls.relations[name]

    # -- pydantic (lucid_orm/pydantic.py, imported only when pydantic asks) ---------------------
    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        """Makes the model a pydantic type (``response_model=User``, ``list[User]``): it
        validates instances and serializes through ``serialize()``, typed for JSON schema."""
        from ..pydantic import model_core_schema

        return model_core_schema(cls, handler)

    # -- serialization (serializer.py) ----------------------------------------------------------
    def serialize_attributes(self, fields: Any = None, raw: bool = False) -> dict[str, Any]:
        """Set columns under their serialized names (``serialize_as``; ``None`` hides)."""
        return serializer.attributes(self, fields, raw)

    def serialize_computed(self, fields: Any = None) -> dict[str, Any]:
        """``@computed`` values under their serialized names."""
        return serializer.computed_values(self, fields)

    def serialize_relations(self, cherry_pick: Any = None, raw: bool = False) -> dict[str, Any]:
        """Loaded relations under their ``serialize_as`` names, serialized recursively."""
        return serializer.relations(self, cherry_pick, raw)

    def serialize(self, cherry_pick: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """A JSON-ready dict: attributes, computed values, loaded relations, and
        ``{"meta": extras}`` when ``serialize_extras = True``. Cherry pick with
        ``{"fields": {"pick": [...]} | {"omit": [...]} | [...], "relations": {name: {...}}}``."""
        return serializer.serialize(self, cherry_pick)

    to_json = serialize

    def to_dict(self) -> dict[str, Any]:
        """Lucid's ``toObject()``: attribute values as Python objects, loaded relations
        (recursively) and ``extras``."""
        return serializer.to_dict(self)
