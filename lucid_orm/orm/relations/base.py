"""What every relation kind shares: the typed descriptor and relation object (keys, boot,
matching), the related-query builder that wraps user wheres in the relation constraint, the
sub-query builder behind ``has``/``with_count``, and the managed-transaction helper for writes."""

from __future__ import annotations

import builtins
import copy
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import (
    TYPE_CHECKING,
    Any,
    ClassVar,
    Generic,
    Protocol,
    Self,
    TypedDict,
    TypeVar,
    cast,
    overload,
)

from sqlalchemy import Select, and_, func, select
from sqlalchemy.sql import ColumnElement, FromClause, TableClause
from sqlalchemy.sql.elements import ColumnClause
from sqlalchemy.sql.schema import Table

from ...errors import LucidError, RelationNotLoadedError, missing_attribute, runtime_error
from ...query.chainable import Chainable, check_page, correlated, resolve_column
from ...query.keys import keys_in, rows_in
from .. import lazy_guard
from ..binding import bind, client_for
from ..model_info import declared, info_of
from ..naming import RelationType
from ..query_builder import ModelQueryBuilder
from ..state import EXTRAS, EXTRAS_ROW, LazyExtras, bound_transaction, extras_of

if TYPE_CHECKING:
    from ...database.query_client import Client
    from ...database.transaction import TransactionClient
    from ..base_model import BaseModel
    from .many_to_many import ManyToManyPivotQueryBuilder

R = TypeVar("R", bound="BaseModel")
#: The parent model of a relation query client (``post.related(...)``: ``Post``).
P = TypeVar("P", bound="BaseModel")

# ``serialize_as`` not given: the relation serializes under its own name (``None`` hides it).
_OWN_NAME: Any = object()


class RelationOptions(TypedDict, total=False):
    """The options every relation kind takes (the declaration functions' ``**options``)."""

    serialize_as: str | None
    on_query: Callable[[Any], Any] | None
    meta: Any


class KeyOptions(RelationOptions, total=False):
    """``RelationOptions`` plus the two keys of belongs_to, has_one and has_many (a tuple of
    attribute names for a composite key)."""

    foreign_key: str | tuple[str, ...] | None
    local_key: str | tuple[str, ...] | None


_ROW_NUMBER = "lucid_row_number"

# Keeps IN (...) lists below every dialect's bound-parameter limit (SQLite 32766, asyncpg
# 32767, MySQL 65535) with room for the statement's other bindings.
PRELOAD_CHUNK = 30_000


def _chunks(values: list[Any], size: int = PRELOAD_CHUNK) -> Iterable[list[Any]]:
    for i in range(0, len(values), size):
        yield values[i : i + size]


def constrained(
    constraint: ColumnElement[Any] | None, user: ColumnElement[Any] | None
) -> ColumnElement[Any] | None:
    """The relation constraint AND the user's conditions as one group."""
    if constraint is None:
        return user
    if user is None:
        return constraint
    return and_(constraint, user.self_group())


_NO_EXTRAS: dict[str, Any] = {}


def group_rows(related: Sequence[Any], name: str, *, extra: bool = False) -> dict[Any, list[Any]]:
    """Related rows grouped by their attribute ``name`` (or, with ``extra``, the pivot or
    through key of that name in their extras): one pass, one dict, no per-row call."""
    groups: dict[Any, list[Any]] = {}
    get = groups.get
    if extra:
        key = EXTRAS
        shape: Any = None  # the last lazy extras (one per result shape)
        at: int | None = None
        for row in related:
            d = row.__dict__
            found = d.get(key)
            if type(found) is LazyExtras:  # the extras as hydrated, state.py
                if found is not shape:
                    shape, at = found, found.positions.get(name)
                value = d[EXTRAS_ROW][at] if at is not None else None
            else:
                value = (found or _NO_EXTRAS).get(name)
            bucket = get(value)
            if bucket is None:
                groups[value] = [row]
            else:
                bucket.append(row)
        return groups
    for row in related:
        value = row.__dict__.get(name)
        bucket = get(value)
        if bucket is None:
            groups[value] = [row]
        else:
            bucket.append(row)
    return groups


def group_by_values(related: Sequence[Any], values: Iterable[Any]) -> dict[Any, list[Any]]:
    """``group_rows`` with each row's key value given (``values``, in the order of
    ``related``): a preload that has the result rows reads them there, one C-level pass,
    instead of from each instance."""
    groups: dict[Any, list[Any]] = {}
    get = groups.get
    for value, row in zip(values, related, strict=True):
        bucket = get(value)
        if bucket is None:
            groups[value] = [row]
        else:
            bucket.append(row)
    return groups


def group_rows_by(
    related: Sequence[Any], names: tuple[str, ...], *, extra: bool = False
) -> dict[tuple[Any, ...], list[Any]]:
    """``group_rows`` for a composite key: rows grouped by the tuple of their attributes
    ``names`` (or of their extras of those names)."""
    groups: dict[tuple[Any, ...], list[Any]] = {}
    for row in related:
        source = extras_of(row) if extra else row.__dict__
        groups.setdefault(tuple([source.get(n) for n in names]), []).append(row)
    return groups


