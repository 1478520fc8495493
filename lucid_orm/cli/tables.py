"""Whole-database chores behind ``db:wipe`` and ``db:truncate`` (Lucid's dialect
``dropAllTables``/``truncate``): the tables are reflected, never assumed; the dialect
(``database/dialects``) does the work."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager

from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection

from ..database import db
from ..database.dialects.base import table_names as reflected_table_names
from ..database.query_client import connect_error, wrap_error


@asynccontextmanager
async def _begin(connection: str | None) -> AsyncIterator[AsyncConnection]:
    """A transaction on the write side of ``connection``; driver errors become
    ``LucidError``s."""
    try:
        async with db.engine(connection).begin() as conn:
            yield conn
    except sa_exc.DBAPIError as exc:
        raise wrap_error(exc) from exc
    except (OSError, sa_exc.TimeoutError) as exc:
        raise connect_error(db.get_connection(connection), exc) from exc


async def table_names(connection: str | None = None) -> list[str]:
    """The tables of ``connection``'s default schema, sorted by name."""
    async with _begin(connection) as conn:
        return sorted(await conn.run_sync(reflected_table_names))


async def drop_all_tables(connection: str | None = None) -> list[str]:
    """Drop every table of ``connection``'s default schema (foreign keys included, cycles
    too); returns the names dropped, sorted."""
    ops = db.get_connection(connection).dialect_ops
    async with _begin(connection) as conn:
        return sorted(await conn.run_sync(ops.drop_all_tables))


async def truncate_all_tables(
    connection: str | None = None, *, keep: Collection[str] = ()
) -> list[str]:
    """Delete every row of every table but those in ``keep`` and restart their identity
    sequences; returns the names truncated."""
    ops = db.get_connection(connection).dialect_ops
    async with _begin(connection) as conn:
        return await conn.run_sync(ops.truncate_all_tables, keep)
