"""Transactions: unmanaged, managed (async with / callback), savepoints, hooks, isolation."""

from __future__ import annotations

from typing import Any

import pytest

from lucid_orm.database import Database, TransactionClient
from lucid_orm.errors import LucidError
from tests.helpers import count_queries


async def tag_names(client: Any) -> list[str]:
    return [r["name"] for r in await client.from_("tags").order_by("name")]


class Boom(Exception):
    pass


class TestUnmanaged:
    async def test_commit(self, database: Database) -> None:
        trx = await database.transaction()
        assert isinstance(trx, TransactionClient)
        assert (trx.is_transaction, trx.is_completed) == (True, False)
        await trx.table("tags").insert({"name": "a"})
        assert await tag_names(trx) == ["a"]
        assert await tag_names(database) == []  # not visible outside before commit
        await trx.commit()
        assert trx.is_completed
        assert await tag_names(database) == ["a"]

    async def test_rollback(self, database: Database) -> None:
        trx = await database.transaction()
        await trx.table("tags").insert({"name": "a"})
        await trx.from_("tags").where("name", "a").update({"name": "b"})
        await trx.rollback()
        assert trx.is_completed
        assert await tag_names(database) == []

    async def test_every_builder_runs_inside(self, database: Database) -> None:
        trx = await database.transaction()
        await trx.insert_query().table("tags").insert({"name": "a"})
        await trx.table("tags").insert({"name": "b"})
        await trx.raw_query("insert into tags (name) values (?)", ["c"])
        assert await trx.query().from_("tags").count_rows() == 3
        assert await trx.from_("tags").where("name", "a").delete() == 1
        await trx.rollback()
        assert await database.from_("tags").count_rows() == 0

    async def test_finished_transaction_refuses_queries(self, database: Database) -> None:
        trx = await database.transaction()
        await trx.commit()
        with count_queries() as log:
            for attempt in (
                lambda: trx.from_("tags"),
                lambda: trx.table("tags").insert({"name": "x"}),
                lambda: trx.raw_query("select 1 as one"),
                trx.commit,
                trx.rollback,
            ):
                with pytest.raises(LucidError) as info:
                    await attempt()
                assert info.value.code == "E_TRANSACTION_COMPLETED"
        assert log.count == 0
        assert "already committed or rolled back" in str(info.value)

    async def test_rolled_back_transaction_refuses_queries(self, database: Database) -> None:
        trx = await database.transaction()
        await trx.rollback()
        with pytest.raises(LucidError) as info:
            await trx.from_("tags")
        assert info.value.code == "E_TRANSACTION_COMPLETED"
        with pytest.raises(LucidError):
            await trx.transaction()


class TestManaged:
    async def test_async_with_commits(self, database: Database) -> None:
        async with database.transaction() as trx:
            await trx.table("tags").insert({"name": "a"})
        assert trx.is_completed
        assert await tag_names(database) == ["a"]

    async def test_async_with_rolls_back_and_reraises(self, database: Database) -> None:
        with pytest.raises(Boom):
            async with database.transaction() as trx:
                await trx.table("tags").insert({"name": "a"})
                raise Boom()
        assert trx.is_completed
        assert await tag_names(database) == []

    async def test_async_with_explicit_rollback_inside(self, database: Database) -> None:
        async with database.transaction() as trx:
            await trx.table("tags").insert({"name": "a"})
            await trx.rollback()
        assert await tag_names(database) == []

    async def test_callback_returns_its_value(self, database: Database) -> None:
        async def work(trx: TransactionClient) -> int:
            rows = await trx.table("tags").returning("id").insert({"name": "a"})
            return int(rows[0]["id"])

        new_id = await database.transaction(work)
        assert isinstance(new_id, int)
        assert [r["id"] for r in await database.from_("tags")] == [new_id]

    async def test_sync_callback(self, database: Database) -> None:
        seen: list[TransactionClient] = []

        def work(trx: TransactionClient) -> str:
            seen.append(trx)
            return "done"

        assert await database.transaction(work) == "done"
        assert seen[0].is_completed

    async def test_callback_rolls_back_and_reraises(self, database: Database) -> None:
        async def work(trx: TransactionClient) -> None:
            await trx.table("tags").insert({"name": "a"})
            raise Boom("nope")

        with pytest.raises(Boom, match="nope"):
            await database.transaction(work)
        assert await tag_names(database) == []

    async def test_on_a_named_connection(self, database: Database, dialect: str) -> None:
        async with database.transaction(connection=dialect) as trx:
            assert trx.connection_name == dialect
            await trx.table("tags").insert({"name": "a"})
        async with database.connection(dialect).transaction() as trx:
            await trx.table("tags").insert({"name": "b"})
        trx = await database.connection(dialect).begin()
        await trx.table("tags").insert({"name": "c"})
        await trx.commit()
        assert await tag_names(database) == ["a", "b", "c"]

    async def test_unknown_connection(self, database: Database) -> None:
        with pytest.raises(LucidError) as info:
            database.transaction(connection="nope")
        assert info.value.code == "E_UNMANAGED_DB_CONNECTION"


