"""has_many (SPEC §5, §8, §9), ported from Lucid's ``test/orm/model_has_many.spec.ts``: keys,
set relations, related queries, sub queries, preload (with group limits), lazy loading, the
``has`` family, aggregates, writes and serialization — on every dialect."""

from __future__ import annotations

from collections import ChainMap
from functools import partial
from types import MappingProxyType
from typing import Any

import pytest

from lucid_orm import (
    BaseModel,
    IntegrityError,
    LucidError,
    ModelNotFoundError,
    RelationNotLoadedError,
    after,
    before,
    column,
    db,
    has_many,
    scope,
)
from lucid_orm.database import Database
from lucid_orm.relations import HasMany
from tests import models
from tests.helpers import count_queries
from tests.models import Comment, create_each


class Post(models.Post):
    is_published: bool | None = column()
    score: int | None = column()

    comments: HasMany[Comment] = has_many(lambda: Comment)

    @scope
    def published(query: Any) -> None:
        query.where("is_published", True)


class Task(models.Task):
    table = "hm_tasks"
    points: int | None = column()


class User(models.BaseUser):
    country_id: int | None = column()

    posts: HasMany[Post] = has_many(lambda: Post)
    tasks: HasMany[Task] = has_many(lambda: Task)


# What the hooks of ``HookedPost`` saw: (which hook, the post's transaction, persisted).
_hooked_seen: list[tuple[str, Any, bool]] = []


class HookedPost(Post):
    table = "posts"

    @before("create")
    def stamp(post: HookedPost) -> None:
        _hooked_seen.append(("before", post.trx, post.is_persisted))

    @after("save")
    def saved(post: HookedPost) -> None:
        _hooked_seen.append(("after", post.trx, post.is_persisted))


class Writer(models.BaseUser):
    posts: HasMany[Post] = has_many(lambda: Post, foreign_key="user_id")
    hooked: HasMany[HookedPost] = has_many(lambda: HookedPost, foreign_key="user_id")


class Owner(models.BaseUser):
    """A has_many keyed on a nullable local column: NULL keys give empty relations."""

    table = "users"
    country_id: int | None = column()

    posts: HasMany[Post] = has_many(lambda: Post, local_key="country_id", foreign_key="user_id")


class Member(models.BaseUser):
    """A self relation: ``users.parent_id`` → ``users.id``."""

    table = "users"
    parent_id: int | None = column()

    children: HasMany[Member] = has_many(lambda: Member, foreign_key="parent_id")


# -- helpers ---------------------------------------------------------------------------------


make_users = partial(create_each, User)


async def add_posts(user: User | None, *titles: str, **extra: Any) -> list[Post]:
    user_id = user.id if user is not None else None
    return await Post.create_many([{"user_id": user_id, "title": t, **extra} for t in titles])


async def table_rows(table: str, *columns: str) -> list[dict[str, Any]]:
    return await db.from_(table).select(*columns).order_by("id")  # type: ignore[no-any-return]


def titles(posts: list[Post]) -> list[str | None]:
    return sorted((p.title for p in posts), key=str)


def assert_error(exc: pytest.ExceptionInfo[LucidError], code: str, message: str) -> None:
    assert exc.value.code == code
    assert str(exc.value) == message


# -- boot and keys -----------------------------------------------------------------------------


class TestHasManyOptions:
    async def test_default_keys(self, database: Database) -> None:
        relation = User.get_relation("posts")
        relation.boot()
        assert relation.booted
        assert relation.type == "hasMany"
        assert relation.model is User
        assert relation.related_model() is Post
        assert (relation.local_key, relation.local_key_column_name) == ("id", "id")
        assert (relation.foreign_key, relation.foreign_key_column_name) == ("user_id", "user_id")
        assert relation.serialize_as == "posts"
        assert User.posts is relation

    async def test_missing_local_key_raises_at_boot(self, database: Database) -> None:
        class KeylessUser(BaseModel):
            table = "users"
            id: int = column(is_primary=True)
            posts: HasMany[Post] = has_many(lambda: Post, local_key="uid")

        with pytest.raises(LucidError) as exc:
            KeylessUser.get_relation("posts").boot()
        assert_error(
            exc,
            "E_MISSING_MODEL_ATTRIBUTE",
            '"KeylessUser.posts" expects "uid" to exist on "KeylessUser" model, but is missing',
        )
        # The same error on first use by a query, before anything runs.
        with count_queries() as q, pytest.raises(LucidError) as exc:
            KeylessUser.query().preload("posts")
        assert exc.value.code == "E_MISSING_MODEL_ATTRIBUTE"
        assert q.count == 0

    async def test_missing_foreign_key_raises_at_boot(self, database: Database) -> None:
        class Orphan(BaseModel):
            table = "posts"
            id: int = column(is_primary=True)
            title: str | None = column()

        class Author(BaseModel):
            table = "users"
            id: int = column(is_primary=True)
            orphans: HasMany[Orphan] = has_many(lambda: Orphan)

        with pytest.raises(LucidError) as exc:
            Author.get_relation("orphans").boot()
        assert_error(
            exc,
            "E_MISSING_MODEL_ATTRIBUTE",
            '"Author.orphans" expects "author_id" to exist on "Orphan" model, but is missing',
        )

    async def test_custom_primary_key_is_the_local_key(self, database: Database) -> None:
        class AccountPost(BaseModel):
            table = "posts"
            id: int = column(is_primary=True)
            account_uid: int | None = column(column_name="user_id")
            title: str | None = column()

        class Account(BaseModel):
            table = "users"
            uid: int = column(is_primary=True, column_name="id")
            username: str | None = column()
            posts: HasMany[AccountPost] = has_many(lambda: AccountPost)

        relation = Account.get_relation("posts")
        relation.boot()
        assert (relation.local_key, relation.local_key_column_name) == ("uid", "id")
        assert (relation.foreign_key, relation.foreign_key_column_name) == (
            "account_uid",
            "user_id",
        )

        account = await Account.create({"username": "virk"})
        post = await account.related("posts").create({"title": "Adonis 101"})
        assert post.account_uid == account.uid
        assert await table_rows("posts", "user_id", "title") == [
            {"user_id": account.uid, "title": "Adonis 101"}
        ]
        [loaded] = await Account.query().preload("posts")
        assert [p.title for p in loaded.posts] == ["Adonis 101"]

    async def test_predefined_foreign_key(self, database: Database) -> None:
        class Writer(BaseModel):
            table = "users"
            id: int = column(is_primary=True)
            articles: HasMany[Post] = has_many(lambda: Post, foreign_key="user_id")

        relation = Writer.get_relation("articles")
        relation.boot()
        assert relation.foreign_key == "user_id"
        writer = await Writer.create({})
        await Post.create({"user_id": writer.id, "title": "Lucid 101"})
        await writer.load("articles")
        assert [p.title for p in writer.articles] == ["Lucid 101"]

    async def test_relation_is_cloned_with_its_options_on_subclasses(
        self, database: Database
    ) -> None:
        class BaseWriter(BaseModel):
            table = "users"
            id: int = column(is_primary=True)
            username: str | None = column()
            posts: HasMany[Post] = has_many(lambda: Post, foreign_key="user_id", meta={"x": 1})

        class SubWriter(BaseWriter):
            table = "users"

        relation = SubWriter.get_relation("posts")
        relation.boot()
        assert relation is not BaseWriter.get_relation("posts")
        assert relation.model is SubWriter
        assert relation.foreign_key == "user_id"
        assert relation.meta == {"x": 1}

        writer = await SubWriter.create({"username": "virk"})
        await Post.create({"user_id": writer.id, "title": "Adonis 101"})
        [loaded] = await SubWriter.query().preload("posts")
        assert isinstance(loaded, SubWriter)
        assert [p.title for p in loaded.posts] == ["Adonis 101"]


# -- set relations -----------------------------------------------------------------------------


class TestHasManySetRelations:
    async def test_set_related(self, database: Database) -> None:
        user = User(id=1)
        post = Post(user_id=1)
        User.get_relation("posts").set_related(user, [post])
        assert user.posts == [post]
        assert user.preloaded == {"posts": [post]}

    async def test_set_related_requires_a_list(self, database: Database) -> None:
        user = User(id=1)
        with pytest.raises(LucidError) as exc:
            User.get_relation("posts").set_related(user, Post(user_id=1))
        assert_error(
            exc,
            "E_RUNTIME_EXCEPTION",
            '"User.posts" must be a list when setting "hasMany" relationship',
        )
        with pytest.raises(RelationNotLoadedError):
            user.posts

    async def test_set_related_checks_the_instances(self, database: Database) -> None:
        with pytest.raises(LucidError) as exc:
            User.get_relation("posts").set_related(User(id=1), [Comment()])
        assert exc.value.code == "E_INVALID_ARGUMENT"

    async def test_push_related_appends(self, database: Database) -> None:
        relation = User.get_relation("posts")
        user = User(id=1)
        first, second, third = Post(user_id=1), Post(user_id=1), Post(user_id=1)
        relation.set_related(user, [first])
        relation.push_related(user, [second])
        relation.push_related(user, third)
        assert user.posts == [first, second, third]

    async def test_push_related_on_an_unloaded_relation(self, database: Database) -> None:
        user = User(id=1)
        post = Post(user_id=1)
        User.get_relation("posts").push_related(user, post)
        assert user.posts == [post]

    async def test_set_related_for_many(self, database: Database) -> None:
        users = [User(id=1), User(id=2), User(id=3)]
        post, post1, post2 = Post(user_id=1), Post(user_id=2), Post(user_id=1)
        with count_queries() as q:
            User.get_relation("posts").set_related_for_many(users, [post, post1, post2])
        assert q.count == 0
        assert users[0].posts == [post, post2]
        assert users[1].posts == [post1]
        assert users[2].posts == []


