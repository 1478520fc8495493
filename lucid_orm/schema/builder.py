"""The schema builder: Lucid/Knex's vocabulary (``create_table``, ``t.increments()``,
``t.string("email").not_nullable().unique()``…) compiled to SQLAlchemy DDL through Alembic's
operations, which also give SQLite the table-copy "batch" ALTERs it needs.

Calls are queued and run in order by ``await schema.execute(client)`` (the migrator does this
after ``up()``/``down()`` return, like Lucid); ``dry_run=True`` collects the SQL instead.
"""

from __future__ import annotations

import hashlib
import inspect
import io
import json
import re
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Self

import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.schema import CreateSchema, DropSchema
from sqlalchemy.types import TypeEngine, UserDefinedType

from ..database.query_client import QueryClient, _driver_error, connect_error, wrap_error
from ..database.transaction import TransactionClient
from ..errors import IntegrityError, LucidError, QueryError
from ..query.chainable import check_identifier

if TYPE_CHECKING:
    from ..database.connection import Connection
    from ..database.query_client import Client

_REFERENTIAL = {"CASCADE", "SET NULL", "SET DEFAULT", "RESTRICT", "NO ACTION"}
# ON DELETE actions that SQLite's implicit DELETE (DROP TABLE of a table copy) would fire.
_DESTRUCTIVE = {"CASCADE", "SET NULL", "SET DEFAULT"}
# Constraint and index names stay below PostgreSQL's 63 and MySQL's 64 characters.
_MAX_NAME = 60
_TEXT_TYPES = {"text", "mediumtext", "longtext"}


class _SpecificType(UserDefinedType[Any]):
    """``t.specific_type("ip", "inet")``: a column type written as given."""

    cache_ok = True

    def __init__(self, spec: str) -> None:
        self.spec = spec

    def get_col_spec(self, **kw: Any) -> str:
        return self.spec


class _Now:
    """``schema.now()``: the database's current timestamp as a column default."""


NOW = _Now()


def _integer(unsigned: bool, base: TypeEngine[Any], mysql_type: Any) -> TypeEngine[Any]:
    if unsigned:
        return base.with_variant(mysql_type(unsigned=True), "mysql", "mariadb")
    return base


def _constraint_name(prefix: str, table: str, columns: Sequence[str]) -> str:
    """The name ``unique()``/``index()``/``foreign()`` give a constraint, so that
    ``drop_unique(["email"])`` finds it: ``uq_users_email``; long names end in a hash."""
    name = f"{prefix}_{table}_{'_'.join(columns)}"
    if len(name) <= _MAX_NAME:
        return name
    digest = hashlib.md5(name.encode(), usedforsecurity=False).hexdigest()[:8]
    return f"{name[: _MAX_NAME - 9]}_{digest}"


