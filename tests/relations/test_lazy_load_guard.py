"""The N+1 guard (opt-in): ``load()``/``load_count()``/``related(...).query()`` run for a
second instance of one result set warns or raises, naming the ``preload()`` to use."""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Iterator

import pytest

from lucid_orm import (
    LazyLoadError,
    LazyLoadWarning,
    LucidError,
    belongs_to,
    db,
    has_many,
)
from lucid_orm.database import Database
from lucid_orm.relations import BelongsTo, HasMany
from tests import models
from tests.helpers import DialectConfig, count_queries


class Comment(models.Comment):
    pass


class Post(models.Post):
    comments: HasMany[Comment] = has_many(lambda: Comment)
    author: BelongsTo[User] = belongs_to(lambda: User)


class User(models.BaseUser):
    posts: HasMany[Post] = has_many(lambda: Post)


@pytest.fixture(autouse=True)
def _no_stray_warnings() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("error", LazyLoadWarning)
        yield


async def seed() -> list[User]:
    users = await User.create_many([{"username": "virk"}, {"username": "nikk"}])
    posts = await Post.create_many(
        [
            {"user_id": users[0].id, "title": "Adonis 101"},
            {"user_id": users[0].id, "title": "Lucid 101"},
            {"user_id": users[1].id, "title": "Edge"},
        ]
    )
    await Comment.create_many([{"post_id": p.id, "body": "nice"} for p in posts])
    return users


def message(relation: str, model: str, size: int, how: str) -> str:
    return (
        f'N+1 query: {how} "{relation}" of one {model} at a time, for {size} {model} rows read '
        f'by one query; use preload("{relation}") on that query (or with_count("{relation}") '
        "for counts)"
    )


class TestOff:
    async def test_off_by_default(self, database: Database) -> None:
        await seed()
        assert database.lazy_load_guard_mode is None
        users = await User.query().order_by("id")
        for user in users:  # the N+1 loop, allowed while the guard is off
            await user.load("posts")
            await user.related("posts").query()
        assert [len(u.posts) for u in users] == [2, 1]


class TestRaise:
    async def test_second_load_of_one_result_set_raises_before_its_query(
        self, database: Database
    ) -> None:
        await seed()
        with database.lazy_load_guard("raise"):
            users = await User.query().order_by("id")
            await users[0].load("posts")  # the first one alone is not a pattern yet
            with count_queries() as q, pytest.raises(LazyLoadError) as exc:
                await users[1].load("posts")
        assert q.count == 0
        assert exc.value.code == "E_LAZY_LOAD"
        assert str(exc.value) == message("posts", "User", 2, "load()")
        assert "posts" not in users[1].__dict__
        # The same instance may load again (a refresh), and other relations are counted apart.
        with database.lazy_load_guard("raise"):
            await users[0].load("posts")

    async def test_related_query_and_counts(self, database: Database) -> None:
        await seed()
        with database.lazy_load_guard("raise"):
            users = await User.query().order_by("id")
            assert len(await users[0].related("posts").query()) == 2
            with pytest.raises(LazyLoadError) as exc:
                users[1].related("posts").query()
            assert str(exc.value) == message("posts", "User", 2, "related(...).query() for")
            # Writes through the relation are not lazy loads.
            created = await users[1].related("posts").create({"title": "Fresh"})
            assert created.user_id == users[1].id

            again = await User.query().order_by("id")
            await again[0].load_count("posts")
            with pytest.raises(LazyLoadError) as exc:
                await again[1].load_count("posts")
            assert str(exc.value) == message("posts", "User", 2, "load_count()/load_aggregate()")

    async def test_preloaded_rows_are_one_result_set(self, database: Database) -> None:
        await seed()
        with database.lazy_load_guard("raise"):
            users = await User.query().preload("posts").order_by("id")
            posts = [p for u in users for p in u.posts]
            await posts[0].load("comments")
            with pytest.raises(LazyLoadError) as exc:
                await posts[2].load(lambda loader: loader.load("author").load("comments"))
            assert str(exc.value) == message("comments", "Post", 3, "load()")
            # The fix the message names: one query for all.
            with count_queries() as q:
                preloaded = await User.query().preload("posts", lambda p: p.preload("comments"))
            assert q.count == 3
            assert sum(len(p.comments) for u in preloaded for p in u.posts) == 3

    async def test_single_rows_and_separate_queries_are_fine(self, database: Database) -> None:
        users = await seed()
        with database.lazy_load_guard("raise"):
            for user in users:
                found = await User.find_or_fail(user.id)  # one row: not a result set to flag
                await found.load("posts")
            first = await User.query().where("id", users[0].id)
            second = await User.query().where("id", users[1].id)
            await first[0].load("posts")
            await second[0].load("posts")
            assert [len(first[0].posts), len(second[0].posts)] == [2, 1]


class TestWarn:
    async def test_configured_warn_once_per_relation(
        self, database: Database, dialect_config: DialectConfig
    ) -> None:
        await seed()
        db.configure(
            connection=dialect_config.name,
            connections=dialect_config.connections,
            lazy_load_guard="warn",
        )
        assert db.lazy_load_guard_mode == "warn"
        users = await User.query().order_by("id")
        await users[0].load("posts")
        with pytest.warns(LazyLoadWarning) as caught:
            await users[1].load("posts")
        assert [str(w.message) for w in caught] == [message("posts", "User", 2, "load()")]
        assert caught[0].filename == __file__  # points at the caller's line
        assert len(users[1].posts) == 1  # a warning: the load still ran
        await users[1].load("posts")  # once per relation and result set
        # A block turns it off (or up) for the code inside it only.
        again = await User.query().order_by("id")
        with db.lazy_load_guard(None):
            for user in again:
                await user.load("posts")
        third = await User.query().order_by("id")
        with db.lazy_load_guard("raise"):
            await third[1].load("posts")
            with pytest.raises(LazyLoadError):
                await third[0].load("posts")


class TestScope:
    async def test_a_block_is_per_task(self, database: Database) -> None:
        await seed()
        users = await User.query().order_by("id")
        await users[0].load("posts")
        entered = asyncio.Event()
        release = asyncio.Event()

        async def guarded() -> None:
            with database.lazy_load_guard("raise"):
                entered.set()
                await release.wait()

        task = asyncio.create_task(guarded())
        await entered.wait()
        # Outside the block's task, the guard is off; and the rows were read while it was
        # off, so they carry no result set either.
        await users[1].load("posts")
        release.set()
        await task
        assert database.lazy_load_guard_mode is None

    async def test_bad_mode_is_refused(self, database: Database) -> None:
        with pytest.raises(LucidError) as exc, database.lazy_load_guard("loud"):  # type: ignore[arg-type]
            pass
        assert exc.value.code == "E_INVALID_ARGUMENT"
        assert str(exc.value) == 'lazy_load_guard must be "warn", "raise" or None, got \'loud\''
        with pytest.raises(LucidError) as exc:
            db.configure("sqlite+aiosqlite:///:memory:", lazy_load_guard="on")  # type: ignore[arg-type]
        assert exc.value.code == "E_INVALID_ARGUMENT"
