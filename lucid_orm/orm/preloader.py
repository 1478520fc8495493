"""The preloader: one query per relation and level, run one after another on the parent
query's client, matched to the parents in one pass; and the lazy loads of one instance
(``load``, ``load_count``, ``load_aggregate``)."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, bindparam, select
from sqlalchemy.sql import ColumnElement, FromClause
from sqlalchemy.sql.elements import ColumnClause

from ..errors import LucidError
from . import lazy_guard
from .hydration import FAST_PATHS, hydrate_planned
from .model_info import info_of, pk_columns, relation_key
from .persistence import pk_value, where_key
from .state import set_sideloaded, sideloaded_of

if TYPE_CHECKING:
    from ..database.executor import Compiled
    from ..database.query_client import Client
    from ..database.result import ExecResult
    from .base_model import BaseModel
    from .hydration import HydrationPlan
    from .model_info import ModelInfo
    from .relations.base import Relation


def _reject_async(callback: Any) -> None:
    import inspect

    if inspect.iscoroutinefunction(callback):
        raise LucidError(
            '"preload" callbacks must be plain functions that configure the query; an async '
            "def callback is not allowed",
            code="E_RUNTIME_EXCEPTION",
        )


class PerType:
    """A morph_to preload callback per related model (``{Post: lambda q: q.preload("author")}``):
    called with each type's query, it runs the callback of that query's model, if any."""

    def __init__(self, callbacks: Mapping[Any, Callable[[Any], Any]]) -> None:
        from .relations.morph_map import as_morph_model

        self.callbacks: dict[Any, Callable[[Any], Any]] = {}
        for model, callback in callbacks.items():
            _reject_async(callback)
            self.callbacks[as_morph_model(model)] = callback

    def __call__(self, query: Any) -> None:
        callback = self.callbacks.get(query.model)
        if callback is not None:
            callback(query)


class _Nested:
    """The callback of a nested path (``add("posts.comments")``: ``q.preload("comments")``),
    told apart from the user's callbacks so that a preload with nested paths only can still
    take the static statement (the nested relations then load onto its rows)."""

    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        self.path = path

    def __call__(self, query: Any) -> None:
        query.preload(self.path)


class Preloader:
    """Relations to load for a set of parent instances, with their query callbacks.

    ``add("posts.comments")`` is ``add("posts", lambda q: q.preload("comments"))``; adding a
    relation twice merges the callbacks into one query."""

    def __init__(self, model: type[BaseModel]) -> None:
        self.model = model
        self.specs: dict[str, list[Callable[[Any], Any]]] = {}

    def add(
        self,
        path: str | Relation[Any],
        callback: Callable[[Any], Any] | Mapping[Any, Callable[[Any], Any]] | None = None,
    ) -> Preloader:
        # (A name is tested first: ``getattr`` on a str raises and swallows an AttributeError.)
        if path.__class__ is not str and getattr(path, "_lucid_relation", False):
            path = relation_key(self.model, path)  # a relation attribute (Post.author)
        if not isinstance(path, str) or not path:
            raise LucidError(f"preload() expects a relation name, got {path!r}")
        name, _, rest = path.partition(".")
        # (``get_relation`` for the error of an unknown name.)
        relation = self.model.relations.get(name) or self.model.get_relation(name)
        if not relation.booted:
            relation.boot()
        per_type = relation._per_type
        if callback is None:
            pass
        elif isinstance(callback, Mapping):
            if not per_type:
                raise LucidError(
                    f'preload("{path}") takes callbacks per model only for a morph_to '
                    f'relation; "{name}" is a {relation.type} relation',
                    code="E_INVALID_ARGUMENT",
                )
            callback = PerType(callback)
        else:
            _reject_async(callback)
        callbacks = self.specs.setdefault(name, [])
        # A morph_to's path goes on in each type's query (checked there).
        if rest and not per_type:
            _check_path(relation.related_model(), rest)
        if rest:
            callbacks.append(_Nested(rest))
        if callback is not None:
            callbacks.append(callback)
        return self

    # ``model.load(lambda loader: loader.load("author").load("comments"))``
    def load(
        self,
        path: str | Relation[Any],
        callback: Callable[[Any], Any] | Mapping[Any, Callable[[Any], Any]] | None = None,
    ) -> Preloader:
        return self.add(path, callback)

    preload = load

    def copy(self) -> Preloader:
        other = Preloader(self.model)
        other.specs = {k: list(v) for k, v in self.specs.items()}
        return other

    def start(
        self,
        parents: Sequence[BaseModel],
        client: Client,
        sideloaded: Mapping[str, Any] | None = None,
    ) -> Awaitable[None]:
        """``process(parents, client, sideloaded)`` to await: for one relation (a find's or
        first()'s preload), that relation's load itself (``_load``: the static path's read
        coroutine, when it applies), without the coroutine of ``process`` around it."""
        specs = self.specs
        if parents and len(specs) == 1:
            ((name, callbacks),) = specs.items()
            return self._load(name, callbacks, parents, client, sideloaded)
        return self.process(parents, client, sideloaded)

    async def process(
        self,
        parents: Sequence[BaseModel],
        client: Client,
        sideloaded: Mapping[str, Any] | None = None,
    ) -> None:
        """Load every relation onto ``parents`` (no query when there are none). ``sideloaded``
        values reach the related rows too, as in Lucid (set before the user's callbacks)."""
        if not parents:
            return
        for name, callbacks in self.specs.items():
            await self._load(name, callbacks, parents, client, sideloaded)

    def _load(
        self,
        name: str,
        callbacks: list[Any],
        parents: Sequence[BaseModel],
        client: Client,
        sideloaded: Mapping[str, Any] | None,
    ) -> Awaitable[None]:
        """The load of relation ``name`` onto ``parents``, to await: a morph_to's per type
        present, the static path's (a relation without user callback), else the query
        builder's (its slow twin)."""
        # (``add`` checked the name: the model's relation of that name.)
        relation = self.model.relations.get(name) or self.model.get_relation(name)
        if relation._per_type:  # morph_to: one query per type present
            per_type: Awaitable[None] = relation.preload_each_type(
                parents, client, callbacks, sideloaded
            )
            return per_type
        if FAST_PATHS and (not callbacks or all(type(c) is _Nested for c in callbacks)):
            static = _static_start(relation, parents, client, callbacks, sideloaded)
            if static is not None:
                return static
        return _query_load(relation, parents, client, callbacks, sideloaded)


async def _query_load(
    relation: Relation[Any],
    parents: Sequence[BaseModel],
    client: Client,
    callbacks: list[Any],
    sideloaded: Mapping[str, Any] | None,
) -> None:
    """``relation``'s related rows onto ``parents`` through its eager query, with the user's
    callbacks applied."""
    query = relation.eager_query(parents, client)
    if sideloaded:
        query.sideload(sideloaded)
    for callback in callbacks:
        callback(query)
    related = await query.exec()
    relation.set_related_for_many(parents, related)


_RELATIONS_BASE: Any = None


def _relations_base() -> Any:
    """``orm.relations.base`` (it imports this module through the query builder, so it can't
    be imported at the top), looked up once: an import statement in the functions a preload
    runs through costs a microsecond or two per call, every call."""
    global _RELATIONS_BASE
    if _RELATIONS_BASE is None:
        from .relations import base

        _RELATIONS_BASE = base
    return _RELATIONS_BASE


# Keys bound one parameter each (MySQL/MariaDB): statements are kept per number of keys up to
# this many; a longer list is padded to the next of a few sizes (``plain_key_slots``).
STATIC_PLAIN_KEYS = 32


def plain_key_slots(count: int) -> int:
    """The number of parameters of the statement that takes ``count`` keys bound one each:
    ``count`` itself up to ``STATIC_PLAIN_KEYS``, then the next multiple of an eighth of the
    power of two below ``count`` (at most an eighth more, about eight statements per doubling
    of the key count, so a relation keeps a few dozen statements at most instead of one per
    count), capped at ``PRELOAD_CHUNK``: the slow twin's chunk size, past which it sends
    several statements."""
    if count <= STATIC_PLAIN_KEYS:
        return count
    step = 1 << (count.bit_length() - 4)
    chunk: int = _relations_base().PRELOAD_CHUNK
    return min(-(-count // step) * step, max(count, chunk))


_StaticShape = tuple[ColumnElement[Any], list[Any], FromClause | None]


class _Static:
    """What the static preload of one relation keeps between calls, on the relation
    (``Relation._static``): what it reads of the related model's info (kept here, and
    compared by identity each call: a model built again brings a new info, and with it a new
    record) and of the relation's declaration, both fixed once the relation is booted.
    ``shape``: ``_static_shape``; ``plain``: per number of keys bound one each, the
    statement's key on the connection and its builder; ``read``: for the result columns
    last read (``keys``, one list per compiled statement, held and compared by identity),
    their hydration plan and the getter of the value rows are grouped by
    (``_find_group_position``), set as one tuple (a concurrent read finds
    the three of one shape). Nothing here depends on a call's values: each call made
    without it reads the same things again."""

    __slots__ = ("info", "one", "plain", "read", "shape")

    def __init__(
        self, relation: Relation[Any], info: ModelInfo, shape: _StaticShape | None
    ) -> None:
        self.info = info
        self.shape = shape
        self.plain: dict[int, tuple[tuple[Any, str, Any], Callable[[], Select[Any]]]] = {}
        self.one: tuple[Any, str, Any] = (relation, "preload", "one")
        self.read: tuple[Sequence[str], HydrationPlan, Callable[[Any], Any] | None] | None = None

    def statement(self, clause: ColumnElement[Any]) -> Select[Any]:
        assert self.shape is not None
        _, columns, from_ = self.shape
        stmt = select(*columns)
        if from_ is not None:
            stmt = stmt.select_from(from_)
        return stmt.where(clause)

    def plain_statement(self, count: int) -> Select[Any]:
        """The statement binding ``count`` keys one parameter each."""
        assert self.shape is not None
        column = self.shape[0]
        marks = [bindparam(f"lucid_key_{i}", type_=column.type) for i in range(count)]
        return self.statement(column.in_(marks))

    def plain_form(
        self, relation: Relation[Any], count: int
    ) -> tuple[tuple[Any, str, Any], Callable[[], Select[Any]]]:
        """The key on the connection and the builder of ``plain_statement(count)``, made
        once per count."""
        found = self.plain.get(count)
        if found is None:
            found = self.plain[count] = (
                (relation, "preload", count),
                functools.partial(self.plain_statement, count),
            )
        return found


def _static_of(relation: Relation[Any], info: ModelInfo) -> _Static:
    """The relation's ``_Static`` for the related model's ``info`` (made when it has none,
    or one of another info)."""
    found: _Static | None = relation._static
    if found is None or found.info is not info:
        found = relation._static = _Static(relation, info, _static_shape(relation, info))
    return found


def _static_shape(
    relation: Relation[Any], info: ModelInfo
) -> tuple[ColumnElement[Any], list[Any], FromClause | None] | None:
    """What the preload query of ``relation`` selects when no callback changes it: the column
    compared with the parents' keys, the SELECT list and the FROM clause (``None``: the
    related table). belongs_to, has_one and has_many read the related table; many_to_many
    joins the pivot and selects its columns as ``pivot_<column>``. ``None`` for the other kinds
    (morph kinds add a type constraint, through kinds intermediate tables)."""
    from .relations.belongs_to import BelongsToQueryBuilder
    from .relations.has_many import HasManyQueryBuilder
    from .relations.has_one import HasOneQueryBuilder
    from .relations.many_to_many import ManyToMany, ManyToManyQueryBuilder

    kind = relation.query_builder_class
    if kind in (BelongsToQueryBuilder, HasOneQueryBuilder, HasManyQueryBuilder):
        column = info.column_for_db(relation.match_column)
        return None if column is None else (column, list(info.select_columns), None)
    if kind is ManyToManyQueryBuilder and isinstance(relation, ManyToMany):
        if relation.related_composite:
            return None
        table = info.table
        assert table is not None

        def unqualified(name: str) -> ColumnElement[Any]:
            found = info.column_for_db(name)
            return found if found is not None else ColumnClause(name)

        pivot = [
            relation.pivot_column(c).label(f"pivot_{c}") for c in relation._selected_pivot_columns()
        ]
        joined = table.join(relation._pivot, relation.related_join(unqualified))
        column = relation.pivot_column(relation.pivot_foreign_key)
        return column, [*info.select_columns, *pivot], joined
    return None


def _static_start(
    relation: Relation[Any],
    parents: Sequence[BaseModel],
    client: Client,
    nested: list[Any],
    sideloaded: Mapping[str, Any] | None,
) -> Coroutine[Any, Any, None] | None:
    """The load of a relation without user callback (``nested``: its nested paths'
    callbacks) through a statement compiled once per (relation, key-binding form) and kept on
    the connection like ``find``'s, each call binding the keys only (PostgreSQL: one array;
    SQLite: one JSON text; MySQL: one parameter each, a statement per ``plain_key_slots``
    count): the coroutine that reads the rows, hydrates and sideloads them, loads their
    nested relations on them and sets them on ``parents``, as the query builder's path does
    (its slow twin: ``eager_query(...).exec()``). ``None`` (nothing run) when the query
    builder must run: a relation with ``on_query`` or composite keys, a related model with
    global scopes (they may read context at call time), soft deletes, fetch hooks or a shard
    router, a transaction, the lean read path off. Everything that decides so is decided
    here, before the coroutine."""
    related = relation.related_model()
    loader = None
    if nested:
        # Built before the query, as the query builder runs the callbacks before its query.
        loader = Preloader(related)
        for callback in nested:
            loader.add(callback.path)
    # ``read_compiled``: the read to await (``fetch_compiled`` without its coroutine), or
    # ``None`` when the lean path is off.
    read = getattr(client, "read_compiled", None)
    if read is None:  # a transaction
        return None
    prepared = _static_statement(relation, related, parents, client)
    if prepared is None:
        return None
    static, key, build, param = prepared
    reading = None
    if key is not None:
        reading = read(key, build, param, related.__name__)
        if reading is None:
            return None
    return _static_finish(relation, related, parents, client, sideloaded, loader, static, reading)


async def _static_finish(
    relation: Relation[Any],
    related: type[BaseModel],
    parents: Sequence[BaseModel],
    client: Client,
    sideloaded: Mapping[str, Any] | None,
    loader: Preloader | None,
    static: _Static,
    reading: Awaitable[ExecResult] | None,
) -> None:
    """``_static_start``'s coroutine: ``reading`` (``None``: no key, no query) awaited, its
    rows on ``parents``."""
    keys: Sequence[str] = ()
    rows: Sequence[Sequence[Any]] = ()
    if reading is not None:
        result = await reading
        keys, rows = result.keys, result.rows
    if not rows:
        relation.set_related_for_many(parents, [])
        return
    # The plan and group position of these result columns, found once per statement.
    known = static.read
    if known is None or known[0] is not keys:
        info = static.info
        at = _find_group_position(relation, info, keys)
        known = static.read = (
            keys,
            info.plan(keys),
            None if at is None else itemgetter(at),
        )
    _, plan, group_value = known
    # Its only extras are the relation's pivot keys and columns (``_static_shape``).
    found = hydrate_planned(related, plan, rows, client, True)
    if sideloaded:
        for row in found:
            set_sideloaded(row, dict(sideloaded))
    if loader is not None:
        await loader.process(found, client, sideloaded)
    if group_value is None:
        relation.set_related_for_many(parents, found)
        return
    if len(parents) == 1 and len(set(map(group_value, rows))) == 1:
        # One parent and one key value in the rows (a find's or first()'s relation): the
        # one group ``group_by_values`` would make, the list this call hydrated (no one
        # else holds it), without its loop.
        groups = {group_value(rows[0]): found}
    else:
        groups = _relations_base().group_by_values(found, map(group_value, rows))
    relation.give_groups(parents, groups)


def _find_group_position(
    relation: Relation[Any], info: ModelInfo, keys: Sequence[str]
) -> int | None:
    """The result column holding the value ``set_related_for_many`` groups the related rows
    by, when it gives each instance exactly that value (the plan hydration used: one column
    to that attribute or extra, no ``consume`` function), for a relation grouping the base
    way; else ``None`` (the rows are grouped from the instances). What it reads (the
    relation's class and declaration, the hydration plan of ``keys``) is fixed once the
    relation is booted: ``_Static.read`` keeps it."""
    base = _relations_base()
    if type(relation).set_related_for_many is not base.Relation.set_related_for_many:
        return None
    if relation.composite or not relation._is_many:
        return None
    plan = info.plan(keys)
    name = relation._group_key()
    if relation._group_in_extras:
        found = [i for i, k in plan.extras_index if k == name]
    else:
        if plan.consume:
            return None
        extras = {i for i, _ in plan.extras_index}
        found = [i for i, a in enumerate(plan.attributes) if a == name and i not in extras]
    return found[0] if len(found) == 1 else None


_Prepared = tuple[_Static, Any, Callable[[], Select[Any]] | None, list[Any]]


def _static_statement(
    relation: Relation[Any],
    related: type[BaseModel],
    parents: Sequence[BaseModel],
    client: Client,
) -> _Prepared | None:
    """What ``_static_start`` of ``relation`` (whose related model is ``related``) runs: the
    relation's ``_Static``, the statement's key on the connection, its builder and the
    values to bind (key ``None``: the parents have no key, no statement runs); ``None``
    when the query builder must run (but for a transaction, which the caller checks)."""
    if not relation.booted:
        relation.boot()
    if relation.composite or relation.on_query is not None:
        return None
    info = info_of(related)
    if (
        info.global_scopes
        or info.soft_delete is not None
        or "before:fetch" in info.hooks
        or "after:fetch" in info.hooks
        or related.shard_for is not None
        or info.table is None
    ):
        return None
    static: _Static | None = relation._static
    if static is None or static.info is not info:
        static = _static_of(relation, info)
    shape = static.shape
    if shape is None:
        return None
    seen: dict[Any, None] = {}
    name = relation.parent_key
    try:
        for parent in parents:
            seen[parent.__dict__[name]] = None
    except KeyError:
        for parent in parents:  # the error naming the parent without the key
            _relations_base().key_value(relation, parent, name, "preload")
        raise
    seen.pop(None, None)  # NULL keys match nothing
    if not seen:
        return static, None, None, []
    keys = list(seen)
    # (The connection's dialect operations: ``dialect_of(client.dialect)``'s, without
    # looking up the SQLAlchemy dialect, which only the one-parameter form needs.)
    ops = client.dialect_ops
    # One key where the dialect's one-parameter form costs more: the plain form too, as the
    # query builder's preload binds it (``Relation._keys_in``).
    if not ops.keys_as_one_parameter(()) or (len(keys) == 1 and ops.plain_single_key):
        count = size = len(keys)
        # Past the preload chunk size, the slow twin sends several statements.
        if size > _relations_base().PRELOAD_CHUNK:
            return None
        if size > STATIC_PLAIN_KEYS:
            count = plain_key_slots(size)
            if not _keep_spread(client, relation, count, static.plain_statement):
                return None
        form = static.plain.get(count)
        key, build = form if form is not None else static.plain_form(relation, count)
        # The slots past the keys repeat the last one: ``IN`` matches the same rows (the
        # statement and its bindings show the repeats).
        return static, key, build, keys if count == size else keys + [keys[-1]] * (count - size)
    # The one parameter ``bind_keys`` binds the keys as (PostgreSQL: an array; SQLite: a
    # JSON text of the keys as stored), given to the statement compiled for the first.
    column = shape[0]
    dialect = client.dialect
    value = ops.key_parameter(column, keys, dialect)
    if value is None:
        return None

    def one() -> Select[Any]:
        return static.statement(ops.bind_keys(column, keys, dialect, False))

    return static, static.one, one, [value]


def _keep_spread(
    client: Client, relation: Relation[Any], count: int, build: Callable[[int], Select[Any]]
) -> bool:
    """Keep the statement of ``relation``'s preload with ``count`` keys bound one each (MySQL)
    on the connection, made from the one with two keys by repeating its parameter marker:
    compiling a statement of thousands of parameters costs up to a second and a kilobyte per
    parameter, this a string join and a name per parameter. ``False`` (nothing kept: the
    query builder runs) when the lean path is off or the two-key statement does not end with
    its key list."""
    from ..database.executor import compile_static

    lean = getattr(client, "lean_reads", None)
    connection = getattr(client, "_connection", None)
    statements = getattr(connection, "static_statements", None)
    if lean is None or statements is None or not lean():
        return False
    key = (relation, "preload", count)
    if key in statements:
        return True
    pair = (relation, "preload", 2)
    template = statements.get(pair)
    if template is None:
        template = statements[pair] = compile_static(build(2), client.dialect)
    spread = spread_keys(template, count)
    if spread is None:
        return False
    statements[key] = spread
    return True


def spread_keys(template: Compiled, count: int) -> Compiled | None:
    """``template`` (a statement ending with ``IN (<mark>, <mark>)``, its only two parameters,
    of one type) with ``count`` parameters in that list; ``None`` for any other statement."""
    head, found, tail = template.sql.rpartition(" IN (")
    names = template.positiontup
    if not found or len(names) != 2 or template.expanding or not tail.endswith(")"):
        return None
    first, comma, second = tail[:-1].partition(", ")
    if not comma or first != second or "," in second:
        return None
    processors = template.bind_processors
    if processors.get(names[0]) is not processors.get(names[1]):
        return None
    return dataclasses.replace(
        template,
        sql=f"{head} IN ({', '.join([first] * count)})",
        positiontup=[names[0]] * count,
        extra={},
    )


def _check_path(model: type[BaseModel], path: str) -> None:
    for name in path.split("."):
        relation = model.get_relation(name)
        relation.boot()
        if getattr(relation, "_per_type", False):
            return  # a morph_to: the rest is checked on each type's query
        model = relation.related_model()


def _lazy_load_guard(instance: BaseModel) -> None:
    if instance.is_deleted:
        raise LucidError("Cannot mutate a deleted model instance", code="E_MODEL_DELETED")
    if not instance.is_persisted:
        raise LucidError(
            "Cannot lazy load relationship for an unpersisted model instance",
            code="E_RUNTIME_EXCEPTION",
        )


async def load_onto(
    instance: BaseModel,
    relation: str | Relation[Any] | Callable[[Any], Any],
    callback: Callable[[Any], Any] | Mapping[Any, Callable[[Any], Any]] | None,
    client: Client,
) -> None:
    """``BaseModel.load``: the relation (or the loader callback's relations) onto
    ``instance``, one query each, on ``client``."""
    _lazy_load_guard(instance)
    loader = Preloader(type(instance))
    if callable(relation) and not isinstance(relation, str):
        relation(loader)
    else:
        loader.add(relation, callback)
    lazy_guard.check(instance, list(loader.specs), "load()")
    await loader.process([instance], client, sideloaded_of(instance))


async def load_aggregate_onto(
    instance: BaseModel, relation: str, configure: Callable[[Any], Any], client: Client
) -> None:
    """``load_count``/``load_aggregate``: the instance's row selected with the aggregate of
    ``relation`` that ``configure`` adds (one query); the aggregate lands in ``extras``."""
    _lazy_load_guard(instance)
    lazy_guard.check(instance, [relation], "load_count()/load_aggregate()")
    model = type(instance)
    pks = pk_columns(model)
    query = where_key(model.query(client=client).select(*pks), model, pk_value(instance, "select"))
    configure(query)
    rows: Any = await query.pojo()
    if rows:
        extras = instance.extras
        for key, value in rows[0].items():
            if key not in pks:
                extras[key] = value
