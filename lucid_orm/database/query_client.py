"""Query clients: run compiled statements on a connection, outside or inside a transaction."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Row
from sqlalchemy.engine.interfaces import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncResult
from sqlalchemy.sql import Executable, Select

from ..errors import (
    ConnectionLostError,
    IntegrityError,
    LucidError,
    QueryError,
    TransactionConflictError,
)
from ..query.client import Client, Params
from ..query.shape import Shape, compile_shape
from .connection import Connection, Engines, mask, mask_text
from .dialects import INTEGRITY_ERROR_CODES, is_conflict
from .dialects import Dialect as DialectOps
from .executor import (
    Compiled,
    acquire_for_stream,
    compile_static,
    connection_lost,
    fetch,
    prepare_read,
    run,
    with_sql,
)
from .executor import stream as lean_stream
from .result import ExecResult

if TYPE_CHECKING:
    from ..query.database import DatabaseQueryBuilder
    from ..query.insert import InsertQueryBuilder
    from ..query.raw import RawQueryBuilder
    from .transaction import TransactionClient, TransactionStarter

__all__ = ["Client", "QueryClient", "connect_error", "connecting", "driver_error", "wrap_error"]


def driver_error(exc: sa_exc.DBAPIError) -> BaseException:
    """The driver's own exception behind a SQLAlchemy ``DBAPIError``."""
    orig: BaseException = exc.orig if exc.orig is not None else exc
    # SQLAlchemy's asyncpg adapter wraps asyncpg's error; the driver's own one is the cause.
    cause = orig.__cause__
    if type(orig).__module__.startswith("sqlalchemy") and cause is not None:
        return cause
    return orig


def _is_integrity(exc: sa_exc.DBAPIError, original: BaseException) -> bool:
    if isinstance(exc, sa_exc.IntegrityError):
        return True
    args: tuple[Any, ...] = getattr(original, "args", ())
    code = args[0] if args else None
    # Constraint errors a driver files elsewhere (MySQL's, under OperationalError): the
    # dialects list their codes.
    return isinstance(code, int) and code in INTEGRITY_ERROR_CODES


def wrap_error(exc: sa_exc.DBAPIError) -> QueryError:
    """A driver error as ``QueryError`` (``IntegrityError`` for constraint violations,
    ``TransactionConflictError`` for serialization failures and deadlocks)."""
    original = driver_error(exc)
    return mapped_error(
        original, exc.statement, _bindings(exc.params), integrity=_is_integrity(exc, original)
    )


def mapped_error(
    original: BaseException, sql: str | None, bindings: list[Any], *, integrity: bool
) -> QueryError:
    """The driver error ``original`` of statement ``sql`` as lucid's error: ``IntegrityError``
    when ``integrity`` (a constraint violation, as the driver's dialect tells it),
    ``TransactionConflictError`` for serialization failures and deadlocks, else
    ``QueryError``. ``wrap_error`` and the dialects' driver-level fast paths share it."""
    cls: type[QueryError] = QueryError
    if integrity:
        cls = IntegrityError
    elif is_conflict(original):
        cls = TransactionConflictError
    message = str(original).strip() or type(original).__name__
    return cls(with_sql(message, sql), sql=sql, bindings=bindings, original=original)


def _bind(entry: Compiled, values: list[Any]) -> list[Any]:
    """``values`` (in the order of ``entry``'s parameters) through their bind processors."""
    procs = entry.bind_processors
    params = []
    try:
        for name, value in zip(entry.positiontup, values, strict=True):
            proc = procs.get(name)
            params.append(proc(value) if proc is not None and value is not None else value)
    except (TypeError, ValueError) as exc:
        raise QueryError(
            # The value stays in ``bindings``: messages never quote values.
            with_sql(f"Cannot bind a value: {exc}", entry.sql),
            sql=entry.sql,
            bindings=list(values),
            original=exc,
        ) from exc
    return params


