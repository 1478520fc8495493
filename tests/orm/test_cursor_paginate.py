"""Cursor (keyset) pagination (issue 15, item 6): ``cursor_paginate(per_page, cursor)`` walks
any ordering forward and backward with opaque cursors, one statement per page with a keyset
condition and ``LIMIT per_page + 1`` (no OFFSET, no COUNT), combined with preload, where_has
and scopes; bad cursors are ``E_INVALID_CURSOR``."""

from __future__ import annotations

import base64
import datetime as dt
import enum
import json
import uuid
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    Time,
    Uuid,
)

from lucid_orm import CamelCaseNamingStrategy, LucidError, column, db, has_many, scope
from lucid_orm.database import Database
from lucid_orm.query import cursor as cursor_module
from lucid_orm.query.cursor import CursorPaginator
from lucid_orm.relations import HasMany
from tests import models
from tests.helpers import count_queries


class Post(models.Post):
    score: int | None = column()
    is_published: bool | None = column()
    created_at: dt.datetime | None = column()
    comments: HasMany[models.Comment] = has_many(lambda: models.Comment)

    @scope
    def published(query: Any) -> None:
        query.where("is_published", True)


class User(models.User):
    posts: HasMany[Post] = has_many(lambda: Post)


class StrictPost(models.Post):
    """``posts`` with ``score`` declared never NULL."""

    table = "posts"
    title: str = column()
    score: int = column()


class CamelPost(models.Post):
    table = "posts"
    naming_strategy = CamelCaseNamingStrategy()


# (title, score): scores tie so the title and then the key break the ties.
ROWS = [("e", 3), ("b", 1), ("g", 2), ("a", 3), ("d", 1), ("f", 2), ("c", 3), ("a", 3)]


@pytest.fixture
async def posts(database: Database) -> list[Post]:
    start = dt.datetime(2024, 1, 1, 12, 0, 0)
    return await Post.create_many(
        [
            {
                "title": t,
                "score": s,
                "user_id": 1,
                "is_published": i % 2 == 0,
                "created_at": start + dt.timedelta(minutes=i * 7),
            }
            for i, (t, s) in enumerate(ROWS)
        ]
    )


async def walk(query: Any, per_page: int) -> list[CursorPaginator[Any]]:
    """Every page forward, from the first."""
    pages = [await query.clone().cursor_paginate(per_page)]
    while pages[-1].next_cursor is not None:
        pages.append(await query.clone().cursor_paginate(per_page, pages[-1].next_cursor))
    return pages


def ids(page: CursorPaginator[Any]) -> list[int]:
    return [p.id for p in page]


class TestForward:
    async def test_pages_by_key(self, posts: list[Post]) -> None:
        with count_queries() as q:
            pages = await walk(Post.query().order_by("id"), 3)
        assert q.count == 3  # one statement per page, no count
        key_order = sorted(p.id for p in posts)
        assert [ids(p) for p in pages] == [key_order[0:3], key_order[3:6], key_order[6:8]]
        assert [p.has_more for p in pages] == [True, True, False]
        assert pages[0].previous_cursor is None
        assert pages[1].previous_cursor is not None and pages[2].previous_cursor is not None
        assert pages[2].next_cursor is None
        assert len(pages[0]) == 3 and pages[0][0].id == key_order[0]
        assert isinstance(pages[0].data[0], Post)
        for event in q.events:
            upper = event.sql.upper()
            assert "COUNT(" not in upper and "LIMIT" in upper
            if db.get_connection().dialect_name == "sqlite":
                # SQLAlchemy writes SQLite's LIMIT as "LIMIT ? OFFSET ?" with a constant 0
                assert upper.count("OFFSET") == 1 and event.bindings[-1] == 0
                assert event.bindings[-2] == 4  # per_page + 1
            else:
                assert "OFFSET" not in upper
                assert event.bindings[-1] == 4

    async def test_mixed_directions_with_ties(self, posts: list[Post]) -> None:
        query = Post.query().order_by("score", "desc").order_by("title")
        expected = ids_of(await query.clone().order_by("id"))
        with count_queries() as q:
            pages = await walk(query, 3)
        assert [i for p in pages for i in ids(p)] == expected
        # different directions: the expanded OR form
        assert " OR " in q.sqls[1].upper()

    async def test_same_direction_uses_a_row_value(self, posts: list[Post]) -> None:
        query = StrictPost.query().order_by("score").order_by("title")
        expected = ids_of(await query.clone().order_by("id"))
        with count_queries() as q:
            pages = await walk(query, 3)
        assert [i for p in pages for i in ids(p)] == expected
        assert "(posts.score, posts.title, posts.id) >" in q.sqls[1].replace("`", "")

    async def test_datetime_sort_column(self, posts: list[Post]) -> None:
        query = Post.query().order_by("created_at", "desc")
        pages = await walk(query, 3)
        assert [i for p in pages for i in ids(p)] == [p.id for p in reversed(posts)]

    async def test_no_rows(self, database: Database) -> None:
        page = await Post.query().cursor_paginate(5)
        assert len(page) == 0 and not page
        assert (page.next_cursor, page.previous_cursor, page.has_more) == (None, None, False)


