"""Identifiers stay inside the query (issue 12, finding 5; SPEC §10): a qualified column must
name a table, alias or subquery of its own query — or, in a subquery, of a query enclosing it.
Anything else raises ``E_INVALID_IDENTIFIER`` before a statement is sent, and no table is ever
added to FROM behind the user's back (SQLAlchemy would: ``select("profiles.bio")`` on ``users``
read every profile)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from lucid_orm import (
    LucidError,
    column,
    db,
    has_many,
    has_many_through,
    many_to_many,
)
from lucid_orm.database import Database
from lucid_orm.relations import HasMany, HasManyThrough, ManyToMany
from tests import models
from tests.helpers import count_queries
from tests.models import Post, Skill

SECRET = "s3cret-bio"


class User(models.User):
    email: str | None = column()
    posts: HasMany[Post] = has_many(lambda: Post)
    skills: ManyToMany[Skill] = many_to_many(
        lambda: Skill, pivot_table="skill_user", pivot_columns=["proficiency"]
    )


class Country(models.Country):
    posts: HasManyThrough[Post] = has_many_through((lambda: Post, lambda: User))


@dataclass
class Seed:
    alice: User
    bob: User
    india: Country
    hello: Post
    sql: Skill
    go: Skill


@pytest.fixture
async def seed(database: Database) -> Seed:
    """alice (India; post "hello"; SQL expert, Go novice) and bob (no posts, no skills); a
    profile of bob's holds ``SECRET``, the value no query of these tests may read."""
    india = await Country.create({"name": "India"})
    alice = await User.create(
        {"username": "alice", "email": "alice@example.com", "points": 10, "country_id": india.id}
    )
    bob = await User.create({"username": "bob", "email": "bob@example.com", "points": 20})
    hello = await Post.create({"user_id": alice.id, "title": "hello"})
    sql, go = await Skill.create_many([{"name": "SQL"}, {"name": "Go"}])
    await database.table("skill_user").multi_insert(
        [
            {"user_id": alice.id, "skill_id": sql.id, "proficiency": "expert"},
            {"user_id": alice.id, "skill_id": go.id, "proficiency": "novice"},
        ]
    )
    await database.table("profiles").insert({"user_id": bob.id, "bio": SECRET})
    return Seed(alice, bob, india, hello, sql, go)


async def refused(
    run: Callable[[], Awaitable[Any] | Any], identifier: str, table: str, *, statements: int = 0
) -> LucidError:
    """``run`` raises ``E_INVALID_IDENTIFIER`` naming ``identifier`` and its ``table``, after
    ``statements`` statements (0: before the database saw anything)."""
    with count_queries() as log, pytest.raises(LucidError) as info:
        result = run()
        if hasattr(result, "__await__"):
            await result
    error = info.value
    assert error.code == "E_INVALID_IDENTIFIER"
    assert f'{identifier}" names table "{table}"' in error.message
    assert "not a table, alias or subquery of this query" in error.message
    assert log.count == statements, log.sqls
    return error


def usernames(rows: list[Any]) -> list[str]:
    return sorted(r["username"] if isinstance(r, dict) else r.username for r in rows)


