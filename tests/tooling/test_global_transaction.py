"""Global transactions (Lucid's ``beginGlobalTransaction`` / test utils): every query and
model operation on the connection joins one transaction — from any task, with
``db.transaction()`` as savepoints inside — and the rollback leaves nothing behind; the
``lucid_orm.testing`` pytest plugin wraps tests in one."""

from __future__ import annotations

import asyncio
import os
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lucid_orm import BaseModel, LucidError, column, has_many
from lucid_orm.database import Database, TransactionClient
from lucid_orm.relations import HasMany
from tests.helpers import DialectConfig, count_queries
from tests.models import Post

ROOT = Path(__file__).resolve().parents[2]


class User(BaseModel):
    id: int = column(is_primary=True)
    email: str | None = column()
    posts: HasMany[Post] = has_many(lambda: Post)


@pytest.fixture
async def db(database: Database) -> AsyncIterator[Database]:
    """``database``, with any global transaction a failed test left open rolled back before
    the tables are emptied (an open one would hold its locks)."""
    try:
        yield database
    finally:
        trx = database.global_transaction()
        if trx is not None:
            await trx.rollback()


async def emails(db: Database) -> list[str]:
    return [r["email"] for r in await db.from_("users").order_by("email")]


class TestRollback:
    async def test_rows_are_gone_after_rollback(self, db: Database) -> None:
        trx = await db.begin_global_transaction()
        assert isinstance(trx, TransactionClient) and not trx.is_nested
        assert db.global_transaction() is trx
        user = await User.create({"email": "a@x.io"})
        await user.related("posts").create_many([{"title": "one"}, {"title": "two"}])
        await db.table("users").insert({"email": "b@x.io"})
        await db.raw_query("insert into users (email) values (?)", ["c@x.io"])
        assert await emails(db) == ["a@x.io", "b@x.io", "c@x.io"]
        assert await Post.query().count_rows() == 2
        assert (await User.find_or_fail(user.id)).email == "a@x.io"
        await db.rollback_global_transaction()
        assert trx.is_completed
        assert db.global_transaction() is None
        assert await emails(db) == []
        assert await Post.query().count_rows() == 0

    async def test_updates_and_deletes_are_undone(self, db: Database) -> None:
        kept = await User.create({"email": "kept@x.io"})
        gone = await User.create({"email": "gone@x.io"})
        await db.begin_global_transaction()
        kept.email = "changed@x.io"
        await kept.save()
        await gone.delete()
        await db.from_("users").where("email", "changed@x.io").update({"email": "again@x.io"})
        assert await emails(db) == ["again@x.io"]
        await db.rollback_global_transaction()
        assert await emails(db) == ["gone@x.io", "kept@x.io"]

    async def test_commit_keeps_rows(self, db: Database) -> None:
        await db.begin_global_transaction()
        await User.create({"email": "a@x.io"})
        await db.commit_global_transaction()
        assert db.global_transaction() is None
        assert await emails(db) == ["a@x.io"]

    async def test_statements_report_in_transaction(self, db: Database) -> None:
        await db.begin_global_transaction()
        with count_queries() as log:
            await User.create({"email": "a@x.io"})
            await User.query().where("email", "a@x.io").first()
            await User.find_by("email", "a@x.io")
        assert log.count == 3
        assert all(e.in_transaction for e in log.events)
        await db.rollback_global_transaction()

    async def test_begin_twice_returns_the_open_one(self, db: Database) -> None:
        first = await db.begin_global_transaction()
        assert await db.begin_global_transaction() is first
        assert await db.begin_global_transaction(db.primary_connection_name) is first
        await db.rollback_global_transaction()

    async def test_ending_a_missing_one_raises(self, db: Database) -> None:
        with pytest.raises(LucidError) as info:
            await db.rollback_global_transaction()
        assert str(info.value) == (
            "Cannot rollback a non-existing global transaction. Make sure you are not calling "
            '"rollback_global_transaction" twice'
        )
        with pytest.raises(LucidError, match="Cannot commit a non-existing global"):
            await db.commit_global_transaction()

    async def test_unknown_connection(self, db: Database) -> None:
        with pytest.raises(LucidError) as info:
            await db.begin_global_transaction("nope")
        assert info.value.code == "E_UNMANAGED_DB_CONNECTION"

    async def test_ending_it_directly_clears_it(self, db: Database) -> None:
        trx = await db.begin_global_transaction()
        await User.create({"email": "a@x.io"})
        await trx.rollback()
        assert db.global_transaction() is None
        assert await emails(db) == []

    async def test_closing_the_connection_rolls_it_back(
        self, db: Database, dialect_config: DialectConfig
    ) -> None:
        trx = await db.begin_global_transaction()
        await User.create({"email": "a@x.io"})
        await db.close()
        assert trx.is_completed
        await dialect_config.restore()
        assert await emails(db) == []


