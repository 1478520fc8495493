"""Django ORM (sync, called directly): ``prefetch_related``, ``Exists(OuterRef)``,
``annotate(Count)``, ``bulk_create`` in ``atomic()``, ``objects.get``. Settings are configured
in-process; each backend is added as a database alias when the contender opens on it."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import django
from django.apps import AppConfig
from django.conf import settings

# The harness calls Django directly from inside its event loop (nothing else runs meanwhile);
# this is Django's documented switch for that.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


class BenchApp(AppConfig):
    """An installed app, so reverse relations (``posts``) resolve in lookups."""

    name = "bench"
    label = "bench"


if not settings.configured:
    settings.configure(
        DEBUG=False,  # DEBUG=True would keep every query in memory
        USE_TZ=True,
        TIME_ZONE="UTC",
        INSTALLED_APPS=[f"{__name__}.BenchApp"],
        DATABASES={},
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
    )
    django.setup()

from django.core.paginator import Paginator  # noqa: E402
from django.db import OperationalError, connections, models, transaction  # noqa: E402
from django.db.models import Count, Exists, OuterRef  # noqa: E402

from ..workload import Data, readings_digest  # noqa: E402
from . import Backend, Contender, NoFeature, StatementCounter, Unsupported  # noqa: E402


class User(models.Model):
    email = models.CharField(max_length=255)
    name = models.CharField(max_length=255)
    created_at = models.DateTimeField()

    class Meta:
        app_label = "bench"
        db_table = "users"
        managed = False


class Tag(models.Model):
    name = models.CharField(max_length=50)

    class Meta:
        app_label = "bench"
        db_table = "tags"
        managed = False


class Post(models.Model):
    author = models.ForeignKey(
        User, models.CASCADE, null=True, db_column="user_id", related_name="posts"
    )
    title = models.CharField(max_length=255)
    body = models.TextField()
    created_at = models.DateTimeField()
    # The auto-created through model matches post_tags (post_id, tag_id); its "id" column is
    # only used when writing through it, which the benchmark does not do.
    tags = models.ManyToManyField(Tag, db_table="post_tags", related_name="posts")

    class Meta:
        app_label = "bench"
        db_table = "posts"
        managed = False


class Reading(models.Model):
    sensor = models.IntegerField()
    value = models.IntegerField()
    label = models.CharField(max_length=20)

    class Meta:
        app_label = "bench"
        db_table = "readings"
        managed = False


def _register(alias: str, config: dict[str, Any]) -> None:
    # Django reads DATABASES once; an alias added at run time goes through the same defaults.
    connections.settings[alias] = connections.configure_settings({"default": config})["default"]


class DjangoORM(Contender):
    name = "Django"
    distribution = "django"
    notes = (
        "sync, called directly; PostgreSQL through psycopg 3. `prefetch_related`, "
        "`Exists(OuterRef)`, `annotate(Count)` (LEFT JOIN + GROUP BY), `bulk_create` in "
        "`atomic()` (on SQLite Django caps a statement at 999 parameters, so 1,000 posts take "
        'several INSERTs), `objects.get`; update_many: `bulk_update([...], ["title"])` (CASE, '
        "in batches under SQLite's parameter cap); paginate: `Paginator(...).page(n)` and "
        "`paginator.count`; no concurrent tasks (a sync ORM); upsert: `bulk_create(..., "
        "update_conflicts=True, unique_fields=..., update_fields=...)`; no keyset "
        "pagination; streaming: `.iterator(chunk_size=1000)` (server-side cursor on "
        "PostgreSQL); statements from `connection.execute_wrapper`."
    )

    def __init__(self) -> None:
        self._alias = ""

    def unavailable(self, backend: Backend) -> str | None:
        if backend.name == "mariadb":
            try:
                import MySQLdb  # noqa: F401
            except ImportError:
                return "mysqlclient (Django's MySQL driver) is not installed"
        return None

    async def open(self, backend: Backend) -> None:
        self._alias = f"bench_{backend.name}"
        if backend.name == "sqlite":
            config = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(backend.sqlite_path)}
        else:
            url = urlsplit(str(backend.pg_url))
            config = {
                "ENGINE": "django.db.backends.postgresql",
                "NAME": url.path.lstrip("/"),
                "USER": url.username or "",
                "PASSWORD": url.password or "",
                "HOST": url.hostname or "",
                "PORT": str(url.port or ""),
            }
        _register(self._alias, config)

    async def close(self) -> None:
        connections[self._alias].close()

    @contextlib.contextmanager
    def count_statements(self) -> Iterator[StatementCounter | None]:
        counter = StatementCounter()

        def wrapper(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
            counter.add(sql, len(params) if many else 1)
            return execute(sql, params, many, context)

        with connections[self._alias].execute_wrapper(wrapper):
            yield counter

    def _users(self) -> Any:
        return User.objects.using(self._alias)

    def posts_with_author(self, data: Data) -> Any:
        posts = Post.objects.using(self._alias).prefetch_related("author")
        try:
            return [(p.id, p.title, p.created_at, p.author.email) for p in posts]
        except OperationalError as exc:
            if "Expression tree is too large" not in str(exc):
                raise
            # Django 5.2 prefetches a forward foreign key with a tuple IN lookup, which on
            # SQLite falls back to `id = %s OR id = %s OR ...`: past ~1,000 distinct parents
            # SQLite's expression depth limit (1000) rejects it.
            raise Unsupported(
                "Django 5.2's forward-FK prefetch_related renders `id = ? OR id = ? …` on SQLite,"
                f" over SQLite's expression depth limit ({exc})"
            ) from exc

    def users_with_posts(self, data: Data) -> Any:
        users = self._users().prefetch_related("posts")
        return [(u.id, u.email, [p.id for p in u.posts.all()]) for u in users]

    def users_posts_tags(self, data: Data) -> Any:
        users = self._users().prefetch_related("posts__tags")
        return [
            (u.id, [(p.id, [t.name for t in p.tags.all()]) for p in u.posts.all()]) for u in users
        ]

    def users_where_has(self, data: Data) -> Any:
        matching = Post.objects.filter(author=OuterRef("pk"), title__contains=data.word)
        return [(u.id, u.email) for u in self._users().filter(Exists(matching))]

    def users_with_count(self, data: Data) -> Any:
        users = self._users().annotate(posts_count=Count("posts"))
        return [(u.id, u.posts_count) for u in users]

    def create_many(self, data: Data) -> Any:
        with transaction.atomic(using=self._alias):
            user = self._users().get(pk=data.author_id)
            posts = Post.objects.using(self._alias).bulk_create(
                [Post(author=user, **values) for values in data.new_posts]
            )
        return [(p.author_id, p.title) for p in posts]

    def find_many_times(self, data: Data) -> Any:
        users = self._users()
        out = []
        for key in data.find_ids:
            user = users.get(pk=key)
            out.append((user.id, user.email, user.created_at))
        return out

    def update_many(self, data: Data) -> Any:
        with transaction.atomic(using=self._alias):
            posts = list(
                Post.objects.using(self._alias).filter(id__lte=data.sizes.updates).order_by("id")
            )
            for post in posts:
                post.title = post.title.upper()
            Post.objects.using(self._alias).bulk_update(posts, ["title"])
        return [(p.id, p.title) for p in posts]

    def paginate(self, data: Data) -> Any:
        s = data.sizes
        query = Post.objects.using(self._alias).order_by("-created_at", "-id")
        page = Paginator(query, s.per_page).page(s.page)
        return (page.paginator.count, [(p.id, p.title) for p in page])

    def concurrent_finds(self, data: Data) -> Any:
        raise NoFeature("a sync ORM: no concurrent tasks on one event loop")

    def upsert_many(self, data: Data) -> Any:
        users = [User(**values) for values in data.upserts]
        self._users().bulk_create(
            users, update_conflicts=True, unique_fields=["email"], update_fields=["name"]
        )
        return [(u.email, u.name) for u in users]

    def cursor_paginate(self, data: Data) -> Any:
        raise NoFeature("no keyset (cursor) pagination")

    def stream(self, data: Data) -> Any:
        count = id_sum = value_sum = chars = 0
        for r in Reading.objects.using(self._alias).iterator(chunk_size=1000):
            count += 1
            id_sum += r.id
            value_sum += r.value
            chars += len(r.label)
        return readings_digest(count, id_sum, value_sum, chars)
