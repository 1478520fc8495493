"""has_many: like has_one, with lists, per-parent limits and the many-writes.
``HasMany``, ``HasManyQueryClient``, ``HasManyQueryBuilder``, ``HasManySubQueryBuilder``."""

from __future__ import annotations

import builtins
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, Self, TypeVar, overload

from sqlalchemy import Select, func, select

from ...errors import LucidError
from ..columns import _UNSET
from ..model_info import pk_column
from ..payload import as_mapping_list
from .base import RelationQueryBuilder, SubQueryBuilder, check_related, group_rows, managed
from .has_one import HasOneQueryClient, _HasRelation

if TYPE_CHECKING:
    from ...database.query_client import Client
    from ..base_model import BaseModel

R = TypeVar("R", bound="BaseModel")

_ROW_NUMBER = "lucid_row_number"


class HasMany(_HasRelation[R]):
    """``posts: HasMany[Post] = has_many(lambda: Post)``; ``user.posts`` is ``list[Post]``."""

    type = "hasMany"
    _is_many = True

    if TYPE_CHECKING:  # typed access; at run time Relation.__get__ serves

        @overload
        def __get__(self, obj: None, owner: builtins.type) -> HasMany[R]: ...

        @overload
        def __get__(self, obj: object, owner: builtins.type) -> list[R]: ...

        def __get__(self, obj: Any, owner: builtins.type) -> Any: ...

        def __set__(self, obj: Any, value: list[R]) -> None: ...

    def _query_builder(self) -> builtins.type[RelationQueryBuilder[R]]:
        return HasManyQueryBuilder

    def _sub_query_builder(self) -> builtins.type[SubQueryBuilder[R]]:
        return HasManySubQueryBuilder

    def set_related_for_many(self, parents: Sequence[BaseModel], related: Sequence[Any]) -> None:
        self.boot()
        fk = self.foreign_key
        self._assign_lists(parents, group_rows(related, fk))

    def client(self, parent: BaseModel, query_client: Client) -> HasManyQueryClient[R]:
        self.boot()
        return HasManyQueryClient(self, parent, query_client)


class HasManyQueryBuilder(RelationQueryBuilder[R]):
    """The related query of a has_many and its preload query, with per-parent limits:
    ``preload("posts", lambda q: q.group_limit(3).group_order_by("created_at", "desc"))``."""

    _group_limit: int | None = None
    _group_order: tuple[str, str] | None = None

    def group_limit(self, limit: int) -> Self:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise LucidError(f"group_limit() expects a positive int, got {limit!r}")
        self._group_limit = limit
        return self

    def group_order_by(self, column: str, direction: str = "asc") -> Self:
        if direction.lower() not in ("asc", "desc"):
            raise LucidError(f'Invalid order direction "{direction}": use "asc" or "desc"')
        self._group_order = (column, direction.lower())
        return self

    def to_core(self) -> Select[Any]:
        if self._group_limit is None:
            return super().to_core()
        # row_number() per parent in a subquery, filtered outside: one query for all parents.
        if self._group_order is not None:
            column, direction = self._group_order
        else:
            column, direction = pk_column(self.model), "desc"
        order_col = self._col(column)
        order = order_col.desc() if direction == "desc" else order_col.asc()
        partition = self._partition_column()
        saved_columns, saved_limit, saved_offset = self._columns, self._limit, self._offset
        columns = list(saved_columns or self._default_columns())
        self._columns = [
            *columns,
            func.row_number().over(partition_by=partition, order_by=order).label(_ROW_NUMBER),
        ]
        self._limit = self._offset = None
        try:
            inner = super().to_core().subquery("lucid_group_limit")
        finally:
            self._columns, self._limit, self._offset = saved_columns, saved_limit, saved_offset
        outer_cols = [c for c in inner.c if c.key != _ROW_NUMBER]
        stmt = (
            select(*outer_cols)
            .where(inner.c[_ROW_NUMBER] <= self._group_limit)
            .order_by(inner.c[self._partition_key()], inner.c[_ROW_NUMBER])
        )
        # The query's own limit/offset (first(), paginate()) apply to the limited rows.
        if saved_limit is not None:
            stmt = stmt.limit(saved_limit)
        if saved_offset is not None:
            stmt = stmt.offset(saved_offset)
        return stmt

    def _count_statement(self) -> Select[Any]:
        # Count the group-limited rows, not the table (count_rows(), paginate() totals).
        if self._group_limit is not None:
            return self._count_over_subquery()
        return super()._count_statement()

    def _partition_column(self) -> Any:
        """The column rows are grouped by for ``group_limit`` (the foreign key)."""
        return self._unqualified(self._match_column)

    def _partition_key(self) -> str:
        """That column's key in the result."""
        return self._match_column