# -- related query -----------------------------------------------------------------------------


class TestHasManyRelatedQuery:
    async def test_selects_only_the_parents_rows(self, database: Database) -> None:
        virk, nikk = await make_users("virk", "nikk")
        await add_posts(virk, "Adonis 101", "Adonis 102")
        await add_posts(nikk, "Lucid 101")
        with count_queries() as q:
            posts = await virk.related("posts").query()
        assert q.count == 1
        assert titles(posts) == ["Adonis 101", "Adonis 102"]
        assert all(isinstance(p, Post) and p.user_id == virk.id for p in posts)

    async def test_or_where_cannot_escape_the_relation(self, database: Database) -> None:
        virk, nikk = await make_users("virk", "nikk")
        await add_posts(virk, "Adonis 101")
        await add_posts(nikk, "Lucid 101")
        posts = (
            await virk.related("posts")
            .query()
            .where("title", "Nothing")
            .or_where("title", "Lucid 101")
        )
        assert posts == []
        posts = (
            await virk.related("posts")
            .query()
            .where("title", "Adonis 101")
            .or_where("title", "Lucid 101")
        )
        assert titles(posts) == ["Adonis 101"]

    async def test_first_and_first_or_fail(self, database: Database) -> None:
        virk, nikk = await make_users("virk", "nikk")
        await add_posts(nikk, "Lucid 101")
        assert await virk.related("posts").query().first() is None
        with pytest.raises(ModelNotFoundError) as exc:
            await virk.related("posts").query().first_or_fail()
        assert_error(exc, "E_ROW_NOT_FOUND", "Row not found")
        await add_posts(virk, "Adonis 101")
        found = await virk.related("posts").query().first_or_fail()
        assert (found.title, found.user_id) == ("Adonis 101", virk.id)

    async def test_update_is_scoped_to_the_parent(self, database: Database) -> None:
        virk, nikk = await make_users("virk", "nikk")
        await add_posts(virk, "Adonis 101", "Adonis 102")
        await add_posts(nikk, "Lucid 101")
        affected = (
            await virk.related("posts")
            .query()
            .where("title", "Adonis 101")
            .or_where("title", "Lucid 101")
            .update({"score": 5})
        )
        assert affected == 1
        assert await table_rows("posts", "title", "score") == [
            {"title": "Adonis 101", "score": 5},
            {"title": "Adonis 102", "score": None},
            {"title": "Lucid 101", "score": None},
        ]

    async def test_increment_and_decrement_are_scoped(self, database: Database) -> None:
        virk, nikk = await make_users("virk", "nikk")
        await add_posts(virk, "Adonis 101", "Adonis 102", score=10)
        await add_posts(nikk, "Lucid 101", score=10)
        assert await virk.related("posts").query().increment("score", 5) == 2
        assert (
            await virk.related("posts").query().where("title", "Adonis 102").decrement("score", 3)
            == 1
        )
        assert [r["score"] for r in await table_rows("posts", "score")] == [15, 12, 10]

    async def test_delete_is_scoped_to_the_parent(self, database: Database) -> None:
        virk, nikk = await make_users("virk", "nikk")
        await add_posts(virk, "Adonis 101", "Adonis 102")
        await add_posts(nikk, "Lucid 101")
        affected = (
            await virk.related("posts")
            .query()
            .where("title", "Adonis 102")
            .or_where("title", "Lucid 101")
            .delete()
        )
        assert affected == 1
        assert [r["title"] for r in await table_rows("posts", "title")] == [
            "Adonis 101",
            "Lucid 101",
        ]
        assert await virk.related("posts").query().delete() == 1
        assert [r["title"] for r in await table_rows("posts", "title")] == ["Lucid 101"]

    async def test_paginate(self, database: Database) -> None:
        virk, nikk = await make_users("virk", "nikk")
        await add_posts(virk, *(f"Adonis {i}" for i in range(1, 13)))
        await add_posts(nikk, *(f"Lucid {i}" for i in range(1, 6)))
        page = await virk.related("posts").query().order_by("id").paginate(2, 5)
        assert page.total == 12
        assert (page.current_page, page.per_page, page.last_page) == (2, 5, 3)
        assert [p.title for p in page] == [f"Adonis {i}" for i in range(6, 11)]

    async def test_paginate_with_additional_constraints(self, database: Database) -> None:
        virk, nikk = await make_users("virk", "nikk")
        await add_posts(virk, "Adonis 101", "Adonis 102", is_published=True)
        await add_posts(virk, "Adonis 103", is_published=False)
        await add_posts(nikk, "Lucid 101", is_published=True)
        page = (
            await virk.related("posts")
            .query()
            .where("is_published", True)
            .or_where("title", "Lucid 101")
            .order_by("id")
            .paginate(1, 1)
        )
        assert page.total == 2
        assert page.last_page == 2
        assert [p.title for p in page] == ["Adonis 101"]

    async def test_aggregates_land_in_extras(self, database: Database) -> None:
        virk, nikk = await make_users("virk", "nikk")
        await add_posts(virk, "Adonis 101", "Adonis 102")
        await add_posts(nikk, "Lucid 101")
        [row] = await virk.related("posts").query().count("* as total")
        assert int(row.extras["total"]) == 2
        assert await virk.related("posts").query().count_rows() == 2
        assert await nikk.related("posts").query().exists()

    async def test_scopes_apply_on_the_related_query(self, database: Database) -> None:
        [virk] = await make_users("virk")
        await add_posts(virk, "Lucid 101", is_published=False)
        await add_posts(virk, "Adonis 101", is_published=True)
        scoped = await virk.related("posts").query().apply(lambda s: s.published())
        assert titles(scoped) == ["Adonis 101"]
        assert len(await virk.related("posts").query()) == 2

    async def test_clone_keeps_the_relation_constraint(self, database: Database) -> None:
        virk, nikk = await make_users("virk", "nikk")
        await add_posts(virk, "Adonis 101")
        await add_posts(nikk, "Lucid 101")
        query = virk.related("posts").query()
        assert await query.clone().or_where("title", "Lucid 101") == []
        assert titles(await query.clone().where("title", "Adonis 101")) == ["Adonis 101"]
        assert titles(await query) == ["Adonis 101"]

    async def test_null_local_key_selects_nothing_without_querying(
        self, database: Database
    ) -> None:
        owner = await Owner.create({"username": "virk", "country_id": None})
        await add_posts(None, "Orphan 101")
        with count_queries() as q:
            assert await owner.related("posts").query() == []
            assert await owner.related("posts").query().first() is None
            assert await owner.related("posts").query().count_rows() == 0
            page = await owner.related("posts").query().paginate(1, 5)
            assert (page.total, list(page)) == (0, [])
            assert await owner.related("posts").query().update({"title": "x"}) == 0
            assert await owner.related("posts").query().delete() == 0
        assert q.count == 0
        assert await table_rows("posts", "title") == [{"title": "Orphan 101"}]

    async def test_absent_local_key_raises(self, database: Database) -> None:
        await make_users("virk")
        user = await User.query().select("username").first_or_fail()
        assert "id" not in user.attributes
        with count_queries() as q:
            with pytest.raises(LucidError) as exc:
                await user.related("posts").query()
            assert_error(
                exc,
                "E_MISSING_MODEL_ATTRIBUTE",
                'Cannot select "posts", value of "User.id" is undefined',
            )
            with pytest.raises(LucidError) as exc:
                await user.related("posts").query().update({"title": "x"})
            assert_error(
                exc,
                "E_MISSING_MODEL_ATTRIBUTE",
                'Cannot update "posts", value of "User.id" is undefined',
            )
            with pytest.raises(LucidError) as exc:
                await user.related("posts").query().delete()
            assert_error(
                exc,
                "E_MISSING_MODEL_ATTRIBUTE",
                'Cannot delete "posts", value of "User.id" is undefined',
            )
        assert q.count == 0

    async def test_unknown_relation(self, database: Database) -> None:
        [virk] = await make_users("virk")
        with pytest.raises(LucidError) as exc:
            virk.related("articles")
        assert_error(
            exc,
            "E_UNDEFINED_RELATIONSHIP",
            '"articles" is not defined as a relationship on "User" model',
        )

    async def test_group_limit_on_the_related_query(self, database: Database) -> None:
        virk, nikk = await make_users("virk", "nikk")
        posts = await add_posts(virk, "A", "B", "C", "D")
        await add_posts(nikk, "E")
        # The same rows a preload would give: primary key descending by default.
        latest = await virk.related("posts").query().group_limit(2)
        assert [p.id for p in latest] == [posts[3].id, posts[2].id]
        lowest = await virk.related("posts").query().group_limit(2).group_order_by("id", "asc")
        assert [p.title for p in lowest] == ["A", "B"]

    async def test_group_limit_with_limit_count_and_paginate(self, database: Database) -> None:
        # first(), limit(), count_rows() and paginate() work on the group-limited rows.
        virk, nikk = await make_users("virk", "nikk")
        await add_posts(virk, "A", "B", "C", "D")
        await add_posts(nikk, "E")
        query = virk.related("posts").query().group_limit(3).group_order_by("title", "asc")
        assert [p.title for p in await query.clone()] == ["A", "B", "C"]
        assert [p.title for p in await query.clone().limit(1)] == ["A"]
        first = await query.clone().first()
        assert first is not None and first.title == "A"
        assert await query.clone().count_rows() == 3
        page = await query.clone().paginate(2, 2)
        assert (page.total, page.last_page, [p.title for p in page]) == (3, 2, ["C"])


