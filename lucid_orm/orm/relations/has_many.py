"""has_many: like has_one, with lists, per-parent limits and the many-writes.
``HasMany``, ``HasManyQueryClient``, ``HasManyQueryBuilder``, ``HasManySubQueryBuilder``."""

from __future__ import annotations

import builtins
from collections.abc import Callable, Mapping, Sequence
from itertools import repeat
from typing import TYPE_CHECKING, Any, Literal, Self, TypeVar, Unpack, cast

from ...errors import LucidError
from ..binding import _consume, _dict_of
from ..hydration import new_many
from ..payload import as_mapping_list
from ..persistence import create_alone, insert_many, saves_nothing
from .base import (
    KeyOptions,
    ManyRelation,
    P,
    RelationQueryBuilder,
    SubQueryBuilder,
    check_related,
    managed,
    resolve,
)
from .has_one import HasOneQueryClient, HasRelation

if TYPE_CHECKING:
    from ...database.query_client import Client
    from ..base_model import BaseModel

R = TypeVar("R", bound="BaseModel")


class HasMany(HasRelation[R], ManyRelation[R]):
    """``posts: HasMany[Post] = has_many(lambda: Post)``; ``user.posts`` is ``list[Post]``."""

    type = "hasMany"

    def _group_key(self) -> str:
        return self.foreign_key

    def _group_keys(self) -> tuple[str, ...]:
        return self.foreign_keys


class HasManyQueryBuilder(RelationQueryBuilder[R]):
    """The related query of a has_many and its preload query, with per-parent limits:
    ``preload("posts", lambda q: q.group_limit(3).group_order_by("created_at", "desc"))``
    (compiled by ``RelationQueryBuilder._finish``)."""

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


class HasManySubQueryBuilder(SubQueryBuilder[R]):
    """``has("posts", ">", 2)`` / ``with_count("posts")`` subquery."""


class HasManyQueryClient(HasOneQueryClient[P, R]):
    """``user.related("posts")``: the related query and the writes of a has_many. The
    many-forms run in one transaction: all rows or none."""

    def query(self) -> HasManyQueryBuilder[R]:
        """The related rows as a query (none, without querying, when the parent key is NULL)."""
        return cast("HasManyQueryBuilder[R]", super().query())

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
        rel = self.relation
        model = rel.related_model()
        # Instances first: a bad row fails before anything is written.
        instances = new_many(model, as_mapping_list(values, "create_many"))
        if not instances:
            return []
        # The new instances join the transaction in ``insert_many``, which binds them (or,
        # in a root transaction of this call's own without hooks, leaves them unbound:
        # nothing can reach them before it ends). Where a shard key routes a model, they
        # are checked with the parent first, before the parent's save, as ever.
        routed = model.shard_for is not None or type(self.parent).shard_for is not None
        if not routed and saves_nothing(self.parent):
            # The parent's save would do nothing: outside a transaction, the insert may be
            # one statement without one (``create_alone``; else the path below, the foreign
            # key set again to the same value).
            target = resolve(self, client)
            if not target.is_transaction:
                key: dict[str, Any] = {}
                rel.hydrate_for_persistence(self.parent, key)
                _consume(map(dict.update, map(_dict_of, instances), repeat(key)))
                if await create_alone(model, instances, target):
                    return instances
        # Its BEGIN may run on the driver while the rows are prepared (``implicit``).
        async with managed(self, client, instances if routed else (), pipelined=True) as trx:
            await self.parent.save(client=trx)
            fk: dict[str, Any] = {}
            rel.hydrate_for_persistence(self.parent, fk)
            _consume(map(dict.update, map(_dict_of, instances), repeat(fk)))
            # The model's bulk insert (what create_many runs) inside this transaction, the
            # foreign key already in the rows: one multi-row INSERT, hooks per instance.
            await insert_many(model, instances, trx, own=trx.parent is None)
        return instances

    def _predicate(self, predicate: str | Sequence[str] | None, method: str) -> list[str]:
        if predicate is None:
            raise LucidError(
                f"{method}() needs a predicate: the attribute name(s) that identify a row",
                code="E_INVALID_ARGUMENT",
            )
        keys = [predicate] if isinstance(predicate, str) else list(predicate)
        rel = self.relation
        fks = rel.foreign_keys if rel.composite else (rel.foreign_key,)
        return [*keys, *[fk for fk in fks if fk not in keys]]

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
    init: Literal[False] = False,
    **options: Unpack[KeyOptions],
) -> HasMany[R]:
    """Declare a has_many relation: ``posts: HasMany[Post] = has_many(lambda: Post)``.
    Options: ``foreign_key``, ``local_key``, ``serialize_as``, ``on_query``, ``meta``."""
    return HasMany(related, **options)


# The roles of the kind, built by Relation's template methods.
HasMany.query_builder_class = HasManyQueryBuilder
HasMany.sub_query_builder_class = HasManySubQueryBuilder
HasMany.query_client_class = HasManyQueryClient
