"""Generated schema classes (``schema:generate``): every type mapping on each dialect, names that
are not Python identifiers, models that extend the generated classes (CRUD, relations, column
overrides), rules, deterministic and atomic output, mypy --strict on the module, regeneration
after a rollback, and the ``lucid-orm`` commands."""

from __future__ import annotations

import ast
import importlib.util
import os
import stat
import subprocess
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.types import NullType

from lucid_orm import LucidError, belongs_to, column, has_many
from lucid_orm.database import Database
from lucid_orm.migrations import Migrator
from lucid_orm.relations import BelongsTo, HasMany
from lucid_orm.schema import Schema
from lucid_orm.schema.generator import (
    ReflectedColumn,
    ReflectedTable,
    SchemaRules,
    attribute_name,
    class_name,
    generate_schema,
    render,
)
from tests.helpers import count_queries

ROOT = Path(__file__).resolve().parents[2]
PYTHON = ROOT / ".venv" / "bin" / "python"
if not PYTHON.exists():
    PYTHON = Path(sys.executable)

ODD_TABLE = "sg order-items"
INCLUDE = {"include": ["sg_*", "sg *"]}
# A type each dialect has and nothing maps: reflected as unknown (NullType) or, on SQLite, only
# guessed by type affinity.
UNMAPPED = {"sqlite": "GEOMETRY", "postgresql": "point", "mysql": "point"}
# Names that may be left over by an interrupted run, dropped before and after each test.
TABLES = ["sg_posts", "sg_authors", "sg_pairs", "sg_loose", ODD_TABLE, "sg_mig_posts"]


# -- helpers -----------------------------------------------------------------------------------
async def drop_tables(database: Database) -> None:
    async with database.engine().begin() as conn:
        for name in TABLES:
            await conn.run_sync(
                lambda c, n=name: sa.Table(n, sa.MetaData()).drop(c, checkfirst=True)
            )


def create_types(schema: Schema, dialect: str) -> None:
    """Two related tables covering every mapping, one without a primary key, one with a
    composite one."""
    schema.create_table(
        "sg_authors",
        lambda t: (
            t.increments("id"),
            t.string("email").not_nullable(),
            t.string("password").not_nullable(),
            t.boolean("active").not_nullable().default_to(True),
            t.json("settings"),
            t.timestamps(use_tz=True),
        ),
    )
    schema.create_table(
        "sg_posts",
        lambda t: (
            t.increments("id"),
            t.integer("author_id").unsigned().not_nullable(),
            t.string("title", 120).not_nullable(),
            t.text("body"),
            t.big_integer("views").not_nullable().default_to(0),
            t.small_integer("rank"),
            t.tiny_integer("level"),
            t.boolean("flag"),
            t.decimal("price", 10, 2),
            t.float("ratio"),
            t.double("score"),
            t.date("published_on"),
            t.time("at_time"),
            t.datetime("happened_at"),
            t.timestamp("seen_at", use_tz=True),
            t.jsonb("meta"),
            t.uuid("uid"),
            t.binary("payload"),
            t.enum("status", ["draft", "live"]),
            t.specific_type("shape", UNMAPPED[dialect]),
            t.string("class", 20),
            t.string("from", 20),
            t.string("order", 20),
            t.string("save", 20),
            t.string("date", 20),
            t.timestamps(),
        ),
    )
    schema.create_table(
        "sg_pairs", lambda t: (t.integer("a"), t.integer("b"), t.primary(["a", "b"]))
    )
    schema.create_table("sg_loose", lambda t: (t.string("note"),))


