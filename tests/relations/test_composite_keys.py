"""Relations on composite keys (issue 16, item 3): ``foreign_key``/``local_key`` tuples on
belongs_to, has_one and has_many — preload (nested, per-parent limits, 40,000 parents), the
related query, the ``has`` family and aggregates, writes, serialization and the errors — on
every dialect. The shape is multi-tenant: every table is keyed by ``(tenant_id, id)`` and the
same ``id`` exists in several tenants, so a relation that matched on one component only would
return another tenant's rows."""

from __future__ import annotations

from typing import Any

import pytest

from lucid_orm import (
    BaseModel,
    LucidError,
    belongs_to,
    column,
    db,
    has_many,
    has_many_through,
    has_one,
    has_one_through,
    many_to_many,
    morph_one,
)
from lucid_orm.database import Database
from lucid_orm.relations import (
    BelongsTo,
    HasMany,
    HasManyThrough,
    HasOne,
    HasOneThrough,
    ManyToMany,
)
from tests import models
from tests.helpers import count_queries
from tests.orm.test_many_keys import series

TENANT_KEY = ("tenant_id", "id")


class Line(BaseModel):
    table = "ck_lines"
    primary_key = TENANT_KEY

    tenant_id: int = column()
    id: int = column()
    order_id: int | None = column()
    sku: str | None = column()


class Order(BaseModel):
    table = "ck_orders"
    primary_key = TENANT_KEY

    tenant_id: int = column()
    id: int = column()
    account_id: int | None = column()
    total: int | None = column()

    account: BelongsTo[Account] = belongs_to(
        lambda: Account, foreign_key=("tenant_id", "account_id")
    )
    lines: HasMany[Line] = has_many(lambda: Line, foreign_key=("tenant_id", "order_id"))


class Profile(BaseModel):
    table = "ck_profiles"
    primary_key = TENANT_KEY

    tenant_id: int = column()
    id: int = column()
    account_id: int | None = column()
    bio: str | None = column()


class Tag(BaseModel):
    table = "ck_tags"
    primary_key = TENANT_KEY

    tenant_id: int = column()
    id: int = column()
    name: str | None = column()

    accounts: ManyToMany[Account] = many_to_many(
        lambda: Account,
        pivot_table="ck_account_tags",
        pivot_foreign_key=("tenant_id", "tag_id"),
        pivot_related_foreign_key=("tenant_id", "account_id"),
    )


class Code(BaseModel):
    table = "ck_codes"
    primary_key = ("region", "code")

    region: str = column()
    code: str = column()
    label: str | None = column()


class Account(BaseModel):
    table = "ck_accounts"
    primary_key = TENANT_KEY

    tenant_id: int = column()
    id: int = column()
    name: str | None = column()

    # Both keys composite, one pivot column (tenant_id) shared by them.
    tags: ManyToMany[Tag] = many_to_many(
        lambda: Tag,
        pivot_table="ck_account_tags",
        pivot_foreign_key=("tenant_id", "account_id"),
        pivot_related_foreign_key=("tenant_id", "tag_id"),
        pivot_columns=["weight"],
    )
    # Through the orders: (tenant_id, account_id) on Order, (tenant_id, order_id) on Line;
    # the parent's and the order's own keys are their composite primary keys (the defaults).
    lines: HasManyThrough[Line] = has_many_through(
        [lambda: Line, lambda: Order],
        foreign_key=("tenant_id", "account_id"),
        through_foreign_key=("tenant_id", "order_id"),
    )
    first_line: HasOneThrough[Line] = has_one_through(
        [lambda: Line, lambda: Order],
        foreign_key=("tenant_id", "account_id"),
        through_foreign_key=("tenant_id", "order_id"),
    )
    # A text composite related key, each component its own pivot column.
    codes: ManyToMany[Code] = many_to_many(
        lambda: Code,
        pivot_table="ck_account_codes",
        pivot_foreign_key=("tenant_id", "account_id"),
        pivot_related_foreign_key=("code_region", "code_code"),
    )

    orders: HasMany[Order] = has_many(
        lambda: Order, foreign_key=("tenant_id", "account_id"), local_key=("tenant_id", "id")
    )
    profile: HasOne[Profile] = has_one(lambda: Profile, foreign_key=("tenant_id", "account_id"))


