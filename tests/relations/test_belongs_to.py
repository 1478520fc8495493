"""belongs_to (SPEC §5), ported from Lucid's ``test/orm/model_belongs_to.spec.ts``: keys and boot,
the relation object's matching API, the related query, subqueries, preload, lazy load, the has
family, aggregates, associate/dissociate, ``on_query`` and serialization."""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest

from lucid_orm import (
    BaseModel,
    LucidError,
    RelationNotLoadedError,
    before,
    belongs_to,
    column,
    scope,
)
from lucid_orm.database import Database
from lucid_orm.orm.relations.belongs_to import BelongsToQueryBuilder
from lucid_orm.relations import BelongsTo
from tests import models
from tests.helpers import count_queries, flat
from tests.models import Country, create_each


class User(models.User):
    parent_id: int | None = column()
    is_active: bool | None = column()

    country: BelongsTo[Country] = belongs_to(lambda: Country)
    parent: BelongsTo[User] = belongs_to(lambda: User, foreign_key="parent_id")

    @scope
    def from_country(query: Any, country_id: int) -> None:
        query.where("country_id", country_id)


class Profile(BaseModel):
    id: int = column(is_primary=True)
    user_id: int | None = column()
    display_name: str | None = column()

    user: BelongsTo[User] = belongs_to(lambda: User)


class Post(models.Post):
    score: int | None = column()

    author: BelongsTo[User] = belongs_to(lambda: User, foreign_key="user_id")


class Comment(models.Comment):
    user_id: int | None = column()

    post: BelongsTo[Post] = belongs_to(lambda: Post)
    user: BelongsTo[User] = belongs_to(lambda: User)


class StrictPost(models.Post):
    """A post whose save fails without a title: makes a write fail after others succeeded."""

    table = "posts"

    author: BelongsTo[User] = belongs_to(lambda: User, foreign_key="user_id")

    @before("save")
    def require_title(post: StrictPost) -> None:
        if not post.title:
            raise LucidError("a post needs a title")


make_users = partial(create_each, User)


async def table_rows(database: Database, table: str, *columns: str) -> list[dict[str, Any]]:
    return await database.from_(table).select(*columns).order_by("id")


def error_of(excinfo: pytest.ExceptionInfo[LucidError]) -> tuple[str, str]:
    return excinfo.value.code, str(excinfo.value)


class TestBelongsToBoot:
    async def test_default_keys(self, database: Database) -> None:
        relation = Profile.get_relation("user")
        relation.boot()
        assert relation.booted
        assert relation.type == "belongsTo"
        assert relation.relation_name == "user"
        assert relation.model is Profile
        assert relation.related_model() is User
        assert (relation.foreign_key, relation.foreign_key_column_name) == ("user_id", "user_id")
        assert (relation.local_key, relation.local_key_column_name) == ("id", "id")
        assert relation.serialize_as == "user"

    async def test_custom_local_key_and_foreign_key_with_column_names(
        self, database: Database
    ) -> None:
        class Account(BaseModel):
            table = "users"
            id: int = column(is_primary=True)
            uid: str | None = column(column_name="username")

        class Badge(BaseModel):
            table = "profiles"
            id: int = column(is_primary=True)
            owner_uid: str | None = column(column_name="display_name")
            owner: BelongsTo[Account] = belongs_to(
                lambda: Account, local_key="uid", foreign_key="owner_uid"
            )

        relation = Badge.get_relation("owner")
        relation.boot()
        assert (relation.local_key, relation.local_key_column_name) == ("uid", "username")
        assert (relation.foreign_key, relation.foreign_key_column_name) == (
            "owner_uid",
            "display_name",
        )

        await Account.create({"uid": "virk"})
        await Badge.create({"owner_uid": "virk"})
        await Badge.create({"owner_uid": "nobody"})
        with count_queries() as q:
            badges = await Badge.query().preload("owner").order_by("id")
        assert q.count == 2
        assert [b.owner.uid if b.owner else None for b in badges] == ["virk", None]

    async def test_missing_foreign_key_raises_at_first_use(self, database: Database) -> None:
        class Profile(BaseModel):
            id: int = column(is_primary=True)
            user: BelongsTo[User] = belongs_to(lambda: User)

        relation = Profile.get_relation("user")
        assert not relation.booted  # the class was defined without error
        message = '"Profile.user" expects "user_id" to exist on "Profile" model, but is missing'
        with pytest.raises(LucidError) as excinfo:
            relation.boot()
        assert error_of(excinfo) == ("E_MISSING_MODEL_ATTRIBUTE", message)
        with pytest.raises(LucidError) as excinfo:
            await Profile.query().preload("user")
        assert error_of(excinfo) == ("E_MISSING_MODEL_ATTRIBUTE", message)

    async def test_missing_local_key_on_the_related_model(self, database: Database) -> None:
        class Profile(BaseModel):
            id: int = column(is_primary=True)
            user_id: int | None = column()
            user: BelongsTo[User] = belongs_to(lambda: User, local_key="uid")

        with pytest.raises(LucidError) as excinfo:
            Profile.get_relation("user").boot()
        assert error_of(excinfo) == (
            "E_MISSING_MODEL_ATTRIBUTE",
            '"Profile.user" expects "uid" to exist on "User" model, but is missing',
        )

    async def test_relation_is_cloned_with_its_options_onto_subclasses(
        self, database: Database
    ) -> None:
        calls: list[str] = []

        class BaseProfile(BaseModel):
            table = "profiles"
            id: int = column(is_primary=True)
            owner_id: int | None = column(column_name="user_id")
            user: BelongsTo[User] = belongs_to(
                lambda: User,
                foreign_key="owner_id",
                serialize_as="owner",
                on_query=lambda q: calls.append(type(q).__name__),
                meta={"note": 1},
            )

        class SubProfile(BaseProfile):
            table = "profiles"

        base_rel = BaseProfile.get_relation("user")
        sub_rel = SubProfile.get_relation("user")
        assert sub_rel is not base_rel
        sub_rel.boot()
        assert sub_rel.model is SubProfile
        assert base_rel.model is BaseProfile
        assert sub_rel.related_model() is User
        assert sub_rel.foreign_key == "owner_id"
        assert sub_rel.foreign_key_column_name == "user_id"
        assert sub_rel.serialize_as == "owner"
        assert sub_rel.meta == {"note": 1}
        assert SubProfile.user is sub_rel

        (user,) = await make_users("virk")
        await SubProfile.create({"owner_id": user.id})
        profiles = await SubProfile.query().preload("user")
        assert isinstance(profiles[0], SubProfile)
        assert profiles[0].user is not None and profiles[0].user.id == user.id
        assert calls == ["BelongsToQueryBuilder"]
        assert profiles[0].serialize()["owner"]["id"] == user.id

    async def test_undefined_relation(self, database: Database) -> None:
        with pytest.raises(LucidError) as excinfo:
            Post.query().preload("authors")
        assert error_of(excinfo) == (
            "E_UNDEFINED_RELATIONSHIP",
            '"authors" is not defined as a relationship on "Post" model',
        )
        post = Post(title="x")
        with pytest.raises(LucidError) as excinfo:
            post.related("authors")
        assert excinfo.value.code == "E_UNDEFINED_RELATIONSHIP"
        assert not Post.has_relation("authors")
        assert Post.has_relation("author")


