"""``schema:generate``: read the database's tables (SQLAlchemy reflection) and write one Python
module of typed, abstract schema classes — ``class PostsSchema(BaseModel, abstract=True)`` —
that models extend, so the migrations stay the single source of truth for columns."""

from __future__ import annotations

import ast
import fnmatch
import keyword
import os
import re
import stat
import sys
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import mysql as mysql_types
from sqlalchemy.types import NullType

from ..errors import LucidError
from ..orm.naming import snake_case

if TYPE_CHECKING:
    from ..database.manager import Database

HEADER = '''"""Schema classes generated from the database by `lucid-orm schema:generate`.

Do not edit: this file is rewritten after every migration command. Extend the classes in your
models (``class Post(PostsSchema): ...``) and redeclare a column there to change its options.
"""
'''

DEFAULT_EXCLUDE = ("lucid_schema", "lucid_schema_lock", "alembic_version")
DEFAULT_LINE_LENGTH = 100
_INDENT = "    "
# Names the generated module itself uses: a column attribute never shadows them in the class
# body (``date: date = column.date()`` would break the next annotation for type checkers, and
# a column named ``column`` would break the next ``column()`` call).
_MODULE_NAMES = frozenset(
    {"BaseModel", "column", "Any", "Decimal", "date", "datetime", "time", "uuid"}
    | {"BigInteger", "NullType", "Uuid"}
    | {"int", "str", "bool", "float", "bytes", "dict", "list", "tuple", "set", "None"}
)
_RULE_KEYS = {"types", "columns", "include", "exclude", "schemas", "line_length"}


@dataclass
class ColumnRule:
    """How to declare one column: its Python annotation, the ``column`` call, and imports."""

    annotation: str
    factory: str = "column()"
    imports: tuple[str, ...] = ()


@dataclass
class SchemaRules:
    """Generation rules (config ``SCHEMA_RULES``).

    - ``types`` maps a SQL type name as the database spells it (``"jsonb"``, ``"inet"``,
      ``"varchar(36)"`` or just ``"varchar"``) and ``columns`` a ``"table.column"`` to a Python
      type: a string such as ``"dict[str, Any]"`` or a dict ``{"type": "Settings", "import":
      "from app.types import Settings", "factory": "column()"}``. ``columns`` wins over
      ``types``, which win over the built-in mapping.
    - ``include`` (default: every table) and ``exclude`` list table names or globs
      (``"audit_*"``); the migrations tables are always excluded.
    - ``schemas`` lists the PostgreSQL schemas to read (default: the connection's default
      schema); tables outside the default schema get a qualified ``table = "schema.table"``.
    - ``line_length`` (default 100): the module is laid out as ``ruff format`` would at that
      line length, so formatting the project leaves it unchanged.
    """

    types: dict[str, Any] = field(default_factory=dict)
    columns: dict[str, Any] = field(default_factory=dict)
    include: list[str] | None = None
    exclude: list[str] = field(default_factory=list)
    schemas: list[str] | None = None
    line_length: int = DEFAULT_LINE_LENGTH

    @classmethod
    def from_config(cls, value: Mapping[str, Any] | SchemaRules | None) -> SchemaRules:
        """Rules from a config mapping (``SCHEMA_RULES``); raises ``LucidError``
        (``E_INVALID_CONFIG``) for unknown keys or ill-typed values."""
        if value is None:
            return cls()
        if isinstance(value, SchemaRules):
            return value
        _check_rule_keys(value)
        rules = cls(
            line_length=value.get("line_length", DEFAULT_LINE_LENGTH),
            types={str(k).lower(): v for k, v in dict(value.get("types") or {}).items()},
            columns={str(k): v for k, v in dict(value.get("columns") or {}).items()},
            include=[str(p) for p in value["include"]] if value.get("include") else None,
            exclude=[str(p) for p in value.get("exclude") or []],
            schemas=[str(s) for s in value["schemas"]] if value.get("schemas") else None,
        )
        for rule in [*rules.types.values(), *rules.columns.values()]:
            _custom_rule(rule)  # fail on a bad rule now, not halfway through a generation
        return rules


