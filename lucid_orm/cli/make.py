"""``make:model``, ``make:migration``, ``make:seeder``, ``make:factory``: write new files from
the stubs in ``templates`` (never over an existing file)."""

from __future__ import annotations

import keyword
import re
import time
from dataclasses import dataclass
from pathlib import Path

import click
import inflection

from ..errors import LucidError
from ..orm.naming import snake_case
from . import templates
from .app import CliState, connection_option, pass_state


@dataclass(frozen=True)
class _Name:
    """A name given on the command line, split into its folders and its snake_case stem:
    ``admin/BlogPost`` → ``folders=("admin",)``, ``snake="blog_post"``."""

    folders: tuple[str, ...]
    snake: str

    @classmethod
    def parse(cls, given: str, what: str) -> _Name:
        parts = [part for part in re.split(r"[/\\]", given.strip()) if part] or [""]
        snake = snake_case(parts[-1].removesuffix(".py"))
        folders = [snake_case(folder) for folder in parts[:-1]]
        for part in (*folders, snake):
            if not part.isidentifier() or keyword.iskeyword(part):
                raise LucidError(
                    f'Invalid {what} name "{given}": use letters, digits and underscores, '
                    "starting with a letter (and no Python keyword)",
                    code="E_INVALID_NAME",
                )
        return cls(tuple(folders), snake)

    @property
    def singular(self) -> str:
        return str(inflection.singularize(self.snake))

    @property
    def plural(self) -> str:
        return str(inflection.pluralize(self.snake))

    @property
    def pascal(self) -> str:
        return str(inflection.camelize(self.snake))

    def file(self, folder: Path, stem: str) -> Path:
        return folder.joinpath(*self.folders, f"{stem}.py")


def _write(state: CliState, path: Path, source: str) -> None:
    if path.exists():
        raise LucidError(
            f'"{state.relative(path)}" already exists: not overwriting it', code="E_FILE_EXISTS"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source, encoding="utf-8")
    state.success(f"created {state.relative(path)}")


def _timestamp(folder: Path) -> int:
    """Milliseconds since the epoch, later than every migration already in ``folder`` so that
    files made in one millisecond still run in the order they were made."""
    now = int(time.time() * 1000)
    stamps = [m[1] for p in folder.glob("*.py") if (m := re.match(r"(\d+)_", p.name))]
    return max(now, max(map(int, stamps), default=0) + 1)


_CREATE = re.compile(r"^create_(?P<table>\w+?)(?:_table)?$")
_ALTER = re.compile(
    r"^(?:add|drop|remove|rename|change|alter|update|modify)_\w+?_(?:to|from|in|on|of)_"
    r"(?P<table>\w+?)(?:_table)?$"
)


def _migration_plan(name: _Name, create: str | None, table: str | None) -> tuple[str, str, bool]:
    """``(file stem without timestamp, table, creates)`` for ``make:migration``.

    ``--create``/``--table`` name the table; without them a ``create_<table>_table`` or
    ``add_<x>_to_<table>`` style name says it, and any other name is a table name as in Lucid
    (``users`` → ``create_users_table``).
    """
    if create and table:
        raise LucidError("Pass --create or --table, not both", code="E_INVALID_ARGUMENT")
    if create or table:
        target = _Name.parse(create or table or "", "table").snake
        return name.snake, target, bool(create)
    if match := _CREATE.match(name.snake):
        return name.snake, match["table"], True
    if match := _ALTER.match(name.snake):
        return name.snake, match["table"], False
    return f"create_{name.plural}_table", name.plural, True


def make_migration_file(
    state: CliState, name: _Name, create: str | None = None, table: str | None = None
) -> Path:
    if name.folders:
        raise LucidError(
            "Migrations live directly in MIGRATIONS_PATH: give a name without folders",
            code="E_INVALID_NAME",
        )
    stem, target, creates = _migration_plan(name, create, table)
    folder = state.config.migrations_path
    path = folder / f"{_timestamp(folder)}_{stem}.py"
    class_name = str(inflection.camelize(stem))
    if creates:
        source = templates.create_table_migration(class_name, target)
    else:
        source = templates.alter_table_migration(class_name, target)
    _write(state, path, source)
    return path


def make_factory_file(state: CliState, name: _Name) -> Path:
    config = state.config
    model_class = str(inflection.camelize(name.singular))
    path = name.file(config.factories_path, f"{name.singular}_factory")
    models = config.module_path(config.models_path)
    if models is None:
        raise LucidError(
            f'Cannot import models from "{config.models_path}": MODELS_PATH must be a folder '
            f'inside the project ("{config.root}") made of Python identifiers',
            code="E_INVALID_CONFIG",
        )
    module = ".".join([models, *name.folders, name.singular])
    first_party = (config.root / models.split(".")[0]).is_dir()
    source = templates.factory(f"{model_class}Factory", model_class, module, first_party)
    _write(state, path, source)
    return path


