"""Errors: bad input refused before any query, driver errors wrapped with their context."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import asyncmy.errors
import asyncpg  # type: ignore[import-untyped]
import pytest

from lucid_orm.database import Database
from lucid_orm.errors import IntegrityError, LucidError, QueryError
from tests.helpers import count_queries

# The driver's own exception classes, per dialect.
UNDEFINED_TABLE: dict[str, type[BaseException]] = {
    "sqlite": sqlite3.OperationalError,
    "postgresql": asyncpg.exceptions.UndefinedTableError,
    "mysql": asyncmy.errors.ProgrammingError,
}
UNIQUE_VIOLATION: dict[str, type[BaseException]] = {
    "sqlite": sqlite3.IntegrityError,
    "postgresql": asyncpg.exceptions.UniqueViolationError,
    "mysql": asyncmy.errors.IntegrityError,
}
FK_VIOLATION: dict[str, type[BaseException]] = {
    "sqlite": sqlite3.IntegrityError,
    "postgresql": asyncpg.exceptions.ForeignKeyViolationError,
    "mysql": asyncmy.errors.IntegrityError,
}
NOT_NULL_VIOLATION: dict[str, type[BaseException]] = {
    "sqlite": sqlite3.IntegrityError,
    "postgresql": asyncpg.exceptions.NotNullViolationError,
    "mysql": asyncmy.errors.IntegrityError,
}


class TestBadInput:
    @pytest.mark.parametrize("op", ["=>", "===", "like%", "; drop table users", "", "LIKE 1"])
    async def test_invalid_operator(self, database: Database, op: str) -> None:
        with count_queries() as log:
            with pytest.raises(LucidError) as info:
                await database.from_("users").where("id", op, 1)
            assert info.value.code == "E_INVALID_OPERATOR"
            assert f'Invalid operator "{op}"' in str(info.value)
            with pytest.raises(LucidError):
                database.from_("users").having("id", op, 1)
            with pytest.raises(LucidError):
                database.from_("users").where_column("id", op, "points")
        assert log.count == 0

    async def test_non_string_operator(self, database: Database) -> None:
        with pytest.raises(LucidError) as info:
            database.from_("users").where("id", 1, 2)
        assert info.value.code == "E_INVALID_OPERATOR"

    @pytest.mark.parametrize(
        "name", ["users; drop table x", "users.id; --", "a b", "1abc", "x'", 'x"', "a.b.c.d"]
    )
    async def test_invalid_identifier(self, database: Database, name: str) -> None:
        attempts: list[Any] = [
            lambda: database.from_(name),
            lambda: database.from_("users").where(name, 1),
            lambda: database.from_("users").select(name),
            lambda: database.from_("users").order_by(name),
            lambda: database.from_("users").group_by(name),
            lambda: database.from_("users").where_in(name, [1]),
            lambda: database.from_("users").where_null(name),
            lambda: database.from_("users").join(name, "users.id", "x.user_id"),
            lambda: database.from_("users").join("posts", name, "posts.user_id"),
            lambda: database.from_("users").count(name),
            lambda: database.table(name),
            lambda: database.table("users").returning(name),
        ]
        with count_queries() as log:
            for attempt in attempts:
                with pytest.raises(LucidError) as info:
                    attempt()
                assert info.value.code == "E_INVALID_IDENTIFIER"
                assert repr(name) in str(info.value)
            for write in (
                lambda: database.from_("users").update({name: 1}),
                lambda: database.from_("users").increment(name),
                lambda: database.table("users").insert({name: 1}),
            ):
                with pytest.raises(LucidError) as info:
                    await write()
                assert info.value.code == "E_INVALID_IDENTIFIER"
        assert log.count == 0


class TestQueryError:
    async def test_unknown_table(self, database: Database, dialect: str) -> None:
        with pytest.raises(QueryError) as info:
            await database.from_("lucid_no_such_table").where("id", 1)
        exc = info.value
        assert type(exc) is QueryError
        assert exc.code == "E_QUERY_FAILED"
        assert exc.status == 500
        assert exc.sql is not None and "lucid_no_such_table" in exc.sql
        assert exc.bindings == [1]
        assert isinstance(exc.original, UNDEFINED_TABLE[dialect])
        assert "lucid_no_such_table" in str(exc)
        assert not str(exc).startswith("E_")
        assert exc.__cause__ is not None

    async def test_unknown_column(self, database: Database) -> None:
        with pytest.raises(QueryError) as info:
            await database.from_("users").where("lucid_no_such_column", "x")
        assert info.value.bindings == ["x"]
        assert "lucid_no_such_column" in str(info.value)

    async def test_raw_syntax_error(self, database: Database) -> None:
        with pytest.raises(QueryError) as info:
            await database.raw_query("selec ? as x", [1])
        assert info.value.sql is not None and info.value.sql.startswith("selec ")
        assert info.value.bindings == [1]

    async def test_unique_violation(self, database: Database, dialect: str) -> None:
        await database.table("things").insert({"name": "taken"})
        with pytest.raises(IntegrityError) as info:
            await database.table("things").insert({"name": "taken", "amount": 2})
        exc = info.value
        assert isinstance(exc, QueryError)
        assert exc.code == "E_INTEGRITY"
        assert isinstance(exc.original, UNIQUE_VIOLATION[dialect])
        assert exc.sql is not None and "things" in exc.sql
        # In the statement's column order: the table's, as far as this process has seen its
        # columns (``shared_table``), so either way round.
        assert exc.bindings in (["taken", 2], [2, "taken"])
        assert await database.from_("things").count_rows() == 1

    async def test_unique_violation_on_update(self, database: Database, dialect: str) -> None:
        await database.table("things").multi_insert([{"name": "a"}, {"name": "b"}])
        with pytest.raises(IntegrityError) as info:
            await database.from_("things").where("name", "b").update({"name": "a"})
        assert isinstance(info.value.original, UNIQUE_VIOLATION[dialect])

    async def test_foreign_key_violation(self, database: Database, dialect: str) -> None:
        (user,) = await database.table("users").returning("id").insert({"username": "u"})
        await database.table("memberships").insert({"user_id": user["id"], "role": "ok"})
        with pytest.raises(IntegrityError) as info:
            await database.table("memberships").insert({"user_id": user["id"] + 1000, "role": "x"})
        assert info.value.code == "E_INTEGRITY"
        assert isinstance(info.value.original, FK_VIOLATION[dialect])
        with pytest.raises(IntegrityError):
            await database.from_("users").where("id", user["id"]).delete()
        assert await database.from_("memberships").count_rows() == 1

    async def test_not_null_violation(self, database: Database, dialect: str) -> None:
        with pytest.raises(IntegrityError) as info:
            await database.table("things").insert({"name": None})
        assert isinstance(info.value.original, NOT_NULL_VIOLATION[dialect])

    async def test_error_inside_a_transaction(self, database: Database) -> None:
        await database.table("things").insert({"name": "taken"})
        trx = await database.transaction()
        await trx.table("tags").insert({"name": "t"})
        with pytest.raises(IntegrityError):
            await trx.table("things").insert({"name": "taken"})
        await trx.rollback()
        assert await database.from_("tags").count_rows() == 0
        # The failed transaction released its connection: the pool still works.
        assert await database.from_("things").count_rows() == 1


class TestConnectionErrors:
    async def test_unknown_connection_name(self, database: Database) -> None:
        attempts: list[Any] = [
            lambda: database.connection("nope"),
            lambda: database.from_("users", connection="nope"),
            lambda: database.query(connection="nope"),
            lambda: database.insert_query(connection="nope"),
            lambda: database.table("users", connection="nope"),
            lambda: database.raw_query("select 1", connection="nope"),
            lambda: database.transaction(connection="nope"),
            lambda: database.get_connection("nope"),
            lambda: database.engine("nope"),
        ]
        for attempt in attempts:
            with pytest.raises(LucidError) as info:
                attempt()
            assert info.value.code == "E_UNMANAGED_DB_CONNECTION"
            assert '"nope"' in str(info.value)

    async def test_unreachable_server_masks_the_password(
        self, dialect: str, tmp_path: Path
    ) -> None:
        url = {
            "sqlite": f"sqlite:///{tmp_path / 'missing-dir' / 'x.db'}",
            "postgresql": "postgresql://u:secret@127.0.0.1:1/x",
            "mysql": "mysql://u:secret@127.0.0.1:1/x",
        }[dialect]
        private = Database()
        private.configure(connection="down", connections={"down": {"url": url}})
        try:
            with pytest.raises(LucidError) as info:
                await private.raw_query("select 1")
            assert not isinstance(info.value, QueryError)
            assert info.value.code == "E_CONNECTION_FAILED"
            assert "secret" not in str(info.value)
            assert 'Cannot connect to "down"' in str(info.value)
            if dialect != "sqlite":
                assert "***" in str(info.value)
            with pytest.raises(LucidError) as info:
                await private.transaction()
            assert info.value.code == "E_CONNECTION_FAILED"
            assert "secret" not in str(info.value)
        finally:
            await private.close()

    async def test_query_after_close(self, database: Database) -> None:
        await database.close()
        attempts: list[Any] = [
            lambda: database.from_("users"),
            lambda: database.raw_query("select 1"),
            lambda: database.table("tags").insert({"name": "x"}),
            lambda: database.transaction(),
        ]
        with count_queries() as log:
            for attempt in attempts:
                with pytest.raises(LucidError) as info:
                    await attempt()
                assert info.value.code == "E_CONNECTION_CLOSED"
                assert "db.configure()" in str(info.value)
        assert log.count == 0

    async def test_transaction_started_before_close(self, database: Database) -> None:
        trx = await database.transaction()
        await trx.table("tags").insert({"name": "x"})
        await trx.commit()
        await database.close()
        with pytest.raises(LucidError) as info:
            await trx.from_("tags")
        assert info.value.code == "E_TRANSACTION_COMPLETED"
