"""Composite primary keys (issue 16, item 3): ``primary_key = ("tenant_id", "id")`` declares
the key; ``find((t, i))``, ``find_many``, ``find_by``, save (insert, update), delete, refresh,
``create_many``, ``update_many``, ordering by the key, serialization and the key checks (the
arity of the tuple, the type of each component) — on every dialect."""

from __future__ import annotations

from typing import Any

import pytest

from lucid_orm import BaseModel, LucidError, ModelNotFoundError, column, db
from lucid_orm.database import Database
from tests.helpers import count_queries


class Account(BaseModel):
    table = "ck_accounts"
    primary_key = ("tenant_id", "id")

    tenant_id: int = column()
    id: int = column()
    name: str | None = column()


class Code(BaseModel):
    """A text composite key."""

    table = "ck_codes"
    primary_key = ("region", "code")

    region: str = column()
    code: str = column()
    label: str | None = column()


async def rows(table: str) -> list[dict[str, Any]]:
    return list(await db.from_(table).order_by("tenant_id").order_by("id"))


# -- declaration ---------------------------------------------------------------------------------
class TestDeclaration:
    def test_the_key_is_a_tuple_of_attributes(self) -> None:
        assert Account.primary_key == ("tenant_id", "id")
        assert Account.get_column("tenant_id").is_primary  # type: ignore[union-attr]
        assert Account.get_column("id").is_primary  # type: ignore[union-attr]
        assert not Account.get_column("name").is_primary  # type: ignore[union-attr]

    def test_two_is_primary_columns_without_the_option_raise(self) -> None:
        with pytest.raises(LucidError, match="more than one primary key") as info:

            class Bad(BaseModel):
                table = "ck_accounts"
                tenant_id: int = column(is_primary=True)
                id: int = column(is_primary=True)

        assert info.value.code == "E_INVALID_MODEL"

    def test_the_option_must_name_columns(self) -> None:
        with pytest.raises(LucidError, match='names "nope", which is not a column'):

            class Bad(BaseModel):
                table = "ck_accounts"
                primary_key = ("tenant_id", "nope")
                tenant_id: int = column()
                id: int = column()

    def test_the_option_must_be_names(self) -> None:
        with pytest.raises(LucidError, match="tuple of distinct attribute names"):

            class Bad(BaseModel):
                table = "ck_accounts"
                primary_key = ("id", "id")
                tenant_id: int = column()
                id: int = column()

    def test_a_subclass_keeps_the_composite_key(self) -> None:
        class Sub(Account):
            pass

        assert Sub.primary_key == ("tenant_id", "id")

    def test_repr_shows_the_key_tuple(self) -> None:
        assert "(1, 2)" in repr(Account(tenant_id=1, id=2))


