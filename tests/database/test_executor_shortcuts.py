"""``executor``'s shortcuts past SQLAlchemy's greenlet: ``raw_connection`` (the pooled
connection a transaction holds, as ``get_raw_connection()`` gives it, and that call's error
once the connection is gone) and ``begin_inline`` (a BEGIN that sends nothing)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy import exc as sa_exc

from lucid_orm.database import Database
from lucid_orm.database.executor import begin_inline, raw_connection
from lucid_orm.database.transaction import open_connection


class TestRawConnection:
    async def test_the_transaction_connection_as_sqlalchemy_gives_it(
        self, database: Database
    ) -> None:
        trx = await database.transaction()
        try:
            conn = open_connection(trx)
            raw = await raw_connection(conn)
            assert raw is await conn.get_raw_connection()
            assert raw.driver_connection is not None
        finally:
            await trx.rollback()

    async def test_an_invalidated_connection_raises_as_sqlalchemy_does(
        self, database: Database
    ) -> None:
        trx = await database.transaction()
        try:
            conn = open_connection(trx)
            await conn.invalidate()
            with pytest.raises(sa_exc.PendingRollbackError) as twin:
                await conn.get_raw_connection()
            with pytest.raises(sa_exc.PendingRollbackError) as caught:
                await raw_connection(conn)
            assert str(caught.value) == str(twin.value)
        finally:
            await trx.rollback()


class TestBeginInline:
    async def test_a_begin_that_sends_nothing_runs_here_and_commits(
        self, database: Database, dialect: str
    ) -> None:
        engine = database.get_connection().write_engines().engine
        conn = await engine.connect()
        try:
            trx = begin_inline(conn)
            if dialect == "sqlite":
                # SQLite's BEGIN IMMEDIATE is sent by a "begin" listener: SQLAlchemy's path.
                assert trx is None
                return
            assert trx is not None and trx.is_active and conn.in_transaction()
            await conn.exec_driver_sql("INSERT INTO tags (name) VALUES ('inline')")
            await trx.commit()
            assert not conn.in_transaction()
        finally:
            await conn.close()
        assert [r["name"] for r in await database.from_("tags")] == ["inline"]

    async def test_a_begin_listener_takes_sqlalchemys_path(self, database: Database) -> None:
        engine = database.get_connection().write_engines().engine
        seen: list[Any] = []

        def listener(conn: Any) -> None:
            seen.append(conn)

        event.listen(engine.sync_engine, "begin", listener)
        try:
            conn = await engine.connect()
            try:
                assert begin_inline(conn) is None
                trx = await database.transaction()
                await trx.rollback()
                assert len(seen) == 1  # the transaction's own BEGIN, through SQLAlchemy
            finally:
                await conn.close()
        finally:
            event.remove(engine.sync_engine, "begin", listener)
