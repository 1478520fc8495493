"""Models and transactions (SPEC §2, §3, §9): ``client=trx`` on statics, ``model.trx`` kept
and cleared, ``use_transaction``, savepoints for many-writes, ``lock_for_update``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from lucid_orm import IntegrityError, column, db
from lucid_orm.database import Database
from lucid_orm.database.transaction import TransactionClient
from tests import models
from tests.helpers import count_queries
from tests.models import Thing


class User(models.BaseUser):
    points: int | None = column()


@asynccontextmanager
async def unmanaged() -> AsyncIterator[TransactionClient]:
    """An unmanaged transaction, rolled back at the end if the test left it open."""
    trx = await db.transaction()
    try:
        yield trx
    finally:
        if not trx.is_completed:
            await trx.rollback()


async def usernames(database: Database) -> list[str]:
    rows = await database.from_("users").select("username").order_by("id")
    return [r["username"] for r in rows]


class TestClientOption:
    async def test_create_and_find_through_a_transaction(self, database: Database) -> None:
        async with unmanaged() as trx:
            user = await User.create({"username": "virk"}, client=trx)
            assert user.trx is trx
            found = await User.find(user.id, client=trx)
            assert found is not None and found.trx is trx
            listed = await User.query(client=trx)
            assert [u.trx for u in listed] == [trx]
            # Not visible outside the transaction before it commits (SQLite would block here).
            if database.dialect_name() != "sqlite":
                assert await User.find(user.id) is None
            await trx.commit()
            assert user.trx is None
            assert found.trx is None
            assert listed[0].trx is None
            assert await usernames(database) == ["virk"]

    async def test_rollback_discards_the_writes_and_clears_trx(self, database: Database) -> None:
        async with unmanaged() as trx:
            user = await User.create({"username": "virk"}, client=trx)
            many = await User.create_many([{"username": "a"}, {"username": "b"}], client=trx)
            assert [u.trx for u in many] == [trx, trx]
            first = await User.first_or_create({"username": "c"}, client=trx)
            updated = await User.update_or_create({"username": "d"}, {"points": 1}, client=trx)
            assert first.trx is trx and updated.trx is trx
            await trx.rollback()
            assert user.trx is None and first.trx is None and updated.trx is None
            assert [u.trx for u in many] == [None, None]
            assert await usernames(database) == []

    async def test_statics_take_the_client(self, database: Database) -> None:
        async with db.transaction() as trx:
            await User.create_many([{"username": "a"}, {"username": "b"}], client=trx)
            with count_queries() as q:
                assert len(await User.all(client=trx)) == 2
                assert await User.first(client=trx) is not None
                assert (await User.find_by("username", "a", client=trx)) is not None
                assert len(await User.find_many_by("username", "b", client=trx)) == 1
                fetched = await User.fetch_or_create_many(
                    "username", [{"username": "a"}, {"username": "c"}], client=trx
                )
            assert all(e.in_transaction for e in q.events)
            assert all(u.trx is trx for u in fetched)
        assert await usernames(database) == ["a", "b", "c"]

    async def test_managed_callback(self, database: Database) -> None:
        async def work(trx: TransactionClient) -> int:
            user = await User.create({"username": "virk"}, client=trx)
            return user.id

        user_id = await db.transaction(work)
        assert (await User.find_or_fail(user_id)).username == "virk"


class TestModelTrx:
    async def test_model_fetched_through_a_trx_saves_through_it(self, database: Database) -> None:
        await User.create({"username": "virk", "points": 1})
        async with unmanaged() as trx:
            user = await User.first_or_fail(client=trx)
            user.points = 2
            with count_queries() as q:
                await user.save()
            assert q.events[0].in_transaction
            await trx.rollback()
            assert user.trx is None
            assert (await User.first_or_fail()).points == 1

    async def test_use_transaction(self, database: Database) -> None:
        user = await User.create({"username": "virk", "points": 1})
        async with unmanaged() as trx:
            returned = user.use_transaction(trx)
            assert returned is user and user.trx is trx
            user.points = 5
            await user.save()
            await trx.rollback()
            assert user.trx is None
            assert (await User.first_or_fail()).points == 1

            other = User(username="romain")
            async with db.transaction() as trx2:
                other.use_transaction(trx2)
                await other.save()
                assert other.trx is trx2
            assert other.trx is None
            assert await usernames(database) == ["virk", "romain"]

    async def test_delete_through_a_transaction(self, database: Database) -> None:
        user = await User.create({"username": "virk"})
        async with unmanaged() as trx:
            await user.use_transaction(trx).delete()
            await trx.rollback()
            assert await usernames(database) == ["virk"]

    async def test_a_model_saved_after_its_transaction_ended_uses_the_default_client(
        self, database: Database
    ) -> None:
        async with db.transaction() as trx:
            user = await User.create({"username": "virk"}, client=trx)
        assert user.trx is None
        user.points = 3
        await user.save()
        assert (await User.first_or_fail()).points == 3


class TestSavepoints:
    async def test_create_many_in_a_transaction_uses_a_savepoint(self, database: Database) -> None:
        async with db.transaction() as trx:
            await Thing.create({"name": "kept"}, client=trx)
            with pytest.raises(IntegrityError):
                await Thing.create_many([{"name": "a"}, {"name": "kept"}], client=trx)
            # The outer transaction is still usable and holds only its own row.
            assert [t.name for t in await Thing.query(client=trx)] == ["kept"]
            await Thing.create({"name": "after"}, client=trx)
        rows = await database.from_("things").select("name").order_by("id")
        assert [r["name"] for r in rows] == ["kept", "after"]

    async def test_nested_transaction(self, database: Database) -> None:
        async with db.transaction() as trx:
            await User.create({"username": "outer"}, client=trx)
            nested = await trx.transaction()
            inner = await User.create({"username": "inner"}, client=nested)
            assert inner.trx is nested
            await nested.rollback()
            assert inner.trx is None
        assert await usernames(database) == ["outer"]


class TestLockForUpdate:
    async def test_lock_for_update(self, database: Database) -> None:
        user = await User.create({"username": "virk", "points": 1})

        async def bump(fresh: User) -> int:
            assert fresh is not user
            assert fresh.trx is not None
            fresh.points = (fresh.points or 0) + 1
            await fresh.save()
            return fresh.points

        with count_queries() as q:
            result = await user.lock_for_update(bump)
        assert result == 2
        assert q.count == 2
        if database.dialect_name() != "sqlite":
            assert "FOR UPDATE" in q.sqls[0].upper()
        assert all(e.in_transaction for e in q.events)
        assert (await User.first_or_fail()).points == 2

    async def test_lock_for_update_with_a_sync_callback(self, database: Database) -> None:
        user = await User.create({"username": "virk", "points": 1})
        assert await user.lock_for_update(lambda fresh: fresh.points) == 1

    async def test_lock_for_update_rolls_back_on_error(self, database: Database) -> None:
        user = await User.create({"username": "virk", "points": 1})

        async def fail(fresh: User) -> None:
            fresh.points = 10
            await fresh.save()
            raise RuntimeError("boom")

        with pytest.raises(RuntimeError):
            await user.lock_for_update(fail)
        assert (await User.first_or_fail()).points == 1

    async def test_query_for_update(self, database: Database) -> None:
        await User.create({"username": "virk"})
        async with db.transaction() as trx:
            q = User.query(client=trx).for_update().where("username", "virk")
            if database.dialect_name() != "sqlite":
                assert "FOR UPDATE" in q.to_sql()[0].upper()
            [user] = await q
            assert user.trx is trx