# -- reads ---------------------------------------------------------------------------------------
class TestFind:
    async def test_find_by_tuple(self, database: Database) -> None:
        await Account.create_many(
            [
                {"tenant_id": 1, "id": 1, "name": "a"},
                {"tenant_id": 2, "id": 1, "name": "b"},
            ]
        )
        with count_queries() as log:
            found = await Account.find((2, 1))
        assert log.count == 1
        assert found is not None and found.name == "b"
        assert (found.tenant_id, found.id) == (2, 1)
        assert await Account.find((3, 1)) is None
        assert (await Account.find_or_fail((1, 1))).name == "a"
        with pytest.raises(ModelNotFoundError):
            await Account.find_or_fail((9, 9))

    async def test_find_in_a_transaction_and_with_text_keys(self, database: Database) -> None:
        await Code.create({"region": "eu", "code": "x1", "label": "X"})
        async with db.transaction() as trx:
            found = await Code.find(("eu", "x1"), client=trx)
        assert found is not None and found.label == "X"
        assert await Code.find(("us", "x1")) is None

    async def test_find_many_matches_tuples(self, database: Database) -> None:
        await Account.create_many(
            [{"tenant_id": t, "id": i, "name": f"{t}-{i}"} for t in (1, 2) for i in (1, 2)]
        )
        found = await Account.find_many([(1, 2), (2, 1), (2, 1), (5, 5)])
        assert [(a.tenant_id, a.id) for a in found] == [(2, 1), (1, 2)]

    async def test_find_by_a_component_and_first_all_order_by_the_key(
        self, database: Database
    ) -> None:
        await Account.create_many(
            [
                {"tenant_id": 2, "id": 1, "name": "c"},
                {"tenant_id": 1, "id": 2, "name": "b"},
                {"tenant_id": 1, "id": 1, "name": "a"},
            ]
        )
        assert [a.name for a in await Account.find_many_by("tenant_id", 1)] in (
            ["a", "b"],
            ["b", "a"],
        )
        first = await Account.first()
        assert first is not None and first.name == "a"
        assert [a.name for a in await Account.all()] == ["c", "b", "a"]

    @pytest.mark.parametrize(
        "value",
        [1, (1,), (1, 2, 3), [1, 2], (1, "2"), (1, 2.0), (True, 1), (None, 1), ((1, 2), 3)],
    )
    async def test_a_bad_key_raises_before_any_query(self, database: Database, value: Any) -> None:
        with count_queries() as log, pytest.raises(LucidError) as info:
            await Account.find(value)
        assert info.value.code == "E_INVALID_ARGUMENT"
        with pytest.raises(LucidError):
            await Account.find_many([value])
        assert log.count == 0

    async def test_a_wrong_arity_says_what_the_key_is(self, database: Database) -> None:
        with pytest.raises(LucidError, match=r"expected a tuple of 2 values \(tenant_id, id\)"):
            await Account.find((1,))
        with pytest.raises(LucidError, match=r'"id" of primary key.*expected int, got str'):
            await Account.find((1, "1"))
        with pytest.raises(LucidError, match=r'"tenant_id".*expected int, got str'):
            await Account.find_by("tenant_id", "1")


