"""The schema builder: Lucid/Knex's vocabulary (``create_table``, ``t.increments()``,
``t.string("email").not_nullable().unique()``…) compiled to SQLAlchemy DDL through Alembic's
operations, which also give SQLite the table-copy "batch" ALTERs it needs.

Calls are queued and run in order by ``await schema.execute(client)`` (the migrator does this
after ``up()``/``down()`` return, like Lucid); ``dry_run=True`` collects the SQL instead.
"""

from __future__ import annotations

import inspect
import io
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Self

import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.types import TypeEngine, UserDefinedType

from ..errors import LucidError
from ..query.chainable import check_identifier

if TYPE_CHECKING:
    from ..database.query_client import Client

_REFERENTIAL = {"CASCADE", "SET NULL", "SET DEFAULT", "RESTRICT", "NO ACTION"}


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
        """Make it the primary key."""
        self.is_primary = True
        self.is_nullable = False
        return self

    def unique(self) -> Self:
        """A unique constraint on this column."""
        self.is_unique = True
        return self

    def unsigned(self) -> Self:
        """Unsigned integer (MySQL/MariaDB; ignored elsewhere)."""
        self.is_unsigned = True
        return self

    def index(self) -> Self:
        """An index on this column."""
        self.has_index = True
        return self

    def default_to(self, value: Any) -> Self:
        """A server default: a value, ``schema.now()`` or ``db.raw("...")``."""
        self.default = value
        self.has_default = True
        return self

    def comment(self, text: str) -> Self:
        self.comment_text = text
        return self

    def references(self, target: str) -> Self:
        """A foreign key: ``references("users.id")`` (or ``references("id").in_table("users")``)."""
        table, _, column = target.rpartition(".")
        self.reference = (table, column)
        return self

    def in_table(self, table: str) -> Self:
        if self.reference is None:
            raise LucidError("in_table() follows references(column)")
        self.reference = (check_identifier(table, "table"), self.reference[1])
        return self

    def on_delete(self, rule: str) -> Self:
        """``ON DELETE`` rule: CASCADE, SET NULL, RESTRICT, NO ACTION, SET DEFAULT."""
        self.delete_rule = _rule(rule)
        return self

    def on_update(self, rule: str) -> Self:
        self.update_rule = _rule(rule)
        return self

    def alter(self) -> Self:
        """In ``alter_table``: change an existing column to this definition."""
        self.altering = True
        return self

    # -- compilation ---------------------------------------------------------------------------
    def sql_type(self) -> TypeEngine[Any]:
        a, kind = self.args, self.kind
        if kind in ("increments", "integer"):
            return _integer(self.is_unsigned or kind == "increments", sa.Integer(), mysql.INTEGER)
        if kind in ("big_increments", "big_integer"):
            base = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
            return _integer(self.is_unsigned or kind == "big_increments", base, mysql.BIGINT)
        if kind == "small_integer":
            return _integer(self.is_unsigned, sa.SmallInteger(), mysql.SMALLINT)
        if kind == "tiny_integer":
            return _integer(self.is_unsigned, sa.SmallInteger(), mysql.TINYINT)
        if kind == "string":
            return sa.String(a.get("length", 255))
        if kind == "text":
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
            precision = a.get("precision", 6)
            return sa.DateTime(timezone=a.get("use_tz", False)).with_variant(
                mysql.DATETIME(fsp=precision), "mysql", "mariadb"
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
        if not self.has_default:
            return None
        value = self.default
        if value is None:
            return sa.text("NULL")
        if isinstance(value, _Now):
            return sa.text("CURRENT_TIMESTAMP")
        if hasattr(value, "sql") and hasattr(value, "parts"):  # db.raw(...)
            return sa.text(value.sql)
        if isinstance(value, bool):
            return sa.text(
                ("true" if value else "false") if dialect == "postgresql" else str(int(value))
            )
        if isinstance(value, int | float):
            return sa.text(str(value))
        return str(value)

    def to_column(self, dialect: str, inline_references: bool = True) -> sa.Column[Any]:
        args: list[Any] = []
        if self.reference is not None and inline_references:
            table, column = self.reference
            args.append(
                sa.ForeignKey(
                    f"{table}.{column}", ondelete=self.delete_rule, onupdate=self.update_rule
                )
            )
        return sa.Column(
            self.name,
            self.sql_type(),
            *args,
            primary_key=self.is_primary,
            nullable=self.is_nullable,
            unique=self.is_unique or None,
            index=self.has_index or None,
            server_default=self.server_default(dialect),
            comment=self.comment_text,
            autoincrement=True if self.autoincrement else "auto",
        )


def _rule(rule: str) -> str:
    value = rule.upper().strip()
    if value not in _REFERENTIAL:
        raise LucidError(
            f'Invalid referential action "{rule}": use one of {", ".join(sorted(_REFERENTIAL))}',
            code="E_INVALID_ARGUMENT",
        )
    return value


class TableBuilder:
    """The ``t`` in ``schema.create_table("users", lambda t: ...)``: Knex's column and
    constraint methods."""

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
        col = ColumnBuilder(name, kind, args)
        self.columns.append(col)
        return col

    # -- columns -------------------------------------------------------------------------------
    def increments(self, name: str = "id") -> ColumnBuilder:
        """Auto-incrementing integer primary key (unsigned on MySQL)."""
        col = self._add(name, "increments").primary()
        col.autoincrement = True
        return col

    def big_increments(self, name: str = "id") -> ColumnBuilder:
        col = self._add(name, "big_increments").primary()
        col.autoincrement = True
        return col

    def integer(self, name: str) -> ColumnBuilder:
        return self._add(name, "integer")

    def big_integer(self, name: str) -> ColumnBuilder:
        return self._add(name, "big_integer")

    def small_integer(self, name: str) -> ColumnBuilder:
        return self._add(name, "small_integer")

    def tiny_integer(self, name: str) -> ColumnBuilder:
        return self._add(name, "tiny_integer")

    def string(self, name: str, length: int = 255) -> ColumnBuilder:
        return self._add(name, "string", length=length)

    def text(self, name: str) -> ColumnBuilder:
        return self._add(name, "text")

    def boolean(self, name: str) -> ColumnBuilder:
        return self._add(name, "boolean")

    def float(self, name: str) -> ColumnBuilder:
        return self._add(name, "float")

    def double(self, name: str) -> ColumnBuilder:
        return self._add(name, "double")

    def decimal(self, name: str, precision: int = 8, scale: int = 2) -> ColumnBuilder:
        return self._add(name, "decimal", precision=precision, scale=scale)

    def date(self, name: str) -> ColumnBuilder:
        return self._add(name, "date")

    def time(self, name: str) -> ColumnBuilder:
        return self._add(name, "time")

    def datetime(self, name: str, use_tz: bool = False, precision: int = 6) -> ColumnBuilder:
        return self._add(name, "datetime", use_tz=use_tz, precision=precision)

    def timestamp(self, name: str, use_tz: bool = False, precision: int = 6) -> ColumnBuilder:
        """A timestamp (``timestamptz`` on PostgreSQL with ``use_tz=True``; DATETIME(6) on
        MySQL)."""
        return self._add(name, "timestamp", use_tz=use_tz, precision=precision)

    def timestamps(self, use_tz: bool = False, default_to_now: bool = False) -> None:
        """``created_at`` and ``updated_at``."""
        for name in ("created_at", "updated_at"):
            col = self.timestamp(name, use_tz=use_tz)
            if default_to_now:
                col.default_to(NOW)

    def json(self, name: str) -> ColumnBuilder:
        return self._add(name, "json")

    def jsonb(self, name: str) -> ColumnBuilder:
        """JSONB on PostgreSQL, JSON elsewhere."""
        return self._add(name, "jsonb")

    def uuid(self, name: str) -> ColumnBuilder:
        """Native ``uuid`` on PostgreSQL, ``varchar(36)`` elsewhere."""
        return self._add(name, "uuid")

    def binary(self, name: str) -> ColumnBuilder:
        return self._add(name, "binary")

    def enum(self, name: str, values: Sequence[str], enum_name: str | None = None) -> ColumnBuilder:
        """A string column restricted to ``values`` by a CHECK constraint."""
        if not values:
            raise LucidError("enum() needs at least one value")
        # A named CHECK survives SQLite's table-copy ALTERs (unnamed ones are dropped).
        return self._add(
            name, "enum", values=list(values), enum_name=enum_name or f"ck_{self.table}_{name}"
        )

    enu = enum

    def specific_type(self, name: str, type_sql: str) -> ColumnBuilder:
        """A column of a type written as given: ``specific_type("ip", "inet")``."""
        return self._add(name, "specific", spec=type_sql)

    # -- constraints and changes ---------------------------------------------------------------
    def primary(self, columns: Sequence[str], name: str | None = None) -> None:
        self.primary_keys.append(([check_identifier(c) for c in columns], name))

    def unique(self, columns: Sequence[str] | str, name: str | None = None) -> None:
        cols = [columns] if isinstance(columns, str) else list(columns)
        self.uniques.append(([check_identifier(c) for c in cols], name))

    def index(self, columns: Sequence[str] | str, name: str | None = None) -> None:
        cols = [columns] if isinstance(columns, str) else list(columns)
        self.indexes.append(([check_identifier(c) for c in cols], name))

    def foreign(self, column: str) -> ColumnBuilder:
        """A foreign key on an existing/declared column: ``t.foreign("user_id")
        .references("users.id").on_delete("CASCADE")``."""
        col = ColumnBuilder(check_identifier(column), "integer")
        self.foreigns.append(col)
        return col

    def drop_column(self, name: str) -> None:
        self.drops.append(check_identifier(name))

    def drop_columns(self, *names: str) -> None:
        for name in names:
            self.drop_column(name)

    def drop_timestamps(self) -> None:
        self.drop_columns("created_at", "updated_at")

    def rename_column(self, old: str, new: str) -> None:
        self.renames.append((check_identifier(old), check_identifier(new)))

    def drop_unique(self, columns: Sequence[str] | str, name: str | None = None) -> None:
        cols = [columns] if isinstance(columns, str) else list(columns)
        self.dropped_constraints.append((name or _name("uq", self.table, cols), "unique"))

    def drop_index(self, columns: Sequence[str] | str, name: str | None = None) -> None:
        cols = [columns] if isinstance(columns, str) else list(columns)
        self.dropped_constraints.append((name or _name("ix", self.table, cols), "index"))

    def drop_foreign(self, columns: Sequence[str] | str, name: str | None = None) -> None:
        cols = [columns] if isinstance(columns, str) else list(columns)
        self.dropped_constraints.append((name or _name("fk", self.table, cols), "foreignkey"))


def _name(prefix: str, table: str, columns: Sequence[str]) -> str:
    return f"{prefix}_{table}_{'_'.join(columns)}"


# Deterministic constraint names, so ``drop_unique(["email"])`` finds what ``unique()`` made.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s",
    "pk": "pk_%(table_name)s",
}