async def seed() -> None:
    """Tenants 1 and 2 each have accounts 1 and 2; the orders and lines of equal ids differ
    by tenant only."""
    await Account.create_many(
        [{"tenant_id": t, "id": i, "name": f"a{t}.{i}"} for t in (1, 2) for i in (1, 2)]
    )
    await Profile.create_many(
        [
            {"tenant_id": 1, "id": 1, "account_id": 1, "bio": "p1.1"},
            {"tenant_id": 2, "id": 1, "account_id": 2, "bio": "p2.2"},
        ]
    )
    await Order.create_many(
        [
            {"tenant_id": 1, "id": 1, "account_id": 1, "total": 10},
            {"tenant_id": 1, "id": 2, "account_id": 1, "total": 20},
            {"tenant_id": 2, "id": 1, "account_id": 1, "total": 30},
            {"tenant_id": 2, "id": 2, "account_id": 2, "total": 40},
        ]
    )
    await Line.create_many(
        [
            {"tenant_id": 1, "id": 1, "order_id": 1, "sku": "1.1-a"},
            {"tenant_id": 1, "id": 2, "order_id": 1, "sku": "1.1-b"},
            {"tenant_id": 2, "id": 1, "order_id": 1, "sku": "2.1-a"},
        ]
    )


async def analyze(dialect: str, *tables: str) -> None:
    """Fresh MariaDB statistics after a bulk insert: with stale ones its optimizer drives a
    join from the key tuples through the first column of the primary key (here one tenant,
    so every row per tuple). Production tables have their statistics."""
    if dialect == "mysql":
        await db.raw_query(f"analyze table {', '.join(tables)}")


async def accounts() -> list[Account]:
    return await Account.query().order_by("tenant_id").order_by("id")


def keys(models: list[Any]) -> list[tuple[int, int]]:
    return [(m.tenant_id, m.id) for m in models]


# -- preload -------------------------------------------------------------------------------------
class TestPreload:
    async def test_has_many_has_one_and_belongs_to(self, database: Database) -> None:
        await seed()
        with count_queries() as log:
            found = (
                await Account.query()
                .preload("orders", lambda q: q.order_by("total"))
                .preload("profile")
                .order_by("tenant_id")
                .order_by("id")
            )
        assert log.count == 3
        assert [[o.total for o in a.orders] for a in found] == [[10, 20], [], [30], [40]]
        assert [a.profile.bio if a.profile else None for a in found] == [
            "p1.1",
            None,
            None,
            "p2.2",
        ]

        orders = await Order.query().preload("account").order_by("total")
        assert [o.account.name if o.account else None for o in orders] == [
            "a1.1",
            "a1.1",
            "a2.1",
            "a2.2",
        ]

    async def test_nested_preload(self, database: Database) -> None:
        await seed()
        with count_queries() as log:
            found = await Account.query().preload("orders", lambda q: q.preload("lines"))
        assert log.count == 3
        by_key = {(a.tenant_id, a.id): a for a in found}
        lines = {
            (o.tenant_id, o.id): sorted(line.sku or "" for line in o.lines)
            for o in by_key[(1, 1)].orders
        }
        assert lines == {(1, 1): ["1.1-a", "1.1-b"], (1, 2): []}
        assert [line.sku for o in by_key[(2, 1)].orders for line in o.lines] == ["2.1-a"]

    async def test_relation_attributes_name_composite_relations(self, database: Database) -> None:
        await seed()
        found = (
            await Account.query()
            .preload(Account.orders, lambda q: q.preload(Order.lines))
            .where_has(Account.orders, lambda q: q.where("total", ">", 25))
            .with_count(Account.orders)
            .order_by("tenant_id")
            .order_by("id")
        )
        assert keys(found) == [(2, 1), (2, 2)]
        assert [[line.sku for o in a.orders for line in o.lines] for a in found] == [
            ["2.1-a"],
            [],
        ]
        assert [a.extras["orders_count"] for a in found] == [1, 1]
        assert [o.total for o in await found[0].related(Account.orders).query()] == [30]

    async def test_a_null_component_gives_no_related_row(self, database: Database) -> None:
        await seed()
        await Order.create({"tenant_id": 1, "id": 9, "account_id": None})
        with count_queries() as log:
            order = await Order.query().where("id", 9).preload("account").first()
        assert order is not None and order.account is None
        assert log.count == 1  # no key tuple to look up: no preload query
        lonely = await Order.find_or_fail((1, 9))
        with count_queries() as log:
            await lonely.load("account")
        assert lonely.account is None
        assert log.count == 0

    async def test_cherry_picked_columns_still_match(self, database: Database) -> None:
        await seed()
        found = await Account.query().preload("orders", lambda q: q.select("total"))
        assert sorted(o.total for a in found for o in a.orders) == [10, 20, 30, 40]
        orders = await Order.query().preload("account", lambda q: q.select("name"))
        assert sorted(o.account.name for o in orders if o.account) == [
            "a1.1",
            "a1.1",
            "a2.1",
            "a2.2",
        ]

    async def test_group_limit_partitions_by_the_key_tuple(self, database: Database) -> None:
        await seed()
        found = await accounts()
        limited = await Account.query().preload(
            "orders", lambda q: q.group_limit(1).group_order_by("total", "desc")
        )
        assert {(a.tenant_id, a.id): [o.total for o in a.orders] for a in limited} == {
            (1, 1): [20],
            (1, 2): [],
            (2, 1): [30],
            (2, 2): [40],
        }
        assert len(found) == 4

    async def test_lazy_load_and_load_count(self, database: Database) -> None:
        await seed()
        account = await Account.find_or_fail((2, 1))
        await account.load("orders")
        assert [o.total for o in account.orders] == [30]
        await account.load_count("orders")
        assert account.extras["orders_count"] == 1

    async def test_a_missing_key_attribute_raises(self, database: Database) -> None:
        await seed()
        order = await Order.find_or_fail((1, 1))
        del order.__dict__["tenant_id"]
        with pytest.raises(LucidError) as info:
            await order.load("account")
        assert info.value.code == "E_MISSING_MODEL_ATTRIBUTE"
        assert "tenant_id" in str(info.value)