# ----------------------------------------------------------------------------------------------
class TestForeignQualifierRefused:
    """Every column-taking method of the database builder, with a table the query lacks."""

    @pytest.mark.parametrize(
        "build",
        [
            pytest.param(lambda: db.from_("users").select("profiles.bio"), id="select"),
            pytest.param(lambda: db.from_("users").select({"b": "profiles.bio"}), id="select-dict"),
            pytest.param(lambda: db.from_("users").select("profiles.bio as b"), id="select-as"),
            pytest.param(lambda: db.from_("users").where("profiles.bio", SECRET), id="where"),
            pytest.param(
                lambda: db.from_("users").where("profiles.bio", "like", "s3%"), id="where-oracle"
            ),
            pytest.param(
                lambda: db.from_("users").where("id", 0).or_where("profiles.bio", SECRET),
                id="or_where",
            ),
            pytest.param(
                lambda: db.from_("users").where({"profiles.bio": SECRET}), id="where-dict"
            ),
            pytest.param(
                lambda: db.from_("users").where(lambda q: q.where("profiles.bio", SECRET)),
                id="where-group",
            ),
            pytest.param(
                lambda: db.from_("users").where_in("profiles.bio", [SECRET]), id="where_in"
            ),
            pytest.param(
                lambda: db.from_("users").where_not_null("profiles.bio"), id="where_not_null"
            ),
            pytest.param(
                lambda: db.from_("users").where_like("profiles.bio", "s3%"), id="where_like"
            ),
            pytest.param(
                lambda: db.from_("users").where_between("profiles.user_id", [0, 10**9]),
                id="where_between",
            ),
            pytest.param(
                lambda: db.from_("users").where_column("profiles.user_id", "users.id"),
                id="where_column",
            ),
            pytest.param(lambda: db.from_("users").order_by("profiles.bio"), id="order_by"),
            pytest.param(
                lambda: db.from_("users").order_by([{"column": "profiles.bio", "order": "desc"}]),
                id="order_by-dict",
            ),
            pytest.param(
                lambda: db.from_("users").select("country_id").group_by("profiles.bio"),
                id="group_by",
            ),
            pytest.param(
                lambda: (
                    db.from_("users")
                    .select("country_id")
                    .group_by("country_id")
                    .having("profiles.user_id", ">", 0)
                ),
                id="having",
            ),
            pytest.param(
                lambda: db.from_("users").join("posts", "posts.user_id", "profiles.user_id"),
                id="join-on",
            ),
            pytest.param(
                lambda: db.from_("users").join(
                    "posts",
                    lambda j: j.on("users.id", "posts.user_id").on_val("profiles.bio", SECRET),
                ),
                id="join-on_val",
            ),
            pytest.param(lambda: db.from_("users").count("profiles.bio"), id="count"),
            pytest.param(lambda: db.from_("users").max("profiles.bio"), id="max"),
            pytest.param(lambda: db.from_("users").distinct("profiles.bio"), id="distinct"),
            pytest.param(lambda: db.from_("users").select("profiles.bio").first(), id="first"),
            pytest.param(
                lambda: db.from_("users").where("profiles.bio", SECRET).exists(), id="exists"
            ),
            pytest.param(
                lambda: db.from_("users").where("profiles.bio", SECRET).count_rows(),
                id="count_rows",
            ),
            pytest.param(
                lambda: db.from_("users").where("profiles.bio", SECRET).paginate(1, 10),
                id="paginate",
            ),
        ],
    )
    async def test_refused_before_the_database(self, seed: Seed, build: Callable[[], Any]) -> None:
        error = await refused(build, "", "profiles")
        assert '"profiles.bio"' in error.message or '"profiles.user_id"' in error.message

    async def test_each_method_names_the_identifier(self, seed: Seed) -> None:
        error = await refused(
            lambda: db.from_("users").select("username").where("profiles.bio", "like", "s3%"),
            "profiles.bio",
            "profiles",
        )
        assert '(its tables: "users")' in error.message
        await refused(
            lambda: db.from_("users").where("profiles.user_id", ">", 0),
            "profiles.user_id",
            "profiles",
        )
        await refused(
            lambda: db.from_("users").order_by("profiles.bio"), "profiles.bio", "profiles"
        )

    async def test_to_sql_refuses_too(self, seed: Seed) -> None:
        with pytest.raises(LucidError) as info:
            db.from_("users").select("profiles.bio").to_sql()
        assert info.value.code == "E_INVALID_IDENTIFIER"

    async def test_an_alias_hides_its_table_name(self, seed: Seed) -> None:
        await refused(lambda: db.from_("users as u").select("users.email"), "users.email", "users")

    async def test_a_table_that_a_later_from_replaced(self, seed: Seed) -> None:
        await refused(
            lambda: db.from_("profiles").from_("users").select("profiles.bio"),
            "profiles.bio",
            "profiles",
        )

    async def test_a_raw_join_brings_no_table_to_the_builder(self, seed: Seed) -> None:
        # The raw join's own SQL stays the user's; its tables are named with db.raw() too.
        await refused(
            lambda: (
                db.from_("users")
                .join_raw("join profiles on profiles.user_id = users.id")
                .select("profiles.bio")
            ),
            "profiles.bio",
            "profiles",
        )
        rows = (
            await db.from_("users")
            .join_raw("join profiles on profiles.user_id = users.id")
            .select(db.raw("profiles.bio"))
        )
        assert rows == [{"bio": SECRET}]

    async def test_a_subquery_of_the_foreign_table_itself_is_fine(self, seed: Seed) -> None:
        # The table is named by a query of its own (its FROM), not smuggled in by a column.
        rows = await db.from_("users").where_in(
            "id", db.from_("profiles").select("profiles.user_id").where("profiles.bio", SECRET)
        )
        assert usernames(rows) == ["bob"]

    async def test_in_a_transaction_nothing_reaches_the_server(self, seed: Seed) -> None:
        # A statement that failed on PostgreSQL would abort the transaction; none was sent.
        async with db.transaction() as trx:
            with pytest.raises(LucidError):
                await trx.from_("users").select("profiles.bio")
            assert usernames(await trx.from_("users").select("username")) == ["alice", "bob"]


