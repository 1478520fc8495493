"""The migrator on every dialect: batches, rollback by batch and step, reset, refresh, fresh,
status, failures (rolled back and not recorded), missing files, dry runs, events and the lock
(two processes on PostgreSQL).

Each test writes its migration files into ``tmp_path`` and runs them on a connection of its
own, ``"mig"``: a separate SQLite file, a ``lucid_mig`` schema on PostgreSQL, a ``<db>_mig``
database on MySQL — so ``fresh()`` can drop every table without touching the suite's.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import textwrap
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from lucid_orm import QueryError, db
from lucid_orm.errors import IntegrityError, MigrationError
from lucid_orm.migrations import MigrationEvent, Migrator
from tests.helpers import DialectConfig

ROOT = Path(__file__).resolve().parents[2]
PG_SCHEMA = "lucid_mig"


@pytest.fixture(scope="session")
async def mig_config(dialect: str) -> AsyncIterator[dict[str, Any]]:
    """The ``"mig"`` connection's config for this dialect (its schema/database created)."""
    url = db.get_connection().url
    config: dict[str, Any]
    if dialect == "sqlite":
        yield {}
        return
    if dialect == "postgresql":
        await db.raw_query(f"create schema if not exists {PG_SCHEMA}")
        config = {
            "url": url.render_as_string(hide_password=False),
            "connect_args": {"server_settings": {"search_path": PG_SCHEMA}},
        }
        yield config
        await db.raw_query(f"drop schema if exists {PG_SCHEMA} cascade")
        return
    name = f"{url.database}_mig"
    await db.raw_query(f"create database if not exists {name}")
    yield {"url": url.set(database=name).render_as_string(hide_password=False)}
    await db.raw_query(f"drop database if exists {name}")


@dataclass
class Project:
    """A migrations folder and the ``"mig"`` connection it runs on."""

    path: Path
    dialect: str

    def write(self, name: str, up: str = "", down: str = "", body: str = "") -> Path:
        """Write ``<name>.py`` with one migration class (``up``/``down`` are method bodies)."""
        source = "from lucid_orm.migrations import BaseSchema\n\n\n"
        source += "class Migration(BaseSchema):\n"
        source += textwrap.indent(textwrap.dedent(body), "    ") + "\n" if body else ""
        source += "    async def up(self):\n"
        source += textwrap.indent(textwrap.dedent(up) or "pass", "        ") + "\n\n"
        source += "    async def down(self):\n"
        source += textwrap.indent(textwrap.dedent(down) or "pass", "        ") + "\n"
        file = self.path / f"{name}.py"
        file.write_text(source, encoding="utf-8")
        return file

    def table(self, name: str, number: str) -> Path:
        """A migration creating ``name`` (dropped by ``down``)."""
        return self.write(
            f"{number}_create_{name}",
            up=f'self.schema.create_table("{name}", lambda t: (t.increments(), t.string("x")))',
            down=f'self.schema.drop_table("{name}")',
        )

    def migrator(self, **kwargs: Any) -> Migrator:
        return Migrator(self.path, connection="mig", **kwargs)

    async def tables(self) -> set[str]:
        async with db.engine("mig").connect() as conn:
            names: list[str] = await conn.run_sync(lambda c: sa.inspect(c).get_table_names())
        return set(names)

    async def recorded(self) -> list[tuple[str, int]]:
        return [
            (r["name"], r["batch"]) for r in await db.from_("lucid_schema", "mig").order_by("id")
        ]


@pytest.fixture
async def project(
    dialect_config: DialectConfig, mig_config: dict[str, Any], tmp_path: Path
) -> AsyncIterator[Project]:
    connection = dict(mig_config) or {"url": f"sqlite:///{tmp_path / 'mig.sqlite3'}"}
    db.configure(
        connection=dialect_config.name,
        connections={**dialect_config.connections, "mig": connection},
    )
    folder = tmp_path / "migrations"
    folder.mkdir()
    project = Project(folder, dialect_config.name)
    await project.migrator()._wipe()  # whatever an earlier, interrupted run left
    try:
        yield project
    finally:
        try:
            await project.migrator()._wipe()
        finally:
            await db.close()
            await dialect_config.restore()


