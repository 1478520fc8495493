"""Model queries run by statement shape (``query/shape.py``): a query whose shape was seen
before on the connection runs the statement compiled for the first one with its own values.
Two queries that differ in anything that changes the SQL (column, operator, NULL, order,
LIMIT/OFFSET, DISTINCT, selected columns, row lock, global scopes, soft deletes, count or rows,
table) each get their own statement and rows, whichever ran first; every statement is still
reported with its SQL and values; transactions and the slow twin give the same rows."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import literal_column
from sqlalchemy.dialects import mysql, postgresql, sqlite

from lucid_orm import db, has_many, many_to_many
from lucid_orm.database import Database
from lucid_orm.database.query_client import connection_of
from lucid_orm.query import shape
from lucid_orm.relations import HasMany, ManyToMany
from tests.helpers import count_queries
from tests.models import Post, Skill, User
from tests.scoped_models import Author, current_tenant, scoped, scoped_tables, seed
from tests.scoped_models import Post as ScopedPost

__all__ = ["scoped", "scoped_tables"]


@pytest.fixture
async def users(database: Database) -> list[User]:
    return await User.create_many(
        [{"username": f"user{i}", "points": i % 3, "country_id": i % 2 + 1} for i in range(1, 8)]
        + [{"username": None, "points": None, "country_id": None}]
    )


def shapes_kept() -> int:
    """How many statements the default connection keeps by query shape."""
    return len(connection_of(db.connection()).statements._shapes)


def lean() -> bool:
    return connection_of(db.connection()).fast_reads


async def ids(query: Any) -> list[int]:
    return [row.id for row in await query]


async def run_both(
    first: Callable[[], Any], second: Callable[[], Any]
) -> tuple[list[int], list[int], list[str]]:
    """Run ``first`` twice (its shape is then known), then ``second`` twice; the rows of
    each (the same both times) and the SQL of the four statements."""
    with count_queries() as q:
        a1, a2 = await ids(first()), await ids(first())
        b1, b2 = await ids(second()), await ids(second())
    assert a1 == a2 and b1 == b2
    assert q.count == 4
    return a1, b1, q.sqls


def expected(users: list[User], keep: Callable[[User], bool]) -> list[int]:
    return [u.id for u in users if keep(u)]


class TestReuse:
    async def test_same_shape_other_values_reuses_the_statement(self, users: list[User]) -> None:
        before = shapes_kept()
        with count_queries() as q:
            found = [await User.query().where("id", u.id).first() for u in users[:3]]
        assert [u.id if u else None for u in found] == [u.id for u in users[:3]]
        # Every statement reported, with its own values.
        assert q.count == 3
        assert len(set(q.sqls)) == 1
        assert [b[0] for b in q.bindings] == [u.id for u in users[:3]]
        if lean():
            assert shapes_kept() == before + 1
            # Run by shape: the statement takes every value from the query's slots.
            statements = connection_of(db.connection()).statements
            assert all(e.extra["slots"] is not None for e in statements._shapes.values())

    async def test_no_row(self, users: list[User]) -> None:
        assert await User.query().where("id", -1).first() is None
        assert await User.query().where("id", -2).first() is None

    async def test_count_and_page(self, users: list[User]) -> None:
        for page_no in (1, 2, 3):
            page = await User.query().order_by("id").paginate(page_no, 3)
            assert page.total == len(users)
            assert [u.id for u in page] == [u.id for u in users][(page_no - 1) * 3 : page_no * 3]

    async def test_cursor_pages(self, users: list[User]) -> None:
        seen: list[int] = []
        cursor = None
        with count_queries() as q:
            while True:
                page = await User.query().order_by("id").cursor_paginate(2, cursor)
                seen += [u.id for u in page]
                if not page.has_more:
                    break
                cursor = page.next_cursor
        assert seen == [u.id for u in users]
        assert q.count == 4
        # The keyset value is bound, page after page.
        assert [b[0] for b in q.bindings[1:]] == [users[1].id, users[3].id, users[5].id]


class TestDistinctShapes:
    async def test_column(self, users: list[User]) -> None:
        a, b, sqls = await run_both(
            lambda: User.query().where("points", 1).order_by("id"),
            lambda: User.query().where("country_id", 1).order_by("id"),
        )
        assert a == expected(users, lambda u: u.points == 1)
        assert b == expected(users, lambda u: u.country_id == 1)
        assert sqls[0] != sqls[2]

    async def test_operator(self, users: list[User]) -> None:
        a, b, sqls = await run_both(
            lambda: User.query().where("points", 1).order_by("id"),
            lambda: User.query().where("points", ">", 1).order_by("id"),
        )
        assert a == expected(users, lambda u: u.points == 1)
        assert b == expected(users, lambda u: u.points is not None and u.points > 1)
        assert sqls[0] != sqls[2]
        a, b, _ = await run_both(
            lambda: User.query().where("points", "!=", 1).order_by("id"),
            lambda: User.query().where("points", "<=", 1).order_by("id"),
        )
        assert a == expected(users, lambda u: u.points is not None and u.points != 1)
        assert b == expected(users, lambda u: u.points is not None and u.points <= 1)

    async def test_null(self, users: list[User]) -> None:
        a, b, sqls = await run_both(
            lambda: User.query().where("points", 0).order_by("id"),
            lambda: User.query().where("points", None).order_by("id"),
        )
        assert a == expected(users, lambda u: u.points == 0)
        assert b == expected(users, lambda u: u.points is None)
        assert "NULL" in sqls[2].upper() and "NULL" not in sqls[0].upper()
        a, b, _ = await run_both(
            lambda: User.query().where_null("points").order_by("id"),
            lambda: User.query().where_not_null("points").order_by("id"),
        )
        assert a == expected(users, lambda u: u.points is None)
        assert b == expected(users, lambda u: u.points is not None)

    async def test_and_or(self, users: list[User]) -> None:
        a, b, _ = await run_both(
            lambda: User.query().where("points", 1).where("country_id", 1).order_by("id"),
            lambda: User.query().where("points", 1).or_where("country_id", 1).order_by("id"),
        )
        assert a == expected(users, lambda u: u.points == 1 and u.country_id == 1)
        assert b == expected(users, lambda u: u.points == 1 or u.country_id == 1)
        a, b, _ = await run_both(
            lambda: (
                User.query()
                .where("points", 2)
                .where(lambda q: q.where("country_id", 1).or_where("points", 0))
                .order_by("id")
            ),
            lambda: (
                User.query()
                .where("points", 2)
                .or_where(lambda q: q.where("country_id", 1).where("points", 0))
                .order_by("id")
            ),
        )
        assert a == expected(
            users, lambda u: u.points == 2 and (u.country_id == 1 or u.points == 0)
        )
        assert b == expected(
            users, lambda u: u.points == 2 or (u.country_id == 1 and u.points == 0)
        )

    async def test_like(self, users: list[User]) -> None:
        a, b, _ = await run_both(
            lambda: User.query().where("username", "like", "user1%").order_by("id"),
            lambda: User.query().where("username", "=", "user1%").order_by("id"),
        )
        assert a == expected(users, lambda u: (u.username or "").startswith("user1"))
        assert b == []

    async def test_order(self, users: list[User]) -> None:
        a, b, sqls = await run_both(
            lambda: User.query().where_not_null("points").order_by("id"),
            lambda: User.query().where_not_null("points").order_by("id", "desc"),
        )
        assert b == list(reversed(a))
        assert sqls[0] != sqls[2]
        a, b, _ = await run_both(
            lambda: User.query().where_not_null("points").order_by("points").order_by("id"),
            lambda: User.query().where_not_null("points").order_by("id").order_by("points"),
        )
        with_points = [u for u in users if u.points is not None]
        assert a == [u.id for u in sorted(with_points, key=lambda u: (u.points, u.id))]
        assert b == [u.id for u in with_points]

    async def test_limit_and_offset(self, users: list[User]) -> None:
        everyone = [u.id for u in users]
        a, b, _ = await run_both(
            lambda: User.query().order_by("id"),
            lambda: User.query().order_by("id").limit(2),
        )
        assert a == everyone and b == everyone[:2]
        a, b, _ = await run_both(
            lambda: User.query().order_by("id").limit(3),
            lambda: User.query().order_by("id").limit(3).offset(2),
        )
        assert a == everyone[:3] and b == everyone[2:5]
        # Same shape, other values.
        a, b, _ = await run_both(
            lambda: User.query().order_by("id").limit(3).offset(1),
            lambda: User.query().order_by("id").limit(2).offset(4),
        )
        assert a == everyone[1:4] and b == everyone[4:6]

    async def test_distinct_and_columns(self, users: list[User]) -> None:
        plain = await User.query().select("country_id").order_by("country_id").pojo()
        twice = await User.query().select("country_id").order_by("country_id").pojo()
        distinct = await User.query().select("country_id").distinct().order_by("country_id").pojo()
        assert plain == twice
        assert len(plain) == len(users)
        assert sorted(r["country_id"] for r in distinct if r["country_id"] is not None) == [1, 2]
        assert len(distinct) == 3
        rows = await User.query().select("id", "username").where("id", users[0].id).pojo()
        assert rows == [{"id": users[0].id, "username": users[0].username}]
        rows = await User.query().where("id", users[0].id).pojo()
        assert rows[0]["points"] == users[0].points

    async def test_count_and_rows_of_one_shape(self, users: list[User]) -> None:
        query = User.query().where("points", 1)
        assert await query.clone().count_rows() == 3
        assert len(await query.clone()) == 3
        assert await query.clone().count_rows() == 3
        assert await User.query().where("points", 2).count_rows() == 2

    async def test_table(self, users: list[User]) -> None:
        post = await Post.create({"user_id": users[0].id, "title": "t"})
        assert await ids(Post.query().where("id", post.id)) == [post.id]
        assert await ids(User.query().where("id", post.id)) == (
            [post.id] if post.id in {u.id for u in users} else []
        )

    async def test_row_lock(self, users: list[User], dialect: str) -> None:
        with count_queries() as q:
            await User.query().where("id", users[0].id).first()
            await User.query().where("id", users[0].id).for_update().first()
            await User.query().where("id", users[0].id).for_share().first()
        if dialect == "sqlite":
            assert q.sqls[0] == q.sqls[1] == q.sqls[2]  # no row locks
        else:
            assert "FOR UPDATE" not in q.sqls[0].upper()
            assert "FOR UPDATE" in q.sqls[1].upper()
            assert q.sqls[2] not in (q.sqls[0], q.sqls[1])


class TestScopes:
    async def test_global_scope_read_at_each_query(self, scoped: Database) -> None:
        rows = await seed()
        ada, bob = rows["ada"].id, rows["bob"].id
        names: list[list[str]] = []
        for tenant in (None, 1, 2, None, 2):
            current_tenant.set(tenant)
            names.append([a.name for a in await Author.query().order_by("id")])
        assert names == [["ada", "bob"], ["ada"], ["bob"], ["ada", "bob"], ["bob"]]
        current_tenant.set(1)
        assert await Author.query().where("id", bob).first() is None
        assert (await Author.query().where("id", ada).first()) is not None
        current_tenant.set(None)
        assert (await Author.query().where("id", bob).first()) is not None
        assert await Author.query().without_global_scopes().where("id", bob).first() is not None

    async def test_soft_deletes(self, scoped: Database) -> None:
        rows = await seed()
        await rows["p2"].delete()
        p1, p2, p3 = rows["p1"].id, rows["p2"].id, rows["p3"].id

        async def titles(query: Any) -> list[str]:
            return [p.title for p in await query.order_by("id")]

        for _ in range(2):
            assert await titles(ScopedPost.query()) == ["p1", "p3"]
            assert await titles(ScopedPost.query().with_trashed()) == ["p1", "p2", "p3"]
            assert await titles(ScopedPost.query().only_trashed()) == ["p2"]
        assert await ScopedPost.query().where("id", p2).first() is None
        assert await ScopedPost.query().with_trashed().where("id", p2).first() is not None
        assert await ScopedPost.query().only_trashed().where("id", p1).first() is None
        current_tenant.set(2)
        assert await titles(ScopedPost.query().with_trashed()) == ["p3"]
        assert await ScopedPost.query().count_rows() == 1
        current_tenant.set(1)
        assert await ScopedPost.query().count_rows() == 1
        assert await ScopedPost.query().with_trashed().count_rows() == 2
        assert await ScopedPost.query().where("id", p3).first() is None


class TestTransactions:
    async def test_a_transaction_sees_its_own_rows(self, users: list[User]) -> None:
        await User.query().where("id", users[0].id).first()
        async with db.transaction() as trx:
            await User.query(client=trx).where("id", users[0].id).update({"username": "in"})
            with count_queries() as q:
                found = await User.query(client=trx).where("id", users[0].id).first()
            assert found is not None and found.username == "in"
            assert q.count == 1
            await trx.rollback()
        found = await User.query().where("id", users[0].id).first()
        assert found is not None and found.username == users[0].username


async def test_the_shape_of_a_model_without_global_scopes_reads_its_where_clause(
    users: list[User],
) -> None:
    """Without global scopes, a model query's shape takes its WHERE from the written
    conditions directly (``_statement_shape``), not through ``_where_clause()``: it must stay
    the condition ``_where_clause()`` makes (one condition, the condition itself)."""
    from lucid_orm.orm.model_info import info_of

    assert not info_of(User).global_scopes
    one = User.query().where("id", users[0].id)
    query = User.query().where("points", 1).or_where("id", ">", users[2].id)
    with query.scoped():
        query.where_not_null("username")
    for built in (one, query):
        found = built._statement_shape()
        if found is None:  # the lean path is off: no shape
            assert not lean()
            continue
        where = built._where_clause()
        assert where is not None and found.where is not None
        for dialect in (sqlite.dialect(), postgresql.dialect(), mysql.dialect()):
            assert str(found.where.compile(dialect=dialect)) == str(where.compile(dialect=dialect))
    if lean():
        shaped = one._statement_shape()
        assert shaped is not None and shaped.where is one.state.wheres[0][1]


def test_plain_comparisons_are_sqlalchemys_own() -> None:
    """``plain_compare`` makes what SQLAlchemy's operators make (same construct, same SQL on
    each dialect, same negation), and declines the types it does not read (dates, booleans,
    enums, JSON), bools and None."""
    import operator

    from sqlalchemy import (
        JSON,
        BigInteger,
        Boolean,
        Column,
        DateTime,
        Enum,
        Float,
        Integer,
        MetaData,
        Numeric,
        String,
        Table,
        Text,
        literal,
    )
    from sqlalchemy.dialects import mysql, postgresql, sqlite

    from lucid_orm.query.shape import plain_compare, plain_literal_compare, plain_order

    types = [Integer(), String(20), Float(), Numeric(10, 2), Text(), BigInteger()]
    declined = [DateTime(), Boolean(), Enum("a", "b"), JSON()]
    table = Table("t", MetaData(), *[Column(f"c{i}", t) for i, t in enumerate([*types, *declined])])
    dialects = [postgresql.asyncpg.dialect(), mysql.asyncmy.dialect(), sqlite.aiosqlite.dialect()]
    ops = [operator.eq, operator.ne, operator.lt, operator.le, operator.gt, operator.ge]
    for col in list(table.c)[: len(types)]:
        for op in ops:
            for value in (5, "x", 2.5):
                for made, ref in (
                    (plain_compare(col, op, value), op(col, value)),
                    (plain_literal_compare(col, op, value), op(col, literal(value, col.type))),
                ):
                    assert made is not None
                    assert made.compare(ref)
                    assert made._generate_cache_key() == ref._generate_cache_key()
                    for d in dialects:
                        assert str(made.compile(dialect=d)) == str(ref.compile(dialect=d))
                        assert str((~made).compile(dialect=d)) == str((~ref).compile(dialect=d))
        assert plain_compare(col, operator.eq, True) is None
        assert plain_compare(col, operator.eq, None) is None
    for col in list(table.c)[len(types) :]:
        assert plain_compare(col, operator.eq, 1) is None
    for col in table.c:
        for descending in (False, True):
            ordered = plain_order(col, descending)
            ref = col.desc() if descending else col.asc()
            assert ordered is not None and ordered.compare(ref)
            assert ordered._generate_cache_key() == ref._generate_cache_key()
            for d in dialects:
                assert str(ordered.compile(dialect=d)) == str(ref.compile(dialect=d))
    assert plain_order(literal(1), False) is None


def test_plain_constructs_hold_sqlalchemys_attributes() -> None:
    """The comparisons and parameters ``plain_compare``, ``plain_like`` and
    ``plain_literal_compare`` set up without SQLAlchemy's constructors hold every attribute
    SQLAlchemy's own hold, equal but for the anonymous key made from the object's identity;
    made twice, each its own key, value and modifiers."""
    import operator

    from sqlalchemy import Column, Float, Integer, MetaData, String, Table, literal

    from lucid_orm.query.shape import plain_compare, plain_like, plain_literal_compare

    table = Table(
        "t", MetaData(), Column("n", Integer()), Column("s", String(9)), Column("f", Float())
    )

    def same(made: Any, ref: Any) -> None:
        assert type(made) is type(ref)
        mine, theirs = dict(made.__dict__), dict(ref.__dict__)
        bind, ref_bind = mine.pop("right"), theirs.pop("right")
        assert mine.pop("_orig") == (made.left.__hash__(), bind.__hash__())
        theirs.pop("_orig")
        assert mine == theirs
        b, r = dict(bind.__dict__), dict(ref_bind.__dict__)
        assert b.pop("_anon_map_key") == f"{id(bind)} {r.pop('_anon_map_key').split(' ', 1)[1]}"
        assert b.pop("key") == b.pop("_identifying_key") == f"%({id(bind)} {b['_orig_key']})s"
        assert type(bind.key) is type(ref_bind.key) and bind.key.quote == ref_bind.key.quote
        for k in ("key", "_identifying_key"):
            r.pop(k)
        assert b == r

    for _ in range(2):  # the first call of a key and type makes SQLAlchemy's, later ones copy it
        for col, values in ((table.c.n, (3, 2.5)), (table.c.s, ("x",)), (table.c.f, (1.5, 2))):
            for value in values:
                for op in (operator.eq, operator.ne, operator.lt, operator.ge):
                    same(plain_compare(col, op, value), op(col, value))
                    same(plain_literal_compare(col, op, value), op(col, literal(value, col.type)))
        same(plain_like(table.c.s, "a%"), table.c.s.like("a%"))
    one, two = plain_compare(table.c.n, operator.eq, 1), plain_compare(table.c.n, operator.eq, 2)
    assert one is not None and two is not None
    assert (one.right.value, two.right.value) == (1, 2)
    assert one.right.key != two.right.key
    first, second = plain_like(table.c.s, "a%"), plain_like(table.c.s, "b%")
    assert first is not None and second is not None and first.modifiers is not second.modifiers
    # (On the SQLAlchemy release installed, the comparisons were set up directly.)
    assert shape._binary_direct is True


def test_plain_comparisons_take_the_constructor_when_it_sets_other_attributes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A SQLAlchemy release whose comparison constructor sets an attribute ``_binary`` does
    not know: the first comparison finds it out, and every one is then SQLAlchemy's own."""
    import operator

    from sqlalchemy import Column, Integer, MetaData, Table
    from sqlalchemy.sql.elements import BinaryExpression

    table = Table("t", MetaData(), Column("n", Integer()))
    original = BinaryExpression.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self.added_by_a_release = True

    monkeypatch.setattr(BinaryExpression, "__init__", init)
    monkeypatch.setattr(shape, "_binary_direct", None)
    made = [shape.plain_compare(table.c.n, operator.eq, i) for i in range(3)]
    assert shape._binary_direct is False
    assert all(getattr(m, "added_by_a_release", False) for m in made)


