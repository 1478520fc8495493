"""The migrator (Lucid's ``MigrationRunner``): loads migration files, runs them in batches
and records them in the migrations table, one transaction per migration where the dialect
has transactional DDL, under a lock that keeps two runners from migrating at once."""

from __future__ import annotations

import inspect
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from .._loader import UnloadableFileError, defined_subclasses, load_file
from ..database.ddl import ddl_transaction, reading_connection, run_sync
from ..database.dialects import dialect_of
from ..database.dialects.base import AdvisoryLock
from ..database.manager import db
from ..errors import IntegrityError, LucidError, MigrationError, QueryError
from ..query.chainable import check_identifier
from .schema import BaseSchema

if TYPE_CHECKING:
    from ..database.connection import Connection
    from ..database.query_client import Client, QueryClient

Direction = Literal["up", "down"]


@dataclass(frozen=True)
class MigrationFile:
    """A migration file: its name (the file name without ``.py``), path and class."""

    name: str
    path: Path
    schema: type[BaseSchema]


@dataclass
class MigrationStatus:
    """One line of ``Migrator.status()``. ``corrupt``: recorded as run, but its file is gone."""

    name: str
    status: Literal["completed", "pending", "corrupt"]
    batch: int | None = None
    migrated_at: datetime | None = None
    path: Path | None = None


@dataclass
class MigrationEvent:
    """Progress of one migration, for ``on_event``: ``start``, then ``done`` or ``error``."""

    name: str
    phase: Literal["start", "done", "error"]
    duration_ms: float = 0.0
    sql: list[str] = field(default_factory=list)
    direction: Direction = "up"
    path: Path | None = None
    error: BaseException | None = None
    dry_run: bool = False


@dataclass
class MigratedFile:
    """A migration that ran (``up``) or was rolled back (``down``)."""

    name: str
    path: Path
    direction: Direction
    batch: int
    duration_ms: float
    sql: list[str] = field(default_factory=list)


@dataclass
class MigrationResult:
    """What a ``Migrator`` call did.

    ``files`` lists the migrations run and rolled back, in order (``migrated`` / ``reverted``
    split them); ``sql`` holds the statements of each (dry runs only). ``batch`` is the batch
    the run recorded (``None`` when nothing was pending); after a rollback, the latest batch
    left (0: none). ``dropped_tables``: what ``fresh()`` dropped (would drop, in a dry run).
    """

    files: list[MigratedFile] = field(default_factory=list)
    batch: int | None = None
    dry_run: bool = False
    dropped_tables: list[str] = field(default_factory=list)

    @property
    def migrated(self) -> list[MigratedFile]:
        return [f for f in self.files if f.direction == "up"]

    @property
    def reverted(self) -> list[MigratedFile]:
        return [f for f in self.files if f.direction == "down"]

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.files]

    @property
    def sql(self) -> dict[str, list[str]]:
        return {f.name: f.sql for f in self.files}

    @property
    def duration_ms(self) -> float:
        return sum(f.duration_ms for f in self.files)


@dataclass(frozen=True)
class _Row:
    id: int
    name: str
    batch: int
    migrated_at: datetime | None


EventListener = Callable[[MigrationEvent], Any]