def key_names(value: str | Sequence[str]) -> tuple[str, ...]:
    """A key option as a tuple of attribute names (one for a single key)."""
    if isinstance(value, str):
        return (value,)
    names = tuple(value)
    if not names or not all(isinstance(n, str) and n for n in names):
        raise LucidError(
            f"A relation key must be an attribute name or a tuple of them, got {value!r}",
            code="E_INVALID_RELATION",
        )
    return names


def single_key(relation: Relation[Any], value: str | Sequence[str]) -> str:
    """A key option of a kind that takes single keys only (``E_INVALID_RELATION`` for a
    tuple: the morph kinds)."""
    if isinstance(value, str):
        return value
    names = tuple(value)
    if len(names) == 1 and isinstance(names[0], str):
        return names[0]
    raise LucidError(
        f'"{relation.model.__name__}.{relation.relation_name}": a {relation.type} relation '
        f"takes single-attribute keys, got {value!r} (composite keys: belongs_to, has_one, "
        "has_many, many_to_many)",
        code="E_INVALID_RELATION",
    )


def key_label(names: Sequence[str]) -> str:
    """How a composite key is named in messages: ``(tenant_id, user_id)``."""
    return f"({', '.join(names)})"


class Relation(Generic[R]):
    """A relation declared on a model: the descriptor and the relation object in one.

    Class access (``Post.author``) returns the relation; instance access returns the loaded
    value or raises ``RelationNotLoadedError`` — it never queries.
    """

    type: ClassVar[RelationType]
    _lucid_relation: ClassVar[bool] = True
    _is_many: ClassVar[bool] = False
    # The four roles of a kind (Lucid's folder per kind): the template methods ``eager_query``,
    # ``sub_query`` and ``client`` build these; each kind module sets them below its classes.
    query_builder_class: ClassVar[builtins.type[RelationQueryBuilder[Any]]]
    sub_query_builder_class: ClassVar[builtins.type[SubQueryBuilder[Any]]]
    query_client_class: ClassVar[Callable[..., Any]]
    # Many-relations: the key related rows are grouped by for matching (an attribute, or with
    # ``_group_in_extras`` the pivot/through key selected into their extras).
    _group_in_extras: ClassVar[bool] = False
    # morph_to: the preloader hands it its parents whole (one query per type present). Declared
    # here too so that reading it on any relation finds it (no AttributeError to swallow).
    _per_type: ClassVar[bool] = False
    # The static preload's record of this relation (preloader._Static), made on its first
    # static preload; ``None`` again whenever the relation is to boot again (``attach``,
    # ``clone_for``): it holds what booting resolves.
    _static: Any = None

    def __init__(
        self,
        related: Callable[[], builtins.type[R]],
        *,
        foreign_key: str | tuple[str, ...] | None = None,
        local_key: str | tuple[str, ...] | None = None,
        serialize_as: str | None = _OWN_NAME,
        on_query: Callable[[Any], Any] | None = None,
        meta: Any = None,
    ) -> None:
        if not callable(related):
            raise LucidError("A relation needs a callable returning the related model")
        if on_query is not None and inspect.iscoroutinefunction(on_query):
            raise LucidError(
                '"on_query" must be a plain function that configures the query; an async def '
                "callback is not allowed",
                code="E_RUNTIME_EXCEPTION",
            )
        self._related = related
        #: The keys as declared (``None``: the naming strategy's default, resolved by boot()).
        self.options: KeyOptions = {"foreign_key": foreign_key, "local_key": local_key}
        self._serialize_as_option = serialize_as
        self.on_query = on_query
        self.meta = meta
        # Set by attach() when the model class is built; a relation is used only after that.
        self.model = cast("builtins.type[BaseModel]", None)
        self.relation_name = ""
        self.booted = False
        self.foreign_key = ""
        self.local_key = ""
        self.foreign_key_column_name = ""
        self.local_key_column_name = ""
        # Set by boot(): the parent attribute whose values a related query matches, the
        # related query's column it matches them with, and the parent's column of that key
        # (a correlated subquery compares the two columns).
        self.parent_key = ""
        self.match_column = ""
        self.parent_column = ""
        # A composite relation (tuple keys) keeps each of the above as a tuple here, the str
        # attributes then naming the tuple for messages; code branches once on ``composite``.
        self.composite = False
        self.foreign_keys: tuple[str, ...] = ()
        self.local_keys: tuple[str, ...] = ()
        self.foreign_key_columns: tuple[str, ...] = ()
        self.local_key_columns: tuple[str, ...] = ()
        self.parent_keys: tuple[str, ...] = ()
        self.match_columns: tuple[str, ...] = ()
        # The constraint of its correlated subqueries between two model tables
        # (``SubQueryBuilder._constraint``): (related table, outer table, columns, clause).
        self._sub_constraint: tuple[Any, Any, tuple[str, str], ColumnElement[Any]] | None = None
        self.parent_columns: tuple[str, ...] = ()

    # -- declaration ---------------------------------------------------------------------------
    def __set_name__(self, owner: builtins.type, name: str) -> None:
        self.relation_name = name

    def attach(self, model: builtins.type[BaseModel], name: str) -> None:
        self.model = model
        self.relation_name = name
        self.booted = False
        self._static = None

    def clone_for(self, model: builtins.type[BaseModel]) -> Self:
        """A copy of this relation, with its options, for a subclass."""
        clone = copy.copy(self)
        clone.booted = False
        clone._static = None
        setattr(model, self.relation_name, clone)
        return clone

    @property
    def serialize_as(self) -> str | None:
        opt = self._serialize_as_option
        return self.relation_name if opt is _OWN_NAME else opt

    def related_model(self) -> builtins.type[R]:
        """The related model class (the lazy reference resolved)."""
        return self._related()

    # -- boot ----------------------------------------------------------------------------------
    def boot(self) -> None:
        """Resolve keys (defaults from the naming strategy) and check they exist."""
        if self.booted:
            return
        self._boot_keys()
        self.booted = True

    def _boot_keys(self) -> None:
        raise NotImplementedError

    # -- descriptor ----------------------------------------------------------------------------
    # A non-data descriptor: a loaded value lives in the instance ``__dict__`` under the
    # relation name, so reading it is a plain attribute read; this runs only when it is absent.
    def __get__(self, obj: BaseModel | None, owner: builtins.type) -> Any:
        if obj is None:
            return self
        raise RelationNotLoadedError(type(obj).__name__, self.relation_name)

    # -- matching (the preloader's API) --------------------------------------------------------
    def set_related(self, parent: BaseModel, related: Any) -> None:
        """Set the loaded value on ``parent`` (``None``/instance or a list for many-relations)."""
        self.boot()
        if self._is_many:
            if not isinstance(related, list):
                raise runtime_error(
                    f'"{self.model.__name__}.{self.relation_name}" must be a list when setting '
                    f'"{self.type}" relationship'
                )
            for r in related:
                check_related(self, r)
        else:
            if isinstance(related, list | tuple):
                raise runtime_error(
                    f'"{self.model.__name__}.{self.relation_name}" cannot reference more than '
                    f'one instance of "{self.related_model().__name__}" model'
                )
            if related is not None:
                check_related(self, related)
        parent.__dict__[self.relation_name] = related

    def push_related(self, parent: BaseModel, related: Any) -> None:
        """Add to the loaded value (appends on many-relations, replaces on one-relations)."""
        self.boot()
        if self._is_many:
            items = related if isinstance(related, list) else [related]
            for r in items:
                check_related(self, r)
            current = parent.__dict__.get(self.relation_name)
            parent.__dict__[self.relation_name] = [*(current or []), *items]
            return
        self.set_related(parent, related)

    def set_related_for_many(self, parents: Sequence[BaseModel], related: Sequence[Any]) -> None:
        """Match ``related`` rows to ``parents`` in one pass (dicts, never nested loops). A
        many-relation groups them by ``_group_key()``, then gives each parent its group."""
        self.boot()
        if self.composite:
            self._set_related_composite(parents, related)
            return
        self.give_groups(
            parents, group_rows(related, self._group_key(), extra=self._group_in_extras)
        )

    def give_groups(self, parents: Sequence[BaseModel], groups: dict[Any, list[Any]]) -> None:
        """The second half of ``set_related_for_many`` (single keys): each parent gets the
        group of related rows under its local key value (``[]`` when none)."""
        key, name = self.local_key, self.relation_name
        given: set[Any] = set()
        for parent in parents:
            d = parent.__dict__
            value = d.get(key)
            bucket = groups.get(value) if value is not None else None
            if bucket is None:
                d[name] = []
            elif value in given:
                # Parents sharing a key value each get their own list.
                d[name] = list(bucket)
            else:
                given.add(value)
                d[name] = bucket

    def _group_key(self) -> str:
        """Hook of many-relations: the key ``set_related_for_many`` groups related rows by."""
        raise NotImplementedError

    def _group_keys(self) -> tuple[str, ...]:
        """Hook of composite many-relations: the keys related rows are grouped by."""
        raise NotImplementedError

    def _set_related_composite(self, parents: Sequence[BaseModel], related: Sequence[Any]) -> None:
        """``set_related_for_many`` of a composite many-relation: groups by key tuples."""
        groups = group_rows_by(related, self._group_keys(), extra=self._group_in_extras)
        keys, name = self.local_keys, self.relation_name
        given: set[Any] = set()
        for parent in parents:
            d = parent.__dict__
            value = tuple(d.get(k) for k in keys)
            bucket = groups.get(value) if None not in value else None
            if bucket is None:
                d[name] = []
            elif value in given:
                d[name] = list(bucket)
            else:
                given.add(value)
                d[name] = bucket

    def _set_keys(
        self,
        local: str | Sequence[str],
        foreign: str | Sequence[str],
        local_owner: builtins.type[BaseModel],
        foreign_owner: builtins.type[BaseModel],
    ) -> bool:
        """Resolve ``local_key``/``foreign_key`` (an attribute, or a tuple of them for a
        composite key) and their column names; ``True`` when the keys are composite (then the
        tuple attributes hold them and the str ones name them)."""
        locals_, foreigns = key_names(local), key_names(foreign)
        if len(locals_) != len(foreigns):
            raise LucidError(
                f'"{self.model.__name__}.{self.relation_name}": local_key {local!r} and '
                f"foreign_key {foreign!r} must have as many attributes",
                code="E_INVALID_RELATION",
            )
        local_columns = tuple(require_key(self, local_owner, k) for k in locals_)
        foreign_columns = tuple(require_key(self, foreign_owner, k) for k in foreigns)
        self.composite = len(locals_) > 1
        if not self.composite:
            self.local_key, self.foreign_key = locals_[0], foreigns[0]
            self.local_key_column_name = local_columns[0]
            self.foreign_key_column_name = foreign_columns[0]
            return False
        self.local_keys, self.foreign_keys = locals_, foreigns
        self.local_key, self.foreign_key = key_label(locals_), key_label(foreigns)
        self.local_key_column_name = key_label(local_columns)
        self.foreign_key_column_name = key_label(foreign_columns)
        self.local_key_columns, self.foreign_key_columns = local_columns, foreign_columns
        return True

    # -- queries (template methods: boot, then build the kind's class) --------------------------
    def eager_query(self, parents: Sequence[BaseModel], client: Client) -> RelationQueryBuilder[R]:
        """The preload query for ``parents`` (their distinct non-NULL ``parent_key`` values)."""
        self.boot()
        seen: dict[Any, None] = {}
        if self.composite:
            keys = self.parent_keys
            for parent in parents:
                row = tuple([key_value(self, parent, k, "preload") for k in keys])
                if None not in row:
                    seen[row] = None
            return self.query_builder_class(self, client, values=list(seen))
        for parent in parents:
            value = key_value(self, parent, self.parent_key, "preload")
            if value is not None:
                seen[value] = None
        return self.query_builder_class(self, client, values=list(seen))

    def sub_query(self, client: Client, outer: FromClause | None = None) -> SubQueryBuilder[R]:
        """The correlated subquery behind ``has``/``where_has``/``with_count``, correlated to
        ``outer`` (default: this model's table)."""
        self.boot()
        if outer is None:
            outer = info_of(self.model).table
            assert outer is not None
        return self.sub_query_builder_class(self, client, outer, self_alias(self))

    def client(self, parent: BaseModel, query_client: Client) -> Any:
        """The query client for ``parent.related(name)``."""
        self.boot()
        return self.query_client_class(self, parent, query_client)

    def hydrate_for_persistence(self, parent: BaseModel, values: Any) -> None:
        """Set the relation's keys on ``values`` (a model or a dict) before it is written."""
        raise NotImplementedError

    def __repr__(self) -> str:
        owner = self.model.__name__ if self.model is not None else "?"
        return f"<{type(self).__name__} {owner}.{self.relation_name}>"


