"""The schema builder's compiler: the queued ``create_table``/``alter_table`` declarations of
``schema/builder.py`` become Alembic operations (one function per change kind), run on a client
through the database's DDL services (``database/ddl.py``)."""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import BatchOperations, Operations
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.types import TypeEngine, UserDefinedType

from ..database.ddl import client_connection, ddl_transaction, reading_connection, run_sync
from ..database.query_client import wrap_error
from ..database.transaction import TransactionClient
from ..errors import LucidError, QueryError

if TYPE_CHECKING:
    from ..database.query_client import Client
    from .builder import ColumnBuilder, TableBuilder

# ON DELETE actions that SQLite's implicit DELETE (DROP TABLE of a table copy) would fire.
_DESTRUCTIVE = {"CASCADE", "SET NULL", "SET DEFAULT"}
# Constraint and index names stay below PostgreSQL's 63 and MySQL's 64 characters.
_MAX_NAME = 60
_MYSQL = ("mysql", "mariadb")

# Reflected, unnamed constraints get names during SQLite's table copies.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s",
    "pk": "pk_%(table_name)s",
}


class CurrentTimestamp:
    """``schema.now()``: the database's current timestamp as a column default."""


NOW = CurrentTimestamp()


# A queued schema call: Alembic's operations and the dialect name in, DDL out.
Operation = Callable[[Operations, str], None]
# In a dry run, the live connection rides in the offline context's options: offline Alembic
# cannot reflect the table a SQLite ALTER copies.
_LIVE = "lucid_live"


def _live(ops: Operations) -> Any:
    """The live connection of a dry run (``None`` when the DDL runs)."""
    return ops.migration_context.opts.get(_LIVE)


def constraint_name(prefix: str, table: str, columns: Sequence[str]) -> str:
    """The name ``unique()``/``index()``/``foreign()`` give a constraint, so that
    ``drop_unique(["email"])`` finds it: ``uq_users_email``; long names end in a hash."""
    name = f"{prefix}_{table}_{'_'.join(columns)}"
    if len(name) <= _MAX_NAME:
        return name
    digest = hashlib.md5(name.encode(), usedforsecurity=False).hexdigest()[:8]
    return f"{name[: _MAX_NAME - 9]}_{digest}"


def pk_name(dialect: str, table: str) -> str | None:
    """The primary key's name: ``pk_<table>``, none on MySQL (always ``PRIMARY`` there, and it
    warns about any other name)."""
    return None if dialect in _MYSQL else f"pk_{table}"


_COLON = re.compile(r"(?<![:\w\\]):(?=\w)")


def escape_colons(sql: str) -> str:
    """Raw DDL as written: ``sa.text`` would read ``:word`` as a bound parameter."""
    return _COLON.sub(r"\\:", sql)


# -- column types ------------------------------------------------------------------------------
class _SpecificType(UserDefinedType[Any]):
    """``t.specific_type("ip", "inet")``: a column type written as given."""

    cache_ok = True

    def __init__(self, spec: str) -> None:
        self.spec = spec

    def get_col_spec(self, **kw: Any) -> str:
        return self.spec


def _integer(unsigned: bool, base: TypeEngine[Any], mysql_type: Any) -> TypeEngine[Any]:
    if unsigned:
        return base.with_variant(mysql_type(unsigned=True), *_MYSQL)
    return base


def _big_integer() -> TypeEngine[Any]:
    # SQLite only auto-increments an ``INTEGER PRIMARY KEY`` (the rowid).
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _text(col: ColumnBuilder) -> TypeEngine[Any]:
    text_type = col.args.get("text_type", "text")
    if text_type == "mediumtext":
        return sa.Text().with_variant(mysql.MEDIUMTEXT(), *_MYSQL)
    if text_type == "longtext":
        return sa.Text().with_variant(mysql.LONGTEXT(), *_MYSQL)
    return sa.Text()