class TestSavepoints:
    async def test_nested_rollback_keeps_outer_work(self, database: Database) -> None:
        async with database.transaction() as trx:
            await trx.table("tags").insert({"name": "outer"})
            nested = await trx.transaction()
            assert nested.is_nested and not trx.is_nested
            await nested.table("tags").insert({"name": "inner"})
            assert await tag_names(nested) == ["inner", "outer"]
            await nested.rollback()
            assert await tag_names(trx) == ["outer"]
        assert await tag_names(database) == ["outer"]

    async def test_nested_commit_then_outer_rollback(self, database: Database) -> None:
        trx = await database.transaction()
        nested = await trx.transaction()
        await nested.table("tags").insert({"name": "inner"})
        await nested.commit()
        assert await tag_names(trx) == ["inner"]
        await trx.rollback()
        assert await tag_names(database) == []

    async def test_managed_nested_forms(self, database: Database) -> None:
        async with database.transaction() as trx:
            await trx.table("tags").insert({"name": "a"})
            with pytest.raises(Boom):
                async with trx.transaction() as sp:
                    await sp.table("tags").insert({"name": "b"})
                    raise Boom()
            async with trx.transaction() as sp:
                await sp.table("tags").insert({"name": "c"})

            async def inner(sp: TransactionClient) -> str:
                await sp.table("tags").insert({"name": "d"})
                return "ok"

            assert await trx.transaction(inner) == "ok"
        assert await tag_names(database) == ["a", "c", "d"]

    async def test_two_levels_deep(self, database: Database) -> None:
        async with database.transaction() as trx:
            async with trx.transaction() as sp1:
                await sp1.table("tags").insert({"name": "one"})
                sp2 = await sp1.transaction()
                await sp2.table("tags").insert({"name": "two"})
                await sp2.rollback()
            await trx.table("tags").insert({"name": "three"})
        assert await tag_names(database) == ["one", "three"]

    async def test_failed_statement_in_savepoint_leaves_outer_usable(
        self, database: Database
    ) -> None:
        await database.table("things").insert({"name": "taken"})
        async with database.transaction() as trx:
            await trx.table("tags").insert({"name": "kept"})
            with pytest.raises(LucidError) as info:
                async with trx.transaction() as sp:
                    await sp.table("things").insert({"name": "taken"})
            assert info.value.code == "E_INTEGRITY"
            await trx.table("tags").insert({"name": "after"})
        assert await tag_names(database) == ["after", "kept"]


class TestHooks:
    async def test_after_commit(self, database: Database) -> None:
        calls: list[Any] = []

        async def async_hook() -> None:
            calls.append(("async", await database.from_("tags").count_rows()))

        trx = await database.transaction()
        trx.after("commit", lambda: calls.append("sync"))
        trx.after("commit", async_hook)
        trx.after("rollback", lambda: calls.append("rollback"))
        await trx.table("tags").insert({"name": "a"})
        assert calls == []
        await trx.commit()
        # Hooks run after the commit, in order; the committed row is visible to them.
        assert calls == ["sync", ("async", 1)]

    async def test_after_rollback(self, database: Database) -> None:
        calls: list[str] = []

        async def async_hook() -> None:
            calls.append("async rollback")

        with pytest.raises(Boom):
            async with database.transaction() as trx:
                trx.after("commit", lambda: calls.append("commit"))
                trx.after("rollback", lambda: calls.append("rollback"))
                trx.after("rollback", async_hook)
                raise Boom()
        assert calls == ["rollback", "async rollback"]

    async def test_savepoint_hooks(self, database: Database) -> None:
        calls: list[str] = []
        async with database.transaction() as trx:
            sp = await trx.transaction()
            sp.after("rollback", lambda: calls.append("sp rollback"))
            await sp.rollback()
            trx.after("commit", lambda: calls.append("commit"))
        assert calls == ["sp rollback", "commit"]

    async def test_unknown_event(self, database: Database) -> None:
        async with database.transaction() as trx:
            with pytest.raises(LucidError):
                trx.after("save", lambda: None)  # type: ignore[arg-type]


class TestIsolationLevel:
    async def test_accepted(self, database: Database, dialect: str) -> None:
        async with database.transaction(isolation_level="serializable") as trx:
            await trx.table("tags").insert({"name": "a"})
            if dialect == "postgresql":
                rows = await trx.raw_query("show transaction_isolation")
                assert rows[0]["transaction_isolation"] == "serializable"
            elif dialect == "mysql":
                rows = await trx.raw_query("select @@tx_isolation as level")
                assert rows[0]["level"] == "SERIALIZABLE"
        assert await tag_names(database) == ["a"]
        # The pooled connection goes back to the default level afterwards.
        async with database.transaction() as trx:
            if dialect == "postgresql":
                rows = await trx.raw_query("show transaction_isolation")
                assert rows[0]["transaction_isolation"] == "read committed"
            elif dialect == "mysql":
                rows = await trx.raw_query("select @@tx_isolation as level")
                assert rows[0]["level"] == "REPEATABLE-READ"

    async def test_other_levels(self, database: Database, dialect: str) -> None:
        for level in ("read committed", "repeatable read", "READ UNCOMMITTED"):
            trx = await database.transaction(isolation_level=level)
            assert await trx.from_("tags").count_rows() == 0
            await trx.rollback()

    async def test_invalid_level(self, database: Database, dialect: str) -> None:
        if dialect == "sqlite":
            pytest.skip("SQLite has no isolation levels to choose from: the option is ignored")
        with pytest.raises(LucidError) as info:
            await database.transaction(isolation_level="eventually consistent")
        assert info.value.code == "E_INVALID_ARGUMENT"
        assert 'Invalid isolation level "eventually consistent"' in str(info.value)
        # Nothing was left checked out or half-open.
        async with database.transaction() as trx:
            await trx.table("tags").insert({"name": "a"})
        assert await tag_names(database) == ["a"]
