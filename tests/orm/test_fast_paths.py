"""The fast paths of the performance pass, observed on real databases: SQLite's multi-row
``INSERT … RETURNING`` for ``create_many`` (keys, values, splitting, atomicity), the SQLite
datetime binds, aware UTC reads of PostgreSQL timestamps, uncast preload key arrays on
PostgreSQL (integer and native ``uuid`` keys), generated hydration (``trx``, extras,
``original``/``dirty``, quoted column names, self joins) and preload matching of parents that
share a key value."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Boolean, Column, DateTime, Integer, MetaData, String, Table, text
from sqlalchemy.dialects import mysql, postgresql

from lucid_orm import (
    BaseModel,
    IntegrityError,
    before,
    belongs_to,
    column,
    db,
    has_many,
    many_to_many,
)
from lucid_orm.database import Database, QueryEvent
from lucid_orm.relations import BelongsTo, HasMany, ManyToMany
from tests import models
from tests.helpers import count_queries
from tests.models import Skill

KOLKATA = ZoneInfo("Asia/Kolkata")  # UTC+05:30, no daylight saving time
# SQLite's default bound-parameter limit (3.32+): create_many splits its statement above it.
SQLITE_MAX_PARAMS = 32766

# -- tables of this file (created once per dialect, emptied after each test) -------------------

fp_metadata = MetaData()
# MySQL's DATETIME drops microseconds unless asked for them.
_DateTime = DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")

fp_items = Table(
    "fp_items",
    fp_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("title", String(100), nullable=False, unique=True),
    Column("happened_at", _DateTime, nullable=True),
    Column("flag", Boolean, nullable=True),
    Column("note", String(100), nullable=True),
)

# Column names that must be quoted everywhere.
fp_odd = Table(
    "fp_odd",
    fp_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("it's", String(50), nullable=True),
    Column("a b", String(50), nullable=True),
)

# PostgreSQL only: both timestamp types, and native uuid keys.
fp_stamps = Table(
    "fp_stamps",
    fp_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at_tz", DateTime(timezone=True), nullable=True),
    Column("at_plain", DateTime(timezone=False), nullable=True),
)
fp_authors = Table(
    "fp_authors",
    fp_metadata,
    Column("id", postgresql.UUID(as_uuid=True), primary_key=True),
    Column("name", String(50)),
)
fp_books = Table(
    "fp_books",
    fp_metadata,
    Column("id", postgresql.UUID(as_uuid=True), primary_key=True),
    Column("author_id", postgresql.UUID(as_uuid=True), nullable=True),
    Column("title", String(50)),
)
fp_genres = Table(
    "fp_genres",
    fp_metadata,
    Column("id", postgresql.UUID(as_uuid=True), primary_key=True),
    Column("name", String(50)),
)
fp_book_genres = Table(
    "fp_book_genres",
    fp_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("book_id", postgresql.UUID(as_uuid=True)),
    Column("genre_id", postgresql.UUID(as_uuid=True)),
)

# SQLite only: a primary key the database generates, not in insertion order.
fp_tokens = Table(
    "fp_tokens",
    fp_metadata,
    Column(
        "code", String(16), primary_key=True, server_default=text("(lower(hex(randomblob(8))))")
    ),
    Column("name", String(50)),
)

_EVERYWHERE = [fp_items, fp_odd]
_BY_DIALECT = {
    "sqlite": [fp_tokens],
    "postgresql": [fp_stamps, fp_authors, fp_books, fp_genres, fp_book_genres],
}


@pytest.fixture(scope="module")
async def fp_tables(dialect: str) -> AsyncIterator[list[Table]]:
    """This file's tables on the running dialect, created once (the shared schema is
    FK-free and has neither a unique datetime table nor native uuid keys)."""
    tables = _EVERYWHERE + _BY_DIALECT.get(dialect, [])
    async with db.engine().begin() as conn:
        await conn.run_sync(lambda c: fp_metadata.drop_all(c, tables=tables))
        await conn.run_sync(lambda c: fp_metadata.create_all(c, tables=tables))
    try:
        yield tables
    finally:
        async with db.engine().begin() as conn:
            await conn.run_sync(lambda c: fp_metadata.drop_all(c, tables=tables))


@pytest.fixture
async def fp(database: Database, fp_tables: list[Table]) -> AsyncIterator[Database]:
    """``database`` plus this file's tables, emptied after the test."""
    try:
        yield database
    finally:
        async with database.engine().begin() as conn:
            for table in reversed(fp_tables):
                await conn.execute(table.delete())


def only_on(dialect: str, wanted: str, reason: str) -> None:
    if dialect != wanted:
        pytest.skip(reason)


def inserts(events: list[QueryEvent]) -> list[QueryEvent]:
    return [e for e in events if e.sql.lstrip().upper().startswith("INSERT")]


# -- models --------------------------------------------------------------------------------------


class Item(BaseModel):
    table = "fp_items"
    id: int = column(is_primary=True)
    title: str = column()
    happened_at: datetime | None = column.date_time()
    flag: bool | None = column()
    note: str | None = column()


class HookedItem(BaseModel):
    table = "fp_items"
    id: int = column(is_primary=True)
    title: str = column()
    note: str | None = column()

    @before("create")
    def stamp_note(item: HookedItem) -> None:
        item.note = f"hooked:{item.title}"


class Odd(BaseModel):
    table = "fp_odd"
    id: int = column(is_primary=True)
    quoted: str | None = column(column_name="it's")
    spaced: str | None = column(column_name="a b")


