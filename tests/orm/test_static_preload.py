"""Preloads through a statement compiled once per relation (``preloader._static_start``):
the cached statement runs for a preload without callback (one statement, the same SQL and
rows as the query builder's), and every condition that needs the query builder takes it — a
callback, a related model's global scope (which reads its context at call time), a
transaction, the lean path switched off. Nested paths alone keep the cached statement; on
MySQL, keys bound one parameter each go to a statement per few sizes of key lists."""

from __future__ import annotations

from typing import Any

import pytest

from lucid_orm import BaseModel, belongs_to, column, db, has_many, has_one, many_to_many
from lucid_orm.database import Database
from lucid_orm.orm import hydration
from lucid_orm.relations import BelongsTo, HasMany, HasOne, ManyToMany
from tests import models
from tests.helpers import count_queries
from tests.models import Skill
from tests.scoped_models import Author, current_tenant, scoped, scoped_tables, seed
from tests.scoped_models import Post as ScopedPost

__all__ = ["scoped", "scoped_tables"]


class Post(models.Post):
    user: BelongsTo[User] = belongs_to(lambda: User)


class User(models.BaseUser):
    posts: HasMany[Post] = has_many(lambda: Post)
    first_post: HasOne[Post] = has_one(lambda: Post)
    skills: ManyToMany[Skill] = many_to_many(lambda: Skill)


def preload_keys() -> list[Any]:
    """The preload statements kept on the default connection."""
    statements = db.connection()._connection.static_statements
    return [k for k in statements if isinstance(k, tuple) and k[1:2] == ("preload",)]


@pytest.fixture(autouse=True)
def no_preload_statements() -> None:
    """Each test starts without kept preload statements (the connection outlives tests)."""
    statements = db.connection()._connection.static_statements
    for key in preload_keys():
        del statements[key]


def cached(relation: Any) -> bool:
    return any(k[0] is relation for k in preload_keys())


async def seed_users() -> tuple[User, User, User]:
    virk, nikk, romain = await User.create_many(
        [{"username": "virk"}, {"username": "nikk"}, {"username": "romain"}]
    )
    await Post.create_many(
        [
            {"user_id": virk.id, "title": "v1"},
            {"user_id": nikk.id, "title": "n1"},
            {"user_id": virk.id, "title": "v2"},
            {"user_id": None, "title": "orphan"},
        ]
    )
    return virk, nikk, romain


def shape(users: list[User]) -> list[tuple[str | None, list[str | None]]]:
    return [(u.username, sorted(p.title or "" for p in u.posts)) for u in users]