class TestPreloadManyKeys:
    """40,000 parents: the key tuples travel as one array per component on PostgreSQL
    (``unnest``), one JSON text on SQLite (``json_each``), chunked row-value lists on MySQL."""

    N = 40_000

    async def test_has_many_and_belongs_to(self, database: Database, dialect: str) -> None:
        n = self.N
        await series("ck_accounts", {"tenant_id": 7, "id": "n", "name": "a"}, 1, n)
        await series(
            "ck_orders", {"tenant_id": 7, "id": "n", "account_id": "n", "total": "n"}, 1, n
        )
        await analyze(dialect, "ck_accounts", "ck_orders")
        with count_queries() as log:
            found = await Account.query().preload("orders")
        assert len(found) == n
        assert all([o.total for o in a.orders] == [a.id] for a in found)
        selects = [e for e in log.events if "ck_orders" in e.sql]
        if dialect == "mysql":
            assert len(selects) == 3  # 40,000 tuples in chunks of 15,000
        else:
            assert len(selects) == 1
            # one array per component (PostgreSQL) / one JSON text and two paths (SQLite)
            assert len(selects[0].bindings) <= 3

        orders = await Order.query().preload("account")
        assert all(o.account is not None and o.account.id == o.account_id for o in orders)


# -- related query -------------------------------------------------------------------------------
class TestRelatedQuery:
    async def test_reads_only_the_parents_rows(self, database: Database) -> None:
        await seed()
        account = await Account.find_or_fail((1, 1))
        query = account.related("orders").query()
        assert sorted(o.total for o in await query) == [10, 20]
        assert await account.related("orders").query().count_rows() == 2
        assert (await account.related("profile").query().first()).bio == "p1.1"  # type: ignore[union-attr]
        order = await Order.find_or_fail((2, 1))
        assert (await order.related("account").query().first()).name == "a2.1"  # type: ignore[union-attr]
        page = await account.related("orders").query().order_by("total").paginate(1, 1)
        assert page.total == 2 and [o.total for o in page] == [10]

    async def test_update_and_delete_stay_in_the_parent(self, database: Database) -> None:
        await seed()
        account = await Account.find_or_fail((1, 1))
        assert await account.related("orders").query().update({"total": 0}) == 2
        assert await account.related("orders").query().where("id", 2).delete() == 1
        left = await db.from_("ck_orders").order_by("tenant_id").order_by("id")
        assert [(r["tenant_id"], r["id"], r["total"]) for r in left] == [
            (1, 1, 0),
            (2, 1, 30),
            (2, 2, 40),
        ]

    async def test_a_null_component_runs_no_query(self, database: Database) -> None:
        order = Order(tenant_id=1, id=5, account_id=None)
        with count_queries() as log:
            assert await order.related("account").query().first() is None
        assert log.count == 0


