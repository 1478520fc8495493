"""The benchmark's data and operations: seeded rows, the schema per backend, the one loader
(bare SQL through the bare driver), the resets after the writing operations and the digests
every contender's answers are checked by."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

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
    updates: int = 1000  # op 8: posts loaded, changed and saved with one bulk update
    page: int = 50  # op 9: this page of the ordered posts, with the total
    per_page: int = 20
    tasks: int = 200  # op 10: concurrent find + preload tasks...
    pool: int = 10  # ...on a pool of this many connections
    upserts: int = 1000  # op 11: rows upserted on users.email, half of them new
    cursor_page: int = 100  # op 12: page size of the cursor pagination through every post
    stream_rows: int = 100_000  # op 13: rows streamed (the full size: 1,000,000)
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
    task_ids: list[int] = field(default_factory=list)
    upserts: list[dict[str, Any]] = field(default_factory=list)
    renamed: int = 0  # op 11 renames users 1..renamed and creates the rest

    @property
    def max_post_id(self) -> int:
        return len(self.posts)

    @property
    def max_user_id(self) -> int:
        return len(self.users)


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
    data.task_ids = [(i * 104_729) % sizes.users + 1 for i in range(sizes.tasks)]
    data.renamed = min(sizes.upserts // 2, sizes.users)
    for i in range(sizes.upserts):
        if i < data.renamed:
            uid, email, name, created = data.users[i]
            data.upserts.append({"email": email, "name": f"{name} II", "created_at": created})
        else:
            data.upserts.append(
                {
                    "email": f"new{i}@example.com",
                    "name": f"{rng.choice(FIRST).title()} {rng.choice(LAST).title()}",
                    "created_at": EPOCH + timedelta(days=500, seconds=i),
                }
            )
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
    # Admin methods (names) for the writing operations: ``readback`` reads the rows the
    # operation wrote (part of the checked answer), ``reset`` puts the data back, untimed.
    readback: str | None = None
    reset: str | None = None


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
    Op("create_many", "create_many", sorted, 6, "created_posts", "delete_created"),
    Op("find_many_times", "find by pk", lambda rows: _with_utc(rows, 2), 7),
    Op("update_many", "update_many", sorted, 8, "updated_posts", "restore_titles"),
    Op("paginate", "paginate + total", lambda answer: answer, 9),
    Op("concurrent_finds", "concurrent find + preload", lambda rows: rows, 10),
    Op("upsert_many", "upsert (half new)", sorted, 11, "upserted_users", "restore_users"),
    Op("cursor_paginate", "cursor pagination", lambda rows: rows, 12),
    Op("stream", "stream rows", lambda answer: answer, 13),
)
OPS_BY_KEY = {op.key: op for op in OPS}
# The operations whose peak memory is measured (tracemalloc, one untimed run each).
MEMORY_OPS = ("posts_with_author", "stream")


def digest(value: Any) -> str:
    """A short hash of a canonical answer."""
    return hashlib.sha256(repr(value).encode()).hexdigest()[:16]


def naive_utc(value: datetime) -> datetime:
    """Datetimes as naive UTC, whatever the contender hands back."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


# -- schema and loader --------------------------------------------------------------------------

TABLES = ("post_tags", "profiles", "posts", "tags", "users", "readings")


def schema(backend: str) -> list[str]:
    """DDL for the six tables. Primary keys are generated by the database (SQLite rowid,
    PostgreSQL identity, MariaDB AUTO_INCREMENT); created rows reuse them. MariaDB keeps
    datetimes as UTC in ``DATETIME(6)`` (every contender's session runs in UTC)."""
    if backend == "sqlite":
        pk, ts = "INTEGER PRIMARY KEY", "TIMESTAMP"
    elif backend == "mariadb":
        pk, ts = "INTEGER AUTO_INCREMENT PRIMARY KEY", "DATETIME(6)"
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
        # Op 13's rows: written by the database itself (readings_fill), not sent one by one.
        "CREATE TABLE readings (id INTEGER NOT NULL PRIMARY KEY, sensor INTEGER NOT NULL,"
        " value INTEGER NOT NULL, label VARCHAR(20) NOT NULL)",
    ]