def ids_of(rows: list[Post]) -> list[int]:
    return [r.id for r in rows]


class TestBackward:
    async def test_previous_cursors_walk_back_the_same_pages(self, posts: list[Post]) -> None:
        query = Post.query().order_by("score", "desc").order_by("title")
        forward = await walk(query, 3)
        back = [forward[-1]]
        while back[-1].previous_cursor is not None:
            back.append(await query.clone().cursor_paginate(3, back[-1].previous_cursor))
        assert [ids(p) for p in reversed(back)] == [ids(p) for p in forward]
        # the first page reached backwards is the first page: nothing before it
        assert back[-1].previous_cursor is None
        assert back[-1].has_more is True and back[-1].next_cursor is not None
        again = await query.clone().cursor_paginate(3, back[-1].next_cursor)
        assert ids(again) == ids(forward[1])


class TestCombined:
    async def test_with_preload_where_has_and_scopes(self, posts: list[Post]) -> None:
        await db.table("comments").multi_insert(
            [{"post_id": p.id, "body": f"on {p.title}"} for p in posts[:6]]
        )
        query = (
            Post.query()
            .with_scopes(lambda s: s.published())
            .where_has("comments")
            .or_where("title", "zzz")  # an or_where must not escape the keyset
            .preload("comments")
            .order_by("id")
        )
        expected = [p.id for p in posts[:6] if p.is_published]
        with count_queries() as q:
            pages = await walk(query, 2)
        assert [i for p in pages for i in ids(p)] == expected
        assert q.count == 2 * len(pages)  # the page and its preload
        assert all(c.body == f"on {p.title}" for page in pages for p in page for c in p.comments)

    async def test_related_query(self, posts: list[Post]) -> None:
        owner = await User.create({"username": "owner"})
        await Post.query().update({"user_id": owner.id + 1})
        await Post.query().where_in("id", [p.id for p in posts[:5]]).update({"user_id": owner.id})
        query = (owner.related("posts").query().where("score", 3).or_where("score", 2)).order_by(
            "score", "desc"
        )
        pages = await walk(query, 2)
        # the relation's constraint holds on every page, an or_where included
        expected = [p.id for p in await query.clone().order_by("id")]
        assert [i for p in pages for i in ids(p)] == expected
        assert sorted(expected) == sorted(p.id for p in posts[:5] if p.score in (2, 3))
        assert len(expected) == 3

    async def test_pojo_and_database_builder(self, posts: list[Post]) -> None:
        page = await Post.query().select("id", "title").pojo().order_by("title").cursor_paginate(5)
        assert [r["title"] for r in page] == ["a", "a", "b", "c", "d"]
        rest = (
            await Post.query()
            .select("id", "title")
            .pojo()
            .order_by("title")
            .cursor_paginate(5, page.next_cursor)
        )
        assert [r["title"] for r in rest] == ["e", "f", "g"]
        rows = await walk(db.from_("posts").select("id", "score").order_by("score"), 3)
        assert [r["score"] for p in rows for r in p] == [1, 1, 2, 2, 3, 3, 3, 3]


