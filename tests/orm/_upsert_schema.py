"""Tables of the upsert, race-safe write and bulk-update tests (issue 15, items 1-2): a unique
``email`` (and a two-column unique key) to conflict on, timestamps, and one table without any
unique index. Created on first use per dialect; emptied after each test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

import pytest
from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, UniqueConstraint
from sqlalchemy.dialects import mysql

from lucid_orm import BaseModel, column, db, has_many, has_one
from lucid_orm.database import Database
from lucid_orm.relations import HasMany, HasOne

_DateTime = DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")

metadata = MetaData()

accounts = Table(
    "up_accounts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("email", String(100), nullable=False, unique=True),
    Column("name", String(100), nullable=True),
    Column("visits", Integer, nullable=True),
    Column("created_at", _DateTime, nullable=True),
    Column("updated_at", _DateTime, nullable=True),
)

stocks = Table(
    "up_stocks",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("shop", String(50), nullable=False),
    Column("sku", String(50), nullable=False),
    Column("qty", Integer, nullable=True),
    UniqueConstraint("shop", "sku"),
)

notes = Table(
    "up_notes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("title", String(100), nullable=True),
)

owners = Table(
    "up_owners",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(50), nullable=True),
)

badges = Table(
    "up_badges",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("owner_id", Integer, nullable=False),
    Column("code", String(50), nullable=False),
    Column("level", Integer, nullable=True),
    UniqueConstraint("owner_id", "code"),
)

cards = Table(
    "up_cards",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("owner_id", Integer, nullable=False, unique=True),
    Column("label", String(50), nullable=True),
)


class Account(BaseModel):
    table = "up_accounts"
    id: int = column(is_primary=True)
    email: str | None = column()
    name: str | None = column()
    visits: int | None = column()
    created_at: datetime | None = column.date_time(auto_create=True)
    updated_at: datetime | None = column.date_time(auto_create=True, auto_update=True)


class Stock(BaseModel):
    table = "up_stocks"
    id: int = column(is_primary=True)
    shop: str | None = column()
    sku: str | None = column()
    qty: int | None = column()


class Badge(BaseModel):
    table = "up_badges"
    id: int = column(is_primary=True)
    owner_id: int | None = column()
    code: str | None = column()
    level: int | None = column()


class Card(BaseModel):
    table = "up_cards"
    id: int = column(is_primary=True)
    owner_id: int | None = column()
    label: str | None = column()


class Owner(BaseModel):
    table = "up_owners"
    id: int = column(is_primary=True)
    name: str | None = column()
    badges: HasMany[Badge] = has_many(lambda: Badge)
    card: HasOne[Card] = has_one(lambda: Card)


class Note(BaseModel):
    table = "up_notes"
    id: int = column(is_primary=True)
    title: str | None = column()


_created: set[str] = set()


@pytest.fixture
async def tables(database: Database, dialect: str) -> AsyncIterator[Database]:
    """The tables above on the running dialect, empty after the test."""
    if dialect not in _created:
        async with db.engine().begin() as conn:
            await conn.run_sync(metadata.drop_all)
            await conn.run_sync(metadata.create_all)
        _created.add(dialect)
    try:
        yield database
    finally:
        for table in metadata.sorted_tables:
            await db.from_(table.name).delete()


async def rows(table: str, *columns: str) -> list[dict[str, object]]:
    return list(await db.from_(table).select(*columns).order_by("id"))
