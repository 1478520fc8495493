"""morph_to_many and morphed_by_many: a many_to_many whose pivot rows also hold the type of
the polymorphic side (``taggables``: ``tag_id``, ``taggable_id``, ``taggable_type``).
``MorphToMany`` (``Post.tags``) and ``MorphedByMany`` (``Tag.posts``, the inverse), their query
client, query builder, sub-query builder and pivot query builder: many_to_many's, plus the type
condition on every read and write of the pivot and the type value in every pivot row written."""

from __future__ import annotations

import builtins
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, Unpack

from sqlalchemy import String, and_
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.elements import ColumnClause

from ...errors import LucidError
from .base import P
from .many_to_many import (
    ManyToMany,
    ManyToManyOptions,
    ManyToManyPivotQueryBuilder,
    ManyToManyQueryBuilder,
    ManyToManyQueryClient,
    ManyToManySubQueryBuilder,
)
from .morph_map import morph_alias

if TYPE_CHECKING:
    from ...database.query_client import Client
    from ..base_model import BaseModel

R = TypeVar("R", bound="BaseModel")


class MorphToManyOptions(ManyToManyOptions, total=False):
    """``ManyToManyOptions`` plus the pivot's type column (default ``<name>_type``)."""

    type_column: str | None


class MorphToMany(ManyToMany[R]):
    """``tags: MorphToMany[Tag] = morph_to_many(lambda: Tag, name="taggable")``: pivot
    ``taggables`` (``<name>s``) with ``tag_id`` (the related key), ``taggable_id`` (this
    model's key) and ``taggable_type`` (this model's morph alias)."""

    type = "morphToMany"  # type: ignore[assignment]  # the base kind declares its own literal
    # Whose alias the pivot's type column holds: this model's (morph_to_many) or the related
    # model's (morphed_by_many).
    _inverse = False

    def __init__(
        self,
        related: Callable[[], builtins.type[R]],
        *,
        name: str,
        type_column: str | None = None,
        pivot_table: str | None = None,
        pivot_foreign_key: str | tuple[str, ...] | None = None,
        pivot_related_foreign_key: str | tuple[str, ...] | None = None,
        **options: Any,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise LucidError(
                f"A polymorphic relation needs name=, the morph name, got {name!r}",
                code="E_INVALID_ARGUMENT",
            )
        morph_id = f"{name}_id"
        if self._inverse:
            pivot_related_foreign_key = pivot_related_foreign_key or morph_id
        else:
            pivot_foreign_key = pivot_foreign_key or morph_id
        super().__init__(
            related,
            pivot_table=pivot_table or f"{name}s",
            pivot_foreign_key=pivot_foreign_key,
            pivot_related_foreign_key=pivot_related_foreign_key,
            **options,
        )
        self.morph_name = name
        self.pivot_type_column = type_column or f"{name}_type"

    def _boot_keys(self) -> None:
        super()._boot_keys()
        if self.composite or self.related_composite:
            raise LucidError(
                f'"{self.model.__name__}.{self.relation_name}": a {self.type} relation takes '
                "single-attribute keys (composite keys: belongs_to, has_one, has_many, "
                "many_to_many)",
                code="E_INVALID_RELATION",
            )
        if self._pivot.c.get(self.pivot_type_column) is None:
            self._pivot.append_column(ColumnClause(self.pivot_type_column, String()))

    @property
    def morph_type(self) -> str:
        """The type value of this relation's pivot rows (read when used)."""
        return morph_alias(self.related_model() if self._inverse else self.model)

    def type_condition(self) -> ColumnElement[Any]:
        return self.pivot_column(self.pivot_type_column) == self.morph_type

    def pivot_owner(self, value: Any) -> ColumnElement[Any]:
        return and_(super().pivot_owner(value), self.type_condition())


class MorphedByMany(MorphToMany[R]):
    """``posts: MorphedByMany[Post] = morphed_by_many(lambda: Post, name="taggable")``: the
    inverse of ``morph_to_many`` (``tag_id`` is this model's key, ``taggable_id`` the related
    one's, ``taggable_type`` the related model's alias)."""

    type = "morphedByMany"  # type: ignore[assignment]  # the base kind declares its own literal
    _inverse = True


def _with_type(base: ColumnElement[Any] | None, rel: Any) -> ColumnElement[Any]:
    own: ColumnElement[Any] = rel.type_condition()
    return own if base is None else and_(base, own)


class MorphToManyQueryBuilder(ManyToManyQueryBuilder[R]):
    """The related query (joined to the pivot) and preload query: many_to_many's, for the
    pivot rows of this relation's type."""

    def _constraint(self) -> ColumnElement[Any] | None:
        return _with_type(super()._constraint(), self._rel)


class MorphToManySubQueryBuilder(ManyToManySubQueryBuilder[R]):
    """``has("tags")`` / ``with_count("tags")`` subquery, for this relation's type."""

    def _constraint(self) -> ColumnElement[Any] | None:
        return _with_type(super()._constraint(), self._rel)


class MorphToManyPivotQueryBuilder(ManyToManyPivotQueryBuilder):
    """``post.related("tags").pivot_query()``: this parent's pivot rows of this type."""

    def _where_clause(self) -> ColumnElement[Any] | None:
        return _with_type(super()._where_clause(), self.relation)


class MorphToManyQueryClient(ManyToManyQueryClient[P, R], Generic[P, R]):
    """``post.related("tags")`` / ``tag.related("posts")``: many_to_many's reads and writes
    (``attach``, ``detach``, ``sync``, ``save``, ``create`` and their many-forms); the pivot
    rows written carry the type, those read, updated or removed are filtered by it."""

    def query(self) -> MorphToManyQueryBuilder[R]:
        """The related rows of this parent, with their pivot values in ``extras``."""
        rel = self.relation
        return MorphToManyQueryBuilder(rel, self._resolved(), parent=self.parent)

    def pivot_query(self) -> MorphToManyPivotQueryBuilder:
        """This parent's pivot rows (of this type), as plain dicts."""
        return MorphToManyPivotQueryBuilder(self.relation, self._resolved(), self.parent)

    def _resolved(self) -> Client:
        from .base import resolve

        return resolve(self)

    async def _insert_pivot(self, trx: Client, rows: dict[Any, dict[str, Any]]) -> None:
        rel = self.relation
        assert isinstance(rel, MorphToMany)
        kind = {rel.pivot_type_column: rel.morph_type}
        await super()._insert_pivot(trx, {k: {**kind, **v} for k, v in rows.items()})


def morph_to_many(
    related: Callable[[], builtins.type[R]],
    *,
    name: str,
    init: Literal[False] = False,
    **options: Unpack[MorphToManyOptions],
) -> MorphToMany[R]:
    """Declare a morph_to_many relation: ``tags: MorphToMany[Tag] = morph_to_many(lambda:
    Tag, name="taggable")``; the other options are ``many_to_many``'s plus ``type_column``."""
    return MorphToMany(related, name=name, **options)


def morphed_by_many(
    related: Callable[[], builtins.type[R]],
    *,
    name: str,
    init: Literal[False] = False,
    **options: Unpack[MorphToManyOptions],
) -> MorphedByMany[R]:
    """Declare the inverse of a morph_to_many: ``posts: MorphedByMany[Post] =
    morphed_by_many(lambda: Post, name="taggable")``."""
    return MorphedByMany(related, name=name, **options)


# The roles of the kinds, built by Relation's template methods.
for _kind in (MorphToMany, MorphedByMany):
    _kind.query_builder_class = MorphToManyQueryBuilder
    _kind.sub_query_builder_class = MorphToManySubQueryBuilder
    _kind.query_client_class = MorphToManyQueryClient
