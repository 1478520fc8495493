"""JSON conditions (Knex's ``where_json_*``) and ``json_extract``: one meaning — PostgreSQL's
``jsonb`` — on SQLite, PostgreSQL and MariaDB, every value and path bound."""

from __future__ import annotations

from typing import Any

import pytest

from lucid_orm import LucidError, column, db
from lucid_orm.database import Database
from lucid_orm.query.json import json_extract
from tests import models
from tests.helpers import count_queries


class Member(models.BaseUser):
    table = "users"
    meta: dict[str, Any] | list[Any] | None = column()


ROWS: list[dict[str, Any]] = [
    {"username": "ana", "meta": {"theme": "dark", "beta": True, "score": 10, "tags": ["a", "b"]}},
    {"username": "bob", "meta": {"beta": False, "theme": "light", "score": 3.5, "tags": ["b"]}},
    {"username": "cy", "meta": {"theme": "dark", "score": "10", "address": {"city": "Paris"}}},
    {"username": "dee", "meta": {"theme": None, "tags": []}},
    {"username": "eve", "meta": None},
]


@pytest.fixture
async def members(database: Database) -> list[Member]:
    return await Member.create_many(ROWS)


async def names(query: Any) -> list[str]:
    return sorted(m.username for m in await query)


class TestWhereJsonObject:
    async def test_equal_whatever_the_key_order(self, members: list[Member]) -> None:
        value = {"tags": ["b"], "score": 3.5, "theme": "light", "beta": False}
        assert await names(Member.query().where_json_object("meta", value)) == ["bob"]
        # Arrays compare in order; a missing or extra key is not equal.
        assert await names(Member.query().where_json_object("meta", {"theme": None})) == []
        swapped = {"theme": None, "tags": []}
        assert await names(Member.query().where_json_object("meta", swapped)) == ["dee"]

    async def test_or_and_not_forms(self, members: list[Member]) -> None:
        query = (
            Member.query()
            .where_json_object("meta", {"theme": None, "tags": []})
            .or_where_json_object("meta", {"theme": "nope"})
        )
        assert await names(query) == ["dee"]
        # NOT: rows whose JSON is another value. eve's None is stored as JSON null (as
        # SQLAlchemy's JSON type stores it): a value too, so it is "another value".
        others = Member.query().where_not_json_object("meta", {"theme": None, "tags": []})
        assert await names(others) == ["ana", "bob", "cy", "eve"]
        either = (
            Member.query()
            .where("username", "eve")
            .or_where_not_json_object("meta", {"theme": None, "tags": []})
        )
        assert await names(either) == ["ana", "bob", "cy", "eve"]

    async def test_on_the_database_builder(self, members: list[Member]) -> None:
        rows = await db.from_("users").where_json_object("meta", ROWS[3]["meta"]).select("username")
        assert [r["username"] for r in rows] == ["dee"]


class TestWhereJsonPath:
    async def test_text_numbers_and_types(self, members: list[Member]) -> None:
        q = Member.query
        assert await names(q().where_json_path("meta", "$.theme", "=", "dark")) == ["ana", "cy"]
        assert await names(q().where_json_path("meta", "$.theme", "dark")) == ["ana", "cy"]
        # 10 never matches "10": a value matches its own JSON type only.
        assert await names(q().where_json_path("meta", "$.score", "=", 10)) == ["ana"]
        assert await names(q().where_json_path("meta", "$.score", ">", 3)) == ["ana", "bob"]
        assert await names(q().where_json_path("meta", "$.score", "<", 4)) == ["bob"]
        assert await names(q().where_json_path("meta", "$.score", "=", "10")) == ["cy"]
        nested = q().where_json_path("meta", "$.address.city", "Paris")
        assert await names(nested) == ["cy"]
        assert await names(q().where_json_path("meta", "$.tags[0]", "b")) == ["bob"]

    async def test_booleans_null_and_containers(self, members: list[Member]) -> None:
        q = Member.query
        assert await names(q().where_json_path("meta", "$.beta", "=", True)) == ["ana"]
        assert await names(q().where_json_path("meta", "$.beta", "=", False)) == ["bob"]
        assert await names(q().where_json_path("meta", "$.beta", "!=", True)) == ["bob"]
        # None is a JSON null, not an absent key.
        assert await names(q().where_json_path("meta", "$.theme", "=", None)) == ["dee"]
        assert await names(q().where_json_path("meta", "$.tags", ["a", "b"])) == ["ana"]
        assert await names(q().where_json_path("meta", "$.tags", "=", ["b", "a"])) == []
        either = (
            q().where_json_path("meta", "$.beta", True).or_where_json_path("meta", "$.tags", [])
        )
        assert await names(either) == ["ana", "dee"]

    async def test_path_is_bound_not_inlined(self, members: list[Member]) -> None:
        hostile = '$."x\') or 1=1 --"'
        with count_queries() as q:
            found = await Member.query().where_json_path("meta", hostile, "=", "x")
        assert found == []
        assert "1=1" not in q.sqls[0]

    async def test_bad_input_fails_before_the_database(self, members: list[Member]) -> None:
        q = Member.query
        with count_queries() as seen:
            for build, text in [
                (lambda: q().where_json_path("meta", "theme", "=", 1), 'starting with "$"'),
                (lambda: q().where_json_path("meta", "$.a", "like", 1), "operator must be"),
                (lambda: q().where_json_path("meta", "$.a", ">", True), "with =, != or <> only"),
                (lambda: q().where_json_object("meta", {"a": object()}), "expects a JSON value"),
                (lambda: q().where_json_superset_of("meta", float("nan")), "a JSON value"),
                (lambda: q().where_json_path("meta; drop", "$.a", 1), "meta; drop"),
            ]:
                with pytest.raises(LucidError) as exc:
                    build()
                assert text in str(exc.value)
        assert seen.count == 0