class Token(BaseModel):
    table = "fp_tokens"
    code: str = column(is_primary=True)
    name: str | None = column()


class Stamp(BaseModel):
    table = "fp_stamps"
    id: int = column(is_primary=True)
    at_tz: datetime | None = column.date_time()
    at_plain: datetime | None = column.date_time()


class Post(models.Post):
    score: int | None = column()

    user: BelongsTo[User] = belongs_to(lambda: User)


class User(models.BaseUser):
    points: int | None = column()
    parent_id: int | None = column()
    meta: Any = column()
    is_active: bool | None = column()

    posts: HasMany[Post] = has_many(lambda: Post)
    skills: ManyToMany[Skill] = many_to_many(lambda: Skill)
    # A non-unique local key: the posts whose score equals the user's points.
    scored_posts: HasMany[Post] = has_many(lambda: Post, local_key="points", foreign_key="score")


class Genre(BaseModel):
    table = "fp_genres"
    id: uuid.UUID = column(is_primary=True)
    name: str | None = column()


class Book(BaseModel):
    table = "fp_books"
    id: uuid.UUID = column(is_primary=True)
    author_id: uuid.UUID | None = column()
    title: str | None = column()

    author: BelongsTo[Author] = belongs_to(lambda: Author)
    genres: ManyToMany[Genre] = many_to_many(
        lambda: Genre,
        pivot_table="fp_book_genres",
        pivot_foreign_key="book_id",
        pivot_related_foreign_key="genre_id",
    )


class Author(BaseModel):
    table = "fp_authors"
    id: uuid.UUID = column(is_primary=True)
    name: str | None = column()

    books: HasMany[Book] = has_many(lambda: Book)


async def ids_by_title(database: Database) -> dict[str, int]:
    rows = await database.from_("fp_items").select("id", "title")
    return {r["title"]: r["id"] for r in rows}


# -- 1. create_many: one multi-row INSERT … RETURNING on SQLite -------------------------------


