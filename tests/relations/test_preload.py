"""Preload across relation kinds (SPEC §5, §8): bound-parameter chunking, transactions, sibling
preloads on one client, one-pass matching, repeated preloads and callback rules."""

from __future__ import annotations

import re
from typing import Any

import pytest

from lucid_orm import BaseModel, LucidError, belongs_to, column, db, has_many
from lucid_orm.database import Database
from lucid_orm.relations import BelongsTo, HasMany
from tests import models
from tests.helpers import count_queries, flat
from tests.models import Comment, Country, Task

# SQLite's default compiled limit, the lowest of the three dialects.
BOUND_PARAMETER_LIMIT = 32766


class Post(models.Post):
    score: int | None = column()

    comments: HasMany[Comment] = has_many(lambda: Comment)


class User(models.BaseUser):
    country_id: int | None = column()

    posts: HasMany[Post] = has_many(lambda: Post)
    tasks: HasMany[Task] = has_many(lambda: Task)
    country: BelongsTo[Country] = belongs_to(lambda: Country)


def tables_of(sqls: list[str]) -> list[str]:
    """The table each SELECT reads first (``… FROM <table> …``)."""
    out = []
    for sql in sqls:
        match = re.search(r"\bFROM\s+[`\"]?(\w+)", sql)
        assert match is not None, sql
        out.append(match.group(1))
    return out


class TestPreloadChunking:
    async def test_more_parents_than_the_bound_parameter_limit(
        self, database: Database, dialect: str
    ) -> None:
        total = 33_000
        # Seed by doubling inside the database (INSERT … SELECT): 16 statements, whatever the
        # dialect, instead of shipping 33k rows of values.
        await database.table("users").insert({"country_id": 0})
        size = 1
        while size < total:
            step = min(size, total - size)
            await database.raw_query(
                "INSERT INTO users (country_id) SELECT country_id + ? FROM users "
                "WHERE country_id < ?",
                [size, step],
            )
            size += step
        ids = {
            f"u{r['country_id']}": r["id"]
            for r in await database.from_("users").select("id", "country_id")
        }
        assert len(ids) == total
        # Rows for parents at both ends and past any 30k/32k chunk boundary.
        owners = ["u0", "u1", "u16000", "u31000", "u32999"]
        await database.table("posts").multi_insert(
            [{"user_id": ids[name], "title": f"{name}-{n}"} for name in owners for n in range(2)]
        )
        await database.table("countries").multi_insert(
            [{"id": i, "name": f"c{i}"} for i in (5, 17000, 32999)]
        )

        with count_queries() as q:
            users = await User.query().preload("posts").preload("country")
        assert len(users) == total
        assert all(len(b) <= BOUND_PARAMETER_LIMIT for b in q.bindings)
        if dialect != "mysql":
            # One parameter per preload (a PostgreSQL array, SQLite JSON): one statement each.
            assert q.count == 3
            assert all(len(b) == 1 for b in q.bindings[1:])
        else:
            # users + at least two chunks for each relation
            assert q.count >= 5

        with_posts = {
            f"u{u.country_id}": sorted(p.title or "" for p in u.posts) for u in users if u.posts
        }
        assert with_posts == {name: [f"{name}-0", f"{name}-1"] for name in owners}
        with_country = {f"u{u.country_id}": u.country.name for u in users if u.country is not None}
        assert with_country == {"u5": "c5", "u17000": "c17000", "u32999": "c32999"}

        # A constraint's own bindings still fit, and still apply.
        users = await User.query().preload("posts", lambda q: q.where("title", "like", "%-1"))
        with_posts = {f"u{u.country_id}": [p.title for p in u.posts] for u in users if u.posts}
        assert with_posts == {name: [f"{name}-1"] for name in owners}