class TestBelongsToSetRelations:
    async def test_set_related(self, database: Database) -> None:
        relation = Profile.get_relation("user")
        user = User(id=1)
        profile = Profile(user_id=1)
        relation.set_related(profile, user)
        assert profile.user is user
        assert profile.preloaded == {"user": user}
        relation.set_related(profile, None)
        assert profile.user is None

    async def test_assigning_the_attribute_sets_the_relation(self, database: Database) -> None:
        user = User(id=1)
        profile = Profile(user_id=1)
        profile.user = user
        assert profile.user is user
        assert "user" in profile.preloaded

    async def test_push_related_replaces_the_value(self, database: Database) -> None:
        relation = Profile.get_relation("user")
        profile = Profile(user_id=1)
        user, user1 = User(id=1), User(id=2)
        relation.set_related(profile, user)
        profile.merge({"user_id": 2})
        relation.push_related(profile, user1)
        assert profile.user is user1

    async def test_set_related_for_many_matches_by_key(self, database: Database) -> None:
        relation = Profile.get_relation("user")
        profile, profile1, profile2 = Profile(user_id=1), Profile(user_id=2), Profile()
        profile3 = Profile(user_id=3)
        user, user1 = User(id=1), User(id=2)
        relation.set_related_for_many([profile, profile1, profile2, profile3], [user1, user])
        assert profile.user is user
        assert profile1.user is user1
        assert profile2.user is None
        assert profile3.user is None

    async def test_a_list_is_rejected(self, database: Database) -> None:
        relation = Post.get_relation("author")
        post = Post(user_id=1)
        for method in (relation.set_related, relation.push_related):
            with pytest.raises(LucidError) as excinfo:
                method(post, [User(id=1)])
            assert error_of(excinfo) == (
                "E_RUNTIME_EXCEPTION",
                '"Post.author" cannot reference more than one instance of "User" model',
            )
        assert "author" not in post.preloaded

    async def test_an_instance_of_another_model_is_rejected(self, database: Database) -> None:
        post = Post(user_id=1)
        with pytest.raises(LucidError):
            Post.get_relation("author").set_related(post, Country(id=1))
        assert "author" not in post.preloaded


class TestRelationNotLoaded:
    async def test_reading_an_unloaded_relation_raises(self, database: Database) -> None:
        (user,) = await make_users("virk")
        await Post.create({"user_id": user.id, "title": "a"})
        post = await Post.query().first_or_fail()
        with count_queries() as q, pytest.raises(RelationNotLoadedError) as excinfo:
            post.author
        assert q.count == 0
        assert isinstance(excinfo.value, AttributeError)
        assert isinstance(excinfo.value, LucidError)
        assert excinfo.value.code == "E_RELATION_NOT_LOADED"
        assert str(excinfo.value) == (
            'Relation "author" of "Post" is not loaded: use preload("author") '
            'or await post.load("author")'
        )
        assert getattr(post, "author", "missing") == "missing"
        assert not hasattr(post, "author")

    async def test_class_access_returns_the_relation(self, database: Database) -> None:
        assert Post.author is Post.get_relation("author")
        assert Post.relations["author"] is Post.author


