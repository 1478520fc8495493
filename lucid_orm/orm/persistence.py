"""Lucid's Adapter: which client an instance's statements use (``client_for``, the binding
rule: binding.py, re-exported here), the writes of one instance (insert/update/delete/refresh)
and of many (``insert_many``, ``upsert_many``), and ``find``'s short path. Every write takes its
client as an argument and journals itself in a transaction (journal.py)."""

from __future__ import annotations

import datetime as _dt
import operator
import unicodedata
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import partial
from itertools import repeat
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from sqlalchemy import (
    Integer,
    Select,
    and_,
    bindparam,
    insert,
    literal,
    select,
    tuple_,
    union_all,
)
from sqlalchemy import delete as sa_delete
from sqlalchemy import update as sa_update

from ..database.dialects.base import ColumnRows
from ..database.manager import db
from ..database.result import ExecResult
from ..database.transaction import TransactionClient, begun, implicit
from ..errors import IntegrityError, LucidError, ModelNotFoundError, QueryError, missing_attribute
from . import hydration
from .binding import (
    _consume,
    _dict_of,
    bind,
    bound_as,
    check_connection,
    default_connection,
    shard_connection,
    transaction_bound,
)
from .binding import client_for as client_for  # the resolver, also reachable from here
from .hooks import run_hooks
from .journal import ABSENT, created, deleted, unstamp, updated, updated_batch, upserted
from .model_info import (
    ModelInfo,
    check_component,
    check_key_value,
    column_name,
    info_of,
    pk_column,
    pk_columns,
)
from .state import (
    DELETED,
    ORIGINAL,
    PERSISTED,
    ROW,
    ROW_ATTRS,
    original_of,
    persisted_flags,
    persisted_in,
    set_original,
)

if TYPE_CHECKING:
    from sqlalchemy.sql import ColumnElement, TableClause

    from ..database.query_client import Client
    from .base_model import BaseModel
    from .query_builder import ModelQueryBuilder

M = TypeVar("M", bound="BaseModel")
T = TypeVar("T")


# -- writes of one instance ---------------------------------------------------------------------


def row_gone(model: type[BaseModel], action: str, key: Any) -> ModelNotFoundError:
    """A persisted instance whose row is gone (deleted behind its back)."""
    return ModelNotFoundError(
        f'Cannot {action} "{model.__name__}" with {model.primary_key}={key!r}: its row no '
        f'longer exists in "{info_of(model).table_name}"',
        model=model.__name__,
    )


def pk_value(instance: BaseModel, action: str) -> Any:
    """The primary-key value of ``instance`` (a tuple for a composite key);
    ``E_MISSING_MODEL_ATTRIBUTE`` when unset."""
    model = type(instance)
    pk = model.primary_key
    if not isinstance(pk, str):
        return _composite_value(instance, pk, action)
    value = instance.__dict__.get(pk)
    if value is None:
        message = f'Cannot {action} "{model.__name__}" instance: its primary key "{pk}" is not set'
        raise missing_attribute(message)
    return value


def _composite_value(instance: BaseModel, names: tuple[str, ...], action: str) -> tuple[Any, ...]:
    d = instance.__dict__
    value = tuple(d.get(name) for name in names)
    if None in value:
        missing = ", ".join(n for n, v in zip(names, value, strict=True) if v is None)
        raise missing_attribute(
            f'Cannot {action} "{type(instance).__name__}" instance: its primary key '
            f"({', '.join(names)}) is not set ({missing})"
        )
    return value


def where_key(
    query: ModelQueryBuilder[M], model: type[BaseModel], key: Any
) -> ModelQueryBuilder[M]:
    """``query`` constrained to the row of primary key ``key`` (a tuple for a composite key)."""
    if not info_of(model).composite:
        return query.where(pk_column(model), key)
    for column, value in zip(pk_columns(model), key, strict=True):
        query.where(column, value)
    return query


def key_match(model: type[BaseModel], key: Any) -> ColumnElement[Any]:
    """``pk = key``: one comparison, or one per component of a composite key (``key`` a
    tuple in key order)."""
    info = info_of(model)
    table = info.table
    assert table is not None
    if not info.composite:
        clause: ColumnElement[Any] = table.c[pk_column(model)] == key
        return clause
    return and_(*[table.c[c] == v for c, v in zip(pk_columns(model), key, strict=True)])


def prepared(instance: BaseModel, attrs: Mapping[str, Any]) -> dict[str, Any]:
    """Attribute values for a write, keyed by column name, ``prepare`` functions applied."""
    prepare = info_of(type(instance)).prepare_map
    out: dict[str, Any] = {}
    for key, value in attrs.items():
        name, fn = prepare[key]
        out[name] = fn(value, key, instance) if fn is not None else value
    return out


def _prepared_many(
    model: type[BaseModel], instances: Sequence[BaseModel], values: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Write parameters for rows that set the same attributes: ``prepared`` per row, or the
    attribute dicts themselves when no column has a different name or a ``prepare`` (they are
    only read)."""
    if not values:
        return []
    prepare = info_of(model).prepare_map
    if all(prepare[key] == (key, None) for key in values[0]):
        return list(values)
    return [prepared(inst, attrs) for inst, attrs in zip(instances, values, strict=True)]


def touch_all(
    model: type[BaseModel], instances: Sequence[BaseModel], creating: bool
) -> dict[str, tuple[Any, Any]] | None:
    """Set the auto timestamps (``auto_create``/``auto_update``) of ``instances``, all to the
    same moment. Returns ``{attribute: (previous value, value set)}`` for the write journal (the
    previous value of the first instance: "absent" for a batch of creates, whose stamps are
    only set where they were not)."""
    stamps = info_of(model).timestamps
    if not stamps:
        return None
    now = _dt.datetime.now(_dt.UTC)
    out: dict[str, tuple[Any, Any]] = {}
    first = instances[0].__dict__ if len(instances) == 1 else None
    for name, col in stamps:
        # A create sets the unset auto_create/auto_update stamps; an update overwrites the
        # auto_update ones.
        if not (col.auto_update or (creating and col.auto_create)):
            continue
        value = now if col.kind == "datetime" else now.date()
        out[name] = (first.get(name, ABSENT) if first is not None else ABSENT, value)
        _stamp(instances, name, value, overwrite=not creating)
    return out


def _stamp(instances: Sequence[BaseModel], name: str, value: Any, overwrite: bool) -> None:
    for inst in instances:
        d = inst.__dict__
        if overwrite or d.get(name) is None:
            d[name] = value


def _written(instance: BaseModel) -> None:
    """After a write: what was written becomes ``original``."""
    model = type(instance)
    d = instance.__dict__
    attrs = {k: d[k] for k in model.columns if k in d}
    deep = info_of(model).json_attributes
    set_original(instance, hydration.snapshot(attrs, deep) if deep else attrs)


async def insert_one(instance: BaseModel, client: Client) -> None:
    """INSERT ``instance`` on ``client`` (its generated key read back), journaled in a
    transaction, then bound to ``client``."""
    model = type(instance)
    info = info_of(model)
    if info.composite:
        await _insert_composite(instance, client)
        return
    assert info.table is not None and info.primary_key is not None
    pk_attr = info.primary_key
    d = instance.__dict__
    had_key = d.get(pk_attr) is not None
    stamps = touch_all(model, [instance], True)
    values = prepared(instance, {k: d[k] for k in model.columns if k in d})
    stmt = insert(info.table).values(values).returning(info.table.c[pk_column(model)])
    result = await client.execute(stmt, write=True, model=model.__name__)
    if result.rows and result.rows[0][0] is not None:
        d[pk_attr] = result.rows[0][0]
    d[PERSISTED] = True
    if client.is_transaction:
        created(client, [instance], pk_attr, [not had_key], stamps)
    _written(instance)
    bind([instance], client, checked=True)


async def _insert_composite(instance: BaseModel, client: Client) -> None:
    """``insert_one`` of a model with a composite key: the key is what the instance holds,
    every component set (``E_MISSING_MODEL_ATTRIBUTE`` before the write otherwise); where
    the database has ``RETURNING`` the stored key is read back (a type the column converts)."""
    model = type(instance)
    info = info_of(model)
    assert info.table is not None
    _composite_value(instance, info.primary_keys, "insert")
    d = instance.__dict__
    stamps = touch_all(model, [instance], True)
    values = prepared(instance, {k: d[k] for k in model.columns if k in d})
    stmt: Any = insert(info.table).values(values)
    returning = client.dialect_ops.returning
    if returning:
        stmt = stmt.returning(*[info.table.c[c] for c in pk_columns(model)])
    result = await client.execute(stmt, write=True, model=model.__name__)
    if returning and result.rows:
        for name, value in zip(info.primary_keys, result.rows[0], strict=True):
            if value is not None:
                d[name] = value
    d[PERSISTED] = True
    if client.is_transaction:
        created(client, [instance], info.primary_keys[0], [False], stamps)
    _written(instance)
    bind([instance], client)


async def update_one(instance: BaseModel, client: Client) -> None:
    """UPDATE the dirty attributes of ``instance`` on ``client`` (``ModelNotFoundError`` when
    its row is gone), journaled in a transaction, then bound to ``client``."""
    model = type(instance)
    info = info_of(model)
    assert info.table is not None
    original = original_of(instance)
    stamps = touch_all(model, [instance], False)
    dirty = instance.dirty
    if dirty:
        key = pk_value(instance, "update")
        stmt = sa_update(info.table).values(prepared(instance, dirty)).where(key_match(model, key))
        result = await client.execute(stmt, write=True, model=model.__name__)
        # MySQL counts matched rows here too (the FOUND_ROWS client flag), so an UPDATE that
        # changes nothing still counts its row.
        if result.rowcount == 0:
            raise row_gone(model, "update", key)
        if client.is_transaction:
            updated(client, instance, original, stamps)
    _written(instance)
    bind([instance], client, checked=True)


async def save(instance: BaseModel, client: Client) -> None:
    """``BaseModel.save`` on a resolved client: hooks, then insert or update. With after hooks
    the write and the hooks share one transaction (an after hook that raises leaves nothing
    written); a failure leaves the instance as it was (unsaved, still dirty)."""
    hooks = info_of(type(instance)).hooks
    creating = not instance.is_persisted
    event = "create" if creating else "update"
    await run_hooks(hooks.get(f"before:{event}"), instance)
    await run_hooks(hooks.get("before:save"), instance)
    if not creating and not instance.is_dirty:
        return  # Lucid: the before hooks may dirty the model; if not, nothing else runs.
    write = insert_one if creating else update_one
    state = dict(instance.__dict__)
    try:
        if hooks.get(f"after:{event}") or hooks.get("after:save"):
            async with client.transaction() as trx:
                await write(instance, trx)
                await run_hooks(hooks.get(f"after:{event}"), instance)
                await run_hooks(hooks.get("after:save"), instance)
        else:
            await write(instance, client)
    except BaseException:
        instance.__dict__.clear()
        instance.__dict__.update(state)
        raise


async def delete(instance: BaseModel, client: Client, *, force: bool = False) -> None:
    """DELETE the row of ``instance`` on ``client`` with its delete hooks; the instance becomes
    read-only. ``ModelNotFoundError`` when the row is already gone. A soft-deleting model
    stamps its ``deleted_at`` instead, unless ``force``."""
    model = type(instance)
    info = info_of(model)
    assert info.table is not None
    await run_hooks(info.hooks.get("before:delete"), instance)
    if info.soft_delete is not None and not force:
        await _set_trashed(instance, client, _dt.datetime.now(_dt.UTC), "delete")
        await run_hooks(info.hooks.get("after:delete"), instance)
        return
    key = pk_value(instance, "delete")
    stmt = sa_delete(info.table).where(key_match(model, key))
    result = await client.execute(stmt, write=True, model=model.__name__)
    if result.rowcount == 0:
        raise row_gone(model, "delete", key)
    instance.__dict__[DELETED] = True
    if client.is_transaction:
        deleted(client, instance)
    await run_hooks(info.hooks.get("after:delete"), instance)


async def restore(instance: BaseModel, client: Client) -> None:
    """Clear the soft-delete stamp of ``instance`` with its restore hooks (a row that is not
    trashed is left alone, hooks included)."""
    model = type(instance)
    info = info_of(model)
    name = info.soft_delete
    if name is None:
        raise LucidError(
            f'Cannot restore a "{model.__name__}": the model does not soft-delete '
            "(declare it with soft_deletes=True)",
            code="E_RUNTIME_EXCEPTION",
        )
    if instance.__dict__.get(name) is None:
        return
    await run_hooks(info.hooks.get("before:restore"), instance)
    await _set_trashed(instance, client, None, "restore")
    await run_hooks(info.hooks.get("after:restore"), instance)


async def _set_trashed(instance: BaseModel, client: Client, value: Any, action: str) -> None:
    """Write ``value`` to the soft-delete column of ``instance``'s row alone (its other dirty
    attributes stay dirty), journaled in a transaction."""
    model = type(instance)
    info = info_of(model)
    assert info.table is not None and info.soft_delete is not None
    name = info.soft_delete
    # One moment for both stamps: a delete's ``deleted_at`` equals its ``updated_at``.
    now = value if isinstance(value, _dt.datetime) else _dt.datetime.now(_dt.UTC)
    written = {name: value, **_update_stamps(info, now)}
    key = pk_value(instance, action)
    stmt = (
        sa_update(info.table)
        .values({info.columns[attr].column_name: v for attr, v in written.items()})
        .where(key_match(model, key))
    )
    result = await client.execute(stmt, write=True, model=model.__name__)
    if result.rowcount == 0:
        raise row_gone(model, action, key)
    d = instance.__dict__
    original = original_of(instance)
    if client.is_transaction:
        changes = {attr: (d.get(attr, ABSENT), v) for attr, v in written.items()}
        updated(client, instance, original, changes)
    d.update(written)
    set_original(instance, {**original, **written})
    bind([instance], client, checked=True)


def _update_stamps(info: ModelInfo, now: _dt.datetime) -> dict[str, Any]:
    """The ``auto_update`` timestamps of a model, each set to ``now``: a soft delete or a
    restore is an update of the row, so it moves ``updated_at`` as Eloquent's does."""
    return {
        name: now if col.kind == "datetime" else now.date()
        for name, col in info.timestamps
        if col.auto_update and name != info.soft_delete
    }


