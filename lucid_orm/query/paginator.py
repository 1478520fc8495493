"""The paginator returned by ``paginate(page, per_page)``: one page of rows plus its metadata.

Lucid's ``SimplePaginator``: a sequence of rows with ``total``, page numbers, page URLs and a
``serialize()`` shaped ``{"meta": {...}, "data": [...]}``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol, Self, TypedDict, TypeVar, overload
from urllib.parse import urlencode

from lucid_orm.errors import InvalidArgumentError

__all__ = [
    "MetaKeysNaming",
    "PageUrl",
    "PaginationMetaKeys",
    "SimplePaginator",
    "SnakeCaseMetaKeys",
]

T = TypeVar("T")


class PaginationMetaKeys(TypedDict):
    """The spelling of each paginator meta key, by canonical (snake_case) name."""

    total: str
    per_page: str
    current_page: str
    last_page: str
    first_page: str
    first_page_url: str
    last_page_url: str
    next_page_url: str
    previous_page_url: str


class MetaKeysNaming(Protocol):
    """What the paginator asks of a naming strategy (every ``NamingStrategy`` is one)."""

    def pagination_meta_keys(self) -> PaginationMetaKeys:
        """The keys of a paginator's ``meta`` in ``serialize()``."""
        ...


class SnakeCaseMetaKeys:
    """The default meta keys, snake_case, as ``SnakeCaseNamingStrategy`` spells them (the
    paginator owns them: ``query`` never imports ``orm``)."""

    def pagination_meta_keys(self) -> PaginationMetaKeys:
        """snake_case keys: ``per_page``, ``current_page``, ``first_page_url``, …"""
        return PaginationMetaKeys(
            total="total",
            per_page="per_page",
            current_page="current_page",
            last_page="last_page",
            first_page="first_page",
            first_page_url="first_page_url",
            last_page_url="last_page_url",
            next_page_url="next_page_url",
            previous_page_url="previous_page_url",
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class PageUrl(TypedDict):
    """One entry of :meth:`SimplePaginator.get_urls_for_range`."""

    url: str
    page: int
    is_active: bool


class SimplePaginator(Sequence[T]):
    """One page of rows from an offset/limit query, with what a client needs to page on.

    It is a read-only sequence of the rows (``len(page)``, ``page[0]``, ``for row in page``);
    an empty page is falsy. URLs are built from :meth:`base_url` (default ``/``) and
    :meth:`query_string`::

        page = await Post.query().order_by("id").paginate(2, per_page=10)
        page.base_url("/posts").query_string({"sort": "id"})
        page.get_next_page_url()        # "/posts?sort=id&page=3", or None on the last page
        page.serialize()                # {"meta": {"total": ..., ...}, "data": [...]}

    Args:
        total: The number of rows across all pages (cast to ``int``: drivers may return a
            ``Decimal`` or a string for ``COUNT``).
        per_page: Rows per page, at least 1.
        current_page: The page these rows are from, counted from 1.
        rows: The rows of this page.
        naming_strategy: Spells the meta keys of :meth:`get_meta` (any object with
            ``pagination_meta_keys()``, such as the model's naming strategy); default
            snake_case keys (:class:`SnakeCaseMetaKeys`).

    Raises:
        InvalidArgumentError: ``per_page`` is not an int of 1 or more (a ``LucidError`` and a
            ``ValueError``).
    """

    first_page: int = 1
    """The first page is always 1."""

    def __init__(
        self,
        total: int,
        per_page: int,
        current_page: int,
        rows: Sequence[T],
        naming_strategy: MetaKeysNaming | None = None,
    ) -> None:
        if isinstance(per_page, bool) or not isinstance(per_page, int) or per_page < 1:
            raise InvalidArgumentError(f"per_page must be 1 or more, got {per_page!r}")
        self.total: int = int(total)
        self.per_page: int = per_page
        self.current_page: int = current_page
        self.rows: list[T] = list(rows)
        self.naming_strategy: MetaKeysNaming = (
            SnakeCaseMetaKeys() if naming_strategy is None else naming_strategy
        )
        self._url = "/"
        self._query_string: dict[str, Any] = {}

    @property
    def last_page(self) -> int:
        """The last page number; 1 when there are no rows at all."""
        # Integer ceiling: float division loses precision on very large totals.
        return max(1, -(-self.total // self.per_page))

    @property
    def has_pages(self) -> bool:
        """Whether there is more than one page."""
        return self.last_page != 1

    @property
    def has_more_pages(self) -> bool:
        """Whether a page comes after the current one."""
        return self.last_page > self.current_page

    @property
    def is_empty(self) -> bool:
        """Whether this page has no rows (see :attr:`has_total` for the whole result)."""
        return not self.rows

    @property
    def has_total(self) -> bool:
        """Whether the whole result has any row, whatever this page holds."""
        return self.total > 0

    def all(self) -> list[T]:
        """The rows of this page (the list itself, not a copy)."""
        return self.rows

    def base_url(self, url: str) -> Self:
        """Set the path the page URLs start with (default ``/``); returns the paginator.

        Examples:
            >>> SimplePaginator(30, 10, 1, []).base_url("/posts").get_url(2)
            '/posts?page=2'
        """
        self._url = url
        return self

    def query_string(self, values: Mapping[str, Any]) -> Self:
        """Set extra query parameters kept in every page URL; returns the paginator.

        Sequences give repeated parameters (``{"tag": ["a", "b"]}`` → ``tag=a&tag=b``).

        Examples:
            >>> SimplePaginator(30, 10, 1, []).query_string({"sort": "id"}).get_url(2)
            '/?sort=id&page=2'
        """
        self._query_string = dict(values)
        return self

    def get_url(self, page: int) -> str:
        """The URL of ``page`` (pages below 1 give page 1); the page is not checked otherwise."""
        query = urlencode({**self._query_string, "page": max(1, page)}, doseq=True)
        separator = "&" if "?" in self._url else "?"
        return f"{self._url}{separator}{query}"

    def get_next_page_url(self) -> str | None:
        """The URL of the next page, or ``None`` on the last page."""
        if self.has_more_pages:
            return self.get_url(self.current_page + 1)
        return None

    def get_previous_page_url(self) -> str | None:
        """The URL of the previous page, or ``None`` on the first page."""
        if self.current_page > 1:
            return self.get_url(self.current_page - 1)
        return None

    def get_urls_for_range(self, start: int, end: int) -> list[PageUrl]:
        """``{"url", "page", "is_active"}`` for each page from ``start`` to ``end`` inclusive.

        Examples:
            >>> [u["page"] for u in SimplePaginator(50, 10, 2, []).get_urls_for_range(1, 3)]
            [1, 2, 3]
        """
        return [
            PageUrl(url=self.get_url(page), page=page, is_active=page == self.current_page)
            for page in range(start, end + 1)
        ]

    get_url_for_range = get_urls_for_range

    def get_meta(self) -> dict[str, int | str | None]:
        """The page metadata, keyed as the naming strategy's ``pagination_meta_keys()`` says."""
        keys = self.naming_strategy.pagination_meta_keys()
        return {
            keys["total"]: self.total,
            keys["per_page"]: self.per_page,
            keys["current_page"]: self.current_page,
            keys["last_page"]: self.last_page,
            keys["first_page"]: self.first_page,
            keys["first_page_url"]: self.get_url(1),
            keys["last_page_url"]: self.get_url(self.last_page),
            keys["next_page_url"]: self.get_next_page_url(),
            keys["previous_page_url"]: self.get_previous_page_url(),
        }

    def serialize(self, cherry_pick: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """``{"meta": get_meta(), "data": [...]}``, the JSON-ready API shape.

        Rows with a ``serialize`` method (model instances) are serialized with ``cherry_pick``;
        other rows (plain dicts from ``pojo()``) are kept as they are.
        """
        data: list[Any] = []
        for row in self.rows:
            serialize = getattr(row, "serialize", None)
            data.append(serialize(cherry_pick) if callable(serialize) else row)
        return {"meta": self.get_meta(), "data": data}

    def to_json(self) -> dict[str, Any]:
        """Same as :meth:`serialize` without cherry picking (Lucid's ``toJSON``)."""
        return self.serialize()

    def __len__(self) -> int:
        return len(self.rows)

    @overload
    def __getitem__(self, index: int) -> T: ...

    @overload
    def __getitem__(self, index: slice) -> list[T]: ...

    def __getitem__(self, index: int | slice) -> T | list[T]:
        return self.rows[index]

    def __iter__(self) -> Iterator[T]:
        return iter(self.rows)

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} page {self.current_page}/{self.last_page}"
            f" per_page={self.per_page} total={self.total} rows={len(self.rows)}>"
        )
