"""What an ended transaction keeps alive. Instances read in a transaction keep it as their
``TRX`` for as long as they live (state.py's ``open_transaction`` resolves it when asked), so the
ended transaction must not hold what ended it: a conflict error, whose traceback holds the frames
of the code that ran in it and every local of theirs. Real deadlocks (PostgreSQL ``40P01``,
MySQL/MariaDB ``1213``); SQLite's transactions queue instead of conflicting."""

from __future__ import annotations

import asyncio
import gc
import weakref
from typing import Any

import pytest

from lucid_orm import Database, TransactionClient, TransactionConflictError, db
from lucid_orm.orm.state import bound_transaction
from tests.models import Thing

# A guard against a hang if a conflict were never detected (not a timing assertion).
_HANG = 60


async def _deadlock(kept: list[Thing], swallow: bool) -> list[Any]:
    """Two transactions lock two rows in opposite orders, each first reading its rows as
    instances (bound to it) into ``kept``; the server rolls one back. ``swallow``: the victim's
    callback catches the conflict (its commit then refuses with an error of its own)."""
    ids = [(await Thing.create({"name": f"lock-{i}", "amount": 0})).id for i in range(2)]
    holding = [asyncio.Event(), asyncio.Event()]

    async def cross(trx: TransactionClient, me: int) -> None:
        first, second = ids if me == 0 else ids[::-1]
        kept.extend(await Thing.query(client=trx).where_in("id", ids))
        await trx.from_("things").where("id", first).increment("amount")
        holding[me].set()
        await holding[1 - me].wait()
        await trx.from_("things").where("id", second).increment("amount")

    async def body(trx: TransactionClient, me: int) -> None:
        try:
            await cross(trx, me)
        except TransactionConflictError:
            if not swallow:
                raise

    async def task(me: int) -> Any:
        return await db.transaction(lambda trx: body(trx, me))

    gathered = asyncio.gather(task(0), task(1), return_exceptions=True)
    return list(await asyncio.wait_for(gathered, _HANG))


@pytest.mark.parametrize("swallow", [False, True], ids=["raised", "swallowed"])
async def test_instances_read_in_a_transaction_do_not_keep_its_conflict_alive(
    database: Database, dialect: str, swallow: bool
) -> None:
    if dialect == "sqlite":
        pytest.skip("SQLite transactions begin IMMEDIATE: one writer at a time, no conflicts")
    kept: list[Thing] = []
    results = await _deadlock(kept, swallow)
    errors = [r for r in results if isinstance(r, TransactionConflictError)]
    assert len(errors) == 1, results
    # The conflict the server raised: the error itself, or what the refused commit names as
    # its cause.
    conflict = errors[0].__cause__ if swallow else errors[0]
    assert isinstance(conflict, TransactionConflictError)
    gone = weakref.ref(conflict)
    del results, errors, conflict
    gc.collect()
    # Both transactions' instances live on, unbound (their transactions ended) ...
    assert len(kept) == 4
    assert all(bound_transaction(thing) is None for thing in kept)
    # ... and nothing of theirs holds the conflict.
    assert gone() is None
