"""morph_to: the parent holds a type and an id (``Comment.commentable_type`` +
``Comment.commentable_id``) that point at a row of one of several models.
``MorphTo``, ``MorphToQueryClient``, ``MorphToQueryBuilder``, ``MorphToSubQueryBuilder``.

Each related model is reached through a per-type belongs_to (``MorphTo.for_type(Post)``):
its preload query (one per type present), its related query and its correlated subquery
(``where_has_morph``) are belongs_to's, plus the type."""

from __future__ import annotations

import builtins
import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from sqlalchemy import and_, exists, false, not_, or_
from sqlalchemy.sql import ColumnElement

from ...errors import LucidError, runtime_error
from ...query.chainable import compare, correlated, run_callback
from .base import (
    _OWN_NAME,
    OneRelation,
    P,
    RelationQueryClient,
    key_value,
    managed,
    require_key,
    resolve,
)
from .belongs_to import BelongsTo, BelongsToQueryBuilder, BelongsToSubQueryBuilder
from .morph_map import as_morph_model, morph_alias, morph_model

if TYPE_CHECKING:
    from ...database.query_client import Client
    from ..base_model import BaseModel
    from ..query_builder import ModelQueryBuilder

R = TypeVar("R", bound="BaseModel")


def _no_single_model() -> Any:
    raise runtime_error("A morph_to relation has no single related model: use for_type(Model)")