async def refresh(instance: BaseModel, client: Client) -> None:
    """Re-read every column of ``instance`` on ``client``."""
    model = type(instance)
    if not instance.is_persisted:
        raise LucidError("Cannot refresh an unpersisted model instance")
    key = pk_value(instance, "refresh")
    # Its own row by key: a trashed or out-of-scope row refreshes too.
    query = model.query(client=client).without_global_scopes()
    fresh = await where_key(query, model, key).first()
    if fresh is None:
        raise ModelNotFoundError(
            f'"{model.__name__}.refresh" failed: no row in "{info_of(model).table_name}" where '
            f'"{model.primary_key}" = {key!r}',
            model=model.__name__,
        )
    d = instance.__dict__
    fd = fresh.__dict__
    for name in model.columns:
        d.pop(name, None)
        if name in fd:
            d[name] = fd[name]
    set_original(instance, original_of(fresh))


# -- writes of many instances -------------------------------------------------------------------


async def _run_each(
    hooks: Mapping[str, list[Any]], first: str, second: str, instances: Sequence[BaseModel]
) -> None:
    """Run the ``first`` then ``second`` hooks on each instance (none: no loop)."""
    a, b = hooks.get(first), hooks.get(second)
    if a or b:
        for inst in instances:
            await run_hooks(a, inst)
            await run_hooks(b, inst)


_CREATE_HOOKS = ("before:create", "before:save", "after:create", "after:save")


async def create_many(model: type[M], instances: list[M], client: Client) -> None:
    """``BaseModel.create_many``: ``insert_many`` in a transaction of its own (a savepoint
    inside the caller's), all rows or none. On SQLite its BEGIN IMMEDIATE is left running on
    the driver while the rows are prepared, and the first INSERT queues right behind it: one
    trip to aiosqlite's thread for both (``implicit``). Outside a transaction, rows that are
    one statement with no hook to run go without one where the dialect can (``create_alone``)."""
    if not client.is_transaction and await create_alone(model, instances, client):
        return
    async with implicit(client) as trx:
        await insert_many(model, instances, trx, own=trx.parent is None)


def saves_nothing(instance: BaseModel) -> bool:
    """Whether ``save()`` of ``instance`` would neither write nor run user code: persisted,
    unchanged, and no before-update/before-save hook (those run even then, and may change
    it)."""
    hooks = info_of(type(instance)).hooks
    return (
        instance.is_persisted
        and not instance.is_dirty
        and not hooks.get("before:update")
        and not hooks.get("before:save")
    )


async def create_alone(model: type[M], instances: list[M], client: Client) -> bool:
    """``create_many`` as one multi-row INSERT outside any transaction (SQLite: one trip to
    aiosqlite's thread, ``executor.write_sqlite``): one statement is all rows or none by
    itself, and with no create/save hooks no user code runs between it and the end. Only
    ``insert_many``'s lean form (``_tuple_plan``). ``False``, with the instances as they were,
    when it does not apply or the statement could not tie the keys to the rows (the caller
    then inserts in a transaction); an error of the statement is raised, nothing written."""
    info = info_of(model)
    hooks = info.hooks
    if (
        info.composite
        or model.shard_for is not None
        or any(hooks.get(h) for h in _CREATE_HOOKS)
        or not client.dialect_ops.writes_alone(client, len(instances), len(model.columns))
    ):
        return False
    dicts = list(map(_dict_of, instances))
    if transaction_bound(dicts):
        return False
    stamps = touch_all(model, instances, True)
    with hydration.gc_paused(len(instances)):
        plan = _tuple_plan(model, instances)
    keys: list[Any] | None = None
    try:
        if plan is not None:
            table = info.table
            assert table is not None
            keys = await client.dialect_ops.insert_tuples_alone(
                client, table, plan[0], plan[1], table.c[pk_column(model)], model.__name__
            )
    finally:
        if keys is None:
            # Not written: the stamps go again (the transaction's path sets its own).
            unstamp(instances, stamps)
    if keys is None or plan is None:
        return False
    _inserted_tuples(model, dicts, plan[0], plan[1], keys)
    bind(instances, client, checked=True, dicts=dicts)
    return True


async def insert_many(
    model: type[M], instances: list[M], trx: TransactionClient, *, own: bool = False
) -> None:
    """Insert ``instances`` (new, of ``model``) inside ``trx`` with their create/save hooks:
    consecutive instances that set the same columns share one multi-row INSERT … RETURNING.
    Journaled first: every caller runs this inside a transaction (or savepoint) of its own,
    whose rollback then clears the keys already assigned.

    ``own``: ``trx`` is a root transaction the caller opened for itself and ends before it
    hands ``instances`` out, with no user code in it that can reach them but their hooks
    (``bind``'s ``unseen``). Without hooks they are then not bound to it: the commit would
    unbind them again, and nothing in between could see the binding."""
    info = info_of(model)
    if model.shard_for is not None:
        # New rows: only their shard keys can tie them to another connection.
        check_connection(instances, trx)
    hooks = info.hooks
    unseen = own and not any(hooks.get(h) for h in _CREATE_HOOKS)
    # Hooks see the transaction, as ``trx``.
    bind(instances, trx, checked=True, unseen=unseen)
    if hooks.get("before:create") or hooks.get("before:save"):
        await begun(trx)  # user code runs inside a transaction that has begun
        await _run_each(hooks, "before:create", "before:save", instances)
    stamps = touch_all(model, instances, True)
    if info.composite:
        await _insert_many_composite(model, instances, trx, stamps)
        return
    assert info.primary_key is not None
    pk_attr = info.primary_key
    with hydration.gc_paused(len(instances)):
        plan = _tuple_plan(model, instances)
    if plan is not None:
        await _insert_tuples(model, instances, trx, stamps, *plan)
        return
    with hydration.gc_paused(len(instances)):
        values = hydration.set_columns(instances, list(model.columns))
    created(trx, instances, pk_attr, [pk_attr not in attrs for attrs in values], stamps)
    start = 0
    while start < len(instances):
        end = _batch_end(model, values, start)
        await _insert_batch(model, instances[start:end], values[start:end], trx)
        start = end
    deep = info.json_attributes
    for inst, attrs in zip(instances, values, strict=True):
        d = inst.__dict__
        d[PERSISTED] = True
        if pk_attr in d:
            attrs[pk_attr] = d[pk_attr]
        d[ORIGINAL] = hydration.snapshot(attrs, deep) if deep else attrs
    await _run_each(info.hooks, "after:create", "after:save", instances)