# -- has family and aggregates -------------------------------------------------------------------
class TestHasAndAggregates:
    async def test_has_where_has_doesnt_have(self, database: Database) -> None:
        await seed()
        assert keys(await Account.query().has("orders").order_by("tenant_id").order_by("id")) == [
            (1, 1),
            (2, 1),
            (2, 2),
        ]
        assert keys(await Account.query().has("orders", ">=", 2)) == [(1, 1)]
        assert keys(await Account.query().doesnt_have("orders")) == [(1, 2)]
        rich = await Account.query().where_has("orders", lambda q: q.where("total", ">", 25))
        assert sorted(keys(rich)) == [(2, 1), (2, 2)]
        assert sorted(keys(await Account.query().has("profile"))) == [(1, 1), (2, 2)]
        assert sorted(
            keys(await Order.query().where_has("account", lambda q: q.where("name", "a2.2")))
        ) == [(2, 2)]

    async def test_with_count_and_with_aggregate(self, database: Database) -> None:
        await seed()
        found = (
            await Account.query()
            .with_count("orders")
            .with_aggregate("orders", lambda q: q.sum("total").as_("spent"))
            .order_by("tenant_id")
            .order_by("id")
        )
        assert [int(a.extras["orders_count"]) for a in found] == [2, 0, 1, 1]
        assert [int(a.extras["spent"] or 0) for a in found] == [30, 0, 30, 40]


# -- writes --------------------------------------------------------------------------------------
class TestWrites:
    async def test_has_many_create_save_create_many(self, database: Database) -> None:
        account = await Account.create({"tenant_id": 3, "id": 1})
        made = await account.related("orders").create({"tenant_id": 3, "id": 1, "total": 1})
        assert (made.tenant_id, made.account_id) == (3, 1)
        saved = await account.related("orders").save(Order(tenant_id=3, id=2, total=2))
        assert saved.is_persisted and saved.account_id == 1
        many = await account.related("orders").create_many(
            [{"id": 3, "total": 3}, {"id": 4, "total": 4}]
        )
        assert [(o.tenant_id, o.account_id) for o in many] == [(3, 1), (3, 1)]
        rows = await db.from_("ck_orders").order_by("id")
        assert [(r["tenant_id"], r["id"], r["account_id"]) for r in rows] == [
            (3, i, 1) for i in (1, 2, 3, 4)
        ]

    async def test_has_one_create_and_fetch_or_create_many(self, database: Database) -> None:
        account = await Account.create({"tenant_id": 4, "id": 2})
        profile = await account.related("profile").create({"id": 1, "bio": "hi"})
        assert (profile.tenant_id, profile.account_id) == (4, 2)
        got = await account.related("orders").fetch_or_create_many(
            [{"id": 1, "total": 5}, {"id": 2, "total": 6}], "id"
        )
        again = await account.related("orders").fetch_or_create_many([{"id": 1, "total": 9}], "id")
        assert [o.total for o in got] == [5, 6] and again[0].total == 5
        assert await db.from_("ck_orders").count_rows() == 2

    async def test_associate_and_dissociate(self, database: Database) -> None:
        account = await Account.create({"tenant_id": 5, "id": 8, "name": "x"})
        order = await Order.create({"tenant_id": 5, "id": 1})
        await order.related("account").associate(account)
        assert order.account_id == 8 and order.account is account
        row = (await db.from_("ck_orders").first()) or {}
        assert (row["tenant_id"], row["account_id"]) == (5, 8)
        await order.related("account").dissociate()
        # The tenant is also the order's own key: it stays, the other component is cleared.
        assert (order.tenant_id, order.account_id, order.account) == (5, None, None)
        row = (await db.from_("ck_orders").first()) or {}
        assert (row["tenant_id"], row["account_id"]) == (5, None)

    async def test_a_parent_without_its_key_writes_nothing(self, database: Database) -> None:
        account = Account(id=1)
        with count_queries() as log, pytest.raises(LucidError) as info:
            await account.related("orders").create({"id": 1})
        assert info.value.code == "E_MISSING_MODEL_ATTRIBUTE"
        assert not [sql for sql in log.sqls if sql.lstrip().upper().startswith("INSERT")]
        assert await db.from_("ck_orders").count_rows() == 0
        assert await db.from_("ck_accounts").count_rows() == 0


