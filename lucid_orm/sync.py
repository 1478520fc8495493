"""Run lucid_orm from code without an event loop: scripts, Celery tasks, notebooks' plain
cells, Django-style management commands::

    from lucid_orm import sync

    users = sync.run(User.query().where("active", True))
    user = sync.run(User.find(1))
    users = User.query().where("active", True).run_sync()  # the same, on a builder

Each thread gets one event loop, created on first use and reused by its later calls, so the
pooled connections it opens stay bound to it (asyncpg's and asyncmy's connections belong to
the loop that opened them). The engines of that loop are its own: a second thread, or the
application's own loop, never shares or drops them. ``sync.close()`` closes the calling
thread's connections and loop; at interpreter exit the loops still open are closed.

Calling ``run()`` inside a running event loop raises ``LucidError`` (``E_RUNNING_LOOP``):
``await`` there instead. It never blocks a running loop waiting for itself.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import inspect
import os
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

from .database.connection import DEDICATED_LOOPS, dedicate_loop, release_loop, running_loop
from .errors import LucidError

__all__ = ["close", "run"]

T = TypeVar("T")

_local = threading.local()
# Every thread's loop, for the exit hook: thread -> its loop.
_loops: dict[threading.Thread, asyncio.AbstractEventLoop] = {}
_registry_lock = threading.Lock()


def run(awaitable: Awaitable[T]) -> T:
    """Run ``awaitable`` (a coroutine such as ``User.find(1)`` or ``q.paginate(1)``, or a query
    builder) to completion on this thread's event loop and return its result.

    Raises ``LucidError`` (``E_RUNNING_LOOP``) when called inside a running event loop (an
    ``async def``, a Jupyter cell that runs in the kernel's loop): ``await`` the query there.
    """
    if not inspect.isawaitable(awaitable):
        raise LucidError(
            f"lucid_orm.sync.run() takes an awaitable (a query or a coroutine such as "
            f"User.find(1)), got {type(awaitable).__name__}",
            code="E_INVALID_ARGUMENT",
        )
    if running_loop() is not None:
        if inspect.iscoroutine(awaitable):
            # Never run: close it so that Python does not warn it was never awaited.
            awaitable.close()
        raise LucidError(
            "lucid_orm.sync.run() was called inside a running event loop, which it would "
            "have to block: `await` the query there instead (run_sync() and sync.run() are "
            "for code without a loop)",
            code="E_RUNNING_LOOP",
        )
    return _thread_loop().run_until_complete(_completed(awaitable))


async def _completed(awaitable: Awaitable[T]) -> T:
    return await awaitable


def _thread_loop() -> asyncio.AbstractEventLoop:
    """This thread's loop, created (and dedicated: engines of its own) on first use."""
    loop: asyncio.AbstractEventLoop | None = getattr(_local, "loop", None)
    if loop is not None and not loop.is_closed():
        return loop
    # Threads that ended without sync.close() (a thread pool's retired workers) left their
    # loops open: close them now, outside any loop, rather than only at exit.
    _close_loops(lambda thread: not thread.is_alive())
    loop = asyncio.new_event_loop()
    dedicate_loop(loop)
    _local.loop = loop
    with _registry_lock:
        _loops[threading.current_thread()] = loop
    return loop


def close() -> None:
    """Close the connections the calling thread opened through ``run()`` (every configured
    connection's engines of this thread's loop) and the loop itself; a later ``run()`` starts
    afresh. Call it at the end of a worker thread; the main thread's loop is closed at exit.
    The connections stay configured (``db.close()`` closes them for everyone)."""
    if running_loop() is not None:
        raise LucidError(
            "lucid_orm.sync.close() was called inside a running event loop: it closes the "
            "loop of code without one (await db.close() there instead)",
            code="E_RUNNING_LOOP",
        )
    loop: asyncio.AbstractEventLoop | None = getattr(_local, "loop", None)
    _local.loop = None
    with _registry_lock:
        _loops.pop(threading.current_thread(), None)
    if loop is not None and not loop.is_closed():
        _shut(loop)


def _shut(loop: asyncio.AbstractEventLoop) -> None:
    try:
        loop.run_until_complete(release_loop())
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()


def _close_loops(which: Callable[[threading.Thread], bool]) -> None:
    """Close the loops of the threads ``which`` selects (never one that is running)."""
    with _registry_lock:
        ending = [(thread, loop) for thread, loop in _loops.items() if which(thread)]
        for thread, _ in ending:
            del _loops[thread]
    for _, loop in ending:
        if not loop.is_closed() and not loop.is_running():
            # A server gone away must not turn the cleanup (or the exit) into a traceback.
            with contextlib.suppress(Exception):
                _shut(loop)


def _close_at_exit() -> None:
    """Close the loops of this thread and of threads that have ended; a loop of a thread still
    running (a daemon thread) may be in use: it is left alone."""
    current = threading.current_thread()
    _close_loops(lambda thread: thread is current or not thread.is_alive())


atexit.register(_close_at_exit)


def _forget_after_fork() -> None:
    """In a forked child (Celery's prefork pool, multiprocessing's fork): the parent's loops
    and their connections belong to the parent; the child opens its own on first use."""
    global _registry_lock
    _registry_lock = threading.Lock()  # may have been held by another thread at fork time
    _local.loop = None
    _loops.clear()
    DEDICATED_LOOPS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)