class OneRelation(Relation[R]):
    """A relation to at most one row (belongs_to, has_one): ``parent.<name>`` is ``R | None``."""

    _is_many = False

    if TYPE_CHECKING:  # typed access; at run time Relation.__get__ serves

        @overload
        def __get__(self, obj: None, owner: builtins.type) -> Self: ...

        @overload
        def __get__(self, obj: object, owner: builtins.type) -> R | None: ...

        def __get__(self, obj: Any, owner: builtins.type) -> Any: ...

        def __set__(self, obj: Any, value: R | None) -> None: ...


class ManyRelation(Relation[R]):
    """A relation to a list of rows (has_many, many_to_many, has_many_through):
    ``parent.<name>`` is ``list[R]``."""

    _is_many = True

    if TYPE_CHECKING:  # typed access; at run time Relation.__get__ serves

        @overload
        def __get__(self, obj: None, owner: builtins.type) -> Self: ...

        @overload
        def __get__(self, obj: object, owner: builtins.type) -> list[R]: ...

        def __get__(self, obj: Any, owner: builtins.type) -> Any: ...

        def __set__(self, obj: Any, value: list[R]) -> None: ...


def require_key(relation: Relation[Any], owner: builtins.type[BaseModel], key: str) -> str:
    """The column name of attribute ``key`` of ``owner``, which a relation's boot needs:
    ``E_MISSING_MODEL_ATTRIBUTE`` naming the relation when the model lacks it."""
    col = owner.columns.get(key)
    if col is None:
        raise missing_attribute(
            f'"{relation.model.__name__}.{relation.relation_name}" expects "{key}" to exist on '
            f'"{owner.__name__}" model, but is missing'
        )
    return col.column_name