class TestSerialize:
    async def test_serialize_snake_case(self, posts: list[Post]) -> None:
        page = await Post.query().order_by("id").cursor_paginate(2)
        out = page.serialize({"fields": ["id"]})
        assert out == {
            "meta": {
                "per_page": 2,
                "next_cursor": page.next_cursor,
                "previous_cursor": None,
                "has_more": True,
            },
            "data": [{"id": posts[0].id}, {"id": posts[1].id}],
        }

    async def test_serialize_camel_case(self, posts: list[Post]) -> None:
        page = await CamelPost.query().order_by("id").cursor_paginate(20)
        meta = page.serialize()["meta"]
        assert meta == {"perPage": 20, "nextCursor": None, "previousCursor": None, "hasMore": False}

    async def test_cursor_is_url_safe(self, posts: list[Post]) -> None:
        page = await Post.query().order_by("created_at", "desc").cursor_paginate(2)
        assert page.next_cursor is not None
        assert all(c.isalnum() or c in "-_" for c in page.next_cursor)


class TestTokenText:
    @pytest.mark.parametrize(
        "values",
        [[1], [0, -7], [2**70], [True], [1.5], ['a"b'], [1, "x"], []],
    )
    def test_token_is_the_json_document(self, values: list[Any]) -> None:
        # Integer values are written without the JSON encoder: the token must stay the exact
        # text it writes, and come back as the same values (bools are not ints here).
        for direction in ("next", "prev"):
            token = cursor_module._pack(list(values), direction, [], 123)
            text = json.dumps(
                {"d": direction[0], "v": values, "o": 123}, separators=(",", ":")
            ).encode()
            assert token == base64.urlsafe_b64encode(text).rstrip(b"=").decode()
            assert json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))) == {
                "d": direction[0],
                "v": values,
                "o": 123,
            }


def tamper(cursor: str, change: dict[str, Any]) -> str:
    doc = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    doc.update(change)
    return base64.urlsafe_b64encode(json.dumps(doc).encode()).rstrip(b"=").decode()


class TestInvalid:
    @pytest.mark.parametrize(
        "cursor",
        ["", "not a cursor", "!!!", base64.urlsafe_b64encode(b"[1, 2]").decode(), "eyJ"],
    )
    async def test_garbage(self, posts: list[Post], cursor: str) -> None:
        with count_queries() as q, pytest.raises(LucidError) as info:
            await Post.query().order_by("id").cursor_paginate(2, cursor)
        assert info.value.code == "E_INVALID_CURSOR"
        assert info.value.status == 400
        assert q.count == 0

    async def test_tampered_and_foreign_cursors(self, posts: list[Post]) -> None:
        page = await Post.query().order_by("id").cursor_paginate(2)
        assert page.next_cursor is not None
        bad = [
            tamper(page.next_cursor, {"v": ["one"]}),  # not an int
            tamper(page.next_cursor, {"v": [1, 2]}),  # too many values
            tamper(page.next_cursor, {"d": "x"}),
            tamper(page.next_cursor, {"o": 1}),
            tamper(page.next_cursor, {"v": [{"t": "dt", "v": "yesterday"}]}),
        ]
        for cursor in bad:
            with pytest.raises(LucidError) as info:
                await Post.query().order_by("id").cursor_paginate(2, cursor)
            assert info.value.code == "E_INVALID_CURSOR", cursor
        # a cursor of another ordering
        with pytest.raises(LucidError) as info:
            await Post.query().order_by("title").cursor_paginate(2, page.next_cursor)
        assert info.value.code == "E_INVALID_CURSOR"

    async def test_raw_order_is_refused(self, posts: list[Post]) -> None:
        with pytest.raises(LucidError) as info:
            await Post.query().order_by_raw("lower(title)").cursor_paginate(2)
        assert info.value.code == "E_INVALID_ARGUMENT"

    async def test_null_in_a_column_not_annotated_optional_is_refused(
        self, posts: list[Post]
    ) -> None:
        await Post.query().where("id", posts[0].id).update({"score": None})
        # In the direction where the database sorts NULLs first (PostgreSQL sorts them last
        # in ascending order): the row is read, and refused, on the first page.
        direction = "desc" if db.get_connection().dialect_name == "postgresql" else "asc"
        with pytest.raises(LucidError) as info:
            await walk(StrictPost.query().order_by("score", direction), 3)
        assert info.value.code == "E_INVALID_ARGUMENT"
        assert "NULL" in info.value.message

    async def test_bad_per_page(self, posts: list[Post]) -> None:
        with pytest.raises(LucidError) as info:
            await Post.query().cursor_paginate(0)
        assert info.value.code == "E_INVALID_ARGUMENT"


