"""Kept for ``BaseModel._insert_many`` until it asks the dialect itself: the multi-row
``INSERT … RETURNING`` of SQLite lives in ``dialects/sqlite.py`` (``insert_many_returning``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy.sql import TableClause

from .dialects.base import Key, Rows
from .dialects.sqlite import RETURNING

if TYPE_CHECKING:
    from .transaction import TransactionClient

__all__ = ["RETURNING", "insert_keys"]


async def insert_keys(
    trx: TransactionClient, table: TableClause, params: Rows, key: Key, model: str | None
) -> list[Any]:
    """``trx.dialect_ops.insert_many_returning(...)``: one row ``(key,)`` per dict of
    ``params``, in ``params`` order."""
    return await trx.dialect_ops.insert_many_returning(trx, table, params, key, model)