def key_value(relation: Relation[Any], model: BaseModel, key: str, action: str) -> Any:
    """``model``'s value of attribute ``key`` for ``action`` (``preload``, ``persist``…) of
    ``relation``: ``E_MISSING_MODEL_ATTRIBUTE`` when it was never set (``None`` is a value)."""
    d = model.__dict__
    if key not in d:
        raise missing_attribute(
            f'Cannot {action} "{relation.relation_name}", value of '
            f'"{type(model).__name__}.{key}" is undefined'
        )
    return d[key]


def run_on_query(relation: Relation[Any], query: Chainable) -> None:
    """Run ``relation``'s ``on_query`` on one of its queries: the hook's conditions become one
    scoped group that the user's wheres (an ``or_where`` included) are AND-ed with."""
    if relation.on_query is not None:
        with query.scoped():
            relation.on_query(query)


def intermediate_models(relation: Relation[Any]) -> list[builtins.type[BaseModel]]:
    """The models whose tables ``relation``'s queries join between the parent and the related
    table (the intermediates of the through kinds, their ``hops`` but the last; pivot tables
    have no model): their global scopes constrain those queries too."""
    hops = getattr(relation, "hops", None)
    if not hops:
        return []
    return [hop.model for hop in hops[:-1] if getattr(hop, "model", None) is not None]