def _tuple_plan(
    model: type[BaseModel], instances: Sequence[BaseModel]
) -> tuple[tuple[str, ...], list[tuple[Any, ...]]] | None:
    """The common bulk insert in its lean form: every instance of ``model`` itself sets the
    same columns (at least two), none its key, which the database counts up (an integer),
    no column has a ``prepare`` function or a name of its own, none holds JSON. Then the
    rows are value tuples in column order (one C-level getter per row, no dict) and the
    column names; ``None`` otherwise (``insert_many``'s general path)."""
    info = info_of(model)
    pk_attr = info.primary_key
    if (
        len(instances) < 2
        or pk_attr is None
        or info.json_attributes
        or not isinstance(info.columns[pk_attr].type_, Integer)
    ):
        return None
    first = instances[0].__dict__
    names = tuple(k for k in model.columns if k in first)
    if len(names) < 2 or pk_attr in first:
        return None
    prepare = info.prepare_map
    if any(prepare[k] != (k, None) for k in names):
        return None
    # Each check over the whole batch at once, in C (a loop per instance cost as much as
    # the INSERT's own preparation).
    if list(map(type, instances)).count(model) != len(instances):
        return None  # a subclass among them: its own columns
    dicts = list(map(_dict_of, instances))
    for k in model.columns:
        if k not in first and any(map(dict.__contains__, dicts, repeat(k))):
            return None  # another set of columns (the general path batches them)
    try:
        rows: list[tuple[Any, ...]] = list(map(operator.itemgetter(*names), dicts))
    except KeyError:
        return None  # a column the first row sets is missing here
    return names, rows


async def _insert_tuples(
    model: type[BaseModel],
    instances: Sequence[BaseModel],
    trx: TransactionClient,
    stamps: dict[str, tuple[Any, Any]] | None,
    names: tuple[str, ...],
    rows: list[tuple[Any, ...]],
) -> None:
    """``insert_many``'s write of ``_tuple_plan`` rows: one multi-row INSERT per parameter
    limit, the keys set, each instance's ``original`` kept as its row (state.py's ``ROW``,
    read into a dict only when asked for), then the after hooks."""
    info = info_of(model)
    table = info.table
    pk_attr = info.primary_key
    assert table is not None and pk_attr is not None
    created(trx, instances, pk_attr, [True] * len(instances), stamps)
    pk_col = table.c[pk_column(model)]
    ops = trx.dialect_ops
    returned = await ops.insert_tuples_returning(trx, table, names, rows, pk_col, model.__name__)
    _inserted_tuples(model, list(map(_dict_of, instances)), names, rows, returned)
    await _run_each(info.hooks, "after:create", "after:save", instances)


def _inserted_tuples(
    model: type[BaseModel],
    dicts: list[dict[str, Any]],
    names: tuple[str, ...],
    rows: list[tuple[Any, ...]],
    returned: Sequence[Sequence[Any]],
) -> None:
    """The state of instances (their ``__dict__``s) whose ``_tuple_plan`` rows were inserted
    and came back with these keys (``returned``, one row each, the key first)."""
    pk_attr = info_of(model).primary_key
    assert pk_attr is not None
    # The key in its column's place: with every column set, the names are the model's
    # columns, which a later ``update_many`` compares in place (``_changes``).
    with_key = tuple(k for k in model.columns if k in names or k == pk_attr)
    at = with_key.index(pk_attr)
    keys = [got[0] for got in returned]
    written = None
    if None not in keys:
        # Each row as written, its key in its column's place.
        if at == 0:
            # ``(key,) + row`` in C: ``zip(keys)`` yields the one-value tuples.
            if len(keys) != len(rows):
                raise ValueError("one key per row expected")
            written = list(map(operator.add, zip(keys), rows))
        else:
            written = [(*row[:at], key, *row[at:]) for key, row in zip(keys, rows, strict=True)]
    # The state keys set over the whole batch in C.
    _consume(map(operator.setitem, dicts, repeat(PERSISTED), repeat(True)))
    _consume(map(dict.pop, dicts, repeat(ORIGINAL), repeat(None)))
    if written is not None:
        _consume(map(operator.setitem, dicts, repeat(pk_attr), keys))
        _consume(map(operator.setitem, dicts, repeat(ROW), written))
        _consume(map(operator.setitem, dicts, repeat(ROW_ATTRS), repeat(with_key)))
    else:
        # A key came back NULL: that row keeps the columns it was written with.
        for d, row, key in zip(dicts, rows, keys, strict=True):
            if key is None:
                d[ROW], d[ROW_ATTRS] = row, names
                continue
            d[pk_attr] = key
            d[ROW] = (*row[:at], key, *row[at:])
            d[ROW_ATTRS] = with_key


async def _insert_many_composite(
    model: type[M],
    instances: list[M],
    trx: TransactionClient,
    stamps: dict[str, tuple[Any, Any]] | None,
) -> None:
    """``insert_many`` of a model with a composite key (its before hooks run): rows that set
    the same columns in one multi-row INSERT, the key columns returned in parameter order
    where the database has ``RETURNING``."""
    info = info_of(model)
    table = info.table
    assert table is not None
    for inst in instances:
        _composite_value(inst, info.primary_keys, "insert")
    with hydration.gc_paused(len(instances)):
        values = hydration.set_columns(instances, list(model.columns))
    created(trx, instances, info.primary_keys[0], [False] * len(instances), stamps)
    key_cols = [table.c[c] for c in pk_columns(model)]
    returning = trx.dialect_ops.returning
    start = 0
    while start < len(instances):
        keys = values[start].keys()
        end = start + 1
        while end < len(values) and values[end].keys() == keys:
            end += 1
        batch = instances[start:end]
        params = _prepared_many(model, batch, values[start:end])
        stmt: Any = insert(table)
        if returning:
            stmt = stmt.returning(*key_cols, sort_by_parameter_order=True)
        result = await trx.execute(stmt, write=True, model=model.__name__, params=params)
        if returning:
            for inst, row in zip(batch, result.rows, strict=False):
                d = inst.__dict__
                for name, value in zip(info.primary_keys, row, strict=True):
                    if value is not None:
                        d[name] = value
        start = end
    deep = info.json_attributes
    for inst, attrs in zip(instances, values, strict=True):
        d = inst.__dict__
        d[PERSISTED] = True
        for name in info.primary_keys:
            if name in d:
                attrs[name] = d[name]
        d[ORIGINAL] = hydration.snapshot(attrs, deep) if deep else attrs
    await _run_each(info.hooks, "after:create", "after:save", instances)


def _batch_end(model: type[BaseModel], values: list[dict[str, Any]], start: int) -> int:
    """The end of the run of rows from ``start`` that set the same columns (one statement)."""
    info = info_of(model)
    keys = values[start].keys()
    pk_type = info.columns[info.primary_key or ""].type_
    if info.primary_key not in keys and not isinstance(pk_type, Integer):
        # A key the database makes otherwise than by counting up (a text or uuid default):
        # nothing ties returned keys to rows in a multi-row INSERT.
        return start + 1
    end = start + 1
    while end < len(values) and values[end].keys() == keys:
        end += 1
    return end


async def _insert_batch(
    model: type[BaseModel],
    batch: Sequence[BaseModel],
    values: list[dict[str, Any]],
    trx: TransactionClient,
) -> None:
    """One INSERT of ``batch`` (rows with the same columns); the returned keys are set."""
    info = info_of(model)
    table = info.table
    assert table is not None and info.primary_key is not None
    pk_col = table.c[pk_column(model)]
    if len(batch) == 1:
        stmt = insert(table).values(prepared(batch[0], values[0])).returning(pk_col)
        result = await trx.execute(stmt, write=True, model=model.__name__)
    else:
        params = _prepared_many(model, batch, values)
        generated = info.primary_key not in values[0]
        result = await insert_rows(trx, table, params, pk_col, generated, model.__name__)
    for inst, row in zip(batch, result.rows, strict=False):
        if row[0] is not None:
            inst.__dict__[info.primary_key] = row[0]


async def insert_rows(
    trx: TransactionClient,
    table: TableClause,
    params: list[dict[str, Any]],
    pk_col: ColumnElement[Any],
    generated: bool,
    model: str,
) -> ExecResult:
    """A multi-row INSERT returning each row's key in parameter order (``generated``: the
    database makes the keys, and the dialect proves their order)."""
    if generated:
        returned = await trx.dialect_ops.insert_many_returning(trx, table, params, pk_col, model)
        return ExecResult(returned, [], len(returned))
    # SQLAlchemy's "insertmanyvalues": one compiled statement, sent as multi-row
    # INSERT … RETURNING batches, rows returned in parameter order.
    stmt = insert(table).returning(pk_col, sort_by_parameter_order=True)
    return await trx.execute(stmt, write=True, model=model, params=params)


# -- find, search, fetch-or-create/update ---------------------------------------------------------


async def find(
    model: type[M], value: Any, client: Client | None, connection: str | None
) -> M | None:
    """``BaseModel.find``. Without a client and find hooks it takes the short path: one
    statement per model compiled once, no builder."""
    check_key_value(model, value)
    if model.shard_for is not None and connection is None:
        # Routed by the key (the shard key being the primary key); a transaction of another
        # connection is refused.
        pk = model.primary_key
        values = {pk: value} if isinstance(pk, str) else dict(zip(pk, value, strict=True))
        if client is not None:
            client_for(model, client, values=values)
        connection = shard_connection(model, values)
    info = info_of(model)
    hooks = info.hooks
    if (
        client is None
        and "before:find" not in hooks
        and "after:find" not in hooks
        and not info.global_scopes  # the static statement knows no scope
    ):
        query_client = db.connection(connection or model.connection)
        params = list(value) if info.composite else [value]
        result = await query_client.fetch_compiled(
            (model, "find"), lambda: _find_statement(model), params, model.__name__
        )
        if result is not None:
            rows = hydration.hydrate(model, result.keys, result.rows, query_client)
            return rows[0] if rows else None
    query = model.query(client=client, connection=connection)
    return await where_key(query, model, value).first()


