"""Streams inside a transaction (issue 18): the rows are read batch by batch on the
transaction's connection, so memory stays flat on every database. On MySQL/MariaDB the
unbuffered cursor must be read to its end before the connection runs another statement: the
transaction reads the rest of an open stream's rows into the stream's buffer just before any
other statement (the loop body's, a preload, a savepoint, COMMIT/ROLLBACK, another stream), and
the stream goes on from there. The answers are the same everywhere."""

from __future__ import annotations

import asyncio
from contextlib import aclosing
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncResult

from lucid_orm import QueryError, db, has_many
from lucid_orm.database import Database
from lucid_orm.database.transaction import TransactionClient
from lucid_orm.relations import HasMany
from tests import models
from tests.helpers import count_queries, insert_posts, peak_traced


class Post(models.Post):
    comments: HasMany[models.Comment] = has_many(lambda: models.Comment)


async def titled_posts(n: int) -> list[int]:
    await db.table("posts").multi_insert([{"user_id": 1, "title": f"p{i:04d}"} for i in range(n)])
    return [r["id"] for r in await db.from_("posts").select("id").order_by("id")]


def titles(n: int) -> list[str]:
    return [f"p{i:04d}" for i in range(n)]


class TestRows:
    async def test_every_row_in_order(self, database: Database) -> None:
        await titled_posts(1234)
        async with db.transaction() as trx:
            with count_queries() as q:
                got = [p.title async for p in Post.query(client=trx).order_by("id").stream(100)]
            rows = [
                r["title"] async for r in trx.from_("posts").order_by("id").stream(batch_size=7)
            ]
        assert got == titles(1234)
        assert rows == titles(1234)
        assert q.count == 1

    async def test_each_chunk_in_batches(self, database: Database) -> None:
        await titled_posts(25)
        async with db.transaction() as trx:
            sizes = [len(c) async for c in Post.query(client=trx).order_by("id").each_chunk(10)]
        assert sizes == [10, 10, 5]

    async def test_an_empty_result(self, database: Database) -> None:
        async with db.transaction() as trx:
            assert [p async for p in Post.query(client=trx).stream()] == []
            await trx.table("posts").insert({"title": "after"})
        assert await Post.query().count_rows() == 1


class TestStatementsInTheLoop:
    async def test_a_write_in_the_loop_body(self, database: Database) -> None:
        ids = await titled_posts(50)
        async with db.transaction() as trx:
            with count_queries() as q:
                seen = []
                async for post in Post.query(client=trx).order_by("id").stream(batch_size=10):
                    seen.append(post.title)
                    if post.id % 7 == 0:
                        await trx.table("comments").insert({"post_id": post.id, "body": "x"})
        assert seen == titles(50)
        written = [i for i in ids if i % 7 == 0]
        assert q.count == 1 + len(written)
        rows = await db.from_("comments").select("post_id").order_by("post_id")
        assert [r["post_id"] for r in rows] == written

    async def test_a_bulk_write_and_a_read_in_the_loop_body(self, database: Database) -> None:
        await titled_posts(30)
        async with db.transaction() as trx:
            seen, counts = [], []
            async for chunk in Post.query(client=trx).order_by("id").each_chunk(10):
                seen += [p.title for p in chunk]
                await models.Comment.create_many(
                    [{"post_id": p.id, "body": p.title} for p in chunk], client=trx
                )
                counts.append(await models.Comment.query(client=trx).count_rows())
        assert seen == titles(30)
        assert counts == [10, 20, 30]
        assert await models.Comment.query().count_rows() == 30

    async def test_a_savepoint_in_the_loop_body(self, database: Database) -> None:
        await titled_posts(20)
        async with db.transaction() as trx:
            seen = []
            async for post in Post.query(client=trx).order_by("id").stream(batch_size=6):
                seen.append(post.title)
                async with trx.transaction() as nested:
                    await nested.table("comments").insert({"post_id": post.id, "body": "kept"})
                if post.title == "p0003":
                    sp = await trx.transaction()
                    await sp.table("comments").insert({"post_id": post.id, "body": "gone"})
                    await sp.rollback()
        assert seen == titles(20)
        bodies = [r["body"] for r in await db.from_("comments").select("body")]
        assert bodies == ["kept"] * 20

    async def test_a_stream_in_the_loop_body(self, database: Database) -> None:
        ids = await titled_posts(12)
        await db.table("comments").multi_insert(
            [{"post_id": i, "body": f"c{n}"} for n, i in enumerate(ids)]
        )
        async with db.transaction() as trx:
            outer, inner = [], []
            async for post in Post.query(client=trx).order_by("id").stream(batch_size=5):
                outer.append(post.title)
                if post.title in ("p0002", "p0007"):
                    q = models.Comment.query(client=trx).order_by("id")
                    inner.append([c.body async for c in q.stream(batch_size=4)])
        assert outer == titles(12)
        assert inner == [[f"c{n}" for n in range(12)]] * 2

    async def test_preload_per_batch(self, database: Database) -> None:
        ids = await titled_posts(45)
        await db.table("comments").multi_insert(
            [{"post_id": i, "body": "x"} for i in ids for _ in range(2)]
        )
        async with db.transaction() as trx:
            with count_queries() as q:
                sizes = []
                async for chunk in (
                    Post.query(client=trx).preload("comments").order_by("id").each_chunk(10)
                ):
                    sizes.append([len(p.comments) for p in chunk])
        assert sizes == [[2] * 10] * 4 + [[2] * 5]
        assert q.count == 1 + 5

    async def test_a_global_transaction(self, database: Database) -> None:
        await titled_posts(30)
        await db.begin_global_transaction()
        try:
            seen = []
            async for post in Post.query().order_by("id").stream(batch_size=4):
                seen.append(post.title)
                await db.table("comments").insert({"post_id": post.id, "body": "x"})
        finally:
            await db.rollback_global_transaction()
        assert seen == titles(30)
        assert await models.Comment.query().count_rows() == 0