class RelationQueryBuilder(ModelQueryBuilder[R]):
    """A query on a relation's related model; the relation constraint is added at compile time
    around the user's own wheres (grouped), so an ``or_where`` can never escape it.

    Kinds extend it through hooks that return values: ``_match_target()`` (the column the
    parents' keys are compared with), ``_key_columns()`` (what the preloader matches on, added
    to the SELECT list), ``_relation_sources()`` and the ``Chainable`` compile hooks."""

    is_related_query = True
    is_related_sub_query = False
    is_pivot_only_query = False
    # A per-parent limit and its order (many-kinds: ``group_limit``/``group_order_by``).
    _group_limit: int | None = None
    _group_order: tuple[str, str] | None = None

    def __init__(
        self,
        relation: Relation[R],
        client: Client,
        *,
        match_column: str | None = None,
        values: list[Any] | None = None,
        parent: BaseModel | None = None,
        parent_key: str | None = None,
    ) -> None:
        super().__init__(relation.related_model(), client)
        self.relation = relation
        self.is_related_preload_query = values is not None
        self._match_column = relation.match_column if match_column is None else match_column
        self._values = values
        self._chunk: list[Any] | None = values
        self._one_param: bool | None = None
        self._parent_model = parent
        self._parent_key = relation.parent_key if parent_key is None else parent_key
        # Composite relations: the tuples of the above (``_composite`` chosen once here).
        self._composite = relation.composite
        self._match_columns = relation.match_columns
        self._parent_keys = relation.parent_keys
        self._action = "select"
        self._no_rows = values is not None and not values
        if parent is not None:  # related(...).query(): one parent's rows
            lazy_guard.check(parent, [relation.relation_name], "related(...).query() for")
        self._relation_sources()
        run_on_query(relation, self)

    def _relation_sources(self) -> None:
        """Hook: register the tables the relation joins (pivot, through table). Runs before
        ``on_query``, so the hook can name them (``where_pivot``, ``"users.is_active"``)."""

    def _intermediate_models(self) -> Sequence[builtins.type[BaseModel]]:
        return intermediate_models(self.relation)

    def _parent_value(self) -> Any:
        assert self._parent_model is not None
        if self._composite:
            parent, action = self._parent_model, self._action
            row = tuple([key_value(self.relation, parent, k, action) for k in self._parent_keys])
            if None in row:
                self._no_rows = True
            return row
        value = key_value(self.relation, self._parent_model, self._parent_key, self._action)
        if value is None:
            self._no_rows = True
        return value

    def _match_target(self) -> ColumnElement[Any]:
        """Hook: the column compared with the parents' keys (pivot/through kinds: a column of
        the joined table); also the partition of a per-parent limit."""
        return self._unqualified(self._match_column)

    def _match_key(self) -> str:
        """Hook: that column's key in the result rows."""
        return self._match_column

    def _match_targets(self) -> list[ColumnElement[Any]]:
        """Hook of composite relations: the columns compared with the parents' key tuples."""
        return [self._unqualified(c) for c in self._match_columns]

    def _match_keys(self) -> list[str]:
        """Hook of composite relations: those columns' keys in the result rows."""
        return list(self._match_columns)

    def _constraint(self) -> ColumnElement[Any] | None:
        if self._composite:
            return self._composite_constraint()
        column = self._match_target()
        if self._values is not None:
            return self._keys_in(column)
        clause: ColumnElement[Any] = column == self._parent_value()
        return clause

    def _composite_constraint(self) -> ColumnElement[Any]:
        """``(a, b) IN (…key tuples)`` for a preload (the tuples bound as the dialect binds
        rows: ``query/keys.rows_in``), ``a = x AND b = y`` for one parent."""
        columns = self._match_targets()
        if self._values is not None:
            return rows_in(columns, list(self._chunk or []), self.client.dialect)
        value = self._parent_value()
        return and_(*[c == v for c, v in zip(columns, value, strict=True)])

    def _key_columns(self, columns: list[ColumnElement[Any]]) -> list[ColumnElement[Any]]:
        """Hook: the columns added to the SELECT list ``columns`` for the preloader. Here: a
        preload with cherry-picked columns still needs the key it matches on."""
        if self.is_related_preload_query and self.state.columns:
            names = {getattr(c, "key", None) for c in columns}
            if "*" in names:
                return []
            keys = self._match_columns if self._composite else (self._match_column,)
            return [self._unqualified(key) for key in keys if key not in names]
        return []

    def _select_list(self) -> list[ColumnElement[Any]]:
        columns = super()._select_list()
        keys = self._key_columns(columns)
        return [*columns, *keys] if keys else columns

    def _keys_in(self, column: ColumnElement[Any]) -> ColumnElement[Any]:
        """``column IN (…keys)``, the keys as one parameter on PostgreSQL and SQLite (one
        compiled statement whatever the number of keys, no chunking; see query/keys.py).
        A single key where the dialect says that form costs more than the plain list
        (``Dialect.plain_single_key``): ``column IN (?)``, as the preload's cached statement
        binds it (``preloader._static_start``)."""
        keys = list(self._chunk or [])
        if len(keys) == 1 and self.client.dialect_ops.plain_single_key:
            return column.in_(keys)
        return keys_in(column, keys, self.client.dialect)

    def _one_parameter(self) -> bool:
        """Whether the keys travel as one parameter (PostgreSQL arrays, SQLite JSON): the
        dialect decides, once per builder."""
        if self._one_param is None:
            values = self._values or []
            if self._composite:  # the components, as the dialect binds each
                values = [v for row in values for v in row]
            self._one_param = self.client.dialect_ops.keys_as_one_parameter(values)
        return self._one_param

    async def _chunked(self, run: Callable[[], Awaitable[list[Any]]]) -> list[Any]:
        values = self._values or []
        # A composite key binds one parameter per component where its rows go as a list.
        size = PRELOAD_CHUNK // len(self._match_columns) if self._composite else PRELOAD_CHUNK
        if len(values) <= size or self._one_parameter():
            return await run()
        out: list[Any] = []
        for chunk in _chunks(values, size):
            self._chunk = chunk
            out.extend(await run())
        self._chunk = values
        return out

    def _where_clause(self) -> ColumnElement[Any] | None:
        return constrained(self._constraint(), super()._where_clause())

    def _one_relation_guard(self, method: str) -> None:
        if not self.relation._is_many:
            raise runtime_error(
                f"Cannot {method} a {self.relation.type} relationship "
                f'"({self.relation.relation_name})"'
            )

    def paginate(self, page: int, per_page: int = 20) -> Any:
        """Paginate a many-relation's related query (raises at once on a preload query or a
        one-relation)."""
        if self.is_related_preload_query:
            raise runtime_error(
                f'Cannot paginate relationship "{self.relation.relation_name}" during preload'
            )
        self._one_relation_guard("paginate")
        check_page(page, per_page, "paginate")
        return self._paginate(page, per_page)

    async def _paginate(self, page: int, per_page: int) -> Any:
        if self._parent_model is not None:
            self._parent_value()
        if self._no_rows:
            from ...query.paginator import SimplePaginator

            return SimplePaginator(0, per_page, max(int(page), 1), [])
        return await super().paginate(page, per_page)

    async def _rows(self) -> Any:
        if self._parent_model is not None:
            self._action = "select"
            self._parent_value()
        if self._no_rows:
            return []
        parent_rows = super()._rows
        return await self._chunked(parent_rows)

    async def update(self, values: Any, value: Any = None) -> int:
        self._action = "update"
        return await super().update(values, value)

    async def increment(self, column: Any, amount: int | float = 1) -> int:
        self._action = "update"
        return await super().increment(column, amount)

    async def decrement(self, column: Any, amount: int | float = 1) -> int:
        self._action = "update"
        return await super().decrement(column, amount)

    async def delete(self) -> int:
        self._action = "delete"
        return await super().delete()

    async def _run_dml(self, stmt: Any) -> int:
        if self._no_rows:
            return 0
        return await super()._run_dml(stmt)

    async def count_rows(self) -> int:
        if self._parent_model is not None:
            self._parent_value()
        if self._no_rows:
            return 0
        return await super().count_rows()

    def _finish(self, stmt: Select[Any]) -> Select[Any]:
        """A per-parent limit (``group_limit``, set by the many-kinds' builders) wraps the
        statement: SQLAlchemy's own generative calls, the builder's state untouched."""
        stmt = super()._finish(stmt)
        limit = self._group_limit
        if limit is None:
            return stmt
        # row_number() per parent in a subquery, filtered outside: one query for all parents.
        if self._group_order is not None:
            column, direction = self._group_order
            orders = [(column, direction)]
        else:
            info = info_of(self.model)
            orders = [(info.columns[k].column_name, "desc") for k in info.primary_keys]
        order = [
            resolve_column(self, c).desc() if d == "desc" else resolve_column(self, c).asc()
            for c, d in orders
        ]
        partition = self._match_targets() if self._composite else [self._match_target()]
        row_number = func.row_number().over(partition_by=partition, order_by=order)
        # The query's own limit/offset (first(), paginate()) apply to the limited rows.
        state = self.state
        stmt = stmt.add_columns(row_number.label(_ROW_NUMBER))
        if state.limit is not None:
            stmt = stmt.limit(None)
        if state.offset is not None:
            stmt = stmt.offset(None)
        inner = stmt.subquery("lucid_group_limit")
        outer_cols = [c for c in inner.c if c.key != _ROW_NUMBER]
        outer = (
            select(*outer_cols)
            .where(inner.c[_ROW_NUMBER] <= limit)
            .order_by(
                *[
                    inner.c[k]
                    for k in (self._match_keys() if self._composite else [self._match_key()])
                ],
                inner.c[_ROW_NUMBER],
            )
        )
        if state.limit is not None:
            outer = outer.limit(state.limit)
        if state.offset is not None:
            outer = outer.offset(state.offset)
        return outer

    def _counts_over_subquery(self) -> bool:
        """Hook: whether ``count_rows()`` counts over this query as a subquery (kinds whose
        SELECT adds key columns; a per-parent limit, whose rows are counted, not the table's)."""
        return self._group_limit is not None

    def _count_statement(self) -> Select[Any]:
        if not self._counts_over_subquery():
            return super()._count_statement()
        base = self.clone()
        state = base.state
        state.order_by = []
        state.limit = None
        state.offset = None
        return select(func.count().label("total")).select_from(
            base.to_core().subquery("lucid_count")
        )

    def group_limit(self, limit: int) -> Self:
        """Limit rows per parent during preload (many-relations only)."""
        self._group_guard()
        return self

    def group_order_by(self, column: str, direction: str = "asc") -> Self:
        """Order rows per parent for ``group_limit`` (many-relations only)."""
        self._group_guard()
        return self

    def _group_guard(self) -> None:
        raise runtime_error(
            f"Cannot apply group_limit or group_order_by on a {self.relation.type} "
            f'relationship "({self.relation.relation_name})"'
        )


