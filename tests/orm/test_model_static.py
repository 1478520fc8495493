"""The static model API (SPEC §3): finders, ``create``/``create_many``, the ``*_or_*`` helpers,
their many-forms, ``truncate``, and bad input rejected before any query."""

from __future__ import annotations

import pytest

from lucid_orm import IntegrityError, LucidError, ModelNotFoundError, column
from lucid_orm.database import Database
from tests import models
from tests.helpers import count_queries
from tests.models import Thing


class User(models.User):
    email: str | None = column()


async def make_users(*names: str) -> list[User]:
    return [await User.create({"username": n, "email": f"{n}@example.com"}) for n in names]


class TestFind:
    async def test_find(self, database: Database) -> None:
        virk, _ = await make_users("virk", "romain")
        with count_queries() as q:
            found = await User.find(virk.id)
        assert q.count == 1
        assert isinstance(found, User)
        assert found.id == virk.id and found.username == "virk"
        assert await User.find(virk.id + 1000) is None

    async def test_find_or_fail(self, database: Database) -> None:
        [virk] = await make_users("virk")
        assert (await User.find_or_fail(virk.id)).username == "virk"
        with pytest.raises(ModelNotFoundError) as info:
            await User.find_or_fail(virk.id + 1000)
        assert isinstance(info.value, LucidError)
        assert info.value.code == "E_ROW_NOT_FOUND"
        assert info.value.status == 404
        assert str(info.value) == "Row not found"

    async def test_find_by_key_and_value(self, database: Database) -> None:
        await make_users("virk", "romain")
        found = await User.find_by("username", "romain")
        assert found is not None and found.email == "romain@example.com"
        assert await User.find_by("username", "nobody") is None

    async def test_find_by_dict(self, database: Database) -> None:
        await make_users("virk", "romain")
        found = await User.find_by({"username": "virk", "email": "virk@example.com"})
        assert found is not None and found.username == "virk"
        assert await User.find_by({"username": "virk", "email": "romain@example.com"}) is None

    async def test_find_by_or_fail(self, database: Database) -> None:
        await make_users("virk")
        assert (await User.find_by_or_fail("username", "virk")).username == "virk"
        with pytest.raises(ModelNotFoundError) as info:
            await User.find_by_or_fail({"username": "nobody"})
        assert info.value.code == "E_ROW_NOT_FOUND"
        assert str(info.value) == "Row not found"

    async def test_find_many_is_ordered_by_primary_key_desc(self, database: Database) -> None:
        a, b, c = await make_users("a", "b", "c")
        with count_queries() as q:
            found = await User.find_many([a.id, c.id, a.id, b.id + 1000])
        assert q.count == 1
        assert [u.id for u in found] == [c.id, a.id]
        assert await User.find_many([]) == []

    async def test_find_many_by(self, database: Database) -> None:
        await User.create_many(
            [
                {"username": "a", "points": 1},
                {"username": "b", "points": 2},
                {"username": "c", "points": 1},
            ]
        )
        found = await User.find_many_by("points", 1)
        assert sorted(u.username or "" for u in found) == ["a", "c"]
        assert await User.find_many_by({"points": 1, "username": "c"}) != []
        assert await User.find_many_by("points", 3) == []

    async def test_first_and_first_or_fail(self, database: Database) -> None:
        assert await User.first() is None
        with pytest.raises(ModelNotFoundError):
            await User.first_or_fail()
        a, _b = await make_users("a", "b")
        first = await User.first()
        assert first is not None and first.id == a.id
        assert (await User.first_or_fail()).id == a.id

    async def test_all_is_ordered_by_primary_key_desc(self, database: Database) -> None:
        a, b, c = await make_users("a", "b", "c")
        with count_queries() as q:
            users = await User.all()
        assert q.count == 1
        assert [u.id for u in users] == [c.id, b.id, a.id]
        assert all(isinstance(u, User) and u.is_persisted for u in users)

    async def test_finders_take_attribute_names(self, database: Database) -> None:
        with pytest.raises(LucidError) as info:
            await User.find_by("nope", 1)
        assert info.value.code == "E_UNKNOWN_ATTRIBUTE"


