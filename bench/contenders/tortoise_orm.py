"""Tortoise ORM: ``prefetch_related``, a relational filter (Tortoise has no EXISTS expression),
``annotate(Count)``, ``bulk_create`` in ``in_transaction()``, ``Model.get``. Statements are
counted from the ``tortoise.db_client`` logger, which logs each one at DEBUG."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from tortoise import Tortoise, fields
from tortoise.exceptions import OperationalError
from tortoise.functions import Count
from tortoise.models import Model
from tortoise.transactions import in_transaction

from ..workload import Data
from . import Backend, Contender, NoFeature, StatementCounter, Unsupported


class User(Model):
    id = fields.IntField(primary_key=True)
    email = fields.CharField(max_length=255)
    name = fields.CharField(max_length=255)
    created_at = fields.DatetimeField()

    class Meta:
        table = "users"


class Tag(Model):
    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=50)

    class Meta:
        table = "tags"


class Post(Model):
    id = fields.IntField(primary_key=True)
    author: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="posts", null=True, source_field="user_id"
    )
    title = fields.CharField(max_length=255)
    body = fields.TextField()
    created_at = fields.DatetimeField()
    tags: fields.ManyToManyRelation[Tag] = fields.ManyToManyField(
        "models.Tag",
        related_name="posts",
        through="post_tags",
        forward_key="tag_id",
        backward_key="post_id",
    )

    class Meta:
        table = "posts"


class _LogCounter(logging.Handler):
    def __init__(self, counter: StatementCounter) -> None:
        super().__init__(logging.DEBUG)
        self.counter = counter

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args if isinstance(record.args, tuple) else ()
        if len(args) != 2:  # statements are logged as ("%s: %s", sql, values)
            return
        sql, values = args
        # execute_many logs once with a list of parameter lists.
        many = isinstance(values, list) and bool(values) and isinstance(values[0], list | tuple)
        self.counter.add(str(sql), len(values) if many else 1)


class TortoiseORM(Contender):
    name = "Tortoise"
    distribution = "tortoise-orm"
    notes = (
        "`prefetch_related`; Tortoise has no EXISTS expression, so op 4 is the relational "
        "filter `posts__title__contains` + `distinct()` (a JOIN); `annotate(Count)` (LEFT JOIN "
        "+ GROUP BY); `bulk_create` in `in_transaction()`: an executemany of single-row "
        "INSERTs that does not set primary keys (Tortoise documents it); statements from the "
        '`tortoise.db_client` DEBUG log. update_many: `bulk_update(fields=["title"])` in '
        "`in_transaction()` (CASE); no paginator, keyset pagination nor streaming; concurrent "
        'finds: `User.get(id=...).prefetch_related("posts")` per task, the pool capped at '
        "the floor's size (SQLite: Tortoise's one connection); upsert: `bulk_create(..., "
        'on_conflict=["email"], update_fields=["name"])` (no keys back).'
    )

    async def open(self, backend: Backend) -> None:
        pool = f"minsize=1&maxsize={backend.pool}"
        if backend.name == "sqlite":
            url = f"sqlite://{backend.sqlite_path}"
        elif backend.name == "mariadb":
            url = f"{backend.mysql_url}?{pool}"  # Tortoise's mysql:// runs on asyncmy
        else:
            url = str(backend.pg_url).replace("postgresql://", "asyncpg://", 1) + f"?{pool}"
        # One connection name per backend: Tortoise caches each model's INSERT SQL per
        # connection name for the life of the process, so a reused name would send SQLite's
        # SQL to PostgreSQL after re-initialising.
        await Tortoise.init(
            config={
                "connections": {backend.name: url},
                "apps": {"models": {"models": [__name__], "default_connection": backend.name}},
                "use_tz": True,
                "timezone": "UTC",
            }
        )

    async def close(self) -> None:
        await Tortoise.close_connections()

    @contextlib.contextmanager
    def count_statements(self) -> Iterator[StatementCounter | None]:
        counter = StatementCounter()
        logger = logging.getLogger("tortoise.db_client")
        handler, level = _LogCounter(counter), logger.level
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
        try:
            yield counter
        finally:
            logger.removeHandler(handler)
            logger.setLevel(level)

    async def posts_with_author(self, data: Data) -> Any:
        posts = await Post.all().prefetch_related("author")
        return [(p.id, p.title, p.created_at, p.author.email) for p in posts]

    async def users_with_posts(self, data: Data) -> Any:
        users = await User.all().prefetch_related("posts")
        return [(u.id, u.email, [p.id for p in u.posts]) for u in users]

    async def users_posts_tags(self, data: Data) -> Any:
        users = await User.all().prefetch_related("posts__tags")
        return [(u.id, [(p.id, [t.name for t in p.tags]) for p in u.posts]) for u in users]

    async def users_where_has(self, data: Data) -> Any:
        users = await User.filter(posts__title__contains=data.word).distinct()
        return [(u.id, u.email) for u in users]

    async def users_with_count(self, data: Data) -> Any:
        users = await User.annotate(posts_count=Count("posts"))
        return [(u.id, u.posts_count) for u in users]

    async def create_many(self, data: Data) -> Any:
        async with in_transaction():
            user = await User.get(id=data.author_id)
            posts = [Post(author=user, **values) for values in data.new_posts]
            await Post.bulk_create(posts)
        return [(p.author_id, p.title) for p in posts]

    async def find_many_times(self, data: Data) -> Any:
        out = []
        for key in data.find_ids:
            user = await User.get(id=key)
            out.append((user.id, user.email, user.created_at))
        return out

    async def update_many(self, data: Data) -> Any:
        async with in_transaction():
            posts = await Post.filter(id__lte=data.sizes.updates).order_by("id")
            for post in posts:
                post.title = post.title.upper()
            await Post.bulk_update(posts, fields=["title"])
        return [(p.id, p.title) for p in posts]

    def paginate(self, data: Data) -> Any:
        raise NoFeature("no paginator (a count and offset/limit by hand)")

    async def concurrent_finds(self, data: Data) -> Any:
        async def task(key: int) -> tuple[Any, ...]:
            user = await User.get(id=key).prefetch_related("posts")
            return (user.id, user.email, [p.id for p in user.posts])

        return list(await asyncio.gather(*(task(key) for key in data.task_ids)))

    async def upsert_many(self, data: Data) -> Any:
        users = [User(**values) for values in data.upserts]
        try:
            async with in_transaction():
                await User.bulk_create(users, on_conflict=["email"], update_fields=["name"])
        except OperationalError as exc:
            if "AS `new_" not in str(exc):
                raise
            raise Unsupported(
                "Tortoise renders MySQL 8's `INSERT … AS new ON DUPLICATE KEY UPDATE`, which "
                "MariaDB rejects"
            ) from exc
        return [(u.email, u.name) for u in users]

    def cursor_paginate(self, data: Data) -> Any:
        raise NoFeature("no keyset (cursor) pagination")

    def stream(self, data: Data) -> Any:
        raise NoFeature("no streaming: a query loads every row")