def test_order_constructs_are_shared_and_still_compile_alike() -> None:
    """``plain_order`` keeps one construct per column and direction (immutable): each query
    ordering by a column gets it, with the SQL of ``column.asc()``/``desc()``."""
    from sqlalchemy import Column, Integer, MetaData, Table

    from lucid_orm.query.shape import plain_order

    col = Table("t", MetaData(), Column("a", Integer())).c.a
    first = plain_order(col, True)
    assert first is not None and first is plain_order(col, True)
    assert plain_order(col, False) is not first
    assert str(first) == str(col.desc())
    assert str(plain_order(col, False)) == str(col.asc())


async def test_operator_spellings_and_identifiers_after_the_quick_paths(
    users: list[User],
) -> None:
    """An operator in another case or with spaces is still read as its normal form, and a
    column name is checked whatever names were checked before it (the quick paths are for
    names and operators already normal)."""
    from lucid_orm.errors import LucidError

    want = expected(users, lambda u: u.points is not None and u.points >= 1)
    assert await ids(User.query().where("points", ">=", 1).order_by("id")) == want
    assert await ids(User.query().where("points", " >= ", 1).order_by("id")) == want
    like = User.query().where("username", "LIKE", "user1%").order_by("id")
    assert await ids(like) == expected(users, lambda u: (u.username or "").startswith("user1"))
    with pytest.raises(LucidError) as caught:
        User.query().where("points; drop", 1)
    assert caught.value.code == "E_INVALID_IDENTIFIER"
    with pytest.raises(LucidError) as caught:
        User.query().where("points", "=== ", 1)
    assert caught.value.code == "E_INVALID_OPERATOR"