def _check_rule_keys(value: Any) -> None:
    """The shape of a ``SCHEMA_RULES`` mapping: known keys, each of the right type."""
    if not isinstance(value, Mapping):
        raise _config_error(f"Schema rules must be a mapping, got {value!r}")
    unknown = set(value) - _RULE_KEYS
    if unknown:
        raise _config_error(
            f"Unknown schema rule keys: {', '.join(sorted(map(str, unknown)))} (use "
            "types, columns, include, exclude, schemas, line_length)"
        )
    for key in ("types", "columns"):
        if not isinstance(value.get(key) or {}, Mapping):
            raise _config_error(f'Schema rule "{key}" must be a mapping')
    for key in ("include", "exclude", "schemas"):
        item = value.get(key)
        if isinstance(item, str) or not isinstance(item or [], Sequence):
            raise _config_error(f'Schema rule "{key}" must be a list of names')
    width = value.get("line_length", DEFAULT_LINE_LENGTH)
    if isinstance(width, bool) or not isinstance(width, int) or width < 40:
        raise _config_error(f'Schema rule "line_length" must be an integer >= 40, got {width!r}')


@dataclass
class ReflectedColumn:
    """A column as read from the database. ``sql_type`` is the type as the database spells it
    (``"VARCHAR(80)"``, ``"POINT"``); ``type`` is ``NullType()`` when SQLAlchemy has no type
    for it."""

    name: str
    type: Any
    nullable: bool
    primary: bool
    sql_type: str = ""


@dataclass
class ReflectedTable:
    """A table as read from the database (``schema`` is ``None`` for the default schema)."""

    name: str
    schema: str | None
    columns: list[ReflectedColumn]


@dataclass
class GeneratedSchema:
    """The result: where it was written, the class name per table, the module text, and
    whether the file changed (an identical file is left alone)."""

    path: Path | None
    classes: dict[str, str]
    text: str
    changed: bool = False


def _config_error(message: str) -> LucidError:
    return LucidError(message, code="E_INVALID_CONFIG")


def class_name(table: str) -> str:
    """The schema class of a table: the words of its name capitalised, then ``Schema``.

    ``posts`` → ``PostsSchema``, ``blog_posts`` → ``BlogPostsSchema``; characters that can't be
    in a Python name are word breaks (``order items`` → ``OrderItemsSchema``), a leading digit
    gets a ``T`` prefix (``2fa-codes`` → ``T2faCodesSchema``) and a name with no usable
    character becomes ``TableSchema``. ``render`` numbers clashes (``Posts2Schema``).
    """
    words = [w for w in re.split(r"[\W_]+", table) if w]
    name = "".join(w[:1].upper() + w[1:] for w in words)
    name = "".join(ch for ch in name if f"A{ch}".isidentifier()) or "Table"
    if not name[0].isidentifier():
        name = "T" + name
    return f"{name}Schema"


def attribute_name(column: str, reserved: frozenset[str]) -> str:
    """The attribute of a column: its snake_case name (``userId`` → ``user_id``), a valid
    Python identifier (``first name`` → ``first_name``, ``2nd`` → ``c_2nd``), with ``_``
    appended to keywords and reserved names (``class`` → ``class_``, ``save`` → ``save_``).
    The column keeps its database name through ``column_name=``."""
    if column.isascii():
        name = snake_case(column)
    else:
        name = re.sub(r"\W+", "_", column).strip("_").lower()
    name = "".join(ch if f"A{ch}".isidentifier() else "_" for ch in name)
    if not name or not name[0].isidentifier():
        name = f"c_{name}" if name else "c"
    if keyword.iskeyword(name) or name in reserved:
        name += "_"
    return name