class TestBadInput:
    @pytest.mark.parametrize("value", [{"id": 1}, [1], None, True])
    async def test_find_rejects_bad_primary_key_values_before_any_query(
        self, database: Database, value: object
    ) -> None:
        with count_queries() as q, pytest.raises(LucidError) as info:
            await User.find(value)
        assert q.count == 0
        assert "User.id" in str(info.value)

    async def test_find_many_rejects_bad_values_before_any_query(self, database: Database) -> None:
        with count_queries() as q, pytest.raises(LucidError):
            await User.find_many([1, {"id": 2}])
        assert q.count == 0

    async def test_find_or_fail_rejects_a_model_instance(self, database: Database) -> None:
        [user] = await make_users("virk")
        with count_queries() as q, pytest.raises(LucidError):
            await User.find_or_fail(user)
        assert q.count == 0


class TestCreate:
    async def test_create_many(self, database: Database) -> None:
        with count_queries() as q:
            things = await Thing.create_many(
                [{"name": "a", "amount": 1}, {"name": "b", "amount": 2}, {"name": "c", "amount": 3}]
            )
        # Same-shaped rows: one multi-row INSERT (BEGIN/COMMIT are not reported).
        assert q.count == 1
        assert q.sqls[0].lstrip().upper().startswith("INSERT")
        assert [t.name for t in things] == ["a", "b", "c"]
        assert all(t.is_persisted and not t.is_dirty for t in things)
        assert len({t.id for t in things}) == 3
        rows = await database.from_("things").select("id", "name").order_by("id")
        assert [(r["id"], r["name"]) for r in rows] == [(t.id, t.name) for t in things]

    async def test_create_many_with_different_shapes(self, database: Database) -> None:
        with count_queries() as q:
            things = await Thing.create_many(
                [{"name": "a"}, {"name": "b"}, {"name": "c", "amount": 3}]
            )
        assert q.count == 2
        assert [t.amount for t in await Thing.query().order_by("id")] == [None, None, 3]
        assert [t.name for t in things] == ["a", "b", "c"]

    async def test_create_many_is_all_or_nothing(self, database: Database) -> None:
        with pytest.raises(IntegrityError):
            await Thing.create_many([{"name": "a"}, {"name": "a"}, {"name": "b"}])
        assert await Thing.query().count_rows() == 0

    async def test_create_many_failure_in_a_later_statement_rolls_back(
        self, database: Database
    ) -> None:
        with pytest.raises(IntegrityError):
            await Thing.create_many([{"name": "a"}, {"name": "a", "amount": 1}])
        assert await Thing.query().count_rows() == 0

    async def test_create_many_rejects_bad_input_before_any_query(self, database: Database) -> None:
        with count_queries() as q:
            with pytest.raises(LucidError):
                await Thing.create_many({"name": "a"})  # type: ignore[arg-type]
            with pytest.raises(LucidError) as info:
                await Thing.create_many([{"name": "a"}, {"nope": 1}])
            assert info.value.code == "E_UNKNOWN_ATTRIBUTE"
        assert q.count == 0
        assert await Thing.create_many([]) == []


class TestFirstOrNew:
    async def test_returns_an_unsaved_instance(self, database: Database) -> None:
        with count_queries() as q:
            user = await User.first_or_new({"username": "virk"}, {"email": "virk@example.com"})
        assert q.count == 1
        assert not user.is_persisted
        assert user.attributes == {"username": "virk", "email": "virk@example.com"}
        assert await User.query().count_rows() == 0

    async def test_returns_the_existing_row(self, database: Database) -> None:
        [virk] = await make_users("virk")
        user = await User.first_or_new({"username": "virk"}, {"email": "other@example.com"})
        assert user.is_persisted
        assert user.id == virk.id
        assert user.email == "virk@example.com"


class TestFirstOrCreate:
    async def test_creates_when_missing_and_finds_afterwards(self, database: Database) -> None:
        user = await User.first_or_create({"username": "virk"}, {"email": "virk@example.com"})
        assert user.is_persisted
        assert user.attributes == {"id": user.id, "username": "virk", "email": "virk@example.com"}
        again = await User.first_or_create({"username": "virk"}, {"email": "other@example.com"})
        assert again.id == user.id
        assert again.email == "virk@example.com"
        assert await User.query().count_rows() == 1


class TestUpdateOrCreate:
    async def test_updates_the_existing_row(self, database: Database) -> None:
        [virk] = await make_users("virk")
        user = await User.update_or_create({"username": "virk"}, {"points": 10})
        assert user.id == virk.id
        assert user.points == 10
        assert not user.is_dirty
        rows = await database.from_("users").select("username", "points")
        assert rows == [{"username": "virk", "points": 10}]

    async def test_creates_when_missing(self, database: Database) -> None:
        user = await User.update_or_create({"username": "virk"}, {"points": 10})
        assert user.is_persisted
        rows = await database.from_("users").select("id", "username", "points")
        assert rows == [{"id": user.id, "username": "virk", "points": 10}]