class TestCreateManyBulkInsert:
    async def test_a_thousand_rows_are_one_insert_with_keys_in_payload_order(
        self, fp: Database, dialect: str
    ) -> None:
        only_on(dialect, "sqlite", "the driver-level multi-row INSERT is SQLite's fast path")
        await Item.create({"title": "seed"})  # generated keys don't start at 1
        # Titles in descending order: keys assigned by position in a sorted list would differ.
        payload = [{"title": f"t{999 - i:03d}", "note": f"n{i}"} for i in range(1000)]
        with count_queries() as q:
            items = await Item.create_many(payload)
        assert q.count == 1
        assert len(inserts(q.events)) == 1
        event = q.events[0]
        # One statement outside a transaction: in one trip, without one (test_writes_alone.py).
        assert event.in_transaction is False
        assert event.model == "Item"
        assert "RETURNING" in event.sql.upper()
        assert len(event.bindings) == 1000 * 2
        assert event.bindings[:4] == ["t999", "n0", "t998", "n1"]

        stored = await ids_by_title(fp)
        assert len(stored) == 1001
        assert [item.id for item in items] == [stored[p["title"]] for p in payload]
        assert len({item.id for item in items}) == 1000
        assert all(item.is_persisted and not item.is_dirty for item in items)
        assert items[10].original == {"id": items[10].id, "title": "t989", "note": "n10"}
        assert all(item.trx is None for item in items)

    async def test_related_create_many_is_one_insert(self, fp: Database, dialect: str) -> None:
        only_on(dialect, "sqlite", "the driver-level multi-row INSERT is SQLite's fast path")
        user = await User.create({"username": "virk"})
        other = await User.create({"username": "nikk"})
        payload = [{"title": f"p{i}", "score": i} for i in range(1000)]
        with count_queries() as q:
            posts = await user.related("posts").create_many(payload)
        assert len(q.events) == 1
        assert len(inserts(q.events)) == 1
        assert q.events[0].in_transaction is False  # the parent has nothing to save
        assert q.events[0].model == "Post"
        assert all(post.user_id == user.id for post in posts)
        rows = await fp.from_("posts").select("id", "title", "user_id", "score").order_by("id")
        assert [(r["id"], r["title"], r["user_id"], r["score"]) for r in rows] == [
            (post.id, f"p{i}", user.id, i) for i, post in enumerate(posts)
        ]
        assert await other.related("posts").query().count_rows() == 0

    async def test_values_round_trip(self, fp: Database) -> None:
        kolkata = datetime(2024, 3, 5, 12, 0, 0, 250, tzinfo=KOLKATA)
        payload: list[dict[str, Any]] = [
            {
                "title": "utc",
                "happened_at": datetime(2024, 1, 2, 3, 4, 5, 6, UTC),
                "flag": True,
                "note": "x",
            },
            {"title": "kolkata", "happened_at": kolkata, "flag": False, "note": None},
            {"title": "nothing", "happened_at": None, "flag": None, "note": "z"},
        ]
        created = await Item.create_many(payload)
        found = await Item.query().order_by("id")
        assert [i.id for i in found] == [i.id for i in created]
        got = [(i.title, i.happened_at, i.flag, i.note) for i in found]
        assert got == [
            ("utc", datetime(2024, 1, 2, 3, 4, 5, 6, UTC), True, "x"),
            ("kolkata", datetime(2024, 3, 5, 6, 30, 0, 250, UTC), False, None),
            ("nothing", None, None, "z"),
        ]
        assert [type(i.flag) for i in found[:2]] == [bool, bool]
        for item in found[:2]:
            assert item.happened_at is not None and item.happened_at.tzinfo is UTC

    async def test_json_and_booleans_round_trip(self, fp: Database) -> None:
        payload: list[dict[str, Any]] = [
            {"username": "a", "meta": {"tags": ["x", "y"], "n": 1}, "is_active": True},
            {"username": "b", "meta": None, "is_active": False},
            {"username": "c", "meta": [1, 2, 3], "is_active": None},
        ]
        created = await User.create_many(payload)
        found = await User.query().order_by("id")
        assert [u.id for u in found] == [u.id for u in created]
        assert [(u.username, u.meta, u.is_active) for u in found] == [
            ("a", {"tags": ["x", "y"], "n": 1}, True),
            ("b", None, False),
            ("c", [1, 2, 3], None),
        ]

    async def test_quoted_column_names_in_the_insert(self, fp: Database) -> None:
        created = await Odd.create_many(
            [{"quoted": "q1", "spaced": "s1"}, {"quoted": "q2", "spaced": None}]
        )
        found = await Odd.query().order_by("id")
        assert [(o.id, o.quoted, o.spaced) for o in found] == [
            (created[0].id, "q1", "s1"),
            (created[1].id, "q2", None),
        ]

    async def test_before_hooks_run_before_the_insert(self, fp: Database) -> None:
        items = await HookedItem.create_many([{"title": "a"}, {"title": "b"}])
        assert [i.note for i in items] == ["hooked:a", "hooked:b"]
        rows = await fp.from_("fp_items").select("title", "note").order_by("id")
        assert rows == [
            {"title": "a", "note": "hooked:a"},
            {"title": "b", "note": "hooked:b"},
        ]

    async def test_mixed_shapes_keep_their_keys(self, fp: Database) -> None:
        payload: list[dict[str, Any]] = [
            {"title": "a"},
            {"title": "b"},
            {"title": "c", "note": "n"},
            {"title": "d", "note": "n"},
            {"title": "e"},
            {"title": "f", "flag": True},
        ]
        with count_queries() as q:
            items = await Item.create_many(payload)
        assert len(inserts(q.events)) == 4
        stored = await ids_by_title(fp)
        assert [i.id for i in items] == [stored[p["title"]] for p in payload]
        rows = await fp.from_("fp_items").select("title", "note", "flag").order_by("id")
        assert [(r["title"], r["note"]) for r in rows] == [
            ("a", None),
            ("b", None),
            ("c", "n"),
            ("d", "n"),
            ("e", None),
            ("f", None),
        ]

    async def test_a_payload_over_the_parameter_limit_is_split(
        self, fp: Database, dialect: str
    ) -> None:
        only_on(dialect, "sqlite", "the bound-parameter limit split is SQLite's fast path")
        total = 9000  # x 4 columns = 36,000 parameters > 32,766
        stamp = datetime(2024, 1, 1, tzinfo=UTC)
        payload = [
            {"title": f"t{i}", "happened_at": stamp, "flag": i % 2 == 0, "note": str(i)}
            for i in range(total)
        ]
        with count_queries() as q:
            items = await Item.create_many(payload)
        statements = inserts(q.events)
        assert len(statements) == 2
        per_statement = SQLITE_MAX_PARAMS // 4
        assert [len(e.bindings) for e in statements] == [
            per_statement * 4,
            (total - per_statement) * 4,
        ]
        assert all(e.in_transaction and e.model == "Item" for e in statements)
        stored = await ids_by_title(fp)
        assert len(stored) == total
        assert [i.id for i in items] == [stored[f"t{i}"] for i in range(total)]
        last = await Item.find_or_fail(items[-1].id)
        assert (last.title, last.flag, last.note, last.happened_at) == (
            f"t{total - 1}",
            False,
            str(total - 1),
            stamp,
        )

    async def test_rows_that_set_no_column(self, fp: Database) -> None:
        # No column to list: the rows go in as DEFAULT VALUES (SQLAlchemy's path), not as an
        # empty multi-row VALUES list.
        items = await Odd.create_many([{}, {}, {}])
        rows = await fp.from_("fp_odd").select("id").order_by("id")
        assert [r["id"] for r in rows] == [i.id for i in items]
        assert len({i.id for i in items}) == 3

    @pytest.mark.filterwarnings("ignore:Column 'fp_tokens.code' is marked")
    async def test_generated_keys_that_do_not_follow_insertion_order(
        self, fp: Database, dialect: str
    ) -> None:
        only_on(dialect, "sqlite", "a random text key default is written for SQLite here")
        # Only integer (rowid) keys rise with the rows; these take the row-ordered path.
        tokens = await Token.create_many([{"name": f"n{i}"} for i in range(20)])
        rows = await fp.from_("fp_tokens").select("code", "name")
        by_code = {r["code"]: r["name"] for r in rows}
        assert [by_code[t.code] for t in tokens] == [t.name for t in tokens]