def default_rule(column: ReflectedColumn) -> ColumnRule | None:
    """The built-in rule for a reflected type, or ``None`` when it has no mapping."""
    t = column.type
    name = column.name
    if isinstance(t, sa.Boolean) or (
        isinstance(t, mysql_types.TINYINT) and getattr(t, "display_width", None) == 1
    ):
        return ColumnRule("bool")
    if isinstance(t, sa.BigInteger):
        # The model's type for ``int`` binds a 32-bit INTEGER (asyncpg enforces it).
        return ColumnRule(
            "int", "column(type_=BigInteger())", ("from sqlalchemy import BigInteger",)
        )
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
    if isinstance(t, sa.Uuid):
        # A native uuid column (PostgreSQL): SQLAlchemy's Uuid binds the driver's native
        # uuid (the default uuid.UUID type, text bound without a cast, works too).
        return ColumnRule(
            "uuid.UUID", "column(type_=Uuid())", ("import uuid", "from sqlalchemy import Uuid")
        )
    if isinstance(t, sa.JSON):
        return ColumnRule("Any", imports=("from typing import Any",))
    if isinstance(t, sa.LargeBinary | sa.BINARY | sa.VARBINARY):
        return ColumnRule("bytes")
    if isinstance(t, sa.String | sa.Enum):
        return ColumnRule("str")
    return None


def _unmapped_rule() -> ColumnRule:
    # NullType passes values through as the driver gives and takes them (``Any`` alone would
    # mean JSON to the model).
    return ColumnRule(
        "Any",
        "column(type_=NullType())",
        ("from typing import Any", "from sqlalchemy.types import NullType"),
    )


def _custom_rule(value: Any) -> ColumnRule:
    if isinstance(value, str):
        rule = ColumnRule(value)
    elif isinstance(value, Mapping) and isinstance(value.get("type"), str):
        imports = value.get("import") or ()
        if isinstance(imports, str):
            imports = (imports,)
        rule = ColumnRule(value["type"], str(value.get("factory", "column()")), tuple(imports))
    else:
        raise _config_error(
            f"A schema rule must be a type string or a dict with a 'type', got {value!r}"
        )
    try:
        ast.parse(rule.annotation, mode="eval")
        _call_parts(rule.factory)
        for line in rule.imports:
            if not isinstance(line, str) or not isinstance(
                ast.parse(line).body[0], ast.Import | ast.ImportFrom
            ):
                raise SyntaxError(line)
    except (SyntaxError, IndexError, ValueError) as exc:
        raise _config_error(
            f"Invalid schema rule {value!r}: the type must be a Python expression, the factory "
            f'a call such as "column()" and imports import statements'
        ) from exc
    if re.search(r"\bAny\b", rule.annotation):
        rule.imports = (*rule.imports, "from typing import Any")
    return rule


def _call_parts(factory: str) -> tuple[str, list[str]]:
    """``column(a=1, b=f(2))`` → ``("column", ["a=1", "b=f(2)"])``."""
    node = ast.parse(factory, mode="eval").body
    if not isinstance(node, ast.Call):
        raise ValueError(f"{factory!r} is not a call")
    callee = ast.get_source_segment(factory, node.func)
    args = [ast.get_source_segment(factory, a) for a in node.args]
    args += [ast.get_source_segment(factory, k) for k in node.keywords]
    if callee is None or any(a is None for a in args):
        raise ValueError(f"Cannot read the arguments of {factory!r}")
    return callee, [a for a in args if a is not None]


def _matches(table: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(table, p) for p in patterns)


# -- reflection --------------------------------------------------------------------------------
def reflect(sync_conn: Any, rules: SchemaRules) -> list[ReflectedTable]:
    """Tables and columns of the connection, sorted by schema and name (run inside
    ``run_sync``). Types SQLAlchemy does not know come back as ``NullType`` with the
    database's own spelling in ``sql_type``."""
    inspector = sa.inspect(sync_conn)
    default_schema = inspector.default_schema_name
    given_schemas: list[str | None] = [*rules.schemas] if rules.schemas else [None]
    tables: list[ReflectedTable] = []
    for given in given_schemas:
        schema = None if given == default_schema else given
        tables.extend(_reflect_schema(sync_conn, inspector, schema, rules))
    return tables


