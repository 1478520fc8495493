"""The binding rule (SPEC §10, issue "Trustworthy under failure" item 1): an instance is bound to
the connection it was read or created with and, while it lasts, to its transaction; ``save``,
``delete``, ``refresh``, ``load*``, ``related(...)`` and ``associate`` use that binding unless
``client=`` is given.

Every test runs against two databases of the same dialect — the default connection and
``"other"`` — holding different rows, so where a statement ran shows in what each holds.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from lucid_orm import belongs_to, column, db, has_many
from lucid_orm.database import Database
from lucid_orm.orm.persistence import client_for
from lucid_orm.relations import BelongsTo, HasMany
from tests import models
from tests.helpers import MYSQL_URL, PG_REPLICA_URL, DialectConfig
from tests.schema import metadata, posts, users


class User(models.BaseUser):
    email: str | None = column()
    posts: HasMany[Post] = has_many(lambda: Post)


class Post(models.Post):
    author: BelongsTo[User] = belongs_to(lambda: User, foreign_key="user_id")


def _other_url(dialect: str, tmp: Path) -> str:
    if dialect == "sqlite":
        return f"sqlite:///{tmp / 'other.sqlite3'}"
    if dialect == "postgresql":
        return PG_REPLICA_URL
    url = make_url(MYSQL_URL)
    return url.set(database=f"{url.database}_other").render_as_string(hide_password=False)


@pytest.fixture
async def two(
    database: Database, dialect: str, dialect_config: DialectConfig, tmp_path: Path
) -> AsyncIterator[str]:
    """``db`` configured with the test database as default and a second one as ``"other"``
    (users and posts tables, emptied); yields the default connection's name."""
    other = _other_url(dialect, tmp_path)
    if dialect == "mysql":
        name = make_url(other).database
        await db.raw_query("CREATE DATABASE IF NOT EXISTS ??", [name])
    await db.close()
    db.configure(
        connection=dialect,
        connections={dialect: {"url": dialect_config.url}, "other": {"url": other}},
    )
    async with db.engine("other").begin() as conn:
        await conn.run_sync(lambda c: metadata.drop_all(c, tables=[posts, users]))
        await conn.run_sync(lambda c: metadata.create_all(c, tables=[users, posts]))
    try:
        yield dialect
    finally:
        await db.close()
        dialect_config.configure()


async def _usernames(connection: str) -> list[str]:
    rows = await db.from_("users", connection=connection).select("username").order_by("id")
    return [r["username"] for r in rows]


async def _seed() -> tuple[User, User]:
    """A row with the same key on both databases (so a misdirected write would hit a row),
    with different values."""
    here = await User.create({"id": 424242, "username": "default-1"})
    there = await User.create({"id": 424242, "username": "other-1"}, connection="other")
    return here, there