class TestForeignQualifierInSubqueries:
    async def test_where_in_subquery(self, seed: Seed) -> None:
        await refused(
            lambda: db.from_("users").where_in(
                "id", db.from_("posts").select("user_id").where("profiles.bio", SECRET)
            ),
            "profiles.bio",
            "profiles",
        )

    async def test_where_in_callback(self, seed: Seed) -> None:
        await refused(
            lambda: db.from_("users").where_in(
                "id", lambda q: q.from_("posts").select("user_id").where("profiles.bio", SECRET)
            ),
            "profiles.bio",
            "profiles",
        )

    async def test_where_exists(self, seed: Seed) -> None:
        await refused(
            lambda: db.from_("users").where_exists(
                lambda q: q.from_("posts").where("profiles.bio", SECRET)
            ),
            "profiles.bio",
            "profiles",
        )

    async def test_order_and_group_of_a_subquery(self, seed: Seed) -> None:
        # SQLAlchemy adds no FROM for these; the server would refuse them once sent.
        await refused(
            lambda: db.from_("users").where_exists(
                lambda q: q.from_("posts").order_by("profiles.bio").limit(1)
            ),
            "profiles.bio",
            "profiles",
        )
        await refused(
            lambda: db.from_("users").where_in(
                "id", lambda q: q.from_("posts").select("user_id").group_by("profiles.bio")
            ),
            "profiles.bio",
            "profiles",
        )

    async def test_scalar_subquery_in_select(self, seed: Seed) -> None:
        await refused(
            lambda: db.from_("users").select(
                "username", db.from_("posts").select("profiles.bio").limit(1).as_("leak")
            ),
            "profiles.bio",
            "profiles",
        )

    async def test_subquery_in_from(self, seed: Seed) -> None:
        await refused(
            lambda: db.query().from_(db.from_("posts").select("profiles.bio").as_("p")),
            "profiles.bio",
            "profiles",
        )


class TestModelAndRelationQueries:
    async def test_model_query_without_the_join(self, seed: Seed, fast_paths: bool) -> None:
        await refused(lambda: User.query().where("posts.title", "hello"), "posts.title", "posts")
        await refused(lambda: User.query().order_by("profiles.bio"), "profiles.bio", "profiles")

    async def test_model_query_with_the_join(self, seed: Seed, fast_paths: bool) -> None:
        found = (
            await User.query()
            .select("users.*")
            .join("posts", "users.id", "posts.user_id")
            .where("posts.title", "hello")
        )
        assert [u.username for u in found] == ["alice"]

    async def test_related_query(self, seed: Seed) -> None:
        await refused(
            lambda: seed.alice.related("posts").query().where("profiles.bio", SECRET),
            "profiles.bio",
            "profiles",
        )

    async def test_preload_callback(self, seed: Seed) -> None:
        # The users query ran; the preload query was refused before it was sent.
        await refused(
            lambda: User.query().preload("posts", lambda q: q.where("profiles.bio", SECRET)),
            "profiles.bio",
            "profiles",
            statements=1,
        )

    async def test_where_has_and_with_count_callbacks(self, seed: Seed) -> None:
        await refused(
            lambda: User.query().where_has("posts", lambda q: q.where("profiles.bio", SECRET)),
            "profiles.bio",
            "profiles",
        )
        await refused(
            lambda: User.query().with_count("posts", lambda q: q.where("profiles.bio", SECRET)),
            "profiles.bio",
            "profiles",
        )

    async def test_many_to_many_pivot_and_has_many_through_tables_are_their_own(
        self, seed: Seed
    ) -> None:
        # The pivot table is a table of the skills query, not of the users query.
        await refused(
            lambda: User.query().where("skill_user.proficiency", "expert"),
            "skill_user.proficiency",
            "skill_user",
        )
        await refused(
            lambda: seed.india.related("posts").query().where("profiles.bio", SECRET),
            "profiles.bio",
            "profiles",
        )