def _table_names(inspector: Any, schema: str | None, rules: SchemaRules) -> list[str]:
    """The tables of ``schema`` the rules include, sorted."""
    exclude = [*DEFAULT_EXCLUDE, *rules.exclude]
    return sorted(
        name
        for name in inspector.get_table_names(schema=schema)
        if not _matches(name, exclude) and (rules.include is None or _matches(name, rules.include))
    )


def _reflect_schema(
    sync_conn: Any, inspector: Any, schema: str | None, rules: SchemaRules
) -> list[ReflectedTable]:
    names = _table_names(inspector, schema, rules)
    if not names:
        return []
    with warnings.catch_warnings():
        # "Did not recognize type ...": such columns are reported as unmapped instead.
        warnings.filterwarnings("ignore", "Did not recognize type", sa_exc.SAWarning)
        columns = inspector.get_multi_columns(schema=schema, filter_names=names)
        pks = inspector.get_multi_pk_constraint(schema=schema, filter_names=names)
    json_columns = _mariadb_json_columns(sync_conn, schema)
    unknown = any(isinstance(c["type"], NullType) for cols in columns.values() for c in cols)
    declared = _declared_types(sync_conn, schema, names) if unknown or _is_sqlite(sync_conn) else {}
    tables: list[ReflectedTable] = []
    for name in names:
        pk = set((pks.get((schema, name)) or {}).get("constrained_columns") or [])
        found = [
            _reflect_column(
                sync_conn,
                c,
                c["name"] in pk,
                (name, c["name"]) in json_columns,
                declared.get((name, c["name"])),
            )
            for c in columns.get((schema, name), [])
        ]
        tables.append(ReflectedTable(name, schema, found))
    return tables


def _reflect_column(
    sync_conn: Any, c: Mapping[str, Any], primary: bool, is_json: bool, spelled: str | None
) -> ReflectedColumn:
    """One reflected column; ``spelled``: its type as the database declares it, if read."""
    type_ = sa.JSON() if is_json else c["type"]
    if _is_sqlite(sync_conn) and spelled is not None and _sqlite_guess(spelled):
        type_ = NullType()  # an affinity guess, not a type SQLite or we know
    if isinstance(type_, NullType):
        sql_type = (spelled or "").upper() or "no declared type"
    else:
        sql_type = _compile(type_, sync_conn.dialect)
    return ReflectedColumn(c["name"], type_, bool(c.get("nullable", True)), primary, sql_type)


def _is_sqlite(sync_conn: Any) -> bool:
    return bool(sync_conn.dialect.name == "sqlite")


def _compile(type_: Any, dialect: Any) -> str:
    try:
        return str(type_.compile(dialect=dialect))
    except sa_exc.SQLAlchemyError:
        return type(type_).__name__.upper()


def _sqlite_guess(spelled: str) -> bool:
    """Whether SQLite's type affinity rules would only *guess* this declared type: a name
    SQLAlchemy doesn't know that falls through to NUMERIC (``GEOMETRY``) or to no type
    (``GEOBLOB``, or no type at all)."""
    from sqlalchemy.dialects.sqlite.base import SQLiteDialect

    base = re.sub(r"\(.*", "", spelled).strip().upper()
    if base in SQLiteDialect.ischema_names:
        return False
    known = ("INT", "CHAR", "CLOB", "TEXT", "REAL", "FLOA", "DOUB")
    return not any(part in base for part in known)


