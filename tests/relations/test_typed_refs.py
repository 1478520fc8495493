"""Typed references (SPEC §10): relation attributes (``Post.author``) in every relation-naming
API, column attributes (``Post.title``) as column references in the builders. Each test
checks the rows the attribute form returns or writes (often against the string form) and the
errors for a relation or column of another model, raised before any query."""

from __future__ import annotations

from typing import Any

import pytest

from lucid_orm import (
    BaseModel,
    LucidError,
    belongs_to,
    column,
    has_many,
    has_many_through,
    has_one,
    many_to_many,
)
from lucid_orm.database import Database
from lucid_orm.factories import Factory
from lucid_orm.orm.columns import ColumnAttribute
from lucid_orm.relations import BelongsTo, HasMany, HasManyThrough, HasOne, ManyToMany
from tests import models
from tests.helpers import count_queries


class Country(models.Country):
    posts: HasManyThrough[Post] = has_many_through((lambda: Post, lambda: User))


class User(models.User):
    posts: HasMany[Post] = has_many(lambda: Post)
    profile: HasOne[models.Profile] = has_one(lambda: models.Profile)
    skills: ManyToMany[models.Skill] = many_to_many(lambda: models.Skill)


class Post(models.Post):
    score: int | None = column()
    author: BelongsTo[User] = belongs_to(lambda: User)
    comments: HasMany[Comment] = has_many(lambda: Comment)


class Comment(models.Comment):
    post: BelongsTo[Post] = belongs_to(lambda: Post)


class Headline(BaseModel):
    """``posts`` again, its ``title`` column under another attribute name."""

    table = "posts"
    id: int = column(is_primary=True)
    headline: str | None = column(column_name="title")


async def seed() -> tuple[Country, User, User, list[Post]]:
    country = await Country.create({"name": "nl"})
    ann = await User.create({"username": "ann", "country_id": country.id, "points": 3})
    bob = await User.create({"username": "bob", "points": 1})
    posts = [
        await Post.create({"user_id": ann.id, "title": "Alpha", "score": 5}),
        await Post.create({"user_id": ann.id, "title": "Beta", "score": 1}),
        await Post.create({"user_id": bob.id, "title": "Apex", "score": 9}),
    ]
    await Comment.create({"post_id": posts[0].id, "body": "first"})
    await Comment.create({"post_id": posts[0].id, "body": "second"})
    return country, ann, bob, posts