class TestContainment:
    async def test_superset(self, members: list[Member]) -> None:
        q = Member.query
        assert await names(q().where_json_superset_of("meta", {"theme": "dark"})) == ["ana", "cy"]
        assert await names(q().where_json_superset_of("meta", {"tags": ["b"]})) == ["ana", "bob"]
        nested = {"address": {"city": "Paris"}, "theme": "dark"}
        assert await names(q().where_json_superset_of("meta", nested)) == ["cy"]
        # Types are kept: True is not 1, 10 is not "10".
        assert await names(q().where_json_superset_of("meta", {"score": 10})) == ["ana"]
        assert await names(q().where_json_superset_of("meta", {"beta": 1})) == []
        not_dark = q().where_json_not_superset_of("meta", {"theme": "dark"})
        assert await names(not_dark) == ["bob", "dee", "eve"]
        either = (
            q()
            .where_json_superset_of("meta", {"beta": False})
            .or_where_json_superset_of("meta", {"tags": []})
        )
        assert await names(either) == ["ana", "bob", "dee"]  # [] is in every array
        neither = q().where("username", "eve").or_where_json_not_superset_of("meta", {"tags": []})
        assert await names(neither) == ["cy", "eve"]

    async def test_subset(self, members: list[Member]) -> None:
        q = Member.query
        wide = {"theme": None, "tags": ["x"], "beta": True}
        assert await names(q().where_json_subset_of("meta", wide)) == ["dee"]
        not_in_wide = q().where_json_not_subset_of("meta", wide)
        assert await names(not_in_wide) == ["ana", "bob", "cy", "eve"]
        either = q().where_json_subset_of("meta", {"x": 1}).or_where_json_subset_of("meta", wide)
        assert await names(either) == ["dee"]
        empty = q().where_json_subset_of("meta", {}).or_where_json_not_subset_of("meta", wide)
        assert await names(empty) == ["ana", "bob", "cy", "eve"]


class TestJsonExtract:
    async def test_select_values_decoded(self, members: list[Member]) -> None:
        query = (
            Member.query()
            .select(
                "id",
                "username",
                json_extract("meta", "$.theme").as_("theme"),
                json_extract("meta", "$.tags"),
                json_extract("meta", "$.address").as_("address"),
                json_extract("meta", "$.score").as_("score"),
            )
            .order_by("id")
        )
        found = [(m.username, m.extras) for m in await query]
        assert found == [
            ("ana", {"theme": "dark", "tags": ["a", "b"], "address": None, "score": 10}),
            ("bob", {"theme": "light", "tags": ["b"], "address": None, "score": 3.5}),
            ("cy", {"theme": "dark", "tags": None, "address": {"city": "Paris"}, "score": "10"}),
            ("dee", {"theme": None, "tags": [], "address": None, "score": None}),
            ("eve", {"theme": None, "tags": None, "address": None, "score": None}),
        ]

    async def test_with_conditions_in_relations(self, members: list[Member]) -> None:
        rows = await (
            db.from_("users")
            .select("username", json_extract("users.meta", "$.address.city").as_("city"))
            .where_json_path("meta", "$.address.city", "Paris")
        )
        assert rows == [{"username": "cy", "city": "Paris"}]
        with pytest.raises(LucidError) as exc:
            json_extract("meta", "theme")
        assert exc.value.code == "E_INVALID_ARGUMENT"