def _declared_types(
    sync_conn: Any, schema: str | None, tables: Sequence[str]
) -> dict[tuple[str, str], str]:
    """Each column's type as the database declares it, by ``(table, column)``."""
    name = sync_conn.dialect.name
    found: dict[tuple[str, str], str] = {}
    if name == "sqlite":
        query = sa.text("SELECT name, type FROM pragma_table_xinfo(:table, :schema)")
        for table in tables:
            for column, spelled in sync_conn.execute(
                query, {"table": table, "schema": schema or "main"}
            ):
                found[(table, column)] = spelled or ""
        return found
    if name == "postgresql":
        query = sa.text(
            "SELECT table_name, column_name, udt_name FROM information_schema.columns "
            "WHERE table_schema = COALESCE(:schema, current_schema())"
        )
    else:
        query = sa.text(
            "SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = COALESCE(:schema, DATABASE())"
        )
    wanted = set(tables)
    for table, column, spelled in sync_conn.execute(query, {"schema": schema}):
        if table in wanted:
            found[(table, column)] = str(spelled or "")
    return found


def _mariadb_json_columns(sync_conn: Any, schema: str | None) -> set[tuple[str, str]]:
    """MariaDB stores JSON as LONGTEXT with a CHECK ``json_valid(col)``, which SQLAlchemy
    reflects as plain text: find those ``(table, column)`` in ``information_schema``."""
    if not getattr(sync_conn.dialect, "is_mariadb", False):
        return set()
    rows = sync_conn.execute(
        sa.text(
            "SELECT TABLE_NAME, CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS "
            "WHERE CONSTRAINT_SCHEMA = COALESCE(:schema, DATABASE())"
        ),
        {"schema": schema},
    ).all()
    found: set[tuple[str, str]] = set()
    for table, clause in rows:
        match = re.fullmatch(r"\s*json_valid\(`?([^`)]+)`?\)\s*", clause or "", re.I)
        if match:
            found.add((table, match.group(1)))
    return found


# -- rendering ---------------------------------------------------------------------------------
def render(tables: Sequence[ReflectedTable], rules: SchemaRules | None = None) -> GeneratedSchema:
    """The module text for ``tables``: deterministic (tables sorted by schema and name, columns
    in table order) and already in ``ruff format`` style. Raises ``LucidError``
    (``E_INVALID_CONFIG``) for a bad rule."""
    ctx = _RenderContext.build(rules or SchemaRules())
    classes: dict[str, str] = {}
    blocks: list[str] = []
    for table in sorted(tables, key=lambda t: (t.schema or "", t.name)):
        qualified = f"{table.schema}.{table.name}" if table.schema else table.name
        cls = ctx.class_for(table)
        classes[qualified] = cls
        blocks.append(render_class(ctx, table, qualified, cls))
    if not blocks:
        return GeneratedSchema(
            None, classes, "\n".join([HEADER, "from __future__ import annotations", ""])
        )
    text = render_imports(ctx) + "\n\n\n".join(blocks) + "\n"
    return GeneratedSchema(None, classes, text)


