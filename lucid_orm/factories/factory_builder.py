"""``FactoryBuilder``: one factory call — merge attributes, states, relations, client — and
the ``make``/``make_stubbed``/``create`` family; ``FactoryBuilderQuery`` is what
``FactoryModel.build()`` returns, starting a fresh builder per call."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Self, TypeVar

from ..database.manager import db
from ..errors import LucidError
from ..orm.base_model import BaseModel
from ..orm.model_info import relation_key
from .factory_context import FactoryCall, FactoryContext, arity, call_async, call_sync, ensure_sync
from .main import Factory

if TYPE_CHECKING:
    from ..database.query_client import Client
    from ..database.transaction import TransactionClient
    from ..orm.relations.base import Relation
    from .factory_model import FactoryModel

M = TypeVar("M", bound=BaseModel)

Attributes = Mapping[str, Any] | Sequence[Mapping[str, Any]]
"""One mapping for every instance, or a list with one mapping per instance (by index)."""
BuilderCallback = Callable[["FactoryBuilder[Any]"], Any]


@dataclass(frozen=True, slots=True)
class _With:
    name: str
    count: int
    callback: BuilderCallback | None

    def call(
        self, parent: BaseModel, ctx: FactoryContext, inherited: Mapping[str, Any]
    ) -> FactoryCall:
        return FactoryCall(parent, ctx, inherited, self.count, self.callback)


def _check_attributes(attributes: Any, method: str) -> Attributes:
    if isinstance(attributes, Mapping):
        return attributes
    if (
        isinstance(attributes, Sequence)
        and not isinstance(attributes, str | bytes)
        and all(isinstance(a, Mapping) for a in attributes)
    ):
        return attributes
    raise LucidError(
        f"{method}() expects a mapping of attributes or a list of them (one per instance), "
        f"got {attributes!r}",
        code="E_INVALID_ARGUMENT",
    )


def _at(attributes: Attributes, index: int) -> Mapping[str, Any]:
    if isinstance(attributes, Mapping):
        return attributes
    return attributes[index] if index < len(attributes) else {}


def _check_count(count: Any, method: str) -> int:
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise LucidError(
            f"{method}() expects a count (an int >= 0), got {count!r}", code="E_INVALID_ARGUMENT"
        )
    return count


class FactoryBuilder(Generic[M]):
    """One factory call being configured. Every configuring method returns the builder::

        user = await UserFactory.merge({"email": "ada@example.com"}).apply("admin").create()
        posts = await PostFactory.with_("author").create_many(3)

    ``make()``/``make_many()``/``make_stubbed()``/``make_stubbed_many()`` are synchronous and
    touch no database; ``create()``/``create_many()`` are coroutines that write everything —
    the instances and their ``with_`` relations, nested — in one transaction: all or nothing.
    """

    def __init__(
        self,
        factory: FactoryModel[M],
        *,
        client: Client | None = None,
        connection: str | None = None,
    ) -> None:
        self.factory = factory
        self._client = client
        self._connection = connection
        self._parent: BaseModel | None = None
        self._with: list[_With] = []
        self._with_belongs_to: list[_With] = []
        self._taps: list[Callable[..., Any]] = []
        self._index = 0
        self._attributes: Attributes = {}
        self._recursive: Attributes = {}
        self._inherited: Mapping[str, Any] = {}
        self._states: dict[str, None] = {}
        self._ctx: FactoryContext | None = None
        self._pivot: Attributes | None = None

    @property
    def model(self) -> type[M]:
        return self.factory.model

    @property
    def parent(self) -> BaseModel | None:
        """The parent instance when this builder makes a relation of it (``with_``)."""
        return self._parent

    # -- configuration -------------------------------------------------------------------------
    def connection(self, name: str) -> Self:
        """Create the instances on the connection ``name``."""
        self._connection = name
        return self

    def client(self, client: Client) -> Self:
        """Create the instances through ``client`` — a transaction (the factory then works in a
        savepoint of it) or ``db.connection(name)``."""
        self._client = client
        return self

    def use_ctx(self, ctx: FactoryContext) -> Self:
        """Share ``ctx`` (and its transaction) — what relations do with their parent's."""
        self._ctx = ctx
        return self

    def with_(
        self,
        relation: str | Relation[Any],
        count: int | BuilderCallback | None = None,
        callback: BuilderCallback | None = None,
    ) -> Self:
        """Also make ``count`` (default 1) related instances with the factory registered by
        ``.relation(name, ...)``. ``callback(builder)`` configures the related factory —
        ``merge``, ``apply``, nested ``with_``, ``pivot_attributes`` — by side effect::

            await UserFactory.with_("posts", 3, lambda post: post.apply("published")).create()
            await PostFactory.with_("author").create()   # belongs_to: the parent comes first

        ``count`` is ignored by one-relations (belongs_to, has_one); the same relation may be
        given twice (3 published posts and 2 drafts). The relation attribute works too:
        ``UserFactory.with_(User.posts, 3)``."""
        relation = relation_key(self.model, relation)
        definition = self.factory.get_relation(relation)
        if callable(count):
            count, callback = None, count
        entry = _With(relation, 1 if count is None else _check_count(count, "with_"), callback)
        if definition.relation.type == "belongsTo":
            self._with_belongs_to.append(entry)
        else:
            self._with.append(entry)
        return self

    def apply(self, *states: str) -> Self:
        """Apply the named states (each once, in the order first given)."""
        for state in states:
            self.factory.get_state(state)
            self._states[state] = None
        return self

    def merge(self, attributes: Attributes) -> Self:
        """Attributes that override the define callback's (and come before states): one
        mapping for all instances, or a list with one per instance::

            await UserFactory.merge([{"email": "a@x.io"}, {"email": "b@x.io"}]).create_many(2)
        """
        self._attributes = _check_attributes(attributes, "merge")
        return self

    def merge_recursive(self, attributes: Attributes) -> Self:
        """Like ``merge``, and also for every relation made through ``with_``, at any depth —
        on each model that has those columns (``{"tenant_id": 1}``)."""
        self._recursive = _check_attributes(attributes, "merge_recursive")
        return self

    def pivot_attributes(self, attributes: Attributes) -> Self:
        """Values for the pivot rows when this builder makes a many_to_many relation: one
        mapping for every row or a list with one per instance (pivot column names). Ignored
        for other relations."""
        self._pivot = _check_attributes(attributes, "pivot_attributes")
        return self

    def tap(self, callback: Callable[..., Any]) -> Self:
        """Run ``callback(model, ctx, builder)`` on each instance as the last step of making it
        (before it is saved)."""
        self._taps.append(callback)
        return self

    # -- making --------------------------------------------------------------------------------
    def _merge_attributes(self, index: int) -> dict[str, Any]:
        columns = self.model.columns
        inherited = {**self._inherited, **_at(self._recursive, index)}
        out = {k: v for k, v in inherited.items() if k in columns}
        out.update(_at(self._attributes, index))
        return out

    def _recursive_for_relations(self) -> dict[str, Any]:
        return {**self._inherited, **_at(self._recursive, self._index)}

    def _define(self, ctx: FactoryContext) -> Any:
        define = self.factory.define
        takes = arity(define)
        # Faker is only loaded when the callback takes it.
        if takes == 0:
            result = define()
        elif takes == 1:
            result = define(ctx.faker)
        else:
            result = define(ctx.faker, ctx)
        return ensure_sync(result, "define")

    def _compile(self, ctx: FactoryContext) -> M:
        factory = self.factory
        model = self.model
        instance = call_sync(
            factory.new_up_model_instance, "new_up", self._define(ctx), ctx, model, self
        )
        if not isinstance(instance, model):
            raise LucidError(
                f'The new_up callback of the "{model.__name__}" factory must return a '
                f"{model.__name__} instance, got {instance!r}",
                code="E_INVALID_FACTORY",
            )
        attributes = self._merge_attributes(self._index)
        call_sync(factory.merge_attributes, "merge", instance, attributes, ctx, self)
        for state in self._states:
            call_sync(factory.get_state(state), f'"{state}" state', instance, ctx, self)
        for tap in self._taps:
            call_sync(tap, "tap", instance, ctx, self)
        return instance

    def _sync_hooks(self, event: str, instance: M, ctx: FactoryContext) -> None:
        for hook in self.factory.hooks.get(event, ()):
            call_sync(hook, f'"{event}" hook', self, instance, ctx)

    async def _hooks(self, event: str, instance: M, ctx: FactoryContext) -> None:
        for hook in self.factory.hooks.get(event, ()):
            await call_async(hook, self, instance, ctx)

    def make(self) -> M:
        """An unsaved instance (attributes, merge, states, taps). Relations given with
        ``with_`` are not made (as Lucid): use ``make_stubbed()`` or ``create()``."""
        ctx = self._ctx or FactoryContext(False, None)
        instance = self._compile(ctx)
        self._sync_hooks("after:make", instance, ctx)
        return instance

    def make_many(self, count: int) -> list[M]:
        """``count`` unsaved instances (``merge`` lists are read by index)."""
        return self._many(_check_count(count, "make_many"), self.make)

    def make_stubbed(self) -> M:
        """An unsaved instance with a primary key (``Factory.stub_id``) and its ``with_``
        relations made the same way, foreign keys set: a model graph with no database."""
        ctx = self._ctx or FactoryContext(True, None)
        instance = self._compile(ctx)
        self._sync_hooks("after:make", instance, ctx)
        self._sync_hooks("before:make_stubbed", instance, ctx)
        pk = self.model.primary_key
        # A composite key is the factory's to give (its components are ordinary columns).
        if isinstance(pk, str) and instance.__dict__.get(pk) is None:
            setattr(instance, pk, Factory.next_stub_id(instance))
        inherited = self._recursive_for_relations()
        for entry in (*self._with_belongs_to, *self._with):
            self.factory.get_relation(entry.name).make(entry.call(instance, ctx, inherited))
        self._sync_hooks("after:make_stubbed", instance, ctx)
        return instance

    def make_stubbed_many(self, count: int) -> list[M]:
        """``count`` stubbed instances (see ``make_stubbed``)."""
        return self._many(_check_count(count, "make_stubbed_many"), self.make_stubbed)

    def _many(self, count: int, make: Callable[[], M]) -> list[M]:
        out: list[M] = []
        for index in range(count):
            self._index = index  # the index merge()/merge_recursive() lists are read by
            out.append(make())
        return out

    # -- creating ------------------------------------------------------------------------------
    async def _begin(self) -> TransactionClient:
        base = self._client
        if base is None:
            base = db.connection(self._connection or self.model.connection)
        trx: TransactionClient = await base.transaction()
        return trx

    async def _persist(self, instance: M, ctx: FactoryContext) -> None:
        await self._hooks("after:make", instance, ctx)
        await self._hooks("before:create", instance, ctx)
        assert ctx.trx is not None
        instance.use_transaction(ctx.trx)
        inherited = self._recursive_for_relations()
        # belongs_to parents first: the foreign key may be NOT NULL (Lucid).
        for entry in self._with_belongs_to:
            await self.factory.get_relation(entry.name).create(entry.call(instance, ctx, inherited))
        await instance.save()
        for entry in self._with:
            await self.factory.get_relation(entry.name).create(entry.call(instance, ctx, inherited))
        await self._hooks("after:create", instance, ctx)

    async def create(self) -> M:
        """Make an instance and save it, with its ``with_`` relations, in one transaction (a
        savepoint inside ``client(trx)``); on any error nothing is left written."""
        return (await self._create(1, many=False))[0]

    async def create_many(self, count: int) -> list[M]:
        """``create`` ``count`` instances, all in one transaction."""
        return await self._create(_check_count(count, "create_many"), many=True)

    async def _create(self, count: int, *, many: bool) -> list[M]:
        own = self._ctx is None
        ctx = self._ctx if self._ctx is not None else FactoryContext(False, await self._begin())
        out: list[M] = []
        try:
            for index in range(count):
                if many:
                    self._index = index
                instance = self._compile(ctx)
                await self._persist(instance, ctx)
                out.append(instance)
        except BaseException:
            if own and ctx.trx is not None and not ctx.trx.is_completed:
                await ctx.trx.rollback()
            raise
        if own and ctx.trx is not None:
            await ctx.trx.commit()
        return out


