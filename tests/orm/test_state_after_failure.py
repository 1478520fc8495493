"""Instances follow the database (SPEC §10, issue "Trustworthy under failure" item 2): when a
write fails, or the transaction or savepoint it ran in rolls back (an outer one later too), the
instances it wrote return to their earlier state; a save/delete whose row is gone raises."""

from __future__ import annotations

from datetime import datetime

import pytest

from lucid_orm import (
    BaseModel,
    IntegrityError,
    LucidError,
    ModelNotFoundError,
    column,
    db,
    has_many,
)
from lucid_orm.database import Database
from lucid_orm.relations import HasMany
from tests import models
from tests.models import Membership


class User(models.BaseUser):
    email: str | None = column()
    created_at: datetime | None = column.date_time(auto_create=True)
    updated_at: datetime | None = column.date_time(auto_create=True, auto_update=True)
    memberships: HasMany[Membership] = has_many(lambda: Membership)


class Thing(BaseModel):
    """``things.name`` is NOT NULL and unique: a reliable way to make a write fail."""

    id: int = column(is_primary=True)
    name: str | None = column()
    amount: int | None = column()


async def _count(table: str) -> int:
    return await db.from_(table).count_rows()


def _assert_new(instance: BaseModel) -> None:
    assert not instance.is_persisted
    assert instance.is_new
    assert instance.__dict__.get("id") is None
    assert instance.original == {}


class TestFailedManyWrites:
    async def test_a_failed_create_many_leaves_no_instance_persisted(
        self, database: Database
    ) -> None:
        with pytest.raises(IntegrityError):
            await Thing.create_many([{"name": "a"}, {"name": "b"}, {"name": "a"}])
        assert await _count("things") == 0

    async def test_instances_of_a_failed_save_many_are_new_again_and_can_be_saved(
        self, database: Database
    ) -> None:
        user = await User.create({"username": "virk"})
        good = Membership(role="admin")
        bad = Membership(role="x" * 500)  # longer than the column: fails on every dialect
        if database.dialect_name() == "sqlite":
            bad = Membership(role="guest", id=-1)
            await Membership.create({"id": -1, "role": "taken", "user_id": user.id})
        with pytest.raises(LucidError):
            await user.related("memberships").save_many([good, bad])
        _assert_new(good)
        assert not bad.is_persisted
        # The failed call wrote nothing; the instances tell the truth, so a later save works.
        rows = await db.from_("memberships").where("role", "admin").count_rows()
        assert rows == 0
        await user.related("memberships").save(good)
        assert good.is_persisted
        found = await Membership.find(good.id)
        assert found is not None and found.role == "admin" and found.user_id == user.id


class TestRolledBackTransactions:
    async def test_a_created_instance_is_new_again_with_its_key_and_stamps_cleared(
        self, database: Database
    ) -> None:
        trx = await db.transaction()
        user = await User.create({"username": "virk"}, client=trx)
        assert user.is_persisted and user.id is not None and user.created_at is not None
        await trx.rollback()
        _assert_new(user)
        assert user.created_at is None and user.updated_at is None
        assert user.trx is None
        await user.save()
        assert user.is_persisted
        assert await db.from_("users").select("username") == [{"username": "virk"}]

    async def test_create_many_in_a_rolled_back_transaction(self, database: Database) -> None:
        async with db.transaction() as trx:
            made = await Thing.create_many([{"name": "a"}, {"name": "b"}], client=trx)
            assert all(t.is_persisted for t in made)
            await trx.rollback()
        for thing in made:
            _assert_new(thing)
        await Thing.create_many([{"name": t.name} for t in made])
        assert await _count("things") == 2

    async def test_an_updated_instance_is_dirty_again_with_its_changes(
        self, database: Database
    ) -> None:
        user = await User.create({"username": "virk"})
        stamp = user.updated_at
        async with db.transaction() as trx:
            user.use_transaction(trx)
            user.username = "nikk"
            await user.save()
            assert not user.is_dirty
            await trx.rollback()
        assert user.is_persisted
        assert user.is_dirty
        assert user.dirty == {"username": "nikk"}
        assert user.updated_at == stamp
        await user.save()
        assert await db.from_("users").select("username") == [{"username": "nikk"}]

    async def test_a_deleted_instance_is_not_deleted_after_rollback(
        self, database: Database
    ) -> None:
        user = await User.create({"username": "virk"})
        async with db.transaction() as trx:
            await user.delete(client=trx)
            assert user.is_deleted
            await trx.rollback()
        assert not user.is_deleted
        user.username = "still here"
        await user.save()
        assert await db.from_("users").select("username") == [{"username": "still here"}]

    async def test_created_then_updated_in_one_transaction_goes_back_to_new(
        self, database: Database
    ) -> None:
        trx = await db.transaction()
        user = await User.create({"username": "a"}, client=trx)
        user.username = "b"
        await user.save()
        await trx.rollback()
        _assert_new(user)
        assert user.username == "b"

    async def test_a_rolled_back_savepoint_undoes_only_its_own_writes(
        self, database: Database
    ) -> None:
        async with db.transaction() as trx:
            outer = await User.create({"username": "outer"}, client=trx)
            inner: User | None = None
            with pytest.raises(RuntimeError):
                async with trx.transaction() as savepoint:
                    inner = await User.create({"username": "inner"}, client=savepoint)
                    raise RuntimeError("undo the savepoint")
            assert inner is not None
            _assert_new(inner)
            assert outer.is_persisted and outer.trx is trx
        assert outer.is_persisted
        assert await db.from_("users").select("username") == [{"username": "outer"}]

    async def test_a_released_savepoint_is_undone_by_the_outer_rollback(
        self, database: Database
    ) -> None:
        trx = await db.transaction()
        async with trx.transaction() as savepoint:
            user = await User.create({"username": "inner"}, client=savepoint)
        assert user.is_persisted and user.trx is trx
        await trx.rollback()
        _assert_new(user)
        assert user.trx is None
        assert await _count("users") == 0

    async def test_relation_writes_in_a_rolled_back_transaction(self, database: Database) -> None:
        user = await User.create({"username": "virk"})
        trx = await db.transaction()
        made = await user.related("memberships").create_many(
            [{"role": "a"}, {"role": "b"}], client=trx
        )
        single = await user.related("memberships").create({"role": "c"}, client=trx)
        await trx.rollback()
        for m in [*made, single]:
            _assert_new(m)
        assert user.is_persisted and user.trx is None
        await user.related("memberships").save_many([*made, single])
        assert await _count("memberships") == 3


