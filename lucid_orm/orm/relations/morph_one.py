"""morph_one: a has_one whose related rows name their parent by id *and* type
(``Image.imageable_id`` + ``Image.imageable_type`` → ``Post.id``, type ``"post"``).
``MorphOne``, ``MorphOneQueryClient``, ``MorphOneQueryBuilder``, ``MorphOneSubQueryBuilder``;
the key boot and the type condition are shared with morph_many."""

from __future__ import annotations

import builtins
from collections.abc import Callable, MutableMapping
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, Unpack, cast

from sqlalchemy import and_
from sqlalchemy.sql import ColumnElement

from ...errors import LucidError
from .base import (
    P,
    RelationOptions,
    RelationQueryBuilder,
    SubQueryBuilder,
    require_key,
    single_key,
)
from .has_one import HasOne, HasOneQueryClient, HasRelation
from .morph_map import morph_alias

if TYPE_CHECKING:
    from ..base_model import BaseModel

R = TypeVar("R", bound="BaseModel")


class MorphOptions(RelationOptions, total=False):
    """The options of ``morph_one``/``morph_many``: ``local_key`` (default the parent's
    primary key) and the related model's attributes ``id_column`` (default ``<name>_id``) and
    ``type_column`` (default ``<name>_type``)."""

    local_key: str | None
    id_column: str | None
    type_column: str | None


class MorphOneOrMany(HasRelation[R]):
    """Keys of morph_one and morph_many: ``foreign_key`` is the related ``<name>_id``,
    ``type_key`` the related ``<name>_type``, whose value is the parent's morph alias."""

    def __init__(
        self,
        related: Callable[[], builtins.type[R]],
        *,
        name: str,
        id_column: str | None = None,
        type_column: str | None = None,
        local_key: str | None = None,
        **options: Unpack[RelationOptions],
    ) -> None:
        if not isinstance(name, str) or not name:
            raise LucidError(
                f"A polymorphic relation needs name=, the morph name, got {name!r}",
                code="E_INVALID_ARGUMENT",
            )
        super().__init__(related, foreign_key=id_column, local_key=local_key, **options)
        self.morph_name = name
        self._type_column_option = type_column
        self.type_key = ""
        self.type_key_column_name = ""

    def _boot_keys(self) -> None:
        related = self.related_model()
        self.local_key = single_key(self, self.options.get("local_key") or self.model.primary_key)
        foreign = self.options.get("foreign_key") or f"{self.morph_name}_id"
        self.foreign_key = single_key(self, foreign)
        self.type_key = self._type_column_option or f"{self.morph_name}_type"
        self.local_key_column_name = require_key(self, self.model, self.local_key)
        self.foreign_key_column_name = require_key(self, related, self.foreign_key)
        self.type_key_column_name = require_key(self, related, self.type_key)
        self.parent_key = self.local_key
        self.match_column = self.foreign_key_column_name
        self.parent_column = self.local_key_column_name

    @property
    def morph_type(self) -> str:
        """The type value of this model's rows (read when used: ``morph_map`` may come later)."""
        return morph_alias(self.model)

    def hydrate_for_persistence(self, parent: BaseModel, values: Any) -> None:
        """Set the related id (as has_one) and type (the parent's alias)."""
        super().hydrate_for_persistence(parent, values)
        if isinstance(values, MutableMapping):
            values[self.type_key] = self.morph_type
        else:
            values.__dict__[self.type_key] = self.morph_type


class MorphTypeQuery(RelationQueryBuilder[R]):
    """The related query's constraint plus ``<name>_type = <parent alias>``."""

    def _constraint(self) -> ColumnElement[Any] | None:
        rel = self.relation
        assert isinstance(rel, MorphOneOrMany)
        own = self._unqualified(rel.type_key_column_name) == rel.morph_type
        base = super()._constraint()
        return own if base is None else and_(base, own)


class MorphTypeSubQuery(SubQueryBuilder[R]):
    """The correlated subquery's constraint plus the type condition."""

    def _constraint(self) -> ColumnElement[Any] | None:
        rel = self.relation
        assert isinstance(rel, MorphOneOrMany)
        own = self.own_column(rel.type_key_column_name) == rel.morph_type
        base = super()._constraint()
        return own if base is None else and_(base, own)


class MorphOne(MorphOneOrMany[R], HasOne[R]):
    """``image: MorphOne[Image] = morph_one(lambda: Image, name="imageable")``;
    ``post.image`` is ``Image | None``."""

    type = "morphOne"  # type: ignore[assignment]  # the base kind declares its own literal


class MorphOneQueryBuilder(MorphTypeQuery[R]):
    """The related query of a morph_one and its preload query (a one-relation)."""


class MorphOneSubQueryBuilder(MorphTypeSubQuery[R]):
    """``has("image")`` / ``with_count("image")`` subquery."""


class MorphOneQueryClient(HasOneQueryClient[P, R], Generic[P, R]):
    """``post.related("image")``: the related query and the writes of a morph_one
    (``save``, ``create``, ``first_or_create``, ``update_or_create``): they set both the id and
    the type of the related row."""

    def query(self) -> MorphOneQueryBuilder[R]:
        """The parent's related row as a query."""
        return cast("MorphOneQueryBuilder[R]", super().query())


def morph_one(
    related: Callable[[], builtins.type[R]],
    *,
    name: str,
    init: Literal[False] = False,
    **options: Unpack[MorphOptions],
) -> MorphOne[R]:
    """Declare a morph_one relation: ``image: MorphOne[Image] = morph_one(lambda: Image,
    name="imageable")`` (``Image`` has ``imageable_id`` and ``imageable_type``). Options:
    ``local_key``, ``id_column``, ``type_column``, ``serialize_as``, ``on_query``, ``meta``."""
    return MorphOne(related, name=name, **options)


# The roles of the kind, built by Relation's template methods.
MorphOne.query_builder_class = MorphOneQueryBuilder
MorphOne.sub_query_builder_class = MorphOneSubQueryBuilder
MorphOne.query_client_class = MorphOneQueryClient
