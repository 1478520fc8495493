"""``Dialect``: what one database does differently, as capabilities and operations.

Each connection owns one (``connection.dialect_ops``; ``client.dialect`` stays SQLAlchemy's
dialect). The defaults here are the portable forms, built from SQLAlchemy Core; ``sqlite.py``,
``postgresql.py`` and ``mysql.py`` override what their database does otherwise.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, cast, overload

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy import insert
from sqlalchemy.engine import Connection as SyncConnection
from sqlalchemy.engine import Engine as SyncEngine
from sqlalchemy.engine.interfaces import Dialect as SADialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import ColumnElement, Insert, TableClause

from ...errors import LucidError
from ..executor import begin_inline
from .json import JsonOps

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncTransaction

    from ...query.client import Client
    from ..transaction import TransactionClient


# The parameter sets of a multi-row write, and the key column it returns.
Rows = Sequence[Mapping[str, Any]]
Key = ColumnElement[Any]
# The label of ``upsert_inserted``'s returned column (last in the row).
UPSERT_INSERTED = "lucid_upsert_inserted"
# What an upsert sets on a duplicate: column names (from the inserted row), or column -> value.
Merge = Sequence[str] | Mapping[str, Any]


class ColumnRows(Sequence[tuple[Any, ...]]):
    """The rows ``(key, *values)`` of a bulk UPDATE held column by column (``columns``: the
    keys, then each column's values), as a batch whose every row changed the same columns
    has them: the row tuples are made only when read, and PostgreSQL's driver-level bulk
    UPDATE, which binds one array per column, takes the columns as they are."""

    __slots__ = ("_rows", "columns")

    def __init__(self, columns: Sequence[Sequence[Any]]) -> None:
        self.columns = columns
        self._rows: list[tuple[Any, ...]] | None = None

    def _all(self) -> list[tuple[Any, ...]]:
        rows = self._rows
        if rows is None:
            rows = self._rows = list(zip(*self.columns, strict=True))
        return rows

    def __len__(self) -> int:
        return len(self.columns[0])

    @overload
    def __getitem__(self, index: int) -> tuple[Any, ...]: ...

    @overload
    def __getitem__(self, index: slice) -> list[tuple[Any, ...]]: ...

    def __getitem__(self, index: int | slice) -> tuple[Any, ...] | list[tuple[Any, ...]]:
        return self._all()[index]

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self._all())


def inserted_columns(values: Rows | Mapping[str, Any]) -> list[str]:
    row = values if isinstance(values, Mapping) else values[0]
    return [c if isinstance(c, str) else c.name for c in row]


def merge_set(
    merge: Merge | None,
    inserted: Sequence[str],
    conflict: Sequence[str],
    incoming: Callable[[str], Any],
) -> dict[str, Any]:
    """The ``SET`` of an upsert's update: ``incoming(name)`` is the dialect's "value the row
    would have had" (``excluded.name``, ``VALUES(name)``)."""
    if merge is None:
        return {c: incoming(c) for c in inserted if c not in conflict}
    if isinstance(merge, Mapping):
        return dict(merge)
    if isinstance(merge, str):
        merge = [merge]
    unknown = [c for c in merge if c not in inserted]
    if unknown:
        raise LucidError(
            f'merge() names "{unknown[0]}", which the insert does not set; pass a dict to set '
            "other values",
            code="E_INVALID_ARGUMENT",
        )
    return {c: incoming(c) for c in merge}


@dataclass(frozen=True, slots=True)
class AdvisoryLock:
    """A session-level lock of the server: ``acquire`` answers 1/true when taken (without
    waiting), ``release`` gives it back; ``description`` names it in messages. ``holder``
    answers the id of the session holding it (``NULL`` when free) and ``end_session(id)`` is
    the statement ending that session (``migration:unlock`` on a hung runner)."""

    acquire: sa.Select[Any]
    release: sa.Select[Any]
    description: str
    holder: sa.Select[Any]
    end_session: Callable[[int], sa.Executable]


@dataclass(slots=True)
class EngineSetup:
    """What ``Dialect.engine_options`` adjusts for one engine of connection ``name``."""

    name: str
    cfg: Mapping[str, Any]
    memory: bool
    kwargs: dict[str, Any]
    connect_args: dict[str, Any]


class Dialect:
    """The capabilities and dialect-specific operations of one database kind.

    Capabilities (class attributes): ``returning`` (``INSERT … RETURNING``),
    ``transactional_ddl`` (DDL rolls back with its transaction), ``isolation_levels``
    (per-transaction isolation levels), ``loop_bound`` (driver connections belong to the event
    loop that opened them), ``integrity_error_codes`` (driver error codes that are constraint
    violations although the driver files them elsewhere), ``conflict_error_codes`` (driver
    error codes or SQLSTATEs that mean the server gave up on the transaction to keep concurrent
    ones consistent: ``TransactionConflictError``).

    Extension point: subclass, override what differs, and register the instance in
    ``dialects/__init__.py`` under SQLAlchemy's backend name.
    """

    name: ClassVar[str] = "default"
    returning: ClassVar[bool] = True
    transactional_ddl: ClassVar[bool] = False
    isolation_levels: ClassVar[bool] = True
    loop_bound: ClassVar[bool] = True
    integrity_error_codes: ClassVar[frozenset[int]] = frozenset()
    conflict_error_codes: ClassVar[frozenset[int | str]] = frozenset()
    # The server's port when the URL names none (``server.port`` of tracing spans).
    default_port: ClassVar[int | None] = None
    # A failed statement aborts the whole transaction until a rollback (PostgreSQL).
    aborts_on_error: ClassVar[bool] = False
    # Outside transactions: COMMIT after a write / after a read, before the connection goes
    # back to the pool (whose reset would roll back).
    commit_after_write: ClassVar[bool] = True
    commit_after_read: ClassVar[bool] = False
    # A discarded connection's server thread is killed (MySQL: its locks go at once).
    kill_on_discard: ClassVar[bool] = False
    # A connection runs other statements while a server-side cursor of it is open (not
    # MySQL's unbuffered one, which a transaction drains into its stream's buffer before it
    # runs another statement: ``TransactionClient.stream``).
    interleaved_cursors: ClassVar[bool] = True
    # A server-side cursor lives only inside a transaction (PostgreSQL): a stream outside one
    # reads in a transaction of its own instead of in autocommit.
    cursors_need_transaction: ClassVar[bool] = False
    # JSON conditions and extraction (dialects/json.py).
    json: ClassVar[JsonOps] = JsonOps()
    # A preload's static statement (orm/preloader.py) takes a single key as a plain
    # ``IN (?)`` rather than as the one parameter ``bind_keys`` sends a list as, where that
    # form costs the server a fixed price per statement (SQLite's ``json_each``).
    plain_single_key: ClassVar[bool] = False
    # NULL sorts above every value (NULLS LAST ascending, FIRST descending: PostgreSQL), not
    # below (SQLite, MySQL): cursor pagination's NULL-aware keyset (query/cursor.py).
    nulls_sort_high: ClassVar[bool] = False
    # One value: how many seconds a streaming replica's replay is behind (0 when it has
    # replayed all it received, or is no replica); None: the dialect cannot tell
    # (``max_replica_lag`` is refused). Run on the driver connection (replicas.LagProbe).
    replica_lag_sql: ClassVar[str | None] = None

    # -- connections ---------------------------------------------------------------------------
    def engine_options(self, setup: EngineSetup) -> None:
        """Adjust ``setup.kwargs`` (``create_async_engine`` keyword arguments) and
        ``setup.connect_args`` (the driver's) in place."""

    def inline_reads(self, cfg: Mapping[str, Any], memory: bool) -> bool:
        """Whether lean reads of a connection configured by ``cfg`` may run on the event-loop
        thread (``executor.fetch_sqlite``; SQLite only)."""
        return False

    def autocommit_options(self) -> dict[str, Any]:
        """Execution options of the engine that runs statements outside transactions."""
        return {"lucid_autocommit": True}

    def install_events(self, engine: SyncEngine, cfg: Mapping[str, Any], memory: bool) -> None:
        """Listen to the engine's pool/connection events (session settings on connect)."""

    def isolation_level(self, level: str) -> str:
        """SQLAlchemy's spelling of a transaction isolation level written by the user
        (``"read_committed"`` → ``"READ COMMITTED"``)."""
        return " ".join(level.replace("_", " ").split()).upper()

    def is_disconnect(self, exc: BaseException, driver: Any, dialect: SADialect) -> bool:
        """Whether ``exc``, raised by the driver connection ``driver`` on the lean read path,
        means the server dropped the connection."""
        return isinstance(exc, OSError)

    def is_integrity_code(self, code: Any) -> bool:
        """Whether a driver error code means a constraint violation."""
        return isinstance(code, int) and code in self.integrity_error_codes

    def advisory_lock(self, name: str, database: str | None) -> AdvisoryLock | None:
        """The statements of a server-side session lock named ``name`` on ``database``
        (the migrator's lock); ``None`` where the server has none (SQLite: a lock table)."""
        return None

    # -- keys as parameters (query/keys.py) ----------------------------------------------------
    def keys_as_one_parameter(self, keys: Sequence[Any]) -> bool:
        """Whether ``bind_keys`` sends ``keys`` as one parameter (no chunking needed)."""
        return False

    def bind_keys(
        self, column: ColumnElement[Any], keys: list[Any], dialect: SADialect, negate: bool
    ) -> ColumnElement[Any]:
        """``column IN (keys)`` (``NOT IN`` with ``negate``): one parameter per key here."""
        return column.not_in(keys) if negate else column.in_(keys)

    def key_parameter(self, column: ColumnElement[Any], keys: list[Any], dialect: SADialect) -> Any:
        """The value ``bind_keys`` binds ``keys`` (not empty) of ``column`` as, when it binds
        them as one parameter (a statement compiled once then takes it as is: the preload's
        static statement); ``None`` when it binds one parameter per key (here)."""
        return None

    def bind_rows(
        self, columns: list[Key], rows: list[tuple[Any, ...]], dialect: SADialect, negate: bool
    ) -> Key | None:
        """``(a, b) IN (rows)`` with the rows bound as few parameters, or ``None`` for the
        plain row-value list (rows all have ``len(columns)`` values and are not empty)."""
        return None

    # -- writes --------------------------------------------------------------------------------
    async def insert_many_returning(
        self, trx: TransactionClient, table: TableClause, params: Rows, key: Key, model: str | None
    ) -> list[Any]:
        """Insert ``params`` (dicts with the same keys) into ``table`` inside the transaction
        ``trx``; one row ``(key,)`` per dict, in ``params`` order (SQLAlchemy's
        "insertmanyvalues" with ``sort_by_parameter_order``)."""
        stmt = insert(table).returning(key, sort_by_parameter_order=True)
        result = await trx.execute(stmt, write=True, model=model, params=params)
        return list(result.rows)

    async def insert_tuples_returning(
        self,
        trx: TransactionClient,
        table: TableClause,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        key: Key,
        model: str | None,
    ) -> list[Any]:
        """``insert_many_returning`` of rows given as value tuples in ``columns`` order (a
        bulk insert that built no dict per row); here as those dicts."""
        params = [dict(zip(columns, row, strict=True)) for row in rows]
        return await self.insert_many_returning(trx, table, params, key, model)

    # -- upsert -------------------------------------------------------------------------------
    def upsert_statement(
        self,
        table: TableClause,
        values: Rows | Mapping[str, Any],
        conflict: Sequence[str],
        merge: Merge | None,
        ignore: bool = False,
    ) -> Insert:
        """``INSERT`` of ``values`` (one row or rows with the same keys, column name -> value)
        that resolves a duplicate of ``conflict`` (column names of a unique index) instead of
        failing: ``ignore`` keeps the existing row, else ``merge`` sets its columns (``None``:
        every inserted column but ``conflict``; names: from the inserted row; a dict: column ->
        value or expression). The portable form here is PostgreSQL's and SQLite's ``ON CONFLICT
        (…) DO NOTHING`` / ``DO UPDATE SET c = excluded.c``, built by ``insert_for``."""
        stmt: Any = self.insert_for(table).values(values)
        if ignore:
            return cast(Insert, stmt.on_conflict_do_nothing(index_elements=list(conflict) or None))
        if not conflict:
            raise LucidError(
                "on_conflict().merge() needs the conflict columns (a unique index): "
                'on_conflict("email").merge()',
                code="E_INVALID_ARGUMENT",
            )
        inserted = inserted_columns(values)
        sets = merge_set(merge, inserted, conflict, lambda name: stmt.excluded[name])
        if not sets:
            # Nothing to change: rewrite a key column with itself, so that RETURNING still
            # answers the existing row (DO NOTHING would return none).
            sets = {conflict[0]: stmt.excluded[conflict[0]]}
        return cast(Insert, stmt.on_conflict_do_update(index_elements=list(conflict), set_=sets))

    def upsert_bound(
        self,
        table: TableClause,
        rows: Rows,
        conflict: Sequence[str],
        merge: Sequence[str],
        dialect: SADialect,
    ) -> Insert | None:
        """``upsert_statement`` of ``rows`` (dicts with the same keys, column name -> value)
        with the rows bound as one parameter (``INSERT … SELECT`` from it), so that its SQL is
        the same for any row count; ``None`` where the dialect can't bind these values so
        exactly (the caller sends the rows as parameter sets instead)."""
        return None

    async def upsert_fast(
        self,
        trx: Client,
        table: TableClause,
        rows: Rows,
        conflict: Sequence[str],
        merge: Sequence[str],
        returning: Sequence[ColumnElement[Any]],
        model: str | None,
    ) -> tuple[list[str], list[Sequence[Any]]] | None:
        """``upsert_statement`` of ``rows`` (dicts with the same keys, column name -> value)
        ``RETURNING returning``, run on the driver connection of ``trx`` (a transaction, or
        the caller's ``QueryClient`` where ``writes_alone`` said so): ``(keys, rows)``
        as ``ExecResult`` would hold them, or ``None`` where the dialect has no such fast path
        (or it is off, ``LUCID_FAST_PATHS=0``): the caller runs the statement through
        SQLAlchemy instead."""
        return None

    def upsert_inserted(self) -> ColumnElement[Any] | None:
        """An expression an upsert's ``RETURNING`` can add, true for a row the statement
        inserted and false for one it updated, for the write journal (a rollback undoes the
        two differently); ``None`` where the database cannot tell."""
        return None

    def upserts_fast(self, client: Client) -> bool:
        """Whether ``upsert_fast`` runs for statements of ``client`` (checked before the
        caller opens the transaction it needs)."""
        return False

    def writes_alone(self, client: Client, rows: int, width: int) -> bool:
        """Whether a bulk write of one statement (``rows`` rows of ``width`` values) outside
        a transaction runs without one, with no user code around it: the caller then passes
        ``upsert_fast`` its ``QueryClient`` instead of opening a transaction for it, or calls
        ``insert_tuples_alone``."""
        return False

    async def insert_tuples_alone(
        self,
        client: Client,
        table: TableClause,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        key: Key,
        model: str | None,
    ) -> list[Any] | None:
        """``insert_tuples_returning`` as one statement outside a transaction, where
        ``writes_alone`` said so: each row's key in ``rows`` order, or ``None`` when it can't
        be done that way (nothing was written: the caller takes its transaction's path)."""
        return None

    def bulk_update_statement(
        self, table: TableClause, key: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> sa.Update:
        """One ``UPDATE`` giving each row its own values: ``rows`` are ``(key, *values)`` in
        ``columns`` order. Portable form: ``SET c = CASE key WHEN k1 THEN v1 … END … WHERE key
        IN (k1, …)``; the values are bound with their column's type."""
        pk = table.c[key]
        sets = {}
        for i, name in enumerate(columns, start=1):
            col = table.c[name]
            whens = [(sa.literal(r[0], pk.type), sa.literal(r[i], col.type)) for r in rows]
            sets[name] = sa.case(*[(pk == k, v) for k, v in whens], else_=col)
        return sa.update(table).values(sets).where(pk.in_([r[0] for r in rows]))

    def bulk_update_bound(
        self,
        table: TableClause,
        key: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        dialect: SADialect,
    ) -> sa.Update | None:
        """``bulk_update_statement`` for any number of ``rows`` with the rows bound as a few
        parameters (one per column, or one in all), so that its SQL is the same for any row
        count and compiles once; ``None`` where the dialect can't bind these values so
        exactly (the caller then sends ``bulk_update_statement`` in chunks)."""
        return None

    async def begin(
        self, conn: AsyncConnection, fast: bool, pipelined: bool = False
    ) -> tuple[AsyncTransaction, asyncio.Future[Any] | None]:
        """Begin the root transaction of a newly checked-out ``conn`` (``fast``: the
        connection's fast paths are on): SQLAlchemy's ``conn.begin()``. A dialect may send
        its BEGIN on the driver connection instead, the same statement in fewer trips, and
        when ``pipelined``, without waiting for it: then it also returns a future of its
        outcome (``None``, or the ``SQLAlchemyError`` it raised), which the transaction
        awaits before anything else runs on the connection (``TransactionClient._begun``).
        With the fast paths on, a BEGIN that sends nothing runs without SQLAlchemy's
        greenlet (``executor.begin_inline``)."""
        if fast:
            trx = begin_inline(conn)
            if trx is not None:
                return trx, None
        return await conn.begin(), None

    async def bulk_update_fast(
        self,
        trx: TransactionClient,
        table: TableClause,
        key: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        model: str | None,
    ) -> int | None:
        """Fast path of ``bulk_update_bound``: run it on the transaction's driver connection
        and return the matched row count, or ``None`` when the dialect has no such path (or
        the fast paths are off, or the values can't be bound so): the caller then runs
        ``bulk_update_bound`` through SQLAlchemy, its twin."""
        return None

    def bulk_update_parameters(self, columns: int) -> int:
        """How many rows one ``bulk_update_statement`` takes (the driver's parameter limit,
        32,766 on SQLite and PostgreSQL, divided by the parameters of one row)."""
        return max(1, min(1000, 30000 // (2 * columns + 1)))

    def insert_for(self, table: TableClause) -> Any:
        """The dialect's ``INSERT`` construct (``sqlalchemy.dialects.<name>.insert``)."""
        raise LucidError(f"Upserts are not supported on {self.name}", code="E_UNSUPPORTED")

    def is_unique_violation(self, exc: BaseException) -> bool:
        """Whether ``exc`` (an ``IntegrityError``) is a duplicate of a unique index or key, not
        another constraint (a foreign key, NOT NULL)."""
        original = getattr(exc, "original", None)
        return "unique" in str(original if original is not None else exc).lower()

    def is_deadlock(self, exc: BaseException) -> bool:
        """Whether ``exc`` says the server rolled the transaction back to break a deadlock."""
        return False

    def missing_conflict_index(self, exc: BaseException) -> bool:
        """Whether ``exc`` says that no unique index matches an ``ON CONFLICT`` target."""
        text = str(exc).lower()
        return "on conflict" in text and ("no unique" in text or "does not match" in text)

    async def truncate(self, client: Client, table: str, cascade: bool = False) -> None:
        """Remove every row of ``table`` (``TRUNCATE``; ``cascade`` where the database has it)."""
        await client.execute(truncate_statement(named_table(table)), write=True)

    def drop_all_tables(self, conn: SyncConnection, keep: Collection[str] = ()) -> list[str]:
        """Drop every table of the default schema but ``keep``, whatever their foreign keys
        (run inside a transaction with ``run_sync``); returns the names dropped, in the
        inspector's order."""
        names = [n for n in table_names(conn) if n not in keep]
        self.drop_tables(conn, names)
        return names

    def drop_tables(self, conn: SyncConnection, names: list[str]) -> None:
        """Drop the tables ``names`` (they exist), foreign keys between them ignored."""
        meta = sa.MetaData()
        for name in names:
            conn.execute(sa.schema.DropTable(sa.Table(name, meta), if_exists=True))

    def truncate_all_tables(self, conn: SyncConnection, keep: Collection[str] = ()) -> list[str]:
        """Delete every row of every table but ``keep`` and restart identity sequences (run
        inside a transaction with ``run_sync``); returns the names, sorted."""
        tables = [t for t in in_drop_order(reflect(conn)) if t.name not in keep]
        if tables:
            self.truncate_tables(conn, tables)
        return sorted(t.name for t in tables)

    def truncate_tables(self, conn: SyncConnection, tables: list[sa.Table]) -> None:
        """Empty ``tables`` (children first) and restart their identities."""
        for table in tables:
            conn.execute(truncate_statement(table))


class _Truncate(sa.sql.expression.Executable, sa.sql.expression.ClauseElement):
    """``TRUNCATE TABLE t [, u] [RESTART IDENTITY] [CASCADE]``: Core has no construct for it."""

    inherit_cache = False

    def __init__(
        self, tables: Sequence[TableClause], *, restart: bool = False, cascade: bool = False
    ) -> None:
        self.tables = tables
        self.restart = restart
        self.cascade = cascade


@compiles(_Truncate)
def _compile_truncate(element: _Truncate, compiler: Any, **kw: Any) -> str:
    names = ", ".join(compiler.preparer.format_table(t) for t in element.tables)
    sql = "TRUNCATE TABLE " + names
    if element.restart:
        sql += " RESTART IDENTITY"
    if element.cascade:
        sql += " CASCADE"
    return sql


def named_table(name: str) -> TableClause:
    """The table ``name`` names, ``schema.table`` included (each part quoted on its own)."""
    schema, _, table = name.rpartition(".")
    return sa.table(table, schema=schema or None)


def truncate_statement(
    *tables: TableClause, restart: bool = False, cascade: bool = False
) -> sa.sql.expression.Executable:
    """A ``TRUNCATE TABLE`` statement for ``tables`` (names quoted by the dialect)."""
    return _Truncate(tables, restart=restart, cascade=cascade)


def table_names(conn: SyncConnection) -> list[str]:
    """The tables of the default schema, in the inspector's order."""
    names: list[str] = sa.inspect(conn).get_table_names()
    return names


def reflect(conn: SyncConnection) -> sa.MetaData:
    """The default schema's tables with their foreign keys."""
    metadata = sa.MetaData()
    with warnings.catch_warnings():
        # Unknown column types and unsortable foreign-key cycles are fine for dropping.
        warnings.simplefilter("ignore", sa_exc.SAWarning)
        metadata.reflect(conn)
    return metadata


def in_drop_order(metadata: sa.MetaData) -> list[sa.Table]:
    """``metadata``'s tables, those referencing others first."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sa_exc.SAWarning)
        return list(reversed(metadata.sorted_tables))


def joined_update(
    table: TableClause, key: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> sa.Update:
    """``UPDATE t SET c = v.c FROM (SELECT ? AS id, ? AS c UNION ALL SELECT ?, ? …) AS v WHERE
    t.id = v.id`` (MySQL: ``UPDATE t, (…) AS v SET …``): one join on the key instead of a
    CASE scanned per row. Each value is bound with its column's type."""
    names = [key, *columns]
    types = [table.c[n].type for n in names]
    selects = [
        sa.select(*[sa.literal(v, t).label(n) for v, t, n in zip(r, types, names, strict=True)])
        for r in rows
    ]
    source = (selects[0] if len(selects) == 1 else sa.union_all(*selects)).subquery("lucid_rows")
    return update_from(table, key, columns, source)


def update_from(table: TableClause, key: str, columns: Sequence[str], source: Any) -> sa.Update:
    """``UPDATE table SET c = source.c … WHERE table.key = source.key``: the bulk UPDATE every
    dialect builds around its own row source (a union, ``VALUES``, ``unnest``, ``json_each``,
    ``JSON_TABLE``)."""
    return (
        sa.update(table)
        .values({c: source.c[c] for c in columns})
        .where(table.c[key] == source.c[key])
    )
