"""The schema builder: Lucid/Knex's vocabulary (``create_table``, ``t.increments()``,
``t.string("email").not_nullable().unique()``…), declared here and compiled by ``schema/ddl.py``
to SQLAlchemy DDL through Alembic's operations (which give SQLite its table-copy ALTERs).

Calls are queued and run in order by ``await schema.execute(client)`` (the migrator does this
after ``up()``/``down()`` return, like Lucid); ``dry_run=True`` collects the SQL instead.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Self

import sqlalchemy as sa
from sqlalchemy.schema import CreateSchema, DropSchema
from sqlalchemy.types import TypeEngine

from ..errors import LucidError
from ..query.chainable import check_identifier
from .ddl import (
    NOW,
    CurrentTimestamp,
    Operation,
    alter_table,
    column_type,
    constraint_name,
    create_table,
    escape_colons,
    run_operations,
    server_default,
    to_column,
)

if TYPE_CHECKING:
    from ..database.query_client import Client

_REFERENTIAL = {"CASCADE", "SET NULL", "SET DEFAULT", "RESTRICT", "NO ACTION"}
_TEXT_TYPES = {"text", "mediumtext", "longtext"}


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

    # -- compilation (schema/ddl.py) ------------------------------------------------------------
    def sql_type(self) -> TypeEngine[Any]:
        """The SQLAlchemy type of this column (with per-dialect variants)."""
        return column_type(self)

    def server_default(self, dialect: str) -> Any:
        """The ``server_default`` of this column on ``dialect`` (``None``: no default)."""
        return server_default(self, dialect)

    def to_column(self, dialect: str, inline_constraints: bool = False) -> sa.Column[Any]:
        """The ``sa.Column``; unique, index and foreign key are left to named constraints
        unless ``inline_constraints``."""
        return to_column(self, dialect, inline_constraints)

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
            enum_name=enum_name or constraint_name("ck", self.table, [name]),
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
        self.dropped_constraints.append((name or constraint_name("uq", self.table, cols), "unique"))

    def drop_index(self, columns: Sequence[str] | str, name: str | None = None) -> None:
        """Drop the index that ``index(columns)`` (or ``.index()``) made."""
        cols = _names(columns)
        self.dropped_constraints.append((name or constraint_name("ix", self.table, cols), "index"))

    def drop_foreign(self, columns: Sequence[str] | str, name: str | None = None) -> None:
        """Drop the foreign key that ``foreign(column)`` (or ``.references()``) made."""
        cols = _names(columns)
        self.dropped_constraints.append(
            (name or constraint_name("fk", self.table, cols), "foreignkey")
        )


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

    def now(self) -> CurrentTimestamp:
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
        self._queue.append(lambda ops, dialect: create_table(ops, dialect, builder, schema, False))
        return self

    def create_table_if_not_exists(
        self, name: str, callback: Callable[[TableBuilder], Any]
    ) -> Self:
        """``CREATE TABLE IF NOT EXISTS`` (its indexes too)."""
        builder = self._table(name, callback, False)
        schema = self._schema_name
        self._queue.append(lambda ops, dialect: create_table(ops, dialect, builder, schema, True))
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
        self._queue.append(lambda ops, dialect: alter_table(ops, dialect, builder, schema))
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
            sa.text(escape_colons(sql)) if bindings is None else textual(Raw(sql, bindings))
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
                statements.extend(await run_operations(client, list(group), dry_run))
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
