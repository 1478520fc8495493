"""Model hooks (SPEC §3): before/after create, update, save, delete, find, fetch and paginate,
in Lucid's order; async hooks; a failing hook leaves nothing written."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import pytest

from lucid_orm import BaseModel, LucidError, SimplePaginator, after, before, column
from lucid_orm.database import Database
from lucid_orm.orm.query_builder import ModelQueryBuilder
from tests import models
from tests.helpers import count_queries

events: list[tuple[str, Any]] = []


class User(models.BaseUser):
    email: str | None = column()
    points: int | None = column()

    @before("create")
    def before_create(user: User) -> None:
        events.append(("before:create", user.is_persisted))

    @before("save")
    def before_save(user: User) -> None:
        events.append(("before:save", user.is_persisted))

    @after("create")
    def after_create(user: User) -> None:
        events.append(("after:create", user.is_persisted))

    @after("save")
    def after_save(user: User) -> None:
        events.append(("after:save", user.is_persisted))

    @before("update")
    def before_update(user: User) -> None:
        events.append(("before:update", dict(user.dirty)))

    @after("update")
    def after_update(user: User) -> None:
        events.append(("after:update", dict(user.dirty)))

    @before("delete")
    def before_delete(user: User) -> None:
        events.append(("before:delete", user.is_deleted))

    @after("delete")
    def after_delete(user: User) -> None:
        events.append(("after:delete", user.is_deleted))

    @before("find")
    def before_find(query: Any) -> None:
        events.append(("before:find", query))

    @after("find")
    def after_find(user: User) -> None:
        events.append(("after:find", user))

    @before("fetch")
    def before_fetch(query: Any) -> None:
        events.append(("before:fetch", query))

    @after("fetch")
    def after_fetch(users: list[User]) -> None:
        events.append(("after:fetch", users))

    @before("paginate")
    def before_paginate(query: Any) -> None:
        events.append(("before:paginate", query))

    @after("paginate")
    def after_paginate(page: SimplePaginator[User]) -> None:
        events.append(("after:paginate", page))


class Account(BaseModel):
    """Async hooks: a normalising before:save and a soft-scope before:fetch/find."""

    table = "users"
    id: int = column()
    email: str | None = column()
    is_active: bool | None = column()

    @before("save")
    async def normalise(account: Account) -> None:
        await asyncio.sleep(0)
        if account.email is not None:
            account.email = account.email.strip().lower()

    @before("fetch")
    async def only_active(query: Any) -> None:
        await asyncio.sleep(0)
        query.where("is_active", True)

    @before("find")
    def only_active_one(query: Any) -> None:
        query.where("is_active", True)


class Thing(models.Thing):
    @before("create")
    def refuse_negative(thing: Thing) -> None:
        if (thing.amount or 0) < 0:
            raise ValueError("negative amount")

    @after("create")
    async def refuse_reserved(thing: Thing) -> None:
        if thing.name == "reserved":
            raise ValueError("reserved name")

    @before("delete")
    def refuse_delete(thing: Thing) -> None:
        if thing.name == "forever":
            raise ValueError("cannot delete")

    @after("update")
    def refuse_big(thing: Thing) -> None:
        if (thing.amount or 0) > 100:
            raise ValueError("too big")


class Member(BaseModel):
    """Query hooks stacked on @staticmethod (how they type-check under mypy)."""

    table = "users"
    id: int = column()
    is_active: bool | None = column()

    @before("fetch")
    @staticmethod
    def only_active(query: ModelQueryBuilder[Member]) -> None:
        query.where("is_active", True)

    @after("fetch")
    @staticmethod
    async def record(members: list[Member]) -> None:
        events.append(("after:fetch", members))


audit: list[str] = []


class Auditable(BaseModel, abstract=True):
    created_at: datetime | None = column.date_time(auto_create=True)

    @before("save")
    def audit_save(model: Any) -> None:
        audit.append(f"base:{type(model).__name__}")


class Post(Auditable):
    id: int = column()
    title: str | None = column()

    @before("save")
    def own_save(post: Post) -> None:
        audit.append("post")


@pytest.fixture(autouse=True)
def _reset() -> None:
    events.clear()
    audit.clear()


def names() -> list[str]:
    return [name for name, _ in events]


class TestPersistenceHooks:
    async def test_create_order(self, database: Database) -> None:
        await User.create({"username": "virk"})
        assert events == [
            ("before:create", False),
            ("before:save", False),
            ("after:create", True),
            ("after:save", True),
        ]

    async def test_update_order(self, database: Database) -> None:
        user = await User.create({"username": "virk"})
        events.clear()
        user.points = 3
        await user.save()
        assert names() == ["before:update", "before:save", "after:update", "after:save"]
        # Before hooks see the pending change; after hooks a clean instance.
        assert events[0][1] == {"points": 3}
        assert events[2][1] == {}

    async def test_clean_instance_runs_only_the_before_hooks(self, database: Database) -> None:
        # Lucid: before hooks run (they may make the model dirty); nothing else happens.
        user = await User.create({"username": "virk"})
        events.clear()
        with count_queries() as q:
            await user.save()
        assert q.count == 0
        assert names() == ["before:update", "before:save"]

    async def test_delete_order(self, database: Database) -> None:
        user = await User.create({"username": "virk"})
        events.clear()
        await user.delete()
        assert events == [("before:delete", False), ("after:delete", True)]

    async def test_create_many_runs_hooks_per_instance(self, database: Database) -> None:
        await User.create_many([{"username": "a"}, {"username": "b"}])
        assert names().count("before:create") == 2
        assert names().count("after:save") == 2

    async def test_async_before_hook_is_awaited(self, database: Database) -> None:
        account = await Account.create({"email": "  Virk@AdonisJS.com ", "is_active": True})
        assert account.email == "virk@adonisjs.com"
        rows = await database.from_("users").select("email")
        assert rows == [{"email": "virk@adonisjs.com"}]

    async def test_before_hook_can_make_a_clean_instance_dirty(self, database: Database) -> None:
        await database.table("users").insert({"email": "UPPER@B.C", "is_active": True})
        account = await Account.first_or_fail()
        assert not account.is_dirty
        with count_queries() as q:
            await account.save()
        assert q.count == 1
        assert (await Account.first_or_fail()).email == "upper@b.c"


class TestFailingHooks:
    async def test_before_hook_that_raises_aborts_the_insert(self, database: Database) -> None:
        thing = Thing(name="a", amount=-1)
        with count_queries() as q, pytest.raises(ValueError, match="negative amount"):
            await thing.save()
        assert q.count == 0
        assert not thing.is_persisted
        assert await Thing.query().count_rows() == 0

    async def test_after_create_hook_that_raises_leaves_no_row(self, database: Database) -> None:
        thing = Thing(name="reserved")
        with pytest.raises(ValueError, match="reserved name"):
            await thing.save()
        assert await Thing.query().count_rows() == 0
        assert not thing.is_persisted
        assert "id" not in thing.attributes
        assert thing.dirty == {"name": "reserved"}
        assert thing.trx is None

    async def test_failing_after_hook_inside_a_transaction_uses_a_savepoint(
        self, database: Database
    ) -> None:
        async with database.transaction() as trx:
            kept = await Thing.create({"name": "kept"}, client=trx)
            with pytest.raises(ValueError, match="reserved name"):
                await Thing(name="reserved").use_transaction(trx).save()
            # The outer transaction is still usable and the instance still belongs to it.
            assert kept.trx is trx
            await Thing.create({"name": "after"}, client=trx)
        rows = await database.from_("things").select("name").order_by("id")
        assert [r["name"] for r in rows] == ["kept", "after"]

    async def test_after_update_hook_that_raises_rolls_back(self, database: Database) -> None:
        thing = await Thing.create({"name": "a", "amount": 1})
        thing.amount = 500
        with pytest.raises(ValueError, match="too big"):
            await thing.save()
        assert (await Thing.find_or_fail(thing.id)).amount == 1
        assert thing.dirty == {"amount": 500}
        assert thing.original["amount"] == 1

    async def test_create_many_with_a_failing_hook_leaves_nothing(self, database: Database) -> None:
        with pytest.raises(ValueError):
            await Thing.create_many([{"name": "a"}, {"name": "reserved"}])
        assert await Thing.query().count_rows() == 0
        with pytest.raises(ValueError):
            await Thing.create_many([{"name": "a"}, {"name": "b", "amount": -1}])
        assert await Thing.query().count_rows() == 0

    async def test_before_delete_hook_that_raises_keeps_the_row(self, database: Database) -> None:
        thing = await Thing.create({"name": "forever"})
        with pytest.raises(ValueError):
            await thing.delete()
        assert not thing.is_deleted
        assert await Thing.query().count_rows() == 1


class TestQueryHooks:
    async def test_find_hooks(self, database: Database) -> None:
        user = await User.create({"username": "virk"})
        events.clear()
        found = await User.find(user.id)
        assert names() == ["before:find", "after:find"]
        assert isinstance(events[0][1], ModelQueryBuilder)
        assert events[1][1] is found

    async def test_find_hooks_do_not_run_after_when_nothing_is_found(
        self, database: Database
    ) -> None:
        assert await User.find(1) is None
        assert names() == ["before:find"]

    async def test_first_runs_the_find_hooks(self, database: Database) -> None:
        await User.create({"username": "virk"})
        events.clear()
        first = await User.query().first()
        assert names() == ["before:find", "after:find"]
        assert events[1][1] is first

    async def test_fetch_hooks(self, database: Database) -> None:
        await User.create_many([{"username": "a"}, {"username": "b"}])
        events.clear()
        query = User.query().order_by("id")
        users = await query
        assert names() == ["before:fetch", "after:fetch"]
        assert events[0][1] is query
        assert events[1][1] == users and len(users) == 2

    async def test_paginate_hooks(self, database: Database) -> None:
        await User.create_many([{"username": "a"}, {"username": "b"}])
        events.clear()
        query = User.query()
        page = await query.paginate(1, 1)
        assert names() == ["before:paginate", "after:paginate"]
        assert events[0][1] is query
        assert events[1][1] is page
        assert page.total == 2

    async def test_query_hooks_can_change_the_query(self, database: Database) -> None:
        await Account.create({"email": "on@b.c", "is_active": True})
        off = await Account.create({"email": "off@b.c", "is_active": False})
        assert [a.email for a in await Account.all()] == ["on@b.c"]
        assert await Account.find(off.id) is None

    async def test_hooks_stacked_on_staticmethod(self, database: Database) -> None:
        await database.table("users").multi_insert([{"is_active": True}, {"is_active": False}])
        members = await Member.query()
        assert [m.is_active for m in members] == [True]
        assert events == [("after:fetch", members)]


class TestInheritedHooks:
    async def test_hooks_from_an_abstract_base_run_first(self, database: Database) -> None:
        post = await Post.create({"title": "Hello"})
        assert audit == ["base:Post", "post"]
        assert post.created_at is not None


class TestHookEvents:
    def test_unknown_event_raises(self) -> None:
        with pytest.raises(LucidError) as info:
            before("nope")  # type: ignore[arg-type]
        assert "nope" in str(info.value)
