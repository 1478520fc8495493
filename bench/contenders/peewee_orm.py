"""Peewee (sync, called directly) on ``sqlite3`` / psycopg2: ``prefetch``, ``fn.EXISTS``, a
LEFT JOIN count, ``bulk_create`` in ``atomic()``, ``get_by_id``. Statements are counted from
the ``peewee`` logger, which logs each one at DEBUG."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from peewee import (
    EXCLUDED,
    JOIN,
    SQL,
    AutoField,
    CharField,
    CompositeKey,
    Database,
    DateTimeField,
    ForeignKeyField,
    IntegerField,
    Model,
    PostgresqlDatabase,
    SqliteDatabase,
    TextField,
    fn,
    prefetch,
)

from ..workload import Data, readings_digest
from . import Backend, Contender, NoFeature, StatementCounter


class User(Model):
    id = AutoField()
    email = CharField(unique=True)
    name = CharField()
    created_at = DateTimeField()

    class Meta:
        table_name = "users"


class Post(Model):
    id = AutoField()
    author = ForeignKeyField(User, backref="posts", null=True, column_name="user_id")
    title = CharField()
    body = TextField()
    created_at = DateTimeField()

    class Meta:
        table_name = "posts"


class Tag(Model):
    id = AutoField()
    name = CharField()

    class Meta:
        table_name = "tags"


class PostTag(Model):
    # Peewee's prefetch cannot follow a ManyToManyField; its docs prefetch the through model.
    post = ForeignKeyField(Post, backref="post_tags", column_name="post_id")
    tag = ForeignKeyField(Tag, backref="post_tags", column_name="tag_id")

    class Meta:
        table_name = "post_tags"
        primary_key = CompositeKey("post", "tag")


class Reading(Model):
    id = AutoField()
    sensor = IntegerField()
    value = IntegerField()
    label = CharField()

    class Meta:
        table_name = "readings"


MODELS = [User, Post, Tag, PostTag, Reading]


class _LogCounter(logging.Handler):
    def __init__(self, counter: StatementCounter) -> None:
        super().__init__(logging.DEBUG)
        self.counter = counter

    def emit(self, record: logging.LogRecord) -> None:
        sql = record.msg[0] if isinstance(record.msg, tuple) else record.msg
        self.counter.add(str(sql))


class PeeweeORM(Contender):
    name = "Peewee"
    distribution = "peewee"
    notes = (
        "sync, called directly; `sqlite3` / psycopg2. `prefetch` (subqueries, not key lists; "
        "tags through the `post_tags` model since prefetch cannot follow a ManyToManyField), "
        "`fn.EXISTS`, LEFT JOIN + GROUP BY count, `bulk_create` in `atomic()` (SQLite opened "
        "with `returning_clause=True` so primary keys are set), `get_by_id`; statements from "
        "the `peewee` DEBUG log. update_many: `bulk_update(fields=[Post.title])` in "
        "`atomic()` (CASE); paginate: `.paginate(page, n)` and `.count()`; no concurrent "
        "tasks (a sync ORM); upsert: `insert_many(...).on_conflict(update={name: "
        "EXCLUDED.name}).returning(User)`; no keyset pagination; streaming: `.iterator()` "
        "(psycopg2's default cursor buffers the whole result in libpq, outside Python's "
        "allocator, so tracemalloc does not see it)."
    )

    def __init__(self) -> None:
        self._db: Database | None = None

    def unavailable(self, backend: Backend) -> str | None:
        if backend.name == "postgresql":
            try:
                import psycopg2  # noqa: F401
            except ImportError:
                return "psycopg2 is not installed"
        if backend.name == "mariadb":
            try:
                import pymysql  # noqa: F401
            except ImportError:
                return "pymysql (Peewee's MySQL driver) is not installed"
        return None

    async def open(self, backend: Backend) -> None:
        if backend.name == "sqlite":
            # returning_clause: bulk_create then sets primary keys, as on PostgreSQL.
            self._db = SqliteDatabase(str(backend.sqlite_path), returning_clause=True)
        else:
            url = urlsplit(str(backend.pg_url))
            self._db = PostgresqlDatabase(
                url.path.lstrip("/"),
                user=url.username,
                password=url.password,
                host=url.hostname,
                port=url.port or 5432,
                options="-c timezone=UTC",
            )
        self._db.bind(MODELS)
        self._db.connect()

    async def close(self) -> None:
        assert self._db is not None
        self._db.close()

    @contextlib.contextmanager
    def count_statements(self) -> Iterator[StatementCounter | None]:
        counter = StatementCounter()
        logger = logging.getLogger("peewee")
        handler, level = _LogCounter(counter), logger.level
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
        try:
            yield counter
        finally:
            logger.removeHandler(handler)
            logger.setLevel(level)

    def posts_with_author(self, data: Data) -> Any:
        posts = prefetch(Post.select(), User.select())
        return [(p.id, p.title, p.created_at, p.author.email) for p in posts]

    def users_with_posts(self, data: Data) -> Any:
        users = prefetch(User.select(), Post.select())
        return [(u.id, u.email, [p.id for p in u.posts]) for u in users]

    def users_posts_tags(self, data: Data) -> Any:
        users = prefetch(User.select(), Post.select(), PostTag.select(), Tag.select())
        return [
            (u.id, [(p.id, [pt.tag.name for pt in p.post_tags]) for p in u.posts]) for u in users
        ]

    def users_where_has(self, data: Data) -> Any:
        matching = Post.select(SQL("1")).where(
            (Post.author == User.id) & Post.title.contains(data.word)
        )
        return [(u.id, u.email) for u in User.select().where(fn.EXISTS(matching))]

    def users_with_count(self, data: Data) -> Any:
        users = (
            User.select(User, fn.COUNT(Post.id).alias("posts_count"))
            .join(Post, JOIN.LEFT_OUTER)
            .group_by(User)
        )
        return [(u.id, u.posts_count) for u in users]

    def create_many(self, data: Data) -> Any:
        assert self._db is not None
        with self._db.atomic():
            user = User.get_by_id(data.author_id)
            posts = [Post(author=user, **values) for values in data.new_posts]
            Post.bulk_create(posts)
        return [(p.user_id, p.title) for p in posts]  # the foreign key's column name

    def find_many_times(self, data: Data) -> Any:
        out = []
        for key in data.find_ids:
            user = User.get_by_id(key)
            out.append((user.id, user.email, user.created_at))
        return out

    def update_many(self, data: Data) -> Any:
        assert self._db is not None
        with self._db.atomic():
            posts = list(Post.select().where(Post.id <= data.sizes.updates).order_by(Post.id))
            for post in posts:
                post.title = post.title.upper()
            Post.bulk_update(posts, fields=[Post.title])
        return [(p.id, p.title) for p in posts]

    def paginate(self, data: Data) -> Any:
        s = data.sizes
        query = Post.select().order_by(Post.created_at.desc(), Post.id.desc())
        total = query.count()
        return (total, [(p.id, p.title) for p in query.paginate(s.page, s.per_page)])

    def concurrent_finds(self, data: Data) -> Any:
        raise NoFeature("a sync ORM: no concurrent tasks on one event loop")

    def upsert_many(self, data: Data) -> Any:
        query = (
            User.insert_many(data.upserts)
            .on_conflict(conflict_target=[User.email], update={User.name: EXCLUDED.name})
            .returning(User)
        )
        users = list(query.execute())
        return [(u.email, u.name) for u in users]

    def cursor_paginate(self, data: Data) -> Any:
        raise NoFeature("no keyset (cursor) pagination")

    def stream(self, data: Data) -> Any:
        count = id_sum = value_sum = chars = 0
        for r in Reading.select().iterator():
            count += 1
            id_sum += r.id
            value_sum += r.value
            chars += len(r.label)
        return readings_digest(count, id_sum, value_sum, chars)