@dataclass
class ColumnBuilder:
    """One column of ``create_table``/``alter_table``; modifiers chain:
    ``t.integer("user_id").unsigned().references("users.id").on_delete("CASCADE")``."""

    name: str
    kind: str
    args: dict[str, Any] = field(default_factory=dict)
    is_nullable: bool = True
    is_primary: bool = False
    is_unique: bool = False
    is_unsigned: bool = False
    has_index: bool = False
    default: Any = None
    has_default: bool = False
    comment_text: str | None = None
    reference: tuple[str, str] | None = None
    delete_rule: str | None = None
    update_rule: str | None = None
    altering: bool = False
    autoincrement: bool = False

    def not_nullable(self) -> Self:
        """``NOT NULL``."""
        self.is_nullable = False
        return self

    def nullable(self) -> Self:
        """Allow ``NULL`` (the default)."""
        self.is_nullable = True
        return self

    def primary(self) -> Self:
        """Make it the primary key: ``t.string("code").primary()``."""
        self.is_primary = True
        self.is_nullable = False
        return self

    def unique(self) -> Self:
        """A unique constraint on this column, named ``uq_<table>_<column>``."""
        self.is_unique = True
        return self

    def unsigned(self) -> Self:
        """Unsigned integer (MySQL/MariaDB; ignored elsewhere). A foreign key column referencing
        ``increments()`` needs it on MySQL, where the types must match."""
        self.is_unsigned = True
        return self

    def index(self) -> Self:
        """An index on this column, named ``ix_<table>_<column>``."""
        self.has_index = True
        return self

    def default_to(self, value: Any) -> Self:
        """A server default: a value, ``None`` (``DEFAULT NULL``), ``schema.now()`` or
        ``db.raw("...")``: ``t.boolean("active").default_to(True)``."""
        self.default = value
        self.has_default = True
        return self

    def comment(self, text: str) -> Self:
        """A column comment (PostgreSQL and MySQL; SQLite has none)."""
        self.comment_text = text
        return self

    def references(self, target: str) -> Self:
        """A foreign key: ``references("users.id")`` (or ``references("id").in_table("users")``)."""
        table, _, column = target.rpartition(".")
        check_identifier(column)
        if table:
            check_identifier(table, "table")
        self.reference = (table, column)
        return self

    def in_table(self, table: str) -> Self:
        """The table of ``references("id")``."""
        if self.reference is None:
            raise LucidError("in_table() follows references(column)")
        self.reference = (check_identifier(table, "table"), self.reference[1])
        return self

    def on_delete(self, rule: str) -> Self:
        """``ON DELETE`` rule: CASCADE, SET NULL, RESTRICT, NO ACTION, SET DEFAULT."""
        self.delete_rule = _rule(rule)
        return self

    def on_update(self, rule: str) -> Self:
        """``ON UPDATE`` rule: CASCADE, SET NULL, RESTRICT, NO ACTION, SET DEFAULT."""
        self.update_rule = _rule(rule)
        return self

    def alter(self) -> Self:
        """In ``alter_table``: change an existing column to this definition. As in Knex the
        definition is complete, not incremental: type, nullability and default are all set
        (a column altered without ``default_to`` loses its default)."""
        self.altering = True
        return self

    # -- compilation ---------------------------------------------------------------------------
    def sql_type(self) -> TypeEngine[Any]:
        """The SQLAlchemy type of this column (with per-dialect variants)."""
        a, kind = self.args, self.kind
        if kind in ("increments", "integer"):
            return _integer(self.is_unsigned or kind == "increments", sa.Integer(), mysql.INTEGER)
        if kind in ("big_increments", "big_integer"):
            # SQLite only auto-increments an ``INTEGER PRIMARY KEY`` (the rowid).
            base = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
            return _integer(self.is_unsigned or kind == "big_increments", base, mysql.BIGINT)
        if kind == "small_integer":
            return _integer(self.is_unsigned, sa.SmallInteger(), mysql.SMALLINT)
        if kind == "tiny_integer":
            return _integer(self.is_unsigned, sa.SmallInteger(), mysql.TINYINT)
        if kind == "string":
            return sa.String(a.get("length", 255))
        if kind == "text":
            text_type = a.get("text_type", "text")
            if text_type == "mediumtext":
                return sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")
            if text_type == "longtext":
                return sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")
            return sa.Text()
        if kind == "boolean":
            return sa.Boolean(create_constraint=False)
        if kind == "float":
            return sa.Float()
        if kind == "double":
            return sa.Double()
        if kind == "decimal":
            return sa.Numeric(a.get("precision", 8), a.get("scale", 2))
        if kind == "date":
            return sa.Date()
        if kind == "time":
            return sa.Time()
        if kind in ("datetime", "timestamp"):
            # DATETIME(6) on MySQL: TIMESTAMP there auto-updates and stops in 2038.
            return sa.DateTime(timezone=a.get("use_tz", False)).with_variant(
                mysql.DATETIME(fsp=a.get("precision", 6)), "mysql", "mariadb"
            )
        if kind == "json":
            return sa.JSON()
        if kind == "jsonb":
            return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
        if kind == "uuid":
            return sa.String(36).with_variant(postgresql.UUID(as_uuid=False), "postgresql")
        if kind == "binary":
            return sa.LargeBinary()
        if kind == "enum":
            values = a["values"]
            return sa.Enum(
                *values,
                native_enum=False,
                create_constraint=True,
                length=max(len(v) for v in values),
                name=a.get("enum_name"),
            )
        if kind == "specific":
            return _SpecificType(a["spec"])
        raise LucidError(f'Unknown column kind "{kind}"')

    def server_default(self, dialect: str) -> Any:
        """The ``server_default`` of this column on ``dialect`` (``None``: no default)."""
        if not self.has_default:
            return None
        value = self.default
        if value is None:
            return sa.text("NULL")
        if isinstance(value, _Now):
            precision = self.args.get("precision")
            if dialect in ("mysql", "mariadb") and precision:
                # MySQL wants the default's precision to equal the column's DATETIME(6).
                return sa.text(f"CURRENT_TIMESTAMP({int(precision)})")
            return sa.text("CURRENT_TIMESTAMP")
        if hasattr(value, "sql") and hasattr(value, "parts"):  # db.raw(...)
            return sa.text(_escape_colons(value.sql))
        if isinstance(value, bool):
            return sa.text(
                ("true" if value else "false") if dialect == "postgresql" else str(int(value))
            )
        if isinstance(value, int | float):
            return sa.text(repr(value))
        if isinstance(value, dict | list):
            return json.dumps(value)
        return str(value)

    def to_column(self, dialect: str, inline_constraints: bool = False) -> sa.Column[Any]:
        """The ``sa.Column``; unique, index and foreign key are left to named constraints
        unless ``inline_constraints``."""
        args: list[Any] = []
        if self.reference is not None and inline_constraints:
            args.append(
                sa.ForeignKey(
                    self.reference_target(), ondelete=self.delete_rule, onupdate=self.update_rule
                )
            )
        return sa.Column(
            self.name,
            self.sql_type(),
            *args,
            primary_key=self.is_primary,
            nullable=self.is_nullable,
            unique=(self.is_unique or None) if inline_constraints else None,
            index=(self.has_index or None) if inline_constraints else None,
            server_default=self.server_default(dialect),
            comment=self.comment_text,
            autoincrement=self.autoincrement,
        )

    def reference_target(self) -> str:
        """``"users.id"`` for a foreign key."""
        if self.reference is None or not self.reference[0]:
            raise LucidError(
                f'The foreign key on "{self.name}" needs a table: references("users.id") or '
                f'references("id").in_table("users")',
                code="E_INVALID_ARGUMENT",
            )
        return f"{self.reference[0]}.{self.reference[1]}"


