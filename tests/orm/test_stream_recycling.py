"""``stream()`` fills an instance again in place once nothing but the stream's own loop can
reach it (hydration's ``_recycling_stream``): a loop that drops each instance when it takes
the next goes on with two of them. Whatever the loop body keeps (the instance, a weak
reference to it, its ``__dict__`` alone) stays as it was read, and every instance handed out
has exactly the state of a new one."""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from typing import Any

import pytest

from lucid_orm import db
from lucid_orm.database import Database
from lucid_orm.orm import hydration
from lucid_orm.orm.hydration import stream_plan
from tests import models

Post = models.Post


class OtherPost(models.Post):
    table = "posts"


class FinalizedPost(models.Post):
    table = "posts"
    finalized: list[str] = []  # noqa: RUF012 - a class-level log __del__ appends to

    def __del__(self) -> None:
        FinalizedPost.finalized.append(self.__dict__.get("title") or "")


class SlottedPost(models.Post):
    __slots__ = ("note",)
    table = "posts"


async def make_posts(n: int) -> None:
    await db.table("posts").multi_insert([{"user_id": 1, "title": f"p{i:03d}"} for i in range(n)])


def titles(n: int) -> list[str]:
    return [f"p{i:03d}" for i in range(n)]


@pytest.fixture
def built() -> Iterator[list[int]]:
    """Counts the instances ``Post``'s generated stream loop builds (one entry per build)."""
    plan = stream_plan(Post)
    if plan is None or plan.stream is None or hydration.RECYCLE is None:
        pytest.skip("no generated stream loop (LUCID_FAST_PATHS=0) or no recycling")
    namespace: dict[str, Any] = plan.stream.__globals__
    new = namespace["new"]
    log: list[int] = []

    def counting(cls: type[Any]) -> Any:
        log.append(1)
        return new(cls)

    namespace["new"] = counting
    try:
        yield log
    finally:
        namespace["new"] = new


class TestRecycling:
    async def test_a_loop_that_drops_each_instance_goes_on_with_two(
        self, database: Database, built: list[int]
    ) -> None:
        await make_posts(9)
        seen = []
        async for post in Post.query().order_by("id").stream(batch_size=4):
            seen.append((post.id is not None, post.title, post.is_persisted))
        assert seen == [(True, t, True) for t in titles(9)]
        assert len(built) == 2

    async def test_in_a_transaction_too(self, database: Database, built: list[int]) -> None:
        await make_posts(7)
        async with db.transaction() as trx:
            seen = []
            async for post in Post.query(client=trx).order_by("id").stream(batch_size=3):
                seen.append((post.title, post.trx is trx))
            assert seen == [(t, True) for t in titles(7)]
        assert len(built) == 2

    async def test_kept_instances_are_never_filled_again(
        self, database: Database, built: list[int]
    ) -> None:
        await make_posts(9)
        kept = []
        async for post in Post.query().order_by("id").stream(batch_size=4):
            kept.append(post)
        assert [p.title for p in kept] == titles(9)
        assert len({id(p) for p in kept}) == 9
        assert len(built) == 9

    async def test_the_previous_instance_held_for_one_step(self, database: Database) -> None:
        await make_posts(9)
        pairs = []
        previous = None
        async for post in Post.query().order_by("id").stream(batch_size=4):
            if previous is not None:
                pairs.append((previous.title, post.title, previous is post))
            previous = post
        assert pairs == [(a, b, False) for a, b in zip(titles(9), titles(9)[1:], strict=False)]

    async def test_an_instance_only_weakly_referenced_is_not_filled_again(
        self, database: Database
    ) -> None:
        await make_posts(9)
        refs = []
        async for post in Post.query().order_by("id").stream(batch_size=4):
            refs.append((weakref.ref(post), post.title))
        for ref, title in refs:
            alive = ref()
            assert alive is None or alive.title == title

    async def test_a_dict_kept_alone_is_not_filled_again(self, database: Database) -> None:
        await make_posts(9)
        dicts = []
        async for post in Post.query().order_by("id").stream(batch_size=4):
            dicts.append(post.__dict__)
        assert [d["title"] for d in dicts] == titles(9)
        assert len({id(d) for d in dicts}) == 9

    async def test_keys_the_body_added_or_deleted_are_not_left(self, database: Database) -> None:
        await make_posts(9)
        seen = []
        async for post in Post.query().order_by("id").stream(batch_size=4):
            seen.append((post.title, post.is_dirty, "scratch" in post.__dict__))
            # One key deleted, one added: as many keys as the stream put there.
            del post.title
            post.__dict__["scratch"] = 1
        assert seen == [(t, False, False) for t in titles(9)]

    async def test_a_changed_class_is_not_handed_out_again(self, database: Database) -> None:
        await make_posts(9)
        seen = []
        async for post in Post.query().order_by("id").stream(batch_size=4):
            seen.append((type(post), post.title))
            post.__class__ = OtherPost
        assert seen == [(Post, t) for t in titles(9)]

    async def test_state_the_body_changed_is_reset(self, database: Database) -> None:
        # Reading ``is_dirty`` and ``original`` moves the row into ``original`` (state.py):
        # keys the stream didn't put there, so each such instance is left alone.
        await make_posts(6)
        seen = []
        async for post in Post.query().order_by("id").stream(batch_size=4):
            seen.append((post.title, post.is_dirty, post.original["title"]))
            post.title = "changed"
        assert seen == [(t, False, t) for t in titles(6)]

    async def test_a_model_with_a_finalizer_finalizes_each_instance(
        self, database: Database
    ) -> None:
        await make_posts(6)
        FinalizedPost.finalized.clear()
        seen = []
        async for post in FinalizedPost.query().order_by("id").stream(batch_size=4):
            seen.append(post.title)
        del post
        assert seen == titles(6)
        assert sorted(FinalizedPost.finalized) == titles(6)

    async def test_a_model_with_slots_gets_them_unset(self, database: Database) -> None:
        await make_posts(6)
        seen = []
        async for post in SlottedPost.query().order_by("id").stream(batch_size=4):
            seen.append((post.title, hasattr(post, "note")))
            post.note = post.title
        assert seen == [(t, False) for t in titles(6)]


class TestWithoutRecycling:
    async def test_a_new_instance_per_row(
        self, database: Database, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Where reference counts say nothing (``RECYCLE`` is None), the loop builds each.
        monkeypatch.setattr(hydration, "RECYCLE", None)
        _, _, stream = hydration.filler(["id", "title"], [])
        assert "refs" not in stream.__code__.co_names

        async def batches() -> Any:
            yield [(1, "a"), (2, "b")], None, None
            yield [(3, "c")], {"_lucid_conn": "other"}, None

        ids = []
        async for post in stream(Post, batches()):
            ids.append((post.id, post.title, post.__dict__.get("_lucid_conn")))
        assert ids == [(1, "a", None), (2, "b", None), (3, "c", "other")]

    def test_counts_measured_on_this_interpreter(self) -> None:
        # Two references to an instance (a variable and the call's argument), three to its
        # ``__dict__`` (the instance's too) on CPython 3.11-3.13.
        assert hydration.RECYCLE in (None, (2, 3))

    def test_wrong_counts_are_refused(self) -> None:
        # Counts one too high would refill instances the body keeps; too low, none at all.
        if hydration.RECYCLE is None:
            pytest.skip("no recycling on this interpreter")
        one, two = hydration.RECYCLE
        assert hydration.recycles((one, two))
        assert not hydration.recycles((one + 1, two + 1))
        assert not hydration.recycles((one - 1, two - 1))
        assert not hydration.recycles((one, two + 1))
