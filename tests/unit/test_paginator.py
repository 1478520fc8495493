"""Unit tests for SimplePaginator: page arithmetic, URLs, meta and serialization (no database)."""

from decimal import Decimal
from typing import Any

import pytest

from lucid_orm import LucidError, db
from lucid_orm.orm.naming import CamelCaseNamingStrategy
from lucid_orm.query.paginator import SimplePaginator


class _Row:
    """Stands in for a model instance: something with ``serialize(cherry_pick)``."""

    def __init__(self, id: int) -> None:
        self.id = id
        self.calls: list[Any] = []

    def serialize(self, cherry_pick: Any = None) -> dict[str, Any]:
        self.calls.append(cherry_pick)
        return {"id": self.id, "picked": cherry_pick is not None}


def _page(
    total: int, per_page: int, current_page: int, rows: int | None = None
) -> SimplePaginator[dict[str, int]]:
    count = min(per_page, max(0, total - (current_page - 1) * per_page)) if rows is None else rows
    start = (current_page - 1) * per_page
    return SimplePaginator(total, per_page, current_page, [{"n": start + i} for i in range(count)])


class TestPageArithmetic:
    def test_middle_page(self) -> None:
        page = _page(total=45, per_page=10, current_page=2)
        assert page.total == 45
        assert page.per_page == 10
        assert page.current_page == 2
        assert page.first_page == 1
        assert page.last_page == 5
        assert page.has_pages is True
        assert page.has_more_pages is True
        assert page.is_empty is False
        assert page.has_total is True
        assert len(page) == 10

    def test_last_page_is_a_ceiling(self) -> None:
        assert _page(40, 10, 1).last_page == 4
        assert _page(41, 10, 1).last_page == 5
        assert _page(1, 10, 1).last_page == 1
        assert _page(10**20 + 1, 10, 1, rows=0).last_page == 10**19 + 1

    def test_last_page_has_no_more_pages(self) -> None:
        page = _page(45, 10, 5)
        assert len(page) == 5
        assert page.has_more_pages is False
        assert page.has_pages is True

    def test_single_page(self) -> None:
        page = _page(3, 10, 1)
        assert page.last_page == 1
        assert page.has_pages is False
        assert page.has_more_pages is False

    def test_total_zero(self) -> None:
        page = _page(0, 10, 1)
        assert page.last_page == 1
        assert page.has_pages is False
        assert page.has_more_pages is False
        assert page.is_empty is True
        assert page.has_total is False
        assert not page
        assert page.all() == []

    def test_page_beyond_last_is_empty_but_has_total(self) -> None:
        page = _page(25, 10, 7)
        assert page.is_empty is True
        assert page.has_total is True
        assert page.last_page == 3
        assert page.has_more_pages is False
        assert page.get_next_page_url() is None
        assert page.get_previous_page_url() == "/?page=6"

    def test_total_is_cast_to_int(self) -> None:
        page: SimplePaginator[int] = SimplePaginator(Decimal(12), 5, 1, [])  # type: ignore[arg-type]
        assert page.total == 12
        assert type(page.total) is int
        assert page.last_page == 3

    @pytest.mark.parametrize("per_page", [0, -1, True, 2.5])
    def test_per_page_below_one_is_rejected(self, per_page: int) -> None:
        # A LucidError (nothing foreign leaves the API) that is also the built-in ValueError.
        with pytest.raises(ValueError, match="per_page must be 1 or more") as info:
            SimplePaginator(10, per_page, 1, [])
        assert isinstance(info.value, LucidError)
        assert info.value.code == "E_INVALID_ARGUMENT"

    def test_raw_needs_sql_text(self) -> None:
        with pytest.raises(LucidError) as info:
            db.raw(5)  # type: ignore[arg-type]
        assert info.value.code == "E_INVALID_ARGUMENT"


class TestSequence:
    def test_rows_indexing_and_iteration(self) -> None:
        rows = ["a", "b", "c"]
        page = SimplePaginator(3, 10, 1, rows)
        assert page.rows == rows
        assert page.rows is not rows
        assert page.all() is page.rows
        assert page[0] == "a"
        assert page[-1] == "c"
        assert page[1:] == ["b", "c"]
        assert list(page) == rows
        assert "b" in page
        assert page.index("c") == 2
        assert list(reversed(page)) == ["c", "b", "a"]
        with pytest.raises(IndexError):
            page[3]

    def test_repr(self) -> None:
        assert repr(_page(45, 10, 2)) == "<SimplePaginator page 2/5 per_page=10 total=45 rows=10>"