class TestCreateManyAtomicity:
    async def test_a_duplicate_in_the_middle_inserts_nothing(
        self, fp: Database, dialect: str
    ) -> None:
        await Item.create({"title": "taken"})
        payload = [{"title": f"t{i}", "note": "x"} for i in range(50)]
        payload[25] = {"title": "taken", "note": "x"}
        with pytest.raises(IntegrityError) as caught:
            await Item.create_many(payload)
        error = caught.value
        assert error.sql is not None and "INSERT" in error.sql.upper()
        assert "fp_items" in error.sql
        assert error.original is not None
        if dialect == "sqlite":
            assert isinstance(error.original, sqlite3.IntegrityError)
            # The statement is the one multi-row INSERT rendered by lucid_orm.
            assert error.sql.count("(?, ?)") == 50
            assert len(error.bindings) == 100
        assert await ids_by_title(fp) == {"taken": (await Item.first_or_fail()).id}

    async def test_a_duplicate_in_the_second_statement_rolls_back_the_first(
        self, fp: Database, dialect: str
    ) -> None:
        only_on(dialect, "sqlite", "the bound-parameter limit split is SQLite's fast path")
        payload = [
            {"title": f"t{i}", "note": None, "flag": None, "happened_at": None} for i in range(9000)
        ]
        payload[8500] = dict(payload[10])  # in the second statement, duplicates the first
        with count_queries() as q, pytest.raises(IntegrityError) as caught:
            await Item.create_many(payload)
        assert len(inserts(q.events)) == 1  # the first statement ran and was reported
        assert caught.value.original is not None
        assert await fp.from_("fp_items").count_rows() == 0

    async def test_an_outer_transaction_rolled_back_leaves_nothing(self, fp: Database) -> None:
        trx = await db.transaction()
        try:
            items = await Item.create_many([{"title": f"t{i}"} for i in range(20)], client=trx)
            assert all(i.trx is trx for i in items)
            assert await trx.from_("fp_items").count_rows() == 20
        finally:
            await trx.rollback()
        assert all(i.trx is None for i in items)
        assert await fp.from_("fp_items").count_rows() == 0

    async def test_a_failure_inside_an_outer_transaction_keeps_its_other_writes(
        self, fp: Database
    ) -> None:
        async with db.transaction() as trx:
            await Item.create({"title": "kept"}, client=trx)
            with pytest.raises(IntegrityError):
                await Item.create_many(
                    [{"title": "a"}, {"title": "kept"}, {"title": "b"}], client=trx
                )
            await Item.create_many([{"title": "c"}, {"title": "d"}], client=trx)
        assert sorted(await ids_by_title(fp)) == ["c", "d", "kept"]


# -- 2. SQLite datetime binds ------------------------------------------------------------------

_STORED_TEXT = [
    pytest.param(datetime(2024, 3, 5, 6, 7, 8), "2024-03-05 06:07:08.000000", id="naive"),
    pytest.param(
        datetime(2024, 3, 5, 6, 7, 8, 123456), "2024-03-05 06:07:08.123456", id="naive-micro"
    ),
    pytest.param(datetime(2024, 3, 5, 6, 7, 8, tzinfo=UTC), "2024-03-05 06:07:08.000000", id="utc"),
    pytest.param(
        datetime(2024, 3, 5, 6, 7, 8, 5, tzinfo=UTC), "2024-03-05 06:07:08.000005", id="utc-micro"
    ),
    pytest.param(
        datetime(2024, 3, 5, 0, 10, 0, tzinfo=KOLKATA),
        "2024-03-04 18:40:00.000000",
        id="kolkata-previous-day",
    ),
    pytest.param(
        datetime(2024, 3, 5, 12, 0, 0, 999999, tzinfo=KOLKATA),
        "2024-03-05 06:30:00.999999",
        id="kolkata-micro",
    ),
    pytest.param(
        datetime(2024, 12, 31, 21, 0, 0, 1, tzinfo=timezone(timedelta(hours=-5))),
        "2025-01-01 02:00:00.000001",
        id="fixed-offset-next-year",
    ),
    pytest.param(
        datetime(2024, 3, 5, 6, 7, 8, 9, tzinfo=ZoneInfo("UTC")),
        "2024-03-05 06:07:08.000009",
        id="zoneinfo-utc",
    ),
]


class TestSqliteDatetimeText:
    @pytest.mark.parametrize(("value", "text"), _STORED_TEXT)
    async def test_stored_text_is_utc_with_microseconds(
        self, fp: Database, dialect: str, value: datetime, text: str
    ) -> None:
        only_on(dialect, "sqlite", "SQLite stores datetimes as text")
        created = await Item.create({"title": "one", "happened_at": value})
        many = await Item.create_many(
            [{"title": "many1", "happened_at": value}, {"title": "many2", "happened_at": value}]
        )
        updated = await Item.create({"title": "updated", "happened_at": None})
        updated.happened_at = value
        await updated.save()
        rows = await fp.raw_query(
            "select id, happened_at, typeof(happened_at) as kind from fp_items order by id"
        )
        assert [r["id"] for r in rows] == [created.id, many[0].id, many[1].id, updated.id]
        assert [(r["happened_at"], r["kind"]) for r in rows] == [(text, "text")] * 4
        expected = datetime.fromisoformat(text).replace(tzinfo=UTC)
        found = await Item.query().order_by("id")
        assert [i.happened_at for i in found] == [expected] * 4
        assert all(i.happened_at is not None and i.happened_at.tzinfo is UTC for i in found)

    async def test_where_compares_against_stored_rows(self, fp: Database) -> None:
        base = datetime(2024, 3, 5, 6, 30, tzinfo=UTC)  # = 12:00 in Kolkata
        await Item.create_many(
            [
                {"title": "before", "happened_at": base - timedelta(microseconds=1)},
                {"title": "at", "happened_at": base},
                {"title": "after", "happened_at": base + timedelta(microseconds=1)},
                {"title": "later", "happened_at": base + timedelta(days=1)},
            ]
        )
        same_instant = datetime(2024, 3, 5, 12, 0, tzinfo=KOLKATA)

        async def titles(*where: Any) -> list[str]:
            found = await Item.query().where(*where).order_by("id")
            return [i.title for i in found]

        assert await titles("happened_at", ">", same_instant) == ["after", "later"]
        assert await titles("happened_at", ">=", same_instant) == ["at", "after", "later"]
        assert await titles("happened_at", "<", same_instant) == ["before"]
        assert await titles("happened_at", same_instant) == ["at"]
        assert await titles("happened_at", base.replace(tzinfo=None)) == ["at"]
        between = await Item.query().where_between(
            "happened_at", [same_instant, datetime(2024, 3, 5, 23, 59, tzinfo=UTC)]
        )
        assert sorted(i.title for i in between) == ["after", "at"]