# -- many_to_many ----------------------------------------------------------------------------------
async def seed_tags() -> None:
    await seed()
    await Tag.create_many(
        [{"tenant_id": t, "id": i, "name": f"t{t}.{i}"} for t in (1, 2) for i in (1, 2)]
    )
    await db.table("ck_account_tags").multi_insert(
        [
            {"tenant_id": 1, "account_id": 1, "tag_id": 1, "weight": 5},
            {"tenant_id": 1, "account_id": 1, "tag_id": 2, "weight": 6},
            {"tenant_id": 2, "account_id": 1, "tag_id": 2, "weight": 7},
            {"tenant_id": 2, "account_id": 2, "tag_id": 1, "weight": 8},
        ]
    )


async def pivot_rows(table: str = "ck_account_tags") -> list[tuple[Any, ...]]:
    rows = await db.from_(table)
    return sorted(tuple(r.values()) for r in rows)


class TestManyToMany:
    async def test_preload_with_pivot_values(self, database: Database) -> None:
        await seed_tags()
        with count_queries() as log:
            found = (
                await Account.query()
                .preload("tags", lambda q: q.order_by("ck_tags.id"))
                .order_by("tenant_id")
                .order_by("id")
            )
        assert log.count == 2
        assert [[(t.name, t.extras["pivot_weight"]) for t in a.tags] for a in found] == [
            [("t1.1", 5), ("t1.2", 6)],
            [],
            [("t2.2", 7)],
            [("t2.1", 8)],
        ]
        tags = await Tag.query().preload("accounts").order_by("tenant_id").order_by("id")
        assert [[a.name for a in t.accounts] for t in tags] == [
            ["a1.1"],
            ["a1.1"],
            ["a2.2"],
            ["a2.1"],
        ]

    async def test_nested_preload_and_serialize(self, database: Database) -> None:
        await seed_tags()
        found = (
            await Order.query()
            .preload("account", lambda q: q.preload("tags"))
            .where({"tenant_id": 2, "id": 2})
        )
        assert found[0].account is not None
        assert [t.name for t in found[0].account.tags] == ["t2.1"]
        assert found[0].serialize()["account"]["tags"] == [
            {"tenant_id": 2, "id": 1, "name": "t2.1"}
        ]

    async def test_related_query_and_pivot_query(self, database: Database) -> None:
        await seed_tags()
        account = await Account.find_or_fail((1, 1))
        names = await account.related("tags").query().order_by("ck_tags.id")
        assert [t.name for t in names] == ["t1.1", "t1.2"]
        heavy = await account.related("tags").query().where_pivot("weight", ">", 5)
        assert [t.name for t in heavy] == ["t1.2"]
        pivots = await account.related("tags").pivot_query().order_by("tag_id")
        assert [(p["tenant_id"], p["tag_id"]) for p in pivots] == [(1, 1), (1, 2)]
        assert await account.related("tags").query().count_rows() == 2
        # update/delete act on this parent's pivot rows only
        assert (
            await account.related("tags").query().where("name", "t1.2").update({"weight": 0}) == 1
        )
        assert await account.related("tags").query().where("name", "t1.1").delete() == 1
        assert await pivot_rows() == [(1, 1, 2, 0), (2, 1, 2, 7), (2, 2, 1, 8)]

    async def test_has_and_aggregates(self, database: Database) -> None:
        await seed_tags()
        assert sorted(keys(await Account.query().has("tags"))) == [(1, 1), (2, 1), (2, 2)]
        assert keys(await Account.query().doesnt_have("tags")) == [(1, 2)]
        heavy = await Account.query().where_has("tags", lambda q: q.where_pivot("weight", ">", 6))
        assert sorted(keys(heavy)) == [(2, 1), (2, 2)]
        found = (
            await Account.query()
            .with_count("tags")
            .with_aggregate("tags", lambda q: q.sum("ck_account_tags.weight").as_("weights"))
            .order_by("tenant_id")
            .order_by("id")
        )
        assert [int(a.extras["tags_count"]) for a in found] == [2, 0, 1, 1]
        assert [int(a.extras["weights"] or 0) for a in found] == [11, 0, 7, 8]

    async def test_attach_detach_sync(self, database: Database) -> None:
        await seed_tags()
        account = await Account.find_or_fail((1, 2))
        await account.related("tags").attach({(1, 1): {"weight": 1}, (1, 2): {"weight": 2}})
        assert [r for r in await pivot_rows() if r[1] == 2 and r[0] == 1] == [
            (1, 2, 1, 1),
            (1, 2, 2, 2),
        ]
        assert await account.related("tags").detach([(1, 1)]) == 1
        await account.related("tags").sync({(1, 1): {"weight": 9}, (1, 2): {"weight": 2}})
        mine = [r for r in await pivot_rows() if r[:2] == (1, 2)]
        assert mine == [(1, 2, 1, 9), (1, 2, 2, 2)]
        with count_queries() as log:
            await account.related("tags").sync({(1, 1): {"weight": 9}, (1, 2): {"weight": 2}})
        writes = ("INSERT", "UPDATE", "DELETE")
        assert not [s for s in log.sqls if s.lstrip().upper().startswith(writes)]
        await account.related("tags").sync([(1, 2)])
        assert [r for r in await pivot_rows() if r[:2] == (1, 2)] == [(1, 2, 2, 2)]
        await account.related("tags").sync([(1, 1)], detach=False)
        assert [r[2] for r in await pivot_rows() if r[:2] == (1, 2)] == [1, 2]
        assert await account.related("tags").detach() == 2
        # the other accounts' rows are untouched
        assert await pivot_rows() == [(1, 1, 1, 5), (1, 1, 2, 6), (2, 1, 2, 7), (2, 2, 1, 8)]

    async def test_save_create_and_text_keys(self, database: Database) -> None:
        account = await Account.create({"tenant_id": 3, "id": 1})
        tag = await account.related("tags").create({"tenant_id": 3, "id": 5, "name": "n"})
        assert tag.is_persisted
        await account.related("tags").save(
            Tag(tenant_id=3, id=6, name="m"), pivot_attributes={"weight": 4}
        )
        made = await account.related("tags").create_many(
            [{"tenant_id": 3, "id": 7}, {"tenant_id": 3, "id": 8}]
        )
        assert len(made) == 2
        assert await pivot_rows() == [
            (3, 1, 5, None),
            (3, 1, 6, 4),
            (3, 1, 7, None),
            (3, 1, 8, None),
        ]

        await Code.create_many(
            [
                {"region": "eu", "code": "a", "label": "A"},
                {"region": "us", "code": "a", "label": "B"},
            ]
        )
        await account.related("codes").attach([("us", "a")])
        await account.load("codes")
        assert [c.label for c in account.codes] == ["B"]
        await account.related("codes").sync([("eu", "a")])
        assert await pivot_rows("ck_account_codes") == [(3, 1, "eu", "a")]
        assert keys(await Account.query().has("codes")) == [(3, 1)]

    @pytest.mark.parametrize("ids", [[1], [(1,)], [(1, 2, 3)], [(1, "2")], {(1, None): {}}])
    async def test_bad_related_ids_raise_before_a_write(self, database: Database, ids: Any) -> None:
        account = await Account.create({"tenant_id": 1, "id": 1})
        with count_queries() as log, pytest.raises(LucidError) as info:
            await account.related("tags").attach(ids)
        assert info.value.code == "E_INVALID_ARGUMENT"
        assert log.count == 0
        with pytest.raises(LucidError):
            await account.related("codes").sync([("eu", 1)])

    async def test_preload_forty_thousand_parents(self, database: Database, dialect: str) -> None:
        n = 40_000
        await series("ck_accounts", {"tenant_id": 7, "id": "n", "name": "a"}, 1, n)
        await Tag.create({"tenant_id": 7, "id": 1, "name": "only"})
        await series("ck_account_tags", {"tenant_id": 7, "account_id": "n", "tag_id": 1}, 1, n)
        await analyze(dialect, "ck_accounts", "ck_tags", "ck_account_tags")
        with count_queries() as log:
            found = await Account.query().preload("tags")
        assert len(found) == n and all([t.name for t in a.tags] == ["only"] for a in found)
        pivots = [e for e in log.events if "ck_account_tags" in e.sql]
        assert len(pivots) == (3 if dialect == "mysql" else 1)


