"""Static typing of global scopes and soft deletes, checked by ``mypy --strict tests/typing``
(never run). Each ``assert_type`` pins an inferred type; each ``# type: ignore[code]`` marks an
error that must happen."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextvars import ContextVar
from datetime import datetime
from typing import Any, ClassVar, assert_type

from lucid_orm import BaseModel, ModelQueryBuilder, after, before, column, global_scope

tenant: ContextVar[int] = ContextVar("tenant")


def by_tenant(query: ModelQueryBuilder[Any]) -> None:
    query.where("tenant_id", tenant.get())


class Post(BaseModel, soft_deletes=True):
    global_scopes: ClassVar[Mapping[str, Callable[[Any], Any]]] = {"tenant": by_tenant}
    id: int = column(is_primary=True)
    tenant_id: int = column()
    deleted_at: datetime | None = column.date_time()

    @global_scope("published")
    @staticmethod
    def published(query: ModelQueryBuilder[Any]) -> None:
        query.where_not_null("published_at")

    @before("restore")
    @staticmethod
    def log_restore(post: Post) -> None: ...

    @after("restore")
    @staticmethod
    async def after_restore(post: Post) -> None: ...


class Archived(BaseModel, soft_deletes="archived_at"):
    id: int = column(is_primary=True)
    archived_at: datetime | None = column.date_time()


async def queries() -> None:
    assert_type(Post.query().without_global_scopes("tenant"), ModelQueryBuilder[Post])
    assert_type(Post.query().without_global_scopes(), ModelQueryBuilder[Post])
    assert_type(Post.query().with_trashed(), ModelQueryBuilder[Post])
    assert_type(Post.query().only_trashed(), ModelQueryBuilder[Post])
    assert_type(await Post.query().with_trashed(), list[Post])
    assert_type(await Post.query().delete(), int)
    assert_type(await Post.query().force_delete(), int)
    assert_type(await Post.query().restore(), int)
    Post.query().without_global_scopes(1)  # type: ignore[arg-type]


async def instances(post: Post) -> None:
    await post.delete()
    await post.force_delete()
    assert_type(await post.restore(), Post)
    assert_type(post.is_trashed, bool)
    assert_type(post.deleted_at, datetime | None)
    post.is_trashed = True  # type: ignore[misc]


def run_time() -> None:
    Post.add_global_scope("tenant", by_tenant)
    Post.remove_global_scope("tenant")
    Post.add_global_scope(1, by_tenant)  # type: ignore[arg-type]


before("restored")  # type: ignore[arg-type]