class SubQueryBuilder(ModelQueryBuilder[R]):
    """The related query used as a correlated subquery (``has``, ``with_count``). Self
    relations alias the related table. Executing it raises. Kinds that go through a table
    register and join it in ``_relation_sources()`` and override ``_constraint()``."""

    # As Lucid's BaseSubQueryBuilder: a subquery is not a related query of its own.
    is_related_query = False
    is_related_sub_query = True
    is_related_preload_query = False
    is_pivot_only_query = False

    def __init__(
        self, relation: Relation[R], client: Client, outer: FromClause, alias: str | None
    ) -> None:
        super().__init__(relation.related_model(), client)
        self.relation = relation
        self.outer = outer
        table = self.state.from_  # the related model's table
        assert isinstance(table, TableClause)
        target: FromClause = table
        if alias is not None:
            target = table.alias(alias)
            self.state.from_ = target
            self.state.aliases = {alias: target}
        self._table = table
        self._target = target
        self._relation_sources()
        run_on_query(relation, self)

    def _relation_sources(self) -> None:
        """Hook: register and join the tables the relation goes through (pivot, through
        table). Runs before ``on_query``, so the hook can name them."""

    def _intermediate_models(self) -> Sequence[builtins.type[BaseModel]]:
        return intermediate_models(self.relation)

    def _unqualified(self, name: str) -> ColumnElement[Any]:
        column = super()._unqualified(name)
        if self._target is self._table or column.table is not self._table:
            return column
        # A model column of an aliased (self-relation) table: the alias's.
        return cast(ColumnElement[Any], self._target.c[name])

    def _default_columns(self) -> list[ColumnElement[Any]]:
        return [self._target.c[str(c.key)] for c in super()._default_columns()]

    def own_column(self, name: str) -> ColumnElement[Any]:
        return cast(ColumnElement[Any], self._target.c[name])

    def outer_column(self, name: str) -> ColumnElement[Any]:
        col = self.outer.c.get(name)
        return col if col is not None else ColumnClause(name, _selectable=self.outer)

    def _constraint(self) -> ColumnElement[Any] | None:
        rel = self.relation
        if rel.composite:
            own, outer = self.own_column, self.outer_column
            pairs = zip(rel.match_columns, rel.parent_columns, strict=True)
            return and_(*[own(m) == outer(p) for m, p in pairs])
        target, parent = self._target, self.outer
        columns = (rel.match_column, rel.parent_column)
        kept = rel._sub_constraint
        if kept is not None and kept[0] is target and kept[1] is parent and kept[2] == columns:
            return kept[3]
        clause = self.own_column(columns[0]) == self.outer_column(columns[1])
        if target is self._table and isinstance(parent, Table):
            # Between two model tables (no alias, which a subquery makes anew): the same
            # immutable construct serves every subquery of the relation, built once (the
            # tuple keeps both tables, so neither identity can be another table's).
            rel._sub_constraint = (target, parent, columns, clause)
        return clause

    def _where_clause(self) -> ColumnElement[Any] | None:
        return constrained(self._constraint(), super()._where_clause())

    def preload(self, *args: Any, **kwargs: Any) -> Self:
        raise runtime_error("Cannot preload relationships inside a relationship subquery")

    async def exec(self) -> list[R]:
        raise runtime_error("Cannot execute relationship subqueries")

    async def first(self) -> R | None:
        raise runtime_error("Cannot execute relationship subqueries")

    async def paginate(self, page: int, per_page: int = 20) -> Any:
        raise runtime_error("Cannot execute relationship subqueries")

    async def update(self, values: Any, value: Any = None) -> int:
        raise runtime_error("Cannot execute relationship subqueries")

    async def delete(self) -> int:
        raise runtime_error("Cannot execute relationship subqueries")

    def aggregate_select(self) -> Select[Any]:
        """This subquery as a correlated ``select`` of its aggregate (``count(*)`` if none)."""
        if not self.state.has_aggregates:
            self.count("*")
        return correlated(self)


