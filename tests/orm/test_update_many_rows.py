"""``update_many`` of fetched instances of a model without auto-update timestamps: the batch is
compared column by column against the rows as hydrated, one UPDATE per set of changed columns,
and the values written become each instance's row. Also: which transaction the instances are
bound to while the write runs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from lucid_orm import (
    BaseModel,
    IntegrityError,
    LucidError,
    ModelNotFoundError,
    before,
    column,
    db,
)
from lucid_orm.database import Database
from tests.helpers import count_queries
from tests.orm._upsert_schema import Stock, rows, tables

__all__ = ["tables"]


def _updates(sqls: list[str]) -> list[str]:
    return [s for s in sqls if s.lstrip().upper().startswith("UPDATE")]


async def _stocks(n: int) -> list[Stock]:
    await Stock.create_many([{"shop": "s", "sku": f"k{i}", "qty": 0} for i in range(n)])
    return await Stock.query().order_by("id")


class TestFetchedBatch:
    async def test_every_row_changed_in_one_column_is_one_update(self, tables: Database) -> None:
        stocks = await _stocks(5)
        for i, s in enumerate(stocks):
            s.qty = i + 10
        with count_queries() as q:
            await Stock.update_many(stocks)
        assert len(_updates(q.sqls)) == 1, q.sqls
        assert await rows("up_stocks", "qty") == [{"qty": i + 10} for i in range(5)]
        assert not any(s.is_dirty for s in stocks)
        assert [s.original == s.attributes for s in stocks] == [True] * 5
        # Written again: compared with what the first call wrote.
        stocks[2].qty = 99
        with count_queries() as q:
            await Stock.update_many(stocks)
        assert len(_updates(q.sqls)) == 1, q.sqls
        assert await rows("up_stocks", "qty") == [{"qty": q} for q in (10, 11, 99, 13, 14)]
        assert not stocks[2].is_dirty

    async def test_each_set_of_changed_columns_is_one_update(self, tables: Database) -> None:
        stocks = await _stocks(6)
        stocks[0].qty = 1
        stocks[1].sku = "x1"
        stocks[2].sku = "".join(["k", "2"])  # equal, not the object read: clean
        stocks[3].qty = 3
        stocks[3].sku = "x3"
        stocks[4].qty = 0.0  # type: ignore[assignment]  # equal, another type: a change
        # stocks[5] untouched
        with count_queries() as q:
            await Stock.update_many(stocks)
        # {qty} (rows 0 and 4), {sku} (row 1), {sku, qty} (row 3)
        assert len(_updates(q.sqls)) == 3, q.sqls
        assert await rows("up_stocks", "sku", "qty") == [
            {"sku": "k0", "qty": 1},
            {"sku": "x1", "qty": 0},
            {"sku": "k2", "qty": 0},
            {"sku": "x3", "qty": 3},
            {"sku": "k4", "qty": 0},
            {"sku": "k5", "qty": 0},
        ]
        assert not any(s.is_dirty for s in stocks)
        assert [s.original == s.attributes for s in stocks] == [True] * 6

    async def test_a_clean_batch_runs_no_statement(self, tables: Database) -> None:
        stocks = await _stocks(3)
        stocks[1].qty = 0  # the same value
        with count_queries() as q:
            await Stock.update_many(stocks)
        assert q.sqls == []

    async def test_fetched_and_created_instances_together(self, tables: Database) -> None:
        stocks = await _stocks(2)
        made = await Stock.create({"shop": "t", "sku": "m", "qty": 0})
        for s in [*stocks, made]:
            s.qty = 7
        await Stock.update_many([*stocks, made])
        assert await rows("up_stocks", "qty") == [{"qty": 7}] * 3
        assert not any(s.is_dirty for s in [*stocks, made])

    async def test_a_failure_leaves_the_fetched_rows_dirty(self, tables: Database) -> None:
        stocks = await _stocks(2)
        stocks[0].qty = 5
        stocks[1].sku = "k0"  # (shop, sku) taken: a unique violation
        with pytest.raises(IntegrityError):
            await Stock.update_many(stocks)
        assert [s.dirty for s in stocks] == [{"qty": 5}, {"sku": "k0"}]
        assert [s.original["sku"] for s in stocks] == ["k0", "k1"]
        assert await rows("up_stocks", "sku", "qty") == [
            {"sku": "k0", "qty": 0},
            {"sku": "k1", "qty": 0},
        ]

    async def test_a_row_gone_from_a_one_column_batch_is_named(self, tables: Database) -> None:
        # Every row changed in the same column: the rows travel column by column.
        stocks = await _stocks(3)
        await db.from_("up_stocks").where("id", stocks[1].id).delete()
        for i, s in enumerate(stocks):
            s.qty = i + 7
        with pytest.raises(ModelNotFoundError) as info:
            await Stock.update_many(stocks)
        assert f"id={stocks[1].id}" in str(info.value)
        assert await rows("up_stocks", "qty") == [{"qty": 0}, {"qty": 0}]
        assert [s.dirty for s in stocks] == [{"qty": 7}, {"qty": 8}, {"qty": 9}]

    async def test_an_enclosing_rollback_gives_back_the_fetched_rows(
        self, tables: Database
    ) -> None:
        stocks = await _stocks(2)
        for s in stocks:
            s.qty = 4
        trx = await db.transaction()
        try:
            await Stock.update_many(stocks, client=trx)
            assert not any(s.is_dirty for s in stocks)
        finally:
            await trx.rollback()
        assert [s.dirty for s in stocks] == [{"qty": 4}, {"qty": 4}]
        assert [s.original["qty"] for s in stocks] == [0, 0]
        assert await rows("up_stocks", "qty") == [{"qty": 0}, {"qty": 0}]


seen: list[Any] = []  # the transaction each before hook saw its instance bound to


class HookedStock(Stock):
    @before("update")
    def remember_transaction(stock: HookedStock) -> None:
        seen.append(stock.trx)


class TestBinding:
    async def test_without_hooks_no_instance_is_bound_to_the_write(self, tables: Database) -> None:
        # Nothing runs inside update_many's own transaction that could use the binding.
        stocks = await _stocks(3)
        for s in stocks:
            s.qty = 1
        during: list[Any] = []
        unsubscribe = db.on_query(lambda event: during.extend(s.trx for s in stocks))
        try:
            await Stock.update_many(stocks)
        finally:
            unsubscribe()
        assert during and set(during) == {None}
        assert [s.trx for s in stocks] == [None] * 3
        assert await rows("up_stocks", "qty") == [{"qty": 1}] * 3

    async def test_hooks_run_with_the_instances_bound_to_the_write(self, tables: Database) -> None:
        await _stocks(2)
        stocks = await HookedStock.query().order_by("id")
        for s in stocks:
            s.qty = 2
        seen.clear()
        await HookedStock.update_many(stocks)
        assert len(seen) == 2
        assert all(t is not None for t in seen)
        assert [s.trx for s in stocks] == [None, None]  # unbound once committed

    async def test_inside_a_transaction_the_instances_follow_it(self, tables: Database) -> None:
        stocks = await _stocks(2)
        for s in stocks:
            s.qty = 3
        async with db.transaction() as trx:
            await Stock.update_many(stocks, client=trx)
            assert [s.trx for s in stocks] == [trx, trx]
        assert [s.trx for s in stocks] == [None, None]
        assert await rows("up_stocks", "qty") == [{"qty": 3}, {"qty": 3}]


class ShelfStock(Stock):
    """A subclass on the same table, with no hooks: a batch mixing it with ``Stock`` is not
    of one model (compared instance by instance)."""


class TestBatchShapes:
    async def test_a_batch_mixing_a_subclass_is_written_and_clean(self, tables: Database) -> None:
        await _stocks(3)
        plain = await Stock.query().order_by("id")
        shelf = await ShelfStock.query().order_by("id")
        mixed = [plain[0], shelf[1], plain[2]]
        for i, s in enumerate(mixed):
            s.qty = i + 20
        with count_queries() as q:
            await Stock.update_many(mixed)
        assert len(_updates(q.sqls)) == 1, q.sqls
        assert await rows("up_stocks", "qty") == [{"qty": 20}, {"qty": 21}, {"qty": 22}]
        assert not any(s.is_dirty for s in mixed)
        assert [s.original["qty"] for s in mixed] == [20, 21, 22]

    async def test_a_failure_leaves_a_mixed_batch_as_it_was(self, tables: Database) -> None:
        await _stocks(2)
        first = await Stock.query().order_by("id").first()
        second = await ShelfStock.query().order_by("id", "desc").first()
        assert first is not None and second is not None
        first.qty = 5
        second.sku = "k0"  # (shop, sku) taken: a unique violation
        with pytest.raises(IntegrityError):
            await Stock.update_many([first, second])
        assert [first.dirty, second.dirty] == [{"qty": 5}, {"sku": "k0"}]
        assert [first.original["qty"], second.original["sku"]] == [0, "k1"]
        assert await rows("up_stocks", "sku", "qty") == [
            {"sku": "k0", "qty": 0},
            {"sku": "k1", "qty": 0},
        ]

    async def test_created_rows_are_compared_with_what_each_write_stored(
        self, tables: Database
    ) -> None:
        # Rows of create_many keep their attribute names beside the row; the write keeps them.
        stocks = await Stock.create_many(
            [{"shop": "s", "sku": f"k{i}", "qty": 0} for i in range(3)]
        )
        for s in stocks:
            s.qty = 1
        await Stock.update_many(stocks)
        stocks[1].qty = 2
        with count_queries() as q:
            await Stock.update_many(stocks)
        assert len(_updates(q.sqls)) == 1, q.sqls
        assert await rows("up_stocks", "qty") == [{"qty": 1}, {"qty": 2}, {"qty": 1}]
        assert [s.original for s in stocks] == [s.attributes for s in stocks]
        assert not any(s.is_dirty for s in stocks)


class Pin(BaseModel):
    table = "up_pins"
    id: int = column(is_primary=True)
    board_id: int | None = column()
    label: str | None = column()


@pytest.fixture
async def pins(tables: Database, dialect: str) -> AsyncIterator[None]:
    """``up_pins`` whose ``board_id`` references ``up_boards`` by a foreign key checked at
    COMMIT (deferred): an UPDATE that breaks it succeeds, its COMMIT fails."""
    if dialect == "mysql":
        pytest.skip("MariaDB has no deferred foreign keys: no COMMIT fails on its own")
    await db.raw_query("drop table if exists up_pins")
    await db.raw_query("drop table if exists up_boards")
    await db.raw_query("create table up_boards (id integer primary key)")
    await db.raw_query(
        "create table up_pins (id integer primary key, board_id integer references "
        "up_boards (id) deferrable initially deferred, label varchar(50))"
    )
    try:
        yield
    finally:
        await db.raw_query("drop table up_pins")
        await db.raw_query("drop table up_boards")


class TestFailedCommit:
    """The rows are written, then the COMMIT fails: every instance is as it was."""

    async def test_the_instances_are_dirty_again_with_their_rows(self, pins: None) -> None:
        await db.table("up_boards").insert({"id": 1})
        await Pin.create_many([{"id": i, "board_id": 1, "label": f"p{i}"} for i in (1, 2, 3)])
        found = await Pin.query().order_by("id")
        for p in found:
            p.board_id = 99  # no such board: refused at COMMIT
        found[1].label = "moved"
        with count_queries() as q, pytest.raises(LucidError):
            await Pin.update_many(found)
        assert len(_updates(q.sqls)) == 2, q.sqls  # written before the COMMIT failed
        assert [p.dirty for p in found] == [
            {"board_id": 99},
            {"board_id": 99, "label": "moved"},
            {"board_id": 99},
        ]
        assert [p.original["board_id"] for p in found] == [1, 1, 1]
        assert [p.trx for p in found] == [None, None, None]
        assert await rows("up_pins", "board_id", "label") == [
            {"board_id": 1, "label": f"p{i}"} for i in (1, 2, 3)
        ]
        # Still dirty: written once the board exists.
        await db.table("up_boards").insert({"id": 99})
        await Pin.update_many(found)
        assert not any(p.is_dirty for p in found)
        assert await rows("up_pins", "board_id", "label") == [
            {"board_id": 99, "label": "p1"},
            {"board_id": 99, "label": "moved"},
            {"board_id": 99, "label": "p3"},
        ]

    async def test_a_clean_column_stays_clean(self, pins: None) -> None:
        await db.table("up_boards").insert({"id": 1})
        await Pin.create_many([{"id": i, "board_id": 1, "label": f"p{i}"} for i in (1, 2)])
        found = await Pin.query().order_by("id")
        for p in found:
            p.board_id = 7
        with pytest.raises(LucidError):
            await Pin.update_many(found)
        for p in found:
            p.board_id = 1  # back to the value read: clean
        assert not any(p.is_dirty for p in found)
        with count_queries() as q:
            await Pin.update_many(found)
        assert q.sqls == []
