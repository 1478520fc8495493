"""Instance persistence (SPEC §3): ``save`` inserts or updates the dirty columns only,
``delete``, ``refresh``, and what a deleted instance refuses."""

from __future__ import annotations

from datetime import datetime

import pytest

from lucid_orm import BaseModel, IntegrityError, LucidError, column
from lucid_orm.database import Database
from tests import models
from tests.helpers import count_queries
from tests.models import Membership


class User(models.BaseUser):
    email: str | None = column()
    points: int | None = column()
    is_active: bool | None = column()


class Post(BaseModel):
    id: int = column()
    title: str | None = column()
    score: int | None = column()
    created_at: datetime | None = column.date_time(auto_create=True)
    updated_at: datetime | None = column.date_time(auto_create=True, auto_update=True)


class Thing(BaseModel):
    id: int = column()
    name: str | None = column()
    amount: int | None = column()


class TestInsert:
    async def test_save_inserts_and_sets_the_primary_key(self, database: Database) -> None:
        user = User(username="virk", email="virk@adonisjs.com")
        assert user.is_new
        with count_queries() as q:
            returned = await user.save()
        assert returned is user
        assert q.count == 1
        assert q.sqls[0].lstrip().upper().startswith("INSERT")
        assert isinstance(user.id, int)
        assert user.is_persisted and not user.is_new
        rows = await database.from_("users").select("id", "username", "email")
        assert rows == [{"id": user.id, "username": "virk", "email": "virk@adonisjs.com"}]

    async def test_create_returns_a_persisted_instance(self, database: Database) -> None:
        user = await User.create({"username": "virk", "points": 10})
        assert isinstance(user, User)
        assert user.is_persisted
        assert user.is_local
        assert not user.is_dirty
        assert isinstance(user.id, int)
        found = await User.find_or_fail(user.id)
        assert (found.username, found.points) == ("virk", 10)

    async def test_insert_writes_only_the_set_columns(self, database: Database) -> None:
        with count_queries() as q:
            user = await User.create({"username": "virk"})
        assert "email" not in q.sqls[0]
        assert "points" not in q.sqls[0]
        # Columns left out take their database defaults.
        rows = await database.from_("users").select("points", "email").where("id", user.id)
        assert rows == [{"points": 0, "email": None}]

    async def test_ids_are_distinct(self, database: Database) -> None:
        a = await User.create({"username": "a"})
        b = await User.create({"username": "b"})
        assert a.id != b.id


class TestUpdate:
    async def test_update_writes_only_the_dirty_columns(self, database: Database) -> None:
        await User.create({"username": "virk", "email": "virk@adonisjs.com", "points": 1})
        user = await User.find_by_or_fail("username", "virk")
        user.email = "new@adonisjs.com"
        assert user.dirty == {"email": "new@adonisjs.com"}
        with count_queries() as q:
            await user.save()
        assert q.count == 1
        sql = q.sqls[0]
        assert sql.lstrip().upper().startswith("UPDATE")
        set_clause = sql.upper().split(" WHERE ")[0]
        assert "EMAIL" in set_clause
        for other in ("USERNAME", "POINTS", "IS_ACTIVE"):
            assert other not in set_clause
        assert q.bindings[0][0] == "new@adonisjs.com"
        assert not user.is_dirty
        assert user.original["email"] == "new@adonisjs.com"
        rows = await database.from_("users").select("username", "email", "points")
        assert rows == [{"username": "virk", "email": "new@adonisjs.com", "points": 1}]

    async def test_unchanged_model_issues_no_query(self, database: Database) -> None:
        user = await User.create({"username": "virk"})
        fetched = await User.find_or_fail(user.id)
        with count_queries() as q:
            await user.save()
            await fetched.save()
            fetched.username = "virk"  # same value: not dirty
            await fetched.save()
        assert q.count == 0

    async def test_auto_update_timestamp_joins_the_dirty_columns(self, database: Database) -> None:
        post = await Post.create({"title": "Hello"})
        created_at, updated_at = post.created_at, post.updated_at
        post.title = "Bye"
        with count_queries() as q:
            await post.save()
        set_clause = q.sqls[0].upper().split(" WHERE ")[0]
        assert "TITLE" in set_clause and "UPDATED_AT" in set_clause
        assert "CREATED_AT" not in set_clause and "SCORE" not in set_clause
        assert post.created_at == created_at
        assert post.updated_at is not None and updated_at is not None
        assert post.updated_at >= updated_at

    async def test_unchanged_model_does_not_touch_updated_at(self, database: Database) -> None:
        post = await Post.create({"title": "Hello"})
        updated_at = post.updated_at
        with count_queries() as q:
            await post.save()
        assert q.count == 0
        assert post.updated_at == updated_at

    async def test_several_saves(self, database: Database) -> None:
        user = await User.create({"username": "virk", "points": 1})
        user.points = 2
        await user.save()
        user.points = 3
        user.username = "romain"
        await user.save()
        rows = await database.from_("users").select("username", "points")
        assert rows == [{"username": "romain", "points": 3}]


