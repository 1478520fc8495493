"""The schema builder on real tables of every dialect: each column kind and modifier, ALTERs,
constraints (foreign keys enforced), table operations, raw SQL, ``defer`` ordering and dry
runs. Tables are prefixed ``mig_`` and dropped after each test."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from lucid_orm import IntegrityError, LucidError, QueryError
from lucid_orm.database import Database
from lucid_orm.schema import Schema, TableBuilder
from tests.helpers import count_queries

# Children before parents, so they drop in this order.
TABLES = [
    "mig_comments",
    "mig_posts",
    "mig_profiles",
    "mig_things",
    "mig_renamed",
    "mig_users",
    "mig_pairs",
    "mig_plain",
]


@pytest.fixture
async def db(database: Database) -> AsyncIterator[Database]:
    await _drop_all(database)
    try:
        yield database
    finally:
        await _drop_all(database)


async def _drop_all(database: Database) -> None:
    schema = Schema()
    for name in TABLES:
        schema.drop_table_if_exists(name)
    await schema.execute(database.connection())


async def run(database: Database, build: Callable[[Schema], Any]) -> list[str]:
    schema = Schema()
    build(schema)
    return await schema.execute(database.connection())


async def inspect(database: Database, fn: Callable[[Any], Any]) -> Any:
    async with database.engine().connect() as conn:
        return await conn.run_sync(lambda c: fn(sa.inspect(c)))


async def table_names(database: Database) -> set[str]:
    names: list[str] = await inspect(database, lambda i: i.get_table_names())
    return {n for n in names if n.startswith("mig_")}


async def rows(database: Database, table: str, order: str = "id") -> list[dict[str, Any]]:
    """The rows of ``table`` read through a reflected (typed) table."""
    async with database.engine().connect() as conn:
        reflected = await conn.run_sync(lambda c: sa.Table(table, sa.MetaData(), autoload_with=c))
        result = await conn.execute(sa.select(reflected).order_by(reflected.c[order]))
        return [dict(r) for r in result.mappings()]


async def insert(database: Database, table: str, *values: dict[str, Any]) -> None:
    async with database.engine().begin() as conn:
        reflected = await conn.run_sync(lambda c: sa.Table(table, sa.MetaData(), autoload_with=c))
        await conn.execute(sa.insert(reflected), list(values))


def users(t: TableBuilder) -> None:
    t.increments("id")
    t.string("email", 100).not_nullable().unique()
    t.string("name").nullable()


class TestColumnKinds:
    async def test_every_kind_round_trips(self, db: Database, dialect: str) -> None:
        def build(t: TableBuilder) -> None:
            t.increments("id")
            t.integer("i")
            t.big_integer("big")
            t.small_integer("small")
            t.tiny_integer("tiny")
            t.string("s", 20)
            t.text("body")
            t.text("long_body", "longtext")
            t.boolean("flag")
            t.float("f")
            t.double("d")
            t.decimal("price", 10, 3)
            t.date("born_on")
            t.time("at")
            t.datetime("happened_at")
            t.timestamp("seen_at", use_tz=True)
            t.json("meta")
            t.jsonb("doc")
            t.uuid("token")
            t.binary("blob")
            t.enum("role", ["admin", "member"])
            t.specific_type("code", "varchar(12)")

        await run(db, lambda s: s.create_table("mig_things", build))
        token = str(uuid.uuid4())
        seen = dt.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=dt.UTC)
        await insert(
            db,
            "mig_things",
            {
                "i": 2_000_000_000,
                "big": 9_000_000_000_000,
                "small": 32_000,
                "tiny": 100,
                "s": "héllo",
                "body": "x" * 1000,
                "long_body": "y" * 70_000,
                "flag": True,
                "f": 1.5,
                "d": 2.25,
                "price": Decimal("1234567.125"),
                "born_on": dt.date(1990, 1, 2),
                "at": dt.time(13, 14, 15),
                "happened_at": dt.datetime(2024, 1, 2, 3, 4, 5, 678901),
                "seen_at": seen if dialect == "postgresql" else seen.replace(tzinfo=None),
                # MariaDB's JSON is LONGTEXT with a CHECK: its reflected type takes text.
                "meta": json.dumps({"a": [1, 2]}) if dialect == "mysql" else {"a": [1, 2]},
                "doc": json.dumps({"b": {"c": True}}) if dialect == "mysql" else {"b": {"c": True}},
                "token": token,
                "blob": b"\x00\x01\xff",
                "role": "admin",
                "code": "ABC",
            },
        )
        (row,) = await rows(db, "mig_things")
        assert isinstance(row["id"], int)
        assert (row["i"], row["big"], row["small"], row["tiny"]) == (
            2_000_000_000,
            9_000_000_000_000,
            32_000,
            100,
        )
        assert (row["s"], row["body"], row["long_body"]) == ("héllo", "x" * 1000, "y" * 70_000)
        assert bool(row["flag"]) is True
        assert row["f"] == pytest.approx(1.5)
        assert row["d"] == pytest.approx(2.25)
        assert Decimal(row["price"]) == Decimal("1234567.125")
        assert row["born_on"] == dt.date(1990, 1, 2)
        assert row["at"] in (dt.time(13, 14, 15), dt.timedelta(hours=13, minutes=14, seconds=15))
        assert row["happened_at"] == dt.datetime(2024, 1, 2, 3, 4, 5, 678901)
        assert row["seen_at"].replace(tzinfo=dt.UTC) == seen
        for key, expected in (("meta", {"a": [1, 2]}), ("doc", {"b": {"c": True}})):
            value = row[key]
            assert (json.loads(value) if isinstance(value, str) else value) == expected
        assert str(row["token"]) == token
        assert bytes(row["blob"]) == b"\x00\x01\xff"
        assert (row["role"], row["code"]) == ("admin", "ABC")

    async def test_native_types_per_dialect(self, db: Database, dialect: str) -> None:
        def build(t: TableBuilder) -> None:
            t.increments("id")
            t.timestamp("seen_at", use_tz=True)
            t.jsonb("doc")
            t.uuid("token")
            t.integer("count").unsigned()

        await run(db, lambda s: s.create_table("mig_things", build))
        types = {
            c["name"]: c["type"] for c in await inspect(db, lambda i: i.get_columns("mig_things"))
        }
        if dialect == "postgresql":
            assert types["seen_at"].timezone is True
            assert (str(types["doc"]), str(types["token"])) == ("JSONB", "UUID")
        elif dialect == "mysql":
            assert str(types["seen_at"]) == "DATETIME" and types["seen_at"].fsp == 6
            assert types["count"].unsigned and types["id"].unsigned

    async def test_increments_and_big_increments_assign_keys(self, db: Database) -> None:
        await run(
            db,
            lambda s: s.create_table(
                "mig_plain", lambda t: (t.big_increments("id"), t.string("x"))
            ),
        )
        await run(
            db,
            lambda s: s.create_table("mig_users", lambda t: (t.increments(), t.string("email"))),
        )
        await db.table("mig_users").multi_insert([{"email": "a"}, {"email": "b"}])
        ids = [r["id"] for r in await db.from_("mig_users").order_by("id")]
        assert len(set(ids)) == 2 and ids[0] < ids[1]
        await db.table("mig_plain").insert({"x": "auto"})
        await db.table("mig_plain").insert({"id": 2**40, "x": "big"})
        found = {r["x"]: r["id"] for r in await db.from_("mig_plain")}
        assert isinstance(found["auto"], int) and found["big"] == 2**40


class TestModifiers:
    async def test_not_nullable_and_nullable(self, db: Database) -> None:
        await run(db, lambda s: s.create_table("mig_users", users))
        await db.table("mig_users").insert({"email": "a@x.io"})  # name is nullable
        with pytest.raises(IntegrityError):
            await db.table("mig_users").insert({"name": "no email"})

    async def test_unique(self, db: Database) -> None:
        await run(db, lambda s: s.create_table("mig_users", users))
        await db.table("mig_users").insert({"email": "a@x.io"})
        with pytest.raises(IntegrityError):
            await db.table("mig_users").insert({"email": "a@x.io"})

    async def test_defaults(self, db: Database, dialect: str) -> None:
        def build(t: TableBuilder) -> None:
            t.increments("id")
            t.string("status").default_to("draft")
            t.integer("views").not_nullable().default_to(0)
            t.float("ratio").default_to(0.5)
            t.boolean("active").default_to(True)
            t.boolean("hidden").default_to(False)
            t.string("note").default_to(None)
            t.timestamp("stamped_at").default_to(t_now)
            t.integer("answer").default_to(db.raw("42"))
            t.timestamps(default_to_now=True)

        t_now = Schema().now()
        await run(db, lambda s: s.create_table("mig_things", build))
        await db.table("mig_things").insert({"note": "x"})
        (row,) = await rows(db, "mig_things")
        assert (row["status"], row["views"], row["ratio"], row["answer"]) == ("draft", 0, 0.5, 42)
        assert bool(row["active"]) is True and bool(row["hidden"]) is False
        for key in ("stamped_at", "created_at", "updated_at"):
            assert isinstance(row[key], dt.datetime)

    async def test_primary_unsigned_comment_index(self, db: Database, dialect: str) -> None:
        def build(t: TableBuilder) -> None:
            t.string("code", 10).primary()
            t.integer("stock").unsigned().comment("units on hand").index()

        await run(db, lambda s: s.create_table("mig_things", build))
        pk = await inspect(db, lambda i: i.get_pk_constraint("mig_things"))
        assert pk["constrained_columns"] == ["code"]
        indexes = await inspect(db, lambda i: i.get_indexes("mig_things"))
        assert "ix_mig_things_stock" in {ix["name"] for ix in indexes}
        columns = {c["name"]: c for c in await inspect(db, lambda i: i.get_columns("mig_things"))}
        if dialect != "sqlite":
            assert columns["stock"]["comment"] == "units on hand"
        await db.table("mig_things").insert({"code": "a", "stock": 1})
        with pytest.raises(IntegrityError):
            await db.table("mig_things").insert({"code": "a", "stock": 2})
        if dialect == "mysql":
            with pytest.raises(QueryError):
                await db.table("mig_things").insert({"code": "b", "stock": -1})

    async def test_enum_is_checked(self, db: Database) -> None:
        await run(
            db,
            lambda s: s.create_table(
                "mig_users", lambda t: (t.increments(), t.enum("role", ["admin", "member"]))
            ),
        )
        await db.table("mig_users").insert({"role": "member"})
        with pytest.raises(IntegrityError):
            await db.table("mig_users").insert({"role": "owner"})


class TestForeignKeys:
    async def create(self, db: Database, rule: str = "CASCADE") -> None:
        def posts(t: TableBuilder) -> None:
            t.increments("id")
            t.integer("user_id").unsigned().references("mig_users.id").on_delete(rule)
            t.string("title").nullable()

        await run(db, lambda s: s.create_table("mig_users", users).create_table("mig_posts", posts))

    async def test_bad_reference_is_rejected(self, db: Database) -> None:
        await self.create(db)
        with pytest.raises(IntegrityError):
            await db.table("mig_posts").insert({"user_id": 12345})

    async def test_on_delete_cascade_and_set_null(self, db: Database) -> None:
        await self.create(db)
        await db.table("mig_users").insert({"email": "a@x.io"})
        (user,) = await db.from_("mig_users")
        await db.table("mig_posts").insert({"user_id": user["id"], "title": "t"})
        await db.from_("mig_users").where("id", user["id"]).delete()
        assert await db.from_("mig_posts") == []

    async def test_foreign_in_table_and_on_update(self, db: Database) -> None:
        def profiles(t: TableBuilder) -> None:
            t.increments("id")
            t.integer("user_id").unsigned().nullable()
            t.foreign("user_id").references("id").in_table("mig_users").on_delete(
                "set null"
            ).on_update("cascade")

        await run(
            db, lambda s: s.create_table("mig_users", users).create_table("mig_profiles", profiles)
        )
        fks = await inspect(db, lambda i: i.get_foreign_keys("mig_profiles"))
        assert [(fk["name"], fk["referred_table"]) for fk in fks] == [
            ("fk_mig_profiles_user_id", "mig_users")
        ]
        await db.table("mig_users").insert({"email": "a@x.io"})
        (user,) = await db.from_("mig_users")
        await db.table("mig_profiles").insert({"user_id": user["id"]})
        await db.from_("mig_users").delete()
        assert [r["user_id"] for r in await db.from_("mig_profiles")] == [None]

    async def test_invalid_rule_and_missing_table(self) -> None:
        with pytest.raises(LucidError) as info:
            TableBuilder("t", False).integer("x").on_delete("explode")
        assert info.value.code == "E_INVALID_ARGUMENT"
        schema = Schema().create_table("mig_posts", lambda t: t.integer("x").references("id"))
        with pytest.raises(LucidError, match=r'references\("users\.id"\)'):
            _compile(schema)


def _compile(schema: Schema) -> None:
    """Build the DDL of a queued create_table without a database."""
    from alembic.migration import MigrationContext
    from alembic.operations import Operations
    from sqlalchemy.dialects import sqlite

    ctx = MigrationContext.configure(dialect=sqlite.dialect(), opts={"as_sql": True})
    for op in schema._queue:
        op(Operations(ctx), "sqlite")  # type: ignore[operator]


class TestCompositeKeysAndIndexes:
    async def test_composite_primary_unique_and_index(self, db: Database) -> None:
        def pairs(t: TableBuilder) -> None:
            t.integer("a")
            t.integer("b")
            t.string("label")
            t.primary(["a", "b"])
            t.unique(["label", "a"])
            t.index(["b", "label"], "pairs_by_b")

        await run(db, lambda s: s.create_table("mig_pairs", pairs))
        pk = await inspect(db, lambda i: i.get_pk_constraint("mig_pairs"))
        assert sorted(pk["constrained_columns"]) == ["a", "b"]
        indexes = {ix["name"] for ix in await inspect(db, lambda i: i.get_indexes("mig_pairs"))}
        assert "pairs_by_b" in indexes
        await db.table("mig_pairs").insert({"a": 1, "b": 1, "label": "x"})
        with pytest.raises(IntegrityError):
            await db.table("mig_pairs").insert({"a": 1, "b": 1, "label": "y"})
        with pytest.raises(IntegrityError):
            await db.table("mig_pairs").insert({"a": 1, "b": 2, "label": "x"})

    async def test_primary_key_declared_twice(self, db: Database) -> None:
        schema = Schema().create_table("mig_pairs", lambda t: (t.increments(), t.primary(["id"])))
        with pytest.raises(LucidError, match="primary key twice"):
            await schema.execute(db.connection())

    async def test_create_table_if_not_exists(self, db: Database) -> None:
        def build(t: TableBuilder) -> None:
            t.increments()
            t.string("email").index()

        await run(db, lambda s: s.create_table_if_not_exists("mig_users", build))
        await run(db, lambda s: s.create_table_if_not_exists("mig_users", build))
        assert "mig_users" in await table_names(db)


class TestAlterTable:
    async def test_add_rename_change_drop_columns(self, db: Database, dialect: str) -> None:
        def build(t: TableBuilder) -> None:
            t.increments("id")
            t.string("email", 50).not_nullable()
            t.string("bio").nullable()
            t.integer("legacy")
            t.timestamps()

        await run(db, lambda s: s.create_table("mig_users", build))
        await db.table("mig_users").insert({"email": "a@x.io", "bio": "hi", "legacy": 1})

        def alter(t: TableBuilder) -> None:
            t.string("nickname").not_nullable().default_to("anon")
            t.rename_column("bio", "about")
            t.text("email").not_nullable().alter()
            t.drop_column("legacy")
            t.drop_timestamps()

        await run(db, lambda s: s.alter_table("mig_users", alter))
        columns = {c["name"]: c for c in await inspect(db, lambda i: i.get_columns("mig_users"))}
        assert set(columns) == {"id", "email", "about", "nickname"}
        assert columns["email"]["nullable"] is False
        assert "TEXT" in str(columns["email"]["type"]).upper()
        (row,) = await db.from_("mig_users")
        assert (row["email"], row["about"], row["nickname"]) == ("a@x.io", "hi", "anon")
        await db.table("mig_users").insert({"email": "x" * 300})  # TEXT now

        # The table alias and a nullable change.
        await run(db, lambda s: s.table("mig_users", lambda t: t.text("email").alter()))
        await db.table("mig_users").insert({"email": None})

    async def test_add_and_drop_constraints(self, db: Database) -> None:
        await run(
            db,
            lambda s: s.create_table("mig_users", users).create_table(
                "mig_posts", lambda t: (t.increments(), t.string("slug"))
            ),
        )

        def add(t: TableBuilder) -> None:
            t.integer("user_id").unsigned().nullable().references("mig_users.id")
            t.integer("rank").index()
            t.unique(["slug"])

        await run(db, lambda s: s.alter_table("mig_posts", add))
        with pytest.raises(IntegrityError):
            await db.table("mig_posts").insert({"user_id": 999, "slug": "a"})
        await db.table("mig_posts").insert({"slug": "a"})
        with pytest.raises(IntegrityError):
            await db.table("mig_posts").insert({"slug": "a"})
        indexes = {ix["name"] for ix in await inspect(db, lambda i: i.get_indexes("mig_posts"))}
        assert "ix_mig_posts_rank" in indexes

        def drop(t: TableBuilder) -> None:
            t.drop_foreign("user_id")
            t.drop_unique("slug")
            t.drop_index("rank")

        await run(db, lambda s: s.alter_table("mig_posts", drop))
        await db.table("mig_posts").insert({"user_id": 999, "slug": "a"})  # both gone
        indexes = {ix["name"] for ix in await inspect(db, lambda i: i.get_indexes("mig_posts"))}
        assert "ix_mig_posts_rank" not in indexes

        # unique() / foreign() added on existing columns of a table, and dropped by name.
        await db.from_("mig_posts").delete()
        await run(
            db,
            lambda s: s.alter_table(
                "mig_users", lambda t: t.unique(["name"], "users_name_unique")
            ).alter_table("mig_posts", lambda t: t.foreign("user_id").references("mig_users.id")),
        )
        with pytest.raises(IntegrityError):
            await db.table("mig_posts").insert({"user_id": 999, "slug": "b"})
        await db.table("mig_users").insert({"email": "a", "name": "same"})
        with pytest.raises(IntegrityError):
            await db.table("mig_users").insert({"email": "b", "name": "same"})
        await run(
            db,
            lambda s: s.alter_table(
                "mig_users", lambda t: t.drop_unique("name", name="users_name_unique")
            ),
        )
        await db.table("mig_users").insert({"email": "b", "name": "same"})

    async def test_column_unique_dropped_by_column(self, db: Database) -> None:
        await run(db, lambda s: s.create_table("mig_users", users))
        await run(db, lambda s: s.alter_table("mig_users", lambda t: t.drop_unique("email")))
        await db.table("mig_users").multi_insert([{"email": "a"}, {"email": "a"}])

    async def test_primary_key_dropped_and_replaced(self, db: Database) -> None:
        await run(
            db,
            lambda s: s.create_table(
                "mig_pairs", lambda t: (t.integer("a"), t.integer("b"), t.primary(["a", "b"]))
            ),
        )
        await run(
            db,
            lambda s: s.alter_table("mig_pairs", lambda t: (t.drop_primary(), t.primary(["a"]))),
        )
        pk = await inspect(db, lambda i: i.get_pk_constraint("mig_pairs"))
        assert pk["constrained_columns"] == ["a"]

    async def test_altering_a_referenced_table_keeps_the_rows_that_reference_it(
        self, db: Database
    ) -> None:
        # On SQLite the table is copied and the old one dropped: with foreign keys on, that
        # DROP would fire ON DELETE CASCADE and empty mig_posts.
        await TestForeignKeys().create(db)
        await db.table("mig_users").insert({"email": "a@x.io"})
        (user,) = await db.from_("mig_users")
        await db.table("mig_posts").insert({"user_id": user["id"], "title": "kept"})
        await run(db, lambda s: s.alter_table("mig_users", lambda t: t.rename_column("name", "n")))
        assert [r["title"] for r in await db.from_("mig_posts")] == ["kept"]
        with pytest.raises(IntegrityError):
            await db.table("mig_posts").insert({"user_id": 12345})

    async def test_sqlite_refuses_a_cascading_copy_inside_a_transaction(
        self, db: Database, dialect: str
    ) -> None:
        if dialect != "sqlite":
            pytest.skip("SQLite's table copies only")
        await TestForeignKeys().create(db)
        async with db.transaction() as trx:
            schema = Schema().alter_table("mig_users", lambda t: t.drop_column("name"))
            with pytest.raises(LucidError) as info:
                await schema.execute(trx)
        assert info.value.code == "E_UNSAFE_SQLITE_ALTER"
        assert "ON DELETE CASCADE" in str(info.value) and "mig_posts.user_id" in str(info.value)


class TestTables:
    async def test_drop_and_rename(self, db: Database) -> None:
        await run(db, lambda s: s.create_table("mig_users", users))
        await db.table("mig_users").insert({"email": "a@x.io"})
        await run(db, lambda s: s.rename_table("mig_users", "mig_renamed"))
        assert [r["email"] for r in await db.from_("mig_renamed")] == ["a@x.io"]
        await run(db, lambda s: s.drop_table("mig_renamed").drop_table_if_exists("mig_renamed"))
        assert await table_names(db) == set()
        with pytest.raises(QueryError):
            await run(db, lambda s: s.drop_table("mig_renamed"))
        with pytest.raises(QueryError, match="mig_renamed"):
            await run(db, lambda s: s.alter_table("mig_renamed", lambda t: t.drop_column("x")))

    async def test_raw(self, db: Database) -> None:
        await run(
            db,
            lambda s: (
                s.raw("create table mig_plain (id integer primary key, note varchar(20))")
                .raw("insert into mig_plain (id, note) values (?, ?)", [1, "a:b ? c"])
                .raw("insert into mig_plain (id, note) values (2, 'it''s :not a bind?')")
            ),
        )
        notes = [r["note"] for r in await db.from_("mig_plain").order_by("id")]
        assert notes == ["a:b ? c", "it's :not a bind?"]

    async def test_defer_runs_in_order(self, db: Database) -> None:
        seen: list[int] = []

        async def seed(client: Any) -> None:
            seen.append(len(await client.from_("mig_users")))
            await client.table("mig_users").insert({"email": "seeded"})

        def count(client: Any) -> None:  # a plain function works too
            seen.append(-1)

        schema = (
            Schema()
            .create_table("mig_users", users)
            .defer(seed)
            .alter_table("mig_users", lambda t: t.string("role").not_nullable().default_to("x"))
            .defer(count)
        )
        await schema.execute(db.connection())
        assert seen == [0, -1]
        assert [(r["email"], r["role"]) for r in await db.from_("mig_users")] == [("seeded", "x")]

    async def test_defer_inside_a_transaction_rolls_back_with_it(
        self, db: Database, dialect: str
    ) -> None:
        if dialect == "mysql":
            pytest.skip("MySQL commits DDL implicitly")
        with pytest.raises(QueryError):
            async with db.transaction() as trx:
                schema = (
                    Schema()
                    .create_table("mig_users", users)
                    .defer(lambda c: c.table("mig_users").insert({"email": "a"}))
                    .raw("select * from mig_missing_table")
                )
                await schema.execute(trx)
        assert await table_names(db) == set()

    async def test_with_schema_on_postgresql(self, db: Database, dialect: str) -> None:
        if dialect != "postgresql":
            pytest.skip("schemas are a PostgreSQL feature here")
        try:
            await run(
                db,
                lambda s: (
                    s.create_schema_if_not_exists("mig_space")
                    .with_schema("mig_space")
                    .create_table("mig_users", users)
                ),
            )
            await db.table("mig_space.mig_users").insert({"email": "a"})
            assert [r["email"] for r in await db.from_("mig_space.mig_users")] == ["a"]
        finally:
            await run(db, lambda s: s.drop_schema_if_exists("mig_space", cascade=True))


class TestDryRun:
    async def test_create_returns_sql_and_changes_nothing(self, db: Database) -> None:
        schema = (
            Schema()
            .create_table("mig_users", users)
            .raw("select 1")
            .defer(lambda c: None)
            .rename_table("mig_users", "mig_renamed")
        )
        with count_queries() as q:
            sql = await schema.execute(db.connection(), dry_run=True)
        assert not [s for s in q.sqls if s.lstrip().upper().startswith(("CREATE", "ALTER"))]
        assert sql[0].startswith("CREATE TABLE mig_users")
        assert "uq_mig_users_email" in sql[0]
        assert "select 1" in sql and "-- deferred: <lambda>" in sql
        assert any("mig_renamed" in s for s in sql)
        assert await table_names(db) == set()
        assert schema.pending == 0

    async def test_alter_of_an_existing_table(self, db: Database) -> None:
        await run(db, lambda s: s.create_table("mig_users", users))
        sql = await (
            Schema()
            .alter_table("mig_users", lambda t: (t.rename_column("name", "n"), t.integer("age")))
            .execute(db.connection(), dry_run=True)
        )
        assert any("age" in s for s in sql) and any(" n " in f"{s} " for s in sql)
        columns = {c["name"] for c in await inspect(db, lambda i: i.get_columns("mig_users"))}
        assert columns == {"id", "email", "name"}


class TestErrors:
    def test_invalid_identifiers(self) -> None:
        with pytest.raises(LucidError) as info:
            Schema().create_table("users; drop", lambda t: None)
        assert info.value.code == "E_INVALID_IDENTIFIER"
        with pytest.raises(LucidError):
            Schema().create_table("users", lambda t: t.string("bad name"))

    def test_column_declared_twice(self) -> None:
        with pytest.raises(LucidError, match='"created_at" is declared twice'):
            Schema().create_table("t", lambda t: (t.timestamp("created_at"), t.timestamps()))

    def test_async_table_callback_is_rejected(self) -> None:
        async def build(t: TableBuilder) -> None: ...

        with pytest.raises(LucidError, match="plain functions"):
            Schema().create_table("users", build)

    async def test_database_errors_are_query_errors(self, db: Database) -> None:
        await run(db, lambda s: s.create_table("mig_users", users))
        with pytest.raises(QueryError) as info:
            await run(db, lambda s: s.create_table("mig_users", users))
        assert info.value.sql and "mig_users" in info.value.sql
