"""Raw SQL: ``db.raw_query`` (executable) and ``db.raw`` fragments, with ``?`` or ``:name``."""

from __future__ import annotations

import pytest

from lucid_orm.database import Database
from lucid_orm.errors import LucidError
from tests.helpers import count_queries


async def _tags(database: Database, *names: str) -> None:
    await database.table("tags").multi_insert([{"name": n} for n in names])


class TestRawQuery:
    async def test_positional(self, database: Database) -> None:
        await _tags(database, "a", "b", "c")
        rows = await database.raw_query(
            "select name from tags where name in (?, ?) order by name", ["a", "c"]
        )
        assert rows == [{"name": "a"}, {"name": "c"}]

    async def test_named(self, database: Database) -> None:
        await _tags(database, "a", "b")
        rows = await database.raw_query("select name from tags where name = :name", {"name": "b"})
        assert rows == [{"name": "b"}]
        rows = await database.raw_query(
            "select :v as x, :v as y, :w as z", {"v": 5, "w": "five", "unused": 1}
        )
        assert rows == [{"x": 5, "y": 5, "z": "five"}]

    async def test_no_bindings(self, database: Database) -> None:
        assert await database.raw_query("select 1 as one") == [{"one": 1}]
        assert await database.raw_query("select name from tags") == []

    async def test_writes_return_affected_rows(self, database: Database) -> None:
        assert await database.raw_query("insert into tags (name) values (?), (?)", ["a", "b"]) == 2
        assert await database.raw_query("update tags set name = ? where name = ?", ["z", "a"]) == 1
        assert await database.raw_query("delete from tags where name in (?, ?)", ["z", "b"]) == 2
        assert await database.from_("tags").count_rows() == 0

    async def test_insert_returning(self, database: Database) -> None:
        rows = await database.raw_query("insert into tags (name) values (?) returning id", ["a"])
        assert len(rows) == 1 and isinstance(rows[0]["id"], int)
        assert await database.from_("tags").where("id", rows[0]["id"]).count_rows() == 1

    async def test_binding_values_are_never_sql(self, database: Database) -> None:
        await _tags(database, "a")
        evil = "a' or '1'='1"
        assert await database.raw_query("select * from tags where name = ?", [evil]) == []
        assert await database.from_("tags").count_rows() == 1

    async def test_percent_signs_and_escaped_question_mark(self, database: Database) -> None:
        rows = await database.raw_query(r"select '100%' as p, '\?' as q, ? as v", [7])
        assert rows == [{"p": "100%", "q": "?", "v": 7}]
        await _tags(database, "50% off", "full price")
        rows = await database.raw_query("select name from tags where name like ?", ["%off"])
        assert rows == [{"name": "50% off"}]
        rows = await database.from_("tags").where_raw("name like '%off'")
        assert [r["name"] for r in rows] == ["50% off"]

    async def test_identifier_bindings(self, database: Database) -> None:
        await _tags(database, "a")
        assert await database.raw_query("select ?? from ??", ["name", "tags"]) == [{"name": "a"}]
        rows = await database.raw_query(
            "select :col: from tags where :col: = :v", {"col": "name", "v": "a"}
        )
        assert rows == [{"name": "a"}]

    async def test_postgres_casts_are_not_bindings(self, database: Database, dialect: str) -> None:
        if dialect != "postgresql":
            pytest.skip("'::' casts are PostgreSQL syntax")
        rows = await database.raw_query("select :v::text as t, 2::int as i", {"v": 1})
        assert rows == [{"t": "1", "i": 2}]

    async def test_wrong_number_of_bindings(self, database: Database) -> None:
        with count_queries() as log:
            with pytest.raises(LucidError) as too_few:
                await database.raw_query("select ? as a, ? as b", [1])
            with pytest.raises(LucidError) as too_many:
                await database.raw_query("select ? as a", [1, 2])
            with pytest.raises(LucidError) as none_given:
                await database.raw_query("select ? as a")
            with pytest.raises(LucidError) as missing_name:
                await database.raw_query("select :a as a, :b as b", {"a": 1})
            with pytest.raises(LucidError) as wrong_type:
                await database.raw_query("select ? as a", "1")
        assert log.count == 0
        for info in (too_few, too_many, none_given, missing_name, wrong_type):
            assert info.value.code == "E_INVALID_BINDINGS"
        assert "2 binding(s)" in str(too_many.value)
        assert '":b"' in str(missing_name.value)

    async def test_to_sql(self, database: Database, dialect: str) -> None:
        sql, bindings = database.raw_query("select ? as a, ? as b", [1, "x"]).to_sql()
        assert bindings == [1, "x"]
        placeholder = {"sqlite": "?", "postgresql": "$2", "mysql": "%s"}[dialect]
        assert placeholder in sql
        assert "'x'" in database.raw_query("select ? as b", ["x"]).to_query()

    async def test_in_a_transaction(self, database: Database) -> None:
        async with database.transaction() as trx:
            assert await trx.raw_query("insert into tags (name) values (?)", ["t"]) == 1
            assert await trx.raw_query("select name from tags") == [{"name": "t"}]
            await trx.rollback()
        assert await database.raw_query("select name from tags") == []

    async def test_on_a_named_connection(self, database: Database, dialect: str) -> None:
        assert await database.raw_query("select 1 as one", connection=dialect) == [{"one": 1}]
        assert await database.connection(dialect).raw_query("select 2 as two") == [{"two": 2}]


class TestRawFragments:
    async def test_in_select_where_and_order(self, database: Database) -> None:
        await _tags(database, "bb", "a", "ccc")
        rows = await (
            database.from_("tags")
            .select("name", database.raw("length(name)").as_("len"))
            .where(database.raw("length(name) > ?", [1]))
            .order_by(database.raw("length(name)"), "desc")
        )
        assert rows == [{"name": "ccc", "len": 3}, {"name": "bb", "len": 2}]

    async def test_named_bindings_in_fragments(self, database: Database) -> None:
        await _tags(database, "a", "b")
        rows = await database.from_("tags").where(database.raw("name = :n", {"n": "b"}))
        assert [r["name"] for r in rows] == ["b"]

    async def test_raw_or_stays_grouped(self, database: Database) -> None:
        await _tags(database, "a", "b", "c")
        rows = await (
            database.from_("tags")
            .where(database.raw("name = ? or name = ?", ["a", "b"]))
            .where("name", "<>", "a")
        )
        assert [r["name"] for r in rows] == ["b"]

    async def test_raw_in_update(self, database: Database) -> None:
        await database.table("users").insert({"username": "u", "points": 3})
        assert (
            await database.from_("users").update({"points": database.raw("points + ?", [4])}) == 1
        )
        (row,) = await database.from_("users")
        assert row["points"] == 7

    async def test_errors_before_any_query(self, database: Database) -> None:
        with count_queries() as log:
            with pytest.raises(LucidError) as info:
                database.raw("a = ? and b = ?", [1])
            assert info.value.code == "E_INVALID_BINDINGS"
            with pytest.raises(LucidError):
                database.from_("tags").where_raw("a = ?", [])
            with pytest.raises(LucidError):
                database.from_("tags").order_by_raw("a", [1])
        assert log.count == 0
