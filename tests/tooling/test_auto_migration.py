"""``lucid-orm make:migration NAME --auto`` on every dialect, run as a subprocess in a fresh
project: a migration written from the models against the live database (new tables, added and
dropped columns, nullability and type changes, foreign keys), run by the migrator, after which
the schema matches the models and a second ``--auto`` writes nothing; rollback undoes it.

On PostgreSQL and MariaDB the project runs on a database of its own (``<test database>_auto``),
created and dropped here.
"""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from lucid_orm.database import Database
from tests.tooling.test_cli import SERVER_URLS, _admin, _quoted, cli

DIALECTS = ["sqlite", "postgresql", "mysql"]

MODELS_V1 = """
from __future__ import annotations

from lucid_orm import BaseModel, column
from lucid_orm.orm.relations import BelongsTo, HasMany, belongs_to, has_many


class Author(BaseModel):
    table = "auto_authors"
    id: int = column(is_primary=True)
    email: str = column()
    bio: str | None = column()
    score: float | None = column()
    posts: HasMany[Post] = has_many(lambda: Post)


class Post(BaseModel):
    table = "auto_posts"
    id: int = column(is_primary=True)
    author_id: int = column()
    title: str = column()
    author: BelongsTo[Author] = belongs_to(lambda: Author)
"""

# bio dropped, age added, score float -> Decimal, title nullable, a new table whose foreign
# key references an existing one.
MODELS_V2 = """
from __future__ import annotations

from decimal import Decimal

from lucid_orm import BaseModel, column
from lucid_orm.orm.relations import BelongsTo, HasMany, belongs_to, has_many


class Author(BaseModel):
    table = "auto_authors"
    id: int = column(is_primary=True)
    email: str = column()
    age: int | None = column()
    score: Decimal | None = column()
    posts: HasMany[Post] = has_many(lambda: Post)


class Post(BaseModel):
    table = "auto_posts"
    id: int = column(is_primary=True)
    author_id: int = column()
    title: str | None = column()
    author: BelongsTo[Author] = belongs_to(lambda: Author)
    notes: HasMany[Note] = has_many(lambda: Note)


class Note(BaseModel):
    table = "auto_notes"
    id: int = column(is_primary=True)
    post_id: int | None = column()
    body: str = column()
"""


def _private_url(url: str) -> str:
    parsed = make_url(url)
    return parsed.set(database=f"{parsed.database}_auto").render_as_string(hide_password=False)


@pytest.fixture(params=DIALECTS)
async def project(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Project]:
    """A project directory whose models live in ``app/models`` (MODELS_PATH), configured for
    one dialect on an empty database."""
    name: str = request.param
    if name == "sqlite":
        url = f"sqlite:///{tmp_path / 'database' / 'app.db'}"
    else:
        base = SERVER_URLS[name]
        url = _private_url(base)
        quoted = _quoted(name, url)
        await _admin(base, f"DROP DATABASE IF EXISTS {quoted}", f"CREATE DATABASE {quoted}")
    (tmp_path / "database").mkdir()
    (tmp_path / "lucid_config.py").write_text(f"DATABASE = {{'url': {url!r}}}\n")
    project = Project(name, tmp_path, url)
    try:
        yield project
    finally:
        if name != "sqlite":
            await _admin(SERVER_URLS[name], f"DROP DATABASE IF EXISTS {_quoted(name, url)}")


class Project:
    def __init__(self, dialect: str, root: Path, url: str) -> None:
        self.dialect = dialect
        self.root = root
        self.url = url

    def models(self, source: str) -> None:
        folder = self.root / "app" / "models"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "blog.py").write_text(textwrap.dedent(source).lstrip())

    def migrations(self) -> list[Path]:
        return sorted((self.root / "database" / "migrations").glob("*.py"))

    async def inspect(self, fn: Callable[[Any], Any]) -> Any:
        # A connection of its own each time: a pooled SQLite connection opened before a
        # subprocess changed the schema may answer PRAGMA foreign_key_list from before.
        database = Database()
        database.configure(url=self.url)
        try:
            async with database.engine().connect() as conn:
                return await conn.run_sync(lambda c: fn(sa.inspect(c)))
        finally:
            await database.close()

    async def columns(self, table: str) -> dict[str, dict[str, Any]]:
        found = await self.inspect(lambda i: i.get_columns(table))
        return {c["name"]: c for c in found}

    async def foreign_keys(self, table: str) -> list[tuple[list[str], str, list[str]]]:
        found = await self.inspect(lambda i: i.get_foreign_keys(table))
        return [
            (f["constrained_columns"], f["referred_table"], f["referred_columns"]) for f in found
        ]