def _bindings(params: Any) -> list[Any]:
    if isinstance(params, dict):
        return list(params.values())
    if isinstance(params, list | tuple):
        return list(params)
    return []


def _statement_error(exc: sa_exc.SQLAlchemyError, stmt: Executable) -> QueryError:
    """A non-driver SQLAlchemy error at execution (a value a bind processor refuses, a
    construct the dialect can't compile) as ``QueryError``, naming the statement."""
    if isinstance(exc, sa_exc.StatementError):
        sql = exc.statement
        original: BaseException = exc.orig if exc.orig is not None else exc
        reason = f"Cannot run the statement: {original}"
        return QueryError(
            with_sql(reason, sql), sql=sql, bindings=_bindings(exc.params), original=original
        )
    # Compilation failed (a construct this dialect can't render): there is no SQL to show.
    return QueryError(f"Cannot run the statement: {exc}", original=exc)


async def run_statement(
    conn: AsyncConnection,
    stmt: Executable,
    model: str | None,
    params: Sequence[Mapping[str, Any]] | None = None,
) -> ExecResult:
    """Execute one statement (``params``: many parameter sets) and read its whole result.

    Raises ``ConnectionLostError`` when the server dropped the connection (SQLAlchemy has
    then invalidated it and its pool's generation), ``QueryError`` for any other failure."""
    try:
        many = list(params) if params is not None else None
        if model is None:
            result = await conn.execute(stmt, many)
        else:
            result = await conn.execute(stmt, many, execution_options={"lucid_model": model})
        if result.returns_rows:
            keys = list(result.keys())
            rows = result.all()
            return ExecResult(rows, keys, result.rowcount)
        return ExecResult((), [], result.rowcount, getattr(result, "lastrowid", None))
    except sa_exc.DBAPIError as exc:
        if exc.connection_invalidated:
            sync = conn.sync_connection
            autocommit = sync is not None and sync.get_execution_options().get("lucid_autocommit")
            raise connection_lost(
                driver_error(exc),
                exc.statement,
                _bindings(exc.params),
                "write" if autocommit else "transaction",
            ) from exc
        raise wrap_error(exc) from exc
    except sa_exc.SQLAlchemyError as exc:
        raise _statement_error(exc, stmt) from exc
    except (TypeError, ValueError, ArithmeticError, RuntimeError) as exc:
        # Raised by the driver itself, which SQLAlchemy passes through unwrapped: a value it
        # can't bind (SQLite: an int beyond 64 bits), or a connection of another event loop.
        if isinstance(exc, RuntimeError) and "loop" in str(exc):
            raise LucidError(
                "This transaction's connection belongs to another event loop (opened before a "
                f"new asyncio.run() or in another thread): {exc}. Open and use a transaction "
                "inside one event loop",
                code="E_EVENT_LOOP_CHANGED",
            ) from exc
        sql = _sql_of(stmt, conn)
        raise QueryError(
            with_sql(f"Cannot run the statement: {exc}", sql), sql=sql, original=exc
        ) from exc


