"""The ``lucid-orm`` command line, run as a subprocess (``python -m lucid_orm``) in a fresh
project directory: generators, the migration lifecycle on every dialect, seeders, wiping,
the production guard, configuration files and error reporting.

``db:wipe`` and ``migration:fresh`` drop every table of their database, so on PostgreSQL and
MariaDB the commands run against a database of their own (``<test database>_cli``), created
here and dropped at the end. Subprocesses are slow (~1 s each): scenarios are grouped, and
commands that do not depend on each other run in parallel.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from lucid_orm.config import load_config
from lucid_orm.database import Database
from lucid_orm.errors import LucidError
from tests.conftest import DIALECTS
from tests.helpers import MYSQL_URL, PG_URL

SERVER_URLS = {"postgresql": PG_URL, "mysql": MYSQL_URL}
TIMEOUT = 60


# -- running the CLI ---------------------------------------------------------------------------
@dataclass
class Run:
    args: tuple[str, ...]
    code: int
    out: str
    err: str

    def ok(self) -> Run:
        assert self.code == 0, f"lucid-orm {' '.join(self.args)} failed:\n{self.out}\n{self.err}"
        return self

    def failed(self, *fragments: str) -> Run:
        assert self.code == 1, f"lucid-orm {' '.join(self.args)} exited {self.code}:\n{self.out}"
        assert "Traceback" not in self.err, self.err
        for fragment in fragments:
            assert fragment in self.err, f"{fragment!r} not in stderr:\n{self.err}"
        return self


# What the environment of the tests may hold that would change what a command does.
_CLI_VARIABLES = ("LUCID_ENV", "LUCID_CONFIG", "LUCID_DATABASE_URL", "DATABASE_URL")


def _env(extra: dict[str, str] | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _CLI_VARIABLES}
    env.update(extra or {})
    return env


def cli(cwd: Path, *args: str, env: dict[str, str] | None = None) -> Run:
    """Run ``python -m lucid_orm *args`` in ``cwd`` and wait for it."""
    (run,) = cli_many(cwd, [args], env=env)
    return run


def cli_many(
    cwd: Path, commands: Sequence[Sequence[str]], env: dict[str, str] | None = None
) -> list[Run]:
    """Run several independent commands at once; their results in order."""
    procs = [
        (
            tuple(args),
            subprocess.Popen(
                [sys.executable, "-m", "lucid_orm", *args],
                cwd=cwd,
                env=_env(env),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                encoding="utf-8",
            ),
        )
        for args in commands
    ]
    runs = []
    for args, proc in procs:
        out, err = proc.communicate(timeout=TIMEOUT)
        runs.append(Run(args, proc.returncode, out, err))
    return runs


# -- databases ---------------------------------------------------------------------------------
def _private_url(url: str) -> str:
    parsed = make_url(url)
    return parsed.set(database=f"{parsed.database}_cli").render_as_string(hide_password=False)


def _quoted(dialect: str, url: str) -> str:
    """The database name of ``url``, quoted for ``dialect``."""
    mark = '"' if dialect == "postgresql" else "`"
    return f"{mark}{make_url(url).database}{mark}"


async def _admin(url: str, *statements: str) -> None:
    admin = Database()
    admin.configure(url=url)
    try:
        for statement in statements:
            await admin.raw_query(statement)
    finally:
        await admin.close()


def _unreachable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
async def server_urls() -> AsyncIterator[dict[str, str]]:
    """A private database per server dialect (``<test database>_cli``), created on first use
    and dropped at the end of the module."""
    created: dict[str, str] = {}
    yield created
    for name, url in created.items():
        await _admin(SERVER_URLS[name], f"DROP DATABASE IF EXISTS {_quoted(name, url)}")


@pytest.fixture(params=DIALECTS)
async def project(
    request: pytest.FixtureRequest, tmp_path: Path, server_urls: dict[str, str]
) -> AsyncIterator[Project]:
    """An empty project directory configured for one dialect: a ``lucid_config.py`` naming
    ``database/app.db`` (SQLite) or the dialect's private database."""
    project = await _bare_project(request.param, tmp_path, server_urls)
    if project.dialect == "sqlite":
        (tmp_path / "lucid_config.py").write_text(SQLITE_CONFIG)
    else:
        connections = {"main": {"url": project.url}}
        (tmp_path / "lucid_config.py").write_text(
            f"DATABASE = {{'connection': 'main', 'connections': {connections!r}}}\n"
        )
    yield project
    await project.close()