def _rule(rule: str) -> str:
    value = rule.upper().strip()
    if value not in _REFERENTIAL:
        raise LucidError(
            f'Invalid referential action "{rule}": use one of {", ".join(sorted(_REFERENTIAL))}',
            code="E_INVALID_ARGUMENT",
        )
    return value


def _names(columns: Sequence[str] | str) -> list[str]:
    cols = [columns] if isinstance(columns, str) else list(columns)
    if not cols:
        raise LucidError("Expected at least one column name", code="E_INVALID_ARGUMENT")
    return [check_identifier(c) for c in cols]


class TableBuilder:
    """The ``t`` in ``schema.create_table("users", lambda t: ...)``: Knex's column and
    constraint methods. Column methods return a ``ColumnBuilder`` to chain modifiers on."""

    def __init__(self, table: str, altering: bool) -> None:
        self.table = table
        self.altering = altering
        self.columns: list[ColumnBuilder] = []
        self.drops: list[str] = []
        self.renames: list[tuple[str, str]] = []
        self.primary_keys: list[tuple[list[str], str | None]] = []
        self.uniques: list[tuple[list[str], str | None]] = []
        self.indexes: list[tuple[list[str], str | None]] = []
        self.foreigns: list[ColumnBuilder] = []
        self.dropped_constraints: list[tuple[str, str]] = []

    def _add(self, name: str, kind: str, **args: Any) -> ColumnBuilder:
        check_identifier(name)
        if any(c.name == name for c in self.columns):
            raise LucidError(
                f'Column "{name}" is declared twice in "{self.table}"', code="E_INVALID_ARGUMENT"
            )
        col = ColumnBuilder(name, kind, args)
        self.columns.append(col)
        return col

    # -- columns -------------------------------------------------------------------------------
    def increments(self, name: str = "id") -> ColumnBuilder:
        """Auto-incrementing integer primary key (``SERIAL``; unsigned on MySQL)."""
        col = self._add(name, "increments").primary()
        col.autoincrement = True
        return col

    def big_increments(self, name: str = "id") -> ColumnBuilder:
        """Auto-incrementing big integer primary key (``BIGSERIAL``; unsigned on MySQL)."""
        col = self._add(name, "big_increments").primary()
        col.autoincrement = True
        return col

    def integer(self, name: str) -> ColumnBuilder:
        """``INTEGER``."""
        return self._add(name, "integer")

    def big_integer(self, name: str) -> ColumnBuilder:
        """``BIGINT``."""
        return self._add(name, "big_integer")

    def small_integer(self, name: str) -> ColumnBuilder:
        """``SMALLINT``."""
        return self._add(name, "small_integer")

    def tiny_integer(self, name: str) -> ColumnBuilder:
        """``TINYINT`` on MySQL, ``SMALLINT`` elsewhere."""
        return self._add(name, "tiny_integer")

    def string(self, name: str, length: int = 255) -> ColumnBuilder:
        """``VARCHAR(length)``."""
        return self._add(name, "string", length=length)

    def text(self, name: str, text_type: str = "text") -> ColumnBuilder:
        """``TEXT``; ``text_type="mediumtext"`` / ``"longtext"`` on MySQL (``TEXT`` elsewhere)."""
        if text_type not in _TEXT_TYPES:
            raise LucidError(
                f'Invalid text type "{text_type}": use text, mediumtext or longtext',
                code="E_INVALID_ARGUMENT",
            )
        return self._add(name, "text", text_type=text_type)

    def boolean(self, name: str) -> ColumnBuilder:
        """``BOOLEAN`` (``BOOL``/``TINYINT(1)`` on MySQL)."""
        return self._add(name, "boolean")

    def float(self, name: str) -> ColumnBuilder:
        """A floating point number (``FLOAT``)."""
        return self._add(name, "float")

    def double(self, name: str) -> ColumnBuilder:
        """``DOUBLE`` / ``DOUBLE PRECISION``."""
        return self._add(name, "double")

    def decimal(self, name: str, precision: int = 8, scale: int = 2) -> ColumnBuilder:
        """``NUMERIC(precision, scale)``; values come back as ``Decimal``."""
        return self._add(name, "decimal", precision=precision, scale=scale)

    def date(self, name: str) -> ColumnBuilder:
        """``DATE``."""
        return self._add(name, "date")

    def time(self, name: str) -> ColumnBuilder:
        """``TIME``."""
        return self._add(name, "time")

    def datetime(self, name: str, use_tz: bool = False, precision: int = 6) -> ColumnBuilder:
        """Same as ``timestamp()``."""
        return self._add(name, "datetime", use_tz=use_tz, precision=precision)

    def timestamp(self, name: str, use_tz: bool = False, precision: int = 6) -> ColumnBuilder:
        """A timestamp: ``timestamptz`` on PostgreSQL with ``use_tz=True``, ``DATETIME(6)`` on
        MySQL (whose ``TIMESTAMP`` auto-updates and ends in 2038)."""
        return self._add(name, "timestamp", use_tz=use_tz, precision=precision)

    def timestamps(self, use_tz: bool = False, default_to_now: bool = False) -> None:
        """``created_at`` and ``updated_at`` (``NOT NULL DEFAULT CURRENT_TIMESTAMP`` with
        ``default_to_now``)."""
        for name in ("created_at", "updated_at"):
            col = self.timestamp(name, use_tz=use_tz)
            if default_to_now:
                col.not_nullable().default_to(NOW)

    def json(self, name: str) -> ColumnBuilder:
        """``JSON``."""
        return self._add(name, "json")

    def jsonb(self, name: str) -> ColumnBuilder:
        """``JSONB`` on PostgreSQL, ``JSON`` elsewhere."""
        return self._add(name, "jsonb")

    def uuid(self, name: str) -> ColumnBuilder:
        """Native ``uuid`` on PostgreSQL, ``VARCHAR(36)`` elsewhere."""
        return self._add(name, "uuid")

    def binary(self, name: str) -> ColumnBuilder:
        """Bytes: ``BYTEA`` / ``BLOB``."""
        return self._add(name, "binary")

    def enum(self, name: str, values: Sequence[str], enum_name: str | None = None) -> ColumnBuilder:
        """A string column restricted to ``values`` by a CHECK constraint named
        ``enum_name`` (default ``ck_<table>_<column>``)."""
        if not values:
            raise LucidError("enum() needs at least one value", code="E_INVALID_ARGUMENT")
        # A named CHECK survives SQLite's table-copy ALTERs (unnamed ones are dropped).
        return self._add(
            name,
            "enum",
            values=list(values),
            enum_name=enum_name or _constraint_name("ck", self.table, [name]),
        )

    enu = enum

    def specific_type(self, name: str, type_sql: str) -> ColumnBuilder:
        """A column of a type written as given: ``specific_type("ip", "inet")``."""
        return self._add(name, "specific", spec=type_sql)

    # -- constraints and changes ---------------------------------------------------------------
    def primary(self, columns: Sequence[str] | str, name: str | None = None) -> None:
        """A (composite) primary key: ``t.primary(["user_id", "skill_id"])``."""
        self.primary_keys.append((_names(columns), name))

    def unique(self, columns: Sequence[str] | str, name: str | None = None) -> None:
        """A unique constraint, named ``uq_<table>_<columns>`` unless ``name`` is given."""
        self.uniques.append((_names(columns), name))

    def index(self, columns: Sequence[str] | str, name: str | None = None) -> None:
        """An index, named ``ix_<table>_<columns>`` unless ``name`` is given."""
        self.indexes.append((_names(columns), name))

    def foreign(self, column: str) -> ColumnBuilder:
        """A foreign key on an existing/declared column, named ``fk_<table>_<column>``:
        ``t.foreign("user_id").references("users.id").on_delete("CASCADE")``."""
        col = ColumnBuilder(check_identifier(column), "integer")
        self.foreigns.append(col)
        return col

    def drop_column(self, name: str) -> None:
        """Drop a column (``alter_table``)."""
        self.drops.append(check_identifier(name))

    def drop_columns(self, *names: str) -> None:
        """Drop several columns."""
        for name in names:
            self.drop_column(name)

    def drop_timestamps(self) -> None:
        """Drop ``created_at`` and ``updated_at``."""
        self.drop_columns("created_at", "updated_at")

    def rename_column(self, old: str, new: str) -> None:
        """Rename a column (``alter_table``)."""
        self.renames.append((check_identifier(old), check_identifier(new)))

    def drop_primary(self, name: str | None = None) -> None:
        """Drop the primary key (named ``pk_<table>`` when this builder made it)."""
        self.dropped_constraints.append((name or f"pk_{self.table}", "primary"))

    def drop_unique(self, columns: Sequence[str] | str, name: str | None = None) -> None:
        """Drop the unique constraint that ``unique(columns)`` (or ``.unique()``) made."""
        cols = _names(columns)
        self.dropped_constraints.append(
            (name or _constraint_name("uq", self.table, cols), "unique")
        )

    def drop_index(self, columns: Sequence[str] | str, name: str | None = None) -> None:
        """Drop the index that ``index(columns)`` (or ``.index()``) made."""
        cols = _names(columns)
        self.dropped_constraints.append((name or _constraint_name("ix", self.table, cols), "index"))

    def drop_foreign(self, columns: Sequence[str] | str, name: str | None = None) -> None:
        """Drop the foreign key that ``foreign(column)`` (or ``.references()``) made."""
        cols = _names(columns)
        self.dropped_constraints.append(
            (name or _constraint_name("fk", self.table, cols), "foreignkey")
        )