class TestTokens:
    async def test_tokens_are_the_same_however_often_read(self, posts: list[Post]) -> None:
        first = await Post.query().order_by("score").cursor_paginate(3)
        assert first.has_more and first.previous_cursor is None
        token = first.next_cursor
        assert token is not None and first.next_cursor == token
        second = await Post.query().order_by("score").cursor_paginate(3, token)
        assert second.previous_cursor == second.previous_cursor is not None
        back = await Post.query().order_by("score").cursor_paginate(3, second.previous_cursor)
        assert [p.id for p in back] == [p.id for p in first]
        assert first.get_meta()["next_cursor"] == token
        assert first.serialize()["meta"]["has_more"] is True

    async def test_tokens_can_be_replaced(self, posts: list[Post]) -> None:
        page = await Post.query().order_by("id").cursor_paginate(3)
        page.next_cursor = None
        assert page.next_cursor is None and page.has_more is False
        page.previous_cursor = "x"
        assert page.previous_cursor == "x"

    async def test_a_row_mutated_after_the_page_keeps_its_token(self, posts: list[Post]) -> None:
        page = await Post.query().order_by("score").cursor_paginate(3)
        page.data[-1].score = 99
        following = await Post.query().order_by("score").cursor_paginate(3, page.next_cursor)
        everyone = sorted(posts, key=lambda p: (p.score, p.id))
        assert [p.id for p in following] == [p.id for p in everyone[3:6]]


# Off with ``LUCID_FAST_PATHS=0``: every token is then decoded the long way.
REMEMBER = cursor_module._REMEMBER