class Migrator:
    """Runs the migrations of a folder on a connection::

        migrator = Migrator("database/migrations")
        result = await migrator.run()              # every pending file, as one new batch
        await migrator.rollback()                  # the last batch
        await migrator.rollback(batch=0)           # everything (same as reset())
        await migrator.rollback(step=2)            # the last two migrations
        await migrator.refresh()                   # reset + run
        await migrator.fresh()                     # drop every table, then run
        for line in await migrator.status(): ...

    ``path``: the folder of migration files, each ``<timestamp>_<name>.py`` defining one
    ``BaseSchema`` subclass, run in file-name order. ``connection``: the ``db`` connection
    name (default: the default one). ``table``: the migrations table (and ``<table>_lock``
    on SQLite). ``dry_run``: nothing is executed or recorded, the SQL of each file is
    returned. ``on_event``: called (or awaited) with a ``MigrationEvent`` as each file starts
    and ends.

    Raises ``MigrationError``: ``E_MIGRATIONS_LOCKED`` when another runner holds the lock,
    ``E_MIGRATION_FAILED`` when a migration fails (later files are not run),
    ``E_MIGRATION_CORRUPT`` when a rollback needs a file that is gone, ``E_INVALID_MIGRATION``
    when a file cannot be loaded.
    """

    def __init__(
        self,
        path: str | Path = "database/migrations",
        *,
        connection: str | None = None,
        table: str = "lucid_schema",
        dry_run: bool = False,
        on_event: EventListener | None = None,
    ) -> None:
        self.path = Path(path)
        self.connection_name = connection
        self.table_name = check_identifier(table, "table")
        self.dry_run = dry_run
        self.on_event = on_event
        meta = sa.MetaData()
        self._table = sa.Table(
            table,
            meta,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("name", sa.String(255), nullable=False),
            sa.Column("batch", sa.Integer, nullable=False),
            sa.Column("migration_time", sa.DateTime),
        )
        self._lock_table = sa.Table(
            f"{table}_lock",
            meta,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("locked_at", sa.DateTime),
        )

    # -- public API ----------------------------------------------------------------------------
    @property
    def client(self) -> QueryClient:
        """The query client of the connection the migrations run on."""
        return db.connection(self.connection_name)

    def files(self) -> list[MigrationFile]:
        """The migration files of ``path``, loaded, in the order they run."""
        if not self.path.is_dir():
            return []
        paths = sorted(
            (p for p in self.path.glob("*.py") if p.is_file() and not p.name.startswith("_")),
            key=lambda p: p.name,
        )
        return [MigrationFile(p.stem, p, _load(p)) for p in paths]

    async def run(self) -> MigrationResult:
        """Run every pending migration, as one new batch, in file-name order."""
        files = self.files()
        async with self._lock():
            return await self._run(files, assume_empty=False)

    async def rollback(self, batch: int | None = None, step: int | None = None) -> MigrationResult:
        """Roll back, newest first: the last batch by default; every batch above ``batch``
        (``batch=0``: all of them); or the last ``step`` migrations (``step`` wins over
        ``batch``). A recorded migration whose file is gone stops it before anything is rolled
        back (``E_MIGRATION_CORRUPT``)."""
        if step is not None and step < 1:
            raise LucidError("rollback(step=n) needs n >= 1", code="E_INVALID_ARGUMENT")
        if batch is not None and batch < 0:
            raise LucidError("rollback(batch=n) needs n >= 0", code="E_INVALID_ARGUMENT")
        files = self.files()
        async with self._lock():
            return await self._rollback(files, batch, step)

    async def reset(self) -> MigrationResult:
        """Roll back every migration."""
        return await self.rollback(batch=0)

    async def refresh(self) -> MigrationResult:
        """Roll back every migration, then run them all again (one lock for both)."""
        files = self.files()
        async with self._lock():
            reverted = await self._rollback(files, 0, None)
            result = await self._run(files, assume_empty=self.dry_run)
        result.files[:0] = reverted.files
        return result

    async def fresh(self) -> MigrationResult:
        """Drop every table of the connection's database (its default schema on PostgreSQL),
        without running ``down``, then run every migration."""
        files = self.files()
        async with self._lock():
            dropped = await self._wipe()
            result = await self._run(files, assume_empty=self.dry_run)
        result.dropped_tables = dropped
        return result

    async def status(self) -> list[MigrationStatus]:
        """Every migration, completed, pending or corrupt, ordered by name."""
        files = self.files()
        rows = await self._rows()
        recorded = {row.name: row for row in rows}
        known = {f.name for f in files}
        out: list[MigrationStatus] = []
        for file in files:
            row = recorded.get(file.name)
            if row is None:
                out.append(MigrationStatus(file.name, "pending", path=file.path))
            else:
                out.append(
                    MigrationStatus(file.name, "completed", row.batch, row.migrated_at, file.path)
                )
        for row in rows:
            if row.name not in known:
                out.append(MigrationStatus(row.name, "corrupt", row.batch, row.migrated_at))
        out.sort(key=lambda s: s.name)
        return out

    async def unlock(self) -> str | None:
        """Clear a stale migrations lock; returns what was cleared, ``None`` when no lock was
        held.

        On SQLite the lock is a row of ``<table>_lock``, which a runner that crashed leaves
        behind: it is deleted. On PostgreSQL and MySQL it is a session lock, gone as soon as
        the runner's session ends (a crashed runner leaves none); a session still holding it
        (a hung runner, a client the server has not yet seen vanish) is ended with
        ``pg_terminate_backend`` / ``KILL``. Only for a runner known to be dead or stuck: a
        live one would be cut off mid-migration.
        """
        connection = self._connection()
        lock = self._advisory_lock(connection)
        if lock is None:
            return await self._clear_lock_table()
        async with reading_connection(connection) as conn:
            session = (await conn.execute(lock.holder)).scalar()
            if session is None:
                return None
            try:
                await conn.execute(lock.end_session(int(session)))
            except sa_exc.DBAPIError as exc:  # e.g. not allowed to end another role's session
                raise LucidError(
                    f"Cannot end session {session}, which holds {lock.description}: {exc.orig}",
                    code="E_UNLOCK_FAILED",
                ) from exc
        return f"ended session {session}, which held {lock.description}"

    async def _clear_lock_table(self) -> str | None:
        table = self._lock_table
        if not await self._has_table(table.name):
            return None
        client = self.client
        rows = (await client.execute(sa.select(table.c.locked_at), write=True)).rows
        if not rows:
            return None
        await client.execute(sa.delete(table), write=True)
        taken = rows[0][0]
        when = f" taken at {taken:%Y-%m-%d %H:%M:%S} UTC" if taken else ""
        return f'removed the lock row of "{table.name}"{when}'

    # -- running -------------------------------------------------------------------------------
    def _connection(self) -> Connection:
        return db.get_connection(self.connection_name)

    async def _run(self, files: list[MigrationFile], *, assume_empty: bool) -> MigrationResult:
        if not self.dry_run:
            await self._create(self._table)
        rows = [] if assume_empty else await self._rows()
        done = {row.name for row in rows}
        pending = [f for f in files if f.name not in done]
        batch = max((row.batch for row in rows), default=0) + 1
        result = MigrationResult(batch=batch if pending else None, dry_run=self.dry_run)
        for file in pending:
            result.files.append(await self._execute(file, "up", batch, None))
        return result

    async def _rollback(
        self, files: list[MigrationFile], batch: int | None, step: int | None
    ) -> MigrationResult:
        rows = sorted(await self._rows(), key=lambda r: r.id, reverse=True)
        if step is not None:
            targets = rows[:step]
        else:
            if batch is None:
                batch = max((row.batch for row in rows), default=0) - 1
            targets = [row for row in rows if row.batch > batch]
        by_name = {f.name: f for f in files}
        missing = [row.name for row in targets if row.name not in by_name]
        if missing:
            names = ", ".join(f'"{n}"' for n in missing)
            raise MigrationError(
                f"Cannot roll back: the migration file of {names} is missing from "
                f'"{self.path}" (recorded in "{self.table_name}"). Restore the file, or delete '
                f"its row from the migrations table",
                code="E_MIGRATION_CORRUPT",
                file=missing[0],
            )
        result = MigrationResult(dry_run=self.dry_run)
        for row in targets:
            result.files.append(await self._execute(by_name[row.name], "down", row.batch, row.id))
        left = {row.id for row in targets}
        result.batch = max((row.batch for row in rows if row.id not in left), default=0)
        return result

    async def _execute(
        self, file: MigrationFile, direction: Direction, batch: int, row_id: int | None
    ) -> MigratedFile:
        def event(phase: Literal["start", "done", "error"], **details: Any) -> MigrationEvent:
            return MigrationEvent(
                file.name,
                phase,
                direction=direction,
                path=file.path,
                dry_run=self.dry_run,
                **details,
            )

        await self._emit(event("start"))
        started = time.perf_counter()
        try:
            sql = await self._apply(file, direction, batch, row_id)
        except Exception as exc:
            duration = (time.perf_counter() - started) * 1000.0
            await self._emit(event("error", duration_ms=duration, error=exc))
            raise MigrationError(
                f'Migration "{file.name}" failed ({direction}): {exc}{self._partial_note(file)}',
                file=file.name,
                original=exc,
            ) from exc
        duration = (time.perf_counter() - started) * 1000.0
        await self._emit(event("done", duration_ms=duration, sql=sql))
        return MigratedFile(file.name, file.path, direction, batch, duration, sql)

    def _transactional(self, file: MigrationFile) -> bool:
        # MySQL commits every DDL statement implicitly: a transaction would be a pretence.
        return (
            not file.schema.disable_transactions
            and self._connection().dialect_ops.transactional_ddl
        )

    def _partial_note(self, file: MigrationFile) -> str:
        if self.dry_run or self._transactional(file):
            return ""
        why = (
            "disable_transactions"
            if file.schema.disable_transactions
            else "MySQL cannot roll back DDL"
        )
        return f" (not recorded; statements run before the failure stay applied: {why})"

    async def _apply(
        self, file: MigrationFile, direction: Direction, batch: int, row_id: int | None
    ) -> list[str]:
        if self.dry_run:
            return await _exec(file.schema(self.client, file.name, dry_run=True), direction)
        if self._transactional(file):
            async with ddl_transaction(self._connection()) as trx:
                sql = await _exec(file.schema(trx, file.name), direction)
                await self._record(trx, file.name, direction, batch, row_id)
            return sql
        client = self.client
        sql = await _exec(file.schema(client, file.name), direction)
        await self._record(client, file.name, direction, batch, row_id)
        return sql

    async def _record(
        self, client: Client, name: str, direction: Direction, batch: int, row_id: int | None
    ) -> None:
        table = self._table
        if direction == "up":
            now = datetime.now(UTC).replace(tzinfo=None)
            stmt: sa.Executable = sa.insert(table).values(
                name=name, batch=batch, migration_time=now
            )
        else:
            stmt = sa.delete(table).where(table.c.id == row_id)
        await client.execute(stmt, write=True)

    async def _emit(self, event: MigrationEvent) -> None:
        if self.on_event is None:
            return
        result = self.on_event(event)
        if inspect.isawaitable(result):
            await result

    # -- the migrations table ------------------------------------------------------------------
    async def _has_table(self, name: str) -> bool:
        async with reading_connection(self._connection()) as conn:
            found: bool = await conn.run_sync(lambda c: sa.inspect(c).has_table(name))
            return found

    async def _create(self, table: sa.Table) -> None:
        async with reading_connection(self._connection()) as conn:
            # IF NOT EXISTS: two runners may race to create the lock table. Autocommit, and
            # DDL commits on MySQL anyway: no commit needed.
            await conn.execute(sa.schema.CreateTable(table, if_not_exists=True))

    async def _rows(self) -> list[_Row]:
        if not await self._has_table(self.table_name):
            return []
        t = self._table
        stmt = sa.select(t.c.id, t.c.name, t.c.batch, t.c.migration_time).order_by(t.c.id)
        # write=True: read the primary, never a lagging replica.
        result = await self.client.execute(stmt, write=True)
        return [
            _Row(int(r[0]), str(r[1]), int(r[2]), r[3].replace(tzinfo=UTC) if r[3] else None)
            for r in result.rows
        ]

    async def _wipe(self) -> list[str]:
        connection = self._connection()
        # The lock table holds this run's lock (where the server has no advisory lock).
        keep = {self._lock_table.name} if self._uses_lock_table() else set()
        if self.dry_run:
            async with reading_connection(connection) as conn:
                names: list[str] = await conn.run_sync(_table_names)
            return [n for n in names if n not in keep]
        async with ddl_transaction(connection) as trx:
            dropped: list[str] = await run_sync(trx, _drop_tables, keep)
        return dropped

    # -- the lock ------------------------------------------------------------------------------
    @asynccontextmanager
    async def _lock(self) -> AsyncIterator[None]:
        """Fail fast when another runner migrates this database (Lucid's semantics)."""
        if self.dry_run:
            yield
            return
        connection = self._connection()
        lock = self._advisory_lock(connection)
        if lock is None:  # SQLite: no server lock, a lock table
            async with self._table_lock():
                yield
            return
        async with self._session_lock(connection, lock):
            yield

    def _locked_error(self, how: str) -> MigrationError:
        return MigrationError(
            f'Another migration runner holds the lock of "{self.table_name}" ({how}): '
            f"concurrent migrations are not allowed; try again when it is done (a runner that "
            f"crashed or hangs: lucid-orm migration:unlock, or Migrator.unlock())",
            code="E_MIGRATIONS_LOCKED",
        )

    def _advisory_lock(self, connection: Connection) -> AdvisoryLock | None:
        name = f"lucid_orm:{self.table_name}"
        return connection.dialect_ops.advisory_lock(name, connection.url.database)

    def _uses_lock_table(self) -> bool:
        return self._advisory_lock(self._connection()) is None

    @asynccontextmanager
    async def _session_lock(
        self, connection: Connection, lock: AdvisoryLock
    ) -> AsyncIterator[None]:
        # A session-level lock on a connection held for the whole run: it ends with the
        # session, so a crashed runner never leaves it behind.
        acquire, release, how = lock.acquire, lock.release, lock.description
        async with reading_connection(connection) as conn:
            try:
                acquired = (await conn.execute(acquire)).scalar()
            except sa_exc.DBAPIError as exc:
                raise LucidError(f"Cannot take the migrations lock: {exc.orig}") from exc
            if not acquired:
                raise self._locked_error(how)
            try:
                yield
            finally:
                try:
                    await conn.execute(release)
                except BaseException:
                    # Never hand a connection that may still hold the lock back to the pool.
                    with suppress(Exception):
                        await conn.invalidate()
                    raise

    @asynccontextmanager
    async def _table_lock(self) -> AsyncIterator[None]:
        # SQLite has no session locks: a row in <table>_lock, as Knex does. A crashed runner
        # leaves it behind: Migrator.unlock() (migration:unlock) removes it.
        table = self._lock_table
        await self._create(table)
        client = self.client
        try:
            now = datetime.now(UTC).replace(tzinfo=None)
            await client.execute(sa.insert(table).values(id=1, locked_at=now), write=True)
        except IntegrityError as exc:
            raise self._locked_error(f'a row in "{table.name}"') from exc
        except QueryError as exc:
            if "database is locked" not in str(exc):
                raise
            # Another connection kept a write transaction open past SQLite's busy timeout.
            raise self._locked_error("the SQLite database is locked by a writer") from exc
        try:
            yield
        finally:
            await client.execute(sa.delete(table).where(table.c.id == 1), write=True)


