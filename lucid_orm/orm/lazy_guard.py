"""The N+1 guard (opt-in): flags ``load()``, ``load_count()``/``load_aggregate()`` and
``related(...).query()`` run one instance at a time for instances that came from the same
result set — the loop that ``preload(...)`` on the query would have served in one query.

lucid_orm never loads lazily behind an attribute, so the N+1 pattern can only be written out
by hand (``for user in users: await user.load("posts")``); Eloquent's ``preventLazyLoading``
and SQLAlchemy's ``raiseload`` catch its implicit form. Off by default: a result set is only
tagged while a guard is on, so the hot path pays one context-variable read per query.

    db.configure(url=..., lazy_load_guard="warn")   # LazyLoadWarning, once per relation
    with db.lazy_load_guard("raise"):               # LazyLoadError (tests)
        ...
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

from ..database import db
from ..errors import LazyLoadError, LazyLoadWarning

# The instance-state key (see state.py) holding the ResultSet an instance was read in.
RESULT_SET = "_lucid_result_set"


class ResultSet:
    """What the instances of one query result share: its size and, per relation, the first
    instance that loaded it on its own."""

    __slots__ = ("model", "seen", "size")

    def __init__(self, model: str, size: int) -> None:
        self.model = model
        self.size = size
        self.seen: dict[str, int] = {}


def active() -> str | None:
    """The guard mode in force here (``db.lazy_load_guard_mode``), ``None`` when off."""
    return db.lazy_load_guard_mode


def tag(instances: Sequence[Any]) -> None:
    """Mark the instances of one result set (hydration calls it while a guard is on and the
    result has more than one row)."""
    shared = ResultSet(type(instances[0]).__name__, len(instances))
    for instance in instances:
        instance.__dict__[RESULT_SET] = shared


def check(instance: Any, relations: Sequence[str], how: str) -> None:
    """Before a lazy load of ``relations`` for ``instance``: flag it when another instance of
    the same result set loaded one of them on its own already (once per relation and result
    set in ``"warn"`` mode)."""
    mode = active()
    if mode is None:
        return
    shared: ResultSet | None = instance.__dict__.get(RESULT_SET)
    if shared is None:
        return
    for name in relations:
        first = shared.seen.setdefault(name, id(instance))
        if first == id(instance) or (first == 0 and mode == "warn"):
            continue
        message = (
            f'N+1 query: {how} "{name}" of one {shared.model} at a time, for {shared.size} '
            f'{shared.model} rows read by one query; use preload("{name}") on that query '
            f'(or with_count("{name}") for counts)'
        )
        if mode == "raise":
            raise LazyLoadError(message)
        shared.seen[name] = 0  # warned: once per relation and result set
        warnings.warn(LazyLoadWarning(message), stacklevel=4)
