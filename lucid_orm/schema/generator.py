"""``schema:generate``: read the database's tables (SQLAlchemy reflection) and write one Python
module of typed, abstract schema classes — ``class PostsSchema(BaseModel, abstract=True)`` —
that models extend, so the migrations stay the single source of truth for columns."""

from __future__ import annotations

import fnmatch
import keyword
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql as mysql_types

from ..errors import LucidError

if TYPE_CHECKING:
    from ..database.manager import Database

HEADER = '''"""Schema classes generated from the database by `lucid-orm schema:generate`.

Do not edit: this file is rewritten after every migration command. Extend the classes in your
models (``class Post(PostsSchema): ...``) and redeclare a column there to change its options.
"""
'''

DEFAULT_EXCLUDE = ("lucid_schema", "lucid_schema_lock", "alembic_version")
_LINE = 100


@dataclass
class ColumnRule:
    """How to declare one column: its Python annotation, the ``column`` call, and imports."""

    annotation: str
    factory: str = "column()"
    imports: tuple[str, ...] = ()


@dataclass
class SchemaRules:
    """Generation rules (config ``SCHEMA_RULES``): ``types`` maps a SQL type name (``"jsonb"``)
    and ``columns`` a ``"table.column"`` to a Python type — a string such as
    ``"dict[str, Any]"`` or a dict ``{"type": "Settings", "import": "from app.types import
    Settings", "factory": "column()"}``; ``include`` (default: all) and ``exclude`` list table
    names or globs; ``schemas`` limits PostgreSQL schemas (default: the connection's default
    schema). The migrations tables are always excluded."""

    types: dict[str, Any] = field(default_factory=dict)
    columns: dict[str, Any] = field(default_factory=dict)
    include: list[str] | None = None
    exclude: list[str] = field(default_factory=list)
    schemas: list[str] | None = None

    @classmethod
    def from_config(cls, value: Mapping[str, Any] | SchemaRules | None) -> SchemaRules:
        if value is None:
            return cls()
        if isinstance(value, SchemaRules):
            return value
        unknown = set(value) - {"types", "columns", "include", "exclude", "schemas"}
        if unknown:
            raise LucidError(
                f"Unknown schema rule keys: {', '.join(sorted(unknown))} (use types, columns, "
                "include, exclude, schemas)",
                code="E_INVALID_CONFIG",
            )
        return cls(
            types={str(k).lower(): v for k, v in dict(value.get("types") or {}).items()},
            columns=dict(value.get("columns") or {}),
            include=list(value["include"]) if value.get("include") else None,
            exclude=list(value.get("exclude") or []),
            schemas=list(value["schemas"]) if value.get("schemas") else None,
        )


@dataclass
class ReflectedColumn:
    name: str
    type: Any
    nullable: bool
    primary: bool


@dataclass
class ReflectedTable:
    name: str
    schema: str | None
    columns: list[ReflectedColumn]


@dataclass
class GeneratedSchema:
    """The result: where it was written, the classes by table, and the module text."""

    path: Path | None
    classes: dict[str, str]
    text: str


def class_name(table: str) -> str:
    """``posts`` → ``PostsSchema``, ``blog_posts`` → ``BlogPostsSchema``; characters that can't
    be in a Python name become word breaks and a leading digit gets a ``T`` prefix
    (``2fa-codes`` → ``T2faCodesSchema``)."""
    words = [w for w in re.split(r"[^0-9A-Za-z]+", table) if w]
    name = "".join(w[:1].upper() + w[1:] for w in words) or "Table"
    if name[0].isdigit():
        name = "T" + name
    return f"{name}Schema"


def attribute_name(column: str, reserved: frozenset[str]) -> str:
    """A valid attribute for a column name (the column keeps its name through
    ``column_name=``)."""
    name = re.sub(r"\W", "_", column)
    if not name or name[0].isdigit():
        name = "c_" + name
    if keyword.iskeyword(name) or name in reserved:
        name += "_"
    return name


def _sql_type_name(type_: Any) -> str:
    try:
        return str(type_.compile()).lower()
    except Exception:
        return type(type_).__name__.lower()


