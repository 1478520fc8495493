"""Upsert and race-safe get-or-create (issue 15, item 1): the insert builder's
``on_conflict(...).merge()/.ignore()``, ``Model.upsert``/``upsert_many`` (one statement,
instances with their keys), and ``first_or_create``/``update_or_create``/``fetch_or_create_many``
/``update_or_create_many`` under real concurrency: 10 callers on 10 pooled connections for one
new key all succeed and leave one row. Matching follows the database's collation."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from lucid_orm import BaseModel, IntegrityError, LucidError, QueryError, after, before, column, db
from lucid_orm.database import Database
from tests.helpers import count_queries
from tests.orm._upsert_schema import Account, Note, Stock, rows, tables

__all__ = ["tables"]

N = 10


def _writes(sqls: list[str]) -> list[str]:
    return [s for s in sqls if not s.lstrip().upper().startswith(("SAVEPOINT", "RELEASE"))]


class TestInsertBuilder:
    async def test_merge_updates_every_inserted_column_but_the_conflict_ones(
        self, tables: Database, dialect: str
    ) -> None:
        await db.table("up_accounts").insert({"email": "a@x", "name": "A", "visits": 1})
        query = (
            db.table("up_accounts")
            .multi_insert(
                [
                    {"email": "a@x", "name": "A2", "visits": 5},
                    {"email": "b@x", "name": "B", "visits": None},
                ]
            )
            .on_conflict("email")
            .merge()
        )
        sql, bindings = query.to_sql()
        if dialect == "mysql":
            assert "ON DUPLICATE KEY UPDATE name = VALUES(name), visits = VALUES(visits)" in sql
        else:
            assert "ON CONFLICT (email) DO UPDATE SET name = excluded.name" in sql
        assert bindings == ["a@x", "A2", 5, "b@x", "B", None]
        await query
        assert await rows("up_accounts", "email", "name", "visits") == [
            {"email": "a@x", "name": "A2", "visits": 5},
            {"email": "b@x", "name": "B", "visits": None},
        ]

    async def test_merge_with_a_list_or_a_dict(self, tables: Database) -> None:
        await db.table("up_accounts").insert({"email": "a@x", "name": "A", "visits": 1})
        await (
            db.table("up_accounts")
            .insert({"email": "a@x", "name": "ignored", "visits": 2})
            .on_conflict("email")
            .merge(["visits"])
        )
        assert await rows("up_accounts", "name", "visits") == [{"name": "A", "visits": 2}]
        await (
            db.table("up_accounts")
            .insert({"email": "a@x", "name": "x"})
            .on_conflict("email")
            .merge({"name": "set by merge", "visits": db.raw("up_accounts.visits + 10")})
        )
        assert await rows("up_accounts", "name", "visits") == [
            {"name": "set by merge", "visits": 12}
        ]

    async def test_merge_on_a_two_column_key_with_returning(self, tables: Database) -> None:
        await db.table("up_stocks").insert({"shop": "s1", "sku": "k", "qty": 1})
        returned = await (
            db.table("up_stocks")
            .returning("shop", "sku", "qty")
            .multi_insert(
                [{"shop": "s1", "sku": "k", "qty": 7}, {"shop": "s2", "sku": "k", "qty": 3}]
            )
            .on_conflict("shop", "sku")
            .merge()
        )
        assert sorted(returned, key=lambda r: r["shop"]) == [
            {"shop": "s1", "sku": "k", "qty": 7},
            {"shop": "s2", "sku": "k", "qty": 3},
        ]
        assert await db.from_("up_stocks").count_rows() == 2

    async def test_ignore_keeps_the_existing_row(self, tables: Database) -> None:
        await db.table("up_accounts").insert({"email": "a@x", "name": "first"})
        await (
            db.table("up_accounts")
            .multi_insert([{"email": "a@x", "name": "second"}, {"email": "b@x", "name": "b"}])
            .on_conflict("email")
            .ignore()
        )
        assert await rows("up_accounts", "email", "name") == [
            {"email": "a@x", "name": "first"},
            {"email": "b@x", "name": "b"},
        ]

    async def test_ignore_skips_duplicates_only_not_other_errors(self, tables: Database) -> None:
        # MySQL's INSERT IGNORE would store '' for the NOT NULL column with a warning; the
        # no-op ON DUPLICATE KEY UPDATE still fails.
        with pytest.raises(IntegrityError):
            await db.table("up_accounts").insert({"email": None}).on_conflict("email").ignore()
        assert await db.from_("up_accounts").count_rows() == 0

    async def test_on_conflict_without_merge_or_ignore_is_refused(self, tables: Database) -> None:
        query = db.table("up_accounts").insert({"email": "a@x"})
        query.on_conflict("email")
        with pytest.raises(LucidError) as info:
            await query
        assert info.value.code == "E_INVALID_ARGUMENT"
        with pytest.raises(LucidError) as bad:
            db.table("up_accounts").insert({"email": "a@x"}).on_conflict("email; drop")
        assert bad.value.code == "E_INVALID_IDENTIFIER"


class TestModelUpsert:
    async def test_upsert_creates_then_updates_in_one_statement(self, tables: Database) -> None:
        with count_queries() as q:
            made = await Account.upsert(
                {"email": "a@x", "name": "A", "visits": 1}, conflict="email"
            )
        assert _writes(q.sqls) == q.sqls and q.count == 1
        assert made.is_persisted and not made.is_dirty and made.id is not None
        assert made.created_at is not None and made.updated_at is not None
        with count_queries() as q:
            again = await Account.upsert(
                {"email": "a@x", "name": "A2", "visits": 2}, conflict=["email"]
            )
        assert q.count == 1
        assert again.id == made.id
        assert (again.name, again.visits) == ("A2", 2)
        # created_at kept, updated_at set by the update.
        assert again.created_at == made.created_at
        assert again.updated_at is not None and again.updated_at >= made.updated_at  # type: ignore[operator]
        assert await rows("up_accounts", "email", "name", "visits") == [
            {"email": "a@x", "name": "A2", "visits": 2}
        ]

    async def test_merge_names_the_columns_an_existing_row_takes(self, tables: Database) -> None:
        first = await Account.upsert({"email": "a@x", "name": "A", "visits": 1}, conflict="email")
        got = await Account.upsert(
            {"email": "a@x", "name": "not merged", "visits": 9}, conflict="email", merge=["visits"]
        )
        assert got.id == first.id and got.name == "A" and got.visits == 9

    async def test_upsert_many_returns_instances_in_payload_order(self, tables: Database) -> None:
        old = await Stock.create({"shop": "s1", "sku": "b", "qty": 1})
        payload = [
            {"shop": "s1", "sku": "a", "qty": 5},
            {"shop": "s1", "sku": "b", "qty": 6},
            {"shop": "s2", "sku": "a", "qty": 7},
            {"shop": "s1", "sku": "a", "qty": 8},  # the same key again: the last one wins
        ]
        with count_queries() as q:
            made = await Stock.upsert_many(payload, conflict=["shop", "sku"])
        assert q.count == 1
        assert [(m.shop, m.sku, m.qty) for m in made] == [
            ("s1", "a", 8),
            ("s1", "b", 6),
            ("s2", "a", 7),
            ("s1", "a", 8),
        ]
        assert made[1].id == old.id and made[0] is made[3]
        assert all(m.is_persisted and m.id is not None for m in made)
        assert await rows("up_stocks", "shop", "sku", "qty") == [
            {"shop": "s1", "sku": "b", "qty": 6},
            {"shop": "s1", "sku": "a", "qty": 8},
            {"shop": "s2", "sku": "a", "qty": 7},
        ]

    async def test_upsert_many_sends_the_rows_bound_not_built_into_the_sql(
        self, tables: Database, dialect: str
    ) -> None:
        await Stock.create_many([{"shop": "s", "sku": str(i), "qty": 0} for i in range(0, 2400, 2)])
        payload = [{"shop": "s", "sku": str(i), "qty": i} for i in range(2400)]  # half new
        with count_queries() as q:
            made = await Stock.upsert_many(payload, conflict=["shop", "sku"])
        if dialect == "sqlite" and tables.get_connection().fast_reads:
            # The fast path: one multi-row VALUES on the driver connection, every value a
            # parameter (32,766 a statement).
            assert q.count == 1 and "json" not in q.sqls[0].lower()
            assert q.sqls[0].count("(?, ?, ?)") == 2400 and "'s'" not in q.sqls[0]
            assert len(q.events[0].bindings) == 3 * 2400
        elif dialect == "sqlite":
            # One JSON text (json_each): one statement, one row parameter, for any count.
            assert q.count == 1 and "json_each(" in q.sqls[0]
        elif dialect == "mysql":
            # MariaDB: one JSON text too (JSON_TABLE).
            assert q.count == 1 and "JSON_TABLE(" in q.sqls[0]
        else:
            # PostgreSQL: one array per column (unnest), one statement for any count.
            assert q.count == 1 and "unnest(" in q.sqls[0] and "'s'" not in q.sqls[0]
            assert [len(b) for b in q.events[0].bindings] == [2400] * 3
        assert [(m.sku, m.qty) for m in made] == [(str(i), i) for i in range(2400)]
        assert len({m.id for m in made}) == 2400
        stored = await rows("up_stocks", "sku", "qty")
        assert sorted((int(r["sku"]), r["qty"]) for r in stored) == [(i, i) for i in range(2400)]
        # A value JSON can't carry exactly (an integer beyond 64 bits): the rows go as
        # parameter sets, and the database's refusal is raised with nothing written.
        with pytest.raises(QueryError):
            await Stock.upsert_many(
                [{"shop": "s", "sku": "0", "qty": -1}, {"shop": "s", "sku": "x", "qty": 2**70}],
                conflict=["shop", "sku"],
            )
        assert await db.from_("up_stocks").where("qty", -1).count_rows() == 0
        assert await db.from_("up_stocks").count_rows() == 2400

    async def test_upsert_without_a_unique_index_says_so(
        self, tables: Database, dialect: str
    ) -> None:
        if dialect == "mysql":
            # MySQL has no conflict target: without a unique key it inserts (documented).
            await Note.upsert({"title": "a"}, conflict="title")
            await Note.upsert({"title": "a"}, conflict="title")
            assert await db.from_("up_notes").count_rows() == 2
            return
        with pytest.raises(LucidError) as info:
            await Note.upsert({"title": "a"}, conflict="title")
        assert info.value.code == "E_MISSING_UNIQUE_INDEX"
        assert "unique index" in str(info.value) and "(title)" in str(info.value)

    async def test_upsert_needs_the_conflict_attributes(self, tables: Database) -> None:
        with pytest.raises(LucidError) as info:
            await Account.upsert({"name": "x"}, conflict="email")
        assert info.value.code == "E_INVALID_ARGUMENT"


async def _concurrently(make: Any) -> list[Any]:
    """``N`` calls of ``make()`` at once: each awaits its own pooled connection."""
    return list(await asyncio.gather(*[make() for _ in range(N)]))


class TestRaceSafety:
    async def test_concurrent_upserts_of_one_new_key(self, tables: Database) -> None:
        got = await _concurrently(
            lambda: Account.upsert({"email": "new@x", "visits": 1}, conflict="email")
        )
        assert len(got) == N and len({a.id for a in got}) == 1
        assert await rows("up_accounts", "email") == [{"email": "new@x"}]

    async def test_concurrent_first_or_create_of_one_new_key(self, tables: Database) -> None:
        got = await _concurrently(
            lambda: Account.first_or_create({"email": "new@x"}, {"name": "n"})
        )
        assert len(got) == N and len({a.id for a in got}) == 1
        assert all(a.is_persisted and not a.is_dirty for a in got)
        assert await rows("up_accounts", "email", "name") == [{"email": "new@x", "name": "n"}]

    async def test_concurrent_fetch_or_create_many_of_the_same_new_keys(
        self, tables: Database
    ) -> None:
        payload = [{"email": "a@x"}, {"email": "b@x"}, {"email": "c@x"}]
        got = await _concurrently(lambda: Account.fetch_or_create_many("email", payload))
        assert len(got) == N
        ids = {tuple(a.id for a in batch) for batch in got}
        assert len(ids) == 1
        stored = sorted(str(r["email"]) for r in await rows("up_accounts", "email"))
        assert stored == ["a@x", "b@x", "c@x"]

    async def test_concurrent_update_or_create_of_one_new_key(self, tables: Database) -> None:
        got = await _concurrently(
            lambda: Account.update_or_create({"email": "new@x"}, {"visits": 3})
        )
        assert len(got) == N and len({a.id for a in got}) == 1
        assert await rows("up_accounts", "email", "visits") == [{"email": "new@x", "visits": 3}]

    async def test_concurrent_update_or_create_many_of_the_same_new_keys(
        self, tables: Database
    ) -> None:
        payload = [{"email": "a@x", "visits": 1}, {"email": "b@x", "visits": 2}]
        got = await _concurrently(lambda: Account.update_or_create_many("email", payload))
        assert len(got) == N
        assert all([a.visits for a in batch] == [1, 2] for batch in got)
        stored = await db.from_("up_accounts").select("email", "visits").order_by("email")
        assert stored == [{"email": "a@x", "visits": 1}, {"email": "b@x", "visits": 2}]

    async def test_a_unique_violation_of_another_key_is_raised(self, tables: Database) -> None:
        # The insert collides on email, but the search (name) finds no row: the duplicate of
        # another unique key than the searched one is the caller's error, not a lost race.
        await Account.create({"email": "taken@x", "name": "A"})
        with pytest.raises(IntegrityError):
            await Account.first_or_create({"name": "B"}, {"email": "taken@x"})
        assert await db.from_("up_accounts").count_rows() == 1


class TestCollation:
    """Existing rows are matched by the database, never by Python's ``==``: under MariaDB's
    case-insensitive collation ``'A@X'`` is the stored ``'a@x'``; on PostgreSQL and SQLite
    (binary comparisons) it is another row."""

    async def test_fetch_or_create_many(self, tables: Database, dialect: str) -> None:
        stored = await Account.create({"email": "a@x"})
        got = await Account.fetch_or_create_many("email", [{"email": "A@X"}, {"email": "b@x"}])
        emails = sorted(str(r["email"]) for r in await rows("up_accounts", "email"))
        if dialect == "mysql":
            assert got[0].id == stored.id and got[0].email == "a@x"
            assert emails == ["a@x", "b@x"]
        else:
            assert got[0].id != stored.id
            assert emails == ["A@X", "a@x", "b@x"]

    async def test_update_or_create_many_and_first_or_create(
        self, tables: Database, dialect: str
    ) -> None:
        stored = await Account.create({"email": "a@x", "visits": 1})
        got = await Account.update_or_create_many("email", [{"email": "A@X", "visits": 5}])
        first = await Account.first_or_create({"email": "A@X"})
        count = await db.from_("up_accounts").count_rows()
        if dialect == "mysql":
            assert got[0].id == stored.id == first.id and count == 1
            assert (await rows("up_accounts", "visits")) == [{"visits": 5}]
        else:
            assert got[0].id != stored.id and first.id == got[0].id and count == 2

    async def test_two_payload_entries_equal_only_in_the_database(
        self, tables: Database, dialect: str
    ) -> None:
        got = await Account.fetch_or_create_many("email", [{"email": "a@x"}, {"email": "A@X"}])
        count = await db.from_("up_accounts").count_rows()
        if dialect == "mysql":
            assert got[0].id == got[1].id and count == 1
        else:
            assert got[0].id != got[1].id and count == 2


class TestStatementCounts:
    async def test_fetch_or_create_many_reads_once_and_inserts_once(self, tables: Database) -> None:
        await Account.create({"email": "a@x"})
        with count_queries() as q:
            got = await Account.fetch_or_create_many(
                "email", [{"email": "a@x"}, {"email": "b@x"}, {"email": "c@x"}]
            )
        assert [a.email for a in got] == ["a@x", "b@x", "c@x"]
        assert len(_writes(q.sqls)) == 2, q.sqls

    async def test_update_or_create_many_updates_existing_rows_in_one_statement(
        self, tables: Database
    ) -> None:
        await Account.create_many([{"email": f"{i}@x", "visits": 0} for i in range(5)])
        payload = [{"email": f"{i}@x", "visits": i} for i in range(7)]
        with count_queries() as q:
            got = await Account.update_or_create_many("email", payload)
        # One read, one UPDATE of the five existing rows, one INSERT of the two new ones.
        assert len(_writes(q.sqls)) == 3, q.sqls
        assert [a.visits for a in got] == list(range(7))
        assert [r["visits"] for r in await rows("up_accounts", "visits")] == list(range(7))


class RacedAccount(Account):
    """A rival caller commits the same new rows (on another pooled connection) right after
    this caller's read found none: the lost race, made deterministic."""

    rival: dict[str, Any] | None = None

    @after("fetch")
    async def _rival_after_read(accounts: list[RacedAccount]) -> None:
        rows_ = RacedAccount.rival
        if rows_ is not None and not accounts:
            RacedAccount.rival = None
            await db.table("up_accounts").insert(rows_)

    @before("create")
    async def _rival_before_insert(account: RacedAccount) -> None:
        rows_ = RacedAccount.rival
        if rows_ is not None:
            RacedAccount.rival = None
            await db.table("up_accounts").insert(rows_)