# -- sub queries -------------------------------------------------------------------------------


class TestHasManySubQueries:
    async def test_executing_a_sub_query_raises(self, database: Database) -> None:
        sub = User.get_relation("posts").sub_query(db.connection())
        assert sub.is_related_sub_query
        with count_queries() as q:
            for run in (sub.exec, sub.first, lambda: sub.paginate(1), sub.delete):
                with pytest.raises(LucidError) as exc:
                    await run()
                assert_error(exc, "E_RUNTIME_EXCEPTION", "Cannot execute relationship subqueries")
            with pytest.raises(LucidError) as exc:
                await sub.update({"title": "x"})
            assert_error(exc, "E_RUNTIME_EXCEPTION", "Cannot execute relationship subqueries")
        assert q.count == 0

    async def test_self_relationship_subqueries(self, database: Database) -> None:
        root = await Member.create({"username": "root"})
        child = await Member.create({"username": "child", "parent_id": root.id})
        await Member.create({"username": "grandchild", "parent_id": child.id})
        await Member.create({"username": "sibling", "parent_id": root.id})

        with_children = await Member.query().has("children").order_by("id")
        assert [m.username for m in with_children] == ["root", "child"]
        several = await Member.query().has("children", ">", 1)
        assert [m.username for m in several] == ["root"]
        counted = await Member.query().with_count("children").order_by("id")
        assert [(m.username, m.extras["children_count"]) for m in counted] == [
            ("root", 2),
            ("child", 1),
            ("grandchild", 0),
            ("sibling", 0),
        ]
        named = await Member.query().where_has(
            "children", lambda q: q.where("username", "grandchild")
        )
        assert [m.username for m in named] == ["child"]
        await root.load("children")
        assert sorted(m.username or "" for m in root.children) == ["child", "sibling"]


# -- preload -----------------------------------------------------------------------------------


class TestHasManyPreload:
    async def test_preload(self, database: Database) -> None:
        virk, nikk = await make_users("virk", "nikk")
        await add_posts(virk, "Adonis 101", "Adonis 102")
        await add_posts(nikk, "Lucid 101")
        with count_queries() as q:
            users = await User.query().preload("posts").order_by("id")
        assert q.count == 2
        assert [titles(u.posts) for u in users] == [["Adonis 101", "Adonis 102"], ["Lucid 101"]]
        assert all(p.user_id == u.id for u in users for p in u.posts)

    async def test_empty_list_when_nothing_matches(self, database: Database) -> None:
        await make_users("virk")
        await add_posts(None, "Orphan 101")
        [user] = await User.query().preload("posts")
        assert user.posts == []

    async def test_preload_for_many_rows(self, database: Database) -> None:
        users = await make_users(*(f"user{i}" for i in range(10)))
        for i, user in enumerate(users):
            await add_posts(user, *(f"{user.username}-{n}" for n in range(i % 3)))
        with count_queries() as q:
            loaded = await User.query().preload("posts").order_by("id")
        assert q.count == 2
        for i, user in enumerate(loaded):
            assert titles(user.posts) == [f"{user.username}-{n}" for n in range(i % 3)]

    async def test_constraints_during_preload(self, database: Database) -> None:
        virk, nikk = await make_users("virk", "nikk")
        await add_posts(virk, "Adonis 101", "Adonis 102")
        await add_posts(nikk, "Lucid 101")
        users = (
            await User.query()
            .preload("posts", lambda q: q.where("title", "Adonis 101").or_where("title", "x"))
            .order_by("id")
        )
        assert [titles(u.posts) for u in users] == [["Adonis 101"], []]

    async def test_cherry_pick_columns_adds_the_foreign_key(self, database: Database) -> None:
        virk, nikk = await make_users("virk", "nikk")
        await add_posts(virk, "Adonis 101")
        await add_posts(nikk, "Lucid 101")
        users = await User.query().preload("posts", lambda q: q.select("title")).order_by("id")
        assert [[p.attributes for p in u.posts] for u in users] == [
            [{"user_id": virk.id, "title": "Adonis 101"}],
            [{"user_id": nikk.id, "title": "Lucid 101"}],
        ]

    async def test_foreign_key_not_repeated_when_selected(self, database: Database) -> None:
        [virk] = await make_users("virk")
        await add_posts(virk, "Adonis 101")
        with count_queries() as q:
            [user] = await User.query().preload("posts", lambda q: q.select("title", "user_id"))
        assert [p.attributes for p in user.posts] == [{"title": "Adonis 101", "user_id": virk.id}]
        assert q.sqls[1].count("user_id") == 2  # once selected, once in the WHERE

    async def test_local_key_not_selected_raises(self, database: Database) -> None:
        [virk] = await make_users("virk")
        await add_posts(virk, "Adonis 101")
        with pytest.raises(LucidError) as exc:
            await User.query().select("username").preload("posts").where("username", "virk")
        assert_error(
            exc,
            "E_MISSING_MODEL_ATTRIBUTE",
            'Cannot preload "posts", value of "User.id" is undefined',
        )

    async def test_null_local_key_gives_an_empty_list(self, database: Database) -> None:
        await Owner.create({"username": "virk"})
        await add_posts(None, "Orphan 101")
        with count_queries() as q:
            [owner] = await Owner.query().preload("posts")
        assert owner.posts == []
        assert q.count == 1  # no key to look for: no preload query

    async def test_mixed_null_and_set_local_keys(self, database: Database) -> None:
        [virk] = await make_users("virk")
        await add_posts(virk, "Adonis 101")
        keyed = await Owner.create({"username": "keyed", "country_id": virk.id})
        await Owner.create({"username": "unkeyed"})
        owners = await Owner.query().preload("posts").order_by("id")
        by_name = {o.username: o.posts for o in owners}
        assert titles(by_name["keyed"]) == ["Adonis 101"]
        assert by_name["unkeyed"] == []
        assert by_name["virk"] == []
        assert keyed.country_id == virk.id

    async def test_undefined_relation(self, database: Database) -> None:
        with pytest.raises(LucidError) as exc:
            User.query().preload("articles")
        assert_error(
            exc,
            "E_UNDEFINED_RELATIONSHIP",
            '"articles" is not defined as a relationship on "User" model',
        )

    async def test_nested_preload_with_a_callback(self, database: Database) -> None:
        virk, nikk = await make_users("virk", "nikk")
        [adonis] = await add_posts(virk, "Adonis 101")
        [lucid] = await add_posts(nikk, "Lucid 101")
        await Comment.create_many(
            [{"post_id": adonis.id, "body": "Looks nice"}, {"post_id": lucid.id, "body": "Wow"}]
        )
        with count_queries() as q:
            user = (
                await User.query()
                .preload("posts", lambda q: q.preload("comments"))
                .where("username", "virk")
                .first_or_fail()
            )
        assert q.count == 3
        assert len(user.posts) == 1
        assert [c.body for c in user.posts[0].comments] == ["Looks nice"]
        assert user.posts[0].comments[0].post_id == user.posts[0].id

    async def test_nested_preload_with_a_dotted_path(self, database: Database) -> None:
        virk, nikk = await make_users("virk", "nikk")
        posts = await add_posts(virk, "Adonis 101", "Adonis 102")
        [lucid] = await add_posts(nikk, "Lucid 101")
        await Comment.create_many(
            [
                {"post_id": posts[0].id, "body": "a"},
                {"post_id": posts[0].id, "body": "b"},
                {"post_id": lucid.id, "body": "c"},
            ]
        )
        with count_queries() as q:
            users = await User.query().preload("posts.comments").order_by("id")
        assert q.count == 3  # users, posts, comments: one per level
        shape = [
            {p.title: sorted(c.body or "" for c in p.comments) for p in u.posts} for u in users
        ]
        assert shape == [{"Adonis 101": ["a", "b"], "Adonis 102": []}, {"Lucid 101": ["c"]}]

    async def test_nested_preload_from_an_instance(self, database: Database) -> None:
        virk, nikk = await make_users("virk", "nikk")
        [adonis] = await add_posts(virk, "Adonis 101")
        [lucid] = await add_posts(nikk, "Lucid 101")
        await Comment.create_many(
            [{"post_id": adonis.id, "body": "Looks nice"}, {"post_id": lucid.id, "body": "Wow"}]
        )
        users = await User.all()
        for user in users:
            with count_queries() as q:
                await user.load(
                    lambda loader: loader.load("posts", lambda b: b.preload("comments"))
                )
            assert q.count == 2
        by_name = {u.username: u for u in users}
        assert [c.body for c in by_name["virk"].posts[0].comments] == ["Looks nice"]
        assert [c.body for c in by_name["nikk"].posts[0].comments] == ["Wow"]

    async def test_no_query_when_there_are_no_parents(self, database: Database) -> None:
        calls: list[Any] = []
        with count_queries() as q:
            users = await User.query().preload("posts", calls.append)
        assert users == []
        assert calls == []
        assert q.count == 1

    async def test_scopes_during_preload(self, database: Database) -> None:
        [virk] = await make_users("virk")
        await add_posts(virk, "Lucid 101", is_published=False)
        await add_posts(virk, "Adonis 101", is_published=True)
        user = (
            await User.query()
            .preload("posts", lambda q: q.apply(lambda s: s.published()))
            .first_or_fail()
        )
        plain = await User.query().preload("posts").first_or_fail()
        assert titles(user.posts) == ["Adonis 101"]
        assert len(plain.posts) == 2

    async def test_sideloaded_values_pass_down_to_preloaded_rows(self, database: Database) -> None:
        [virk] = await make_users("virk")
        [post] = await add_posts(virk, "Adonis 101")
        await Comment.create({"post_id": post.id, "body": "Nice"})
        [user] = await User.query().sideload({"locale": "fr"}).preload("posts.comments")
        assert user.sideloaded == {"locale": "fr"}
        assert user.posts[0].sideloaded == {"locale": "fr"}
        assert user.posts[0].comments[0].sideloaded == {"locale": "fr"}

    async def test_paginate_inside_a_preload_callback_raises(self, database: Database) -> None:
        [virk] = await make_users("virk")
        await add_posts(virk, "Adonis 101")
        with count_queries() as q, pytest.raises(LucidError) as exc:
            await User.query().preload("posts", lambda q: q.paginate(1, 5))
        assert_error(
            exc, "E_RUNTIME_EXCEPTION", 'Cannot paginate relationship "posts" during preload'
        )
        assert q.count == 1  # the parents only