class TestNestedTransactions:
    async def test_transaction_is_a_savepoint(self, db: Database) -> None:
        root = await db.begin_global_transaction()
        async with db.transaction() as trx:
            assert trx.is_nested and trx.parent is root
            await User.create({"email": "committed@x.io"}, client=trx)
        trx2 = await db.transaction()
        assert trx2.parent is root
        await User.create({"email": "rolled-back@x.io"}, client=trx2)
        await trx2.rollback()
        # The savepoint's rows are part of the global transaction until it ends.
        assert await emails(db) == ["committed@x.io"]
        await db.rollback_global_transaction()
        assert await emails(db) == []

    async def test_managed_callback_and_failure(self, db: Database) -> None:
        await db.begin_global_transaction()

        async def work(trx: TransactionClient) -> int:
            user = await User.create({"email": "a@x.io"}, client=trx)
            return user.id

        user_id = await db.transaction(work)
        assert (await User.find_or_fail(user_id)).email == "a@x.io"

        class Boom(Exception):
            pass

        with pytest.raises(Boom):
            async with db.transaction() as trx:
                await User.create({"email": "b@x.io"}, client=trx)
                raise Boom
        assert await emails(db) == ["a@x.io"]
        await db.rollback_global_transaction()
        assert await emails(db) == []

    async def test_model_many_writes_use_savepoints(self, db: Database) -> None:
        await db.begin_global_transaction()
        await User.create_many([{"email": "a@x.io"}, {"email": "b@x.io"}])
        user = await User.find_by_or_fail("email", "a@x.io")
        assert user.trx is None  # plain queries never attach the global transaction
        await db.rollback_global_transaction()
        assert await emails(db) == []


class TestTasks:
    async def test_other_tasks_join_it(self, db: Database) -> None:
        await db.begin_global_transaction()

        async def create(email: str) -> None:
            await User.create({"email": email})

        await asyncio.create_task(create("task@x.io"))
        assert await emails(db) == ["task@x.io"]
        await db.rollback_global_transaction()
        assert await emails(db) == []


class TestInMemorySqlite:
    """In-memory SQLite has one connection, which the global transaction holds."""

    async def test_queries_and_transactions_join_it(self) -> None:
        mem = Database()
        mem.configure(url="sqlite://:memory:")
        try:
            await mem.raw_query("create table items (id integer primary key, name text)")
            await mem.begin_global_transaction()
            await mem.table("items").insert({"name": "a"})

            async def other_task() -> list[str]:
                async with mem.transaction() as trx:
                    assert trx.is_nested
                    await trx.table("items").insert({"name": "b"})
                return [r["name"] for r in await mem.from_("items").order_by("name")]

            assert await asyncio.wait_for(asyncio.create_task(other_task()), 5) == ["a", "b"]
            await mem.rollback_global_transaction()
            assert await mem.from_("items") == []
            # The connection is free again: a plain transaction works.
            async with mem.transaction() as trx:
                assert not trx.is_nested
        finally:
            await mem.close()

    async def test_refused_inside_a_transaction_of_the_task(self) -> None:
        mem = Database()
        mem.configure(url="sqlite://:memory:")
        try:
            trx = await mem.transaction()
            with pytest.raises(LucidError, match="this task is inside a transaction"):
                await mem.begin_global_transaction()
            await trx.rollback()
            assert mem.global_transaction() is None
        finally:
            await mem.close()


# -- the pytest plugin ---------------------------------------------------------------------------
PLUGIN_TESTS = """
import os

import pytest

from lucid_orm import db

pytest_plugins = ["lucid_orm.testing"]


@pytest.fixture(scope="session", autouse=True)
async def schema():
    db.configure(url=os.environ["PLUGIN_DB_URL"])
    await db.raw_query("drop table if exists lucid_plugin_items")
    await db.raw_query("create table lucid_plugin_items (id integer primary key, name varchar(50))")
    yield
    await db.raw_query("drop table lucid_plugin_items")
    await db.close()


async def names():
    return [r["name"] for r in await db.from_("lucid_plugin_items").order_by("name")]


async def test_1_writes(lucid_transaction):
    assert lucid_transaction.is_transaction and not lucid_transaction.is_nested
    await db.table("lucid_plugin_items").insert({"id": 1, "name": "a"})
    async with db.transaction() as trx:
        assert trx.is_nested
        await trx.table("lucid_plugin_items").insert({"id": 2, "name": "b"})
    assert await names() == ["a", "b"]


async def test_2_previous_test_left_nothing(lucid_transaction):
    assert await names() == []
    await db.table("lucid_plugin_items").insert({"id": 1, "name": "c"})


async def test_3_without_the_fixture():
    assert await names() == []
    assert db.global_transaction() is None


async def test_4_test_may_end_it_itself(lucid_transaction):
    await db.rollback_global_transaction()
"""

PLUGIN_INI = """
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = session
asyncio_default_test_loop_scope = session
"""


async def run_pytest(directory: Path, url: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        str(directory),
        cwd=directory,
        env={**os.environ, "PLUGIN_DB_URL": url, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace")


class TestPytestPlugin:
    async def test_fixture_rolls_back_each_test(
        self, db: Database, dialect_config: DialectConfig, tmp_path: Path
    ) -> None:
        (tmp_path / "pytest.ini").write_text(PLUGIN_INI)
        (tmp_path / "test_plugin.py").write_text(PLUGIN_TESTS)
        code, out = await run_pytest(tmp_path, dialect_config.url)
        assert code == 0, out
        assert "4 passed" in out

    async def test_not_registered_without_opt_in(self, tmp_path: Path) -> None:
        (tmp_path / "pytest.ini").write_text(PLUGIN_INI)
        (tmp_path / "test_no_plugin.py").write_text(
            textwrap.dedent(
                """
                async def test_it(lucid_transaction):
                    pass
                """
            )
        )
        code, out = await run_pytest(tmp_path, "sqlite://:memory:")
        assert code != 0
        assert "fixture 'lucid_transaction' not found" in out
