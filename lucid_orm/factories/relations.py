"""How ``with_`` makes each kind of relation (Lucid's ``factories/relations``): belongs_to
parents before the instance, has_one/has_many/many_to_many children after it."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import LucidError
from ..orm.relations.base import Relation
from ..orm.relations.many_to_many import ManyToMany
from .factory_context import FactoryCall, call_sync

if TYPE_CHECKING:
    from .factory_builder import FactoryBuilder, FactoryBuilderQuery


class FactoryRelation:
    """A relation registered with ``FactoryModel.relation(name, lambda: OtherFactory)``."""

    def __init__(
        self, relation: Relation[Any], factory: Callable[[], FactoryBuilderQuery[Any]]
    ) -> None:
        self.relation = relation
        self.factory = factory

    def builder(self, call: FactoryCall) -> FactoryBuilder[Any]:
        """The related factory's builder, configured by ``call.callback`` and sharing
        ``call.ctx``."""
        from .factory_builder import FactoryBuilderQuery, relation_builder

        built = self.factory()
        if not isinstance(built, FactoryBuilderQuery):
            raise LucidError(
                f'The factory of relationship "{self.relation.relation_name}" must be a built '
                f"factory (Factory.define(...).build()), got {built!r}",
                code="E_INVALID_FACTORY",
            )
        self.relation.boot()
        builder = relation_builder(built, call)
        if call.callback is not None:
            call_sync(call.callback, "with_", builder)
        builder.use_ctx(call.ctx)
        return builder

    def make(self, call: FactoryCall) -> None:
        """Make stubbed related instances and set them on ``call.parent``."""
        raise NotImplementedError

    async def create(self, call: FactoryCall) -> None:
        """Create related instances in ``call.ctx.trx`` and set them on ``call.parent``."""
        raise NotImplementedError


class FactoryBelongsTo(FactoryRelation):
    """The parent row: made first, its key set as the instance's foreign key."""

    def make(self, call: FactoryCall) -> None:
        related = self.builder(call).make_stubbed()
        self.relation.hydrate_for_persistence(call.parent, related)
        self.relation.set_related(call.parent, related)

    async def create(self, call: FactoryCall) -> None:
        related = await self.builder(call).create()
        self.relation.hydrate_for_persistence(call.parent, related)
        self.relation.set_related(call.parent, related)


class FactoryHasOne(FactoryRelation):
    """One child row carrying the instance's key (``count`` is ignored)."""

    def _keyed(self, call: FactoryCall) -> FactoryBuilder[Any]:
        keys: dict[str, Any] = {}
        self.relation.hydrate_for_persistence(call.parent, keys)
        return self.builder(call).tap(lambda related: related.merge(keys))

    def make(self, call: FactoryCall) -> None:
        related = self._keyed(call).make_stubbed()
        self.relation.set_related(call.parent, related)

    async def create(self, call: FactoryCall) -> None:
        related = await self._keyed(call).create()
        self.relation.set_related(call.parent, related)


class FactoryHasMany(FactoryHasOne):
    """``count`` child rows carrying the instance's key; a second ``with_`` of the same
    relation adds to the list."""

    def make(self, call: FactoryCall) -> None:
        related = self._keyed(call).make_stubbed_many(call.count)
        self.relation.push_related(call.parent, related)

    async def create(self, call: FactoryCall) -> None:
        related = await self._keyed(call).create_many(call.count)
        self.relation.push_related(call.parent, related)


class FactoryManyToMany(FactoryRelation):
    """``count`` related rows, then one pivot row each (with ``pivot_attributes``)."""

    def make(self, call: FactoryCall) -> None:
        related = self.builder(call).make_stubbed_many(call.count)
        self.relation.push_related(call.parent, related)

    async def create(self, call: FactoryCall) -> None:
        from .factory_builder import pivot_values

        relation = self.relation
        trx = call.ctx.trx
        # make_relation() gives this class only many_to_many relations; create() has a trx.
        assert isinstance(relation, ManyToMany) and trx is not None
        builder = self.builder(call)
        related = await builder.create_many(call.count)
        key = relation.related_key
        rows = {item.__dict__.get(key): pivot_values(builder, i) for i, item in enumerate(related)}
        await relation.client(call.parent, trx).attach(rows, client=trx)
        relation.push_related(call.parent, related)


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
