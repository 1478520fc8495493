"""The binding rule: which client an instance's statements use (``client_for``, the one
resolver), the binding state rows carry from the client that read them, and how bound instances
follow their transaction when it commits, is released into its parent or rolls back. Shards
plug in here: the model's ``shard_for`` routes by shard key, ``db.using()`` scopes the default
connection, and a transaction refuses an instance that belongs to another connection."""

from __future__ import annotations

import operator
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import repeat
from typing import TYPE_CHECKING, Any

from ..database.manager import db
from ..errors import LucidError
from .state import (
    CONN,
    DELETED,
    TRX,
    bound_transaction,
    open_transaction,
    persisted_flags,
    persisted_in,
)

if TYPE_CHECKING:
    from ..database.query_client import Client
    from .base_model import BaseModel

_dict_of = operator.attrgetter("__dict__")
# Runs an iterator to its end (the ``map`` of a C-level setter), keeping nothing.
_consume: Callable[[Iterable[Any]], None] = deque(maxlen=0).extend


def default_connection(model: type[BaseModel]) -> str:
    """The connection ``model`` uses when nothing else is said: its ``connection`` class
    option, else the database's primary connection."""
    return model.connection or db.primary_connection_name


def client_for(
    target: BaseModel | type[BaseModel],
    client: Client | None = None,
    connection: str | None = None,
    *,
    values: Mapping[str, Any] | None = None,
) -> Client:
    """The one resolver: the client a statement for ``target`` runs on.

    An explicit ``client`` wins (a transaction refuses an instance, or ``values``, that
    belong to another connection: ``E_CROSS_SHARD``), then an explicit ``connection`` name. An
    instance then uses the transaction it is bound to while that lasts, else the connection it
    was read or created with (a persisted instance without one: its model's default
    connection). A model class, or a new instance, goes where the model's ``shard_for`` sends
    its shard key (in ``values`` for a class), else to the model's ``connection`` class option,
    else to the connection of the enclosing ``db.using()`` scope, else to the primary one.
    """
    if client is not None:
        if client.is_transaction:
            if isinstance(target, type):
                if values is not None and target.shard_for is not None:
                    _check_home(target, shard_connection(target, values), client, None)
            else:
                _check_home(type(target), home_connection(target), client, target)
        return client
    if connection is not None:
        return db.connection(connection)
    if isinstance(target, type):
        if target.shard_for is not None and values is not None:
            return db.connection(shard_connection(target, values) or target.connection)
        return db.connection(target.connection)
    trx = bound_transaction(target)
    if trx is not None:
        return trx
    d = target.__dict__
    name = d.get(CONN)
    if name is None:
        model = type(target)
        if persisted_in(d) or d.get(DELETED):
            # Read or written on the model's default connection, whatever scope is open now.
            name = default_connection(model)
        elif model.shard_for is not None:
            name = shard_connection(model, d)
        if name is None:
            name = model.connection
    return db.connection(name)


def client_for_new(
    model: type[BaseModel],
    instances: Sequence[BaseModel],
    client: Client | None,
    connection: str | None,
) -> Client:
    """``client_for`` for new ``instances`` written together (``create_many``): routed by
    their shard keys when the model has ``shard_for``, which must agree (``E_CROSS_SHARD``:
    one call per shard)."""
    if client is not None or connection is not None or model.shard_for is None:
        return client_for(model, client, connection)
    names = list(dict.fromkeys(shard_connection(model, inst.__dict__) for inst in instances))
    if len(names) > 1:
        shown = ", ".join(f'"{n}"' if n else "the default connection" for n in names)
        raise LucidError(
            f"Cannot create these {model.__name__} rows together: their shard keys route them "
            f"to {shown}, and one write spans one connection (no cross-shard transactions). "
            "Group them by shard and create each group on its own",
            code="E_CROSS_SHARD",
        )
    return db.connection(names[0] or model.connection)


def search_values(key: str | Mapping[str, Any], value: Any) -> Mapping[str, Any] | None:
    """The attribute values of a ``find_by``-style search (``key``, ``value`` or a dict)."""
    if isinstance(key, Mapping):
        return key
    return {key: value} if isinstance(key, str) else None


def shard_key(model: type[BaseModel]) -> str:
    """The attribute ``shard_for`` routes by: ``shard_key``, else the primary key (the first
    component of a composite one, typically its tenant)."""
    if model.shard_key:
        return model.shard_key
    pk = model.primary_key
    return pk if isinstance(pk, str) else pk[0]


