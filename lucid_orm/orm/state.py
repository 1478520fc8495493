"""The instance-state protocol: the ``__dict__`` keys a model instance keeps besides its column
values, as named constants, and the accessors every module uses to read or write them."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import repeat
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..database.transaction import TransactionClient

# The keys live in the instance ``__dict__`` (no slotted state object): hydration stores them
# with one subscript each in its generated loop, which costs nothing per row beyond the column
# values themselves. They start with ``_lucid_`` so that no column attribute can clash.

PERSISTED = "_lucid_persisted"  # whether the row exists (fetched or saved); absent on a
# hydrated instance, which its ROW says is persisted (one store less per row, about 3.5% of a
# stream's time): read through ``persisted_in``/``persisted_flags``, never directly
DELETED = "_lucid_deleted"  # True after delete(): the instance refuses mutation
LOCAL = "_lucid_local"  # True for instances made in code, absent for fetched ones
ORIGINAL = "_lucid_original"  # attribute values as last read/written (built lazily, see ROW)
ROW = "_lucid_row"  # hydration's column values, in result order: ORIGINAL on first use
ROW_ATTRS = "_lucid_row_attrs"  # the attribute names of ROW's values; absent beside ROW:
# the model's columns in declaration order (rows of a query without select(): one store less)
EXTRAS = "_lucid_extras"  # selected values that are not columns (aggregates, pivot columns):
# a dict, or as hydrated lazily the ``LazyExtras`` of the result shape (where each extra is in
# the row kept under EXTRAS_ROW), read into a dict on first use (``extras_of``)
EXTRAS_ROW = "_lucid_extras_row"  # the result row lazy extras are read from
SIDELOADED = "_lucid_sideloaded"  # values handed down by query.sideload()
CONN = "_lucid_conn"  # the connection name it was read/written with, when not the default
TRX = "_lucid_trx"  # the transaction it is bound to (Lucid's ``$trx``), while that lasts:
# read through ``bound_transaction``/``open_transaction`` (an ended one may still be here)

_NO_VALUES: dict[str, Any] = {}


class LazyExtras:
    """The extras of one result shape as hydration keeps them (``EXTRAS``): ``positions``
    maps each name to its index in the instance's ``EXTRAS_ROW``. One object per shape,
    shared by its instances, so lazy extras cost an instance no object of its own (a
    preload's thousands of pivot rows would each keep one for nobody)."""

    __slots__ = ("positions",)

    def __init__(self, positions: dict[str, int]) -> None:
        self.positions = positions


def persisted_in(d: dict[str, Any]) -> bool:
    """Whether the row of the instance whose ``__dict__`` is ``d`` exists (fetched or saved):
    its ``PERSISTED`` when set, else whether it holds a hydrated ``ROW`` (hydration leaves
    ``PERSISTED`` out; every other writer sets it, and ``drop_row`` keeps it when the row
    goes)."""
    found = d.get(PERSISTED)
    if found is None:
        return ROW in d
    return bool(found)


def persisted_flags(dicts: Sequence[dict[str, Any]]) -> Iterator[Any]:
    """``persisted_in`` of each of ``dicts``, in C: for ``all(...)`` over a batch."""
    return map(dict.get, dicts, repeat(PERSISTED), map(dict.__contains__, dicts, repeat(ROW)))


def is_persisted(instance: Any) -> bool:
    """Whether the row of ``instance`` exists (fetched or saved)."""
    return persisted_in(instance.__dict__)


def drop_row(d: dict[str, Any]) -> Any:
    """Remove the hydrated ``ROW`` of the instance whose ``__dict__`` is ``d`` (its
    ``original`` is held otherwise now) and return it (``None``: there was none), stating
    ``PERSISTED`` in its place when absent: without the row, ``persisted_in`` would read a
    fetched instance as new."""
    row = d.pop(ROW, None)
    if row is not None and PERSISTED not in d:
        d[PERSISTED] = True
    return row


def is_deleted(instance: Any) -> bool:
    """Whether ``delete()`` removed the row of ``instance``."""
    return bool(instance.__dict__.get(DELETED, False))


def original_of(instance: Any) -> dict[str, Any]:
    """The ``original`` dict of ``instance`` itself (not a copy): built from the hydrated row on
    first use, ``{}`` for a new instance."""
    d = instance.__dict__
    found: dict[str, Any] | None = d.get(ORIGINAL)
    if found is None:
        row = drop_row(d)
        if row is None:
            return {}
        names = d.pop(ROW_ATTRS, None)
        if names is None:
            names = type(instance).columns
        found = d[ORIGINAL] = dict(zip(names, row, strict=False))
    return found


def dirty_of(instance: Any, columns: Any) -> dict[str, Any]:
    """The set ``columns`` of ``instance`` that differ from ``original`` (by value or type);
    every set one for a new instance."""
    d = instance.__dict__
    persisted = persisted_in(d)
    orig = original_of(instance)
    out: dict[str, Any] = {}
    for k in columns:
        if k not in d:
            continue
        v = d[k]
        if not persisted or k not in orig or orig[k] != v or type(orig[k]) is not type(v):
            out[k] = v
    return out


def set_original(instance: Any, values: dict[str, Any]) -> None:
    """Make ``values`` the ``original`` of ``instance`` (after a write or a refresh)."""
    d = instance.__dict__
    d[ORIGINAL] = values
    drop_row(d)


def extras_of(instance: Any) -> dict[str, Any]:
    """The extras of ``instance`` for reading (a shared empty dict when it has none)."""
    found: Any = instance.__dict__.get(EXTRAS)
    if found is None:
        return _NO_VALUES
    if type(found) is LazyExtras:
        return _read_extras(instance.__dict__, found)
    return found  # type: ignore[no-any-return]


def extra_value(d: dict[str, Any], name: str) -> Any:
    """The extra ``name`` of the instance whose ``__dict__`` is ``d``, without building its
    extras dict: ``None`` when absent."""
    found: Any = d.get(EXTRAS)
    if found is None:
        return None
    if type(found) is LazyExtras:
        at = found.positions.get(name)
        return d[EXTRAS_ROW][at] if at is not None else None
    return found.get(name)


def _read_extras(d: dict[str, Any], lazy: LazyExtras) -> dict[str, Any]:
    """The lazy extras ``lazy`` of the instance whose ``__dict__`` is ``d`` read into their
    dict, which replaces them."""
    row = d[EXTRAS_ROW]
    found = d[EXTRAS] = {k: row[i] for k, i in lazy.positions.items()}
    del d[EXTRAS_ROW]
    return found


def own_dict(instance: Any, key: str) -> dict[str, Any]:
    """The dict kept under ``key`` (``EXTRAS``, ``SIDELOADED``), created on first use."""
    d = instance.__dict__
    found: Any = d.get(key)
    if found is None:
        found = d[key] = {}
    elif type(found) is LazyExtras:  # the lazy extras, as hydrated
        found = _read_extras(d, found)
    return found  # type: ignore[no-any-return]


def set_sideloaded(instance: Any, values: dict[str, Any]) -> None:
    """Hand ``values`` down to ``instance`` (``query.sideload``)."""
    instance.__dict__[SIDELOADED] = values


def sideloaded_of(instance: Any) -> dict[str, Any] | None:
    """The sideloaded values of ``instance``, or ``None``."""
    found: dict[str, Any] | None = instance.__dict__.get(SIDELOADED)
    return found


def bound_transaction(instance: Any) -> TransactionClient | None:
    """The transaction ``instance`` is bound to while it is open, else ``None``: its ``TRX``
    as ``open_transaction`` resolves it (the one reader of ``TRX`` as a binding)."""
    return open_transaction(instance.__dict__.get(TRX))


def open_transaction(trx: TransactionClient | None) -> TransactionClient | None:
    """The open transaction an instance whose ``TRX`` is ``trx`` belongs to now: ``trx``
    while it is open; once it ended, the transaction it was released into (a savepoint that
    committed hands its instances to its parent, and so on up while those committed too);
    ``None`` after a rollback or a root's commit.

    Hydration binds the instances it reads in a transaction this way only, with no
    ``after()`` hook per query to move them when it ends (``binding.track``, which writes
    keep: a rollback gives a written instance back its earlier binding): a stream inside a
    transaction then holds none of them past the loop body."""
    while trx is not None and trx.is_completed:
        # ``_committed``: COMMIT (RELEASE for a savepoint) succeeded, set before completion.
        trx = trx.parent if trx._committed else None
    return trx
