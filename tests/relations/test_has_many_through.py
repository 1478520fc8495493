"""has_many_through (SPEC §5): ``Country`` → ``User.country_id`` → ``Post.user_id``. Lucid's
``model_has_many_through`` groups — keys and boot errors, set relations, preload, the related
query (paginate, update/delete), the ``has`` family, ``with_count``/``with_aggregate``,
``on_query``, group limits — asserted on rows, errors and query counts on every dialect."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest

from lucid_orm import (
    BaseModel,
    LucidError,
    ModelNotFoundError,
    RelationNotLoadedError,
    belongs_to,
    column,
    has_many,
    has_many_through,
    scope,
)
from lucid_orm.database import Database
from lucid_orm.orm.relations import base as relations_base
from lucid_orm.orm.relations.has_many_through import HasManyThroughQueryBuilder
from lucid_orm.relations import BelongsTo, HasMany, HasManyThrough
from tests import models
from tests.helpers import count_queries, flat


class User(models.BaseUser):
    country_id: int | None = column()
    created_at: datetime | None = column.date_time()


class Post(models.Post):
    is_published: bool | None = column()
    score: int | None = column()
    created_at: datetime | None = column.date_time()

    author: BelongsTo[User] = belongs_to(lambda: User)
    comments: HasMany[Comment] = has_many(lambda: Comment)

    @scope
    def adonis_only(query: Any) -> None:
        query.where("title", "Adonis 101")


class Comment(models.Comment):
    # A self relation: the comments of the same post (related table == parent table).
    siblings: HasManyThrough[Comment] = has_many_through(
        (lambda: Comment, lambda: Post),
        local_key="post_id",
        foreign_key="id",
        through_local_key="id",
        through_foreign_key="post_id",
    )


class Country(models.Country):
    posts: HasManyThrough[Post] = has_many_through((lambda: Post, lambda: User))
    published_posts: HasManyThrough[Post] = has_many_through(
        lambda: Post,
        through=lambda: User,
        on_query=lambda q: q.where("is_published", True),
    )


# The same tables under other attribute names, with every key option spelled out: keys are
# attribute names, the SQL uses column names.
class Citizen(BaseModel):
    table = "users"
    uid: int = column(is_primary=True, column_name="id")
    nation_uid: int | None = column(column_name="country_id")


class Article(BaseModel):
    table = "posts"
    uid: int = column(is_primary=True, column_name="id")
    writer_uid: int | None = column(column_name="user_id")
    headline: str | None = column(column_name="title")


class Nation(BaseModel):
    table = "countries"
    uid: int = column(is_primary=True, column_name="id")
    label: str | None = column(column_name="name")

    articles: HasManyThrough[Article] = has_many_through(
        (lambda: Article, lambda: Citizen),
        foreign_key="nation_uid",
        local_key="uid",
        through_foreign_key="writer_uid",
        through_local_key="uid",
        serialize_as="stories",
    )


# -- data ----------------------------------------------------------------------------------------
@dataclass
class World:
    countries: dict[str, int]
    users: dict[str, int]
    posts: dict[str, int]


COUNTRIES = ["India", "Switzerland", "Nowhere"]
USERS = {
    "virk": "India",
    "nikk": "India",
    "romain": "Switzerland",
    "joe": "Switzerland",
    "stateless": None,
}
POSTS: list[tuple[str, str, bool]] = [
    ("Adonis 101", "virk", False),
    ("Lucid 101", "virk", True),
    ("Adonis5", "nikk", True),
    ("Validations 101", "romain", False),
    ("Assets 101", "joe", False),
    ("Orphan 101", "stateless", True),
]


async def seed(
    database: Database,
    countries: list[str] = COUNTRIES,
    users: dict[str, str | None] | None = None,
    posts: list[tuple[str, str, bool]] | None = None,
    post_extra: dict[str, dict[str, Any]] | None = None,
) -> World:
    """Insert countries, users (name → country) and posts (title, author, published); ids are
    read back by name, never assumed."""
    users = USERS if users is None else users
    posts = POSTS if posts is None else posts
    await database.table("countries").multi_insert([{"name": n} for n in countries])
    country_ids = {
        r["name"]: r["id"] for r in await database.from_("countries").select("id", "name")
    }
    if users:
        await database.table("users").multi_insert(
            [{"username": u, "country_id": country_ids[c] if c else None} for u, c in users.items()]
        )
    user_ids = {
        r["username"]: r["id"] for r in await database.from_("users").select("id", "username")
    }
    if posts:
        rows = []
        for title, author, published in posts:
            row: dict[str, Any] = {
                "title": title,
                "user_id": user_ids[author],
                "is_published": published,
            }
            row.update((post_extra or {}).get(title, {}))
            rows.append(row)
        await database.table("posts").multi_insert(rows)
    post_ids = {r["title"]: r["id"] for r in await database.from_("posts").select("id", "title")}
    return World(country_ids, user_ids, post_ids)


async def post_titles(database: Database) -> dict[str, Any]:
    """Every post's title by id, read straight from the table."""
    rows = await database.from_("posts").select("id", "title", "score")
    return {r["id"]: (r["title"], r["score"]) for r in rows}


def titles(rows: Any) -> list[str | None]:
    return [r.title for r in rows]


def assert_lucid_error(exc: BaseException, code: str, message: str) -> None:
    assert isinstance(exc, LucidError)
    assert exc.code == code
    assert str(exc) == message


