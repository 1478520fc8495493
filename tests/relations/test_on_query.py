"""``on_query`` (SPEC §5): it runs on every query a relation hands out — preload queries,
``related(...).query()`` (with its update/delete) and the subqueries of the ``has`` family and
the aggregates — and never on the relation clients' own writes. The query says where it is
through ``is_related_query``, ``is_related_preload_query`` and ``is_related_sub_query``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from lucid_orm import LucidError, belongs_to, column, db, has_many
from lucid_orm.database import Database
from lucid_orm.relations import BelongsTo, HasMany
from tests import models
from tests.helpers import count_queries
from tests.models import Comment

# (is_related_query, is_related_preload_query, is_related_sub_query) of every hooked query.
FLAGS: list[tuple[bool, bool, bool]] = []

PRELOAD = (True, True, False)
RELATED = (True, False, False)
SUB = (False, False, True)


def published_only(query: Any) -> None:
    FLAGS.append(
        (query.is_related_query, query.is_related_preload_query, query.is_related_sub_query)
    )
    query.where("is_published", True)


def active_only(query: Any) -> None:
    FLAGS.append(
        (query.is_related_query, query.is_related_preload_query, query.is_related_sub_query)
    )
    query.where("is_active", True)


def with_comments(query: Any) -> None:
    # A subquery cannot preload: only ask for comments where rows are returned.
    if not query.is_related_sub_query:
        query.preload("comments")


class Post(models.Post):
    is_published: bool | None = column()
    score: int | None = column()

    comments: HasMany[Comment] = has_many(lambda: Comment)
    author: BelongsTo[User] = belongs_to(lambda: User, on_query=active_only)


class User(models.BaseUser):
    is_active: bool | None = column()

    posts: HasMany[Post] = has_many(lambda: Post, on_query=published_only)


class Author(models.BaseUser):
    table = "users"

    posts: HasMany[Post] = has_many(lambda: Post, foreign_key="user_id", on_query=with_comments)


@pytest.fixture(autouse=True)
def _flags() -> Iterator[None]:
    FLAGS.clear()
    yield
    FLAGS.clear()


async def seed() -> tuple[User, User]:
    """virk: "Draft" (unpublished), "Adonis 101" and "Lucid 101" (published); nikk: "Edge"
    (published). The flags log is cleared afterwards."""
    virk = await User.create({"username": "virk"})
    nikk = await User.create({"username": "nikk"})
    await Post.create_many(
        [
            {"user_id": virk.id, "title": "Draft", "is_published": False, "score": 1},
            {"user_id": virk.id, "title": "Adonis 101", "is_published": True, "score": 2},
            {"user_id": virk.id, "title": "Lucid 101", "is_published": True, "score": 3},
            {"user_id": nikk.id, "title": "Edge", "is_published": True, "score": 4},
        ]
    )
    FLAGS.clear()
    return virk, nikk


async def titles(table_filter: dict[str, Any] | None = None) -> list[str]:
    query = db.from_("posts").select("title").order_by("id")
    if table_filter:
        query.where(table_filter)
    return [r["title"] for r in await query]


class TestOnQueryPreload:
    async def test_applied_once_per_preload_query(self, database: Database) -> None:
        await seed()
        with count_queries() as q:
            users = await User.query().preload("posts").order_by("id")
        assert q.count == 2
        assert FLAGS == [PRELOAD]
        assert [sorted(p.title or "" for p in u.posts) for u in users] == [
            ["Adonis 101", "Lucid 101"],
            ["Edge"],
        ]

    async def test_not_repeated_for_where_groups_of_the_callback(self, database: Database) -> None:
        await seed()
        [virk, _] = (
            await User.query()
            .preload(
                "posts", lambda q: q.where(lambda g: g.where("score", ">", 2).or_where("score", 1))
            )
            .order_by("id")
        )
        assert FLAGS == [PRELOAD]
        # The hook's condition and the callback's group both hold; the group's or_where
        # cannot undo the hook.
        assert [p.title for p in virk.posts] == ["Lucid 101"]

    async def test_applied_on_load_and_load_once(self, database: Database) -> None:
        virk, _ = await seed()
        await virk.load_once("posts")
        await virk.load_once("posts")
        assert FLAGS == [PRELOAD]
        assert sorted(p.title or "" for p in virk.posts) == ["Adonis 101", "Lucid 101"]

    async def test_belongs_to_preload(self, database: Database) -> None:
        virk, _ = await seed()
        await User.query().where("id", virk.id).update({"is_active": True})
        FLAGS.clear()
        posts = await Post.query().preload("author").order_by("id")
        assert FLAGS == [PRELOAD]
        assert [p.author.username if p.author else None for p in posts] == [
            "virk",
            "virk",
            "virk",
            None,  # nikk is filtered out by the hook
        ]

    async def test_nested_preload_only_outside_subqueries(self, database: Database) -> None:
        virk, _nikk = await seed()
        adonis = await Post.find_by_or_fail("title", "Adonis 101")
        await Comment.create({"post_id": adonis.id, "body": "Nice"})

        with count_queries() as q:
            authors = await Author.query().preload("posts").order_by("id")
        assert q.count == 3  # authors, posts, the hook's comments
        comments = {p.title: [c.body for c in p.comments] for p in authors[0].posts}
        assert comments == {"Draft": [], "Adonis 101": ["Nice"], "Lucid 101": []}

        author = await Author.find_or_fail(virk.id)
        related = await author.related("posts").query().where("title", "Adonis 101")
        assert [c.body for c in related[0].comments] == ["Nice"]

        # The same hook in a subquery: no preload, so no error.
        counted = await Author.query().has("posts", ">", 1).with_count("posts")
        assert [(a.username, a.extras["posts_count"]) for a in counted] == [("virk", 3)]
        having = await Author.query().where_has("posts").order_by("id")
        assert [a.username for a in having] == ["virk", "nikk"]


class TestOnQueryRelatedQuery:
    async def test_applied_on_the_related_query(self, database: Database) -> None:
        virk, _ = await seed()
        posts = await virk.related("posts").query().order_by("id")
        assert FLAGS == [RELATED]
        assert [p.title for p in posts] == ["Adonis 101", "Lucid 101"]

    async def test_user_or_where_cannot_escape_the_relation(self, database: Database) -> None:
        # As in Lucid, the hook's wheres and the user's share one group, and the relation
        # constraint wraps that group: nikk's published "Edge" never leaks in.
        virk, _ = await seed()
        posts = await virk.related("posts").query().where("score", 3).or_where("title", "Edge")
        assert [p.title for p in posts] == ["Lucid 101"]

    async def test_user_or_where_cannot_bypass_the_hook(self, database: Database) -> None:
        # The hook's conditions are their own group, AND-ed with the user's: virk's
        # unpublished "Draft" stays out even when an or_where names it.
        virk, _ = await seed()
        posts = await virk.related("posts").query().where("score", 3).or_where("title", "Draft")
        assert [p.title for p in posts] == ["Lucid 101"]
        sql, _bindings = virk.related("posts").query().or_where("title", "Draft").to_sql()
        where = sql.split("WHERE", 1)[1]
        assert " OR " not in where  # a lone or_where is AND-ed with the hook's group

    async def test_paginate_counts_through_the_hook(self, database: Database) -> None:
        virk, _ = await seed()
        page = await virk.related("posts").query().order_by("id").paginate(1, 1)
        assert page.total == 2
        assert [p.title for p in page] == ["Adonis 101"]

    async def test_update_goes_through_the_hook(self, database: Database) -> None:
        virk, _ = await seed()
        assert await virk.related("posts").query().update({"score": 10}) == 2
        assert FLAGS == [RELATED]
        rows = await db.from_("posts").select("title", "score").order_by("id")
        assert rows == [
            {"title": "Draft", "score": 1},
            {"title": "Adonis 101", "score": 10},
            {"title": "Lucid 101", "score": 10},
            {"title": "Edge", "score": 4},
        ]
        assert await virk.related("posts").query().increment("score", 1) == 2

    async def test_delete_goes_through_the_hook(self, database: Database) -> None:
        virk, _ = await seed()
        assert await virk.related("posts").query().delete() == 2
        assert FLAGS == [RELATED]
        assert await titles() == ["Draft", "Edge"]


class TestOnQuerySubQueries:
    async def test_has_family(self, database: Database) -> None:
        _virk, nikk = await seed()
        await Post.query().where("user_id", nikk.id).update({"is_published": False})
        with_posts = await User.query().has("posts").order_by("id")
        assert [u.username for u in with_posts] == ["virk"]
        several = await User.query().has("posts", ">", 1)
        assert [u.username for u in several] == ["virk"]
        without = await User.query().doesnt_have("posts")
        assert [u.username for u in without] == ["nikk"]
        scoped = await User.query().where_has("posts", lambda q: q.where("score", ">", 2))
        assert [u.username for u in scoped] == ["virk"]
        assert FLAGS == [SUB, SUB, SUB, SUB]

    async def test_with_count_and_with_aggregate(self, database: Database) -> None:
        await seed()
        users = (
            await User.query()
            .with_count("posts")
            .with_aggregate("posts", lambda q: q.min("score").as_("lowest"))
            .order_by("id")
        )
        assert [(u.extras["posts_count"], u.extras["lowest"]) for u in users] == [(2, 2), (1, 4)]
        assert FLAGS == [SUB, SUB]

    async def test_load_count_and_load_aggregate(self, database: Database) -> None:
        virk, _ = await seed()
        await virk.load_count("posts")
        await virk.load_aggregate("posts", lambda q: q.sum("score").as_("total"))
        assert (virk.extras["posts_count"], virk.extras["total"]) == (2, 5)
        assert FLAGS == [SUB, SUB]

    async def test_plain_model_queries_are_not_related(self, database: Database) -> None:
        query = Post.query()
        assert (query.is_related_query, query.is_related_preload_query) == (False, False)
        assert query.is_related_sub_query is False
        assert FLAGS == []


class TestOnQueryWrites:
    async def test_has_many_writes_never_run_the_hook(self, database: Database) -> None:
        virk, _ = await seed()
        related = virk.related("posts")
        await related.save(Post(title="saved", is_published=False))
        await related.create({"title": "created", "is_published": False})
        await related.save_many([Post(title="saved many", is_published=False)])
        await related.create_many([{"title": "created many", "is_published": False}])
        await related.fetch_or_create_many([{"title": "fetched", "is_published": False}], "title")
        await related.update_or_create_many([{"title": "upserted", "is_published": False}], "title")
        assert FLAGS == []
        unpublished = await titles({"is_published": False})
        assert unpublished == [
            "Draft",
            "saved",
            "created",
            "saved many",
            "created many",
            "fetched",
            "upserted",
        ]

    async def test_lookups_of_writes_ignore_the_hook(self, database: Database) -> None:
        # As Lucid's relatedModel().firstOrCreate(): the hook's filter does not hide the
        # unpublished "Draft", so it is found, not duplicated.
        virk, _ = await seed()
        found = await virk.related("posts").first_or_create({"title": "Draft"})
        assert found.title == "Draft" and not found.is_local
        updated = await virk.related("posts").update_or_create({"title": "Draft"}, {"score": 9})
        assert updated.id == found.id
        fetched = await virk.related("posts").fetch_or_create_many([{"title": "Draft"}], "title")
        assert [p.id for p in fetched] == [found.id]
        upserted = await virk.related("posts").update_or_create_many(
            [{"title": "Draft", "score": 7}], "title"
        )
        assert [p.id for p in upserted] == [found.id]
        assert FLAGS == []
        assert (await titles()).count("Draft") == 1
        assert await db.from_("posts").where("title", "Draft").select("score") == [{"score": 7}]

    async def test_associate_and_dissociate_never_run_the_hook(self, database: Database) -> None:
        virk, _ = await seed()  # virk is not active: the hook would hide him
        post = await Post.create({"title": "Solo"})
        await post.related("author").associate(virk)
        assert post.user_id == virk.id
        assert post.author is virk
        await post.related("author").dissociate()
        assert post.user_id is None
        assert FLAGS == []
        assert await db.from_("posts").where("title", "Solo").select("user_id") == [
            {"user_id": None}
        ]


class TestOnQueryDeclaration:
    def test_async_on_query_is_rejected_when_declared(self) -> None:
        async def hook(query: object) -> None:
            return None

        with pytest.raises(LucidError) as info:
            has_many(lambda: Post, on_query=hook)
        assert info.value.code == "E_RUNTIME_EXCEPTION"
        assert "async def" in str(info.value)
