"""``run_sync()``: the builders' way into ``lucid_orm.sync`` for code without an event loop."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


class RunSync:
    """Mixin of the awaitable query builders: ``q.run_sync()`` is ``sync.run(q)``."""

    __slots__ = ()

    def run_sync(self: Awaitable[T]) -> T:
        """Run the query without an event loop (scripts, Celery tasks) and return what
        awaiting it returns: ``User.query().where("active", True).run_sync()``. Uses the
        calling thread's loop of ``lucid_orm.sync``; raises ``LucidError`` (``E_RUNNING_LOOP``)
        inside a running event loop, where the query is awaited instead."""
        from ..sync import run  # the tooling floor: imported on use

        return run(self)
