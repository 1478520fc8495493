"""The model query builder (SPEC §4): instances from ``await``, ``first``/``first_or_fail``,
writes through ``where``, ``pojo``, ``sideload``, ``clone``, ``to_sql``, aggregates, counts."""

from __future__ import annotations

import pytest

from lucid_orm import BaseModel, LucidError, ModelNotFoundError, column
from lucid_orm.database import Database
from tests.helpers import count_queries
from tests.models import User


class Profile(BaseModel):
    id: int = column()
    user_id: int | None = column()
    display: str | None = column(column_name="display_name")


@pytest.fixture
async def users(database: Database) -> list[User]:
    return await User.create_many(
        [
            {"username": "virk", "points": 10, "country_id": 1},
            {"username": "romain", "points": 20, "country_id": 1},
            {"username": "nikk", "points": 30, "country_id": 2},
        ]
    )


class TestFetching:
    async def test_await_returns_instances(self, users: list[User]) -> None:
        with count_queries() as q:
            found = await User.query().where("points", ">", 10).order_by("points")
        assert q.count == 1
        assert q.events[0].model == "User"
        assert [u.username for u in found] == ["romain", "nikk"]
        assert all(type(u) is User and u.is_persisted and not u.is_local for u in found)

    async def test_exec_is_the_same_as_await(self, users: list[User]) -> None:
        found = await User.query().where("username", "virk").exec()
        assert [u.id for u in found] == [users[0].id]

    async def test_empty_result(self, database: Database) -> None:
        assert await User.query() == []

    async def test_first(self, users: list[User]) -> None:
        with count_queries() as q:
            first = await User.query().order_by("points", "desc").first()
        assert q.count == 1
        assert "LIMIT" in q.sqls[0].upper()
        assert first is not None and first.username == "nikk"
        assert await User.query().where("username", "nobody").first() is None

    async def test_first_or_fail(self, users: list[User]) -> None:
        assert (await User.query().where("points", 20).first_or_fail()).username == "romain"
        with pytest.raises(ModelNotFoundError) as info:
            await User.query().where("points", 99).first_or_fail()
        assert info.value.code == "E_ROW_NOT_FOUND"
        assert info.value.status == 404
        assert str(info.value) == "Row not found"

    async def test_select_subset(self, users: list[User]) -> None:
        [user] = await User.query().select("id", "username").where("username", "virk")
        assert user.attributes == {"id": users[0].id, "username": "virk"}

    async def test_select_star_expands_to_the_model_columns(self, users: list[User]) -> None:
        [user] = await User.query().select("*").where("username", "virk")
        assert user.attributes.keys() == {"id", "username", "points", "country_id"}

    async def test_column_names_are_database_names(self, database: Database) -> None:
        await Profile.create({"display": "Virk"})
        found = await Profile.query().where("display_name", "Virk").select("id", "display_name")
        assert [p.display for p in found] == ["Virk"]


class TestWrites:
    async def test_update_returns_the_affected_count(self, users: list[User]) -> None:
        with count_queries() as q:
            count = await User.query().where("country_id", 1).update({"points": 0})
        assert count == 2
        assert q.count == 1
        points = {u.username: u.points for u in await User.all()}
        assert points == {"virk": 0, "romain": 0, "nikk": 30}

    async def test_increment_and_decrement(self, users: list[User]) -> None:
        assert await User.query().where("username", "virk").increment("points", 5) == 1
        assert await User.query().where("username", "nikk").decrement("points") == 1
        points = {u.username: u.points for u in await User.all()}
        assert points == {"virk": 15, "romain": 20, "nikk": 29}

    async def test_delete_returns_the_deleted_count(self, users: list[User]) -> None:
        assert await User.query().where("points", ">=", 20).delete() == 2
        assert [u.username for u in await User.all()] == ["virk"]
        assert await User.query().where("points", ">=", 20).delete() == 0


