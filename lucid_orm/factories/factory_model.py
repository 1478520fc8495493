"""``FactoryModel``: a factory being defined — its attributes callback, states, relations,
hooks and instantiation overrides; ``build()`` turns it into a ``FactoryBuilderQuery``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from ..errors import LucidError
from ..orm.base_model import BaseModel
from ..orm.model_info import relation_key
from .factory_builder import FactoryBuilderQuery
from .relations import FactoryRelation, make_relation

if TYPE_CHECKING:
    from ..orm.relations.base import Relation
    from .factory_context import FactoryContext

M = TypeVar("M", bound=BaseModel)

StateCallback = Callable[..., Any]
"""``(model)``, ``(model, ctx)`` or ``(model, ctx, builder)``; changes ``model`` in place."""
HookHandler = Callable[..., Any]
"""``(builder, model, ctx)`` (trailing parameters may be left out)."""
NewUpCallback = Callable[..., Any]
"""``(attributes, ctx, model_class, builder)`` → a model instance."""
MergeCallback = Callable[..., Any]
"""``(model, attributes, ctx, builder)``: merge the ``merge()`` attributes into ``model``."""

BeforeEvent = Literal["create", "make_stubbed"]
AfterEvent = Literal["make", "create", "make_stubbed"]


def _new_up(attributes: Any, _ctx: FactoryContext, model: type[BaseModel]) -> BaseModel:
    # The define callback may return an instance instead of its attributes (Lucid).
    if isinstance(attributes, model):
        return attributes
    if not isinstance(attributes, Mapping):
        raise LucidError(
            f'The factory of "{model.__name__}" must return a mapping of attributes or a '
            f"{model.__name__} instance, got {attributes!r}",
            code="E_INVALID_FACTORY",
        )
    return model().merge(attributes)


def _merge(model: BaseModel, attributes: Mapping[str, Any]) -> None:
    model.merge(attributes)


class FactoryModel(Generic[M]):
    """A factory under definition (``Factory.define(User, ...)``). Each method returns the
    factory, so definitions chain; ``build()`` ends the chain."""

    def __init__(self, model: type[M], define: Callable[..., Mapping[str, Any] | M]) -> None:
        self.model = model
        self.define = define
        self.states: dict[str, StateCallback] = {}
        self.relations: dict[str, FactoryRelation] = {}
        self.hooks: dict[str, list[HookHandler]] = {}
        self.new_up_model_instance: NewUpCallback = _new_up
        self.merge_attributes: MergeCallback = _merge

    def state(self, name: str, callback: StateCallback) -> FactoryModel[M]:
        """A named variation, applied with ``.apply(name)``: ``callback(model)`` changes the
        instance in place (its return value is ignored)::

            .state("admin", lambda user: user.merge({"is_admin": True}))
        """
        if not callable(callback):
            raise LucidError(f'State "{name}" needs a callback', code="E_INVALID_FACTORY")
        self.states[name] = callback
        return self

    def relation(
        self, name: str | Relation[Any], factory: Callable[[], FactoryBuilderQuery[Any]]
    ) -> FactoryModel[M]:
        """Let ``.with_(name, ...)`` build the model's relation ``name`` with the factory that
        ``factory()`` returns (a function, so factories may refer to each other)::

            .relation("posts", lambda: PostFactory)

        Raises ``LucidError`` when the model has no such relation, or it is a has_many_through
        (which has no persistence API). The relation attribute works too (``User.posts``)."""
        name = relation_key(self.model, name)
        if not self.model.has_relation(name):
            raise LucidError(
                f'Cannot define "{name}" relationship. The relationship must exist on the '
                f'"{self.model.__name__}" model first',
                code="E_UNDEFINED_RELATIONSHIP",
            )
        if not callable(factory):
            raise LucidError(
                f'Relationship "{name}" needs a function returning its factory, e.g. '
                "lambda: PostFactory",
                code="E_INVALID_FACTORY",
            )
        self.relations[name] = make_relation(self.model.get_relation(name), factory)
        return self

    def before(self, event: BeforeEvent, handler: HookHandler) -> FactoryModel[M]:
        """Run ``handler(builder, model, ctx)`` before ``"create"`` (may be async) or
        ``"make_stubbed"``."""
        return self._hook("before", event, ("create", "make_stubbed"), handler)

    def after(self, event: AfterEvent, handler: HookHandler) -> FactoryModel[M]:
        """Run ``handler(builder, model, ctx)`` after ``"make"``, ``"make_stubbed"`` or
        ``"create"`` (may be async; runs inside the factory's transaction)."""
        return self._hook("after", event, ("make", "create", "make_stubbed"), handler)

    def _hook(
        self, when: str, event: str, events: tuple[str, ...], handler: HookHandler
    ) -> FactoryModel[M]:
        if event not in events:
            raise LucidError(
                f'Unknown factory hook "{when}:{event}": use one of {", ".join(events)}',
                code="E_INVALID_FACTORY",
            )
        self.hooks.setdefault(f"{when}:{event}", []).append(handler)
        return self

    def new_up(self, callback: NewUpCallback) -> FactoryModel[M]:
        """Replace how an instance is made from the define callback's attributes:
        ``callback(attributes, ctx, model_class, builder)`` returns the instance."""
        self.new_up_model_instance = callback
        return self

    def merge(self, callback: MergeCallback) -> FactoryModel[M]:
        """Replace how ``builder.merge(...)`` attributes are applied:
        ``callback(model, attributes, ctx, builder)``."""
        if not callable(callback):
            raise LucidError(
                "FactoryModel.merge() takes a callback; to merge attributes into the instances, "
                "call merge() on the built factory",
                code="E_INVALID_FACTORY",
            )
        self.merge_attributes = callback
        return self

    def get_state(self, name: str) -> StateCallback:
        """The state callback ``name``; raises ``LucidError`` when it is not defined."""
        found = self.states.get(name)
        if found is None:
            raise LucidError(
                f'Cannot apply undefined state "{name}". Double check the model factory',
                code="E_UNDEFINED_STATE",
            )
        return found

    def get_relation(self, name: str) -> FactoryRelation:
        """The factory relation ``name``; raises ``LucidError`` when it was not set up."""
        found = self.relations.get(name)
        if found is None:
            raise LucidError(
                f'Cannot reference "{name}" relationship. Make sure to setup the relationship '
                "within the factory",
                code="E_UNDEFINED_RELATIONSHIP",
            )
        return found

    def build(self) -> FactoryBuilderQuery[M]:
        """The usable factory: ``UserFactory.create()``, ``.make_many(3)``, ``.merge(...)``…
        each call starts a fresh ``FactoryBuilder``."""
        return FactoryBuilderQuery(self)
