"""The process-wide ``Database`` manager (``lucid_orm.db``): named connections, query
clients, transactions and query events."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast, overload

from sqlalchemy.ext.asyncio import AsyncEngine

from ..errors import LucidError
from .connection import Connection, running_loop
from .events import QueryEmitter, QueryListener
from .query_client import QueryClient
from .replicas import StickyScope
from .transaction import TransactionClient, TransactionStarter

if TYPE_CHECKING:
    from ..orm.base_model import BaseModel
    from ..query.database import DatabaseQueryBuilder
    from ..query.insert import InsertQueryBuilder
    from ..query.raw import Raw, RawQueryBuilder

T = TypeVar("T")


LazyLoadGuard = Literal["warn", "raise"]
# A lazy_load_guard() block's mode ("off" inside a block that turns the guard off).
_GUARD_BLOCK: ContextVar[Literal["warn", "raise", "off"] | None] = ContextVar(
    "lucid_lazy_load_guard", default=None
)


def _check_guard(mode: object) -> LazyLoadGuard | None:
    if mode is None or mode == "warn" or mode == "raise":
        return mode
    raise LucidError(
        f'lazy_load_guard must be "warn", "raise" or None, got {mode!r}',
        code="E_INVALID_ARGUMENT",
    )


class Database:
    """Manages named connections. Configure once at start-up::

        db.configure(url="sqlite:///app.db")
        db.configure(connection="pg", connections={"pg": {"url": "postgresql://..."}})

    then ``db.from_("users")``, ``db.transaction()``, ``db.connection("pg")``… and
    ``await db.close()`` (or ``async with db:``) at shutdown.
    """

    def __init__(self) -> None:
        self._connections: dict[str, Connection] = {}
        self._default: str | None = None
        self._emitter = QueryEmitter()
        self._clients: dict[str, QueryClient] = {}
        # Pools of a previous configure() being closed (see _retire).
        self._closing: set[asyncio.Task[None]] = set()
        self._lazy_load_guard: LazyLoadGuard | None = None
        # The connection of the innermost ``using()`` scope (per task).
        self._using: ContextVar[str | None] = ContextVar(f"lucid_using_{id(self)}", default=None)

    # -- configuration -------------------------------------------------------------------------
    def configure(
        self,
        url: str | None = None,
        *,
        connection: str | None = None,
        connections: Mapping[str, Mapping[str, Any]] | None = None,
        debug: bool = False,
        pool: Mapping[str, Any] | None = None,
        lazy_load_guard: LazyLoadGuard | None = None,
    ) -> None:
        """Set up the connections. ``url=`` alone defines one connection named ``"default"``;
        ``connections={name: {"url": ..., "pool": {"max": n}, "debug": bool,
        "replicas": {"write": {...}, "read": [{...}, ...]}}}`` defines several, and
        ``connection=`` names the default one (else the first).

        ``pool={"max": n, "timeout": seconds, "pre_ping": True}``: ``pre_ping`` checks each
        connection taken from the pool with a round trip, so that even a transaction never
        starts on a connection the server dropped (off by default: reads outside transactions
        heal without it).

        Calling it again replaces the connections and closes the old pools: inside a running
        event loop their closing is scheduled on it (``await db.close()`` waits for it);
        pools of a loop that is gone are dropped.

        ``lazy_load_guard="warn" | "raise"`` turns on the N+1 guard: ``load()``,
        ``load_count()`` or ``related(...).query()`` run for a second instance of one result
        set warns (``LazyLoadWarning``) or raises ``LazyLoadError``, naming the ``preload()``
        to use; see also ``lazy_load_guard()``."""
        guard = _check_guard(lazy_load_guard)
        if url is None and not connections:
            raise LucidError("db.configure() needs url= or connections=", code="E_INVALID_CONFIG")
        configs: dict[str, Mapping[str, Any]] = dict(connections or {})
        if url is not None:
            name = connection or "default"
            configs[name] = {"url": url, "debug": debug, **({"pool": pool} if pool else {})}
        default = connection or next(iter(configs))
        if default not in configs:
            raise LucidError(
                f'Default connection "{default}" is not among the configured connections',
                code="E_UNMANAGED_DB_CONNECTION",
            )
        built = {name: Connection(name, cfg, self._emitter) for name, cfg in configs.items()}
        old = list(self._connections.values())
        self._connections = built
        self._clients = {}
        self._default = default
        self._lazy_load_guard = guard
        for conn in old:
            self._retire(conn)

    @property
    def lazy_load_guard_mode(self) -> LazyLoadGuard | None:
        """The N+1 guard's mode here: the innermost ``lazy_load_guard()`` block's, else the
        configured one (``None``: off)."""
        mode = _GUARD_BLOCK.get()
        if mode is None:
            return self._lazy_load_guard
        return None if mode == "off" else mode

    @contextmanager
    def lazy_load_guard(self, mode: LazyLoadGuard | None = "raise") -> Iterator[None]:
        """A block with the N+1 guard in ``mode`` (``None`` turns it off), whatever
        ``configure()`` said — for tests: ``with db.lazy_load_guard(): ...``. Per task (a
        context variable)."""
        token = _GUARD_BLOCK.set(_check_guard(mode) or "off")
        try:
            yield
        finally:
            _GUARD_BLOCK.reset(token)

    def _retire(self, conn: Connection) -> None:
        """Close the pools of a replaced connection. configure() is synchronous, so the closing
        is scheduled on the running loop when the pools belong to it (the drivers then say
        goodbye to the server properly); pools of another loop, closed or idle, cannot be
        awaited from here and are dropped (the garbage collector closes their sockets)."""
        if conn.closed:
            return
        loop = running_loop()
        owner = conn.engines_loop()
        if loop is not None and owner in (loop, None):
            task = loop.create_task(conn.close())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        else:
            conn.closed = True
            conn.abandon()

    @property
    def is_configured(self) -> bool:
        return bool(self._connections)

    @property
    def primary_connection_name(self) -> str:
        """The default connection's name."""
        if self._default is None:
            raise LucidError(
                "The database is not configured: call db.configure(url=...) first",
                code="E_UNMANAGED_DB_CONNECTION",
            )
        return self._default

    def get_connection(self, name: str | None = None) -> Connection:
        """The ``Connection`` named ``name`` (default: the ``using()`` scope's, else the
        primary one)."""
        key = name or self._using.get() or self.primary_connection_name
        found = self._connections.get(key)
        if found is None:
            raise LucidError(
                f'Cannot find "{key}" connection: it is not configured (configured: '
                f"{', '.join(sorted(self._connections)) or 'none'})",
                code="E_UNMANAGED_DB_CONNECTION",
            )
        return found

    def connection(
        self, name: str | None = None, *, mode: Literal["write"] | None = None
    ) -> QueryClient:
        """The query client of connection ``name`` (default: the ``using()`` scope's, else the
        primary one). ``mode="write"``: a client whose reads go to the write side too (a read
        that must see the latest writes on a connection with replicas): ``User.query(client=
        db.connection(mode="write"))``."""
        conn = self.get_connection(name)
        if mode is not None:
            return self._write_client(conn, mode)
        client = self._clients.get(conn.name)
        if client is None:
            client = self._clients[conn.name] = QueryClient(conn)
        return client

    def engine(self, name: str | None = None) -> AsyncEngine:
        """The SQLAlchemy ``AsyncEngine`` of the write side of ``name`` (for DDL and tooling)."""
        return self.get_connection(name).write_engines().engine

    def dialect_name(self, name: str | None = None) -> str:
        """``"sqlite"``, ``"postgresql"`` or ``"mysql"``."""
        return self.get_connection(name).dialect_name

    # -- builders ------------------------------------------------------------------------------
    def query(self, connection: str | None = None) -> DatabaseQueryBuilder:
        """A select query builder: ``db.query().from_("users")``."""
        return self.connection(connection).query()

    def from_(self, table: Any, connection: str | None = None) -> DatabaseQueryBuilder:
        """A select query builder for ``table``: ``await db.from_("users").where("id", 1)``."""
        return self.connection(connection).from_(table)

    def insert_query(self, connection: str | None = None) -> InsertQueryBuilder:
        """An insert query builder."""
        return self.connection(connection).insert_query()

    def table(self, table: str, connection: str | None = None) -> InsertQueryBuilder:
        """Lucid's ``db.table(name)``: an insert query builder for ``name``."""
        return self.connection(connection).table(table)

    def raw(self, sql: str, bindings: Any = None) -> Raw:
        """A raw SQL fragment to use inside queries: ``db.raw("count(*) > ?", [2])``."""
        from ..query.raw import Raw

        return Raw(sql, bindings)

    def raw_query(
        self,
        sql: str,
        bindings: Any = None,
        connection: str | None = None,
        *,
        read: bool = False,
    ) -> RawQueryBuilder:
        """An executable raw query: ``await db.raw_query("select * from users where id = ?",
        [1])`` returns dicts (or the affected row count for writes). It runs on the write
        connection; ``read=True`` sends it to a read replica when ``connection`` has some
        (routing never looks at the SQL)."""
        return self.connection(connection).raw_query(sql, bindings, read=read)

    # -- transactions --------------------------------------------------------------------------
    # Overloads so that ``await db.transaction(cb)`` has the callback's (awaited) result type and
    # ``await db.transaction()`` is a ``TransactionClient`` (``T | Awaitable[T]`` alone makes
    # mypy infer ``Never`` for an async callback).
    @overload
    def transaction(
        self,
        callback: None = None,
        *,
        isolation_level: str | None = None,
        connection: str | None = None,
    ) -> TransactionStarter[TransactionClient]: ...

    @overload
    def transaction(
        self,
        callback: Callable[[TransactionClient], Awaitable[T]],
        *,
        isolation_level: str | None = None,
        connection: str | None = None,
        retries: int = 0,
    ) -> TransactionStarter[T]: ...

    @overload
    def transaction(
        self,
        callback: Callable[[TransactionClient], T],
        *,
        isolation_level: str | None = None,
        connection: str | None = None,
        retries: int = 0,
    ) -> TransactionStarter[T]: ...

    def transaction(
        self,
        callback: Callable[[TransactionClient], Any] | None = None,
        *,
        isolation_level: str | None = None,
        connection: str | None = None,
        retries: int = 0,
    ) -> TransactionStarter[Any]:
        """Start a transaction: ``trx = await db.transaction()`` (unmanaged),
        ``async with db.transaction() as trx:`` (managed) or
        ``await db.transaction(callback)`` (managed; returns the callback's result).

        ``retries=N`` (callback form only) runs the callback again, in a new transaction, when
        the database gives up on one to keep concurrent transactions consistent (a
        serialization failure or a deadlock): up to ``N`` extra attempts after a jittered
        backoff, then ``TransactionConflictError`` naming the attempts. The callback may run
        several times: keep side effects other than its queries out of it."""
        return TransactionStarter(
            self.get_connection(connection), callback, isolation_level, retries=retries
        )

    # -- global transactions (test isolation) ---------------------------------------------------
    async def begin_global_transaction(
        self, connection: str | None = None, *, isolation_level: str | None = None
    ) -> TransactionClient:
        """Open a transaction that every query and model operation on ``connection`` (default:
        the primary one) joins, from any task, until ``rollback_global_transaction()`` (or
        ``commit_global_transaction()``); ``db.transaction()`` opens savepoints inside it.
        Meant for tests (``lucid_orm.testing``): one connection serves everything meanwhile.
        Returns the open one when there already is one (as Lucid).

        Raises ``LucidError`` (``E_RUNTIME_EXCEPTION``) when the current task is inside a
        transaction of its own on an in-memory SQLite connection."""
        conn = self.get_connection(connection)
        existing: TransactionClient | None = conn.global_transaction()
        if existing is not None:
            return existing
        if conn.ambient_transaction() is not None:
            raise LucidError(
                f'Cannot begin a global transaction on "{conn.name}": this task is inside a '
                "transaction on it; begin the global transaction first"
            )
        trx = await TransactionClient.begin(conn, isolation_level)
        conn.owner = (None, trx)
        return trx

    def global_transaction(self, connection: str | None = None) -> TransactionClient | None:
        """The open global transaction of ``connection`` (default: the primary one), or
        ``None``."""
        found: TransactionClient | None = self.get_connection(connection).global_transaction()
        return found

    async def commit_global_transaction(self, connection: str | None = None) -> None:
        """Commit the global transaction of ``connection``; raises ``LucidError`` when none is
        open."""
        await self._open_global(connection, "commit").commit()

    async def rollback_global_transaction(self, connection: str | None = None) -> None:
        """Roll back the global transaction of ``connection``, discarding everything done
        since ``begin_global_transaction()``; raises ``LucidError`` when none is open."""
        await self._open_global(connection, "rollback").rollback()

    def _open_global(self, connection: str | None, action: str) -> TransactionClient:
        trx = self.global_transaction(connection)
        if trx is None:
            raise LucidError(
                f"Cannot {action} a non-existing global transaction. Make sure you are not "
                f'calling "{action}_global_transaction" twice'
            )
        return trx

    # -- tables from models (tests, prototypes) -------------------------------------------------
    async def create_tables(
        self,
        *models: type[BaseModel],
        if_not_exists: bool = False,
        connection: str | None = None,
    ) -> list[str]:
        """Create the tables of ``models`` on ``connection`` (default: the primary one), the
        referenced tables first: ``await db.create_tables(User, Post)``. Columns, types,
        nullability (``X | None`` is nullable), the primary key and the foreign keys that
        ``belongs_to``/``has_one``/``has_many`` between the given models imply
        (``lucid_orm.schema.models`` says what is inferred). ``if_not_exists=True`` leaves
        existing tables as they are. Returns the table names in creation order. For tests and
        prototypes: an application's schema belongs in migrations
        (``lucid-orm make:migration NAME --auto`` writes one from the models)."""
        from ..schema.models import create_tables

        return await create_tables(self.connection(connection), models, if_not_exists=if_not_exists)

    async def drop_tables(
        self, *models: type[BaseModel], connection: str | None = None
    ) -> list[str]:
        """Drop the tables of ``models`` that exist, referencing tables first; returns the
        names in the order dropped."""
        from ..schema.models import drop_tables

        return await drop_tables(self.connection(connection), models)

    # -- scale-out -----------------------------------------------------------------------------
    def _write_client(self, conn: Connection, mode: object) -> QueryClient:
        if mode != "write":
            raise LucidError(
                f'db.connection() mode must be "write" or None, got {mode!r}',
                code="E_INVALID_ARGUMENT",
            )
        key = f"{conn.name}\0write"
        client = self._clients.get(key)
        if client is None:
            client = self._clients[key] = QueryClient(conn, primary=True)
        return client

    def sticky_scope(self) -> StickyScope:
        """A read-your-writes scope for ``sticky`` connections: ``async with
        db.sticky_scope(): ...`` (or ``with``). After a write (or a transaction) through a
        sticky connection inside it, the scope's reads on that connection go to the write side;
        a new scope starts clean. The scope is a context variable: each asyncio task has its
        own (a task sees the writes made before it started, not those of other tasks).
        ``lucid_orm.contrib.fastapi.StickyScopeMiddleware`` opens one per request."""
        return StickyScope()

    # -- events --------------------------------------------------------------------------------
    def on_query(self, listener: QueryListener) -> Callable[[], None]:
        """Call ``listener(QueryEvent)`` for every statement; returns an unsubscribe function."""
        return self._emitter.subscribe(listener)

    # -- shutdown ------------------------------------------------------------------------------
    async def close(self, name: str | None = None) -> None:
        """Close the pools of every connection (or of ``name``)."""
        targets = [self.get_connection(name)] if name else list(self._connections.values())
        for conn in targets:
            await conn.close()
        loop = asyncio.get_running_loop()
        pending = [task for task in self._closing if task.get_loop() is loop]
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    async def __aenter__(self) -> Database:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- shards --------------------------------------------------------------------------------
    def using(self, name: str) -> UsingScope:
        """A scope in which connection ``name`` is the default one: ``with db.using("shard_2"):``
        (or ``async with``). Inside it, whatever names no connection runs there — models
        without a ``connection`` class option (``Model.query()``, ``find``, ``create``…),
        ``db.from_()``, ``db.query()``, ``db.raw_query()``, ``db.transaction()``. An explicit
        ``connection=``/``client=``, a model's ``shard_for`` or ``connection`` option, and the
        connection an instance was read or written with all win over it. Per task (a context
        variable): tasks started inside inherit it. Raises ``LucidError``
        (``E_UNMANAGED_DB_CONNECTION``) when ``name`` is not configured."""
        return UsingScope(self, name)

    async def each_shard(
        self, names: Iterable[str], callback: Callable[[str], Awaitable[T]]
    ) -> dict[str, T]:
        """Scatter-gather: run ``await callback(name)`` once per connection of ``names``,
        concurrently, each inside ``db.using(name)``; returns ``{name: result}`` in the order
        of ``names``. Every callback runs to its end; when some raised, the first of those
        errors (in the order of ``names``) is raised after the others finished, with a note
        naming its shard. Each callback has its own connections (one task per shard): the
        results are not one transaction. Unknown names raise ``LucidError`` before any runs."""
        if isinstance(names, str):
            raise LucidError(
                f'each_shard() takes a list of connection names, got the string "{names}"',
                code="E_INVALID_ARGUMENT",
            )
        shards = list(dict.fromkeys(names))
        for name in shards:
            if not isinstance(name, str):
                raise LucidError(
                    f"each_shard() takes connection names, got {name!r}",
                    code="E_INVALID_ARGUMENT",
                )
            self.get_connection(name)

        async def one(name: str) -> T:
            with self.using(name):
                return await callback(name)

        results = await asyncio.gather(*(one(n) for n in shards), return_exceptions=True)
        failed = [(n, r) for n, r in zip(shards, results, strict=True) if isinstance(r, Exception)]
        if failed:
            name, error = failed[0]
            names_failed = ", ".join(n for n, _ in failed)
            error.add_note(f'each_shard: raised on shard "{name}" (failed: {names_failed})')
            raise error
        for result in results:
            if isinstance(result, BaseException):  # a callback's own cancellation
                raise result
        return dict(zip(shards, cast("list[T]", results), strict=True))


class UsingScope:
    """``db.using(name)``: a sync or async context manager that makes ``name`` the default
    connection inside it (see ``Database.using``)."""

    def __init__(self, database: Database, name: str) -> None:
        database.get_connection(name)
        self._database = database
        self.name = name
        self._tokens: list[Token[str | None]] = []

    def __enter__(self) -> str:
        self._database.get_connection(self.name)
        self._tokens.append(self._database._using.set(self.name))
        return self.name

    def __exit__(self, *exc_info: object) -> None:
        self._database._using.reset(self._tokens.pop())

    async def __aenter__(self) -> str:
        return self.__enter__()

    async def __aexit__(self, *exc_info: object) -> None:
        self.__exit__()


db = Database()
"""The process-wide database manager."""
