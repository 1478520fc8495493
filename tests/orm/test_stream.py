"""Streaming (issue 15, item 8): ``stream(batch_size)`` and ``each_chunk(n)`` on model and
database queries read with a server-side cursor, hydrate and preload batch by batch, hold one
connection for the loop and release it when the loop ends, breaks or raises; memory stays flat
whatever the row count."""

from __future__ import annotations

import asyncio
import copy
import gc
import tracemalloc
from datetime import UTC, datetime
from typing import Any

import pytest

from lucid_orm import (
    BaseModel,
    LazyLoadError,
    LucidError,
    QueryError,
    after,
    column,
    db,
    has_many,
)
from lucid_orm.database import Database
from lucid_orm.orm.state import ROW_ATTRS
from lucid_orm.relations import HasMany
from tests import models
from tests.helpers import count_queries, insert_posts


class Post(models.Post):
    comments: HasMany[models.Comment] = has_many(lambda: models.Comment)


class HookedPost(models.Post):
    table = "posts"
    batches: list[int] = []  # noqa: RUF012 - a class-level log the hook appends to

    @after("fetch")
    @staticmethod
    async def count_batch(rows: list[BaseModel]) -> None:
        HookedPost.batches.append(len(rows))


class Stamped(models.Post):
    table = "posts"
    is_published: bool | None = column()
    created_at: datetime | None = column.date_time()


async def make_posts(n: int) -> None:
    await db.table("posts").multi_insert([{"user_id": 1, "title": f"p{i:03d}"} for i in range(n)])


async def settle() -> None:
    """Let the event loop run the ``aclose()`` it schedules for an async generator the garbage
    collector found unfinished (closing the cursor and the connection takes a few turns of
    the loop and of the driver's thread)."""
    gc.collect()
    for _ in range(200):
        await asyncio.sleep(0.005)
        if not asyncio.all_tasks() - {asyncio.current_task()}:
            return


def checked_out() -> int:
    """Connections the write side's pool has handed out and in use: the lean path's idle ones
    left out (a lean stream takes one of them, and gives it back)."""
    engines = db.get_connection().write_engines()
    return int(engines.engine.pool.checkedout()) - len(engines.idle)


