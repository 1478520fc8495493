"""Static typing of the scale-out API, checked by ``mypy --strict tests/typing`` (never run):
``db.connection(mode="write")`` is a query client, ``db.sticky_scope()`` a context manager for
``with`` and ``async with``; transaction retries (the callback form only), ``db.using()``,
``db.each_shard()`` and a model's ``shard_for``."""

from __future__ import annotations

from typing import assert_type

from lucid_orm import (
    BaseModel,
    QueryClient,
    TransactionClient,
    TransactionConflictError,
    column,
    db,
)


class Note(BaseModel):
    id: int = column(is_primary=True)


async def check() -> None:
    writer = db.connection("pg", mode="write")
    assert_type(writer, QueryClient)
    assert_type(writer.mode, str)
    assert_type(await Note.query(client=writer).first(), Note | None)
    async with db.sticky_scope():
        pass
    with db.sticky_scope():
        pass
    db.connection(mode="read")  # type: ignore[arg-type]


def route(key: int) -> str | None:
    return f"shard_{key % 2 + 1}"


class Order(BaseModel):
    shard_for = staticmethod(route)
    id: int = column(is_primary=True)
    total: int = column()


class Line(BaseModel):
    shard_for = staticmethod(lambda key: "shard_1")
    shard_key = "order_id"
    id: int = column(is_primary=True)
    order_id: int = column()


async def count(trx: TransactionClient) -> int:
    return await trx.from_("orders").count_rows()


async def retries() -> None:
    assert_type(await db.transaction(count, retries=3), int)
    assert_type(await db.transaction(lambda trx: 1, retries=1, isolation_level="serializable"), int)
    # Only the callback form can be re-run.
    async with db.transaction(retries=2):  # type: ignore[call-overload]
        pass
    try:
        await db.transaction(count, retries=3)
    except TransactionConflictError as exc:
        assert_type(exc.code, str)
        assert_type(exc.sql, str | None)


async def shards() -> None:
    async with db.using("shard_1") as name:
        assert_type(name, str)
        assert_type(await Order.find(1), Order | None)
    with db.using("shard_2"):
        assert_type(await Order.query().first(), Order | None)

    async def per_shard(shard: str) -> int:
        return await Order.query().count_rows()

    assert_type(await db.each_shard(["shard_1", "shard_2"], per_shard), dict[str, int])
    await db.each_shard(["shard_1"], lambda shard: 1)  # type: ignore[arg-type, return-value]
