"""has_one: the related model holds the foreign key (``Profile.user_id`` → ``User.id``).
``HasOne``, ``HasOneQueryClient``, ``HasOneQueryBuilder``, ``HasOneSubQueryBuilder``."""

from __future__ import annotations

import builtins
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, Unpack, cast

from ...errors import LucidError, QueryError
from ..model_info import column_name
from ..persistence import create_or_first, is_deadlock, locked_match
from .base import (
    KeyOptions,
    OneRelation,
    P,
    Relation,
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


class HasRelation(Relation[R]):
    """Keys shared by has_one and has_many: ``local_key`` on this model (default its primary
    key), ``foreign_key`` on the related one (default ``<model>_<pk>``)."""

    def _boot_keys(self) -> None:
        related = self.related_model()
        strategy = self.model.naming_strategy
        local = self.options.get("local_key") or strategy.relation_local_key(
            self.type,
            self.model,
            related,
            self.relation_name,
        )
        foreign = self.options.get("foreign_key") or strategy.relation_foreign_key(
            self.type,
            self.model,
            related,
            self.relation_name,
        )
        if self._set_keys(local, foreign, self.model, related):
            self.parent_keys = self.local_keys
            self.match_columns = self.foreign_key_columns
            self.parent_columns = self.local_key_columns
        self.parent_key = self.local_key
        self.match_column = self.foreign_key_column_name
        self.parent_column = self.local_key_column_name

    def hydrate_for_persistence(self, parent: BaseModel, values: Any) -> None:
        """Set the related foreign key (on a model or a dict) from the parent's local key."""
        self.boot()
        if self.composite:
            self._hydrate_composite(parent, values)
            return
        value = key_value(self, parent, self.local_key, "persist")
        if value is None:
            raise LucidError(
                f'Cannot persist "{self.relation_name}", value of '
                f'"{type(parent).__name__}.{self.local_key}" is undefined',
                code="E_MISSING_MODEL_ATTRIBUTE",
            )
        if isinstance(values, MutableMapping):  # a dict of attributes, as Lucid's plain object
            values[self.foreign_key] = value
        elif isinstance(values, Mapping):
            raise LucidError(
                f'Cannot persist "{self.relation_name}": the values must be a model or a mutable '
                f"mapping, got {type(values).__name__}",
                code="E_INVALID_ARGUMENT",
            )
        else:
            values.__dict__[self.foreign_key] = value

    def _hydrate_composite(self, parent: BaseModel, values: Any) -> None:
        """``hydrate_for_persistence`` of composite keys: every component, or nothing."""
        row = [key_value(self, parent, k, "persist") for k in self.local_keys]
        if None in row:
            raise LucidError(
                f'Cannot persist "{self.relation_name}", value of '
                f'"{type(parent).__name__}.{self.local_keys[row.index(None)]}" is undefined',
                code="E_MISSING_MODEL_ATTRIBUTE",
            )
        pairs = dict(zip(self.foreign_keys, row, strict=True))
        if isinstance(values, MutableMapping):
            values.update(pairs)
        elif isinstance(values, Mapping):
            raise LucidError(
                f'Cannot persist "{self.relation_name}": the values must be a model or a mutable '
                f"mapping, got {type(values).__name__}",
                code="E_INVALID_ARGUMENT",
            )
        else:
            values.__dict__.update(pairs)


class HasOne(HasRelation[R], OneRelation[R]):
    """``profile: HasOne[Profile] = has_one(lambda: Profile)``; ``user.profile`` is
    ``Profile | None``."""

    type = "hasOne"

    def set_related_for_many(self, parents: Sequence[BaseModel], related: Sequence[Any]) -> None:
        self.boot()
        if self.composite:
            index_by: dict[tuple[Any, ...], Any] = {}
            for r in related:
                index_by.setdefault(tuple([r.__dict__.get(k) for k in self.foreign_keys]), r)
            for parent in parents:
                d = parent.__dict__
                row = tuple([d.get(k) for k in self.local_keys])
                d[self.relation_name] = index_by.get(row) if None not in row else None
            return
        fk, key, name = self.foreign_key, self.local_key, self.relation_name
        index: dict[Any, Any] = {}
        for r in related:
            index.setdefault(r.__dict__.get(fk), r)
        for parent in parents:
            value = parent.__dict__.get(key)
            parent.__dict__[name] = index.get(value) if value is not None else None


class HasOneQueryBuilder(RelationQueryBuilder[R]):
    """The related query of a has_one and its preload query (a one-relation: ``paginate`` and
    ``group_limit`` raise)."""


class HasOneSubQueryBuilder(SubQueryBuilder[R]):
    """``has("profile")`` / ``with_count("profile")`` subquery."""


class HasOneQueryClient(RelationQueryClient[P, "HasRelation[R]"], Generic[P, R]):
    """``user.related("profile")``: the related query and the writes of a has_one."""

    def query(self) -> RelationQueryBuilder[R]:
        """The related rows as a query (none, without querying, when the parent key is NULL)."""
        rel = self.relation
        return cast(
            "RelationQueryBuilder[R]",
            rel.query_builder_class(rel, resolve(self), parent=self.parent),
        )

    def _new(self, values: Mapping[str, Any]) -> R:
        if not isinstance(values, Mapping):
            raise LucidError(
                f"Expected a mapping of attributes, got {values!r}", code="E_INVALID_ARGUMENT"
            )
        return self.relation.related_model()().merge(values)

    def _search(self, search: Mapping[str, Any]) -> dict[str, Any]:
        values = dict(search)
        self.relation.hydrate_for_persistence(self.parent, values)
        return values

    def _lookup(self, search: Mapping[str, Any], trx: Client) -> Any:
        # A plain query on the related model plus the foreign key, as Lucid's
        # ``relatedModel().firstOrCreate(...)``: ``on_query`` never runs on a write's lookup.
        rel = self.relation
        related_model = rel.related_model()
        values = dict(search)
        rel.hydrate_for_persistence(self.parent, values)
        query = related_model.query(client=trx)
        for key, value in values.items():
            query.where(column_name(related_model, key), value)
        return query

    async def save(self, related: R, *, client: Client | None = None) -> R:
        """Set ``related``'s foreign key to the parent and save both (parent first) in one
        transaction."""
        rel = self.relation
        check_related(rel, related)
        async with managed(self, client, [related]) as trx:
            await self.parent.save(client=trx)
            rel.hydrate_for_persistence(self.parent, related)
            await related.save(client=trx)
        return related

    async def create(self, values: Mapping[str, Any], *, client: Client | None = None) -> R:
        """Create a related row for the parent."""
        return await self.save(self._new(values), client=client)

    async def first_or_create(
        self,
        search: Mapping[str, Any],
        save_payload: Mapping[str, Any] | None = None,
        *,
        client: Client | None = None,
    ) -> R:
        """The parent's related row matching ``search``, else create
        ``search + save_payload`` for the parent."""
        rel = self.relation
        async with managed(self, client) as trx:
            await self.parent.save(client=trx)
            found: R | None = await self._lookup(search, trx).first()
            if found is not None:
                return found
            instance = self._new({**search, **(save_payload or {})})
            rel.hydrate_for_persistence(self.parent, instance)
            # Race-safe with a unique index on the search columns (+ the foreign key).
            return await create_or_first(instance, self._search(search), trx)

    async def update_or_create(
        self,
        search: Mapping[str, Any],
        update_payload: Mapping[str, Any],
        *,
        client: Client | None = None,
    ) -> R:
        """Update the parent's related row matching ``search`` (locked ``FOR UPDATE``), else
        create ``search + update_payload`` for the parent. Race-safe with a unique index on the
        search columns (+ the foreign key); a deadlock victim is run again when this call owns
        its transaction."""
        for tries in range(3):
            try:
                return await self._update_or_create(search, update_payload, client)
            except QueryError as exc:
                base = resolve(self, client)
                if base.is_transaction or tries == 2 or not is_deadlock(base, exc):
                    raise
        raise AssertionError("unreachable")

    async def _update_or_create(
        self, search: Mapping[str, Any], update_payload: Mapping[str, Any], client: Client | None
    ) -> R:
        rel = self.relation
        async with managed(self, client) as trx:
            await self.parent.save(client=trx)
            found: R | None = await locked_match(self._lookup(search, trx))
            if found is not None:
                found.merge(update_payload)
                await found.save(client=trx)
                return found
            instance = self._new({**search, **update_payload})
            rel.hydrate_for_persistence(self.parent, instance)
            winner = await create_or_first(instance, self._search(search), trx, lock="update")
            if winner is not instance:  # a concurrent caller created it first: update it
                winner.merge(update_payload)
                await winner.save(client=trx)
            return winner


def has_one(
    related: Callable[[], builtins.type[R]],
    *,
    init: Literal[False] = False,
    **options: Unpack[KeyOptions],
) -> HasOne[R]:
    """Declare a has_one relation: ``profile: HasOne[Profile] = has_one(lambda: Profile)``.
    Options: ``foreign_key``, ``local_key``, ``serialize_as``, ``on_query``, ``meta``."""
    return HasOne(related, **options)


# The roles of the kind, built by Relation's template methods.
HasOne.query_builder_class = HasOneQueryBuilder
HasOne.sub_query_builder_class = HasOneSubQueryBuilder
HasOne.query_client_class = HasOneQueryClient