class HasManySubQueryBuilder(SubQueryBuilder[R]):
    """``has("posts", ">", 2)`` / ``with_count("posts")`` subquery."""


class HasManyQueryClient(HasOneQueryClient[R]):
    """``user.related("posts")``: the related query and the writes of a has_many. The
    many-forms run in one transaction: all rows or none."""

    async def save_many(self, related: Sequence[R], *, client: Client | None = None) -> list[R]:
        """Save several related instances for the parent in one transaction."""
        rel = self.relation
        items = list(related)
        for item in items:
            check_related(rel, item)
        async with managed(self, client, items) as trx:
            await self.parent.save(client=trx)
            for item in items:
                rel.hydrate_for_persistence(self.parent, item)
                await item.save(client=trx)
        return items

    async def create_many(
        self, values: Sequence[Mapping[str, Any]], *, client: Client | None = None
    ) -> list[R]:
        """Create several related rows for the parent in one transaction (one multi-row
        ``INSERT … RETURNING`` when they share their columns)."""
        rows = as_mapping_list(values, "create_many")
        if not rows:
            return []
        rel = self.relation
        async with managed(self, client) as trx:
            await self.parent.save(client=trx)
            key: dict[str, Any] = {}
            rel.hydrate_for_persistence(self.parent, key)
            # The related model's public bulk API, the foreign key already in the rows: one
            # multi-row INSERT, hooks per instance, the instances bound to ``trx``.
            return await rel.related_model().create_many(
                [{**row, **key} for row in rows], client=trx
            )

    def _predicate(self, predicate: str | Sequence[str] | None, method: str) -> list[str]:
        if predicate is None:
            raise LucidError(
                f"{method}() needs a predicate: the attribute name(s) that identify a row",
                code="E_INVALID_ARGUMENT",
            )
        keys = [predicate] if isinstance(predicate, str) else list(predicate)
        fk = self.relation.foreign_key
        return keys if fk in keys else [*keys, fk]

    async def fetch_or_create_many(
        self,
        payload: Sequence[Mapping[str, Any]],
        predicate: str | Sequence[str] | None = None,
        *,
        client: Client | None = None,
    ) -> list[R]:
        """For each payload row, the parent's related row matching it on ``predicate`` (plus
        the foreign key), else create it. One transaction; results in payload order."""
        rows = [dict(r) for r in as_mapping_list(payload, "fetch_or_create_many")]
        keys = self._predicate(predicate, "fetch_or_create_many")
        rel = self.relation
        async with managed(self, client) as trx:
            await self.parent.save(client=trx)
            for row in rows:
                rel.hydrate_for_persistence(self.parent, row)
            return await rel.related_model().fetch_or_create_many(keys, rows, client=trx)

    async def update_or_create_many(
        self,
        payload: Sequence[Mapping[str, Any]],
        predicate: str | Sequence[str] | None = None,
        *,
        client: Client | None = None,
    ) -> list[R]:
        """For each payload row, update the parent's related row matching it on ``predicate``
        (plus the foreign key), else create it. One transaction; results in payload order."""
        rows = [dict(r) for r in as_mapping_list(payload, "update_or_create_many")]
        keys = self._predicate(predicate, "update_or_create_many")
        rel = self.relation
        async with managed(self, client) as trx:
            await self.parent.save(client=trx)
            for row in rows:
                rel.hydrate_for_persistence(self.parent, row)
            return await rel.related_model().update_or_create_many(keys, rows, client=trx)


def has_many(
    related: Callable[[], builtins.type[R]],
    *,
    foreign_key: str | None = None,
    local_key: str | None = None,
    serialize_as: str | None = _UNSET,
    on_query: Callable[[Any], Any] | None = None,
    meta: Any = None,
    init: Literal[False] = False,
) -> HasMany[R]:
    """Declare a has_many relation: ``posts: HasMany[Post] = has_many(lambda: Post)``."""
    return HasMany(
        related,
        foreign_key=foreign_key,
        local_key=local_key,
        serialize_as=serialize_as,
        on_query=on_query,
        meta=meta,
    )
