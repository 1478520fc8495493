"""The contender interface: one class per library, each running the thirteen operations its own
idiomatic way against the same tables, and a way to count the statements it sends."""

from __future__ import annotations

import contextlib
import importlib
import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar

from ..workload import Data

# Transaction control is not counted, for any contender: only statements that touch rows.
_STATEMENT = re.compile(r"^\s*\(?\s*(SELECT|INSERT|UPDATE|DELETE|WITH)\b", re.I)


@dataclass(frozen=True)
class Backend:
    """A database the run measures on: ``sqlite`` (a file), ``postgresql`` or ``mariadb`` (a
    server, ``mysql://`` URL)."""

    name: str
    label: str
    sqlite_path: Path | None = None
    pg_url: str | None = None
    mysql_url: str | None = None
    # Connections each contender's pool may open (op 10 runs its tasks on them).
    pool: int = 10

    @property
    def lucid_url(self) -> str:
        if self.name == "sqlite":
            return f"sqlite:///{self.sqlite_path}"
        return str(self.mysql_url if self.name == "mariadb" else self.pg_url)


class Unsupported(Exception):
    """Raised by an operation the library cannot run on this backend at these sizes (a known
    limit of the library, not of the harness): the cell shows n/a with this reason."""


class NoFeature(Unsupported):
    """Raised by an operation the library has no feature for (no paginator, no streaming):
    the cell shows "—" with this reason."""


class StatementCounter:
    """Counts the row-touching statements a contender runs while it is active; an
    ``executemany`` over N parameter sets counts N (the server runs N statements)."""

    def __init__(self) -> None:
        self.n = 0

    def add(self, sql: str, executions: int = 1) -> None:
        if _STATEMENT.match(sql):
            self.n += executions


class Contender:
    """One library under test. Subclasses implement ``open``/``close`` and the operation
    methods (sync or async), each returning plain tuples read from its own objects, so the
    attribute access is part of what is timed. An operation the library has no feature for
    raises ``NoFeature`` (the base class does, for ops 8-13): its cell shows "—"."""

    name: ClassVar[str]
    distribution: ClassVar[str]
    notes: ClassVar[str] = ""  # how it runs the operations, and its limits, for the report

    @classmethod
    def version(cls) -> str:
        try:
            return metadata.version(cls.distribution)
        except metadata.PackageNotFoundError:
            return "?"

    def unavailable(self, backend: Backend) -> str | None:
        """Why this contender cannot run on ``backend`` (shown as n/a), or ``None``."""
        return None

    async def open(self, backend: Backend) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    @contextlib.contextmanager
    def count_statements(self) -> Iterator[StatementCounter | None]:
        """Count statements inside the block; yields ``None`` where the library has no hook."""
        yield None

    # The operations; ``data`` carries the arguments (word, rows to create, ids to find...).
    def posts_with_author(self, data: Data) -> Any:
        """(1) every post with its author preloaded:
        ``[(post.id, post.title, post.created_at, author.email)]``."""
        raise NotImplementedError

    def users_with_posts(self, data: Data) -> Any:
        """(2) every user with their posts: ``[(user.id, user.email, [post.id, ...])]``."""
        raise NotImplementedError

    def users_posts_tags(self, data: Data) -> Any:
        """(3) users → posts → tags: ``[(user.id, [(post.id, [tag.name, ...]), ...])]``."""
        raise NotImplementedError

    def users_where_has(self, data: Data) -> Any:
        """(4) users having a post whose title contains ``data.word``: ``[(id, email)]``."""
        raise NotImplementedError

    def users_with_count(self, data: Data) -> Any:
        """(5) every user with their number of posts: ``[(user.id, count)]``."""
        raise NotImplementedError

    def create_many(self, data: Data) -> Any:
        """(6) ``data.new_posts`` created for user ``data.author_id`` through the relation, in
        one transaction: ``[(post.user_id, post.title)]``."""
        raise NotImplementedError

    def find_many_times(self, data: Data) -> Any:
        """(7) one ``find`` by primary key per id in ``data.find_ids``:
        ``[(id, email, created_at)]``."""
        raise NotImplementedError

    def update_many(self, data: Data) -> Any:
        """(8) the posts with ``id <= data.sizes.updates`` loaded, each title upper-cased, all
        saved in one transaction with the library's bulk update: ``[(post.id, post.title)]``."""
        raise NoFeature(NO_FEATURE)

    def paginate(self, data: Data) -> Any:
        """(9) page ``data.sizes.page`` (``per_page`` rows) of the posts ordered by
        ``created_at`` desc, ``id`` desc, with the total: ``(total, [(post.id, post.title)])``."""
        raise NoFeature(NO_FEATURE)

    def concurrent_finds(self, data: Data) -> Any:
        """(10) one task per id of ``data.task_ids``, all started at once on a pool of
        ``data.sizes.pool`` connections, each finding the user and preloading its posts:
        ``[(user.id, user.email, [post.id, ...])]`` in task order."""
        raise NoFeature(NO_FEATURE)

    def upsert_many(self, data: Data) -> Any:
        """(11) ``data.upserts`` inserted, or merged (``name``) into the user with the same
        email, in one statement or transaction: ``[(user.email, user.name)]``."""
        raise NoFeature(NO_FEATURE)

    def cursor_paginate(self, data: Data) -> Any:
        """(12) every post, by keyset pages of ``data.sizes.cursor_page`` ordered by id, each
        page asked for with the previous page's cursor: ``[(post.id, post.title)]`` in order."""
        raise NoFeature(NO_FEATURE)

    def stream(self, data: Data) -> Any:
        """(13) every row of ``readings`` streamed as objects in constant memory (never the
        whole result at once), totalled as ``readings_digest(count, sum of ids, sum of values,
        characters of labels)``."""
        raise NoFeature(NO_FEATURE)


# The reason shown for an operation a library has no feature for.
NO_FEATURE = "no such feature"


class Missing(Contender):
    """A contender whose library could not be imported: every cell shows the reason."""

    def __init__(self, name: str, distribution: str, reason: str) -> None:
        self.name, self.distribution, self._reason = name, distribution, reason

    def version(self) -> str:  # type: ignore[override]
        return "not installed"

    def unavailable(self, backend: Backend) -> str | None:
        return self._reason


_CONTENDERS = (
    ("bare", "Bare", "bare driver", "aiosqlite"),
    ("lucid", "Lucid", "lucid_orm", "lucid-orm"),
    ("sqlalchemy_orm", "SQLAlchemyORM", "SQLAlchemy ORM", "sqlalchemy"),
    ("tortoise_orm", "TortoiseORM", "Tortoise", "tortoise-orm"),
    ("django_orm", "DjangoORM", "Django", "django"),
    ("peewee_orm", "PeeweeORM", "Peewee", "peewee"),
)


def all_contenders(only: Collection[str] | None = None) -> list[Contender]:
    """Every contender (or those whose module or name is in ``only``), the floor first and
    always. One whose library is not installed still gets a row."""
    found: list[Contender] = []
    for module, cls, name, distribution in _CONTENDERS:
        if only is not None and module != "bare" and module not in only and name not in only:
            continue
        try:
            found.append(getattr(importlib.import_module(f"{__name__}.{module}"), cls)())
        except ImportError as exc:
            found.append(Missing(name, distribution, f"not installed ({exc.name})"))
    return found