Operation = Callable[[Operations, str], None]


class Schema:
    """``self.schema`` in a migration. Calls are queued; ``execute`` runs them in order."""

    def __init__(self) -> None:
        self._queue: list[Operation | Callable[[Any], Awaitable[Any]]] = []
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

    create_table_if_not_exists_: Any = None

    def create_table_if_not_exists(
        self, name: str, callback: Callable[[TableBuilder], Any]
    ) -> Self:
        builder = self._table(name, callback, False)
        schema = self._schema_name
        self._queue.append(lambda ops, dialect: _create(ops, dialect, builder, schema, True))
        return self

    def alter_table(self, name: str, callback: Callable[[TableBuilder], Any]) -> Self:
        """Add, change (``.alter()``), rename and drop columns and constraints."""
        builder = self._table(name, callback, True)
        schema = self._schema_name
        self._queue.append(lambda ops, dialect: _alter(ops, dialect, builder, schema))
        return self

    table = alter_table

    def drop_table(self, name: str) -> Self:
        check_identifier(name, "table")
        schema = self._schema_name
        self._queue.append(lambda ops, _d: ops.drop_table(name, schema=schema))
        return self

    def drop_table_if_exists(self, name: str) -> Self:
        check_identifier(name, "table")
        schema = self._schema_name
        self._queue.append(lambda ops, _d: ops.drop_table(name, schema=schema, if_exists=True))
        return self

    def rename_table(self, old: str, new: str) -> Self:
        check_identifier(old, "table")
        check_identifier(new, "table")
        schema = self._schema_name
        self._queue.append(lambda ops, _d: ops.rename_table(old, new, schema=schema))
        return self

    def raw(self, sql: str, bindings: Any = None) -> Self:
        """Raw SQL, in order with the other calls (``?`` + list or ``:name`` + dict)."""
        from ..query.raw import Raw

        fragment = Raw(sql, bindings)
        from ..query.compile import textual

        self._queue.append(lambda ops, _d: ops.execute(textual(fragment)))
        return self

    def defer(self, callback: Callable[[Any], Awaitable[Any]]) -> Self:
        """Run ``await callback(client)`` at this point of the queue (data changes)."""
        if not inspect.iscoroutinefunction(callback):
            raise LucidError("defer() takes an async function receiving the query client")
        self._queue.append(callback)
        return self

    @property
    def pending(self) -> int:
        return len(self._queue)

    async def execute(self, client: Client, *, dry_run: bool = False) -> list[str]:
        """Run the queued calls on ``client`` (a transaction, or the connection); with
        ``dry_run`` nothing runs and the SQL is returned. The queue is emptied."""
        queue, self._queue = self._queue, []
        conn = getattr(client, "_conn", None)
        statements: list[str] = []
        if conn is None:
            engine = client._connection.write_engines().engine  # type: ignore[attr-defined]
            async with engine.begin() as own:
                await _run_queue(own, client, queue, dry_run, statements)
        else:
            await _run_queue(conn, client, queue, dry_run, statements)
        return statements