def default_rule(column: ReflectedColumn) -> ColumnRule | None:
    """The rule for a reflected type, or ``None`` when it has no mapping."""
    t = column.type
    name = column.name
    if isinstance(t, sa.Boolean) or (
        isinstance(t, mysql_types.TINYINT) and getattr(t, "display_width", None) == 1
    ):
        return ColumnRule("bool")
    if isinstance(t, sa.Integer):
        return ColumnRule("int")
    if isinstance(t, sa.Float):  # before Numeric: Float is a Numeric
        return ColumnRule("float")
    if isinstance(t, sa.Numeric):
        return ColumnRule("Decimal", imports=("from decimal import Decimal",))
    if isinstance(t, sa.DateTime):
        if name == "created_at":
            factory = "column.date_time(auto_create=True)"
        elif name == "updated_at":
            factory = "column.date_time(auto_create=True, auto_update=True)"
        else:
            factory = "column.date_time()"
        return ColumnRule("datetime", factory, ("from datetime import datetime",))
    if isinstance(t, sa.Date):
        return ColumnRule("date", "column.date()", ("from datetime import date",))
    if isinstance(t, sa.Time):
        return ColumnRule("time", imports=("from datetime import time",))
    if isinstance(t, sa.Uuid) or type(t).__name__ == "UUID":
        return ColumnRule("uuid.UUID", imports=("import uuid",))
    if isinstance(t, sa.JSON):
        return ColumnRule("Any", imports=("from typing import Any",))
    if isinstance(t, sa.LargeBinary | sa.BINARY | sa.VARBINARY):
        return ColumnRule("bytes")
    if isinstance(t, sa.String | sa.Enum):
        return ColumnRule("str")
    return None


def _custom_rule(value: Any) -> ColumnRule:
    if isinstance(value, str):
        imports = ("from typing import Any",) if "Any" in value else ()
        return ColumnRule(value, imports=imports)
    if isinstance(value, Mapping) and "type" in value:
        imports = value.get("import") or ()
        if isinstance(imports, str):
            imports = (imports,)
        return ColumnRule(str(value["type"]), str(value.get("factory", "column()")), tuple(imports))
    raise LucidError(
        f"A schema rule must be a type string or a dict with a 'type', got {value!r}",
        code="E_INVALID_CONFIG",
    )


def _excluded(table: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(table, p) for p in patterns)


def _mariadb_json_columns(sync_conn: Any, table: str, schema: str | None) -> set[str]:
    """MariaDB stores JSON as LONGTEXT with a column CHECK ``json_valid(col)``, which SQLAlchemy
    reflects as plain text: find those columns in ``information_schema``."""
    if sync_conn.dialect.name != "mysql":
        return set()
    rows = sync_conn.execute(
        sa.text(
            "SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS "
            "WHERE CONSTRAINT_SCHEMA = COALESCE(:schema, DATABASE()) AND TABLE_NAME = :table"
        ),
        {"schema": schema, "table": table},
    ).all()
    found: set[str] = set()
    for (clause,) in rows:
        match = re.search(r"json_valid\(`?([^`)]+)`?\)", clause or "", re.I)
        if match:
            found.add(match.group(1))
    return found


def reflect(sync_conn: Any, rules: SchemaRules) -> list[ReflectedTable]:
    """Tables and columns of the connection (run inside ``run_sync``)."""
    inspector = sa.inspect(sync_conn)
    schemas: list[str | None] = list(rules.schemas) if rules.schemas else [None]
    exclude = [*DEFAULT_EXCLUDE, *rules.exclude]
    tables: list[ReflectedTable] = []
    for schema in schemas:
        for name in sorted(inspector.get_table_names(schema=schema)):
            if _excluded(name, exclude):
                continue
            if rules.include is not None and not _excluded(name, rules.include):
                continue
            pk = set(
                inspector.get_pk_constraint(name, schema=schema).get("constrained_columns") or []
            )
            json_columns = _mariadb_json_columns(sync_conn, name, schema)
            columns = [
                ReflectedColumn(
                    c["name"],
                    sa.JSON() if c["name"] in json_columns else c["type"],
                    bool(c.get("nullable", True)),
                    c["name"] in pk,
                )
                for c in inspector.get_columns(name, schema=schema)
            ]
            tables.append(ReflectedTable(name, schema, columns))
    return tables


