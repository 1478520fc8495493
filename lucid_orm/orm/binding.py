"""The binding rule: which client an instance's statements use (``client_for``, the one
resolver), the binding state rows carry from the client that read them, and how bound instances
follow their transaction when it commits, is released into its parent or rolls back."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..database.manager import db
from .state import CONN, TRX, bound_transaction

if TYPE_CHECKING:
    from ..database.query_client import Client
    from .base_model import BaseModel


def default_connection(model: type[BaseModel]) -> str:
    """The connection ``model`` uses when nothing else is said: its ``connection`` class
    option, else the database's primary connection."""
    return model.connection or db.primary_connection_name


def client_for(
    target: BaseModel | type[BaseModel],
    client: Client | None = None,
    connection: str | None = None,
) -> Client:
    """The one resolver: the client a statement for ``target`` runs on.

    An explicit ``client`` wins, then an explicit ``connection`` name; an instance then uses
    the transaction it is bound to while that lasts, else the connection it was read or created
    with; a model class (or an unbound instance) uses its default connection.
    """
    if client is not None:
        return client
    if connection is not None:
        return db.connection(connection)
    if isinstance(target, type):
        return db.connection(target.connection)
    trx = bound_transaction(target)
    if trx is not None:
        return trx
    return db.connection(target.__dict__.get(CONN) or type(target).connection)


def binding(model: type[BaseModel], client: Client | None) -> dict[str, Any] | None:
    """The binding state that instances read or written through ``client`` carry (``None``
    when they need none: the model's default connection, outside a transaction)."""
    if client is None:
        return None
    out: dict[str, Any] | None = None
    if client.connection_name != default_connection(model):
        out = {CONN: client.connection_name}
    if client.is_transaction:
        out = out or {}
        out[TRX] = client
    return out


def bind(instances: Sequence[BaseModel], client: Client) -> None:
    """Bind ``instances`` to the connection of ``client`` and, when it is a transaction, to it
    while it lasts (see ``track``)."""
    if not instances:
        return
    model = type(instances[0])
    name = client.connection_name
    conn = name if name != default_connection(model) else None
    for inst in instances:
        d = inst.__dict__
        if conn is not None:
            d[CONN] = conn
        elif CONN in d:
            del d[CONN]
    if client.is_transaction:
        bind_transaction(instances, client)


def bind_transaction(instances: Sequence[BaseModel], trx: Any) -> None:
    """Bind ``instances`` to ``trx`` while it lasts (``use_transaction``), remembering the
    transaction each had before for a rollback (see ``track``)."""
    models: list[BaseModel] = []
    previous: list[Any] = []
    for inst in instances:
        d = inst.__dict__
        current = d.get(TRX)
        if current is trx:
            continue
        models.append(inst)
        previous.append(current if current is not None and not current.is_completed else None)
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
        moved: list[Any] = []
        before: list[Any] = []
        for i, m in enumerate(models):
            d = m.__dict__
            if d.get(TRX) is not trx:
                continue
            if parent is None or parent.is_completed:
                del d[TRX]
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
            prev = previous[i] if previous is not None else None
            if prev is not None and not prev.is_completed:
                d[TRX] = prev
            else:
                del d[TRX]

    trx.after("commit", committed)
    trx.after("rollback", rolled_back)
