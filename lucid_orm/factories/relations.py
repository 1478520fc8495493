"""How ``with_`` makes each kind of relation (Lucid's ``factories/relations``): belongs_to
parents before the instance, has_one/has_many/many_to_many children after it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..errors import LucidError
from ..orm.base_model import BaseModel
from ..orm.relations.base import Relation
from .factory_context import FactoryContext, call_sync

if TYPE_CHECKING:
    from .factory_builder import BuilderCallback, FactoryBuilder, FactoryBuilderQuery


class FactoryRelation:
    """A relation registered with ``FactoryModel.relation(name, lambda: OtherFactory)``."""

    def __init__(
        self, relation: Relation[Any], factory: Callable[[], FactoryBuilderQuery[Any]]
    ) -> None:
        self.relation = relation
        self.factory = factory

    def builder(
        self,
        parent: BaseModel,
        ctx: FactoryContext,
        inherited: Mapping[str, Any],
        callback: BuilderCallback | None,
    ) -> FactoryBuilder[Any]:
        """The related factory's builder, configured by ``callback`` and sharing ``ctx``."""
        from .factory_builder import FactoryBuilderQuery

        built = self.factory()
        if not isinstance(built, FactoryBuilderQuery):
            raise LucidError(
                f'The factory of relationship "{self.relation.relation_name}" must be a built '
                f"factory (Factory.define(...).build()), got {built!r}",
                code="E_INVALID_FACTORY",
            )
        self.relation.boot()
        builder = built.query()
        builder._parent = parent
        builder._inherited = inherited
        if callback is not None:
            call_sync(callback, "with_", builder)
        builder.use_ctx(ctx)
        return builder

    def make(
        self,
        parent: BaseModel,
        ctx: FactoryContext,
        inherited: Mapping[str, Any],
        count: int,
        callback: BuilderCallback | None,
    ) -> None:
        """Make stubbed related instances and set them on ``parent``."""
        raise NotImplementedError

    async def create(
        self,
        parent: BaseModel,
        ctx: FactoryContext,
        inherited: Mapping[str, Any],
        count: int,
        callback: BuilderCallback | None,
    ) -> None:
        """Create related instances in ``ctx.trx`` and set them on ``parent``."""
        raise NotImplementedError


class FactoryBelongsTo(FactoryRelation):
    """The parent row: made first, its key set as the instance's foreign key."""

    def make(
        self,
        parent: BaseModel,
        ctx: FactoryContext,
        inherited: Mapping[str, Any],
        count: int,
        callback: BuilderCallback | None,
    ) -> None:
        related = self.builder(parent, ctx, inherited, callback).make_stubbed()
        self.relation.hydrate_for_persistence(parent, related)
        self.relation.set_related(parent, related)

    async def create(
        self,
        parent: BaseModel,
        ctx: FactoryContext,
        inherited: Mapping[str, Any],
        count: int,
        callback: BuilderCallback | None,
    ) -> None:
        related = await self.builder(parent, ctx, inherited, callback).create()
        self.relation.hydrate_for_persistence(parent, related)
        self.relation.set_related(parent, related)


class FactoryHasOne(FactoryRelation):
    """One child row carrying the instance's key (``count`` is ignored)."""

    def _keyed(
        self,
        parent: BaseModel,
        ctx: FactoryContext,
        inherited: Mapping[str, Any],
        callback: BuilderCallback | None,
    ) -> FactoryBuilder[Any]:
        keys: dict[str, Any] = {}
        self.relation.hydrate_for_persistence(parent, keys)
        return self.builder(parent, ctx, inherited, callback).tap(
            lambda related: related.merge(keys)
        )

    def make(
        self,
        parent: BaseModel,
        ctx: FactoryContext,
        inherited: Mapping[str, Any],
        count: int,
        callback: BuilderCallback | None,
    ) -> None:
        related = self._keyed(parent, ctx, inherited, callback).make_stubbed()
        self.relation.set_related(parent, related)

    async def create(
        self,
        parent: BaseModel,
        ctx: FactoryContext,
        inherited: Mapping[str, Any],
        count: int,
        callback: BuilderCallback | None,
    ) -> None:
        related = await self._keyed(parent, ctx, inherited, callback).create()
        self.relation.set_related(parent, related)


class FactoryHasMany(FactoryHasOne):
    """``count`` child rows carrying the instance's key; a second ``with_`` of the same
    relation adds to the list."""

    def make(
        self,
        parent: BaseModel,
        ctx: FactoryContext,
        inherited: Mapping[str, Any],
        count: int,
        callback: BuilderCallback | None,
    ) -> None:
        related = self._keyed(parent, ctx, inherited, callback).make_stubbed_many(count)
        self.relation.push_related(parent, related)

    async def create(
        self,
        parent: BaseModel,
        ctx: FactoryContext,
        inherited: Mapping[str, Any],
        count: int,
        callback: BuilderCallback | None,
    ) -> None:
        related = await self._keyed(parent, ctx, inherited, callback).create_many(count)
        self.relation.push_related(parent, related)


class FactoryManyToMany(FactoryRelation):
    """``count`` related rows, then one pivot row each (with ``pivot_attributes``)."""

    def make(
        self,
        parent: BaseModel,
        ctx: FactoryContext,
        inherited: Mapping[str, Any],
        count: int,
        callback: BuilderCallback | None,
    ) -> None:
        related = self.builder(parent, ctx, inherited, callback).make_stubbed_many(count)
        self.relation.push_related(parent, related)

    async def create(
        self,
        parent: BaseModel,
        ctx: FactoryContext,
        inherited: Mapping[str, Any],
        count: int,
        callback: BuilderCallback | None,
    ) -> None:
        from .factory_builder import _at

        builder = self.builder(parent, ctx, inherited, callback)
        related = await builder.create_many(count)
        pivot = builder._pivot if builder._pivot is not None else {}
        key = self.relation.related_key  # type: ignore[attr-defined]
        rows = {item.__dict__.get(key): dict(_at(pivot, i)) for i, item in enumerate(related)}
        await self.relation.client(parent, ctx.trx).attach(rows, client=ctx.trx)  # type: ignore[arg-type]
        self.relation.push_related(parent, related)


_KINDS: dict[str, type[FactoryRelation]] = {
    "belongsTo": FactoryBelongsTo,
    "hasOne": FactoryHasOne,
    "hasMany": FactoryHasMany,
    "manyToMany": FactoryManyToMany,
}


def make_relation(
    relation: Relation[Any], factory: Callable[[], FactoryBuilderQuery[Any]]
) -> FactoryRelation:
    """The factory relation for ``relation``'s kind; has_many_through is refused."""
    kind = _KINDS.get(relation.type)
    if kind is None:
        raise LucidError(
            f'Cannot define "{relation.relation_name}" relationship. "{relation.type}" '
            "relationship does not have any persistence API",
            code="E_INVALID_FACTORY",
        )
    return kind(relation, factory)