class TestStream:
    async def test_streams_every_row_in_order(self, database: Database) -> None:
        await make_posts(25)
        with count_queries() as q:
            titles = [p.title async for p in Post.query().order_by("id").stream(batch_size=10)]
        assert titles == [f"p{i:03d}" for i in range(25)]
        assert q.count == 1  # one statement, read in batches
        assert "LIMIT" not in q.sqls[0].upper() and "OFFSET" not in q.sqls[0].upper()

    async def test_instances_are_persisted_models(self, database: Database) -> None:
        await make_posts(3)
        posts = [p async for p in Post.query().where("title", "p001").stream()]
        assert len(posts) == 1 and isinstance(posts[0], Post)
        assert posts[0].is_persisted
        posts[0].title = "changed"
        await posts[0].save()
        assert (await Post.find_or_fail(posts[0].id)).title == "changed"

    async def test_each_chunk_yields_lists(self, database: Database) -> None:
        await make_posts(25)
        sizes = [len(chunk) async for chunk in Post.query().each_chunk(10)]
        assert sizes == [10, 10, 5]

    async def test_preload_runs_once_per_batch(self, database: Database) -> None:
        await make_posts(6)
        ids = [p["id"] for p in await db.from_("posts").select("id").order_by("id")]
        await db.table("comments").multi_insert(
            [{"post_id": pid, "body": f"c{pid}"} for pid in ids for _ in range(2)]
        )
        with count_queries() as q:
            chunks = [
                chunk
                async for chunk in Post.query().order_by("id").preload("comments").each_chunk(4)
            ]
        assert [len(c) for c in chunks] == [4, 2]
        assert q.count == 3  # the stream + one preload query per batch
        assert all(len(p.comments) == 2 for chunk in chunks for p in chunk)
        assert all(c.body == f"c{p.id}" for chunk in chunks for p in chunk for c in p.comments)

    async def test_after_fetch_hooks_run_per_batch(self, database: Database) -> None:
        await make_posts(5)
        HookedPost.batches = []
        assert len([p async for p in HookedPost.query().stream(batch_size=2)]) == 5
        assert HookedPost.batches == [2, 2, 1]

    async def test_pojo_streams_dicts(self, database: Database) -> None:
        await make_posts(3)
        rows = [r async for r in Post.query().select("title").order_by("id").pojo().stream()]
        assert rows == [{"title": "p000"}, {"title": "p001"}, {"title": "p002"}]

    async def test_database_builder_streams_dicts(self, database: Database) -> None:
        await make_posts(5)
        chunks = [c async for c in db.from_("posts").select("title").order_by("id").each_chunk(2)]
        assert [[r["title"] for r in c] for c in chunks] == [
            ["p000", "p001"],
            ["p002", "p003"],
            ["p004"],
        ]
        assert len([r async for r in db.from_("posts").stream(batch_size=2)]) == 5

    async def test_invalid_batch_size(self, database: Database) -> None:
        for bad in (0, -1, "10", True):
            with pytest.raises(LucidError) as info:
                [p async for p in Post.query().stream(batch_size=bad)]  # type: ignore[arg-type]
            assert info.value.code == "E_INVALID_ARGUMENT"

    async def test_inside_a_transaction_sees_its_rows(self, database: Database) -> None:
        async with db.transaction() as trx:
            await Post.create({"title": "uncommitted"}, client=trx)
            titles = [p.title async for p in Post.query(client=trx).stream()]
            assert titles == ["uncommitted"]
        assert await Post.query().count_rows() == 1

    async def test_preload_inside_a_transaction(self, database: Database) -> None:
        # The preload queries run on the transaction's connection between batches: the
        # stream must still deliver every row (MySQL drains the open cursor before a preload).
        await make_posts(6)
        ids = [p["id"] for p in await db.from_("posts").select("id").order_by("id")]
        await db.table("comments").multi_insert([{"post_id": i, "body": "x"} for i in ids])
        async with db.transaction() as trx:
            with count_queries() as q:
                sizes = [
                    [len(p.comments) for p in chunk]
                    async for chunk in Post.query(client=trx).preload("comments").each_chunk(2)
                ]
        assert sizes == [[1, 1], [1, 1], [1, 1]]
        assert q.count == 4