class TestDelete:
    async def test_delete_removes_the_row(self, database: Database) -> None:
        keep = await User.create({"username": "keep"})
        user = await User.create({"username": "virk"})
        with count_queries() as q:
            await user.delete()
        assert q.count == 1
        assert user.is_deleted
        assert await User.find(user.id) is None
        assert [u.id for u in await User.all()] == [keep.id]

    async def test_deleted_instance_refuses_mutations(self, database: Database) -> None:
        user = await User.create({"username": "virk"})
        await user.delete()
        for action in (user.save, user.delete):
            with pytest.raises(LucidError) as info:
                await action()
            assert info.value.code == "E_MODEL_DELETED"
            assert str(info.value) == "Cannot mutate a deleted model instance"
        with pytest.raises(LucidError) as info:
            user.username = "other"
        assert info.value.code == "E_MODEL_DELETED"
        assert str(info.value) == "Cannot mutate a deleted model instance"
        with pytest.raises(LucidError) as info:
            user.merge({"username": "other"})
        assert info.value.code == "E_MODEL_DELETED"
        # Reading still works.
        assert user.username == "virk"
        assert user.serialize()["username"] == "virk"

    async def test_delete_of_an_unsaved_instance_raises_before_any_query(
        self, database: Database
    ) -> None:
        with count_queries() as q, pytest.raises(LucidError) as info:
            await User(username="virk").delete()
        assert q.count == 0
        assert info.value.code == "E_MISSING_MODEL_ATTRIBUTE"


class TestRefresh:
    async def test_refresh_rereads_the_row(self, database: Database) -> None:
        user = await User.create({"username": "virk", "points": 1})
        await database.from_("users").where("id", user.id).update({"points": 5, "email": "x@y.z"})
        user.username = "local change"
        with count_queries() as q:
            returned = await user.refresh()
        assert returned is user
        assert q.count == 1
        assert (user.username, user.points, user.email) == ("virk", 5, "x@y.z")
        assert not user.is_dirty
        assert user.original["points"] == 5

    async def test_refresh_of_a_deleted_row_raises(self, database: Database) -> None:
        user = await User.create({"username": "virk"})
        await database.from_("users").delete()
        with pytest.raises(LucidError) as info:
            await user.refresh()
        assert info.value.code == "E_ROW_NOT_FOUND"

    async def test_refresh_of_an_unsaved_instance_raises(self, database: Database) -> None:
        with pytest.raises(LucidError):
            await User(username="virk").refresh()


class TestConstraintViolations:
    async def test_failed_insert_leaves_the_instance_unsaved(self, database: Database) -> None:
        await Thing.create({"name": "taken"})
        thing = Thing(name="taken", amount=3)
        dirty = thing.dirty
        with pytest.raises(IntegrityError) as info:
            await thing.save()
        assert info.value.code == "E_INTEGRITY"
        assert info.value.sql is not None and "things" in info.value.sql
        assert info.value.original is not None
        assert not thing.is_persisted
        assert thing.is_new
        assert thing.dirty == dirty
        assert "id" not in thing.attributes
        assert await Thing.query().count_rows() == 1
        # The instance can be fixed and saved.
        thing.name = "free"
        await thing.save()
        assert thing.is_persisted
        assert await Thing.query().count_rows() == 2

    async def test_failed_update_keeps_the_instance_dirty(self, database: Database) -> None:
        await Thing.create({"name": "taken"})
        thing = await Thing.create({"name": "mine"})
        thing.name = "taken"
        with pytest.raises(IntegrityError):
            await thing.save()
        assert thing.dirty == {"name": "taken"}
        assert thing.original["name"] == "mine"
        rows = await database.from_("things").select("name").order_by("name")
        assert [r["name"] for r in rows] == ["mine", "taken"]

    async def test_not_null_violation(self, database: Database) -> None:
        with pytest.raises(IntegrityError):
            await Thing.create({"name": None, "amount": 1})
        assert await Thing.query().count_rows() == 0

    async def test_foreign_key_violation(self, database: Database) -> None:
        user = await User.create({"username": "virk"})
        with pytest.raises(IntegrityError):
            await Membership.create({"user_id": user.id + 1000, "role": "admin"})
        member = await Membership.create({"user_id": user.id, "role": "admin"})
        assert member.is_persisted