class TestHasManyGroupLimit:
    async def _seed(self) -> tuple[list[User], dict[int, list[Post]]]:
        virk, nikk, romain = await make_users("virk", "nikk", "romain")
        posts = {
            virk.id: await add_posts(virk, *(f"Adonis 10{i}" for i in range(1, 6))),
            nikk.id: await add_posts(nikk, *(f"Lucid 10{i}" for i in range(1, 6))),
            romain.id: await add_posts(romain, "Solo 101"),
        }
        scores = [30, 10, 50, 20, 40]
        for rows in (posts[virk.id], posts[nikk.id]):
            for post, score in zip(rows, scores, strict=True):
                post.score = score
                await post.save()
        return [virk, nikk, romain], posts

    async def test_group_limit_defaults_to_primary_key_descending(self, database: Database) -> None:
        _users, posts = await self._seed()
        with count_queries() as q:
            loaded = await User.query().preload("posts", lambda q: q.group_limit(2)).order_by("id")
        assert q.count == 2  # one query for every parent's top rows
        for user in loaded:
            expected = sorted((p.id for p in posts[user.id]), reverse=True)[:2]
            assert sorted((p.id for p in user.posts), reverse=True) == expected

    async def test_group_order_by(self, database: Database) -> None:
        _users, _posts = await self._seed()
        loaded = (
            await User.query()
            .preload("posts", lambda q: q.group_limit(2).group_order_by("score", "asc"))
            .order_by("id")
        )
        assert [[p.score for p in u.posts] for u in loaded] == [[10, 20], [10, 20], [None]]
        loaded = (
            await User.query()
            .preload("posts", lambda q: q.group_limit(3).group_order_by("score", "desc"))
            .order_by("id")
        )
        assert [[p.score for p in u.posts] for u in loaded][:2] == [[50, 40, 30], [50, 40, 30]]

    async def test_group_limit_with_additional_constraints(self, database: Database) -> None:
        _users, _posts = await self._seed()
        loaded = (
            await User.query()
            .preload(
                "posts",
                lambda q: (
                    q.where("score", "<", 45)
                    .or_where("title", "Solo 101")
                    .group_limit(2)
                    .group_order_by("score", "desc")
                ),
            )
            .order_by("id")
        )
        assert [[p.score for p in u.posts] for u in loaded] == [[40, 30], [40, 30], [None]]

    async def test_group_limit_with_selected_columns(self, database: Database) -> None:
        users, _posts = await self._seed()
        loaded = (
            await User.query()
            .preload(
                "posts", lambda q: q.select("title").group_limit(1).group_order_by("score", "desc")
            )
            .order_by("id")
        )
        assert [[p.attributes for p in u.posts] for u in loaded] == [
            [{"title": "Adonis 103", "user_id": users[0].id}],
            [{"title": "Lucid 103", "user_id": users[1].id}],
            [{"title": "Solo 101", "user_id": users[2].id}],
        ]

    async def test_group_limit_with_nested_preload_and_sideload(self, database: Database) -> None:
        users, posts = await self._seed()
        for post in [*posts[users[0].id], *posts[users[1].id]]:
            await post.related("comments").create_many([{"body": "Nice"}, {"body": "Great"}])
        with count_queries() as q:
            loaded = (
                await User.query()
                .preload(
                    "posts",
                    lambda q: (
                        q.where_not_null("score")
                        .group_limit(2)
                        .preload("comments")
                        .sideload({"foo": "bar"})
                    ),
                )
                .order_by("id")
            )
        assert q.count == 3
        assert [len(u.posts) for u in loaded] == [2, 2, 0]
        for user in loaded[:2]:
            for post in user.posts:
                assert sorted(c.body or "" for c in post.comments) == ["Great", "Nice"]
                assert all(c.sideloaded == {"foo": "bar"} for c in post.comments)

    async def test_invalid_group_limit(self, database: Database) -> None:
        [virk] = await make_users("virk")
        with pytest.raises(LucidError) as exc:
            virk.related("posts").query().group_limit(0)
        assert str(exc.value) == "group_limit() expects a positive int, got 0"


# -- lazy loading ------------------------------------------------------------------------------


class TestHasManyLazyLoad:
    async def test_load(self, database: Database) -> None:
        virk, nikk = await make_users("virk", "nikk")
        await add_posts(virk, "Adonis 101", "Adonis 102")
        await add_posts(nikk, "Lucid 101")
        with pytest.raises(RelationNotLoadedError) as exc:
            virk.posts
        assert exc.value.code == "E_RELATION_NOT_LOADED"
        with count_queries() as q:
            await virk.load("posts")
        assert q.count == 1
        assert titles(virk.posts) == ["Adonis 101", "Adonis 102"]

    async def test_load_with_a_callback(self, database: Database) -> None:
        [virk] = await make_users("virk")
        await add_posts(virk, "Adonis 101", "Adonis 102")
        await virk.load("posts", lambda q: q.where("title", "Adonis 102"))
        assert titles(virk.posts) == ["Adonis 102"]

    async def test_load_once(self, database: Database) -> None:
        [virk] = await make_users("virk")
        await add_posts(virk, "Adonis 101")
        with count_queries() as q:
            await virk.load_once("posts")
            await virk.load_once("posts")
        assert q.count == 1
        assert titles(virk.posts) == ["Adonis 101"]
        [nikk] = await make_users("nikk")
        with count_queries() as q:
            await nikk.load_once("posts")
            await nikk.load_once("posts")
        assert q.count == 1
        assert nikk.posts == []

    async def test_load_on_an_unpersisted_instance_raises(self, database: Database) -> None:
        with pytest.raises(LucidError) as exc:
            await User(username="virk").load("posts")
        assert_error(
            exc,
            "E_RUNTIME_EXCEPTION",
            "Cannot lazy load relationship for an unpersisted model instance",
        )

    async def test_load_count(self, database: Database) -> None:
        virk, nikk = await make_users("virk", "nikk")
        await add_posts(virk, "Adonis 101", "Adonis 102", is_published=True)
        await add_posts(virk, "Adonis 103", is_published=False)
        await add_posts(nikk, "Lucid 101")
        with count_queries() as q:
            await virk.load_count("posts")
        assert q.count == 1
        assert virk.extras["posts_count"] == 3
        assert type(virk.extras["posts_count"]) is int
        await virk.load_count("posts", lambda q: q.where("is_published", True).as_("published"))
        assert virk.extras["published"] == 2

    async def test_load_aggregate(self, database: Database) -> None:
        virk, nikk = await make_users("virk", "nikk")
        await add_posts(virk, "a", score=10)
        await add_posts(virk, "b", score=25)
        await add_posts(nikk, "c", score=100)
        await virk.load_aggregate("posts", lambda q: q.sum("score").as_("total_score"))
        assert virk.extras["total_score"] == 35
        await virk.load_aggregate("posts", lambda q: q.max("score").as_("best"))
        assert virk.extras["best"] == 25


