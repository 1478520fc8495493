"""Instances read inside a transaction are bound to it (``instance.trx``) with nothing kept
per query to follow its end: a stream inside a transaction holds no instance past the loop
body. The binding stays truthful all the same: a savepoint released into its parent hands its
instances to the parent, a rollback or a root's commit unbinds them, and a statement of an
instance whose transaction ended goes to its model's default connection."""

from __future__ import annotations

import copy

from lucid_orm import db
from lucid_orm.database import Database
from tests import models
from tests.helpers import count_queries, insert_posts, peak_traced

Post = models.Post


async def some_posts(n: int = 3) -> None:
    await db.table("posts").multi_insert([{"user_id": 1, "title": f"p{i}"} for i in range(n)])


class TestFlatMemory:
    async def test_a_model_stream_in_a_transaction_keeps_no_instance(
        self, database: Database
    ) -> None:
        await insert_posts(50_000)
        async with db.transaction() as trx:

            async def stream() -> int:
                seen = 0
                async for post in Post.query(client=trx).stream(batch_size=500):
                    seen += post.user_id or 0
                return seen

            async def chunks() -> int:
                # Hydrated a batch at a time (a list per batch, as a query's rows).
                seen = 0
                async for chunk in Post.query(client=trx).each_chunk(500):
                    seen += len(chunk)
                return seen

            async def whole() -> int:
                return len(await Post.query(client=trx))

            streamed, stream_peak = await peak_traced(stream)
            chunked, chunk_peak = await peak_traced(chunks)
            read, whole_peak = await peak_traced(whole)
            # Still bound while the transaction lasts.
            post = await Post.query(client=trx).first()
            assert post is not None and post.trx is trx
        assert post.trx is None
        assert (streamed, chunked, read) == (50_000, 50_000, 50_000)
        # 50,000 instances take well over 10 MB; a batch of 500 a few hundred KB. Each
        # instance bound to the transaction used to be kept in a list until it ended.
        assert stream_peak * 4 < whole_peak, (stream_peak, whole_peak)
        assert chunk_peak * 4 < whole_peak, (chunk_peak, whole_peak)


class TestBinding:
    async def test_a_root_commit_or_rollback_unbinds(self, database: Database) -> None:
        await some_posts()
        for end in ("commit", "rollback"):
            trx = await db.transaction()
            streamed = [p async for p in Post.query(client=trx).stream()]
            fetched = await Post.query(client=trx)
            assert [p.trx for p in [*streamed, *fetched]] == [trx] * 6
            await (trx.commit() if end == "commit" else trx.rollback())
            assert [p.trx for p in [*streamed, *fetched]] == [None] * 6

    async def test_a_released_savepoint_hands_them_to_its_parent(self, database: Database) -> None:
        await some_posts()
        async with db.transaction() as trx:
            async with trx.transaction() as outer:
                async with outer.transaction() as inner:
                    streamed = [p async for p in Post.query(client=inner).stream()]
                    found = await Post.find_or_fail(streamed[0].id, client=inner)
                    assert {p.trx for p in [*streamed, found]} == {inner}
                assert {p.trx for p in [*streamed, found]} == {outer}
                copied = copy.deepcopy(found)
                assert copied.trx is outer
            assert {p.trx for p in [*streamed, found, copied]} == {trx}
        assert {p.trx for p in [*streamed, found, copied]} == {None}

    async def test_a_rolled_back_savepoint_unbinds(self, database: Database) -> None:
        await some_posts()
        async with db.transaction() as trx:
            savepoint = await trx.transaction()
            streamed = [p async for p in Post.query(client=savepoint).stream()]
            await savepoint.rollback()
            assert {p.trx for p in streamed} == {None}
            # Released into a parent that then rolls back: unbound too.
            async with trx.transaction() as outer:
                inner = await outer.transaction()
                kept = [p async for p in Post.query(client=inner).stream()]
                await inner.commit()
                assert {p.trx for p in kept} == {outer}
                await outer.rollback()
            assert {p.trx for p in kept} == {None}

    async def test_a_write_in_a_savepoint_gives_back_the_earlier_binding(
        self, database: Database
    ) -> None:
        await some_posts()
        async with db.transaction() as trx:
            async with trx.transaction() as released:
                post = await Post.query(client=released).order_by("id").first_or_fail()
            assert post.trx is trx
            savepoint = await trx.transaction()
            post.title = "rolled back"
            await post.save(client=savepoint)
            assert post.trx is savepoint
            await savepoint.rollback()
            assert post.trx is trx

    async def test_a_save_after_commit_uses_the_default_connection(
        self, database: Database
    ) -> None:
        await some_posts()
        async with db.transaction() as trx, trx.transaction() as savepoint:
            posts = [p async for p in Post.query(client=savepoint).order_by("id").stream()]
        post = posts[0]
        post.title = "after"
        with count_queries() as q:
            await post.save()
        assert q.count == 1
        assert post.trx is None
        # Committed on the default connection (no transaction of its own left open).
        found = await Post.find_or_fail(post.id)
        assert found.title == "after"

    async def test_a_save_after_a_released_savepoint_runs_in_its_parent(
        self, database: Database
    ) -> None:
        await some_posts()
        async with db.transaction() as trx:
            async with trx.transaction() as savepoint:
                posts = [p async for p in Post.query(client=savepoint).order_by("id").stream()]
            posts[0].title = "rolled back"
            await posts[0].save()
            assert (await Post.find_or_fail(posts[0].id, client=trx)).title == "rolled back"
            await trx.rollback()
        assert (await Post.find_or_fail(posts[0].id)).title == "p0"

    async def test_a_bulk_update_after_commit_leaves_them_unbound(self, database: Database) -> None:
        await some_posts()
        async with db.transaction() as trx:
            posts = [p async for p in Post.query(client=trx).order_by("id").stream()]
        for p in posts:
            p.title = f"{p.title}!"
        await Post.update_many(posts)
        assert [p.trx for p in posts] == [None] * 3
        assert [p.title for p in await Post.query().order_by("id")] == ["p0!", "p1!", "p2!"]
        # In a transaction, then rolled back: they follow it as a write's instances do.
        trx = await db.transaction()
        for p in posts:
            p.title = "rolled back"
        await Post.update_many(posts, client=trx)
        assert [p.trx for p in posts] == [trx] * 3
        await trx.rollback()
        assert [p.trx for p in posts] == [None] * 3
        assert [p.title for p in await Post.query().order_by("id")] == ["p0!", "p1!", "p2!"]