@pytest.fixture(params=DIALECTS)
async def bare_project(
    request: pytest.FixtureRequest, tmp_path: Path, server_urls: dict[str, str]
) -> AsyncIterator[Project]:
    """An empty project directory with no configuration file, and the URL of the dialect's
    database (``database/app.db`` on SQLite) for the tests to hand over some other way."""
    project = await _bare_project(request.param, tmp_path, server_urls)
    yield project
    await project.close()


SQLITE_CONFIG = "DATABASE = {'url': 'sqlite:///database/app.db'}\n"


async def _bare_project(name: str, root: Path, server_urls: dict[str, str]) -> Project:
    if name == "sqlite":
        return Project(name, root, f"sqlite:///{root / 'database' / 'app.db'}")
    if name not in server_urls:
        base = SERVER_URLS[name]
        url = _private_url(base)
        try:
            await _admin(
                base,
                f"DROP DATABASE IF EXISTS {_quoted(name, url)}",
                f"CREATE DATABASE {_quoted(name, url)}",
            )
        except LucidError as exc:
            _unreachable(f"{name} is not reachable or refuses CREATE DATABASE: {exc}")
        server_urls[name] = url
    return Project(name, root, server_urls[name])


class Project:
    """A project directory and a connection to its database, to check what commands did."""

    def __init__(self, dialect: str, root: Path, url: str) -> None:
        self.dialect = dialect
        self.root = root
        self.url = url
        self._db: Database | None = None

    def _database(self) -> Database:
        if self._db is None:
            self._db = Database()
            self._db.configure(url=self.url)
        return self._db

    async def tables(self) -> set[str]:
        if self.dialect == "sqlite" and not (self.root / "database" / "app.db").exists():
            return set()
        async with self._database().engine().connect() as conn:
            return set(await conn.run_sync(lambda c: sa.inspect(c).get_table_names()))

    async def count(self, table: str) -> int:
        rows = await self._database().from_(table).count("* as total")
        return int(rows[0]["total"])

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()

    def write(self, relative: str, source: str) -> Path:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source).lstrip())
        return path


def _migration(root: Path, suffix: str, folder: str = "database/migrations") -> str:
    """The name (file stem) of the one migration of ``folder`` ending in ``suffix``."""
    (path,) = (root / folder).glob(f"*_{suffix}.py")
    return path.stem


SEEDER = """
    from database.factories.cli_widget_factory import CliWidgetFactory
    from lucid_orm.seeders import BaseSeeder


    class CliWidgetSeeder(BaseSeeder):
        async def run(self) -> None:
            await CliWidgetFactory.client(self.client).create_many(3)
"""

BROKEN_MIGRATION = """
    from lucid_orm.migrations import BaseSchema


    class CliBroken(BaseSchema):
        async def up(self) -> None:
            self.schema.raw("select * from cli_no_such_table")
"""