async def _exec(migration: BaseSchema, direction: Direction) -> list[str]:
    return await (migration.exec_up() if direction == "up" else migration.exec_down())


def _table_names(sync_conn: Any) -> list[str]:
    names: list[str] = sa.inspect(sync_conn).get_table_names()
    return names


def _drop_tables(sync_conn: Any, keep: set[str]) -> list[str]:
    """Drop every table of the default schema but ``keep``; foreign keys ignored."""
    return dialect_of(sync_conn.dialect).drop_all_tables(sync_conn, keep)


_MODULE_CHARS = re.compile(r"\W")


def _load(path: Path) -> type[BaseSchema]:
    """Import a migration file and return its one ``BaseSchema`` subclass."""
    module_name = "_lucid_migration_" + _MODULE_CHARS.sub("_", path.stem)
    try:
        module = load_file(path, module_name)
    except UnloadableFileError:
        raise MigrationError(
            f'Cannot load migration "{path}"', code="E_INVALID_MIGRATION", file=path.stem
        ) from None
    except Exception as exc:
        raise MigrationError(
            f'Cannot load migration "{path}": {type(exc).__name__}: {exc}',
            code="E_INVALID_MIGRATION",
            file=path.stem,
            original=exc,
        ) from exc
    found = defined_subclasses(module, BaseSchema)
    if len(found) != 1:
        what = "no BaseSchema subclass" if not found else f"{len(found)} BaseSchema subclasses"
        raise MigrationError(
            f'Migration "{path}" defines {what}: each migration file defines exactly one '
            f"(class CreateUsersTable(BaseSchema): ...)",
            code="E_INVALID_MIGRATION",
            file=path.stem,
        )
    return found[0]