class TestCachedStatement:
    async def test_same_rows_and_sql_as_the_query_builder(self, database: Database) -> None:
        await seed_users()
        with count_queries() as slow:
            # A callback, even a no-op one, takes the query builder.
            expected = await User.query().preload("posts", lambda q: None).order_by("id")
        with count_queries() as fast:
            users = await User.query().preload("posts").order_by("id")
        assert (
            shape(users)
            == shape(expected)
            == [
                ("virk", ["v1", "v2"]),
                ("nikk", ["n1"]),
                ("romain", []),
            ]
        )
        assert fast.count == slow.count == 2
        assert fast.sqls[1] == slow.sqls[1]
        assert fast.events[1].model == slow.events[1].model == "Post"
        assert cached(User.posts) is hydration.FAST_PATHS

    async def test_each_call_binds_its_own_keys(self, database: Database) -> None:
        virk, nikk, _ = await seed_users()
        for user, titles in ((virk, ["v1", "v2"]), (nikk, ["n1"]), (virk, ["v1", "v2"])):
            found = await User.query().where("id", user.id).preload("posts").first()
            assert found is not None
            assert sorted(p.title or "" for p in found.posts) == titles
        posts = await Post.query().preload("user").order_by("id")
        assert [p.user.username if p.user else None for p in posts] == [
            "virk",
            "nikk",
            "virk",
            None,
        ]
        users = await User.query().preload("first_post").order_by("id")
        assert [u.first_post.title if u.first_post else None for u in users] in (
            [t, "n1", None] for t in ("v1", "v2")
        )
        assert (cached(Post.user) and cached(User.first_post)) is hydration.FAST_PATHS

    async def test_one_parent_binds_its_key_as_the_query_builder_does(
        self, database: Database, dialect: str
    ) -> None:
        """One key: the cached statement and the query builder's send the same SQL; on SQLite
        the plain ``IN (?)`` (``Dialect.plain_single_key``), not ``json_each``, which costs a
        virtual table and a list subquery per statement."""
        virk, _, _ = await seed_users()
        with count_queries() as slow:
            expected = await User.query().where("id", virk.id).preload("posts", lambda q: None)
        with count_queries() as fast:
            users = await User.query().where("id", virk.id).preload("posts")
        assert shape(users) == shape(expected) == [("virk", ["v1", "v2"])]
        assert fast.count == slow.count == 2
        assert fast.sqls[1] == slow.sqls[1]
        assert fast.events[1].bindings == slow.events[1].bindings
        if dialect == "sqlite":
            assert "json_each" not in fast.sqls[1]
            assert fast.events[1].bindings == [virk.id]
        with count_queries() as two:
            await User.query().preload("posts").order_by("id")
        assert ("json_each" in two.sqls[1]) == (dialect == "sqlite")

    async def test_many_to_many_with_pivot_columns(self, database: Database) -> None:
        virk, nikk, romain = await seed_users()
        php, go = await Skill.create_many([{"name": "php"}, {"name": "go"}])
        await database.table("skill_user").multi_insert(
            [
                {"user_id": virk.id, "skill_id": php.id},
                {"user_id": virk.id, "skill_id": go.id},
                {"user_id": romain.id, "skill_id": go.id},
            ]
        )

        def skills(users: list[User]) -> list[list[tuple[str | None, Any, Any]]]:
            return [
                sorted(
                    (s.name, s.extras["pivot_user_id"], s.extras["pivot_skill_id"])
                    for s in u.skills
                )
                for u in users
            ]

        with count_queries() as slow:
            expected = await User.query().preload("skills", lambda q: None).order_by("id")
        with count_queries() as fast:
            users = await User.query().preload("skills").order_by("id")
        assert (
            skills(users)
            == skills(expected)
            == [
                [("go", virk.id, go.id), ("php", virk.id, php.id)],
                [],
                [("go", romain.id, go.id)],
            ]
        )
        assert fast.sqls[1] == slow.sqls[1]
        assert cached(User.skills) is hydration.FAST_PATHS
        assert nikk.id not in {s.extras["pivot_user_id"] for u in users for s in u.skills}

    async def test_parents_without_keys_run_no_statement(self, database: Database) -> None:
        await Post.create({"user_id": None, "title": "orphan"})
        with count_queries() as q:
            posts = await Post.query().preload("user")
        assert q.count == 1 and posts[0].user is None

    async def test_the_kept_record_is_per_booted_relation(self, database: Database) -> None:
        """What a relation's static preload keeps (``Relation._static``) is read from its
        booted keys: a relation cloned for a subclass, which boots again, starts without it."""
        virk, _, _ = await seed_users()
        found = await User.query().where("id", virk.id).preload("posts").first()
        assert found is not None and sorted(p.title or "" for p in found.posts) == ["v1", "v2"]
        kept = User.posts._static
        assert (kept is not None and kept.info is User.posts.related_model()._lucid) is (
            hydration.FAST_PATHS
        )

        class Member(User):
            table = "users"

        clone = Member.get_relation("posts")
        assert clone is not User.posts and clone._static is None
        assert User.posts._static is kept


class OwnedPost(BaseModel):
    table = "posts"
    # The foreign key under another attribute name, and an attribute named as the foreign
    # key's column but mapped to another: grouping reads the column hydration gave "owner".
    user_id: int = column(column_name="id", is_primary=True)
    owner: int | None = column(column_name="user_id")
    title: str | None = column()


class Owner(models.BaseUser):
    posts: HasMany[OwnedPost] = has_many(lambda: OwnedPost, foreign_key="owner")


