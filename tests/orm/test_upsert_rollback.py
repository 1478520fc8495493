"""``Model.upsert_many`` inside a transaction that rolls back: the returned instances follow
the rows (the write journal). A row the upsert inserted is gone, so its instance is new again
(PostgreSQL tells which rows those are); a row it updated holds its old values again, which
the instance doesn't know: it stays persisted with every attribute dirty, as does every
instance where the database can't tell (SQLite, MariaDB)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import JSON, Column, Integer, MetaData, String, Table

from lucid_orm import BaseModel, ModelNotFoundError, column, db
from lucid_orm.database import Database
from lucid_orm.database.transaction import TransactionClient
from tests.orm._upsert_schema import Account, Stock, rows, tables

__all__ = ["tables"]

rb_metadata = MetaData()
Table(
    "up_rb_docs",
    rb_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("payload", JSON, nullable=True),
)


class Doc(BaseModel):
    table = "up_rb_docs"
    id: int = column(is_primary=True)
    name: str = column()
    payload: dict[str, Any] | None = column()


@pytest.fixture
async def docs(database: Database) -> AsyncIterator[Database]:
    """A table with a JSON column, dropped after the test: PostgreSQL's upsert of it sends
    the rows as multi-row VALUES (no ``unnest`` of JSON arrays)."""
    async with db.engine().begin() as conn:
        await conn.run_sync(rb_metadata.drop_all)
        await conn.run_sync(rb_metadata.create_all)
    try:
        yield database
    finally:
        async with db.engine().begin() as conn:
            await conn.run_sync(rb_metadata.drop_all)


# Half of it new: a@x and c@x exist before the upsert.
PAYLOAD = [{"email": e, "name": "new"} for e in ["a@x", "b@x", "c@x", "d@x"]]


async def _existing() -> list[Account]:
    return await Account.create_many(
        [{"email": "a@x", "name": "old", "visits": 1}, {"email": "c@x", "name": "old"}]
    )


def _set_columns(m: Any) -> set[str]:
    return {k for k in type(m).columns if k in m.__dict__}


def _fully_dirty(m: Any) -> bool:
    """Persisted with every set attribute dirty, at its own value."""
    dirty = m.dirty
    return (
        m.is_persisted
        and m.is_dirty
        and set(dirty) == _set_columns(m)
        and all(dirty[k] == getattr(m, k) for k in dirty)
    )


def _check_rolled_back(made: list[Account], dialect: str) -> None:
    """The instances of PAYLOAD's upsert after its rollback."""
    a, b, c, d = made
    assert [m.name for m in made] == ["new"] * 4
    # Rows the upsert updated: persisted, their key kept, everything dirty.
    for m in (a, c):
        assert _fully_dirty(m) and m.id is not None
    # The returned column saying "inserted" is no attribute or extra.
    assert all(m.extras == {} and "lucid_upsert_inserted" not in m.__dict__ for m in made)
    if dialect == "postgresql":
        for m in (b, d):
            assert not m.is_persisted and m.id is None and "id" not in m.__dict__
            # The stamps the upsert set are gone with the row (as after a create's undo).
            assert m.created_at is None and m.updated_at is None
            # The other columns keep what the row held (a save inserts them as they are).
            assert m.dirty == {"email": m.email, "name": "new", "visits": None}
    else:
        # No telling inserted from updated rows: every instance takes the "updated" rule.
        for m in (b, d):
            assert _fully_dirty(m) and m.id is not None