# Reflected, unnamed constraints get names during SQLite's table copies.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s",
    "pk": "pk_%(table_name)s",
}

Operation = Callable[[Operations, str], None]


@dataclass(frozen=True)
class _Deferred:
    """A ``defer()`` callback in the queue."""

    callback: Callable[[Any], Any]


_Item = Operation | _Deferred


class Schema:
    """``self.schema`` in a migration. Calls are queued; ``execute`` runs them in order::

    schema.create_table("users", lambda t: (
        t.increments("id"),
        t.string("email", 255).not_nullable().unique(),
        t.timestamp("created_at", use_tz=True),
    ))
    await schema.execute(db.connection())
    """

    def __init__(self) -> None:
        self._queue: list[_Item] = []
        self._schema_name: str | None = None

    def with_schema(self, name: str) -> Self:
        """Qualify the following tables with a (PostgreSQL) schema."""
        self._schema_name = check_identifier(name)
        return self

    def now(self) -> _Now:
        """The current timestamp, as a column default: ``t.timestamp("at").default_to(
        self.schema.now())``."""
        return NOW

    def _table(
        self, name: str, callback: Callable[[TableBuilder], Any], altering: bool
    ) -> TableBuilder:
        check_identifier(name, "table")
        if inspect.iscoroutinefunction(callback):
            raise LucidError("Schema callbacks are plain functions that declare columns")
        builder = TableBuilder(name, altering)
        callback(builder)
        return builder

    def create_table(self, name: str, callback: Callable[[TableBuilder], Any]) -> Self:
        """``create_table("users", lambda t: (t.increments(), t.string("email")))``."""
        builder = self._table(name, callback, False)
        schema = self._schema_name
        self._queue.append(lambda ops, dialect: _create(ops, dialect, builder, schema, False))
        return self

    def create_table_if_not_exists(
        self, name: str, callback: Callable[[TableBuilder], Any]
    ) -> Self:
        """``CREATE TABLE IF NOT EXISTS`` (its indexes too)."""
        builder = self._table(name, callback, False)
        schema = self._schema_name
        self._queue.append(lambda ops, dialect: _create(ops, dialect, builder, schema, True))
        return self

    def alter_table(self, name: str, callback: Callable[[TableBuilder], Any]) -> Self:
        """Add, change (``.alter()``), rename and drop columns and constraints::

        schema.alter_table("users", lambda t: (
            t.string("nickname").nullable(),
            t.rename_column("bio", "about"),
            t.drop_column("legacy"),
        ))

        On SQLite most changes copy the table (Alembic's batch mode).
        """
        builder = self._table(name, callback, True)
        schema = self._schema_name
        self._queue.append(lambda ops, dialect: _alter(ops, dialect, builder, schema))
        return self

    table = alter_table

    def drop_table(self, name: str) -> Self:
        """``DROP TABLE``."""
        check_identifier(name, "table")
        schema = self._schema_name
        self._queue.append(lambda ops, _d: ops.drop_table(name, schema=schema))
        return self

    def drop_table_if_exists(self, name: str) -> Self:
        """``DROP TABLE IF EXISTS``."""
        check_identifier(name, "table")
        schema = self._schema_name
        self._queue.append(lambda ops, _d: ops.drop_table(name, schema=schema, if_exists=True))
        return self

    def rename_table(self, old: str, new: str) -> Self:
        """``ALTER TABLE old RENAME TO new``."""
        check_identifier(old, "table")
        check_identifier(new, "table")
        schema = self._schema_name
        self._queue.append(lambda ops, _d: ops.rename_table(old, new, schema=schema))
        return self

    def create_schema(self, name: str, if_not_exists: bool = False) -> Self:
        """``CREATE SCHEMA`` (PostgreSQL; a database on MySQL)."""
        check_identifier(name)
        self._queue.append(
            lambda ops, d: (
                ops.execute(CreateSchema(name, if_not_exists=if_not_exists))
                if _schemas_supported(d)
                else None
            )
        )
        return self

    def create_schema_if_not_exists(self, name: str) -> Self:
        """``CREATE SCHEMA IF NOT EXISTS``."""
        return self.create_schema(name, if_not_exists=True)

    def drop_schema(self, name: str, if_exists: bool = False, cascade: bool = False) -> Self:
        """``DROP SCHEMA`` (``cascade=True`` drops what it contains, on PostgreSQL)."""
        check_identifier(name)
        self._queue.append(
            lambda ops, d: (
                ops.execute(
                    DropSchema(name, if_exists=if_exists, cascade=cascade and d == "postgresql")
                )
                if _schemas_supported(d)
                else None
            )
        )
        return self

    def drop_schema_if_exists(self, name: str, cascade: bool = False) -> Self:
        """``DROP SCHEMA IF EXISTS``."""
        return self.drop_schema(name, if_exists=True, cascade=cascade)

    def raw(self, sql: str, bindings: Any = None) -> Self:
        """Raw SQL, in order with the other calls. Without ``bindings`` the text is sent as
        written (``?`` and ``:name`` are not placeholders); with them, ``?`` + list or
        ``:name`` + dict as in ``db.raw()``."""
        from ..query.compile import textual
        from ..query.raw import Raw

        statement: Any = (
            sa.text(_escape_colons(sql)) if bindings is None else textual(Raw(sql, bindings))
        )
        self._queue.append(lambda ops, _d: ops.execute(statement))
        return self

    def defer(self, callback: Callable[[Any], Any]) -> Self:
        """Run ``await callback(client)`` at this point of the queue, on the migration's client
        (its transaction, when it has one): data changes between schema changes. Skipped by
        dry runs::

            self.schema.defer(lambda client: client.table("roles").insert({"name": "admin"}))
        """
        if not callable(callback):
            raise LucidError("defer() takes a function receiving the query client")
        self._queue.append(_Deferred(callback))
        return self

    @property
    def pending(self) -> int:
        """How many calls are queued."""
        return len(self._queue)

    async def execute(self, client: Client, *, dry_run: bool = False) -> list[str]:
        """Run the queued calls on ``client`` and empty the queue.

        On a transaction every statement runs in it. On a plain client statements autocommit
        one by one on PostgreSQL and MySQL; on SQLite each group of schema calls between
        ``defer`` callbacks runs in one transaction (foreign keys off, checked before the
        commit), so a table copy is never left half done. With ``dry_run`` nothing is
        executed and the SQL is returned; deferred callbacks appear as a comment.

        Raises ``QueryError`` (``IntegrityError``) for a statement the database refuses.
        """
        queue, self._queue = self._queue, []
        statements: list[str] = []
        group: list[Operation] = []
        for item in [*queue, None]:
            if item is not None and not isinstance(item, _Deferred):
                group.append(item)
                continue
            if group:
                statements.extend(await _run_group(client, list(group), dry_run))
                group.clear()
            if isinstance(item, _Deferred):
                if dry_run:
                    name = getattr(item.callback, "__name__", "")
                    statements.append(f"-- deferred: {name}".rstrip(": "))
                    continue
                result = item.callback(client)
                if inspect.isawaitable(result):
                    await result
        return statements


