"""Errors of begin/commit/rollback/savepoint are ``LucidError`` subclasses (issue 12, finding
10): a ``QueryError`` with the driver's error chained, a message saying what failed and the fix.

On PostgreSQL a failed statement aborts the transaction: the next savepoint, a nested
``async with`` and the commit are refused with "the transaction is aborted after a failed
statement; roll back" (PostgreSQL itself would turn that COMMIT into a silent ROLLBACK). SQLite
and MariaDB undo only the failed statement; there the transaction carries on.
"""

from __future__ import annotations

import pytest
from sqlalchemy import exc as sa_exc

from lucid_orm.database import Database, TransactionClient
from lucid_orm.errors import IntegrityError, LucidError, QueryError

ABORTED = "the transaction is aborted after a failed statement; roll back"


def only_on(dialect: str, wanted: tuple[str, ...], reason: str) -> None:
    if dialect not in wanted:
        pytest.skip(reason)


def chain(error: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in out:
        out.append(current)
        current = current.__cause__ or current.__context__
    return out


async def fail_statement(trx: TransactionClient) -> None:
    """A statement the database refuses: a duplicate of a unique name."""
    with pytest.raises(IntegrityError):
        await trx.table("things").insert({"name": "dup"})


async def things(database: Database) -> list[str]:
    return [r["name"] for r in await database.from_("things").select("name").order_by("id")]


@pytest.fixture
async def dup(database: Database) -> None:
    await database.table("things").insert({"name": "dup"})


class TestAbortedTransaction:
    async def test_savepoint_after_a_failed_statement(
        self, database: Database, dialect: str, dup: None
    ) -> None:
        only_on(dialect, ("postgresql",), "only PostgreSQL aborts the transaction")
        trx = await database.transaction()
        await trx.table("things").insert({"name": "kept"})
        await fail_statement(trx)
        for attempt in (lambda: trx.transaction(), lambda: trx.transaction().__aenter__()):
            with pytest.raises(QueryError) as info:
                await attempt()
            error = info.value
            assert ABORTED in error.message
            assert error.message.startswith("Cannot open a savepoint")
            assert not any(isinstance(e, sa_exc.SQLAlchemyError) for e in chain(error)[:1])
            assert isinstance(error.__cause__, sa_exc.DBAPIError)
            assert type(error.original).__name__ == "InFailedSQLTransactionError"
        await trx.rollback()
        assert await things(database) == ["dup"]

    async def test_commit_after_a_failed_statement_is_refused(
        self, database: Database, dialect: str, dup: None
    ) -> None:
        only_on(dialect, ("postgresql",), "only PostgreSQL aborts the transaction")
        rolled_back: list[bool] = []
        trx = await database.transaction()
        trx.after("rollback", lambda: rolled_back.append(True))
        await trx.table("things").insert({"name": "lost"})
        await fail_statement(trx)
        with pytest.raises(QueryError) as info:
            await trx.commit()
        assert ABORTED in info.value.message
        assert "nothing was committed" in info.value.message
        assert trx.is_completed
        assert rolled_back == [True]
        assert await things(database) == ["dup"]
        # The connection went back clean.
        async with database.transaction() as again:
            await again.table("things").insert({"name": "next"})
        assert await things(database) == ["dup", "next"]

    async def test_async_with_after_a_caught_failure(
        self, database: Database, dialect: str, dup: None
    ) -> None:
        only_on(dialect, ("postgresql",), "only PostgreSQL aborts the transaction")
        with pytest.raises(QueryError) as info:
            async with database.transaction() as trx:
                await trx.table("things").insert({"name": "lost"})
                await fail_statement(trx)
        assert ABORTED in info.value.message
        assert await things(database) == ["dup"]

    async def test_nested_block_whose_failure_was_caught_rolls_back_to_its_savepoint(
        self, database: Database, dialect: str, dup: None
    ) -> None:
        """The nested block can't be released; it is rolled back to its savepoint, which
        leaves the outer transaction usable."""
        async with database.transaction() as trx:
            await trx.table("things").insert({"name": "outer"})
            if dialect == "postgresql":
                with pytest.raises(QueryError) as info:
                    async with trx.transaction() as savepoint:
                        await savepoint.table("things").insert({"name": "inner"})
                        await fail_statement(savepoint)
                assert ABORTED in info.value.message
                assert savepoint.is_completed
            else:
                async with trx.transaction() as savepoint:
                    await savepoint.table("things").insert({"name": "inner"})
                    await fail_statement(savepoint)
            await trx.table("things").insert({"name": "after"})
        expected = ["dup", "outer", "after"]
        if dialect != "postgresql":
            expected.insert(2, "inner")
        assert await things(database) == expected

    async def test_rollback_to_a_savepoint_clears_the_failure(
        self, database: Database, dup: None
    ) -> None:
        trx = await database.transaction()
        await trx.table("things").insert({"name": "a"})
        savepoint = await trx.transaction()
        await fail_statement(savepoint)
        await savepoint.rollback()
        await trx.table("things").insert({"name": "b"})
        async with trx.transaction() as again:
            await again.table("things").insert({"name": "c"})
        await trx.commit()
        assert await things(database) == ["dup", "a", "b", "c"]

    async def test_other_dialects_carry_on_after_a_failed_statement(
        self, database: Database, dialect: str, dup: None
    ) -> None:
        only_on(dialect, ("sqlite", "mysql"), "PostgreSQL aborts the transaction (above)")
        trx = await database.transaction()
        await trx.table("things").insert({"name": "kept"})
        await fail_statement(trx)
        async with trx.transaction() as savepoint:
            await savepoint.table("things").insert({"name": "inner"})
        await trx.commit()
        assert await things(database) == ["dup", "kept", "inner"]


class TestCompleted:
    async def test_commit_and_rollback_after_the_end(self, database: Database) -> None:
        for end in ("commit", "rollback"):
            trx = await database.transaction()
            savepoint = await trx.transaction()
            await getattr(savepoint, end)()
            await getattr(trx, end)()
            for client in (trx, savepoint):
                for action in (client.commit, client.rollback, client.transaction):
                    with pytest.raises(LucidError) as info:
                        await action()
                    assert info.value.code == "E_TRANSACTION_COMPLETED"

    async def test_savepoint_of_a_completed_transaction(self, database: Database) -> None:
        trx = await database.transaction()
        await trx.rollback()
        with pytest.raises(LucidError) as info:
            async with trx.transaction():
                pass
        assert info.value.code == "E_TRANSACTION_COMPLETED"

    async def test_refused_commit_completes_the_transaction(
        self, database: Database, dialect: str, dup: None
    ) -> None:
        only_on(dialect, ("postgresql",), "only PostgreSQL refuses the commit")
        trx = await database.transaction()
        await fail_statement(trx)
        with pytest.raises(QueryError):
            await trx.commit()
        with pytest.raises(LucidError) as info:
            await trx.rollback()
        assert info.value.code == "E_TRANSACTION_COMPLETED"


class TestDroppedConnection:
    """The server ends the transaction's connection (``pg_terminate_backend`` / ``KILL``)."""

    async def kill(self, database: Database, dialect: str, trx: TransactionClient) -> None:
        if dialect == "postgresql":
            pid = (await trx.raw_query("select pg_backend_pid() as pid"))[0]["pid"]
            await database.raw_query("select pg_terminate_backend(?)", [pid])
        else:
            thread = (await trx.raw_query("select connection_id() as id"))[0]["id"]
            await database.raw_query(f"kill {int(thread)}")

    async def test_commit_raises_a_query_error_and_nothing_is_written(
        self, database: Database, dialect: str
    ) -> None:
        only_on(dialect, ("postgresql", "mysql"), "the server can't drop a SQLite connection")
        trx = await database.transaction()
        await trx.table("things").insert({"name": "lost"})
        await self.kill(database, dialect, trx)
        with pytest.raises(LucidError):
            await trx.table("things").insert({"name": "more"})
        with pytest.raises(QueryError) as info:
            await trx.commit()
        assert info.value.message.startswith("Cannot commit")
        assert "connection to the database was lost" in info.value.message
        assert trx.is_completed
        assert await things(database) == []
        async with database.transaction() as again:
            await again.table("things").insert({"name": "next"})
        assert await things(database) == ["next"]

    async def test_rollback_completes_and_savepoint_rollback_raises(
        self, database: Database, dialect: str
    ) -> None:
        only_on(dialect, ("postgresql", "mysql"), "the server can't drop a SQLite connection")
        trx = await database.transaction()
        savepoint = await trx.transaction()
        await savepoint.table("things").insert({"name": "lost"})
        await self.kill(database, dialect, trx)
        with pytest.raises(QueryError) as info:
            await savepoint.rollback()
        assert info.value.message.startswith("Cannot roll back to the savepoint")
        assert savepoint.is_completed
        # The root's rollback can't fail: the server already ended the transaction.
        await trx.rollback()
        assert trx.is_completed
        assert await things(database) == []
