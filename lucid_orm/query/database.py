"""``DatabaseQueryBuilder``: the Knex vocabulary over plain tables, returning dicts."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from typing import TYPE_CHECKING, Any

from ..errors import LucidError
from .chainable import Chainable, check_page
from .paginator import SimplePaginator

if TYPE_CHECKING:
    from .cursor import CursorPaginator


class DatabaseQueryBuilder(Chainable):
    """A select query on a table: ``await db.from_("users").where("id", 1)`` → list of dicts.

    Awaiting the builder runs it (same as ``await q.exec()``).
    """

    async def exec(self) -> list[dict[str, Any]]:
        """Run the query; rows come back as plain dicts."""
        result = await self.client.execute(self.to_core(), write=False)
        return result.dicts()

    async def first(self) -> dict[str, Any] | None:
        """The first row (``LIMIT 1``) or ``None``."""
        self.state.limit = 1
        rows = await self.exec()
        return rows[0] if rows else None

    async def paginate(self, page: int, per_page: int = 20) -> SimplePaginator[dict[str, Any]]:
        """One page of rows plus the total: two queries (count, then the page). ``page``
        (from 1) and ``per_page`` must be positive ints: ``E_INVALID_ARGUMENT`` before any
        query otherwise."""
        check_page(page, per_page, "paginate")
        total = await self.count_rows()
        rows = await self.clone().for_page(page, per_page).exec()
        return SimplePaginator(total, per_page, page, rows)

    async def cursor_paginate(
        self, per_page: int = 20, cursor: str | None = None, *, key: str | None = "id"
    ) -> CursorPaginator[dict[str, Any]]:
        """One page by keyset, as the model query's ``cursor_paginate``; ``key`` names the
        unique column appended to the ordering as the tie-breaker (``None``: the ordering is
        unique already). The sort columns must be in the selected rows."""
        tie = [self._col(key)] if key is not None else []
        from .cursor import paginate_by_cursor  # loaded on first use

        return await paginate_by_cursor(self, per_page, cursor, tie, _reader)

    # -- streaming ------------------------------------------------------------------------------
    async def each_chunk(self, size: int) -> AsyncGenerator[list[dict[str, Any]], None]:
        """The rows as lists of at most ``size`` dicts, read with a server-side cursor (see
        the model query's ``stream``)."""
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise LucidError(
                f"each_chunk() expects a positive int, got {size!r}", code="E_INVALID_ARGUMENT"
            )
        batches = self.client.stream(self.to_core(), batch_size=size)
        try:
            async for result in batches:
                yield result.dicts()
        finally:
            await batches.aclose()

    async def stream(self, batch_size: int = 1000) -> AsyncGenerator[dict[str, Any], None]:
        """Iterate over the rows (dicts) in constant memory, ``batch_size`` read at a time."""
        chunks = self.each_chunk(batch_size)
        try:
            async for chunk in chunks:
                for row in chunk:
                    yield row
        finally:
            await chunks.aclose()


def _reader(key: Any) -> Callable[[Any], Any]:
    """Reads the sort value ``key`` back from a row (a dict) of a database query."""
    name = key.name
    return lambda row: row.get(name)