class TestColumnAttributes:
    async def test_class_access_is_a_reference_and_instances_read_values(
        self, database: Database
    ) -> None:
        ref: Any = Post.title
        assert isinstance(ref, ColumnAttribute)
        assert (ref.table_name, ref.column_name, ref.owner) == ("posts", "title", Post)
        assert Post().title is None  # never set: None, as before
        _, ann, _, _ = await seed()
        post = await Post.query().select("id").where("user_id", ann.id).first_or_fail()
        assert post.title is None  # not selected
        assert "title" not in post.attributes
        fetched = await Post.find_or_fail(post.id)
        assert fetched.title in ("Alpha", "Beta")

    async def test_where_family_and_order_by(self, database: Database) -> None:
        _, ann, bob, _ = await seed()
        by_attribute = await (
            Post.query()
            .where(Post.title, "like", "A%")
            .or_where(Post.score, "<", 2)
            .order_by(Post.score, "desc")
        )
        by_name = await (
            Post.query()
            .where("title", "like", "A%")
            .or_where("score", "<", 2)
            .order_by("score", "desc")
        )
        assert [p.title for p in by_attribute] == ["Apex", "Alpha", "Beta"]
        assert [p.id for p in by_attribute] == [p.id for p in by_name]
        assert [p.title for p in await Post.query().where_in(Post.user_id, [bob.id])] == ["Apex"]
        assert await Post.query().where_null(Post.title).count_rows() == 0
        assert await Post.query().where_not_null(Post.title).count_rows() == 3
        between = await Post.query().where_between(Post.score, [2, 9]).order_by(Post.id)
        assert [p.title for p in between] == ["Alpha", "Apex"]
        assert [
            p.title for p in await Post.query().where({Post.user_id: ann.id, Post.score: 1})
        ] == ["Beta"]
        assert [
            p.title for p in await Post.query().where_column(Post.score, ">", Post.user_id)
        ] == [p.title for p in await Post.query().where_column("score", ">", "user_id")]

    async def test_select_group_by_and_aggregates(self, database: Database) -> None:
        _, ann, bob, _ = await seed()
        rows = await (
            Post.query()
            .select(Post.user_id)
            .sum(Post.score)
            .group_by(Post.user_id)
            .order_by(Post.user_id)
            .pojo()
        )
        assert [(r["user_id"], int(r["sum"])) for r in rows] == [(ann.id, 6), (bob.id, 9)]
        picked = await Post.query().select(Post.id, Post.title).order_by(Post.id).first_or_fail()
        assert picked.attributes.keys() == {"id", "title"}

    async def test_a_column_name_other_than_the_attribute(self, database: Database) -> None:
        await seed()
        found = await Headline.query().where(Headline.headline, "Beta").first_or_fail()
        assert found.headline == "Beta"
        sql, _ = Headline.query().where(Headline.headline, "Beta").to_sql()
        assert "posts.title" in sql

    async def test_another_models_column_in_a_join(self, database: Database) -> None:
        await seed()
        titles = await (
            Post.query()
            .join("users", Post.user_id, User.id)
            .where(User.username, "ann")
            .order_by(Post.title)
        )
        assert [p.title for p in titles] == ["Alpha", "Beta"]

    async def test_a_column_of_a_table_the_query_does_not_name(self, database: Database) -> None:
        await seed()
        with count_queries() as q, pytest.raises(LucidError) as excinfo:
            await Post.query().where(User.username, "ann")
        assert q.count == 0
        assert '"users.username" names table "users"' in str(excinfo.value)

    async def test_update_and_increment_by_attribute(self, database: Database) -> None:
        _, _, _, posts = await seed()
        changed = await Post.query().where(Post.id, posts[1].id).update({Post.title: "Gamma"})
        assert changed == 1
        await Post.query().where(Post.id, posts[1].id).increment(Post.score, 10)
        again = await Post.find_or_fail(posts[1].id)
        assert (again.title, again.score) == ("Gamma", 11)
        with pytest.raises(LucidError):
            await Post.query().update({User.username: "x"})
        assert (await Post.find_or_fail(posts[0].id)).title == "Alpha"