@dataclass
class _RenderContext:
    """What rendering one module shares: the rules (custom ones parsed once), the names a
    column attribute may not take, the class names taken, and the imports collected."""

    width: int
    custom_columns: dict[str, ColumnRule]
    custom_types: dict[str, ColumnRule]
    reserved: frozenset[str]
    taken: set[str]
    imports: set[str] = field(default_factory=set)

    @classmethod
    def build(cls, rules: SchemaRules) -> _RenderContext:
        from ..orm.model_info import reserved_names

        custom_columns = {k: _custom_rule(v) for k, v in rules.columns.items()}
        custom_types = {k: _custom_rule(v) for k, v in rules.types.items()}
        imported = {
            name
            for rule in [*custom_columns.values(), *custom_types.values()]
            for name in _imported_names(rule.imports)
        }
        return cls(
            width=rules.line_length,
            custom_columns=custom_columns,
            custom_types=custom_types,
            reserved=reserved_names() | _MODULE_NAMES | imported,
            taken=set(_MODULE_NAMES) | imported,
        )

    def class_for(self, table: ReflectedTable) -> str:
        """The table's class name, numbered when taken (``Posts2Schema``)."""
        base_cls = class_name(f"{table.schema}_{table.name}" if table.schema else table.name)
        cls = base_cls
        n = 2
        while cls in self.taken:
            cls = f"{base_cls[: -len('Schema')]}{n}Schema"
            n += 1
        self.taken.add(cls)
        return cls

    def rule_for(
        self, qualified: str, table: ReflectedTable, col: ReflectedColumn
    ) -> ColumnRule | None:
        """``columns`` (qualified, then plain), then ``types`` (spelled, then its base name),
        then the built-in mapping."""
        sql_name = col.sql_type.lower()
        return (
            self.custom_columns.get(f"{qualified}.{col.name}")
            or self.custom_columns.get(f"{table.name}.{col.name}")
            or self.custom_types.get(sql_name)
            or self.custom_types.get(sql_name.split("(")[0].strip())
            or default_rule(col)
        )


def render_class(ctx: _RenderContext, table: ReflectedTable, qualified: str, cls: str) -> str:
    """``class PostsSchema(BaseModel, abstract=True):`` with its ``table`` and columns."""
    header = f"class {cls}(BaseModel, abstract=True):"
    if len(header) > ctx.width:
        header = f"class {cls}(\n{_INDENT}BaseModel, abstract=True\n):"
    lines = [header, f"{_INDENT}table = {_q(qualified)}"]
    primaries = [c for c in table.columns if c.primary]
    if not primaries:
        lines.append(f"{_INDENT}# No primary key in the database: declare one on the model.")
    elif len(primaries) > 1:
        names = ", ".join(c.name for c in primaries)
        lines.append(f"{_INDENT}# Composite primary key ({names}): the first is the model's key.")
    used: set[str] = set()
    for col in table.columns:
        attr = attribute_name(col.name, ctx.reserved)
        while attr in used:
            attr += "_"
        used.add(attr)
        primary = bool(primaries) and col is primaries[0]
        lines.extend(render_column(ctx, qualified, table, col, attr, primary))
    return "\n".join(lines)


def render_column(
    ctx: _RenderContext,
    qualified: str,
    table: ReflectedTable,
    col: ReflectedColumn,
    attr: str,
    primary: bool,
) -> list[str]:
    """``attr: annotation = column(...)``, after a comment when the type has no mapping."""
    lines: list[str] = []
    rule = ctx.rule_for(qualified, table, col)
    if rule is None:
        rule = _unmapped_rule()
        lines.append(f"{_INDENT}# {col.name}: unmapped SQL type {col.sql_type}")
    ctx.imports.update(rule.imports)
    callee, args = _call_parts(rule.factory)
    options: list[str] = []
    if primary:
        options.append("is_primary=True")
        if callee != "column":  # column.date*() take no is_primary: the type is the same
            callee, args = "column", [a for a in args if a.startswith("type_=")]
    if attr != col.name or snake_case(attr) != col.name:
        options.append(f"column_name={_q(col.name)}")
    # The key and the column name are the generator's to set, whatever the rule says.
    args = [*options, *(a for a in args if _keyword(a) not in _OWN_OPTIONS)]
    annotation = rule.annotation
    if col.nullable and not primary and not _is_optional(annotation):
        annotation = f"{annotation} | None"
    lines.append(_declaration(attr, annotation, callee, args, ctx.width))
    return lines


def render_imports(ctx: _RenderContext) -> str:
    """The module's head: its docstring, then the imports the rendered classes need."""
    head = [HEADER, "from __future__ import annotations", ""]
    imports = ctx.imports | {"from lucid_orm import BaseModel, column"}
    for group in _import_lines(imports, ctx.width):
        head.extend([*group, ""])
    return "\n".join([*head, "", ""])