def _twice(value: Any, _attribute: str, _model: Any) -> Any:
    return None if value is None else value * 2


class DoubledPost(BaseModel):
    table = "posts"
    id: int = column(is_primary=True)
    title: str | None = column()
    # A consume function: the instance holds another value than the row, so the rows are
    # grouped by what the instances hold (no parent matches the doubled keys but one).
    user_id: int | None = column(consume=_twice)


class Doubler(models.BaseUser):
    posts: HasMany[DoubledPost] = has_many(lambda: DoubledPost, foreign_key="user_id")


class TestGrouping:
    async def test_renamed_foreign_key(self, database: Database) -> None:
        await seed_users()
        owners = await Owner.query().preload("posts").order_by("id")
        assert [(o.username, sorted(p.title or "" for p in o.posts)) for o in owners] == [
            ("virk", ["v1", "v2"]),
            ("nikk", ["n1"]),
            ("romain", []),
        ]
        assert all(p.owner == o.id for o in owners for p in o.posts)

    async def test_consumed_foreign_key_groups_by_the_instance_value(
        self, database: Database
    ) -> None:
        virk, _, _ = await seed_users()
        slow = await Doubler.query().preload("posts", lambda q: None).order_by("id")
        fast = await Doubler.query().preload("posts").order_by("id")
        got = [(d.id, sorted(p.title or "" for p in d.posts)) for d in fast]
        assert got == [(d.id, sorted(p.title or "" for p in d.posts)) for d in slow]
        # The instances hold twice the row's key: virk's posts go to the parent whose id is
        # twice virk's, if any (grouping by the rows' values would have given them to virk).
        by_id = dict(got)
        assert by_id[virk.id] == []
        assert by_id.get(2 * virk.id, ["v1", "v2"]) == ["v1", "v2"]


class TestNestedPaths:
    """A preload whose only callbacks are its nested paths (``preload("posts.user")``) takes
    the cached statement too, its nested relations loaded onto the rows as the query builder's
    path loads them."""

    async def test_same_rows_and_sql_as_the_query_builder(self, database: Database) -> None:
        await seed_users()

        def titles_and_authors(users: list[User]) -> list[list[tuple[Any, Any]]]:
            return [
                sorted((p.title, p.user.username if p.user else None) for p in u.posts)
                for u in users
            ]

        with count_queries() as slow:
            expected = (
                await User.query()
                .preload("posts", lambda q: q.preload("user"))
                .sideload({"tenant": 7})
                .order_by("id")
            )
        with count_queries() as fast:
            users = await User.query().preload("posts.user").sideload({"tenant": 7}).order_by("id")
        assert (
            titles_and_authors(users)
            == titles_and_authors(expected)
            == [[("v1", "virk"), ("v2", "virk")], [("n1", "nikk")], []]
        )
        assert fast.count == slow.count == 3
        assert fast.sqls[1:] == slow.sqls[1:]
        for found in (users, expected):
            posts = [p for u in found for p in u.posts]
            assert all(p.sideloaded == {"tenant": 7} for p in posts)
            assert all(p.user is not None and p.user.sideloaded == {"tenant": 7} for p in posts)
        assert (cached(User.posts) and cached(Post.user)) is hydration.FAST_PATHS

    async def test_a_callback_beside_the_path_takes_the_query_builder(
        self, database: Database
    ) -> None:
        await seed_users()
        users = (
            await User.query()
            .preload("posts.user")
            .preload("posts", lambda q: q.where("title", "v2"))
            .order_by("id")
        )
        assert [[(p.title, p.user.username) for p in u.posts] for u in users] == [
            [("v2", "virk")],
            [],
            [],
        ]
        assert not cached(User.posts)
        # The nested level has no callback of its own: its statement is the cached one.
        assert cached(Post.user) is hydration.FAST_PATHS

    async def test_no_rows_no_nested_statement(self, database: Database) -> None:
        await User.create({"username": "alone"})
        with count_queries() as q:
            users = await User.query().preload("posts.user")
        assert q.count == 2 and users[0].posts == []