async def create_odd_table(database: Database) -> None:
    """A table and columns whose names are no Python identifiers (the schema builder refuses
    them: created with SQLAlchemy Core)."""
    table = sa.Table(
        ODD_TABLE,
        sa.MetaData(),
        sa.Column("Item ID", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("2nd", sa.String(20)),
        sa.Column("userId", sa.Integer),
        sa.Column("lambda", sa.String(20)),
    )
    async with database.engine().begin() as conn:
        await conn.run_sync(table.create)


@pytest.fixture
async def tables(database: Database, dialect: str) -> AsyncIterator[Database]:
    await drop_tables(database)
    schema = Schema()
    create_types(schema, dialect)
    await schema.execute(database.connection())
    await create_odd_table(database)
    try:
        yield database
    finally:
        await drop_tables(database)


def load(path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """Import ``path`` as a fresh module (registered in ``sys.modules`` for the test)."""
    name = f"sg_generated_{uuid.uuid4().hex}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    return module


def declarations(text: str, cls: str) -> dict[str, str]:
    """``{attribute: "annotation = factory"}`` of one class of a generated module."""
    tree = ast.parse(text)
    (node,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls]
    found: dict[str, str] = {}
    for item in node.body:
        if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
            assert item.value is not None
            found[item.target.id] = f"{ast.unparse(item.annotation)} = {ast.unparse(item.value)}"
    return found


TYPES_MODULE = '''\
"""Types the schema rules of the tests map columns to."""

from __future__ import annotations

import enum
from typing import NewType, TypedDict

Markdown = NewType("Markdown", str)


class AuthorSettings(TypedDict, total=False):
    theme: str
    size: int


class Status(str, enum.Enum):
    DRAFT = "draft"
    LIVE = "live"
'''

RULES: dict[str, Any] = {
    **INCLUDE,
    "columns": {
        "sg_authors.settings": {
            "type": "AuthorSettings",
            "import": "from sg_types import AuthorSettings",
        },
        "sg_posts.status": {"type": "Status", "import": "from sg_types import Status"},
    },
    "types": {"text": {"type": "Markdown", "import": "from sg_types import Markdown"}},
}

MODELS_MODULE = '''\
"""Models extending the generated schema classes (type-checked with them)."""

from __future__ import annotations

from lucid_orm import belongs_to, column, has_many
from lucid_orm.relations import BelongsTo, HasMany

from sg_schema import SgAuthorsSchema, SgPostsSchema


class Author(SgAuthorsSchema):
    password: str = column(serialize_as=None)
    posts: HasMany[Post] = has_many(lambda: Post)


class Post(SgPostsSchema):
    author: BelongsTo[Author] = belongs_to(lambda: Author)


def title_of(post: Post) -> str:
    return post.title


def author_of(post: Post) -> Author | None:
    return post.author


def active(author: Author) -> bool:
    return author.active
'''


# -- dialect-free units ------------------------------------------------------------------------
class TestNames:
    @pytest.mark.parametrize(
        ("table", "expected"),
        [
            ("posts", "PostsSchema"),
            ("blog_posts", "BlogPostsSchema"),
            ("blogPosts", "BlogPostsSchema"),
            ("order items", "OrderItemsSchema"),
            ("2fa-codes", "T2faCodesSchema"),
            ("café", "CaféSchema"),
            ("--", "TableSchema"),
        ],
    )
    def test_class_name(self, table: str, expected: str) -> None:
        assert class_name(table) == expected
        assert expected.isidentifier()

    @pytest.mark.parametrize(
        ("column_name", "expected"),
        [
            ("email", "email"),
            ("userId", "user_id"),
            ("Item ID", "item_id"),
            ("2nd", "c_2nd"),
            ("class", "class_"),
            ("lambda", "lambda_"),
            ("save", "save_"),
            ("order", "order"),
            ("_secret", "secret"),
            ("?", "c"),
            ("prénom", "prénom"),
        ],
    )
    def test_attribute_name(self, column_name: str, expected: str) -> None:
        from lucid_orm.orm.model_info import reserved_names

        assert attribute_name(column_name, reserved_names()) == expected

    def test_clashing_names_are_numbered(self) -> None:
        tables = [
            ReflectedTable("a-b", None, [ReflectedColumn("id", sa.Integer(), False, True)]),
            ReflectedTable("a_b", None, [ReflectedColumn("id", sa.Integer(), False, True)]),
        ]
        result = render(tables)
        assert result.classes == {"a-b": "ABSchema", "a_b": "AB2Schema"}
        cols = [
            ReflectedColumn("userId", sa.Integer(), True, False),
            ReflectedColumn("user_id", sa.Integer(), True, False),
            ReflectedColumn("column", sa.String(), True, False),
            ReflectedColumn("datetime", sa.DateTime(), True, False),
        ]
        text = render([ReflectedTable("t", None, cols)]).text
        assert declarations(text, "TSchema") == {
            "user_id": "int | None = column(column_name='userId')",
            "user_id_": "int | None = column(column_name='user_id')",
            "column_": "str | None = column(column_name='column')",
            "datetime_": "datetime | None = column.date_time(column_name='datetime')",
        }
        compile(text, "schema.py", "exec")

    def test_unknown_types_never_crash(self) -> None:
        class Weird(sa.types.UserDefinedType[Any]):
            def get_col_spec(self, **kw: Any) -> str:
                raise RuntimeError("no spec")

        cols = [
            ReflectedColumn("id", sa.Integer(), False, True),
            ReflectedColumn("w", Weird(), True, False, "WEIRD(3)"),
            ReflectedColumn("o", object(), False, False, ""),
        ]
        text = render([ReflectedTable('quo"te', None, cols)]).text
        assert "    # w: unmapped SQL type WEIRD(3)\n    w: Any = column(type_=NullType())" in text
        assert "    o: Any = column(type_=NullType())" in text
        assert "table = 'quo\"te'" in text
        compile(text, "schema.py", "exec")

    @pytest.mark.parametrize("width", [100, 88])
    def test_layout_is_ruff_format(self, width: int, tmp_path: Path) -> None:
        """Long names (up to the identifiers limits: 63 on PostgreSQL, 64 on MySQL) and every
        kind of annotation are laid out as ``ruff format`` would."""
        cols = [ReflectedColumn("id", sa.Integer(), False, True)]
        kinds: list[tuple[Any, str | None]] = [
            (sa.DateTime(), None),
            (sa.String(), None),
            (sa.Date(), None),
            (sa.Uuid(), None),
            (sa.JSON(), None),
            (NullType(), None),
            (sa.Text(), "dict[str, Any]"),
        ]
        rules: dict[str, Any] = {"line_length": width, "columns": {}}
        for n in range(40, 66):
            for i, (type_, custom) in enumerate(kinds):
                for name in (f"{'c' * n}{i}", f"{'C' * n}{i}"):
                    cols.append(ReflectedColumn(name, type_, i % 2 == 0, False, "X"))
                    if custom:
                        rules["columns"][f"{'t' * 60}.{name}"] = custom
        cols.append(ReflectedColumn("created_at", sa.DateTime(), True, False))
        cols.append(ReflectedColumn("updated_at", sa.DateTime(), True, False))
        tables = [ReflectedTable("t" * 60, None, cols), ReflectedTable("u" * 64, None, cols[:2])]
        path = tmp_path / "schema.py"
        path.write_text(render(tables, SchemaRules.from_config(rules)).text)
        ruff = [str(PYTHON), "-m", "ruff", "format", "--isolated", "--line-length", str(width)]
        proc = subprocess.run([*ruff, "--diff", str(path)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr

    def test_empty_database(self) -> None:
        result = render([])
        assert result.classes == {}
        assert result.text.startswith('"""Schema classes generated')
        compile(result.text, "schema.py", "exec")

    def test_bad_rules(self) -> None:
        with pytest.raises(LucidError, match="Unknown schema rule keys: tables") as info:
            SchemaRules.from_config({"tables": []})
        assert info.value.code == "E_INVALID_CONFIG"
        with pytest.raises(LucidError, match="must be a type string"):
            SchemaRules.from_config({"types": {"json": 3}})
        with pytest.raises(LucidError, match="Invalid schema rule"):
            SchemaRules.from_config({"columns": {"t.c": "dict[str"}})
        with pytest.raises(LucidError, match="Invalid schema rule"):
            SchemaRules.from_config({"columns": {"t.c": {"type": "X", "factory": "column"}}})
        with pytest.raises(LucidError, match='"include" must be a list'):
            SchemaRules.from_config({"include": "posts"})
        rules = SchemaRules.from_config({"types": {"JSONB": "dict[str, Any]"}})
        assert rules.types == {"jsonb": "dict[str, Any]"}


# -- against each dialect ----------------------------------------------------------------------
class TestTypes:
    async def test_every_mapping(self, tables: Database, dialect: str, tmp_path: Path) -> None:
        result = await generate_schema(output=tmp_path / "schema.py", rules=INCLUDE)
        assert result.path == tmp_path / "schema.py"
        assert result.path.read_text() == result.text
        assert result.classes == {
            ODD_TABLE: "SgOrderItemsSchema",
            "sg_authors": "SgAuthorsSchema",
            "sg_loose": "SgLooseSchema",
            "sg_pairs": "SgPairsSchema",
            "sg_posts": "SgPostsSchema",
        }
        assert declarations(result.text, "SgAuthorsSchema") == {
            "id": "int = column(is_primary=True)",
            "email": "str = column()",
            "password": "str = column()",
            "active": "bool = column()",
            "settings": "Any = column()",
            "created_at": "datetime | None = column.date_time(auto_create=True)",
            "updated_at": "datetime | None = column.date_time(auto_create=True, auto_update=True)",
        }
        assert declarations(result.text, "SgPostsSchema") == {
            "id": "int = column(is_primary=True)",
            "author_id": "int = column()",
            "title": "str = column()",
            "body": "str | None = column()",
            "views": (
                "int = column()" if dialect == "sqlite" else "int = column(type_=BigInteger())"
            ),
            "rank": "int | None = column()",
            "level": "int | None = column()",
            "flag": "bool | None = column()",
            "price": "Decimal | None = column()",
            "ratio": "float | None = column()",
            "score": "float | None = column()",
            "published_on": "date | None = column.date()",
            "at_time": "time | None = column()",
            "happened_at": "datetime | None = column.date_time()",
            "seen_at": "datetime | None = column.date_time()",
            "meta": "Any = column()",
            "uid": (
                "uuid.UUID | None = column(type_=Uuid())"
                if dialect == "postgresql"
                else "str | None = column()"
            ),
            "payload": "bytes | None = column()",
            "status": "str | None = column()",
            "shape": "Any = column(type_=NullType())",
            "class_": "str | None = column(column_name='class')",
            "from_": "str | None = column(column_name='from')",
            "order": "str | None = column()",
            "save_": "str | None = column(column_name='save')",
            "date_": "str | None = column(column_name='date')",
            "created_at": "datetime | None = column.date_time(auto_create=True)",
            "updated_at": "datetime | None = column.date_time(auto_create=True, auto_update=True)",
        }
        assert f"    # shape: unmapped SQL type {UNMAPPED[dialect].upper()}\n" in result.text
        assert declarations(result.text, "SgOrderItemsSchema") == {
            "item_id": "int = column(is_primary=True, column_name='Item ID')",
            "c_2nd": "str | None = column(column_name='2nd')",
            "user_id": "int | None = column(column_name='userId')",
            "lambda_": "str | None = column(column_name='lambda')",
        }
        assert "    # Composite primary key (a, b): the first is the model's key.\n" in result.text
        pairs = declarations(result.text, "SgPairsSchema")
        assert pairs == {"a": "int = column(is_primary=True)", "b": "int = column()"}
        assert "    # No primary key in the database: declare one on the model.\n" in result.text
        assert declarations(result.text, "SgLooseSchema") == {"note": "str | None = column()"}

    async def test_tinyint_1_is_bool(self, tables: Database, dialect: str) -> None:
        # MariaDB's BOOLEAN is TINYINT(1); a TINYINT(4) stays an int.
        if dialect == "mysql":
            await tables.raw_query("ALTER TABLE sg_loose ADD COLUMN legacy TINYINT(1) NOT NULL")
        else:
            await tables.raw_query("ALTER TABLE sg_loose ADD COLUMN legacy BOOLEAN")
        result = await generate_schema(output=None, rules={"include": ["sg_loose"]})
        legacy = declarations(result.text, "SgLooseSchema")["legacy"]
        assert legacy.startswith("bool")


class TestModels:
    async def test_crud_and_relations(
        self, tables: Database, dialect: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        result = await generate_schema(output=tmp_path / "schema.py", rules=INCLUDE)
        schema = load(tmp_path / "schema.py", monkeypatch)

        class Author(schema.SgAuthorsSchema):  # type: ignore[misc,name-defined]
            posts: HasMany[Post] = has_many(lambda: Post)

        class Post(schema.SgPostsSchema):  # type: ignore[misc,name-defined]
            author: BelongsTo[Author] = belongs_to(lambda: Author)

        assert result.classes["sg_posts"] == "SgPostsSchema"
        assert Author.table == "sg_authors" and Post.table == "sg_posts"
        assert Author.primary_key == "id"
        author = await Author.create(
            {"email": "ada@example.com", "password": "s3cret", "settings": {"theme": "dark"}}
        )
        uid = uuid.uuid4()
        post = await Post.create(
            {
                "author_id": author.id,
                "title": "Hello",
                "body": "Text",
                "views": 2**40,
                "rank": 3,
                "level": 4,
                "flag": True,
                "price": Decimal("12.50"),
                "ratio": 0.5,
                "score": 2.25,
                "published_on": date(2024, 5, 6),
                "at_time": time(10, 30),
                "happened_at": datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC),
                "seen_at": datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC),
                "meta": {"tags": ["a", "b"]},
                "uid": uid if dialect == "postgresql" else str(uid),
                "payload": b"\x00\x01",
                "status": "live",
                "class_": "c",
                "from_": "f",
                "order": "o",
                "save_": "s",
                "date_": "d",
            }
        )
        assert isinstance(post.id, int)
        found = await Post.find_or_fail(post.id)
        assert found.title == "Hello"
        assert found.views == 2**40
        assert found.flag is True
        assert found.price == Decimal("12.50")
        assert found.ratio == 0.5 and found.score == 2.25
        assert found.published_on == date(2024, 5, 6)
        assert found.at_time == time(10, 30)
        assert found.happened_at == datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
        assert found.seen_at == datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
        assert found.meta == {"tags": ["a", "b"]}
        assert found.uid == (uid if dialect == "postgresql" else str(uid))
        assert found.payload == b"\x00\x01"
        assert (found.class_, found.from_, found.order, found.save_, found.date_) == tuple("cfosd")
        assert found.shape is None
        assert isinstance(found.created_at, datetime) and found.created_at.tzinfo is not None
        refreshed = await Author.find_or_fail(author.id)
        assert refreshed.active is True  # the database default, read back as a bool
        assert refreshed.settings == {"theme": "dark"}

        found.title = "Changed"
        found.flag = False
        await found.save()
        assert (await Post.find_or_fail(post.id)).flag is False
        assert await Post.query().where("from", "f").count_rows() == 1

        with count_queries() as log:
            authors = await Author.query().preload("posts").where("id", author.id)
        assert log.count == 2
        assert [p.title for p in authors[0].posts] == ["Changed"]
        posts = await Post.query().preload("author")
        assert posts[0].author is not None and posts[0].author.email == "ada@example.com"
        created = await author.related("posts").create(
            {"title": "Second", "views": 1, "status": "draft"}
        )
        assert created.author_id == author.id
        assert await author.related("posts").query().count_rows() == 2

        await found.delete()
        assert await Post.find(post.id) is None

    async def test_names_that_are_not_identifiers(
        self, tables: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        await generate_schema(output=tmp_path / "schema.py", rules=INCLUDE)
        schema = load(tmp_path / "schema.py", monkeypatch)

        class Item(schema.SgOrderItemsSchema):  # type: ignore[misc,name-defined]
            pass

        assert Item.table == ODD_TABLE
        item = await Item.create({"item_id": 7, "c_2nd": "two", "user_id": 3, "lambda_": "λ"})
        found = await Item.find_or_fail(7)
        assert (found.c_2nd, found.user_id, found.lambda_) == ("two", 3, "λ")
        # Serialized under the naming strategy's name of the attribute.
        assert found.serialize() == {"item_id": 7, "c_2nd": "two", "user_id": 3, "lambda": "λ"}
        item.c_2nd = "deux"
        await item.save()
        async with tables.engine().connect() as conn:
            query = sa.select(sa.column("2nd")).select_from(sa.table(ODD_TABLE))
            assert (await conn.execute(query)).scalars().all() == ["deux"]
        await item.delete()
        assert await Item.find(7) is None

    async def test_redeclared_column_keeps_the_others(
        self, tables: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        await generate_schema(output=tmp_path / "schema.py", rules=INCLUDE)
        schema = load(tmp_path / "schema.py", monkeypatch)

        class Author(schema.SgAuthorsSchema):  # type: ignore[misc,name-defined]
            password: str = column(serialize_as=None)

        assert list(Author.columns) == list(schema.SgAuthorsSchema.columns)
        author = await Author.create({"email": "a@b.c", "password": "hidden"})
        data = (await Author.find_or_fail(author.id)).serialize()
        assert "password" not in data
        assert data["email"] == "a@b.c" and data["active"] is True
        assert set(data) == {"id", "email", "active", "settings", "created_at", "updated_at"}
        assert (await Author.find_or_fail(author.id)).password == "hidden"
        # The schema class itself is untouched, and abstract: it maps no model.
        assert schema.SgAuthorsSchema.columns["password"].serialize_as == "password"
        with pytest.raises(LucidError, match='"SgAuthorsSchema" is abstract') as info:
            await schema.SgAuthorsSchema.query()
        assert info.value.code == "E_INVALID_MODEL"


class TestRules:
    async def test_columns_types_include_exclude(
        self, tables: Database, dialect: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        (tmp_path / "sg_types.py").write_text(TYPES_MODULE)
        monkeypatch.syspath_prepend(str(tmp_path))
        rules = {**RULES, "exclude": [ODD_TABLE, "sg_loose", "sg_pairs"]}
        result = await generate_schema(output=tmp_path / "schema.py", rules=rules)
        assert sorted(result.classes) == ["sg_authors", "sg_posts"]
        assert "from sg_types import AuthorSettings, Markdown, Status\n" in result.text
        authors = declarations(result.text, "SgAuthorsSchema")
        assert authors["settings"] == "AuthorSettings | None = column()"
        posts = declarations(result.text, "SgPostsSchema")
        assert posts["status"] == "Status | None = column()"
        assert posts["body"] == "Markdown | None = column()"
        assert posts["title"] == "str = column()"  # VARCHAR: no rule

        schema = load(tmp_path / "schema.py", monkeypatch)
        types = sys.modules["sg_types"]

        class Post(schema.SgPostsSchema):  # type: ignore[misc,name-defined]
            pass

        post = await Post.create(
            {"author_id": 1, "title": "t", "status": types.Status.LIVE, "body": "**b**"}
        )
        found = await Post.find_or_fail(post.id)
        assert found.status is types.Status.LIVE
        assert found.body == "**b**"
        # Inherited annotations resolve in the schema module (this one imports none of them).
        assert "Status" not in globals() and Post._lucid.types_resolved

        only = await generate_schema(output=None, rules={"include": ["sg_authors"]})
        assert only.classes == {"sg_authors": "SgAuthorsSchema"}
        assert only.path is None

    async def test_postgresql_schemas(
        self, tables: Database, dialect: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        if dialect != "postgresql":
            pytest.skip("schemas are a PostgreSQL feature")
        schema = Schema().create_schema_if_not_exists("sg_extra").with_schema("sg_extra")
        schema.create_table("sg_events", lambda t: (t.increments("id"), t.string("name")))
        await schema.execute(tables.connection())
        try:
            rules = {"include": ["sg_events", "sg_authors"], "schemas": ["public", "sg_extra"]}
            result = await generate_schema(output=tmp_path / "schema.py", rules=rules)
            assert result.classes == {
                "sg_authors": "SgAuthorsSchema",
                "sg_extra.sg_events": "SgExtraSgEventsSchema",
            }
            assert '    table = "sg_extra.sg_events"\n' in result.text
            only_default = await generate_schema(output=None, rules={"include": ["sg_events"]})
            assert only_default.classes == {}
            module = load(tmp_path / "schema.py", monkeypatch)

            class Event(module.SgExtraSgEventsSchema):  # type: ignore[misc,name-defined]
                pass

            event = await Event.create({"name": "launch"})
            assert (await Event.find_or_fail(event.id)).name == "launch"
            rows = await tables.raw_query("SELECT name FROM sg_extra.sg_events")
            assert [r["name"] for r in rows] == ["launch"]
        finally:
            await (
                Schema()
                .drop_schema("sg_extra", if_exists=True, cascade=True)
                .execute(tables.connection())
            )

    async def test_migrations_tables_are_always_excluded(
        self, tables: Database, tmp_path: Path
    ) -> None:
        migrator = Migrator(tmp_path / "none", table="sg_lucid")
        await migrator.status()  # no migrations: nothing is created
        await tables.raw_query("CREATE TABLE lucid_schema_probe_sg (id INTEGER PRIMARY KEY)")
        try:
            result = await generate_schema(
                output=None, rules={"include": ["lucid_schema*", "sg_loose"]}
            )
        finally:
            await tables.raw_query("DROP TABLE lucid_schema_probe_sg")
        assert "lucid_schema" not in result.classes
        assert set(result.classes) == {"lucid_schema_probe_sg", "sg_loose"}


class TestOutput:
    async def test_deterministic(self, tables: Database, tmp_path: Path) -> None:
        path = tmp_path / "schema.py"
        first = await generate_schema(output=path, rules=INCLUDE)
        assert first.changed is True
        mtime = path.stat().st_mtime_ns
        second = await generate_schema(output=path, rules=INCLUDE)
        assert second.text == first.text
        assert second.changed is False and path.stat().st_mtime_ns == mtime
        tables = [line for line in first.text.splitlines() if line.startswith("    table = ")]
        assert len(tables) == 5 and tables == sorted(tables)
        assert first.text.startswith(
            '"""Schema classes generated from the database by `lucid-orm schema:generate`.'
        )
        assert "Do not edit" in first.text
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o044 == 0o044  # as readable as any source file (not mkstemp's 0600)

    async def test_atomic_write(
        self, tables: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        path = tmp_path / "schema.py"
        path.write_text("OLD\n")
        bad = {**INCLUDE, "columns": {"sg_posts.meta": {"type": "X", "import": "not python"}}}
        with pytest.raises(LucidError, match="Invalid schema rule"):
            await generate_schema(output=path, rules=bad)
        assert path.read_text() == "OLD\n"

        def fail(*args: Any) -> None:
            raise OSError("disk full")

        monkeypatch.setattr(os, "replace", fail)
        with pytest.raises(OSError, match="disk full"):
            await generate_schema(output=path, rules=INCLUDE)
        assert path.read_text() == "OLD\n"
        assert [p.name for p in tmp_path.iterdir()] == ["schema.py"]  # no temporary file left

    async def test_mypy_strict_and_ruff_format(
        self, tables: Database, dialect: str, tmp_path: Path, mypy_cache: Path
    ) -> None:
        """One combined module per dialect (mypy is slow): every mapping, the rules' custom
        types, and models extending the classes with an override and relations."""
        (tmp_path / "sg_types.py").write_text(TYPES_MODULE)
        (tmp_path / "sg_models.py").write_text(MODELS_MODULE)
        await generate_schema(output=tmp_path / "sg_schema.py", rules=RULES)
        # The package is installed in editable mode, which mypy can't follow: point it at it.
        env = {**os.environ, "MYPYPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
        files = ["sg_schema.py", "sg_models.py"]
        cmd = [str(PYTHON), "-m", "mypy", "--strict", "--cache-dir", str(mypy_cache), *files]
        proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        proc = subprocess.run(
            [str(PYTHON), "-m", "ruff", "format", "--diff", "--isolated", "sg_schema.py"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.fixture(scope="session")
def mypy_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mypy_cache")


# -- migrations --------------------------------------------------------------------------------
CREATE_MIGRATION = """\
from lucid_orm.migrations import BaseSchema


class CreateSgMigPosts(BaseSchema):
    async def up(self) -> None:
        self.schema.create_table(
            "sg_mig_posts", lambda t: (t.increments("id"), t.string("title").not_nullable())
        )

    async def down(self) -> None:
        self.schema.drop_table("sg_mig_posts")
"""

ALTER_MIGRATION = """\
from lucid_orm.migrations import BaseSchema


class AddSubtitle(BaseSchema):
    async def up(self) -> None:
        self.schema.alter_table("sg_mig_posts", lambda t: t.string("subtitle"))

    async def down(self) -> None:
        self.schema.alter_table("sg_mig_posts", lambda t: t.drop_column("subtitle"))
"""


def write_migrations(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "1700000000000_create_sg_mig_posts.py").write_text(CREATE_MIGRATION)
    (folder / "1700000000001_add_subtitle.py").write_text(ALTER_MIGRATION)
    return folder


@pytest.fixture
async def migrations(database: Database, tmp_path: Path) -> AsyncIterator[Path]:
    await drop_tables(database)
    folder = write_migrations(tmp_path / "migrations")
    try:
        yield folder
    finally:
        await drop_tables(database)
        async with database.engine().begin() as conn:
            for name in ("sg_migrations", "sg_migrations_lock"):
                await conn.run_sync(
                    lambda c, n=name: sa.Table(n, sa.MetaData()).drop(c, checkfirst=True)
                )


class TestMigrations:
    async def test_rollback_regenerates_without_the_dropped_column(
        self, migrations: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        migrator = Migrator(migrations, table="sg_migrations")
        path = tmp_path / "schema.py"
        rules = {"include": ["sg_mig_*"], "exclude": ["sg_migrations*"]}
        await migrator.run()
        await generate_schema(output=path, rules=rules)
        assert "subtitle" in declarations(path.read_text(), "SgMigPostsSchema")

        await migrator.rollback(step=1)
        result = await generate_schema(output=path, rules=rules)
        assert result.changed
        assert declarations(path.read_text(), "SgMigPostsSchema") == {
            "id": "int = column(is_primary=True)",
            "title": "str = column()",
        }
        schema = load(path, monkeypatch)

        class Post(schema.SgMigPostsSchema):  # type: ignore[misc,name-defined]
            pass

        post = await Post.create({"title": "after rollback"})
        assert (await Post.find_or_fail(post.id)).title == "after rollback"


# -- the command line --------------------------------------------------------------------------
def cli(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(PYTHON), "-m", "lucid_orm", *args],
        cwd=project,
        env={**os.environ, "PYTHONPATH": str(ROOT), "LUCID_ENV": "development"},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def project(dialect_config: Any, migrations: Path, tmp_path: Path) -> Iterator[Path]:
    """A project whose lucid_config.py points at the test database."""
    (tmp_path / "lucid_config.py").write_text(
        textwrap.dedent(
            f"""\
            DATABASE = {{"url": {dialect_config.url!r}}}
            MIGRATIONS_PATH = "migrations"
            MIGRATIONS_TABLE = "sg_migrations"
            SCHEMA_OUTPUT = "app/schema.py"
            SCHEMA_RULES = {{"include": ["sg_mig_*", "sg_migrations*"]}}
            """
        )
    )
    yield tmp_path


class TestCommands:
    async def test_migration_commands_regenerate(self, project: Path) -> None:
        schema = project / "app" / "schema.py"
        done = cli(project, "migration:run")
        assert done.returncode == 0, done.stdout + done.stderr
        assert "subtitle" in declarations(schema.read_text(), "SgMigPostsSchema")
        # The configured migrations table is excluded though the include rule names it.
        assert "SgMigrations" not in schema.read_text()
        assert "app/schema.py" in done.stdout

        done = cli(project, "migration:rollback", "--no-schema-generate")
        assert done.returncode == 0, done.stdout + done.stderr
        assert "subtitle" in declarations(schema.read_text(), "SgMigPostsSchema")

        done = cli(project, "migration:run")
        assert done.returncode == 0, done.stdout + done.stderr
        done = cli(project, "migration:rollback", "--step", "1")
        assert done.returncode == 0, done.stdout + done.stderr
        assert "subtitle" not in declarations(schema.read_text(), "SgMigPostsSchema")

        done = cli(project, "migration:reset")
        assert done.returncode == 0, done.stdout + done.stderr
        assert "\nclass " not in schema.read_text()

    async def test_schema_generate(self, project: Path, database: Database) -> None:
        # Adopting a database: tables, but no migration history.
        schema = Schema()
        schema.create_table("sg_mig_posts", lambda t: (t.increments("id"), t.text("notes")))
        await schema.execute(database.connection())
        done = cli(project, "schema:generate", "--output", "other/models_schema.py")
        assert done.returncode == 0, done.stdout + done.stderr
        text = (project / "other" / "models_schema.py").read_text()
        assert declarations(text, "SgMigPostsSchema") == {
            "id": "int = column(is_primary=True)",
            "notes": "str | None = column()",
        }
        assert not (project / "app" / "schema.py").exists()
        done = cli(project, "schema:generate")
        assert done.returncode == 0, done.stdout + done.stderr
        assert (project / "app" / "schema.py").read_text() == text
        done = cli(project, "schema:generate")
        assert "unchanged" in done.stdout

    def test_opting_out_in_the_config(self, project: Path) -> None:
        config = project / "lucid_config.py"
        config.write_text(config.read_text() + "SCHEMA_GENERATE = False\n")
        done = cli(project, "migration:run")
        assert done.returncode == 0, done.stdout + done.stderr
        assert not (project / "app" / "schema.py").exists()
        done = cli(project, "migration:reset")
        assert done.returncode == 0, done.stdout + done.stderr

    def test_bad_rules_in_the_config(self, project: Path) -> None:
        config = project / "lucid_config.py"
        config.write_text(config.read_text() + 'SCHEMA_RULES = {"tables": []}\n')
        done = cli(project, "schema:generate")
        assert done.returncode == 1
        assert "Unknown schema rule keys: tables" in done.stderr
        assert "Traceback" not in done.stderr