# -- 3. PostgreSQL timestamps read back aware UTC ----------------------------------------------


class TestPostgresTimestamps:
    async def test_timestamptz_and_timestamp_read_back_aware_utc(
        self, fp: Database, dialect: str
    ) -> None:
        only_on(dialect, "postgresql", "timestamptz is PostgreSQL's")
        written = [
            datetime(2024, 3, 5, 12, 0, 0, 1, tzinfo=KOLKATA),
            datetime(2024, 3, 5, 6, 30, 0, 2, tzinfo=UTC),
            datetime(2024, 3, 5, 6, 30, 0, 3),  # naive: UTC
            datetime(2024, 12, 31, 21, 0, tzinfo=timezone(timedelta(hours=-5))),
        ]
        expected = [
            datetime(2024, 3, 5, 6, 30, 0, 1, tzinfo=UTC),
            datetime(2024, 3, 5, 6, 30, 0, 2, tzinfo=UTC),
            datetime(2024, 3, 5, 6, 30, 0, 3, tzinfo=UTC),
            datetime(2025, 1, 1, 2, 0, tzinfo=UTC),
        ]
        one = await Stamp.create({"at_tz": written[0], "at_plain": written[0]})
        rest = await Stamp.create_many([{"at_tz": w, "at_plain": w} for w in written[1:]])
        ids = [one.id, *(s.id for s in rest)]

        def check(stamps: list[Stamp]) -> None:
            assert [s.id for s in stamps] == ids
            for stamp, want in zip(stamps, expected, strict=True):
                for value in (stamp.at_tz, stamp.at_plain):
                    assert value == want
                    assert value is not None and value.tzinfo is UTC
            assert not any(s.is_dirty for s in stamps)

        check(await Stamp.query().order_by("id"))
        check([await Stamp.find_or_fail(i) for i in ids])
        async with db.transaction() as trx:
            check(await Stamp.query(client=trx).order_by("id"))
        rows = await fp.raw_query(
            "select at_tz::text as tz, at_plain::text as plain from fp_stamps order by id"
        )
        assert rows[0] == {
            "tz": "2024-03-05 06:30:00.000001+00",
            "plain": "2024-03-05 06:30:00.000001",
        }

    async def test_filtering_a_timestamptz_with_an_aware_value(
        self, fp: Database, dialect: str
    ) -> None:
        only_on(dialect, "postgresql", "timestamptz is PostgreSQL's")
        base = datetime(2024, 3, 5, 6, 30, tzinfo=UTC)
        early, late = await Stamp.create_many(
            [{"at_tz": base, "at_plain": base}, {"at_tz": base + timedelta(hours=1)}]
        )
        same_instant = datetime(2024, 3, 5, 12, 0, tzinfo=KOLKATA)
        found = await Stamp.query().where("at_tz", ">", same_instant)
        assert [s.id for s in found] == [late.id]
        found = await Stamp.query().where("at_tz", same_instant)
        assert [s.id for s in found] == [early.id]
        found = await Stamp.query().where("at_plain", same_instant)
        assert [s.id for s in found] == [early.id]


# -- 4. preload keys: uncast ``= ANY($1)`` on PostgreSQL ---------------------------------------


def preload_selects(events: list[QueryEvent], table: str) -> list[QueryEvent]:
    return [e for e in events if f"FROM {table}" in e.sql and "WHERE" in e.sql]


def assert_uncast_any(events: list[QueryEvent]) -> None:
    assert events
    for event in events:
        assert "= ANY ($1)" in event.sql, event.sql
        assert "::" not in event.sql, event.sql
        assert len(event.bindings) == 1 and isinstance(event.bindings[0], list)