class TestEndingEarly:
    async def test_break_then_statements_and_commit(self, database: Database) -> None:
        await titled_posts(100)
        async with db.transaction() as trx:
            seen = []
            async for post in Post.query(client=trx).order_by("id").stream(batch_size=10):
                seen.append(post.title)
                if len(seen) == 15:
                    break
            # The generator may still be open (the event loop closes it): the statements below
            # run in order all the same.
            await trx.table("comments").insert({"post_id": 1, "body": "after break"})
            assert await Post.query(client=trx).count_rows() == 100
        assert seen == titles(15)
        assert await models.Comment.query().count_rows() == 1
        assert await Post.query().count_rows() == 100

    async def test_closed_with_aclosing(self, database: Database) -> None:
        await titled_posts(100)
        async with db.transaction() as trx:
            stream = Post.query(client=trx).order_by("id").stream(batch_size=10)
            async with aclosing(stream) as posts:
                async for post in posts:
                    if post.title == "p0012":
                        break
            assert trx._root._pending is None  # closed: nothing left to read
            await trx.table("comments").insert({"post_id": 1, "body": "x"})
            first = await Post.query(client=trx).order_by("id").first()
            assert first is not None and first.title == "p0000"
        assert await models.Comment.query().count_rows() == 1

    async def test_the_body_raises_in_a_managed_transaction(self, database: Database) -> None:
        await titled_posts(100)
        with pytest.raises(ValueError):
            async with db.transaction() as trx:
                await trx.table("comments").insert({"post_id": 1, "body": "rolled back"})
                async for post in Post.query(client=trx).order_by("id").stream(batch_size=10):
                    if post.title == "p0033":
                        raise ValueError("stop")
        assert await models.Comment.query().count_rows() == 0
        assert await Post.query().count_rows() == 100

    async def test_a_cancelled_loop_rolls_back(self, database: Database) -> None:
        await titled_posts(100)
        started = asyncio.Event()

        async def consume() -> None:
            async with db.transaction() as trx:
                await trx.table("comments").insert({"post_id": 1, "body": "rolled back"})
                async for _ in Post.query(client=trx).stream(batch_size=10):
                    started.set()
                    await asyncio.sleep(10)

        task = asyncio.ensure_future(consume())
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await models.Comment.query().count_rows() == 0
        assert [p.title async for p in Post.query().order_by("id").stream(30)] == titles(100)


