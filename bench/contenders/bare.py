"""The floor: the bare async driver (aiosqlite / asyncpg) running the same queries, rows turned
into small ``__slots__`` objects by hand and matched with dicts."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from ..workload import Data
from . import Backend, Contender, StatementCounter

# Below SQLite's default SQLITE_MAX_VARIABLE_NUMBER (32766); PostgreSQL takes one array.
_SQLITE_CHUNK = 30_000


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


_USER = "users.id, users.email, users.name, users.created_at"
_POST = "posts.id, posts.user_id, posts.title, posts.body, posts.created_at"


class Bare(Contender):
    name = "bare driver"
    distribution = "aiosqlite"
    notes = (
        "the floor: hand-written SQL, one query per relation level (`IN (...)` on SQLite, "
        "`= ANY($1)` on PostgreSQL), rows into `__slots__` classes matched with dicts; "
        "create_many is one multi-row `INSERT … RETURNING id`."
    )

    def __init__(self) -> None:
        self._conn: Any = None
        self._pg = False
        self._counter: StatementCounter | None = None

    @classmethod
    def version(cls) -> str:
        from importlib import metadata

        return f"aiosqlite {metadata.version('aiosqlite')}, asyncpg {metadata.version('asyncpg')}"

    async def open(self, backend: Backend) -> None:
        self._pg = backend.name == "postgresql"
        if self._pg:
            import asyncpg

            self._conn = await asyncpg.connect(backend.pg_url, server_settings={"timezone": "UTC"})
        else:
            import aiosqlite

            self._conn = await aiosqlite.connect(backend.sqlite_path, isolation_level=None)

    async def close(self) -> None:
        await self._conn.close()

    @contextlib.contextmanager
    def count_statements(self) -> Iterator[StatementCounter | None]:
        self._counter = StatementCounter()
        try:
            yield self._counter
        finally:
            self._counter = None

    # -- the driver, by hand --------------------------------------------------------------------
    async def _fetch(self, sql: str, *params: Any) -> Sequence[Any]:
        if self._counter is not None:
            self._counter.add(sql)
        if self._pg:
            return await self._conn.fetch(sql, *params)
        # One trip to aiosqlite's thread (execute + fetchall + close), its fastest path.
        return await self._conn.execute_fetchall(sql, params)

    async def _fetch_in(self, sql: str, column: str, keys: list[int]) -> list[Any]:
        """``sql`` with ``{cond}`` replaced by a filter on ``column`` over ``keys``."""
        if self._pg:
            return list(await self._fetch(sql.format(cond=f"{column} = ANY($1::int[])"), keys))
        rows: list[Any] = []
        for start in range(0, len(keys), _SQLITE_CHUNK):
            chunk = keys[start : start + _SQLITE_CHUNK]
            marks = ", ".join("?" * len(chunk))
            rows.extend(await self._fetch(sql.format(cond=f"{column} IN ({marks})"), *chunk))
        return rows

    def _ts(self, value: Any) -> datetime:
        if self._pg:
            return value
        return datetime.fromisoformat(value).replace(tzinfo=UTC)

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
        mark = "$1" if self._pg else "?"
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
        if self._pg:
            async with self._conn.transaction():
                return await self._create_many(data)
        await self._conn.execute("BEGIN")
        try:
            result = await self._create_many(data)
        except BaseException:
            await self._conn.execute("ROLLBACK")
            raise
        await self._conn.execute("COMMIT")
        return result

    async def _create_many(self, data: Data) -> Any:
        mark = "$1" if self._pg else "?"
        user = self._users(
            await self._fetch(f"SELECT {_USER} FROM users WHERE id = {mark}", data.author_id)
        )[0]
        posts = [
            PostRow(None, user.id, r["title"], r["body"], r["created_at"]) for r in data.new_posts
        ]
        params: list[Any] = []
        for p in posts:
            created = p.created_at if self._pg else p.created_at.strftime("%Y-%m-%d %H:%M:%S")
            params += (p.user_id, p.title, p.body, created)
        if self._pg:
            groups = (f"(${i}, ${i + 1}, ${i + 2}, ${i + 3})" for i in range(1, len(params), 4))
        else:
            groups = ("(?, ?, ?, ?)" for _ in posts)
        rows = await self._fetch(
            "INSERT INTO posts (user_id, title, body, created_at) VALUES "
            + ", ".join(groups)
            + " RETURNING id",
            *params,
        )
        for post, row in zip(posts, rows, strict=True):
            post.id = row[0]
        return [(p.user_id, p.title) for p in posts]

    async def find_many_times(self, data: Data) -> Any:
        sql = f"SELECT {_USER} FROM users WHERE id = {'$1' if self._pg else '?'}"
        out = []
        for key in data.find_ids:
            user = self._users(await self._fetch(sql, key))[0]
            out.append((user.id, user.email, user.created_at))
        return out