class TestPreloadKeys:
    async def test_integer_keys(self, fp: Database, dialect: str) -> None:
        virk, nikk, romain = await User.create_many(
            [{"username": "virk"}, {"username": "nikk"}, {"username": "romain"}]
        )
        await Post.create_many(
            [
                {"user_id": virk.id, "title": "v1"},
                {"user_id": nikk.id, "title": "n1"},
                {"user_id": virk.id, "title": "v2"},
                {"user_id": None, "title": "orphan"},
            ]
        )
        php, go = await Skill.create_many([{"name": "php"}, {"name": "go"}])
        await fp.table("skill_user").multi_insert(
            [
                {"user_id": virk.id, "skill_id": php.id},
                {"user_id": virk.id, "skill_id": go.id},
                {"user_id": romain.id, "skill_id": go.id},
            ]
        )
        with count_queries() as q:
            users = await User.query().preload("posts").preload("skills").order_by("id")
        assert [[p.title for p in sorted(u.posts, key=lambda p: p.id)] for u in users] == [
            ["v1", "v2"],
            ["n1"],
            [],
        ]
        assert [sorted(s.name or "" for s in u.skills) for u in users] == [
            ["go", "php"],
            [],
            ["go"],
        ]
        with count_queries() as q2:
            posts = await Post.query().preload("user").order_by("id")
        assert [(p.title, p.user.username if p.user else None) for p in posts] == [
            ("v1", "virk"),
            ("n1", "nikk"),
            ("v2", "virk"),
            ("orphan", None),
        ]
        if dialect == "postgresql":
            assert_uncast_any(preload_selects(q.events, "posts"))
            assert_uncast_any(preload_selects(q.events, "skills"))
            assert_uncast_any(preload_selects(q2.events, "users"))
            assert sorted(preload_selects(q2.events, "users")[0].bindings[0]) == sorted(
                [virk.id, nikk.id]
            )

    async def test_native_uuid_keys(self, fp: Database, dialect: str) -> None:
        only_on(dialect, "postgresql", "native uuid columns are PostgreSQL's")
        a1, a2, a3 = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        b1, b2, b3 = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        g1, g2 = uuid.uuid4(), uuid.uuid4()
        # Rows go in through SQLAlchemy Core here; test_native_uuid_crud writes through models.
        async with fp.engine().begin() as conn:
            await conn.execute(
                fp_authors.insert(),
                [{"id": a1, "name": "a1"}, {"id": a2, "name": "a2"}, {"id": a3, "name": "a3"}],
            )
            await conn.execute(
                fp_books.insert(),
                [
                    {"id": b1, "author_id": a1, "title": "b1"},
                    {"id": b2, "author_id": a2, "title": "b2"},
                    {"id": b3, "author_id": a1, "title": "b3"},
                ],
            )
            await conn.execute(
                fp_genres.insert(), [{"id": g1, "name": "g1"}, {"id": g2, "name": "g2"}]
            )
            await conn.execute(
                fp_book_genres.insert(),
                [
                    {"book_id": b1, "genre_id": g1},
                    {"book_id": b1, "genre_id": g2},
                    {"book_id": b3, "genre_id": g2},
                ],
            )
        with count_queries() as q:
            authors = await Author.query().preload("books").order_by("name")
            books = await Book.query().preload("author").preload("genres").order_by("title")
        assert [(a.id, sorted(b.title or "" for b in a.books)) for a in authors] == [
            (a1, ["b1", "b3"]),
            (a2, ["b2"]),
            (a3, []),
        ]
        assert all(isinstance(b.id, uuid.UUID) for a in authors for b in a.books)
        assert [(b.title, b.author.id if b.author else None) for b in books] == [
            ("b1", a1),
            ("b2", a2),
            ("b3", a1),
        ]
        assert [sorted(g.name or "" for g in b.genres) for b in books] == [
            ["g1", "g2"],
            [],
            ["g2"],
        ]
        assert_uncast_any(preload_selects(q.events, "fp_books"))
        assert_uncast_any(preload_selects(q.events, "fp_authors"))
        assert_uncast_any(preload_selects(q.events, "fp_genres"))

    async def test_native_uuid_crud(self, fp: Database, dialect: str) -> None:
        only_on(dialect, "postgresql", "native uuid columns are PostgreSQL's")
        # The default uuid.UUID type binds text without a cast: PostgreSQL types it as uuid.
        author = await Author.create({"id": uuid.uuid4(), "name": "a"})
        books = await author.related("books").create_many(
            [{"id": uuid.uuid4(), "title": "x"}, {"id": uuid.uuid4(), "title": "y"}]
        )
        found = await Author.find(author.id)
        assert found is not None and found.id == author.id
        found.name = "renamed"
        await found.save()
        assert (
            await Author.query()
            .where("id", author.id)
            .where_in("id", [author.id, uuid.uuid4()])
            .count_rows()
            == 1
        )
        assert sorted(b.title or "" for b in await author.related("books").query()) == ["x", "y"]
        assert {b.id for b in books} == {
            r["id"] for r in await fp.from_("fp_books").select("id").where("author_id", author.id)
        }
        rows = await fp.from_("fp_authors").select("name").where("id", author.id)
        assert [r["name"] for r in rows] == ["renamed"]
        await found.delete()
        assert await Author.find(author.id) is None


class TestBuilderDatetimesAndAliases:
    async def test_builder_writes_store_aware_datetimes_in_utc(
        self, fp: Database, dialect: str
    ) -> None:
        kolkata = datetime(2024, 3, 5, 12, 0, tzinfo=ZoneInfo("Asia/Kolkata"))
        utc = datetime(2024, 3, 5, 6, 30, tzinfo=UTC)
        item = await Item.create({"title": "t", "flag": True, "happened_at": utc})
        await Item.query().where("id", item.id).update({"happened_at": kolkata})
        again = await Item.find(item.id)
        assert again is not None and again.happened_at == utc
        # By name, without a model: the same instant, and where() finds it both ways.
        await fp.from_("fp_items").where("id", item.id).update({"happened_at": kolkata})
        again = await Item.find(item.id)
        assert again is not None and again.happened_at == utc
        hits = await fp.from_("fp_items").where("happened_at", kolkata).select("id")
        assert [r["id"] for r in hits] == [item.id]
        hits = await fp.from_("fp_items").where("happened_at", ">", kolkata).select("id")
        assert hits == []

    async def test_an_alias_named_before_its_join(self, fp: Database) -> None:
        a = await Item.create({"title": "a", "flag": True})
        await Item.create({"title": "b", "flag": False})
        query = (
            fp.from_("fp_items")
            .where("other.title", "a")
            .select("fp_items.id", "other.title as other_title")
            .join("fp_items as other", "fp_items.id", "other.id")
        )
        sql, _ = query.to_sql()
        assert sql.count("fp_items") == 4  # FROM, JOIN and the two qualified columns: no extra FROM
        rows = await query
        assert [(r["id"], r["other_title"]) for r in rows] == [(a.id, "a")]