class TestRun:
    async def test_run_records_one_batch_then_nothing(self, project: Project) -> None:
        project.table("mig_users", "1000")
        project.table("mig_posts", "1001")
        result = await project.migrator().run()
        assert result.names == ["1000_create_mig_users", "1001_create_mig_posts"]
        assert result.batch == 1 and all(f.direction == "up" for f in result.files)
        assert all(f.duration_ms > 0 and f.sql == [] for f in result.files)
        assert {"mig_users", "mig_posts", "lucid_schema"} <= await project.tables()
        assert await project.recorded() == [
            ("1000_create_mig_users", 1),
            ("1001_create_mig_posts", 1),
        ]
        again = await project.migrator().run()
        assert again.files == [] and again.batch is None

    async def test_status(self, project: Project) -> None:
        project.table("mig_users", "1000")
        assert [(s.name, s.status) for s in await project.migrator().status()] == [
            ("1000_create_mig_users", "pending")
        ]
        await project.migrator().run()
        project.table("mig_posts", "1001")
        lines = await project.migrator().status()
        assert [(s.name, s.status, s.batch) for s in lines] == [
            ("1000_create_mig_users", "completed", 1),
            ("1001_create_mig_posts", "pending", None),
        ]
        assert lines[0].migrated_at is not None and lines[0].migrated_at.tzinfo is not None
        assert lines[0].path == project.path / "1000_create_mig_users.py"

    async def test_defer_and_data_in_the_migration(self, project: Project) -> None:
        project.write(
            "1000_roles",
            up="""
                self.schema.create_table("mig_roles", lambda t: (t.increments(), t.string("name")))
                self.defer(lambda client: client.table("mig_roles").insert({"name": "admin"}))
            """,
        )
        await project.migrator().run()
        assert [r["name"] for r in await db.from_("mig_roles", "mig")] == ["admin"]

    async def test_postgresql_disable_transactions(self, project: Project) -> None:
        if project.dialect != "postgresql":
            pytest.skip("CREATE INDEX CONCURRENTLY is PostgreSQL's")
        project.table("mig_users", "1000")
        project.write(
            "1001_index_concurrently",
            body="disable_transactions = True\n",
            up='self.schema.raw("create index concurrently mig_users_x on mig_users (x)")',
        )
        await project.migrator().run()
        assert len(await project.recorded()) == 2


class TestRollback:
    async def three_batches(self, project: Project) -> None:
        for number, table in (("1000", "mig_a"), ("1001", "mig_b")):
            project.table(table, number)
        await project.migrator().run()
        project.table("mig_c", "1002")
        await project.migrator().run()
        project.table("mig_d", "1003")
        await project.migrator().run()

    async def test_default_is_the_last_batch(self, project: Project) -> None:
        await self.three_batches(project)
        result = await project.migrator().rollback()
        assert result.names == ["1003_create_mig_d"] and result.batch == 2
        assert result.files[0].direction == "down" and result.files[0].batch == 3
        assert "mig_d" not in await project.tables()
        assert [b for _, b in await project.recorded()] == [1, 1, 2]

    async def test_to_a_batch_and_all(self, project: Project) -> None:
        await self.three_batches(project)
        result = await project.migrator().rollback(batch=1)
        assert result.names == ["1003_create_mig_d", "1002_create_mig_c"]
        assert await project.recorded() == [("1000_create_mig_a", 1), ("1001_create_mig_b", 1)]
        result = await project.migrator().rollback(batch=0)
        assert result.names == ["1001_create_mig_b", "1000_create_mig_a"] and result.batch == 0
        assert await project.recorded() == []
        assert not {"mig_a", "mig_b"} & await project.tables()

    async def test_by_step(self, project: Project) -> None:
        await self.three_batches(project)
        result = await project.migrator().rollback(step=3)
        assert result.names == ["1003_create_mig_d", "1002_create_mig_c", "1001_create_mig_b"]
        assert await project.recorded() == [("1000_create_mig_a", 1)]
        with pytest.raises(Exception, match="n >= 1"):
            await project.migrator().rollback(step=0)

    async def test_reset_refresh_fresh(self, project: Project) -> None:
        await self.three_batches(project)
        reset = await project.migrator().reset()
        assert len(reset.reverted) == 4 and await project.recorded() == []

        await project.migrator().run()
        await db.connection("mig").table("mig_a").insert({"x": "gone after refresh"})
        refreshed = await project.migrator().refresh()
        assert [f.direction for f in refreshed.files] == ["down"] * 4 + ["up"] * 4
        assert refreshed.batch == 1 and len(await project.recorded()) == 4
        assert await db.from_("mig_a", "mig") == []

        await db.connection("mig").raw_query("create table mig_stray (id integer)")
        fresh = await project.migrator().fresh()
        assert {"mig_stray", "mig_a", "lucid_schema"} <= set(fresh.dropped_tables)
        assert "mig_stray" not in await project.tables()
        assert [f.direction for f in fresh.files] == ["up"] * 4
        assert [b for _, b in await project.recorded()] == [1, 1, 1, 1]

    async def test_missing_file_stops_rollback(self, project: Project) -> None:
        await self.three_batches(project)
        (project.path / "1002_create_mig_c.py").unlink()
        status = {s.name: s.status for s in await project.migrator().status()}
        assert status["1002_create_mig_c"] == "corrupt"
        with pytest.raises(MigrationError) as info:
            await project.migrator().rollback(batch=1)
        assert info.value.code == "E_MIGRATION_CORRUPT"
        assert info.value.file == "1002_create_mig_c" and '"1002_create_mig_c"' in str(info.value)
        assert len(await project.recorded()) == 4  # nothing rolled back, not even mig_d
        assert "mig_d" in await project.tables()
        # A rollback that doesn't need the file still works.
        assert (await project.migrator().rollback()).names == ["1003_create_mig_d"]


