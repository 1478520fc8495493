"""Global scopes and soft deletes through relations (SPEC §10): the related model's scopes
constrain preload queries, ``related(...).query()``, and the subqueries of ``has``,
``where_has``, ``with_count`` and ``with_aggregate``, also across a many_to_many pivot and the
intermediate models of has_many_through; a callback lifts them on its own sub-query."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from lucid_orm import morph_map
from lucid_orm.database import Database
from lucid_orm.orm.relations.morph_map import clear_morph_map
from tests.helpers import count_queries
from tests.scoped_models import (
    Author,
    Comment,
    Note,
    Post,
    Tag,
    current_tenant,
    scoped,
    scoped_tables,
    seed,
)

__all__ = ["scoped", "scoped_tables"]


def bodies(comments: list[Comment]) -> list[str]:
    return sorted(c.body for c in comments)


class TestPreload:
    async def test_has_many_preload_skips_trashed(self, scoped: Database) -> None:
        rows = await seed()
        await rows["c1"].delete()
        with count_queries() as q:
            posts = await Post.query().preload("comments").order_by("title")
        assert q.count == 2
        assert [bodies(p.comments) for p in posts] == [["c2"], ["c3"], ["c4"]]
        posts = await Post.query().preload("comments", lambda q: q.with_trashed()).order_by("id")
        assert bodies(posts[0].comments) == ["c1", "c2"]

    async def test_belongs_to_preload_of_a_trashed_parent(self, scoped: Database) -> None:
        rows = await seed()
        await rows["p1"].delete()
        comments = await Comment.query().preload("post").order_by("body")
        assert [c.post.title if c.post else None for c in comments] == [None, None, "p2", "p3"]

    async def test_preload_applies_the_related_tenant_scope(self, scoped: Database) -> None:
        await seed()
        current_tenant.set(1)
        comments = await Comment.query().preload("post").order_by("body")
        assert [c.post.title if c.post else None for c in comments] == ["p1", "p1", "p2", None]

    async def test_many_to_many_preload(self, scoped: Database) -> None:
        rows = await seed()
        await rows["t2"].delete()
        posts = await Post.query().preload("tags").order_by("title")
        assert [[t.name for t in p.tags] for p in posts] == [["t1"], ["t1"], []]
        posts = await Post.query().preload("tags", lambda q: q.with_trashed()).order_by("title")
        assert sorted(t.name for t in posts[0].tags) == ["t1", "t2"]

    async def test_has_many_through_preload(self, scoped: Database) -> None:
        rows = await seed()
        await rows["c2"].delete()  # a trashed related row
        await rows["p2"].delete()  # a trashed intermediate: c3 goes with it
        authors = await Author.query().preload("comments").order_by("name")
        assert [bodies(a.comments) for a in authors] == [["c1"], ["c4"]]
        authors = (
            await Author.query()
            .preload("comments", lambda q: q.without_global_scopes())
            .order_by("name")
        )
        assert [bodies(a.comments) for a in authors] == [["c1", "c2", "c3"], ["c4"]]


class TestRelatedQuery:
    async def test_related_query_reads_and_writes(self, scoped: Database) -> None:
        rows = await seed()
        p1: Post = rows["p1"]
        await rows["c1"].delete()
        assert bodies(await p1.related("comments").query()) == ["c2"]
        assert await p1.related("comments").query().count_rows() == 1
        assert bodies(await p1.related("comments").query().with_trashed()) == ["c1", "c2"]
        # A relation's delete soft-deletes.
        with count_queries() as q:
            assert await p1.related("comments").query().delete() == 1
        assert q.count == 1 and q.sqls[0].upper().startswith("UPDATE")
        assert await Comment.query().with_trashed().where("post_id", p1.id).count_rows() == 2
        assert await p1.related("comments").query().count_rows() == 0
        assert await p1.related("comments").query().force_delete() == 2
        assert await Comment.query().with_trashed().where("post_id", p1.id).count_rows() == 0

    async def test_many_to_many_related_query(self, scoped: Database) -> None:
        rows = await seed()
        p1: Post = rows["p1"]
        await rows["t1"].delete()
        assert [t.name for t in await p1.related("tags").query()] == ["t2"]
        # Deleting through the related query detaches (pivot rows), never trashes tags, and
        # only the pivot rows of the tags it reads.
        with count_queries() as q:
            assert await p1.related("tags").query().delete() == 1
        assert q.count == 1 and q.sqls[0].upper().startswith("DELETE")
        assert await Tag.query().with_trashed().count_rows() == 2
        assert [t.name for t in await p1.related("tags").query().with_trashed()] == ["t1"]
        assert await p1.related("tags").query().with_trashed().delete() == 1
        assert await scoped.from_("sc_post_tags").where("post_id", p1.id).count_rows() == 0

    async def test_has_many_through_related_query(self, scoped: Database) -> None:
        rows = await seed()
        ada: Author = rows["ada"]
        await rows["p1"].delete()
        assert bodies(await ada.related("comments").query()) == ["c3"]
        assert await ada.related("comments").query().count_rows() == 1


class TestHasFamily:
    async def test_has_and_where_has(self, scoped: Database) -> None:
        rows = await seed()
        await rows["c4"].delete()
        titles = [p.title for p in await Post.query().has("comments").order_by("title")]
        assert titles == ["p1", "p2"]
        query = Post.query().where_has("comments", lambda q: q.with_trashed())
        assert await query.count_rows() == 3
        query = Post.query().has("comments", ">=", 2)
        assert [p.title for p in await query] == ["p1"]
        await rows["c1"].delete()
        assert await Post.query().has("comments", ">=", 2).count_rows() == 0
        assert await Post.query().doesnt_have("comments").count_rows() == 1

    async def test_has_respects_the_tenant_scope_of_the_related_model(
        self, scoped: Database
    ) -> None:
        await seed()
        current_tenant.set(2)
        # Authors of tenant 2 with posts of tenant 2 (both scopes in one statement).
        with count_queries() as q:
            found = await Author.query().has("posts")
        assert q.count == 1
        assert [a.name for a in found] == ["bob"]
        lifted = Author.query().without_global_scopes().has("posts").order_by("name")
        assert [a.name for a in await lifted] == ["bob"]
        both = (
            Author.query()
            .without_global_scopes()
            .where_has("posts", lambda q: q.without_global_scopes("tenant"))
        )
        assert sorted(a.name for a in await both) == ["ada", "bob"]

    async def test_with_count_and_with_aggregate(self, scoped: Database) -> None:
        rows = await seed()
        await rows["c2"].delete()
        posts = await Post.query().with_count("comments").order_by("title")
        assert [p.extras["comments_count"] for p in posts] == [1, 1, 1]
        posts = await (
            Post.query()
            .with_count("comments", lambda q: q.with_trashed().as_("all_comments"))
            .order_by("title")
        )
        assert [p.extras["all_comments"] for p in posts] == [2, 1, 1]
        posts = (
            await Post.query()
            .with_aggregate("comments", lambda q: q.max("body").as_("last_body"))
            .order_by("title")
        )
        assert [p.extras["last_body"] for p in posts] == ["c1", "c3", "c4"]

    async def test_many_to_many_has_and_count(self, scoped: Database) -> None:
        rows = await seed()
        await rows["t1"].delete()
        assert [p.title for p in await Post.query().has("tags")] == ["p1"]
        posts = await Post.query().with_count("tags").order_by("title")
        assert [p.extras["tags_count"] for p in posts] == [1, 0, 0]

    async def test_has_many_through_has_and_count(self, scoped: Database) -> None:
        rows = await seed()
        await rows["p3"].delete()  # bob's only post: his comment is out of reach
        assert [a.name for a in await Author.query().has("comments")] == ["ada"]
        authors = await Author.query().with_count("comments").order_by("name")
        assert [a.extras["comments_count"] for a in authors] == [3, 0]
        await rows["c1"].delete()
        authors = await Author.query().with_count("comments").order_by("name")
        assert [a.extras["comments_count"] for a in authors] == [2, 0]
        authors = (
            await Author.query().with_count("comments", lambda q: q.with_trashed()).order_by("name")
        )
        # with_trashed lifts the soft-delete scope of the related and intermediate models.
        assert [a.extras["comments_count"] for a in authors] == [3, 1]

    async def test_or_where_has_keeps_the_scope_inside(self, scoped: Database) -> None:
        rows = await seed()
        await rows["c4"].delete()
        query: Any = Post.query().where("title", "p1").or_where_has("comments")
        assert sorted(p.title for p in await query) == ["p1", "p2"]


@pytest.fixture
def post_alias() -> Iterator[None]:
    morph_map({"sc_post": Post})
    try:
        yield
    finally:
        clear_morph_map()


class TestMorph:
    async def test_morph_to_preload_and_where_has_morph(
        self, scoped: Database, post_alias: None
    ) -> None:
        rows = await seed()
        await Note.create_many(
            [
                {"notable_type": "sc_post", "notable_id": rows["p1"].id, "body": "n1"},
                {"notable_type": "sc_post", "notable_id": rows["p2"].id, "body": "n2"},
            ]
        )
        await rows["p1"].delete()
        notes = await Note.query().preload("notable").order_by("body")
        assert [n.notable.title if n.notable else None for n in notes] == [None, "p2"]
        found = await Note.query().where_has_morph("notable", [Post])
        assert [n.body for n in found] == ["n2"]
        found = (
            await Note.query()
            .where_has_morph("notable", [Post], lambda q: q.with_trashed())
            .order_by("body")
        )
        assert [n.body for n in found] == ["n1", "n2"]
