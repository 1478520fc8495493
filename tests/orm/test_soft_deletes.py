"""Soft deletes (SPEC §10): ``soft_deletes=True`` models stamp ``deleted_at`` on delete, hide
trashed rows from every query, and ``force_delete``/``restore``/``with_trashed``/
``only_trashed`` on instances and builders."""

from __future__ import annotations

from typing import Any

from lucid_orm.database import Database
from tests.helpers import count_queries
from tests.scoped_models import Post, scoped, scoped_tables, seed

__all__ = ["scoped", "scoped_tables"]


async def titles(query: Any) -> list[str]:
    return [p.title for p in await query.order_by("title")]


class TestInstanceDelete:
    async def test_delete_stamps_and_hides(self, scoped: Database) -> None:
        rows = await seed()
        p1: Post = rows["p1"]
        with count_queries() as q:
            await p1.delete()
        assert q.count == 1
        assert "UPDATE" in q.sqls[0].upper()
        assert p1.is_trashed and p1.is_persisted and not p1.is_deleted
        assert p1.deleted_at is not None and p1.deleted_at.utcoffset() is not None
        assert await titles(Post.query()) == ["p2", "p3"]
        assert await Post.find(p1.id) is None
        assert await titles(Post.query().with_trashed()) == ["p1", "p2", "p3"]
        assert await titles(Post.query().only_trashed()) == ["p1"]
        raw = await scoped.from_("sc_posts").where("id", p1.id).first()
        assert raw is not None and raw["deleted_at"] is not None
