"""Whole-database chores behind ``db:wipe`` and ``db:truncate`` (Lucid's dialect
``dropAllTables``/``truncate``): the tables are reflected, never assumed."""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection as SyncConnection
from sqlalchemy.ext.asyncio import AsyncConnection

from ..database import db
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


def _reflect(conn: SyncConnection) -> sa.MetaData:
    metadata = sa.MetaData()
    with warnings.catch_warnings():
        # Unknown column types and unsortable foreign-key cycles are fine for dropping.
        warnings.simplefilter("ignore", sa_exc.SAWarning)
        metadata.reflect(conn)
    return metadata


def _in_drop_order(metadata: sa.MetaData) -> list[sa.Table]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sa_exc.SAWarning)
        return list(reversed(metadata.sorted_tables))


async def table_names(connection: str | None = None) -> list[str]:
    """The tables of ``connection``'s default schema, sorted by name."""
    async with _begin(connection) as conn:
        return sorted(await conn.run_sync(lambda c: sa.inspect(c).get_table_names()))


async def drop_all_tables(connection: str | None = None) -> list[str]:
    """Drop every table of ``connection``'s default schema (foreign keys included, cycles
    too); returns the names dropped."""

    def drop(conn: SyncConnection) -> list[str]:
        metadata = _reflect(conn)
        if conn.dialect.name == "sqlite":
            # Checked at COMMIT, when no table is left to violate them.
            conn.exec_driver_sql("PRAGMA defer_foreign_keys = ON")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", sa_exc.SAWarning)
            metadata.drop_all(conn)
        return sorted(metadata.tables)

    async with _begin(connection) as conn:
        return await conn.run_sync(drop)


async def truncate_all_tables(
    connection: str | None = None, *, keep: Collection[str] = ()
) -> list[str]:
    """Delete every row of every table but those in ``keep`` and restart their identity
    sequences; returns the names truncated."""

    def truncate(conn: SyncConnection) -> list[str]:
        metadata = _reflect(conn)
        tables = [t for t in _in_drop_order(metadata) if t.name not in keep]
        if not tables:
            return []
        dialect = conn.dialect.name
        # TRUNCATE has no Core construct: table names come from reflection, quoted by the
        # dialect.
        quote = conn.dialect.identifier_preparer.format_table
        if dialect == "postgresql":
            names = ", ".join(quote(t) for t in tables)
            conn.exec_driver_sql(f"TRUNCATE TABLE {names} RESTART IDENTITY CASCADE")
        elif dialect in ("mysql", "mariadb"):
            conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS = 0")
            try:
                for table in tables:
                    conn.exec_driver_sql(f"TRUNCATE TABLE {quote(table)}")
            finally:
                conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS = 1")
        else:
            conn.exec_driver_sql("PRAGMA defer_foreign_keys = ON")
            for table in tables:
                conn.execute(table.delete())
            master = sa.table("sqlite_master", sa.column("name"))
            has_sequence = conn.execute(
                sa.select(master.c.name).where(master.c.name == "sqlite_sequence")
            ).first()
            if has_sequence:
                sequence = sa.table("sqlite_sequence", sa.column("name"))
                conn.execute(sequence.delete().where(sequence.c.name.in_([t.name for t in tables])))
        return sorted(t.name for t in tables)

    async with _begin(connection) as conn:
        return await conn.run_sync(truncate)