# -- boot: keys and their errors ------------------------------------------------------------------
class TestHasManyThroughBoot:
    """Dialect-free: keys resolve (and fail) at ``boot()``, without a database."""

    def test_computes_default_keys(self) -> None:
        relation = Country.get_relation("posts")
        relation.boot()
        assert isinstance(relation, HasManyThrough)
        assert relation.booted
        assert relation.type == "hasManyThrough"
        assert relation.relation_name == "posts"
        assert relation.serialize_as == "posts"
        assert relation.model is Country
        assert relation.related_model() is Post
        assert relation.through_model() is User
        assert (relation.local_key, relation.local_key_column_name) == ("id", "id")
        assert (relation.foreign_key, relation.foreign_key_column_name) == (
            "country_id",
            "country_id",
        )
        assert (relation.through_local_key, relation.through_local_key_column_name) == ("id", "id")
        assert (relation.through_foreign_key, relation.through_foreign_key_column_name) == (
            "user_id",
            "user_id",
        )

    def test_custom_keys_are_attributes_resolved_to_column_names(self) -> None:
        relation = Nation.get_relation("articles")
        relation.boot()
        assert (relation.local_key, relation.local_key_column_name) == ("uid", "id")
        assert (relation.foreign_key, relation.foreign_key_column_name) == (
            "nation_uid",
            "country_id",
        )
        assert (relation.through_local_key, relation.through_local_key_column_name) == (
            "uid",
            "id",
        )
        assert (relation.through_foreign_key, relation.through_foreign_key_column_name) == (
            "writer_uid",
            "user_id",
        )
        assert relation.serialize_as == "stories"

    def test_through_keyword_form_equals_the_tuple_form(self) -> None:
        tuple_form = Country.get_relation("posts")
        keyword_form = Country.get_relation("published_posts")
        keyword_form.boot()
        tuple_form.boot()
        assert keyword_form.through_model() is User
        assert keyword_form.related_model() is Post
        for key in (
            "local_key",
            "foreign_key",
            "through_local_key",
            "through_foreign_key",
            "foreign_key_column_name",
            "through_foreign_key_column_name",
        ):
            assert getattr(keyword_form, key) == getattr(tuple_form, key)

    def test_declaration_needs_both_models(self) -> None:
        with pytest.raises(LucidError) as missing:
            has_many_through(lambda: Post)
        assert "through" in str(missing.value)
        with pytest.raises(LucidError):
            has_many_through((lambda: Post, lambda: User), through=lambda: User)
        with pytest.raises(LucidError):
            has_many_through((lambda: Post,))  # type: ignore[arg-type]

    @pytest.mark.parametrize(
        ("options", "message"),
        [
            (
                {"local_key": "uid"},
                '"Land.posts" expects "uid" to exist on "Land" model, but is missing',
            ),
            (
                {},
                '"Land.posts" expects "land_id" to exist on "User" model, but is missing',
            ),
            (
                {"foreign_key": "country_id", "through_local_key": "uid"},
                '"Land.posts" expects "uid" to exist on "User" model, but is missing',
            ),
            (
                {"foreign_key": "country_id", "through_foreign_key": "writer_id"},
                '"Land.posts" expects "writer_id" to exist on "Post" model, but is missing',
            ),
        ],
        ids=["local_key", "foreign_key", "through_local_key", "through_foreign_key"],
    )
    def test_missing_key_raises_at_boot(self, options: dict[str, str], message: str) -> None:
        class Land(BaseModel):
            id: int = column(is_primary=True)
            posts: HasManyThrough[Post] = has_many_through((lambda: Post, lambda: User), **options)

        relation = Land.get_relation("posts")  # defining the class did not raise
        assert not relation.booted
        with pytest.raises(LucidError) as exc:
            relation.boot()
        assert_lucid_error(exc.value, "E_MISSING_MODEL_ATTRIBUTE", message)

    async def test_missing_key_raises_on_first_use(self, database: Database) -> None:
        class Land(BaseModel):
            id: int = column(is_primary=True)
            posts: HasManyThrough[Post] = has_many_through((lambda: Post, lambda: User))

        message = '"Land.posts" expects "land_id" to exist on "User" model, but is missing'
        for use in (
            lambda: Land.query().preload("posts"),
            lambda: Land.query().with_count("posts"),
            lambda: Land.query().has("posts"),
            lambda: Land(id=1).related("posts"),
        ):
            with pytest.raises(LucidError) as exc:
                use()
            assert_lucid_error(exc.value, "E_MISSING_MODEL_ATTRIBUTE", message)

    def test_through_foreign_key_default_comes_from_the_through_model(self) -> None:
        class Member(BaseModel):
            table = "users"
            id: int = column(is_primary=True)
            country_id: int | None = column()

        class Region(BaseModel):
            table = "countries"
            id: int = column(is_primary=True)
            posts: HasManyThrough[Post] = has_many_through(
                (lambda: Post, lambda: Member), foreign_key="country_id"
            )

        relation = Region.get_relation("posts")
        with pytest.raises(LucidError) as exc:
            relation.boot()
        assert_lucid_error(
            exc.value,
            "E_MISSING_MODEL_ATTRIBUTE",
            '"Region.posts" expects "member_id" to exist on "Post" model, but is missing',
        )

    def test_relation_is_cloned_with_its_options_onto_subclasses(self) -> None:
        def hook(q: Any) -> None:
            q.where("is_published", True)

        class BaseNation(BaseModel):
            table = "countries"
            uid: int = column(is_primary=True, column_name="id")
            articles: HasManyThrough[Article] = has_many_through(
                (lambda: Article, lambda: Citizen),
                foreign_key="nation_uid",
                local_key="uid",
                through_foreign_key="writer_uid",
                through_local_key="uid",
                serialize_as="stories",
                on_query=hook,
                meta={"x": 1},
            )

        class SubNation(BaseNation):
            pass

        relation = SubNation.get_relation("articles")
        relation.boot()
        assert relation is not BaseNation.get_relation("articles")
        assert relation.model is SubNation
        assert BaseNation.get_relation("articles").model is BaseNation
        assert relation.foreign_key_column_name == "country_id"
        assert relation.through_foreign_key_column_name == "user_id"
        assert relation.local_key_column_name == "id"
        assert relation.through_local_key_column_name == "id"
        assert relation.serialize_as == "stories"
        assert relation.on_query is hook
        assert relation.meta == {"x": 1}

    def test_reading_an_unloaded_relation_raises(self) -> None:
        country = Country(name="India")
        with pytest.raises(RelationNotLoadedError) as exc:
            country.posts
        assert isinstance(exc.value, AttributeError)
        assert exc.value.code == "E_RELATION_NOT_LOADED"
        assert str(exc.value) == (
            'Relation "posts" of "Country" is not loaded: use preload("posts") or '
            'await country.load("posts")'
        )
        assert not hasattr(country, "posts")

    def test_relation_writes_are_not_supported(self) -> None:
        country = Country(id=1, name="India")
        client = country.related("posts")
        for method in (
            "save",
            "save_many",
            "create",
            "create_many",
            "first_or_create",
            "update_or_create",
            "fetch_or_create_many",
            "update_or_create_many",
            "associate",
            "attach",
        ):
            assert not hasattr(client, method), method
        relation = Country.get_relation("posts")
        with pytest.raises(LucidError) as exc:
            relation.hydrate_for_persistence(country, Post(title="x"))
        assert_lucid_error(
            exc.value,
            "E_RUNTIME_EXCEPTION",
            'Cannot persist through a hasManyThrough relationship "(posts)": create the rows '
            "through the intermediate model",
        )

    async def test_sub_query_cannot_be_executed(self, database: Database) -> None:
        relation = Country.get_relation("posts")
        relation.boot()
        for run in (
            lambda s: s.exec(),
            lambda s: s.first(),
            lambda s: s.first_or_fail(),
            lambda s: s.paginate(1),
            lambda s: s.update({"title": "x"}),
            lambda s: s.delete(),
        ):
            sub = relation.sub_query(database.connection())
            with count_queries() as q, pytest.raises(LucidError) as exc:
                await run(sub)
            assert q.count == 0
            assert_lucid_error(
                exc.value, "E_RUNTIME_EXCEPTION", "Cannot execute relationship subqueries"
            )


# -- set relations ---------------------------------------------------------------------------------
class TestHasManyThroughSetRelations:
    def test_set_and_push_related(self) -> None:
        relation = Country.get_relation("posts")
        country, post, post1 = Country(), Post(), Post()
        relation.set_related(country, [post])
        assert country.posts == [post]
        relation.push_related(country, [post1])
        assert country.posts == [post, post1]
        relation.push_related(country, post)
        assert country.posts == [post, post1, post]

    def test_set_related_rejects_a_non_list_and_wrong_models(self) -> None:
        relation = Country.get_relation("posts")
        with pytest.raises(LucidError) as exc:
            relation.set_related(Country(), Post())
        assert_lucid_error(
            exc.value,
            "E_RUNTIME_EXCEPTION",
            '"Country.posts" must be a list when setting "hasManyThrough" relationship',
        )
        with pytest.raises(LucidError) as wrong:
            relation.set_related(Country(), [User()])
        assert wrong.value.code == "E_INVALID_ARGUMENT"

    def test_set_related_for_many_matches_on_the_through_key(self) -> None:
        relation = Country.get_relation("posts")
        countries = [Country(id=1), Country(id=2), Country(id=3)]
        posts = [Post(user_id=1), Post(user_id=2), Post(user_id=3)]
        for post, through in zip(posts, [1, 2, 1], strict=True):
            post.extras["through_country_id"] = through
        relation.set_related_for_many(countries, posts)
        assert countries[0].posts == [posts[0], posts[2]]
        assert countries[1].posts == [posts[1]]
        assert countries[2].posts == []