def _find_statement(model: type[BaseModel]) -> Select[Any]:
    """``find``'s static statement: one parameter per primary-key column, in key order."""
    info = info_of(model)
    assert info.table is not None
    columns = [info.table.c[name] for name in pk_columns(model)]
    names = ["lucid_pk"] if len(columns) == 1 else [f"lucid_pk_{i}" for i in range(len(columns))]
    return select(*info.select_columns).where(
        *[c == bindparam(n, type_=c.type) for c, n in zip(columns, names, strict=True)]
    )


def search_query(model: type[M], search: Any, value: Any, client: Client) -> ModelQueryBuilder[M]:
    """``model``'s query for attribute ``search`` = ``value`` (or every pair of a dict), keys
    checked: ``find_by``, ``find_many_by``, ``update_or_create``."""
    if isinstance(search, str):
        search = {search: value}
    if not isinstance(search, Mapping) or not search:
        raise LucidError("Expected an attribute name and a value, or a dict of them")
    query = model.query(client=client)
    primary = model.primary_key
    composite = not isinstance(primary, str)
    for key, val in search.items():
        if key == primary:
            check_key_value(model, val)
        elif composite and key in primary:
            check_component(model, key, val, f'primary key "{model.__name__}.{primary!r}"')
        query.where(column_name(model, key), val)
    return query


async def update_or_create(
    model: type[M], search: Mapping[str, Any], payload: Mapping[str, Any], trx: Client
) -> M:
    """Update the row matching ``search`` (locked ``FOR UPDATE`` in ``trx``) with
    ``payload``, or create ``search + payload``; a concurrent creator of the same row makes
    this one update it instead (``create_or_first``)."""
    found = await locked_match(search_query(model, dict(search), None, trx))
    if found is None:
        instance = model().merge({**search, **payload})
        found = await create_or_first(instance, search, trx, lock="update")
        if found is instance:
            return instance
    found.merge(payload)
    await save(found, trx)
    return found


async def locked_match(query: ModelQueryBuilder[M]) -> M | None:
    """The first row of ``query``, locked ``FOR UPDATE`` by its primary key: a plain read
    first, so that a row that does not exist yet takes no gap lock (MySQL's gap locks on a
    missing key make concurrent creators of it deadlock on their INSERTs)."""
    found = await query.first()
    if found is None:
        return None
    model = type(found)
    client = query.client
    key = pk_value(found, "lock")
    locked = await where_key(model.query(client=client), model, key).for_update().first()
    return locked


async def retrying(base: Client, attempt: Callable[[TransactionClient], Awaitable[T]]) -> T:
    """Run ``attempt`` in a transaction on ``base``; when the database chose it as a deadlock
    victim (and rolled it back whole), run it again, up to 3 times. Inside a transaction of the
    caller nothing is retried: the deadlock is raised (its work is gone)."""
    for tries in range(3):
        try:
            async with base.transaction() as trx:
                return await attempt(trx)
        except QueryError as exc:
            if base.is_transaction or tries == 2 or not is_deadlock(base, exc):
                raise
    raise AssertionError("unreachable")