class TestBelongsToQueryBuilder:
    async def test_related_query_selects_the_parent_row(self, database: Database) -> None:
        virk, _nikk = await make_users("virk", "nikk")
        post = await Post.create({"user_id": virk.id, "title": "a"})
        query = post.related("author").query()
        assert isinstance(query, BelongsToQueryBuilder)
        assert query.is_related_query and not query.is_related_preload_query
        with count_queries() as q:
            author = await query.first()
        assert q.count == 1
        assert isinstance(author, User) and author.id == virk.id
        rows = await post.related("author").query()
        assert [u.id for u in rows] == [virk.id]

    async def test_or_where_cannot_escape_the_relation(self, database: Database) -> None:
        virk, nikk = await make_users("virk", "nikk")
        post = await Post.create({"user_id": virk.id, "title": "a"})
        rows = await post.related("author").query().where("username", "x").or_where("id", nikk.id)
        assert rows == []
        rows = (
            await post.related("author").query().where("username", "x").or_where("username", "virk")
        )
        assert [u.id for u in rows] == [virk.id]

    async def test_null_foreign_key_runs_no_query(self, database: Database) -> None:
        await make_users("virk")
        post = await Post.create({"user_id": None, "title": "orphan"})
        with count_queries() as q:
            assert await post.related("author").query().first() is None
            assert await post.related("author").query() == []
            assert await post.related("author").query().update({"points": 9}) == 0
            assert await post.related("author").query().delete() == 0
            await post.load("author")
        assert q.count == 0
        assert post.author is None
        rows = await table_rows(database, "users", "points")
        assert rows == [{"points": 0}]

    async def test_absent_foreign_key_raises(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        await Post.create({"user_id": virk.id, "title": "a"})
        post = await Post.query().select("id", "title").first_or_fail()
        assert "user_id" not in post.attributes
        for action, run in (
            ("select", lambda: post.related("author").query().first()),
            ("update", lambda: post.related("author").query().update({"points": 1})),
            ("delete", lambda: post.related("author").query().delete()),
        ):
            with count_queries() as q, pytest.raises(LucidError) as excinfo:
                await run()
            assert q.count == 0
            assert error_of(excinfo) == (
                "E_MISSING_MODEL_ATTRIBUTE",
                f'Cannot {action} "author", value of "Post.user_id" is undefined',
            )
        assert len(await table_rows(database, "users", "id")) == 1

    async def test_update_through_the_related_query_is_scoped(self, database: Database) -> None:
        virk, nikk = await make_users("virk", "nikk", points=1)
        post = await Post.create({"user_id": virk.id, "title": "a"})
        with count_queries() as q:
            affected = await post.related("author").query().update({"points": 50})
        assert (affected, q.count) == (1, 1)
        assert q.sqls[0].lstrip().upper().startswith("UPDATE")
        rows = await table_rows(database, "users", "id", "points")
        assert rows == [{"id": virk.id, "points": 50}, {"id": nikk.id, "points": 1}]

    async def test_delete_through_the_related_query_is_scoped(self, database: Database) -> None:
        virk, nikk = await make_users("virk", "nikk")
        post = await Post.create({"user_id": virk.id, "title": "a"})
        # A user's or_where stays inside the relation constraint.
        deleted = (
            await post.related("author").query().where("id", 0).or_where("id", nikk.id).delete()
        )
        assert deleted == 0
        assert len(await table_rows(database, "users", "id")) == 2
        with count_queries() as q:
            assert await post.related("author").query().delete() == 1
        assert q.count == 1
        assert await table_rows(database, "users", "id") == [{"id": nikk.id}]

    async def test_paginate_raises(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        post = await Post.create({"user_id": virk.id, "title": "a"})
        with count_queries() as q, pytest.raises(LucidError) as excinfo:
            await post.related("author").query().paginate(1)
        assert q.count == 0
        assert error_of(excinfo) == (
            "E_RUNTIME_EXCEPTION",
            'Cannot paginate a belongsTo relationship "(author)"',
        )

    async def test_clone_keeps_the_relation(self, database: Database) -> None:
        virk, nikk = await make_users("virk", "nikk")
        post = await Post.create({"user_id": virk.id, "title": "a"})
        query = post.related("author").query()
        cloned = query.clone().where("username", "nikk")
        assert isinstance(cloned, BelongsToQueryBuilder)
        assert [u.id for u in await cloned] == []
        assert [u.id for u in await query] == [virk.id]
        widened = query.clone().where("id", 0).or_where("id", nikk.id)
        assert [u.id for u in await widened] == []

    async def test_scopes_on_the_related_query(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        post = await Post.create({"user_id": virk.id, "title": "a"})
        scoped = await post.related("author").query().apply(lambda s: s.from_country(1)).first()
        assert scoped is None
        assert await post.related("author").query().first() is not None

    async def test_related_query_uses_the_parent_transaction(self, database: Database) -> None:
        async with database.transaction() as trx:
            user = await User.create({"username": "virk"}, client=trx)
            post = await Post.create({"user_id": user.id, "title": "a"}, client=trx)
            assert post.trx is trx
            with count_queries() as q:
                author = await post.related("author").query().first()
            assert author is not None and author.id == user.id
            assert [e.in_transaction for e in q.events] == [True]
            assert author.trx is trx


class TestBelongsToSubQuery:
    async def test_executing_a_sub_query_raises(self, database: Database) -> None:
        relation = Post.get_relation("author")
        relation.boot()
        client = database.connection()
        runs = [
            lambda: relation.sub_query(client).exec(),
            lambda: relation.sub_query(client).first(),
            lambda: relation.sub_query(client).first_or_fail(),
            lambda: relation.sub_query(client).paginate(1),
            lambda: relation.sub_query(client).update({"points": 1}),
            lambda: relation.sub_query(client).delete(),
        ]
        with count_queries() as q:
            for run in runs:
                with pytest.raises(LucidError) as excinfo:
                    await run()
                assert error_of(excinfo) == (
                    "E_RUNTIME_EXCEPTION",
                    "Cannot execute relationship subqueries",
                )
            with pytest.raises(LucidError, match="Cannot execute relationship subqueries"):
                await relation.sub_query(client)
        assert q.count == 0

    async def test_sub_query_flags(self, database: Database) -> None:
        sub = Post.get_relation("author").sub_query(database.connection())
        assert not sub.is_related_query and sub.is_related_sub_query
        assert not sub.is_related_preload_query


class TestBelongsToPreload:
    async def test_preload_one_query_per_relation(self, database: Database) -> None:
        virk, nikk, _romain = await make_users("virk", "nikk", "romain")
        for uid in (virk.id, virk.id, nikk.id, None):
            await Post.create({"user_id": uid, "title": "t"})
        with count_queries() as q:
            posts = await Post.query().preload("author").order_by("id")
        assert q.count == 2
        assert [p.author.id if p.author else None for p in posts] == [
            virk.id,
            virk.id,
            nikk.id,
            None,
        ]
        # Both posts of one author share the row's instance; each matches its foreign key.
        assert all(p.author is None or p.author.id == p.user_id for p in posts)
        # The NULL key is not sent to the database.
        assert None not in flat(q.bindings[1])
        assert sorted(flat(q.bindings[1])) == sorted([virk.id, nikk.id])

    async def test_no_match_and_null_key_are_none(self, database: Database) -> None:
        await Post.create({"user_id": None, "title": "a"})
        await Post.create({"user_id": 987654, "title": "b"})
        posts = await Post.query().preload("author").order_by("id")
        assert [p.author for p in posts] == [None, None]
        assert posts[0].serialize()["author"] is None
        assert posts[0].to_dict()["author"] is None

    async def test_only_null_keys_run_no_relation_query(self, database: Database) -> None:
        await Post.create({"user_id": None, "title": "a"})
        with count_queries() as q:
            posts = await Post.query().preload("author")
        assert q.count == 1
        assert posts[0].author is None

    async def test_no_parents_no_query_and_no_callback(self, database: Database) -> None:
        def callback(query: Any) -> None:
            raise AssertionError("the preload callback must not run without parents")

        with count_queries() as q:
            posts = await Post.query().preload("author", callback)
        assert posts == []
        assert q.count == 1

    async def test_runtime_constraints(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        await Post.create({"user_id": virk.id, "title": "a"})
        await Post.create({"user_id": virk.id, "title": "b"})
        posts = await Post.query().preload("author", lambda q: q.where("username", "foo"))
        assert len(posts) == 2
        assert [p.author for p in posts] == [None, None]

    async def test_or_where_in_callback_cannot_escape(self, database: Database) -> None:
        virk, nikk = await make_users("virk", "nikk")
        await Post.create({"user_id": virk.id, "title": "a"})
        posts = await Post.query().preload(
            "author", lambda q: q.where("username", "x").or_where("id", nikk.id)
        )
        assert posts[0].author is None

    async def test_cherry_picked_columns_still_match(self, database: Database) -> None:
        virk, nikk = await make_users("virk", "nikk")
        await Post.create({"user_id": virk.id, "title": "a"})
        await Post.create({"user_id": nikk.id, "title": "b"})
        posts = await Post.query().preload("author", lambda q: q.select("username")).order_by("id")
        assert [p.author.username for p in posts if p.author] == ["virk", "nikk"]
        for post in posts:
            assert post.author is not None
            assert post.author.extras == {}
            assert set(post.author.attributes) == {"id", "username"}

    async def test_key_selected_explicitly_is_not_repeated(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        await Post.create({"user_id": virk.id, "title": "a"})
        with count_queries() as q:
            posts = await Post.query().preload("author", lambda q: q.select("username", "id"))
        assert posts[0].author is not None and posts[0].author.id == virk.id
        assert posts[0].author.extras == {}
        assert set(posts[0].author.attributes) == {"id", "username"}
        assert q.count == 2

    async def test_unselected_foreign_key_raises(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        await Post.create({"user_id": virk.id, "title": "a"})
        with pytest.raises(LucidError) as excinfo:
            await Post.query().select("id", "title").preload("author")
        assert error_of(excinfo) == (
            "E_MISSING_MODEL_ATTRIBUTE",
            'Cannot preload "author", value of "Post.user_id" is undefined',
        )

    async def test_nested_preload_via_callback(self, database: Database) -> None:
        country = await Country.create({"name": "India"})
        virk, nikk = await make_users("virk", "nikk", country_id=country.id)
        post1 = await Post.create({"user_id": virk.id, "title": "a"})
        post2 = await Post.create({"user_id": nikk.id, "title": "b"})
        for post in (post1, post2, post1):
            await Comment.create({"post_id": post.id, "body": "c"})
        with count_queries() as q:
            comments = await Comment.query().preload(
                "post", lambda q: q.preload("author", lambda q: q.preload("country"))
            )
        assert q.count == 4
        assert len(comments) == 3
        for comment in comments:
            assert comment.post is not None and comment.post.id == comment.post_id
            assert comment.post.author is not None
            assert comment.post.author.id == comment.post.user_id
            assert comment.post.author.country is not None
            assert comment.post.author.country.name == "India"

    async def test_nested_preload_via_dotted_path(self, database: Database) -> None:
        country = await Country.create({"name": "India"})
        (virk,) = await make_users("virk", country_id=country.id)
        post = await Post.create({"user_id": virk.id, "title": "a"})
        await Comment.create({"post_id": post.id, "body": "c"})
        await Comment.create({"post_id": post.id, "body": "d"})
        with count_queries() as q:
            comments = await Comment.query().preload("post.author.country")
        assert q.count == 4
        for comment in comments:
            assert comment.post is not None and comment.post.author is not None
            assert comment.post.author.id == virk.id
            assert comment.post.author.country is not None
            assert comment.post.author.country.id == country.id

    async def test_dotted_path_with_an_undefined_relation(self, database: Database) -> None:
        with pytest.raises(LucidError) as excinfo:
            Comment.query().preload("post.writer")
        assert error_of(excinfo) == (
            "E_UNDEFINED_RELATIONSHIP",
            '"writer" is not defined as a relationship on "Post" model',
        )

    async def test_sibling_preloads(self, database: Database) -> None:
        virk, nikk = await make_users("virk", "nikk")
        post = await Post.create({"user_id": virk.id, "title": "a"})
        await Comment.create({"post_id": post.id, "user_id": nikk.id})
        with count_queries() as q:
            comments = await Comment.query().preload("post").preload("user")
        assert q.count == 3
        assert comments[0].post is not None and comments[0].post.id == post.id
        assert comments[0].user is not None and comments[0].user.id == nikk.id

    async def test_scopes_in_the_preload_callback(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        await Post.create({"user_id": virk.id, "title": "a"})
        scoped = await Post.query().preload(
            "author", lambda q: q.apply(lambda s: s.from_country(1))
        )
        plain = await Post.query().preload("author")
        assert scoped[0].author is None
        assert plain[0].author is not None

    async def test_preload_inside_a_transaction_uses_it(self, database: Database) -> None:
        async with database.transaction() as trx:
            user = await User.create({"username": "virk"}, client=trx)
            await Post.create({"user_id": user.id, "title": "a"}, client=trx)
            with count_queries() as q:
                posts = await Post.query(client=trx).preload("author")
            assert q.count == 2
            assert all(e.in_transaction for e in q.events)
            assert posts[0].author is not None and posts[0].author.id == user.id
            assert posts[0].author.trx is trx
            await trx.rollback()
        assert await table_rows(database, "users", "id") == []

    async def test_preloading_a_relation_twice_merges_the_callbacks(
        self, database: Database
    ) -> None:
        virk, nikk = await make_users("virk", "nikk")
        await Post.create({"user_id": virk.id, "title": "a"})
        await Post.create({"user_id": nikk.id, "title": "b"})
        with count_queries() as q:
            posts = await (
                Post.query()
                .preload("author", lambda q: q.where("username", "nikk"))
                .preload("author", lambda q: q.select("username"))
                .order_by("id")
            )
        assert q.count == 2
        assert posts[0].author is None
        assert posts[1].author is not None
        assert set(posts[1].author.attributes) == {"id", "username"}

    async def test_self_referencing_preload(self, database: Database) -> None:
        root = await User.create({"username": "root"})
        child = await User.create({"username": "child", "parent_id": root.id})
        await User.create({"username": "grandchild", "parent_id": child.id})
        with count_queries() as q:
            users = await User.query().preload("parent.parent").order_by("id")
        assert q.count == 3
        assert [u.parent.username if u.parent else None for u in users] == [
            None,
            "root",
            "child",
        ]
        grandchild = users[2]
        assert grandchild.parent is not None and grandchild.parent.parent is not None
        assert grandchild.parent.parent.id == root.id

    async def test_preload_on_first(self, database: Database) -> None:
        virk, _nikk = await make_users("virk", "nikk")
        await Post.create({"user_id": virk.id, "title": "a"})
        await Post.create({"user_id": virk.id, "title": "b"})
        post = await Post.query().preload("author").where("title", "b").first()
        assert post is not None and post.author is not None and post.author.id == virk.id

    async def test_group_limit_raises(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        await Post.create({"user_id": virk.id, "title": "a"})
        message = (
            'Cannot apply group_limit or group_order_by on a belongsTo relationship "(author)"'
        )
        for callback in (lambda q: q.group_limit(2), lambda q: q.group_order_by("id", "desc")):
            with pytest.raises(LucidError) as excinfo:
                await Post.query().preload("author", callback)
            assert error_of(excinfo) == ("E_RUNTIME_EXCEPTION", message)

    async def test_paginate_inside_the_preload_callback_raises(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        await Post.create({"user_id": virk.id, "title": "a"})
        with pytest.raises(LucidError) as excinfo:
            await Post.query().preload("author", lambda q: q.paginate(1))
        assert str(excinfo.value) == 'Cannot paginate relationship "author" during preload'

    async def test_async_callback_is_rejected(self, database: Database) -> None:
        async def callback(query: Any) -> None:
            pass

        with pytest.raises(LucidError):
            Post.query().preload("author", callback)


class TestBelongsToLazyLoad:
    async def test_load(self, database: Database) -> None:
        virk, _nikk = await make_users("virk", "nikk")
        post = await Post.create({"user_id": virk.id, "title": "a"})
        with count_queries() as q:
            returned = await post.load("author")
        assert returned is post
        assert q.count == 1
        assert isinstance(post.author, User) and post.author.id == virk.id

    async def test_load_with_a_callback(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        post = await Post.create({"user_id": virk.id, "title": "a"})
        await post.load("author", lambda q: q.where("username", "nikk"))
        assert post.author is None

    async def test_load_once_does_not_query_again(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        post = await Post.create({"user_id": virk.id, "title": "a"})
        with count_queries() as q:
            await post.load_once("author")
            await post.load_once("author")
        assert q.count == 1
        assert post.author is not None and post.author.id == virk.id
        with count_queries() as q:
            await post.load("author")
        assert q.count == 1

    async def test_load_once_keeps_a_none_result(self, database: Database) -> None:
        post = await Post.create({"user_id": 987654, "title": "a"})
        with count_queries() as q:
            await post.load_once("author")
            await post.load_once("author")
        assert q.count == 1
        assert post.author is None

    async def test_load_several_relations(self, database: Database) -> None:
        virk, nikk = await make_users("virk", "nikk")
        post = await Post.create({"user_id": virk.id, "title": "a"})
        comment = await Comment.create({"post_id": post.id, "user_id": nikk.id})
        with count_queries() as q:
            await comment.load(lambda loader: loader.load("post").load("user"))
        assert q.count == 2
        assert comment.post is not None and comment.post.id == post.id
        assert comment.user is not None and comment.user.id == nikk.id

    async def test_load_nested_via_the_loader(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        post = await Post.create({"user_id": virk.id, "title": "a"})
        comment = await Comment.create({"post_id": post.id})
        await comment.load(lambda loader: loader.load("post", lambda q: q.preload("author")))
        assert comment.post is not None and comment.post.author is not None
        assert comment.post.author.id == virk.id

    async def test_load_null_foreign_key(self, database: Database) -> None:
        await Post.create({"user_id": None, "title": "a"})
        post = await Post.query().first_or_fail()
        with count_queries() as q:
            await post.load("author")
        assert q.count == 0
        assert post.author is None

    async def test_load_on_an_unpersisted_instance_raises(self, database: Database) -> None:
        post = Post(user_id=1, title="a")
        for run in (
            lambda: post.load("author"),
            lambda: post.load_once("author"),
            lambda: post.load_count("author"),
        ):
            with count_queries() as q, pytest.raises(LucidError) as excinfo:
                await run()
            assert q.count == 0
            assert error_of(excinfo) == (
                "E_RUNTIME_EXCEPTION",
                "Cannot lazy load relationship for an unpersisted model instance",
            )

    async def test_load_uses_the_instance_transaction(self, database: Database) -> None:
        trx = await database.transaction()
        try:
            user = await User.create({"username": "virk"}, client=trx)
            post = await Post.create({"user_id": user.id, "title": "a"}, client=trx)
            with count_queries() as q:
                await post.load("author")
            assert [e.in_transaction for e in q.events] == [True]
            assert post.author is not None and post.author.id == user.id
        finally:
            await trx.rollback()


class TestBelongsToHas:
    async def _posts(self) -> tuple[User, User, list[Post]]:
        virk, nikk = await make_users("virk", "nikk")
        posts = [
            await Post.create({"user_id": virk.id, "title": "virk's"}),
            await Post.create({"user_id": nikk.id, "title": "nikk's"}),
            await Post.create({"user_id": None, "title": "nobody's"}),
            await Post.create({"user_id": 987654, "title": "ghost's"}),
        ]
        return virk, nikk, posts

    async def test_has(self, database: Database) -> None:
        await self._posts()
        with count_queries() as q:
            posts = await Post.query().has("author").order_by("id")
        assert q.count == 1
        assert [p.title for p in posts] == ["virk's", "nikk's"]

    async def test_has_with_a_count(self, database: Database) -> None:
        await self._posts()
        assert len(await Post.query().has("author", ">=", 1)) == 2
        assert len(await Post.query().has("author", ">", 1)) == 0
        assert len(await Post.query().has("author", "=", 0)) == 2

    async def test_doesnt_have(self, database: Database) -> None:
        await self._posts()
        posts = await Post.query().doesnt_have("author").order_by("id")
        assert [p.title for p in posts] == ["nobody's", "ghost's"]

    async def test_or_has_and_or_doesnt_have(self, database: Database) -> None:
        await self._posts()
        posts = await Post.query().where("title", "ghost's").or_has("author").order_by("id")
        assert [p.title for p in posts] == ["virk's", "nikk's", "ghost's"]
        posts = await Post.query().where("title", "virk's").or_doesnt_have("author").order_by("id")
        assert [p.title for p in posts] == ["virk's", "nobody's", "ghost's"]

    async def test_where_has(self, database: Database) -> None:
        await self._posts()
        posts = await Post.query().where_has("author", lambda q: q.where("username", "nikk"))
        assert [p.title for p in posts] == ["nikk's"]

    async def test_where_has_with_an_aggregate(self, database: Database) -> None:
        virk, nikk = await make_users("virk", "nikk")
        await User.query().where("id", virk.id).update({"points": 10})
        await User.query().where("id", nikk.id).update({"points": 20})
        await Profile.create({"user_id": virk.id, "display_name": "Virk"})
        await Profile.create({"user_id": nikk.id, "display_name": "Nikk"})
        profiles = await Profile.query().where_has("user", lambda q: q.sum("points"), ">", 15)
        assert [p.display_name for p in profiles] == ["Nikk"]

    async def test_where_doesnt_have_and_or_forms(self, database: Database) -> None:
        await self._posts()
        nikk = lambda q: q.where("username", "nikk")  # noqa: E731
        posts = await Post.query().where_doesnt_have("author", nikk).order_by("id")
        assert [p.title for p in posts] == ["virk's", "nobody's", "ghost's"]
        posts = await Post.query().where("title", "ghost's").or_where_has("author", nikk)
        assert sorted(p.title for p in posts) == ["ghost's", "nikk's"]
        posts = await Post.query().where("title", "nikk's").or_where_doesnt_have("author", nikk)
        assert len(posts) == 4
        posts = await Post.query().and_where_has("author", nikk).and_has("author")
        assert [p.title for p in posts] == ["nikk's"]
        assert len(await Post.query().and_doesnt_have("author")) == 2
        assert len(await Post.query().and_where_doesnt_have("author", nikk)) == 3

    async def test_has_cannot_be_widened_by_or_where_in_callback(self, database: Database) -> None:
        await self._posts()
        posts = await Post.query().where_has(
            "author", lambda q: q.where("username", "x").or_where("username", "nikk")
        )
        assert [p.title for p in posts] == ["nikk's"]

    async def test_self_referencing_has(self, database: Database) -> None:
        root = await User.create({"username": "root"})
        child = await User.create({"username": "child", "parent_id": root.id})
        await User.create({"username": "orphan", "parent_id": 987654})
        with_parent = await User.query().has("parent")
        assert [u.id for u in with_parent] == [child.id]
        without = await User.query().doesnt_have("parent").order_by("id")
        assert [u.username for u in without] == ["root", "orphan"]
        # The callback's unqualified columns refer to the related (aliased) table, the outer
        # query's to the parent table.
        by_root = await User.query().where_has("parent", lambda q: q.where("username", "root"))
        assert [u.id for u in by_root] == [child.id]
        none = await (
            User.query()
            .where("username", "root")
            .where_has("parent", lambda q: q.where("username", "root"))
        )
        assert none == []


class TestBelongsToWithCount:
    async def test_with_count(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        await Post.create({"user_id": virk.id, "title": "a"})
        await Post.create({"user_id": None, "title": "b"})
        with count_queries() as q:
            posts = await Post.query().with_count("author").order_by("id")
        assert q.count == 1
        counts = [p.extras["author_count"] for p in posts]
        assert counts == [1, 0]
        assert all(type(c) is int for c in counts)

    async def test_with_count_alias_and_constraints(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        await Post.create({"user_id": virk.id, "title": "a"})
        posts = await Post.query().with_count(
            "author", lambda q: q.where("username", "nikk").as_("nikk_count")
        )
        assert posts[0].extras == {"nikk_count": 0}

    async def test_with_count_keeps_cherry_picked_columns(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        await Profile.create({"user_id": virk.id, "display_name": "Hvirk"})
        profiles = await Profile.query().select("display_name").with_count("user")
        assert profiles[0].attributes == {"display_name": "Hvirk"}
        assert profiles[0].extras == {"user_count": 1}

    async def test_with_aggregate(self, database: Database) -> None:
        virk, _ = await make_users("virk", "nikk", points=7)
        await Post.create({"user_id": virk.id, "title": "a"})
        posts = await Post.query().with_aggregate(
            "author", lambda q: q.max("points").as_("author_points")
        )
        assert posts[0].extras == {"author_points": 7}
        assert type(posts[0].extras["author_points"]) is int

    async def test_with_aggregate_errors(self, database: Database) -> None:
        with pytest.raises(LucidError) as excinfo:
            Post.query().with_aggregate("author", lambda q: q.as_("x"))
        assert error_of(excinfo) == (
            "E_RUNTIME_EXCEPTION",
            '"with_aggregate" callback must use an aggregate function',
        )
        with pytest.raises(LucidError) as excinfo:
            Post.query().with_aggregate("author", lambda q: q.max("points"))
        assert error_of(excinfo) == (
            "E_RUNTIME_EXCEPTION",
            '"with_aggregate" callback must define the alias for the aggregate query',
        )

    async def test_load_count_and_load_aggregate(self, database: Database) -> None:
        (virk,) = await make_users("virk", points=3)
        post = await Post.create({"user_id": virk.id, "title": "a"})
        with count_queries() as q:
            await post.load_count("author")
            await post.load_aggregate("author", lambda q: q.max("points").as_("author_points"))
        assert q.count == 2
        assert post.extras == {"author_count": 1, "author_points": 3}
        assert type(post.extras["author_count"]) is int

    async def test_self_referencing_with_count(self, database: Database) -> None:
        root = await User.create({"username": "root"})
        await User.create({"username": "child", "parent_id": root.id})
        users = await User.query().with_count("parent").order_by("id")
        assert [u.extras["parent_count"] for u in users] == [0, 1]
        users = await User.query().with_count(
            "parent", lambda q: q.where("username", "root").as_("root_parent")
        )
        assert sorted(u.extras["root_parent"] for u in users) == [0, 1]


class TestAssociate:
    async def test_associate_new_related_and_new_parent(self, database: Database) -> None:
        user = User(username="virk")
        profile = Profile(display_name="Hvirk")
        with count_queries() as q:
            await profile.related("user").associate(user)
        assert q.count == 2  # insert user, insert profile
        assert user.is_persisted and profile.is_persisted
        assert profile.user_id == user.id
        assert profile.user is user
        assert not profile.is_dirty
        assert await table_rows(database, "profiles", "user_id") == [{"user_id": user.id}]

    async def test_associate_persisted_models_updates_the_parent_only(
        self, database: Database
    ) -> None:
        virk, nikk = await make_users("virk", "nikk")
        post = await Post.create({"user_id": virk.id, "title": "a"})
        with count_queries() as q:
            await post.related("author").associate(nikk)
        assert q.count == 1
        assert q.sqls[0].lstrip().upper().startswith("UPDATE")
        assert post.user_id == nikk.id and post.author is nikk
        assert await table_rows(database, "posts", "user_id") == [{"user_id": nikk.id}]

    async def test_associate_saves_a_dirty_related_model(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        post = await Post.create({"user_id": None, "title": "a"})
        virk.username = "virk2"
        await post.related("author").associate(virk)
        assert not virk.is_dirty
        assert await table_rows(database, "users", "username") == [{"username": "virk2"}]

    async def test_associate_is_one_transaction(self, database: Database) -> None:
        user = User(username="virk")
        post = StrictPost(title=None)
        with pytest.raises(LucidError, match="a post needs a title"):
            await post.related("author").associate(user)
        assert await table_rows(database, "users", "id") == []
        assert await table_rows(database, "posts", "id") == []
        assert "author" not in post.preloaded

    async def test_associate_with_client_trx(self, database: Database) -> None:
        trx = await database.transaction()
        user = User(username="virk")
        post = Post(title="a")
        with count_queries() as q:
            await post.related("author").associate(user, client=trx)
        assert q.count == 2 and all(e.in_transaction for e in q.events)
        assert not trx.is_completed
        await trx.rollback()
        assert await table_rows(database, "users", "id") == []
        assert await table_rows(database, "posts", "id") == []

    async def test_failure_inside_a_given_trx_rolls_back_only_that_call(
        self, database: Database
    ) -> None:
        async with database.transaction() as trx:
            kept = await User.create({"username": "kept"}, client=trx)
            with pytest.raises(LucidError, match="a post needs a title"):
                await (
                    StrictPost(title=None)
                    .related("author")
                    .associate(User(username="lost"), client=trx)
                )
            assert not trx.is_completed
            post = StrictPost(title="a")
            await post.related("author").associate(kept, client=trx)
        assert await table_rows(database, "users", "username") == [{"username": "kept"}]
        assert await table_rows(database, "posts", "user_id") == [{"user_id": kept.id}]

    async def test_associate_uses_the_parent_transaction(self, database: Database) -> None:
        trx = await database.transaction()
        post = await Post.create({"title": "a"}, client=trx)
        user = User(username="virk")
        await post.related("author").associate(user)
        assert not trx.is_completed
        assert post.trx is trx
        await trx.rollback()
        assert await table_rows(database, "users", "id") == []
        assert await table_rows(database, "posts", "id") == []

    async def test_associate_rejects_another_model(self, database: Database) -> None:
        post = Post(title="a")
        with count_queries() as q, pytest.raises(LucidError):
            await post.related("author").associate(Country(name="x"))  # type: ignore[arg-type]
        assert q.count == 0

    async def test_no_create_or_save_on_belongs_to(self, database: Database) -> None:
        post = Post(title="a")
        for name in ("create", "save"):
            with pytest.raises(AttributeError):
                getattr(post.related("author"), name)


class TestDissociate:
    async def test_dissociate(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        post = await Post.create({"user_id": virk.id, "title": "a"})
        await post.load("author")
        with count_queries() as q:
            await post.related("author").dissociate()
        assert q.count == 1
        assert q.sqls[0].lstrip().upper().startswith("UPDATE")
        assert post.is_persisted and post.user_id is None
        assert post.author is None
        assert await table_rows(database, "posts", "user_id") == [{"user_id": None}]
        assert await table_rows(database, "users", "id") == [{"id": virk.id}]

    async def test_dissociate_with_client_trx(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        post = await Post.create({"user_id": virk.id, "title": "a"})
        trx = await database.transaction()
        await post.related("author").dissociate(client=trx)
        assert post.author is None
        await trx.rollback()
        assert await table_rows(database, "posts", "user_id") == [{"user_id": virk.id}]


class TestBelongsToOnQuery:
    @staticmethod
    def models(log: list[tuple[bool, bool, bool]]) -> type[BaseModel]:
        def on_query(query: Any) -> None:
            log.append(
                (query.is_related_query, query.is_related_preload_query, query.is_related_sub_query)
            )
            query.where("is_active", True)

        class ActivePost(BaseModel):
            table = "posts"
            id: int = column(is_primary=True)
            user_id: int | None = column()
            title: str | None = column()
            author: BelongsTo[User] = belongs_to(lambda: User, on_query=on_query)

        return ActivePost

    async def _data(self) -> tuple[User, User]:
        active = await User.create({"username": "active", "is_active": True})
        inactive = await User.create({"username": "inactive", "is_active": False})
        return active, inactive

    async def test_applied_to_preload(self, database: Database) -> None:
        log: list[tuple[bool, bool, bool]] = []
        ActivePost = self.models(log)
        active, inactive = await self._data()
        await ActivePost.create({"user_id": active.id, "title": "a"})
        await ActivePost.create({"user_id": inactive.id, "title": "b"})
        posts = await ActivePost.query().preload("author").order_by("id")
        assert [p.author.id if p.author else None for p in posts] == [active.id, None]  # type: ignore[attr-defined]
        assert log == [(True, True, False)]

    async def test_applied_to_the_related_query_and_its_writes(self, database: Database) -> None:
        log: list[tuple[bool, bool, bool]] = []
        ActivePost = self.models(log)
        _active, inactive = await self._data()
        post = await ActivePost.create({"user_id": inactive.id, "title": "b"})
        assert await post.related("author").query().first() is None
        assert await post.related("author").query().update({"points": 5}) == 0
        assert await post.related("author").query().delete() == 0
        assert log == [(True, False, False)] * 3
        assert await table_rows(database, "users", "points") == [{"points": 0}, {"points": 0}]

    async def test_applied_to_sub_queries(self, database: Database) -> None:
        log: list[tuple[bool, bool, bool]] = []
        ActivePost = self.models(log)
        active, inactive = await self._data()
        await ActivePost.create({"user_id": active.id, "title": "a"})
        await ActivePost.create({"user_id": inactive.id, "title": "b"})
        assert [p.title for p in await ActivePost.query().has("author")] == ["a"]  # type: ignore[attr-defined]
        posts = await ActivePost.query().with_count("author").order_by("id")
        assert [p.extras["author_count"] for p in posts] == [1, 0]
        assert log == [(False, False, True)] * 2

    async def test_not_applied_to_writes(self, database: Database) -> None:
        log: list[tuple[bool, bool, bool]] = []
        ActivePost = self.models(log)
        _active, inactive = await self._data()
        post = ActivePost(title="a")
        await post.related("author").associate(inactive)
        await post.related("author").associate(User(username="new"))
        await post.related("author").dissociate()
        assert log == []
        assert await table_rows(database, "posts", "user_id") == [{"user_id": None}]

    async def test_preload_callback_runs_after_on_query(self, database: Database) -> None:
        log: list[tuple[bool, bool, bool]] = []
        ActivePost = self.models(log)
        active, _ = await self._data()
        await ActivePost.create({"user_id": active.id, "title": "a"})
        # The callback's own (empty) group does not drop the on_query filter.
        posts = await ActivePost.query().preload("author", lambda q: q.where(lambda _: None))
        assert posts[0].author is not None  # type: ignore[attr-defined]
        assert len(log) == 1


class TestBelongsToSerialize:
    async def test_serialize_uses_the_relation_name(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        await Post.create({"user_id": virk.id, "title": "a"})
        post = (await Post.query().preload("author"))[0]
        data = post.serialize()
        assert data["author"]["id"] == virk.id
        assert data["author"]["username"] == "virk"

    async def test_serialize_as_renames_and_none_hides(self, database: Database) -> None:
        class RenamedPost(BaseModel):
            table = "posts"
            id: int = column(is_primary=True)
            user_id: int | None = column()
            author: BelongsTo[User] = belongs_to(lambda: User, serialize_as="writer")
            hidden_author: BelongsTo[User] = belongs_to(
                lambda: User, foreign_key="user_id", serialize_as=None
            )

        (virk,) = await make_users("virk")
        await RenamedPost.create({"user_id": virk.id})
        post = (await RenamedPost.query().preload("author").preload("hidden_author"))[0]
        data = post.serialize()
        assert data["writer"]["id"] == virk.id
        assert "author" not in data and "hidden_author" not in data
        assert post.hidden_author is not None

    async def test_unloaded_relation_is_absent(self, database: Database) -> None:
        post = await Post.create({"user_id": None, "title": "a"})
        assert "author" not in post.serialize()
