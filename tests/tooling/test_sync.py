"""``lucid_orm.sync``: queries, model coroutines and builders run from plain (non-async) code on
SQLite, PostgreSQL and MariaDB, one event loop per thread, refused inside a running loop, and
the connections closed by ``sync.close()`` and at interpreter exit.

These are plain ``def`` tests: the suite's ``dialect`` fixture runs on the session's event loop,
which must not be running while ``sync.run`` drives its own. Each test gives the global ``db``
a configuration of its own for the duration (``own_db``) and puts the session's back after, so
the fixtures of the async tests find their connections untouched.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from lucid_orm import BaseModel, LucidError, QueryError, column, db, sync
from lucid_orm.orm.relations import BelongsTo, HasMany, belongs_to, has_many
from lucid_orm.schema import Schema, TableBuilder
from tests.helpers import MYSQL_URL, PG_URL

DIALECTS = ["sqlite", "postgresql", "mysql"]
SERVERS = {"postgresql": PG_URL, "mysql": MYSQL_URL}
# What each server calls the current connection's id, and where its live connections are.
BACKEND_ID = {
    "postgresql": "select pg_backend_pid() as id",
    "mysql": "select connection_id() as id",
}
LIVE = {
    "postgresql": "select count(*) as n from pg_stat_activity where pid = ?",
    "mysql": "select count(*) as n from information_schema.processlist where id = ?",
}


class SyncList(BaseModel):
    table = "sync_lists"
    id: int = column(is_primary=True)
    name: str = column()
    notes: HasMany[SyncNote] = has_many(lambda: SyncNote, foreign_key="list_id")


class SyncNote(BaseModel):
    table = "sync_notes"
    id: int = column(is_primary=True)
    list_id: int | None = column()
    title: str = column()
    owner: BelongsTo[SyncList] = belongs_to(lambda: SyncList, foreign_key="list_id")


def _url(dialect: str, tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'sync.sqlite3'}" if dialect == "sqlite" else SERVERS[dialect]


@contextmanager
def own_db(url: str) -> Iterator[None]:
    """The global ``db`` configured for ``url`` inside the block; the session's configuration
    (connections bound to the suite's loop, which is idle meanwhile) is put back after, and
    this thread's ``sync`` loop closed."""
    saved = (db._connections, db._default, db._clients)
    db._connections, db._default, db._clients = {}, None, {}
    db.configure(url=url)
    try:
        yield
    finally:
        sync.close()
        # Engines another loop opened (a test's asyncio.run()): closed, or dropped when their
        # loop is gone, rather than left to the garbage collector.
        asyncio.run(db.close())
        db._connections, db._default, db._clients = saved


def _create_tables() -> None:
    def lists(t: TableBuilder) -> None:
        t.increments("id")
        t.string("name").not_nullable()

    def notes(t: TableBuilder) -> None:
        t.increments("id")
        t.integer("list_id").unsigned().references("sync_lists.id").on_delete("CASCADE")
        t.string("title").not_nullable()

    schema = Schema().drop_table_if_exists("sync_notes").drop_table_if_exists("sync_lists")
    schema.create_table("sync_lists", lists).create_table("sync_notes", notes)
    sync.run(schema.execute(db.connection()))


def _drop_tables() -> None:
    schema = Schema().drop_table_if_exists("sync_notes").drop_table_if_exists("sync_lists")
    sync.run(schema.execute(db.connection()))


@pytest.fixture(params=DIALECTS, ids=DIALECTS)
def synced(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The dialect under test, with the global ``db`` on it and two fresh tables."""
    name: str = request.param
    with own_db(_url(name, tmp_path)):
        _create_tables()
        try:
            yield name
        finally:
            _drop_tables()


class TestRun:
    def test_models_builders_and_coroutines_run_without_a_loop(self, synced: str) -> None:
        groceries = sync.run(SyncList.create({"name": "groceries"}))
        assert isinstance(groceries, SyncList) and groceries.id is not None
        created = sync.run(
            groceries.related("notes").create_many([{"title": "milk"}, {"title": "eggs"}])
        )
        assert [n.title for n in created] == ["milk", "eggs"]

        # Builders: run_sync() is what awaiting them gives.
        notes = SyncNote.query().where("list_id", groceries.id).order_by("id").run_sync()
        assert [(type(n), n.title) for n in notes] == [(SyncNote, "milk"), (SyncNote, "eggs")]
        rows = db.from_("sync_notes").select("title").order_by("title").run_sync()
        assert rows == [{"title": "eggs"}, {"title": "milk"}]
        related = groceries.related("notes").query().where("title", "eggs").run_sync()
        assert [n.id for n in related] == [created[1].id]
        assert db.table("sync_notes").insert({"title": "loose"}).run_sync() == 1
        assert db.raw_query("select count(*) as n from sync_notes").run_sync() == [{"n": 3}]

        # Model coroutines and the builders' coroutine methods go through sync.run().
        found = sync.run(SyncNote.find(created[0].id))
        assert found is not None and found.title == "milk"
        page = sync.run(SyncNote.query().order_by("id").paginate(2, 2))
        assert (page.total, [n.title for n in page]) == (3, ["loose"])
        loaded = sync.run(SyncList.query().preload("notes").first())
        assert loaded is not None and sorted(n.title for n in loaded.notes) == ["eggs", "milk"]
        found.title = "oat milk"
        sync.run(found.save())
        assert SyncNote.query().where("title", "oat milk").run_sync()[0].id == found.id

    def test_a_transaction_commits_and_rolls_back(self, synced: str) -> None:
        async def failing() -> None:
            async with db.transaction() as trx:
                await SyncList.create({"name": "kept?"}, client=trx)
                raise RuntimeError("boom")

        with pytest.raises(RuntimeError, match="boom"):
            sync.run(failing())

        async def committed() -> int:
            async with db.transaction() as trx:
                made = await SyncList.create({"name": "kept"}, client=trx)
                return made.id

        made_id = sync.run(committed())
        names = [lst.name for lst in SyncList.query().run_sync()]
        assert names == ["kept"] and sync.run(SyncList.find_or_fail(made_id)).name == "kept"

    def test_errors_of_the_query_reach_the_caller(self, synced: str) -> None:
        with pytest.raises(QueryError) as caught:
            db.from_("sync_missing_table").run_sync()
        assert "sync_missing_table" in str(caught.value)
        # The loop survives a failed query: the next call works.
        assert db.from_("sync_lists").run_sync() == []

    def test_not_an_awaitable(self, synced: str) -> None:
        with pytest.raises(LucidError) as caught:
            sync.run(42)  # type: ignore[arg-type]
        assert caught.value.code == "E_INVALID_ARGUMENT"


class TestLoops:
    def test_each_thread_has_its_own_loop_and_connections(self, synced: str) -> None:
        main_loop = sync.run(_running_loop())
        assert sync.run(_running_loop()) is main_loop  # reused by later calls
        barrier = threading.Barrier(2, timeout=30)
        results: dict[int, Any] = {}
        errors: list[BaseException] = []

        async def overlapping(index: int) -> tuple[Any, Any]:
            if synced == "sqlite":
                # SQLite has one writer at a time: the threads overlap on reads.
                await SyncList.query()
                barrier.wait()
                await SyncList.create({"name": f"thread {index}"})
                return asyncio.get_running_loop(), None
            async with db.transaction() as trx:
                await SyncList.create({"name": f"thread {index}"}, client=trx)
                # Both threads hold a connection in an open transaction at this point: their
                # loops run at the same time (each thread blocks only its own loop here).
                barrier.wait()
                backend = await _backend(trx, synced)
            return asyncio.get_running_loop(), backend

        def work(index: int) -> None:
            try:
                first = sync.run(overlapping(index))
                again = sync.run(_running_loop())
                results[index] = (*first, again)
            except BaseException as exc:  # reported by the test below
                errors.append(exc)
                barrier.abort()
            finally:
                sync.close()

        threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        (loop_a, backend_a, again_a), (loop_b, backend_b, again_b) = results[0], results[1]
        assert loop_a is again_a and loop_b is again_b
        assert len({id(loop_a), id(loop_b), id(main_loop)}) == 3
        assert loop_a.is_closed() and loop_b.is_closed()  # sync.close() in each thread
        assert not main_loop.is_closed()
        names = sorted(lst.name for lst in SyncList.query().run_sync())
        assert names == ["thread 0", "thread 1"]
        if synced != "sqlite":
            assert backend_a != backend_b
            # sync.close() closed each thread's connections: the server no longer has them.
            for backend in (backend_a, backend_b):
                assert _alive(synced, backend) == 0

    def test_inside_a_running_loop_it_raises_instead_of_blocking(self, synced: str) -> None:
        pending = SyncList.query().first()

        async def inside() -> list[str]:
            codes = []
            for attempt in (
                lambda: sync.run(pending),
                lambda: SyncList.query().run_sync(),
                lambda: db.from_("sync_lists").run_sync(),
                sync.close,
            ):
                with pytest.raises(LucidError) as caught:
                    attempt()
                codes.append(caught.value.code)
                assert "await" in str(caught.value)
            return codes

        assert asyncio.run(inside()) == ["E_RUNNING_LOOP"] * 4
        # The refused coroutine was closed, not left to warn that it was never awaited.
        assert inspect.getcoroutinestate(pending) == "CORO_CLOSED"
        assert sync.run(SyncList.query().first()) is None

    def test_an_application_loop_and_the_sync_loop_keep_their_own_engines(
        self, synced: str
    ) -> None:
        # sync.run() in this thread, then asyncio.run() (another loop) in the same thread,
        # then sync.run() again: the sync loop's pooled connections stay usable throughout.
        sync.run(SyncList.create({"name": "before"}))
        before = sync.run(_backend(db.connection(), synced))

        async def app() -> list[str]:
            return [lst.name for lst in await SyncList.query()]

        assert asyncio.run(app()) == ["before"]
        assert sorted(lst.name for lst in SyncList.query().run_sync()) == ["before"]
        if synced != "sqlite":
            assert _alive(synced, before) == 1


async def _running_loop() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()


async def _backend(client: Any, dialect: str) -> Any:
    if dialect == "sqlite":
        return None
    rows = await client.raw_query(BACKEND_ID[dialect])
    return rows[0]["id"]


def _alive(dialect: str, backend: Any) -> int:
    rows = db.raw_query(LIVE[dialect], [backend]).run_sync()
    return int(rows[0]["n"])


# -- exit ------------------------------------------------------------------------------------
EXIT_SCRIPT = """
import asyncio, atexit, json, sys, threading

from lucid_orm import Database, db

URL, DIALECT = sys.argv[1], sys.argv[2]
BACKEND = {backend!r}
LIVE = {live!r}
seen = {{}}


def check() -> None:
    # Registered before lucid_orm.sync is imported: atexit runs it after sync's exit hook.
    from lucid_orm.database.connection import DEDICATED_LOOPS

    report = {{"dedicated_loops": len(DEDICATED_LOOPS), "loop_closed": seen["loop"].is_closed()}}
    if DIALECT != "sqlite":
        probe = Database()
        probe.configure(url=URL)

        async def alive() -> int:
            try:
                rows = await probe.raw_query(LIVE[DIALECT], [seen["backend"]])
                return int(rows[0]["n"])
            finally:
                await probe.close()

        report["alive"] = asyncio.run(alive())
    print(json.dumps(report), flush=True)


atexit.register(check)

from lucid_orm import sync  # noqa: E402

db.configure(url=URL)


async def work() -> None:
    seen["loop"] = asyncio.get_running_loop()
    if DIALECT != "sqlite":
        seen["backend"] = (await db.raw_query(BACKEND[DIALECT]))[0]["id"]
        rows = await db.raw_query(LIVE[DIALECT], [seen["backend"]])
        print("alive while running", rows[0]["n"], flush=True)
    else:
        await db.raw_query("select 1")


sync.run(work())
print("ran", flush=True)
"""


@pytest.mark.parametrize("dialect_name", DIALECTS)
def test_exit_closes_the_connections(dialect_name: str, tmp_path: Path) -> None:
    script = tmp_path / "exit_script.py"
    script.write_text(EXIT_SCRIPT.format(backend=BACKEND_ID, live=LIVE), encoding="utf-8")
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run(
        [sys.executable, str(script), _url(dialect_name, tmp_path), dialect_name],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[-2] == "ran", done.stdout
    if dialect_name != "sqlite":
        assert lines[0] == "alive while running 1", done.stdout
    report = __import__("json").loads(lines[-1])
    assert report["dedicated_loops"] == 0 and report["loop_closed"] is True
    if dialect_name != "sqlite":
        # The server no longer lists the script's connection while the process still runs.
        assert report["alive"] == 0
    assert "Traceback" not in done.stderr and "Unclosed" not in done.stderr, done.stderr


FORK_SCRIPT = """
import os, sys

from lucid_orm import db, sync

URL, DIALECT = sys.argv[1], sys.argv[2]
QUERY = {backend!r}.get(DIALECT, "select 1 as id")
db.configure(url=URL)


def backend() -> object:
    return sync.run(db.raw_query(QUERY))[0]["id"]


parent = backend()
pid = os.fork()
if pid == 0:
    # The parent's loop and connections are not the child's: it opens its own.
    print("child", backend(), flush=True)
    sync.close()
    os._exit(0)
os.waitpid(pid, 0)
print("parent", parent, backend(), flush=True)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.parametrize("dialect_name", DIALECTS)
def test_a_forked_child_opens_connections_of_its_own(dialect_name: str, tmp_path: Path) -> None:
    script = tmp_path / "fork_script.py"
    script.write_text(FORK_SCRIPT.format(backend=BACKEND_ID), encoding="utf-8")
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, str(script), _url(dialect_name, tmp_path), dialect_name],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(root)},
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    lines = dict(line.split(" ", 1) for line in done.stdout.strip().splitlines())
    child = lines["child"]
    first, after = lines["parent"].split()
    # The parent's pooled connection survived the child: the same one serves it after.
    assert first == after
    if dialect_name != "sqlite":
        assert child != first
    assert "Traceback" not in done.stderr, done.stderr