def self_alias(relation: Relation[Any]) -> str | None:
    """An alias for the related table when it is the parent's own table (self relations)."""
    related = declared(relation.related_model()).table_name
    parent = declared(relation.model).table_name
    if related != parent:
        return None
    return f"lucid_subquery_{relation.relation_name}"


def check_related(relation: Relation[Any], value: Any) -> None:
    """Refuse ``value`` unless it is an instance of the related model (``E_INVALID_ARGUMENT``)."""
    related = relation.related_model()
    if not isinstance(value, related):
        raise LucidError(
            f'"{relation.model.__name__}.{relation.relation_name}" expects an instance of '
            f'"{related.__name__}" model, got {value!r}',
            code="E_INVALID_ARGUMENT",
        )


Rel = TypeVar("Rel", bound="Relation[Any]")


class RelationQueryClient(Generic[P, Rel]):
    """What every kind's query client (``parent.related(name)``) holds: the relation, the
    parent and the client ``related()`` resolved; reads and writes resolve theirs with
    ``resolve`` when they run."""

    def __init__(self, relation: Rel, parent: P, client: Client) -> None:
        self.relation = relation
        self.parent = parent
        self.client = client


def resolve(query_client: RelationQueryClient[Any, Any], client: Client | None = None) -> Client:
    """The client of a query client's statement, reads and writes alike: ``client`` when
    given, else the transaction the parent is bound to now, else the client ``related()``
    captured (the parent's connection then) unless that transaction has ended."""
    if client is not None:
        return client
    parent = query_client.parent
    captured: Client = query_client.client
    if bound_transaction(parent) is not None or (
        captured.is_transaction and getattr(captured, "is_completed", False)
    ):
        return client_for(parent)
    return captured