class TestTheLostRace:
    """What a caller that loses the race does: the other caller's row is returned (and, for the
    update forms, updated), nothing raises, one row is left. PostgreSQL and MariaDB: on SQLite
    the writing transaction holds the database's one write lock, so no rival can write in
    between (there the concurrent tests above go through the lost race: 9 of 10 callers of
    ``first_or_create`` do)."""

    @pytest.fixture(autouse=True)
    def _servers_only(self, dialect: str) -> None:
        if dialect == "sqlite":
            pytest.skip("SQLite serializes the rival behind the write lock")

    async def test_fetch_or_create_many_returns_the_rival_row(self, tables: Database) -> None:
        RacedAccount.rival = {"email": "a@x", "name": "rival"}
        got = await RacedAccount.fetch_or_create_many("email", [{"email": "a@x", "name": "me"}])
        assert RacedAccount.rival is None  # the rival ran
        assert got[0].name == "rival" and got[0].is_persisted and not got[0].is_dirty
        assert await rows("up_accounts", "email", "name") == [{"email": "a@x", "name": "rival"}]

    async def test_update_or_create_many_updates_the_rival_row(self, tables: Database) -> None:
        RacedAccount.rival = {"email": "a@x", "name": "rival", "visits": 1}
        got = await RacedAccount.update_or_create_many(
            "email", [{"email": "a@x", "visits": 5}, {"email": "b@x", "visits": 6}]
        )
        assert RacedAccount.rival is None
        assert [(a.email, a.name, a.visits) for a in got] == [
            ("a@x", "rival", 5),
            ("b@x", None, 6),
        ]
        stored = await db.from_("up_accounts").select("email", "visits").order_by("email")
        assert stored == [{"email": "a@x", "visits": 5}, {"email": "b@x", "visits": 6}]

    async def test_first_or_create_and_update_or_create_return_the_rival_row(
        self, tables: Database
    ) -> None:
        RacedAccount.rival = {"email": "a@x", "name": "rival"}
        first = await RacedAccount.first_or_create({"email": "a@x"}, {"name": "me"})
        assert RacedAccount.rival is None
        assert first.name == "rival" and first.is_persisted
        RacedAccount.rival = {"email": "b@x", "name": "rival"}
        updated = await RacedAccount.update_or_create({"email": "b@x"}, {"visits": 9})
        assert (updated.name, updated.visits) == ("rival", 9)
        assert await rows("up_accounts", "email", "name", "visits") == [
            {"email": "a@x", "name": "rival", "visits": None},
            {"email": "b@x", "name": "rival", "visits": 9},
        ]