def readings_fill(backend: str, rows: int) -> str:
    """One ``INSERT … SELECT`` that makes the database generate op 13's rows: row ``g`` is
    ``(g, g % 97, g * 7919 % 10007, 'r<g>')`` (``readings_expected`` knows the totals)."""
    columns = "INSERT INTO readings (id, sensor, value, label)"
    if backend == "postgresql":
        return (
            f"{columns} SELECT g, g % 97, g::bigint * 7919 % 10007, 'r' || g"
            f" FROM generate_series(1, {int(rows)}) AS g"
        )
    if backend == "mariadb":
        # The SEQUENCE engine's virtual table seq_1_to_N (MariaDB 10.0+).
        return (
            f"{columns} SELECT seq, seq % 97, seq * 7919 % 10007, CONCAT('r', seq)"
            f" FROM seq_1_to_{int(rows)}"
        )
    return (
        f"WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < {int(rows)})"
        f" {columns} SELECT g, g % 97, g * 7919 % 10007, 'r' || g FROM s"
    )


def readings_digest(count: int, id_sum: int, value_sum: int, label_chars: int) -> tuple[int, ...]:
    """Op 13's answer: totals every contender adds up from the objects it streamed."""
    return (count, id_sum, value_sum, label_chars)


def readings_expected(rows: int) -> tuple[int, ...]:
    """Op 13's answer computed from the generating formula, to check the fill."""
    return readings_digest(
        rows,
        rows * (rows + 1) // 2,
        sum(g * 7919 % 10007 for g in range(1, rows + 1)),
        sum(1 + len(str(g)) for g in range(1, rows + 1)),
    )