class TestPreloadTransactions:
    async def test_preload_queries_run_in_the_parent_querys_transaction(
        self, database: Database
    ) -> None:
        async with db.transaction() as trx:
            user = await User.create({"username": "virk"}, client=trx)
            post = await Post.create({"user_id": user.id, "title": "Adonis 101"}, client=trx)
            await Comment.create({"post_id": post.id, "body": "Nice"}, client=trx)
            with count_queries() as q:
                [loaded] = await User.query(client=trx).preload("posts.comments")
            assert q.count == 3
            assert all(e.in_transaction for e in q.events)
            assert [p.title for p in loaded.posts] == ["Adonis 101"]
            assert [c.body for c in loaded.posts[0].comments] == ["Nice"]
            assert loaded.posts[0].trx is trx
            assert loaded.posts[0].comments[0].trx is trx
            await trx.rollback()
        assert await User.query().preload("posts") == []

    async def test_load_uses_the_instance_transaction(self, database: Database) -> None:
        trx = await db.transaction()
        try:
            user = await User.create({"username": "virk"}, client=trx)
            await Post.create({"user_id": user.id, "title": "Adonis 101"}, client=trx)
            with count_queries() as q:
                await user.load("posts")
                await user.load_count("posts")
            assert [e.in_transaction for e in q.events] == [True, True]
            assert [p.title for p in user.posts] == ["Adonis 101"]
            assert user.extras["posts_count"] == 1
        finally:
            await trx.rollback()


class TestPreloadSiblings:
    async def test_siblings_run_one_after_another_on_the_same_client(
        self, database: Database
    ) -> None:
        async with db.transaction() as trx:
            user = await User.create({"username": "virk"}, client=trx)
            post = await Post.create({"user_id": user.id, "title": "Adonis 101"}, client=trx)
            await Comment.create({"post_id": post.id, "body": "Nice"}, client=trx)
            await Task.create({"user_id": user.id, "name": "write"}, client=trx)
            with count_queries() as q:
                [loaded] = (
                    await User.query(client=trx)
                    .preload("posts", lambda p: p.preload("comments"))
                    .preload("tasks")
                    .preload("country")
                )
        # Depth first, in declaration order, each statement on the one transaction
        # (the country query is skipped: no parent has a country key).
        assert tables_of(q.sqls) == ["users", "posts", "comments", "hm_tasks"]
        assert all(e.in_transaction for e in q.events)
        assert len({e.connection for e in q.events}) == 1
        assert [t.name for t in loaded.tasks] == ["write"]
        assert [c.body for c in loaded.posts[0].comments] == ["Nice"]
        assert loaded.country is None


class TestPreloadMatching:
    async def test_many_parents_and_many_children(self, database: Database) -> None:
        await database.table("users").multi_insert([{"username": f"u{i}"} for i in range(200)])
        ids = [r["id"] for r in await database.from_("users").select("id").order_by("id")]
        # Children interleaved across parents, five each.
        await database.table("posts").multi_insert(
            [{"user_id": uid, "title": f"{uid}-{n}"} for n in range(5) for uid in ids]
        )
        with count_queries() as q:
            users = await User.query().preload("posts", lambda p: p.order_by("id", "desc"))
        assert q.count == 2
        assert len(users) == 200
        for user in users:
            titles = [p.title for p in user.posts]
            # Every child found its parent, in the preload query's order.
            assert titles == [f"{user.id}-{n}" for n in reversed(range(5))]
            assert all(p.user_id == user.id for p in user.posts)

    async def test_parents_sharing_a_key_share_the_children(self, database: Database) -> None:
        class Owner(BaseModel):
            table = "users"
            id: int = column(is_primary=True)
            username: str | None = column()
            country_id: int | None = column()
            posts: HasMany[Post] = has_many(
                lambda: Post, local_key="country_id", foreign_key="user_id"
            )

        await Owner.create({"username": "a", "country_id": 7})
        await Owner.create({"username": "b", "country_id": 7})
        await Owner.create({"username": "c", "country_id": None})
        await Post.create_many([{"user_id": 7, "title": "x"}, {"user_id": 7, "title": "y"}])
        with count_queries() as q:
            owners = await Owner.query().preload("posts").order_by("id")
        assert q.count == 2
        assert flat(q.bindings[1]).count(7) == 1  # the key is looked up once
        assert [sorted(p.title or "" for p in o.posts) for o in owners] == [["x", "y"]] * 2 + [[]]
        assert owners[0].posts is not owners[1].posts