class TestRememberedTokens:
    """A token this process packed is decoded by look-up (``cursor._PACKED``): the same pages
    and the same refusals as decoding it the long way."""

    @pytest.mark.parametrize(
        "order",
        [[("id", "asc")], [("created_at", "desc")], [("score", "desc"), ("title", "asc")]],
    )
    async def test_same_pages_as_the_long_way(
        self, posts: list[Post], order: list[tuple[str, str]]
    ) -> None:
        query = Post.query()
        for name, direction in order:
            query = query.order_by(name, direction)
        remembered = await walk(query, 3)
        tokens = [p.next_cursor for p in remembered[:-1]]
        assert all((t in cursor_module._PACKED) == REMEMBER for t in tokens)
        cursor_module._PACKED.clear()
        long_way = await walk(query, 3)
        assert [ids(p) for p in remembered] == [ids(p) for p in long_way]
        assert [p.next_cursor for p in remembered] == [p.next_cursor for p in long_way]
        # backwards from a remembered previous cursor, and with none remembered
        last = long_way[-1]
        assert (last.previous_cursor in cursor_module._PACKED) == REMEMBER
        back = await query.clone().cursor_paginate(3, last.previous_cursor)
        cursor_module._PACKED.clear()
        again = await query.clone().cursor_paginate(3, last.previous_cursor)
        assert ids(back) == ids(again) == ids(long_way[-2])

    async def test_datetime_values_come_back_as_decoded(self, posts: list[Post]) -> None:
        page = await Post.query().order_by("created_at", "desc").cursor_paginate(3)
        token = page.next_cursor
        assert token is not None
        keys = cursor_module.order_keys(
            Post.query().order_by("created_at", "desc").order_by("id").state.order_by, "t"
        )
        remembered = cursor_module.decode_cursor(token, keys)
        cursor_module._PACKED.clear()
        assert cursor_module.decode_cursor(token, keys) == remembered
        assert isinstance(remembered[1][0], dt.datetime)

    async def test_foreign_ordering_is_refused_when_remembered(self, posts: list[Post]) -> None:
        page = await Post.query().order_by("id").cursor_paginate(2)
        token = page.next_cursor
        assert (token in cursor_module._PACKED) == REMEMBER
        with count_queries() as q, pytest.raises(LucidError) as info:
            await Post.query().order_by("title").cursor_paginate(2, token)
        assert info.value.code == "E_INVALID_CURSOR" and q.count == 0

    async def test_subclassed_scalars_are_not_remembered(self, database: Database) -> None:
        keys = score_keys()
        token = cursor_module.encode_cursor([Level.HIGH], "next", keys)
        assert token not in cursor_module._PACKED
        forward, values = cursor_module.decode_cursor(token, keys)
        assert forward and values == [2] and type(values[0]) is int
        plain = cursor_module.encode_cursor([2], "next", keys)
        assert plain == token and (plain in cursor_module._PACKED) == REMEMBER
        assert type(cursor_module.decode_cursor(plain, keys)[1][0]) is int

    async def test_bounded(self, database: Database) -> None:
        keys = score_keys()
        for i in range(cursor_module._PACKED_MAX + 50):
            cursor_module.encode_cursor([i], "next", keys)
        assert len(cursor_module._PACKED) == (cursor_module._PACKED_MAX if REMEMBER else 0)
        newest = cursor_module.encode_cursor([10**6], "prev", keys)
        assert cursor_module.decode_cursor(newest, keys) == (False, [10**6])


class TestRememberedOrderings:
    """The keys, checksum and ORDER BY of an ordering are kept per columns and directions
    (``cursor._ORDERINGS``): pages of one ordering never get another's, whichever ran
    first."""

    async def test_directions_and_columns_stay_apart(self, posts: list[Post]) -> None:
        orders = [
            [("score", "asc")],
            [("score", "desc")],
            [("score", "desc"), ("title", "asc")],
            [("score", "desc"), ("title", "desc")],
        ]
        for _ in range(2):  # the second round runs on remembered orderings
            for order in orders:
                query = Post.query()
                for name, direction in order:
                    query = query.order_by(name, direction)
                expected = ids_of(await query.clone().order_by("id"))
                with count_queries() as q:
                    pages = await walk(query, 3)
                assert [i for p in pages for i in ids(p)] == expected
                # the first page's ORDER BY: the columns as asked, the key last
                wanted = [f"posts.{n} {d.upper()}" for n, d in order] + ["posts.id ASC"]
                assert ", ".join(wanted) in q.sqls[0].replace("`", "").replace('"', "")
                back = await query.clone().cursor_paginate(3, pages[-1].previous_cursor)
                assert ids(back) == ids(pages[-2])
        assert (len(cursor_module._ORDERINGS) >= len(orders)) == REMEMBER

    async def test_a_cursor_of_the_other_direction_is_refused(self, posts: list[Post]) -> None:
        asc = await Post.query().order_by("score").cursor_paginate(2)
        await Post.query().order_by("score", "desc").cursor_paginate(2)
        with pytest.raises(LucidError) as info:
            await Post.query().order_by("score", "desc").cursor_paginate(2, asc.next_cursor)
        assert info.value.code == "E_INVALID_CURSOR"

    async def test_bounded(self, posts: list[Post]) -> None:
        table = Post.query().order_by("id").state.order_by[0].element.table
        for i in range(cursor_module._ORDERINGS_MAX + 10):
            cursor_module.ordering([table.c.id.label(f"id{i}")], [table.c.id])
        assert len(cursor_module._ORDERINGS) <= cursor_module._ORDERINGS_MAX
        with pytest.raises(LucidError):
            cursor_module.ordering([table.c.id + 1], [table.c.id])