class Admin:
    """The harness's own connection (the bare driver): loads the data once per backend,
    reads back and undoes what the writing operations did."""

    def __init__(self, backend: str, target: Path | str | None) -> None:
        self.backend = backend
        self.target = target
        self._conn: Any = None

    async def __aenter__(self) -> Admin:
        if self.backend == "sqlite":
            import aiosqlite

            self._conn = await aiosqlite.connect(self.target, isolation_level=None)
        elif self.backend == "mariadb":
            import asyncmy

            self._conn = await asyncmy.connect(**mysql_params(str(self.target)), autocommit=True)
        else:
            import asyncpg

            self._conn = await asyncpg.connect(str(self.target))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.backend == "mariadb":
            self._conn.close()
        else:
            await self._conn.close()

    def _sql(self, sql: str) -> str:
        if self.backend == "sqlite":
            return sql
        if self.backend == "mariadb":
            return sql.replace("?", "%s")
        parts = sql.split("?")
        return "".join(p + (f"${i}" if i < len(parts) else "") for i, p in enumerate(parts, 1))

    async def execute(self, sql: str, *params: Any) -> None:
        if self.backend == "sqlite":
            await self._conn.execute(sql, params)
        elif self.backend == "mariadb":
            async with self._conn.cursor() as cur:
                await cur.execute(self._sql(sql), params or None)
        else:
            await self._conn.execute(self._sql(sql), *params)

    async def fetch(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        if self.backend == "sqlite":
            async with self._conn.execute(sql, params) as cursor:
                return list(await cursor.fetchall())
        if self.backend == "mariadb":
            async with self._conn.cursor() as cur:
                await cur.execute(self._sql(sql), params or None)
                return [tuple(r) for r in await cur.fetchall()]
        return [tuple(r) for r in await self._conn.fetch(self._sql(sql), *params)]

    async def _executemany(self, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
        if self.backend == "mariadb":
            async with self._conn.cursor() as cur:
                await cur.executemany(self._sql(sql), rows)
        else:
            await self._conn.executemany(self._sql(sql), rows)

    async def _insert(self, table: str, columns: str, rows: Sequence[tuple[Any, ...]]) -> None:
        marks = ", ".join("?" * len(columns.split(",")))
        await self._executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})", rows)

    def ts(self, value: datetime) -> Any:
        """A datetime as this backend's loader binds it."""
        if self.backend == "sqlite":
            return _sqlite_ts(value)
        if self.backend == "mariadb":
            return naive_utc(value)
        return value

    async def load(self, data: Data) -> None:
        """Drop and recreate the tables, then insert every seeded row in one transaction; op
        13's rows are generated by the database (``readings_fill``)."""
        if self.backend == "sqlite":
            await self.execute("PRAGMA journal_mode = WAL")
        if self.backend == "mariadb":
            # sql_notes: no "Unknown table" note (logged by asyncmy) per DROP TABLE IF EXISTS.
            await self.execute("SET time_zone = '+00:00', sql_notes = 0")
        for table in TABLES:
            cascade = " CASCADE" if self.backend == "postgresql" else ""
            await self.execute(f"DROP TABLE IF EXISTS {table}{cascade}")
        await self.execute("BEGIN")
        for ddl in schema(self.backend):
            await self.execute(ddl)
        ts = self.ts
        users = [(i, email, name, ts(c)) for i, email, name, c in data.users]
        posts = [(i, uid, title, body, ts(c)) for i, uid, title, body, c in data.posts]
        await self._insert("users", "id, email, name, created_at", users)
        await self._insert("profiles", "id, user_id, bio", data.profiles)
        await self._insert("tags", "id, name", data.tags)
        await self._insert("posts", "id, user_id, title, body, created_at", posts)
        await self._insert("post_tags", "post_id, tag_id", data.post_tags)
        await self.execute(readings_fill(self.backend, data.sizes.stream_rows))
        if self.backend == "postgresql":
            for table in ("users", "profiles", "posts", "tags"):
                await self.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                    f" (SELECT max(id) FROM {table}))"
                )
        await self.execute("COMMIT")
        if self.backend != "sqlite":
            # Fresh statistics, as autovacuum would soon give. Not on SQLite: a new SQLite
            # database has no sqlite_stat1, and with it the planner scans the 50 tags first
            # for the post_tags join (10x slower for every contender alike).
            await self.execute("ANALYZE" if self.backend == "postgresql" else _MARIADB_ANALYZE)
        totals = "SELECT count(*), sum(id), sum(value), sum(length(label)) FROM readings"
        count, ids, values, chars = (await self.fetch(totals))[0]
        got = readings_digest(int(count), int(ids or 0), int(values or 0), int(chars or 0))
        if got != readings_expected(data.sizes.stream_rows):
            raise SystemExit(f"readings were not generated as expected: {got}")

    # -- op 6 --------------------------------------------------------------------------------
    async def created_posts(self, data: Data) -> list[tuple[Any, ...]]:
        """The rows an operation added to ``posts`` (their ids vary, so they are left out)."""
        return sorted(
            await self.fetch(
                "SELECT user_id, title, body FROM posts WHERE id > ?", data.max_post_id
            )
        )

    async def delete_created(self, data: Data) -> None:
        await self.execute("DELETE FROM posts WHERE id > ?", data.max_post_id)
        await self.settle("posts")

    # -- op 8 --------------------------------------------------------------------------------
    async def updated_posts(self, data: Data) -> list[tuple[Any, ...]]:
        """Every post's id and title (op 8 upper-cases the titles of the first posts)."""
        return sorted(await self.fetch("SELECT id, title FROM posts"))

    async def restore_titles(self, data: Data) -> None:
        # The seeded titles are lower-case words: lower() gives them back exactly.
        sql = "UPDATE posts SET title = lower(title) WHERE id <= ?"
        await self.execute(sql, data.sizes.updates)
        await self.settle("posts")

    # -- op 11 -------------------------------------------------------------------------------
    async def upserted_users(self, data: Data) -> list[tuple[Any, ...]]:
        """Every user: whether it is a seeded row (updated in place, not re-inserted), its
        email and name."""
        rows = await self.fetch("SELECT id, email, name FROM users")
        return sorted((i <= data.max_user_id, email, name) for i, email, name in rows)

    async def restore_users(self, data: Data) -> None:
        await self.execute("DELETE FROM users WHERE id > ?", data.max_user_id)
        seeded = [(name, i) for i, _email, name, _c in data.users[: data.renamed]]
        await self._executemany("UPDATE users SET name = ? WHERE id = ?", seeded)
        await self.settle("users")

    async def settle(self, table: str) -> None:
        """After an undo, what autovacuum does on a production server (untimed): on
        PostgreSQL, ``VACUUM (ANALYZE)`` the table. Without it, the dead rows each writing op
        and its undo leave pile up over the reps (autovacuum may be off, or not yet due),
        the planner's estimates grow with the table's pages, and past ``jit_above_cost``
        a 5 ms read is JIT-compiled on every run: the later a contender's statement is first
        planned, the slower it gets (asyncpg's floor keeps the plan it made on fresh data).
        MariaDB's InnoDB purges on its own, SQLite rewrites pages in place."""
        if self.backend == "postgresql":
            await self.execute(f"VACUUM (ANALYZE) {table}")


_MARIADB_ANALYZE = "ANALYZE TABLE users, profiles, posts, tags, post_tags, readings"


def mysql_params(url: str) -> dict[str, Any]:
    """asyncmy.connect() keyword arguments for a ``mysql://user:pw@host:port/db`` URL."""
    parts = urlsplit(url)
    return {
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 3306,
        "user": parts.username or "root",
        "password": parts.password or "",
        "database": parts.path.lstrip("/"),
    }


def _sqlite_ts(value: datetime) -> str:
    # The one text form every contender's SQLite datetime parser accepts.
    return naive_utc(value).strftime("%Y-%m-%d %H:%M:%S")
