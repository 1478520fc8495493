"""Race-safe writes through relations (issue 15, item 1): a has_many's ``first_or_create``,
``update_or_create``, ``fetch_or_create_many``, ``update_or_create_many`` and a has_one's
``first_or_create``/``update_or_create``, called by 10 concurrent tasks (each on its own pooled
connection) for one new key, all succeed and leave one row. Needs a unique index on the
matched columns plus the foreign key (``up_badges``: ``(owner_id, code)``; ``up_cards``:
``owner_id``). Matching follows the database's collation."""

from __future__ import annotations

import asyncio
from typing import Any

from lucid_orm import db
from lucid_orm.database import Database
from tests.orm._upsert_schema import Owner, rows, tables

__all__ = ["tables"]

N = 10


async def _concurrently(owner: Owner, relation: str, method: str, *args: Any) -> list[Any]:
    """``N`` tasks at once, each with its own copy of ``owner`` (as ``N`` requests would load
    it: a relation write binds its parent to its transaction while it runs)."""

    async def one() -> Any:
        parent = await Owner.find_or_fail(owner.id)
        return await getattr(parent.related(relation), method)(*args)

    return list(await asyncio.gather(*[one() for _ in range(N)]))


async def _owner() -> Owner:
    owner = await Owner.create({"name": "virk"})
    await Owner.create({"name": "other"})  # a second parent: its rows never match
    return owner


class TestHasMany:
    async def test_first_or_create(self, tables: Database) -> None:
        owner = await _owner()
        got = await _concurrently(
            owner, "badges", "first_or_create", {"code": "gold"}, {"level": 1}
        )
        assert len({b.id for b in got}) == 1 and all(b.owner_id == owner.id for b in got)
        assert await rows("up_badges", "owner_id", "code", "level") == [
            {"owner_id": owner.id, "code": "gold", "level": 1}
        ]

    async def test_update_or_create(self, tables: Database) -> None:
        owner = await _owner()
        got = await _concurrently(
            owner, "badges", "update_or_create", {"code": "gold"}, {"level": 2}
        )
        assert len({b.id for b in got}) == 1
        assert await rows("up_badges", "code", "level") == [{"code": "gold", "level": 2}]

    async def test_fetch_or_create_many(self, tables: Database) -> None:
        owner = await _owner()
        payload = [{"code": "a"}, {"code": "b"}]
        got = await _concurrently(owner, "badges", "fetch_or_create_many", payload, "code")
        assert len({tuple(b.id for b in batch) for batch in got}) == 1
        stored = await db.from_("up_badges").select("code").order_by("code")
        assert stored == [{"code": "a"}, {"code": "b"}]

    async def test_update_or_create_many(self, tables: Database) -> None:
        owner = await _owner()
        payload = [{"code": "a", "level": 1}, {"code": "b", "level": 2}]
        got = await _concurrently(owner, "badges", "update_or_create_many", payload, "code")
        assert all([b.level for b in batch] == [1, 2] for batch in got)
        stored = await db.from_("up_badges").select("code", "level").order_by("code")
        assert stored == [{"code": "a", "level": 1}, {"code": "b", "level": 2}]

    async def test_matching_follows_the_collation(self, tables: Database, dialect: str) -> None:
        owner = await _owner()
        stored = await owner.related("badges").create({"code": "gold"})
        got = await owner.related("badges").fetch_or_create_many([{"code": "GOLD"}], "code")
        first = await owner.related("badges").first_or_create({"code": "GOLD"})
        count = await db.from_("up_badges").count_rows()
        if dialect == "mysql":  # case-insensitive collation: the same row
            assert got[0].id == stored.id == first.id and count == 1
        else:
            assert got[0].id != stored.id and first.id == got[0].id and count == 2


class TestHasOne:
    async def test_first_or_create(self, tables: Database) -> None:
        owner = await _owner()
        got = await _concurrently(owner, "card", "first_or_create", {}, {"label": "x"})
        assert len({c.id for c in got}) == 1
        assert await rows("up_cards", "owner_id", "label") == [{"owner_id": owner.id, "label": "x"}]

    async def test_update_or_create(self, tables: Database) -> None:
        owner = await _owner()
        got = await _concurrently(owner, "card", "update_or_create", {}, {"label": "y"})
        assert len({c.id for c in got}) == 1 and all(c.label == "y" for c in got)
        assert await rows("up_cards", "label") == [{"label": "y"}]