@asynccontextmanager
async def managed(
    query_client: RelationQueryClient[Any, Any],
    client: Client | None,
    models: Iterable[BaseModel] = (),
    *,
    pipelined: bool = False,
) -> AsyncIterator[TransactionClient]:
    """The transaction of a relation write: resolve (``resolve``), open a transaction (a
    savepoint inside one) on it, yield it. The write passes it explicitly to every statement.
    The parent and ``models`` take part in the write, so they are bound to it as Lucid sets
    ``parent.$trx`` (a released savepoint hands them to the enclosing transaction, a rollback
    gives them back their earlier binding).

    ``pipelined`` (a bulk insert that starts with ``parent.save``): a root transaction's
    BEGIN may be left running on the driver (``transaction.implicit``), awaited here first
    only when the parent's save runs before hooks (user code runs inside a transaction
    that has begun); every statement awaits it anyway."""
    from ...database.transaction import begun, implicit

    parent = query_client.parent
    target = resolve(query_client, client)
    starter = implicit(target) if pipelined else target.transaction()
    async with starter as trx:
        bind([parent, *models], trx)
        if pipelined:
            hooks = info_of(type(parent)).hooks
            if any(hooks.get(f"before:{e}") for e in ("save", "create", "update")):
                await begun(trx)
        yield trx


class RelationClient(Protocol[P, R]):
    """What ``parent.related("name")`` — the string form — is typed as: every kind's query
    client methods at once (the name does not tell the kind), ``R`` left open (``Any``). The
    attribute form, ``parent.related(Post.author)``, returns the kind's own client instead,
    typed with the parent and the related model (``BelongsToQueryClient[Post, User]``).
    A method the relation's kind lacks raises ``AttributeError`` when called."""

    relation: Any
    parent: P

    def query(self) -> RelationQueryBuilder[R]: ...

    def pivot_query(self) -> ManyToManyPivotQueryBuilder: ...

    async def associate(self, related: R, *, client: Client | None = None) -> None: ...

    async def dissociate(self, *, client: Client | None = None) -> None: ...

    async def save(
        self,
        related: R,
        check_existing: bool = True,
        pivot_attributes: Mapping[str, Any] | None = None,
        *,
        client: Client | None = None,
    ) -> R: ...

    async def save_many(
        self,
        related: Sequence[R],
        check_existing: bool = True,
        pivot_attributes: Sequence[Mapping[str, Any]] | None = None,
        *,
        client: Client | None = None,
    ) -> list[R]: ...

    async def create(
        self,
        values: Mapping[str, Any],
        pivot_attributes: Mapping[str, Any] | None = None,
        *,
        client: Client | None = None,
    ) -> R: ...

    async def create_many(
        self,
        values: Sequence[Mapping[str, Any]],
        pivot_attributes: Sequence[Mapping[str, Any]] | None = None,
        *,
        client: Client | None = None,
    ) -> list[R]: ...

    async def first_or_create(
        self,
        search: Mapping[str, Any],
        save_payload: Mapping[str, Any] | None = None,
        *,
        client: Client | None = None,
    ) -> R: ...

    async def update_or_create(
        self,
        search: Mapping[str, Any],
        update_payload: Mapping[str, Any],
        *,
        client: Client | None = None,
    ) -> R: ...

    async def fetch_or_create_many(
        self,
        payload: Sequence[Mapping[str, Any]],
        predicate: str | Sequence[str] | None = None,
        *,
        client: Client | None = None,
    ) -> list[R]: ...

    async def update_or_create_many(
        self,
        payload: Sequence[Mapping[str, Any]],
        predicate: str | Sequence[str] | None = None,
        *,
        client: Client | None = None,
    ) -> list[R]: ...

    async def attach(self, ids: Any, *, client: Client | None = None) -> None: ...

    async def detach(self, ids: Any = None, *, client: Client | None = None) -> int: ...

    async def sync(
        self, ids: Any, detach: bool = True, *, client: Client | None = None
    ) -> None: ...