@click.command("make:model")
@click.argument("name")
@click.option("-m", "--migration", is_flag=True, help="Also make a migration creating its table.")
@click.option("-f", "--factory", is_flag=True, help="Also make a factory for it.")
@pass_state
def make_model(state: CliState, name: str, migration: bool, factory: bool) -> None:
    """Make a model (-m: its migration, -f: its factory).

    `make:model BlogPost -m -f` writes app/models/blog_post.py (MODELS_PATH), a migration
    creating the blog_posts table and database/factories/blog_post_factory.py.
    """
    parsed = _Name.parse(name, "model")
    class_name = str(inflection.camelize(parsed.singular))
    # The table the default naming strategy gives the class (User -> users).
    table = str(inflection.pluralize(snake_case(class_name)))
    path = parsed.file(state.config.models_path, parsed.singular)
    _write(state, path, templates.model(class_name, table))
    if migration:
        make_migration_file(state, _Name((), f"create_{table}_table"), create=table)
    if factory:
        make_factory_file(state, parsed)


def make_auto_migration(
    state: CliState, name: _Name, models: str | None, connection: str | None
) -> Path | None:
    """``make:migration NAME --auto``: diff the models against the live database and write
    the differences as a migration (``schema/autogenerate.py``); ``None`` when there are none
    (nothing is written). Nothing runs on the database but reflection."""
    from ..database import db
    from ..database.ddl import reading_connection
    from ..schema.autogenerate import Plan, diff, find_models, render

    if name.folders:
        raise LucidError(
            "Migrations live directly in MIGRATIONS_PATH: give a name without folders",
            code="E_INVALID_NAME",
        )
    config = state.config
    found = find_models(models, config.models_path, config.root)

    async def compare() -> Plan:
        async with reading_connection(db.get_connection(connection)) as conn:
            plan: Plan = await conn.run_sync(diff, found)
            return plan

    plan = state.run(compare)
    if not plan:
        state.info(
            f"No changes: the database matches the models ({plan.compared} tables compared). "
            "Nothing written."
        )
        return None
    folder = config.migrations_path
    path = folder / f"{_timestamp(folder)}_{name.snake}.py"
    _write(state, path, render(plan, str(inflection.camelize(name.snake))))
    for line in plan.summary():
        state.info(f"  {line}")
    state.info("Review it, then run it with: lucid-orm migration:run")
    return path


@click.command("make:migration")
@click.argument("name")
@click.option("--create", metavar="TABLE", help="Make a migration creating TABLE.")
@click.option("--table", metavar="TABLE", help="Make a migration altering TABLE.")
@click.option(
    "--auto",
    is_flag=True,
    help="Write the differences between the models and the database (written, not run).",
)
@click.option(
    "--models",
    metavar="MODULE",
    help="With --auto: the module (or package) defining the models (default: MODELS_PATH).",
)
@connection_option
@pass_state
def make_migration(
    state: CliState,
    name: str,
    create: str | None,
    table: str | None,
    auto: bool,
    models: str | None,
    connection: str | None,
) -> None:
    """Make a timestamped migration file.

    Written to MIGRATIONS_PATH (database/migrations) as <milliseconds>_<name>.py.
    `make:migration users` creates the users table (as Lucid does);
    `make:migration add_age_to_users` alters users; --create/--table say it outright.
    `make:migration sync_models --auto` compares the models with the database and writes
    what differs (new tables, added/dropped columns, nullability and type changes) for you
    to review; it runs nothing.
    """
    parsed = _Name.parse(name, "migration")
    if auto:
        if create or table:
            raise LucidError(
                "--auto writes its own create/alter calls: drop --create/--table",
                code="E_INVALID_ARGUMENT",
            )
        make_auto_migration(state, parsed, models, connection)
        return
    if models or connection:
        raise LucidError("--models and --connection go with --auto", code="E_INVALID_ARGUMENT")
    make_migration_file(state, parsed, create, table)


@click.command("make:seeder")
@click.argument("name")
@pass_state
def make_seeder(state: CliState, name: str) -> None:
    """Make a seeder file.

    `make:seeder User` writes user_seeder.py, with a UserSeeder class, in SEEDERS_PATH
    (database/seeders).
    """
    parsed = _Name.parse(name, "seeder")
    stem = parsed.snake.removesuffix("_seeder") or parsed.snake
    path = parsed.file(state.config.seeders_path, f"{stem}_seeder")
    _write(state, path, templates.seeder(str(inflection.camelize(stem)) + "Seeder"))


@click.command("make:factory")
@click.argument("name")
@pass_state
def make_factory(state: CliState, name: str) -> None:
    """Make a model factory file.

    `make:factory User` writes user_factory.py, defining UserFactory for
    app.models.user.User, in FACTORIES_PATH (database/factories).
    """
    parsed = _Name.parse(name, "factory")
    stem = parsed.snake.removesuffix("_factory") or parsed.snake
    make_factory_file(state, _Name(parsed.folders, stem))


COMMANDS = [make_model, make_migration, make_seeder, make_factory]