def relation_builder(built: FactoryBuilderQuery[M], call: FactoryCall) -> FactoryBuilder[M]:
    """A fresh builder of ``built`` making a relation of ``call.parent`` (``with_``): it
    inherits the ``merge_recursive`` attributes."""
    builder = built.query()
    builder._parent = call.parent
    builder._inherited = call.inherited
    return builder


def pivot_values(builder: FactoryBuilder[Any], index: int) -> dict[str, Any]:
    """The ``pivot_attributes`` of the ``index``-th instance ``builder`` made (many_to_many)."""
    return dict(_at(builder._pivot or {}, index))


class FactoryBuilderQuery(Generic[M]):
    """A built factory (``UserFactory``). Each method starts a fresh ``FactoryBuilder``, so a
    factory can be used concurrently and never keeps state between calls."""

    def __init__(self, factory: FactoryModel[M]) -> None:
        self.factory = factory

    @property
    def model(self) -> type[M]:
        return self.factory.model

    def query(
        self, *, client: Client | None = None, connection: str | None = None
    ) -> FactoryBuilder[M]:
        """A fresh builder."""
        return FactoryBuilder(self.factory, client=client, connection=connection)

    def client(self, client: Client) -> FactoryBuilder[M]:
        return self.query().client(client)

    def connection(self, name: str) -> FactoryBuilder[M]:
        return self.query().connection(name)

    def use_ctx(self, ctx: FactoryContext) -> FactoryBuilder[M]:
        return self.query().use_ctx(ctx)

    def with_(
        self,
        relation: str | Relation[Any],
        count: int | BuilderCallback | None = None,
        callback: BuilderCallback | None = None,
    ) -> FactoryBuilder[M]:
        return self.query().with_(relation, count, callback)

    def apply(self, *states: str) -> FactoryBuilder[M]:
        return self.query().apply(*states)

    def merge(self, attributes: Attributes) -> FactoryBuilder[M]:
        return self.query().merge(attributes)

    def merge_recursive(self, attributes: Attributes) -> FactoryBuilder[M]:
        return self.query().merge_recursive(attributes)

    def pivot_attributes(self, attributes: Attributes) -> FactoryBuilder[M]:
        return self.query().pivot_attributes(attributes)

    def tap(self, callback: Callable[..., Any]) -> FactoryBuilder[M]:
        return self.query().tap(callback)

    def make(self) -> M:
        return self.query().make()

    def make_many(self, count: int) -> list[M]:
        return self.query().make_many(count)

    def make_stubbed(self) -> M:
        return self.query().make_stubbed()

    def make_stubbed_many(self, count: int) -> list[M]:
        return self.query().make_stubbed_many(count)

    async def create(self) -> M:
        return await self.query().create()

    async def create_many(self, count: int) -> list[M]:
        return await self.query().create_many(count)