class TestFailures:
    async def test_failure_rolls_back_the_migration_and_stops(self, project: Project) -> None:
        project.table("mig_a", "1000")
        project.write(
            "1001_broken",
            up="""
                self.schema.create_table("mig_half", lambda t: t.increments())
                self.schema.raw("insert into mig_no_such_table (id) values (1)")
            """,
        )
        project.table("mig_c", "1002")
        events: list[MigrationEvent] = []
        with pytest.raises(MigrationError) as info:
            await project.migrator(on_event=events.append).run()
        error = info.value
        assert error.code == "E_MIGRATION_FAILED" and error.file == "1001_broken"
        assert str(error).startswith('Migration "1001_broken" failed (up): ')
        assert isinstance(error.__cause__, QueryError) and error.original is error.__cause__
        assert [(e.name, e.phase) for e in events] == [
            ("1000_create_mig_a", "start"),
            ("1000_create_mig_a", "done"),
            ("1001_broken", "start"),
            ("1001_broken", "error"),
        ]
        assert events[-1].error is error.__cause__
        assert await project.recorded() == [("1000_create_mig_a", 1)]
        tables = await project.tables()
        assert "mig_a" in tables and "mig_c" not in tables
        if project.dialect == "mysql":
            # No transactional DDL: what ran before the failure stays; the message says so.
            assert "mig_half" in tables and "MySQL cannot roll back DDL" in str(error)
        else:
            assert "mig_half" not in tables
        # The lock was released: fixing the file lets the next run go on.
        project.write(
            "1001_broken",
            up='self.schema.create_table_if_not_exists("mig_half", lambda t: t.increments())',
        )
        result = await project.migrator().run()
        assert result.names == ["1001_broken", "1002_create_mig_c"] and result.batch == 2

    async def test_deferred_writes_roll_back_with_their_migration(self, project: Project) -> None:
        project.table("mig_a", "1000")
        await project.migrator().run()
        project.write(
            "1001_seed",
            up="""
                self.defer(lambda c: c.table("mig_a").insert({"x": "seeded"}))
                self.schema.raw("select * from mig_no_such_table")
            """,
        )
        with pytest.raises(MigrationError):
            await project.migrator().run()
        rows = await db.from_("mig_a", "mig")
        # MySQL: the deferred insert autocommitted before the failing statement.
        assert len(rows) == (1 if project.dialect == "mysql" else 0)

    async def test_dangling_foreign_key_fails_the_migration(self, project: Project) -> None:
        project.write(
            "1000_users_posts",
            up="""
                self.schema.create_table("mig_users", lambda t: t.increments())
                self.schema.create_table("mig_posts", lambda t: (
                    t.increments(),
                    t.integer("user_id").unsigned().references("mig_users.id"),
                ))
                self.defer(lambda c: c.table("mig_posts").insert({"user_id": 42}))
            """,
        )
        with pytest.raises(MigrationError) as info:
            await project.migrator().run()
        assert isinstance(info.value.__cause__, IntegrityError)
        assert await project.recorded() == []

    async def test_files_that_cannot_load(self, project: Project) -> None:
        project.table("mig_a", "1000")
        bad = project.path / "1001_bad.py"
        cases = {
            "x = 1\n": "defines no BaseSchema subclass",
            "from lucid_orm.migrations import BaseSchema\n"
            "class A(BaseSchema): ...\nclass B(BaseSchema): ...\n": "defines 2 BaseSchema",
            "def broken(:\n": "SyntaxError",
        }
        for source, message in cases.items():
            bad.write_text(source, encoding="utf-8")
            with pytest.raises(MigrationError, match=message) as info:
                await project.migrator().run()
            assert info.value.code == "E_INVALID_MIGRATION" and info.value.file == "1001_bad"
            assert "1001_bad.py" in str(info.value)
        assert "mig_a" not in await project.tables()  # nothing runs before every file loads


