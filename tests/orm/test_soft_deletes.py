"""Soft deletes (SPEC §10): ``soft_deletes=True`` models stamp ``deleted_at`` on delete, hide
trashed rows from every query, and ``force_delete``/``restore``/``with_trashed``/
``only_trashed`` on instances and builders; hooks ``delete`` and ``restore``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from lucid_orm import BaseModel, LucidError, after, before, column
from lucid_orm.database import Database
from tests.helpers import count_queries
from tests.scoped_models import Comment, Post, Tag, scoped, scoped_tables, seed

__all__ = ["scoped", "scoped_tables"]


async def titles(query: Any) -> list[str]:
    return [p.title for p in await query.order_by("title")]


class HookedPost(Post):
    events: list[str] = []  # noqa: RUF012 - a log the tests read

    @before("delete")
    @staticmethod
    def before_delete(post: HookedPost) -> None:
        HookedPost.events.append(f"before:delete:{post.is_trashed}")

    @after("delete")
    @staticmethod
    def after_delete(post: HookedPost) -> None:
        HookedPost.events.append(f"after:delete:{post.is_trashed}")

    @before("restore")
    @staticmethod
    def before_restore(post: HookedPost) -> None:
        HookedPost.events.append(f"before:restore:{post.is_trashed}")

    @after("restore")
    @staticmethod
    async def after_restore(post: HookedPost) -> None:
        HookedPost.events.append(f"after:restore:{post.is_trashed}")


@pytest.fixture
def events() -> list[str]:
    HookedPost.events = []
    return HookedPost.events


class TestInstanceDelete:
    async def test_delete_stamps_and_hides(self, scoped: Database) -> None:
        rows = await seed()
        p1: Post = rows["p1"]
        before_call = datetime.now().astimezone()
        with count_queries() as q:
            await p1.delete()
        assert q.count == 1
        assert q.sqls[0].upper().startswith("UPDATE")
        assert p1.is_trashed and p1.is_persisted and not p1.is_deleted
        assert p1.deleted_at is not None and p1.deleted_at.utcoffset() is not None
        assert p1.deleted_at >= before_call.replace(microsecond=0)
        assert not p1.is_dirty
        assert await titles(Post.query()) == ["p2", "p3"]
        assert await Post.find(p1.id) is None
        assert await titles(Post.query().with_trashed()) == ["p1", "p2", "p3"]
        assert await titles(Post.query().only_trashed()) == ["p1"]
        raw = await scoped.from_("sc_posts").where("id", p1.id).first()
        assert raw is not None and raw["deleted_at"] is not None
        assert (await Post.query().with_trashed().where("id", p1.id).first()) is not None

    async def test_delete_writes_only_the_stamp(self, scoped: Database) -> None:
        p1: Post = (await seed())["p1"]
        p1.title = "changed"
        await p1.delete()
        assert p1.dirty == {"title": "changed"}
        fresh = await Post.query().with_trashed().where("id", p1.id).first_or_fail()
        assert fresh.title == "p1" and fresh.is_trashed

    async def test_delete_hooks_run_and_force_delete_runs_them_too(
        self, scoped: Database, events: list[str]
    ) -> None:
        p1 = await HookedPost.find_or_fail((await seed())["p1"].id)
        await p1.delete()
        assert events == ["before:delete:False", "after:delete:True"]
        events.clear()
        with count_queries() as q:
            await p1.force_delete()
        assert q.count == 1 and q.sqls[0].upper().startswith("DELETE")
        assert events == ["before:delete:True", "after:delete:True"]
        assert p1.is_deleted
        assert await scoped.from_("sc_posts").where("id", p1.id).first() is None
        with pytest.raises(LucidError) as exc:
            p1.title = "x"
        assert exc.value.code == "E_MODEL_DELETED"

    async def test_force_delete_of_a_live_row(self, scoped: Database) -> None:
        p2: Post = (await seed())["p2"]
        await p2.force_delete()
        assert await Post.query().with_trashed().where("id", p2.id).first() is None

    async def test_restore(self, scoped: Database, events: list[str]) -> None:
        p1 = await HookedPost.find_or_fail((await seed())["p1"].id)
        await p1.delete()
        events.clear()
        with count_queries() as q:
            assert await p1.restore() is p1
        assert q.count == 1 and q.sqls[0].upper().startswith("UPDATE")
        assert events == ["before:restore:True", "after:restore:False"]
        assert not p1.is_trashed and p1.deleted_at is None
        assert (await Post.find_or_fail(p1.id)).title == "p1"
        # A row that is not trashed: nothing to write, no hooks.
        events.clear()
        with count_queries() as q:
            await p1.restore()
        assert q.count == 0 and events == []

    async def test_restore_needs_a_soft_deleting_model(self, scoped: Database) -> None:
        class Plain(BaseModel):
            table = "sc_authors"
            id: int = column(is_primary=True)
            name: str = column()

        plain = await Plain.create({"name": "x"})
        assert not plain.is_trashed
        with pytest.raises(LucidError) as exc:
            await plain.restore()
        assert exc.value.code == "E_RUNTIME_EXCEPTION"
        with pytest.raises(LucidError) as exc:
            Plain.query().only_trashed()
        assert exc.value.code == "E_RUNTIME_EXCEPTION"

    async def test_refresh_reads_a_trashed_row(self, scoped: Database) -> None:
        p1: Post = (await seed())["p1"]
        await p1.delete()
        stamped = p1.deleted_at
        await Post.query().with_trashed().where("id", p1.id).update({"title": "renamed"})
        await p1.refresh()
        assert p1.title == "renamed" and p1.is_trashed
        assert p1.deleted_at == stamped  # a UTC datetime, read back as written
        # A builder's soft delete stamps UTC datetimes too.
        await Post.query().where("title", "p2").delete()
        p2 = await Post.query().only_trashed().first_or_fail()
        assert p2.deleted_at is not None and p2.deleted_at.utcoffset() is not None

    async def test_rollback_puts_the_instance_back(self, scoped: Database) -> None:
        p1: Post = (await seed())["p1"]
        with pytest.raises(RuntimeError):
            async with scoped.transaction() as trx:
                await p1.delete(client=trx)
                assert p1.is_trashed
                raise RuntimeError("roll back")
        assert not p1.is_trashed and p1.deleted_at is None
        assert await Post.find(p1.id) is not None

    async def test_another_column(self, scoped: Database) -> None:
        rows = await seed()
        t1: Tag = rows["t1"]
        await t1.delete()
        assert t1.removed_at is not None and t1.is_trashed
        assert [t.name for t in await Tag.query().order_by("name")] == ["t2"]
        assert [t.name for t in await Tag.query().only_trashed()] == ["t1"]
        await t1.restore()
        assert await Tag.query().count_rows() == 2


class TestUpdatedAt:
    """A soft delete and a restore are updates of the row: they move ``updated_at`` (as
    Eloquent's do), on instances and builders alike; a rollback puts it back."""

    async def stamps(self, scoped: Database, comment_id: int) -> tuple[Any, Any]:
        row = await scoped.from_("sc_comments").where("id", comment_id).first()
        assert row is not None
        return row["deleted_at"], row["updated_at"]

    async def test_instance_delete_and_restore_move_updated_at(self, scoped: Database) -> None:
        c1: Comment = (await seed())["c1"]
        created = c1.updated_at
        assert created is not None
        with count_queries() as q:
            await c1.delete()
        assert q.count == 1
        assert c1.updated_at is not None and c1.updated_at > created
        assert c1.updated_at == c1.deleted_at and not c1.is_dirty
        deleted_at, updated_at = await self.stamps(scoped, c1.id)
        assert deleted_at is not None and updated_at is not None
        trashed = c1.updated_at
        restored = await c1.restore()
        assert restored.deleted_at is None and not restored.is_dirty
        assert restored.updated_at is not None and restored.updated_at > trashed
        fresh = await Comment.find_or_fail(c1.id)
        assert fresh.updated_at == restored.updated_at

    async def test_builder_delete_and_restore_move_updated_at(self, scoped: Database) -> None:
        c1: Comment = (await seed())["c1"]
        assert await Comment.query().where("id", c1.id).delete() == 1
        trashed = await Comment.query().only_trashed().where("id", c1.id).first_or_fail()
        assert c1.updated_at is not None and trashed.updated_at is not None
        assert trashed.updated_at > c1.updated_at
        assert await Comment.query().where("id", c1.id).restore() == 1
        live = await Comment.find_or_fail(c1.id)
        assert live.deleted_at is None
        assert live.updated_at is not None and live.updated_at > trashed.updated_at

    async def test_rollback_puts_updated_at_back(self, scoped: Database) -> None:
        c1: Comment = (await seed())["c1"]
        before_delete = c1.updated_at
        with pytest.raises(RuntimeError):
            async with scoped.transaction() as trx:
                await c1.delete(client=trx)
                assert c1.updated_at != before_delete
                raise RuntimeError("roll back")
        assert c1.updated_at == before_delete and not c1.is_trashed and not c1.is_dirty
        assert (await Comment.find_or_fail(c1.id)).updated_at == before_delete


class TestFirstOrCreate:
    async def test_a_trashed_row_is_not_found_so_a_new_one_is_created(
        self, scoped: Database
    ) -> None:
        p1: Post = (await seed())["p1"]
        await p1.delete()
        again = await Post.first_or_create({"title": "p1"}, {"tenant_id": 1})
        assert again.id != p1.id and not again.is_trashed
        assert await titles(Post.query().with_trashed().where("title", "p1")) == ["p1", "p1"]
        assert len(await Post.query().only_trashed().where("title", "p1")) == 1
        # Restored, the old row is found again (and is the only live one with a new title).
        await again.force_delete()
        await p1.restore()
        assert (await Post.first_or_create({"title": "p1"})).id == p1.id


class TestBuilder:
    async def test_builder_delete_soft_deletes(self, scoped: Database) -> None:
        await seed()
        with count_queries() as q:
            assert await Post.query().where("tenant_id", 1).delete() == 2
        assert q.count == 1 and q.sqls[0].upper().startswith("UPDATE")
        assert await titles(Post.query()) == ["p3"]
        assert await titles(Post.query().only_trashed()) == ["p1", "p2"]
        # Trashed rows are out of the scope: deleting again stamps nothing.
        assert await Post.query().where("tenant_id", 1).delete() == 0

    async def test_builder_force_delete_and_restore(self, scoped: Database) -> None:
        rows = await seed()
        await rows["p1"].delete()
        assert await Post.query().restore() == 1
        assert await titles(Post.query()) == ["p1", "p2", "p3"]
        await rows["p1"].delete()
        # force_delete removes trashed rows too.
        assert await Post.query().where("tenant_id", 1).force_delete() == 2
        assert await titles(Post.query().with_trashed()) == ["p3"]

    async def test_or_where_cannot_escape_the_scope(self, scoped: Database) -> None:
        rows = await seed()
        await rows["p1"].delete()
        query = Post.query().where("title", "p2").or_where("title", "p1")
        assert await titles(query) == ["p2"]
        assert await titles(query.clone().with_trashed()) == ["p1", "p2"]
        only = Post.query().only_trashed().where("title", "p3").or_where("title", "p1")
        assert await titles(only) == ["p1"]

    async def test_counts_and_pages_skip_trashed_rows(self, scoped: Database) -> None:
        rows = await seed()
        await rows["p3"].delete()
        assert await Post.query().count_rows() == 2
        page = await Post.query().order_by("title").paginate(1, 10)
        assert page.total == 2 and [p.title for p in page] == ["p1", "p2"]
        assert [p.title for p in await Post.all()] != []
        assert {p.title for p in await Post.all()} == {"p1", "p2"}
        assert await Post.find_by("title", "p3") is None
        assert await Post.query().where("title", "p3").exists() is False
        assert await Post.query().with_trashed().where("title", "p3").exists() is True


class TestDeclaration:
    def test_column_must_be_declared(self) -> None:
        with pytest.raises(LucidError) as exc:

            class NoColumn(BaseModel, soft_deletes=True):
                table = "sc_authors"
                id: int = column(is_primary=True)

        assert exc.value.code == "E_INVALID_MODEL"
        assert "deleted_at" in str(exc.value)

    async def test_subclasses_inherit_and_may_opt_out(self, scoped: Database) -> None:
        class LivePost(Post):
            pass

        class EveryPost(Post, soft_deletes=False):
            pass

        rows = await seed()
        await rows["p1"].delete()
        assert {p.title for p in await LivePost.all()} == {"p2", "p3"}
        assert {p.title for p in await EveryPost.all()} == {"p1", "p2", "p3"}
        p2 = await EveryPost.find_or_fail(rows["p2"].id)
        await p2.delete()
        assert p2.is_deleted
        assert await Post.query().with_trashed().where("id", p2.id).first() is None
