"""The benchmark's data and operations: seeded rows, the schema per backend, the one loader
(bare SQL through the bare driver) and the digests every contender's answers are checked by."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

EPOCH = datetime(2024, 1, 1, tzinfo=UTC)

# Titles draw 4 of these words, so a given word appears in ~10% of titles.
# fmt: off
WORDS = (
    "async", "alpha", "bravo", "cache", "delta", "drift", "ember", "falcon", "garden", "harbor",
    "index", "jigsaw", "kernel", "ladder", "matrix", "nectar", "orbit", "python", "quartz",
    "ripple", "signal", "timber", "umbra", "vector", "willow", "xenon", "yonder", "zephyr",
    "amber", "basalt", "cinder", "dune", "echo", "fjord", "glacier", "hollow", "island", "jungle",
)
FIRST = (
    "ada", "alan", "barbara", "claude", "donald", "edsger", "frances", "grace", "ken", "linus",
    "margaret", "niklaus",
)
LAST = (
    "lovelace", "turing", "liskov", "shannon", "knuth", "dijkstra", "allen", "hopper", "thompson",
    "torvalds",
)
# fmt: on


@dataclass(frozen=True)
class Sizes:
    users: int = 1000
    posts_per_user: int = 10
    tags: int = 50
    tags_per_post: int = 3
    new_posts: int = 1000
    finds: int = 2000
    seed: int = 2024


@dataclass
class Data:
    """Every seeded row as a tuple in table column order, plus the operations' arguments."""

    sizes: Sizes
    users: list[tuple[int, str, str, datetime]] = field(default_factory=list)
    profiles: list[tuple[int, int, str]] = field(default_factory=list)
    posts: list[tuple[int, int | None, str, str, datetime]] = field(default_factory=list)
    tags: list[tuple[int, str]] = field(default_factory=list)
    post_tags: list[tuple[int, int]] = field(default_factory=list)
    word: str = "python"
    author_id: int = 1
    new_posts: list[dict[str, Any]] = field(default_factory=list)
    find_ids: list[int] = field(default_factory=list)

    @property
    def max_post_id(self) -> int:
        return len(self.posts)


def generate(sizes: Sizes) -> Data:
    """The same rows for every backend and every run with the same sizes and seed."""
    rng = random.Random(sizes.seed)
    data = Data(sizes)
    for uid in range(1, sizes.users + 1):
        name = f"{rng.choice(FIRST).title()} {rng.choice(LAST).title()}"
        joined = EPOCH + timedelta(minutes=rng.randrange(500_000))
        data.users.append((uid, f"user{uid}@example.com", name, joined))
        data.profiles.append((uid, uid, " ".join(rng.choices(WORDS, k=12))))
    data.tags = [(tid, f"tag-{tid:03d}") for tid in range(1, sizes.tags + 1)]
    tag_ids = [t[0] for t in data.tags]
    pid = 0
    for uid in range(1, sizes.users + 1):
        for _ in range(sizes.posts_per_user):
            pid += 1
            title = " ".join(rng.sample(WORDS, 4))
            body = " ".join(rng.choices(WORDS, k=40))
            created = EPOCH + timedelta(seconds=rng.randrange(30_000_000))
            data.posts.append((pid, uid, title, body, created))
            for tid in rng.sample(tag_ids, min(sizes.tags_per_post, len(tag_ids))):
                data.post_tags.append((pid, tid))
    data.new_posts = [
        {
            "title": f"bulk {i} {rng.choice(WORDS)}",
            "body": "created by the benchmark",
            "created_at": EPOCH + timedelta(days=400, seconds=i),
        }
        for i in range(sizes.new_posts)
    ]
    data.find_ids = [(i * 7919) % sizes.users + 1 for i in range(sizes.finds)]
    return data


# -- operations ---------------------------------------------------------------------------------


def _nested_sorted(rows: Sequence[Any]) -> list[Any]:
    return sorted(
        (uid, tuple(sorted((pid, tuple(sorted(tags))) for pid, tags in posts)))
        for uid, posts in rows
    )


@dataclass(frozen=True)
class Op:
    """One measured operation: the contender method that runs it and how its answer (plain
    tuples built from the contender's own objects) is made canonical before hashing."""

    key: str
    title: str
    canonical: Callable[[Any], Any]
    number: int = 0


def _with_utc(rows: Sequence[tuple[Any, ...]], at: int) -> list[tuple[Any, ...]]:
    """Rows with the datetime at index ``at`` as naive-UTC ISO text (libraries differ on
    aware vs naive; the instant must not)."""
    return [(*r[:at], naive_utc(r[at]).isoformat(), *r[at + 1 :]) for r in rows]


OPS: tuple[Op, ...] = (
    Op("posts_with_author", "posts + author", lambda rows: sorted(_with_utc(rows, 2)), 1),
    Op(
        "users_with_posts",
        "users + posts",
        lambda rows: sorted((uid, email, tuple(sorted(p))) for uid, email, p in rows),
        2,
    ),
    Op("users_posts_tags", "users + posts + tags", _nested_sorted, 3),
    Op("users_where_has", "where_has (EXISTS)", sorted, 4),
    Op("users_with_count", "with_count", sorted, 5),
    Op("create_many", "create_many", sorted, 6),
    Op("find_many_times", "find by pk", lambda rows: _with_utc(rows, 2), 7),
)


def digest(value: Any) -> str:
    """A short hash of a canonical answer."""
    return hashlib.sha256(repr(value).encode()).hexdigest()[:16]