class TestReadThenWrite:
    async def test_find_on_a_connection_then_save_writes_there(
        self, two: str, fast_paths: bool
    ) -> None:
        _, there = await _seed()
        found = await User.find(there.id, connection="other")
        assert found is not None and found.username == "other-1"
        found.username = "other-1-changed"
        await found.save()
        assert await _usernames("other") == ["other-1-changed"]
        assert await _usernames(two) == ["default-1"]

    async def test_query_on_a_connection_then_save_and_delete_there(
        self, two: str, fast_paths: bool
    ) -> None:
        await _seed()
        found = await User.query(connection="other").first()
        assert found is not None
        found.username = "changed"
        await found.save()
        assert await _usernames("other") == ["changed"]
        await found.delete()
        assert await _usernames("other") == []
        assert await _usernames(two) == ["default-1"]

    async def test_create_on_a_connection_then_save_updates_its_row(self, two: str) -> None:
        user = await User.create({"username": "created"}, connection="other")
        user.username = "updated"
        await user.save()
        assert await _usernames("other") == ["updated"]
        assert await _usernames(two) == []

    async def test_create_many_and_first_or_create_bind_their_instances(self, two: str) -> None:
        made = await User.create_many([{"username": "a"}, {"username": "b"}], connection="other")
        for user in made:
            user.username = f"{user.username}!"
            await user.save()
        got = await User.first_or_create({"username": "c"}, connection="other")
        got.email = "c@example.com"
        await got.save()
        assert await _usernames("other") == ["a!", "b!", "c"]
        assert await _usernames(two) == []

    async def test_first_or_new_binds_the_unsaved_instance(self, two: str) -> None:
        fresh = await User.first_or_new({"username": "new"}, connection="other")
        assert not fresh.is_persisted
        await fresh.save()
        assert await _usernames("other") == ["new"]
        assert await _usernames(two) == []

    async def test_refresh_reads_from_the_bound_connection(
        self, two: str, fast_paths: bool
    ) -> None:
        _, there = await _seed()
        await (
            db.from_("users", connection="other")
            .where("id", there.id)
            .update({"username": "behind-its-back"})
        )
        await there.refresh()
        assert there.username == "behind-its-back"

    async def test_an_explicit_client_wins_over_the_binding(self, two: str) -> None:
        _, there = await _seed()
        there.username = "sent-to-default"
        await there.save(client=db.connection(two))
        assert await _usernames(two) == ["sent-to-default"]
        assert await _usernames("other") == ["other-1"]


class TestRelations:
    async def test_load_related_query_and_preload_use_the_binding(
        self, two: str, fast_paths: bool
    ) -> None:
        here, there = await _seed()
        await Post.create({"user_id": here.id, "title": "default post"})
        await Post.create({"user_id": there.id, "title": "other post"}, connection="other")

        await there.load("posts")
        assert [p.title for p in there.posts] == ["other post"]
        rows = await there.related("posts").query()
        assert [p.title for p in rows] == ["other post"]

        users = await User.query(connection="other").preload("posts")
        (post,) = users[0].posts
        assert post.title == "other post"
        # The preloaded child is bound too: its save goes to "other".
        post.title = "other post, edited"
        await post.save()
        titles = await db.from_("posts", connection="other").select("title")
        assert titles == [{"title": "other post, edited"}]
        assert await db.from_("posts").select("title") == [{"title": "default post"}]

    async def test_relation_writes_and_associate_use_the_binding(self, two: str) -> None:
        _, there = await _seed()
        await there.related("posts").create({"title": "written there"})
        post = await Post.create({"title": "orphan"}, connection="other")
        await post.related("author").associate(there)
        rows = await db.from_("posts", connection="other").select("title", "user_id").order_by("id")
        assert rows == [
            {"title": "written there", "user_id": there.id},
            {"title": "orphan", "user_id": there.id},
        ]
        assert await db.from_("posts").select("title") == []
        await post.related("author").dissociate()
        row = await db.from_("posts", connection="other").where("id", post.id).first()
        assert row is not None and row["user_id"] is None


class TestTransactions:
    async def test_an_instance_uses_its_transaction_while_it_lasts(self, two: str) -> None:
        async with db.transaction(connection="other") as trx:
            user = await User.create({"username": "in-trx"}, client=trx)
            assert user.trx is trx
            assert client_for(user) is trx
        # Committed: the transaction is over, the connection binding stays.
        assert user.trx is None
        assert client_for(user).connection_name == "other"
        user.username = "after-commit"
        await user.save()
        assert await _usernames("other") == ["after-commit"]
        assert await _usernames(two) == []

    async def test_a_savepoint_hands_its_instances_to_the_outer_transaction(self, two: str) -> None:
        async with db.transaction() as trx:
            async with trx.transaction() as savepoint:
                user = await User.create({"username": "nested"}, client=savepoint)
                assert user.trx is savepoint
            assert user.trx is trx
            user.username = "nested, then outer"
            await user.save()
            rows = await trx.from_("users").select("username")
            assert rows == [{"username": "nested, then outer"}]
        assert user.trx is None
        assert await _usernames(two) == ["nested, then outer"]