def _datetime(col: ColumnBuilder) -> TypeEngine[Any]:
    # DATETIME(6) on MySQL: TIMESTAMP there auto-updates and stops in 2038.
    return sa.DateTime(timezone=col.args.get("use_tz", False)).with_variant(
        mysql.DATETIME(fsp=col.args.get("precision", 6)), *_MYSQL
    )


def _enum(col: ColumnBuilder) -> TypeEngine[Any]:
    values = col.args["values"]
    return sa.Enum(
        *values,
        native_enum=False,
        create_constraint=True,
        length=max(len(v) for v in values),
        name=col.args.get("enum_name"),
    )


# One type builder per column kind of ``TableBuilder`` (the kind is the method's name).
_TYPES: dict[str, Callable[[ColumnBuilder], TypeEngine[Any]]] = {
    "increments": lambda c: _integer(True, sa.Integer(), mysql.INTEGER),
    "integer": lambda c: _integer(c.is_unsigned, sa.Integer(), mysql.INTEGER),
    "big_increments": lambda c: _integer(True, _big_integer(), mysql.BIGINT),
    "big_integer": lambda c: _integer(c.is_unsigned, _big_integer(), mysql.BIGINT),
    "small_integer": lambda c: _integer(c.is_unsigned, sa.SmallInteger(), mysql.SMALLINT),
    "tiny_integer": lambda c: _integer(c.is_unsigned, sa.SmallInteger(), mysql.TINYINT),
    "string": lambda c: sa.String(c.args.get("length", 255)),
    "text": _text,
    "boolean": lambda c: sa.Boolean(create_constraint=False),
    "float": lambda c: sa.Float(),
    "double": lambda c: sa.Double(),
    "decimal": lambda c: sa.Numeric(c.args.get("precision", 8), c.args.get("scale", 2)),
    "date": lambda c: sa.Date(),
    "time": lambda c: sa.Time(),
    "datetime": _datetime,
    "timestamp": _datetime,
    "json": lambda c: sa.JSON(),
    "jsonb": lambda c: sa.JSON().with_variant(postgresql.JSONB(), "postgresql"),
    "uuid": lambda c: sa.String(36).with_variant(postgresql.UUID(as_uuid=False), "postgresql"),
    "binary": lambda c: sa.LargeBinary(),
    "enum": _enum,
    "specific": lambda c: _SpecificType(c.args["spec"]),
}


def column_type(col: ColumnBuilder) -> TypeEngine[Any]:
    """The SQLAlchemy type of a declared column (with per-dialect variants)."""
    make = _TYPES.get(col.kind)
    if make is None:
        raise LucidError(f'Unknown column kind "{col.kind}"')
    return make(col)


def server_default(col: ColumnBuilder, dialect: str) -> Any:
    """The ``server_default`` of a declared column on ``dialect`` (``None``: no default)."""
    if not col.has_default:
        return None
    value = col.default
    if value is None:
        return sa.text("NULL")
    if isinstance(value, CurrentTimestamp):
        precision = col.args.get("precision")
        if dialect in _MYSQL and precision:
            # MySQL wants the default's precision to equal the column's DATETIME(6).
            return sa.text(f"CURRENT_TIMESTAMP({int(precision)})")
        return sa.text("CURRENT_TIMESTAMP")
    if hasattr(value, "sql") and hasattr(value, "parts"):  # db.raw(...)
        return sa.text(escape_colons(value.sql))
    return _literal_default(value, dialect)