class TestManyForms:
    async def test_fetch_or_new_up_many(self, database: Database) -> None:
        [virk] = await make_users("virk")
        with count_queries() as q:
            users = await User.fetch_or_new_up_many(
                "username",
                [{"username": "romain", "points": 1}, {"username": "virk", "points": 2}],
            )
        assert q.count == 1
        assert [u.username for u in users] == ["romain", "virk"]
        assert not users[0].is_persisted
        assert users[0].points == 1
        assert users[1].is_persisted and users[1].id == virk.id
        assert await User.query().count_rows() == 1

    async def test_fetch_or_create_many(self, database: Database) -> None:
        [virk] = await make_users("virk")
        users = await User.fetch_or_create_many(
            "username",
            [
                {"username": "romain", "email": "romain@example.com"},
                {"username": "virk", "email": "changed@example.com"},
                {"username": "nikk", "email": "nikk@example.com"},
            ],
        )
        assert [u.username for u in users] == ["romain", "virk", "nikk"]
        assert all(u.is_persisted for u in users)
        assert users[1].id == virk.id
        # Existing rows are fetched, not updated.
        assert users[1].email == "virk@example.com"
        rows = await database.from_("users").select("username", "email").order_by("id")
        assert rows == [
            {"username": "virk", "email": "virk@example.com"},
            {"username": "romain", "email": "romain@example.com"},
            {"username": "nikk", "email": "nikk@example.com"},
        ]

    async def test_fetch_or_create_many_with_keyword_payload_and_several_keys(
        self, database: Database
    ) -> None:
        await User.create({"username": "virk", "email": "a@example.com"})
        users = await User.fetch_or_create_many(
            ["username", "email"],
            payload=[
                {"username": "virk", "email": "a@example.com"},
                {"username": "virk", "email": "b@example.com"},
            ],
        )
        assert [u.email for u in users] == ["a@example.com", "b@example.com"]
        assert await User.query().count_rows() == 2

    async def test_update_or_create_many(self, database: Database) -> None:
        [virk] = await make_users("virk")
        users = await User.update_or_create_many(
            "username",
            [{"username": "romain", "points": 1}, {"username": "virk", "points": 2}],
        )
        assert [u.username for u in users] == ["romain", "virk"]
        assert [u.points for u in users] == [1, 2]
        assert users[1].id == virk.id
        assert all(u.is_persisted and not u.is_dirty for u in users)
        rows = await database.from_("users").select("username", "points").order_by("id")
        assert rows == [{"username": "virk", "points": 2}, {"username": "romain", "points": 1}]

    async def test_update_or_create_many_is_all_or_nothing(self, database: Database) -> None:
        await Thing.create_many([{"name": "a", "amount": 1}, {"name": "b", "amount": 2}])
        with pytest.raises(IntegrityError):
            await Thing.update_or_create_many(
                "amount",
                [{"amount": 1, "name": "updated"}, {"amount": 3, "name": "b"}],
            )
        rows = await database.from_("things").select("name", "amount").order_by("amount")
        assert rows == [{"name": "a", "amount": 1}, {"name": "b", "amount": 2}]

    @pytest.mark.parametrize(
        "method", ["fetch_or_new_up_many", "fetch_or_create_many", "update_or_create_many"]
    )
    async def test_model_instances_in_the_payload_raise(
        self, database: Database, method: str
    ) -> None:
        with count_queries() as q, pytest.raises(LucidError) as info:
            await getattr(User, method)("username", [{"username": "a"}, User(username="b")])
        assert q.count == 0
        assert "plain mappings" in str(info.value)

    async def test_payload_missing_a_key_raises(self, database: Database) -> None:
        with count_queries() as q, pytest.raises(LucidError) as info:
            await User.fetch_or_create_many("username", [{"email": "a@example.com"}])
        assert q.count == 0
        assert "username" in str(info.value)


class TestTruncate:
    async def test_truncate_removes_every_row(self, database: Database) -> None:
        await Thing.create_many([{"name": "a"}, {"name": "b"}])
        await Thing.truncate()
        assert await Thing.query().count_rows() == 0
        again = await Thing.create({"name": "a"})
        assert again.is_persisted