def shard_connection(model: type[BaseModel], values: Mapping[str, Any]) -> str | None:
    """The connection ``model.shard_for`` names for the shard key in ``values`` (attribute
    names to values): ``None`` when the model has no resolver, ``values`` lack the key, or the
    resolver answers ``None``."""
    resolver = model.shard_for
    if resolver is None:
        return None
    key = shard_key(model)
    value = values.get(key)
    if value is None:
        if key not in model.columns:
            raise LucidError(
                f'{model.__name__}.shard_key "{key}" is not a column of the model',
                code="E_INVALID_ARGUMENT",
            )
        return None
    name = resolver(value)
    if name is not None and not isinstance(name, str):
        raise LucidError(
            f"{model.__name__}.shard_for({value!r}) must return a connection name or None, "
            f"got {name!r}",
            code="E_INVALID_ARGUMENT",
        )
    return name


def home_connection(instance: BaseModel) -> str | None:
    """The connection the row of ``instance`` lives on: the one it was read or written with
    (a persisted or deleted instance), or the one its shard key routes a new one to; ``None``
    for a new instance nothing routes (it may go anywhere)."""
    model = type(instance)
    return _home(model, instance.__dict__, model.shard_for is not None)


def _home(model: type[BaseModel], d: dict[str, Any], routed: bool) -> str | None:
    if persisted_in(d) or d.get(DELETED):
        name: str = d.get(CONN) or default_connection(model)
        return name
    return shard_connection(model, d) if routed else None


def _check_home(
    model: type[BaseModel], home: str | None, trx: Client, instance: BaseModel | None
) -> None:
    """Refuse to run a statement for a row of connection ``home`` in transaction ``trx`` of
    another connection: a transaction covers one database (no cross-shard transactions)."""
    if home is None or home == trx.connection_name:
        return
    what = model.__name__
    if instance is not None:
        pk = model.primary_key
        d = instance.__dict__
        key = d.get(pk) if isinstance(pk, str) else tuple(d.get(name) for name in pk)
        what = f"{what} instance" if key is None else f"{what}#{key}"
        how = "belongs to"
    else:
        how = f"is routed by {model.__name__}.shard_for to"
    raise LucidError(
        f'Cannot use {what} in a transaction of connection "{trx.connection_name}": it {how} '
        f'connection "{home}", and a transaction spans one connection (no cross-shard '
        f'transactions). Open the transaction there: db.transaction(connection="{home}")',
        code="E_CROSS_SHARD",
    )


def binding(model: type[BaseModel], client: Client | None) -> dict[str, Any] | None:
    """The binding state that instances read or written through ``client`` carry (``None``
    when they need none: the model's default connection, outside a transaction)."""
    if client is None:
        return None
    out: dict[str, Any] | None = None
    # (``default_connection(model)``, written out: once per hydration.)
    if client.connection_name != (model.connection or db.primary_connection_name):
        out = {CONN: client.connection_name}
    if client.is_transaction:
        out = out or {}
        out[TRX] = client
    return out


def bind(
    instances: Sequence[BaseModel],
    client: Client,
    *,
    checked: bool = False,
    unseen: bool = False,
    dicts: list[dict[str, Any]] | None = None,
) -> None:
    """Bind ``instances`` to the connection of ``client`` and, when it is a transaction, to it
    while it lasts (see ``track``); a transaction refuses instances that belong to another
    connection (``E_CROSS_SHARD``), before any of them changes, unless the caller
    ``checked`` them (``check_connection``; ``client_for`` checks what it resolves for).

    ``unseen``: ``client`` is a root transaction the caller opened for itself and commits or
    rolls back before it returns, running no user code in it (no hooks): when none of
    ``instances`` is bound to a transaction, none is bound to it either, as its end would
    unbind them again with nothing in between to see the binding (their connection is
    still checked and bound).

    ``dicts``: the instances' ``__dict__`` when the caller has them (in order)."""
    if not instances:
        return
    model = type(instances[0])
    name = client.connection_name
    if dicts is None:
        dicts = list(map(_dict_of, instances))
    if client.is_transaction:
        if unseen and not transaction_bound(dicts):
            if not checked:
                check_connection(instances, client, dicts)
        else:
            # First: it checks the instances' connections (before any binding changes).
            bind_transaction(instances, client, checked=checked)
    conn = name if name != default_connection(model) else None
    if conn is not None:
        _consume(map(operator.setitem, dicts, repeat(CONN), repeat(conn)))
    elif any(map(dict.__contains__, dicts, repeat(CONN))):
        for d in dicts:
            d.pop(CONN, None)


def transaction_bound(dicts: Sequence[dict[str, Any]]) -> bool:
    """Whether an instance of these ``__dict__``s is bound to an open transaction (an ended
    transaction's ``TRX`` may remain: bound only while it resolves to an open one,
    ``bound_transaction``)."""
    return any(map(dict.get, dicts, repeat(TRX))) and any(
        map(open_transaction, map(dict.get, dicts, repeat(TRX)))
    )