class TestStreamedInstances:
    """``stream()`` builds each instance as the loop reaches its row when no hook, preload or
    side-loaded value needs a whole batch (and no transaction or N+1 guard tracks one): the
    instances are those a plain query returns, state included."""

    async def test_the_same_state_as_a_query(self, database: Database, fast_paths: bool) -> None:
        await make_posts(5)
        query = Post.query().select("id", "title", {"heading": "title"}).order_by("id")
        streamed = [p async for p in query.clone().stream(batch_size=2)]
        fetched = await query

        def state(p: Post) -> tuple[Any, ...]:
            return (p.id, p.attributes, p.extras, p.original, p.is_dirty, p.is_persisted)

        assert [state(p) for p in streamed] == [state(p) for p in fetched]
        assert [p.extras["heading"] for p in streamed] == [f"p{i:03d}" for i in range(5)]
        changed = streamed[3]
        changed.title = "changed"
        assert changed.dirty == {"title": "changed"}
        with count_queries() as q:
            await changed.save()
        assert q.count == 1
        assert (await Post.find_or_fail(changed.id)).title == "changed"

    async def test_the_model_columns_give_the_same_state_as_a_query(
        self, database: Database, fast_paths: bool
    ) -> None:
        # No select(): the shape stream() hydrates in its own loop, one instance per step.
        await make_posts(5)
        query = Post.query().order_by("id")
        streamed = [p async for p in query.clone().stream(batch_size=2)]
        fetched = await query

        def state(p: Post) -> tuple[Any, ...]:
            return (type(p), p.attributes, p.extras, p.original, p.is_dirty, p.is_persisted)

        assert [state(p) for p in streamed] == [state(p) for p in fetched]
        changed = streamed[4]
        changed.title = "changed"
        assert changed.dirty == {"title": "changed"}
        with count_queries() as q:
            await changed.save()
        assert q.count == 1
        assert (await Post.find_or_fail(changed.id)).title == "changed"

    async def test_streamed_rows_keep_their_state_through_writes_and_copies(
        self, database: Database, fast_paths: bool
    ) -> None:
        # The model-columns loop leaves the row's names implied (state.py's ``ROW_ATTRS``):
        # every reader of the row (``original``, bulk updates compared in place, the journal
        # that puts the row back on rollback, a copy) sees the model's columns.
        await make_posts(4)
        streamed = [p async for p in Post.query().order_by("id").stream(batch_size=3)]
        if fast_paths:  # the names left out, one store less per row
            assert ROW_ATTRS not in streamed[0].__dict__
        fetched = await Post.query().order_by("id")
        copies = [copy.copy(p) for p in streamed]
        assert [c.original for c in copies] == [p.original for p in fetched]
        for p in streamed:
            p.title = p.title.upper()
        with pytest.raises(RuntimeError):
            async with db.transaction() as trx:
                await Post.update_many(streamed, client=trx)
                assert all(not p.is_dirty for p in streamed)
                raise RuntimeError("roll back")
        # Rolled back: each original is the row as streamed again, the change dirty again.
        assert [p.original for p in streamed] == [p.original for p in fetched]
        assert [p.dirty for p in streamed] == [{"title": p.title.upper()} for p in fetched]
        with count_queries() as q:
            await Post.update_many(streamed)
        assert q.count == 1
        assert [p.title for p in await Post.query().order_by("id")] == [
            f"P{i:03d}" for i in range(4)
        ]
        assert all(p.is_persisted and not p.is_dirty for p in streamed)

    async def test_break_and_close_give_the_connection_back(self, database: Database) -> None:
        await make_posts(6)
        before = checked_out()
        stream = Post.query().order_by("id").stream(batch_size=2)
        titles = []
        async for post in stream:
            titles.append(post.title)
            if len(titles) == 3:
                break
        await stream.aclose()
        assert titles == ["p000", "p001", "p002"]
        assert checked_out() == before

    async def test_instances_read_in_a_transaction_are_bound_to_it(
        self, database: Database
    ) -> None:
        await make_posts(3)
        async with db.transaction() as trx:
            streamed = [p async for p in Post.query(client=trx).stream(batch_size=2)]
            assert [p.trx for p in streamed] == [trx] * 3
        assert [p.trx for p in streamed] == [None] * 3

    async def test_the_lazy_load_guard_sees_each_batch_as_one_result(
        self, database: Database
    ) -> None:
        await make_posts(3)
        with database.lazy_load_guard("raise"):
            async for post in Post.query().order_by("id").stream(batch_size=10):
                if post.title == "p000":
                    await post.load("comments")
                else:
                    with pytest.raises(LazyLoadError):
                        await post.load("comments")

    async def test_the_connection_reads_normally_after_a_stream(self, database: Database) -> None:
        # (SQLite: the stream's connection goes back to the lean path's idle ones, from where
        # the next reads, inline or not, take it.)
        await make_posts(12)
        for _ in range(3):
            assert len([p async for p in Post.query().stream(batch_size=5)]) == 12
            assert [p.title for p in await Post.query().order_by("id").limit(2)] == [
                "p000",
                "p001",
            ]
            assert (await Post.query().where("title", "p011").first_or_fail()).title == "p011"