async def test_auto_migrations_follow_the_models(project: Project) -> None:
    root = project.root
    project.models(MODELS_V1)
    made = cli(root, "make:migration", "create_blog", "--auto").ok()
    assert "+ table auto_authors (4 columns)" in made.out
    assert "+ table auto_posts (3 columns)" in made.out
    (first,) = project.migrations()
    source = first.read_text()
    assert 'table.string("email").not_nullable()' in source
    assert "self.schema.drop_table(" in source
    assert await project.inspect(lambda i: i.get_table_names()) == []  # written, not run
    cli(root, "migration:run").ok()
    assert await project.foreign_keys("auto_posts") == [(["author_id"], "auto_authors", ["id"])]
    # Nothing left to do: nothing is written.
    same = cli(root, "make:migration", "nothing", "--auto").ok()
    assert "No changes" in same.out and len(project.migrations()) == 1

    # The models change; --models names their module this time.
    project.models(MODELS_V2)
    change = cli(root, "make:migration", "change_blog", "--auto", "--models", "app.models").ok()
    for line in (
        "+ table auto_notes (3 columns)",
        "+ column auto_authors.age big_integer()",
        "- column auto_authors.bio",
        "~ column auto_authors.score: type double() -> decimal(20, 6)",
        "~ column auto_posts.title: not null -> nullable",
    ):
        assert line in change.out, change.out
    second = project.migrations()[-1]
    text = second.read_text()
    assert 'table.drop_column("bio")' in text and ".alter()" in text
    cli(root, "migration:run").ok()

    authors = await project.columns("auto_authors")
    assert sorted(authors) == ["age", "email", "id", "score"]
    assert isinstance(authors["score"]["type"], sa.Numeric)
    assert not isinstance(authors["score"]["type"], sa.Float)
    assert authors["age"]["nullable"] and not authors["email"]["nullable"]
    posts = await project.columns("auto_posts")
    assert posts["title"]["nullable"] and not posts["author_id"]["nullable"]
    notes = await project.columns("auto_notes")
    assert list(notes) == ["id", "post_id", "body"] and not notes["body"]["nullable"]
    assert await project.foreign_keys("auto_notes") == [(["post_id"], "auto_posts", ["id"])]
    # The schema matches the models: a second --auto finds nothing and writes nothing.
    again = cli(root, "make:migration", "again", "--auto").ok()
    assert "No changes: the database matches the models (3 tables compared)" in again.out
    assert len(project.migrations()) == 2

    # down() undoes it: the first version's schema is back, and --auto against the new
    # models finds the same changes again.
    cli(root, "migration:rollback").ok()
    authors = await project.columns("auto_authors")
    # (SQLite's table copy may put the columns in another order.)
    assert sorted(authors) == ["bio", "email", "id", "score"]
    assert isinstance(authors["score"]["type"], sa.Float)
    assert not (await project.columns("auto_posts"))["title"]["nullable"]
    assert "auto_notes" not in await project.inspect(lambda i: i.get_table_names())
    redo = cli(root, "make:migration", "redo", "--auto").ok()
    assert "- column auto_authors.bio" in redo.out


@pytest.mark.parametrize("dialect_name", ["sqlite"])
def test_refusals(dialect_name: str, tmp_path: Path) -> None:
    (tmp_path / "database").mkdir()
    url = f"sqlite:///{tmp_path / 'database' / 'app.db'}"
    (tmp_path / "lucid_config.py").write_text(f"DATABASE = {{'url': {url!r}}}\n")
    cli(tmp_path, "make:migration", "x", "--auto").failed("No models folder", "--models")
    cli(tmp_path, "make:migration", "x", "--auto", "--models", "nowhere.models").failed(
        'Cannot import models module "nowhere.models"'
    )
    (tmp_path / "app" / "models").mkdir(parents=True)
    (tmp_path / "app" / "models" / "empty.py").write_text("X = 1\n")
    cli(tmp_path, "make:migration", "x", "--auto").failed("No models found")
    cli(tmp_path, "make:migration", "x", "--auto", "--create", "users").failed(
        "--auto writes its own create/alter calls"
    )
    cli(tmp_path, "make:migration", "x", "--models", "app.models").failed(
        "--models and --connection go with --auto"
    )
    assert not (tmp_path / "database" / "migrations").exists()