def _schemas_supported(dialect: str) -> bool:
    if dialect == "sqlite":
        raise LucidError("SQLite has no schemas: create_schema/drop_schema need PostgreSQL/MySQL")
    return True


_COLON = re.compile(r"(?<![:\w\\]):(?=\w)")


def _escape_colons(sql: str) -> str:
    """Raw DDL as written: ``sa.text`` would read ``:word`` as a bound parameter."""
    return _COLON.sub(r"\\:", sql)


# -- running -----------------------------------------------------------------------------------
def _connection_of(client: Client) -> Connection:
    if isinstance(client, QueryClient | TransactionClient):
        return client._connection
    raise LucidError(f"Cannot run schema changes on {client!r}: expected a query client")


async def _run_group(client: Client, ops: list[Operation], dry_run: bool) -> list[str]:
    try:
        if isinstance(client, TransactionClient):
            client._check_open()
            out: list[str] = await client._conn.run_sync(_apply, ops, dry_run)
            return out
        connection = _connection_of(client)
        if dry_run:
            async with _reading(connection) as conn:
                out = await conn.run_sync(_apply, ops, True)
                return out
        if connection.dialect_name != "sqlite" and connection.ambient_transaction() is None:
            # Autocommit, statement by statement: what disable_transactions asks for
            # (CREATE INDEX CONCURRENTLY refuses a transaction), and all MySQL can do anyway.
            async with _reading(connection) as conn:
                out = await conn.run_sync(_apply, ops, False)
                await conn.commit()
                return out
        # SQLite keeps each group in one transaction: a table copy is never left half done.
        async with _ddl_transaction(connection) as trx:
            out = await trx._conn.run_sync(_apply, ops, False)
            return out
    except sa_exc.DBAPIError as exc:
        raise wrap_error(exc) from exc
    except sa_exc.NoSuchTableError as exc:
        # Reflection (SQLite's table copies, MySQL's renames) found no table.
        raise QueryError(f"no such table: {exc}", original=exc) from exc


