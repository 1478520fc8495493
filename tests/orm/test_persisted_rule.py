"""Whether an instance is persisted (issue 18): hydration stores no persisted flag on the
instances it makes, whose hydrated row says they are persisted (state.py's
``persisted_in``); every other writer sets the flag, which wins. Each test here would
fail if a reader took a flag that is absent for "new": a fetched instance would be saved
with an INSERT, refused by ``update_many``, reported new."""

from __future__ import annotations

import copy
import pickle

import pytest

from lucid_orm import LucidError, belongs_to, db, has_many
from lucid_orm.database import Database
from lucid_orm.orm import hydration, state
from lucid_orm.relations import BelongsTo, HasMany
from tests import models
from tests.helpers import count_queries


class Post(models.Post):
    author: BelongsTo[User] = belongs_to(lambda: User, foreign_key="user_id")


class User(models.User):
    posts: HasMany[Post] = has_many(lambda: Post, foreign_key="user_id")


def _kinds(sqls: list[str]) -> list[str]:
    return [s.lstrip().split(None, 1)[0].upper() for s in sqls]


async def _user_rows() -> list[tuple[int, str | None, int | None]]:
    rows = await db.from_("users").select("id", "username", "points").order_by("id")
    return [(r["id"], r["username"], r["points"]) for r in rows]


async def _seed() -> list[int]:
    made = await User.create_many([{"username": "a", "points": 1}, {"username": "b", "points": 2}])
    await Post.create_many([{"user_id": made[0].id, "title": "p1"}])
    return [u.id for u in made]


def _fetched_form(instance: object) -> None:
    """``instance`` as hydration leaves it: the row, no flag (what the rule is about); with
    ``LUCID_FAST_PATHS=0`` the general loop states the flag beside an ``original`` dict."""
    d = instance.__dict__
    if not hydration.FAST_PATHS:
        assert d[state.PERSISTED] is True
        return
    assert state.ROW in d
    assert state.PERSISTED not in d


