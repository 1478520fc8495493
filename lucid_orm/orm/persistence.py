"""Which client an instance's statements use (the binding rule), and how instances follow the
database when the transaction that wrote them rolls back (the write journal)."""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..database.manager import db

if TYPE_CHECKING:
    from ..database.query_client import Client
    from .base_model import BaseModel

# Instance ``__dict__`` keys of the binding (Lucid's ``$options.connection`` and ``$trx``).
CONN = "_lucid_conn"
TRX = "_lucid_trx"

# "No value": an attribute that was absent before a write.
ABSENT: Any = object()


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
    d = target.__dict__
    trx = d.get(TRX)
    if trx is not None and not trx.is_completed:
        return trx  # type: ignore[no-any-return]
    return db.connection(d.get(CONN) or type(target).connection)


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


# -- the write journal -------------------------------------------------------------------------
# Each transaction keeps the undo entries of the instance writes that ran in it. A rollback
# applies them newest first, so an instance created and then updated in one transaction ends up
# as it was before the create. A released savepoint hands its entries to the enclosing
# transaction, whose later rollback undoes them too; a root commit drops them.


class _Journal:
    __slots__ = ("entries", "trx")

    def __init__(self, trx: Any) -> None:
        self.trx = trx
        self.entries: list[_Entry] = []


_journals: weakref.WeakKeyDictionary[Any, _Journal] = weakref.WeakKeyDictionary()


class _Entry:
    """Undo information for one write of one instance (``instances`` has one element) or of
    a batch of created instances."""

    __slots__ = ("generated", "instances", "kind", "original", "stamps")

    def __init__(
        self,
        kind: str,
        instances: Sequence[BaseModel],
        original: Any = None,
        stamps: dict[str, tuple[Any, Any]] | None = None,
        generated: Any = None,
    ) -> None:
        self.kind = kind
        self.instances = instances
        # update: the ``original`` dict before the write
        self.original = original
        # attribute -> (value before the write or ABSENT, value the write set)
        self.stamps = stamps
        # create: the key attribute and, per instance, whether the database made its key
        self.generated = generated

    def undo(self) -> None:
        stamps = self.stamps
        if self.kind == "delete":
            for inst in self.instances:
                inst.__dict__.pop("_lucid_deleted", None)
            return
        if self.kind == "update":
            d = self.instances[0].__dict__
            d["_lucid_original"] = self.original
            d.pop("_lucid_row", None)
            _restore(d, stamps)
            return
        pk, made = self.generated
        for i, inst in enumerate(self.instances):
            d = inst.__dict__
            d["_lucid_persisted"] = False
            d["_lucid_original"] = {}
            d.pop("_lucid_row", None)
            if made[i]:
                d.pop(pk, None)
            _restore(d, stamps)


def _restore(d: dict[str, Any], stamps: dict[str, tuple[Any, Any]] | None) -> None:
    """Put back the values a write stamped (timestamps), unless changed since."""
    if not stamps:
        return
    for name, (before, written) in stamps.items():
        if d.get(name, ABSENT) is written:
            if before is ABSENT:
                d.pop(name, None)
            else:
                d[name] = before


def record(trx: Any, entry: _Entry) -> None:
    """Keep ``entry`` to undo if ``trx`` (or a transaction enclosing it) rolls back."""
    journal = _journals.get(trx)
    if journal is None:
        journal = _journals[trx] = _Journal(trx)
        trx.after("commit", lambda: _committed(journal))
        trx.after("rollback", lambda: _rolled_back(journal))
    journal.entries.append(entry)


def _committed(journal: _Journal) -> None:
    parent = getattr(journal.trx, "parent", None)
    entries, journal.entries = journal.entries, []
    if parent is not None and not parent.is_completed:
        for entry in entries:
            record(parent, entry)


def _rolled_back(journal: _Journal) -> None:
    entries, journal.entries = journal.entries, []
    for entry in reversed(entries):
        entry.undo()


def created(
    trx: Any,
    instances: Sequence[BaseModel],
    pk: str,
    generated: Sequence[bool],
    stamps: dict[str, tuple[Any, Any]] | None,
) -> None:
    """Journal the insert of ``instances`` (``generated[i]``: the database made the key)."""
    record(trx, _Entry("create", instances, stamps=stamps, generated=(pk, generated)))


def updated(
    trx: Any, instance: BaseModel, original: Any, stamps: dict[str, tuple[Any, Any]] | None
) -> None:
    """Journal the update of ``instance`` whose ``original`` was ``original`` before it."""
    record(trx, _Entry("update", [instance], original=original, stamps=stamps))


def deleted(trx: Any, instance: BaseModel) -> None:
    """Journal the delete of ``instance``."""
    record(trx, _Entry("delete", [instance]))