def _literal_default(value: Any, dialect: str) -> Any:
    if isinstance(value, bool):
        return sa.text(
            ("true" if value else "false") if dialect == "postgresql" else str(int(value))
        )
    if isinstance(value, int | float):
        return sa.text(repr(value))
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def to_column(col: ColumnBuilder, dialect: str, inline_constraints: bool = False) -> sa.Column[Any]:
    """The ``sa.Column`` of a declared column; unique, index and foreign key are left to named
    constraints unless ``inline_constraints``."""
    args: list[Any] = []
    if col.reference is not None and inline_constraints:
        args.append(
            sa.ForeignKey(
                col.reference_target(), ondelete=col.delete_rule, onupdate=col.update_rule
            )
        )
    return sa.Column(
        col.name,
        column_type(col),
        *args,
        primary_key=col.is_primary,
        nullable=col.is_nullable,
        unique=(col.is_unique or None) if inline_constraints else None,
        index=(col.has_index or None) if inline_constraints else None,
        server_default=server_default(col, dialect),
        comment=col.comment_text,
        autoincrement=col.autoincrement,
    )


# -- running -----------------------------------------------------------------------------------
async def run_operations(client: Client, ops: list[Operation], dry_run: bool) -> list[str]:
    """Run one group of queued schema calls on ``client`` (the SQL instead, with ``dry_run``).

    On a transaction every statement runs in it; on PostgreSQL and MySQL outside one, they
    autocommit one by one; on SQLite the group runs in a DDL transaction (foreign keys off).
    """
    try:
        if isinstance(client, TransactionClient):
            return await run_sync(client, _apply, ops, dry_run)
        connection = client_connection(client)
        if dry_run or (
            connection.dialect_name != "sqlite" and connection.ambient_transaction() is None
        ):
            # Autocommit, statement by statement: what disable_transactions asks for
            # (CREATE INDEX CONCURRENTLY refuses a transaction), and all MySQL can do anyway.
            async with reading_connection(connection) as conn:
                out: list[str] = await conn.run_sync(_apply, ops, dry_run)
                if not dry_run:
                    await conn.commit()
                return out
        # SQLite keeps each group in one transaction: a table copy is never left half done.
        async with ddl_transaction(connection) as trx:
            return await run_sync(trx, _apply, ops, False)
    except sa_exc.DBAPIError as exc:
        raise wrap_error(exc) from exc
    except sa_exc.NoSuchTableError as exc:
        # Reflection (SQLite's table copies, MySQL's renames) found no table.
        raise QueryError(f"no such table: {exc}", original=exc) from exc


def _apply(sync_conn: Any, ops: list[Operation], dry_run: bool) -> list[str]:
    dialect = sync_conn.dialect.name
    naming = dict(NAMING)
    if pk_name(dialect, "") is None:
        del naming["pk"]
    target = sa.MetaData(naming_convention=naming)
    if not dry_run:
        ctx = MigrationContext.configure(connection=sync_conn, opts={"target_metadata": target})
        operations = Operations(ctx)
        for op in ops:
            op(operations, dialect)
        return []
    buffer = io.StringIO()
    offline = MigrationContext.configure(
        dialect=sync_conn.dialect,
        opts={
            "as_sql": True,
            "output_buffer": buffer,
            "literal_binds": True,
            "target_metadata": target,
            _LIVE: sync_conn,
        },
    )
    operations = Operations(offline)
    for op in ops:
        op(operations, dialect)
    return [s.strip() for s in buffer.getvalue().split(";\n") if s.strip()]


# -- CREATE TABLE ------------------------------------------------------------------------------
def _fk_constraint(table: str, col: ColumnBuilder) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [col.name],
        [col.reference_target()],
        ondelete=col.delete_rule,
        onupdate=col.update_rule,
        name=constraint_name("fk", table, [col.name]),
    )


def _uniques(b: TableBuilder) -> list[tuple[list[str], str | None]]:
    """Column-level ``.unique()`` then table-level ``t.unique([...])``."""
    return [([c.name], None) for c in b.columns if c.is_unique] + b.uniques


def _indexes(b: TableBuilder) -> list[tuple[list[str], str | None]]:
    """Column-level ``.index()`` then table-level ``t.index([...])``."""
    return [([c.name], None) for c in b.columns if c.has_index] + b.indexes