class LatePost(models.Post):
    """``posts`` whose ``score`` annotation names a type defined after the model (its column
    type given): whether it is optional is not known until that name exists."""

    table = "posts"
    score: _LaterScore | None = column(type_=Integer())  # type: ignore[name-defined]  # noqa: F821


class TestRememberedPagePlans:
    """What every page of a model query needs of its ordering (keys, their nullability, the
    sort value readers, the ORDER BY) is kept per ordering, model and dict-or-instance
    reading (``cursor._PLANS``): a query of another shape never gets it."""

    async def test_instances_and_dicts_of_one_ordering_stay_apart(self, posts: list[Post]) -> None:
        for _ in range(2):  # the second round runs on remembered plans
            models_walk = await walk(Post.query().order_by("score").order_by("title"), 3)
            dicts_walk = await walk(Post.query().pojo().order_by("score").order_by("title"), 3)
            assert [ids(p) for p in models_walk] == [[r["id"] for r in page] for page in dicts_walk]
            assert all(isinstance(r, dict) for page in dicts_walk for r in page)
            assert all(isinstance(r, Post) for page in models_walk for r in page)
        assert (len(cursor_module._PLANS) >= 2) == REMEMBER

    async def test_models_of_one_table_keep_their_own_nullability(self, posts: list[Post]) -> None:
        await Post.query().where("id", posts[0].id).update({"score": None})
        direction = "desc" if db.get_connection().dialect_name == "postgresql" else "asc"
        for _ in range(2):
            pages = await walk(Post.query().order_by("score", direction), 3)
            assert sum(len(p) for p in pages) == len(ROWS)
            with pytest.raises(LucidError) as info:
                await walk(StrictPost.query().order_by("score", direction), 3)
            assert info.value.code == "E_INVALID_ARGUMENT"

    async def test_a_nullability_not_known_yet_is_asked_again(
        self, posts: list[Post], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # As first loaded (a run on another dialect found the name).
        monkeypatch.setattr(LatePost._lucid, "optional", {})
        await Post.query().where("id", posts[0].id).update({"score": None})
        direction = "desc" if db.get_connection().dialect_name == "postgresql" else "asc"
        query = LatePost.query().order_by("score", direction)
        # The annotation does not resolve: the column is taken as holding no NULLs.
        with pytest.raises(LucidError) as info:
            await walk(query, 3)
        assert info.value.code == "E_INVALID_ARGUMENT"
        monkeypatch.setitem(globals(), "_LaterScore", int)
        pages = await walk(query, 3)
        assert sum(len(p) for p in pages) == len(ROWS)

    async def test_bounded(self, posts: list[Post]) -> None:
        table = Post.query().order_by("id").state.order_by[0].element.table
        order = [table.c.id.asc()]
        for i in range(cursor_module._PLANS_MAX + 10):
            cursor_module.page_plan(order, [table.c.id], lambda key: repr, None, ("shape", i))
        assert len(cursor_module._PLANS) <= cursor_module._PLANS_MAX


# Tokens written before the token code was last changed (the same text as ever): each must
# still decode to the same position. (columns, descending, token, values); ``n`` may hold NULL.
_TOKEN_TABLE = Table(
    "tokens",
    MetaData(),
    Column("id", Integer),
    Column("name", String),
    Column("at", DateTime(timezone=True)),
    Column("day", Date),
    Column("tm", Time),
    Column("price", Numeric),
    Column("ratio", Float),
    Column("flag", Boolean),
    Column("blob", LargeBinary),
    Column("ref", Uuid),
    Column("n", Integer),
)
_OLD_TOKENS: list[tuple[list[str], list[bool], str, bool, list[Any]]] = [
    (["id"], [False], "eyJkIjoibiIsInYiOls0Ml0sIm8iOjIxMDY1ODYwMzh9", True, [42]),
    (["id"], [True], "eyJkIjoicCIsInYiOls3XSwibyI6MjMzMTEzNDAxfQ", False, [7]),
    (
        ["name", "id"],
        [False, False],
        "eyJkIjoibiIsInYiOlsiXHUwMGU5XCJ4IiwzXSwibyI6MjMyNDA4NTA3NH0",
        True,
        ['\u00e9"x', 3],
    ),
    (
        ["at", "id"],
        [True, False],
        "eyJkIjoicCIsInYiOlt7InQiOiJkdCIsInYiOiIyMDI0LTAxLTAyVDAzOjA0OjA1LjAwMDAwNiswMDowMCJ9"
        "LDldLCJvIjozMzQ5Njg2ODQwfQ",
        False,
        [dt.datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=dt.UTC), 9],
    ),
    (
        ["day", "tm", "id"],
        [False, False, False],
        "eyJkIjoibiIsInYiOlt7InQiOiJkIiwidiI6IjIwMjQtMDUtMDYifSx7InQiOiJ0bSIsInYiOiIwNzowODow"
        "OSJ9LDFdLCJvIjozMTE1NTIzMTg5fQ",
        True,
        [dt.date(2024, 5, 6), dt.time(7, 8, 9), 1],
    ),
    (
        ["price", "ratio", "flag", "id"],
        [False, True, False, False],
        "eyJkIjoibiIsInYiOlt7InQiOiJkZWMiLCJ2IjoiMTIuNTAifSwxLjUsdHJ1ZSwyXSwibyI6MjgwNDQ4NTA5M30",
        True,
        [Decimal("12.50"), 1.5, True, 2],
    ),
    (
        ["blob", "ref", "id"],
        [False, False, False],
        "eyJkIjoicCIsInYiOlt7InQiOiJiIiwidiI6IkFQOWhZZz09In0seyJ0IjoidXVpZCIsInYiOiIxMjM0NTY3"
        "OC0xMjM0LTU2NzgtMTIzNC01Njc4MTIzNDU2NzgifSw1XSwibyI6Mzk3ODI1NzAzOX0",
        False,
        [b"\x00\xffab", uuid.UUID("12345678-1234-5678-1234-567812345678"), 5],
    ),
    (
        ["n", "id"],
        [False, False],
        "eyJkIjoibiIsInYiOltudWxsLDRdLCJvIjoyMjg4ODgyOTM2fQ",
        True,
        [None, 4],
    ),
    (
        ["id"],
        [False],
        "eyJkIjoibiIsInYiOlsxMTgwNTkxNjIwNzE3NDExMzAzNDI0XSwibyI6MjEwNjU4NjAzOH0",
        True,
        [2**70],
    ),
]


