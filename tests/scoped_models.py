"""Tables and models of the global-scope and soft-delete tests (their own ``MetaData``, created
per module by ``scoped_tables``): authors with a tenant scope, soft-deleting posts, comments
(with an ``updated_at``) and tags (tags stamp ``removed_at``), a pivot between posts and tags,
and authors' comments through their posts."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextvars import ContextVar
from datetime import datetime
from typing import Any, ClassVar

import pytest
from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table
from sqlalchemy.dialects import mysql

from lucid_orm import (
    BaseModel,
    ModelQueryBuilder,
    belongs_to,
    column,
    global_scope,
    has_many,
    has_many_through,
    many_to_many,
    morph_to,
)
from lucid_orm.database import Database
from lucid_orm.relations import BelongsTo, HasMany, HasManyThrough, ManyToMany, MorphTo

scoped_metadata = MetaData()
_DateTime = DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def _pk() -> Column[Any]:
    return Column("id", Integer, primary_key=True, autoincrement=True)


sc_authors = Table(
    "sc_authors",
    scoped_metadata,
    _pk(),
    Column("name", String(100)),
    Column("tenant_id", Integer, nullable=True),
)
sc_posts = Table(
    "sc_posts",
    scoped_metadata,
    _pk(),
    Column("author_id", Integer, nullable=True),
    Column("title", String(100)),
    Column("tenant_id", Integer, nullable=True),
    Column("deleted_at", _DateTime, nullable=True),
)
sc_comments = Table(
    "sc_comments",
    scoped_metadata,
    _pk(),
    Column("post_id", Integer, nullable=True),
    Column("body", String(100)),
    Column("deleted_at", _DateTime, nullable=True),
    Column("updated_at", _DateTime, nullable=True),
)
sc_tags = Table(
    "sc_tags",
    scoped_metadata,
    _pk(),
    Column("name", String(100)),
    Column("removed_at", _DateTime, nullable=True),
)
sc_post_tags = Table(
    "sc_post_tags",
    scoped_metadata,
    _pk(),
    Column("post_id", Integer),
    Column("tag_id", Integer),
)

sc_notes = Table(
    "sc_notes",
    scoped_metadata,
    _pk(),
    Column("notable_type", String(50), nullable=True),
    Column("notable_id", Integer, nullable=True),
    Column("body", String(100)),
)

#: The tenant of the running test (``None``: the tenant scope adds nothing).
current_tenant: ContextVar[int | None] = ContextVar("current_tenant", default=None)


def tenant_scope(query: ModelQueryBuilder[Any]) -> None:
    tenant = current_tenant.get()
    if tenant is not None:
        query.where("tenant_id", tenant)


class Author(BaseModel):
    table = "sc_authors"
    global_scopes: ClassVar[dict[str, Callable[[Any], Any]]] = {"tenant": tenant_scope}
    id: int = column(is_primary=True)
    name: str = column()
    tenant_id: int | None = column()
    posts: HasMany[Post] = has_many(lambda: Post)
    comments: HasManyThrough[Comment] = has_many_through((lambda: Comment, lambda: Post))


class Post(BaseModel, soft_deletes=True):
    table = "sc_posts"
    id: int = column(is_primary=True)
    author_id: int | None = column()
    title: str = column()
    tenant_id: int | None = column()
    deleted_at: datetime | None = column.date_time()
    author: BelongsTo[Author] = belongs_to(lambda: Author)
    comments: HasMany[Comment] = has_many(lambda: Comment)
    tags: ManyToMany[Tag] = many_to_many(lambda: Tag, pivot_table="sc_post_tags")

    @global_scope("tenant")
    @staticmethod
    def tenant(query: ModelQueryBuilder[Any]) -> None:
        tenant_scope(query)


class Comment(BaseModel, soft_deletes=True):
    table = "sc_comments"
    id: int = column(is_primary=True)
    post_id: int | None = column()
    body: str = column()
    deleted_at: datetime | None = column.date_time()
    updated_at: datetime | None = column.date_time(auto_create=True, auto_update=True)
    post: BelongsTo[Post] = belongs_to(lambda: Post)


class Tag(BaseModel, soft_deletes="removed_at"):
    table = "sc_tags"
    id: int = column(is_primary=True)
    name: str = column()
    removed_at: datetime | None = column.date_time()


class Note(BaseModel):
    """A note on a post (morph_to; the tests map the alias ``sc_post`` to ``Post``)."""

    table = "sc_notes"
    id: int = column(is_primary=True)
    notable_type: str | None = column()
    notable_id: int | None = column()
    body: str = column()
    notable: MorphTo[Post] = morph_to()


@pytest.fixture(scope="module")
async def scoped_tables(dialect: str) -> AsyncIterator[None]:
    from lucid_orm import db

    async with db.engine().begin() as conn:
        await conn.run_sync(scoped_metadata.drop_all)
        await conn.run_sync(scoped_metadata.create_all)
    try:
        yield
    finally:
        async with db.engine().begin() as conn:
            await conn.run_sync(scoped_metadata.drop_all)


@pytest.fixture
async def scoped(database: Database, scoped_tables: None) -> AsyncIterator[Database]:
    """The database with the scoped tables, emptied after the test."""
    token = current_tenant.set(None)
    try:
        yield database
    finally:
        current_tenant.reset(token)
        async with database.engine().begin() as conn:
            for table in reversed(scoped_metadata.sorted_tables):
                await conn.execute(table.delete())


async def seed() -> dict[str, Any]:
    """Two tenants: ada (tenant 1) with posts p1 (tags t1, t2; comments c1, c2) and p2 (tag
    t1; comment c3); bob (tenant 2) with p3 (comment c4)."""
    ada = await Author.create({"name": "ada", "tenant_id": 1})
    bob = await Author.create({"name": "bob", "tenant_id": 2})
    p1 = await Post.create({"author_id": ada.id, "title": "p1", "tenant_id": 1})
    p2 = await Post.create({"author_id": ada.id, "title": "p2", "tenant_id": 1})
    p3 = await Post.create({"author_id": bob.id, "title": "p3", "tenant_id": 2})
    c1 = await Comment.create({"post_id": p1.id, "body": "c1"})
    c2 = await Comment.create({"post_id": p1.id, "body": "c2"})
    c3 = await Comment.create({"post_id": p2.id, "body": "c3"})
    c4 = await Comment.create({"post_id": p3.id, "body": "c4"})
    t1 = await Tag.create({"name": "t1"})
    t2 = await Tag.create({"name": "t2"})
    await p1.related("tags").attach([t1.id, t2.id])
    await p2.related("tags").attach([t1.id])
    return {
        "ada": ada,
        "bob": bob,
        "p1": p1,
        "p2": p2,
        "p3": p3,
        "c1": c1,
        "c2": c2,
        "c3": c3,
        "c4": c4,
        "t1": t1,
        "t2": t2,
    }
