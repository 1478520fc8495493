"""has_many_through (and has_one_through) over a chain of intermediate tables:
``Country`` → ``User`` → ``Post`` → ``Comment`` (``through=[User, Post]``), and chains with a
many_to_many hop named by its pivot table (``Country`` → ``User`` → ``skill_user`` →
``Skill``; ``User`` → ``Post`` → ``post_tags`` → ``Tag``). Keys per link (defaults and the
list form) and their errors, preload (one query, duplicates and ``distinct``, callbacks on
intermediate columns, nesting, group limits), the related query, the ``has`` family,
aggregates and ``on_query`` — asserted on rows, errors and statement counts on every
dialect."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from lucid_orm import (
    BaseModel,
    LucidError,
    belongs_to,
    column,
    has_many_through,
    has_one_through,
)
from lucid_orm.database import Database
from lucid_orm.relations import BelongsTo, HasManyThrough, HasOneThrough
from tests import models
from tests.helpers import count_queries


class User(models.BaseUser):
    country_id: int | None = column()

    tags: HasManyThrough[Tag] = has_many_through(lambda: Tag, through=[lambda: Post, "post_tags"])


class Post(models.Post):
    score: int | None = column()


class Comment(models.Comment):
    post: BelongsTo[Post] = belongs_to(lambda: Post)


class Skill(models.Skill):
    pass


class Tag(models.Tag):
    pass


class Country(models.Country):
    comments: HasManyThrough[Comment] = has_many_through(
        lambda: Comment, through=[lambda: User, lambda: Post]
    )
    skills: HasManyThrough[Skill] = has_many_through(
        lambda: Skill, through=[lambda: User, "skill_user"]
    )
    distinct_skills: HasManyThrough[Skill] = has_many_through(
        lambda: Skill, through=[lambda: User, "skill_user"], distinct=True
    )
    latest_comment: HasOneThrough[Comment] = has_one_through(lambda: Comment, through=[User, Post])
    # The two-model form spelt as a one-hop list.
    posts: HasManyThrough[Post] = has_many_through(lambda: Post, through=[User])
    tuple_posts: HasManyThrough[Post] = has_many_through((lambda: Post, lambda: User))


# The same tables under other attribute names: keys given per link as lists of attributes.
class Citizen(BaseModel):
    table = "users"
    uid: int = column(is_primary=True, column_name="id")
    nation_uid: int | None = column(column_name="country_id")


class Article(BaseModel):
    table = "posts"
    uid: int = column(is_primary=True, column_name="id")
    writer_uid: int | None = column(column_name="user_id")


class Remark(BaseModel):
    table = "comments"
    uid: int = column(is_primary=True, column_name="id")
    article_uid: int | None = column(column_name="post_id")
    text: str | None = column(column_name="body")


class Nation(BaseModel):
    table = "countries"
    uid: int = column(is_primary=True, column_name="id")
    label: str | None = column(column_name="name")

    remarks: HasManyThrough[Remark] = has_many_through(
        lambda: Remark,
        through=[Citizen, Article],
        # The first link's defaults already fit (nation_uid, the primary keys): None keeps them.
        foreign_key=[None, "writer_uid", "article_uid"],
        local_key=["uid", None, "uid"],
    )


# -- data ----------------------------------------------------------------------------------------
@dataclass
class World:
    countries: dict[str, int]
    users: dict[str, int]
    posts: dict[str, int]
    comments: dict[str, int]


async def ids(database: Database, table: str, name: str) -> dict[str, int]:
    return {r[name]: r["id"] for r in await database.from_(table).select("id", name)}


async def seed(database: Database) -> World:
    """India (virk, nikk), Switzerland (romain), Nowhere; a stateless user. Comments: c1, c2
    on "Adonis 101", c3 on "Lucid 101" (virk's), c4 on romain's post, c5 on the stateless
    one's. Skills: virk SQL + Python, nikk SQL, romain Rust, stateless SQL. Tags: "Adonis 101"
    tech + news, "Lucid 101" tech, "Adonis5" (nikk's) news."""
    await database.table("countries").multi_insert(
        [{"name": n} for n in ("India", "Switzerland", "Nowhere")]
    )
    countries = await ids(database, "countries", "name")
    users = {"virk": "India", "nikk": "India", "romain": "Switzerland", "stateless": None}
    await database.table("users").multi_insert(
        [{"username": u, "country_id": countries[c] if c else None} for u, c in users.items()]
    )
    user_ids = await ids(database, "users", "username")
    posts = [
        ("Adonis 101", "virk", 10),
        ("Lucid 101", "virk", 5),
        ("Adonis5", "nikk", 7),
        ("Validations 101", "romain", 3),
        ("Orphan", "stateless", 1),
    ]
    await database.table("posts").multi_insert(
        [{"title": t, "user_id": user_ids[u], "score": s} for t, u, s in posts]
    )
    post_ids = await ids(database, "posts", "title")
    comments = [
        ("c1", "Adonis 101"),
        ("c2", "Adonis 101"),
        ("c3", "Lucid 101"),
        ("c4", "Validations 101"),
        ("c5", "Orphan"),
    ]
    await database.table("comments").multi_insert(
        [{"body": b, "post_id": post_ids[p]} for b, p in comments]
    )
    comment_ids = await ids(database, "comments", "body")
    await database.table("skills").multi_insert([{"name": n} for n in ("SQL", "Python", "Rust")])
    skills = await ids(database, "skills", "name")
    await database.table("skill_user").multi_insert(
        [
            {"user_id": user_ids[u], "skill_id": skills[s]}
            for u, s in [
                ("virk", "SQL"),
                ("virk", "Python"),
                ("nikk", "SQL"),
                ("romain", "Rust"),
                ("stateless", "SQL"),
            ]
        ]
    )
    await database.table("tags").multi_insert([{"name": n} for n in ("tech", "news")])
    tags = await ids(database, "tags", "name")
    await database.table("post_tags").multi_insert(
        [
            {"post_id": post_ids[p], "tag_id": tags[t]}
            for p, t in [
                ("Adonis 101", "tech"),
                ("Adonis 101", "news"),
                ("Lucid 101", "tech"),
                ("Adonis5", "news"),
            ]
        ]
    )
    return World(countries, user_ids, post_ids, comment_ids)


def bodies(rows: Any) -> list[str | None]:
    return [r.body for r in rows]


def names(rows: Any) -> list[str | None]:
    return [r.name for r in rows]


# -- boot: the chain and its keys ------------------------------------------------------------------
class TestDeepThroughBoot:
    def test_default_keys_of_a_model_chain(self) -> None:
        relation = Country.get_relation("comments")
        relation.boot()
        assert [h.table.name for h in relation.hops] == ["users", "posts", "comments"]
        assert [(h.back, h.key) for h in relation.hops] == [
            ("id", "country_id"),
            ("id", "user_id"),
            ("id", "post_id"),
        ]
        assert relation.through_models() == [User, Post]
        assert relation.through_model() is User
        # The string keys name the first link and the last, as in the two-model form.
        assert (relation.local_key, relation.foreign_key) == ("id", "country_id")
        assert (relation.through_local_key, relation.through_foreign_key) == ("id", "post_id")

    def test_default_keys_of_a_pivot_hop(self) -> None:
        relation = Country.get_relation("skills")
        relation.boot()
        assert [h.table.name for h in relation.hops] == ["users", "skill_user", "skills"]
        assert [h.model for h in relation.hops] == [User, None, Skill]
        # users.id = skill_user.user_id, then skill_user.skill_id = skills.id.
        assert [(h.back, h.key) for h in relation.hops] == [
            ("id", "country_id"),
            ("id", "user_id"),
            ("skill_id", "id"),
        ]

    def test_key_lists_are_attributes_resolved_to_columns(self) -> None:
        relation = Nation.get_relation("remarks")
        relation.boot()
        assert [(h.back, h.key) for h in relation.hops] == [
            ("id", "country_id"),
            ("id", "user_id"),
            ("id", "post_id"),
        ]
        assert (relation.local_key, relation.foreign_key) == ("uid", "nation_uid")
        assert (relation.through_local_key, relation.through_foreign_key) == ("uid", "article_uid")

    def test_a_one_hop_list_is_the_two_model_form(self, database: Database) -> None:
        listed, paired = Country.get_relation("posts"), Country.get_relation("tuple_posts")
        listed.boot()
        paired.boot()
        assert (listed.local_key, listed.foreign_key) == (paired.local_key, paired.foreign_key)
        assert (listed.through_local_key, listed.through_foreign_key) == (
            paired.through_local_key,
            paired.through_foreign_key,
        )

    def test_a_model_class_is_taken_as_is(self) -> None:
        class Land(models.Country):
            posts: HasManyThrough[Post] = has_many_through(
                lambda: Post,
                through=User,  # type: ignore[arg-type]
                foreign_key="country_id",
            )

        relation = Land.get_relation("posts")
        relation.boot()
        assert relation.through_model() is User
        assert [h.table.name for h in relation.hops] == ["users", "posts"]

    def test_key_list_errors(self) -> None:
        with pytest.raises(LucidError) as exc:
            has_many_through(lambda: Comment, through=[User, Post], foreign_key=["a", "b"])
        assert exc.value.code == "E_INVALID_ARGUMENT"
        assert str(exc.value) == (
            "foreign_key takes one key per link of the chain: 3 (the parent and 2 intermediate "
            "table(s)), got 2"
        )
        with pytest.raises(LucidError) as both:
            has_many_through(
                lambda: Comment,
                through=[User, Post],
                local_key=["id", "id", "id"],
                through_local_key="id",
            )
        assert str(both.value) == (
            "through_foreign_key/through_local_key cannot be combined with a list of keys: the "
            "list's last entry is the last link's key"
        )
        with pytest.raises(LucidError) as hop:
            has_many_through(lambda: Comment, through=[User, 3])  # type: ignore[list-item]
        assert str(hop.value) == (
            "A through hop is a model, a function returning one or a pivot table name, got 3"
        )
        with pytest.raises(LucidError) as table:
            has_many_through(lambda: Skill, through=[User, "skill user"])
        assert table.value.code == "E_INVALID_IDENTIFIER"

    def test_missing_key_and_repeated_tables_raise_at_boot(self) -> None:
        class Land(BaseModel):
            table = "countries"
            id: int = column(is_primary=True)
            # Default: ``land_id`` on users, which does not exist.
            comments: HasManyThrough[Comment] = has_many_through(
                lambda: Comment, through=[User, Post]
            )
            loop: HasManyThrough[Post] = has_many_through(
                lambda: Post, through=[User, Post, User], foreign_key=["country_id", *[None] * 3]
            )

        with pytest.raises(LucidError) as exc:
            Land.get_relation("comments").boot()
        assert exc.value.code == "E_MISSING_MODEL_ATTRIBUTE"
        assert str(exc.value) == (
            '"Land.comments" expects "land_id" to exist on "User" model, but is missing'
        )
        with pytest.raises(LucidError) as loop:
            Land.get_relation("loop").boot()
        assert str(loop.value) == (
            "\"Land.loop\" goes through table(s) ['posts', 'users'] twice: a chain names each "
            "table once"
        )

    def test_a_chain_starting_with_a_pivot_has_no_through_model(self) -> None:
        class Person(models.BaseUser):
            skills: HasManyThrough[Skill] = has_many_through(lambda: Skill, through=["skill_user"])

        relation = Person.get_relation("skills")
        relation.boot()
        assert [(h.back, h.key) for h in relation.hops] == [("id", "person_id"), ("skill_id", "id")]
        with pytest.raises(LucidError) as exc:
            relation.through_model()
        assert str(exc.value) == (
            '"Person.skills" goes through a pivot table first: it has no through model'
        )


# -- preload -------------------------------------------------------------------------------------
class TestDeepThroughPreload:
    async def test_preload_runs_one_query(self, database: Database) -> None:
        world = await seed(database)
        with count_queries() as q:
            countries = await (
                Country.query().preload("comments", lambda c: c.order_by("id")).order_by("id")
            )
        assert q.count == 2
        sql = q.sqls[1].replace("INNER JOIN", "JOIN")
        assert (
            "FROM comments JOIN posts ON posts.id = comments.post_id "
            "JOIN users ON users.id = posts.user_id"
        ) in sql
        assert [bodies(c.comments) for c in countries] == [["c1", "c2", "c3"], ["c4"], []]
        assert countries[0].comments[0].extras == {"through_country_id": world.countries["India"]}

    async def test_the_two_model_list_form_runs_the_same_sql(self, database: Database) -> None:
        await seed(database)
        with count_queries() as q:
            listed = await Country.query().preload("posts").order_by("id")
            paired = await Country.query().preload("tuple_posts").order_by("id")
        assert q.sqls[1] == q.sqls[3]
        assert [sorted(p.title or "" for p in c.posts) for c in listed] == [
            sorted(p.title or "" for p in c.tuple_posts) for c in paired
        ]

    async def test_custom_keys(self, database: Database) -> None:
        await seed(database)
        nations = await Nation.query().preload("remarks", lambda r: r.order_by("id")).order_by("id")
        assert [[r.text for r in n.remarks] for n in nations] == [["c1", "c2", "c3"], ["c4"], []]

    async def test_callbacks_filter_on_intermediate_columns(self, database: Database) -> None:
        await seed(database)
        countries = await (
            Country.query()
            .preload(
                "comments",
                lambda c: c.where("posts.title", "Adonis 101").or_where("users.username", "romain"),
            )
            .order_by("id")
        )
        assert [sorted(bodies(c.comments)) for c in countries] == [["c1", "c2"], ["c4"], []]

    async def test_a_pivot_hop_returns_duplicates_unless_distinct(self, database: Database) -> None:
        await seed(database)
        with count_queries() as q:
            countries = await (
                Country.query()
                .preload("skills", lambda s: s.order_by("name"))
                .preload("distinct_skills", lambda s: s.order_by("name"))
                .order_by("id")
            )
        assert q.count == 3
        assert "JOIN skill_user ON skills.id = skill_user.skill_id" in q.sqls[1]
        # India's users virk and nikk both know SQL: reached twice, once per path.
        assert [names(c.skills) for c in countries] == [["Python", "SQL", "SQL"], ["Rust"], []]
        assert "SELECT DISTINCT" in q.sqls[2]
        assert [names(c.distinct_skills) for c in countries] == [["Python", "SQL"], ["Rust"], []]

    async def test_pivot_columns_filter_and_distinct_refuses_group_limit(
        self, database: Database
    ) -> None:
        world = await seed(database)
        await (
            database.from_("skill_user")
            .where("user_id", world.users["nikk"])
            .update({"proficiency": "expert"})
        )
        countries = await (
            Country.query()
            .preload("skills", lambda s: s.where("skill_user.proficiency", "expert"))
            .order_by("id")
        )
        assert [names(c.skills) for c in countries] == [["SQL"], [], []]
        with count_queries() as q, pytest.raises(LucidError) as exc:
            await Country.query().preload("distinct_skills", lambda s: s.group_limit(1))
        assert q.count == 1
        assert str(exc.value) == (
            'Cannot apply group_limit on the distinct relationship "(distinct_skills)": declare '
            "one without distinct=True for per-parent limits"
        )

    async def test_a_pivot_hop_in_the_middle(self, database: Database) -> None:
        world = await seed(database)
        users = await User.query().preload("tags", lambda t: t.order_by("name")).order_by("id")
        assert {u.username: names(u.tags) for u in users} == {
            "virk": ["news", "tech", "tech"],
            "nikk": ["news"],
            "romain": [],
            "stateless": [],
        }
        assert users[0].tags[0].extras == {"through_user_id": world.users["virk"]}

    async def test_nested_and_dotted_preloads(self, database: Database) -> None:
        await seed(database)
        with count_queries() as q:
            countries = await Country.query().preload("comments.post").order_by("id")
        assert q.count == 3
        posts = {c.body: c.post.title for c in countries[0].comments if c.post is not None}
        assert posts == {"c1": "Adonis 101", "c2": "Adonis 101", "c3": "Lucid 101"}

    async def test_group_limit_per_parent(self, database: Database) -> None:
        await seed(database)
        countries = await (
            Country.query()
            .preload("comments", lambda c: c.group_limit(2).group_order_by("id", "desc"))
            .order_by("id")
        )
        assert [bodies(c.comments) for c in countries] == [["c3", "c2"], ["c4"], []]

    async def test_load_on_an_instance(self, database: Database) -> None:
        world = await seed(database)
        country = await Country.find_or_fail(world.countries["Switzerland"])
        with count_queries() as q:
            await country.load("comments")
            await country.load("skills")
        assert q.count == 2
        assert bodies(country.comments) == ["c4"]
        assert names(country.skills) == ["Rust"]

    async def test_has_one_through_over_a_chain(self, database: Database) -> None:
        await seed(database)
        with count_queries() as q:
            countries = await (
                Country.query()
                .preload("latest_comment", lambda c: c.order_by("id", "desc"))
                .order_by("id")
            )
        assert q.count == 2
        assert [None if c.latest_comment is None else c.latest_comment.body for c in countries] == [
            "c3",
            "c4",
            None,
        ]
        having = await Country.query().has("latest_comment", ">", 1)
        assert [c.name for c in having] == ["India"]


# -- related query ---------------------------------------------------------------------------------
class TestDeepThroughQuery:
    async def test_related_rows_of_the_parent(self, database: Database) -> None:
        world = await seed(database)
        india = await Country.find_or_fail(world.countries["India"])
        with count_queries() as q:
            rows = await india.related("comments").query().order_by("id")
        assert q.count == 1
        assert bodies(rows) == ["c1", "c2", "c3"]
        first = await india.related("comments").query().where("posts.title", "Lucid 101").first()
        assert first is not None and first.body == "c3"
        assert await india.related("comments").query().count_rows() == 3
        page = await india.related("comments").query().order_by("id").paginate(2, per_page=2)
        assert (page.total, bodies(page)) == (3, ["c3"])
        skill = await india.related("skills").query().where("name", "Python").first()
        assert skill is not None and skill.name == "Python"
        assert await india.related("skills").query().count_rows() == 3
        assert await india.related("distinct_skills").query().count_rows() == 2
        latest = await india.related("latest_comment").query().order_by("id", "desc").first()
        assert latest is not None and latest.body == "c3"

    async def test_update_and_delete_touch_only_the_parent_rows(self, database: Database) -> None:
        world = await seed(database)
        swiss = await Country.find_or_fail(world.countries["Switzerland"])
        assert await swiss.related("comments").query().update({"body": "edited"}) == 1
        rows = {r["id"]: r["body"] for r in await database.from_("comments")}
        assert sorted(rows.values()) == ["c1", "c2", "c3", "c5", "edited"]
        india = await Country.find_or_fail(world.countries["India"])
        deleted = await india.related("comments").query().where("posts.title", "Adonis 101")
        assert bodies(deleted) == ["c1", "c2"]
        assert (
            await india.related("comments").query().where("posts.title", "Adonis 101").delete() == 2
        )
        left = sorted(r["body"] for r in await database.from_("comments"))
        assert left == ["c3", "c5", "edited"]


# -- has family and aggregates ---------------------------------------------------------------------
class TestDeepThroughHas:
    async def test_has_family(self, database: Database) -> None:
        await seed(database)

        async def countries(query: Any) -> list[str | None]:
            return [c.name for c in await query.order_by("id")]

        assert await countries(Country.query().has("comments")) == ["India", "Switzerland"]
        assert await countries(Country.query().has("comments", ">", 2)) == ["India"]
        assert await countries(Country.query().doesnt_have("comments")) == ["Nowhere"]
        assert await countries(
            Country.query().where_has("comments", lambda c: c.where("posts.title", "Lucid 101"))
        ) == ["India"]
        assert await countries(
            Country.query().where_has("skills", lambda s: s.where("name", "Rust"))
        ) == ["Switzerland"]
        assert await countries(Country.query().has("skills", ">=", 3)) == ["India"]
        assert await countries(Country.query().has("distinct_skills", ">=", 3)) == []
        assert await countries(
            Country.query().where("name", "Nowhere").or_where_doesnt_have("skills")
        ) == ["Nowhere"]
        assert [u.username for u in await User.query().has("tags").order_by("id")] == [
            "virk",
            "nikk",
        ]

    async def test_with_count_and_aggregates(self, database: Database) -> None:
        world = await seed(database)
        with count_queries() as q:
            countries = await (
                Country.query()
                .with_count("comments")
                .with_count("skills")
                .with_count("distinct_skills")
                .with_aggregate("comments", lambda c: c.max("posts.score").as_("best_score"))
                .order_by("id")
            )
        assert q.count == 1
        assert [
            (
                int(c.extras["comments_count"]),
                int(c.extras["skills_count"]),
                int(c.extras["distinct_skills_count"]),
                c.extras["best_score"],
            )
            for c in countries
        ] == [(3, 3, 2, 10), (1, 1, 1, 3), (0, 0, 0, None)]
        india = await Country.find_or_fail(world.countries["India"])
        await india.load_count("comments", lambda c: c.where("users.username", "virk"))
        assert int(india.extras["comments_count"]) == 3

    async def test_on_query_flags(self, database: Database) -> None:
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
            query.where("posts.title", "Adonis 101")

        class Land(BaseModel):
            table = "countries"
            id: int = column(is_primary=True)
            name: str | None = column()
            comments: HasManyThrough[Comment] = has_many_through(
                lambda: Comment,
                through=[User, Post],
                foreign_key=["country_id", None, None],
                on_query=on_query,
            )

        lands = await Land.query().preload("comments").order_by("id")
        assert calls == [("HasManyThroughQueryBuilder", True, True, False)]
        assert [sorted(bodies(land.comments)) for land in lands] == [["c1", "c2"], [], []]
        calls.clear()
        land = await Land.find_or_fail(world.countries["India"])
        assert sorted(bodies(await land.related("comments").query())) == ["c1", "c2"]
        assert calls == [("HasManyThroughQueryBuilder", True, False, False)]
        calls.clear()
        counted = await Land.query().with_count("comments").has("comments")
        assert [(c.name, int(c.extras["comments_count"])) for c in counted] == [("India", 2)]
        assert calls == [("HasManyThroughSubQueryBuilder", False, False, True)] * 2

    async def test_serialize(self, database: Database) -> None:
        world = await seed(database)
        country = await (
            Country.query()
            .where("id", world.countries["Switzerland"])
            .preload("comments", lambda c: c.select("id", "body"))
            .preload("latest_comment", lambda c: c.select("id", "body"))
            .first_or_fail()
        )
        data = country.serialize()
        assert data["comments"] == [{"id": world.comments["c4"], "body": "c4"}]
        assert data["latest_comment"] == {"id": world.comments["c4"], "body": "c4"}
