"""Test helpers: ``count_queries()`` over ``db.on_query`` (after peewee's ``assertQueryCount``)
and the per-dialect configuration of the global ``db``."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


PG_URL = os.environ.get("LUCID_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
MYSQL_URL = os.environ.get("LUCID_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")


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