_OWN_OPTIONS = ("is_primary", "column_name")


def _keyword(argument: str) -> str:
    return argument.split("=", 1)[0].strip() if "=" in argument else ""


def _is_optional(annotation: str) -> bool:
    if annotation in ("Any", "object"):
        return True
    try:
        node = ast.parse(annotation, mode="eval").body
    except SyntaxError:
        return False
    parts: list[ast.expr] = []
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, ast.BinOp) and isinstance(item.op, ast.BitOr):
            stack += [item.left, item.right]
        else:
            parts.append(item)
    return any(isinstance(p, ast.Constant) and p.value is None for p in parts) or (
        isinstance(node, ast.Subscript)
        and ast.unparse(node.value) in ("Optional", "typing.Optional")
    )


def _declaration(attr: str, annotation: str, callee: str, args: list[str], width: int) -> str:
    """``attr: annotation = callee(args)`` laid out as ``ruff format`` lays it out (checked
    against it for every name length up to the identifier limits of the databases)."""
    target = f"{_INDENT}{attr}: "
    flat_call = f"{callee}({', '.join(args)})"
    head = f"{target}{annotation} = "
    if len(head) + len(flat_call) <= width:
        return head + flat_call

    def call(start: int, indent: str) -> str:
        """The call starting at column ``start`` of a line indented by ``indent``: flat if it
        fits, else split inside its own parentheses."""
        if start + len(flat_call) <= width or not args:
            return flat_call
        inner = indent + _INDENT
        joined = inner + ", ".join(args)
        if len(joined) <= width or len(args) == 1:
            return f"{callee}(\n{joined}\n{indent})"
        body = "".join(f"{inner}{a},\n" for a in args)
        return f"{callee}(\n{body}{indent})"

    def own_parentheses() -> str:
        return head + call(width + 1, _INDENT)

    def parenthesized() -> str:
        inner = _INDENT * 2
        return f"{head}(\n{inner}{call(len(inner), inner)}\n{_INDENT})"

    def fits(text: str) -> bool:
        return all(len(line) <= width for line in text.splitlines())

    kind = _annotation_kind(annotation)
    if kind in ("name", "attribute"):
        if not args:  # parenthesize only when that makes it fit
            return parenthesized() if len(head) + 1 <= width else head + flat_call
        if len(head) + len(callee) + 1 <= width:
            return own_parentheses()
        return parenthesized() if fits(parenthesized()) else own_parentheses()
    # Ruff's "right to left" layout: split the value first, the annotation last.
    if args and len(head) + len(callee) + 1 <= width:
        return own_parentheses()
    if len(head) + 1 <= width:
        return parenthesized()
    closing = f"{_INDENT}) = "
    if kind == "subscript":
        node = ast.parse(annotation, mode="eval").body
        assert isinstance(node, ast.Subscript)
        value = ast.get_source_segment(annotation, node.value) or ast.unparse(node.value)
        index = ast.get_source_segment(annotation, node.slice) or ast.unparse(node.slice)
        closing = f"{_INDENT}] = "
        split = f"{value}[\n{_INDENT * 2}{index}\n"
        return f"{target}{split}{closing}{call(len(closing), _INDENT)}"
    split = f"(\n{_INDENT * 2}{annotation}\n"
    return f"{target}{split}{closing}{call(len(closing), _INDENT)}"


def _annotation_kind(annotation: str) -> str:
    """How ruff may split an annotation: ``name`` (it can't), ``attribute`` (it can't, but the
    value is laid out right to left), ``subscript`` (in its brackets) or ``union``
    (parenthesized)."""
    try:
        node = ast.parse(annotation, mode="eval").body
    except SyntaxError:
        return "name"
    if isinstance(node, ast.Attribute):
        return "attribute"
    if isinstance(node, ast.Subscript):
        return "subscript"
    if isinstance(node, ast.BinOp):
        return "union"
    return "name"


