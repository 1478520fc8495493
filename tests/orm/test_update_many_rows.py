"""``update_many`` of fetched instances of a model without auto-update timestamps: the batch is
compared column by column against the rows as hydrated, one UPDATE per set of changed columns,
and the values written become each instance's row. Also: which transaction the instances are
bound to while the write runs."""

from __future__ import annotations

from typing import Any

import pytest

from lucid_orm import IntegrityError, ModelNotFoundError, before, db
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