def _check_primary_keys(b: TableBuilder) -> None:
    if b.primary_keys and any(c.is_primary for c in b.columns):
        raise LucidError(f'"{b.table}" declares its primary key twice', code="E_INVALID_ARGUMENT")
    if len(b.primary_keys) > 1:
        raise LucidError(f'"{b.table}" declares two primary keys', code="E_INVALID_ARGUMENT")


def _table_items(b: TableBuilder, dialect: str) -> list[Any]:
    """The columns, then the primary key, unique and foreign key constraints."""
    items: list[Any] = []
    pk_columns = {c for cols, _ in b.primary_keys for c in cols}
    for col in b.columns:
        column = to_column(col, dialect)
        if col.name in pk_columns:
            column.nullable = False
        items.append(column)
    for cols, name in b.primary_keys:
        items.append(sa.PrimaryKeyConstraint(*cols, name=name or pk_name(dialect, b.table)))
    for cols, name in _uniques(b):
        items.append(sa.UniqueConstraint(*cols, name=name or constraint_name("uq", b.table, cols)))
    for col in [c for c in b.columns if c.reference is not None] + b.foreigns:
        items.append(_fk_constraint(b.table, col))
    return items


def create_table(
    ops: Operations, dialect: str, b: TableBuilder, schema: str | None, if_not_exists: bool
) -> None:
    """``CREATE TABLE`` with its named constraints, then ``CREATE INDEX`` for each index."""
    _check_primary_keys(b)
    exists = if_not_exists or None
    ops.create_table(b.table, *_table_items(b, dialect), schema=schema, if_not_exists=exists)
    for cols, name in _indexes(b):
        ops.create_index(
            name or constraint_name("ix", b.table, cols),
            b.table,
            cols,
            schema=schema,
            if_not_exists=exists,
        )


# -- ALTER TABLE -------------------------------------------------------------------------------
def _needs_copy(b: TableBuilder, dialect: str) -> bool:
    """Whether Alembic's batch mode will copy the table on SQLite (it can only ADD COLUMN
    without an expression default, and create/drop indexes, in place)."""
    if b.renames or b.drops or b.foreigns or b.uniques or b.primary_keys:
        return True
    if any(kind != "index" for _, kind in b.dropped_constraints):
        return True
    return any(_column_needs_copy(col, dialect) for col in b.columns)


def _column_needs_copy(col: ColumnBuilder, dialect: str) -> bool:
    if col.altering or col.is_unique or col.reference is not None or col.is_primary:
        return True
    return isinstance(server_default(col, dialect), sa.ClauseElement)


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


def _unpreviewable(ops: Operations, b: TableBuilder) -> None:
    ops.execute(
        sa.text(
            escape_colons(
                f'-- alter table "{b.table}": the table does not exist yet, so this change '
                f"cannot be previewed on this dialect"
            )
        )
    )


def _batch_source(
    ops: Operations, dialect: str, b: TableBuilder, schema: str | None
) -> dict[str, Any] | None:
    """The arguments of ``batch_alter_table``; ``None`` when a dry run cannot preview it."""
    kwargs: dict[str, Any] = {"schema": schema}
    if dialect != "sqlite" or not _needs_copy(b, dialect):
        return kwargs
    live = _live(ops)
    if live is None:
        _sqlite_guard(ops.get_bind(), b, schema)
        return kwargs
    # Offline (dry-run) batch mode can't reflect: hand it the live table.
    try:
        kwargs["copy_from"] = sa.Table(
            b.table, sa.MetaData(naming_convention=NAMING), autoload_with=live, schema=schema
        )
    except sa_exc.NoSuchTableError:
        _unpreviewable(ops, b)
        return None
    return kwargs


