"""Shared fixtures: the suite runs once per dialect (sqlite, postgresql, mysql).

``dialect`` (session scope, parametrised) configures the global ``db`` for one dialect and
creates ``tests/schema.py`` once; ``database`` (function scope) hands out ``db`` and deletes every
row after the test (``helpers.empty_tables``: only the tables that hold rows, big ones
truncated). Under ``CI=true`` an unreachable server fails the run; elsewhere its tests are
skipped with the reason (probed at collection, so the skips fold into one line per file).
Models shared by several files live in ``tests/models.py``.
``LUCID_TEST_DIALECTS=sqlite`` (a comma-separated subset) runs only those dialects: the
``make test-min`` job on the lowest allowed dependency versions runs SQLite alone.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from lucid_orm.database import Database, db
from lucid_orm.errors import LucidError
from tests.helpers import WORKER, DialectConfig, create_worker_databases, dialect_url, empty_tables
from tests.schema import metadata

ALL_DIALECTS = ["sqlite", "postgresql", "mysql"]


def _selected_dialects() -> list[str]:
    wanted = os.environ.get("LUCID_TEST_DIALECTS", "").replace(" ", "")
    if not wanted:
        return ALL_DIALECTS
    names = wanted.split(",")
    unknown = sorted(set(names) - set(ALL_DIALECTS))
    if unknown:
        raise pytest.UsageError(f"LUCID_TEST_DIALECTS: unknown dialect(s) {unknown}")
    return [name for name in ALL_DIALECTS if name in names]


DIALECTS = _selected_dialects()

_configs: dict[str, DialectConfig] = {}
# Dependent tables first, so the rows a foreign key points at go last.
_RESET_ORDER = list(reversed(metadata.sorted_tables))


@pytest.fixture(scope="session")
def session_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("lucid_db")


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


async def _unreachable(name: str) -> str | None:
    """Why the server of dialect ``name`` can't be used, or ``None`` when it answers."""
    probe = Database()
    probe.configure(connection=name, connections={name: {"url": dialect_url(name, Path())}})
    try:
        await probe.raw_query("select 1")
    except LucidError as exc:
        return f"{name} is not reachable: {exc}"
    finally:
        await probe.close()
    return None


def _dialect_of(item: pytest.Item) -> object:
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("dialect") if callspec is not None else None


def pytest_configure(config: pytest.Config) -> None:
    """An xdist worker creates its own databases before anything connects (helpers.py)."""
    if WORKER:
        asyncio.run(create_worker_databases())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Outside CI, mark the tests of an unreachable server as skipped up front: pytest then
    folds their skips into one line per file (a skip raised by the fixture is one per test)."""
    if _in_ci():
        return
    servers = {_dialect_of(item) for item in items} & {"postgresql", "mysql"}
    for name in sorted(str(n) for n in servers):
        reason = asyncio.run(_unreachable(name))
        if reason is not None:
            for item in items:
                if _dialect_of(item) == name:
                    item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session", params=DIALECTS, ids=DIALECTS)
async def dialect(request: pytest.FixtureRequest, session_tmp: Path) -> AsyncIterator[str]:
    """The dialect under test (``"sqlite"``, ``"postgresql"`` or ``"mysql"``): configures the
    global ``db`` for it, checks that it answers and creates the schema. An unreachable server
    fails the run under ``CI=true`` and skips its tests elsewhere."""
    name: str = request.param
    config = DialectConfig(name, dialect_url(name, session_tmp))
    config.configure()
    try:
        await db.raw_query("select 1")
    except LucidError as exc:
        await db.close()
        reason = f"{name} is not reachable: {exc}"
        if _in_ci():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    async with db.engine().begin() as conn:
        await conn.run_sync(metadata.drop_all)
        await conn.run_sync(metadata.create_all)
    _configs[name] = config
    try:
        yield name
    finally:
        _configs.pop(name, None)
        await db.close()


@pytest.fixture
def dialect_config(dialect: str) -> DialectConfig:
    """The running dialect's configuration (its URL, and ``configure(other_db)``)."""
    return _configs[dialect]


@pytest.fixture
async def database(dialect: str) -> AsyncIterator[Database]:
    """The configured global ``db``; every table is emptied after the test (rows committed
    for real: the global transaction of ``lucid_orm.testing`` would route every statement
    through it, past the lean read path and the autocommit writes these tests exercise)."""
    config = _configs[dialect]
    await config.restore()
    try:
        yield db
    finally:
        await config.restore()
        await empty_tables(_RESET_ORDER)


@pytest.fixture(params=["fast", "slow"])
def fast_paths(request: pytest.FixtureRequest, database: Database) -> Iterator[bool]:
    """Runs the test twice: with the lean read path on (``fast``) and off (``slow``, every
    statement through SQLAlchemy's execution layer); yields whether it is on."""
    connection = database.get_connection()
    before = connection.fast_reads
    connection.fast_reads = request.param == "fast"
    try:
        yield connection.fast_reads
    finally:
        connection.fast_reads = before