# -- generators --------------------------------------------------------------------------------
def test_make_commands_write_importable_ruff_clean_files(tmp_path: Path) -> None:
    model, alter, seeder, bad, both = cli_many(
        tmp_path,
        [
            ["make:model", "CliGadget", "-m", "-f"],
            ["make:migration", "add_color_to_cli_gadgets"],
            ["make:seeder", "CliGadget"],
            ["make:model", "1nope"],
            ["make:migration", "cli_x", "--create", "a", "--table", "b"],
        ],
    )
    assert "created app/models/cli_gadget.py" in model.ok().out
    assert "created database/factories/cli_gadget_factory.py" in model.out
    assert "created database/seeders/cli_gadget_seeder.py" in seeder.ok().out
    alter.ok()
    bad.failed('Invalid model name "1nope"')
    both.failed("--create or --table")
    create = _migration(tmp_path, "create_cli_gadgets_table")
    stamp = create.split("_")[0]
    assert stamp.isdigit() and len(stamp) == 13

    model_file = tmp_path / "app" / "models" / "cli_gadget.py"
    model_file.write_text(model_file.read_text().replace("(table ", "(edited, table "))
    edited = model_file.read_text()
    again, rename = cli_many(
        tmp_path,
        [["make:model", "CliGadget"], ["make:migration", "cli_rename", "--table", "cli_gadgets"]],
    )
    again.failed("app/models/cli_gadget.py", "already exists")
    assert model_file.read_text() == edited
    rename.ok()

    check = subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent("""
                import importlib.util, pathlib
                from lucid_orm.migrations import Migrator
                from app.models.cli_gadget import CliGadget
                from database.factories.cli_gadget_factory import CliGadgetFactory
                path = pathlib.Path("database/seeders/cli_gadget_seeder.py")
                spec = importlib.util.spec_from_file_location("seeder", path)
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
                print(CliGadget.table, CliGadgetFactory.model.__name__, module.CliGadgetSeeder)
                for f in Migrator("database/migrations").files():
                    print(f.name, f.schema.__name__, f.schema.table_name)
            """),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert check.returncode == 0, check.stderr
    assert "cli_gadgets CliGadget" in check.stdout
    assert f"{create} CreateCliGadgetsTable cli_gadgets" in check.stdout
    alter_name = _migration(tmp_path, "add_color_to_cli_gadgets")
    assert f"{alter_name} AddColorToCliGadgets cli_gadgets" in check.stdout
    assert f"{_migration(tmp_path, 'cli_rename')} CliRename cli_gadgets" in check.stdout

    ruff = [sys.executable, "-m", "ruff"]
    rules = ["--select", "E,F,W,I,UP,B,SIM,RUF", "--target-version", "py311"]
    lint = subprocess.run(
        [*ruff, "check", "--isolated", *rules, "."], cwd=tmp_path, capture_output=True
    )
    assert lint.returncode == 0, lint.stdout.decode()
    fmt = subprocess.run(
        [*ruff, "format", "--isolated", "--check", "."], cwd=tmp_path, capture_output=True
    )
    assert fmt.returncode == 0, fmt.stdout.decode()


# -- the migration lifecycle, per dialect ------------------------------------------------------
class TestLifecycle:
    async def test_migrate_seed_truncate_rollback_refresh_fresh_wipe(
        self, project: Project
    ) -> None:
        root = project.root
        cli(root, "make:model", "CliWidget", "-m", "-f").ok()
        project.write("database/seeders/cli_widget_seeder.py", SEEDER)
        name = _migration(root, "create_cli_widgets_table")

        run = cli(root, "migration:run").ok()
        assert f"✓ migrated {name}" in run.out
        assert "in batch 1" in run.out
        assert {"cli_widgets", "lucid_schema"} <= await project.tables()

        status, seed = cli_many(root, [["migration:status"], ["db:seed"]])
        assert name in status.ok().out and "completed" in status.out
        assert "✓ completed cli_widget_seeder" in seed.ok().out
        assert await project.count("cli_widgets") == 3

        cli(root, "db:truncate").ok()
        assert await project.count("cli_widgets") == 0
        assert await project.count("lucid_schema") == 1

        run = cli(root, "migration:rollback").ok()
        assert f"✓ reverted {name}" in run.out
        assert "cli_widgets" not in await project.tables()

        run = cli(root, "migration:refresh", "--seed").ok()
        assert f"✓ migrated {name}" in run.out and "✓ completed cli_widget_seeder" in run.out
        assert await project.count("cli_widgets") == 3

        production = {"LUCID_ENV": "production"}
        run = cli(root, "migration:fresh", "--force", env=production).ok()
        assert "cli_widgets" in run.out and f"✓ migrated {name}" in run.out
        assert await project.count("cli_widgets") == 0

        project.write("database/migrations/9999999999999_cli_broken.py", BROKEN_MIGRATION)
        run = cli(root, "migration:run").failed("9999999999999_cli_broken")
        assert "✗ failed to migrate 9999999999999_cli_broken" in run.out

        run = cli(root, "db:wipe", "--force", env=production).ok()
        assert "cli_widgets" in run.out
        assert await project.tables() == set()


