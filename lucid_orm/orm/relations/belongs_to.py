"""belongs_to: the parent holds the foreign key (``Post.user_id`` → ``User.id``).
``BelongsTo``, ``BelongsToQueryClient``, ``BelongsToQueryBuilder``, ``BelongsToSubQueryBuilder``."""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, Unpack

from ..model_info import info_of
from .base import (
    KeyOptions,
    OneRelation,
    P,
    RelationQueryBuilder,
    RelationQueryClient,
    SubQueryBuilder,
    check_related,
    key_value,
    managed,
    resolve,
)

if TYPE_CHECKING:
    from ...database.query_client import Client
    from ..base_model import BaseModel

R = TypeVar("R", bound="BaseModel")


class BelongsTo(OneRelation[R]):
    """``author: BelongsTo[User] = belongs_to(lambda: User)``; ``post.author`` is ``User | None``.

    ``foreign_key`` (default ``<related>_<related pk>``, e.g. ``user_id``) is an attribute of
    this model; ``local_key`` (default the related primary key) one of the related model."""

    type = "belongsTo"

    def _boot_keys(self) -> None:
        related = self.related_model()
        strategy = self.model.naming_strategy
        local = self.options.get("local_key") or strategy.relation_local_key(
            "belongsTo",
            self.model,
            related,
            self.relation_name,
        )
        foreign = self.options.get("foreign_key") or strategy.relation_foreign_key(
            "belongsTo",
            self.model,
            related,
            self.relation_name,
        )
        # The parent holds the key: preloads collect its foreign key values.
        if self._set_keys(local, foreign, related, self.model):
            self.parent_keys = self.foreign_keys
            self.match_columns = self.local_key_columns
            self.parent_columns = self.foreign_key_columns
        self.parent_key = self.foreign_key
        self.match_column = self.local_key_column_name
        self.parent_column = self.foreign_key_column_name

    def set_related_for_many(self, parents: Sequence[BaseModel], related: Sequence[Any]) -> None:
        self.boot()
        if self.composite:
            keys, fks = self.local_keys, self.foreign_keys
            by_key = {tuple([r.__dict__.get(k) for k in keys]): r for r in related}
            for parent in parents:
                d = parent.__dict__
                row = tuple([d.get(k) for k in fks])
                d[self.relation_name] = by_key.get(row) if None not in row else None
            return
        key, fk, name = self.local_key, self.foreign_key, self.relation_name
        index = {r.__dict__.get(key): r for r in related}
        for parent in parents:
            value = parent.__dict__.get(fk)
            parent.__dict__[name] = index.get(value) if value is not None else None

    def hydrate_for_persistence(self, parent: BaseModel, values: Any) -> None:
        """Set ``parent``'s foreign key from the related instance ``values``."""
        self.boot()
        if self.composite:
            row = [key_value(self, values, k, "persist") for k in self.local_keys]
            parent.__dict__.update(zip(self.foreign_keys, row, strict=True))
            return
        value = key_value(self, values, self.local_key, "persist")
        parent.__dict__[self.foreign_key] = value


class BelongsToQueryBuilder(RelationQueryBuilder[R]):
    """The related query of a belongs_to (``post.related("author").query()``) and its preload
    query. ``paginate`` and ``group_limit`` raise: it is a one-relation."""


class BelongsToSubQueryBuilder(SubQueryBuilder[R]):
    """``has("author")`` / ``with_count("author")`` subquery."""


class BelongsToQueryClient(RelationQueryClient[P, "BelongsTo[R]"], Generic[P, R]):
    """``post.related("author")``: the related query plus ``associate``/``dissociate``.
    (No ``create``/``save``: create the related model, then ``associate`` it.)"""

    def query(self) -> BelongsToQueryBuilder[R]:
        """The related row as a query (no query runs when the foreign key is NULL)."""
        return BelongsToQueryBuilder(self.relation, resolve(self), parent=self.parent)

    async def associate(self, related: R, *, client: Client | None = None) -> None:
        """Save ``related`` if needed, point the parent's foreign key at it and save the parent,
        in one transaction (a savepoint inside ``client`` or the parent's ``trx``); then
        ``parent.<relation>`` is ``related``."""
        rel = self.relation
        check_related(rel, related)
        async with managed(self, client, [related]) as trx:
            await related.save(client=trx)
            rel.hydrate_for_persistence(self.parent, related)
            await self.parent.save(client=trx)
        rel.set_related(self.parent, related)

    async def dissociate(self, *, client: Client | None = None) -> None:
        """Set the foreign key to NULL and save the parent (never deletes the related row)."""
        rel = self.relation
        async with managed(self, client) as trx:
            d = self.parent.__dict__
            if rel.composite:
                # The components that are also the parent's own key (a shared ``tenant_id``)
                # stay: clearing one is enough to point at no row.
                own = info_of(type(self.parent)).primary_keys
                d.update({k: None for k in rel.foreign_keys if k not in own})
            else:
                d[rel.foreign_key] = None
            await self.parent.save(client=trx)
        rel.set_related(self.parent, None)

    def __getattr__(self, name: str) -> Any:
        if name in ("create", "save", "create_many", "save_many", "first_or_create"):
            raise AttributeError(
                f'"{name}" is not available on a belongsTo relationship '
                f'"({self.relation.relation_name})": create the related model, then associate it'
            )
        raise AttributeError(name)


def belongs_to(
    related: Callable[[], builtins.type[R]],
    *,
    init: Literal[False] = False,
    **options: Unpack[KeyOptions],
) -> BelongsTo[R]:
    """Declare a belongs_to relation: ``author: BelongsTo[User] = belongs_to(lambda: User)``.
    Options: ``foreign_key``, ``local_key``, ``serialize_as``, ``on_query``, ``meta``."""
    return BelongsTo(related, **options)


# The roles of the kind, built by Relation's template methods.
BelongsTo.query_builder_class = BelongsToQueryBuilder
BelongsTo.sub_query_builder_class = BelongsToSubQueryBuilder
BelongsTo.query_client_class = BelongsToQueryClient