class TestRowGone:
    async def test_save_of_a_deleted_row_raises_row_not_found(self, database: Database) -> None:
        user = await User.create({"username": "virk"})
        await db.from_("users").where("id", user.id).delete()
        user.username = "nikk"
        with pytest.raises(ModelNotFoundError) as info:
            await user.save()
        assert info.value.code == "E_ROW_NOT_FOUND"
        assert "User" in str(info.value) and f"id={user.id}" in str(info.value)
        # Nothing was written, and the instance still has its change to retry.
        assert user.is_dirty and await _count("users") == 0

    async def test_delete_of_a_deleted_row_raises_row_not_found(self, database: Database) -> None:
        user = await User.create({"username": "virk"})
        await db.from_("users").where("id", user.id).delete()
        with pytest.raises(ModelNotFoundError) as info:
            await user.delete()
        assert info.value.code == "E_ROW_NOT_FOUND"
        assert not user.is_deleted

    async def test_an_update_that_changes_nothing_in_the_row_still_matches(
        self, database: Database
    ) -> None:
        # The row already holds the new value (changed behind the instance's back): the
        # UPDATE matches one row and changes none. MySQL must count it as matched.
        thing = await Thing.create({"name": "a", "amount": 1})
        await db.from_("things").where("id", thing.id).update({"amount": 2})
        thing.amount = 2
        await thing.save()
        assert not thing.is_dirty

    async def test_row_not_found_inside_a_transaction_leaves_it_usable(
        self, database: Database
    ) -> None:
        user = await User.create({"username": "virk"})
        await db.from_("users").where("id", user.id).delete()
        async with db.transaction() as trx:
            user.username = "nikk"
            with pytest.raises(ModelNotFoundError):
                await user.save(client=trx)
            other = await User.create({"username": "other"}, client=trx)
        assert other.is_persisted
        assert await db.from_("users").select("username") == [{"username": "other"}]


class TestFailedCommit:
    """A COMMIT that fails wrote nothing: the instances of the transaction go back too."""

    async def test_instances_are_new_again_when_the_commit_fails(
        self, database: Database, dialect: str
    ) -> None:
        trx = await db.transaction()
        user = await User.create({"username": "virk"}, client=trx)
        if dialect == "sqlite":
            # A deferred foreign-key violation only shows at COMMIT.
            await trx.raw_query("PRAGMA defer_foreign_keys = ON")
            await trx.table("memberships").insert({"user_id": 987654, "role": "ghost"})
        else:
            # The server drops the transaction's connection before the COMMIT.
            if dialect == "postgresql":
                rows = await trx.raw_query("select pg_backend_pid() as id")
                kill = "select pg_terminate_backend(?)"
            else:
                rows = await trx.raw_query("select connection_id() as id")
                kill = "kill ?"
            killer = Database()
            killer.configure(connection="k", connections={"k": {"url": _url(database)}})
            try:
                await killer.raw_query(kill, [rows[0]["id"]])
            finally:
                await killer.close()
        with pytest.raises(LucidError):
            await trx.commit()
        assert trx.is_completed
        _assert_new(user)
        assert await _count("users") == 0
        await user.save()
        assert await _count("users") == 1


def _url(database: Database) -> str:
    return database.get_connection().url.render_as_string(hide_password=False)