# -- preload ---------------------------------------------------------------------------------------
class TestHasManyThroughPreload:
    async def test_preload_runs_one_query_for_every_parent(self, database: Database) -> None:
        world = await seed(database)
        with count_queries() as q:
            countries = await Country.query().preload("posts").order_by("id")
        assert q.count == 2
        by_name = {c.name: c for c in countries}
        assert sorted(titles(by_name["India"].posts)) == ["Adonis 101", "Adonis5", "Lucid 101"]
        assert sorted(titles(by_name["Switzerland"].posts)) == ["Assets 101", "Validations 101"]
        assert by_name["Nowhere"].posts == []
        for name in ("India", "Switzerland"):
            for post in by_name[name].posts:
                assert isinstance(post, Post)
                assert post.extras == {"through_country_id": world.countries[name]}
                assert post.is_persisted

    async def test_preload_with_custom_keys_and_column_names(self, database: Database) -> None:
        world = await seed(database)
        with count_queries() as q:
            nations = await Nation.query().preload("articles").order_by("id")
        assert q.count == 2
        by_label = {n.label: n for n in nations}
        india = by_label["India"]
        assert sorted(a.headline for a in india.articles) == ["Adonis 101", "Adonis5", "Lucid 101"]
        assert by_label["Nowhere"].articles == []
        article = india.articles[0]
        assert isinstance(article, Article)
        assert article.extras == {"through_country_id": world.countries["India"]}
        assert article.writer_uid in {world.users["virk"], world.users["nikk"]}

    async def test_load_on_an_instance(self, database: Database) -> None:
        world = await seed(database)
        country = await Country.find_or_fail(world.countries["Switzerland"])
        with count_queries() as q:
            await country.load("posts")
            await country.load_once("posts")
        assert q.count == 1
        assert sorted(titles(country.posts)) == ["Assets 101", "Validations 101"]
        nowhere = await Country.find_or_fail(world.countries["Nowhere"])
        await nowhere.load("posts", lambda q: q.where("title", "Adonis 101"))
        assert nowhere.posts == []

    async def test_load_an_unpersisted_instance_raises(self, database: Database) -> None:
        with count_queries() as q, pytest.raises(LucidError) as exc:
            await Country(name="x").load("posts")
        assert q.count == 0
        assert_lucid_error(
            exc.value,
            "E_RUNTIME_EXCEPTION",
            "Cannot lazy load relationship for an unpersisted model instance",
        )

    async def test_cherry_picked_columns_keep_the_through_key(self, database: Database) -> None:
        world = await seed(database)
        countries = await Country.query().preload(
            "posts", lambda q: q.select("title").order_by("title")
        )
        india = next(c for c in countries if c.name == "India")
        assert [p.attributes for p in india.posts] == [
            {"title": "Adonis 101"},
            {"title": "Adonis5"},
            {"title": "Lucid 101"},
        ]
        assert [p.extras for p in india.posts] == [
            {"through_country_id": world.countries["India"]}
        ] * 3

    async def test_unselected_local_key_raises(self, database: Database) -> None:
        await seed(database)
        with pytest.raises(LucidError) as exc:
            await Country.query().select("name").preload("posts")
        assert_lucid_error(
            exc.value,
            "E_MISSING_MODEL_ATTRIBUTE",
            'Cannot preload "posts", value of "Country.id" is undefined',
        )

    async def test_no_query_and_no_callback_without_parents(self, database: Database) -> None:
        def callback(q: Any) -> None:
            raise AssertionError("not expected to run")

        with count_queries() as q:
            countries = await Country.query().preload("posts", callback)
        assert countries == []
        assert q.count == 1

    async def test_parents_without_rows_get_an_empty_list(self, database: Database) -> None:
        await seed(database, posts=[])
        with count_queries() as q:
            countries = await Country.query().preload("posts.comments")
        # No posts: the nested comments preload has no parents and runs no query.
        assert q.count == 2
        assert [c.posts for c in countries] == [[], [], []]

    async def test_nested_preloads_one_query_per_level(self, database: Database) -> None:
        world = await seed(database)
        await database.table("comments").multi_insert(
            [
                {"post_id": world.posts["Adonis 101"], "body": "nice"},
                {"post_id": world.posts["Adonis 101"], "body": "thanks"},
                {"post_id": world.posts["Assets 101"], "body": "cool"},
            ]
        )
        with count_queries() as q:
            dotted = await Country.query().preload("posts.comments").order_by("id")
        assert q.count == 3
        with count_queries() as q:
            nested = (
                await Country.query()
                .order_by("id")
                .preload("posts", lambda p: p.preload("comments").preload("author"))
            )
        assert q.count == 4
        for countries in (dotted, nested):
            posts = {p.title: p for c in countries for p in c.posts}
            assert sorted(c.body for c in posts["Adonis 101"].comments) == ["nice", "thanks"]
            assert [c.body for c in posts["Assets 101"].comments] == ["cool"]
            assert posts["Lucid 101"].comments == []
        posts = {p.title: p for c in nested for p in c.posts}
        assert posts["Adonis5"].author.username == "nikk"

    async def test_preload_callback_or_where_cannot_escape(self, database: Database) -> None:
        await seed(database)
        countries = await Country.query().preload(
            "posts", lambda q: q.where("title", "Adonis 101").or_where("title", "Orphan 101")
        )
        by_name = {c.name: c for c in countries}
        assert titles(by_name["India"].posts) == ["Adonis 101"]
        assert by_name["Switzerland"].posts == []
        assert by_name["Nowhere"].posts == []

    async def test_unqualified_columns_refer_to_the_related_table(self, database: Database) -> None:
        # posts and users both have id and created_at: no "ambiguous column" error.
        world = await seed(
            database,
            post_extra={
                "Adonis 101": {"created_at": datetime(2024, 1, 2)},
                "Lucid 101": {"created_at": datetime(2024, 1, 1)},
                "Adonis5": {"created_at": datetime(2024, 1, 3)},
            },
        )
        countries = await Country.query().preload(
            "posts",
            lambda q: (
                q.select("id", "title", "created_at")
                .where("id", "!=", world.posts["Adonis5"])
                .where_not_null("created_at")
                .order_by("created_at", "desc")
            ),
        )
        india = next(c for c in countries if c.name == "India")
        assert titles(india.posts) == ["Adonis 101", "Lucid 101"]
        assert [p.id for p in india.posts] == [world.posts["Adonis 101"], world.posts["Lucid 101"]]

    async def test_filter_on_a_through_table_column(self, database: Database) -> None:
        await seed(database)
        countries = await Country.query().preload(
            "posts", lambda q: q.where("users.username", "virk").order_by("title")
        )
        india = next(c for c in countries if c.name == "India")
        assert titles(india.posts) == ["Adonis 101", "Lucid 101"]

    async def test_null_and_shared_parent_keys(self, database: Database) -> None:
        world = await seed(database)
        await database.table("comments").multi_insert(
            [
                {"post_id": world.posts["Adonis 101"], "body": "a"},
                {"post_id": world.posts["Adonis 101"], "body": "b"},
                {"post_id": world.posts["Lucid 101"], "body": "c"},
                {"post_id": None, "body": "loose"},
            ]
        )
        with count_queries() as q:
            comments = await Comment.query().preload("siblings").order_by("body")
        assert q.count == 2
        # The two comments sharing a post share the key: it is sent once.
        assert flat(q.bindings[1]).count(world.posts["Adonis 101"]) == 1
        by_body = {c.body: c for c in comments}
        assert sorted(s.body for s in by_body["a"].siblings) == ["a", "b"]
        assert sorted(s.body for s in by_body["b"].siblings) == ["a", "b"]
        assert [s.body for s in by_body["c"].siblings] == ["c"]
        assert by_body["loose"].siblings == []
        assert by_body["a"].siblings[0].extras == {"through_id": world.posts["Adonis 101"]}

    async def test_paginate_inside_preload_raises(self, database: Database) -> None:
        await seed(database)
        with pytest.raises(LucidError) as exc:
            await Country.query().preload("posts", lambda q: q.paginate(1))
        assert_lucid_error(
            exc.value,
            "E_RUNTIME_EXCEPTION",
            'Cannot paginate relationship "posts" during preload',
        )

    async def test_undefined_relation(self, database: Database) -> None:
        with pytest.raises(LucidError) as exc:
            Country.query().preload("post")
        assert_lucid_error(
            exc.value,
            "E_UNDEFINED_RELATIONSHIP",
            '"post" is not defined as a relationship on "Country" model',
        )

    async def test_scopes_apply_during_preload(self, database: Database) -> None:
        world = await seed(database)
        scoped = (
            await Country.query()
            .where("id", world.countries["India"])
            .preload("posts", lambda q: q.apply(lambda s: s.adonis_only()))
            .first_or_fail()
        )
        plain = await Country.query().where("id", world.countries["India"]).preload("posts").first()
        assert titles(scoped.posts) == ["Adonis 101"]
        assert plain is not None and len(plain.posts) == 3

    async def test_preload_runs_in_the_parent_query_transaction(self, database: Database) -> None:
        world = await seed(database)
        async with database.transaction() as trx:
            await trx.table("posts").insert(
                {"title": "Draft", "user_id": world.users["romain"], "is_published": False}
            )
            countries = await Country.query(client=trx).preload("posts")
            swiss = next(c for c in countries if c.name == "Switzerland")
            assert "Draft" in titles(swiss.posts)
            await trx.rollback()
        countries = await Country.query().preload("posts")
        swiss = next(c for c in countries if c.name == "Switzerland")
        assert "Draft" not in titles(swiss.posts)

    async def test_parent_keys_are_chunked(
        self, database: Database, dialect: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        await seed(database)
        chunks = relations_base._chunks
        monkeypatch.setattr(relations_base, "PRELOAD_CHUNK", 2)
        monkeypatch.setattr(relations_base, "_chunks", lambda values, size=2: chunks(values, 2))
        with count_queries() as q:
            countries = await Country.query().preload("posts")
        # PostgreSQL (an array) and SQLite (JSON) send the keys as one parameter.
        assert q.count == (1 + 2 if dialect == "mysql" else 1 + 1)
        by_name = {c.name: c for c in countries}
        assert len(by_name["India"].posts) == 3
        assert len(by_name["Switzerland"].posts) == 2
        assert by_name["Nowhere"].posts == []


# -- the related query -----------------------------------------------------------------------------
class TestHasManyThroughQueryBuilder:
    async def test_related_query_returns_the_parent_rows(self, database: Database) -> None:
        world = await seed(database)
        country = await Country.find_or_fail(world.countries["India"])
        with count_queries() as q:
            posts = await country.related("posts").query().order_by("id")
        assert q.count == 1
        assert titles(posts) == ["Adonis 101", "Lucid 101", "Adonis5"]
        assert all(isinstance(p, Post) for p in posts)
        assert {tuple(p.extras.items()) for p in posts} == {
            (("through_country_id", world.countries["India"]),)
        }
        nowhere = await Country.find_or_fail(world.countries["Nowhere"])
        assert await nowhere.related("posts").query() == []

    async def test_query_builder_type_and_flags(self, database: Database) -> None:
        world = await seed(database)
        country = await Country.find_or_fail(world.countries["India"])
        query = country.related("posts").query()
        assert isinstance(query, HasManyThroughQueryBuilder)
        assert query.is_related_query is True
        assert query.is_related_preload_query is False
        assert query.is_related_sub_query is False

    async def test_or_where_cannot_escape_the_relation(self, database: Database) -> None:
        world = await seed(database)
        country = await Country.find_or_fail(world.countries["India"])
        posts = (
            await country.related("posts")
            .query()
            .where("title", "Adonis 101")
            .or_where("title", "Assets 101")
            .or_where("title", "Orphan 101")
        )
        assert titles(posts) == ["Adonis 101"]
        grouped = (
            await country.related("posts")
            .query()
            .where(lambda q: q.where("is_published", True).or_where("title", "Assets 101"))
            .order_by("title")
        )
        assert titles(grouped) == ["Adonis5", "Lucid 101"]

    async def test_first_and_first_or_fail(self, database: Database) -> None:
        world = await seed(database)
        swiss = await Country.find_or_fail(world.countries["Switzerland"])
        with count_queries() as q:
            first = await swiss.related("posts").query().order_by("title").first()
        assert q.count == 1
        assert first is not None and first.title == "Assets 101"
        assert first.extras == {"through_country_id": world.countries["Switzerland"]}
        nowhere = await Country.find_or_fail(world.countries["Nowhere"])
        assert await nowhere.related("posts").query().first() is None
        with pytest.raises(ModelNotFoundError) as exc:
            await nowhere.related("posts").query().first_or_fail()
        assert exc.value.code == "E_ROW_NOT_FOUND"

    async def test_count_aggregate(self, database: Database) -> None:
        world = await seed(database)
        country = await Country.find_or_fail(world.countries["India"])
        rows = await country.related("posts").query().count("* as total")
        assert len(rows) == 1
        assert int(rows[0].extras["total"]) == 3
        assert await country.related("posts").query().count_rows() == 3
        assert await country.related("posts").query().where("title", "Nope").exists() is False
        assert await country.related("posts").query().exists() is True

    async def test_select_group_by_and_count(self, database: Database) -> None:
        world = await seed(
            database,
            posts=[*POSTS, ("Adonis 101", "nikk", True), ("Assets 101", "joe", True)],
        )
        country = await Country.find_or_fail(world.countries["India"])
        rows = (
            await country.related("posts")
            .query()
            .select("title")
            .group_by("posts.title")
            .count("* as total")
            .order_by("posts.title")
        )
        assert [(r.title, int(r.extras["total"])) for r in rows] == [
            ("Adonis 101", 2),
            ("Adonis5", 1),
            ("Lucid 101", 1),
        ]

    async def test_cherry_pick_columns(self, database: Database) -> None:
        world = await seed(database)
        country = await Country.find_or_fail(world.countries["Switzerland"])
        posts = await country.related("posts").query().select("id", "title").order_by("title")
        assert [p.attributes for p in posts] == [
            {"id": world.posts["Assets 101"], "title": "Assets 101"},
            {"id": world.posts["Validations 101"], "title": "Validations 101"},
        ]

    async def test_clone_is_an_independent_related_query(self, database: Database) -> None:
        world = await seed(database)
        country = await Country.find_or_fail(world.countries["India"])
        query = country.related("posts").query().where("is_published", True)
        cloned = query.clone()
        assert isinstance(cloned, HasManyThroughQueryBuilder)
        cloned.where("title", "Adonis5")
        assert titles(await cloned) == ["Adonis5"]
        assert sorted(titles(await query)) == ["Adonis5", "Lucid 101"]

    async def test_scopes_on_the_related_query(self, database: Database) -> None:
        world = await seed(database)
        country = await Country.find_or_fail(world.countries["India"])
        scoped = await country.related("posts").query().apply(lambda s: s.adonis_only())
        assert titles(scoped) == ["Adonis 101"]
        assert len(await country.related("posts").query()) == 3

    async def test_absent_parent_key_raises(self, database: Database) -> None:
        world = await seed(database)
        country = await Country.query().select("name").where("id", world.countries["India"]).first()
        assert country is not None
        with count_queries() as q, pytest.raises(LucidError) as exc:
            await country.related("posts").query()
        assert q.count == 0
        assert_lucid_error(
            exc.value,
            "E_MISSING_MODEL_ATTRIBUTE",
            'Cannot select "posts", value of "Country.id" is undefined',
        )

    async def test_related_query_uses_the_parent_transaction(self, database: Database) -> None:
        world = await seed(database)
        async with database.transaction() as trx:
            country = await Country.find_or_fail(world.countries["Nowhere"], client=trx)
            assert country.trx is trx
            await trx.table("users").insert({"username": "ghost", "country_id": country.id})
            ghost = (await trx.from_("users").select("id").where("username", "ghost"))[0]["id"]
            await trx.table("posts").insert({"title": "Hidden", "user_id": ghost})
            assert titles(await country.related("posts").query()) == ["Hidden"]
            await trx.rollback()
        assert await database.from_("posts").where("title", "Hidden") == []

    async def test_null_parent_key_returns_nothing_without_a_query(
        self, database: Database
    ) -> None:
        world = await seed(database)
        await database.table("comments").multi_insert(
            [{"post_id": None, "body": "loose"}, {"post_id": world.posts["Adonis5"], "body": "x"}]
        )
        loose = await Comment.query().where("body", "loose").first_or_fail()
        with count_queries() as q:
            assert await loose.related("siblings").query() == []
            assert await loose.related("siblings").query().first() is None
            assert await loose.related("siblings").query().count_rows() == 0
            assert (await loose.related("siblings").query().paginate(1, 5)).total == 0
            assert await loose.related("siblings").query().update({"body": "y"}) == 0
            assert await loose.related("siblings").query().increment("id", 1) == 0
            assert await loose.related("siblings").query().delete() == 0
        assert q.count == 0
        assert len(await database.from_("comments")) == 2

    async def test_aggregates_and_has_inside_a_preload_callback(self, database: Database) -> None:
        world = await seed(database)
        await database.table("comments").multi_insert(
            [
                {"post_id": world.posts["Adonis 101"], "body": "a"},
                {"post_id": world.posts["Adonis 101"], "body": "b"},
                {"post_id": world.posts["Assets 101"], "body": "c"},
            ]
        )
        with count_queries() as q:
            countries = (
                await Country.query()
                .preload("posts", lambda p: p.with_count("comments").has("comments"))
                .order_by("id")
            )
        assert q.count == 2
        assert [
            sorted((p.title, int(p.extras["comments_count"])) for p in c.posts) for c in countries
        ] == [[("Adonis 101", 2)], [("Assets 101", 1)], []]
        assert countries[0].posts[0].extras["through_country_id"] == world.countries["India"]

    async def test_preload_on_a_paginated_parent_query(self, database: Database) -> None:
        await seed(database)
        with count_queries() as q:
            page = await Country.query().preload("posts").order_by("id").paginate(1, 2)
        assert q.count == 3
        assert page.total == 3
        assert [(c.name, len(c.posts)) for c in page] == [("India", 3), ("Switzerland", 2)]


# -- paginate --------------------------------------------------------------------------------------
class TestHasManyThroughPaginate:
    async def test_paginate_the_related_query(self, database: Database) -> None:
        world = await seed(database)
        country = await Country.find_or_fail(world.countries["India"])
        with count_queries() as q:
            page = await country.related("posts").query().order_by("id").paginate(1, 2)
        assert q.count == 2
        page.base_url("/posts")
        assert titles(page) == ["Adonis 101", "Lucid 101"]
        assert all(isinstance(p, Post) for p in page)
        assert "total" not in page[0].extras
        assert page.total == 3
        assert (page.per_page, page.current_page, page.last_page) == (2, 1, 2)
        assert page.has_pages and page.has_more_pages and not page.is_empty
        assert page.get_meta() == {
            "total": 3,
            "per_page": 2,
            "current_page": 1,
            "last_page": 2,
            "first_page": 1,
            "first_page_url": "/posts?page=1",
            "last_page_url": "/posts?page=2",
            "next_page_url": "/posts?page=2",
            "previous_page_url": None,
        }
        second = await country.related("posts").query().order_by("id").paginate(2, 2)
        assert titles(second) == ["Adonis5"]
        assert second.total == 3 and not second.has_more_pages

    async def test_paginate_with_constraints_counts_only_matches(self, database: Database) -> None:
        world = await seed(database)
        country = await Country.find_or_fail(world.countries["India"])
        page = (
            await country.related("posts")
            .query()
            .where("is_published", True)
            .or_where("title", "Assets 101")
            .paginate(1, 10)
        )
        assert page.total == 2
        assert sorted(titles(page)) == ["Adonis5", "Lucid 101"]
        nowhere = await Country.find_or_fail(world.countries["Nowhere"])
        empty = await nowhere.related("posts").query().paginate(1, 10)
        assert empty.total == 0 and empty.is_empty


# -- update / delete -------------------------------------------------------------------------------
class TestHasManyThroughUpdateDelete:
    async def test_update_touches_only_the_parent_rows(self, database: Database) -> None:
        world = await seed(database)
        before = await post_titles(database)
        country = await Country.find_or_fail(world.countries["Switzerland"])
        with count_queries() as q:
            affected = await country.related("posts").query().update({"score": 7})
        assert q.count == 1
        assert affected == 2
        after = await post_titles(database)
        swiss = {world.posts["Validations 101"], world.posts["Assets 101"]}
        for post_id, (title, score) in after.items():
            assert score == (7 if post_id in swiss else before[post_id][1]), title

    async def test_a_row_lock_stays_on_the_rows_written(
        self, database: Database, dialect: str
    ) -> None:
        world = await seed(database)
        country = await Country.find_or_fail(world.countries["Switzerland"])
        query = country.related("posts").query().for_update()
        with count_queries() as q:
            affected = await query.update({"score": 7})
        assert affected == 2
        # SQLite has no row locks (its transactions hold the write lock).
        assert ("FOR UPDATE" in q.sqls[0].upper()) == (dialect != "sqlite")

    async def test_update_with_constraints_cannot_escape(self, database: Database) -> None:
        world = await seed(database)
        country = await Country.find_or_fail(world.countries["India"])
        affected = (
            await country.related("posts")
            .query()
            .where("title", "Adonis 101")
            .or_where("title", "Assets 101")
            .or_where("title", "Orphan 101")
            .update("score", 1)
        )
        assert affected == 1
        scores = {t: s for t, s in (await post_titles(database)).values()}
        assert scores == {
            "Adonis 101": 1,
            "Lucid 101": None,
            "Adonis5": None,
            "Validations 101": None,
            "Assets 101": None,
            "Orphan 101": None,
        }

    async def test_update_keeps_order_and_limit(self, database: Database) -> None:
        world = await seed(database)
        country = await Country.find_or_fail(world.countries["India"])
        affected = (
            await country.related("posts")
            .query()
            .order_by("title", "desc")
            .limit(1)
            .update({"score": 9})
        )
        assert affected == 1
        scores = {t: s for t, s in (await post_titles(database)).values()}
        assert [t for t, s in scores.items() if s == 9] == ["Lucid 101"]

    async def test_update_filtered_on_a_through_column(self, database: Database) -> None:
        world = await seed(database)
        country = await Country.find_or_fail(world.countries["India"])
        affected = (
            await country.related("posts")
            .query()
            .where("users.username", "nikk")
            .update({"score": 5})
        )
        assert affected == 1
        scores = {t: s for t, s in (await post_titles(database)).values()}
        assert scores["Adonis5"] == 5
        assert [s for t, s in scores.items() if t != "Adonis5"] == [None] * 5

    async def test_increment_and_decrement_touch_only_the_parent_rows(
        self, database: Database
    ) -> None:
        world = await seed(database)
        await database.from_("posts").update({"score": 10})
        country = await Country.find_or_fail(world.countries["Switzerland"])
        assert await country.related("posts").query().increment("score", 5) == 2
        assert (
            await country.related("posts").query().where("title", "Assets 101").decrement("score")
            == 1
        )
        scores = {t: s for t, s in (await post_titles(database)).values()}
        assert scores == {
            "Adonis 101": 10,
            "Lucid 101": 10,
            "Adonis5": 10,
            "Validations 101": 15,
            "Assets 101": 14,
            "Orphan 101": 10,
        }

    async def test_delete_touches_only_the_parent_rows(self, database: Database) -> None:
        world = await seed(database)
        country = await Country.find_or_fail(world.countries["India"])
        with count_queries() as q:
            deleted = await country.related("posts").query().where("is_published", True).delete()
        assert q.count == 1
        assert deleted == 2
        remaining = sorted(t for t, _ in (await post_titles(database)).values())
        assert remaining == ["Adonis 101", "Assets 101", "Orphan 101", "Validations 101"]
        assert await country.related("posts").query().delete() == 1
        remaining = sorted(t for t, _ in (await post_titles(database)).values())
        assert remaining == ["Assets 101", "Orphan 101", "Validations 101"]
        # The through rows are never touched.
        assert len(await database.from_("users")) == 5

    async def test_update_and_delete_of_a_parent_without_rows(self, database: Database) -> None:
        world = await seed(database)
        nowhere = await Country.find_or_fail(world.countries["Nowhere"])
        assert await nowhere.related("posts").query().update({"score": 1}) == 0
        assert await nowhere.related("posts").query().delete() == 0
        assert len(await post_titles(database)) == 6

    async def test_absent_parent_key_raises(self, database: Database) -> None:
        world = await seed(database)
        country = await Country.query().select("name").where("id", world.countries["India"]).first()
        assert country is not None
        with count_queries() as q:
            with pytest.raises(LucidError) as update_exc:
                await country.related("posts").query().update({"score": 1})
            with pytest.raises(LucidError) as delete_exc:
                await country.related("posts").query().delete()
        assert q.count == 0
        assert_lucid_error(
            update_exc.value,
            "E_MISSING_MODEL_ATTRIBUTE",
            'Cannot update "posts", value of "Country.id" is undefined',
        )
        assert_lucid_error(
            delete_exc.value,
            "E_MISSING_MODEL_ATTRIBUTE",
            'Cannot delete "posts", value of "Country.id" is undefined',
        )

    async def test_on_query_applies_to_update_and_delete(self, database: Database) -> None:
        world = await seed(database)
        country = await Country.find_or_fail(world.countries["India"])
        assert await country.related("published_posts").query().update({"score": 3}) == 2
        assert await country.related("published_posts").query().delete() == 2
        remaining = {t: s for t, s in (await post_titles(database)).values()}
        assert "Adonis 101" in remaining and remaining["Adonis 101"] is None
        assert "Lucid 101" not in remaining and "Adonis5" not in remaining

    async def test_custom_keys_update_and_delete(self, database: Database) -> None:
        world = await seed(database)
        nation = await Nation.find_or_fail(world.countries["Switzerland"])
        assert await nation.related("articles").query().update({"title": "Renamed"}) == 2
        assert await nation.related("articles").query().where("title", "Renamed").delete() == 2
        remaining = sorted(t for t, _ in (await post_titles(database)).values())
        assert remaining == ["Adonis 101", "Adonis5", "Lucid 101", "Orphan 101"]


# -- has / where_has -------------------------------------------------------------------------------
class TestHasManyThroughHas:
    async def test_has(self, database: Database) -> None:
        await seed(database)
        with count_queries() as q:
            countries = await Country.query().has("posts").order_by("id")
        assert q.count == 1
        assert [c.name for c in countries] == ["India", "Switzerland"]
        assert [c.name for c in await Country.query().has("posts", ">", 2)] == ["India"]
        assert [c.name for c in await Country.query().has("posts", "=", 2)] == ["Switzerland"]

    async def test_doesnt_have(self, database: Database) -> None:
        await seed(database)
        assert [c.name for c in await Country.query().doesnt_have("posts")] == ["Nowhere"]
        names = await Country.query().doesnt_have("posts", ">", 2).order_by("id")
        assert [c.name for c in names] == ["Switzerland", "Nowhere"]

    async def test_or_forms(self, database: Database) -> None:
        await seed(database)
        has = await Country.query().where("name", "Nowhere").or_has("posts", ">", 2).order_by("id")
        assert [c.name for c in has] == ["India", "Nowhere"]
        doesnt = await Country.query().where("name", "India").or_doesnt_have("posts").order_by("id")
        assert [c.name for c in doesnt] == ["India", "Nowhere"]

    async def test_where_has(self, database: Database) -> None:
        await seed(
            database,
            posts=[*POSTS[:3], ("Validations 101", "romain", True), POSTS[4], POSTS[5]],
        )
        published = (
            await Country.query()
            .where_has("posts", lambda q: q.where("is_published", True))
            .order_by("id")
        )
        assert [c.name for c in published] == ["India", "Switzerland"]
        many = await Country.query().where_has(
            "posts", lambda q: q.where("is_published", True), ">", 1
        )
        assert [c.name for c in many] == ["India"]
        none = await Country.query().where_doesnt_have(
            "posts", lambda q: q.where("is_published", True)
        )
        assert [c.name for c in none] == ["Nowhere"]
        either = (
            await Country.query()
            .where("name", "Nowhere")
            .or_where_has("posts", lambda q: q.where("title", "Assets 101"))
            .order_by("id")
        )
        assert [c.name for c in either] == ["Switzerland", "Nowhere"]
        neither = (
            await Country.query()
            .where("name", "India")
            .or_where_doesnt_have("posts", lambda q: q.where("title", "Assets 101"))
            .order_by("id")
        )
        assert [c.name for c in neither] == ["India", "Nowhere"]

    async def test_where_has_callback_cannot_escape(self, database: Database) -> None:
        await seed(database)
        # Orphan 101 belongs to no country: an or_where must not make every country match.
        countries = await Country.query().where_has(
            "posts", lambda q: q.where("title", "Adonis 101").or_where("title", "Orphan 101")
        )
        assert [c.name for c in countries] == ["India"]

    async def test_where_has_unqualified_and_through_columns(self, database: Database) -> None:
        world = await seed(database)
        by_id = await Country.query().where_has(
            "posts", lambda q: q.where("id", world.posts["Assets 101"])
        )
        assert [c.name for c in by_id] == ["Switzerland"]
        by_author = await Country.query().where_has(
            "posts", lambda q: q.where("users.username", "nikk")
        )
        assert [c.name for c in by_author] == ["India"]

    async def test_self_relation_aliases_the_related_table(self, database: Database) -> None:
        world = await seed(database)
        await database.table("comments").multi_insert(
            [
                {"post_id": world.posts["Adonis 101"], "body": "a"},
                {"post_id": world.posts["Adonis 101"], "body": "b"},
                {"post_id": world.posts["Lucid 101"], "body": "c"},
                {"post_id": None, "body": "loose"},
            ]
        )
        crowded = await Comment.query().has("siblings", ">", 1).order_by("body")
        assert [c.body for c in crowded] == ["a", "b"]
        alone = await Comment.query().doesnt_have("siblings").order_by("body")
        assert [c.body for c in alone] == ["loose"]
        counted = await Comment.query().with_count("siblings").order_by("body")
        assert [(c.body, int(c.extras["siblings_count"])) for c in counted] == [
            ("a", 2),
            ("b", 2),
            ("c", 1),
            ("loose", 0),
        ]


# -- with_count / with_aggregate -------------------------------------------------------------------
class TestHasManyThroughWithCount:
    async def test_with_count(self, database: Database) -> None:
        await seed(database)
        with count_queries() as q:
            countries = await Country.query().with_count("posts").order_by("id")
        assert q.count == 1
        assert [(c.name, int(c.extras["posts_count"])) for c in countries] == [
            ("India", 3),
            ("Switzerland", 2),
            ("Nowhere", 0),
        ]

    async def test_with_count_constraints_and_alias(self, database: Database) -> None:
        await seed(database)
        countries = (
            await Country.query()
            .with_count("posts", lambda q: q.where_in("title", ["Adonis 101", "Assets 101"]))
            .with_count(
                "posts",
                lambda q: (
                    q.where("is_published", True)
                    .or_where("title", "Orphan 101")
                    .as_("published_count")
                ),
            )
            .order_by("id")
        )
        assert [
            (int(c.extras["posts_count"]), int(c.extras["published_count"])) for c in countries
        ] == [(1, 2), (1, 0), (0, 0)]

    async def test_with_count_keeps_cherry_picked_columns(self, database: Database) -> None:
        await seed(database)
        countries = await Country.query().select("name").with_count("posts").order_by("id")
        assert [c.attributes for c in countries] == [
            {"name": "India"},
            {"name": "Switzerland"},
            {"name": "Nowhere"},
        ]
        assert [int(c.extras["posts_count"]) for c in countries] == [3, 2, 0]

    async def test_with_aggregate(self, database: Database) -> None:
        await seed(database)
        countries = (
            await Country.query()
            .with_aggregate("posts", lambda q: q.count_distinct("posts.user_id").as_("authors"))
            .with_aggregate("posts", lambda q: q.max("title").as_("last_title"))
            .order_by("id")
        )
        assert [(int(c.extras["authors"]), c.extras["last_title"]) for c in countries] == [
            (2, "Lucid 101"),
            (2, "Validations 101"),
            (0, None),
        ]

    async def test_with_aggregate_errors(self, database: Database) -> None:
        with pytest.raises(LucidError) as no_alias:
            Country.query().with_aggregate("posts", lambda q: q.count("*"))
        assert_lucid_error(
            no_alias.value,
            "E_RUNTIME_EXCEPTION",
            '"with_aggregate" callback must define the alias for the aggregate query',
        )
        with pytest.raises(LucidError) as no_aggregate:
            Country.query().with_aggregate("posts", lambda q: q.where("id", 1))
        assert_lucid_error(
            no_aggregate.value,
            "E_RUNTIME_EXCEPTION",
            '"with_aggregate" callback must use an aggregate function',
        )

    async def test_load_count_and_load_aggregate(self, database: Database) -> None:
        world = await seed(database)
        country = await Country.find_or_fail(world.countries["India"])
        with count_queries() as q:
            await country.load_count("posts")
        assert q.count == 1
        assert int(country.extras["posts_count"]) == 3
        await country.load_count(
            "posts", lambda q: q.where_in("title", ["Adonis 101", "Assets 101"]).as_("picked")
        )
        assert int(country.extras["picked"]) == 1
        await country.load_aggregate("posts", lambda q: q.min("title").as_("first_title"))
        assert country.extras["first_title"] == "Adonis 101"

    async def test_custom_keys(self, database: Database) -> None:
        await seed(database)
        nations = await Nation.query().with_count("articles").has("articles").order_by("id")
        assert [(n.label, int(n.extras["articles_count"])) for n in nations] == [
            ("India", 3),
            ("Switzerland", 2),
        ]
        nation = await Nation.find_or_fail(nations[1].uid)
        await nation.load_count("articles")
        assert int(nation.extras["articles_count"]) == 2
        with pytest.raises(LucidError) as exc:
            await Nation.query().select("name").preload("articles")
        assert_lucid_error(
            exc.value,
            "E_MISSING_MODEL_ATTRIBUTE",
            'Cannot preload "articles", value of "Nation.uid" is undefined',
        )


# -- on_query --------------------------------------------------------------------------------------
class TestHasManyThroughOnQuery:
    async def test_on_query_sees_where_it_runs(self, database: Database) -> None:
        world = await seed(database)
        calls: list[tuple[str, bool, bool, bool]] = []

        def on_query(query: Any) -> None:
            calls.append(
                (
                    type(query).__name__,
                    query.is_related_query,
                    query.is_related_preload_query,
                    query.is_related_sub_query,
                )
            )
            query.where("title", "Adonis 101")

        class Land(BaseModel):
            table = "countries"
            id: int = column(is_primary=True)
            name: str | None = column()
            posts: HasManyThrough[Post] = has_many_through(
                (lambda: Post, lambda: User), foreign_key="country_id", on_query=on_query
            )

        # Once per preload, even with a grouped where in the callback.
        lands = await Land.query().preload("posts", lambda q: q.where(lambda g: g.where({})))
        assert calls == [("HasManyThroughQueryBuilder", True, True, False)]
        assert {land.name: titles(land.posts) for land in lands} == {
            "India": ["Adonis 101"],
            "Switzerland": [],
            "Nowhere": [],
        }

        calls.clear()
        land = await Land.find_or_fail(world.countries["India"])
        posts = await land.related("posts").query().where(lambda g: g.where_not_null("id"))
        assert titles(posts) == ["Adonis 101"]
        assert calls == [("HasManyThroughQueryBuilder", True, False, False)]

        calls.clear()
        counted = await Land.query().with_count("posts").has("posts").order_by("id")
        assert [(c.name, int(c.extras["posts_count"])) for c in counted] == [("India", 1)]
        assert calls == [("HasManyThroughSubQueryBuilder", False, False, True)] * 2

        calls.clear()
        assert await land.related("posts").query().update({"score": 2}) == 1
        assert calls == [("HasManyThroughQueryBuilder", True, False, False)]
        scores = {t: s for t, s in (await post_titles(database)).values()}
        assert scores["Adonis 101"] == 2 and scores["Lucid 101"] is None

    async def test_on_query_filters_every_read(self, database: Database) -> None:
        world = await seed(database)
        countries = (
            await Country.query()
            .preload("published_posts")
            .with_count("published_posts")
            .order_by("id")
        )
        assert [sorted(titles(c.published_posts)) for c in countries] == [
            ["Adonis5", "Lucid 101"],
            [],
            [],
        ]
        assert [int(c.extras["published_posts_count"]) for c in countries] == [2, 0, 0]
        india = await Country.find_or_fail(world.countries["India"])
        page = await india.related("published_posts").query().paginate(1, 1)
        assert page.total == 2 and len(page) == 1
        assert [c.name for c in await Country.query().has("published_posts")] == ["India"]

    async def test_nested_preload_only_outside_subqueries(self, database: Database) -> None:
        world = await seed(database)
        await database.table("comments").insert({"post_id": world.posts["Adonis5"], "body": "x"})

        def on_query(query: Any) -> None:
            if not query.is_related_sub_query:
                query.preload("comments")

        class Land(BaseModel):
            table = "countries"
            id: int = column(is_primary=True)
            name: str | None = column()
            posts: HasManyThrough[Post] = has_many_through(
                (lambda: Post, lambda: User), foreign_key="country_id", on_query=on_query
            )

        with count_queries() as q:
            lands = await Land.query().with_count("posts").preload("posts").order_by("id")
        assert q.count == 3
        india = lands[0]
        assert int(india.extras["posts_count"]) == 3
        assert {p.title: [c.body for c in p.comments] for p in india.posts}["Adonis5"] == ["x"]


# -- group limit -----------------------------------------------------------------------------------
GROUP_POSTS: list[tuple[str, str, bool]] = [
    ("Adonis 101", "virk", False),
    ("Adonis 102", "virk", False),
    ("Adonis 103", "nikk", False),
    ("Adonis 104", "nikk", False),
    ("Adonis 105", "virk", False),
    ("Lucid 101", "romain", False),
    ("Lucid 102", "romain", False),
    ("Lucid 103", "romain", False),
    ("Lucid 104", "romain", False),
    ("Lucid 105", "romain", False),
]
DATED = {
    title: {"created_at": datetime(2024, 1, day)}
    for day, title in enumerate(
        ["Adonis 101", "Adonis 104", "Lucid 102", "Lucid 103", "Lucid 105"], start=1
    )
}


class TestHasManyThroughGroupLimit:
    async def test_group_limit_defaults_to_primary_key_descending(self, database: Database) -> None:
        world = await seed(database, posts=GROUP_POSTS)
        with count_queries() as q:
            countries = await Country.query().preload("posts", lambda p: p.group_limit(2))
        assert q.count == 2
        by_name = {c.name: c for c in countries}
        assert titles(by_name["India"].posts) == ["Adonis 105", "Adonis 104"]
        assert titles(by_name["Switzerland"].posts) == ["Lucid 105", "Lucid 104"]
        assert by_name["Nowhere"].posts == []
        for name in ("India", "Switzerland"):
            assert [p.extras for p in by_name[name].posts] == [
                {"through_country_id": world.countries[name]}
            ] * 2

    async def test_group_limit_with_constraints(self, database: Database) -> None:
        await seed(database, posts=GROUP_POSTS, post_extra=DATED)
        countries = await Country.query().preload(
            "posts",
            lambda p: (
                p.group_limit(2).where_not_null("posts.created_at").or_where("title", "Orphan 101")
            ),
        )
        by_name = {c.name: c for c in countries}
        assert titles(by_name["India"].posts) == ["Adonis 104", "Adonis 101"]
        assert titles(by_name["Switzerland"].posts) == ["Lucid 105", "Lucid 103"]

    async def test_group_limit_with_cherry_picked_columns(self, database: Database) -> None:
        world = await seed(database, posts=GROUP_POSTS, post_extra=DATED)
        countries = await Country.query().preload(
            "posts", lambda p: p.group_limit(2).select("title")
        )
        by_name = {c.name: c for c in countries}
        india = by_name["India"].posts
        assert [p.attributes for p in india] == [{"title": "Adonis 105"}, {"title": "Adonis 104"}]
        assert india[0].extras == {"through_country_id": world.countries["India"]}
        assert titles(by_name["Switzerland"].posts) == ["Lucid 105", "Lucid 104"]

    async def test_group_order_by(self, database: Database) -> None:
        await seed(database, posts=GROUP_POSTS, post_extra=DATED)
        countries = await Country.query().preload(
            "posts", lambda p: p.group_limit(2).group_order_by("posts.title", "asc")
        )
        by_name = {c.name: c for c in countries}
        assert titles(by_name["India"].posts) == ["Adonis 101", "Adonis 102"]
        assert by_name["India"].posts[0].created_at is not None
        assert titles(by_name["Switzerland"].posts) == ["Lucid 101", "Lucid 102"]

    async def test_group_order_by_an_unqualified_shared_column(self, database: Database) -> None:
        # created_at exists on posts and users: it means posts.created_at.
        await seed(database, posts=GROUP_POSTS, post_extra=DATED)
        countries = await Country.query().preload(
            "posts",
            lambda p: (
                p.where_not_null("created_at").group_limit(1).group_order_by("created_at", "desc")
            ),
        )
        by_name = {c.name: c for c in countries}
        assert titles(by_name["India"].posts) == ["Adonis 104"]
        assert titles(by_name["Switzerland"].posts) == ["Lucid 105"]

    async def test_group_limit_with_nested_preload(self, database: Database) -> None:
        world = await seed(database, posts=GROUP_POSTS)
        await database.table("comments").insert({"post_id": world.posts["Lucid 105"], "body": "y"})
        with count_queries() as q:
            countries = await Country.query().preload(
                "posts", lambda p: p.group_limit(1).preload("comments")
            )
        assert q.count == 3
        by_name = {c.name: c for c in countries}
        assert [c.body for c in by_name["Switzerland"].posts[0].comments] == ["y"]
        assert by_name["India"].posts[0].comments == []

    async def test_group_limit_on_the_related_query_limits_rows(self, database: Database) -> None:
        world = await seed(database, posts=GROUP_POSTS)
        country = await Country.find_or_fail(world.countries["India"])
        posts = await country.related("posts").query().group_limit(2)
        assert titles(posts) == ["Adonis 105", "Adonis 104"]
        ordered = (
            await country.related("posts").query().group_limit(3).group_order_by("title", "asc")
        )
        assert titles(ordered) == ["Adonis 101", "Adonis 102", "Adonis 103"]

    async def test_group_limit_needs_a_positive_int(self, database: Database) -> None:
        world = await seed(database)
        country = await Country.find_or_fail(world.countries["India"])
        with pytest.raises(LucidError):
            country.related("posts").query().group_limit(0)
        with pytest.raises(LucidError):
            country.related("posts").query().group_order_by("title", "sideways")


# -- serialization ---------------------------------------------------------------------------------
class TestHasManyThroughSerialize:
    async def test_serialize_includes_loaded_rows(self, database: Database) -> None:
        world = await seed(database)
        country = (
            await Country.query()
            .where("id", world.countries["Switzerland"])
            .preload("posts", lambda q: q.select("id", "title").order_by("title"))
            .first_or_fail()
        )
        assert country.serialize() == {
            "id": world.countries["Switzerland"],
            "name": "Switzerland",
            "posts": [
                {"id": world.posts["Assets 101"], "title": "Assets 101"},
                {"id": world.posts["Validations 101"], "title": "Validations 101"},
            ],
        }
        as_dict = country.to_dict()
        assert as_dict["posts"][0]["extras"] == {
            "through_country_id": world.countries["Switzerland"]
        }
        picked = country.serialize(
            {"fields": {"pick": ["name"]}, "relations": {"posts": {"fields": ["title"]}}}
        )
        assert picked == {
            "name": "Switzerland",
            "posts": [{"title": "Assets 101"}, {"title": "Validations 101"}],
        }

    async def test_serialize_as(self, database: Database) -> None:
        world = await seed(database)
        nation = (
            await Nation.query()
            .where("id", world.countries["Nowhere"])
            .preload("articles")
            .first_or_fail()
        )
        assert nation.serialize() == {
            "uid": world.countries["Nowhere"],
            "label": "Nowhere",
            "stories": [],
        }

        class Land(BaseModel):
            table = "countries"
            id: int = column(is_primary=True)
            posts: HasManyThrough[Post] = has_many_through(
                (lambda: Post, lambda: User), foreign_key="country_id", serialize_as=None
            )

        land = (
            await Land.query()
            .where("id", world.countries["India"])
            .preload("posts")
            .first_or_fail()
        )
        assert len(land.posts) == 3
        assert land.serialize() == {"id": world.countries["India"]}