def _q(value: str) -> str:
    """A Python string literal in the formatter's style (double quotes unless the text has
    some and no single quotes)."""
    if '"' in value and "'" not in value:
        return repr(value)
    text = repr(value)
    if text.startswith("'"):
        text = '"' + text[1:-1].replace("\\'", "'").replace('"', '\\"') + '"'
    return text


def _imported_names(lines: Sequence[str]) -> set[str]:
    names: set[str] = set()
    for line in lines:
        for node in ast.parse(line).body:
            if isinstance(node, ast.Import | ast.ImportFrom):
                for alias in node.names:
                    names.add(alias.asname or alias.name.split(".")[0])
    return names


def _import_lines(imports: set[str], width: int) -> list[list[str]]:
    """Imports merged per module and grouped like isort: the standard library, then the rest;
    in each group ``import x`` lines, then ``from x import ...`` lines, sorted."""
    plain: set[str] = set()
    froms: dict[str, set[str]] = {}
    for line in imports:
        for node in ast.parse(line).body:
            if isinstance(node, ast.Import):
                plain.update(
                    a.name if a.asname is None else f"{a.name} as {a.asname}" for a in node.names
                )
            elif isinstance(node, ast.ImportFrom):
                module = "." * node.level + (node.module or "")
                froms.setdefault(module, set()).update(
                    a.name if a.asname is None else f"{a.name} as {a.asname}" for a in node.names
                )

    def stdlib(module: str) -> bool:
        return module.split(".")[0] in sys.stdlib_module_names

    groups: list[list[str]] = []
    for in_stdlib in (True, False):
        group = [f"import {m}" for m in sorted(plain) if stdlib(m) == in_stdlib]
        for module, names in sorted(froms.items()):
            if stdlib(module) != in_stdlib:
                continue
            line = f"from {module} import {', '.join(sorted(names))}"
            if len(line) > width:
                body = "".join(f"{_INDENT}{n},\n" for n in sorted(names))
                line = f"from {module} import (\n{body})"
            group.append(line)
        if group:
            groups.append(group)
    return groups


# -- writing -----------------------------------------------------------------------------------
def write_atomic(path: Path, text: str) -> bool:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename:
    readers see the old module or the new one, never half of one, and a failure leaves the old
    file as it was. An identical file is not rewritten (its mtime stays, so reloaders stay
    quiet). Returns whether the file changed."""
    path = Path(path)
    try:
        if path.read_text(encoding="utf-8") == text:
            return False
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)  # mkstemp makes it 0600; a source file is as readable as the others
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


async def generate_schema(
    database: Database | None = None,
    *,
    connection: str | None = None,
    output: str | Path | None = "database/schema.py",
    rules: Mapping[str, Any] | SchemaRules | None = None,
) -> GeneratedSchema:
    """Read the tables of ``connection`` (default: the default one) of ``database`` (default:
    ``lucid_orm.db``) and write the schema module to ``output`` (``None``: only return it)::

        result = await generate_schema(output="database/schema.py", rules={"exclude": ["jobs"]})
        result.classes   # {"posts": "PostsSchema", "users": "UsersSchema"}

    The module is rendered in full before anything is written, and written atomically, so a
    failure leaves the previous file untouched. Raises ``LucidError`` for bad rules
    (``E_INVALID_CONFIG``) and ``QueryError`` when the database fails.
    """
    from ..database.ddl import reading_connection
    from ..database.manager import db as default_db
    from ..database.query_client import wrap_error

    manager = database or default_db
    parsed = SchemaRules.from_config(rules)
    try:
        async with reading_connection(manager.get_connection(connection)) as conn:
            tables = await conn.run_sync(reflect, parsed)
    except sa_exc.DBAPIError as exc:
        raise wrap_error(exc) from exc
    result = render(tables, parsed)
    if output is not None:
        path = Path(output)
        result.changed = write_atomic(path, result.text)
        result.path = path
    return result
