"""Bad builder arguments are ours to refuse (issue 12, finding 10): pages, limits, operators,
column names and values that SQLAlchemy or a driver used to reject with a ``ValueError``,
``TypeError``, ``ArgumentError`` or ``KeyError`` — some only after statements had run — raise a
``LucidError`` with a code before any statement is sent."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from lucid_orm import LucidError, before, db, has_many
from lucid_orm.database import Database
from lucid_orm.relations import HasMany
from tests import models
from tests.helpers import count_queries
from tests.models import Post

paginate_hooks: list[str] = []


class User(models.BaseUser):
    posts: HasMany[Post] = has_many(lambda: Post)

    @before("paginate")
    def before_paginate(query: Any) -> None:
        paginate_hooks.append("before:paginate")


@pytest.fixture
async def alice(database: Database) -> User:
    paginate_hooks.clear()
    user = await User.create({"username": "alice"})
    await Post.create({"user_id": user.id, "title": "hello"})
    return user


async def refused(run: Callable[[], Any], code: str, message: str) -> LucidError:
    """``run`` (building and, when awaitable, running a query) raises a ``LucidError`` with
    ``code`` and ``message`` in its text, and no statement reached the database."""
    with count_queries() as log, pytest.raises(LucidError) as info:
        result = run()
        if hasattr(result, "__await__"):
            await result
    assert type(info.value) is LucidError
    assert info.value.code == code
    assert message in info.value.message, info.value.message
    assert log.count == 0, log.sqls
    return info.value


class TestPages:
    @pytest.mark.parametrize(
        ("page", "per_page", "message"),
        [
            (1, 0, "paginate() expects per_page to be an int of 1 or more, got 0"),
            (1, -5, "paginate() expects per_page to be an int of 1 or more, got -5"),
            (0, 10, "paginate() expects page to be an int of 1 or more, got 0"),
            (-1, 10, "paginate() expects page to be an int of 1 or more, got -1"),
            ("2", 10, "paginate() expects page to be an int of 1 or more, got '2'"),
            (1, 2.5, "paginate() expects per_page to be an int of 1 or more, got 2.5"),
            (True, 10, "paginate() expects page to be an int of 1 or more, got True"),
            (1, True, "paginate() expects per_page to be an int of 1 or more, got True"),
            (None, 10, "paginate() expects page to be an int of 1 or more, got None"),
        ],
    )
    async def test_paginate_checks_before_both_queries(
        self, alice: User, page: Any, per_page: Any, message: str
    ) -> None:
        await refused(
            lambda: db.from_("users").paginate(page, per_page), "E_INVALID_ARGUMENT", message
        )
        await refused(lambda: User.query().paginate(page, per_page), "E_INVALID_ARGUMENT", message)
        await refused(
            lambda: alice.related("posts").query().paginate(page, per_page),
            "E_INVALID_ARGUMENT",
            message,
        )
        assert paginate_hooks == []  # refused before the before:paginate hook too

    async def test_paginate_of_a_parent_without_key(self, alice: User) -> None:
        # No query would run at all for a parent whose key is NULL: the arguments still count.
        await refused(
            lambda: User().related("posts").query().paginate(1, 0),
            "E_INVALID_ARGUMENT",
            "per_page to be an int of 1 or more",
        )

    async def test_valid_pages_still_work(self, alice: User) -> None:
        page = await db.from_("users").paginate(1, 1)
        assert (page.total, page.per_page, page.current_page) == (1, 1, 1)
        page_of_models = await User.query().paginate(2, 1)
        assert (page_of_models.total, len(page_of_models)) == (1, 0)
        assert paginate_hooks == ["before:paginate"]

    @pytest.mark.parametrize(
        ("build", "message"),
        [
            (lambda q: q.for_page(0, 10), "for_page() expects page to be an int of 1 or more"),
            (lambda q: q.for_page(1, 0), "for_page() expects per_page to be an int of 1 or more"),
            (lambda q: q.for_page("x", 10), "for_page() expects page to be an int of 1 or more"),
            (lambda q: q.for_page(1, -3), "for_page() expects per_page to be an int of 1 or more"),
            (lambda q: q.limit(-1), "limit() expects a non-negative int, got -1"),
            (lambda q: q.limit("5"), "limit() expects a non-negative int, got '5'"),
            (lambda q: q.limit(True), "limit() expects a non-negative int, got True"),
            (lambda q: q.offset(-1), "offset() expects a non-negative int, got -1"),
            (lambda q: q.offset(1.5), "offset() expects a non-negative int, got 1.5"),
        ],
    )
    async def test_limits(self, alice: User, build: Callable[[Any], Any], message: str) -> None:
        await refused(lambda: build(db.from_("users")), "E_INVALID_ARGUMENT", message)
        await refused(lambda: build(User.query()), "E_INVALID_ARGUMENT", message)


_BAD_COLUMN = "expected an identifier like"

# (id, builder on users, code, message fragment): each used to leak a foreign exception or
# send a statement that failed (or, with a list value on MySQL, compared with its str()).
CASES: list[Any] = [
    ("operator", lambda q: q.where("id", "=== ", 1), "E_INVALID_OPERATOR", 'operator "=== "'),
    ("operator-type", lambda q: q.where("id", 5, 1), "E_INVALID_OPERATOR", "Invalid operator 5"),
    ("having-operator", lambda q: q.having("id", "=<", 1), "E_INVALID_OPERATOR", '"=<"'),
    (
        "join-operator",
        lambda q: q.join("posts", "users.id", "=== ", "posts.user_id"),
        "E_INVALID_OPERATOR",
        '"=== "',
    ),
    ("column-int", lambda q: q.where(5, 1), "E_INVALID_IDENTIFIER", "column name 5"),
    ("column-none", lambda q: q.where_null(None), "E_INVALID_IDENTIFIER", "column name None"),
    ("column-list", lambda q: q.where(["id"], 1), "E_INVALID_IDENTIFIER", "column name ['id']"),
    ("column-dict-key", lambda q: q.where({3: 1}), "E_INVALID_IDENTIFIER", "column name 3"),
    ("column-sql", lambda q: q.where("id; drop", 1), "E_INVALID_IDENTIFIER", _BAD_COLUMN),
    ("select-int", lambda q: q.select(5), "E_INVALID_IDENTIFIER", "column name 5"),
    ("select-none", lambda q: q.select(None), "E_INVALID_IDENTIFIER", "column name None"),
    ("select-alias", lambda q: q.select({3: "id"}), "E_INVALID_IDENTIFIER", "Invalid alias 3"),
    ("distinct-int", lambda q: q.distinct(3), "E_INVALID_IDENTIFIER", "column name 3"),
    ("order-none", lambda q: q.order_by(None), "E_INVALID_IDENTIFIER", "column name None"),
    (
        "order-dict",
        lambda q: q.order_by([{"col": "id"}]),
        "E_INVALID_ARGUMENT",
        "order_by() dicts name their column",
    ),
    ("order-direction", lambda q: q.order_by("id", "up"), "E_INVALID_ARGUMENT", "direction"),
    ("group-int", lambda q: q.group_by(5), "E_INVALID_IDENTIFIER", "column name 5"),
    ("group-none", lambda q: q.group_by(None), "E_INVALID_IDENTIFIER", "column name None"),
    ("having-int", lambda q: q.having(3, ">", 1), "E_INVALID_IDENTIFIER", "column name 3"),
    ("count-float", lambda q: q.count(3.5), "E_INVALID_IDENTIFIER", "column name 3.5"),
    ("count-list", lambda q: q.count(["id"]), "E_INVALID_IDENTIFIER", "column name ['id']"),
    ("sum-bool", lambda q: q.sum(True), "E_INVALID_IDENTIFIER", "column name True"),
    ("count-alias", lambda q: q.count({3: "id"}), "E_INVALID_IDENTIFIER", "Invalid alias 3"),
    (
        "in-scalar",
        lambda q: q.where("id", "in", 1),
        "E_INVALID_ARGUMENT",
        'The "in" operator expects a list of values, got 1',
    ),
    (
        "not-in-scalar",
        lambda q: q.where("id", "not in", 5),
        "E_INVALID_ARGUMENT",
        'The "not in" operator expects a list of values, got 5',
    ),
    (
        "is-value",
        lambda q: q.where("id", "is", 1),
        "E_INVALID_ARGUMENT",
        '"is" compares with None, True or False, got 1',
    ),
    (
        "like-null",
        lambda q: q.where("username", "like", None),
        "E_INVALID_ARGUMENT",
        'Cannot compare NULL with "like"',
    ),
    (
        "greater-null",
        lambda q: q.where("id", ">", None),
        "E_INVALID_ARGUMENT",
        'Cannot compare NULL with ">"',
    ),
    (
        "where-in-dict",
        lambda q: q.where_in("id", {"a": 1}),
        "E_INVALID_ARGUMENT",
        "where_in() expects a list of values or a subquery",
    ),
    (
        "where-in-tuples",
        lambda q: q.where_in(["id", "username"], [1, 2]),
        "E_INVALID_ARGUMENT",
        "where_in() on 2 columns expects a list of 2-value lists, got 1",
    ),
    (
        "where-in-short-tuple",
        lambda q: q.where_in(["id", "username"], [[1]]),
        "E_INVALID_ARGUMENT",
        "got [1]",
    ),
    (
        "between-scalar",
        lambda q: q.where_between("id", 5),
        "E_INVALID_ARGUMENT",
        "where_between() expects two values [low, high], got 5",
    ),
    (
        "on-in-scalar",
        lambda q: q.join("posts", lambda j: j.on("users.id", "posts.user_id").on_in("posts.id", 5)),
        "E_INVALID_ARGUMENT",
        "on_in() expects a list of values, got 5",
    ),
    (
        "join-without-condition",
        lambda q: q.join("posts"),
        "E_INVALID_ARGUMENT",
        "inner join of 'posts' needs a condition",
    ),
    (
        "left-join-without-condition",
        lambda q: q.left_join("posts"),
        "E_INVALID_ARGUMENT",
        "left join of 'posts' needs a condition",
    ),
    (
        "where-raw-int",
        lambda q: q.where_raw(5),
        "E_INVALID_ARGUMENT",
        "where_raw() expects SQL text, got 5",
    ),
    (
        "order-raw-none",
        lambda q: q.order_by_raw(None),
        "E_INVALID_ARGUMENT",
        "order_by_raw() expects SQL text",
    ),
    (
        "value-object",
        lambda q: q.where("id", object()),
        "E_INVALID_ARGUMENT",
        "Cannot compare with <object object",
    ),
    (
        "value-dict",
        lambda q: q.where("id", ">", {"a": 1}),
        "E_INVALID_ARGUMENT",
        "Cannot compare with {'a': 1} (dict)",
    ),
    (
        "where-exists-str",
        lambda q: q.where_exists("posts"),
        "E_INVALID_ARGUMENT",
        "where_exists() expects a query builder or a callback",
    ),
]


class TestBuilderArguments:
    @pytest.mark.parametrize(
        ("build", "code", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
    )
    async def test_database_builder(
        self, alice: User, build: Callable[[Any], Any], code: str, message: str
    ) -> None:
        await refused(lambda: build(db.from_("users")), code, message)

    @pytest.mark.parametrize(
        ("build", "code", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
    )
    async def test_model_builder(
        self, alice: User, build: Callable[[Any], Any], code: str, message: str
    ) -> None:
        await refused(lambda: build(User.query()), code, message)

    async def test_list_values_need_where_in(self, alice: User, dialect: str) -> None:
        if dialect == "postgresql":
            pytest.skip("PostgreSQL binds a list as an array (array columns compare with one)")
        # MySQL's driver raised a TypeError; SQLite's failed in the driver.
        await refused(
            lambda: db.from_("users").where("id", [1, 2]),
            "E_INVALID_ARGUMENT",
            "Cannot compare with [1, 2] (list)",
        )

    async def test_a_query_without_a_table(self, alice: User) -> None:
        await refused(
            lambda: db.query().where("id", 1), "E_INVALID_ARGUMENT", "selects from no table"
        )
        await refused(
            lambda: db.query().where("id", 1).exists(), "E_INVALID_ARGUMENT", "from_() first"
        )
        # Selecting expressions needs no table.
        assert await db.query().select(db.raw("1 as one")) == [{"one": 1}]

    async def test_writes(self, alice: User) -> None:
        users = db.from_("users")
        await refused(lambda: users.update(3), "E_INVALID_ARGUMENT", "update() expects a dict")
        await refused(
            lambda: users.increment("id", "1"),
            "E_INVALID_ARGUMENT",
            "increment/decrement amount must be a number, got '1'",
        )
        await refused(lambda: users.increment(None), "E_INVALID_IDENTIFIER", "column name None")
        await refused(
            lambda: db.table("users").multi_insert(5),
            "E_INVALID_ARGUMENT",
            "multi_insert() expects a list of dicts, got 5",
        )
        await refused(
            lambda: db.table("users").insert([{"username": "x"}]),
            "E_INVALID_ARGUMENT",
            "insert() expects a dict",
        )
        assert await db.from_("users").select("username") == [{"username": "alice"}]

    async def test_good_forms_of_the_same_methods(self, alice: User) -> None:
        users = db.from_("users").select("username")
        assert await users.clone().where("id", "in", [alice.id]) == [{"username": "alice"}]
        assert await users.clone().where("id", "not in", (0,)) == [{"username": "alice"}]
        assert await users.clone().where("username", "is not", None) == [{"username": "alice"}]
        assert await users.clone().where("username", "!=", None) == [{"username": "alice"}]
        assert await users.clone().where_in("id", {alice.id}) == [{"username": "alice"}]
        assert await users.clone().where_in(["id", "username"], [(alice.id, "alice")]) == [
            {"username": "alice"}
        ]
        assert await users.clone().where_between("id", (alice.id, alice.id)) == [
            {"username": "alice"}
        ]
        assert await users.clone().order_by([{"column": "id", "order": "desc"}]) == [
            {"username": "alice"}
        ]
        assert await db.from_("users").select({"who is it": "username"}) == [{"who is it": "alice"}]
        assert await db.from_("users").cross_join("posts").select("posts.title") == [
            {"title": "hello"}
        ]