class TestPlainLike:
    """``where_like`` on a string column with a str pattern builds SQLAlchemy's own ``like``
    construct directly (``shape.plain_like``): the same statement, cache key and rows."""

    def test_the_construct_is_sqlalchemys(self) -> None:
        from lucid_orm.query.shape import plain_like

        username = User.query().state.from_.c.username
        ours = plain_like(username, "a%")
        assert ours is not None
        theirs = username.like("a%")
        assert ours.compare(theirs)
        for dialect in (
            postgresql.asyncpg.dialect(),
            sqlite.aiosqlite.dialect(),
            mysql.asyncmy.dialect(),
        ):
            assert str(ours.compile(dialect=dialect)) == str(theirs.compile(dialect=dialect))
        # Not a str pattern, not a string column, not a table column: SQLAlchemy's dispatch.
        assert plain_like(username, 1) is None
        assert plain_like(User.query().state.from_.c.id, "1%") is None
        assert plain_like(literal_column("username"), "a%") is None

    async def test_patterns_each_their_rows(self, users: list[User]) -> None:
        a, b, sqls = await run_both(
            lambda: User.query().where_like("username", "user1%").order_by("id"),
            lambda: User.query().where_like("username", "%er3").order_by("id"),
        )
        assert a == expected(users, lambda u: (u.username or "").startswith("user1"))
        assert b == expected(users, lambda u: (u.username or "").endswith("er3"))
        assert a != b
        # One statement, each query's own pattern bound.
        assert sqls[0] == sqls[2]

    async def test_or_where_like_and_a_non_string_pattern(self, users: list[User]) -> None:
        query = (
            User.query()
            .where_like("username", "user2")
            .or_where_like("username", "%7")
            .order_by("id")
        )
        assert await ids(query) == expected(users, lambda u: u.username in ("user2", "user7"))
        # A raw pattern goes through SQLAlchemy's ``like``.
        same = User.query().where_like("username", db.raw("username")).order_by("id")
        assert await ids(same) == expected(users, lambda u: u.username is not None)