class TestFetchedInstances:
    async def test_a_fetched_instance_is_persisted(self, database: Database) -> None:
        ids = await _seed()
        user = await User.find_or_fail(ids[0])
        _fetched_form(user)
        assert user.is_persisted and not user.is_new
        assert state.is_persisted(user)
        assert not user.is_dirty
        assert "(persisted)" in repr(user)

    async def test_save_of_a_changed_fetched_instance_updates(self, database: Database) -> None:
        ids = await _seed()
        user = await User.find_or_fail(ids[0])
        user.points = 10
        with count_queries() as q:
            await user.save()
        assert _kinds(q.sqls) == ["UPDATE"]
        assert await _user_rows() == [(ids[0], "a", 10), (ids[1], "b", 2)]
        # Its row read into ``original`` (the flag set then): still persisted.
        assert user.is_persisted and not user.is_dirty
        user.points = 11
        with count_queries() as q:
            await user.save()
        assert _kinds(q.sqls) == ["UPDATE"]
        assert await _user_rows() == [(ids[0], "a", 11), (ids[1], "b", 2)]

    async def test_reading_original_keeps_it_persisted(self, database: Database) -> None:
        ids = await _seed()
        user = await User.find_or_fail(ids[1])
        _fetched_form(user)
        assert user.original["username"] == "b"
        assert state.ROW not in user.__dict__
        assert user.is_persisted
        user.fill({"username": "c"})  # fill keeps the key of a persisted instance
        assert user.id == ids[1]
        with count_queries() as q:
            await user.save()
        assert _kinds(q.sqls) == ["UPDATE"]
        assert await _user_rows() == [(ids[0], "a", 1), (ids[1], "c", 2)]

    async def test_refresh_keeps_it_persisted(self, database: Database) -> None:
        ids = await _seed()
        user = await User.find_or_fail(ids[0])
        await db.from_("users").where("id", ids[0]).update({"points": 7})
        await user.refresh()
        assert user.points == 7 and user.is_persisted
        user.points = 8
        with count_queries() as q:
            await user.save()
        assert _kinds(q.sqls) == ["UPDATE"]

    async def test_a_rolled_back_save_leaves_it_persisted(self, database: Database) -> None:
        ids = await _seed()
        user = await User.find_or_fail(ids[0])
        async with db.transaction() as trx:
            user.points = 5
            await user.save(client=trx)
            await trx.rollback()
        assert user.is_persisted and user.dirty == {"points": 5}
        with count_queries() as q:
            await user.save()
        assert _kinds(q.sqls) == ["UPDATE"]
        assert await _user_rows() == [(ids[0], "a", 5), (ids[1], "b", 2)]

    async def test_a_failed_save_leaves_it_persisted(self, database: Database) -> None:
        ids = await _seed()
        user = await User.find_or_fail(ids[0])
        await db.from_("users").where("id", ids[0]).delete()
        user.points = 5
        with pytest.raises(LucidError):
            await user.save()
        assert user.is_persisted and user.dirty == {"points": 5}

    async def test_delete(self, database: Database) -> None:
        ids = await _seed()
        user = await User.find_or_fail(ids[1])
        await user.delete()
        # As before the rule: a deleted instance keeps its persisted state and refuses writes.
        assert user.is_deleted and user.is_persisted
        with pytest.raises(LucidError) as info:
            await user.save()
        assert str(info.value) == "Cannot mutate a deleted model instance"
        assert await _user_rows() == [(ids[0], "a", 1)]

    async def test_a_rolled_back_delete_leaves_it_persisted(self, database: Database) -> None:
        ids = await _seed()
        user = await User.find_or_fail(ids[1])
        async with db.transaction() as trx:
            await user.delete(client=trx)
            await trx.rollback()
        assert not user.is_deleted and user.is_persisted
        user.points = 3
        with count_queries() as q:
            await user.save()
        assert _kinds(q.sqls) == ["UPDATE"]

    @pytest.mark.parametrize("how", ["copy", "deepcopy", "pickle"])
    async def test_copies_are_persisted(self, database: Database, how: str) -> None:
        ids = await _seed()
        user = await User.find_or_fail(ids[0])
        if how == "copy":
            other = copy.copy(user)
        elif how == "deepcopy":
            other = copy.deepcopy(user)
        else:
            other = pickle.loads(pickle.dumps(user))
        assert other.is_persisted and not other.is_dirty
        other.points = 4
        with count_queries() as q:
            await other.save()
        assert _kinds(q.sqls) == ["UPDATE"]
        assert await _user_rows() == [(ids[0], "a", 4), (ids[1], "b", 2)]

    async def test_preloaded_instances_are_persisted(self, database: Database) -> None:
        ids = await _seed()
        users = await User.query().preload("posts").order_by("id")
        post = users[0].posts[0]
        _fetched_form(post)
        assert post.is_persisted
        posts = await Post.query().preload("author")
        author = posts[0].author
        assert author is not None and author.is_persisted
        post.title = "p2"
        author.points = 9
        with count_queries() as q:
            await post.save()
            await author.save()
        assert _kinds(q.sqls) == ["UPDATE", "UPDATE"]
        assert await _user_rows() == [(ids[0], "a", 9), (ids[1], "b", 2)]

    async def test_streamed_instances_are_persisted(self, database: Database) -> None:
        await _seed()
        streamed = [u async for u in User.query().order_by("id").stream(batch_size=1)]
        assert [u.is_persisted for u in streamed] == [True, True]
        streamed[1].points = 6
        with count_queries() as q:
            await streamed[1].save()
        assert _kinds(q.sqls) == ["UPDATE"]

    async def test_update_many_and_save_many_of_fetched_instances(self, database: Database) -> None:
        ids = await _seed()
        users = await User.query().order_by("id")
        for u in users:
            u.points = (u.points or 0) + 10
        with count_queries() as q:
            await User.update_many(users)
        assert "INSERT" not in _kinds(q.sqls)
        assert await _user_rows() == [(ids[0], "a", 11), (ids[1], "b", 12)]
        assert [u.is_persisted for u in users] == [True, True]
        fetched = await User.query().order_by("id")
        fetched[0].points = 0
        new = User(username="c")
        with count_queries() as q:
            await User.save_many([fetched[0], new])
        assert _kinds(q.sqls).count("INSERT") == 1
        assert [r[1:] for r in await _user_rows()] == [("a", 0), ("b", 12), ("c", 0)]
        assert new.is_persisted and fetched[0].is_persisted

    async def test_a_rolled_back_update_many_leaves_them_persisted(
        self, database: Database
    ) -> None:
        ids = await _seed()
        users = await User.query().order_by("id")
        async with db.transaction() as trx:
            for u in users:
                u.points = 30
            await User.update_many(users, client=trx)
            await trx.rollback()
        assert [u.is_persisted for u in users] == [True, True]
        assert [u.dirty for u in users] == [{"points": 30}, {"points": 30}]
        with count_queries() as q:
            await User.update_many(users)
        assert "INSERT" not in _kinds(q.sqls)
        assert await _user_rows() == [(ids[0], "a", 30), (ids[1], "b", 30)]


class TestNewInstances:
    async def test_a_built_instance_is_new_until_saved(self, database: Database) -> None:
        user = User(username="n", points=1)
        assert not user.is_persisted and user.is_new
        assert state.PERSISTED in user.__dict__ and state.ROW not in user.__dict__
        with pytest.raises(LucidError):
            await User.update_many([user])
        with count_queries() as q:
            await user.save()
        assert _kinds(q.sqls) == ["INSERT"]
        assert user.is_persisted
        assert [r[1:] for r in await _user_rows()] == [("n", 1)]

    async def test_a_rolled_back_create_many_is_new_again(self, database: Database) -> None:
        async with db.transaction() as trx:
            made = await User.create_many(
                [{"username": "x", "points": 1}, {"username": "y", "points": 2}], client=trx
            )
            assert [u.is_persisted for u in made] == [True, True]
            await trx.rollback()
        assert [u.is_persisted for u in made] == [False, False]
        with count_queries() as q:
            await User.save_many(made)
        assert "UPDATE" not in _kinds(q.sqls)
        assert [r[1:] for r in await _user_rows()] == [("x", 1), ("y", 2)]