# ----------------------------------------------------------------------------------------------
class TestOwnQualifiersWork:
    async def test_the_from_table(self, seed: Seed, fast_paths: bool) -> None:
        rows = (
            await db.from_("users")
            .select("users.username", "users.points as score")
            .where("users.points", ">", 5)
            .order_by("users.points", "desc")
        )
        assert rows == [{"username": "bob", "score": 20}, {"username": "alice", "score": 10}]

    async def test_an_alias(self, seed: Seed) -> None:
        rows = await db.from_("users as u").select("u.email").where("u.username", "alice")
        assert rows == [{"email": "alice@example.com"}]

    async def test_a_joined_table_and_its_alias(self, seed: Seed) -> None:
        rows = (
            await db.from_("users")
            .join("posts", "users.id", "posts.user_id")
            .select("users.username", "posts.title")
        )
        assert rows == [{"username": "alice", "title": "hello"}]
        # An alias may be named before the join() that introduces it.
        rows = (
            await db.from_("users")
            .where("p.title", "hello")
            .select("users.username")
            .join("posts as p", "users.id", "p.user_id")
        )
        assert rows == [{"username": "alice"}]

    async def test_group_by_having_on_own_tables(self, seed: Seed) -> None:
        rows = (
            await db.from_("users")
            .left_join("posts", "users.id", "posts.user_id")
            .select("users.username")
            .count("posts.id as n")
            .group_by("users.username")
            .having(db.raw("count(posts.id)"), ">", 0)
        )
        assert rows == [{"username": "alice", "n": 1}]

    async def test_a_subquery_alias(self, seed: Seed) -> None:
        titles = db.from_("posts").select("user_id", "title").as_("p")
        rows = await db.query().from_(titles).select("p.title")
        assert rows == [{"title": "hello"}]
        rows = (
            await db.from_("users")
            .join(db.from_("posts").select("user_id", "title").as_("p"), "users.id", "p.user_id")
            .select("users.username", "p.title")
        )
        assert rows == [{"username": "alice", "title": "hello"}]

    async def test_correlated_subqueries(self, seed: Seed, fast_paths: bool) -> None:
        # A callback subquery names the outer query's table.
        rows = await db.from_("users").where_exists(
            lambda q: q.from_("posts").where_column("posts.user_id", "users.id")
        )
        assert usernames(rows) == ["alice"]
        # So does a builder made beforehand (correlated to the query it is put in).
        has_posts = db.from_("posts").where_column("posts.user_id", "users.id")
        assert usernames(await db.from_("users").where_exists(has_posts)) == ["alice"]
        assert usernames(await db.from_("users").where_not_exists(has_posts)) == ["bob"]
        # …and the same builder in a model query correlates to the model's table.
        assert [u.username for u in await User.query().where_exists(has_posts)] == ["alice"]
        # A scalar subquery in select.
        counted = (
            await db.from_("users")
            .select(
                "username",
                db.from_("posts").count("*").where_column("posts.user_id", "users.id").as_("n"),
            )
            .order_by("username")
        )
        assert counted == [{"username": "alice", "n": 1}, {"username": "bob", "n": 0}]

    async def test_relation_subqueries_correlate_to_the_outer_table(self, seed: Seed) -> None:
        found = await User.query().where_has("posts", lambda q: q.where("users.username", "alice"))
        assert [u.username for u in found] == ["alice"]
        counted = await User.query().with_count(
            "posts", lambda q: q.where_column("posts.user_id", "users.id")
        )
        assert sorted((u.username, u.extras["posts_count"]) for u in counted) == [
            ("alice", 1),
            ("bob", 0),
        ]

    async def test_many_to_many_pivot_columns(self, seed: Seed, fast_paths: bool) -> None:
        related = seed.alice.related("skills").query()
        found = await related.where("skill_user.proficiency", "expert")
        assert [s.name for s in found] == ["SQL"]
        found = await seed.alice.related("skills").query().where_pivot("proficiency", "novice")
        assert [s.name for s in found] == ["Go"]
        users = await User.query().preload(
            "skills", lambda q: q.where("skill_user.proficiency", "expert")
        )
        by_name = {u.username: [s.name for s in u.skills] for u in users}
        assert by_name == {"alice": ["SQL"], "bob": []}
        experts = await User.query().where_has(
            "skills", lambda q: q.where("skill_user.proficiency", "expert")
        )
        assert [u.username for u in experts] == ["alice"]

    async def test_has_many_through_intermediate_columns(self, seed: Seed) -> None:
        found = await seed.india.related("posts").query().where("users.username", "alice")
        assert [p.title for p in found] == ["hello"]
        countries = await Country.query().preload(
            "posts", lambda q: q.where("users.username", "bob")
        )
        assert [c.posts for c in countries] == [[]]
        assert [c.name for c in await Country.query().where_has("posts")] == ["India"]