@asynccontextmanager
async def _reading(connection: Connection) -> AsyncIterator[AsyncConnection]:
    """A connection for reflection and reads, outside any transaction."""
    owner = connection.ambient_transaction()
    if owner is not None:
        yield owner._conn
        return
    async with connection.guard():
        try:
            conn = await connection.write_engines().autocommit_engine.connect()
        except sa_exc.DBAPIError as exc:
            raise connect_error(connection, _driver_error(exc)) from exc
        except (OSError, sa_exc.TimeoutError) as exc:
            raise connect_error(connection, exc) from exc
        try:
            yield conn
        finally:
            await conn.close()


class _DDLTransaction(TransactionClient):
    """A root transaction opened with SQLite's foreign keys off, turned back on at the end.

    SQLite's table copies DROP the old table, and with foreign keys on that DROP deletes the
    rows first, firing ON DELETE CASCADE in the tables that reference it. SQLite's own recipe
    (https://www.sqlite.org/lang_altertable.html#otheralter): foreign keys off outside the
    transaction, PRAGMA foreign_key_check before COMMIT."""

    @property
    def restore_foreign_keys(self) -> bool:
        """Whether foreign keys were on (and are turned back on when this ends)."""
        return bool(self._conn.info.get("lucid_restore_foreign_keys", False))

    @classmethod
    async def _before_begin(cls, conn: AsyncConnection) -> None:
        await conn.execution_options(lucid_autocommit=True)
        enabled = (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar() == 1
        await conn.commit()
        conn.info["lucid_restore_foreign_keys"] = enabled
        if enabled:
            await _sqlite_foreign_keys(conn, False)
        await conn.execution_options(lucid_autocommit=False)

    @classmethod
    async def _after_failed_begin(cls, conn: AsyncConnection) -> None:
        if conn.info.pop("lucid_restore_foreign_keys", False):
            await _sqlite_foreign_keys(conn, True)

    async def _finish(self) -> None:
        try:
            if self.parent is None and self._conn.info.pop("lucid_restore_foreign_keys", False):
                await _sqlite_foreign_keys(self._conn, True)
        finally:
            await super()._finish()


async def _sqlite_foreign_keys(conn: AsyncConnection, on: bool) -> None:
    # PRAGMA foreign_keys is a no-op inside a transaction: run it in autocommit mode.
    await conn.execution_options(lucid_autocommit=True)
    await conn.exec_driver_sql(f"PRAGMA foreign_keys = {'ON' if on else 'OFF'}")
    await conn.commit()
    await conn.execution_options(lucid_autocommit=False)


async def _begin_ddl(connection: Connection) -> TransactionClient:
    if connection.dialect_name != "sqlite":
        return await TransactionClient.begin(connection, None)
    return await _DDLTransaction.begin(connection, None)


@asynccontextmanager
async def _ddl_transaction(connection: Connection) -> AsyncIterator[TransactionClient]:
    """A transaction for schema changes: committed on exit, rolled back on an exception.

    On SQLite foreign keys are off inside it (so table copies never fire ``ON DELETE``
    actions) and ``PRAGMA foreign_key_check`` runs before the commit: a violation raises
    ``IntegrityError`` and rolls everything back. Elsewhere it is ``db.transaction()``.
    """
    trx = await _begin_ddl(connection)
    try:
        yield trx
        if isinstance(trx, _DDLTransaction) and trx.restore_foreign_keys:
            await _foreign_key_check(trx._conn)
    except BaseException:
        if not trx.is_completed:
            await trx.rollback()
        raise
    if not trx.is_completed:
        await trx.commit()


async def _foreign_key_check(conn: AsyncConnection) -> None:
    rows = (await conn.exec_driver_sql("PRAGMA foreign_key_check")).all()
    if rows:
        first: tuple[Any, ...] = tuple(rows[0])
        table, rowid, parent = first[0], first[1], first[2]
        raise IntegrityError(
            f'Foreign key violation after the schema change: row {rowid} of "{table}" '
            f'references a missing row of "{parent}" ({len(rows)} violation(s))',
            sql="PRAGMA foreign_key_check",
        )


def _apply(sync_conn: Any, ops: list[Operation], dry_run: bool) -> list[str]:
    dialect = sync_conn.dialect.name
    naming = dict(NAMING)
    if _pk_name(dialect, "") is None:
        del naming["pk"]
    target = sa.MetaData(naming_convention=naming)
    if dry_run:
        buffer = io.StringIO()
        ctx = MigrationContext.configure(
            dialect=sync_conn.dialect,
            opts={
                "as_sql": True,
                "output_buffer": buffer,
                "literal_binds": True,
                "target_metadata": target,
            },
        )
        operations = Operations(ctx)
        operations._lucid_live = sync_conn  # type: ignore[attr-defined]
        for op in ops:
            op(operations, dialect)
        return [s.strip() for s in buffer.getvalue().split(";\n") if s.strip()]
    ctx = MigrationContext.configure(connection=sync_conn, opts={"target_metadata": target})
    operations = Operations(ctx)
    for op in ops:
        op(operations, dialect)
    return []


# -- DDL ---------------------------------------------------------------------------------------
def _fk_constraint(table: str, col: ColumnBuilder) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [col.name],
        [col.reference_target()],
        ondelete=col.delete_rule,
        onupdate=col.update_rule,
        name=_constraint_name("fk", table, [col.name]),
    )