def is_deadlock(client: Client, exc: BaseException) -> bool:
    """Whether ``exc`` (or an error it was raised while handling) is a deadlock victim's."""
    seen: BaseException | None = exc
    while seen is not None:
        if client.dialect_ops.is_deadlock(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


async def create_or_first(
    instance: M, search: Mapping[str, Any], client: Client, lock: str = "share"
) -> M:
    """Save the new ``instance`` in a savepoint; when a concurrent caller created the row
    first (a unique violation), return that row instead, read again with a locking read
    (``lock``: "share" or "update"), which sees the latest commit also where the transaction
    reads from an older snapshot (MySQL's REPEATABLE READ). Race-safe only with a unique index
    on the ``search`` columns; without one both callers insert."""
    model = type(instance)
    try:
        async with client.transaction() as savepoint:
            await save(instance, savepoint)
        return instance
    except IntegrityError as exc:
        if not client.dialect_ops.is_unique_violation(exc):
            raise
        query = search_query(model, dict(search), None, client)
        query = query.for_update() if lock == "update" else query.for_share()
        found = await query.first()
        if found is None:
            raise  # a duplicate of another unique key than the search columns
        return found


# -- fetch-or-create/update of many rows ---------------------------------------------------------

UpsertMode = Literal["new_up", "create", "update"]


def _require_keys(keys: list[str], payload: Sequence[Mapping[str, Any]]) -> None:
    """Refuse a payload entry that lacks one of ``keys`` (``E_INVALID_ARGUMENT``)."""
    needed = set(keys)
    for row in payload:
        if isinstance(row, dict) and row.keys() >= needed:
            continue  # one C-level check per row
        missing = [k for k in keys if k not in row]
        if missing:
            raise LucidError(
                f"Every payload entry needs the key(s) {', '.join(keys)}; missing "
                f'"{missing[0]}" in {dict(row)!r}',
                code="E_INVALID_ARGUMENT",
            )


async def match_rows(
    model: type[M],
    keys: list[str],
    payload: Sequence[Mapping[str, Any]],
    client: Client,
    lock: bool = False,
) -> list[M | None]:
    """Per payload entry, the existing row equal to it on ``keys`` as the database compares
    them (its collation: MariaDB's ``'A@X'`` finds a stored ``'a@x'``), else ``None``. One
    ``WHERE keys IN (…)`` read; entries whose values differ from a found row's in Python but
    not in the database are matched by a second query that the database answers. ``lock``
    reads ``FOR SHARE`` (the latest commit, also in an older snapshot)."""
    _require_keys(keys, payload)
    query = model.query(client=client)
    columns = [column_name(model, k) for k in keys]
    values = list(dict.fromkeys(tuple(row[k] for k in keys) for row in payload))
    if len(columns) == 1:
        query.where_in(columns[0], [v[0] for v in values])
    else:
        query.where_in(columns, [list(v) for v in values])
    if lock:
        query.for_share()
    found = await query
    by_value = {tuple(getattr(m, k) for k in keys): m for m in found}
    out: list[M | None] = [by_value.get(tuple(row[k] for k in keys)) for row in payload]
    claimed = {id(m) for m in out if m is not None}
    others = [m for m in found if id(m) not in claimed]
    if others and None in out:
        await _match_in_database(model, keys, payload, out, others, client)
    return out


async def _match_in_database(
    model: type[M],
    keys: list[str],
    payload: Sequence[Mapping[str, Any]],
    out: list[M | None],
    candidates: list[M],
    client: Client,
) -> None:
    """Fill ``out[i]`` for the unmatched entries with the candidate the database finds equal:
    ``SELECT i, pk FROM t WHERE pk IN (candidates) AND keys = entry_i UNION ALL …``."""
    info = info_of(model)
    table = info.table
    assert table is not None
    names = info.primary_keys
    pks = [table.c[c] for c in pk_columns(model)]
    by_key = {tuple(m.__dict__[n] for n in names): m for m in candidates}
    # ``pk IN (…)``, or ``(a, b) IN (…)`` for a composite key
    in_candidates = (
        tuple_(*pks).in_(list(by_key)) if len(pks) > 1 else pks[0].in_([k[0] for k in by_key])
    )
    pending = [i for i, m in enumerate(out) if m is None]
    for start in range(0, len(pending), 200):
        parts = [
            select(literal(i).label("i"), *pks).where(
                in_candidates,
                *[table.c[column_name(model, k)] == payload[i][k] for k in keys],
            )
            for i in pending[start : start + 200]
        ]
        stmt = parts[0] if len(parts) == 1 else union_all(*parts)
        result = await client.execute(stmt, write=False, model=model.__name__)
        for i, *key in result.rows:
            if out[i] is None:
                out[i] = by_key.get(tuple(key))


async def upsert_many(
    model: type[M],
    keys: list[str],
    rows: list[Mapping[str, Any]],
    client: Client,
    mode: UpsertMode,
) -> list[M]:
    """The core of ``fetch_or_new_up_many`` / ``fetch_or_create_many`` /
    ``update_or_create_many``: per payload entry the existing row matching it on ``keys`` in
    the database (``match_rows``; merged and written with ``update_many`` in "update" mode),
    else a new instance (created in one ``insert_many`` unless "new_up"). Entries with equal
    keys share one instance; results follow the payload. ``client`` is the transaction of the
    creating modes.

    Race-safe: the new rows are inserted in a savepoint; when a concurrent caller created one
    of them first (a unique violation), the savepoint rolls back, the rows are matched again
    with a locking read and those still missing are created one by one, each in its own
    savepoint (``create_or_first``)."""
    matched = await match_rows(model, keys, rows, client)
    out: list[M] = []
    fresh: list[M] = []
    new_by_key: dict[tuple[Any, ...], M] = {}
    for row, found in zip(rows, matched, strict=True):
        if found is None:
            key = tuple(row[k] for k in keys)
            found = new_by_key.get(key)
            if found is None:
                found = model().merge(row)
                if mode != "new_up":
                    new_by_key[key] = found
                    fresh.append(found)
        elif mode == "update":
            found.merge(row)
        out.append(found)
    if mode == "new_up":
        return out
    assert isinstance(client, TransactionClient)
    if fresh:
        out = await _create_fresh(model, keys, rows, out, fresh, client, mode)
    if mode == "update":
        created = {id(m) for m in fresh}  # by identity: a list scan per row is quadratic
        existing = list({id(m): m for m in out if m.is_persisted and id(m) not in created}.values())
        await update_many(model, [m for m in existing if m.is_dirty], client)
    return out


async def _create_fresh(
    model: type[M],
    keys: list[str],
    rows: list[Mapping[str, Any]],
    out: list[M],
    fresh: list[M],
    trx: TransactionClient,
    mode: UpsertMode,
) -> list[M]:
    """Insert ``fresh`` (one ``insert_many`` in a savepoint). On a unique violation, match
    their entries again with a locking read: when that finds rows a concurrent caller created
    (a lost race), those are used and the rest inserted again, in bulk; when it finds none, the
    violation is not a race on ``keys`` (a duplicate of another unique column) and is raised —
    never a fallback to one insert per row, which would make a failing 40,000-row call take a
    minute. After a few lost races in a row, the rest go one by one (``create_or_first``)."""
    for _ in range(_BULK_RACE_ATTEMPTS):
        try:
            async with trx.transaction() as savepoint:
                await insert_many(model, fresh, savepoint)
            return out
        except IntegrityError as exc:
            if not trx.dialect_ops.is_unique_violation(exc):
                raise
            error = exc
        # The savepoint rolled back: ``fresh`` are new instances again (the journal).
        fresh, raced = await _rematch(model, keys, rows, out, fresh, trx, mode)
        if not fresh:
            return out
        if not raced:
            # No lost race. Two entries equal only under the column's collation ('a@x' and
            # 'A@X' on MariaDB) are created one by one below, the second finding the first;
            # else the violation is on another unique column: raise it now.
            left = {id(m) for m in fresh}
            if not _may_collide(keys, [rows[i] for i, m in enumerate(out) if id(m) in left]):
                raise error
            break
    is_fresh = {id(m) for m in fresh}
    made: dict[int, M] = {}
    for i, instance in enumerate(out):
        if id(instance) not in is_fresh:
            continue
        if id(instance) in made:
            out[i] = made[id(instance)]
            continue
        search = {k: rows[i][k] for k in keys}
        winner = await create_or_first(instance, search, trx)
        if winner is not instance and mode == "update":
            winner.merge(rows[i])
        made[id(instance)] = out[i] = winner
    return out


# Bulk inserts retried after lost races before the rows go one by one.
_BULK_RACE_ATTEMPTS = 3


def _loose(value: Any) -> Any:
    """``value`` as loosely as any collation compares it (case, accents, trailing spaces)."""
    if not isinstance(value, str):
        return value
    decomposed = unicodedata.normalize("NFKD", value)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold().rstrip(" ")


def _may_collide(keys: list[str], rows: list[Mapping[str, Any]]) -> bool:
    """Whether two of ``rows`` could be equal on ``keys`` under some collation."""
    seen: set[tuple[Any, ...]] = set()
    for row in rows:
        key = tuple(_loose(row[k]) for k in keys)
        if key in seen:
            return True
        seen.add(key)
    return False


async def _rematch(
    model: type[M],
    keys: list[str],
    rows: list[Mapping[str, Any]],
    out: list[M],
    fresh: list[M],
    trx: TransactionClient,
    mode: UpsertMode,
) -> tuple[list[M], bool]:
    """Match the entries of ``fresh`` again (locking read); put the rows found in ``out``.
    Returns the instances still to create and whether any row was found (a lost race)."""
    is_fresh = {id(m) for m in fresh}
    pending = [i for i, m in enumerate(out) if id(m) in is_fresh]
    again = await match_rows(model, keys, [rows[i] for i in pending], trx, lock=True)
    raced = False
    for i, found in zip(pending, again, strict=True):
        if found is not None:
            raced = True
            if mode == "update":
                found.merge(rows[i])
            out[i] = found
    still = {id(out[i]): out[i] for i in pending if id(out[i]) in is_fresh}
    return list(still.values()), raced


# -- upsert ---------------------------------------------------------------------------------------


async def upsert_rows(
    model: type[M],
    rows: list[Mapping[str, Any]],
    conflict: list[str],
    merge: Sequence[str] | None,
    client: Client,
) -> list[M]:
    """``Model.upsert``/``upsert_many``: one ``INSERT … ON CONFLICT (conflict) DO UPDATE``
    (MySQL: ``ON DUPLICATE KEY UPDATE``) ``… RETURNING`` per set of columns, the returned rows
    hydrated in payload order. ``merge``: the attributes an existing row takes (``None``: every
    attribute given but ``conflict`` and the ``auto_create``-only timestamps). No hooks run
    (as Eloquent's ``upsert``): the write is one statement, not a save per instance."""
    info = info_of(model)
    table = info.table
    assert table is not None
    columns = list(model.columns)
    instances: list[M] | None = None
    # Inside the caller's transaction the returned instances are journaled (their rollback
    # makes them follow the rows); a transaction opened here commits before they are returned.
    journal = client.is_transaction
    befores: list[dict[str, Any]] | None = None
    with hydration.gc_paused(len(rows)):
        grouped = _plain_groups(model, rows, conflict)
        if grouped is not None:
            # Dicts of columns in column order, each shape checked once: one pass.
            attrs, groups = grouped
        else:
            _require_keys(conflict, rows)
            if _plain_rows(model, rows):
                # Nothing to stamp or prepare: the rows' column values are the parameters,
                # with no instance built for each (new_many's fast path would only copy
                # them in).
                attrs = _column_dicts(columns, rows)
            else:
                instances = hydration.new_many(model, rows)
                stamped = [n for n, c in info.timestamps if c.auto_create or c.auto_update]
                if journal and stamped:
                    # The stamps' values before the upsert sets them, for the journal.
                    befores = [
                        {name: inst.__dict__.get(name, ABSENT) for name in stamped}
                        for inst in instances
                    ]
                touch_all(model, instances, True)
                attrs = hydration.set_columns(instances, columns)
            groups = _shape_groups(attrs)
    conflict_cols = [column_name(model, k) for k in conflict]
    # The stamps only a create sets; a plain date/datetime attribute is merged like any other.
    created_only = {
        name for name, col in info.timestamps if col.auto_create and not col.auto_update
    }
    # Each entry's conflict key, computed once.
    keys = _key_tuples(attrs, conflict)
    out: list[M | None] = [None] * len(rows)
    ops = client.dialect_ops
    # The driver-level upsert (SqliteDialect.upsert_fast) runs in a transaction: one of its own
    # when the caller has none (one statement is atomic anyway; a few when the rows set
    # different columns, all or nothing).
    fast = ops.upserts_fast(client)
    # Whether each returned row was inserted, where the dialect tells and the journal needs it.
    inserted = ops.upsert_inserted() if journal else None
    statements: list[_Upsert] = []
    for names, indexes in groups.items():
        # The last entry of a key wins (PostgreSQL refuses to update one row twice).
        last = {keys[i]: i for i in indexes}
        chosen = list(last.values())
        if merge is None:
            merge_attrs = [
                k
                for k in names
                if k not in conflict and k not in created_only and k not in info.primary_keys
            ]
        else:
            merge_attrs = list(merge)
            for k in merge_attrs:
                if k not in names:
                    raise LucidError(
                        f'upsert merge names "{k}", which the rows do not set',
                        code="E_INVALID_ARGUMENT",
                    )
        if instances is None:
            params = [attrs[i] for i in chosen]  # no prepare function (``_plain_rows``)
        else:
            params = _prepared_many(
                model, [instances[i] for i in chosen], [attrs[i] for i in chosen]
            )
        merge_cols = [column_name(model, k) for k in merge_attrs]
        if fast:
            statements.append((None, params, indexes, chosen, merge_cols))
            continue
        statements.append(
            (
                *_upsert_statement(model, params, conflict_cols, merge_cols, client, inserted),
                indexes,
                chosen,
                merge_cols,
            )
        )
    run = _Upserts(model, conflict, conflict_cols, keys, statements, out, client)
    if journal:
        run.journal = _UpsertJournal(attrs, befores, inserted)
    if (fast or len(statements) > 1) and not client.is_transaction:
        if fast and len(statements) == 1:
            alone = statements[0][1]
            assert alone is not None
            if ops.writes_alone(client, len(alone), len(alone[0])):
                # One statement, atomic by itself: run in one trip on the driver, without a
                # transaction of its own (SQLite: ``executor.write_sqlite``).
                return await run(client)
        # Its BEGIN and the first statement may go to the driver in one trip (``implicit``).
        async with implicit(client) as trx:
            return await run(trx)
    return await run(client)


def _shape_groups(attrs: Sequence[dict[str, Any]]) -> dict[tuple[str, ...], list[int]]:
    """The indexes of ``attrs`` per set of keys (in their order): one statement each."""
    groups: dict[tuple[str, ...], list[int]] = {}
    names: tuple[str, ...] = ()
    last: Any = None
    for i, values in enumerate(attrs):
        shape = values.keys()
        if shape != last:
            names = tuple(values)
            last = shape
        groups.setdefault(names, []).append(i)
    return groups


def _plain_groups(
    model: type[BaseModel], rows: Sequence[Mapping[str, Any]], conflict: list[str]
) -> tuple[list[dict[str, Any]], dict[tuple[str, ...], list[int]]] | None:
    """``upsert_rows``' parameters and statement groups in one pass, for the usual payload:
    ``_plain_rows`` (no instance needed), every row a dict that names only columns, in
    column order, the ``conflict`` keys among them. The checks run once per key order, not
    per row (``_require_keys``, ``_plain_rows``, ``_column_dicts`` and ``_shape_groups``
    each walk every row). ``None`` otherwise: those run, and raise what they raise."""
    if not _plain_model(model):
        return None
    columns = model.columns
    needed = set(conflict)
    attrs: list[dict[str, Any]] = []
    add = attrs.append
    groups: dict[tuple[str, ...], list[int]] = {}
    last: tuple[str, ...] | None = None
    at: list[int] = []
    for i, row in enumerate(rows):
        if type(row) is not dict:
            return None
        shape = tuple(row)
        if shape != last:
            found = groups.get(shape)
            if found is None:
                in_order = tuple(k for k in columns if k in row)
                if shape != in_order or not needed <= row.keys():
                    return None
                found = groups[shape] = []
            at, last = found, shape
        at.append(i)
        # A copy: the statement reads it later, after the caller's code may have run.
        add(row.copy())
    return attrs, groups


def _column_dicts(columns: list[str], rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each row's column values in column order: a C-level copy of a dict that names them in
    that order already (checked once per key order), else picked column by column."""
    out: list[dict[str, Any]] = []
    add = out.append
    in_order: dict[tuple[str, ...], bool] = {}
    for row in rows:
        if type(row) is dict:
            shape = tuple(row)
            ok = in_order.get(shape)
            if ok is None:
                ok = in_order[shape] = shape == tuple(k for k in columns if k in row)
            if ok:
                add(row.copy())
                continue
        add({k: row[k] for k in columns if k in row})
    return out


def _plain_rows(model: type[BaseModel], rows: Sequence[Mapping[str, Any]]) -> bool:
    """Whether upsert ``rows`` can be written without an instance each: the model stamps no
    timestamp on create, has no ``prepare`` function and no column named apart from its
    attribute, builds instances the default way, and every row names only columns (what
    ``new_many``'s fast path copies in as is)."""
    if not _plain_model(model):
        return False
    cols = model.columns.keys()
    return all(row.keys() <= cols for row in rows)


def _plain_model(model: type[BaseModel]) -> bool:
    """Whether ``model``'s upsert rows need no instance to be written: fast paths on, instances
    built the default way, no timestamp stamped on create, no ``prepare`` function and no
    column named apart from its attribute."""
    from .base_model import BaseModel

    info = info_of(model)
    if not hydration.FAST_PATHS or model.__init__ is not BaseModel.__init__:
        return False
    if any(col.auto_create or col.auto_update for _, col in info.timestamps):
        return False
    return all(prepare == (key, None) for key, prepare in info.prepare_map.items())


# One upsert statement: (the SQLAlchemy statement, or None for the driver-level one; its
# parameter sets, None when bound into the statement; the payload entries it covers; the
# entries it writes, one per key; the merged columns).
_Upsert = tuple[Any, list[dict[str, Any]] | None, list[int], list[int], list[str]]


def _upsert_statement(
    model: type[BaseModel],
    params: list[dict[str, Any]],
    conflict_cols: list[str],
    merge_cols: list[str],
    client: Client,
    inserted: Any = None,
) -> tuple[Any, list[dict[str, Any]] | None]:
    """The SQLAlchemy upsert of ``params`` returning every column (and ``inserted`` last,
    when given: ``Dialect.upsert_inserted``), and its parameter sets (``None``: the rows are
    bound in the statement)."""
    info = info_of(model)
    table = info.table
    assert table is not None
    ops = client.dialect_ops
    returning = info.select_columns if inserted is None else [*info.select_columns, inserted]
    bound = ops.upsert_bound(table, params, conflict_cols, merge_cols, client.dialect)
    if bound is not None:
        # The rows as one parameter (json_each, JSON_TABLE): nothing per row for SQLAlchemy.
        return bound.returning(*returning), None
    # Else one bound parameter per column, the rows passed as parameter sets: SQLAlchemy
    # compiles this shape once (its statement cache) and sends the rows as multi-row
    # VALUES ("insertmanyvalues", as many rows per statement as the driver's parameter
    # limit allows), instead of a statement built and compiled anew for every call.
    template: dict[str, Any] = {name: bindparam(name) for name in params[0]}
    stmt = ops.upsert_statement(table, template, conflict_cols, merge_cols).returning(*returning)
    return stmt, params


def _key_tuples(values: Sequence[Mapping[str, Any]], names: Sequence[str]) -> list[tuple[Any, ...]]:
    """``tuple(v[k] for k in names)`` for each of ``values`` (``None`` for a missing name),
    with one C-level getter per row where every row has them."""
    if len(names) == 1:
        (name,) = names
        try:
            return [(v[name],) for v in values]
        except KeyError:
            pass
    else:
        get = operator.itemgetter(*names)
        try:
            return [get(v) for v in values]
        except KeyError:
            pass
    return [tuple(v.get(k) for k in names) for v in values]


class _Upserts:
    """Runs the upsert statements of one call on a client (its transaction, or the
    caller's client), filling ``out`` in payload order."""

    def __init__(
        self,
        model: type[M],
        conflict: list[str],
        conflict_cols: list[str],
        keys: list[tuple[Any, ...]],
        statements: list[_Upsert],
        out: list[Any],
        caller: Client,
    ) -> None:
        self.model = model
        self.conflict = conflict
        self.conflict_cols = conflict_cols
        self.keys = keys
        self.statements = statements
        self.out = out
        # The client the returned instances are bound to: the caller's (a transaction opened
        # here for the statements ends before they are returned).
        self.caller = caller
        # Set when the caller's transaction journals the returned instances.
        self.journal: _UpsertJournal | None = None

    async def __call__(self, client: Client) -> list[Any]:
        model, conflict, keys, out, journal = (
            self.model,
            self.conflict,
            self.keys,
            self.out,
            self.journal,
        )
        for stmt, params, indexes, chosen, merge_cols in self.statements:
            try:
                columns, rows = await self._execute(client, stmt, params, merge_cols)
            except QueryError as exc:
                if client.dialect_ops.missing_conflict_index(exc):
                    raise LucidError(
                        f"{model.__name__}.upsert needs a unique index (or primary key) on "
                        f'exactly ({", ".join(conflict)}) of "{info_of(model).table_name}": '
                        f"{exc}",
                        code="E_MISSING_UNIQUE_INDEX",
                    ) from exc
                raise
            bind_to = (
                self.caller if client.is_transaction and not self.caller.is_transaction else client
            )
            flags: list[Any] | None = None
            if journal is not None and journal.inserted is not None:
                # The last column says whether the row was inserted: not an attribute.
                flags = list(map(_last, rows))
                columns, rows = columns[:-1], list(map(_but_last, rows))
            found = hydration.hydrate(model, columns, rows, bind_to)
            if len(found) != len(chosen):
                raise LucidError(
                    f"{model.__name__}.upsert: the database returned {len(found)} rows for "
                    f"{len(chosen)} (a duplicate of another unique key than "
                    f"({', '.join(conflict)})?)",
                    code="E_UPSERT_ROWS",
                )
            # RETURNING answers the rows in VALUES order; matched by value where they are
            # equal in Python, by position where the stored key differs (collation).
            found_keys = _key_tuples([m.__dict__ for m in found], conflict)
            by_value = dict(zip(found_keys, found, strict=True))
            for pos, i in enumerate(chosen):
                hit = by_value.get(keys[i])
                out[i] = hit if hit is not None else found[pos]
            if len(chosen) != len(indexes):
                # Entries with a key seen again later share that one's instance.
                first = {keys[i]: out[i] for i in chosen}
                for i in indexes:
                    if out[i] is None:
                        out[i] = first[keys[i]]
            if journal is not None:
                journal.add(model, found, flags, out, chosen, merge_cols)
        if journal is not None:
            journal.record(model, client)
        return [m for m in out if m is not None]

    async def _execute(
        self,
        client: Client,
        stmt: Any,
        params: list[dict[str, Any]] | None,
        merge_cols: list[str],
    ) -> tuple[Sequence[str], Sequence[Sequence[Any]]]:
        """One statement's returned ``(keys, rows)``: the driver-level upsert when ``stmt``
        is ``None`` (SQLAlchemy's statement when the dialect declines it after all)."""
        model = self.model
        if stmt is None:
            # A transaction, or the caller's client where ``writes_alone`` said so.
            assert params is not None
            info = info_of(model)
            assert info.table is not None
            inserted = self.journal.inserted if self.journal is not None else None
            fast = await client.dialect_ops.upsert_fast(
                client,
                info.table,
                params,
                self.conflict_cols,
                merge_cols,
                info.select_columns if inserted is None else [*info.select_columns, inserted],
                model.__name__,
            )
            if fast is not None:
                return fast
            stmt, params = _upsert_statement(
                model, params, self.conflict_cols, merge_cols, client, inserted
            )
        result = await client.execute(stmt, write=True, model=model.__name__, params=params)
        return result.keys, result.rows


_last = operator.itemgetter(-1)
_but_last = operator.itemgetter(slice(None, -1))


class _UpsertJournal:
    """The journal entry of one upsert call in the caller's transaction (journal.py's
    ``upserted``), gathered statement by statement: C-level passes over the rows where the
    model stamps no timestamps, since a commit (the usual end) discards it unread."""

    def __init__(
        self,
        attrs: Sequence[Mapping[str, Any]],
        befores: list[dict[str, Any]] | None,
        inserted: Any,
    ) -> None:
        self.attrs = attrs  # each payload entry's written values (did it give the key?)
        self.befores = befores  # each entry's stamp values before the upsert stamped them
        self.inserted = inserted  # ``Dialect.upsert_inserted``: None where it can't tell
        self.instances: list[BaseModel] = []
        self.flags: list[Any] = []
        self.generated: list[bool] = []
        self.stamps: list[dict[str, tuple[Any, Any]] | None] = []

    def add(
        self,
        model: type[BaseModel],
        found: list[Any],
        flags: list[Any] | None,
        out: list[Any],
        chosen: list[int],
        merge_cols: Sequence[str],
    ) -> None:
        """One statement's returned instances ``found`` (``flags``: per row of ``found``
        whether it was inserted), written from the payload entries ``chosen`` (whose
        instances ``out`` holds)."""
        instances = list(map(out.__getitem__, chosen))
        if flags is not None and not all(map(operator.is_, found, instances)):
            # Matched by value, not in RETURNING order: the flags follow their instance.
            by_id = dict(zip(map(id, found), flags, strict=True))
            flags = [by_id[id(m)] for m in instances]
        self.instances += instances
        if flags is not None:
            self.flags += flags
        pk = info_of(model).primary_key
        attrs = self.attrs
        if pk is None:
            self.generated += [False] * len(chosen)  # a composite key is always given
        elif pk not in attrs[chosen[0]]:
            # A statement's rows set the same attributes: none gives its key.
            self.generated += [True] * len(chosen)
        else:
            self.generated += [attrs[i][pk] is None for i in chosen]
        befores = self.befores
        if befores is None:
            self.stamps += [None] * len(chosen)
            return
        for pos, i in enumerate(chosen):
            ins = flags is not None and flags[pos]
            d = instances[pos].__dict__
            stamps: dict[str, tuple[Any, Any]] = {}
            for name, before in befores[i].items():
                if before is not ABSENT and before is not None:
                    continue  # the payload's own value, not a stamp
                if not ins and column_name(model, name) not in merge_cols:
                    continue  # an existing row keeps what it held there
                stamps[name] = (before, d.get(name, ABSENT))
            self.stamps.append(stamps)

    def record(self, model: type[BaseModel], trx: Client) -> None:
        info = info_of(model)
        upserted(
            trx,
            self.instances,
            info.primary_key or info.primary_keys[0],
            None if self.inserted is None else self.flags,
            self.generated,
            self.stamps,
        )


# -- bulk update ----------------------------------------------------------------------------------


async def update_many(model: type[M], instances: Sequence[M], client: Client) -> None:
    """Write the changes of persisted ``instances`` with one ``UPDATE`` per set of changed
    columns (``Dialect.bulk_update_statement``, chunked under the parameter limit), all in one
    transaction (a savepoint inside one), with the update/save hooks of each instance: before
    hooks first, after hooks once every row is written, inside the transaction. All or
    nothing: on any failure every instance is as it was (still dirty, its ``updated_at`` back).
    A row that is gone raises ``ModelNotFoundError``."""
    items = list(dict.fromkeys(instances))
    if not items:
        return
    dicts = list(map(_dict_of, items))
    exact = all(map(operator.is_, map(type, items), repeat(model)))
    # Checked in C over the whole batch (instances of ``model`` itself, all persisted); a
    # subclass or a refusal takes the loop, which raises for the first instance refused.
    if not (exact and all(persisted_flags(dicts))):
        for inst in items:
            if type(inst) is not model and not isinstance(inst, model):
                raise LucidError(
                    f"update_many expects {model.__name__} instances, got {inst!r}",
                    code="E_INVALID_ARGUMENT",
                )
            if not persisted_in(inst.__dict__):
                raise LucidError(
                    f"update_many writes persisted instances; {inst!r} is new (use save_many)",
                    code="E_INVALID_ARGUMENT",
                )
    # What puts every instance back as it was on a failure, set by ``_update_many`` before
    # it changes any.
    restore: list[Callable[[], None]] = []
    try:
        # Its BEGIN may still run on the driver while the changes are computed (``implicit``).
        async with implicit(client) as trx:
            await _update_many(model, items, dicts, exact, trx, restore)
    except BaseException:
        for undo in restore:
            undo()
        raise


def _states_kept(dicts: list[dict[str, Any]]) -> Callable[[], None]:
    """What puts back the instance state ``dicts`` hold now: a copy of each."""
    states = list(map(dict.copy, dicts))

    def restore() -> None:
        for d, state in zip(dicts, states, strict=True):
            d.clear()
            d.update(state)

    return restore


_MISSING: Any = object()


def _row_getter(model: type[BaseModel]) -> tuple[tuple[str, ...], Callable[[Any], Any]] | None:
    """The column attributes of ``model`` and a C-level getter of their values from an
    instance ``__dict__`` as one tuple, for models whose ``original`` can stay in the lazy
    row form (state.py's ``ROW``): at least two columns, no JSON column (whose ``original``
    must be a deep copy). ``None`` otherwise."""
    info = info_of(model)
    found = info.__dict__.get("_lucid_row_getter", _MISSING)
    if found is _MISSING:
        names = tuple(model.columns)
        found = None
        if len(names) >= 2 and not info.json_attributes:
            found = (names, operator.itemgetter(*names))
        info.__dict__["_lucid_row_getter"] = found
    return found  # type: ignore[no-any-return]


def _changes(model: type[M], items: list[M]) -> tuple[list[M], list[dict[str, Any]], list[Any]]:
    """The persisted ``items`` that have changes: ``(dirty, changes, originals)``, per dirty
    instance its changed attributes (``dirty_of``, in column order) and its ``original``
    before the write, for the journal: the ``original`` dict, or ``(row, names)`` when it
    was still the hydrated row (``ROW``/``ROW_ATTRS``: compared in place, no dict built)."""
    attributes = model.columns
    dirty: list[M] = []
    changes: list[dict[str, Any]] = []
    originals: list[Any] = []
    add_dirty, add_change, add_original = dirty.append, changes.append, originals.append
    missing = _MISSING
    plan = _row_getter(model)
    names, getter = plan if plan is not None else ((), None)
    same: Any = names  # the last ROW_ATTRS found equal to ``names`` (usually one per query)
    # Which columns are not the very object hydrated, as a tuple of flags (compared in C),
    # mapped to their positions: a batch usually changes the same columns in every row.
    positions: dict[tuple[bool, ...], tuple[int, ...]] = {}
    is_not = operator.is_not
    o: Any
    for inst in items:
        d = inst.__dict__
        row = d.get(ROW)
        if getter is not None and row is not None and d.get(ORIGINAL) is None:
            row_names = d.get(ROW_ATTRS)
            if row_names is None:  # the model's columns (state.py)
                row_names = names if type(inst) is model else tuple(type(inst).columns)
            if row_names is same or row_names == names:
                same = row_names
                try:
                    values = getter(d)
                except KeyError:  # an attribute deleted: the general comparison
                    pass
                else:
                    # The row as hydrated (a tuple, or the driver's record: indexed in
                    # place, no copy); ``map`` stops at the last column (``values``).
                    flags = tuple(map(is_not, row, values))
                    where = positions.get(flags)
                    if where is None:
                        where = positions[flags] = tuple(i for i, f in enumerate(flags) if f)
                    if not where:
                        continue  # clean: every value the very one hydrated
                    # Another object: changed unless equal and of the same type.
                    changed = {}
                    for i in where:
                        o, v = row[i], values[i]
                        if o != v or type(o) is not type(v):
                            changed[names[i]] = v
                    if changed:
                        add_dirty(inst)
                        add_change(changed)
                        add_original((row, row_names))
                    continue
        orig = d.get(ORIGINAL)
        if orig is None:
            orig = original_of(inst)
        changed = {}
        for k in attributes:
            if k in d:
                v = d[k]
                o = orig.get(k, missing)
                if o is missing or o != v or type(o) is not type(v):
                    changed[k] = v
        if changed:
            dirty.append(inst)
            changes.append(changed)
            originals.append(orig)
    return dirty, changes, originals


def _row_changes(
    model: type[M],
    items: list[M],
    dicts: list[dict[str, Any]],
    exact: bool,
    key: str,
    plain: bool = False,
) -> _RowChanges[M] | None:
    """``_changes`` for a batch whose every instance is of ``model`` itself (``exact``) and
    still holds its hydrated row (state.py's ``ROW``, no ``original`` dict, ``ROW_ATTRS``
    absent or the model's columns: ``_row_getter``), compared column by column in C:
    ``(dirty, their dicts, their rows, written, batches)``, per dirty instance its ``ROW``
    before the write (the journal's ``original``) and its values as one tuple (its ``ROW``
    once written: ``ROW_ATTRS`` and ``ORIGINAL`` stay as they are), and the rows to write per
    set of changed columns (``_Batch``). ``None`` when the batch is not all so (``_changes``
    then compares instance by instance). ``items[i]`` owns ``dicts[i]``; ``plain``: each of
    ``dicts`` holds one key more than the model has columns (``_plain``)."""
    plan = _row_getter(model)
    if plan is None or not exact:
        return None
    names = plan[0]
    if key not in names:
        return None
    n = len(dicts)
    rows: list[Any] = list(map(dict.get, dicts, repeat(ROW)))
    if None in rows:
        return None
    # (``plain``: ``ROW`` and every column, read below, are all the keys there are.)
    if (
        not plain
        and any(map(dict.__contains__, dicts, repeat(ORIGINAL)))
        and any(map(operator.is_not, map(dict.get, dicts, repeat(ORIGINAL)), repeat(None)))
    ):
        return None
    if not plain and any(map(dict.__contains__, dicts, repeat(ROW_ATTRS))):
        # (Absent: the model's columns, state.py.) Usually one tuple shared by the rows of a
        # query: counted by identity.
        row_names = list(map(dict.get, dicts, repeat(ROW_ATTRS), repeat(names)))
        first = row_names[0]
        if first != names or row_names.count(first) != n:
            return None
    try:
        values = list(map(plan[1], dicts))
    except KeyError:  # an attribute deleted: the general comparison
        return None
    # Column by column: the values as hydrated (a row may hold more values after its
    # columns: ``zip`` stops at the last column) and as they are now. A column whose every
    # value is the very object hydrated is clean; in another, a row changed unless equal
    # and of the same type (as ``_changes``). (Transposed in C: faster than one ``map``
    # per column, or ``!=`` and the types compared by nested ``map``s.)
    news = list(zip(*values, strict=True))
    changed: list[tuple[int, list[bool]]] = []
    for j, (was, now) in enumerate(zip(zip(*rows, strict=False), news, strict=False)):
        if all(map(operator.is_, was, now)):
            continue
        flags = [
            o is not v and (o != v or type(o) is not type(v)) for o, v in zip(was, now, strict=True)
        ]
        if any(flags):
            changed.append((j, flags))
    if not changed:
        return [], [], [], [], []
    keys = news[names.index(key)]
    columns = [j for j, _ in changed]
    if all(all(flags) for _, flags in changed):
        # Every row changed in every changed column (a batch usually changes the same
        # columns): one batch, its rows kept as the columns they are (``ColumnRows``).
        batch: _Batch[M] = (
            tuple(names[j] for j in columns),
            items,
            ColumnRows([keys, *[news[j] for j in columns]]),
        )
        return items, dicts, rows, values, [batch]
    groups: dict[tuple[Any, ...], list[int]] = {}
    dirty_at: list[int] = []
    for i, pattern in enumerate(zip(*[flags for _, flags in changed], strict=True)):
        if any(pattern):
            dirty_at.append(i)
            groups.setdefault(pattern, []).append(i)
    batches: list[_Batch[M]] = []
    for pattern, at in groups.items():
        set_columns = [j for j, bit in zip(columns, pattern, strict=True) if bit]
        batches.append(
            (
                tuple(names[j] for j in set_columns),
                [items[i] for i in at],
                [(keys[i], *[news[j][i] for j in set_columns]) for i in at],
            )
        )
    return (
        [items[i] for i in dirty_at],
        [dicts[i] for i in dirty_at],
        [rows[i] for i in dirty_at],
        [values[i] for i in dirty_at],
        batches,
    )


def _written_many(model: type[BaseModel], instances: Sequence[BaseModel]) -> None:
    """``_written`` for many instances of ``model``: their ``original`` becomes what they
    hold, kept as a row (state.py's ``ROW``, read into a dict only when asked for) where the
    model allows it (``_row_getter``)."""
    plan = _row_getter(model)
    if plan is None:
        for inst in instances:
            _written(inst)
        return
    names, getter = plan
    for inst in instances:
        d = inst.__dict__
        if type(inst) is not model:
            _written(inst)  # a subclass: its own columns
            continue
        try:
            d[ROW] = getter(d)
        except KeyError:  # an attribute unset: the dict form
            _written(inst)
            continue
        d[ROW_ATTRS] = names
        d.pop(ORIGINAL, None)


# The rows of one bulk UPDATE: the attributes it sets (column order), the instances and per
# instance ``(key, *values)``.
_Batch = tuple[tuple[str, ...], list[M], Sequence[tuple[Any, ...]]]
# ``_row_changes``: the dirty instances, their dicts, their rows before the write and the
# values written (one tuple each), and the batches.
_RowChanges = tuple[list[M], list[dict[str, Any]], list[Any], list[Any], list[_Batch[M]]]


async def _update_many(
    model: type[M],
    items: list[M],
    dicts: list[dict[str, Any]],
    exact: bool,
    trx: TransactionClient,
    restore: list[Callable[[], None]],
) -> None:
    """The work of ``update_many`` in its transaction ``trx``: ``dicts[i]`` is the
    ``__dict__`` of ``items[i]``, ``exact`` says all are of ``model`` itself; appends to
    ``restore`` what puts the instances back as they were, before it changes any."""
    info = info_of(model)
    table = info.table
    if info.composite:
        restore.append(_states_kept(dicts))
        # No one-statement bulk UPDATE keyed on several columns: one UPDATE per instance,
        # inside this transaction (hooks as save()).
        for inst in items:
            await save(inst, trx)
        return
    assert table is not None and info.primary_key is not None
    hooks = info.hooks
    pk_attr = info.primary_key
    stamped = [name for name, col in info.timestamps if col.auto_update]
    # No hook to run and a transaction of its own (no savepoint: ``implicit``), which ends
    # before update_many returns: nothing could see the instances bound to it.
    user_code = any(hooks.get(h) for h in ("before:update", "before:save", *_AFTER_UPDATE))
    unseen = trx.parent is None and not user_code
    fast: _RowChanges[M] | None = None
    # Without hooks (``unseen``) nothing but the binding changes an instance before the
    # write, and the binding leaves its columns and row alone: the changes are computed
    # once, here.
    early = unseen and not stamped
    if early:
        plain = _plain(model, dicts)
        with hydration.gc_paused(len(items)):  # a tuple per changed row, no cycles
            fast = _row_changes(model, items, dicts, exact, pk_attr, plain)
        # Binding would change no instance (then it may join ``trx``: ``check_connection``
        # finds each at home there): each of ``plain`` holds its row and columns alone (no
        # transaction, no connection: the model's default), the others are checked.
        if fast is not None and (
            trx.connection_name == default_connection(model)
            if plain
            else bound_as(model, dicts, trx)
        ):
            # The changes were computed before any changed: only the rows written change
            # the instances, and the restore puts those back (no copy of each state). No
            # journal entry either: this root transaction's commit would drop it, and on a
            # failure the restore does what its undo would.
            if fast[0]:  # (dirty, their dicts, their rows before, written, batches)
                await _write_batches(model, info, fast[4], trx)
                restore.append(partial(_consume_rows, fast[1], fast[2]))
                _consume_rows(fast[1], fast[3])
            return
    restore.append(_states_kept(dicts))
    # (E_CROSS_SHARD here for instances that belong to another connection than ``trx``'s.)
    bind(items, trx, unseen=unseen, dicts=dicts)
    if hooks.get("before:update") or hooks.get("before:save"):
        await begun(trx)  # user code runs inside a transaction that has begun
        await _run_each(hooks, "before:update", "before:save", items)
    # As save(): the before hooks may dirty an instance; one that is clean is not written.
    # The changes are computed once per instance (the stamps set below are added to them).
    written: list[Any] | None = None
    dirty_dicts: list[dict[str, Any]] = []
    owns: list[dict[str, tuple[Any, Any]] | None] | None = None
    with hydration.gc_paused(len(items)):  # a dict per changed row, no cycles
        if not (early or stamped):
            fast = _row_changes(model, items, dicts, exact, pk_attr)
        if fast is not None:
            dirty, dirty_dicts, before, written, batches = fast
            plan = _row_getter(model)
            assert plan is not None  # (``_row_changes``: rows in the order of its names)
            originals: list[Any] = list(zip(before, repeat(plan[0])))
        else:
            dirty, changes, originals = _changes(model, items)
    if not dirty:
        return
    if fast is None:
        befores = (
            [{n: inst.__dict__.get(n, ABSENT) for n in stamped} for inst in dirty]
            if stamped
            else []
        )
        stamps = touch_all(model, dirty, False) or {}
        batches = _batches(model, dirty, changes, originals, stamps)
        if stamps:
            owns = [
                {name: (before.get(name, ABSENT), value) for name, (_, value) in stamps.items()}
                for before in befores
            ]
    await _write_batches(model, info, batches, trx)
    updated_batch(trx, dirty, originals, owns)
    if written is not None:
        _consume_rows(dirty_dicts, written)
    else:
        _written_many(model, dirty)
    await _run_each(info.hooks, *_AFTER_UPDATE, dirty)


def _plain(model: type[BaseModel], dicts: list[dict[str, Any]]) -> bool:
    """Whether each of ``dicts`` (instance ``__dict__``s of ``model``) holds one key more than
    the model has columns, as an instance holds when it was hydrated with every column and
    is still as read but for values set: those keys are then its columns and ``ROW`` alone
    once ``_row_changes`` found both in each (no state key: no ``original`` dict, no
    binding). Counted in C, instead of a scan per state key."""
    # (``count`` compares small ints by identity first: twice as fast as ``map(ne, …)``.)
    return list(map(len, dicts)).count(len(model.columns) + 1) == len(dicts)


def _consume_rows(dicts: list[dict[str, Any]], rows: list[Any]) -> None:
    """Make ``rows[i]`` the hydrated ``ROW`` of the instance whose ``__dict__`` is
    ``dicts[i]``, whose ``original`` is that row (``_row_changes``: no ``ORIGINAL``, and
    ``ROW_ATTRS`` absent or the model's columns, which ``rows`` follow)."""
    # (``operator.setitem``: a C function, called about three times as fast as the slot
    # wrapper ``dict.__setitem__``.)
    _consume(map(operator.setitem, dicts, repeat(ROW), rows))


async def _write_batches(
    model: type[M], info: ModelInfo, batches: list[_Batch[M]], trx: TransactionClient
) -> None:
    """Run the bulk UPDATEs of ``batches`` in ``trx``; ``ModelNotFoundError`` for a row
    that is gone."""
    table = info.table
    assert table is not None
    pk_name = pk_column(model)
    prepare = info.prepare_map
    ops = trx.dialect_ops
    for names, instances, rows in batches:
        keys = rows.columns[0] if type(rows) is ColumnRows else [row[0] for row in rows]
        if None in keys:
            pk_value(instances[keys.index(None)], "update")  # raises: the key is not set
        columns = [prepare[k][0] for k in names]
        pairs = [(k, prepare[k][1]) for k in names]
        if any(fn is not None for _, fn in pairs):
            rows = [
                (
                    row[0],
                    *[
                        v if fn is None else fn(v, k, inst)
                        for v, (k, fn) in zip(row[1:], pairs, strict=True)
                    ],
                )
                for row, inst in zip(rows, instances, strict=True)
            ]
        # All rows as a few parameters when the dialect can bind them so (the SQL is then the
        # same for any row count: compiled once), on the driver connection where the dialect
        # has that fast path; else chunks under the parameter limit.
        count = await ops.bulk_update_fast(trx, table, pk_name, columns, rows, model.__name__)
        if count is not None:
            await _check_matched(model, count, rows, trx)
            continue
        bound = ops.bulk_update_bound(table, pk_name, columns, rows, trx.dialect)
        if bound is not None:
            await _run_bulk_update(model, bound, rows, trx)
            continue
        size = ops.bulk_update_parameters(len(columns))
        for start in range(0, len(rows), size):
            chunk = rows[start : start + size]
            stmt = ops.bulk_update_statement(table, pk_name, columns, chunk)
            await _run_bulk_update(model, stmt, chunk, trx)


_AFTER_UPDATE = ("after:update", "after:save")


def _batches(
    model: type[M],
    dirty: list[M],
    changes: list[dict[str, Any]],
    originals: list[Any],
    stamps: dict[str, tuple[Any, Any]],
) -> list[_Batch[M]]:
    """The bulk UPDATEs of ``_changes``' result: the stamps that changed added to each
    instance's changes, then one batch per set of changed attributes."""
    attributes = model.columns
    if stamps:
        for inst, attrs, orig in zip(dirty, changes, originals, strict=True):
            d = inst.__dict__
            before = orig if isinstance(orig, dict) else dict(zip(orig[1], orig[0], strict=False))
            for name in stamps:
                v = d[name]
                o = before.get(name, _MISSING)
                if o is _MISSING or o != v or type(o) is not type(v):
                    attrs[name] = v
    groups: dict[tuple[str, ...], list[int]] = {}
    for i, attrs in enumerate(changes):
        # The changes list the attributes in column order; added stamps may not be.
        names = tuple(k for k in attributes if k in attrs) if stamps else tuple(attrs)
        groups.setdefault(names, []).append(i)
    pk_attr = info_of(model).primary_key
    assert isinstance(pk_attr, str)
    batches: list[_Batch[M]] = []
    for names, indexes in groups.items():
        instances = [dirty[i] for i in indexes]
        if stamps:
            rows = [
                (inst.__dict__.get(pk_attr), *[changes[i][k] for k in names])
                for inst, i in zip(instances, indexes, strict=True)
            ]
        else:
            # ``names`` is ``tuple(attrs)``: the same order.
            rows = [
                (inst.__dict__.get(pk_attr), *changes[i].values())
                for inst, i in zip(instances, indexes, strict=True)
            ]
        batches.append((names, instances, rows))
    return batches


async def _run_bulk_update(
    model: type[M], stmt: Any, rows: Sequence[tuple[Any, ...]], trx: TransactionClient
) -> None:
    """Run one bulk ``UPDATE`` of ``rows`` (``(key, *values)``); a row that is gone (fewer
    rows matched than keys) raises ``ModelNotFoundError`` naming it."""
    result = await trx.execute(stmt, write=True, model=model.__name__)
    await _check_matched(model, result.rowcount, rows, trx)


async def _check_matched(
    model: type[M], matched: int, rows: Sequence[tuple[Any, ...]], trx: TransactionClient
) -> None:
    """``ModelNotFoundError`` naming a row of ``rows`` that is gone, when the bulk ``UPDATE``
    of them matched fewer rows than keys."""
    if matched >= len(rows):
        return  # every key matched (no more distinct keys than rows)
    if matched < len({r[0] for r in rows}):
        table = info_of(model).table
        assert table is not None
        keys = [r[0] for r in rows]
        pk = table.c[pk_column(model)]
        found = await trx.execute(select(pk).where(pk.in_(keys)), write=False)
        present = {r[0] for r in found.rows}
        raise row_gone(model, "update", next(k for k in keys if k not in present))
