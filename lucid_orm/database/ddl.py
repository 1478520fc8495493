"""Database services for schema changes: the DDL transaction (SQLite's foreign keys off around
table copies, checked before the commit) and the reading connection (reflection outside any
transaction). ``schema`` and ``migrations`` use these public names, never a client's internals.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection

from ..errors import IntegrityError, LucidError
from .query_client import QueryClient, connecting, connection_of
from .transaction import TransactionClient, begun, connection_in, open_connection

if TYPE_CHECKING:
    from .connection import Connection
    from .query_client import Client

T = TypeVar("T")

# The few internals of the clients these services need, read in one place (one accessor each)
# so that the client classes can rename them without touching schema/ or migrations/.


def transaction_connection(trx: TransactionClient) -> AsyncConnection:
    """The SQLAlchemy connection a transaction runs on."""
    return connection_in(trx)


def client_connection(client: Client) -> Connection:
    """The ``Connection`` behind a query or transaction client."""
    if isinstance(client, QueryClient | TransactionClient):
        return connection_of(client)
    raise LucidError(f"Cannot run schema changes on {client!r}: expected a query client")


async def run_sync(trx: TransactionClient, fn: Callable[..., T], *args: Any) -> T:
    """``fn(sync_connection, *args)`` on the transaction's connection (Alembic, reflection);
    ``E_TRANSACTION_COMPLETED`` once the transaction has ended."""
    conn = open_connection(trx)
    await begun(trx)  # a stream's cursor still open on the connection is drained first (MySQL)
    return await conn.run_sync(fn, *args)


@asynccontextmanager
async def reading_connection(connection: Connection) -> AsyncIterator[AsyncConnection]:
    """A connection for reflection and reads, outside any transaction (inside the ambient
    one: a global transaction, or in-memory SQLite's single connection held by this task)."""
    owner = connection.ambient_transaction()
    if owner is not None:
        yield transaction_connection(owner)
        return
    async with connection.guard():
        with connecting(connection, errors=(OSError, sa_exc.TimeoutError)):
            conn = await connection.write_engines().autocommit_engine.connect()
        try:
            yield conn
        finally:
            await conn.close()


_RESTORE = "lucid_restore_foreign_keys"


class DDLTransaction(TransactionClient):
    """A root transaction opened with SQLite's foreign keys off, turned back on at the end.

    SQLite's table copies DROP the old table, and with foreign keys on that DROP deletes the
    rows first, firing ON DELETE CASCADE in the tables that reference it. SQLite's own recipe
    (https://www.sqlite.org/lang_altertable.html#otheralter): foreign keys off outside the
    transaction, PRAGMA foreign_key_check before COMMIT."""

    @property
    def restore_foreign_keys(self) -> bool:
        """Whether foreign keys were on (and are turned back on when this ends)."""
        return bool(transaction_connection(self).info.get(_RESTORE, False))

    @classmethod
    async def _before_begin(cls, conn: AsyncConnection) -> None:
        await conn.execution_options(lucid_autocommit=True)
        enabled = (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar() == 1
        await conn.commit()
        conn.info[_RESTORE] = enabled
        if enabled:
            await _sqlite_foreign_keys(conn, False)
        await conn.execution_options(lucid_autocommit=False)

    @classmethod
    async def _after_failed_begin(cls, conn: AsyncConnection) -> None:
        if conn.info.pop(_RESTORE, False):
            await _sqlite_foreign_keys(conn, True)

    async def _finish(self) -> None:
        try:
            conn = transaction_connection(self)
            if self.parent is None and conn.info.pop(_RESTORE, False):
                await _sqlite_foreign_keys(conn, True)
        finally:
            await super()._finish()


async def _sqlite_foreign_keys(conn: AsyncConnection, on: bool) -> None:
    # PRAGMA foreign_keys is a no-op inside a transaction: run it in autocommit mode.
    await conn.execution_options(lucid_autocommit=True)
    await conn.exec_driver_sql(f"PRAGMA foreign_keys = {'ON' if on else 'OFF'}")
    await conn.commit()
    await conn.execution_options(lucid_autocommit=False)


@asynccontextmanager
async def ddl_transaction(connection: Connection) -> AsyncIterator[TransactionClient]:
    """A transaction for schema changes: committed on exit, rolled back on an exception.

    On SQLite foreign keys are off inside it (so table copies never fire ``ON DELETE``
    actions) and ``PRAGMA foreign_key_check`` runs before the commit: a violation raises
    ``IntegrityError`` and rolls everything back. Elsewhere it is ``db.transaction()``.
    """
    if connection.dialect_name == "sqlite":
        trx = await DDLTransaction.begin(connection, None)
    else:
        trx = await TransactionClient.begin(connection, None)
    failed = True
    try:
        yield trx
        if isinstance(trx, DDLTransaction) and trx.restore_foreign_keys:
            await _foreign_key_check(transaction_connection(trx))
        failed = False
    finally:
        # The body may have ended the transaction itself (a migration's explicit commit).
        if not trx.is_completed:
            await (trx.rollback() if failed else trx.commit())


async def _foreign_key_check(conn: AsyncConnection) -> None:
    rows = (await conn.exec_driver_sql("PRAGMA foreign_key_check")).all()
    if rows:
        first: tuple[Any, ...] = tuple(rows[0])
        table, rowid, parent = first[0], first[1], first[2]
        raise IntegrityError(
            f'Foreign key violation after the schema change: row {rowid} of "{table}" '
            f'references a missing row of "{parent}" ({len(rows)} violation(s))',
            sql="PRAGMA foreign_key_check",
        )
