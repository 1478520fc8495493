"""The floor: the bare async driver (aiosqlite / asyncpg / asyncmy) running the same queries,
rows turned into small ``__slots__`` objects by hand and matched with dicts."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from ..workload import Data, mysql_params, readings_digest
from . import Backend, Contender, StatementCounter

# Below SQLite's default SQLITE_MAX_VARIABLE_NUMBER (32766); PostgreSQL takes one array;
# asyncmy interpolates parameters client-side (no limit but the packet size).
_CHUNK = 30_000
# Rows fetched per round trip while streaming (op 13), as lucid_orm's default batch size.
_STREAM_BATCH = 1000


class UserRow:
    __slots__ = ("created_at", "email", "id", "name", "posts")

    def __init__(self, id: int, email: str, name: str, created_at: datetime) -> None:
        self.id, self.email, self.name, self.created_at = id, email, name, created_at
        self.posts: list[PostRow] = []


class PostRow:
    __slots__ = ("author", "body", "created_at", "id", "tags", "title", "user_id")

    def __init__(
        self, id: int | None, user_id: int | None, title: str, body: str, created_at: datetime
    ) -> None:
        self.id, self.user_id, self.title, self.body = id, user_id, title, body
        self.created_at = created_at
        self.author: UserRow | None = None
        self.tags: list[TagRow] = []


class TagRow:
    __slots__ = ("id", "name")

    def __init__(self, id: int, name: str) -> None:
        self.id, self.name = id, name


class ReadingRow:
    __slots__ = ("id", "label", "sensor", "value")

    def __init__(self, id: int, sensor: int, value: int, label: str) -> None:
        self.id, self.sensor, self.value, self.label = id, sensor, value, label


_USER = "users.id, users.email, users.name, users.created_at"
_POST = "posts.id, posts.user_id, posts.title, posts.body, posts.created_at"
_MYSQL_INIT = "SET time_zone = '+00:00'"


class _SqlitePool:
    """``size`` aiosqlite connections handed out one task at a time (aiosqlite has no pool)."""

    def __init__(self, conns: list[Any]) -> None:
        self._all = conns
        self._free: asyncio.Queue[Any] = asyncio.Queue()
        for conn in conns:
            self._free.put_nowait(conn)

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[Any]:
        conn = await self._free.get()
        try:
            yield conn
        finally:
            self._free.put_nowait(conn)

    async def close(self) -> None:
        for conn in self._all:
            await conn.close()


class Bare(Contender):
    name = "bare driver"
    distribution = "aiosqlite"
    notes = (
        "the floor: hand-written SQL, one query per relation level (`IN (...)` on SQLite and "
        "MariaDB, `= ANY($1)` on PostgreSQL), rows into `__slots__` classes matched with "
        "dicts; create_many is one multi-row `INSERT … RETURNING id`; update_many one "
        "`UPDATE … FROM` a list of rows (`unnest` arrays on PostgreSQL, `VALUES` on SQLite, a "
        "`UNION ALL` derived table joined on MariaDB); paginate a `count(*)` and a `LIMIT … "
        "OFFSET`; concurrent finds on the driver's pool (asyncpg, asyncmy; a queue of "
        "aiosqlite connections), each task holding one connection for its two queries; upsert "
        "one multi-row `INSERT … ON CONFLICT DO UPDATE` (MariaDB: `ON DUPLICATE KEY UPDATE`) "
        "`RETURNING`; cursor pagination `WHERE id > ? ORDER BY id LIMIT n + 1`; streaming "
        "with the driver's cursor, 1,000 rows a round trip (asyncpg cursor in a transaction, "
        "asyncmy `SSCursor`, aiosqlite `fetchmany`)."
    )

    def __init__(self) -> None:
        self._conn: Any = None
        self._kind = "sqlite"
        self._backend: Backend | None = None
        self._pool: Any = None
        self._counter: StatementCounter | None = None

    @property
    def _pg(self) -> bool:
        return self._kind == "postgresql"

    @property
    def _my(self) -> bool:
        return self._kind == "mariadb"

    @classmethod
    def version(cls) -> str:
        from importlib import metadata

        return ", ".join(
            f"{name} {metadata.version(name)}" for name in ("aiosqlite", "asyncpg", "asyncmy")
        )

    async def open(self, backend: Backend) -> None:
        self._kind, self._backend = backend.name, backend
        self._conn = await self._connect()

    async def _connect(self) -> Any:
        backend = self._backend
        assert backend is not None
        if self._pg:
            import asyncpg

            return await asyncpg.connect(backend.pg_url, server_settings={"timezone": "UTC"})
        if self._my:
            import asyncmy

            params = mysql_params(str(backend.mysql_url))
            return await asyncmy.connect(**params, autocommit=True, init_command=_MYSQL_INIT)
        import aiosqlite

        return await aiosqlite.connect(backend.sqlite_path, isolation_level=None)

    async def _open_pool(self, size: int) -> Any:
        backend = self._backend
        assert backend is not None
        if self._pg:
            import asyncpg

            return await asyncpg.create_pool(
                backend.pg_url, min_size=size, max_size=size, server_settings={"timezone": "UTC"}
            )
        if self._my:
            import asyncmy

            params = mysql_params(str(backend.mysql_url))
            params["db"] = params.pop("database")
            return await asyncmy.create_pool(
                minsize=size, maxsize=size, autocommit=True, init_command=_MYSQL_INIT, **params
            )
        return _SqlitePool([await self._connect() for _ in range(size)])

    async def close(self) -> None:
        if self._pool is not None:
            if self._my:
                self._pool.close()
                await self._pool.wait_closed()
            else:
                await self._pool.close()
            self._pool = None
        if self._my:
            self._conn.close()
        else:
            await self._conn.close()

    @contextlib.contextmanager
    def count_statements(self) -> Iterator[StatementCounter | None]:
        self._counter = StatementCounter()
        try:
            yield self._counter
        finally:
            self._counter = None

    # -- the driver, by hand --------------------------------------------------------------------
    def _marks(self, n: int, start: int = 1) -> list[str]:
        """``n`` parameter placeholders in the driver's style."""
        if self._pg:
            return [f"${i}" for i in range(start, start + n)]
        return ["%s" if self._my else "?"] * n

    async def _fetch(self, sql: str, *params: Any, conn: Any = None) -> Sequence[Any]:
        if self._counter is not None:
            self._counter.add(sql)
        conn = conn or self._conn
        if self._pg:
            return await conn.fetch(sql, *params)
        if self._my:
            async with conn.cursor() as cur:
                await cur.execute(sql, params or None)
                return await cur.fetchall()
        # One trip to aiosqlite's thread (execute + fetchall + close), its fastest path.
        return await conn.execute_fetchall(sql, params)

    async def _execute(self, sql: str, *params: Any) -> None:
        if self._counter is not None:
            self._counter.add(sql)
        if self._pg:
            await self._conn.execute(sql, *params)
        elif self._my:
            async with self._conn.cursor() as cur:
                await cur.execute(sql, params or None)
        else:
            await self._conn.execute(sql, params)

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[None]:
        if self._pg:
            async with self._conn.transaction():
                yield
            return
        await self._execute("BEGIN")
        try:
            yield
        except BaseException:
            await self._execute("ROLLBACK")
            raise
        await self._execute("COMMIT")

    async def _fetch_in(self, sql: str, column: str, keys: list[int]) -> list[Any]:
        """``sql`` with ``{cond}`` replaced by a filter on ``column`` over ``keys``."""
        if self._pg:
            return list(await self._fetch(sql.format(cond=f"{column} = ANY($1::int[])"), keys))
        rows: list[Any] = []
        for start in range(0, len(keys), _CHUNK):
            chunk = keys[start : start + _CHUNK]
            marks = ", ".join(self._marks(len(chunk)))
            rows.extend(await self._fetch(sql.format(cond=f"{column} IN ({marks})"), *chunk))
        return rows

    def _ts(self, value: Any) -> datetime:
        if self._pg:
            return value
        if self._my:
            return value.replace(tzinfo=UTC)
        return datetime.fromisoformat(value).replace(tzinfo=UTC)

    def _bind_ts(self, value: datetime) -> Any:
        if self._pg:
            return value
        if self._my:
            return value.astimezone(UTC).replace(tzinfo=None)
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")

    def _users(self, rows: Sequence[Any]) -> list[UserRow]:
        ts = self._ts
        return [UserRow(r[0], r[1], r[2], ts(r[3])) for r in rows]

    def _posts(self, rows: Sequence[Any]) -> list[PostRow]:
        ts = self._ts
        return [PostRow(r[0], r[1], r[2], r[3], ts(r[4])) for r in rows]

    async def _load_posts(self, users: list[UserRow]) -> list[PostRow]:
        by_id = {u.id: u for u in users}
        posts = self._posts(
            await self._fetch_in(f"SELECT {_POST} FROM posts WHERE {{cond}}", "user_id", [*by_id])
        )
        for post in posts:
            by_id[post.user_id].posts.append(post)
        return posts

    # -- the operations -------------------------------------------------------------------------
    async def posts_with_author(self, data: Data) -> Any:
        posts = self._posts(await self._fetch(f"SELECT {_POST} FROM posts"))
        keys = list({p.user_id for p in posts if p.user_id is not None})
        sql = f"SELECT {_USER} FROM users WHERE {{cond}}"
        authors = {u.id: u for u in self._users(await self._fetch_in(sql, "id", keys))}
        for post in posts:
            post.author = authors.get(post.user_id)
        return [(p.id, p.title, p.created_at, p.author.email) for p in posts]

    async def users_with_posts(self, data: Data) -> Any:
        users = self._users(await self._fetch(f"SELECT {_USER} FROM users"))
        await self._load_posts(users)
        return [(u.id, u.email, [p.id for p in u.posts]) for u in users]

    async def users_posts_tags(self, data: Data) -> Any:
        users = self._users(await self._fetch(f"SELECT {_USER} FROM users"))
        posts = await self._load_posts(users)
        by_id = {p.id: p for p in posts}
        rows = await self._fetch_in(
            "SELECT tags.id, tags.name, post_tags.post_id FROM tags"
            " JOIN post_tags ON post_tags.tag_id = tags.id WHERE {cond}",
            "post_tags.post_id",
            [*by_id],
        )
        for r in rows:
            by_id[r[2]].tags.append(TagRow(r[0], r[1]))
        return [(u.id, [(p.id, [t.name for t in p.tags]) for p in u.posts]) for u in users]

    async def users_where_has(self, data: Data) -> Any:
        mark = self._marks(1)[0]
        rows = await self._fetch(
            f"SELECT {_USER} FROM users WHERE EXISTS (SELECT 1 FROM posts"
            f" WHERE posts.user_id = users.id AND posts.title LIKE {mark})",
            f"%{data.word}%",
        )
        return [(u.id, u.email) for u in self._users(rows)]

    async def users_with_count(self, data: Data) -> Any:
        rows = await self._fetch(
            f"SELECT {_USER}, (SELECT count(*) FROM posts WHERE posts.user_id = users.id)"
            " AS posts_count FROM users"
        )
        counts = [r[4] for r in rows]
        return [(u.id, n) for u, n in zip(self._users(rows), counts, strict=True)]

    async def create_many(self, data: Data) -> Any:
        async with self._transaction():
            return await self._create_many(data)

    async def _create_many(self, data: Data) -> Any:
        mark = self._marks(1)[0]
        user = self._users(
            await self._fetch(f"SELECT {_USER} FROM users WHERE id = {mark}", data.author_id)
        )[0]
        posts = [
            PostRow(None, user.id, r["title"], r["body"], r["created_at"]) for r in data.new_posts
        ]
        params: list[Any] = []
        for p in posts:
            params += (p.user_id, p.title, p.body, self._bind_ts(p.created_at))
        groups = self._groups(len(posts), 4)
        rows = await self._fetch(
            "INSERT INTO posts (user_id, title, body, created_at) VALUES "
            + groups
            + " RETURNING id",
            *params,
        )
        for post, row in zip(posts, rows, strict=True):
            post.id = row[0]
        return [(p.user_id, p.title) for p in posts]

    def _groups(self, rows: int, width: int) -> str:
        """``(?, ?), (?, ?), …``: ``rows`` groups of ``width`` placeholders."""
        marks = self._marks(rows * width)
        return ", ".join(
            "(" + ", ".join(marks[i : i + width]) + ")" for i in range(0, len(marks), width)
        )

    async def find_many_times(self, data: Data) -> Any:
        sql = f"SELECT {_USER} FROM users WHERE id = {self._marks(1)[0]}"
        out = []
        for key in data.find_ids:
            user = self._users(await self._fetch(sql, key))[0]
            out.append((user.id, user.email, user.created_at))
        return out

    async def update_many(self, data: Data) -> Any:
        mark = self._marks(1)[0]
        posts = self._posts(
            await self._fetch(
                f"SELECT {_POST} FROM posts WHERE id <= {mark} ORDER BY id", data.sizes.updates
            )
        )
        for post in posts:
            post.title = post.title.upper()
        async with self._transaction():
            await self._update_titles(posts)
        return [(p.id, p.title) for p in posts]

    async def _update_titles(self, posts: list[PostRow]) -> None:
        if self._pg:
            await self._execute(
                "UPDATE posts SET title = v.title FROM unnest($1::int[], $2::text[])"
                " AS v (id, title) WHERE posts.id = v.id",
                [p.id for p in posts],
                [p.title for p in posts],
            )
            return
        for start in range(0, len(posts), _CHUNK // 2):
            chunk = posts[start : start + _CHUNK // 2]
            params = [x for p in chunk for x in (p.id, p.title)]
            if self._my:
                rows = " UNION ALL ".join(
                    ["SELECT %s AS id, %s AS title"] + ["SELECT %s, %s"] * (len(chunk) - 1)
                )
                sql = (
                    f"UPDATE posts JOIN ({rows}) AS v ON posts.id = v.id SET posts.title = v.title"
                )
            else:
                values = self._groups(len(chunk), 2)
                sql = (
                    f"UPDATE posts SET title = v.column2 FROM (VALUES {values}) AS v"
                    " WHERE posts.id = v.column1"
                )
            await self._execute(sql, *params)

    async def paginate(self, data: Data) -> Any:
        s = data.sizes
        total = (await self._fetch("SELECT count(*) FROM posts"))[0][0]
        limit, offset = self._marks(2)
        posts = self._posts(
            await self._fetch(
                f"SELECT {_POST} FROM posts ORDER BY posts.created_at DESC, posts.id DESC"
                f" LIMIT {limit} OFFSET {offset}",
                s.per_page,
                (s.page - 1) * s.per_page,
            )
        )
        return (total, [(p.id, p.title) for p in posts])

    async def concurrent_finds(self, data: Data) -> Any:
        if self._pool is None:
            assert self._backend is not None
            self._pool = await self._open_pool(self._backend.pool)
        mark = self._marks(1)[0]
        user_sql = f"SELECT {_USER} FROM users WHERE id = {mark}"
        posts_sql = f"SELECT {_POST} FROM posts WHERE posts.user_id = {mark}"

        async def task(key: int) -> tuple[Any, ...]:
            async with self._pool.acquire() as conn:
                user = self._users(await self._fetch(user_sql, key, conn=conn))[0]
                user.posts = self._posts(await self._fetch(posts_sql, user.id, conn=conn))
            return (user.id, user.email, [p.id for p in user.posts])

        return list(await asyncio.gather(*(task(key) for key in data.task_ids)))

    async def upsert_many(self, data: Data) -> Any:
        # id 0 until RETURNING gives the row's key.
        users = [UserRow(0, r["email"], r["name"], r["created_at"]) for r in data.upserts]
        params = [x for u in users for x in (u.email, u.name, self._bind_ts(u.created_at))]
        if self._my:
            conflict = "ON DUPLICATE KEY UPDATE name = VALUES(name)"
        else:
            conflict = "ON CONFLICT (email) DO UPDATE SET name = excluded.name"
        rows = await self._fetch(
            f"INSERT INTO users (email, name, created_at) VALUES {self._groups(len(users), 3)}"
            f" {conflict} RETURNING id, email, name",
            *params,
        )
        by_email = {u.email: u for u in users}
        for row in rows:
            user = by_email[row[1]]
            user.id, user.name = row[0], row[2]
        return [(u.email, u.name) for u in users]

    async def cursor_paginate(self, data: Data) -> Any:
        per_page = data.sizes.cursor_page
        first, after = self._marks(1)[0], self._marks(2)
        out: list[tuple[Any, ...]] = []
        last: int | None = None
        while True:
            if last is None:
                sql = f"SELECT {_POST} FROM posts ORDER BY posts.id LIMIT {first}"
                rows = await self._fetch(sql, per_page + 1)
            else:
                sql = (
                    f"SELECT {_POST} FROM posts WHERE posts.id > {after[0]}"
                    f" ORDER BY posts.id LIMIT {after[1]}"
                )
                rows = await self._fetch(sql, last, per_page + 1)
            posts = self._posts(rows[:per_page])
            out += [(p.id, p.title) for p in posts]
            if len(rows) <= per_page:
                return out
            last = posts[-1].id

    async def stream(self, data: Data) -> Any:
        count = id_sum = value_sum = chars = 0
        async for batch in self._reading_batches():
            for r in [ReadingRow(*row) for row in batch]:
                count += 1
                id_sum += r.id
                value_sum += r.value
                chars += len(r.label)
        return readings_digest(count, id_sum, value_sum, chars)

    async def _reading_batches(self) -> AsyncIterator[Sequence[Any]]:
        sql = "SELECT id, sensor, value, label FROM readings"
        if self._counter is not None:
            self._counter.add(sql)
        if self._pg:
            async with self._conn.transaction():
                cursor = await self._conn.cursor(sql)
                while batch := await cursor.fetch(_STREAM_BATCH):
                    yield batch
        elif self._my:
            from asyncmy.cursors import SSCursor

            async with self._conn.cursor(SSCursor) as cur:
                await cur.execute(sql)
                while batch := await cur.fetchmany(_STREAM_BATCH):
                    yield batch
        else:
            async with self._conn.execute(sql) as cur:
                while batch := await cur.fetchmany(_STREAM_BATCH):
                    yield batch