# -- has family --------------------------------------------------------------------------------


async def _seed_counts() -> dict[str, User]:
    """virk: 2 posts, nikk: 1 post, romain: none."""
    virk, nikk, romain = await make_users("virk", "nikk", "romain")
    await add_posts(virk, "Adonis 101", "Adonis 102", score=20)
    await add_posts(nikk, "Lucid 101", score=50)
    return {"virk": virk, "nikk": nikk, "romain": romain}


async def names(query: Any) -> list[str]:
    return [u.username for u in await query.order_by("id")]


class TestHasManyHas:
    async def test_has(self, database: Database) -> None:
        await _seed_counts()
        with count_queries() as q:
            assert await names(User.query().has("posts")) == ["virk", "nikk"]
        assert q.count == 1

    async def test_has_with_a_count(self, database: Database) -> None:
        await _seed_counts()
        assert await names(User.query().has("posts", ">", 1)) == ["virk"]
        assert await names(User.query().has("posts", "=", 1)) == ["nikk"]
        assert await names(User.query().has("posts", "<", 2)) == ["nikk", "romain"]
        assert await names(User.query().and_has("posts", ">=", 1)) == ["virk", "nikk"]

    async def test_has_keeps_the_query_bindings(self, database: Database) -> None:
        await _seed_counts()
        query = User.query().where("username", "nikk").has("posts", ">=", 1)
        assert await names(query) == ["nikk"]
        assert await names(User.query().where("username", "romain").has("posts")) == []

    async def test_or_has(self, database: Database) -> None:
        await _seed_counts()
        query = User.query().where("username", "romain").or_has("posts", ">", 1)
        assert await names(query) == ["virk", "romain"]

    async def test_doesnt_have(self, database: Database) -> None:
        await _seed_counts()
        assert await names(User.query().doesnt_have("posts")) == ["romain"]
        assert await names(User.query().doesnt_have("posts", ">", 1)) == ["nikk", "romain"]
        assert await names(User.query().and_doesnt_have("posts")) == ["romain"]

    async def test_or_doesnt_have(self, database: Database) -> None:
        await _seed_counts()
        query = User.query().where("username", "virk").or_doesnt_have("posts")
        assert await names(query) == ["virk", "romain"]

    async def test_has_inside_a_where_group(self, database: Database) -> None:
        await _seed_counts()
        query = User.query().where(lambda q: q.has("posts", ">", 1).or_where("username", "romain"))
        assert await names(query) == ["virk", "romain"]

    async def test_operator_without_a_value(self, database: Database) -> None:
        with pytest.raises(LucidError) as exc:
            User.query().has("posts", ">")
        assert str(exc.value) == "has() with an operator needs a value to compare with"


class TestHasManyWhereHas:
    async def test_where_has(self, database: Database) -> None:
        await _seed_counts()
        query = User.query().where_has("posts", lambda q: q.where("title", "like", "Lucid%"))
        assert await names(query) == ["nikk"]

    async def test_where_has_with_a_count(self, database: Database) -> None:
        await _seed_counts()
        query = User.query().where_has("posts", lambda q: q.where("score", ">", 10), ">", 1)
        assert await names(query) == ["virk"]
        query = User.query().and_where_has("posts", lambda q: q.where("score", ">", 30), "=", 1)
        assert await names(query) == ["nikk"]

    async def test_custom_aggregates(self, database: Database) -> None:
        virk, nikk = await make_users("virk", "nikk")
        await add_posts(virk, "Adonis 101", "Adonis 101", score=10)
        await add_posts(nikk, "Adonis 101", "Lucid 101", score=10)
        query = User.query().where_has("posts", lambda q: q.count_distinct("title"), ">", 1)
        assert await names(query) == ["nikk"]
        await add_posts(virk, "Adonis 102", score=25)
        query = User.query().where_has("posts", lambda q: q.sum("score"), ">=", 30)
        assert await names(query) == ["virk"]

    async def test_or_where_has(self, database: Database) -> None:
        await _seed_counts()
        query = (
            User.query()
            .where("username", "romain")
            .or_where_has("posts", lambda q: q.where("score", ">", 30))
        )
        assert await names(query) == ["nikk", "romain"]

    async def test_where_doesnt_have(self, database: Database) -> None:
        await _seed_counts()
        query = User.query().where_doesnt_have("posts", lambda q: q.where("score", ">", 30))
        assert await names(query) == ["virk", "romain"]
        query = User.query().and_where_doesnt_have("posts", lambda q: q.where("score", ">", 0))
        assert await names(query) == ["romain"]

    async def test_or_where_doesnt_have(self, database: Database) -> None:
        await _seed_counts()
        query = (
            User.query()
            .where("username", "nikk")
            .or_where_doesnt_have("posts", lambda q: q.where("score", "<", 30))
        )
        assert await names(query) == ["nikk", "romain"]

    async def test_callback_runs_at_once(self, database: Database) -> None:
        calls: list[Any] = []
        User.query().where_has("posts", calls.append)
        assert len(calls) == 1
        assert calls[0].is_related_sub_query

    async def test_async_callback_is_rejected(self, database: Database) -> None:
        async def callback(query: Any) -> None:
            query.where("score", ">", 1)

        with pytest.raises(LucidError):
            User.query().where_has("posts", callback)


# -- aggregates --------------------------------------------------------------------------------


class TestHasManyWithCount:
    async def test_with_count(self, database: Database) -> None:
        await _seed_counts()
        with count_queries() as q:
            users = await User.query().with_count("posts").order_by("id")
        assert q.count == 1
        counts = [u.extras["posts_count"] for u in users]
        assert counts == [2, 1, 0]
        assert all(type(c) is int for c in counts)

    async def test_constraints_in_the_callback(self, database: Database) -> None:
        await _seed_counts()
        users = (
            await User.query()
            .with_count("posts", lambda q: q.where("score", ">", 30))
            .order_by("id")
        )
        assert [u.extras["posts_count"] for u in users] == [0, 1, 0]

    async def test_custom_alias(self, database: Database) -> None:
        await _seed_counts()
        users = (
            await User.query()
            .with_count("posts", lambda q: q.as_("total"))
            .with_count("posts", lambda q: q.where("score", ">", 30).as_("popular"))
            .order_by("id")
        )
        assert [(u.extras["total"], u.extras["popular"]) for u in users] == [
            (2, 0),
            (1, 1),
            (0, 0),
        ]
        assert "posts_count" not in users[0].extras

    async def test_custom_aggregate_in_with_count(self, database: Database) -> None:
        virk, nikk = await make_users("virk", "nikk")
        await add_posts(virk, "Adonis 101", "Adonis 101")
        await add_posts(nikk, "Adonis 101", "Lucid 101")
        users = (
            await User.query()
            .with_count("posts", lambda q: q.count_distinct("title"))
            .order_by("id")
        )
        assert [int(u.extras["posts_count"]) for u in users] == [1, 2]

    async def test_cherry_picked_columns(self, database: Database) -> None:
        await _seed_counts()
        users = await User.query().select("username").with_count("posts").order_by("username")
        assert [(u.attributes, u.extras) for u in users] == [
            ({"username": "nikk"}, {"posts_count": 1}),
            ({"username": "romain"}, {"posts_count": 0}),
            ({"username": "virk"}, {"posts_count": 2}),
        ]

    async def test_count_of_a_nested_relationship(self, database: Database) -> None:
        virk, nikk = await make_users("virk", "nikk")
        first, second = await add_posts(virk, "Adonis 101", "Adonis 102")
        [third] = await add_posts(nikk, "Lucid 101")
        await Comment.create_many(
            [{"post_id": p.id, "body": "Nice"} for p in (first, first, second, third)]
        )
        posts = await virk.related("posts").query().with_count("comments").order_by("id")
        assert [(p.title, p.extras["comments_count"]) for p in posts] == [
            ("Adonis 101", 2),
            ("Adonis 102", 1),
        ]

    async def test_with_aggregate(self, database: Database) -> None:
        await _seed_counts()
        await add_posts(None, "Orphan", score=1000)
        users = (
            await User.query()
            .with_aggregate("posts", lambda q: q.sum("score").as_("total_score"))
            .with_aggregate("posts", lambda q: q.max("score").as_("best_score"))
            .order_by("id")
        )
        assert [(u.extras["total_score"], u.extras["best_score"]) for u in users] == [
            (40, 20),
            (50, 50),
            (None, None),
        ]

    async def test_with_aggregate_needs_an_aggregate_and_an_alias(self, database: Database) -> None:
        with pytest.raises(LucidError) as exc:
            User.query().with_aggregate("posts", lambda q: q.where("score", ">", 1))
        assert_error(
            exc, "E_RUNTIME_EXCEPTION", '"with_aggregate" callback must use an aggregate function'
        )
        with pytest.raises(LucidError) as exc:
            User.query().with_aggregate("posts", lambda q: q.sum("score"))
        assert_error(
            exc,
            "E_RUNTIME_EXCEPTION",
            '"with_aggregate" callback must define the alias for the aggregate query',
        )


