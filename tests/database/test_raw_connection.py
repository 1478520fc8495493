"""``executor.raw_connection``: the pooled connection a transaction holds, as SQLAlchemy's
``get_raw_connection()`` gives it, and that call's error once the connection is gone."""

from __future__ import annotations

import pytest
from sqlalchemy import exc as sa_exc

from lucid_orm.database import Database
from lucid_orm.database.executor import raw_connection
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