class TestPojoAndSideload:
    async def test_pojo_returns_dicts(self, users: list[User]) -> None:
        rows = await User.query().select("username", "points").order_by("points").pojo()
        assert rows == [
            {"username": "virk", "points": 10},
            {"username": "romain", "points": 20},
            {"username": "nikk", "points": 30},
        ]

    async def test_pojo_keys_are_column_names(self, database: Database) -> None:
        await Profile.create({"display": "Virk"})
        rows = await Profile.query().select("display_name").pojo()
        assert rows == [{"display_name": "Virk"}]

    async def test_sideload(self, users: list[User]) -> None:
        found = await User.query().sideload({"tenant": "acme"}).order_by("id")
        assert [u.sideloaded for u in found] == [{"tenant": "acme"}] * 3
        found[0].sideloaded["tenant"] = "changed"
        assert found[1].sideloaded == {"tenant": "acme"}
        plain = await User.query().first_or_fail()
        assert plain.sideloaded == {}


class TestBuilding:
    async def test_clone_is_independent(self, users: list[User]) -> None:
        base = User.query().where("country_id", 1)
        narrowed = base.clone().where("points", ">", 10)
        assert [u.username for u in await narrowed] == ["romain"]
        assert sorted(u.username or "" for u in await base) == ["romain", "virk"]
        ordered = base.clone().order_by("points", "desc").limit(1)
        assert [u.username for u in await ordered] == ["romain"]
        assert len(await base) == 2

    async def test_to_sql(self, database: Database) -> None:
        sql, bindings = User.query().where("username", "virk").where("points", ">", 5).to_sql()
        assert sql.upper().startswith("SELECT")
        assert "users" in sql and "username" in sql
        assert bindings == ["virk", 5]
        assert "virk" in User.query().where("username", "virk").to_query()

    async def test_to_sql_runs_no_query(self, database: Database) -> None:
        with count_queries() as q:
            User.query().where("id", 1).to_sql()
        assert q.count == 0

    async def test_async_where_callback_is_rejected(self, database: Database) -> None:
        async def group(q: object) -> None:
            pass

        with pytest.raises(LucidError):
            User.query().where(group)

    async def test_where_group_callback(self, users: list[User]) -> None:
        found = (
            await User.query()
            .where("country_id", 1)
            .where(lambda q: q.where("points", 10).or_where("points", 30))
        )
        assert [u.username for u in found] == ["virk"]


class TestAggregates:
    async def test_count_lands_in_extras(self, users: list[User]) -> None:
        [row] = await User.query().count("* as total")
        assert row.extras == {"total": 3}
        assert row.attributes == {}

    async def test_unaliased_count(self, users: list[User]) -> None:
        [row] = await User.query().where("country_id", 1).count("*")
        assert row.extras == {"count": 2}

    async def test_grouped_aggregates(self, users: list[User]) -> None:
        rows = await (
            User.query()
            .select("country_id")
            .count("* as total")
            .max("points as best")
            .group_by("country_id")
            .order_by("country_id")
        )
        assert [(r.country_id, r.extras["total"], r.extras["best"]) for r in rows] == [
            (1, 2, 20),
            (2, 1, 30),
        ]

    async def test_count_rows(self, users: list[User]) -> None:
        with count_queries() as q:
            assert await User.query().count_rows() == 3
            assert await User.query().where("country_id", 1).count_rows() == 2
            assert await User.query().where("country_id", 9).count_rows() == 0
        assert q.count == 3
        assert await User.query().distinct("country_id").count_rows() == 2
        assert await User.query().select("country_id").group_by("country_id").count_rows() == 2

    async def test_exists(self, users: list[User]) -> None:
        assert await User.query().where("username", "virk").exists() is True
        assert await User.query().where("username", "nobody").exists() is False

    async def test_counting_does_not_change_the_builder(self, users: list[User]) -> None:
        query = User.query().where("country_id", 1).order_by("points").limit(1)
        assert await query.count_rows() == 2
        assert [u.username for u in await query] == ["virk"]