class TestWritesStayOnTheirTable:
    """UPDATE/DELETE used to take a foreign table (or the FROM alias) as ``UPDATE … FROM``:
    every row of the table was written."""

    async def rows(self) -> list[tuple[str, int]]:
        return [
            (r["username"], r["points"])
            for r in await db.from_("users").select("username", "points").order_by("username")
        ]

    async def test_foreign_where_writes_nothing(self, seed: Seed) -> None:
        await refused(
            lambda: db.from_("users").where("profiles.bio", SECRET).update({"points": 0}),
            "profiles.bio",
            "profiles",
        )
        await refused(
            lambda: db.from_("users").where("profiles.bio", SECRET).increment("points"),
            "profiles.bio",
            "profiles",
        )
        await refused(
            lambda: db.from_("users").where("profiles.bio", SECRET).delete(),
            "profiles.bio",
            "profiles",
        )
        await refused(
            lambda: db.from_("users").where("id", seed.bob.id).update({"profiles.bio": "x"}),
            "profiles.bio",
            "profiles",
        )
        assert await self.rows() == [("alice", 10), ("bob", 20)]
        assert await db.from_("profiles").select("bio") == [{"bio": SECRET}]

    async def test_the_from_alias_is_the_table(self, seed: Seed) -> None:
        updated = await db.from_("users as u").where("u.username", "alice").update({"u.points": 11})
        assert updated == 1
        assert await self.rows() == [("alice", 11), ("bob", 20)]
        assert await db.from_("users as u").where("u.username", "bob").increment("points", 2) == 1
        assert await self.rows() == [("alice", 11), ("bob", 22)]
        assert await db.from_("users as u").where("u.username", "bob").delete() == 1
        assert await self.rows() == [("alice", 11)]

    async def test_inserts_name_their_own_table(self, seed: Seed) -> None:
        await refused(
            lambda: db.table("users").insert({"username": "eve", "profiles.bio": "x"}),
            "profiles.bio",
            "profiles",
        )
        await refused(
            lambda: db.table("users").returning("profiles.bio").insert({"username": "eve"}),
            "profiles.bio",
            "profiles",
        )
        rows = await db.table("users").returning("users.username").insert({"users.username": "eve"})
        assert rows == [{"username": "eve"}]
        assert usernames(await db.from_("users").select("username")) == ["alice", "bob", "eve"]