class TestRelationAttributes:
    async def test_preload_and_nested_preload(self, database: Database) -> None:
        _, ann, _, _ = await seed()
        with count_queries() as q:
            posts = await Post.query().preload(Post.author).order_by(Post.id)
        assert q.count == 2
        assert [p.author.username if p.author else None for p in posts] == ["ann", "ann", "bob"]
        with count_queries() as q:
            users = await (
                User.query()
                .where(User.id, ann.id)
                .preload(User.posts, lambda query: query.preload(Post.comments).order_by(Post.id))
            )
        assert q.count == 3
        assert [[c.body for c in p.comments] for p in users[0].posts] == [
            ["first", "second"],
            [],
        ]

    async def test_related_query_and_writes(self, database: Database) -> None:
        country, ann, bob, posts = await seed()
        author = await posts[2].related(Post.author).query().first_or_fail()
        assert author.id == bob.id
        created = await ann.related(User.posts).create({"title": "Delta"})
        assert created.user_id == ann.id and created.is_persisted
        await posts[2].related(Post.author).associate(ann)
        assert (await Post.find_or_fail(posts[2].id)).user_id == ann.id
        profile = await ann.related(User.profile).create({"bio": "hi"})
        assert profile.user_id == ann.id
        skill = await models.Skill.create({"name": "sql"})
        await ann.related(User.skills).attach([skill.id])
        assert [s.name for s in await ann.related(User.skills).query()] == ["sql"]
        through = await country.related(Country.posts).query().order_by(Post.id)
        assert [p.title for p in through] == ["Alpha", "Beta", "Apex", "Delta"]

    async def test_has_family(self, database: Database) -> None:
        _, ann, bob, posts = await seed()
        with_comments = await Post.query().where_has(
            Post.comments, lambda q: q.where(Comment.body, "second")
        )
        assert [p.id for p in with_comments] == [posts[0].id]
        assert [u.id for u in await User.query().has(User.posts, ">", 1)] == [ann.id]
        without = await Post.query().doesnt_have(Post.comments).order_by(Post.id)
        assert [p.id for p in without] == [posts[1].id, posts[2].id]
        either = await (
            User.query()
            .where_has(User.posts, lambda q: q.where(Post.score, ">", 8))
            .or_where_has(User.posts, lambda q: q.where(Post.title, "Beta"))
            .order_by(User.id)
        )
        assert [u.id for u in either] == [ann.id, bob.id]
        none = await User.query().where_doesnt_have(User.posts).order_by(User.id)
        assert none == []

    async def test_with_count_and_with_aggregate(self, database: Database) -> None:
        _, ann, bob, _ = await seed()
        users = await (
            User.query()
            .with_count(User.posts)
            .with_aggregate(User.posts, lambda q: q.max(Post.score).as_("best"))
            .order_by(User.id)
        )
        assert [(u.extras["posts_count"], u.extras["best"]) for u in users] == [(2, 5), (1, 9)]
        await ann.load_count(User.posts)
        assert ann.extras["posts_count"] == 2
        await bob.load_aggregate(User.posts, lambda q: q.sum(Post.score).as_("total"))
        assert int(bob.extras["total"]) == 9

    async def test_load_and_load_once(self, database: Database) -> None:
        _, ann, _, posts = await seed()
        post = await Post.find_or_fail(posts[0].id)
        await post.load(Post.author)
        assert post.author is not None and post.author.id == ann.id
        with count_queries() as q:
            await post.load_once(Post.author)
        assert q.count == 0
        await post.load(lambda loader: loader.load(Post.comments))
        assert [c.body for c in post.comments] == ["first", "second"]

    async def test_a_relation_of_another_model(self, database: Database) -> None:
        _, ann, _, posts = await seed()
        with count_queries() as q:
            for call in (
                lambda: Post.query().preload(User.posts),
                lambda: Post.query().where_has(User.posts),
                lambda: Post.query().with_count(User.posts),
                lambda: posts[0].related(User.posts),
            ):
                with pytest.raises(LucidError) as excinfo:
                    call()
                assert excinfo.value.code == "E_UNDEFINED_RELATIONSHIP"
                assert str(excinfo.value) == (
                    '"User.posts" is a relationship of "User" model, not of "Post"'
                )
            with pytest.raises(LucidError) as excinfo:
                await posts[0].load(User.posts)
            assert excinfo.value.code == "E_UNDEFINED_RELATIONSHIP"
        assert q.count == 0
        with pytest.raises(LucidError) as excinfo:
            ann.related(Post.title)  # type: ignore[call-overload]
        assert excinfo.value.code == "E_INVALID_ARGUMENT"

    async def test_an_inherited_relation_named_by_the_base(self, database: Database) -> None:
        class Draft(Post):
            table = "posts"

        await seed()
        drafts = await Draft.query().preload(Post.author).where(Post.title, "Apex")
        assert [d.author.username if d.author else None for d in drafts] == ["bob"]


class TestFactories:
    async def test_relation_and_with_take_the_attribute(self, database: Database) -> None:
        pytest.importorskip("faker", reason="factories need the `factories` extra")
        post_factory = Factory.define(Post, lambda faker: {"title": "t"}).build()
        user_factory = (
            Factory.define(User, lambda faker: {"username": "u"})
            .relation(User.posts, lambda: post_factory)
            .build()
        )
        user = await user_factory.with_(User.posts, 2).create()
        assert [p.user_id for p in user.posts] == [user.id, user.id]
        assert await Post.query().where(Post.user_id, user.id).count_rows() == 2
        with pytest.raises(LucidError) as excinfo:
            user_factory.with_(Post.author)
        assert excinfo.value.code == "E_UNDEFINED_RELATIONSHIP"
