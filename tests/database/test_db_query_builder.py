"""The database query builder (SPEC §4) against real rows on every dialect."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest

from lucid_orm.database import Database
from lucid_orm.errors import LucidError
from tests.helpers import count_queries, flat


@dataclass
class Seed:
    users: dict[str, int]
    posts: dict[str, int]
    countries: dict[str, int]


@pytest.fixture
async def seed(database: Database) -> Seed:
    """Four users (alice, bob, carol, dave), four posts (none by carol), two countries."""
    countries = {
        r["name"]: r["id"]
        for r in await database.table("countries")
        .returning("id", "name")
        .multi_insert([{"name": "India"}, {"name": "France"}])
    }
    india, france = countries["India"], countries["France"]
    users = {
        r["username"]: r["id"]
        for r in await database.table("users")
        .returning("id", "username")
        .multi_insert(
            [
                {
                    "username": "alice",
                    "email": "alice@example.com",
                    "points": 10,
                    "is_active": True,
                    "country_id": india,
                },
                {
                    "username": "bob",
                    "email": "BOB@example.com",
                    "points": 20,
                    "is_active": False,
                    "country_id": india,
                },
                {
                    "username": "carol",
                    "email": "carol@example.org",
                    "points": 30,
                    "is_active": True,
                    "country_id": france,
                },
                {
                    "username": "dave",
                    "email": None,
                    "points": 40,
                    "is_active": False,
                    "country_id": None,
                },
            ]
        )
    }
    posts = {
        r["title"]: r["id"]
        for r in await database.table("posts")
        .returning("id", "title")
        .multi_insert(
            [
                {"user_id": users["alice"], "title": "Hello", "score": 5, "is_published": True},
                {"user_id": users["alice"], "title": "World", "score": 15, "is_published": False},
                {"user_id": users["bob"], "title": "Bobs", "score": 25, "is_published": True},
                {"user_id": users["dave"], "title": "Daves", "score": 35, "is_published": True},
            ]
        )
    }
    return Seed(users=users, posts=posts, countries=countries)


def names(rows: list[dict[str, Any]]) -> list[str]:
    return [r["username"] for r in rows]


async def usernames(q: Any) -> list[str]:
    """Run ``q`` (a users query) ordered by username; the usernames it returns."""
    return names(await q.order_by("username"))


class TestWhere:
    async def test_column_value(self, database: Database, seed: Seed) -> None:
        rows = await database.from_("users").where("username", "alice")
        assert names(rows) == ["alice"]
        assert rows[0]["id"] == seed.users["alice"]

    async def test_operators(self, database: Database, seed: Seed) -> None:
        users = database.from_("users")
        assert await usernames(users.clone().where("points", ">", 15)) == ["bob", "carol", "dave"]
        assert await usernames(
            users.clone().where("points", ">=", 20).where("points", "<", 40)
        ) == [
            "bob",
            "carol",
        ]
        assert await usernames(users.clone().where("points", "<=", 10)) == ["alice"]
        assert await usernames(users.clone().where("points", "!=", 10)) == ["bob", "carol", "dave"]
        assert await usernames(users.clone().where("points", "<>", 10)) == ["bob", "carol", "dave"]
        assert await usernames(users.clone().where("username", "in", ["bob", "dave"])) == [
            "bob",
            "dave",
        ]
        assert await usernames(users.clone().where("username", "like", "ca%")) == ["carol"]

    async def test_dict(self, database: Database, seed: Seed) -> None:
        q = database.from_("users").where(
            {"is_active": True, "country_id": seed.countries["India"]}
        )
        assert await usernames(q) == ["alice"]

    async def test_none_is_null(self, database: Database, seed: Seed) -> None:
        assert await usernames(database.from_("users").where("email", None)) == ["dave"]

    async def test_callback_groups(self, database: Database, seed: Seed) -> None:
        grouped = (
            database.from_("users")
            .where(lambda q: q.where("username", "alice").or_where("username", "bob"))
            .where("points", ">", 10)
        )
        assert await usernames(grouped) == ["bob"]
        # Without the group AND binds tighter: alice OR (bob AND points > 10).
        flat = (
            database.from_("users")
            .where("username", "alice")
            .or_where("username", "bob")
            .where("points", ">", 10)
        )
        assert await usernames(flat) == ["alice", "bob"]

    async def test_raw_condition(self, database: Database, seed: Seed) -> None:
        q = database.from_("users").where(database.raw("points > ?", [25]))
        assert await usernames(q) == ["carol", "dave"]

    async def test_and_or(self, database: Database, seed: Seed) -> None:
        q = database.from_("users").where("username", "alice").or_where("points", ">", 25)
        assert await usernames(q) == ["alice", "carol", "dave"]
        q = database.from_("users").where("points", ">", 15).and_where("is_active", True)
        assert await usernames(q) == ["carol"]
        q = (
            database.from_("users")
            .where("username", "alice")
            .or_where(lambda g: g.where("points", ">", 25).where("is_active", True))
        )
        assert await usernames(q) == ["alice", "carol"]

    async def test_not_forms(self, database: Database, seed: Seed) -> None:
        users = database.from_("users")
        assert await usernames(users.clone().where_not("username", "alice")) == [
            "bob",
            "carol",
            "dave",
        ]
        q = users.clone().where_not(
            lambda g: g.where("points", "<", 20).or_where("points", ">", 35)
        )
        assert await usernames(q) == ["bob", "carol"]
        q = users.clone().where("username", "alice").or_where_not("points", "<", 40)
        assert await usernames(q) == ["alice", "dave"]
        q = users.clone().where("is_active", True).and_where_not("username", "carol")
        assert await usernames(q) == ["alice"]


class TestWhereIn:
    async def test_list(self, database: Database, seed: Seed) -> None:
        users = database.from_("users")
        assert await usernames(users.clone().where_in("username", ["alice", "carol"])) == [
            "alice",
            "carol",
        ]
        assert await usernames(users.clone().where_in("username", ("bob",))) == ["bob"]
        assert await usernames(users.clone().where_not_in("username", ["alice"])) == [
            "bob",
            "carol",
            "dave",
        ]
        q = users.clone().where("username", "alice").or_where_in("points", [30, 40])
        assert await usernames(q) == ["alice", "carol", "dave"]
        q = users.clone().where("username", "alice").or_where_not_in("points", [10, 20, 30])
        assert await usernames(q) == ["alice", "dave"]
        q = users.clone().where_in("points", [10, 20]).and_where_not_in("username", ["bob"])
        assert await usernames(q) == ["alice"]

    async def test_empty_list(self, database: Database, seed: Seed) -> None:
        assert await database.from_("users").where_in("id", []) == []
        assert len(await database.from_("users").where_not_in("id", [])) == 4

    async def test_subquery_builder(self, database: Database, seed: Seed) -> None:
        authors = database.from_("posts").select("user_id")
        q = database.from_("users").where_in("id", authors)
        assert await usernames(q) == ["alice", "bob", "dave"]
        q = database.from_("users").where_not_in("id", database.from_("posts").select("user_id"))
        assert await usernames(q) == ["carol"]

    async def test_subquery_callback(self, database: Database, seed: Seed) -> None:
        q = database.from_("users").where_in(
            "id", lambda sub: sub.from_("posts").select("user_id").where("score", ">", 20)
        )
        with count_queries() as log:
            assert await usernames(q) == ["bob", "dave"]
        assert log.count == 1

    async def test_raw(self, database: Database, seed: Seed) -> None:
        q = database.from_("users").where_in(
            "id", database.raw("select user_id from posts where score > ?", [30])
        )
        assert await usernames(q) == ["dave"]

    async def test_tuples(self, database: Database, seed: Seed) -> None:
        q = database.from_("users").where_in(
            ["username", "points"], [["alice", 10], ["bob", 99], ("carol", 30)]
        )
        assert await usernames(q) == ["alice", "carol"]
        q = database.from_("users").where_not_in(("username", "points"), [("alice", 10)])
        assert await usernames(q) == ["bob", "carol", "dave"]

    async def test_tuples_subquery(self, database: Database, seed: Seed) -> None:
        sub = database.from_("posts").select("user_id", "score").where("score", 25)
        q = database.from_("users").where_in(["id", "points"], sub)
        assert await usernames(q) == []
        sub = database.from_("posts").select("user_id").select(database.raw("score - 5"))
        q = database.from_("users").where_in(["id", "points"], sub)
        assert await usernames(q) == ["alice", "bob"]  # World: 15 - 5, Bobs: 25 - 5

    async def test_rejects_a_string(self, database: Database, seed: Seed) -> None:
        with pytest.raises(LucidError) as info:
            database.from_("users").where_in("id", "1,2")
        assert info.value.code == "E_INVALID_ARGUMENT"


class TestNullBetweenLike:
    async def test_null(self, database: Database, seed: Seed) -> None:
        users = database.from_("users")
        assert await usernames(users.clone().where_null("email")) == ["dave"]
        assert await usernames(users.clone().where_not_null("email")) == ["alice", "bob", "carol"]
        q = users.clone().where("username", "alice").or_where_null("email")
        assert await usernames(q) == ["alice", "dave"]
        q = users.clone().where_null("email").or_where_not_null("country_id")
        assert await usernames(q) == ["alice", "bob", "carol", "dave"]
        q = users.clone().where_not_null("email").and_where_null("country_id")
        assert await usernames(q) == []
        q = users.clone().where_not_null("email").and_where_not_null("country_id")
        assert await usernames(q) == ["alice", "bob", "carol"]

    async def test_between(self, database: Database, seed: Seed) -> None:
        users = database.from_("users")
        assert await usernames(users.clone().where_between("points", [15, 30])) == ["bob", "carol"]
        assert await usernames(users.clone().where_not_between("points", (15, 30))) == [
            "alice",
            "dave",
        ]
        q = users.clone().where("username", "dave").or_where_between("points", [10, 10])
        assert await usernames(q) == ["alice", "dave"]
        q = users.clone().where("username", "bob").or_where_not_between("points", [10, 30])
        assert await usernames(q) == ["bob", "dave"]
        q = (
            users.clone()
            .where_between("points", [10, 30])
            .and_where_not_between("points", [20, 20])
        )
        assert await usernames(q) == ["alice", "carol"]
        q = users.clone().where_not_null("email").and_where_between("points", [15, 40])
        assert await usernames(q) == ["bob", "carol"]

    async def test_between_needs_two_values(self, database: Database) -> None:
        with pytest.raises(LucidError) as info:
            database.from_("users").where_between("points", [1, 2, 3])
        assert info.value.code == "E_INVALID_ARGUMENT"

    async def test_like(self, database: Database, seed: Seed) -> None:
        users = database.from_("users")
        assert await usernames(users.clone().where_like("email", "%example.com")) == [
            "alice",
            "bob",
        ]
        q = users.clone().where_like("email", "%.org").or_where_like("username", "d%")
        assert await usernames(q) == ["carol", "dave"]
        q = users.clone().where_like("email", "%@%").and_where_like("username", "%o%")
        assert await usernames(q) == ["bob", "carol"]

    async def test_ilike_is_case_insensitive_everywhere(
        self, database: Database, seed: Seed
    ) -> None:
        users = database.from_("users")
        assert await usernames(users.clone().where_ilike("email", "bob@%")) == ["bob"]
        assert await usernames(users.clone().where_ilike("email", "ALICE@%")) == ["alice"]
        q = users.clone().where_ilike("email", "BOB%").or_where_ilike("email", "CAROL%")
        assert await usernames(q) == ["bob", "carol"]
        q = users.clone().where_ilike("email", "%EXAMPLE%").and_where_ilike("username", "A%")
        assert await usernames(q) == ["alice"]


class TestExists:
    async def test_correlated_callback(self, database: Database, seed: Seed) -> None:
        q = database.from_("users").where_exists(
            lambda sub: sub.from_("posts").where_column("posts.user_id", "users.id")
        )
        with count_queries() as log:
            assert await usernames(q) == ["alice", "bob", "dave"]
        assert log.count == 1

    async def test_correlated_builder(self, database: Database, seed: Seed) -> None:
        published = (
            database.from_("posts")
            .where_column("posts.user_id", "users.id")
            .where("posts.is_published", True)
        )
        q = database.from_("users").where_exists(published)
        assert await usernames(q) == ["alice", "bob", "dave"]
        big = (
            database.from_("posts")
            .where_column("posts.user_id", "users.id")
            .where("score", ">", 20)
        )
        assert await usernames(database.from_("users").where_not_exists(big)) == ["alice", "carol"]

    async def test_or_and_forms(self, database: Database, seed: Seed) -> None:
        def posts_of_user(sub: Any) -> None:
            sub.from_("posts").where_column("posts.user_id", "users.id")

        q = (
            database.from_("users")
            .where("username", "carol")
            .or_where_exists(
                lambda s: (
                    s.from_("posts").where_column("posts.user_id", "users.id").where("score", 5)
                )
            )
        )
        assert await usernames(q) == ["alice", "carol"]
        q = database.from_("users").where("username", "alice").or_where_not_exists(posts_of_user)
        assert await usernames(q) == ["alice", "carol"]
        q = database.from_("users").where("points", ">", 15).and_where_exists(posts_of_user)
        assert await usernames(q) == ["bob", "dave"]
        q = database.from_("users").where("points", ">", 15).and_where_not_exists(posts_of_user)
        assert await usernames(q) == ["carol"]

    async def test_aliased_outer_table(self, database: Database, seed: Seed) -> None:
        q = (
            database.from_("users as u")
            .select("u.username")
            .where_exists(lambda s: s.from_("posts").where_column("posts.user_id", "u.id"))
        )
        assert await usernames(q) == ["alice", "bob", "dave"]

    async def test_raw(self, database: Database, seed: Seed) -> None:
        q = database.from_("users").where_exists(
            database.raw("select 1 from posts where posts.user_id = users.id and score > ?", [30])
        )
        assert await usernames(q) == ["dave"]


class TestWhereColumnAndRaw:
    async def test_where_column(self, database: Database, seed: Seed) -> None:
        base = database.from_("posts").join("users", "users.id", "posts.user_id")
        q = base.clone().select("posts.title").where_column("posts.score", ">", "users.points")
        assert sorted(r["title"] for r in await q) == ["Bobs", "World"]
        q = base.clone().select("posts.title").where_not_column("posts.score", ">", "users.points")
        assert sorted(r["title"] for r in await q) == ["Daves", "Hello"]
        q = (
            base.clone()
            .select("posts.title")
            .where("posts.title", "Hello")
            .or_where_column("posts.score", ">", "users.points")
        )
        assert sorted(r["title"] for r in await q) == ["Bobs", "Hello", "World"]
        q = (
            base.clone()
            .select("posts.title")
            .where_column("posts.user_id", "users.id")
            .and_where_column("posts.score", "<", "users.points")
        )
        assert sorted(r["title"] for r in await q) == ["Daves", "Hello"]

    async def test_where_raw(self, database: Database, seed: Seed) -> None:
        q = database.from_("users").where_raw("points > ? and username <> ?", [15, "bob"])
        assert await usernames(q) == ["carol", "dave"]
        q = database.from_("users").where_raw("username = :name", {"name": "alice"})
        assert await usernames(q) == ["alice"]
        q = database.from_("users").where_raw("points = ?", [10]).or_where_raw("points = ?", [40])
        assert await usernames(q) == ["alice", "dave"]
        # A raw condition is grouped: its OR cannot escape the AND.
        q = (
            database.from_("users")
            .where("is_active", True)
            .and_where_raw("points = ? or points = ?", [10, 40])
        )
        assert await usernames(q) == ["alice"]


class TestSelectAndFrom:
    async def test_columns(self, database: Database, seed: Seed) -> None:
        rows = await database.from_("users").select("username", "points").order_by("points")
        assert rows[0] == {"username": "alice", "points": 10}
        rows = await database.from_("users").select(["username"]).where("username", "bob")
        assert rows == [{"username": "bob"}]
        rows = await database.from_("users").columns("users.username").where("username", "bob")
        assert rows == [{"username": "bob"}]

    async def test_aliases(self, database: Database, seed: Seed) -> None:
        rows = await database.from_("users").select("username as name").where("points", 10)
        assert rows == [{"name": "alice"}]
        rows = await database.from_("users").select({"name": "username"}).where("points", 10)
        assert rows == [{"name": "alice"}]
        rows = await (
            database.from_("users")
            .select("username", database.raw("points * ?", [2]).as_("double"))
            .where("points", 10)
        )
        assert rows == [{"username": "alice", "double": 20}]

    async def test_star_of_table(self, database: Database, seed: Seed) -> None:
        rows = await (
            database.from_("users")
            .select("users.*")
            .join("posts", "users.id", "posts.user_id")
            .where("posts.title", "Hello")
        )
        assert names(rows) == ["alice"]
        assert "title" not in rows[0]

    async def test_subquery_column(self, database: Database, seed: Seed) -> None:
        post_count = (
            database.from_("posts").count("*").where_column("posts.user_id", "users.id").as_("n")
        )
        rows = await database.from_("users").select("username", post_count).order_by("username")
        assert [(r["username"], r["n"]) for r in rows] == [
            ("alice", 2),
            ("bob", 1),
            ("carol", 0),
            ("dave", 1),
        ]

    async def test_from_alias(self, database: Database, seed: Seed) -> None:
        rows = await database.from_("users as u").select("u.username").where("u.points", ">", 25)
        assert sorted(names(rows)) == ["carol", "dave"]

    async def test_from_subquery(self, database: Database, seed: Seed) -> None:
        rich = database.from_("users").select("username", "points").where("points", ">", 15)
        rows = await (
            database.query()
            .from_(rich.as_("rich"))
            .select("rich.username")
            .where("rich.points", "<", 40)
            .order_by("rich.username")
        )
        assert names(rows) == ["bob", "carol"]
        rows = await database.query().from_(
            lambda sub: sub.from_("users").select("username").where("points", 10)
        )
        assert names(rows) == ["alice"]

    async def test_table_alias_of_from(self, database: Database, seed: Seed) -> None:
        assert names(await database.query().table("users").where("points", 20)) == ["bob"]

    async def test_await_is_exec(self, database: Database, seed: Seed) -> None:
        q = database.from_("users").where("points", 20)
        assert await q == await q.exec()


class TestJoins:
    async def test_inner_join(self, database: Database, seed: Seed) -> None:
        rows = await (
            database.from_("users")
            .join("posts", "users.id", "posts.user_id")
            .select("users.username", "posts.title")
            .order_by("posts.title")
        )
        assert [(r["username"], r["title"]) for r in rows] == [
            ("bob", "Bobs"),
            ("dave", "Daves"),
            ("alice", "Hello"),
            ("alice", "World"),
        ]

    async def test_join_with_operator_and_alias(self, database: Database, seed: Seed) -> None:
        rows = await (
            database.from_("users")
            .join("posts as p", "users.id", "=", "p.user_id")
            .select("p.title")
            .where("users.username", "alice")
            .order_by("p.title")
        )
        assert [r["title"] for r in rows] == ["Hello", "World"]
        rows = await (
            database.from_("users as u")
            .inner_join("posts as p", "u.id", "p.user_id")
            .select("u.username")
            .where("p.score", ">", 30)
        )
        assert names(rows) == ["dave"]

    async def test_left_join(self, database: Database, seed: Seed) -> None:
        rows = await (
            database.from_("users")
            .left_join("posts", "users.id", "posts.user_id")
            .select("users.username", "posts.title")
            .where_null("posts.id")
        )
        assert rows == [{"username": "carol", "title": None}]
        rows = await (
            database.from_("users")
            .left_outer_join("posts", "users.id", "posts.user_id")
            .select("users.username")
        )
        assert len(rows) == 5

    async def test_join_callback(self, database: Database, seed: Seed) -> None:
        rows = await (
            database.from_("users")
            .join(
                "posts",
                lambda j: j.on("users.id", "posts.user_id").on_val("posts.is_published", True),
            )
            .select("posts.title")
            .order_by("posts.title")
        )
        assert [r["title"] for r in rows] == ["Bobs", "Daves", "Hello"]
        rows = await (
            database.from_("users")
            .left_join(
                "posts",
                lambda j: j.on("users.id", "posts.user_id").and_on(
                    lambda g: g.on_val("posts.score", ">", 20).or_on_val("posts.title", "Hello")
                ),
            )
            .select("users.username", "posts.title")
            .order_by("users.username")
        )
        assert [(r["username"], r["title"]) for r in rows] == [
            ("alice", "Hello"),
            ("bob", "Bobs"),
            ("carol", None),
            ("dave", "Daves"),
        ]

    async def test_join_callback_on_forms(self, database: Database, seed: Seed) -> None:
        rows = await (
            database.from_("users")
            .join(
                "posts",
                lambda j: (
                    j.on("users.id", "posts.user_id")
                    .on_not_null("posts.score")
                    .on_in("posts.title", ["Hello", "Daves"])
                ),
            )
            .select("posts.title")
            .order_by("posts.title")
        )
        assert [r["title"] for r in rows] == ["Daves", "Hello"]
        rows = await (
            database.from_("users")
            .join("posts", lambda j: j.on("users.id", "posts.user_id").on_null("posts.body"))
            .count("* as n")
        )
        assert rows == [{"n": 4}]

    async def test_join_raw(self, database: Database, seed: Seed) -> None:
        rows = await (
            database.from_("users")
            .join_raw("inner join posts on posts.user_id = users.id and posts.score > ?", [20])
            .select("users.username")
            .order_by("users.username")
        )
        assert names(rows) == ["bob", "dave"]

    async def test_join_subquery(self, database: Database, seed: Seed) -> None:
        counts = (
            database.from_("posts").select("user_id").count("* as n").group_by("user_id").as_("pc")
        )
        rows = await (
            database.from_("users")
            .join(counts, "pc.user_id", "users.id")
            .select("users.username", "pc.n")
            .where("pc.n", ">", 1)
        )
        assert rows == [{"username": "alice", "n": 2}]


class TestSelfReferences:
    async def test_subquery_on_the_same_table(self, database: Database, seed: Seed) -> None:
        q = database.from_("users").where_in(
            "id", database.from_("users").select("id").where("points", ">", 25)
        )
        assert await usernames(q) == ["carol", "dave"]
        q = database.from_("users").where("points", database.from_("users").max("points"))
        assert await usernames(q) == ["dave"]
        q = database.from_("users").where("points", "<", database.from_("users").avg("points"))
        assert await usernames(q) == ["alice", "bob"]
        q = database.from_("users").where(
            "id", "in", database.from_("users").select("id").where("points", 10)
        )
        assert await usernames(q) == ["alice"]

    async def test_correlated_on_an_alias_of_the_same_table(
        self, database: Database, seed: Seed
    ) -> None:
        q = (
            database.from_("users as u")
            .select("u.username")
            .where_not_exists(
                lambda s: s.from_("users").where_column("users.points", ">", "u.points")
            )
        )
        assert await usernames(q) == ["dave"]

    async def test_self_join(self, database: Database, seed: Seed) -> None:
        rows = await (
            database.from_("users")
            .join("users as better", "better.points", ">", "users.points")
            .select("users.username")
            .count("* as n")
            .group_by("users.username")
            .order_by("users.username")
        )
        assert [(r["username"], r["n"]) for r in rows] == [("alice", 3), ("bob", 2), ("carol", 1)]

    async def test_cross_and_full_outer_join(
        self, database: Database, seed: Seed, dialect: str
    ) -> None:
        assert await database.from_("users").cross_join("countries").count("* as n") == [{"n": 8}]
        if dialect == "mysql":
            return  # MySQL/MariaDB have no FULL OUTER JOIN
        rows = await (
            database.from_("users")
            .full_outer_join("posts", "users.id", "posts.user_id")
            .select("users.username", "posts.title")
        )
        assert len(rows) == 5


class TestClear:
    async def test_clear_methods(self, database: Database, seed: Seed) -> None:
        q = (
            database.from_("users")
            .select("username")
            .where("username", "alice")
            .order_by("points", "desc")
            .limit(1)
            .offset(1)
        )
        q.clear_where().clear_order().clear_limit().clear_offset().clear_select()
        assert len(await q) == 4
        assert "username" not in q.to_sql()[0].split("FROM")[0]
        q = database.from_("users").count("* as n").clear_select().select("username")
        assert await usernames(q) == ["alice", "bob", "carol", "dave"]


class TestOrderGroupPage:
    async def test_order_by(self, database: Database, seed: Seed) -> None:
        users = database.from_("users")
        assert names(await users.clone().order_by("points", "desc")) == [
            "dave",
            "carol",
            "bob",
            "alice",
        ]
        assert names(await users.clone().order_by("points", "DESC").order_by("id")) == [
            "dave",
            "carol",
            "bob",
            "alice",
        ]
        assert names(await users.clone().order_by(["is_active", "points"])) == [
            "bob",
            "dave",
            "alice",
            "carol",
        ]
        ordered = users.clone().order_by(
            [{"column": "is_active", "order": "desc"}, {"column": "points", "order": "asc"}]
        )
        assert names(await ordered) == ["alice", "carol", "bob", "dave"]

    async def test_order_by_subquery(self, database: Database, seed: Seed) -> None:
        max_score = database.from_("posts").max("score").where_column("posts.user_id", "users.id")
        rows = (
            await database.from_("users")
            .where_exists(lambda s: s.from_("posts").where_column("posts.user_id", "users.id"))
            .order_by(max_score, "desc")
        )
        assert names(rows) == ["dave", "bob", "alice"]

    async def test_order_by_raw(self, database: Database, seed: Seed) -> None:
        users = database.from_("users")
        assert names(await users.clone().order_by_raw("points desc")) == [
            "dave",
            "carol",
            "bob",
            "alice",
        ]
        q = users.clone().order_by_raw(
            "case when username = ? then 0 else 1 end, username", ["carol"]
        )
        assert names(await q) == ["carol", "alice", "bob", "dave"]

    async def test_invalid_direction(self, database: Database) -> None:
        with pytest.raises(LucidError) as info:
            database.from_("users").order_by("id", "sideways")
        assert info.value.code == "E_INVALID_ARGUMENT"
        assert 'Invalid order direction "sideways"' in str(info.value)

    async def test_group_by_having(self, database: Database, seed: Seed) -> None:
        base = database.from_("posts").select("user_id").count("* as n").group_by("user_id")
        rows = await base.clone().order_by("user_id")
        assert {r["user_id"]: r["n"] for r in rows} == {
            seed.users["alice"]: 2,
            seed.users["bob"]: 1,
            seed.users["dave"]: 1,
        }
        rows = await base.clone().having(database.raw("count(*)"), ">", 1)
        assert rows == [{"user_id": seed.users["alice"], "n": 2}]
        rows = await base.clone().having_raw("count(*) > ?", [1])
        assert rows == [{"user_id": seed.users["alice"], "n": 2}]
        rows = await (
            base.clone()
            .having(database.raw("count(*)"), ">", 1)
            .or_having("user_id", seed.users["bob"])
            .order_by("n")
        )
        assert [r["user_id"] for r in rows] == [seed.users["bob"], seed.users["alice"]]
        rows = await (
            base.clone()
            .having_raw("count(*) = ?", [1])
            .and_having("user_id", "<>", seed.users["bob"])
            .and_having_raw("count(*) < ?", [5])
        )
        assert [r["user_id"] for r in rows] == [seed.users["dave"]]
        rows = await (
            base.clone()
            .having_raw("count(*) > ?", [1])
            .or_having_raw("user_id = ?", [seed.users["dave"]])
            .order_by("user_id")
        )
        assert {r["user_id"] for r in rows} == {seed.users["alice"], seed.users["dave"]}
        rows = await base.clone().having(
            lambda h: h.having("user_id", seed.users["bob"]).or_having(
                "user_id", seed.users["dave"]
            )
        )
        assert {r["user_id"] for r in rows} == {seed.users["bob"], seed.users["dave"]}

    async def test_group_by_raw_and_several_columns(self, database: Database, seed: Seed) -> None:
        rows = await (
            database.from_("posts")
            .select("user_id", "is_published")
            .count("* as n")
            .group_by("user_id", "is_published")
            .where("user_id", seed.users["alice"])
        )
        assert len(rows) == 2
        bucket = "case when points < 35 then 'low' else 'high' end"
        rows = await (
            database.from_("users")
            .select(database.raw(bucket).as_("bucket"))
            .count("* as n")
            .group_by_raw(bucket)
            .order_by_raw(bucket)
        )
        assert rows == [{"bucket": "high", "n": 1}, {"bucket": "low", "n": 3}]

    async def test_limit_offset_for_page(self, database: Database, seed: Seed) -> None:
        users = database.from_("users").order_by("points")
        assert names(await users.clone().limit(2)) == ["alice", "bob"]
        assert names(await users.clone().offset(1).limit(2)) == ["bob", "carol"]
        assert names(await users.clone().offset(3)) == ["dave"]
        assert names(await users.clone().for_page(1, 3)) == ["alice", "bob", "carol"]
        assert names(await users.clone().for_page(2, 3)) == ["dave"]
        assert names(await users.clone().for_page(3, 3)) == []
        with pytest.raises(LucidError, match="page to be an int of 1 or more"):
            users.clone().for_page(0, 1)  # pages count from 1: see test_builder_errors.py
        assert names(await users.clone().limit(2).clear_limit()) == [
            "alice",
            "bob",
            "carol",
            "dave",
        ]
        with pytest.raises(LucidError):
            users.clone().limit(-1)
        with pytest.raises(LucidError):
            users.clone().offset(-1)

    async def test_distinct(self, database: Database, seed: Seed) -> None:
        rows = await database.from_("users").distinct("country_id").where_not_null("country_id")
        assert sorted(r["country_id"] for r in rows) == sorted(seed.countries.values())
        rows = await database.from_("posts").select("user_id").distinct()
        assert len(rows) == 3


class TestAggregates:
    async def test_count(self, database: Database, seed: Seed) -> None:
        assert await database.from_("users").count() == [{"count": 4}]
        assert await database.from_("users").count("*") == [{"count": 4}]
        assert await database.from_("users").count("email") == [{"count": 3}]
        assert await database.from_("users").count("* as total") == [{"total": 4}]
        assert await database.from_("users").count("email as n") == [{"n": 3}]
        assert await database.from_("users").count("email").as_("with_email") == [{"with_email": 3}]
        assert await database.from_("users").count({"n": "email"}) == [{"n": 3}]
        assert await database.from_("users").count_distinct("country_id") == [{"count": 2}]
        assert await database.from_("users").count_distinct("country_id as c") == [{"c": 2}]

    async def test_min_max(self, database: Database, seed: Seed) -> None:
        assert await database.from_("users").min("points") == [{"min": 10}]
        assert await database.from_("users").max("points") == [{"max": 40}]
        assert await database.from_("users").max("points as top") == [{"top": 40}]
        assert await database.from_("users").min("points").as_("low") == [{"low": 10}]

    async def test_sum_avg(self, database: Database, seed: Seed) -> None:
        (row,) = await database.from_("users").sum("points")
        assert list(row) == ["sum"]
        assert row["sum"] == 100
        (row,) = await database.from_("users").avg("points")
        assert list(row) == ["avg"]
        assert float(row["avg"]) == 25.0
        (row,) = await database.from_("users").sum("points as total").avg("points as mean")
        assert row["total"] == 100
        assert float(row["mean"]) == 25.0
        (row,) = await database.from_("users").where("username", "nobody").sum("points")
        assert row == {"sum": None}
        (row,) = await database.from_("posts").sum_distinct("user_id").as_("s")
        assert row["s"] == sum([seed.users["alice"], seed.users["bob"], seed.users["dave"]])
        (row,) = await database.from_("users").avg_distinct("points").as_("a")
        assert float(row["a"]) == 25.0

    async def test_several_aggregates(self, database: Database, seed: Seed) -> None:
        (row,) = await database.from_("users").count("* as n").min("points").max("points")
        assert row == {"n": 4, "min": 10, "max": 40}


class TestConditionalsAndClone:
    async def test_if(self, database: Database, seed: Seed) -> None:
        users = database.from_("users")
        q = users.clone().if_(True, lambda q: q.where("username", "alice"))
        assert await usernames(q) == ["alice"]
        q = users.clone().if_(0, lambda q: q.where("username", "alice"))
        assert len(await q) == 4
        q = users.clone().if_(
            False, lambda q: q.where("username", "alice"), lambda q: q.where("username", "bob")
        )
        assert await usernames(q) == ["bob"]
        q = users.clone().if_(lambda: True, lambda q: q.where("username", "carol"))
        assert await usernames(q) == ["carol"]

    async def test_unless(self, database: Database, seed: Seed) -> None:
        users = database.from_("users")
        q = users.clone().unless(False, lambda q: q.where("username", "alice"))
        assert await usernames(q) == ["alice"]
        q = users.clone().unless(
            "yes", lambda q: q.where("username", "alice"), lambda q: q.where("username", "dave")
        )
        assert await usernames(q) == ["dave"]
        q = users.clone().unless(lambda: "", lambda q: q.where("username", "bob"))
        assert await usernames(q) == ["bob"]

    async def test_async_callback_is_rejected(self, database: Database) -> None:
        async def cb(q: Any) -> None:
            q.where("id", 1)

        with pytest.raises(LucidError) as info:
            database.from_("users").where(cb)
        assert info.value.code == "E_RUNTIME_EXCEPTION"

    async def test_clone_is_independent(self, database: Database, seed: Seed) -> None:
        original = database.from_("users").where("points", ">", 15)
        before = original.to_sql()
        copy = original.clone().where("username", "bob").order_by("id").limit(1).select("username")
        assert await copy == [{"username": "bob"}]
        assert original.to_sql() == before
        assert await usernames(original) == ["bob", "carol", "dave"]
        # ... and the other way round.
        original.where("username", "carol")
        assert await copy == [{"username": "bob"}]


class TestCompile:
    async def test_to_sql_bindings_in_order(self, database: Database, dialect: str) -> None:
        q = (
            database.from_("users")
            .where("username", "alice")
            .where("points", ">", 5)
            .where_in("country_id", [7, 8])
            .or_where_between("points", [100, 200])
        )
        sql, bindings = q.to_sql()
        # The where_in keys are one binding on PostgreSQL (an array) and SQLite (JSON text).
        assert flat(bindings) == ["alice", 5, 7, 8, 100, 200]
        placeholder = {"sqlite": "?", "postgresql": "$1", "mysql": "%s"}[dialect]
        assert placeholder in sql
        assert "alice" not in sql
        assert q.to_sql() == (sql, bindings)  # compiling twice changes nothing

    async def test_to_sql_bindings_follow_the_placeholders(
        self, database: Database, dialect: str
    ) -> None:
        q = database.from_("users").where("username", "a").where_in("id", [7, 8]).limit(3).offset(4)
        sql, bindings = q.to_sql()
        # MySQL spells it LIMIT <offset>, <count>.
        tail = [4, 3] if dialect == "mysql" else [3, 4]
        assert flat(bindings) == ["a", 7, 8, *tail]
        if dialect == "postgresql":
            # Numbered in order of appearance, although SQLAlchemy numbers an expanded IN last.
            assert re.findall(r"\$(\d+)", sql) == ["1", "2", "3", "4"]

    async def test_to_sql_with_raw_and_subquery(self, database: Database) -> None:
        q = (
            database.from_("users")
            .where_raw("points > ?", [1])
            .where_in("id", database.from_("posts").select("user_id").where("score", 2))
            .where("username", "x")
        )
        _sql, bindings = q.to_sql()
        assert bindings == [1, 2, "x"]

    async def test_to_query_inlines_values(self, database: Database) -> None:
        text = database.from_("users").where("username", "alice").where("points", ">", 5).to_query()
        assert "'alice'" in text
        assert "5" in text
        assert "?" not in text and "%s" not in text and "$1" not in text
        assert (
            str(database.from_("users").where("username", "bob"))
            == database.from_("users").where("username", "bob").to_query()
        )

    async def test_to_sql_runs_no_query(self, database: Database) -> None:
        with count_queries() as log:
            database.from_("users").where("id", 1).to_sql()
            database.from_("users").where("id", 1).to_query()
        assert log.count == 0


class TestWrites:
    async def test_update(self, database: Database, seed: Seed) -> None:
        with count_queries() as log:
            affected = await database.from_("users").where("points", ">", 15).update({"points": 0})
        assert affected == 3
        assert log.count == 1
        assert await usernames(database.from_("users").where("points", 0)) == [
            "bob",
            "carol",
            "dave",
        ]
        assert await database.from_("users").where("username", "alice").update("points", 7) == 1
        assert (await database.from_("users").where("username", "alice").first() or {})[
            "points"
        ] == 7

    async def test_update_counts_matched_rows(self, database: Database, seed: Seed) -> None:
        # Setting a value a row already has still counts it (MySQL's FOUND_ROWS behaviour).
        assert await database.from_("users").where("username", "alice").update({"points": 10}) == 1

    async def test_update_nothing_matches(self, database: Database, seed: Seed) -> None:
        assert await database.from_("users").where("username", "zed").update({"points": 1}) == 0

    async def test_update_all_rows_and_raw_value(self, database: Database, seed: Seed) -> None:
        assert await database.from_("users").update({"points": database.raw("points * 2")}) == 4
        rows = await database.from_("users").select("points").order_by("points")
        assert [r["points"] for r in rows] == [20, 40, 60, 80]

    async def test_update_with_subquery(self, database: Database, seed: Seed) -> None:
        affected = await (
            database.from_("posts")
            .where_in("user_id", database.from_("users").select("id").where("is_active", True))
            .update({"score": 100})
        )
        assert affected == 2
        rows = await database.from_("posts").where("score", 100).order_by("title")
        assert [r["title"] for r in rows] == ["Hello", "World"]

    async def test_increment_decrement(self, database: Database, seed: Seed) -> None:
        alice = database.from_("users").where("id", seed.users["alice"])
        assert await alice.clone().increment("points") == 1
        assert (await alice.clone().first() or {})["points"] == 11
        assert await alice.clone().increment("points", 5) == 1
        assert (await alice.clone().first() or {})["points"] == 16
        assert await alice.clone().decrement("points", 6) == 1
        assert (await alice.clone().first() or {})["points"] == 10
        assert await alice.clone().decrement("points") == 1
        assert (await alice.clone().first() or {})["points"] == 9
        assert await database.from_("users").where_not_null("email").increment("points", 1) == 3
        assert await alice.clone().increment({"points": 2, "country_id": 1}) == 1
        row = await alice.clone().first() or {}
        assert row["points"] == 12
        assert row["country_id"] == seed.countries["India"] + 1

    async def test_increment_rejects_non_numbers(self, database: Database) -> None:
        with pytest.raises(LucidError):
            await database.from_("users").increment("points", "1")  # type: ignore[arg-type]

    async def test_delete(self, database: Database, seed: Seed) -> None:
        assert await database.from_("posts").where("score", "<", 20).delete() == 2
        assert await database.from_("posts").where("score", "<", 20).delete() == 0
        assert await database.from_("posts").del_() == 2
        assert await database.from_("posts") == []

    async def test_writes_reject_joins(self, database: Database) -> None:
        with pytest.raises(LucidError):
            await database.from_("users").join("posts", "users.id", "posts.user_id").delete()


class TestReading:
    async def test_first(self, database: Database, seed: Seed) -> None:
        with count_queries() as log:
            row = await database.from_("users").order_by("points", "desc").first()
        assert row is not None and row["username"] == "dave"
        assert log.count == 1
        assert "LIMIT" in log.sqls[0].upper()
        assert await database.from_("users").where("username", "zed").first() is None

    async def test_count_rows(self, database: Database, seed: Seed) -> None:
        with count_queries() as log:
            assert await database.from_("users").count_rows() == 4
        assert log.count == 1
        assert await database.from_("users").where("points", ">", 15).count_rows() == 3
        assert await database.from_("users").where("username", "zed").count_rows() == 0
        assert await database.from_("users").distinct("country_id").count_rows() == 3
        assert await database.from_("posts").select("user_id").group_by("user_id").count_rows() == 3
        assert await database.from_("users").order_by("points").count_rows() == 4

    async def test_exists(self, database: Database, seed: Seed) -> None:
        assert await database.from_("users").where("username", "alice").exists() is True
        assert await database.from_("users").where("username", "zed").exists() is False
        with count_queries() as log:
            await database.from_("users").order_by("id").exists()
        assert log.count == 1

    async def test_paginate(self, database: Database, seed: Seed) -> None:
        with count_queries() as log:
            page = await database.from_("users").order_by("points").paginate(2, 3)
        assert log.count == 2
        assert page.total == 4
        assert page.per_page == 3
        assert page.current_page == 2
        assert page.last_page == 2
        assert names(list(page)) == ["dave"]
        assert page.has_more_pages is False
        first = await database.from_("users").order_by("points").paginate(1, 3)
        assert names(list(first)) == ["alice", "bob", "carol"]
        assert first.has_more_pages is True
        assert first.serialize()["meta"]["total"] == 4

    async def test_paginate_with_distinct_and_group_by(
        self, database: Database, seed: Seed
    ) -> None:
        page = await (
            database.from_("users")
            .distinct("country_id")
            .where_not_null("country_id")
            .order_by("country_id")
            .paginate(1, 10)
        )
        assert page.total == 2
        assert len(page) == 2
        page = await (
            database.from_("posts")
            .select("user_id")
            .count("* as n")
            .group_by("user_id")
            .order_by("user_id")
            .paginate(1, 2)
        )
        assert page.total == 3
        assert len(page) == 2
        assert page.last_page == 2

    async def test_paginate_empty(self, database: Database) -> None:
        page = await database.from_("users").paginate(1)
        assert page.total == 0
        assert page.is_empty
        assert page.per_page == 20
