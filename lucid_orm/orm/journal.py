"""The write journal: how instances follow the database when the transaction that wrote them
rolls back. Each transaction keeps the undo entries of the instance writes that ran in it."""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .state import DELETED, ORIGINAL, PERSISTED, ROW, ROW_ATTRS, drop_row

if TYPE_CHECKING:
    from .base_model import BaseModel

# "No value": an attribute that was absent before a write.
ABSENT: Any = object()

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
    a batch of created, bulk-updated or upserted instances."""

    __slots__ = ("generated", "instances", "kind", "original", "stamps")

    def __init__(
        self,
        kind: str,
        instances: Sequence[BaseModel],
        original: Any = None,
        stamps: Any = None,
        generated: Any = None,
    ) -> None:
        self.kind = kind
        self.instances = instances
        # update: the ``original`` dict before the write (update_many: one per instance)
        self.original = original
        # attribute -> (value before the write or ABSENT, value the write set); for
        # "update_many" one such dict (or None) per instance, or None; for "upsert" one
        # (or None) per instance
        self.stamps = stamps
        # create: the key attribute and, per instance, whether the database made its key;
        # upsert: the key attribute, per instance whether its row was inserted (None: the
        # database can't tell) and whether the database made its key
        self.generated = generated

    def undo(self) -> None:
        stamps = self.stamps
        if self.kind == "delete":
            for inst in self.instances:
                inst.__dict__.pop(DELETED, None)
            return
        if self.kind == "update":
            d = self.instances[0].__dict__
            d[ORIGINAL] = self.original
            drop_row(d)
            _restore(d, stamps)
            return
        if self.kind == "update_many":
            # A bulk update: per instance its ``original`` before the write and its stamps
            # (each instance once: their order does not matter).
            per_stamps = self.stamps
            for i, (inst, original) in enumerate(zip(self.instances, self.original, strict=True)):
                d = inst.__dict__
                if type(original) is tuple:
                    # It was still the hydrated row: put that back.
                    d.pop(ORIGINAL, None)
                    d[ROW], d[ROW_ATTRS] = original
                else:
                    d[ORIGINAL] = original
                    drop_row(d)
                if per_stamps is not None:
                    _restore(d, per_stamps[i])
            return
        if self.kind == "upsert":
            # Per instance: whether its row was inserted (``None``: unknown, as updated), the
            # database made its key, its stamps.
            pk, inserted, made = self.generated
            for i, inst in enumerate(self.instances):
                d = inst.__dict__
                if inserted is not None and inserted[i]:
                    _uncreate(d, pk, made[i])
                else:
                    # The row holds its values from before the upsert again (or is gone,
                    # inserted where the database can't tell): which those are is unknown,
                    # so every attribute reads as changed and a save writes them all.
                    drop_row(d)
                    d.pop(ROW_ATTRS, None)
                    d[ORIGINAL] = {}
                _restore(d, stamps[i])
            return
        pk, made = self.generated
        for i, inst in enumerate(self.instances):
            d = inst.__dict__
            _uncreate(d, pk, made[i])
            _restore(d, stamps)


def _uncreate(d: dict[str, Any], pk: str, made: bool) -> None:
    """Make the instance whose ``__dict__`` is ``d`` new again, without the key the database
    made for it (``made``)."""
    d[PERSISTED] = False
    d[ORIGINAL] = {}
    d.pop(ROW, None)
    if made:
        d.pop(pk, None)


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


def unstamp(instances: Sequence[BaseModel], stamps: dict[str, tuple[Any, Any]] | None) -> None:
    """Put back what ``touch_all`` stamped on ``instances`` (``stamps``, its answer) for a
    write that did not happen, unless changed since."""
    if stamps:
        for inst in instances:
            _restore(inst.__dict__, stamps)


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


def updated_batch(
    trx: Any,
    instances: Sequence[BaseModel],
    originals: Sequence[Any],
    stamps: Sequence[dict[str, tuple[Any, Any]] | None] | None,
) -> None:
    """Journal a bulk update of ``instances`` (distinct) as one entry: ``originals[i]`` the
    ``original`` of ``instances[i]`` before the write (its dict, or ``(row, names)`` when it
    was the hydrated row, state.py's ``ROW``/``ROW_ATTRS``), ``stamps[i]`` its stamped values
    (``None``: no stamps)."""
    record(trx, _Entry("update_many", list(instances), original=list(originals), stamps=stamps))


def upserted(
    trx: Any,
    instances: Sequence[BaseModel],
    pk: str,
    inserted: Sequence[bool] | None,
    generated: Sequence[bool],
    stamps: Sequence[dict[str, tuple[Any, Any]] | None],
) -> None:
    """Journal an upsert that returned ``instances`` (distinct) as one entry: ``inserted[i]``
    whether it inserted the row of ``instances[i]`` (``None``: the database can't tell),
    ``generated[i]`` whether the database made its key, ``stamps[i]`` the stamped values.
    A rollback makes an inserted row's instance new again (as a create's undo) and leaves
    the others persisted with an empty ``original``: every attribute dirty. The sequences
    are kept as they are (the caller's own lists: no copy of a large batch)."""
    record(trx, _Entry("upsert", instances, stamps=stamps, generated=(pk, inserted, generated)))


def deleted(trx: Any, instance: BaseModel) -> None:
    """Journal the delete of ``instance``."""
    record(trx, _Entry("delete", [instance]))