# -- writes ------------------------------------------------------------------------------------


class TestHasManySave:
    async def test_save(self, database: Database) -> None:
        [virk] = await make_users("virk")
        post = Post(title="Adonis 101")
        with count_queries() as q:
            saved = await virk.related("posts").save(post)
        assert q.count == 1
        assert saved is post
        assert post.is_persisted
        assert post.user_id == virk.id
        assert await table_rows("posts", "user_id", "title") == [
            {"user_id": virk.id, "title": "Adonis 101"}
        ]

    async def test_save_persists_a_new_parent_first(self, database: Database) -> None:
        user = User(username="virk")
        post = Post(title="Adonis 101")
        await user.related("posts").save(post)
        assert user.is_persisted
        assert post.user_id == user.id
        assert user.trx is None and post.trx is None
        assert await table_rows("posts", "user_id") == [{"user_id": user.id}]

    async def test_save_with_an_absent_parent_key_raises(self, database: Database) -> None:
        await make_users("virk")
        user = await User.query().select("username").first_or_fail()
        with pytest.raises(LucidError) as exc:
            await user.related("posts").save(Post(title="Adonis 101"))
        assert_error(
            exc,
            "E_MISSING_MODEL_ATTRIBUTE",
            'Cannot persist "posts", value of "User.id" is undefined',
        )
        assert await table_rows("posts", "id") == []

    async def test_save_with_a_null_parent_key_raises(self, database: Database) -> None:
        owner = await Owner.create({"username": "virk"})
        with pytest.raises(LucidError) as exc:
            await owner.related("posts").create({"title": "Adonis 101"})
        assert_error(
            exc,
            "E_MISSING_MODEL_ATTRIBUTE",
            'Cannot persist "posts", value of "Owner.country_id" is undefined',
        )
        assert await table_rows("posts", "id") == []


class TestHasManySaveMany:
    async def test_save_many(self, database: Database) -> None:
        [virk] = await make_users("virk")
        posts = [Post(title="Adonis 101"), Post(title="Lucid 101")]
        saved = await virk.related("posts").save_many(posts)
        assert saved == posts
        assert all(p.is_persisted and p.user_id == virk.id for p in posts)
        assert await table_rows("posts", "user_id", "title") == [
            {"user_id": virk.id, "title": "Adonis 101"},
            {"user_id": virk.id, "title": "Lucid 101"},
        ]

    async def test_save_many_is_all_or_nothing(self, database: Database) -> None:
        user = User(username="virk")
        tasks = [Task(name="write"), Task(name=None)]  # the second violates NOT NULL
        with pytest.raises(IntegrityError):
            await user.related("tasks").save_many(tasks)
        assert await table_rows("users", "id") == []
        assert await table_rows("hm_tasks", "id") == []
        assert user.trx is None
        assert all(t.trx is None for t in tasks)

    async def test_uses_the_parent_transaction(self, database: Database) -> None:
        trx = await db.transaction()
        user = User(username="virk")
        user.use_transaction(trx)
        post = Post(title="Adonis 101")
        await user.related("posts").save_many([post])
        assert user.trx is trx
        assert not trx.is_completed
        await trx.rollback()
        assert await table_rows("users", "id") == []
        assert await table_rows("posts", "id") == []
        assert user.trx is None and post.trx is None

    async def test_reads_and_writes_of_one_query_client_agree(self, database: Database) -> None:
        # The query client resolves its client per statement: bound to a transaction after
        # related() was called, the parent's reads see the rows its writes put there.
        user = await User.create({"username": "virk"})
        posts = user.related("posts")
        trx = await db.transaction()
        user.use_transaction(trx)
        await posts.create({"title": "Adonis 101"})
        assert [p.title for p in await posts.query()] == ["Adonis 101"]
        await trx.rollback()
        assert await posts.query() == []

    async def test_failure_inside_a_given_transaction_keeps_it_usable(
        self, database: Database
    ) -> None:
        async with db.transaction() as trx:
            user = await User.create({"username": "virk"}, client=trx)
            await user.related("tasks").save(Task(name="existing"), client=trx)
            with pytest.raises(IntegrityError):
                await user.related("tasks").save_many(
                    [Task(name="fresh"), Task(name="existing")], client=trx
                )
            await user.related("tasks").save(Task(name="after"), client=trx)
        assert [r["name"] for r in await table_rows("hm_tasks", "name")] == ["existing", "after"]
        assert await table_rows("users", "username") == [{"username": "virk"}]

    async def test_save_many_rejects_other_models(self, database: Database) -> None:
        [virk] = await make_users("virk")
        with pytest.raises(LucidError) as exc:
            await virk.related("posts").save_many([Post(title="a"), Comment(body="b")])
        assert exc.value.code == "E_INVALID_ARGUMENT"
        assert await table_rows("posts", "id") == []


class TestHasManyCreate:
    async def test_create(self, database: Database) -> None:
        [virk] = await make_users("virk")
        with count_queries() as q:
            post = await virk.related("posts").create({"title": "Adonis 101"})
        assert q.count == 1
        assert isinstance(post, Post)
        assert post.is_persisted and post.is_local
        assert post.user_id == virk.id
        assert await table_rows("posts", "id", "user_id", "title") == [
            {"id": post.id, "user_id": virk.id, "title": "Adonis 101"}
        ]

    async def test_create_in_a_given_transaction(self, database: Database) -> None:
        [virk] = await make_users("virk")
        trx = await db.transaction()
        post = await virk.related("posts").create({"title": "Adonis 101"}, client=trx)
        assert post.trx is trx
        assert await table_rows("posts", "id") == []
        await trx.rollback()
        assert await table_rows("posts", "id") == []
        assert post.trx is None and virk.trx is None

    async def test_create_ignores_a_foreign_key_in_the_payload(self, database: Database) -> None:
        virk, nikk = await make_users("virk", "nikk")
        post = await virk.related("posts").create({"title": "Adonis 101", "user_id": nikk.id})
        assert post.user_id == virk.id

    async def test_hydrate_for_persistence_takes_a_mapping(self, database: Database) -> None:
        [virk] = await make_users("virk")
        relation = User.get_relation("posts")
        plain: dict[str, Any] = {"title": "Adonis 101"}
        relation.hydrate_for_persistence(virk, plain)
        assert plain == {"title": "Adonis 101", "user_id": virk.id}
        chained: ChainMap[str, Any] = ChainMap({}, {"title": "x"})
        relation.hydrate_for_persistence(virk, chained)
        assert dict(chained) == {"title": "x", "user_id": virk.id}
        post = Post(title="Lucid 101")
        relation.hydrate_for_persistence(virk, post)
        assert post.user_id == virk.id
        with pytest.raises(LucidError) as exc:
            relation.hydrate_for_persistence(virk, MappingProxyType({"title": "y"}))
        assert exc.value.code == "E_INVALID_ARGUMENT"
        assert "mutable mapping, got mappingproxy" in str(exc.value)