def _create(
    ops: Operations, dialect: str, b: TableBuilder, schema: str | None, if_not_exists: bool
) -> None:
    if b.primary_keys and any(c.is_primary for c in b.columns):
        raise LucidError(f'"{b.table}" declares its primary key twice', code="E_INVALID_ARGUMENT")
    if len(b.primary_keys) > 1:
        raise LucidError(f'"{b.table}" declares two primary keys', code="E_INVALID_ARGUMENT")
    items: list[Any] = []
    pk_columns = {c for cols, _ in b.primary_keys for c in cols}
    for col in b.columns:
        column = col.to_column(dialect)
        if col.name in pk_columns:
            column.nullable = False
        items.append(column)
    for cols, name in b.primary_keys:
        items.append(sa.PrimaryKeyConstraint(*cols, name=name or _pk_name(dialect, b.table)))
    uniques = [([c.name], None) for c in b.columns if c.is_unique] + b.uniques
    for cols, name in uniques:
        items.append(sa.UniqueConstraint(*cols, name=name or _constraint_name("uq", b.table, cols)))
    for col in [c for c in b.columns if c.reference is not None] + b.foreigns:
        items.append(_fk_constraint(b.table, col))
    ops.create_table(b.table, *items, schema=schema, if_not_exists=if_not_exists or None)
    indexes = [([c.name], None) for c in b.columns if c.has_index] + b.indexes
    for cols, name in indexes:
        ops.create_index(
            name or _constraint_name("ix", b.table, cols),
            b.table,
            cols,
            schema=schema,
            if_not_exists=if_not_exists or None,
        )


def _pk_name(dialect: str, table: str) -> str | None:
    # MySQL's primary key is always named PRIMARY (and warns about any other name).
    return None if dialect in ("mysql", "mariadb") else f"pk_{table}"


def _needs_copy(b: TableBuilder, dialect: str) -> bool:
    """Whether Alembic's batch mode will copy the table on SQLite (it can only ADD COLUMN
    without an expression default, and create/drop indexes, in place)."""
    if b.renames or b.drops or b.foreigns or b.uniques or b.primary_keys:
        return True
    if any(kind != "index" for _, kind in b.dropped_constraints):
        return True
    for col in b.columns:
        if col.altering or col.is_unique or col.reference is not None or col.is_primary:
            return True
        if isinstance(col.server_default(dialect), sa.ClauseElement):
            return True
    return False


