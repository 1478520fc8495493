"""Transactions: the transaction client (root or savepoint) and the starter behind
``db.transaction()`` (awaitable, async context manager, or managed callback)."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import random
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Generator
from types import TracebackType
from typing import Any, Generic, Literal, TypeVar

from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncTransaction
from sqlalchemy.sql import Executable

from ..errors import InvalidArgumentError, LucidError, QueryError, TransactionConflictError
from ..query.client import Params
from .connection import Connection
from .query_client import (
    ClientBase,
    OpenCursor,
    connecting,
    mark_committed,
    run_statement,
    stream_statement,
    wrap_error,
)
from .result import ExecResult

T = TypeVar("T")
Hook = Callable[[], Any]


class TransactionClient(ClientBase):
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
        self._root: TransactionClient = parent._root if parent is not None else self
        # (root only) A statement was interrupted (task cancelled) while the driver ran it:
        # the connection's state is unknown, so it is discarded instead of reused.
        self._broken = False
        # (root only, MySQL) The server thread, to KILL when the connection is discarded.
        self._thread_id: int | None = None
        # (root only, PostgreSQL) A statement failed: the server ignores everything but a
        # rollback (to a savepoint) until then, and would turn COMMIT into a silent ROLLBACK.
        self._aborted = False
        # (root only) The database gave up on the transaction (TransactionConflictError): on
        # MySQL it is already rolled back, savepoints included, and everywhere only a rerun of
        # the whole transaction can succeed, so it can no longer commit.
        self._conflict: TransactionConflictError | None = None
        # (root only) What must settle before anything else runs on the connection (``_begun``,
        # one test per statement): the outcome of a BEGIN still running on the driver (a
        # pipelined begin, ``begin(pipelined=True)``), or (MySQL) a stream's unbuffered cursor
        # still open, whose rest is then read into the stream's buffer (``OpenCursor.drain``).
        self._pending: asyncio.Future[Any] | OpenCursor | None = None
        # COMMIT succeeded: the check-in of the closing connection need not roll back.
        self._committed = False

    @classmethod
    async def begin(
        cls, connection: Connection, isolation_level: str | None, *, pipelined: bool = False
    ) -> TransactionClient:
        """Open a root transaction on ``connection`` (a savepoint of its ambient one, if
        any). ``pipelined``: the dialect may leave its BEGIN running on the driver (SQLite),
        to be awaited by the transaction's first use (``_begun``); its error then surfaces
        there, mapped as BEGIN's."""
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
            with connecting(connection, None, (OSError, sa_exc.TimeoutError)):
                conn = await engines.engine.connect()
            ops = engines.dialect_ops
            try:
                if isolation_level and ops.isolation_levels:
                    level = ops.isolation_level(isolation_level)
                    try:
                        await conn.execution_options(isolation_level=level)
                    except sa_exc.ArgumentError as exc:
                        raise LucidError(
                            f'Invalid isolation level "{isolation_level}": {exc}',
                            code="E_INVALID_ARGUMENT",
                        ) from exc
                await cls._before_begin(conn)
                trx, pending = await ops.begin(conn, connection.fast_reads, pipelined)
            except BaseException as exc:
                # Cancelled halfway through BEGIN, the driver connection is in an unknown
                # state: it is closed, never handed back to the pool.
                await _settle(_close_failed_begin(cls, conn, not isinstance(exc, Exception)))
                if isinstance(exc, sa_exc.SQLAlchemyError):
                    # SQLite: "database is locked" once the busy timeout ran out.
                    raise _transaction_error(exc, "begin a transaction", conn) from exc
                raise
        except BaseException:
            if connection.lock is not None:
                connection.lock.release()
            raise
        client = cls(connection, conn, trx, None)
        client._pending = pending
        if ops.kill_on_discard:
            with contextlib.suppress(Exception):
                sync: Any = conn.sync_connection
                client._thread_id = int(sync.connection.driver_connection.thread_id())
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

    async def _begun(self) -> None:
        """Wait for a pipelined BEGIN (``begin(pipelined=True)``) to have run; its error
        raised as a BEGIN's (``QueryError``, "Cannot begin a transaction: …"). A stream's open
        cursor (MySQL) is drained instead (``OpenCursor.drain``). Cancelled meanwhile, the
        connection's state is unknown: the transaction can only roll back (and discards it)."""
        root = self._root
        pending = root._pending
        if pending is None:
            return
        if isinstance(pending, OpenCursor):
            root._pending = None
            try:
                await pending.drain()
            except asyncio.CancelledError:
                root._broken = True
                raise
            return
        try:
            error = await asyncio.shield(pending)
        except asyncio.CancelledError:
            root._broken = True
            raise
        root._pending = None
        if error is not None:
            raise _transaction_error(error, "begin a transaction", self._conn) from error

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
        self, stmt: Executable, *, write: bool, model: str | None = None, params: Params = None
    ) -> ExecResult:
        """Run ``stmt`` inside this transaction."""
        self._check_open()
        if self._root._pending is not None:
            await self._begun()
        try:
            return await run_statement(self._conn, stmt, model, params)
        except QueryError as exc:
            self._failed(exc)
            raise
        except asyncio.CancelledError:
            # Cancelled while the driver ran the statement: SQLAlchemy discards (invalidates)
            # the connection, whose state is unknown; the transaction can only roll back.
            self._root._broken = True
            raise

    async def stream(
        self, stmt: Executable, *, model: str | None = None, batch_size: int = 1000
    ) -> AsyncGenerator[ExecResult, None]:
        """Run a SELECT inside this transaction and yield its rows in batches
        (``stream_statement``); the transaction's other statements may run between batches.
        MySQL's unbuffered cursor must be read to its end before the connection runs another
        statement (one run in between would silently end the result): while it is open it is
        the root's ``_pending``, and the next statement on the connection (the loop body's, a
        preload, a savepoint, COMMIT/ROLLBACK, another stream) first reads the rest of its
        rows into the stream's buffer (``OpenCursor``). Memory stays flat as long as nothing
        else runs during the loop."""
        self._check_open()
        root = self._root
        if root._pending is not None:
            await self._begun()
        if self._connection.dialect_ops.interleaved_cursors:
            try:
                async for batch in stream_statement(self._conn, stmt, model, batch_size):
                    yield batch
            except QueryError as exc:
                self._failed(exc)
                raise
            return
        cursor = OpenCursor()
        batches = stream_statement(self._conn, stmt, model, batch_size, cursor)
        root._pending = cursor
        try:
            async for batch in batches:
                yield batch
        except QueryError as exc:
            self._failed(exc)
            raise
        except asyncio.CancelledError:
            # Cancelled while the driver read the rows: the connection's state is unknown, its
            # result is left as it is (the transaction can only roll back, and discards it).
            root._broken = True
            cursor.abandon()
            raise
        finally:
            try:
                # Left early (``break``, an error): the driver reads and drops the rows left,
                # before another statement may run (``root._pending`` is this cursor until then).
                await batches.aclose()
            except asyncio.CancelledError:
                root._broken = True
                raise
            finally:
                if root._pending is cursor:
                    root._pending = None

    def _failed(self, exc: QueryError) -> None:
        root = self._root
        # A value refused on this side (by a bind or result processor: ValueError or TypeError,
        # which no PostgreSQL server error is) never reached the server as an error: its
        # transaction goes on, as SQLite's and MySQL's always do. Any other failure on a
        # database that aborts on error aborts it (asyncpg's refusal to encode an argument
        # too: it comes mapped to its server-side DataError class, a safe over-caution).
        if self._connection.dialect_ops.aborts_on_error and not isinstance(
            exc.original, ValueError | TypeError
        ):
            root._aborted = True
        if isinstance(exc, TransactionConflictError) and root._conflict is None:
            root._conflict = exc

    def transaction(
        self, callback: Callable[[TransactionClient], Any] | None = None
    ) -> TransactionStarter[Any]:
        """A nested transaction (SAVEPOINT) inside this one; same forms as ``db.transaction``."""
        return TransactionStarter(self._connection, callback, None, parent=self)

    async def _begin_nested(self) -> TransactionClient:
        self._check_open()
        if self._root._pending is not None:
            await self._begun()
        try:
            savepoint = await self._conn.begin_nested()
        except sa_exc.SQLAlchemyError as exc:
            raise _transaction_error(exc, "open a savepoint", self._conn) from exc
        except asyncio.CancelledError:
            # Cancelled while the driver ran the statement: SQLAlchemy discards (invalidates)
            # the connection, whose state is unknown; the transaction can only roll back.
            self._root._broken = True
            raise
        return TransactionClient(self._connection, self._conn, savepoint, self)

    def after(self, event: Literal["commit", "rollback"], callback: Hook) -> None:
        """Run ``callback`` (sync or async) after this transaction commits or rolls back."""
        if event not in self._hooks:
            raise LucidError(f'Unknown transaction event "{event}": use "commit" or "rollback"')
        self._hooks[event].append(callback)

    async def commit(self) -> None:
        """Commit (or release the savepoint) and run the ``after("commit")`` hooks.

        Raises ``QueryError`` when the database refuses the commit (the transaction is then
        rolled back), also on PostgreSQL when a statement of the transaction failed and was not
        rolled back to a savepoint (PostgreSQL would roll back silently)."""
        self._check_open()
        root = self._root
        if root._pending is not None:
            try:
                await self._begun()
            except BaseException:
                # Nothing ran: the transaction only ends (its failed BEGIN's error raised).
                await _settle(self._end())
                await self._run_hooks("rollback")
                raise
        conflict = root._conflict
        if conflict is not None:
            await _settle(self._end())
            await self._run_hooks("rollback")
            raise TransactionConflictError(
                "Cannot commit: the database rolled the transaction back to resolve a conflict "
                f"with a concurrent one ({conflict.message}); nothing was committed, run it "
                "again",
                sql=conflict.sql,
                bindings=conflict.bindings,
                original=conflict.original,
            ) from conflict
        if root._aborted or root._broken:
            # PostgreSQL answers COMMIT of an aborted transaction with a ROLLBACK (a savepoint's
            # RELEASE with an error); a broken connection can't be trusted with a commit. A
            # savepoint rolls back to itself, which leaves its parent usable again.
            if root._broken:
                reason = "a statement of the transaction was cancelled"
            elif self._conn.invalidated:
                reason = "the connection to the database was lost during the transaction"
            else:
                reason = (
                    "the transaction is aborted after a failed statement; roll back (or to a "
                    "savepoint opened before it)"
                )
            await _settle(self._end())
            await self._run_hooks("rollback")
            raise QueryError(f"Cannot commit: {reason}. It was rolled back: nothing was committed")
        try:
            await self._trx.commit()
        except sa_exc.SQLAlchemyError as exc:
            error = _transaction_error(exc, "commit", self._conn)
            if self.parent is None:
                # A refused COMMIT may leave the transaction open on the connection (SQLite
                # keeps it after a deferred foreign-key violation) while SQLAlchemy thinks it
                # over: discard the connection, whose close rolls back, instead of pooling it.
                root._broken = True
            await _settle(self._end())
            await self._run_hooks("rollback")
            raise error from exc
        except BaseException:
            # Cancelled during COMMIT: whether it was applied is unknown, and so is the driver
            # connection's state; discard the connection (the server rolls back whatever is
            # still open) rather than return it to the pool. No hooks run: the outcome is
            # unknown.
            root._broken = True
            await _settle(self._end())
            raise
        self._committed = True
        await self._finish()
        await self._run_hooks("commit")

    async def rollback(self) -> None:
        """Roll back (to the savepoint, when nested) and run the ``after("rollback")`` hooks.

        Safe in a task being cancelled: the rollback runs to its end (and the connection goes
        back to the pool, or is discarded when its state is unknown) before a cancellation
        that arrives meanwhile is raised."""
        self._check_open()
        await _settle(self._end())
        await self._run_hooks("rollback")

    async def _end(self) -> None:
        """Roll back and finish; a root whose rollback fails is discarded instead (closing
        the connection rolls the transaction back on the server)."""
        root = self._root
        pending = root._pending
        # A pipelined BEGIN still running: the rollback queues behind it on the driver (its
        # outcome no longer matters).
        root._pending = None
        try:
            if isinstance(pending, OpenCursor) and not root._broken:
                # A stream's open cursor: its rest read first (the stream goes on from it).
                await pending.drain()
            if root._broken:
                if self.parent is None:
                    await self._discard()
                # A savepoint of a broken connection: its root discards the whole transaction.
                return
            if root._conflict is not None and self.parent is not None:
                # MySQL has rolled back the whole transaction (the savepoint is gone); anywhere
                # the root must roll back too, which ends the savepoint with it.
                return
            try:
                await self._trx.rollback()
            except BaseException as exc:
                if self.parent is None:
                    await self._discard()
                    if isinstance(exc, Exception):
                        return
                    raise
                if isinstance(exc, sa_exc.SQLAlchemyError):
                    raise _transaction_error(exc, "roll back to the savepoint", self._conn) from exc
                raise
            if self.parent is not None:
                # ROLLBACK TO SAVEPOINT ends PostgreSQL's aborted state.
                root._aborted = False
        finally:
            await self._finish()

    async def _discard(self) -> None:
        """Close the root connection without reusing it: invalidated in the pool, and on
        MySQL the server thread is killed so its locks go now (a socket closed mid-statement
        is only noticed by the server when that statement ends)."""
        with contextlib.suppress(Exception):
            await self._conn.invalidate()
        if self._thread_id is not None:
            await _kill_mysql_thread(self._connection, self._thread_id)

    async def _finish(self) -> None:
        if self.is_completed:
            return
        self.is_completed = True
        if self.parent is None:
            # Instances read in the transaction keep this object as their ``TRX`` (state.py's
            # ``open_transaction`` reads only ``is_completed``, ``_committed`` and ``parent``
            # once it ended): the conflict that ended it, and with it its traceback's frames
            # and their locals, must not live on with them.
            self._conflict = None
            connection = self._connection
            if self._committed:
                # The root's COMMIT succeeded (commit() sets _committed right after it) and
                # nothing ran since: no rollback on the check-in of the close below.
                mark_committed(self._conn)
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

    - ``trx = await db.transaction()``: an unmanaged transaction (commit/rollback yourself;
      end it in ``finally``/``except BaseException`` so a cancelled task rolls back too);
    - ``async with db.transaction() as trx``: commits on exit, rolls back on an exception;
    - ``await db.transaction(callback)``: awaits ``callback(trx)`` managed, returns its result.
      With ``retries=N`` a transaction the database gave up on (``TransactionConflictError``:
      a serialization failure or a deadlock) is rolled back and the callback runs again in a
      new one, up to ``N`` more times, after a jittered exponential backoff; only a root
      transaction retries (a savepoint's conflict belongs to the enclosing transaction).

    The managed forms roll back on any exception, ``asyncio.CancelledError`` included
    (``asyncio.wait_for``/``asyncio.timeout``): the rollback completes, and the connection
    goes back to the pool (or is discarded when a statement was cut off halfway), before the
    cancellation propagates.
    """

    def __init__(
        self,
        connection: Connection,
        callback: Callable[[TransactionClient], T | Awaitable[T]] | None,
        isolation_level: str | None,
        *,
        parent: TransactionClient | None = None,
        retries: int = 0,
        pipelined: bool = False,
    ) -> None:
        if retries != 0 or type(retries) is not int:
            _check_retries(retries, callback is not None)
        self._connection = connection
        self._callback = callback
        self._isolation_level = isolation_level
        self._parent = parent
        self._retries = retries
        self._pipelined = pipelined
        self._trx: TransactionClient | None = None

    async def _begin(self) -> TransactionClient:
        if self._parent is not None:
            return await self._parent._begin_nested()
        return await TransactionClient.begin(
            self._connection, self._isolation_level, pipelined=self._pipelined
        )

    async def _run(self) -> Any:
        if self._callback is None:
            # Unmanaged: the caller ends it. A task cancelled while holding it must still call
            # ``await trx.rollback()`` (in ``except``/``finally``), which is cancellation-safe.
            return await self._begin()
        attempt = 1
        while True:
            trx = await self._begin()
            try:
                return await self._attempt(trx, self._callback)
            except TransactionConflictError as exc:
                if not self._retries:
                    raise
                if trx.parent is not None:
                    _annotate(exc, "not retried: it ran in a savepoint, retry the outermost")
                    raise
                if attempt > self._retries:
                    _annotate(exc, f"gave up after {attempt} attempts (retries={self._retries})")
                    raise
            # The rollback has put back the instances the attempt wrote (their journal).
            await asyncio.sleep(_retry_delay(attempt))
            attempt += 1

    @staticmethod
    async def _attempt(trx: TransactionClient, callback: Callable[[TransactionClient], Any]) -> Any:
        async with managed(trx):
            result = callback(trx)
            if inspect.isawaitable(result):
                result = await result
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


# Retry backoff: the n-th retry waits between half and all of BASE * 2**(n-1) seconds, capped:
# short enough for a transaction that lost a race to try again at once, spread so that two
# that conflicted don't collide again in lockstep.
_RETRY_BASE_DELAY = 0.02
_RETRY_MAX_DELAY = 1.0


def _retry_delay(retry: int) -> float:
    """Seconds to wait before retry number ``retry`` (1-based), with jitter."""
    ceiling: float = min(_RETRY_MAX_DELAY, _RETRY_BASE_DELAY * 2.0 ** (retry - 1))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def _check_retries(retries: object, has_callback: bool) -> None:
    """Refuse a bad ``retries=`` before anything runs: a count of extra attempts, and only
    for the callback form (a block of code cannot be run again)."""
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise InvalidArgumentError(
            f"retries must be a whole number of extra attempts (0 or more), got {retries!r}"
        )
    if retries and not has_callback:
        raise InvalidArgumentError(
            "retries= needs the callback form, which can be run again: "
            "await db.transaction(callback, retries=3); an `async with` block or an unmanaged "
            "transaction cannot be re-run"
        )


def _annotate(exc: TransactionConflictError, note: str) -> None:
    exc.message = f"Transaction conflict, {note}: {exc.message}"
    exc.args = (exc.message,)


@contextlib.asynccontextmanager
async def managed(trx: TransactionClient) -> AsyncIterator[TransactionClient]:
    """Commit ``trx`` when the block ends, roll it back when the block raises (cancellation
    included); a transaction the block ended itself is left alone."""
    try:
        yield trx
    except BaseException:
        if not trx.is_completed:
            await trx.rollback()
        raise
    if not trx.is_completed:
        await trx.commit()


def implicit(client: Any) -> TransactionStarter[Any]:
    """The transaction a write of many rows opens for itself on ``client`` (``async with``):
    a savepoint inside a transaction, else a root transaction whose BEGIN may be left running
    on the driver while the caller prepares its statements (``begin(pipelined=True)``). The
    caller awaits ``begun(trx)`` before running hooks (user code), and every statement,
    commit or savepoint awaits it first anyway."""
    from .query_client import QueryClient

    if type(client) is QueryClient:
        return TransactionStarter(client._connection, None, None, pipelined=True)
    starter: TransactionStarter[Any] = client.transaction()
    return starter


async def begun(trx: TransactionClient) -> None:
    """Wait for ``trx``'s pipelined BEGIN (see ``implicit``); raises its error."""
    if trx._root._pending is not None:
        await trx._begun()


def open_connection(trx: TransactionClient) -> AsyncConnection:
    """The SQLAlchemy connection of ``trx`` (for DDL and driver-level work inside it);
    raises ``LucidError`` (``E_TRANSACTION_COMPLETED``) once the transaction ended."""
    trx._check_open()
    return trx._conn


def connection_in(trx: TransactionClient) -> AsyncConnection:
    """The SQLAlchemy connection ``trx`` runs on, whether or not it has ended (its
    connection info outlives it: ``database/ddl.py`` keeps the SQLite foreign-keys flag there)."""
    return trx._conn


async def _settle(work: Awaitable[None]) -> None:
    """Await ``work`` to its end even if the current task is cancelled meanwhile (it runs as
    a task of its own); such a cancellation is raised once ``work`` is done. Rollbacks and
    connection releases go through here so that a cancelled task never leaves a transaction
    (and its locks) open."""
    task = asyncio.ensure_future(work)
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if not task.done():
                cancelled = True
        except BaseException:  # the task's own error: raised below
            pass
    if cancelled:
        error = None if task.cancelled() else task.exception()
        raise asyncio.CancelledError from error
    task.result()


async def _close_failed_begin(
    cls: type[TransactionClient], conn: AsyncConnection, unknown: bool
) -> None:
    try:
        if unknown:
            with contextlib.suppress(Exception):
                await conn.invalidate()
        else:
            await cls._after_failed_begin(conn)
    finally:
        await conn.close()


async def _kill_mysql_thread(connection: Connection, thread_id: int) -> None:
    """Best effort: end the server thread of a discarded MySQL connection (COM_PROCESS_KILL,
    the id bound by the protocol) so its transaction rolls back now."""
    from sqlalchemy.util.concurrency import greenlet_spawn

    with contextlib.suppress(Exception):
        engine = connection.write_engines().engine
        raw = await asyncio.wait_for(engine.raw_connection(), _KILL_CONNECT_TIMEOUT)
        try:
            driver: Any = raw.driver_connection
            await driver.kill(thread_id)
        finally:
            await greenlet_spawn(raw.close)


# Seconds to wait for a pooled connection to send a KILL; the pool may be exhausted.
_KILL_CONNECT_TIMEOUT = 2.0

_ABORTED = "25P02"  # PostgreSQL: in_failed_sql_transaction


def _transaction_error(
    exc: sa_exc.SQLAlchemyError, action: str, conn: AsyncConnection
) -> QueryError:
    """An error of BEGIN/COMMIT/ROLLBACK/SAVEPOINT as ``QueryError`` (the caller chains
    ``exc``), naming what failed and, for PostgreSQL's aborted transaction, the fix."""
    if isinstance(exc, sa_exc.DBAPIError):
        error = wrap_error(exc)
        reason = error.message
    else:
        error = QueryError(str(exc), original=exc)
        reason = str(exc).split("\n")[0]
    if getattr(error.original, "sqlstate", None) == _ABORTED:
        reason = (
            "the transaction is aborted after a failed statement; roll back (the transaction, "
            f"or to a savepoint opened before the failure). {reason}"
        )
    elif conn.invalidated and not isinstance(exc, sa_exc.DBAPIError):
        # SQLAlchemy refuses to go on after the connection was lost.
        reason = (
            "the connection to the database was lost during the transaction, which the "
            "server rolled back"
        )
    error.message = f"Cannot {action}: {reason}"
    error.args = (error.message,)
    return error
