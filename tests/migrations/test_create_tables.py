"""``db.create_tables(...)`` / ``db.drop_tables(...)`` on every dialect: the tables the models
declare (types, nullability, primary keys, the foreign keys relations imply), created in
dependency order, written and read through the models, idempotent with ``if_not_exists``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from lucid_orm import BaseModel, IntegrityError, LucidError, QueryError, column
from lucid_orm.database import Database
from lucid_orm.orm.relations import BelongsTo, HasMany, belongs_to, has_many


class CtAuthor(BaseModel):
    table = "ct_authors"
    id: int = column(is_primary=True)
    email: str = column()
    nickname: str | None = column()
    active: bool = column()
    score: float | None = column()
    balance: Decimal | None = column()
    born_on: dt.date | None = column()
    settings: dict[str, Any] | None = column()
    token: uuid.UUID | None = column()
    created_at: dt.datetime = column.date_time(auto_create=True)
    books: HasMany[CtBook] = has_many(lambda: CtBook, foreign_key="author_id")


class CtBook(BaseModel):
    table = "ct_books"
    id: int = column(is_primary=True)
    author_id: int = column()
    title: str = column(type_=sa.String(80))
    summary: str | None = column(type_=sa.Text())
    author: BelongsTo[CtAuthor] = belongs_to(lambda: CtAuthor, foreign_key="author_id")


class CtCode(BaseModel):
    """A model with a text primary key (no auto-increment)."""

    table = "ct_codes"
    code: str = column(is_primary=True)
    label: str | None = column()


MODELS = (CtBook, CtCode, CtAuthor)  # dependents first: create_tables orders them


async def inspect(database: Database, fn: Callable[[Any], Any]) -> Any:
    async with database.engine().connect() as conn:
        # A pooled SQLite connection answers PRAGMA reflection from its cached schema until a
        # statement reads sqlite_master (get_table_names does): else a connection that has not
        # run a statement since another one's DDL reports the old foreign keys.
        return await conn.run_sync(
            lambda c: (sa.inspect(c).get_table_names(), fn(sa.inspect(c)))[1]
        )


@pytest.fixture
async def tables(database: Database) -> AsyncIterator[Database]:
    await database.drop_tables(*MODELS)
    try:
        yield database
    finally:
        await database.drop_tables(*MODELS)


class TestCreateTables:
    async def test_creates_the_tables_in_dependency_order(self, tables: Database) -> None:
        created = await tables.create_tables(*MODELS)
        # Given books first; authors, which books reference, are created before them.
        assert created == ["ct_codes", "ct_authors", "ct_books"]
        names = set(await inspect(tables, lambda i: i.get_table_names()))
        assert {"ct_authors", "ct_books", "ct_codes"} <= names

    async def test_columns_types_nullability_and_keys(self, tables: Database, dialect: str) -> None:
        await tables.create_tables(*MODELS)
        columns = {
            c["name"]: c for c in await inspect(tables, lambda i: i.get_columns("ct_authors"))
        }
        assert list(columns) == [
            "id", "email", "nickname", "active", "score", "balance", "born_on", "settings",
            "token", "created_at",
        ]  # fmt: skip
        nullable = {name for name, c in columns.items() if c["nullable"]}
        assert nullable == {"nickname", "score", "balance", "born_on", "settings", "token"}
        assert isinstance(columns["id"]["type"], sa.Integer)
        assert isinstance(columns["email"]["type"], sa.String)
        assert columns["email"]["type"].length == 255
        assert isinstance(columns["score"]["type"], sa.Float)
        assert isinstance(columns["balance"]["type"], sa.Numeric)
        assert (columns["balance"]["type"].precision, columns["balance"]["type"].scale) == (20, 6)
        assert isinstance(columns["born_on"]["type"], sa.Date)
        assert isinstance(columns["created_at"]["type"], sa.DateTime)
        book_columns = {
            c["name"]: c for c in await inspect(tables, lambda i: i.get_columns("ct_books"))
        }
        assert book_columns["title"]["type"].length == 80
        assert isinstance(book_columns["summary"]["type"], sa.Text)
        assert not book_columns["author_id"]["nullable"]

        pk = await inspect(tables, lambda i: i.get_pk_constraint("ct_codes"))
        assert pk["constrained_columns"] == ["code"]
        fks = await inspect(tables, lambda i: i.get_foreign_keys("ct_books"))
        keys = [(f["constrained_columns"], f["referred_table"], f["referred_columns"]) for f in fks]
        assert keys == [(["author_id"], "ct_authors", ["id"])]
        assert await inspect(tables, lambda i: i.get_foreign_keys("ct_authors")) == []

    async def test_rows_through_the_models(self, tables: Database) -> None:
        await tables.create_tables(*MODELS)
        token = uuid.uuid4()
        ada = await CtAuthor.create(
            {
                "email": "ada@example.com",
                "active": True,
                "score": 1.5,
                "balance": Decimal("12.345678"),
                "born_on": dt.date(1815, 12, 10),
                "settings": {"theme": "dark"},
                "token": token,
            }
        )
        assert isinstance(ada.id, int)  # auto-incremented
        await ada.related("books").create_many([{"title": "Notes"}, {"title": "Letters"}])
        await CtCode.create({"code": "A1", "label": "first"})

        found = await CtAuthor.query().preload("books").first_or_fail()
        assert (found.email, found.active, found.score, found.balance) == (
            "ada@example.com", True, 1.5, Decimal("12.345678"),
        )  # fmt: skip
        assert (found.born_on, found.settings, found.token) == (
            dt.date(1815, 12, 10), {"theme": "dark"}, token,
        )  # fmt: skip
        assert found.created_at is not None and found.nickname is None
        assert sorted(b.title for b in found.books) == ["Letters", "Notes"]
        assert (await CtCode.find_or_fail("A1")).label == "first"

        # The NOT NULL and foreign key constraints hold.
        with pytest.raises(IntegrityError):
            await CtAuthor.create({"email": None, "active": False})
        with pytest.raises(IntegrityError):
            await CtBook.create({"author_id": ada.id + 1000, "title": "orphan"})

    async def test_if_not_exists_is_idempotent(self, tables: Database) -> None:
        await tables.create_tables(*MODELS)
        await CtCode.create({"code": "kept"})
        again = await tables.create_tables(*MODELS, if_not_exists=True)
        assert again == ["ct_codes", "ct_authors", "ct_books"]
        assert [c.code for c in await CtCode.all()] == ["kept"]  # the table was left as it was
        with pytest.raises(QueryError):
            await tables.create_tables(CtCode)

    async def test_drop_tables(self, tables: Database) -> None:
        await tables.create_tables(*MODELS)
        dropped = await tables.drop_tables(*MODELS)
        assert dropped.index("ct_books") < dropped.index("ct_authors")
        names = set(await inspect(tables, lambda i: i.get_table_names()))
        assert not names & {"ct_authors", "ct_books", "ct_codes"}
        assert await tables.drop_tables(*MODELS) == dropped  # nothing left: no error

    async def test_a_column_of_unknown_type_is_refused(self, tables: Database) -> None:
        class CtOdd(BaseModel):
            table = "ct_odd"
            id: int = column(is_primary=True)
            thing = column()

        with pytest.raises(LucidError) as caught:
            await tables.create_tables(CtOdd)
        assert caught.value.code == "E_INVALID_MODEL" and '"thing"' in str(caught.value)
        with pytest.raises(LucidError) as empty:
            await tables.create_tables()
        assert empty.value.code == "E_INVALID_ARGUMENT"
