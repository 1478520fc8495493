"""lucid_orm, the library under test: preload, where_has, with_count, create_many through
``user.related("posts")``, ``find``, ``update_many``, ``paginate``, ``upsert_many``,
``cursor_paginate``, ``stream``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from lucid_orm import BaseModel, belongs_to, column, db, has_many, many_to_many
from lucid_orm.relations import BelongsTo, HasMany, ManyToMany

from ..workload import Data, readings_digest
from . import Backend, Contender, StatementCounter


class User(BaseModel):
    id: int = column(is_primary=True)
    email: str = column()
    name: str = column()
    created_at: datetime = column.date_time()

    posts: HasMany[Post] = has_many(lambda: Post)


class Post(BaseModel):
    id: int = column(is_primary=True)
    user_id: int | None = column()
    title: str = column()
    body: str = column()
    created_at: datetime = column.date_time()

    author: BelongsTo[User] = belongs_to(lambda: User, foreign_key="user_id")
    tags: ManyToMany[Tag] = many_to_many(lambda: Tag, pivot_table="post_tags")


class Tag(BaseModel):
    id: int = column(is_primary=True)
    name: str = column()


class Reading(BaseModel):
    id: int = column(is_primary=True)
    sensor: int = column()
    value: int = column()
    label: str = column()


class Lucid(Contender):
    name = "lucid_orm"
    distribution = "lucid-orm"
    notes = (
        "`preload`, `where_has` + `where_like`, `with_count`, `find_or_fail` then "
        '`user.related("posts").create_many(...)`, `User.find`, `Post.update_many`, '
        '`paginate`, `User.query().where(id).preload("posts").first()` per task (every '
        'contender\'s pool capped at the same size), `User.upsert_many(conflict="email", '
        'merge=["name"])`, `cursor_paginate` following `next_cursor`, `stream()` (default '
        "batch of 1,000); statements from `db.on_query`."
    )

    async def open(self, backend: Backend) -> None:
        db.configure(url=backend.lucid_url, pool={"max": backend.pool})

    async def close(self) -> None:
        await db.close()

    @contextlib.contextmanager
    def count_statements(self) -> Iterator[StatementCounter | None]:
        counter = StatementCounter()
        unsubscribe = db.on_query(lambda event: counter.add(event.sql))
        try:
            yield counter
        finally:
            unsubscribe()

    async def posts_with_author(self, data: Data) -> Any:
        posts = await Post.query().preload("author")
        return [(p.id, p.title, p.created_at, p.author.email) for p in posts]

    async def users_with_posts(self, data: Data) -> Any:
        users = await User.query().preload("posts")
        return [(u.id, u.email, [p.id for p in u.posts]) for u in users]

    async def users_posts_tags(self, data: Data) -> Any:
        users = await User.query().preload("posts.tags")
        return [(u.id, [(p.id, [t.name for t in p.tags]) for p in u.posts]) for u in users]

    async def users_where_has(self, data: Data) -> Any:
        pattern = f"%{data.word}%"
        users = await User.query().where_has("posts", lambda q: q.where_like("title", pattern))
        return [(u.id, u.email) for u in users]

    async def users_with_count(self, data: Data) -> Any:
        users = await User.query().with_count("posts")
        return [(u.id, u.extras["posts_count"]) for u in users]

    async def create_many(self, data: Data) -> Any:
        user = await User.find_or_fail(data.author_id)
        posts = await user.related("posts").create_many(data.new_posts)
        return [(p.user_id, p.title) for p in posts]

    async def find_many_times(self, data: Data) -> Any:
        out = []
        for key in data.find_ids:
            user = await User.find(key)
            out.append((user.id, user.email, user.created_at))
        return out

    async def update_many(self, data: Data) -> Any:
        posts = await Post.query().where("id", "<=", data.sizes.updates).order_by("id")
        for post in posts:
            post.title = post.title.upper()
        await Post.update_many(posts)
        return [(p.id, p.title) for p in posts]

    async def paginate(self, data: Data) -> Any:
        s = data.sizes
        page = (
            await Post.query()
            .order_by("created_at", "desc")
            .order_by("id", "desc")
            .paginate(s.page, s.per_page)
        )
        return (page.total, [(p.id, p.title) for p in page])

    async def concurrent_finds(self, data: Data) -> Any:
        async def task(key: int) -> tuple[Any, ...]:
            user = await User.query().where("id", key).preload("posts").first()
            assert user is not None
            return (user.id, user.email, [p.id for p in user.posts])

        return list(await asyncio.gather(*(task(key) for key in data.task_ids)))

    async def upsert_many(self, data: Data) -> Any:
        users = await User.upsert_many(data.upserts, conflict="email", merge=["name"])
        return [(u.email, u.name) for u in users]

    async def cursor_paginate(self, data: Data) -> Any:
        out: list[tuple[Any, ...]] = []
        cursor = None
        while True:
            page = await Post.query().order_by("id").cursor_paginate(data.sizes.cursor_page, cursor)
            out += [(p.id, p.title) for p in page.data]
            if not page.has_more:
                return out
            cursor = page.next_cursor

    async def stream(self, data: Data) -> Any:
        count = id_sum = value_sum = chars = 0
        async for r in Reading.query().stream():
            count += 1
            id_sum += r.id
            value_sum += r.value
            chars += len(r.label)
        return readings_digest(count, id_sum, value_sum, chars)
