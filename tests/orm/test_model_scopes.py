"""Query scopes (SPEC §3, §8, §9): ``@scope`` functions, plain or stacked on ``@staticmethod``,
applied with ``with_scopes``/``apply``."""

from __future__ import annotations

from typing import Any

import pytest

from lucid_orm import LucidError, column, scope
from lucid_orm.database import Database
from tests import models
from tests.helpers import count_queries


class Post(models.Post):
    is_published: bool | None = column()
    score: int | None = column()

    @scope
    def published(query: Any) -> None:
        query.where("is_published", True)

    @scope
    @staticmethod
    def by_user(query: Any, user_id: int) -> None:
        query.where("user_id", user_id)

    @scope
    def min_score(query: Any, score: int = 10, *, inclusive: bool = True) -> None:
        query.where("score", ">=" if inclusive else ">", score)


@pytest.fixture
async def posts(database: Database) -> list[Post]:
    return await Post.create_many(
        [
            {"user_id": 1, "title": "a", "is_published": True, "score": 5},
            {"user_id": 1, "title": "b", "is_published": False, "score": 10},
            {"user_id": 2, "title": "c", "is_published": True, "score": 20},
            {"user_id": 1, "title": "d", "is_published": True, "score": 10},
        ]
    )


async def titles(query: Any) -> list[str]:
    return [p.title for p in await query.order_by("title")]


class TestScopes:
    async def test_plain_scope(self, posts: list[Post]) -> None:
        query = Post.query().with_scopes(lambda s: s.published())
        assert await titles(query) == ["a", "c", "d"]

    async def test_static_method_scope_with_args(self, posts: list[Post]) -> None:
        assert await titles(Post.query().with_scopes(lambda s: s.by_user(2))) == ["c"]

    async def test_chained_scopes(self, posts: list[Post]) -> None:
        query = Post.query().with_scopes(lambda s: s.published().by_user(1))
        assert await titles(query) == ["a", "d"]

    async def test_scope_defaults_and_keywords(self, posts: list[Post]) -> None:
        assert await titles(Post.query().with_scopes(lambda s: s.min_score())) == ["b", "c", "d"]
        query = Post.query().with_scopes(lambda s: s.min_score(10, inclusive=False))
        assert await titles(query) == ["c"]

    async def test_apply_is_an_alias(self, posts: list[Post]) -> None:
        query = Post.query().apply(lambda s: s.published()).apply(lambda s: s.min_score(10))
        assert await titles(query) == ["c", "d"]

    async def test_scopes_combine_with_other_clauses(self, posts: list[Post]) -> None:
        query = Post.query().where("score", "<", 15).with_scopes(lambda s: s.published())
        assert await titles(query) == ["a", "d"]
        # A scope's where joins with AND, and or_where after it groups as written.
        query = Post.query().with_scopes(lambda s: s.by_user(2)).or_where("title", "a")
        assert await titles(query) == ["a", "c"]

    async def test_scopes_apply_at_once(self, database: Database) -> None:
        query = Post.query()
        with count_queries() as q:
            query.with_scopes(lambda s: s.by_user(7))
        assert q.count == 0
        sql, bindings = query.to_sql()
        assert "user_id" in sql
        assert bindings == [7]

    async def test_unknown_scope_raises(self, database: Database) -> None:
        with pytest.raises(LucidError) as info:
            Post.query().with_scopes(lambda s: s.drafts())
        assert info.value.code == "E_UNDEFINED_SCOPE"
        assert str(info.value) == '"drafts" is not a scope on "Post" model'

    async def test_async_callback_is_rejected(self, database: Database) -> None:
        async def callback(s: Any) -> None:
            s.published()

        with pytest.raises(LucidError):
            Post.query().with_scopes(callback)

    async def test_scope_on_a_transaction_query(
        self, posts: list[Post], database: Database
    ) -> None:
        async with database.transaction() as trx:
            query = Post.query(client=trx).with_scopes(lambda s: s.published().by_user(2))
            assert [p.title for p in await query] == ["c"]
