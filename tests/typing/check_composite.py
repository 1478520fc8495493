"""Static typing of composite keys, checked by ``mypy --strict tests/typing`` (never run).

A composite primary key is declared with a tuple; ``find`` and ``find_many`` take key tuples;
every relation kind with keys takes tuples for them.
"""

from __future__ import annotations

from typing import assert_type

from lucid_orm import (
    BaseModel,
    belongs_to,
    column,
    has_many,
    has_many_through,
    has_one,
    has_one_through,
    many_to_many,
)
from lucid_orm.relations import (
    BelongsTo,
    HasMany,
    HasManyThrough,
    HasOne,
    HasOneThrough,
    ManyToMany,
)


class Line(BaseModel):
    table = "ck_lines"
    primary_key = ("tenant_id", "id")

    tenant_id: int = column()
    id: int = column()
    order_id: int | None = column()


class Order(BaseModel):
    table = "ck_orders"
    primary_key = ("tenant_id", "id")

    tenant_id: int = column()
    id: int = column()
    account_id: int | None = column()

    account: BelongsTo[Account] = belongs_to(
        lambda: Account, foreign_key=("tenant_id", "account_id")
    )
    lines: HasMany[Line] = has_many(lambda: Line, foreign_key=("tenant_id", "order_id"))


class Tag(BaseModel):
    table = "ck_tags"
    primary_key = ("tenant_id", "id")

    tenant_id: int = column()
    id: int = column()


class Account(BaseModel):
    table = "ck_accounts"
    primary_key = ("tenant_id", "id")

    tenant_id: int = column()
    id: int = column()

    orders: HasMany[Order] = has_many(
        lambda: Order, foreign_key=("tenant_id", "account_id"), local_key=("tenant_id", "id")
    )
    last_order: HasOne[Order] = has_one(lambda: Order, foreign_key=("tenant_id", "account_id"))
    tags: ManyToMany[Tag] = many_to_many(
        lambda: Tag,
        pivot_table="ck_account_tags",
        pivot_foreign_key=("tenant_id", "account_id"),
        pivot_related_foreign_key=("tenant_id", "tag_id"),
    )
    lines: HasManyThrough[Line] = has_many_through(
        [lambda: Line, lambda: Order],
        foreign_key=("tenant_id", "account_id"),
        through_foreign_key=("tenant_id", "order_id"),
    )
    first_line: HasOneThrough[Line] = has_one_through(
        [lambda: Line, lambda: Order],
        foreign_key=[("tenant_id", "account_id"), ("tenant_id", "order_id")],
    )
    bad: HasMany[Order] = has_many(lambda: Order, foreign_key=1)  # type: ignore[arg-type]


async def reads() -> None:
    assert_type(await Account.find((1, 2)), Account | None)
    assert_type(await Account.find_or_fail((1, 2)), Account)
    assert_type(await Account.find_many([(1, 2), (1, 3)]), list[Account])
    account = await Account.find_or_fail((1, 2))
    assert_type(account.orders, list[Order])
    assert_type(account.last_order, Order | None)
    assert_type(account.tags, list[Tag])
    assert_type(account.lines, list[Line])
    assert_type(account.first_line, Line | None)
    order = await Order.find_or_fail((1, 2))
    assert_type(order.account, Account | None)
