"""morph_many: a has_many whose related rows name their parent by id and type
(``Comment.commentable_id`` + ``Comment.commentable_type``).
``MorphMany``, ``MorphManyQueryClient``, ``MorphManyQueryBuilder``, ``MorphManySubQueryBuilder``."""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Literal, TypeVar, Unpack, cast

from .base import P
from .has_many import HasMany, HasManyQueryBuilder, HasManyQueryClient
from .morph_one import MorphOneOrMany, MorphOptions, MorphTypeQuery, MorphTypeSubQuery

if TYPE_CHECKING:
    from ..base_model import BaseModel

R = TypeVar("R", bound="BaseModel")


class MorphMany(MorphOneOrMany[R], HasMany[R]):
    """``comments: MorphMany[Comment] = morph_many(lambda: Comment, name="commentable")``;
    ``post.comments`` is ``list[Comment]``."""

    type = "morphMany"  # type: ignore[assignment]  # the base kind declares its own literal


class MorphManyQueryBuilder(MorphTypeQuery[R], HasManyQueryBuilder[R]):
    """The related query of a morph_many and its preload query (with ``group_limit``)."""


class MorphManySubQueryBuilder(MorphTypeSubQuery[R]):
    """``has("comments")`` / ``with_count("comments")`` subquery."""


class MorphManyQueryClient(HasManyQueryClient[P, R]):
    """``post.related("comments")``: the related query and the writes of a morph_many
    (``save``, ``create`` and their many-forms, ``first_or_create`` & co.); every write sets
    the id and the type of the related rows."""

    def query(self) -> MorphManyQueryBuilder[R]:
        """The parent's related rows as a query."""
        return cast("MorphManyQueryBuilder[R]", super().query())

    def _predicate(self, predicate: str | Sequence[str] | None, method: str) -> list[str]:
        # The type belongs to the identity of a row as much as the id does.
        keys = super()._predicate(predicate, method)
        rel = self.relation
        assert isinstance(rel, MorphOneOrMany)
        return keys if rel.type_key in keys else [*keys, rel.type_key]


def morph_many(
    related: Callable[[], builtins.type[R]],
    *,
    name: str,
    init: Literal[False] = False,
    **options: Unpack[MorphOptions],
) -> MorphMany[R]:
    """Declare a morph_many relation: ``comments: MorphMany[Comment] = morph_many(lambda:
    Comment, name="commentable")``. Options: ``local_key``, ``id_column``, ``type_column``,
    ``serialize_as``, ``on_query``, ``meta``."""
    return MorphMany(related, name=name, **options)


# The roles of the kind, built by Relation's template methods.
MorphMany.query_builder_class = MorphManyQueryBuilder
MorphMany.sub_query_builder_class = MorphManySubQueryBuilder
MorphMany.query_client_class = MorphManyQueryClient