class OpenCursor:
    """A stream's unbuffered (MySQL ``SSCursor``) result open on a transaction's connection,
    which the transaction's other statements share: a statement run while the cursor is open
    would end its result, so ``drain`` (``TransactionClient._begun``, before any other
    statement) first reads the rows the stream has not read yet into ``rows``, from which the
    stream goes on. A failure of that read is the stream's: kept in ``error`` and raised by
    the stream when it goes on, not by the statement that asked for the drain. ``lock``
    serializes the reads of the result: the stream's, a drain, and the close of a stream left
    by ``break`` (run by the event loop in a task of its own, concurrently with the loop's
    next statements)."""

    __slots__ = ("closed", "error", "lock", "result", "rows")

    def __init__(self) -> None:
        self.result: AsyncResult[Any] | None = None
        self.rows: Sequence[Row[Any]] | None = None
        self.error: Exception | None = None
        self.closed = False
        self.lock = asyncio.Lock()

    async def drain(self) -> None:
        """Read the rest of the result into ``rows`` (cancellation raised: the connection's
        state is then unknown)."""
        async with self.lock:
            result = self.result
            if result is None or self.closed or self.rows is not None or self.error is not None:
                return
            try:
                self.rows = await result.fetchall()
            except Exception as exc:
                self.error = exc
            except BaseException:
                self.abandon()
                raise

    async def fetch(self, size: int) -> Sequence[Row[Any]] | None:
        """The next ``size`` rows from the open result (empty at its end); ``None`` once it
        was drained (the rows are in ``rows``) or failed (``error``)."""
        async with self.lock:
            if self.rows is not None or self.error is not None:
                return None
            assert self.result is not None
            return await self.result.fetchmany(size)

    def abandon(self) -> None:
        """Leave the result as it is, its read cut off by a cancellation (the transaction can
        only roll back, and discards the connection): ``close`` does nothing, and the stream,
        if it goes on, raises."""
        self.closed = True
        self.result = None
        if self.error is None:
            self.error = QueryError(
                "Cannot read the rest of the stream: reading its rows was cancelled"
            )

    async def close(self) -> None:
        """Close the result (the driver reads and drops what the stream left unread)."""
        async with self.lock:
            self.closed = True
            if self.result is not None:
                await self.result.close()


async def stream_statement(
    conn: AsyncConnection,
    stmt: Executable,
    model: str | None,
    batch_size: int,
    cursor: OpenCursor | None = None,
) -> AsyncGenerator[ExecResult, None]:
    """Run a SELECT with a server-side cursor (SQLAlchemy's ``stream()``: asyncpg's cursor,
    asyncmy's unbuffered ``SSCursor``, the SQLite cursor) and yield its rows ``batch_size`` at a
    time: only one batch is ever held. ``cursor`` (an unbuffered cursor on a connection other
    statements share): the open result is read through it, and once it was drained
    (``OpenCursor``) the rest of the rows come from its ``rows``. SQLAlchemy's execution
    reports the statement (``QueryEmitter.record``) like every other one. Errors as
    ``run_statement``'s."""
    options: dict[str, Any] = {"yield_per": batch_size}
    if model is not None:
        options["lucid_model"] = model
    try:
        if cursor is not None:
            batches = _through(cursor, conn, stmt, options, batch_size)
            try:
                async for batch in batches:
                    yield batch
            finally:
                await batches.aclose()
            return
        result = await conn.stream(stmt, execution_options=options)
        try:
            keys = list(result.keys())
            async for rows in result.partitions(batch_size):
                yield ExecResult(rows, keys, len(rows))
        finally:
            await result.close()
    except sa_exc.DBAPIError as exc:
        raise wrap_error(exc) from exc
    except sa_exc.SQLAlchemyError as exc:
        raise _statement_error(exc, stmt) from exc


async def _through(
    cursor: OpenCursor,
    conn: AsyncConnection,
    stmt: Executable,
    options: dict[str, Any],
    batch_size: int,
) -> AsyncGenerator[ExecResult, None]:
    """``stream_statement``'s batches read through ``cursor``."""
    try:
        async with cursor.lock:
            cursor.result = await conn.stream(stmt, execution_options=options)
        keys = list(cursor.result.keys())
        while (rows := await cursor.fetch(batch_size)) is not None:
            if not rows:
                return
            yield ExecResult(rows, keys, len(rows))
        if cursor.error is not None:
            raise cursor.error
        rest, cursor.rows = cursor.rows, ()
        assert rest is not None
        for start in range(0, len(rest), batch_size):
            rows = rest[start : start + batch_size]
            yield ExecResult(rows, keys, len(rows))
    finally:
        await cursor.close()


def _sql_of(stmt: Executable, conn: AsyncConnection) -> str | None:
    """The statement's SQL for an error message (compiled again: errors only)."""
    try:
        compilable: Any = stmt
        return str(compilable.compile(dialect=conn.dialect))
    except Exception:
        return None