def _existing_columns(
    ops: Operations, dialect: str, b: TableBuilder, schema: str | None
) -> dict[str, Any] | None:
    """MySQL's CHANGE COLUMN restates the whole column: the current definitions of the table
    when it renames one; ``None`` when a dry run cannot preview it."""
    if not b.renames or dialect not in _MYSQL:
        return {}
    live = _live(ops)
    bind = live if live is not None else ops.get_bind()
    try:
        return {c["name"]: c for c in sa.inspect(bind).get_columns(b.table, schema=schema)}
    except sa_exc.NoSuchTableError:
        if live is None:
            raise
        _unpreviewable(ops, b)
        return None


def _drop_constraints(batch: BatchOperations, b: TableBuilder) -> None:
    for name, kind in b.dropped_constraints:
        if kind == "index":
            batch.drop_index(name)
        else:
            batch.drop_constraint(name, type_=kind)


def _rename_columns(batch: BatchOperations, b: TableBuilder, existing: dict[str, Any]) -> None:
    for old, new in b.renames:
        current = existing.get(old)
        if current is None:
            batch.alter_column(old, new_column_name=new)
            continue
        batch.alter_column(
            old,
            new_column_name=new,
            existing_type=current["type"],
            existing_nullable=current["nullable"],
            existing_server_default=current.get("default") or False,
            existing_comment=current.get("comment"),
        )


def _change_column(batch: BatchOperations, dialect: str, table: str, col: ColumnBuilder) -> None:
    """``.alter()`` changes the column; else it is added (with its primary key)."""
    if col.altering:
        batch.alter_column(
            col.name,
            type_=column_type(col),
            nullable=col.is_nullable,
            server_default=server_default(col, dialect),
            comment=col.comment_text if col.comment_text is not None else False,
        )
        return
    column = to_column(col, dialect)
    column.primary_key = False
    batch.add_column(column)
    if col.is_primary:
        batch.create_primary_key(pk_name(dialect, table), [col.name])


def _column_constraints(batch: BatchOperations, table: str, col: ColumnBuilder) -> None:
    """The unique constraint, foreign key and index a column's modifiers ask for."""
    if col.is_unique:
        batch.create_unique_constraint(constraint_name("uq", table, [col.name]), [col.name])
    if col.reference is not None:
        _add_foreign(batch, table, col)
    if col.has_index:
        batch.create_index(constraint_name("ix", table, [col.name]), [col.name])


def _table_constraints(batch: BatchOperations, dialect: str, b: TableBuilder) -> None:
    for fk in b.foreigns:
        _add_foreign(batch, b.table, fk)
    for cols, given in b.primary_keys:
        batch.create_primary_key(given or pk_name(dialect, b.table), cols)
    for cols, given in b.uniques:
        batch.create_unique_constraint(given or constraint_name("uq", b.table, cols), cols)
    for cols, given in b.indexes:
        batch.create_index(given or constraint_name("ix", b.table, cols), cols)


def _add_foreign(batch: BatchOperations, table: str, col: ColumnBuilder) -> None:
    target, _, column = col.reference_target().rpartition(".")
    batch.create_foreign_key(
        constraint_name("fk", table, [col.name]),
        target,
        [col.name],
        [column],
        ondelete=col.delete_rule,
        onupdate=col.update_rule,
    )


def alter_table(ops: Operations, dialect: str, b: TableBuilder, schema: str | None) -> None:
    """``ALTER TABLE`` through Alembic's batch mode (a table copy on SQLite), in Knex's order:
    dropped constraints, renames, added/changed columns with their constraints, table
    constraints, dropped columns."""
    kwargs = _batch_source(ops, dialect, b, schema)
    existing = _existing_columns(ops, dialect, b, schema) if kwargs is not None else None
    if kwargs is None or existing is None:
        return
    with ops.batch_alter_table(b.table, naming_convention=NAMING, **kwargs) as batch:
        _drop_constraints(batch, b)
        _rename_columns(batch, b, existing)
        for col in b.columns:
            _change_column(batch, dialect, b.table, col)
            _column_constraints(batch, b.table, col)
        _table_constraints(batch, dialect, b)
        for column_name in b.drops:
            batch.drop_column(column_name)
