"""MySQL/MariaDB: every session runs in UTC (datetimes travel as UTC; ``CURRENT_TIMESTAMP``
defaults must agree), whether or not the connection's ``connect_args`` carry an
``init_command`` of the user's, which takes the driver's single place for it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from lucid_orm.database import Database
from tests.database.test_db_reconnect import drop_connections
from tests.helpers import DialectConfig


@pytest.fixture
async def configured(
    dialect: str, dialect_config: DialectConfig
) -> AsyncIterator[Callable[[dict[str, Any]], Database]]:
    """Databases on the MySQL test database configured with the ``connect_args`` given."""
    if dialect != "mysql":
        pytest.skip("MySQL/MariaDB only: init_command is its driver's")
    made: list[Database] = []

    def make(connect_args: dict[str, Any]) -> Database:
        database = Database()
        database.configure(
            connection="mysql",
            connections={
                "mysql": {
                    "url": dialect_config.url,
                    "connect_args": connect_args,
                    "pool": {"max": 2},
                }
            },
        )
        made.append(database)
        return database

    try:
        yield make
    finally:
        for database in made:
            await database.close()


async def _session(database: Database) -> tuple[str, Any]:
    """The session's time zone and ``@lucid_marker``, read on the lean path and inside a
    transaction (both must agree)."""
    sql = "SELECT @@session.time_zone AS tz, @lucid_marker AS marker"
    lean = await database.raw_query(sql, read=True)
    async with database.transaction() as trx:
        inside = await trx.raw_query(sql)
    assert [tuple(r.values()) for r in lean] == [tuple(r.values()) for r in inside]
    row = lean[0]
    return str(row["tz"]), row["marker"]


async def test_sessions_run_in_utc_without_connect_args(
    configured: Callable[[dict[str, Any]], Database],
) -> None:
    database = configured({})
    assert (await _session(database))[0] == "+00:00"


async def test_a_users_init_command_runs_and_the_session_stays_in_utc(
    configured: Callable[[dict[str, Any]], Database],
) -> None:
    database = configured({"init_command": "SET @lucid_marker = 7"})
    tz, marker = await _session(database)
    assert (tz, int(marker)) == ("+00:00", 7)


async def test_a_connection_made_again_after_its_loss_is_in_utc_too(
    configured: Callable[[dict[str, Any]], Database],
) -> None:
    database = configured({"init_command": "SET @lucid_marker = 7"})
    await _session(database)
    # The server drops every connection (a restart, an idle kill): the reads reconnect.
    assert await drop_connections("mysql") >= 1
    tz, marker = await _session(database)
    assert (tz, int(marker)) == ("+00:00", 7)


async def test_a_time_zone_the_users_init_command_sets_is_kept(
    configured: Callable[[dict[str, Any]], Database],
) -> None:
    database = configured({"init_command": "SET time_zone = '+02:00', @lucid_marker = 1"})
    tz, marker = await _session(database)
    assert (tz, int(marker)) == ("+02:00", 1)