def bound_as(model: type[BaseModel], dicts: Sequence[dict[str, Any]], client: Client) -> bool:
    """Whether ``bind(instances, client, unseen=True)`` would change none of the instances
    of ``model`` whose ``__dict__``s are ``dicts``: none is bound to an open transaction, and
    each already holds the connection ``bind`` would store (none for the model's default).
    Persisted instances so bound are at home on ``client``'s connection: ``check_connection``
    would pass them."""
    if transaction_bound(dicts):
        return False
    name = client.connection_name
    conns = map(dict.get, dicts, repeat(CONN))
    if name != default_connection(model):
        return all(map(operator.eq, conns, repeat(name)))
    return not any(map(dict.__contains__, dicts, repeat(CONN)))


def check_connection(
    instances: Sequence[BaseModel],
    trx: Client,
    dicts: Sequence[dict[str, Any]] | None = None,
) -> None:
    """``E_CROSS_SHARD`` unless every instance may join transaction ``trx``: the rows of
    persisted ones, and the shard keys of new ones, belong to its connection. ``dicts``: the
    instances' ``__dict__`` when the caller has them."""
    name = trx.connection_name
    model = type(instances[0])
    routed = model.shard_for is not None
    # ``_home`` inlined for persisted rows (the common case of a bulk write), the model's
    # default connection looked up once.
    default = default_connection(model)
    if dicts is None:
        dicts = list(map(_dict_of, instances))
    if all(persisted_flags(dicts)):
        # All persisted (a bulk update): their homes are the few distinct connections they
        # were read with, checked at once (in C); the loop below names one that differs.
        homes = {conn or default for conn in set(map(dict.get, dicts, repeat(CONN)))}
        if homes <= {name}:
            return
    for inst in instances:
        d = inst.__dict__
        if persisted_in(d) or d.get(DELETED):
            home: str | None = d.get(CONN) or default
        else:
            home = shard_connection(model, d) if routed else None
        if home is not None and home != name:
            _check_home(model, home, trx, inst)


def bind_transaction(instances: Sequence[BaseModel], trx: Any, *, checked: bool = False) -> None:
    """Bind ``instances`` to ``trx`` while it lasts (``use_transaction``), remembering the
    transaction each had before for a rollback (see ``track``). ``E_CROSS_SHARD`` when one
    belongs to another connection than ``trx``'s (``check_connection``)."""
    if instances and not checked:
        check_connection(instances, trx)
    dicts = list(map(_dict_of, instances))
    currents = list(map(dict.get, dicts, repeat(TRX)))
    if currents.count(None) == len(dicts):
        # The common case (none bound to a transaction yet): no previous one to remember.
        _consume(map(operator.setitem, dicts, repeat(TRX), repeat(trx)))
        if dicts:
            track(trx, list(instances))
        return
    if all(map(operator.is_, currents, repeat(trx))):
        return  # all bound to it already (a relation's write binds, then the bulk insert)
    models: list[BaseModel] = []
    previous: list[Any] = []
    for inst in instances:
        d = inst.__dict__
        current = open_transaction(d.get(TRX))
        if current is trx:
            continue  # bound to it already (through a savepoint released into it, maybe)
        models.append(inst)
        previous.append(current)
        d[TRX] = trx
    if models:
        track(trx, models, previous)


def track(trx: Any, models: list[Any], previous: list[Any] | None = None) -> None:
    """Keep ``models`` (now bound to ``trx``) truthful when ``trx`` ends: a root commit unbinds
    them; a released savepoint hands them to the enclosing transaction, which they now belong
    to; a rollback gives them back their previous transaction (``previous[i]``) while that is
    still open."""

    def committed() -> None:
        parent = getattr(trx, "parent", None)
        if parent is None or parent.is_completed:
            # A root commit (or an orphaned savepoint's): all unbound (in C when all are
            # still bound to it, as they usually are).
            dicts = list(map(_dict_of, models))
            if all(map(operator.is_, map(dict.get, dicts, repeat(TRX)), repeat(trx))):
                _consume(map(operator.delitem, dicts, repeat(TRX)))
                return
            for d in dicts:
                if d.get(TRX) is trx:
                    del d[TRX]
            return
        moved: list[Any] = []
        before: list[Any] = []
        for i, m in enumerate(models):
            d = m.__dict__
            if d.get(TRX) is not trx:
                continue
            d[TRX] = parent
            prev = previous[i] if previous is not None else None
            if prev is not parent:
                moved.append(m)
                before.append(prev)
        if moved:
            track(parent, moved, before)

    def rolled_back() -> None:
        for i, m in enumerate(models):
            d = m.__dict__
            if d.get(TRX) is not trx:
                continue
            prev = open_transaction(previous[i]) if previous is not None else None
            if prev is not None:
                d[TRX] = prev
            else:
                del d[TRX]

    trx.after("commit", committed)
    trx.after("rollback", rolled_back)