# -- configuration and errors (SQLite) ---------------------------------------------------------
class TestConfig:
    async def test_pyproject_configuration(self, tmp_path: Path) -> None:
        (tmp_path / "pyproject.toml").write_text(
            textwrap.dedent("""
                [project]
                name = "demo"

                [tool.lucid-orm]
                database = { url = "sqlite:///var/cli.sqlite3" }
                migrations_path = "db/migrations"
                models_path = "src/models"
                migrations_table = "cli_schema"
                environment = "production"
            """)
        )
        make = cli(tmp_path, "make:model", "CliNote", "-m").ok()
        assert "created src/models/cli_note.py" in make.out
        assert _migration(tmp_path, "create_cli_notes_table", "db/migrations")

        refused, dry = cli_many(tmp_path, [["migration:run"], ["migration:run", "--dry-run"]])
        refused.failed("ENVIRONMENT in pyproject.toml", "--force")
        assert "CREATE TABLE cli_notes" in dry.ok().out and "Dry run" in dry.out

        cli(tmp_path, "migration:run", "--force").ok()
        database = Database()
        database.configure(url=f"sqlite:///{tmp_path / 'var' / 'cli.sqlite3'}")
        try:
            async with database.engine().connect() as conn:
                tables = await conn.run_sync(lambda c: sa.inspect(c).get_table_names())
        finally:
            await database.close()
        assert {"cli_notes", "cli_schema"} <= set(tables)

    def test_errors_and_the_production_guard(self, tmp_path: Path) -> None:
        (tmp_path / "lucid_config.py").write_text(SQLITE_CONFIG)
        (tmp_path / "broken").mkdir()
        (tmp_path / "broken" / "lucid_config.py").write_text("DATABASE = {'nope': 1}\n")
        (tmp_path / "database" / "seeders").mkdir(parents=True)
        (tmp_path / "database" / "seeders" / "cli_boom_seeder.py").write_text(
            textwrap.dedent("""
                from lucid_orm.seeders import BaseSeeder


                class CliBoom(BaseSeeder):
                    async def run(self) -> None:
                        raise RuntimeError("cli boom")
            """)
        )
        config, connection, seed, unknown, *refused = cli_many(
            tmp_path,
            [
                ["--config", "broken/lucid_config.py", "migration:status"],
                ["migration:status", "--connection", "cli_nope"],
                ["db:seed"],
                ["db:seed", "--files", "cli_missing"],
                ["migration:fresh"],
                ["db:wipe"],
                ["db:truncate"],
            ],
            env={"LUCID_ENV": "production"},
        )
        for command in refused:
            command.failed('"production" environment (LUCID_ENV): pass --force')
        assert not (tmp_path / "database" / "app.db").exists()
        config.failed("must be a mapping with a url or connections")
        connection.failed('Cannot find "cli_nope" connection')
        seed.failed('Seeder "cli_boom_seeder" failed: cli boom')
        assert "✗ failed cli_boom_seeder" in seed.out
        unknown.failed("Unknown seeder file(s) 'cli_missing'")

    def test_console_script(self) -> None:
        script = Path(sys.executable).with_name("lucid-orm")
        if not script.exists():
            pytest.skip("the lucid-orm console script is not installed in this environment")
        result = subprocess.run([script, "--help"], capture_output=True, text=True)
        assert result.returncode == 0
        for command in ("make:model", "migration:fresh", "db:wipe", "migration:status"):
            assert command in result.stdout

    def test_load_config(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("LUCID_ENV", raising=False)
        for variable in ("LUCID_DATABASE_URL", "DATABASE_URL"):
            monkeypatch.delenv(variable, raising=False)
        root = tmp_path.resolve()
        default = load_config(tmp_path)
        assert default.source is None and default.environment == "development"
        # No file: no database (commands that need one stop), and where it looked.
        assert default.database is None and default.connection_names == []
        assert default.searched == (root / "lucid_config.py", root / "pyproject.toml")
        assert default.migrations_path == root / "database" / "migrations"
        with pytest.raises(LucidError, match="No database configured") as missing:
            default.configure_db()
        assert missing.value.code == "E_MISSING_DATABASE"
        assert str(root / "lucid_config.py") in str(missing.value)

        # Relative SQLite paths of a variable resolve against the project directory.
        monkeypatch.setenv("DATABASE_URL", "sqlite:///var/env.db")
        from_env = load_config(tmp_path)
        assert from_env.database == {"url": f"sqlite:///{root}/var/env.db"}
        assert from_env.database_source == "DATABASE_URL"
        monkeypatch.setenv("LUCID_DATABASE_URL", "postgres://u@h/lucid")
        assert load_config(tmp_path).database == {"url": "postgres://u@h/lucid"}
        assert load_config(tmp_path).database_source == "LUCID_DATABASE_URL"

        # A file that names no database: the variables, else database/app.db.
        (tmp_path / "pyproject.toml").write_text('[tool.lucid-orm]\nmodels_path = "src"\n')
        assert load_config(tmp_path).database == {"url": "postgres://u@h/lucid"}
        monkeypatch.delenv("LUCID_DATABASE_URL")
        monkeypatch.delenv("DATABASE_URL")
        assert load_config(tmp_path).database == {"url": f"sqlite:///{root}/database/app.db"}

        # A file that names one wins over the variables.
        monkeypatch.setenv("LUCID_DATABASE_URL", "postgres://u@h/lucid")
        (tmp_path / "pyproject.toml").write_text('[tool.lucid-orm]\nurl = "sqlite://:memory:"\n')
        assert load_config(tmp_path).database == {"url": "sqlite://:memory:"}
        assert load_config(tmp_path).database_source == "pyproject.toml"
        (tmp_path / "lucid_config.py").write_text(
            "DATABASE = {'url': 'postgresql://u@h/db'}\nENVIRONMENT = 'production'\n"
            "SCHEMA_OUTPUT = 'app/schema.py'\n"
        )
        config = load_config(tmp_path)
        assert config.source == tmp_path.resolve() / "lucid_config.py"
        assert config.database == {"url": "postgresql://u@h/db"} and config.is_production
        assert config.schema_output == tmp_path.resolve() / "app" / "schema.py"
        monkeypatch.setenv("LUCID_ENV", "staging")
        assert load_config(tmp_path).environment == "staging"

        (tmp_path / "other.toml").write_text("[tool.lucid-orm]\nmigration_path = 'x'\n")
        with pytest.raises(LucidError, match='Unknown setting "migration_path"') as info:
            load_config(tmp_path, path=Path("other.toml"))
        assert info.value.code == "E_INVALID_CONFIG"


# -- where the database comes from: configuration, environment, or a refusal --------------------
class TestDatabaseUrl:
    def test_no_configuration_stops_and_says_where_it_looked(self, tmp_path: Path) -> None:
        root = tmp_path.resolve()
        *needs_database, make = cli_many(
            tmp_path,
            [
                ["migration:run"],
                ["migration:status"],
                ["migration:unlock"],
                ["db:seed"],
                ["db:wipe"],
                ["schema:generate"],
                ["make:model", "CliLonely"],
            ],
        )
        for run in needs_database:
            run.failed(
                "No database configured",
                f'"{root / "lucid_config.py"}"',
                f'"{root / "pyproject.toml"}"',
                "LUCID_DATABASE_URL or DATABASE_URL",
            )
        # Nothing created in the wrong folder; file generators need no database.
        assert not (tmp_path / "database").exists()
        assert "created app/models/cli_lonely.py" in make.ok().out

    async def test_environment_variables_name_the_database(self, bare_project: Project) -> None:
        root = bare_project.root
        cli(root, "make:model", "CliEnvNote", "-m").ok()
        name = _migration(root, "create_cli_env_notes_table")
        url = bare_project.url
        if bare_project.dialect == "sqlite":
            url = "sqlite:///database/app.db"  # relative: resolved against the project folder
        # LUCID_DATABASE_URL wins over DATABASE_URL (here a file elsewhere).
        env = {"LUCID_DATABASE_URL": url, "DATABASE_URL": "sqlite:///elsewhere/cli.db"}
        run = cli(root, "migration:run", env=env).ok()
        assert f"✓ migrated {name}" in run.out
        assert {"cli_env_notes", "lucid_schema"} <= await bare_project.tables()
        assert not (root / "elsewhere").exists()

        status = cli(root, "migration:status", env={"DATABASE_URL": url}).ok()
        assert name in status.out and "completed" in status.out

        # A configuration file that names a database wins over both variables.
        (root / "pyproject.toml").write_text('[tool.lucid-orm]\nurl = "sqlite:///var/own.db"\n')
        run = cli(root, "migration:run", env=env).ok()
        assert f"✓ migrated {name}" in run.out
        assert (root / "var" / "own.db").is_file()


# -- migration:unlock, per dialect ---------------------------------------------------------------
STALL_MIGRATION = """
    import asyncio
    import os

    from lucid_orm.migrations import BaseSchema
    from lucid_orm.schema import TableBuilder


    class CliStall(BaseSchema):
        async def up(self) -> None:
            mode = os.environ.get("CLI_STALL")
            if mode == "crash":  # a runner killed mid-migration
                os._exit(3)
            if mode == "hang":  # a runner stuck mid-migration, its session alive
                print("holding the lock", flush=True)
                await asyncio.sleep(TIMEOUT)

            def define(table: TableBuilder) -> None:
                table.increments("id")

            self.schema.create_table("cli_stalls", define)

        async def down(self) -> None:
            self.schema.drop_table("cli_stalls")
""".replace("TIMEOUT", str(TIMEOUT))


class TestUnlock:
    async def test_unlock_clears_a_stale_lock(self, project: Project) -> None:
        root = project.root
        project.write("database/migrations/1000_cli_stall.py", STALL_MIGRATION)
        nothing = cli(root, "migration:unlock").ok()
        assert 'No migrations lock held on "lucid_schema"' in nothing.out

        hung: subprocess.Popen[str] | None = None
        try:
            if project.dialect == "sqlite":
                # A crashed runner leaves its row in lucid_schema_lock.
                crashed = cli(root, "migration:run", env={"CLI_STALL": "crash"})
                assert crashed.code == 3
                expected = 'removed the lock row of "lucid_schema_lock" taken at'
            else:
                # Session locks go with a crashed runner's session: a hung one keeps it.
                hung = subprocess.Popen(
                    [sys.executable, "-m", "lucid_orm", "migration:run"],
                    cwd=root,
                    env=_env({"CLI_STALL": "hang"}),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                assert hung.stdout is not None
                assert "holding the lock" in hung.stdout.readline()
                lock = "pg_advisory_lock(" if project.dialect == "postgresql" else "GET_LOCK("
                expected = f"which held {lock}"

            locked = cli(root, "migration:run").failed(
                "Another migration runner holds the lock", "lucid-orm migration:unlock"
            )
            assert "✓ migrated" not in locked.out
            refused = cli(root, "migration:unlock", env={"LUCID_ENV": "production"})
            refused.failed('Refusing to clear the migrations lock in the "production"')

            unlocked = cli(root, "migration:unlock").ok()
            assert "✓ Unlocked: " in unlocked.out and expected in unlocked.out, unlocked.out
            # While the hung runner still sleeps: the lock is free.
            run = cli(root, "migration:run").ok()
            assert "✓ migrated 1000_cli_stall" in run.out
            assert "cli_stalls" in await project.tables()
            again = cli(root, "migration:unlock").ok()
            assert "nothing to clear" in again.out
        finally:
            if hung is not None:
                hung.kill()
                hung.communicate(timeout=TIMEOUT)


# -- --traceback and the progress lines (SQLite) ---------------------------------------------------
FAILING_MIGRATION = """
    from lucid_orm.migrations import BaseSchema
    from lucid_orm.schema import TableBuilder


    def check_plan() -> None:
        raise RuntimeError("cli kaboom")


    class CliKaboom(BaseSchema):
        async def up(self) -> None:
            def define(table: TableBuilder) -> None:
                table.increments("id")

            self.schema.create_table("cli_kabooms", define)

        async def down(self) -> None:
            check_plan()
"""


class TestTraceback:
    def test_traceback_flag_shows_the_failing_migration(self, tmp_path: Path) -> None:
        (tmp_path / "lucid_config.py").write_text(SQLITE_CONFIG)
        migration = tmp_path / "database" / "migrations" / "1000_cli_kaboom.py"
        migration.parent.mkdir(parents=True)
        migration.write_text(textwrap.dedent(FAILING_MIGRATION).lstrip())
        assert "✓ migrated 1000_cli_kaboom" in cli(tmp_path, "migration:run").ok().out

        plain, flag_first, flag_after = cli_many(
            tmp_path,
            [
                ["migration:rollback", "--dry-run"],
                ["--traceback", "migration:rollback", "--dry-run"],
                ["migration:rollback", "--dry-run", "--traceback"],
            ],
        )
        # Without the flag: the message only, and the progress line reads "revert".
        plain.failed('Migration "1000_cli_kaboom" failed (down): cli kaboom')
        assert "✗ failed to revert 1000_cli_kaboom" in plain.out
        for run in (flag_first, flag_after):
            assert run.code == 1, run.err
            assert "Traceback (most recent call last)" in run.err
            assert f'File "{migration.resolve()}"' in run.err or f'File "{migration}"' in run.err
            assert 'raise RuntimeError("cli kaboom")' in run.err
            assert "RuntimeError: cli kaboom" in run.err
            assert "MigrationError" in run.err
            assert 'Migration "1000_cli_kaboom" failed (down): cli kaboom' in run.err

        helps = cli_many(tmp_path, [["--help"], ["migration:run", "--help"], ["db:seed", "-h"]])
        for help_run in helps:
            assert "--traceback" in help_run.ok().out
        unlock_help = cli(tmp_path, "migration:unlock", "--help").ok()
        assert "stale migrations lock" in unlock_help.out