def _sqlite_guard(live: Any, b: TableBuilder, schema: str | None) -> None:
    """Inside a transaction that kept SQLite's foreign keys on (a user's own ``trx``), a
    table copy would fire the ``ON DELETE`` actions of the tables referencing this one."""
    if live.exec_driver_sql("PRAGMA foreign_keys").scalar() != 1:
        return
    # Deferred checks let the copy's DROP/RENAME pass while rows point at the old table.
    live.exec_driver_sql("PRAGMA defer_foreign_keys = ON")
    inspector = sa.inspect(live)
    for other in inspector.get_table_names(schema=schema):
        for fk in inspector.get_foreign_keys(other, schema=schema):
            action = str((fk.get("options") or {}).get("ondelete") or "").upper()
            if fk.get("referred_table") == b.table and action in _DESTRUCTIVE:
                cols = ", ".join(fk.get("constrained_columns") or [])
                raise LucidError(
                    f'Altering "{b.table}" on SQLite copies the table, which would fire '
                    f'ON DELETE {action} on "{other}.{cols}" while foreign keys are on: run '
                    f"it through the Migrator (or Schema.execute on a plain client), which "
                    f"turns them off for the change",
                    code="E_UNSAFE_SQLITE_ALTER",
                )


def _alter(ops: Operations, dialect: str, b: TableBuilder, schema: str | None) -> None:
    kwargs: dict[str, Any] = {"schema": schema}
    live = getattr(ops, "_lucid_live", None)
    bind = live if live is not None else ops.get_bind()
    copies = dialect == "sqlite" and _needs_copy(b, dialect)
    if copies and live is not None:
        # Offline (dry-run) batch mode can't reflect: hand it the live table.
        try:
            kwargs["copy_from"] = sa.Table(
                b.table, sa.MetaData(naming_convention=NAMING), autoload_with=live, schema=schema
            )
        except sa_exc.NoSuchTableError:
            ops.execute(sa.text(_escape_colons(_unpreviewable(b))))
            return
    elif copies:
        _sqlite_guard(bind, b, schema)
    existing: dict[str, Any] = {}
    if b.renames and dialect in ("mysql", "mariadb"):
        # MySQL's CHANGE COLUMN restates the whole column: read its current definition.
        try:
            existing = {c["name"]: c for c in sa.inspect(bind).get_columns(b.table, schema=schema)}
        except sa_exc.NoSuchTableError:
            if live is None:
                raise
            ops.execute(sa.text(_escape_colons(_unpreviewable(b))))
            return
    with ops.batch_alter_table(b.table, naming_convention=NAMING, **kwargs) as batch:
        for name, kind in b.dropped_constraints:
            if kind == "index":
                batch.drop_index(name)
            else:
                batch.drop_constraint(name, type_=kind)
        for old, new in b.renames:
            current = existing.get(old)
            if current is not None:
                batch.alter_column(
                    old,
                    new_column_name=new,
                    existing_type=current["type"],
                    existing_nullable=current["nullable"],
                    existing_server_default=current.get("default") or False,
                    existing_comment=current.get("comment"),
                )
            else:
                batch.alter_column(old, new_column_name=new)
        for col in b.columns:
            if col.altering:
                batch.alter_column(
                    col.name,
                    type_=col.sql_type(),
                    nullable=col.is_nullable,
                    server_default=col.server_default(dialect),
                    comment=col.comment_text if col.comment_text is not None else False,
                )
            else:
                column = col.to_column(dialect)
                column.primary_key = False
                batch.add_column(column)
                if col.is_primary:
                    batch.create_primary_key(_pk_name(dialect, b.table), [col.name])
            if col.is_unique:
                batch.create_unique_constraint(
                    _constraint_name("uq", b.table, [col.name]), [col.name]
                )
            if col.reference is not None:
                _add_foreign(batch, b.table, col)
            if col.has_index:
                batch.create_index(_constraint_name("ix", b.table, [col.name]), [col.name])
        for fk in b.foreigns:
            _add_foreign(batch, b.table, fk)
        for cols, given in b.primary_keys:
            batch.create_primary_key(given or _pk_name(dialect, b.table), cols)
        for cols, given in b.uniques:
            batch.create_unique_constraint(given or _constraint_name("uq", b.table, cols), cols)
        for cols, given in b.indexes:
            batch.create_index(given or _constraint_name("ix", b.table, cols), cols)
        for column_name in b.drops:
            batch.drop_column(column_name)


def _add_foreign(batch: Any, table: str, col: ColumnBuilder) -> None:
    target, _, column = col.reference_target().rpartition(".")
    batch.create_foreign_key(
        _constraint_name("fk", table, [col.name]),
        target,
        [col.name],
        [column],
        ondelete=col.delete_rule,
        onupdate=col.update_rule,
    )


def _unpreviewable(b: TableBuilder) -> str:
    return (
        f'-- alter table "{b.table}": the table does not exist yet, so this change cannot be '
        f"previewed on this dialect"
    )
