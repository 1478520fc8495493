"""Test helpers: ``count_queries()`` over ``db.on_query`` (after peewee's ``assertQueryCount``)
and the per-dialect configuration of the global ``db``."""

from __future__ import annotations

import contextlib
import gc
import json
import os
import tracemalloc
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection

from lucid_orm.database import Database, QueryEvent, db
from lucid_orm.errors import LucidError


@dataclass
class QueryLog:
    """The statements reported while a ``count_queries()`` block ran."""

    events: list[QueryEvent] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.events)

    @property
    def sqls(self) -> list[str]:
        return [e.sql for e in self.events]

    @property
    def bindings(self) -> list[list[Any]]:
        return [e.bindings for e in self.events]

    def clear(self) -> None:
        self.events.clear()

    def __len__(self) -> int:
        return len(self.events)


@contextmanager
def count_queries(database: Database = db) -> Iterator[QueryLog]:
    """Collect every statement run inside the block::

    with count_queries() as q:
        await db.from_("users")
    assert q.count == 1
    assert "users" in q.sqls[0]
    """
    log = QueryLog()
    unsubscribe = database.on_query(log.events.append)
    try:
        yield log
    finally:
        unsubscribe()


BASE_PG_URL = os.environ.get("LUCID_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
BASE_MYSQL_URL = os.environ.get("LUCID_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")
BASE_PG_REPLICA_URL = os.environ.get("LUCID_PG_REPLICA_URL") or make_url(BASE_PG_URL).set(
    database=f"{make_url(BASE_PG_URL).database}_replica"
).render_as_string(hide_password=False)

# Under pytest-xdist each worker runs on databases of its own (``test_gw0``, ``test_gw1``…,
# created by ``create_worker_databases`` when the worker starts), so that workers never see
# each other's rows or wait on each other's locks.
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")


@contextmanager
def through_sqlalchemy(database: Database = db) -> Iterator[list[str]]:
    """The statements SQLAlchemy's execution layer sends to the driver meanwhile: a
    driver-level fast path's statements never pass there."""
    seen: list[str] = []
    engine = database.engine().sync_engine

    def listener(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        seen.append(statement)

    sa.event.listen(engine, "before_cursor_execute", listener)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", listener)


def worker_url(url: str) -> str:
    """``url`` with the worker's suffix on its database name (unchanged outside xdist)."""
    if not WORKER:
        return url
    parsed = make_url(url)
    return parsed.set(database=f"{parsed.database}_{WORKER}").render_as_string(hide_password=False)


PG_URL = worker_url(BASE_PG_URL)
MYSQL_URL = worker_url(BASE_MYSQL_URL)
PG_REPLICA_URL = worker_url(BASE_PG_REPLICA_URL)


async def create_worker_databases() -> None:
    """Create this xdist worker's databases on each server that answers (an unreachable one
    is reported by the ``dialect`` fixture, as without xdist)."""
    wanted = [
        ("postgresql", BASE_PG_URL, [PG_URL, PG_REPLICA_URL]),
        ("mysql", BASE_MYSQL_URL, [MYSQL_URL]),
    ]
    for dialect, base, urls in wanted:
        admin = Database()
        admin.configure(url=base)
        try:
            for url in urls:
                name = make_url(url).database
                if dialect == "mysql":
                    await admin.raw_query("CREATE DATABASE IF NOT EXISTS ??", [name])
                    continue
                found = await admin.raw_query(
                    "SELECT 1 FROM pg_database WHERE datname = ?", [name], read=True
                )
                if not found:
                    await admin.raw_query("CREATE DATABASE ??", [name])
        except LucidError:
            pass
        finally:
            await admin.close()


def dialect_url(name: str, tmp_dir: Path) -> str:
    """The URL of the test database for dialect ``name``."""
    if name == "sqlite":
        return f"sqlite:///{tmp_dir / 'lucid_test.sqlite3'}"
    if name == "postgresql":
        return PG_URL
    return MYSQL_URL


class DialectConfig:
    """How the global ``db`` is configured for the running dialect, so it can be restored."""

    def __init__(self, name: str, url: str) -> None:
        self.name = name
        self.url = url
        self.connection: Any = None

    @property
    def connections(self) -> dict[str, dict[str, Any]]:
        return {self.name: {"url": self.url}}

    def configure(self, target: Database = db) -> None:
        target.configure(connection=self.name, connections=self.connections)
        if target is db:
            self.connection = db.get_connection(self.name)

    async def restore(self) -> None:
        """Re-configure ``db`` if a test closed or re-configured it."""
        current: Any = None
        with suppress(LucidError):
            current = db.get_connection()
        if current is self.connection and current is not None and not current.closed:
            return
        await db.close()
        self.configure()


def flat(bindings: list[Any]) -> list[Any]:
    """Statement bindings with key parameters spread out: preloads send their keys as one
    parameter on PostgreSQL (an array, ``= ANY($1)``) and SQLite (JSON text read by
    ``json_each``), as one binding per key on MySQL."""
    out: list[Any] = []
    for value in bindings:
        if isinstance(value, str) and value.startswith("["):
            with contextlib.suppress(ValueError):
                value = json.loads(value)
        if isinstance(value, list | tuple):
            out.extend(value)
        else:
            out.append(value)
    return out


# Above this many rows a table is emptied with TRUNCATE (PostgreSQL, MariaDB): DELETE costs per
# row (a 100,000-row table took ~0.9 s on PostgreSQL), TRUNCATE a few ms whatever the size.
TRUNCATE_FROM = 1000


def _capped_count(table: sa.Table) -> sa.ScalarSelect[int]:
    """Its rows, counted up to ``TRUNCATE_FROM + 1``: a full count of a big table would cost
    about what the DELETE it saves does."""
    rows = sa.select(sa.literal(1)).select_from(table).limit(TRUNCATE_FROM + 1).subquery()
    return sa.select(sa.func.count()).select_from(rows).scalar_subquery()


async def empty_tables(tables: Sequence[sa.Table], database: Database = db) -> None:
    """Delete every row of ``tables`` (given dependents first), cheaply: one statement finds
    the tables that hold rows (most tests write two or three) and only those are emptied, the
    big ones with TRUNCATE except on SQLite (whose DELETE without WHERE already truncates)."""
    probe = sa.union_all(
        *(
            sa.select(sa.literal(i).label("i"), _capped_count(t).label("n"))
            for i, t in enumerate(tables)
        )
    )
    async with database.engine().connect() as conn:
        counts = {i: n for i, n in await conn.execute(probe)}
        await conn.rollback()
        full = [table for i, table in enumerate(tables) if counts[i]]
        big = [t for i, t in enumerate(tables) if counts[i] > TRUNCATE_FROM]
        if conn.dialect.name == "sqlite" or (big and not await _truncate(conn, big, tables)):
            big = []
        async with conn.begin():
            for table in full:
                if table not in big:
                    await conn.execute(table.delete())


async def _truncate(conn: AsyncConnection, big: list[sa.Table], tables: Sequence[sa.Table]) -> bool:
    """TRUNCATE ``big`` (removing from it what can't be); ``False`` when a lock held elsewhere
    (a transaction a test left open) stopped it: TRUNCATE waits for every lock on the table,
    where DELETE waits only for locked rows."""
    quote = conn.dialect.identifier_preparer.format_table
    try:
        if conn.dialect.name == "postgresql":
            async with conn.begin():
                await conn.execute(sa.text("SET LOCAL lock_timeout = '1s'"))
                # CASCADE: PostgreSQL truncates a referenced table (users) only with the
                # tables that reference it, which are emptied anyway.
                await conn.execute(sa.text(f"TRUNCATE {', '.join(quote(t) for t in big)} CASCADE"))
            return True
        # MariaDB refuses to truncate a table a foreign key references (checked or not).
        referenced = {fk.column.table for t in tables for fk in t.foreign_keys}
        big[:] = [t for t in big if t not in referenced]
        await conn.execute(sa.text("SET SESSION lock_wait_timeout = 1"))
        try:
            for table in big:
                await conn.execute(sa.text(f"TRUNCATE TABLE {quote(table)}"))
        finally:
            await conn.execute(sa.text("SET SESSION lock_wait_timeout = DEFAULT"))
            await conn.commit()
        return True
    except sa.exc.DBAPIError:
        if conn.in_transaction():
            await conn.rollback()
        return False


async def insert_posts(n: int) -> None:
    """``n`` posts of user 1 titled ``title`` in one INSERT … SELECT over a cross join of
    digits, as many as ``n`` needs: the database makes the rows (seconds instead of minutes of
    multi-row INSERTs for hundreds of thousands)."""
    places = len(str(max(n - 1, 1)))
    digits = " UNION ALL ".join(f"SELECT {d} AS d" for d in range(10))
    product = ", ".join(f"({digits}) d{i}" for i in range(places))
    number = " + ".join(f"{10**i}*d{i}.d" for i in range(places))
    await db.raw_query(
        f"INSERT INTO posts (user_id, title) SELECT 1, 'title' FROM {product} WHERE {number} < ?",
        [n],
    ).exec()


async def peak_traced(read: Callable[[], Awaitable[int]]) -> tuple[int, int]:
    """``(rows, peak traced bytes)`` of ``read()`` (tracemalloc, after a collection)."""
    gc.collect()
    tracemalloc.start()
    try:
        rows = await read()
        return rows, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