class TestDryRun:
    async def test_run_and_rollback_print_sql_and_change_nothing(self, project: Project) -> None:
        project.table("mig_a", "1000")
        project.write(
            "1001_b",
            up="""
                self.schema.create_table("mig_b", lambda t: t.increments())
                self.defer(lambda c: c.table("mig_b").insert({}))
            """,
            down='self.schema.drop_table("mig_b")',
        )
        events: list[MigrationEvent] = []
        result = await project.migrator(dry_run=True, on_event=events.append).run()
        assert result.dry_run and result.names == ["1000_create_mig_a", "1001_b"]
        assert result.sql["1000_create_mig_a"][0].startswith("CREATE TABLE mig_a")
        assert result.sql["1001_b"][1] == "-- deferred: <lambda>"
        assert [e.sql for e in events if e.phase == "done"] == list(result.sql.values())
        assert await project.tables() == set()  # not even the migrations table

        await project.migrator().run()
        down = await project.migrator(dry_run=True).rollback()
        assert down.sql == {
            "1001_b": ["DROP TABLE mig_b"],
            "1000_create_mig_a": ["DROP TABLE mig_a"],
        }
        assert {"mig_a", "mig_b"} <= await project.tables()
        assert len(await project.recorded()) == 2

        fresh = await project.migrator(dry_run=True).fresh()
        assert {"mig_a", "mig_b", "lucid_schema"} <= set(fresh.dropped_tables)
        assert fresh.names == ["1000_create_mig_a", "1001_b"]
        assert {"mig_a", "mig_b"} <= await project.tables()


class TestLock:
    async def test_a_held_lock_fails_fast(self, project: Project) -> None:
        project.table("mig_a", "1000")
        holder = project.migrator()
        async with holder._lock():
            with pytest.raises(MigrationError) as info:
                await project.migrator().run()
            assert info.value.code == "E_MIGRATIONS_LOCKED"
            assert "concurrent migrations are not allowed" in str(info.value)
            assert await project.migrator().status()  # status needs no lock
        assert (await project.migrator().run()).names == ["1000_create_mig_a"]

    async def test_sqlite_unlock_removes_a_stale_lock(self, project: Project) -> None:
        if project.dialect != "sqlite":
            pytest.skip("PostgreSQL and MySQL locks end with the session")
        project.table("mig_a", "1000")
        await db.connection("mig").raw_query(
            "create table lucid_schema_lock (id integer primary key, locked_at datetime)"
        )
        await db.connection("mig").raw_query("insert into lucid_schema_lock (id) values (1)")
        with pytest.raises(MigrationError, match=r"Migrator\.unlock"):
            await project.migrator().run()
        await project.migrator().unlock()
        assert (await project.migrator().run()).names == ["1000_create_mig_a"]

    async def test_two_processes_on_postgresql(
        self, project: Project, mig_config: dict[str, Any]
    ) -> None:
        if project.dialect != "postgresql":
            pytest.skip("the two-process test runs on PostgreSQL")
        project.table("mig_a", "1000")
        project.write(
            "1001_slow",
            up="""
                self.schema.create_table("mig_slow", lambda t: t.increments())
                self.schema.raw("select pg_sleep(1)")
            """,
        )
        script = textwrap.dedent(
            f"""
            import asyncio, json, sys
            from lucid_orm import db
            from lucid_orm.migrations import Migrator

            async def main():
                db.configure(connection="mig", connections={{"mig": {json.dumps(mig_config)}}})
                await db.raw_query("select 1")       # connected before the start signal
                print("ready", flush=True)
                sys.stdin.readline()
                try:
                    result = await Migrator({str(project.path)!r}, connection="mig").run()
                    print(json.dumps({{"migrated": result.names}}), flush=True)
                except Exception as exc:
                    print(json.dumps({{"error": getattr(exc, "code", repr(exc))}}), flush=True)
                finally:
                    await db.close()

            asyncio.run(main())
            """
        )
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                script,
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            for _ in range(2)
        ]
        for proc in procs:
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), 30)
            assert line.strip() == b"ready", (await proc.stderr.read()).decode()  # type: ignore[union-attr]
        for proc in procs:  # start both at once
            assert proc.stdin is not None
            proc.stdin.write(b"go\n")
            await proc.stdin.drain()
        outcomes = []
        for proc in procs:
            out, err = await asyncio.wait_for(proc.communicate(), 30)
            assert proc.returncode == 0, err.decode()
            outcomes.append(json.loads(out.decode().strip().splitlines()[-1]))
        assert sorted(outcomes, key=str) == sorted(
            [{"migrated": ["1000_create_mig_a", "1001_slow"]}, {"error": "E_MIGRATIONS_LOCKED"}],
            key=str,
        )
        assert await project.recorded() == [("1000_create_mig_a", 1), ("1001_slow", 1)]
