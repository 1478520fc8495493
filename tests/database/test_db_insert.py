"""The insert query builder: single and multi-row inserts, ``returning``, value types."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from lucid_orm.database import Database
from lucid_orm.errors import LucidError
from tests.helpers import count_queries


class TestInsert:
    async def test_single_row(self, database: Database) -> None:
        with count_queries() as log:
            assert await database.table("tags").insert({"name": "python"}) == 1
        assert log.count == 1
        assert log.sqls[0].upper().startswith("INSERT INTO")
        assert log.bindings[0] == ["python"]
        assert [r["name"] for r in await database.from_("tags")] == ["python"]

    async def test_insert_query_and_into(self, database: Database) -> None:
        assert await database.insert_query().table("tags").insert({"name": "a"}) == 1
        assert await database.insert_query().into("tags").insert({"name": "b"}) == 1
        assert await database.connection().table("tags").insert({"name": "c"}) == 1
        rows = await database.from_("tags").order_by("name")
        assert [r["name"] for r in rows] == ["a", "b", "c"]

    async def test_multi_row(self, database: Database) -> None:
        rows = [{"name": "a"}, {"name": "b"}, {"name": "c"}]
        with count_queries() as log:
            assert await database.table("tags").multi_insert(rows) == 3
        assert log.count == 1
        assert await database.from_("tags").count_rows() == 3

    async def test_multi_row_with_other_keys(self, database: Database) -> None:
        rows: list[dict[str, Any]] = [
            {"title": "a", "score": 1},
            {"title": "b", "score": 2},
            {"title": "c"},
            {"title": "d", "score": 4},
        ]
        with count_queries() as log:
            assert await database.table("posts").multi_insert(rows) == 4
        assert log.count == 3  # one statement per run of rows with the same keys
        got = await database.from_("posts").select("title", "score").order_by("title")
        assert [(r["title"], r["score"]) for r in got] == [
            ("a", 1),
            ("b", 2),
            ("c", None),
            ("d", 4),
        ]

    async def test_returning(self, database: Database) -> None:
        rows = await database.table("users").returning("id").insert({"username": "alice"})
        assert len(rows) == 1
        assert list(rows[0]) == ["id"]
        (found,) = await database.from_("users").where("id", rows[0]["id"])
        assert found["username"] == "alice"

    async def test_returning_server_defaults(self, database: Database) -> None:
        (row,) = await (
            database.table("users")
            .returning("id", "username", "points", "is_active")
            .insert({"username": "bob"})
        )
        assert row["username"] == "bob"
        assert row["points"] == 0
        assert not row["is_active"]

    async def test_returning_many(self, database: Database) -> None:
        rows = await (
            database.table("tags")
            .returning("id", "name")
            .multi_insert([{"name": "x"}, {"name": "y"}, {"name": "z"}])
        )
        assert sorted(r["name"] for r in rows) == ["x", "y", "z"]
        ids = [r["id"] for r in rows]
        assert len(set(ids)) == 3
        stored = await database.from_("tags").where_in("id", ids).order_by("name")
        assert [(r["id"], r["name"]) for r in stored] == sorted(
            [(r["id"], r["name"]) for r in rows], key=lambda p: p[1]
        )

    async def test_value_types(self, database: Database, dialect: str) -> None:
        payload = json.dumps({"a": [1, 2]})
        assert (
            await database.table("gadgets").insert(
                {
                    "uuid": "0f8fad5b-d9cb-469f-a165-70867728950e",
                    "name": "phone",
                    "price": Decimal("9.99"),
                    "is_enabled": True,
                    "released_on": date(2024, 2, 29),
                    "payload": payload,
                }
            )
            == 1
        )
        (row,) = await database.from_("gadgets").where(
            "uuid", "0f8fad5b-d9cb-469f-a165-70867728950e"
        )
        assert Decimal(str(row["price"])) == Decimal("9.99")
        assert row["is_enabled"]
        assert str(row["released_on"]) == "2024-02-29"
        raw = row["payload"]
        assert (json.loads(raw) if isinstance(raw, str) else raw) == {"a": [1, 2]}
        # Values of those types compare as they were stored.
        q = database.from_("gadgets").where("released_on", date(2024, 2, 29))
        assert await q.where("price", "<", Decimal("10")).count_rows() == 1

    async def test_datetimes_round_trip_in_where(self, database: Database) -> None:
        when = datetime(2024, 1, 2, 3, 4, 5, 600000)
        await database.table("users").insert({"username": "a", "created_at": when})
        await database.table("users").insert(
            {"username": "b", "created_at": datetime(2024, 1, 2, 3, 4, 5)}
        )
        assert await database.from_("users").where("created_at", when).count_rows() == 1
        q = database.from_("users").where("created_at", ">", datetime(2024, 1, 2, 3, 4, 5))
        assert [r["username"] for r in await q] == ["a"]
        # An aware datetime is stored as UTC in a column without time zone.
        aware = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
        await database.table("users").insert({"username": "c", "created_at": aware})
        q = database.from_("users").where("created_at", aware.replace(tzinfo=None))
        assert [r["username"] for r in await q] == ["c"]

    async def test_subquery_value(self, database: Database) -> None:
        await database.table("tags").multi_insert([{"name": "a"}, {"name": "b"}])
        count = database.from_("tags").count("*")
        assert await database.table("users").insert({"username": "u", "points": count}) == 1
        (row,) = await database.from_("users").where("username", "u")
        assert row["points"] == 2

    async def test_in_a_transaction(self, database: Database) -> None:
        async with database.transaction() as trx:
            rows = await trx.table("tags").returning("id").insert({"name": "t"})
            assert await trx.from_("tags").where("id", rows[0]["id"]).count_rows() == 1
        assert await database.from_("tags").count_rows() == 1

    async def test_to_sql(self, database: Database, dialect: str) -> None:
        sql, bindings = database.table("tags").insert({"name": "x"}).to_sql()
        assert sql.upper().startswith("INSERT INTO")
        assert "tags" in sql
        assert bindings == ["x"]
        assert "'x'" in database.table("tags").insert({"name": "x"}).to_query()

    async def test_errors_before_any_query(self, database: Database) -> None:
        with count_queries() as log:
            with pytest.raises(LucidError):
                await database.table("tags")
            with pytest.raises(LucidError):
                await database.insert_query().insert({"name": "x"})
            with pytest.raises(LucidError) as info:
                await database.table("tags").insert({"name; drop table tags": "x"})
            assert info.value.code == "E_INVALID_IDENTIFIER"
            with pytest.raises(LucidError):
                database.table("tags").insert([{"name": "x"}])  # type: ignore[arg-type]
            with pytest.raises(LucidError):
                database.table("tags").multi_insert(["x"])  # type: ignore[list-item]
        assert log.count == 0