class TestUrls:
    def test_default_base_url(self) -> None:
        page = _page(45, 10, 2)
        assert page.get_url(3) == "/?page=3"
        assert page.get_next_page_url() == "/?page=3"
        assert page.get_previous_page_url() == "/?page=1"

    def test_first_page_has_no_previous_url(self) -> None:
        assert _page(45, 10, 1).get_previous_page_url() is None

    def test_page_is_clamped_to_one(self) -> None:
        page = _page(45, 10, 1)
        assert page.get_url(0) == "/?page=1"
        assert page.get_url(-3) == "/?page=1"
        # Pages past the end are not clamped (Lucid's getUrl does not check them).
        assert page.get_url(99) == "/?page=99"

    def test_base_url_and_query_string_chain(self) -> None:
        page = _page(45, 10, 2)
        assert page.base_url("/posts").query_string({"sort": "id", "q": "a b&c"}) is page
        assert page.get_url(3) == "/posts?sort=id&q=a+b%26c&page=3"
        assert page.get_previous_page_url() == "/posts?sort=id&q=a+b%26c&page=1"

    def test_query_string_is_replaced_not_merged(self) -> None:
        page = _page(45, 10, 2).query_string({"a": 1}).query_string({"b": 2})
        assert page.get_url(1) == "/?b=2&page=1"

    def test_query_string_sequences_repeat_and_page_wins(self) -> None:
        page = _page(45, 10, 2).query_string({"tag": ["x", "y"], "page": 9})
        assert page.get_url(4) == "/?tag=x&tag=y&page=4"

    def test_base_url_with_its_own_query(self) -> None:
        page = _page(45, 10, 2).base_url("/search?q=lucid")
        assert page.get_url(2) == "/search?q=lucid&page=2"

    def test_urls_for_range(self) -> None:
        page = _page(45, 10, 2).base_url("/posts")
        expected = [
            {"url": "/posts?page=1", "page": 1, "is_active": False},
            {"url": "/posts?page=2", "page": 2, "is_active": True},
            {"url": "/posts?page=3", "page": 3, "is_active": False},
        ]
        assert page.get_urls_for_range(1, 3) == expected
        assert page.get_url_for_range(1, 3) == expected
        assert page.get_urls_for_range(3, 2) == []


class TestMeta:
    def test_snake_case_meta(self) -> None:
        page = _page(45, 10, 2).base_url("/posts")
        assert page.get_meta() == {
            "total": 45,
            "per_page": 10,
            "current_page": 2,
            "last_page": 5,
            "first_page": 1,
            "first_page_url": "/posts?page=1",
            "last_page_url": "/posts?page=5",
            "next_page_url": "/posts?page=3",
            "previous_page_url": "/posts?page=1",
        }

    def test_camel_case_meta(self) -> None:
        page: SimplePaginator[int] = SimplePaginator(
            45, 10, 5, [], naming_strategy=CamelCaseNamingStrategy()
        )
        assert page.get_meta() == {
            "total": 45,
            "perPage": 10,
            "currentPage": 5,
            "lastPage": 5,
            "firstPage": 1,
            "firstPageUrl": "/?page=1",
            "lastPageUrl": "/?page=5",
            "nextPageUrl": None,
            "previousPageUrl": "/?page=4",
        }

    def test_meta_of_an_empty_result(self) -> None:
        assert _page(0, 20, 1).get_meta() == {
            "total": 0,
            "per_page": 20,
            "current_page": 1,
            "last_page": 1,
            "first_page": 1,
            "first_page_url": "/?page=1",
            "last_page_url": "/?page=1",
            "next_page_url": None,
            "previous_page_url": None,
        }


class TestSerialize:
    def test_rows_with_serialize_are_serialized(self) -> None:
        rows = [_Row(1), _Row(2)]
        page = SimplePaginator(2, 10, 1, rows)
        assert page.serialize() == {
            "meta": page.get_meta(),
            "data": [{"id": 1, "picked": False}, {"id": 2, "picked": False}],
        }

    def test_cherry_pick_is_passed_to_each_row(self) -> None:
        rows = [_Row(1), _Row(2)]
        pick = {"fields": {"pick": ["id"]}}
        data = SimplePaginator(2, 10, 1, rows).serialize(pick)["data"]
        assert data == [{"id": 1, "picked": True}, {"id": 2, "picked": True}]
        assert rows[0].calls == [pick]

    def test_plain_rows_are_kept(self) -> None:
        page = SimplePaginator(2, 10, 1, [{"id": 1}, {"id": 2}])
        assert page.serialize()["data"] == [{"id": 1}, {"id": 2}]

    def test_to_json_is_serialize(self) -> None:
        page = SimplePaginator(3, 2, 1, [_Row(1), _Row(2)]).base_url("/users")
        assert page.to_json() == page.serialize()
        assert page.to_json()["meta"]["next_page_url"] == "/users?page=2"