# -- writes --------------------------------------------------------------------------------------
class TestWrites:
    async def test_create_update_delete_refresh(self, database: Database) -> None:
        account = await Account.create({"tenant_id": 1, "id": 7, "name": "a"})
        other = await Account.create({"tenant_id": 2, "id": 7, "name": "other"})
        assert account.is_persisted and (account.tenant_id, account.id) == (1, 7)
        account.name = "renamed"
        with count_queries() as log:
            await account.save()
        assert log.count == 1
        assert [r["name"] for r in await rows("ck_accounts")] == ["renamed", "other"]

        await db.from_("ck_accounts").where({"tenant_id": 1, "id": 7}).update({"name": "db"})
        await account.refresh()
        assert account.name == "db" and not account.is_dirty

        await account.delete()
        assert account.is_deleted
        assert [(r["tenant_id"], r["id"]) for r in await rows("ck_accounts")] == [(2, 7)]
        assert (await Account.find_or_fail((2, 7))).name == other.name

    async def test_a_row_gone_raises_on_update_and_delete(self, database: Database) -> None:
        account = await Account.create({"tenant_id": 1, "id": 1, "name": "a"})
        await db.from_("ck_accounts").delete()
        account.name = "b"
        with pytest.raises(ModelNotFoundError):
            await account.save()
        with pytest.raises(ModelNotFoundError):
            await account.delete()

    async def test_an_unset_component_raises_before_a_write(self, database: Database) -> None:
        account = await Account.create({"tenant_id": 1, "id": 1, "name": "a"})
        del account.__dict__["tenant_id"]
        account.name = "b"
        with count_queries() as log, pytest.raises(LucidError) as info:
            await account.save()
        assert info.value.code == "E_MISSING_MODEL_ATTRIBUTE"
        assert log.count == 0

    async def test_a_key_component_not_given_raises_before_the_insert(
        self, database: Database
    ) -> None:
        with (
            count_queries() as log,
            pytest.raises(LucidError, match=r"\(tenant_id, id\) is not set \(tenant_id\)") as info,
        ):
            await Account.create({"id": 1, "name": "a"})
        assert info.value.code == "E_MISSING_MODEL_ATTRIBUTE"
        with pytest.raises(LucidError):
            await Account.create_many([{"tenant_id": 1, "id": 1}, {"id": 2}])
        assert log.count == 0 or all("INSERT" not in sql.upper() for sql in log.sqls)
        assert await rows("ck_accounts") == []

    async def test_create_many_and_update_many(self, database: Database) -> None:
        made = await Account.create_many(
            [{"tenant_id": 1, "id": i, "name": f"n{i}"} for i in range(1, 4)]
        )
        assert all(m.is_persisted for m in made)
        for m in made:
            m.name = f"x{m.id}"
        await Account.update_many(made)
        assert [r["name"] for r in await rows("ck_accounts")] == ["x1", "x2", "x3"]
        assert not any(m.is_dirty for m in made)

    async def test_a_duplicate_key_rolls_the_batch_back(self, database: Database) -> None:
        await Account.create({"tenant_id": 1, "id": 1})
        with pytest.raises(LucidError):
            await Account.create_many([{"tenant_id": 1, "id": 2}, {"tenant_id": 1, "id": 1}])
        assert [(r["tenant_id"], r["id"]) for r in await rows("ck_accounts")] == [(1, 1)]

    async def test_fill_keeps_the_key_of_a_persisted_instance(self, database: Database) -> None:
        account = await Account.create({"tenant_id": 1, "id": 1, "name": "a"})
        account.fill({"name": "b"})
        assert (account.tenant_id, account.id, account.name) == (1, 1, "b")

    async def test_upsert_on_the_composite_key(self, database: Database) -> None:
        await Account.create({"tenant_id": 1, "id": 1, "name": "a"})
        made = await Account.upsert_many(
            [{"tenant_id": 1, "id": 1, "name": "b"}, {"tenant_id": 2, "id": 1, "name": "c"}],
            conflict=["tenant_id", "id"],
        )
        assert [(m.tenant_id, m.id, m.name) for m in made] == [(1, 1, "b"), (2, 1, "c")]
        assert [r["name"] for r in await rows("ck_accounts")] == ["b", "c"]

    async def test_fetch_or_create_many_and_first_or_create(self, database: Database) -> None:
        await Account.create({"tenant_id": 1, "id": 1, "name": "a"})
        got = await Account.fetch_or_create_many(
            ["tenant_id", "id"],
            [{"tenant_id": 1, "id": 1, "name": "x"}, {"tenant_id": 1, "id": 2, "name": "y"}],
        )
        assert [(g.id, g.name) for g in got] == [(1, "a"), (2, "y")]
        again = await Account.first_or_create({"tenant_id": 1, "id": 2})
        assert again.name == "y"

    async def test_serialize_and_cursor_paginate(self, database: Database) -> None:
        await Account.create_many([{"tenant_id": 1, "id": i, "name": f"n{i}"} for i in (1, 2, 3)])
        found = await Account.find_or_fail((1, 2))
        assert found.serialize() == {"tenant_id": 1, "id": 2, "name": "n2"}
        page = await Account.query().order_by("name").cursor_paginate(2)
        assert [a.name for a in page.data] == ["n1", "n2"] and page.next_cursor is not None
        rest = await Account.query().order_by("name").cursor_paginate(2, page.next_cursor)
        assert [a.name for a in rest.data] == ["n3"]

    async def test_lock_for_update(self, database: Database) -> None:
        account = await Account.create({"tenant_id": 1, "id": 1, "name": "a"})
        seen: list[Any] = []
        await account.lock_for_update(lambda fresh: seen.append((fresh.tenant_id, fresh.id)))
        assert seen == [(1, 1)]