# -- 5. hydration ------------------------------------------------------------------------------


class TestHydration:
    async def test_trx_is_set_inside_a_transaction_and_cleared_after_commit(
        self, fp: Database
    ) -> None:
        virk = await User.create({"username": "virk"})
        await Post.create_many([{"user_id": virk.id, "title": "a"}])
        async with db.transaction() as trx:
            plain = await User.query(client=trx)
            counted = await User.query(client=trx).with_count("posts")
            preloaded = await User.query(client=trx).preload("posts")
            loaded = [plain[0], counted[0], preloaded[0], preloaded[0].posts[0]]
            assert [m.trx for m in loaded] == [trx] * 4
        assert [m.trx for m in loaded] == [None] * 4
        outside = await User.query().with_count("posts")
        assert outside[0].trx is None

    async def test_with_count_lands_in_extras_and_nothing_is_dirty(self, fp: Database) -> None:
        virk, nikk = await User.create_many(
            [{"username": "virk", "points": 1}, {"username": "nikk", "points": 2}]
        )
        await Post.create_many([{"user_id": virk.id, "title": t} for t in "abc"])
        users = await User.query().with_count("posts").order_by("id")
        assert [u.extras for u in users] == [{"posts_count": 3}, {"posts_count": 0}]
        first = users[0]
        assert first.dirty == {}
        assert "posts_count" not in first.original
        assert "posts_count" not in first.attributes
        assert first.original["username"] == "virk"
        first.points = 10
        assert first.dirty == {"points": 10}
        with count_queries() as q:
            await first.save()
        assert len(q.events) == 1
        assert "points" in q.events[0].sql and "username" not in q.events[0].sql
        assert first.dirty == {}
        assert first.original["points"] == 10
        assert users[1].dirty == {}
        assert (await User.find_or_fail(virk.id)).points == 10
        assert (await User.find_or_fail(nikk.id)).points == 2

    async def test_columns_whose_names_need_quoting(self, fp: Database, dialect: str) -> None:
        first = await Odd.create({"quoted": "q'1", "spaced": "s 1"})
        await Odd.create({"quoted": None, "spaced": "s2"})
        found = await Odd.query().order_by("id")
        assert [(o.quoted, o.spaced) for o in found] == [("q'1", "s 1"), (None, "s2")]
        assert all(o.dirty == {} for o in found)
        # A raw select naming the columns itself.
        quote = "`" if dialect == "mysql" else '"'
        raw = (
            await Odd.query()
            .select(fp.raw(f"id, {quote}it's{quote}, {quote}a b{quote}"))
            .order_by("id")
        )
        assert [(o.id, o.quoted, o.spaced, o.extras) for o in raw] == [
            (first.id, "q'1", "s 1", {}),
            (found[1].id, None, "s2", {}),
        ]
        assert raw[0].original == {"id": first.id, "quoted": "q'1", "spaced": "s 1"}
        # An extra whose name needs quoting (and escaping in Python source).
        odd_name = 'it\'s "x" \\ y'
        extras = await Odd.query().select("id", {odd_name: "id"}).order_by("id")
        assert [o.extras for o in extras] == [{odd_name: first.id}, {odd_name: found[1].id}]
        assert [o.attributes for o in extras] == [{"id": first.id}, {"id": found[1].id}]
        raw[0].quoted = "changed"
        assert raw[0].dirty == {"quoted": "changed"}
        await raw[0].save()
        assert (await Odd.find_or_fail(first.id)).quoted == "changed"

    async def test_a_self_join(self, fp: Database) -> None:
        parent = await User.create({"username": "parent"})
        child1, child2 = await User.create_many(
            [
                {"username": "child1", "parent_id": parent.id},
                {"username": "child2", "parent_id": parent.id},
            ]
        )
        joined = (
            await User.query()
            .join("users as u2", "users.parent_id", "u2.id")
            .select("users.*", "u2.username as parent_name")
            .order_by("users.id")
        )
        assert [(u.id, u.username, u.parent_id, u.extras) for u in joined] == [
            (child1.id, "child1", parent.id, {"parent_name": "parent"}),
            (child2.id, "child2", parent.id, {"parent_name": "parent"}),
        ]
        assert all(u.dirty == {} and u.is_persisted for u in joined)
        # Both sides' columns under the same names: each instance stays consistent (its
        # values are its original, one row's worth).
        both = (
            await User.query()
            .join("users as u2", "users.parent_id", "u2.id")
            .select("users.*", "u2.*")
        )
        assert len(both) == 2
        names = {u.id: u.username for u in [parent, child1, child2]}
        for user in both:
            assert user.dirty == {}
            assert user.original == user.attributes
            assert names[user.id] == user.username

    async def test_pivot_extras_survive_every_use_of_the_instance(self, fp: Database) -> None:
        # Pivot values are read from the row only when asked for: they must be the same
        # before and after the instance's original, a change, a save, update_many and refresh.
        virk, romain = await User.create_many([{"username": "virk"}, {"username": "romain"}])
        php, go = await Skill.create_many([{"name": "php"}, {"name": "go"}])
        await fp.table("skill_user").multi_insert(
            [
                {"user_id": virk.id, "skill_id": php.id, "proficiency": "high"},
                {"user_id": virk.id, "skill_id": go.id, "proficiency": "low"},
                {"user_id": romain.id, "skill_id": go.id, "proficiency": None},
            ]
        )
        users = (
            await User.query()
            .preload("skills", lambda q: q.pivot_columns(["proficiency"]))
            .order_by("id")
        )
        got = [sorted(u.skills, key=lambda s: s.id) for u in users]
        assert [[(s.name, s.extras) for s in skills] for skills in got] == [
            [
                (
                    "php",
                    {
                        "pivot_user_id": virk.id,
                        "pivot_skill_id": php.id,
                        "pivot_proficiency": "high",
                    },
                ),
                (
                    "go",
                    {"pivot_user_id": virk.id, "pivot_skill_id": go.id, "pivot_proficiency": "low"},
                ),
            ],
            [
                (
                    "go",
                    {
                        "pivot_user_id": romain.id,
                        "pivot_skill_id": go.id,
                        "pivot_proficiency": None,
                    },
                ),
            ],
        ]
        (v_php, v_go), (r_go,) = got
        assert v_go is not r_go
        for skill in (v_php, v_go, r_go):
            assert skill.is_persisted and not skill.is_dirty and skill.dirty == {}
            assert skill.original == skill.attributes == {"id": skill.id, "name": skill.name}
        assert v_php.to_dict() == {
            "id": php.id,
            "name": "php",
            "extras": {
                "pivot_user_id": virk.id,
                "pivot_skill_id": php.id,
                "pivot_proficiency": "high",
            },
        }
        # A change: dirty, saved, the extras untouched.
        v_php.name = "PHP"
        assert v_php.dirty == {"name": "PHP"}
        assert v_php.original["name"] == "php"
        await v_php.save()
        assert v_php.dirty == {} and v_php.original["name"] == "PHP"
        assert v_php.extras["pivot_proficiency"] == "high"
        # Written to: the dict the next reads see.
        v_go.extras["note"] = 1
        assert v_go.extras == {
            "pivot_user_id": virk.id,
            "pivot_skill_id": go.id,
            "pivot_proficiency": "low",
            "note": 1,
        }
        assert v_go.to_dict()["extras"]["note"] == 1
        # update_many replaces the hydrated row its original was kept in.
        r_go.name = "golang"
        await Skill.update_many([r_go])
        assert r_go.dirty == {} and r_go.original["name"] == "golang"
        assert r_go.extras == {
            "pivot_user_id": romain.id,
            "pivot_skill_id": go.id,
            "pivot_proficiency": None,
        }
        # refresh re-reads the columns only.
        await v_go.refresh()
        assert v_go.name == "golang" and v_go.dirty == {}
        assert v_go.extras["pivot_proficiency"] == "low" and v_go.extras["note"] == 1

    async def test_extras_before_the_columns(self, fp: Database) -> None:
        virk = await User.create({"username": "virk", "points": 3})
        (found,) = await User.query().select({"handle": "username"}, "id", "points")
        assert found.extras == {"handle": "virk"}
        assert found.attributes == {"id": virk.id, "points": 3}
        assert found.original == {"id": virk.id, "points": 3}
        assert found.dirty == {} and found.is_persisted
        found.points = 4
        assert found.dirty == {"points": 4}
        await found.save()
        assert found.extras == {"handle": "virk"}
        assert (await User.find_or_fail(virk.id)).points == 4

    async def test_streamed_instances_keep_their_extras(self, fp: Database) -> None:
        virk, _ = await User.create_many([{"username": "virk"}, {"username": "nikk"}])
        await Post.create_many([{"user_id": virk.id, "title": t} for t in "ab"])
        streamed = [
            (u.username, u.extras, u.dirty, u.is_persisted)
            async for u in User.query().with_count("posts").order_by("id").stream()
        ]
        assert streamed == [
            ("virk", {"posts_count": 2}, {}, True),
            ("nikk", {"posts_count": 0}, {}, True),
        ]


# -- 6. preload matching -----------------------------------------------------------------------


class TestPreloadMatching:
    async def test_parents_sharing_a_key_value_get_their_own_lists(self, fp: Database) -> None:
        a, b, c, d = await User.create_many(
            [
                {"username": "a", "points": 10},
                {"username": "b", "points": 10},
                {"username": "c", "points": 20},
                {"username": "d", "points": None},
            ]
        )
        await Post.create_many(
            [
                {"title": "p1", "score": 10},
                {"title": "p2", "score": 10},
                {"title": "p3", "score": 30},
            ]
        )
        users = await User.query().preload("scored_posts").order_by("id")
        assert [u.id for u in users] == [a.id, b.id, c.id, d.id]
        lists = [u.scored_posts for u in users]
        assert [sorted(p.title or "" for p in posts) for posts in lists] == [
            ["p1", "p2"],
            ["p1", "p2"],
            [],
            [],
        ]
        assert lists[0] is not lists[1]
        assert lists[2] is not lists[3]
        lists[0].pop()
        assert len(lists[1]) == 2
        lists[1].clear()
        assert len(lists[0]) == 1
        lists[2].append(lists[0][0])
        assert lists[3] == []