def render(tables: Sequence[ReflectedTable], rules: SchemaRules | None = None) -> GeneratedSchema:
    """The module text for ``tables`` (deterministic: sorted, one style)."""
    from ..orm.base_model import _reserved_names

    rules = rules or SchemaRules()
    reserved = _reserved_names()
    imports: set[str] = set()
    classes: dict[str, str] = {}
    blocks: list[str] = []
    taken: set[str] = set()
    for table in sorted(tables, key=lambda t: ((t.schema or ""), t.name)):
        cls = class_name(table.name)
        base_cls = cls
        n = 2
        while cls in taken:
            cls = f"{base_cls[:-6]}{n}Schema"
            n += 1
        taken.add(cls)
        classes[table.name] = cls
        qualified = f"{table.schema}.{table.name}" if table.schema else table.name
        lines = [f"class {cls}(BaseModel, abstract=True):", f"    table = {_q(qualified)}"]
        primaries = [c for c in table.columns if c.primary]
        if not primaries:
            lines.append("    # No primary key in the database: declare one on the model.")
        elif len(primaries) > 1:
            names = ", ".join(c.name for c in primaries)
            lines.append(f"    # Composite primary key ({names}): the first is the model's key.")
        used: set[str] = set()
        for col in table.columns:
            attr = attribute_name(col.name, reserved)
            while attr in used:
                attr += "_"
            used.add(attr)
            custom = rules.columns.get(f"{table.name}.{col.name}")
            sql_name = _sql_type_name(col.type)
            type_custom = rules.types.get(sql_name.split("(")[0]) or rules.types.get(sql_name)
            comment = ""
            if custom is not None:
                rule: ColumnRule | None = _custom_rule(custom)
            elif type_custom is not None:
                rule = _custom_rule(type_custom)
            else:
                rule = default_rule(col)
            if rule is None:
                rule = ColumnRule(
                    "Any",
                    "column(type_=NullType())",
                    ("from typing import Any", "from sqlalchemy.types import NullType"),
                )
                comment = f"  # unmapped SQL type: {sql_name.upper()}"
            imports.update(rule.imports)
            factory = rule.factory
            options: list[str] = []
            if primaries and col is primaries[0]:
                options.append("is_primary=True")
            if attr != col.name:
                options.append(f"column_name={_q(col.name)}")
            if options:
                inner = factory[factory.index("(") + 1 : -1]
                args = ", ".join([*options, *([inner] if inner else [])])
                factory = f"{factory[: factory.index('(')]}({args})"
            annotation = rule.annotation
            if col.nullable and not (primaries and col is primaries[0]) and annotation != "Any":
                annotation = f"{annotation} | None"
            line = f"    {attr}: {annotation} = {factory}{comment}"
            if len(line) > _LINE and not comment:
                line = f"    {attr}: {annotation} = (\n        {factory}\n    )"
            lines.append(line)
        blocks.append("\n".join(lines))
    stdlib, third = _import_lines(imports)
    head = [HEADER, "from __future__ import annotations", ""]
    if stdlib:
        head.extend([*stdlib, ""])
    if third:
        head.extend([*third, ""])
    head.extend(["from lucid_orm import BaseModel, column", "", "", ""])
    text = "\n".join(head) + "\n\n\n".join(blocks) + "\n"
    if not blocks:
        text = "\n".join([HEADER, "from __future__ import annotations", ""])
    return GeneratedSchema(None, classes, text)


def _q(value: str) -> str:
    """A double-quoted Python string literal (the formatter's style)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


_THIRD_PARTY = ("sqlalchemy",)


def _import_lines(imports: set[str]) -> tuple[list[str], list[str]]:
    """Imports merged per module and sorted like isort: ``import x`` lines, then ``from``."""
    plain: set[str] = set()
    froms: dict[str, set[str]] = {}
    for line in imports:
        if line.startswith("import "):
            plain.add(line[len("import ") :].strip())
        else:
            module, _, names = line[len("from ") :].partition(" import ")
            froms.setdefault(module.strip(), set()).update(n.strip() for n in names.split(","))

    def group(third: bool) -> list[str]:
        def is_third(module: str) -> bool:
            return module.split(".")[0] in _THIRD_PARTY

        out = [f"import {m}" for m in sorted(plain) if is_third(m) == third]
        out += [
            f"from {m} import {', '.join(sorted(names))}"
            for m, names in sorted(froms.items())
            if is_third(m) == third
        ]
        return out

    return group(False), group(True)


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename: readers see the old
    module or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


async def generate_schema(
    database: Database | None = None,
    *,
    connection: str | None = None,
    output: str | Path | None = "database/schema.py",
    rules: Mapping[str, Any] | SchemaRules | None = None,
) -> GeneratedSchema:
    """Introspect ``connection`` and write the schema module to ``output`` (``None``: only
    return the text)."""
    from ..database.manager import db as default_db

    manager = database or default_db
    engine = manager.engine(connection)
    parsed = SchemaRules.from_config(rules)
    async with engine.connect() as conn:
        tables = await conn.run_sync(reflect, parsed)
    result = render(tables, parsed)
    if output is not None:
        path = Path(output)
        write_atomic(path, result.text)
        result.path = path
    return result
