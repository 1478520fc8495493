"""Global scopes (SPEC §10): declared on the model (a ``global_scopes`` dict or
``@global_scope``) or added at run time, applied to every query of the model — finders, builder
reads, counts, pages, updates and deletes — as one group AND-ed with the user's conditions;
``without_global_scopes`` lifts them per query."""

from __future__ import annotations

from typing import Any

import pytest

from lucid_orm import BaseModel, LucidError, ModelQueryBuilder, column, global_scope
from lucid_orm.database import Database
from tests.helpers import count_queries
from tests.scoped_models import Author, Post, current_tenant, scoped, scoped_tables, seed

__all__ = ["scoped", "scoped_tables"]


async def names(query: Any) -> list[str]:
    return [a.name for a in await query.order_by("name")]


async def titles(query: Any) -> list[str]:
    return [p.title for p in await query.order_by("title")]


class TestDeclared:
    async def test_dict_scope_applies_to_every_read(self, scoped: Database) -> None:
        rows = await seed()
        current_tenant.set(1)
        assert await names(Author.query()) == ["ada"]
        assert [a.name for a in await Author.all()] == ["ada"]
        assert await Author.find(rows["bob"].id) is None
        assert (await Author.find_or_fail(rows["ada"].id)).name == "ada"
        assert await Author.find_by("name", "bob") is None
        assert await Author.first() is not None
        assert await Author.query().where("name", "bob").first() is None
        assert await Author.query().count_rows() == 1
        page = await Author.query().paginate(1, 10)
        assert page.total == 1 and [a.name for a in page] == ["ada"]
        plain: list[Any] = await Author.query().pojo()
        assert [r["name"] for r in plain] == ["ada"]

    async def test_decorated_scope(self, scoped: Database) -> None:
        await seed()
        current_tenant.set(2)
        assert await titles(Post.query()) == ["p3"]
        current_tenant.set(1)
        assert await titles(Post.query()) == ["p1", "p2"]

    async def test_scope_reads_its_context_when_the_query_compiles(self, scoped: Database) -> None:
        await seed()
        query = Author.query()
        current_tenant.set(2)
        assert await names(query.clone()) == ["bob"]
        current_tenant.set(None)
        assert await names(query.clone()) == ["ada", "bob"]

    async def test_find_takes_one_statement(self, scoped: Database) -> None:
        rows = await seed()
        current_tenant.set(2)
        with count_queries() as q:
            assert await Author.find(rows["ada"].id) is None
        assert q.count == 1 and "tenant_id" in q.sqls[0]

    async def test_or_where_cannot_escape(self, scoped: Database) -> None:
        await seed()
        current_tenant.set(1)
        query = Author.query().where("name", "nobody").or_where("name", "bob")
        assert await names(query) == []
        query = Author.query().where(lambda q: q.where("name", "bob").or_where("name", "ada"))
        assert await names(query) == ["ada"]


class TestOptOut:
    async def test_without_named_and_all_scopes(self, scoped: Database) -> None:
        rows = await seed()
        await rows["p1"].delete()
        current_tenant.set(2)
        assert await titles(Post.query()) == ["p3"]
        assert await titles(Post.query().without_global_scopes("tenant")) == ["p2", "p3"]
        assert await titles(Post.query().without_global_scopes()) == ["p1", "p2", "p3"]
        assert await titles(Post.query().with_trashed()) == ["p3"]
        query = Post.query().without_global_scopes("tenant").with_trashed()
        assert await titles(query) == ["p1", "p2", "p3"]

    async def test_anywhere_in_the_chain(self, scoped: Database) -> None:
        await seed()
        current_tenant.set(1)
        query = Author.query().where("name", "bob").without_global_scopes()
        assert await names(query) == ["bob"]
        # A clone taken before the call keeps the scope.
        base = Author.query().where("name", "bob")
        lifted = base.clone().without_global_scopes("tenant")
        assert await names(base) == []
        assert await names(lifted) == ["bob"]


class TestWrites:
    async def test_builder_update_and_delete_are_scoped(self, scoped: Database) -> None:
        await seed()
        current_tenant.set(1)
        assert await Author.query().update({"name": "renamed"}) == 1
        assert await Author.query().delete() == 1
        current_tenant.set(None)
        assert await names(Author.query()) == ["bob"]

    async def test_soft_delete_through_a_scoped_builder(self, scoped: Database) -> None:
        await seed()
        current_tenant.set(2)
        assert await Post.query().delete() == 1
        current_tenant.set(None)
        assert await titles(Post.query()) == ["p1", "p2"]


class TestRunTime:
    async def test_add_and_remove(self, scoped: Database) -> None:
        class Named(BaseModel):
            table = "sc_authors"
            id: int = column(is_primary=True)
            name: str = column()

        await seed()
        Named.add_global_scope("no_bob", lambda q: q.where_not("name", "bob"))
        assert [n.name for n in await Named.all()] == ["ada"]
        assert await Named.query().without_global_scopes("no_bob").count_rows() == 2
        Named.remove_global_scope("no_bob")
        Named.remove_global_scope("never_added")
        assert await Named.query().count_rows() == 2

    def test_refused_scopes(self) -> None:
        async def not_plain(query: Any) -> None:
            pass

        with pytest.raises(LucidError) as exc:
            Author.add_global_scope("async", not_plain)
        assert exc.value.code == "E_INVALID_SCOPE"
        with pytest.raises(LucidError) as exc:
            Author.add_global_scope("", lambda q: None)
        assert exc.value.code == "E_INVALID_SCOPE"
        with pytest.raises(LucidError) as exc:

            class Bad(BaseModel):
                table = "sc_authors"
                global_scopes = {"x": 1}  # type: ignore[dict-item]  # noqa: RUF012
                id: int = column(is_primary=True)

        assert exc.value.code == "E_INVALID_SCOPE"

    async def test_inherited_and_decorated_on_a_subclass(self, scoped: Database) -> None:
        class AdaPost(Post):
            @global_scope("ada_only")
            @staticmethod
            def ada_only(query: ModelQueryBuilder[Any]) -> None:
                query.where("title", "in", ["p1", "p2"])

        await seed()
        current_tenant.set(2)
        assert await AdaPost.query().count_rows() == 0
        assert await AdaPost.query().without_global_scopes("tenant").count_rows() == 2
        # The parent model has no such scope.
        assert await Post.query().without_global_scopes("tenant").count_rows() == 3
