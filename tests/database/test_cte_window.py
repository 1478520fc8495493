"""CTEs and window functions (issue 15, item 7): ``with_``, ``with_recursive``,
``with_materialized``/``with_not_materialized`` on database and model queries (the CTE name
usable in ``from_``, ``join`` and ``where_in``), and ``row_number``/``rank``/``dense_rank``
with ``partition_by``/``order_by``, in ``extras`` on model queries."""

from __future__ import annotations

import pytest
from sqlalchemy import column, select, table

from lucid_orm import LucidError, db
from lucid_orm import column as model_column
from lucid_orm.database import Database
from tests import models
from tests.helpers import count_queries


class Post(models.Post):
    score: int | None = model_column()


# (user_id, title, score)
ROWS = [(1, "a", 10), (1, "b", 30), (1, "c", 30), (2, "d", 5), (2, "e", 50), (3, "f", 20)]


@pytest.fixture
async def posts(database: Database) -> None:
    await db.table("posts").multi_insert(
        [{"user_id": u, "title": t, "score": s} for u, t, s in ROWS]
    )


def dialect_name() -> str:
    return db.get_connection().dialect_name


class TestWith:
    async def test_callback_body_and_from(self, posts: None) -> None:
        with count_queries() as q:
            rows = await (
                db.query()
                .with_("top", lambda q: q.from_("posts").where("score", ">=", 30))
                .from_("top")
                .select("title")
                .order_by("title")
            )
        assert [r["title"] for r in rows] == ["b", "c", "e"]
        assert q.count == 1
        assert q.sqls[0].lstrip().upper().startswith("WITH")

    async def test_builder_body_in_a_join(self, posts: None) -> None:
        totals = db.from_("posts").select("user_id").sum("score").as_("total").group_by("user_id")
        rows = await (
            db.query()
            .with_("totals", totals)
            .from_("posts")
            .join("totals", "totals.user_id", "posts.user_id")
            .select("posts.title", "totals.total")
            .order_by("posts.title")
        )
        assert [(r["title"], int(r["total"])) for r in rows] == [
            ("a", 70),
            ("b", 70),
            ("c", 70),
            ("d", 55),
            ("e", 55),
            ("f", 20),
        ]

    async def test_model_query_with_where_in_the_cte(self, posts: None) -> None:
        found = await (
            Post.query()
            .with_("low", lambda q: q.from_("posts").select("id").where("score", "<", 20))
            .where_in("id", lambda q: q.from_("low").select("id"))
            .order_by("title")
        )
        assert [p.title for p in found] == ["a", "d"]
        assert all(isinstance(p, Post) for p in found)

    async def test_column_names(self, posts: None) -> None:
        rows = await (
            db.query()
            .with_("renamed", db.from_("posts").select("title", "score"), ["label", "points"])
            .from_("renamed")
            .where("points", ">", 25)
            .order_by("label")
        )
        assert [(r["label"], r["points"]) for r in rows] == [("b", 30), ("c", 30), ("e", 50)]

    async def test_raw_and_core_bodies(self, posts: None) -> None:
        raw = db.raw("select title, score from posts where score > ?", [25])
        rows = await db.query().with_("big", raw, ["title", "score"]).from_("big").order_by("title")
        assert [r["title"] for r in rows] == ["b", "c", "e"]
        core = select(column("title")).select_from(table("posts")).where(column("score") < 10)
        rows = await db.query().with_("small", core).from_("small").select("title")
        assert rows == [{"title": "d"}]

    async def test_several_ctes_read_each_other(self, posts: None) -> None:
        rows = await (
            db.query()
            .with_("u1", lambda q: q.from_("posts").where("user_id", 1))
            .with_("u1_top", lambda q: q.from_("u1").where("score", 30))
            .from_("u1_top")
            .select("title")
            .order_by("title")
        )
        assert [r["title"] for r in rows] == ["b", "c"]

    async def test_reserved_words_are_quoted(self, posts: None) -> None:
        rows = await (
            db.query()
            .with_("select", lambda q: q.from_("posts").select("title").where("user_id", 3))
            .from_("select")
            .select("title")
            .row_number("order", "title")
        )
        assert rows == [{"title": "f", "order": 1}]

    async def test_bad_names_and_bodies(self, database: Database) -> None:
        with pytest.raises(LucidError) as info:
            db.query().with_("x; drop table posts", lambda q: q.from_("posts"))
        assert info.value.code == "E_INVALID_IDENTIFIER"
        with pytest.raises(LucidError) as info:
            db.query().with_("t", lambda q: q.from_("posts"), ["ok", "not ok"])
        assert info.value.code == "E_INVALID_IDENTIFIER"
        with pytest.raises(LucidError) as info:
            db.query().with_("t", "select 1")
        assert info.value.code == "E_INVALID_ARGUMENT"
        with pytest.raises(LucidError) as info:  # a raw body names its columns
            await db.query().with_("t", db.raw("select 1")).from_("t")
        assert info.value.code == "E_INVALID_ARGUMENT"