class CountedUser(User):
    posts: HasMany[Post] = has_many(lambda: Post, foreign_key="user_id")
    # The same table and foreign key, matched on another column of the user: the same SQL
    # but for one column of the correlation.
    posts_by_points: HasMany[Post] = has_many(
        lambda: Post, foreign_key="user_id", local_key="points"
    )
    skills: ManyToMany[Skill] = many_to_many(
        lambda: Skill, pivot_table="skill_user", pivot_foreign_key="user_id"
    )


class TestWithCount:
    """``with_count`` without callback runs by shape: its correlated ``count(*)`` is keyed by
    relation, builder class, alias and condition, so two counts that differ get their own
    statement and counts whichever ran first; anything else still builds its statement."""

    @pytest.fixture
    async def posts(self, users: list[User]) -> list[Post]:
        # user1 (points 1) 3 posts, user2 (points 2) 1, users[2] (points 0) none, one
        # post for the user id 0 nobody has, and posts of the users whose id is a points value.
        rows = [users[0].id] * 3 + [users[1].id] + [0, 1, 1, 2]
        return await Post.create_many(
            [{"user_id": u, "title": f"p{i}"} for i, u in enumerate(rows)]
        )

    @staticmethod
    def counts(rows: list[CountedUser], name: str) -> list[tuple[int, int]]:
        return [(u.id, int(u.extras[name])) for u in rows]

    @staticmethod
    def expect(users: list[User], posts: list[Post], key: Callable[[User], Any]) -> list[Any]:
        return [(u.id, sum(1 for p in posts if p.user_id == key(u))) for u in users]

    async def test_two_relations_each_their_statement_and_counts(
        self, users: list[User], posts: list[Post]
    ) -> None:
        before = shapes_kept()
        with count_queries() as q:
            for _ in range(2):
                by_id = await CountedUser.query().with_count("posts").order_by("id")
                by_points = await CountedUser.query().with_count("posts_by_points").order_by("id")
                assert self.counts(by_id, "posts_count") == self.expect(
                    users, posts, lambda u: u.id
                )
                assert self.counts(by_points, "posts_by_points_count") == self.expect(
                    users, posts, lambda u: u.points
                )
        assert q.count == 4
        assert q.sqls[0] == q.sqls[2] and q.sqls[1] == q.sqls[3]
        assert q.sqls[0] != q.sqls[1]
        assert "= users.points" in q.sqls[1] and "= users.id" in q.sqls[0]
        if lean():
            assert shapes_kept() == before + 2
            # Run by shape: every value of the statements comes from the queries' slots.
            statements = connection_of(db.connection()).statements
            assert all(e.extra["slots"] is not None for e in statements._shapes.values())

    async def test_same_count_other_values_and_the_order_first_run_does_not_matter(
        self, users: list[User], posts: list[Post]
    ) -> None:
        expected_counts = dict(self.expect(users, posts, lambda u: u.id))
        for points in (1, 2, 0, 1):
            rows = await CountedUser.query().where("points", points).with_count("posts")
            assert sorted(self.counts(rows, "posts_count")) == sorted(
                (u.id, expected_counts[u.id]) for u in users if u.points == points
            )
        # The count before the condition, or two counts: other SELECT lists, other statements.
        with count_queries() as q:
            two = await CountedUser.query().with_count("posts").with_count("posts_by_points")
            one = await CountedUser.query().with_count("posts_by_points")
        assert len(set(q.sqls)) == 2
        assert sorted(self.counts(two, "posts_count")) == sorted(expected_counts.items())
        assert sorted(self.counts(two, "posts_by_points_count")) == sorted(
            self.counts(one, "posts_by_points_count")
        )

    async def test_what_is_not_shaped_still_counts(
        self, users: list[User], posts: list[Post]
    ) -> None:
        expected_counts = dict(self.expect(users, posts, lambda u: u.id))
        plain = await CountedUser.query().with_count("posts").order_by("id")
        # A callback (its own conditions and alias), a where_has beside it, a many-to-many.
        titled = (
            await CountedUser.query()
            .with_count("posts", lambda q: q.where("title", "p0").as_("n"))
            .order_by("id")
        )
        has = await CountedUser.query().where_has("posts").with_count("posts").order_by("id")
        skills = await CountedUser.query().with_count("skills").order_by("id")
        assert self.counts(plain, "posts_count") == sorted(expected_counts.items())
        assert self.counts(titled, "n") == [(u.id, int(u.id == users[0].id)) for u in users]
        assert self.counts(has, "posts_count") == [
            (i, n) for i, n in sorted(expected_counts.items()) if n
        ]
        assert self.counts(skills, "skills_count") == [(u.id, 0) for u in users]

    async def test_same_sql_and_counts_in_a_transaction(
        self, users: list[User], posts: list[Post]
    ) -> None:
        with count_queries() as q:
            lean_rows = await CountedUser.query().with_count("posts").order_by("id")
            async with db.transaction() as trx:
                built = await CountedUser.query(client=trx).with_count("posts").order_by("id")
        assert self.counts(lean_rows, "posts_count") == self.counts(built, "posts_count")
        selects = [s for s in q.sqls if s.lstrip().upper().startswith("SELECT")]
        assert selects[0] == selects[1]


