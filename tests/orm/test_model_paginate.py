"""Model pagination (SPEC §6): the paginator's members and ``serialize()``, camelCase meta
keys, and totals that stay right for ``distinct`` and ``group_by`` queries."""

from __future__ import annotations

import pytest

from lucid_orm import BaseModel, CamelCaseNamingStrategy, LucidError, SimplePaginator, column
from lucid_orm.database import Database
from tests.helpers import count_queries
from tests.models import User


class CamelUser(BaseModel):
    table = "users"
    naming_strategy = CamelCaseNamingStrategy()
    id: int = column()
    username: str | None = column()
    country_id: int | None = column()


@pytest.fixture
async def users(database: Database) -> list[User]:
    return await User.create_many(
        [{"username": f"user{i}", "points": i % 3, "country_id": i % 2 + 1} for i in range(1, 8)]
    )


class TestPaginator:
    async def test_middle_page(self, users: list[User]) -> None:
        with count_queries() as q:
            page = await User.query().order_by("id").paginate(2, 3)
        assert q.count == 2  # the count and the page
        assert isinstance(page, SimplePaginator)
        assert [u.username for u in page] == ["user4", "user5", "user6"]
        assert all(isinstance(u, User) for u in page.all())
        assert len(page) == 3
        assert page[0].username == "user4"
        assert page.total == 7
        assert page.per_page == 3
        assert page.current_page == 2
        assert page.last_page == 3
        assert page.first_page == 1
        assert page.has_pages is True
        assert page.has_more_pages is True
        assert page.is_empty is False
        assert page.get_url(3) == "/?page=3"
        assert page.get_next_page_url() == "/?page=3"
        assert page.get_previous_page_url() == "/?page=1"

    async def test_base_url(self, users: list[User]) -> None:
        page = await User.query().paginate(2, 3)
        assert page.base_url("/users") is page
        assert page.get_url(1) == "/users?page=1"
        assert page.get_next_page_url() == "/users?page=3"
        assert page.get_previous_page_url() == "/users?page=1"

    async def test_last_page(self, users: list[User]) -> None:
        page = await User.query().order_by("id").paginate(3, 3)
        assert [u.username for u in page] == ["user7"]
        assert page.has_more_pages is False
        assert page.get_next_page_url() is None
        assert page.get_previous_page_url() == "/?page=2"

    async def test_first_page_default_per_page(self, users: list[User]) -> None:
        page = await User.query().paginate(1)
        assert page.per_page == 20
        assert len(page) == 7
        assert page.has_pages is False
        assert page.get_previous_page_url() is None

    async def test_page_past_the_end_is_empty(self, users: list[User]) -> None:
        page = await User.query().paginate(5, 3)
        assert page.is_empty is True
        assert len(page) == 0
        assert page.total == 7
        assert page.has_more_pages is False

    async def test_no_rows(self, database: Database) -> None:
        page = await User.query().paginate(1, 10)
        assert page.total == 0
        assert page.last_page == 1
        assert page.is_empty
        assert page.has_pages is False

    async def test_where_applies_to_the_total(self, users: list[User]) -> None:
        page = await User.query().where("country_id", 1).paginate(1, 2)
        assert page.total == 3
        assert page.last_page == 2

    async def test_bad_page_raises(self, database: Database) -> None:
        with pytest.raises(LucidError):
            await User.query().paginate("2", 3)  # type: ignore[arg-type]


class TestSerialize:
    async def test_serialize_meta_and_data(self, users: list[User]) -> None:
        page = await User.query().order_by("id").paginate(2, 3)
        page.base_url("/users")
        data = page.serialize()
        assert data["meta"] == {
            "total": 7,
            "per_page": 3,
            "current_page": 2,
            "last_page": 3,
            "first_page": 1,
            "first_page_url": "/users?page=1",
            "last_page_url": "/users?page=3",
            "next_page_url": "/users?page=3",
            "previous_page_url": "/users?page=1",
        }
        assert [row["username"] for row in data["data"]] == ["user4", "user5", "user6"]
        assert data["data"][0] == users[3].serialize()

    async def test_serialize_with_cherry_picking(self, users: list[User]) -> None:
        page = await User.query().order_by("id").paginate(1, 2)
        data = page.serialize({"fields": ["username"]})
        assert data["data"] == [{"username": "user1"}, {"username": "user2"}]

    async def test_camel_case_strategy(self, users: list[User]) -> None:
        page = await CamelUser.query().order_by("id").paginate(1, 2)
        data = page.serialize()
        assert list(data["meta"]) == [
            "total",
            "perPage",
            "currentPage",
            "lastPage",
            "firstPage",
            "firstPageUrl",
            "lastPageUrl",
            "nextPageUrl",
            "previousPageUrl",
        ]
        assert data["meta"]["perPage"] == 2
        assert data["meta"]["nextPageUrl"] == "/?page=2"
        assert data["data"][0] == {"id": users[0].id, "username": "user1", "countryId": 2}


class TestTotals:
    async def test_distinct(self, users: list[User]) -> None:
        page = await User.query().distinct("country_id").order_by("country_id").paginate(1, 1)
        assert page.total == 2
        assert page.last_page == 2
        assert [u.country_id for u in page] == [1]

    async def test_group_by(self, users: list[User]) -> None:
        page = await (
            User.query()
            .select("points")
            .count("* as total")
            .group_by("points")
            .order_by("points")
            .paginate(1, 2)
        )
        assert page.total == 3
        assert [(u.points, u.extras["total"]) for u in page] == [(0, 2), (1, 3)]

    async def test_group_by_with_having(self, users: list[User]) -> None:
        page = await (
            User.query()
            .select("points")
            .count("* as total")
            .group_by("points")
            .having_raw("count(*) > ?", [2])
            .paginate(1, 10)
        )
        assert page.total == 1
        assert [u.points for u in page] == [1]