def connect_error(
    connection: Connection, exc: BaseException, engines: Engines | None = None
) -> LucidError:
    """A failed connection attempt, naming the connection, or the replica when it was one,
    with its URL masked."""
    if engines is not None:
        where = engines.describe(connection.name)
    else:
        where = f'"{connection.name}" ({mask(connection.url)})'
    return LucidError(
        f"Cannot connect to {where}: {mask_text(str(exc))}", code="E_CONNECTION_FAILED"
    )


# Key of a pooled connection's ``info``: set just before the close that follows a successful
# COMMIT, popped by the check-in's pool "reset" listener (MySQL, dialects/mysql.py).
COMMITTED = "lucid_orm.committed"


def mark_committed(conn: AsyncConnection) -> None:
    """Mark ``conn``'s pooled connection as holding no transaction, just before its close: its
    COMMIT succeeded and nothing ran since, so the rollback on check-in would be a round trip
    for nothing. A dialect's pool "reset" listener (MySQL) consumes the mark on the check-in
    of that close (no other task runs in between); every other check-in still rolls back."""
    if not conn.invalidated:
        sync: Any = conn.sync_connection
        sync.connection.info[COMMITTED] = True


@contextmanager
def connecting(
    connection: Connection,
    engines: Engines | None = None,
    errors: tuple[type[BaseException], ...] = (OSError, sa_exc.SQLAlchemyError),
) -> Iterator[None]:
    """Turn the failures of taking a connection from ``engines`` (default: the write side
    of ``connection``) into ``connect_error``: driver errors, and ``errors`` (the pool's
    ``TimeoutError``: no pooled connection came free within ``pool={"timeout": ...}``, and
    the driver's own connect errors, which the pool passes through unwrapped).
    ``LucidError``s pass unchanged."""
    try:
        yield
    except LucidError:
        raise
    except sa_exc.DBAPIError as exc:
        raise connect_error(connection, driver_error(exc), engines) from exc
    except errors as exc:
        raise connect_error(connection, exc, engines) from exc


async def _lean_run(
    connection: Connection, engines: Engines, entry: Compiled, params: list[Any], model: str | None
) -> ExecResult:
    """``executor.run`` under the connection's guard, its checkout errors as ``connecting``
    gives them (``run`` makes them: ``wrap``; written out: a generator context manager per
    statement costs more than the rest of this)."""
    lock = connection.lock
    if lock is not None:  # the single in-memory SQLite connection (``Connection.guard``)
        async with lock:
            return await run(
                connection, engines, entry, entry.sql, params, model, True, _checkout_error
            )
    # No guard to enter otherwise: not even ``guard()``'s null context, two coroutines a read.
    return await run(connection, engines, entry, entry.sql, params, model, True, _checkout_error)


def _checkout_error(connection: Connection, engines: Engines, exc: Exception) -> LucidError:
    """The error of a lean read that failed taking its connection (``connecting``'s)."""
    if isinstance(exc, sa_exc.DBAPIError):
        return connect_error(connection, driver_error(exc), engines)
    return connect_error(connection, exc, engines)


# A replica read that failed on these is run on the write side instead.
_UNREACHABLE = frozenset({"E_CONNECTION_FAILED", "E_CONNECTION_LOST"})


def connection_of(client: QueryClient | TransactionClient) -> Connection:
    """The ``Connection`` a query or transaction client runs on."""
    return client._connection


