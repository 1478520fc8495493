"""MySQL/MariaDB: the lean path returns its connections to the pool still in autocommit, and
the pool's "checkout" listener switches autocommit off before SQLAlchemy uses one. Lean reads
that each check a connection out of the pool and back in then send no ``SET autocommit`` each
(the server's own ``Com_set_option`` of the session counts them), while a transaction on that
connection after them is still atomic (its rollback undoes its writes). On a pool of two
connections of which only one is ever opened: every statement runs on the same server
session."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from lucid_orm.database import Database
from tests.helpers import DialectConfig

READS = 5


def _single(dialect: str, dialect_config: DialectConfig, **extra: object) -> Database:
    if dialect != "mysql":
        pytest.skip("MySQL/MariaDB only: the other dialects' reads need no autocommit switch")
    other = Database()
    other.configure(
        connection="single",
        connections={
            "single": {"url": dialect_config.url, "pool": {"max": 2, "timeout": 5}, **extra}
        },
    )
    return other


@pytest.fixture(params=["default", "configured_reset"])
async def single(
    request: pytest.FixtureRequest,
    dialect: str,
    dialect_config: DialectConfig,
    database: Database,
) -> AsyncIterator[Database]:
    """A database of its own with a pool of two connections (the tables emptied after the test
    by ``database``); also with a ``pool_reset_on_return`` of the user's, which leaves the
    reset to SQLAlchemy but not the autocommit switch."""
    extra: dict[str, object] = {}
    if request.param == "configured_reset":
        extra["engine_options"] = {"pool_reset_on_return": "rollback"}
    other = _single(dialect, dialect_config, **extra)
    try:
        yield other
    finally:
        await other.close()


async def _session(database: Database) -> tuple[int, int, int]:
    """``(session id, SET statements counted, @@autocommit)`` of the pool's connection, read
    through SQLAlchemy (its checkout switches autocommit off first, a SET counted here)."""
    async with database.engine().connect() as conn:
        session = (await conn.exec_driver_sql("SELECT CONNECTION_ID()")).scalar_one()
        autocommit = (await conn.exec_driver_sql("SELECT @@autocommit")).scalar_one()
        row = (await conn.exec_driver_sql("SHOW SESSION STATUS LIKE 'Com_set_option'")).one()
    return int(session), int(row[1]), int(autocommit)


async def _lean_reads(database: Database, expected: list[str]) -> None:
    """``READS`` lean reads, each on a connection checked out of the pool and back in (the
    lean path keeps none idle here), which goes back in autocommit."""
    lean = database.get_connection().fast_reads  # off: the slow twin (LUCID_FAST_PATHS=0)
    engines = database.get_connection().write_engines()
    for _ in range(READS):
        rows = await database.from_("tags").select("name").where("id", ">", 0).order_by("name")
        assert [r["name"] for r in rows] == expected
        if lean:
            assert [driver.get_autocommit() for _, driver in engines.idle] == [True]
            await engines.release_idle()


async def test_lean_reads_in_a_row_send_one_set_autocommit(single: Database) -> None:
    """The first lean read switches autocommit on, the next ones find it on; SQLAlchemy's
    next checkout switches it off: two SETs in all, where a switch on at every checkout and
    off at every check-in would send two per read (``READS`` times two)."""
    if not single.get_connection().fast_reads:
        pytest.skip("the lean path's own switches (LUCID_FAST_PATHS=0: none)")
    session, before, autocommit = await _session(single)
    assert autocommit == 0
    await _lean_reads(single, [])
    after_session, after, autocommit = await _session(single)
    assert after_session == session  # one server session throughout
    assert autocommit == 0  # SQLAlchemy's connection: implicit transactions again
    assert after - before == 2


async def test_transaction_after_lean_reads_is_atomic(single: Database) -> None:
    """Fails if the lean path's autocommit leaked into the transaction: its insert would be
    committed at once and survive the rollback."""
    session, _, _ = await _session(single)
    await _lean_reads(single, [])
    trx = await single.transaction()
    await trx.table("tags").insert({"name": "undone"})
    assert (await trx.raw_query("SELECT @@autocommit AS a"))[0]["a"] == 0
    assert (await trx.raw_query("SELECT CONNECTION_ID() AS id"))[0]["id"] == session
    await trx.rollback()
    await _lean_reads(single, [])
    async with single.transaction() as trx:
        await trx.table("tags").insert({"name": "kept"})
    await _lean_reads(single, ["kept"])
    # A write outside transactions (its own implicit transaction and COMMIT) after them.
    await single.table("tags").insert({"name": "written"})
    await _lean_reads(single, ["kept", "written"])
    assert (await _session(single))[0] == session


async def test_transaction_heals_when_the_server_dropped_the_autocommit_connection(
    dialect: str, dialect_config: DialectConfig, database: Database
) -> None:
    """The connection the lean path returned in autocommit is killed by the server while it
    sits in the pool: the checkout listener's switch finds it dropped, the pool opens a new
    one (autocommit off, as the driver opens it) and the transaction runs atomically there."""
    single = _single(dialect, dialect_config)
    if not single.get_connection().fast_reads:
        await single.close()
        pytest.skip("no lean path (LUCID_FAST_PATHS=0): the connection is never in autocommit")
    try:
        session, _, _ = await _session(single)
        await _lean_reads(single, [])
        await database.raw_query("KILL ?", [session])
        trx = await single.transaction()
        await trx.table("tags").insert({"name": "undone"})
        assert (await trx.raw_query("SELECT @@autocommit AS a"))[0]["a"] == 0
        assert (await trx.raw_query("SELECT CONNECTION_ID() AS id"))[0]["id"] != session
        await trx.rollback()
        await _lean_reads(single, [])
    finally:
        await single.close()


async def test_stream_then_transaction(single: Database) -> None:
    """A lean stream's connection goes back in autocommit too; the transaction after it is
    atomic."""
    await single.table("tags").multi_insert([{"name": "a"}, {"name": "b"}])
    names = [r["name"] async for r in single.from_("tags").order_by("name").stream(batch_size=1)]
    assert names == ["a", "b"]
    trx = await single.transaction()
    await trx.table("tags").insert({"name": "undone"})
    assert (await trx.raw_query("SELECT @@autocommit AS a"))[0]["a"] == 0
    await trx.rollback()
    await _lean_reads(single, ["a", "b"])


async def test_configured_autocommit_is_left_on(
    dialect: str, dialect_config: DialectConfig, database: Database
) -> None:
    """A connection that autocommits by configuration (``isolation_level`` ``"AUTOCOMMIT"``)
    is not the lean path's to switch: SQLAlchemy's checkouts after lean reads leave it on,
    and no SET is sent."""
    single = _single(dialect, dialect_config, engine_options={"isolation_level": "AUTOCOMMIT"})
    try:
        session, before, autocommit = await _session(single)
        assert autocommit == 1
        await _lean_reads(single, [])
        after_session, after, autocommit = await _session(single)
        assert (after_session, autocommit, after - before) == (session, 1, 0)
    finally:
        await single.close()