class TestSqliteDriverUpsert:
    """SQLite's fast path: ``upsert_many`` runs one multi-row ``INSERT … ON CONFLICT``
    on a transaction's driver connection; its twin (fast paths off) sends the rows through
    SQLAlchemy. Rows, returned instances, errors and events agree either way (and on the other
    dialects, which have SQLAlchemy's path only)."""

    async def test_rows_and_instances_agree_with_the_twin(
        self, tables: Database, dialect: str, fast_paths: bool
    ) -> None:
        await Account.create_many([{"email": f"{i}@x", "name": "old"} for i in range(0, 6, 2)])
        payload = [{"email": f"{i}@x", "name": f"n{i}", "visits": i} for i in range(6)]
        with count_queries() as q:
            made = await Account.upsert_many(payload, conflict="email", merge=["name"])
        assert q.count == 1 and q.events[0].model == "Account"
        assert [(m.email, m.name) for m in made] == [(f"{i}@x", f"n{i}") for i in range(6)]
        # Existing rows kept the columns not merged; the returned instances hold the row.
        assert [m.visits for m in made] == [None, 1, None, 3, None, 5]
        assert all(m.is_persisted and not m.is_dirty and m.trx is None for m in made)
        assert all(m.created_at is not None and m.created_at.tzinfo is not None for m in made)
        assert await rows("up_accounts", "email", "name") == [
            {"email": f"{i}@x", "name": f"n{i}"} for i in [0, 2, 4, 1, 3, 5]
        ]
        made[1].name = "again"
        await made[1].save()
        assert await db.from_("up_accounts").where("name", "again").count_rows() == 1

    async def test_a_duplicate_of_another_unique_key_writes_nothing(
        self, tables: Database, dialect: str, fast_paths: bool
    ) -> None:
        if dialect == "mysql":
            pytest.skip("MySQL's ON DUPLICATE KEY UPDATE resolves a duplicate of any unique key")
        (first,) = await Account.create_many([{"email": "a@x"}])
        payload = [{"id": first.id + 10, "email": "b@x"}, {"id": first.id + 11, "email": "a@x"}]
        with count_queries() as q, pytest.raises(IntegrityError) as caught:
            await Account.upsert_many(payload, conflict="id")
        assert caught.value.sql is not None and "INSERT" in caught.value.sql.upper()
        assert q.count == 0  # db.on_query hears of statements that succeeded
        assert await rows("up_accounts", "email") == [{"email": "a@x"}]

    async def test_inside_a_transaction_that_rolls_back(
        self, tables: Database, fast_paths: bool
    ) -> None:
        await Account.create_many([{"email": "a@x", "name": "old"}])
        async with db.transaction() as trx:
            made = await Account.upsert_many(
                [{"email": "a@x", "name": "new"}, {"email": "b@x", "name": "b"}],
                conflict="email",
                client=trx,
            )
            assert [m.trx for m in made] == [trx, trx]
            assert await trx.from_("up_accounts").count_rows() == 2
            await trx.rollback()
        assert await rows("up_accounts", "email", "name") == [{"email": "a@x", "name": "old"}]

    async def test_rows_that_set_different_columns_are_one_transaction(
        self, tables: Database, fast_paths: bool
    ) -> None:
        payload = [{"email": "a@x", "name": "a"}, {"email": "b@x", "visits": 1}]
        with count_queries() as q:
            made = await Account.upsert_many(payload, conflict="email")
        assert q.count == 2 and all(e.in_transaction for e in q.events)
        assert [(m.email, m.name, m.visits) for m in made] == [("a@x", "a", None), ("b@x", None, 1)]
        # The second fails: the first is not kept either.
        bad = [{"email": "c@x", "name": "c"}, {"email": "d@x", "visits": 2**70}]
        with pytest.raises(QueryError):
            await Account.upsert_many(bad, conflict="email")
        assert await db.from_("up_accounts").count_rows() == 2