class TestRecursive:
    async def test_raw_recursive(self, database: Database) -> None:
        rows = await (
            db.query()
            .with_recursive(
                "nums",
                db.raw("select 1 as n union all select n + 1 from nums where n < ?", [5]),
                ["n"],
            )
            .from_("nums")
            .select("n")
            .order_by("n")
        )
        assert [int(r["n"]) for r in rows] == [1, 2, 3, 4, 5]

    async def test_anchor_and_step_builders(self, posts: None) -> None:
        # the chain of ever better posts: start at the worst, step to the next score up
        anchor = db.from_("posts").select("id", "score").where("title", "d")
        step = (
            db.from_("chain")
            .join("posts", "posts.score", ">", "chain.score")
            .select("posts.id", "posts.score")
            .where("posts.user_id", 2)
        )
        with count_queries() as q:
            rows = await (
                db.query()
                .with_recursive("chain", [anchor, step], ["id", "score"])
                .from_("chain")
                .select("score")
                .order_by("score")
            )
        assert [r["score"] for r in rows] == [5, 50]
        assert "RECURSIVE" in q.sqls[0].upper() and "UNION ALL" in q.sqls[0].upper()

    async def test_list_only_for_recursive(self, database: Database) -> None:
        with pytest.raises(LucidError) as info:
            db.query().with_("t", [db.from_("posts"), db.from_("posts")])
        assert info.value.code == "E_INVALID_ARGUMENT"


class TestMaterialized:
    @pytest.mark.parametrize(
        ("method", "hint"),
        [("with_materialized", "AS MATERIALIZED"), ("with_not_materialized", "NOT MATERIALIZED")],
    )
    async def test_hint(self, posts: None, method: str, hint: str) -> None:
        query = db.query()
        if dialect_name() == "mysql":
            with pytest.raises(LucidError) as info:
                getattr(query, method)("m", lambda q: q.from_("posts"))
            assert info.value.code == "E_NOT_SUPPORTED"
            return
        getattr(query, method)("m", lambda q: q.from_("posts").where("user_id", 3))
        with count_queries() as q:
            rows = await query.from_("m").select("title")
        assert rows == [{"title": "f"}]
        assert hint in q.sqls[0].upper()


class TestWindows:
    async def test_row_number_in_model_extras(self, posts: None) -> None:
        found = await (
            Post.query()
            .row_number("position", {"column": "score", "order": "desc"}, "user_id")
            .order_by("title")
        )
        ranks = {p.title: p.extras["position"] for p in found}
        assert ranks["e"] == 1 and ranks["d"] == 2 and ranks["f"] == 1
        assert {ranks["b"], ranks["c"]} == {1, 2} and ranks["a"] == 3
        assert found[0].score == 10  # the model's columns are still selected

    async def test_rank_and_dense_rank(self, posts: None) -> None:
        rows = await (
            db.from_("posts")
            .select("title")
            .rank("r", [{"column": "score", "order": "desc"}])
            .dense_rank("dr", {"column": "score", "order": "desc"})
            .row_number("rn", ["score", "title"])
            .order_by("title")
        )
        by_title = {r["title"]: (r["r"], r["dr"], r["rn"]) for r in rows}
        assert by_title == {
            "e": (1, 1, 6),
            "b": (2, 2, 4),
            "c": (2, 2, 5),
            "f": (4, 3, 3),
            "a": (5, 4, 2),
            "d": (6, 5, 1),
        }

    async def test_window_over_a_cte_filtered_outside(self, posts: None) -> None:
        # the best post per user: rank in a CTE, filter on the rank outside
        ranked = (
            db.from_("posts")
            .select("user_id", "title")
            .row_number("pos", [{"column": "score", "order": "desc"}, "title"], ["user_id"])
        )
        rows = await (
            db.query().with_("ranked", ranked).from_("ranked").where("pos", 1).order_by("user_id")
        )
        assert [(r["user_id"], r["title"]) for r in rows] == [(1, "b"), (2, "e"), (3, "f")]

    async def test_bad_arguments(self, database: Database) -> None:
        with pytest.raises(LucidError) as info:
            db.from_("posts").row_number("x y", "id")
        assert info.value.code == "E_INVALID_IDENTIFIER"
        with pytest.raises(LucidError) as info:
            db.from_("posts").rank("r", {"column": "id", "order": "sideways"})
        assert info.value.code == "E_INVALID_ARGUMENT"
        with pytest.raises(LucidError) as info:
            db.from_("posts").dense_rank("r", "id", "user_id; drop")
        assert info.value.code == "E_INVALID_IDENTIFIER"