class TestConnectionRelease:
    async def test_released_after_the_loop(self, database: Database) -> None:
        await make_posts(30)
        await Post.query().first()  # the lean path's idle connection, before counting
        before = checked_out()
        async for _ in Post.query().stream(batch_size=5):
            assert checked_out() == before + 1  # held while iterating
        assert checked_out() == before

    async def test_released_on_break(self, database: Database) -> None:
        await make_posts(30)
        await Post.query().first()
        before = checked_out()
        stream = Post.query().order_by("id").stream(batch_size=5)
        seen = []
        async for post in stream:
            seen.append(post.title)
            if len(seen) == 7:
                break
        await stream.aclose()  # what the event loop does when it collects the generator
        assert seen[-1] == "p006"
        assert checked_out() == before
        # and when only the garbage collector closes it
        async for _ in Post.query().stream(batch_size=5):
            break
        await settle()
        assert checked_out() == before

    async def test_released_when_the_body_raises(self, database: Database) -> None:
        await make_posts(30)
        await Post.query().first()
        before = checked_out()

        async def consume() -> None:
            async for _ in Post.query().stream(batch_size=5):
                raise RuntimeError("boom")

        with pytest.raises(RuntimeError, match="boom"):
            await consume()
        await settle()
        assert checked_out() == before
        assert await Post.query().count_rows() == 30  # the connection pool still works


async def peak_while_streaming() -> tuple[int, int]:
    """(rows seen, peak traced bytes) of streaming every post in batches of 1,000."""
    gc.collect()
    tracemalloc.start()
    try:
        seen = 0
        async for post in Post.query().stream(batch_size=1000):
            seen += post.user_id or 0
        return seen, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


class TestFlatMemory:
    async def test_peak_memory_does_not_grow_with_the_row_count(self, database: Database) -> None:
        # 200,000 rows here (the 1,000,000-row figure is measured the same way, by hand).
        await insert_posts(20_000)
        small_rows, small_peak = await peak_while_streaming()
        await insert_posts(180_000)
        big_rows, big_peak = await peak_while_streaming()
        assert (small_rows, big_rows) == (20_000, 200_000)
        # Holding 200,000 instances takes well over 50 MB; a batch of 1,000 a few hundred KB.
        assert big_peak < 8_000_000
        assert big_peak < small_peak * 1.5 + 500_000


class TestStreamPaths:
    """The same answers, reports and errors with the lean path on (the driver's own cursor on
    PostgreSQL and MySQL) and off (SQLAlchemy's ``stream()``)."""

    async def test_values_come_converted(self, database: Database, fast_paths: bool) -> None:
        created = datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
        made = await Stamped.create({"title": "t", "is_published": True, "created_at": created})
        streamed = [p async for p in Stamped.query().stream()]
        fetched = await Stamped.query()
        got = [(p.id, p.title, p.is_published, p.created_at) for p in streamed]
        assert got == [(made.id, "t", True, created)]
        assert got == [(p.id, p.title, p.is_published, p.created_at) for p in fetched]

    async def test_a_driver_error_is_a_query_error(
        self, database: Database, fast_paths: bool
    ) -> None:
        await make_posts(3)
        await Post.query().first()
        before = checked_out()
        seen: list[Any] = []
        stop = database._emitter.observe(seen.append)
        try:
            with pytest.raises(QueryError) as info:
                [r async for r in db.from_("no_such_table").select("id").stream()]
        finally:
            stop()
        assert "no_such_table" in (info.value.sql or "")
        assert [s.error is not None for s in seen] == [True]
        assert checked_out() == before
        assert [p.title async for p in Post.query().order_by("id").stream()] == [
            "p000",
            "p001",
            "p002",
        ]

    async def test_a_cancelled_stream_gives_its_connection_back(
        self, database: Database, fast_paths: bool
    ) -> None:
        await make_posts(30)
        await Post.query().first()
        before = checked_out()
        started = asyncio.Event()

        async def consume() -> None:
            async for _ in Post.query().stream(batch_size=5):
                started.set()
                await asyncio.sleep(10)

        task = asyncio.ensure_future(consume())
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await settle()
        assert checked_out() == before
        assert await Post.query().count_rows() == 30