# -- has_many_through / has_one_through ----------------------------------------------------------
class TestThrough:
    async def test_preload(self, database: Database) -> None:
        await seed()
        with count_queries() as log:
            found = (
                await Account.query()
                .preload("lines", lambda q: q.order_by("sku"))
                .preload("first_line")
                .order_by("tenant_id")
                .order_by("id")
            )
        assert log.count == 3
        assert [[line.sku for line in a.lines] for a in found] == [
            ["1.1-a", "1.1-b"],
            [],
            ["2.1-a"],
            [],
        ]
        assert [a.first_line.sku if a.first_line else None for a in found] == [
            found[0].first_line.sku if found[0].first_line else None,
            None,
            "2.1-a",
            None,
        ]
        assert found[0].first_line is not None and found[0].first_line.sku in ("1.1-a", "1.1-b")
        assert found[2].lines[0].extras == {
            "through_tenant_id": 2,
            "through_account_id": 1,
        }

    async def test_nested_preload_and_serialize(self, database: Database) -> None:
        await seed()
        orders = (
            await Order.query()
            .where({"tenant_id": 2, "id": 1})
            .preload("account", lambda q: q.preload("lines"))
        )
        account = orders[0].account
        assert account is not None and [line.sku for line in account.lines] == ["2.1-a"]
        assert orders[0].serialize()["account"]["lines"] == [
            {"tenant_id": 2, "id": 1, "order_id": 1, "sku": "2.1-a"}
        ]

    async def test_related_query_and_writes_through_it(self, database: Database) -> None:
        await seed()
        account = await Account.find_or_fail((1, 1))
        assert sorted(line.sku or "" for line in await account.related("lines").query()) == [
            "1.1-a",
            "1.1-b",
        ]
        assert await account.related("lines").query().count_rows() == 2
        first = await account.related("first_line").query().first()
        assert first is not None and first.tenant_id == 1
        # an update through the chain writes this parent's rows only (matched on the key tuple)
        assert await account.related("lines").query().update({"sku": "x"}) == 2
        rows = await db.from_("ck_lines").order_by("tenant_id").order_by("id")
        assert [r["sku"] for r in rows] == ["x", "x", "2.1-a"]

    async def test_has_and_aggregates(self, database: Database) -> None:
        await seed()
        assert sorted(keys(await Account.query().has("lines"))) == [(1, 1), (2, 1)]
        assert sorted(keys(await Account.query().has("first_line"))) == [(1, 1), (2, 1)]
        assert sorted(keys(await Account.query().doesnt_have("lines"))) == [(1, 2), (2, 2)]
        found = (
            await Account.query()
            .with_count("lines")
            .with_aggregate("lines", lambda q: q.max("ck_lines.id").as_("top"))
            .order_by("tenant_id")
            .order_by("id")
        )
        assert [int(a.extras["lines_count"]) for a in found] == [2, 0, 1, 0]
        assert [a.extras["top"] for a in found] == [2, None, 1, None]

    async def test_preload_forty_thousand_parents(self, database: Database, dialect: str) -> None:
        n = 40_000
        await series("ck_accounts", {"tenant_id": 7, "id": "n"}, 1, n)
        await series("ck_orders", {"tenant_id": 7, "id": "n", "account_id": "n"}, 1, n)
        await series("ck_lines", {"tenant_id": 7, "id": "n", "order_id": "n"}, 1, n)
        await analyze(dialect, "ck_accounts", "ck_orders", "ck_lines")
        with count_queries() as log:
            found = await Account.query().preload("lines")
        assert len(found) == n and all([line.id for line in a.lines] == [a.id] for a in found)
        through = [e for e in log.events if "ck_lines" in e.sql]
        assert len(through) == (3 if dialect == "mysql" else 1)

    def test_links_of_different_lengths(self) -> None:
        class Bad(BaseModel):
            table = "ck_accounts"
            primary_key = TENANT_KEY
            tenant_id: int = column()
            id: int = column()
            lines: HasManyThrough[Line] = has_many_through(
                [lambda: Line, lambda: Order], foreign_key="account_id"
            )

        with pytest.raises(LucidError, match="link 1 must have as many attributes") as info:
            Bad.lines.boot()
        assert info.value.code == "E_INVALID_RELATION"


