"""has_one_through: one related row reached through intermediate tables (``Mechanic`` →
``Car.mechanic_id`` → ``Owner.car_id``): has_many_through's keys and chains, with
``parent.<name>`` a single row. ``HasOneThrough``, ``HasOneThroughClient``,
``HasOneThroughQueryBuilder``, ``HasOneThroughSubQueryBuilder``."""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, Unpack

from ..state import extra_value
from .base import OneRelation, P, RelationQueryClient, group_rows_by, resolve
from .has_many_through import (
    ThroughHop,
    ThroughOptions,
    ThroughQueryBuilder,
    ThroughRelation,
    ThroughSubQueryBuilder,
    through_chain,
)

if TYPE_CHECKING:
    from ..base_model import BaseModel

R = TypeVar("R", bound="BaseModel")


class HasOneThrough(ThroughRelation[R], OneRelation[R]):
    """``owner: HasOneThrough[Owner] = has_one_through((lambda: Owner, lambda: Car))`` on
    ``Mechanic``: ``mechanic.owner`` is ``Owner | None`` (the first related row when the
    chain reaches several). Keys and chains: ``ThroughRelation``. Read-only."""

    type = "hasOneThrough"

    def set_related_for_many(self, parents: Sequence[BaseModel], related: Sequence[Any]) -> None:
        """Each parent gets the first related row matched on its key (one pass, one dict)."""
        self.boot()
        if self.composite:
            groups = group_rows_by(related, self._group_keys(), extra=True)
            for parent in parents:
                d = parent.__dict__
                row = tuple([d.get(k) for k in self.local_keys])
                bucket = groups.get(row) if None not in row else None
                d[self.relation_name] = bucket[0] if bucket else None
            return
        group, key, name = self._group_key(), self.local_key, self.relation_name
        index: dict[Any, Any] = {}
        for row in related:
            index.setdefault(extra_value(row.__dict__, group), row)
        for parent in parents:
            d = parent.__dict__
            value = d.get(key)
            d[name] = index.get(value) if value is not None else None


class HasOneThroughQueryBuilder(ThroughQueryBuilder[R]):
    """The related query of a has_one_through (``related("owner").query().first()``) and its
    preload query (a one-relation: ``paginate`` and ``group_limit`` raise)."""


class HasOneThroughSubQueryBuilder(ThroughSubQueryBuilder[R]):
    """``has("owner")`` / ``with_count("owner")`` through the intermediate tables."""


class HasOneThroughClient(RelationQueryClient[P, "HasOneThrough[R]"], Generic[P, R]):
    """``mechanic.related("owner")``: the related query (a has_one_through is read-only)."""

    def query(self) -> HasOneThroughQueryBuilder[R]:
        """The related rows of this parent (``.first()`` for the one)."""
        return HasOneThroughQueryBuilder(self.relation, resolve(self), parent=self.parent)


def has_one_through(
    models: tuple[Callable[[], builtins.type[R]], Callable[[], builtins.type[Any]]]
    | list[Callable[[], builtins.type[Any]]]
    | Callable[[], builtins.type[R]],
    *,
    through: Callable[[], builtins.type[Any]] | Sequence[ThroughHop] | None = None,
    init: Literal[False] = False,
    **options: Unpack[ThroughOptions],
) -> HasOneThrough[R]:
    """Declare a has_one_through relation: ``has_one_through((lambda: Owner, lambda: Car))``
    or ``has_one_through(lambda: Owner, through=lambda: Car)`` (a chain: ``through=[A, B]``).
    The options are has_many_through's (``ThroughOptions``)."""
    related, through_arg = through_chain("has_one_through", models, through)
    return HasOneThrough(related, through_arg, **options)


# The roles of the kind, built by Relation's template methods.
HasOneThrough.query_builder_class = HasOneThroughQueryBuilder
HasOneThrough.sub_query_builder_class = HasOneThroughSubQueryBuilder
HasOneThrough.query_client_class = HasOneThroughClient