async def _run_queue(
    conn: Any, client: Client, queue: list[Any], dry_run: bool, statements: list[str]
) -> None:
    batch: list[Operation] = []

    async def flush() -> None:
        if not batch:
            return
        ops = list(batch)
        batch.clear()
        out = await conn.run_sync(_apply, ops, dry_run)
        statements.extend(out)

    for item in queue:
        if inspect.iscoroutinefunction(item):
            await flush()
            if dry_run:
                statements.append(f"-- deferred callback {getattr(item, '__name__', '')}")
            else:
                await item(client)
        else:
            batch.append(item)
    await flush()


def _apply(sync_conn: Any, ops: list[Operation], dry_run: bool) -> list[str]:
    dialect = sync_conn.dialect.name
    if dry_run:
        buffer = io.StringIO()
        ctx = MigrationContext.configure(
            dialect=sync_conn.dialect,
            opts={"as_sql": True, "output_buffer": buffer, "literal_binds": True},
        )
        operations = Operations(ctx)
        operations._lucid_live = sync_conn  # type: ignore[attr-defined]
        for op in ops:
            op(operations, dialect)
        return [s.strip() for s in buffer.getvalue().split(";\n") if s.strip()]
    ctx = MigrationContext.configure(connection=sync_conn)
    operations = Operations(ctx)
    for op in ops:
        op(operations, dialect)
    return []