class TestRollback:
    async def test_half_new_payload_rolled_back(
        self, tables: Database, dialect: str, fast_paths: bool
    ) -> None:
        await _existing()
        async with db.transaction() as trx:
            made = await Account.upsert_many(PAYLOAD, conflict="email", merge=["name"], client=trx)
            assert all(m.is_persisted and not m.is_dirty for m in made)
            await trx.rollback()
        assert await rows("up_accounts", "email", "name") == [
            {"email": "a@x", "name": "old"},
            {"email": "c@x", "name": "old"},
        ]
        _check_rolled_back(made, dialect)

    async def test_save_after_rollback_writes_back_or_finds_the_row_gone(
        self, tables: Database, dialect: str, fast_paths: bool
    ) -> None:
        await _existing()
        async with db.transaction() as trx:
            # Created in the transaction, then updated by the upsert: gone after the rollback.
            await Account.create({"email": "e@x", "name": "e"}, client=trx)
            made = await Account.upsert_many(
                [*PAYLOAD, {"email": "e@x", "name": "new"}],
                conflict="email",
                merge=["name"],
                client=trx,
            )
            await trx.rollback()
        a, b, _, _, e = made
        assert _fully_dirty(a) and _fully_dirty(e)
        await a.save()
        assert not a.is_dirty
        assert await rows("up_accounts", "email", "name", "visits") == [
            {"email": "a@x", "name": "new", "visits": 1},
            {"email": "c@x", "name": "old", "visits": None},
        ]
        with pytest.raises(ModelNotFoundError):
            await e.save()
        if dialect == "postgresql":
            await b.save()  # new again: inserted with a key of its own
            assert b.is_persisted and b.id is not None and not b.is_dirty
        else:
            with pytest.raises(ModelNotFoundError):
                await b.save()

    async def test_a_savepoint_rolled_back_while_the_root_commits(
        self, tables: Database, dialect: str, fast_paths: bool
    ) -> None:
        await _existing()
        async with db.transaction() as trx:
            async with trx.transaction() as savepoint:
                made = await Account.upsert_many(
                    PAYLOAD, conflict="email", merge=["name"], client=savepoint
                )
                await savepoint.rollback()
            _check_rolled_back(made, dialect)
            await Account.create({"email": "z@x"}, client=trx)
        assert await rows("up_accounts", "email", "name") == [
            {"email": "a@x", "name": "old"},
            {"email": "c@x", "name": "old"},
            {"email": "z@x", "name": None},
        ]
        _check_rolled_back(made, dialect)

    async def test_a_released_savepoint_hands_its_entry_to_the_root(
        self, tables: Database, dialect: str, fast_paths: bool
    ) -> None:
        await _existing()
        async with db.transaction() as trx:
            async with trx.transaction() as savepoint:
                made = await Account.upsert_many(
                    PAYLOAD, conflict="email", merge=["name"], client=savepoint
                )
            assert all(m.is_persisted and not m.is_dirty for m in made)
            await trx.rollback()
        assert await db.from_("up_accounts").where("name", "new").count_rows() == 0
        _check_rolled_back(made, dialect)

    async def test_merged_stamps_are_put_back(
        self, tables: Database, dialect: str, fast_paths: bool
    ) -> None:
        (a, _) = await _existing()
        async with db.transaction() as trx:
            # merge=None: ``updated_at`` is merged, a stamp the upsert set on both rows.
            made = await Account.upsert_many(PAYLOAD[:2], conflict="email", client=trx)
            assert all(m.updated_at is not None for m in made)
            await trx.rollback()
        old, new = made
        # The updated row's instance: its stamp is gone (a save stamps it again).
        assert old.updated_at is None and "updated_at" not in old.__dict__
        assert old.created_at is not None and _fully_dirty(old)
        assert new.updated_at is None
        await old.save()
        (row,) = await Account.query().where("email", "a@x")
        assert row.name == "new" and row.updated_at is not None and row.updated_at != a.updated_at

    async def test_a_model_without_instances_in_the_payload_path(
        self, tables: Database, dialect: str, fast_paths: bool
    ) -> None:
        # No timestamps, no prepare: the rows are written without an instance each.
        await Stock.create({"shop": "s", "sku": "old", "qty": 1})
        payload = [{"shop": "s", "sku": "old", "qty": 2}, {"shop": "s", "sku": "new", "qty": 3}]
        async with db.transaction() as trx:
            old, new = await Stock.upsert_many(payload, conflict=["shop", "sku"], client=trx)
            await trx.rollback()
        assert _fully_dirty(old) and old.qty == 2
        if dialect == "postgresql":
            assert not new.is_persisted and new.id is None
            assert new.dirty == {"shop": "s", "sku": "new", "qty": 3}
        else:
            assert _fully_dirty(new)
        assert await rows("up_stocks", "sku", "qty") == [{"sku": "old", "qty": 1}]

    async def test_rows_sent_as_values(
        self, docs: Database, dialect: str, fast_paths: bool
    ) -> None:
        await Doc.create({"name": "old", "payload": {"v": 1}})
        payload = [{"name": "old", "payload": {"v": 2}}, {"name": "new", "payload": {"v": 3}}]
        async with db.transaction() as trx:
            old, new = await Doc.upsert_many(payload, conflict="name", client=trx)
            assert old.extras == {} and new.payload == {"v": 3}
            await trx.rollback()
        assert _fully_dirty(old) and old.payload == {"v": 2}
        if dialect == "postgresql":
            assert not new.is_persisted and new.id is None
        else:
            assert _fully_dirty(new)
        await old.save()
        assert [(d.name, d.payload) for d in await Doc.query()] == [("old", {"v": 2})]


class TestCommit:
    async def test_commit_leaves_the_instances_clean(
        self, tables: Database, dialect: str, fast_paths: bool
    ) -> None:
        await _existing()
        async with db.transaction() as trx, trx.transaction() as savepoint:
            made = await Account.upsert_many(
                PAYLOAD, conflict="email", merge=["name"], client=savepoint
            )
        assert all(m.is_persisted and not m.is_dirty and m.id is not None for m in made)
        assert all(m.extras == {} for m in made)
        assert await db.from_("up_accounts").where("name", "new").count_rows() == 4
        # The committed entry is dropped: a later transaction's rollback leaves them alone.
        trx2: TransactionClient
        async with db.transaction() as trx2:
            await Account.create({"email": "z@x"}, client=trx2)
            await trx2.rollback()
        assert all(m.is_persisted and not m.is_dirty for m in made)

    async def test_outside_a_transaction_nothing_is_journaled(
        self, tables: Database, fast_paths: bool
    ) -> None:
        await _existing()
        made = await Account.upsert_many(PAYLOAD, conflict="email", merge=["name"])
        assert all(m.is_persisted and not m.is_dirty and m.trx is None for m in made)
