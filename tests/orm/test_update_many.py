"""Bulk update with per-row values (issue 15, item 2): ``Model.update_many(instances)`` and
``Model.save_many`` write the changes of many persisted instances with one UPDATE per set of
changed columns (``UPDATE … FROM (VALUES …)`` on PostgreSQL, a joined ``UNION ALL`` derived
table on SQLite and MariaDB), chunked under the parameter limit inside one transaction, with
the update/save hooks of each instance, all or nothing: instance state changes only when the
write holds."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from typing import Any

import pytest

from lucid_orm import (
    IntegrityError,
    LucidError,
    ModelNotFoundError,
    QueryError,
    after,
    before,
    db,
)
from lucid_orm.database import Database
from tests.helpers import count_queries, through_sqlalchemy
from tests.orm._upsert_schema import Account, rows, tables

__all__ = ["tables"]

events: list[tuple[str, Any]] = []


class HookedAccount(Account):
    @before("update")
    def before_update(account: HookedAccount) -> None:
        events.append(("before:update", account.email))
        if account.name == "shout":
            account.name = "SHOUT"  # a before hook's change is written too

    @before("save")
    def before_save(account: HookedAccount) -> None:
        events.append(("before:save", account.email))

    @after("update")
    def after_update(account: HookedAccount) -> None:
        events.append(("after:update", (account.email, account.is_dirty)))

    @after("save")
    def after_save(account: HookedAccount) -> None:
        events.append(("after:save", account.email))


def _updates(sqls: list[str]) -> list[str]:
    return [s for s in sqls if s.lstrip().upper().startswith("UPDATE")]


async def _accounts(n: int) -> list[Account]:
    return await Account.create_many([{"email": f"{i}@x", "visits": 0} for i in range(n)])


class TestUpdateMany:
    async def test_one_statement_for_one_set_of_columns(
        self, tables: Database, dialect: str
    ) -> None:
        accounts = await _accounts(5)
        stamps = [a.updated_at for a in accounts]
        for i, a in enumerate(accounts):
            a.visits = i * 10
        with count_queries() as q:
            await Account.update_many(accounts)
        updates = _updates(q.sqls)
        assert len(updates) == 1 and q.count == 1, q.sqls
        connection = tables.get_connection()
        mariadb = bool(getattr(connection.dialect, "is_mariadb", False))
        if connection.fast_reads and (dialect == "sqlite" or mariadb):
            # SQLite's and MariaDB's fast path: a join on the key with the rows as a multi-row
            # VALUES on the driver connection, every value a parameter (key, visits,
            # updated_at).
            group = "(?, ?, ?)" if dialect == "sqlite" else "(%s, %s, %s)"
            assert f"UNION ALL VALUES {group}, {group}" in updates[0]
            assert "json" not in updates[0] and "CASE" not in updates[0]
            assert len(q.events[-1].bindings) == 4 * 3  # accounts[0] keeps visits = 0
        else:
            # A join on the key with the rows bound as a few parameters: one array per column
            # on PostgreSQL (unnest), one JSON text on SQLite (json_each) and MariaDB
            # (JSON_TABLE).
            assert ("unnest(" in updates[0]) == (dialect == "postgresql")
            assert ("json_each(" in updates[0]) == (dialect == "sqlite")
            assert ("JSON_TABLE(" in updates[0]) == (dialect == "mysql")
            assert "CASE" not in updates[0] and "UNION" not in updates[0]
            count = {"sqlite": 4, "postgresql": 3, "mysql": 1}[dialect]
            assert len(q.events[-1].bindings) == count
        assert [r["visits"] for r in await rows("up_accounts", "visits")] == [0, 10, 20, 30, 40]
        assert not any(a.is_dirty for a in accounts)
        for a, before_ in zip(accounts, stamps, strict=True):
            assert a.updated_at is not None and before_ is not None
            assert a.updated_at >= before_
        stored = await Account.find(accounts[0].id)
        assert stored is not None and stored.updated_at == accounts[0].updated_at

    async def test_one_statement_per_set_of_changed_columns(self, tables: Database) -> None:
        accounts = await _accounts(4)
        accounts[0].visits = 1
        accounts[1].visits = 2
        accounts[2].name = "two"
        accounts[3].name = "three"
        accounts[3].visits = 3
        with count_queries() as q:
            await Account.update_many(accounts)
        assert len(_updates(q.sqls)) == 3
        assert await rows("up_accounts", "name", "visits") == [
            {"name": None, "visits": 1},
            {"name": None, "visits": 2},
            {"name": "two", "visits": 0},
            {"name": "three", "visits": 3},
        ]

    async def test_null_and_typed_values_per_row(self, tables: Database) -> None:
        made = await Account.create_many([{"email": "a@x", "name": "x"}, {"email": "b@x"}])
        made[0].name = None  # a NULL first: the derived table's column still takes text
        made[1].name = "y'\"\\ \u00e9\U0001f600"  # quotes, a backslash, beyond the BMP
        when = datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=UTC)
        made[0].created_at = when
        made[1].created_at = when
        await Account.update_many(made)
        assert await rows("up_accounts", "name") == [{"name": None}, {"name": made[1].name}]
        again = await Account.find_or_fail(made[0].id)
        assert again.created_at == when and again.name is None

    async def test_clean_instances_are_not_written(self, tables: Database) -> None:
        accounts = await _accounts(3)
        with count_queries() as q:
            await Account.update_many(accounts)
        assert q.count == 0

    async def test_chunks_under_the_parameter_limit_in_one_transaction(
        self, tables: Database, dialect: str
    ) -> None:
        accounts = await _accounts(2500)
        for i, a in enumerate(accounts):
            a.visits = i
        with count_queries() as q:
            await Account.update_many(accounts)
        # Rows bound as arrays or JSON: one statement for any number of them.
        assert len(_updates(q.sqls)) == 1
        assert [r["visits"] for r in await rows("up_accounts", "visits")] == list(range(2500))

    async def test_values_json_cannot_hold_take_the_chunked_statement(
        self, tables: Database, dialect: str
    ) -> None:
        # An integer beyond 64 bits (that the column refuses either way) can't travel in
        # JSON; the statement falls back to chunks of plain parameters (500 rows on SQLite,
        # its compound SELECT limit), and the database's own refusal is what is raised.
        accounts = await _accounts(1200)
        for i, a in enumerate(accounts):
            a.visits = i
        if dialect != "postgresql":
            accounts[-1].visits = 2**70
            with count_queries() as q, pytest.raises(QueryError):
                await Account.update_many(accounts)
            connection = tables.get_connection()
            mariadb = bool(getattr(connection.dialect, "is_mariadb", False))
            if not connection.fast_reads or not (dialect == "sqlite" or mariadb):
                assert any("UNION ALL" in s for s in _updates(q.sqls))
            # (SQLite's and MariaDB's fast paths bind every value in one statement: the
            # driver, or the server, refuses this one.)
            assert accounts[1].is_dirty and accounts[-1].is_dirty
            assert {r["visits"] for r in await rows("up_accounts", "visits")} == {0}
            accounts[-1].visits = 1199
        await Account.update_many(accounts)
        assert [r["visits"] for r in await rows("up_accounts", "visits")] == list(range(1200))

    async def test_hooks_run_per_instance(self, tables: Database) -> None:
        events.clear()
        made = await HookedAccount.create_many([{"email": "a@x"}, {"email": "b@x"}])
        events.clear()
        made[0].name = "shout"
        made[1].visits = 4
        await HookedAccount.update_many(made)
        assert events == [
            ("before:update", "a@x"),
            ("before:save", "a@x"),
            ("before:update", "b@x"),
            ("before:save", "b@x"),
            ("after:update", ("a@x", False)),
            ("after:save", "a@x"),
            ("after:update", ("b@x", False)),
            ("after:save", "b@x"),
        ]
        assert await rows("up_accounts", "name", "visits") == [
            {"name": "SHOUT", "visits": None},
            {"name": None, "visits": 4},
        ]

    async def test_new_instances_are_refused(self, tables: Database) -> None:
        with pytest.raises(LucidError) as info:
            await Account.update_many([Account(email="new@x")])
        assert info.value.code == "E_INVALID_ARGUMENT"


class TestAllOrNothing:
    async def test_a_failing_row_writes_nothing_and_leaves_every_instance_dirty(
        self, tables: Database
    ) -> None:
        accounts = await _accounts(3)
        stamps = [a.updated_at for a in accounts]
        accounts[0].visits = 7
        accounts[1].name = "n"
        accounts[2].email = "0@x"  # taken by accounts[0]: a unique violation
        with pytest.raises(IntegrityError):
            await Account.update_many(accounts)
        assert await rows("up_accounts", "email", "name", "visits") == [
            {"email": f"{i}@x", "name": None, "visits": 0} for i in range(3)
        ]
        assert [a.dirty for a in accounts] == [{"visits": 7}, {"name": "n"}, {"email": "0@x"}]
        assert [a.updated_at for a in accounts] == stamps
        # The instances tell the truth: fixed, the same call writes them.
        accounts[2].email = "2b@x"
        await Account.update_many(accounts)
        assert not any(a.is_dirty for a in accounts)
        assert await rows("up_accounts", "email") == [
            {"email": "0@x"},
            {"email": "1@x"},
            {"email": "2b@x"},
        ]

    async def test_a_row_that_is_gone_raises_and_writes_nothing(self, tables: Database) -> None:
        accounts = await _accounts(2)
        await db.from_("up_accounts").where("id", accounts[1].id).delete()
        accounts[0].visits = 1
        accounts[1].visits = 2
        with pytest.raises(ModelNotFoundError) as info:
            await Account.update_many(accounts)
        assert f"id={accounts[1].id}" in str(info.value)
        assert await rows("up_accounts", "visits") == [{"visits": 0}]
        assert accounts[0].dirty == {"visits": 1}

    async def test_an_enclosing_rollback_makes_the_instances_dirty_again(
        self, tables: Database
    ) -> None:
        accounts = await _accounts(2)
        stamp = accounts[0].updated_at
        async with db.transaction() as trx:
            for a in accounts:
                a.visits = 5
            await Account.update_many(accounts, client=trx)
            assert not accounts[0].is_dirty
            await trx.rollback()
        assert [a.dirty for a in accounts] == [{"visits": 5}, {"visits": 5}]
        assert accounts[0].updated_at == stamp
        assert await rows("up_accounts", "visits") == [{"visits": 0}, {"visits": 0}]

    async def test_an_after_hook_that_raises_undoes_the_whole_write(self, tables: Database) -> None:
        class Failing(Account):
            @after("update")
            def fail(account: Failing) -> None:
                if account.visits == 2:
                    raise RuntimeError("refused")

        made = await Failing.create_many([{"email": "a@x"}, {"email": "b@x"}])
        made[0].visits = 1
        made[1].visits = 2
        with pytest.raises(RuntimeError):
            await Failing.update_many(made)
        assert await rows("up_accounts", "visits") == [{"visits": None}, {"visits": None}]
        assert [m.dirty for m in made] == [{"visits": 1}, {"visits": 2}]


class TestFetchedInstances:
    """Instances read from the database keep their ``original`` as the fetched row until it
    is asked for; ``update_many`` compares and journals them in that form."""

    async def test_only_changed_rows_and_columns_are_written(self, tables: Database) -> None:
        await _accounts(4)
        fetched = await Account.query().order_by("id")
        fetched[1].visits = 3
        fetched[3].name = "n"
        fetched[2].visits = 0  # the same value: clean
        with count_queries() as q:
            await Account.update_many(fetched)
        assert len(_updates(q.sqls)) == 2, q.sqls  # {visits} and {name}: one UPDATE each
        assert not any(a.is_dirty for a in fetched)
        assert [a.original == a.attributes for a in fetched] == [True] * 4
        assert await rows("up_accounts", "name", "visits") == [
            {"name": None, "visits": 0},
            {"name": None, "visits": 3},
            {"name": None, "visits": 0},
            {"name": "n", "visits": 0},
        ]
        # Written twice: the second call compares with what the first wrote.
        fetched[1].visits = 4
        await Account.update_many(fetched)
        assert await rows("up_accounts", "visits") == [
            {"visits": 0},
            {"visits": 4},
            {"visits": 0},
            {"visits": 0},
        ]
        assert not fetched[1].is_dirty

    async def test_a_change_of_type_alone_is_a_change(self, tables: Database) -> None:
        await _accounts(1)
        (account,) = await Account.query()
        account.visits = 0.0  # type: ignore[assignment]  # equal to 0, another type
        assert account.dirty == {"visits": 0.0}
        with count_queries() as q:
            await Account.update_many([account])
        assert len(_updates(q.sqls)) == 1

    async def test_an_equal_value_in_another_object_is_clean(self, tables: Database) -> None:
        await _accounts(3)
        fetched = await Account.query().order_by("id")
        fetched[0].email = "".join(["0", "@x"])  # equal, not the object read: clean
        fetched[1].email = "".join(["1", "@y"])  # another value: written
        fetched[2].visits = 0.0  # type: ignore[assignment]  # equal, another type: written
        with count_queries() as q:
            await Account.update_many(fetched)
        assert len(_updates(q.sqls)) == 2, q.sqls  # {email} and {visits}
        assert await rows("up_accounts", "email") == [
            {"email": "0@x"},
            {"email": "1@y"},
            {"email": "2@x"},
        ]
        assert not any(a.is_dirty for a in fetched)

    async def test_instances_follow_the_savepoint_then_the_transaction(
        self, tables: Database
    ) -> None:
        await _accounts(2)
        fetched = await Account.query().order_by("id")
        async with db.transaction() as trx:
            async with trx.transaction() as savepoint:
                for a in fetched:
                    a.visits = 5
                await Account.update_many(fetched, client=savepoint)
                assert [a.trx for a in fetched] == [savepoint, savepoint]
            # Released: they belong to the enclosing transaction, whose rollback undoes them.
            assert [a.trx for a in fetched] == [trx, trx]
            async with trx.transaction() as again:
                for a in fetched:
                    a.visits = 6
                await Account.update_many(fetched, client=again)
                await again.rollback()
            assert [a.trx for a in fetched] == [trx, trx]
            assert [a.dirty for a in fetched] == [{"visits": 6}, {"visits": 6}]
        assert [a.trx for a in fetched] == [None, None]
        assert await rows("up_accounts", "visits") == [{"visits": 5}, {"visits": 5}]

    async def test_an_enclosing_rollback_gives_back_the_fetched_state(
        self, tables: Database
    ) -> None:
        await _accounts(2)
        fetched = await Account.query().order_by("id")
        before = [a.original for a in fetched]
        stamps = [a.updated_at for a in fetched]
        async with db.transaction() as trx:
            for a in fetched:
                a.visits = 9
            await Account.update_many(fetched, client=trx)
            assert not any(a.is_dirty for a in fetched)
            await trx.rollback()
        assert [a.dirty for a in fetched] == [{"visits": 9}, {"visits": 9}]
        assert [a.original for a in fetched] == before
        assert [a.updated_at for a in fetched] == stamps
        await Account.update_many(fetched)
        assert await rows("up_accounts", "visits") == [{"visits": 9}, {"visits": 9}]

    async def test_a_failure_leaves_fetched_instances_as_they_were(self, tables: Database) -> None:
        await _accounts(2)
        fetched = await Account.query().order_by("id")
        fetched[0].visits = 1
        fetched[1].email = "0@x"  # a unique violation
        with pytest.raises(IntegrityError):
            await Account.update_many(fetched)
        assert [a.dirty for a in fetched] == [{"visits": 1}, {"email": "0@x"}]
        assert [a.original["email"] for a in fetched] == ["0@x", "1@x"]
        assert await rows("up_accounts", "visits") == [{"visits": 0}, {"visits": 0}]


class TestSaveMany:
    async def test_new_and_changed_instances_in_one_transaction(self, tables: Database) -> None:
        accounts = await _accounts(3)
        for a in accounts:
            a.visits = 9
        fresh = [Account(email="n1@x"), Account(email="n2@x")]
        with count_queries() as q:
            saved = await Account.save_many([*accounts, *fresh])
        writes = [s for s in q.sqls if s.lstrip().upper().startswith(("INSERT", "UPDATE"))]
        assert len(writes) == 2, q.sqls
        assert saved == [*accounts, *fresh]
        assert all(a.is_persisted and not a.is_dirty for a in saved)
        assert all(isinstance(a.id, int) for a in fresh)
        assert [r["visits"] for r in await rows("up_accounts", "visits")] == [9, 9, 9, None, None]

    async def test_a_failure_leaves_new_ones_new_and_changed_ones_dirty(
        self, tables: Database
    ) -> None:
        accounts = await _accounts(1)
        accounts[0].visits = 3
        fresh = Account(email="0@x")  # a duplicate email: the INSERT fails
        with pytest.raises(IntegrityError):
            await Account.save_many([accounts[0], fresh])
        assert not fresh.is_persisted and fresh.__dict__.get("id") is None
        assert accounts[0].dirty == {"visits": 3}
        assert await rows("up_accounts", "visits") == [{"visits": 0}]


class TestSqliteDriverUpdate:
    """SQLite's fast path: the bulk UPDATE runs on the transaction's driver connection, the
    rows as a multi-row VALUES; with the fast paths off (its twin) the rows go as one JSON
    text (json_each) through SQLAlchemy. Rows, errors, events and rollback agree."""

    async def test_the_update_skips_sqlalchemy_only_on_the_fast_path(
        self, tables: Database, dialect: str, fast_paths: bool
    ) -> None:
        if dialect != "sqlite":
            pytest.skip("the driver-level bulk UPDATE is SQLite's fast path")
        accounts = await _accounts(3)
        for i, a in enumerate(accounts):
            a.visits = i + 1
            a.name = f"n{i}"
        with count_queries() as q, through_sqlalchemy(tables) as sent:
            await Account.update_many(accounts)
        updates = _updates(q.sqls)
        assert len(updates) == 1 and q.count == 1
        assert len(_updates(sent)) == (0 if fast_paths else 1)
        event = q.events[0]
        assert event.model == "Account" and event.in_transaction is True
        if fast_paths:
            # The rows as a multi-row VALUES, every value a parameter: (key, name, visits,
            # updated_at) per row, the stamps as SQLite stores them (text).
            assert "UNION ALL VALUES (?, ?, ?, ?), (?, ?, ?, ?)" in event.sql
            assert [event.bindings[i] for i in range(0, 12, 4)] == [a.id for a in accounts]
            assert event.bindings[1::4] == ["n0", "n1", "n2"]
            assert event.bindings[2::4] == [1, 2, 3]
            assert all(isinstance(v, str) for v in event.bindings[3::4])
        else:
            # The twin: the JSON paths, then the rows as one text.
            assert "json_each(" in event.sql
            assert event.bindings[:4] == ["$[0]", "$[1]", "$[2]", "$[3]"]
            assert isinstance(event.bindings[4], str) and '"n2"' in event.bindings[4]
        assert await rows("up_accounts", "name", "visits") == [
            {"name": f"n{i}", "visits": i + 1} for i in range(3)
        ]
        assert not any(a.is_dirty for a in accounts)

    async def test_errors_and_rollback_match_the_twin(
        self, tables: Database, dialect: str, fast_paths: bool
    ) -> None:
        accounts = await _accounts(3)
        accounts[0].email = "z@x"
        accounts[1].email = "2@x"  # taken by accounts[2], which is not written
        with count_queries() as q, pytest.raises(IntegrityError) as caught:
            await Account.update_many(accounts[:2])
        assert caught.value.sql is not None and "UPDATE" in caught.value.sql.upper()
        if dialect == "sqlite":
            assert isinstance(caught.value.original, sqlite3.IntegrityError)
        assert q.count == 0  # db.on_query hears of statements that succeeded
        assert [a.dirty for a in accounts] == [{"email": "z@x"}, {"email": "2@x"}, {}]
        assert await rows("up_accounts", "email") == [{"email": f"{i}@x"} for i in range(3)]

    async def test_an_enclosing_rollback_puts_the_instances_back(
        self, tables: Database, fast_paths: bool
    ) -> None:
        accounts = await _accounts(2)
        async with db.transaction() as trx:
            for a in accounts:
                a.visits = 8
            await Account.update_many(accounts, client=trx)
            assert all(a.trx is trx for a in accounts)
            assert await trx.from_("up_accounts").where("visits", 8).count_rows() == 2
            await trx.rollback()
        assert [a.dirty for a in accounts] == [{"visits": 8}, {"visits": 8}]
        assert await rows("up_accounts", "visits") == [{"visits": 0}, {"visits": 0}]