def _create(
    ops: Operations, dialect: str, b: TableBuilder, schema: str | None, if_not_exists: bool
) -> None:
    items: list[Any] = [c.to_column(dialect) for c in b.columns]
    pk_cols = [c.name for c in b.columns if c.is_primary]
    for cols, name in b.primary_keys:
        for item in items:
            if item.name in cols:
                item.primary_key = True
        items.append(sa.PrimaryKeyConstraint(*cols, name=name))
    if b.primary_keys and pk_cols:
        raise LucidError(f'"{b.table}" declares its primary key twice')
    for cols, name in b.uniques:
        items.append(sa.UniqueConstraint(*cols, name=name or _name("uq", b.table, cols)))
    for fk in b.foreigns:
        assert fk.reference is not None
        table, column = fk.reference
        items.append(
            sa.ForeignKeyConstraint(
                [fk.name],
                [f"{table}.{column}"],
                ondelete=fk.delete_rule,
                onupdate=fk.update_rule,
                name=_name("fk", b.table, [fk.name]),
            )
        )
    ops.create_table(b.table, *items, schema=schema, if_not_exists=if_not_exists or None)
    for cols, name in b.indexes:
        ops.create_index(name or _name("ix", b.table, cols), b.table, cols, schema=schema)


def _alter(ops: Operations, dialect: str, b: TableBuilder, schema: str | None) -> None:
    kwargs: dict[str, Any] = {"schema": schema}
    live = getattr(ops, "_lucid_live", None)
    if dialect == "sqlite" and live is not None:
        # Offline (dry-run) batch mode can't reflect: hand it the live table.
        kwargs["copy_from"] = sa.Table(b.table, sa.MetaData(), autoload_with=live, schema=schema)
    existing: dict[str, Any] = {}
    if b.renames and dialect in ("mysql", "mariadb"):
        # MySQL's CHANGE COLUMN restates the whole column: read its current definition.
        bind = live if live is not None else ops.get_bind()
        existing = {c["name"]: c for c in sa.inspect(bind).get_columns(b.table, schema=schema)}
    with ops.batch_alter_table(b.table, naming_convention=NAMING, **kwargs) as batch:
        for old, new in b.renames:
            current = existing.get(old)
            if current is not None:
                batch.alter_column(
                    old,
                    new_column_name=new,
                    existing_type=current["type"],
                    existing_nullable=current["nullable"],
                    existing_server_default=current.get("default") or False,
                )
            else:
                batch.alter_column(old, new_column_name=new)
        for col in b.columns:
            if col.altering:
                batch.alter_column(
                    col.name,
                    type_=col.sql_type(),
                    nullable=col.is_nullable,
                    server_default=col.server_default(dialect) if col.has_default else False,
                )
            else:
                batch.add_column(col.to_column(dialect, inline_references=False))
                if col.reference is not None:
                    table, column = col.reference
                    batch.create_foreign_key(
                        _name("fk", b.table, [col.name]),
                        table,
                        [col.name],
                        [column],
                        ondelete=col.delete_rule,
                        onupdate=col.update_rule,
                    )
        for fk in b.foreigns:
            assert fk.reference is not None
            table, column = fk.reference
            batch.create_foreign_key(
                _name("fk", b.table, [fk.name]),
                table,
                [fk.name],
                [column],
                ondelete=fk.delete_rule,
                onupdate=fk.update_rule,
            )
        for cols, name in b.uniques:
            batch.create_unique_constraint(name or _name("uq", b.table, cols), cols)
        for cols, name in b.indexes:
            batch.create_index(name or _name("ix", b.table, cols), cols)
        for name, kind in b.dropped_constraints:
            if kind == "index":
                batch.drop_index(name)
            else:
                batch.drop_constraint(name, type_=kind)
        for name in b.drops:
            batch.drop_column(name)