class ClientBase:
    """What the plain client and the transaction client share: their connection's dialects
    and the builder factories."""

    connection_name: str
    _connection: Connection

    @property
    def dialect(self) -> Dialect:
        """SQLAlchemy's dialect of the connection."""
        return self._connection.dialect

    @property
    def dialect_name(self) -> str:
        """``"sqlite"``, ``"postgresql"`` or ``"mysql"``."""
        return self._connection.dialect_name

    @property
    def dialect_ops(self) -> DialectOps:
        """What this database does differently (``database/dialects``): capabilities and
        operations such as ``truncate`` and ``bind_keys``."""
        return self._connection.dialect_ops

    def query(self) -> DatabaseQueryBuilder:
        """A select query builder on this client: ``client.query().from_("users")``."""
        from ..query.database import DatabaseQueryBuilder

        return DatabaseQueryBuilder(cast(Client, self))

    def from_(self, table: Any) -> DatabaseQueryBuilder:
        """A select query builder for ``table``."""
        return self.query().from_(table)

    def insert_query(self) -> InsertQueryBuilder:
        """An insert query builder: ``client.insert_query().table("users").insert({...})``."""
        from ..query.insert import InsertQueryBuilder

        return InsertQueryBuilder(cast(Client, self))

    def table(self, table: str) -> InsertQueryBuilder:
        """Lucid's ``table()``: an insert query builder for ``table``."""
        return self.insert_query().table(table)

    def raw_query(self, sql: str, bindings: Any = None, *, read: bool = False) -> RawQueryBuilder:
        """An executable raw query with ``?`` + list or ``:name`` + dict bindings. It runs on
        the write connection; ``read=True`` lets it go to a read replica (the statement must
        not write: it is never inspected)."""
        from ..query.raw import RawQueryBuilder

        return RawQueryBuilder(cast(Client, self), sql, bindings, read=read)