class MorphTo(OneRelation[R]):
    """``commentable: MorphTo[Post | Video] = morph_to()``; ``comment.commentable`` is
    ``Post | Video | None``. The parent's ``<name>_type`` holds the related model's morph
    alias (``morph_map``), ``<name>_id`` its key (``owner_key``, default its primary key)."""

    type = "morphTo"
    # The preloader hands this relation its parents whole (one query per type present).
    _per_type = True

    def __init__(
        self,
        *,
        type_column: str | None = None,
        id_column: str | None = None,
        owner_key: str | None = None,
        serialize_as: str | None = _OWN_NAME,
        on_query: Callable[[Any], Any] | None = None,
        meta: Any = None,
    ) -> None:
        super().__init__(_no_single_model, serialize_as=serialize_as, on_query=on_query, meta=meta)
        self._type_column_option = type_column
        self._id_column_option = id_column
        self.owner_key = owner_key
        self.type_key = ""
        self.type_key_column_name = ""
        self._targets: dict[builtins.type[BaseModel], MorphToType] = {}

    def attach(self, model: builtins.type[BaseModel], name: str) -> None:
        super().attach(model, name)
        self._targets = {}

    def clone_for(self, model: builtins.type[BaseModel]) -> Any:
        clone = super().clone_for(model)
        clone._targets = {}
        return clone

    def _boot_keys(self) -> None:
        name = self.relation_name
        self.type_key = self._type_column_option or f"{name}_type"
        self.foreign_key = self._id_column_option or f"{name}_id"
        self.type_key_column_name = require_key(self, self.model, self.type_key)
        self.foreign_key_column_name = require_key(self, self.model, self.foreign_key)
        self.parent_key = self.foreign_key
        self.parent_column = self.foreign_key_column_name

    def related_model(self) -> builtins.type[R]:
        """Refused: the related model depends on the row (see ``for_type``)."""
        return _no_single_model()  # type: ignore[no-any-return]

    def for_type(self, model: builtins.type[BaseModel] | str) -> MorphToType:
        """The belongs_to of this relation for one related model (a class or an alias)."""
        self.boot()
        target_model = as_morph_model(model)
        target = self._targets.get(target_model)
        if target is None:
            target = MorphToType(self, target_model)
            target.boot()
            self._targets[target_model] = target
        return target

    def set_related(self, parent: BaseModel, related: Any) -> None:
        from ..base_model import BaseModel

        self.boot()
        if related is not None and not isinstance(related, BaseModel):
            raise LucidError(
                f'"{self.model.__name__}.{self.relation_name}" expects a model instance, '
                f"got {related!r}",
                code="E_INVALID_ARGUMENT",
            )
        parent.__dict__[self.relation_name] = related

    # -- preload: one query per type present -------------------------------------------------
    async def preload_each_type(
        self,
        parents: Sequence[BaseModel],
        client: Client,
        callbacks: Iterable[Callable[[Any], Any]],
        sideloaded: Mapping[str, Any] | None,
    ) -> None:
        """Load the relation onto ``parents``: their ids grouped by type, one query per type
        (in the order the types first appear), matched back by ``(type, id)``."""
        self.boot()
        type_key, id_key, name = self.type_key, self.foreign_key, self.relation_name
        by_type: dict[str, dict[Any, None]] = {}
        for parent in parents:
            kind = key_value(self, parent, type_key, "preload")
            value = key_value(self, parent, id_key, "preload")
            if kind is not None and value is not None:
                by_type.setdefault(kind, {})[value] = None
        found: dict[tuple[str, Any], Any] = {}
        for kind, values in by_type.items():
            target = self.for_type(morph_model(kind))
            query = MorphToQueryBuilder(target, client, values=list(values))
            if sideloaded:
                query.sideload(sideloaded)
            for callback in callbacks:
                callback(query)
            owner_key = target.local_key
            for row in await query.exec():
                found[(kind, row.__dict__.get(owner_key))] = row
        for parent in parents:
            d = parent.__dict__
            kind, value = d.get(type_key), d.get(id_key)
            d[name] = found.get((kind, value)) if kind is not None and value is not None else None

    def eager_query(self, parents: Sequence[BaseModel], client: Client) -> Any:
        raise runtime_error(
            f'"{self.relation_name}" is a morph_to relation: it runs one query per type'
        )

    def sub_query(self, client: Client, outer: Any = None) -> Any:
        raise runtime_error(
            f'Cannot use "has", "where_has" or aggregates on the morph_to relation '
            f'"{self.relation_name}": use where_has_morph("{self.relation_name}", [Model, ...])'
        )

    # -- where_has_morph ---------------------------------------------------------------------
    def has_morph_clause(
        self,
        builder: ModelQueryBuilder[Any],
        types: Any,
        callback: Callable[..., Any] | None,
        operator: str | None,
        value: Any,
        negate: bool,
        method: str,
    ) -> ColumnElement[Any]:
        """``(type = T1 AND <has T1>) OR (type = T2 AND <has T2>) …`` (Eloquent's hasMorph):
        ``<has T>`` is ``EXISTS``, or the related count compared, negated for the
        ``doesnt_have`` forms. A callback taking two arguments also gets the model class."""
        self.boot()
        models = [types] if isinstance(types, str | type) else list(types)
        if operator is not None and value is None:
            raise LucidError(f"{method}() with an operator needs a value to compare with")
        two_args = callback is not None and _takes_two(callback)
        parts: list[ColumnElement[Any]] = []
        for item in models:
            model = as_morph_model(item)
            target = self.for_type(model)
            sub = target.sub_query(builder.client, builder.state.from_)
            sub.state.parent = builder
            if callback is not None:
                if two_args:
                    run_callback(_with_model(callback, model), method, sub)
                else:
                    run_callback(callback, method, sub)
            cond: ColumnElement[Any]
            if operator is None:
                cond = exists(correlated(sub))
            else:
                cond = compare(builder, sub.aggregate_select().scalar_subquery(), operator, value)
            if negate:
                cond = not_(cond)
            kind = sub.outer_column(self.type_key_column_name) == morph_alias(model)
            parts.append(and_(kind, cond))
        if not parts:
            return false()
        return parts[0] if len(parts) == 1 else or_(*parts).self_group()

    def hydrate_for_persistence(self, parent: BaseModel, values: Any) -> None:
        """Point ``parent``'s type and id at the model instance ``values``."""
        self.boot()
        target = self.for_type(type(values))
        parent.__dict__[self.foreign_key] = key_value(target, values, target.local_key, "persist")
        parent.__dict__[self.type_key] = morph_alias(type(values))


def _with_model(callback: Callable[..., Any], model: Any) -> Callable[[Any], Any]:
    def run(query: Any) -> Any:
        return callback(query, model)

    return run


