"""A pytest plugin for test isolation (Lucid's ``withGlobalTransaction``): each test that uses
the ``lucid_transaction`` fixture runs inside a global transaction, rolled back afterwards.

Opt in from a ``conftest.py`` (it is not registered automatically)::

    pytest_plugins = ["lucid_orm.testing"]

Needs ``pytest-asyncio``, and the test, the fixture and ``db`` on one event loop (e.g.
``asyncio_default_fixture_loop_scope = "session"`` and ``asyncio_default_test_loop_scope =
"session"``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

try:
    import pytest_asyncio
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("lucid_orm.testing needs pytest-asyncio: pip install pytest-asyncio") from exc

from .database.manager import db
from .database.transaction import TransactionClient
from .errors import LucidError

__all__ = ["lucid_connections", "lucid_transaction"]


@pytest.fixture
def lucid_connections() -> list[str | None]:
    """The connections ``lucid_transaction`` wraps: ``[None]`` (the primary one). Override it
    in a ``conftest.py`` to wrap others::

        @pytest.fixture
        def lucid_connections():
            return ["pg", "mysql"]
    """
    return [None]


@pytest_asyncio.fixture
async def lucid_transaction(
    lucid_connections: list[str | None],
) -> AsyncIterator[TransactionClient]:
    """Run the test inside a global transaction on each of ``lucid_connections`` and roll them
    back afterwards, so nothing it writes survives. Yields the first connection's transaction.

    While it is open every query and model operation on those connections joins it, from any
    task; ``db.transaction()`` opens savepoints inside it. Statements that end transactions on
    their own (MySQL DDL) escape it."""
    if not lucid_connections:
        raise pytest.UsageError("lucid_connections must name at least one connection")
    opened: list[str | None] = []
    try:
        first: TransactionClient | None = None
        for name in lucid_connections:
            trx = await db.begin_global_transaction(name)
            opened.append(name)
            if first is None:
                first = trx
        assert first is not None
        yield first
    finally:
        for name in reversed(opened):
            # The test may have ended it already, or closed or re-configured ``db``.
            try:
                still_open = db.global_transaction(name)
            except LucidError:
                continue
            if still_open is not None:
                await still_open.rollback()