def test_plain_key_slots() -> None:
    """Keys bound one parameter each go to a statement of ``plain_key_slots`` parameters:
    the count itself up to ``STATIC_PLAIN_KEYS``, then at most an eighth more, never more
    than the preload chunk, and a few sizes only."""
    from lucid_orm.orm.preloader import STATIC_PLAIN_KEYS, plain_key_slots
    from lucid_orm.orm.relations.base import PRELOAD_CHUNK

    assert [plain_key_slots(n) for n in (1, 32, 33, 40, 41, 1000, 10_000)] == [
        1,
        32,
        36,
        40,
        44,
        1024,
        10_240,
    ]
    slots = [plain_key_slots(n) for n in range(1, PRELOAD_CHUNK + 1)]
    assert all(s >= n for n, s in enumerate(slots, 1))
    assert all(s <= n + n // 8 for n, s in enumerate(slots, 1) if n > STATIC_PLAIN_KEYS)
    assert max(slots) == PRELOAD_CHUNK
    assert slots == sorted(slots)
    assert len(set(slots)) < STATIC_PLAIN_KEYS + 100


def test_spread_keys_is_the_compiled_statement() -> None:
    """The statement of n keys made from the two-key one is the one SQLAlchemy compiles for n
    keys (MySQL's and SQLite's markers); other statements are left to the compiler."""
    from sqlalchemy import Column, Integer, MetaData, String, Table, bindparam, select
    from sqlalchemy.dialects import mysql, sqlite

    from lucid_orm.database.executor import compile_static
    from lucid_orm.orm.preloader import spread_keys

    table = Table("sk", MetaData(), Column("id", Integer), Column("name", String(20)))

    def keys_in(count: int) -> Any:
        marks = [bindparam(f"lucid_key_{i}", type_=table.c.id.type) for i in range(count)]
        return select(table).where(table.c.id.in_(marks))

    for dialect in (mysql.asyncmy.dialect(), sqlite.aiosqlite.dialect()):
        two = compile_static(keys_in(2), dialect)
        for count in (3, 40, 1024):
            spread = spread_keys(two, count)
            full = compile_static(keys_in(count), dialect)
            assert spread is not None
            assert (spread.sql, spread.positiontup) == (full.sql, ["lucid_key_0"] * count)
            assert spread.keys == full.keys
        ordered = compile_static(keys_in(2).order_by(table.c.id), dialect)
        assert spread_keys(ordered, 40) is None
        other = compile_static(keys_in(2).where(table.c.name == "x"), dialect)
        assert spread_keys(other, 40) is None


class TestFallbacks:
    async def test_callback_takes_the_query_builder(self, database: Database) -> None:
        await seed_users()
        users = await User.query().preload("posts", lambda q: q.where("title", "v2"))
        assert sorted(shape(users)) == [("nikk", []), ("romain", []), ("virk", ["v2"])]
        assert not cached(User.posts)

    async def test_transaction_takes_the_query_builder(self, database: Database) -> None:
        await seed_users()
        async with db.transaction() as trx:
            users = await User.query(client=trx).preload("posts").order_by("id")
            assert users[0].posts[0].trx is trx
        assert shape(users)[0] == ("virk", ["v1", "v2"])
        assert not cached(User.posts)

    async def test_many_plain_keys(self, database: Database, dialect: str) -> None:
        names = [f"u{i}" for i in range(41)]
        users = await User.create_many([{"username": n} for n in names])
        await Post.create_many([{"user_id": u.id, "title": u.username} for u in users[1:]])
        with count_queries() as q:
            loaded = await User.query().preload("posts").order_by("id")
        assert [[p.title for p in u.posts] for u in loaded] == [[], *[[n] for n in names[1:]]]
        assert q.count == 2
        assert cached(User.posts) is hydration.FAST_PATHS
        if hydration.FAST_PATHS and dialect == "mysql":
            # 41 keys bound one each go to the statement of 44 slots, the last key repeated.
            keys = [u.id for u in users]
            assert q.events[1].bindings == [*keys, keys[-1], keys[-1], keys[-1]]
            assert q.sqls[1].count("%s") == 44
            # Made from the two-key statement (``spread_keys``), kept beside it.
            assert sorted(k[2] for k in preload_keys()) == [2, 44]

    async def test_many_plain_keys_without_a_spread_statement(
        self, database: Database, dialect: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Past 32 keys bound one each, a two-key statement that can't be spread takes the
        query builder: no statement of thousands of parameters is compiled and kept."""
        from lucid_orm.orm import preloader

        monkeypatch.setattr(preloader, "spread_keys", lambda template, count: None)
        users = await User.create_many([{"username": f"u{i}"} for i in range(41)])
        await Post.create_many([{"user_id": u.id, "title": u.username} for u in users])
        with count_queries() as q:
            loaded = await User.query().preload("posts").order_by("id")
        assert [[p.title for p in u.posts] for u in loaded] == [[u.username] for u in users]
        assert q.count == 2
        forms = [k[2] for k in preload_keys()]
        if dialect == "mysql":
            assert 44 not in forms and q.events[1].bindings == [u.id for u in users]
        else:
            assert forms == (["one"] if hydration.FAST_PATHS else [])

    async def test_global_scope_is_read_at_each_preload(self, scoped: Database) -> None:
        rows = await seed()
        query = ScopedPost.query().without_global_scopes().preload("author").order_by("title")

        async def authors() -> list[str | None]:
            return [p.author.name if p.author else None for p in await query.clone()]

        current_tenant.set(1)
        assert await authors() == ["ada", "ada", None]
        current_tenant.set(2)
        assert await authors() == [None, None, "bob"]
        current_tenant.set(None)
        assert await authors() == ["ada", "ada", "bob"]
        assert rows["ada"].name == "ada" and not cached(ScopedPost.author)
        # Soft deletes are a global scope too.
        posts = await Author.query().without_global_scopes().preload("posts").order_by("name")
        await rows["p1"].delete()
        again = await Author.query().without_global_scopes().preload("posts").order_by("name")
        assert [len(a.posts) for a in posts] == [2, 1]
        assert [len(a.posts) for a in again] == [1, 1]
        assert not cached(Author.posts)


def test_the_key_parameter_is_the_one_bind_keys_binds() -> None:
    """``Dialect.key_parameter`` gives the value of the one parameter ``bind_keys`` binds the
    keys as (the preload's static statement takes it in place of the first keys'): the array
    on PostgreSQL, the JSON text of the keys as stored on SQLite (UUIDs as SQLite stores
    them), ``None`` where each key is a parameter (MySQL) or the keys can't travel as JSON."""
    import uuid

    from sqlalchemy import Column, Integer, MetaData, String, Table, Uuid
    from sqlalchemy.dialects import mysql, postgresql, sqlite

    from lucid_orm.database.dialects import dialect_of

    table = Table(
        "kp", MetaData(), Column("i", Integer), Column("s", String(20)), Column("u", Uuid())
    )
    samples = {
        "i": [3, 1, 2],
        "s": ["a", "b"],
        "u": [uuid.UUID(int=1), uuid.UUID(int=2)],
    }
    for sa_dialect in (postgresql.asyncpg.dialect(), sqlite.aiosqlite.dialect()):
        ops = dialect_of(sa_dialect)
        for name, keys in samples.items():
            column = table.c[name]
            value = ops.key_parameter(column, keys, sa_dialect)
            assert value is not None
            compiled = ops.bind_keys(column, keys, sa_dialect, False).compile(dialect=sa_dialect)
            assert list(compiled.params.values()) == [value]
            again = ops.bind_keys(column, keys[:1], sa_dialect, False).compile(dialect=sa_dialect)
            assert str(again) == str(compiled)  # one statement whatever the keys
    lite = sqlite.aiosqlite.dialect()
    assert dialect_of(lite).key_parameter(table.c.i, [2**70], lite) is None
    my = mysql.asyncmy.dialect()
    assert dialect_of(my).key_parameter(table.c.i, [1, 2], my) is None