class PreparedStock(Stock):
    # ``prepare`` runs on the way in, per row; an instance of the model is what it is given.
    qty: int | None = column(prepare=lambda v, _attr, model: None if v is None else v * 10)


class RenamedNote(BaseModel):
    table = "up_notes"
    id: int = column(is_primary=True)
    heading: str | None = column(column_name="title")


class TestUpsertColumnWork:
    """Rows whose model has nothing to stamp or prepare go in as they are; ``prepare``
    functions, renamed columns and auto timestamps still apply per row otherwise."""

    async def test_plain_rows_in_any_key_order_are_one_statement(
        self, tables: Database, fast_paths: bool
    ) -> None:
        from types import MappingProxyType

        await Stock.create_many([{"shop": "s", "sku": "a", "qty": 1}])
        payload: list[Any] = [
            {"shop": "s", "sku": "a", "qty": 2},  # column order
            {"qty": 3, "sku": "b", "shop": "s"},  # another order: the same columns
            MappingProxyType({"sku": "c", "shop": "s", "qty": 4}),  # not a dict
            {"shop": "s", "sku": "d", "qty": 5},
        ]
        with count_queries() as q:
            made = await Stock.upsert_many(payload, conflict=["shop", "sku"], merge=["qty"])
        assert len(_writes(q.sqls)) == 1, q.sqls
        assert [(m.sku, m.qty) for m in made] == [("a", 2), ("b", 3), ("c", 4), ("d", 5)]
        assert all(m.is_persisted and not m.is_dirty for m in made)
        assert await rows("up_stocks", "sku", "qty") == [
            {"sku": "a", "qty": 2},
            {"sku": "b", "qty": 3},
            {"sku": "c", "qty": 4},
            {"sku": "d", "qty": 5},
        ]
        assert payload[1] == {"qty": 3, "sku": "b", "shop": "s"}  # the payload is untouched

    async def test_interleaved_column_sets_are_one_statement_each_in_payload_order(
        self, tables: Database, fast_paths: bool
    ) -> None:
        payload: list[Any] = [
            {"shop": "s", "sku": "a", "qty": 1},
            {"shop": "s", "sku": "b"},
            {"shop": "s", "sku": "c", "qty": 3},
            {"shop": "s", "sku": "d"},
            {"shop": "s", "sku": "a", "qty": 9},  # the same key again: the last one wins
        ]
        with count_queries() as q:
            made = await Stock.upsert_many(payload, conflict=["shop", "sku"])
        assert len(_writes(q.sqls)) == 2, q.sqls
        assert [m.sku for m in made] == ["a", "b", "c", "d", "a"]
        assert made[0] is made[4] and made[0].qty == 9
        stored = sorted((r["sku"], r["qty"]) for r in await rows("up_stocks", "sku", "qty"))
        assert stored == [("a", 9), ("b", None), ("c", 3), ("d", None)]
        with pytest.raises(LucidError, match="needs the key"):
            await Stock.upsert_many([{"shop": "s", "sku": "e"}, {"shop": "s"}], conflict="sku")

    async def test_prepare_functions_run_per_row(self, tables: Database) -> None:
        await Stock.create_many([{"shop": "s", "sku": "a", "qty": 1}])
        made = await PreparedStock.upsert_many(
            [{"shop": "s", "sku": "a", "qty": 2}, {"shop": "s", "sku": "b", "qty": 3}],
            conflict=["shop", "sku"],
        )
        assert [m.sku for m in made] == ["a", "b"]
        assert await rows("up_stocks", "sku", "qty") == [
            {"sku": "a", "qty": 20},
            {"sku": "b", "qty": 30},
        ]

    async def test_a_renamed_column_is_written_under_its_name(self, tables: Database) -> None:
        made = await RenamedNote.upsert_many([{"id": 7, "heading": "x"}], conflict="id")
        assert [(m.id, m.heading) for m in made] == [(7, "x")]
        made = await RenamedNote.upsert_many([{"id": 7, "heading": "y"}], conflict="id")
        assert made[0].heading == "y"
        assert await rows("up_notes", "id", "title") == [{"id": 7, "title": "y"}]

    async def test_auto_timestamps_are_stamped(self, tables: Database) -> None:
        (made,) = await Account.upsert_many([{"email": "a@x"}], conflict="email")
        assert made.created_at is not None and made.updated_at is not None
        stored = await Account.find(made.id)
        assert stored is not None and stored.created_at == made.created_at

    async def test_an_unknown_attribute_is_refused_before_any_write(self, tables: Database) -> None:
        with count_queries() as q, pytest.raises(LucidError):
            await Stock.upsert_many(
                [{"shop": "s", "sku": "a"}, {"shop": "s", "sku": "b", "nope": 1}],
                conflict=["shop", "sku"],
            )
        assert q.count == 0
