"""A bulk write of one statement outside a transaction, with no hook to run (an upsert,
``create_many``, a has-many ``create_many`` whose parent has nothing to save), runs without a
transaction of its own: on SQLite, in one trip to aiosqlite's thread on a lean-path
connection (BEGIN IMMEDIATE, the statement and COMMIT in one call), instead of a transaction
opened through SQLAlchemy (three trips). What must hold either way, on every dialect and on
both paths: the rows and instances, the query event, the wait for a writer's lock, a
cancellation that leaves nothing written and the instances new, and a connection that goes on
after a failed statement."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path

import pytest

from lucid_orm import IntegrityError, LucidError, QueryError, after, db
from lucid_orm.database import Database
from tests.helpers import DialectConfig, count_queries
from tests.orm._upsert_schema import Account, Owner, rows, tables

__all__ = ["tables"]


async def _blocked(task: asyncio.Future[object]) -> None:
    """Let ``task`` run until it waits on the database (it must still be running)."""
    await asyncio.sleep(0.3)
    assert not task.done(), "the upsert did not wait for the lock"


async def _cancelled_while_blocked(write: Callable[[], Awaitable[object]]) -> None:
    """Run ``write`` (of the key "a@x") while another transaction holds an uncommitted row of
    that unique key — PostgreSQL and MySQL make it wait on the unique index, SQLite on the
    writer's lock — cancel it there, end the blocker, and let whatever the cancelled write
    left running end."""
    blocker = await db.transaction()
    try:
        await blocker.table("up_accounts").insert({"email": "a@x", "name": "blocker"})
        task = asyncio.ensure_future(write())
        await _blocked(task)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        await blocker.rollback()
    await asyncio.sleep(0.3)


class TestUpsertOutsideATransaction:
    async def test_one_statement_outside_any_transaction(
        self, tables: Database, dialect: str, fast_paths: bool
    ) -> None:
        await Account.create_many([{"email": "a@x", "name": "old"}])
        with count_queries() as q:
            made = await Account.upsert_many(
                [{"email": "a@x", "name": "A"}, {"email": "b@x", "name": "B"}],
                conflict="email",
                merge=["name"],
            )
        assert q.count == 1 and q.events[0].model == "Account"
        if dialect != "mysql":
            # MySQL's fast path runs its statement in a transaction (its JSON_TABLE upsert).
            assert q.events[0].in_transaction is False
        assert [(m.email, m.name) for m in made] == [("a@x", "A"), ("b@x", "B")]
        assert all(m.is_persisted and not m.is_dirty and m.trx is None for m in made)
        assert await rows("up_accounts", "email", "name") == [
            {"email": "a@x", "name": "A"},
            {"email": "b@x", "name": "B"},
        ]
        # The instances are as any other: a change saves.
        made[1].name = "B2"
        await made[1].save()
        assert await db.from_("up_accounts").where("name", "B2").count_rows() == 1

    async def test_it_waits_for_a_writer_then_writes(
        self, tables: Database, dialect: str, fast_paths: bool
    ) -> None:
        # Reads first: on SQLite the lean path then holds a connection whose busy timeout is
        # 0 while idle (inline reads must not wait); the write must wait with the configured one.
        for _ in range(3):
            await Account.query().where("email", "nobody").first()
        async with db.transaction() as trx:
            await trx.table("up_accounts").insert({"email": "w@x", "name": "writer"})
            task = asyncio.create_task(
                Account.upsert_many([{"email": "a@x", "name": "A"}], conflict="email")
            )
            if dialect == "sqlite":
                # The write lock is the writer's: the upsert waits for it (other databases
                # insert a different key without waiting).
                await _blocked(task)
        made = await task
        assert [m.email for m in made] == ["a@x"] and made[0].is_persisted
        assert await rows("up_accounts", "email") == [{"email": "w@x"}, {"email": "a@x"}]

    async def test_a_cancelled_upsert_writes_nothing(
        self, tables: Database, dialect: str, fast_paths: bool
    ) -> None:
        await _cancelled_while_blocked(
            lambda: Account.upsert_many(
                [{"email": "b@x", "name": "B"}, {"email": "a@x", "name": "A"}], conflict="email"
            )
        )
        assert await rows("up_accounts", "email") == []
        # The connections go on.
        made = await Account.upsert_many([{"email": "c@x", "name": "C"}], conflict="email")
        assert [m.email for m in made] == ["c@x"]
        assert await rows("up_accounts", "email") == [{"email": "c@x"}]

    async def test_a_failed_statement_writes_nothing_and_the_connection_goes_on(
        self, tables: Database, dialect: str, fast_paths: bool
    ) -> None:
        if dialect == "mysql":
            pytest.skip("MySQL's ON DUPLICATE KEY UPDATE resolves a duplicate of any unique key")
        (first,) = await Account.create_many([{"email": "a@x"}])
        # Conflict on the key, but the second row duplicates another unique column.
        payload = [{"id": first.id + 10, "email": "b@x"}, {"id": first.id + 11, "email": "a@x"}]
        for _ in range(2):
            with pytest.raises(IntegrityError):
                await Account.upsert_many(payload, conflict="id")
        assert await rows("up_accounts", "email") == [{"email": "a@x"}]
        made, found = await asyncio.gather(
            Account.upsert_many([{"email": "b@x", "name": "B"}], conflict="email"),
            Account.query().where("email", "a@x").first(),
        )
        assert [m.email for m in made] == ["b@x"] and found is not None
        assert await rows("up_accounts", "email") == [{"email": "a@x"}, {"email": "b@x"}]


class HookedAccount(Account):
    @after("create")
    def heard(self) -> None:
        self.visits = 99  # set after the write: the instance shows it, the row doesn't


class TestCreateManyOutsideATransaction:
    async def test_one_statement_outside_any_transaction(
        self, tables: Database, dialect: str, fast_paths: bool
    ) -> None:
        with count_queries() as q:
            made = await Account.create_many([{"email": f"{i}@x", "name": "n"} for i in range(3)])
        assert q.count == 1 and q.events[0].model == "Account"
        if dialect == "sqlite":
            assert q.events[0].in_transaction is False
        stored = await db.from_("up_accounts").select("id", "email").order_by("id")
        assert [(m.id, m.email) for m in made] == [(r["id"], r["email"]) for r in stored]
        assert all(m.is_persisted and not m.is_dirty and m.trx is None for m in made)
        assert all(isinstance(m.created_at, datetime) for m in made)
        made[2].name = "changed"
        await made[2].save()
        assert await db.from_("up_accounts").where("name", "changed").count_rows() == 1

    async def test_hooks_keep_their_transaction(
        self, tables: Database, dialect: str, fast_paths: bool
    ) -> None:
        with count_queries() as q:
            made = await HookedAccount.create_many([{"email": "a@x"}, {"email": "b@x"}])
        assert [m.visits for m in made] == [99, 99]
        assert q.count == 1 and q.events[0].in_transaction

    async def test_a_failed_statement_writes_nothing_and_leaves_the_instances_new(
        self, tables: Database, dialect: str, fast_paths: bool
    ) -> None:
        await Account.create_many([{"email": "a@x"}, {"email": "b@x"}])
        payload = [{"email": "c@x"}, {"email": "a@x"}]  # the second is a duplicate
        for _ in range(2):
            with pytest.raises(IntegrityError):
                await Account.create_many(payload)
        assert await rows("up_accounts", "email") == [{"email": "a@x"}, {"email": "b@x"}]
        made = await Account.create_many([{"email": "c@x"}, {"email": "d@x"}])
        assert [m.email for m in made] == ["c@x", "d@x"] and made[0].id is not None

    async def test_a_cancelled_create_many_writes_nothing(
        self, tables: Database, dialect: str, fast_paths: bool
    ) -> None:
        payload = [{"email": "b@x"}, {"email": "a@x"}]
        await _cancelled_while_blocked(lambda: Account.create_many(payload))
        assert await rows("up_accounts", "email") == []
        made = await Account.create_many(payload)
        assert [m.email for m in made] == ["b@x", "a@x"]
        assert await rows("up_accounts", "email") == [{"email": "b@x"}, {"email": "a@x"}]


class TestHasManyCreateMany:
    async def test_a_parent_with_nothing_to_save_adds_one_statement(
        self, tables: Database, dialect: str, fast_paths: bool
    ) -> None:
        owner = await Owner.create({"name": "o"})
        with count_queries() as q:
            made = await owner.related("badges").create_many([{"code": "a"}, {"code": "b"}])
        assert q.count == 1
        if dialect == "sqlite":
            assert q.events[0].in_transaction is False
        assert [(b.owner_id, b.code) for b in made] == [(owner.id, "a"), (owner.id, "b")]
        assert all(b.is_persisted and b.id is not None and b.trx is None for b in made)
        assert await rows("up_badges", "owner_id", "code") == [
            {"owner_id": owner.id, "code": "a"},
            {"owner_id": owner.id, "code": "b"},
        ]

    async def test_a_changed_parent_is_saved_in_the_same_transaction(
        self, tables: Database, dialect: str, fast_paths: bool
    ) -> None:
        owner = await Owner.create({"name": "o"})
        owner.name = "renamed"
        with count_queries() as q:
            await owner.related("badges").create_many([{"code": "a"}, {"code": "b"}])
        assert q.count == 2 and all(e.in_transaction for e in q.events)
        assert not owner.is_dirty
        # A duplicate fails the insert: the parent's change is rolled back with it.
        owner.name = "again"
        with pytest.raises(IntegrityError):
            await owner.related("badges").create_many([{"code": "c"}, {"code": "a"}])
        assert await rows("up_owners", "name") == [{"name": "renamed"}]
        assert await rows("up_badges", "code") == [{"code": "a"}, {"code": "b"}]


class TestCheckOut:
    async def test_a_connection_that_cannot_open_is_the_connection_error(
        self, tables: Database, dialect: str, dialect_config: DialectConfig, tmp_path: Path
    ) -> None:
        bad = {
            "sqlite": f"sqlite:///{tmp_path / 'missing-dir' / 'x.db'}",
            "postgresql": "postgresql://u:secret@127.0.0.1:1/x",
            "mysql": "mysql://u:secret@127.0.0.1:1/x",
        }[dialect]
        db.configure(
            connection=dialect,
            connections={dialect: {"url": dialect_config.url}, "down": {"url": bad}},
        )
        writes = (
            lambda: Account.create_many([{"email": "a@x"}, {"email": "b@x"}], connection="down"),
            lambda: Account.upsert_many([{"email": "a@x"}], conflict="email", connection="down"),
        )
        for write in writes:
            with pytest.raises(LucidError) as info:
                await write()
            assert not isinstance(info.value, QueryError)
            assert info.value.code == "E_CONNECTION_FAILED"
            assert 'Cannot connect to "down"' in str(info.value)
            assert "secret" not in str(info.value)
