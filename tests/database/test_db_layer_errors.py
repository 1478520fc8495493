"""Every error of the database layer is ours (issue 12, finding 10): SQLAlchemy and driver
exceptions leaving a statement — a value a bind processor refuses, a construct the dialect
can't compile, a value the driver can't bind — arrive as ``QueryError`` with the SQL and the
original chained, on the lean read path and through SQLAlchemy; passwords are hidden in
every position of a URL; a failing read replica is named (masked), not the write URL."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from lucid_orm import LucidError, QueryError, column, has_many
from lucid_orm.database import Database
from lucid_orm.database.connection import mask
from lucid_orm.relations import HasMany
from tests import models
from tests.helpers import DialectConfig, count_queries


class LeUser(models.BaseUser):
    table = "users"
    points: int | None = column()
    created_at: datetime | None = column()


def _assert_wrapped(exc: QueryError, table: str | None = "users") -> None:
    assert type(exc) is QueryError
    assert exc.code == "E_QUERY_FAILED"
    assert exc.original is not None
    assert exc.__cause__ is not None
    assert not type(exc.__cause__).__module__.startswith("lucid_orm")
    if table is not None:
        assert exc.sql is not None and table in exc.sql
        assert exc.sql in str(exc)


class TestForeignExceptionsAreWrapped:
    async def test_a_value_the_bind_processor_refuses(
        self, database: Database, dialect: str, fast_paths: bool
    ) -> None:
        query = LeUser.query().where("created_at", "not a date")
        if dialect == "mysql":
            # MariaDB compares after coercing the text (with a warning): nothing to refuse.
            assert await query == []
            return
        with pytest.raises(QueryError) as info:
            await query
        _assert_wrapped(info.value)
        if dialect == "sqlite":
            # SQLAlchemy's DateTime bind processor refuses it (a StatementError there).
            assert isinstance(info.value.original, TypeError)
            assert "datetime" in str(info.value)

    async def test_an_integer_the_driver_cannot_bind(
        self, database: Database, dialect: str, fast_paths: bool
    ) -> None:
        too_big = 2**70
        attempts: list[Callable[[], Awaitable[Any]]] = [
            lambda: database.from_("users").where("points", too_big),
            lambda: database.from_("users").select("id").where("points", too_big),
            lambda: LeUser.query().where("points", too_big),
        ]
        for attempt in attempts:
            if dialect == "mysql":
                assert await attempt() == []  # a DECIMAL comparison on MariaDB
                continue
            with pytest.raises(QueryError) as info:
                await attempt()
            _assert_wrapped(info.value)
        if dialect == "sqlite":
            with pytest.raises(QueryError) as info:
                await database.raw_query("select ? as x", [too_big])
            assert isinstance(info.value.original, OverflowError)
            assert info.value.sql == "select ? as x"

    async def test_a_construct_the_dialect_cannot_compile(
        self, database: Database, dialect: str, fast_paths: bool
    ) -> None:
        array = sa.cast(sa.literal(1), postgresql.ARRAY(sa.Integer)).label("a")
        with pytest.raises(QueryError) as info:
            await database.query().select(array)
        exc = info.value
        assert exc.__cause__ is not None and exc.original is not None
        if dialect == "postgresql":
            assert "integer[]" in str(exc)  # compiled; the server refuses the cast
        else:
            assert isinstance(exc.original, sa.exc.CompileError)
            assert str(exc).startswith("Cannot run the statement:")

    async def test_a_value_the_driver_cannot_adapt(
        self, database: Database, dialect: str, fast_paths: bool
    ) -> None:
        # The builder refuses it before any statement (asyncmy used to send its str()).
        with count_queries() as q, pytest.raises(LucidError) as info:
            await database.from_("users").select("id").where("username", object())
        assert info.value.code == "E_INVALID_ARGUMENT"
        assert q.count == 0


# -- passwords and replicas in messages ----------------------------------------------------------


class LePoster(models.BaseUser):
    posts: HasMany[models.Post] = has_many(lambda: models.Post, foreign_key="user_id")


def _unreachable(dialect: str, tmp_path: Path, *, secret_in: str) -> str:
    """A URL of ``dialect`` that can't connect, carrying a password in ``userinfo`` or in the
    ``query`` string."""
    if dialect == "sqlite":
        return f"sqlite:///{tmp_path / 'missing-dir' / 'x.db'}"  # SQLite has no passwords
    scheme = "postgresql" if dialect == "postgresql" else "mysql"
    if secret_in == "query":
        return f"{scheme}://u@127.0.0.1:1/x?password=secret"
    return f"{scheme}://u:secret@127.0.0.1:1/x"


class TestPasswordsAreMasked:
    @pytest.mark.parametrize("secret_in", ["userinfo", "query"])
    async def test_connection_errors(self, dialect: str, tmp_path: Path, secret_in: str) -> None:
        if dialect == "sqlite":
            pytest.skip("SQLite URLs carry no password")
        url = _unreachable(dialect, tmp_path, secret_in=secret_in)
        private = Database()
        private.configure(connection="down", connections={"down": {"url": url}})
        try:
            for attempt in (
                lambda: private.raw_query("select 1"),
                lambda: private.from_("users").select("id"),
                lambda: private.transaction(),
            ):
                with pytest.raises(LucidError) as info:
                    await attempt()
                assert info.value.code == "E_CONNECTION_FAILED"
                assert "secret" not in str(info.value)
                assert 'Cannot connect to "down"' in str(info.value)
                assert "***" in str(info.value)
            assert "secret" not in repr(private.get_connection())
        finally:
            await private.close()

    async def test_model_reads_report_the_connection_error(
        self, dialect: str, tmp_path: Path
    ) -> None:
        # A model query's and a find's read (the lean path's check-out, when it is on) fail
        # as the other queries do: a connection error, not a query error, password masked.
        url = _unreachable(dialect, tmp_path, secret_in="userinfo")
        private = Database()
        private.configure(connection="down", connections={"down": {"url": url}})
        client = private.connection()
        try:
            for attempt in (
                lambda: models.User.query(client=client).where("id", 1).first(),
                lambda: LePoster.query(client=client).where("id", 1).preload("posts").first(),
                lambda: models.User.find(1, client=client),
            ):
                with pytest.raises(LucidError) as info:
                    await attempt()
                assert not isinstance(info.value, QueryError)
                assert info.value.code == "E_CONNECTION_FAILED"
                assert "secret" not in str(info.value)
                assert 'Cannot connect to "down"' in str(info.value)
        finally:
            await private.close()

    def test_mask_hides_every_position(self) -> None:
        assert mask("postgresql://app:pw1@db.local/app?password=pw2&sslmode=require") == (
            "postgresql://app:***@db.local/app?password=***&sslmode=require"
        )
        assert mask("mysql://app@db/app?PWD=pw&passwd=pw&charset=utf8mb4") == (
            "mysql://app@db/app?PWD=***&charset=utf8mb4&passwd=***"
        )
        # A URL the parser rejects is still masked.
        assert mask("postgresql://app:pw1@db:port/app?password=pw2") == (
            "postgresql://app:***@db:port/app?password=***"
        )

    def test_an_invalid_url_is_reported_masked(self) -> None:
        private = Database()
        with pytest.raises(LucidError) as info:
            private.configure(url="postgresql://app:pw1@db:port/app?password=pw2")
        assert info.value.code == "E_INVALID_URL"
        assert "pw1" not in str(info.value) and "pw2" not in str(info.value)
        assert "app:***@db:port" in str(info.value)


class TestReplicaErrorsNameTheReplica:
    @pytest.mark.parametrize("fast", [True, False], ids=["fast", "slow"])
    async def test_a_failing_replica_is_named(
        self,
        dialect: str,
        dialect_config: DialectConfig,
        tmp_path: Path,
        fast: bool,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """A replica that cannot be reached is reported (once, on the ``lucid_orm.replicas``
        logger, naming it, password hidden) and the read runs on the write side instead
        (tests/cluster stops a real standby)."""
        replica = _unreachable(dialect, tmp_path, secret_in="query")
        private = Database()
        private.configure(
            connection="rep",
            connections={
                "rep": {
                    "fast_reads": fast,
                    "replicas": {"write": {"url": dialect_config.url}, "read": [{"url": replica}]},
                }
            },
        )
        try:
            caplog.set_level(logging.WARNING, logger="lucid_orm.replicas")
            for _ in range(2):
                assert await private.from_("users").select("id").where("id", 1) == []
            [record] = [r for r in caplog.records if r.name == "lucid_orm.replicas"]
            message = record.getMessage()
            assert 'read replica 1 of 1 of "rep"' in message
            assert "unreachable" in message
            where = "missing-dir" if dialect == "sqlite" else "u@127.0.0.1:1/x?password=***"
            assert where in message
            assert "secret" not in message
            assert dialect_config.url.split("///")[-1] not in message
            # The write side is fine: writes (and raw queries) run there.
            assert await private.raw_query("select 1 as one") == [{"one": 1}]
        finally:
            await private.close()