# -- mixed keys and the remaining variants ---------------------------------------------------------
class UserProfile(Profile):
    """A composite-key model with a single-key relation (``account_id`` → ``users.id``)."""

    user: BelongsTo[models.User] = belongs_to(lambda: models.User, foreign_key="account_id")


class TestMixedAndVariants:
    async def test_a_single_key_relation_on_a_composite_key_model(self, database: Database) -> None:
        await seed()
        await models.User.create({"id": 2, "username": "two"})
        found = await UserProfile.query().preload("user").order_by("tenant_id")
        assert [p.user.username if p.user else None for p in found] == [None, "two"]
        assert keys(await UserProfile.query().has("user")) == [(2, 1)]

    async def test_has_one_first_or_create_and_update_or_create(self, database: Database) -> None:
        account = await Account.create({"tenant_id": 6, "id": 1})
        await Account.create({"tenant_id": 7, "id": 1})
        made = await account.related("profile").first_or_create({"id": 1}, {"bio": "a"})
        again = await account.related("profile").first_or_create({"id": 1}, {"bio": "b"})
        assert again.bio == "a" and (made.tenant_id, made.account_id) == (6, 1)
        updated = await account.related("profile").update_or_create({"id": 1}, {"bio": "c"})
        assert updated.bio == "c"
        rows = await db.from_("ck_profiles")
        assert [(r["tenant_id"], r["account_id"], r["bio"]) for r in rows] == [(6, 1, "c")]

    async def test_group_limits_of_many_to_many_and_through(self, database: Database) -> None:
        await seed_tags()
        found = await Account.query().preload(
            "tags", lambda q: q.group_limit(1).group_order_by("ck_tags.id", "desc")
        )
        assert {(a.tenant_id, a.id): [t.name for t in a.tags] for a in found} == {
            (1, 1): ["t1.2"],
            (1, 2): [],
            (2, 1): ["t2.2"],
            (2, 2): ["t2.1"],
        }
        through = await Account.query().preload(
            "lines", lambda q: q.group_limit(1).group_order_by("ck_lines.id", "desc")
        )
        assert {(a.tenant_id, a.id): [line.sku for line in a.lines] for a in through} == {
            (1, 1): ["1.1-b"],
            (1, 2): [],
            (2, 1): ["2.1-a"],
            (2, 2): [],
        }