class TestHasManyCreateMany:
    async def test_one_insert_for_same_shaped_rows(self, database: Database) -> None:
        [virk] = await make_users("virk")
        with count_queries() as q:
            posts = await virk.related("posts").create_many(
                [
                    {"title": "Adonis 101", "score": 1},
                    {"score": 2, "title": "Lucid 101"},  # same columns, other key order
                    {"title": "Edge 101", "score": 3},
                ]
            )
        assert q.count == 1
        assert q.sqls[0].lstrip().upper().startswith("INSERT")
        assert [p.title for p in posts] == ["Adonis 101", "Lucid 101", "Edge 101"]
        assert all(p.is_persisted and p.user_id == virk.id for p in posts)
        assert len({p.id for p in posts}) == 3
        rows = await table_rows("posts", "id", "user_id", "title", "score")
        assert rows == [
            {"id": p.id, "user_id": virk.id, "title": p.title, "score": p.score} for p in posts
        ]

    async def test_new_parent_is_inserted_first(self, database: Database) -> None:
        user = User(username="virk")
        with count_queries() as q:
            posts = await user.related("posts").create_many([{"title": "a"}, {"title": "b"}])
        assert q.count == 2
        assert user.is_persisted
        assert [p.user_id for p in posts] == [user.id, user.id]

    async def test_create_many_is_all_or_nothing(self, database: Database) -> None:
        user = User(username="virk")
        with count_queries() as q, pytest.raises(IntegrityError):
            # Two shapes, so two INSERTs: the second fails, the first must go too.
            await user.related("tasks").create_many(
                [{"name": "write"}, {"name": "write", "points": 1}]
            )
        # The first INSERT succeeded before the second failed; it is undone as well.
        assert any(s.startswith("INSERT INTO hm_tasks") for s in q.sqls)
        assert await table_rows("users", "id") == []
        assert await table_rows("hm_tasks", "id") == []
        assert user.trx is None

    async def test_created_rows_follow_their_transaction(self, database: Database) -> None:
        [virk] = await make_users("virk")
        async with db.transaction() as trx:
            posts = await virk.related("posts").create_many([{"title": "a"}], client=trx)
            assert [p.trx for p in posts] == [trx]
            async with trx.transaction() as savepoint:
                more = await virk.related("posts").create_many([{"title": "b"}], client=savepoint)
                assert [p.trx for p in more] == [savepoint]
            assert [p.trx for p in more] == [trx]  # released: the enclosing transaction's
        assert [p.trx for p in [*posts, *more]] == [None, None]
        assert [r["title"] for r in await table_rows("posts", "title")] == ["a", "b"]
        plain = await virk.related("posts").create_many([{"title": "c"}, {"title": "d"}])
        assert [p.trx for p in plain] == [None, None]  # its own transaction, committed

    async def test_hooks_see_the_rows_bound_to_its_own_transaction(
        self, database: Database
    ) -> None:
        # With hooks (user code that can reach the rows) the rows are bound to the
        # transaction create_many opened, while it lasts; without, they need no binding.
        seen = _hooked_seen
        seen.clear()
        [virk] = await create_each(Writer, "virk")
        posts = await virk.related("hooked").create_many([{"title": "a"}, {"title": "b"}])
        trxs = {id(t) for _, t, _ in seen}
        assert [(w, p) for w, _, p in seen] == [
            ("before", False),
            ("before", False),
            ("after", True),
            ("after", True),
        ]
        assert None not in [t for _, t, _ in seen] and len(trxs) == 1
        assert [p.trx for p in posts] == [None, None]  # committed: unbound
        plain = await virk.related("posts").create_many([{"title": "c"}, {"title": "d"}])
        assert [p.trx for p in plain] == [None, None]
        assert [r["title"] for r in await table_rows("posts", "title")] == ["a", "b", "c", "d"]

    async def test_uses_the_parent_transaction(self, database: Database) -> None:
        trx = await db.transaction()
        user = User(username="virk")
        user.use_transaction(trx)
        [post] = await user.related("posts").create_many([{"title": "Adonis 101"}])
        assert not trx.is_completed
        assert user.trx is trx
        await trx.rollback()
        assert await table_rows("users", "id") == []
        assert await table_rows("posts", "id") == []
        assert user.trx is None and post.trx is None

    async def test_client_option_runs_in_a_savepoint(self, database: Database) -> None:
        [virk] = await make_users("virk")
        async with db.transaction() as trx:
            await virk.related("tasks").create_many([{"name": "a"}], client=trx)
            with pytest.raises(IntegrityError):
                await virk.related("tasks").create_many(
                    [{"name": "b"}, {"name": "a", "points": 2}], client=trx
                )
            in_trx = await trx.from_("hm_tasks").select("name").order_by("id")
            assert in_trx == [{"name": "a"}]
            await virk.related("tasks").create_many([{"name": "c"}], client=trx)
        assert [r["name"] for r in await table_rows("hm_tasks", "name")] == ["a", "c"]
        assert virk.trx is None

    async def test_rolled_back_with_the_given_transaction(self, database: Database) -> None:
        [virk] = await make_users("virk")
        trx = await db.transaction()
        tasks = await virk.related("tasks").create_many([{"name": "a"}, {"name": "b"}], client=trx)
        assert await table_rows("hm_tasks", "id") == []  # not visible outside yet
        await trx.rollback()
        assert await table_rows("hm_tasks", "id") == []
        assert all(t.trx is None for t in tasks)

    async def test_model_instances_are_rejected(self, database: Database) -> None:
        [virk] = await make_users("virk")
        with count_queries() as q, pytest.raises(LucidError) as exc:
            await virk.related("posts").create_many([Post(title="a")])  # type: ignore[list-item]
        assert_error(
            exc,
            "E_INVALID_ARGUMENT",
            "create_many() expects plain mappings (dicts) of attribute values, not model "
            'instances ("Post")',
        )
        assert q.count == 0

    async def test_absent_parent_key(self, database: Database) -> None:
        await make_users("virk")
        user = await User.query().select("username").first_or_fail()
        with pytest.raises(LucidError) as exc:
            await user.related("posts").create_many([{"title": "a"}])
        assert_error(
            exc,
            "E_MISSING_MODEL_ATTRIBUTE",
            'Cannot persist "posts", value of "User.id" is undefined',
        )
        assert await table_rows("posts", "id") == []

    async def test_empty_payload(self, database: Database) -> None:
        [virk] = await make_users("virk")
        with count_queries() as q:
            assert await virk.related("posts").create_many([]) == []
        assert q.count == 0


class TestHasManyFirstOrCreate:
    async def test_creates_when_there_is_no_row(self, database: Database) -> None:
        virk, nikk = await make_users("virk", "nikk")
        await add_posts(nikk, "Adonis 101")
        post = await virk.related("posts").first_or_create({"title": "Adonis 101"}, {"score": 5})
        assert post.is_persisted and post.is_local
        assert (post.user_id, post.title, post.score) == (virk.id, "Adonis 101", 5)
        assert len(await table_rows("posts", "id")) == 2

    async def test_returns_the_existing_row(self, database: Database) -> None:
        [virk] = await make_users("virk")
        [existing] = await add_posts(virk, "Adonis 101")
        post = await virk.related("posts").first_or_create({"title": "Adonis 101"}, {"score": 5})
        assert post.id == existing.id
        assert post.is_persisted and not post.is_local
        assert post.score is None
        assert len(await table_rows("posts", "id")) == 1


class TestHasManyUpdateOrCreate:
    async def test_creates_when_there_is_no_row(self, database: Database) -> None:
        virk, nikk = await make_users("virk", "nikk")
        await add_posts(nikk, "Adonis 101")
        post = await virk.related("posts").update_or_create({"title": "Adonis 101"}, {"score": 5})
        assert post.is_local
        assert (post.user_id, post.score) == (virk.id, 5)
        assert await table_rows("posts", "user_id", "score") == [
            {"user_id": nikk.id, "score": None},
            {"user_id": virk.id, "score": 5},
        ]

    async def test_updates_the_existing_row(self, database: Database) -> None:
        virk, nikk = await make_users("virk", "nikk")
        [existing] = await add_posts(virk, "Adonis 101")
        await add_posts(nikk, "Adonis 101")
        post = await virk.related("posts").update_or_create({"title": "Adonis 101"}, {"score": 5})
        assert post.id == existing.id and not post.is_local
        assert await table_rows("posts", "user_id", "score") == [
            {"user_id": virk.id, "score": 5},
            {"user_id": nikk.id, "score": None},
        ]


class TestHasManyFetchOrCreateMany:
    async def test_creates_rows_that_do_not_exist(self, database: Database) -> None:
        [virk] = await make_users("virk")
        await add_posts(None, "Lucid 101")  # same title, no parent: never matched
        [post] = await virk.related("posts").fetch_or_create_many([{"title": "Lucid 101"}], "title")
        assert post.is_persisted and post.is_local
        assert post.user_id == virk.id
        assert await table_rows("posts", "user_id", "title") == [
            {"user_id": None, "title": "Lucid 101"},
            {"user_id": virk.id, "title": "Lucid 101"},
        ]

    async def test_fetches_existing_and_creates_the_rest_in_payload_order(
        self, database: Database
    ) -> None:
        virk, nikk = await make_users("virk", "nikk")
        [existing] = await add_posts(virk, "Lucid 101")
        await add_posts(nikk, "Lucid 102")
        posts = await virk.related("posts").fetch_or_create_many(
            [{"title": "Lucid 102", "score": 1}, {"title": "Lucid 101", "score": 2}],
            predicate=["title"],
        )
        assert [p.title for p in posts] == ["Lucid 102", "Lucid 101"]
        assert posts[1].id == existing.id and not posts[1].is_local
        assert posts[1].score is None  # fetched, not updated
        assert posts[0].is_local and posts[0].user_id == virk.id and posts[0].score == 1
        assert await table_rows("posts", "user_id", "title") == [
            {"user_id": virk.id, "title": "Lucid 101"},
            {"user_id": nikk.id, "title": "Lucid 102"},
            {"user_id": virk.id, "title": "Lucid 102"},
        ]

    async def test_predicate_is_required(self, database: Database) -> None:
        [virk] = await make_users("virk")
        with pytest.raises(LucidError) as exc:
            await virk.related("posts").fetch_or_create_many([{"title": "a"}])
        assert_error(
            exc,
            "E_INVALID_ARGUMENT",
            "fetch_or_create_many() needs a predicate: the attribute name(s) that identify a row",
        )
        assert await table_rows("posts", "id") == []

    async def test_model_instances_are_rejected(self, database: Database) -> None:
        [virk] = await make_users("virk")
        with pytest.raises(LucidError) as exc:
            await virk.related("posts").fetch_or_create_many(
                [Post(title="a")],
                "title",  # type: ignore[list-item]
            )
        assert_error(
            exc,
            "E_INVALID_ARGUMENT",
            "fetch_or_create_many() expects plain mappings (dicts) of attribute values, not "
            'model instances ("Post")',
        )

    async def test_is_all_or_nothing_in_a_given_transaction(self, database: Database) -> None:
        virk, nikk = await make_users("virk", "nikk")
        await nikk.related("tasks").create({"name": "taken"})
        async with db.transaction() as trx:
            with pytest.raises(IntegrityError):
                # "taken" belongs to nikk: not matched for virk, so inserting it collides.
                await virk.related("tasks").fetch_or_create_many(
                    [{"name": "mine"}, {"name": "taken", "points": 1}], "name", client=trx
                )
            await virk.related("tasks").fetch_or_create_many(
                [{"name": "later"}], "name", client=trx
            )
        assert await table_rows("hm_tasks", "user_id", "name") == [
            {"user_id": nikk.id, "name": "taken"},
            {"user_id": virk.id, "name": "later"},
        ]


