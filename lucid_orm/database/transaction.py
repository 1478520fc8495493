"""Transactions: the transaction client (root or savepoint) and the starter behind
``db.transaction()`` (awaitable, async context manager, or managed callback)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Generator, Mapping, Sequence
from types import TracebackType
from typing import Any, Generic, Literal, TypeVar

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine.interfaces import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncTransaction
from sqlalchemy.sql import Executable

from ..errors import LucidError
from .connection import Connection
from .query_client import _ClientMixin, _driver_error, connect_error, run_statement
from .result import ExecResult

T = TypeVar("T")
Hook = Callable[[], Any]


def _isolation_level(level: str, backend: str) -> str:
    name = " ".join(level.replace("_", " ").split()).upper()
    if backend == "postgresql" and name == "READ UNCOMMITTED":
        # PostgreSQL runs READ UNCOMMITTED as READ COMMITTED, and SQLAlchemy's asyncpg dialect
        # only accepts the levels PostgreSQL really has.
        return "READ COMMITTED"
    return name


class TransactionClient(_ClientMixin):
    """A client bound to one open transaction; every statement runs on its connection.

    ``await trx.commit()`` / ``await trx.rollback()`` end it; ``trx.transaction()`` opens a
    nested transaction as a SAVEPOINT. A finished transaction refuses further queries.
    """

    is_transaction = True

    def __init__(
        self,
        connection: Connection,
        conn: AsyncConnection,
        trx: AsyncTransaction,
        parent: TransactionClient | None,
    ) -> None:
        self._connection = connection
        self.connection_name = connection.name
        self._conn = conn
        self._trx = trx
        self.parent = parent
        self.is_completed = False
        self._hooks: dict[str, list[Hook]] = {"commit": [], "rollback": []}

    @classmethod
    async def begin(cls, connection: Connection, isolation_level: str | None) -> TransactionClient:
        engines = connection.write_engines()
        owner = connection.ambient_transaction()
        if owner is not None:
            # Inside a global transaction, or on in-memory SQLite (one connection) in a task
            # that already holds it, a new transaction is a savepoint of that one.
            nested: TransactionClient = await owner._begin_nested()
            return nested
        if connection.lock is not None:
            await connection.lock.acquire()
        try:
            try:
                conn = await engines.engine.connect()
            except sa_exc.DBAPIError as exc:
                raise connect_error(connection, _driver_error(exc)) from exc
            except (OSError, sa_exc.TimeoutError) as exc:
                raise connect_error(connection, exc) from exc
            try:
                if isolation_level and engines.backend != "sqlite":
                    level = _isolation_level(isolation_level, engines.backend)
                    try:
                        await conn.execution_options(isolation_level=level)
                    except sa_exc.ArgumentError as exc:
                        raise LucidError(
                            f'Invalid isolation level "{isolation_level}": {exc}',
                            code="E_INVALID_ARGUMENT",
                        ) from exc
                await cls._before_begin(conn)
                trx = await conn.begin()
            except BaseException:
                try:
                    await cls._after_failed_begin(conn)
                finally:
                    await conn.close()
                raise
        except BaseException:
            if connection.lock is not None:
                connection.lock.release()
            raise
        client = cls(connection, conn, trx, None)
        if connection.lock is not None:
            connection.owner = (asyncio.current_task(), client)
        return client

    # Hooks for transactions that prepare their connection (the schema builder's SQLite DDL).
    @classmethod
    async def _before_begin(cls, conn: AsyncConnection) -> None:
        """Runs on the new connection just before BEGIN."""

    @classmethod
    async def _after_failed_begin(cls, conn: AsyncConnection) -> None:
        """Undoes ``_before_begin`` when BEGIN (or it) failed; the connection then closes."""

    @property
    def dialect(self) -> Dialect:
        return self._connection.dialect

    @property
    def dialect_name(self) -> str:
        return self._connection.dialect_name

    @property
    def is_nested(self) -> bool:
        return self.parent is not None

    def _check_open(self) -> None:
        if self.is_completed:
            raise LucidError(
                "Cannot run queries on a transaction that was already committed or rolled back",
                code="E_TRANSACTION_COMPLETED",
            )

    async def execute(
        self,
        stmt: Executable,
        *,
        write: bool,
        model: str | None = None,
        params: Sequence[Mapping[str, Any]] | None = None,
    ) -> ExecResult:
        """Run ``stmt`` inside this transaction."""
        self._check_open()
        return await run_statement(self._conn, stmt, model, params)

    def transaction(
        self, callback: Callable[[TransactionClient], Any] | None = None
    ) -> TransactionStarter[Any]:
        """A nested transaction (SAVEPOINT) inside this one; same forms as ``db.transaction``."""
        return TransactionStarter(self._connection, callback, None, parent=self)

    async def _begin_nested(self) -> TransactionClient:
        self._check_open()
        savepoint = await self._conn.begin_nested()
        return TransactionClient(self._connection, self._conn, savepoint, self)

    def after(self, event: Literal["commit", "rollback"], callback: Hook) -> None:
        """Run ``callback`` (sync or async) after this transaction commits or rolls back."""
        if event not in self._hooks:
            raise LucidError(f'Unknown transaction event "{event}": use "commit" or "rollback"')
        self._hooks[event].append(callback)

    async def commit(self) -> None:
        """Commit (or release the savepoint) and run the ``after("commit")`` hooks."""
        self._check_open()
        try:
            await self._trx.commit()
        finally:
            await self._finish()
        await self._run_hooks("commit")

    async def rollback(self) -> None:
        """Roll back (to the savepoint, when nested) and run the ``after("rollback")`` hooks."""
        self._check_open()
        try:
            await self._trx.rollback()
        finally:
            await self._finish()
        await self._run_hooks("rollback")

    async def _finish(self) -> None:
        self.is_completed = True
        if self.parent is None:
            connection = self._connection
            try:
                await self._conn.close()
            finally:
                if connection.owner is not None and connection.owner[1] is self:
                    connection.owner = None
                if connection.lock is not None:
                    connection.lock.release()

    async def _run_hooks(self, event: str) -> None:
        hooks, self._hooks = self._hooks[event], {"commit": [], "rollback": []}
        for hook in hooks:
            result = hook()
            if inspect.isawaitable(result):
                await result


class TransactionStarter(Generic[T]):
    """What ``db.transaction()`` returns.

    - ``trx = await db.transaction()``: an unmanaged transaction (commit/rollback yourself);
    - ``async with db.transaction() as trx``: commits on exit, rolls back on an exception;
    - ``await db.transaction(callback)``: awaits ``callback(trx)`` managed, returns its result.
    """

    def __init__(
        self,
        connection: Connection,
        callback: Callable[[TransactionClient], T | Awaitable[T]] | None,
        isolation_level: str | None,
        *,
        parent: TransactionClient | None = None,
    ) -> None:
        self._connection = connection
        self._callback = callback
        self._isolation_level = isolation_level
        self._parent = parent
        self._trx: TransactionClient | None = None

    async def _begin(self) -> TransactionClient:
        if self._parent is not None:
            return await self._parent._begin_nested()
        return await TransactionClient.begin(self._connection, self._isolation_level)

    async def _run(self) -> Any:
        trx = await self._begin()
        if self._callback is None:
            return trx
        try:
            result = self._callback(trx)
            if inspect.isawaitable(result):
                result = await result
        except BaseException:
            if not trx.is_completed:
                await trx.rollback()
            raise
        if not trx.is_completed:
            await trx.commit()
        return result

    def __await__(self) -> Generator[Any, None, T]:
        return self._run().__await__()

    async def __aenter__(self) -> TransactionClient:
        self._trx = await self._begin()
        return self._trx

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        trx = self._trx
        if trx is None or trx.is_completed:
            return
        if exc_type is not None:
            await trx.rollback()
        else:
            await trx.commit()