class TestWhereHas:
    """``has``/``where_has`` without operator run by shape: their correlated ``EXISTS`` is
    keyed by relation, builder class, negation and the subquery's own WHERE (the callback's
    conditions, the related model's scopes, a nested ``where_has``), so two that differ get
    their own statement and rows whichever ran first; anything else around the condition (a
    pivot join, a callback's select, order or limit, an IN list, an ``on_query``) still
    builds its statement."""

    @pytest.fixture
    async def posts(self, users: list[User]) -> list[Post]:
        # user1 posts "a0", "a1", "b2"; user2 "b3"; posts of user ids 1 and 2 by points.
        rows = [(users[0].id, "a0"), (users[0].id, "a1"), (users[0].id, "b2"), (users[1].id, "b3")]
        rows += [(1, "c4"), (2, "c5")]
        return await Post.create_many([{"user_id": u, "title": t} for u, t in rows])

    @staticmethod
    def having(
        users: list[User], posts: list[Post], keep: Callable[[User, Post], bool]
    ) -> list[int]:
        return [u.id for u in users if any(keep(u, p) for p in posts)]

    async def test_differently_shaped_where_has_each_their_sql_and_rows(
        self, users: list[User], posts: list[Post]
    ) -> None:
        def by_id(pattern: str) -> Any:
            return (
                CountedUser.query()
                .where_has("posts", lambda q: q.where_like("title", pattern))
                .order_by("id")
            )

        def by_points(pattern: str) -> Any:
            return (
                CountedUser.query()
                .where_has("posts_by_points", lambda q: q.where_like("title", pattern))
                .order_by("id")
            )

        def equal(title: str) -> Any:
            return (
                CountedUser.query()
                .where_has("posts", lambda q: q.where("title", title))
                .order_by("id")
            )

        def without(pattern: str) -> Any:
            return (
                CountedUser.query()
                .where_doesnt_have("posts", lambda q: q.where_like("title", pattern))
                .order_by("id")
            )

        def plain_has() -> Any:
            return CountedUser.query().has("posts").order_by("id")

        like_a = self.having(users, posts, lambda u, p: p.user_id == u.id and p.title[0] == "a")
        like_c_points = self.having(
            users, posts, lambda u, p: p.user_id == u.points and p.title[0] == "c"
        )
        equal_b3 = self.having(users, posts, lambda u, p: p.user_id == u.id and p.title == "b3")
        not_b = [
            u.id
            for u in users
            if u.id
            not in self.having(users, posts, lambda u, p: p.user_id == u.id and p.title[0] == "b")
        ]
        any_post = self.having(users, posts, lambda u, p: p.user_id == u.id)
        pairs = [
            (lambda: by_id("a%"), lambda: by_points("c%"), like_a, like_c_points),
            (lambda: by_id("a%"), lambda: equal("b3"), like_a, equal_b3),
            (lambda: by_id("a%"), lambda: without("b%"), like_a, not_b),
            (plain_has, lambda: by_id("a%"), any_post, like_a),
        ]
        for first, second, rows_first, rows_second in pairs:
            # Each order: the shape seen first must not hand its SQL to the other.
            a, b, sqls = await run_both(first, second)
            assert (a, b) == (rows_first, rows_second)
            assert sqls[0] == sqls[1] and sqls[2] == sqls[3] and sqls[0] != sqls[2]
            b, a, sqls = await run_both(second, first)
            assert (a, b) == (rows_first, rows_second)
            assert sqls[0] != sqls[2]
        assert like_a and like_c_points and equal_b3 and not_b and any_post

    async def test_same_shape_other_values_one_statement(
        self, users: list[User], posts: list[Post]
    ) -> None:
        before = shapes_kept()
        with count_queries() as q:
            for letter in "abcab":
                rows = await ids(
                    CountedUser.query()
                    .where("points", ">=", 0)
                    .where_has("posts", lambda q, x=letter: q.where_like("title", f"{x}%"))
                    .order_by("id")
                )
                assert rows == self.having(
                    users,
                    posts,
                    lambda u, p, x=letter: (
                        u.points is not None and p.user_id == u.id and p.title[0] == x
                    ),
                )
        assert q.count == 5 and len(set(q.sqls)) == 1
        assert [b[-1] for b in q.bindings] == ["a%", "b%", "c%", "a%", "b%"]
        if lean():
            assert shapes_kept() == before + 1
            statements = connection_of(db.connection()).statements
            assert all(e.extra["slots"] is not None for e in statements._shapes.values())

    async def test_or_and_negated_forms(self, users: list[User], posts: list[Post]) -> None:
        a_ids = self.having(users, posts, lambda u, p: p.user_id == u.id and p.title[0] == "a")
        has_any = self.having(users, posts, lambda u, p: p.user_id == u.id)
        for _ in range(2):
            either = await ids(
                CountedUser.query()
                .where("points", 0)
                .or_where_has("posts", lambda q: q.where_like("title", "a%"))
                .order_by("id")
            )
            assert either == [u.id for u in users if u.points == 0 or u.id in a_ids]
            neither = await ids(
                CountedUser.query().where("points", 0).or_doesnt_have("posts").order_by("id")
            )
            assert neither == [u.id for u in users if u.points == 0 or u.id not in has_any]

    async def test_what_is_not_shaped_still_answers(
        self, users: list[User], posts: list[Post]
    ) -> None:
        before = shapes_kept()
        first_titles = {u.id: sorted(p.title for p in posts if p.user_id == u.id) for u in users}
        with_a = [u for u, t in first_titles.items() if any(x.startswith("a") for x in t)]
        queries = {
            # An IN list, a callback's own select, order and limit, a pivot join.
            "in": CountedUser.query().where_has("posts", lambda q: q.where_in("title", ["a0"])),
            "select": CountedUser.query().where_has(
                "posts", lambda q: q.select("id").where_like("title", "a%")
            ),
            "limit": CountedUser.query().where_has(
                "posts", lambda q: q.where_like("title", "a%").order_by("id").limit(5)
            ),
            "pivot": CountedUser.query().where_has("skills"),
            "count": CountedUser.query().has("posts", ">=", 2),
        }
        got = {k: await ids(v.order_by("id")) for k, v in queries.items()}
        assert got == {
            "in": [users[0].id],
            "select": with_a,
            "limit": with_a,
            "pivot": [],
            "count": [u for u, t in first_titles.items() if len(t) >= 2],
        }
        if lean():
            assert shapes_kept() == before

    async def test_same_sql_and_rows_in_a_transaction(
        self, users: list[User], posts: list[Post]
    ) -> None:
        def query(client: Any = None) -> Any:
            return (
                CountedUser.query(client=client)
                .where_has("posts", lambda q: q.where_like("title", "b%"))
                .order_by("id")
            )

        with count_queries() as q:
            lean_rows = await ids(query())
            async with db.transaction() as trx:
                built = await ids(query(trx))
        assert lean_rows == built == [users[0].id, users[1].id]
        selects = [s for s in q.sqls if s.lstrip().upper().startswith("SELECT")]
        assert selects[0] == selects[1]

    async def test_scopes_soft_deletes_and_a_nested_where_has(self, scoped: Database) -> None:
        rows = await seed()
        ada, bob = rows["ada"].id, rows["bob"].id
        await rows["c3"].delete()  # p2's only comment, soft-deleted
        before = shapes_kept()

        def with_comment(body: str) -> Any:
            return (
                Author.query()
                .where_has(
                    "posts", lambda q: q.where_has("comments", lambda c: c.where("body", body))
                )
                .order_by("id")
            )

        for _ in range(2):
            current_tenant.set(None)
            assert await ids(with_comment("c1")) == [ada]
            assert await ids(with_comment("c3")) == []  # soft-deleted
            assert await ids(with_comment("c4")) == [bob]
            # The tenant scope of the related posts (and the authors') read at each query.
            current_tenant.set(2)
            assert await ids(with_comment("c4")) == [bob]
            assert await ids(with_comment("c1")) == []
            current_tenant.set(None)
            await rows["p3"].delete()
            assert await ids(with_comment("c4")) == []
            await ScopedPost.query().with_trashed().where("id", rows["p3"].id).restore()
            assert await ids(Author.query().has("posts").order_by("id")) == [ada, bob]
        if lean():
            # With and without a tenant (the outer and both inner queries' scope conditions
            # differ), and has(): three shapes, each run with its values.
            assert shapes_kept() == before + 3
            statements = connection_of(db.connection()).statements
            assert all(e.extra["slots"] is not None for e in statements._shapes.values())