def _takes_two(callback: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(callback).parameters.values()
    except (TypeError, ValueError):
        return False
    kinds = [p.kind for p in params]
    if inspect.Parameter.VAR_POSITIONAL in kinds:
        return True
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(k in positional for k in kinds) >= 2


class MorphToType(BelongsTo[Any]):
    """The belongs_to of a morph_to for one related model: ``<name>_id`` → the model's
    ``owner_key``, and the parent's type equal to the model's alias."""

    type = "morphTo"  # type: ignore[assignment]  # the base kind declares its own literal

    def __init__(self, morph: MorphTo[Any], model: builtins.type[BaseModel]) -> None:
        super().__init__(
            lambda: model,
            foreign_key=morph.foreign_key,
            local_key=morph.owner_key,
            serialize_as=morph.serialize_as,
            on_query=morph.on_query,
            meta=morph.meta,
        )
        self.morph = morph
        self.attach(morph.model, morph.relation_name)

    @property
    def morph_type(self) -> str:
        return morph_alias(self.related_model())


class MorphToQueryBuilder(BelongsToQueryBuilder[R]):
    """The query of one type of a morph_to: its preload query and
    ``comment.related("commentable").query()`` (a one-relation)."""


class MorphToSubQueryBuilder(BelongsToSubQueryBuilder[R]):
    """The correlated subquery of one type (``where_has_morph``): belongs_to's, plus the
    outer row's type."""

    def _constraint(self) -> ColumnElement[Any] | None:
        rel = self.relation
        assert isinstance(rel, MorphToType)
        base = super()._constraint()
        kind = self.outer_column(rel.morph.type_key_column_name) == rel.morph_type
        return kind if base is None else and_(base, kind)


class MorphToQueryClient(RelationQueryClient[P, "MorphTo[R]"], Generic[P, R]):
    """``comment.related("commentable")``: the related query of the row's type plus
    ``associate``/``dissociate``."""

    def query(self) -> MorphToQueryBuilder[R]:
        """The related row as a query on its model (the parent's type); no query runs when
        the id is NULL. ``E_RUNTIME_EXCEPTION`` when the type is NULL: there is no model."""
        rel = self.relation
        rel.boot()
        kind = key_value(rel, self.parent, rel.type_key, "select")
        if kind is None:
            raise runtime_error(
                f'Cannot query "{rel.relation_name}": '
                f'"{type(self.parent).__name__}.{rel.type_key}" is NULL'
            )
        target = rel.for_type(morph_model(kind))
        return MorphToQueryBuilder(target, resolve(self), parent=self.parent)

    async def associate(self, related: R, *, client: Client | None = None) -> None:
        """Save ``related`` if needed, point the parent's type and id at it and save the
        parent, in one transaction; then ``parent.<relation>`` is ``related``."""
        rel = self.relation
        from ..base_model import BaseModel

        if not isinstance(related, BaseModel):
            raise LucidError(
                f'"{rel.model.__name__}.{rel.relation_name}" expects a model instance, '
                f"got {related!r}",
                code="E_INVALID_ARGUMENT",
            )
        async with managed(self, client, [related]) as trx:
            await related.save(client=trx)
            rel.hydrate_for_persistence(self.parent, related)
            await self.parent.save(client=trx)
        rel.set_related(self.parent, related)

    async def dissociate(self, *, client: Client | None = None) -> None:
        """Set the type and id to NULL and save the parent (the related row stays)."""
        rel = self.relation
        rel.boot()
        async with managed(self, client) as trx:
            self.parent.__dict__[rel.foreign_key] = None
            self.parent.__dict__[rel.type_key] = None
            await self.parent.save(client=trx)
        rel.set_related(self.parent, None)


def morph_to(
    *,
    init: Literal[False] = False,
    type_column: str | None = None,
    id_column: str | None = None,
    owner_key: str | None = None,
    serialize_as: str | None = _OWN_NAME,
    on_query: Callable[[Any], Any] | None = None,
    meta: Any = None,
) -> MorphTo[Any]:
    """Declare a morph_to relation: ``commentable: MorphTo[Post | Video] = morph_to()``
    (columns ``commentable_type`` and ``commentable_id``). Options: ``type_column``,
    ``id_column``, ``owner_key`` (the related models' key, default their primary key),
    ``serialize_as``, ``on_query`` (runs on every type's query), ``meta``."""
    return MorphTo(
        type_column=type_column,
        id_column=id_column,
        owner_key=owner_key,
        serialize_as=serialize_as,
        on_query=on_query,
        meta=meta,
    )


# The roles of the kind; the per-type belongs_to builds the queries.
MorphTo.query_builder_class = MorphToQueryBuilder
MorphTo.sub_query_builder_class = MorphToSubQueryBuilder
MorphTo.query_client_class = MorphToQueryClient
MorphToType.query_builder_class = MorphToQueryBuilder
MorphToType.sub_query_builder_class = MorphToSubQueryBuilder