class TestPreloadTwice:
    async def test_same_relation_twice_runs_one_query(self, database: Database) -> None:
        user = await User.create({"username": "virk"})
        await Post.create_many([{"user_id": user.id, "title": t} for t in ("a", "b")])
        with count_queries() as q:
            [loaded] = await User.query().preload("posts").preload("posts")
        assert q.count == 2
        assert sorted(p.title or "" for p in loaded.posts) == ["a", "b"]

    async def test_callbacks_of_both_preloads_apply(self, database: Database) -> None:
        user = await User.create({"username": "virk"})
        await Post.create_many(
            [
                {"user_id": user.id, "title": t, "score": s}
                for t, s in (("a", 1), ("b", 5), ("c", 9))
            ]
        )
        with count_queries() as q:
            [loaded] = (
                await User.query()
                .preload("posts", lambda p: p.where("score", ">", 1))
                .preload("posts", lambda p: p.where("score", "<", 9))
            )
        assert q.count == 2
        assert [p.title for p in loaded.posts] == ["b"]

    async def test_relation_and_nested_path(self, database: Database) -> None:
        user = await User.create({"username": "virk"})
        post = await Post.create({"user_id": user.id, "title": "a"})
        await Comment.create({"post_id": post.id, "body": "Nice"})
        with count_queries() as q:
            [loaded] = await User.query().preload("posts").preload("posts.comments")
        assert tables_of(q.sqls) == ["users", "posts", "comments"]
        assert [c.body for c in loaded.posts[0].comments] == ["Nice"]

    async def test_load_the_same_relation_twice(self, database: Database) -> None:
        user = await User.create({"username": "virk"})
        await Post.create({"user_id": user.id, "title": "a"})
        with count_queries() as q:
            await user.load(lambda loader: loader.load("posts").load("posts"))
        assert q.count == 1
        assert [p.title for p in user.posts] == ["a"]


class TestPreloadCallbacks:
    async def test_async_callback_is_rejected_when_passed(self, database: Database) -> None:
        async def callback(query: Any) -> None:
            query.where("title", "a")

        message = (
            '"preload" callbacks must be plain functions that configure the query; an async '
            "def callback is not allowed"
        )
        user = await User.create({"username": "virk"})
        with count_queries() as q:
            with pytest.raises(LucidError) as exc:
                User.query().preload("posts", callback)
            assert (exc.value.code, str(exc.value)) == ("E_RUNTIME_EXCEPTION", message)
            with pytest.raises(LucidError) as exc:
                await user.load("posts", callback)
            assert str(exc.value) == message
            with pytest.raises(LucidError) as exc:
                await user.load(lambda loader: loader.load("posts", callback))
            assert str(exc.value) == message
        assert q.count == 0

    async def test_callback_runs_when_the_query_executes(self, database: Database) -> None:
        await User.create({"username": "virk"})
        seen: list[Any] = []
        query = User.query().preload("posts", seen.append)
        assert seen == []
        await query
        assert len(seen) == 1
        assert seen[0].is_related_preload_query
        assert not seen[0].is_related_sub_query

    async def test_undefined_nested_relation(self, database: Database) -> None:
        with count_queries() as q, pytest.raises(LucidError) as exc:
            User.query().preload("posts.likes")
        assert exc.value.code == "E_UNDEFINED_RELATIONSHIP"
        assert str(exc.value) == '"likes" is not defined as a relationship on "Post" model'
        assert q.count == 0

    async def test_preload_on_first_and_paginate(self, database: Database) -> None:
        users = [await User.create({"username": f"u{i}"}) for i in range(3)]
        for user in users:
            await Post.create({"user_id": user.id, "title": f"{user.username}-post"})
        first = await User.query().preload("posts").order_by("id").first_or_fail()
        assert [p.title for p in first.posts] == ["u0-post"]
        with count_queries() as q:
            page = await User.query().preload("posts").order_by("id").paginate(2, 2)
        assert q.count == 3  # total, page, posts of the page's rows
        assert [[p.title for p in u.posts] for u in page] == [["u2-post"]]