class TestOldTokens:
    @pytest.mark.parametrize("case", _OLD_TOKENS, ids=lambda c: ",".join(c[0]))
    def test_decode_to_the_same_position(
        self, case: tuple[list[str], list[bool], str, bool, list[Any]]
    ) -> None:
        names, descs, token, forward, values = case
        keys = [
            cursor_module.OrderKey(_TOKEN_TABLE.c[n], d, n, n == "n")
            for n, d in zip(names, descs, strict=True)
        ]
        cursor_module._PACKED.pop(token, None)  # the long way, as from another process
        decoded = cursor_module.decode_cursor(token, keys)
        assert decoded == (forward, values)
        assert [type(v) for v in decoded[1]] == [type(v) for v in values]
        # And the same values give the same token today (then decoded by look-up).
        again = cursor_module.encode_cursor(values, "next" if forward else "prev", keys)
        assert again == token
        assert cursor_module.decode_cursor(again, keys) == (forward, values)


def score_keys() -> list[cursor_module.OrderKey]:
    return cursor_module.order_keys(Post.query().order_by("score").state.order_by, "test")


class Level(enum.IntEnum):
    HIGH = 2


class TestNulls:
    """Sort columns annotated optional (``int | None``) may hold NULLs: pages follow the
    database's own NULL order (PostgreSQL: above every value; SQLite, MySQL: below), forward
    and backward, with no row lost or repeated."""

    @pytest.fixture
    async def with_nulls(self, posts: list[Post]) -> list[Post]:
        # Three NULL scores, among ties of every other score; one NULL creation time.
        for i in (0, 3, 5):
            await Post.query().where("id", posts[i].id).update({"score": None})
        await Post.query().where("id", posts[6].id).update({"created_at": None})
        return posts

    @pytest.mark.parametrize("direction", ["asc", "desc"])
    @pytest.mark.parametrize("per_page", [1, 2, 3])
    async def test_walks_every_row_in_the_databases_order(
        self, with_nulls: list[Post], direction: str, per_page: int
    ) -> None:
        query = Post.query().order_by("score", direction)
        # The order the database itself gives the query, the key breaking ties.
        expected = [p.id for p in await query.clone().order_by("id")]
        assert len(expected) == len(ROWS)
        pages = await walk(query, per_page)
        assert [i for page in pages for i in ids(page)] == expected
        assert all(len(page) == per_page for page in pages[:-1])
        # And back again from the last page, through the same pages.
        back = [pages[-1]]
        while back[-1].previous_cursor is not None:
            back.append(await query.clone().cursor_paginate(per_page, back[-1].previous_cursor))
        assert [ids(page) for page in reversed(back)] == [ids(page) for page in pages]

    @pytest.mark.parametrize(
        "order", [("score", "asc", "title", "desc"), ("title", "asc", "score", "desc")]
    )
    async def test_mixed_directions_and_a_second_nullable_column(
        self, with_nulls: list[Post], order: tuple[str, str, str, str]
    ) -> None:
        query = (
            Post.query()
            .order_by(order[0], order[1])
            .order_by(order[2], order[3])
            .order_by("created_at", "desc")
        )
        expected = [p.id for p in await query.clone().order_by("id")]
        pages = await walk(query, 2)
        assert [i for page in pages for i in ids(page)] == expected

    async def test_a_null_boundary_goes_through_the_cursor(self, with_nulls: list[Post]) -> None:
        # The first page ends on a NULL score in the dialect's NULL order.
        direction = "asc" if db.get_connection().dialect_name != "postgresql" else "desc"
        query = Post.query().order_by("score", direction)
        first = await query.clone().cursor_paginate(2)
        assert [p.score for p in first] == [None, None]
        with count_queries() as q:
            second = await query.clone().cursor_paginate(2, first.next_cursor)
        assert len(q) == 1
        assert second[0].score is None
        assert not set(ids(first)) & set(ids(second))

    async def test_a_forged_null_in_a_column_that_holds_none_is_refused(
        self, with_nulls: list[Post]
    ) -> None:
        token = base64.urlsafe_b64encode(
            json.dumps(
                {
                    "d": "n",
                    "v": [None, None],
                    "o": cursor_module.signature(
                        cursor_module.ordering(
                            [StrictPost.query().order_by("score").state.order_by[0]],
                            [StrictPost.query()._info.key_columns[0]],
                        ).keys
                    ),
                }
            ).encode()
        ).decode()
        with pytest.raises(LucidError) as info:
            await StrictPost.query().order_by("score").cursor_paginate(2, token)
        assert info.value.code == "E_INVALID_CURSOR"

    async def test_the_row_value_stays_where_nulls_sort_before_the_boundary(
        self, with_nulls: list[Post]
    ) -> None:
        # Ascending, forward, past non-NULL values: SQLite and MySQL sort NULL first, so a
        # row-value comparison is exact (and index-friendly); PostgreSQL sorts NULL last,
        # and the NULL rows must be taken in.
        query = Post.query().order_by("score").order_by("title")
        first = await query.clone().cursor_paginate(4)
        assert first[-1].score is not None
        with count_queries() as q:
            await query.clone().cursor_paginate(4, first.next_cursor)
        sql = q.sqls[0].replace("`", "").upper()
        if db.get_connection().dialect_name == "postgresql":
            assert "POSTS.SCORE IS NULL" in sql
        else:
            assert "(POSTS.SCORE, POSTS.TITLE, POSTS.ID) >" in sql and " NULL" not in sql