class QueryClient(ClientBase):
    """A client outside any transaction: each statement checks a connection out of the pool.

    Selects go to a read replica when the connection has replicas; everything else to the
    write connection. Obtain one with ``db.connection(name)``; ``db.connection(name,
    mode="write")`` is a client whose reads go to the write connection too.
    """

    is_transaction = False

    def __init__(self, connection: Connection, primary: bool = False) -> None:
        self._connection = connection
        self.connection_name = connection.name
        # mode="write": reads on the write side as well.
        self._primary = primary

    @property
    def mode(self) -> str:
        """``"write"`` when every statement goes to the write side, else ``"dual"`` (reads to
        the replicas, as Lucid names it)."""
        return "write" if self._primary else "dual"

    async def execute(
        self, stmt: Executable, *, write: bool, model: str | None = None, params: Params = None
    ) -> ExecResult:
        """Run ``stmt`` in autocommit mode and return its result."""
        owner = self._connection.ambient_transaction()
        if owner is not None:
            # A global transaction, or in-memory SQLite whose only connection this task holds
            # in a transaction: plain queries run inside it (waiting for it would deadlock).
            joined: ExecResult = await owner.execute(stmt, write=write, model=model, params=params)
            return joined
        connection = self._connection
        if write:
            engines = connection.write_engines()
        elif not connection.routed:
            engines = connection.read_engines()
        elif self._primary:
            engines = connection.primary_engines()
        else:
            return await self._replica_read(stmt, model, params)
        return await self._execute_on(engines, stmt, write, model, params)

    async def _replica_read(
        self, stmt: Executable, model: str | None, params: Params
    ) -> ExecResult:
        """A read on a connection with replicas (``Connection.pick_read``); a replica that
        cannot be reached is skipped for its cool-down and the read runs on the write side
        (nothing is written: nothing can run twice)."""
        connection = self._connection
        engines = await connection.pick_read()
        if engines.state is None:
            return await self._execute_on(engines, stmt, False, model, params)
        try:
            result = await self._execute_on(engines, stmt, False, model, params)
        except LucidError as exc:
            if exc.code not in _UNREACHABLE:
                raise
            connection.replica_failed(engines, exc)
            return await self._execute_on(connection.primary_engines(), stmt, False, model, params)
        engines.state.answered()
        return result

    async def _execute_on(
        self,
        engines: Engines,
        stmt: Executable,
        write: bool,
        model: str | None,
        params: Params,
    ) -> ExecResult:
        connection = self._connection
        if not write and params is None and isinstance(stmt, Select) and connection.fast_reads:
            # Errors other than LucidErrors come from the checkout.
            async with connection.guard():
                try:
                    fast = await fetch(connection, engines, connection.statements, stmt, model)
                except LucidError:
                    raise
                except sa_exc.DBAPIError as exc:
                    raise connect_error(connection, driver_error(exc), engines) from exc
                except Exception as exc:
                    raise connect_error(connection, exc, engines) from exc
            if fast is not None:
                return fast
        try:
            return await self._run(engines, stmt, write, model, params)
        except ConnectionLostError as lost:
            # SQLAlchemy invalidated the connection and its generation; the lean path's idle
            # ones came from the same server.
            await engines.forget_idle(lost.original)
            if write:
                raise
        # A read outside a transaction: once more, on a fresh connection.
        try:
            return await self._run(engines, stmt, write, model, params)
        except ConnectionLostError as lost:
            await engines.forget_idle(lost.original)
            raise connection_lost(
                lost.original or lost, lost.sql, lost.bindings, "retried"
            ) from lost.original

    async def _run(
        self,
        engines: Engines,
        stmt: Executable,
        write: bool,
        model: str | None,
        params: Sequence[Mapping[str, Any]] | None,
    ) -> ExecResult:
        connection = self._connection
        async with connection.guard():
            with connecting(connection, engines):
                conn = await engines.autocommit_engine.connect()
            try:
                result = await run_statement(conn, stmt, model, params)
                ops = engines.dialect_ops
                # COMMIT instead of the rollback on close (MySQL: a read may write too, a
                # stored function in a SELECT).
                if ops.commit_after_read or (write and ops.commit_after_write):
                    try:
                        await conn.commit()
                    except sa_exc.DBAPIError as exc:
                        if exc.connection_invalidated:
                            raise connection_lost(
                                driver_error(exc), None, [], "write" if write else "retried"
                            ) from exc
                        raise wrap_error(exc) from exc
                    mark_committed(conn)
                return result
            finally:
                await conn.close()

    async def stream(
        self, stmt: Executable, *, model: str | None = None, batch_size: int = 1000
    ) -> AsyncGenerator[ExecResult, None]:
        """Run a SELECT and yield its rows in batches (``stream_statement``) on one read
        connection held for the whole iteration and returned to the pool when the iteration
        ends, breaks or raises (when the async generator closes). On PostgreSQL a server-side
        cursor lives inside a transaction: the connection runs a read-only one (rolled back at
        the end); elsewhere it reads in autocommit. In-memory SQLite has one connection: the
        guard is taken per batch, so the loop body may run queries of its own."""
        owner = self._connection.ambient_transaction()
        if owner is not None:
            async for joined in owner.stream(stmt, model=model, batch_size=batch_size):
                yield joined
            return
        connection = self._connection
        needs_trx = connection.dialect_ops.cursors_need_transaction
        engines = await self._read_side()
        # (In-memory SQLite has one connection, shared under the guard: the slow twin.)
        lean = engines.backend != "sqlite" or not connection.is_memory
        if connection.fast_reads and lean and isinstance(stmt, Select):
            prepared = prepare_read(connection.statements, stmt, engines.dialect)
            if prepared is not None:
                engines, pair = await self._lean_pair(engines)
                batches = lean_stream(
                    connection, engines, pair, *prepared, model=model, batch_size=batch_size
                )
                try:
                    async for batch in batches:
                        yield batch
                finally:
                    await batches.aclose()
                return
        try:
            async with connection.guard():
                with connecting(connection, engines):
                    conn = await (
                        engines.engine if needs_trx else engines.autocommit_engine
                    ).connect()
        except LucidError as exc:
            if engines.state is None or exc.code not in _UNREACHABLE:
                raise
            connection.replica_failed(engines, exc)
            engines = connection.primary_engines()
            async with connection.guard():
                with connecting(connection, engines):
                    conn = await (
                        engines.engine if needs_trx else engines.autocommit_engine
                    ).connect()
        else:
            if engines.state is not None:
                engines.state.answered()
        try:
            batches = stream_statement(conn, stmt, model, batch_size)
            try:
                while True:
                    async with connection.guard():
                        try:
                            batch = await batches.__anext__()
                        except StopAsyncIteration:
                            break
                    yield batch
            finally:
                await batches.aclose()
        finally:
            await conn.close()

    async def _lean_pair(self, engines: Engines) -> tuple[Engines, tuple[Any, Any]]:
        """A lean-path connection of ``engines`` for a stream (``executor.acquire_for_stream``);
        a replica that cannot be reached is skipped for its cool-down for the write side's."""
        connection = self._connection
        try:
            with connecting(connection, engines, (Exception,)):
                pair = await acquire_for_stream(engines)
        except LucidError as exc:
            if engines.state is None or exc.code not in _UNREACHABLE:
                raise
            connection.replica_failed(engines, exc)
            engines = connection.primary_engines()
            with connecting(connection, engines, (Exception,)):
                pair = await acquire_for_stream(engines)
        else:
            if engines.state is not None:
                engines.state.answered()
        return engines, pair

    async def _read_side(self) -> Engines:
        """The engines a read of this client runs on: the connection's only ones, the write
        side (a ``mode="write"`` client), or a replica picked for it (skipping one in its
        cool-down)."""
        connection = self._connection
        if not connection.routed:
            return connection.read_engines()
        if self._primary:
            return connection.primary_engines()
        return await connection.pick_read()

    async def fetch_compiled(
        self, key: Any, build: Callable[[], Select[Any]], values: list[Any], model: str | None
    ) -> ExecResult | None:
        """Run a statement shape compiled once per connection under ``key`` (``build`` makes
        it the first time) with positional ``values``; ``None`` when the lean path is off."""
        reading = self.read_compiled(key, build, values, model)
        return None if reading is None else await reading

    def read_compiled(
        self, key: Any, build: Callable[[], Select[Any]], values: list[Any], model: str | None
    ) -> Awaitable[ExecResult] | None:
        """``fetch_compiled`` without a coroutine of its own: the awaitable that reads, or
        ``None`` when the lean path is off (a static preload's read, once per preload)."""
        if not self.lean_reads():
            return None
        connection = self._connection
        if connection.routed:
            return self._read_compiled_routed(key, build, values, model)
        # Not routed (no replica): the read side is the connection's only engines, taken
        # without the coroutine ``_read_side`` is (the usual case, once per read).
        engines = connection.read_engines()
        entry, params = self._static_entry(engines, key, build, values)
        return self._run_lean(engines, entry, params, model)

    async def _read_compiled_routed(
        self, key: Any, build: Callable[[], Select[Any]], values: list[Any], model: str | None
    ) -> ExecResult:
        """``read_compiled`` on a connection with replicas: the read side picked, then run."""
        engines = await self._read_side()
        entry, params = self._static_entry(engines, key, build, values)
        return await self._run_lean(engines, entry, params, model)

    def _static_entry(
        self, engines: Engines, key: Any, build: Callable[[], Select[Any]], values: list[Any]
    ) -> tuple[Compiled, list[Any]]:
        """The statement kept under ``key`` on this connection (compiled from ``build()`` the
        first time) and ``values`` bound for it."""
        connection = self._connection
        entry = connection.static_statements.get(key)
        if entry is None:
            entry = compile_static(build(), engines.dialect)
            connection.static_statements[key] = entry
        # No processor to run and the count right: ``_bind`` would return them as they are.
        bound = entry.bind_processors or len(values) != len(entry.positiontup)
        return entry, _bind(entry, values) if bound else values

    def lean_reads(self) -> bool:
        """Whether a read of this client may take the lean path now (``fast_reads`` on, no
        transaction this task's queries join)."""
        connection = self._connection
        # (No owner, no ambient transaction: ``ambient_transaction()`` asked only when there is
        # one, as on every read outside ``db.global_transaction()``.)
        return connection.fast_reads and (
            connection.owner is None or connection.ambient_transaction() is None
        )

    def read_shaped(
        self, shape: Shape, build: Callable[[], Select[Any]], model: str | None
    ) -> Awaitable[ExecResult]:
        """Run a model query by its shape (``query/shape.py``): the statement compiled for the
        first query of that shape on this connection (``build`` makes it), with ``shape``'s
        values; when the lean path is off or the shape has no reusable statement, the statement
        ``build`` makes, run as usual (``execute``). A model query's read
        (``ModelQueryBuilder._read``). Not a coroutine of its own: it returns the one that
        reads (one frame less on every model query)."""
        prepared = self._shaped(shape, build)
        if prepared is None:
            return self.execute(build(), write=False, model=model)
        connection = self._connection
        if connection.routed:
            return self._read_routed(prepared[0], prepared[1], model)
        return self._run_lean(connection.read_engines(), prepared[0], prepared[1], model)

    async def _read_routed(
        self, entry: Compiled, params: list[Any], model: str | None
    ) -> ExecResult:
        """``read_shaped`` on a connection with replicas: the read side picked, then run."""
        engines = await self._read_side()
        return await self._run_lean(engines, entry, params, model)

    def _shaped(
        self, shape: Shape, build: Callable[[], Select[Any]]
    ) -> tuple[Compiled, list[Any]] | None:
        """The statement of ``shape`` on this connection (compiled by ``build`` for its first
        query) and the parameters of this query, bound; ``None`` when the lean path is off or
        the shape has no reusable statement."""
        if not self.lean_reads():
            return None
        connection = self._connection
        cache = connection.statements
        entry = cache.shaped(shape.key)
        if entry is None:
            entry = compile_shape(shape, build, connection.dialect)
            if entry is None:
                return None
            cache.keep_shape(shape.key, entry)
        extra = entry.extra
        slots: list[int] | None = extra["slots"]
        if slots is None:
            return None
        values = shape.values()
        constants = extra["constants"]
        if constants:
            values += constants
        params = [values[i] for i in slots]
        # No processor to run: ``_bind`` would return them as they are (one per slot).
        if entry.bind_processors:
            params = _bind(entry, params)
        return entry, params

    def _run_lean(
        self, engines: Engines, entry: Compiled, params: list[Any], model: str | None
    ) -> Awaitable[ExecResult]:
        """Run a compiled read on ``engines`` through the lean path (``executor.run``); a
        replica that cannot be reached is skipped for its cool-down for the write side."""
        if engines.state is None:
            # Not a replica (no fallback to take): the read itself, without a coroutine
            # around it that would only pass its errors on; without ``_lean_run``'s either
            # when there is no guard to enter (``run`` makes its check-out errors, ``wrap``).
            connection = self._connection
            if connection.lock is None:
                return run(
                    connection, engines, entry, entry.sql, params, model, True, _checkout_error
                )
            return _lean_run(connection, engines, entry, params, model)
        return self._run_replica(engines, entry, params, model)

    async def _run_replica(
        self, engines: Engines, entry: Compiled, params: list[Any], model: str | None
    ) -> ExecResult:
        """``_run_lean`` on a replica: one that cannot be reached is skipped for its
        cool-down, and the read runs on the write side."""
        connection = self._connection
        try:
            found = await _lean_run(connection, engines, entry, params, model)
        except LucidError as exc:
            if engines.state is None or exc.code not in _UNREACHABLE:
                raise
            connection.replica_failed(engines, exc)
        else:
            if engines.state is not None:
                engines.state.answered()
            return found
        return await _lean_run(connection, connection.primary_engines(), entry, params, model)

    def transaction(
        self, callback: Any = None, *, isolation_level: str | None = None
    ) -> TransactionStarter[Any]:
        """Start a transaction on this connection (see ``db.transaction``)."""
        from .transaction import TransactionStarter

        return TransactionStarter(self._connection, callback, isolation_level)

    async def begin(self, isolation_level: str | None = None) -> TransactionClient:
        from .transaction import TransactionClient

        return await TransactionClient.begin(self._connection, isolation_level)