class TestHasManyUpdateOrCreateMany:
    async def test_creates_rows_that_do_not_exist(self, database: Database) -> None:
        [virk] = await make_users("virk")
        await add_posts(None, "Lucid 101")
        [post] = await virk.related("posts").update_or_create_many(
            [{"title": "Lucid 101"}], "title"
        )
        assert post.is_persisted and post.is_local and post.user_id == virk.id
        assert await table_rows("posts", "user_id") == [{"user_id": None}, {"user_id": virk.id}]

    async def test_updates_existing_and_creates_the_rest(self, database: Database) -> None:
        virk, nikk = await make_users("virk", "nikk")
        await Post.create_many(
            [
                {"title": "Lucid 101", "user_id": virk.id, "is_published": False},
                {"title": "Lucid 102", "user_id": nikk.id, "is_published": False},
            ]
        )
        posts = await virk.related("posts").update_or_create_many(
            [
                {"title": "Lucid 102", "is_published": True},
                {"title": "Lucid 101", "is_published": True},
            ],
            ["title"],
        )
        assert [p.title for p in posts] == ["Lucid 102", "Lucid 101"]
        assert [p.is_local for p in posts] == [True, False]
        assert all(p.user_id == virk.id and p.is_published is True for p in posts)
        assert await table_rows("posts", "user_id", "title", "is_published") == [
            {"user_id": virk.id, "title": "Lucid 101", "is_published": True},
            {"user_id": nikk.id, "title": "Lucid 102", "is_published": False},
            {"user_id": virk.id, "title": "Lucid 102", "is_published": True},
        ]

    async def test_is_all_or_nothing_in_a_given_transaction(self, database: Database) -> None:
        virk, nikk = await make_users("virk", "nikk")
        await nikk.related("tasks").create({"name": "taken"})
        await virk.related("tasks").create({"name": "mine", "points": 1})
        async with db.transaction() as trx:
            with pytest.raises(IntegrityError):
                await virk.related("tasks").update_or_create_many(
                    [{"name": "mine", "points": 2}, {"name": "taken", "points": 3}],
                    "name",
                    client=trx,
                )
            # The update of "mine" that preceded the failure is undone too.
            mine = await trx.from_("hm_tasks").where("name", "mine").select("points")
            assert mine == [{"points": 1}]
            await virk.related("tasks").update_or_create_many(
                [{"name": "mine", "points": 5}], "name", client=trx
            )
        assert await table_rows("hm_tasks", "user_id", "name", "points") == [
            {"user_id": nikk.id, "name": "taken", "points": None},
            {"user_id": virk.id, "name": "mine", "points": 5},
        ]

    async def test_predicate_is_required(self, database: Database) -> None:
        [virk] = await make_users("virk")
        with pytest.raises(LucidError) as exc:
            await virk.related("posts").update_or_create_many([{"title": "a"}])
        assert_error(
            exc,
            "E_INVALID_ARGUMENT",
            "update_or_create_many() needs a predicate: the attribute name(s) that identify a row",
        )

    async def test_model_instances_are_rejected(self, database: Database) -> None:
        [virk] = await make_users("virk")
        with pytest.raises(LucidError) as exc:
            await virk.related("posts").update_or_create_many(
                [Post(title="a")],
                "title",  # type: ignore[list-item]
            )
        assert_error(
            exc,
            "E_INVALID_ARGUMENT",
            "update_or_create_many() expects plain mappings (dicts) of attribute values, not "
            'model instances ("Post")',
        )

    async def test_absent_parent_key(self, database: Database) -> None:
        await make_users("virk")
        user = await User.query().select("username").first_or_fail()
        with pytest.raises(LucidError) as exc:
            await user.related("posts").update_or_create_many([{"title": "a"}], "title")
        assert_error(
            exc,
            "E_MISSING_MODEL_ATTRIBUTE",
            'Cannot persist "posts", value of "User.id" is undefined',
        )


# -- serialization -----------------------------------------------------------------------------


class TestHasManySerialize:
    async def test_serialize_a_loaded_list(self, database: Database) -> None:
        [virk] = await make_users("virk")
        [post] = await add_posts(virk, "Adonis 101")
        [user] = await User.query().preload("posts", lambda q: q.select("id", "title"))
        assert user.serialize() == {
            "id": virk.id,
            "username": "virk",
            "country_id": None,
            "posts": [{"id": post.id, "title": "Adonis 101", "user_id": virk.id}],
        }
        assert user.to_dict()["posts"] == [
            {"id": post.id, "title": "Adonis 101", "user_id": virk.id, "extras": {}}
        ]

    async def test_empty_list_serializes_as_empty(self, database: Database) -> None:
        await make_users("virk")
        [user] = await User.query().select("id").preload("posts")
        assert user.serialize() == {"id": user.id, "posts": []}

    async def test_serialize_as(self, database: Database) -> None:
        class Blogger(BaseModel):
            table = "users"
            id: int = column(is_primary=True)
            posts: HasMany[Post] = has_many(
                lambda: Post, foreign_key="user_id", serialize_as="articles"
            )
            drafts: HasMany[Post] = has_many(lambda: Post, foreign_key="user_id", serialize_as=None)

        blogger = await Blogger.create({})
        await Post.create({"user_id": blogger.id, "title": "Adonis 101"})
        [loaded] = await Blogger.query().preload("posts").preload("drafts")
        data = loaded.serialize()
        assert [p["title"] for p in data["articles"]] == ["Adonis 101"]
        assert "posts" not in data and "drafts" not in data
        assert [p.title for p in loaded.drafts] == ["Adonis 101"]


class TestHasManySubQueryConstraint:
    """The relation's constraint of a subquery between two model tables is built once and
    shared: subqueries that differ in their own conditions, their aggregate or their outer
    query each keep their SQL and rows, and an aliased (self-relation) one its own."""

    async def test_where_has_patterns_each_their_rows(self, database: Database) -> None:
        await _seed_counts()
        with count_queries() as q:
            for _ in range(2):
                assert await names(
                    User.query().where_has("posts", lambda p: p.where_like("title", "Lucid%"))
                ) == ["nikk"]
                assert await names(
                    User.query().where_has("posts", lambda p: p.where_like("title", "Adonis%"))
                ) == ["virk"]
        assert q.count == 4
        assert [b[-1] for b in q.bindings] == ["Lucid%", "Adonis%"] * 2

    async def test_has_with_count_and_where_has_together(self, database: Database) -> None:
        await _seed_counts()
        for _ in range(2):
            users = await (
                User.query()
                .with_count("posts")
                .where_has("posts", lambda p: p.where("score", ">", 30), "<", 1)
                .order_by("id")
            )
            assert [(u.username, u.extras["posts_count"]) for u in users] == [
                ("virk", 2),
                ("romain", 0),
            ]
            counted = await User.query().where("username", "nikk").with_count("posts")
            assert [(u.username, u.extras["posts_count"]) for u in counted] == [("nikk", 1)]

    async def test_self_relation_after_a_plain_one(self, database: Database) -> None:
        await _seed_counts()
        root = await Member.create({"username": "root"})
        await Member.create({"username": "child", "parent_id": root.id})
        for _ in range(2):
            assert await names(User.query().has("posts")) == ["virk", "nikk"]
            assert [m.username for m in await Member.query().has("children")] == ["root"]
            # (members are rows of ``users`` too)
            assert await names(User.query().doesnt_have("posts")) == ["romain", "root", "child"]

    async def test_counts_named_and_unnamed_each_their_own(self, database: Database) -> None:
        """``count(*) AS count`` is one shared construct: renaming it (``as_``) in one query
        leaves the others' as they were."""
        await _seed_counts()
        for _ in range(2):
            named = await User.query().with_count("posts", lambda p: p.as_("n")).order_by("id")
            assert [(u.username, u.extras["n"]) for u in named] == [
                ("virk", 2),
                ("nikk", 1),
                ("romain", 0),
            ]
            plain = await User.query().with_count("posts").order_by("id")
            assert [u.extras for u in plain] == [
                {"posts_count": 2},
                {"posts_count": 1},
                {"posts_count": 0},
            ]
            total = await Post.query().count("*").as_("total").pojo()
            assert total == [{"total": 3}]
            counted = await Post.query().count("*").pojo()
            assert counted == [{"count": 3}]
