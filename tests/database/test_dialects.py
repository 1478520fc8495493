"""The dialect wing (``lucid_orm.database.dialects``): each operation on a real database of
each dialect, and the capabilities the layers above ask for."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa

from lucid_orm.database import Database
from lucid_orm.database.dialects import (
    Dialect,
    MysqlDialect,
    PostgresqlDialect,
    SqliteDialect,
    dialect_for,
    dialect_of,
)
from lucid_orm.database.dialects.base import table_names
from tests.helpers import count_queries

meta = sa.MetaData()
parents = sa.Table(
    "dlx_parents",
    meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(50)),
)
children = sa.Table(
    "dlx_children",
    meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("parent_id", sa.Integer, sa.ForeignKey("dlx_parents.id", ondelete="RESTRICT")),
    sa.Column("name", sa.String(50)),
)
OWN = {"dlx_parents", "dlx_children"}


@pytest.fixture
async def tables(database: Database) -> AsyncIterator[Database]:
    """Two tables of this module (a parent and its restricting child), dropped afterwards."""
    async with database.engine().begin() as conn:
        await conn.run_sync(meta.drop_all)
        await conn.run_sync(meta.create_all)
    try:
        yield database
    finally:
        async with database.engine().begin() as conn:
            await conn.run_sync(meta.drop_all)


async def _others(database: Database) -> set[str]:
    async with database.engine().connect() as conn:
        return set(await conn.run_sync(table_names)) - OWN


async def _fill(database: Database) -> None:
    await database.table("dlx_parents").multi_insert([{"name": "a"}, {"name": "b"}])
    parent = (await database.from_("dlx_parents").order_by("id").first()) or {}
    await database.table("dlx_children").insert({"parent_id": parent["id"], "name": "c"})


class TestLookup:
    def test_one_dialect_per_backend(self) -> None:
        assert isinstance(dialect_for("sqlite"), SqliteDialect)
        assert isinstance(dialect_for("postgresql"), PostgresqlDialect)
        assert isinstance(dialect_for("mysql"), MysqlDialect)
        assert isinstance(dialect_for("mariadb"), MysqlDialect)
        assert type(dialect_for("oracle")) is Dialect

    async def test_connection_and_clients_share_it(self, database: Database, dialect: str) -> None:
        ops = database.get_connection().dialect_ops
        assert ops is dialect_for(dialect)
        assert database.connection().dialect_ops is ops
        assert dialect_of(database.connection().dialect) is ops
        async with database.transaction() as trx:
            assert trx.dialect_ops is ops
        # client.dialect stays SQLAlchemy's dialect.
        assert isinstance(database.connection().dialect, sa.engine.interfaces.Dialect)

    def test_capabilities(self) -> None:
        sqlite, pg, mysql = (dialect_for(n) for n in ("sqlite", "postgresql", "mysql"))
        assert sqlite.transactional_ddl and pg.transactional_ddl and not mysql.transactional_ddl
        assert not sqlite.isolation_levels and pg.isolation_levels and mysql.isolation_levels
        assert pg.aborts_on_error and not sqlite.aborts_on_error and not mysql.aborts_on_error
        assert mysql.commit_after_read and not pg.commit_after_write
        assert not sqlite.loop_bound and pg.loop_bound and mysql.loop_bound
        assert mysql.is_integrity_code(1062) and not pg.is_integrity_code(1062)
        assert pg.keys_as_one_parameter([1, 2]) and not mysql.keys_as_one_parameter([1, 2])

    def test_isolation_levels(self) -> None:
        assert dialect_for("mysql").isolation_level("read_uncommitted") == "READ UNCOMMITTED"
        assert dialect_for("postgresql").isolation_level("read uncommitted") == "READ COMMITTED"
        assert dialect_for("postgresql").isolation_level("serializable") == "SERIALIZABLE"


class TestBindKeys:
    async def test_in_and_not_in(self, tables: Database) -> None:
        await _fill(tables)
        client = tables.connection()
        ops, sa_dialect = client.dialect_ops, client.dialect
        rows = (await client.execute(sa.select(parents.c.id, parents.c.name), write=False)).rows
        ids = {name: key for key, name in rows}
        column = parents.c.id
        for negate, expected in ((False, ["a"]), (True, ["b"])):
            clause = ops.bind_keys(column, [ids["a"], None], sa_dialect, negate)
            stmt = sa.select(parents.c.name).where(clause).order_by(parents.c.name)
            got = (await client.execute(stmt, write=False)).rows
            # NOT IN of a list holding NULL matches nothing, as SQL's IN.
            assert [r[0] for r in got] == (expected if not negate else [])
        clause = ops.bind_keys(column, [ids["a"]], sa_dialect, True)
        got = (await client.execute(sa.select(parents.c.name).where(clause), write=False)).rows
        assert [r[0] for r in got] == ["b"]

    async def test_many_keys_one_parameter(self, tables: Database, dialect: str) -> None:
        client = tables.connection()
        ops = client.dialect_ops
        keys = list(range(40_000))
        stmt = sa.select(sa.func.count()).where(
            ops.bind_keys(parents.c.id, keys, client.dialect, False)
        )
        with count_queries() as log:
            assert (await client.execute(stmt, write=False)).rows[0][0] == 0
        if ops.keys_as_one_parameter(keys):
            assert len(log.bindings[0]) == 1

    async def test_rows(self, tables: Database) -> None:
        await _fill(tables)
        client = tables.connection()
        ops = client.dialect_ops
        target = [parents.c.id, parents.c.name]
        all_rows = [tuple(r) for r in (await client.execute(sa.select(*target), write=False)).rows]
        bound = ops.bind_rows(target, all_rows[:1], client.dialect, False)
        if bound is None:  # the plain row-value list (MySQL)
            assert isinstance(ops, MysqlDialect)
            return
        got = (await client.execute(sa.select(parents.c.name).where(bound), write=False)).rows
        assert [r[0] for r in got] == [all_rows[0][1]]


class TestWrites:
    async def test_insert_many_returning(
        self, tables: Database, fast_paths: bool, dialect: str
    ) -> None:
        params = [{"name": f"n{i}"} for i in range(5)]
        async with tables.transaction() as trx:
            with count_queries() as log:
                rows = await trx.dialect_ops.insert_many_returning(
                    trx, parents, params, parents.c.id, "Parent"
                )
        keys = [r[0] for r in rows]
        assert len(keys) == 5 and keys == sorted(keys)
        stored = await tables.from_("dlx_parents").order_by("id")
        names = [p["name"] for p in params]
        assert [(r["id"], r["name"]) for r in stored] == list(zip(keys, names, strict=True))
        assert all(q.model == "Parent" for q in log.events)
        if dialect == "sqlite" and fast_paths:
            # One multi-row statement, compiled from Core and cached per shape.
            assert log.count == 1 and "RETURNING" in log.sqls[0]
            ops = dialect_for("sqlite")
            assert isinstance(ops, SqliteDialect)
            shape = ops.compiled_insert(trx.dialect, parents, ["name"], parents.c.id)
            assert shape is ops.compiled_insert(trx.dialect, parents, ["name"], parents.c.id)
            assert log.sqls[0] == shape.sql(5)

    async def test_truncate(self, tables: Database, dialect: str) -> None:
        await tables.table("dlx_children").multi_insert([{"name": "a"}, {"name": "b"}])
        client = tables.connection()
        await client.dialect_ops.truncate(client, "dlx_children")
        assert await tables.from_("dlx_children").count_rows() == 0
        await tables.table("dlx_children").insert({"name": "c"})
        row = await tables.from_("dlx_children").first()
        if dialect == "postgresql":  # RESTART IDENTITY
            assert row is not None and row["id"] == 1

    async def test_truncate_cascade(self, tables: Database, dialect: str) -> None:
        await _fill(tables)
        client = tables.connection()
        if dialect != "postgresql":
            pytest.skip("only PostgreSQL's TRUNCATE cascades")
        await client.dialect_ops.truncate(client, "dlx_parents", cascade=True)
        assert await tables.from_("dlx_children").count_rows() == 0

    async def test_truncate_all_and_drop_all(self, tables: Database, dialect: str) -> None:
        await _fill(tables)
        keep = await _others(tables)
        ops = tables.get_connection().dialect_ops
        async with tables.engine().begin() as conn:
            truncated = await conn.run_sync(ops.truncate_all_tables, keep)
        assert truncated == sorted(OWN)
        assert await tables.from_("dlx_children").count_rows() == 0
        assert await tables.from_("dlx_parents").count_rows() == 0
        await _fill(tables)
        # The child's RESTRICT foreign key does not stop the drop, whatever the order.
        async with tables.engine().begin() as conn:
            dropped: Any = await conn.run_sync(ops.drop_all_tables, keep)
        assert sorted(dropped) == sorted(OWN)
        assert await _others(tables) == keep
        async with tables.engine().connect() as conn:
            assert not OWN & set(await conn.run_sync(table_names))


class TestAdvisoryLock:
    async def test_one_session_at_a_time(self, database: Database, dialect: str) -> None:
        connection = database.get_connection()
        lock = connection.dialect_ops.advisory_lock("lucid_orm:dlx_test", connection.url.database)
        if lock is None:
            assert dialect == "sqlite"  # the migrator keeps a lock table there
            return
        engine = database.engine()
        async with engine.connect() as first, engine.connect() as second:
            assert (await first.execute(lock.acquire)).scalar()
            assert not (await second.execute(lock.acquire)).scalar()
            await first.execute(lock.release)
            assert (await second.execute(lock.acquire)).scalar()
            await second.execute(lock.release)