# -- serialization -------------------------------------------------------------------------------
class TestSerialize:
    async def test_preloaded_relations_serialize(self, database: Database) -> None:
        await seed()
        account = (
            await Account.query()
            .where({"tenant_id": 2, "id": 1})
            .preload("orders", lambda q: q.preload("lines"))
            .first()
        )
        assert account is not None
        assert account.serialize() == {
            "tenant_id": 2,
            "id": 1,
            "name": "a2.1",
            "orders": [
                {
                    "tenant_id": 2,
                    "id": 1,
                    "account_id": 1,
                    "total": 30,
                    "lines": [{"tenant_id": 2, "id": 1, "order_id": 1, "sku": "2.1-a"}],
                }
            ],
        }


# -- declaration errors --------------------------------------------------------------------------
class TestDeclarationErrors:
    def test_keys_of_different_lengths(self) -> None:
        class Bad(BaseModel):
            table = "ck_accounts"
            primary_key = TENANT_KEY
            tenant_id: int = column()
            id: int = column()
            orders: HasMany[Order] = has_many(
                lambda: Order, foreign_key=("tenant_id", "account_id"), local_key="id"
            )

        with pytest.raises(LucidError, match="as many attributes") as info:
            Bad.orders.boot()
        assert info.value.code == "E_INVALID_RELATION"

    def test_a_component_that_is_not_a_column(self) -> None:
        class Bad(BaseModel):
            table = "ck_accounts"
            primary_key = TENANT_KEY
            tenant_id: int = column()
            id: int = column()
            orders: HasMany[Order] = has_many(lambda: Order, foreign_key=("tenant_id", "nope"))

        with pytest.raises(LucidError, match='expects "nope" to exist on "Order"') as info:
            Bad.orders.boot()
        assert info.value.code == "E_MISSING_MODEL_ATTRIBUTE"

    def test_the_default_foreign_key_of_a_composite_parent(self) -> None:
        class Guess(BaseModel):
            table = "ck_accounts"
            primary_key = TENANT_KEY
            tenant_id: int = column()
            id: int = column()
            orders: HasMany[Order] = has_many(lambda: Order)

        with pytest.raises(LucidError, match='"guess_tenant_id"'):
            Guess.orders.boot()

    def test_a_morph_relation_refuses_tuple_keys(self) -> None:
        class Bad(BaseModel):
            table = "ck_accounts"
            primary_key = TENANT_KEY
            tenant_id: int = column()
            id: int = column()
            note: Any = morph_one(lambda: Line, name="notable")

        with pytest.raises(LucidError, match="takes single-attribute keys") as info:
            Bad.note.boot()
        assert info.value.code == "E_INVALID_RELATION"
