"""Shards (SPEC §10, issue 17 item 5): named connections as shards, ``db.using(name)`` scopes,
a model's ``shard_for`` resolver, instances bound to their shard, no cross-shard transactions
and ``db.each_shard(names, callback)``.

Every test runs on a default connection ``"main"`` (the dialect's test database) and shards of
the same dialect holding different rows: three SQLite files, two PostgreSQL databases, two
MariaDB databases (created from the test database's URL, so CI's own URLs work). Where a
statement ran shows in what each database holds.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from lucid_orm import BaseModel, LucidError, belongs_to, column, db, has_many
from lucid_orm.database import Database
from lucid_orm.relations import BelongsTo, HasMany
from tests import models
from tests.helpers import MYSQL_URL, PG_URL, DialectConfig, count_queries
from tests.schema import ck_accounts, metadata, posts, tags, users

# The shard connections of the running test (set by the ``shards`` fixture); the resolvers
# below read it, as an application's would read its configuration.
ROUTES: list[str] = []
# Keys from here on are not routed (the resolver answers None).
UNROUTED = 1000


def _route(key: int) -> str | None:
    return None if key >= UNROUTED else ROUTES[key % len(ROUTES)]


class User(models.BaseUser):
    """Sharded by primary key."""

    shard_for = staticmethod(_route)
    posts: HasMany[Post] = has_many(lambda: Post)


class Post(models.Post):
    """Sharded by its user: a user's posts live on the user's shard."""

    shard_for = staticmethod(_route)
    shard_key = "user_id"
    author: BelongsTo[User] = belongs_to(lambda: User, foreign_key="user_id")


class Tag(models.Tag):
    """Not sharded: goes where the scope says."""


class Account(BaseModel):
    """A composite key ``(tenant_id, id)`` sharded by its first component, the tenant."""

    table = "ck_accounts"
    primary_key = ("tenant_id", "id")
    shard_for = staticmethod(_route)
    tenant_id: int = column()
    id: int = column()
    name: str | None = column()


class Directory(models.Tag):
    """Pinned to the main connection by its ``connection`` class option."""

    table = "tags"
    connection = "main"


_TABLES = [users, posts, tags, ck_accounts]


def _server_url(base: str, suffix: str) -> str:
    url = make_url(base)
    return url.set(database=f"{url.database}_{suffix}").render_as_string(hide_password=False)


@pytest.fixture(scope="module")
async def shard_urls(
    dialect: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[list[str]]:
    """The shards' URLs: three SQLite files, or two databases next to the test database
    (named after it, so per xdist worker), created here and dropped at the end."""
    if dialect == "sqlite":
        folder = tmp_path_factory.mktemp("shards")
        yield [f"sqlite:///{folder / f'shard_{i}.sqlite3'}" for i in (1, 2, 3)]
        return
    base = PG_URL if dialect == "postgresql" else MYSQL_URL
    urls = [_server_url(base, f"shard{i}") for i in (1, 2)]
    admin = Database()
    admin.configure(url=base)
    names = [make_url(u).database for u in urls]
    try:
        for name in names:
            await admin.raw_query("DROP DATABASE IF EXISTS ??", [name])
            await admin.raw_query("CREATE DATABASE ??", [name])
        yield urls
    finally:
        for name in names:
            drop = "DROP DATABASE IF EXISTS ??"
            if dialect == "postgresql":
                drop += " WITH (FORCE)"
            await admin.raw_query(drop, [name])
        await admin.close()


@pytest.fixture
async def shards(
    database: Database, dialect_config: DialectConfig, shard_urls: list[str]
) -> AsyncIterator[list[str]]:
    """``db`` with ``"main"`` (the test database, the default) and ``"shard_1"``… (users,
    posts and tags created empty on each); yields the shard names."""
    names = [f"shard_{i}" for i in range(1, len(shard_urls) + 1)]
    await db.close()
    db.configure(
        connection="main",
        connections={
            "main": {"url": dialect_config.url},
            **{name: {"url": url} for name, url in zip(names, shard_urls, strict=True)},
        },
    )
    for name in names:
        async with db.engine(name).begin() as conn:
            await conn.run_sync(lambda c: metadata.drop_all(c, tables=_TABLES))
            await conn.run_sync(lambda c: metadata.create_all(c, tables=_TABLES))
    ROUTES[:] = names
    try:
        yield names
    finally:
        ROUTES.clear()
        await db.close()
        dialect_config.configure()


async def _names(table: str, connection: str, column: str = "username") -> list[str]:
    rows = await db.from_(table, connection=connection).select(column).order_by("id")
    return [r[column] for r in rows]


async def _everywhere(table: str, shards: list[str], column: str = "username") -> dict[str, Any]:
    return {name: await _names(table, name, column) for name in ["main", *shards]}


def _empty(shards: list[str], **where: list[str]) -> dict[str, list[str]]:
    return {name: where.get(name, []) for name in ["main", *shards]}


class TestUsing:
    async def test_queries_that_name_no_connection_run_on_the_scope(
        self, shards: list[str]
    ) -> None:
        s1, s2 = shards[:2]
        async with db.using(s2) as name:
            assert name == s2
            await Tag.create({"name": "model"})
            await db.table("tags").insert({"name": "builder"})
            await db.raw_query("insert into tags (name) values (?)", ["raw"])
            async with db.transaction() as trx:
                assert trx.connection_name == s2
                await trx.table("tags").insert({"name": "transaction"})
            assert [t.name for t in await Tag.query().order_by("id")] == [
                "model",
                "builder",
                "raw",
                "transaction",
            ]
            assert await db.from_("tags").count_rows() == 4
            assert await db.query().from_("tags").count_rows() == 4
        # Outside the scope: the default connection again.
        await Tag.create({"name": "after"})
        assert await _everywhere("tags", shards, "name") == _empty(
            shards, main=["after"], **{s2: ["model", "builder", "raw", "transaction"]}
        )
        assert s1 in shards

    async def test_scopes_nest_and_restore_with_sync_with_too(self, shards: list[str]) -> None:
        s1, s2 = shards[:2]
        with db.using(s1):
            await Tag.create({"name": "outer"})
            with db.using(s2):
                await Tag.create({"name": "inner"})
            await Tag.create({"name": "outer again"})
        await Tag.create({"name": "default"})
        assert await _everywhere("tags", shards, "name") == _empty(
            shards, main=["default"], **{s1: ["outer", "outer again"], s2: ["inner"]}
        )

    async def test_scopes_are_per_task_and_inherited_by_new_tasks(self, shards: list[str]) -> None:
        s1, s2 = shards[:2]
        both_in = asyncio.Barrier(2)

        async def write(shard: str) -> None:
            async with db.using(shard):
                await both_in.wait()  # both scopes open at once
                child = asyncio.create_task(Tag.create({"name": f"child in {shard}"}))
                await child
                await Tag.create({"name": f"in {shard}"})

        await asyncio.wait_for(asyncio.gather(write(s1), write(s2)), 30)
        for shard in (s1, s2):
            assert await _names("tags", shard, "name") == [f"child in {shard}", f"in {shard}"]
        assert await _names("tags", "main", "name") == []

    async def test_explicit_connections_and_pinned_models_win_over_the_scope(
        self, shards: list[str]
    ) -> None:
        s1, s2 = shards[:2]
        async with db.using(s2):
            await Tag.create({"name": "explicit"}, connection=s1)
            await db.table("tags", connection=s1).insert({"name": "explicit builder"})
            await Directory.create({"name": "pinned"})
            assert [d.name for d in await Directory.all()] == ["pinned"]
        assert await _everywhere("tags", shards, "name") == _empty(
            shards, main=["pinned"], **{s1: ["explicit", "explicit builder"]}
        )

    async def test_an_unknown_connection_is_refused_before_any_query(
        self, shards: list[str]
    ) -> None:
        with count_queries() as log, pytest.raises(LucidError) as info:
            async with db.using("shard_99"):
                await Tag.create({"name": "never"})
        assert info.value.code == "E_UNMANAGED_DB_CONNECTION"
        assert '"shard_99"' in info.value.message
        assert log.count == 0

    async def test_instances_stay_on_the_connection_they_were_read_from(
        self, shards: list[str]
    ) -> None:
        s1, s2 = shards[:2]
        from_main = await Tag.create({"name": "main row"})
        async with db.using(s2):
            from_shard = await Tag.create({"name": "shard row"})
            # Read (or created) on main before the scope: it stays there.
            from_main.name = "main row, edited in a scope"
            await from_main.save()
        async with db.using(s1):
            from_shard.name = "shard row, edited in another scope"
            await from_shard.save()
            await from_shard.refresh()
        assert await _everywhere("tags", shards, "name") == _empty(
            shards,
            main=["main row, edited in a scope"],
            **{s2: ["shard row, edited in another scope"]},
        )


class TestShardFor:
    async def test_create_and_find_route_by_the_key(
        self, shards: list[str], fast_paths: bool
    ) -> None:
        ids = list(range(1, 2 * len(shards) + 1))
        for key in ids:
            await User.create({"id": key, "username": f"user {key}"})
        for shard in shards:
            expected = [f"user {k}" for k in ids if _route(k) == shard]
            assert await _names("users", shard) == expected
        assert await _names("users", "main") == []
        for key in ids:
            found = await User.find(key)
            assert found is not None and found.username == f"user {key}"
            assert (await User.find_or_fail(key)).id == key
        # Without a key, a query runs on the default connection (main holds no users).
        assert await User.find(UNROUTED + 1) is None
        assert await User.query().count_rows() == 0

    async def test_the_key_beats_the_scope_and_none_falls_back_to_it(
        self, shards: list[str]
    ) -> None:
        s1, s2 = shards[:2]
        key = next(k for k in range(1, 10) if _route(k) == s2)
        async with db.using(s1):
            await User.create({"id": key, "username": "routed"})
            await User.create({"id": UNROUTED, "username": "unrouted"})
            found = await User.find(key)
            assert found is not None and found.username == "routed"
        assert await _names("users", s2) == ["routed"]
        assert await _names("users", s1) == ["unrouted"]

    async def test_a_shard_key_other_than_the_primary_key(self, shards: list[str]) -> None:
        s1, s2 = shards[:2]
        owner = next(k for k in range(1, 10) if _route(k) == s2)
        post = await Post.create({"user_id": owner, "title": "first"})
        made = await Post.create_many(
            [{"user_id": owner, "title": "second"}, {"user_id": owner, "title": "third"}]
        )
        assert await _names("posts", s2, "title") == ["first", "second", "third"]
        found = await Post.find_by({"user_id": owner, "title": "second"})
        assert found is not None and found.id == made[0].id
        assert [p.title for p in await Post.find_many_by("user_id", owner)] == [
            "first",
            "second",
            "third",
        ]
        got = await Post.first_or_create({"user_id": owner, "title": "fourth"})
        updated = await Post.update_or_create({"user_id": owner, "title": "first"}, {"title": "1"})
        assert updated.id == post.id
        fresh = await Post.first_or_new({"user_id": owner, "title": "fifth"})
        await fresh.save()
        assert await _names("posts", s2, "title") == ["1", "second", "third", "fourth", "fifth"]
        assert got.is_persisted
        for other in ["main", s1]:
            assert await _names("posts", other, "title") == []
        # find() by primary key can't route a model sharded by another attribute.
        assert await Post.find(post.id) is None

    async def test_create_many_across_shards_is_refused_before_any_write(
        self, shards: list[str]
    ) -> None:
        s1, s2 = shards[:2]
        a = next(k for k in range(1, 10) if _route(k) == s1)
        b = next(k for k in range(1, 10) if _route(k) == s2)
        with count_queries() as log, pytest.raises(LucidError) as info:
            await User.create_many([{"id": a, "username": "a"}, {"id": b, "username": "b"}])
        assert info.value.code == "E_CROSS_SHARD"
        assert f'"{s1}", "{s2}"' in info.value.message
        assert log.count == 0

    async def test_a_resolver_must_name_a_connection(self, shards: list[str]) -> None:
        class Odd(models.BaseUser):
            shard_for = staticmethod(lambda key: 2)  # type: ignore[assignment]  # (on purpose)

        class Misnamed(models.BaseUser):
            shard_for = staticmethod(_route)
            shard_key = "tenant"

        with count_queries() as log:
            with pytest.raises(LucidError) as info:
                await Odd.find(1)
            assert info.value.code == "E_INVALID_ARGUMENT"
            assert "Odd.shard_for(1) must return a connection name or None, got 2" in str(
                info.value
            )
            with pytest.raises(LucidError) as info:
                await Misnamed.create({"username": "x"})
            assert 'Misnamed.shard_key "tenant" is not a column' in str(info.value)
        assert log.count == 0


class TestBoundInstances:
    async def test_preloads_relation_reads_and_writes_stay_on_the_shard(
        self, shards: list[str], fast_paths: bool
    ) -> None:
        s1, s2 = shards[:2]
        key = next(k for k in range(1, 10) if _route(k) == s2)
        await User.create({"id": key, "username": "owner"})
        await Post.create({"user_id": key, "title": "one"})
        # Another scope open: the instances' shard still wins.
        async with db.using(s1):
            user = await User.find_or_fail(key)
            await user.related("posts").create({"title": "two"})
            await user.load("posts")
            assert [p.title for p in user.posts] == ["one", "two"]
            (loaded,) = await User.query(connection=s2).preload("posts").where("id", key)
            assert [p.title for p in loaded.posts] == ["one", "two"]
            post = loaded.posts[1]
            post.title = "two, edited"
            await post.save()
            await post.load("author")
            assert post.author is not None and post.author.username == "owner"
            assert [p.title for p in await user.related("posts").query()] == [
                "one",
                "two, edited",
            ]
            user.username = "owner, edited"
            await user.save()
        assert await _names("posts", s2, "title") == ["one", "two, edited"]
        assert await _names("users", s2) == ["owner, edited"]
        for other in ["main", s1]:
            assert await _names("posts", other, "title") == []
            assert await _names("users", other) == []

    async def test_rows_read_in_a_scope_stay_bound_after_it(self, shards: list[str]) -> None:
        s2 = shards[1]
        await Tag.create({"name": "there"}, connection=s2)
        async with db.using(s2):
            (tag,) = await Tag.all()
        tag.name = "there, edited"
        await tag.save()
        await tag.delete()
        assert await _names("tags", s2, "name") == []


class TestNoCrossShardTransactions:
    async def test_a_transaction_refuses_an_instance_of_another_shard(
        self, shards: list[str]
    ) -> None:
        s1, s2 = shards[:2]
        key = next(k for k in range(1, 10) if _route(k) == s2)
        other_key = next(k for k in range(1, 10) if _route(k) == s2 and k != key)
        user = await User.create({"id": key, "username": "on shard 2"})
        async with db.transaction(connection=s1) as trx:
            with count_queries() as log:
                attempts: list[Any] = [
                    lambda: user.merge({"username": "moved"}).save(client=trx),
                    lambda: user.delete(client=trx),
                    lambda: user.refresh(client=trx),
                    lambda: user.related("posts").create({"title": "x"}, client=trx),
                    lambda: User.create({"id": other_key, "username": "new"}, client=trx),
                    lambda: User.find(other_key, client=trx),
                    lambda: User.first_or_create({"id": other_key}, client=trx),
                ]
                for attempt in attempts:
                    with pytest.raises(LucidError) as info:
                        await attempt()
                    assert info.value.code == "E_CROSS_SHARD", info.value
                with pytest.raises(LucidError) as info:
                    user.use_transaction(trx)
            assert log.count == 0
        message = str(info.value)
        assert f'in a transaction of connection "{s1}"' in message
        assert f'belongs to connection "{s2}"' in message
        assert "no cross-shard transactions" in message
        assert user.trx is None
        user.username = "on shard 2"  # merge() above changed it in memory only
        assert await _names("users", s2) == ["on shard 2"]
        assert await _names("users", s1) == []
        assert await _names("posts", s1, "title") == []

    async def test_writing_instances_of_two_shards_together_is_refused(
        self, shards: list[str]
    ) -> None:
        s1, s2 = shards[:2]
        a = await User.create({"id": next(k for k in range(1, 10) if _route(k) == s1)})
        b = await User.create({"id": next(k for k in range(1, 10) if _route(k) == s2)})
        a.username, b.username = "a", "b"
        with pytest.raises(LucidError) as info:
            await User.update_many([a, b])
        assert info.value.code == "E_CROSS_SHARD"
        with pytest.raises(LucidError):
            await User.save_many([a, b])
        assert a.is_dirty and b.is_dirty
        assert await _names("users", s1) == [None]
        assert await _names("users", s2) == [None]

    async def test_fetched_instances_of_two_shards_are_refused_together(
        self, shards: list[str]
    ) -> None:
        # Rows as hydrated on each shard (each bound to its connection): update_many checks
        # their connections before it writes, and each shard's batch is written there.
        s1, s2 = shards[:2]
        for name in (s1, s2):
            key = next(k for k in range(1, 10) if _route(k) == name)
            await User.create({"id": key, "username": f"on {name}"})
        (a,) = await User.query(connection=s1)
        (b,) = await User.query(connection=s2)
        a.username, b.username = "a", "b"
        with pytest.raises(LucidError) as info:
            await User.update_many([a, b])
        assert info.value.code == "E_CROSS_SHARD"
        assert [a.dirty, b.dirty] == [{"username": "a"}, {"username": "b"}]
        assert [await _names("users", s1), await _names("users", s2)] == [
            [f"on {s1}"],
            [f"on {s2}"],
        ]
        await User.update_many([a])
        await User.update_many([b])
        assert [await _names("users", s1), await _names("users", s2)] == [["a"], ["b"]]
        assert not a.is_dirty and not b.is_dirty
        assert await _names("users", "main") == []

    async def test_a_transaction_on_the_instance_shard_is_fine(self, shards: list[str]) -> None:
        s2 = shards[1]
        key = next(k for k in range(1, 10) if _route(k) == s2)
        user = await User.create({"id": key, "username": "before"})

        async def edit(trx: Any) -> None:
            user.username = "after"
            await user.save(client=trx)
            await user.related("posts").create({"title": "in the transaction"})

        await db.transaction(edit, connection=s2)
        assert await _names("users", s2) == ["after"]
        assert await _names("posts", s2, "title") == ["in the transaction"]


class TestEachShard:
    async def test_runs_the_callback_on_every_shard_and_returns_the_results(
        self, shards: list[str]
    ) -> None:
        for key in range(1, 2 * len(shards) + 2):
            await User.create({"id": key, "username": f"u{key}"})
        started = asyncio.Barrier(len(shards))

        async def count(shard: str) -> tuple[str, int]:
            await started.wait()  # every callback runs at once (sequential runs would hang)
            trx = await db.transaction()
            try:
                assert trx.connection_name == shard
                n = await User.query(client=trx).count_rows()
            finally:
                await trx.rollback()
            return shard, n

        results = await asyncio.wait_for(db.each_shard(reversed(shards), count), 30)
        assert list(results) == list(reversed(shards))
        for shard in shards:
            expected = sum(1 for k in range(1, 2 * len(shards) + 2) if _route(k) == shard)
            assert results[shard] == (shard, expected)

    async def test_a_failing_shard_raises_once_the_others_finished(self, shards: list[str]) -> None:
        s1 = shards[0]

        async def write(shard: str) -> str:
            await Tag.create({"name": f"from {shard}"})
            if shard == s1:
                raise RuntimeError("broken shard")
            await asyncio.sleep(0)
            await Tag.create({"name": f"again from {shard}"})
            return shard

        with pytest.raises(RuntimeError) as info:
            await db.each_shard(shards, write)
        assert f'each_shard: raised on shard "{s1}" (failed: {s1})' in info.value.__notes__
        assert await _names("tags", s1, "name") == [f"from {s1}"]
        for shard in shards[1:]:
            assert await _names("tags", shard, "name") == [f"from {shard}", f"again from {shard}"]

    async def test_unknown_names_are_refused_before_any_callback(self, shards: list[str]) -> None:
        calls: list[str] = []

        async def record(shard: str) -> None:
            calls.append(shard)

        with pytest.raises(LucidError) as info:
            await db.each_shard([*shards, "shard_99"], record)
        assert info.value.code == "E_UNMANAGED_DB_CONNECTION"
        with pytest.raises(LucidError) as info:
            await db.each_shard(shards[0], record)
        assert info.value.code == "E_INVALID_ARGUMENT"
        assert calls == []


class TestCompositeKeys:
    async def test_a_composite_key_routes_by_its_first_component(self, shards: list[str]) -> None:
        s1, s2 = shards[:2]
        # Tenant 0 lives on shard_1, tenant 1 on shard_2 (_route: key % number of shards).
        a = await Account.create({"tenant_id": 0, "id": 7, "name": "zero"})
        b = await Account.create({"tenant_id": 1, "id": 7, "name": "one"})
        assert await _everywhere("ck_accounts", shards, "name") == _empty(
            shards, **{s1: ["zero"], s2: ["one"]}
        )
        with count_queries() as q:
            found = await Account.find_or_fail((1, 7))
        assert q.count == 1 and found.name == "one"
        found.name = "renamed"
        await found.save()  # stays on its shard
        assert await _names("ck_accounts", s2, "name") == ["renamed"]
        assert (await Account.find_or_fail((0, 7))).name == "zero"
        async with db.transaction(connection=s1) as trx:
            with pytest.raises(LucidError) as exc:
                await Account.find((1, 7), client=trx)
            assert exc.value.code == "E_CROSS_SHARD"
        assert a.tenant_id == 0 and b.tenant_id == 1