def naive_utc(value: datetime) -> datetime:
    """Datetimes as naive UTC, whatever the contender hands back."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


# -- schema and loader --------------------------------------------------------------------------

TABLES = ("post_tags", "profiles", "posts", "tags", "users")


def schema(backend: str) -> list[str]:
    """DDL for the five tables. Primary keys are generated by the database (SQLite rowid,
    PostgreSQL identity); created rows reuse them."""
    if backend == "sqlite":
        pk, ts = "INTEGER PRIMARY KEY", "TIMESTAMP"
    else:
        pk, ts = "INTEGER GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY", "TIMESTAMPTZ"
    return [
        f"CREATE TABLE users (id {pk}, email VARCHAR(255) NOT NULL UNIQUE,"
        f" name VARCHAR(255) NOT NULL, created_at {ts} NOT NULL)",
        f"CREATE TABLE profiles (id {pk}, user_id INTEGER NOT NULL REFERENCES users (id),"
        " bio TEXT NOT NULL)",
        f"CREATE TABLE posts (id {pk}, user_id INTEGER REFERENCES users (id),"
        f" title VARCHAR(255) NOT NULL, body TEXT NOT NULL, created_at {ts} NOT NULL)",
        f"CREATE TABLE tags (id {pk}, name VARCHAR(50) NOT NULL)",
        "CREATE TABLE post_tags (post_id INTEGER NOT NULL REFERENCES posts (id),"
        " tag_id INTEGER NOT NULL REFERENCES tags (id), PRIMARY KEY (post_id, tag_id))",
        "CREATE INDEX profiles_user_id ON profiles (user_id)",
        "CREATE INDEX posts_user_id ON posts (user_id)",
        "CREATE INDEX post_tags_tag_id ON post_tags (tag_id)",
    ]


class Admin:
    """The harness's own connection (the bare driver): loads the data once per backend,
    deletes the rows an operation created, reads them back for the write digest."""

    def __init__(self, backend: str, target: Path | str | None) -> None:
        self.backend = backend
        self.target = target
        self._conn: Any = None

    async def __aenter__(self) -> Admin:
        if self.backend == "sqlite":
            import aiosqlite

            self._conn = await aiosqlite.connect(self.target, isolation_level=None)
        else:
            import asyncpg

            self._conn = await asyncpg.connect(str(self.target))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._conn.close()

    def _sql(self, sql: str) -> str:
        if self.backend == "sqlite":
            return sql
        parts = sql.split("?")
        return "".join(p + (f"${i}" if i < len(parts) else "") for i, p in enumerate(parts, 1))

    async def execute(self, sql: str, *params: Any) -> None:
        if self.backend == "sqlite":
            await self._conn.execute(sql, params)
        else:
            await self._conn.execute(self._sql(sql), *params)

    async def fetch(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        if self.backend == "sqlite":
            async with self._conn.execute(sql, params) as cursor:
                return list(await cursor.fetchall())
        return [tuple(r) for r in await self._conn.fetch(self._sql(sql), *params)]

    async def _insert(self, table: str, columns: str, rows: Sequence[tuple[Any, ...]]) -> None:
        marks = ", ".join("?" * len(columns.split(",")))
        await self._conn.executemany(
            self._sql(f"INSERT INTO {table} ({columns}) VALUES ({marks})"), rows
        )

    async def load(self, data: Data) -> None:
        """Drop and recreate the tables, then insert every seeded row in one transaction."""
        if self.backend == "sqlite":
            await self.execute("PRAGMA journal_mode = WAL")
        for table in TABLES:
            cascade = " CASCADE" if self.backend == "postgresql" else ""
            await self.execute(f"DROP TABLE IF EXISTS {table}{cascade}")
        await self.execute("BEGIN")
        for ddl in schema(self.backend):
            await self.execute(ddl)
        ts = _sqlite_ts if self.backend == "sqlite" else _as_is
        users = [(i, email, name, ts(c)) for i, email, name, c in data.users]
        posts = [(i, uid, title, body, ts(c)) for i, uid, title, body, c in data.posts]
        await self._insert("users", "id, email, name, created_at", users)
        await self._insert("profiles", "id, user_id, bio", data.profiles)
        await self._insert("tags", "id, name", data.tags)
        await self._insert("posts", "id, user_id, title, body, created_at", posts)
        await self._insert("post_tags", "post_id, tag_id", data.post_tags)
        if self.backend == "postgresql":
            for table in ("users", "profiles", "posts", "tags"):
                await self.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                    f" (SELECT max(id) FROM {table}))"
                )
        await self.execute("COMMIT")
        if self.backend == "postgresql":
            # Fresh statistics, as autovacuum would soon give. Not on SQLite: a new SQLite
            # database has no sqlite_stat1, and with it the planner scans the 50 tags first
            # for the post_tags join (10x slower for every contender alike).
            await self.execute("ANALYZE")

    async def created_posts(self, data: Data) -> list[tuple[Any, ...]]:
        """The rows an operation added to ``posts`` (their ids vary, so they are left out)."""
        return sorted(
            await self.fetch(
                "SELECT user_id, title, body FROM posts WHERE id > ?", data.max_post_id
            )
        )

    async def delete_created(self, data: Data) -> None:
        await self.execute("DELETE FROM posts WHERE id > ?", data.max_post_id)


def _as_is(value: datetime) -> datetime:
    return value


def _sqlite_ts(value: datetime) -> str:
    # The one text form every contender's SQLite datetime parser accepts.
    return naive_utc(value).strftime("%Y-%m-%d %H:%M:%S")