class TestEndingTheTransactionMidStream:
    """SQLite and MySQL/MariaDB: the rest of the rows after the transaction ended (PostgreSQL
    closes a server-side cursor with its transaction)."""

    @pytest.fixture(autouse=True)
    def _cursor_outlives_the_transaction(self, database: Database) -> None:
        if database.get_connection().dialect_name == "postgresql":
            pytest.skip("PostgreSQL closes a server-side cursor with its transaction")

    async def _partial(self, trx: TransactionClient, stream: Any, n: int) -> list[str]:
        return [(await anext(stream)).title for _ in range(n)]

    async def test_rollback_with_a_stream_open(self, database: Database) -> None:
        await titled_posts(60)
        trx = await db.transaction()
        await trx.table("comments").insert({"post_id": 1, "body": "rolled back"})
        stream = Post.query(client=trx).order_by("id").stream(batch_size=10)
        seen = await self._partial(trx, stream, 15)
        await trx.rollback()
        # The stream goes on from the rows read before the rollback.
        seen += [p.title async for p in stream]
        assert seen == titles(60)
        assert await models.Comment.query().count_rows() == 0
        assert await Post.query().count_rows() == 60

    async def test_commit_with_a_stream_open(self, database: Database) -> None:
        await titled_posts(60)
        trx = await db.transaction()
        await trx.table("comments").insert({"post_id": 1, "body": "kept"})
        stream = Post.query(client=trx).order_by("id").stream(batch_size=10)
        seen = await self._partial(trx, stream, 25)
        await trx.commit()
        seen += [p.title async for p in stream]
        assert seen == titles(60)
        assert await models.Comment.query().count_rows() == 1


class TestFlatMemory:
    async def test_a_stream_in_a_transaction_holds_one_batch(self, database: Database) -> None:
        await insert_posts(50_000)
        async with db.transaction() as trx:

            async def stream() -> int:
                seen = 0
                async for _ in trx.from_("posts").select("id", "title").stream(batch_size=500):
                    seen += 1
                async for chunk in Post.query(client=trx).pojo().each_chunk(500):
                    seen += len(chunk)
                return seen

            async def whole() -> int:
                return len(await trx.from_("posts").select("id", "title"))

            streamed, stream_peak = await peak_traced(stream)
            read, whole_peak = await peak_traced(whole)
        assert (streamed, read) == (100_000, 50_000)
        # 50,000 rows take several MB; a batch of 500 some tens of KB. On MySQL/MariaDB a
        # stream that read its whole result first peaked as high as reading every row.
        assert stream_peak * 4 < whole_peak, (stream_peak, whole_peak)


class TestErrors:
    async def test_a_driver_error_is_a_query_error(self, database: Database) -> None:
        await titled_posts(3)
        seen: list[Any] = []
        stop = database._emitter.observe(seen.append)
        trx = await db.transaction()
        try:
            with pytest.raises(QueryError) as info:
                [r async for r in trx.from_("no_such_table").select("id").stream()]
            assert "no_such_table" in (info.value.sql or "")
            assert [s.error is not None for s in seen] == [True]
        finally:
            stop()
            await trx.rollback()
        # The connection went back to the pool in a usable state.
        assert [p.title async for p in Post.query().order_by("id").stream()] == titles(3)

    async def test_a_drain_cut_off_leaves_the_transaction_only_able_to_roll_back(
        self, database: Database, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # MySQL/MariaDB: the statement below first reads the rows the open stream left unread,
        # and is cancelled meanwhile; the connection's state is then unknown.
        if database.get_connection().dialect_name != "mysql":
            pytest.skip("only MySQL/MariaDB drain an open cursor")
        await titled_posts(30)
        trx = await db.transaction()
        await trx.table("comments").insert({"post_id": 1, "body": "rolled back"})
        stream = trx.from_("posts").select("id").stream(batch_size=10)
        await anext(stream)
        reading = asyncio.Event()

        async def slow_fetchall(self: AsyncResult[Any]) -> Any:
            reading.set()
            await asyncio.sleep(10)

        monkeypatch.setattr(AsyncResult, "fetchall", slow_fetchall)
        task = asyncio.ensure_future(trx.from_("comments").first())
        await reading.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        with pytest.raises(QueryError):
            async for _ in stream:  # the rest of its first batch, then the cut-off read
                pass
        with pytest.raises(QueryError) as info:
            await trx.commit()
        assert "cancelled" in info.value.message
        await stream.aclose()
        assert await models.Comment.query().count_rows() == 0
        assert [r["title"] async for r in db.from_("posts").order_by("id").stream(7)] == titles(30)
