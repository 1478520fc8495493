"""Naming strategies: the default table, column, serialized and relation key names of a model.

Lucid's ``NamingStrategyContract`` with its snake_case and camelCase implementations. This module
reads only ``model.__name__`` and ``model.primary_key``, and imports only the paginator's meta
keys (``query/paginator.py`` owns them), so that it depends on nothing else here.
"""

from __future__ import annotations

import re
from typing import ClassVar, Literal, Protocol, cast, runtime_checkable

import inflection

from ..query.paginator import PaginationMetaKeys, SnakeCaseMetaKeys

__all__ = [
    "CamelCaseNamingStrategy",
    "ModelLike",
    "NamingStrategy",
    "PaginationMetaKeys",
    "RelationType",
    "SnakeCaseNamingStrategy",
    "snake_case",
]

RelationType = Literal[
    "belongsTo",
    "hasOne",
    "hasMany",
    "manyToMany",
    "hasManyThrough",
    "morphTo",
    "morphOne",
    "morphMany",
    "morphToMany",
    "morphedByMany",
    "hasOneThrough",
]
"""The relation kinds, spelt as Lucid spells them (``relation.type``)."""


class ModelLike(Protocol):
    """A model as a naming strategy sees it; strategies take the class, ``type[ModelLike]``.

    Only the class's ``__name__`` and ``primary_key`` (the primary key attribute name, or a
    tuple of them for a composite key) are read.
    """

    primary_key: ClassVar[str | tuple[str, ...]]


_ACRONYM_BOUNDARY = re.compile(r"([A-Z]+)([A-Z][a-z])")
_WORD_BOUNDARY = re.compile(r"([a-z\d])([A-Z])")
_SEPARATORS = re.compile(r"[^A-Za-z\d]+")


def _prefixed(model: type[ModelLike]) -> str | tuple[str, ...]:
    """``<model>_<key>`` for each primary-key attribute of ``model``."""
    prefix = snake_case(model.__name__)
    key = model.primary_key
    if isinstance(key, str):
        return f"{prefix}_{key}"
    return tuple(f"{prefix}_{k}" for k in key)


def snake_case(name: str) -> str:
    """Return ``name`` in snake_case.

    ``"HTTPRequest"`` → ``"http_request"``, ``"userId"`` → ``"user_id"``,
    ``"BlogPost"`` → ``"blog_post"``; spaces, dashes and dots become one underscore.
    """
    name = _ACRONYM_BOUNDARY.sub(r"\1_\2", name)
    name = _WORD_BOUNDARY.sub(r"\1_\2", name)
    return _SEPARATORS.sub("_", name).strip("_").lower()


def _camel_case(name: str) -> str:
    """Return ``name`` in camelCase: ``"created_at"`` → ``"createdAt"``, ``"Id"`` → ``"id"``."""
    head, *tail = snake_case(name).split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in tail)


@runtime_checkable
class NamingStrategy(Protocol):
    """The names a model derives when its definition does not spell them out.

    Set ``naming_strategy`` on a model (or a shared abstract base) to change them::

        class AppModel(BaseModel, abstract=True):
            naming_strategy = CamelCaseNamingStrategy()

    ``model`` and ``related_model`` are model classes; ``relation_type`` is one of
    :data:`RelationType`.
    """

    def table_name(self, model: type[ModelLike]) -> str:
        """The table of ``model`` when it sets no ``table``."""
        ...

    def column_name(self, model: type[ModelLike], attribute_name: str) -> str:
        """The database column of an attribute when ``column()`` sets no ``column_name``."""
        ...

    def serialized_name(self, model: type[ModelLike], attribute_name: str) -> str:
        """The key of an attribute in ``serialize()`` when ``column()`` sets no ``serialize_as``."""
        ...

    def relation_local_key(
        self,
        relation_type: RelationType,
        model: type[ModelLike],
        related_model: type[ModelLike],
        relation_name: str,
    ) -> str | tuple[str, ...]:
        """The local key attribute of a relation defined on ``model``. (a tuple
        for a composite key)."""
        ...

    def relation_foreign_key(
        self,
        relation_type: RelationType,
        model: type[ModelLike],
        related_model: type[ModelLike],
        relation_name: str,
    ) -> str | tuple[str, ...]:
        """The foreign key attribute of a relation defined on ``model``. (a tuple
        for a composite key)."""
        ...

    def relation_pivot_table(
        self,
        relation_type: RelationType,
        model: type[ModelLike],
        related_model: type[ModelLike],
        relation_name: str,
    ) -> str:
        """The pivot table of a many-to-many relation."""
        ...

    def relation_pivot_foreign_key(
        self,
        relation_type: RelationType,
        model: type[ModelLike],
        related_model: type[ModelLike],
        relation_name: str,
    ) -> str | tuple[str, ...]:
        """The pivot column that points at ``model`` (swap the models for the related side;
        a tuple for a composite key)."""
        ...

    def pagination_meta_keys(self) -> PaginationMetaKeys:
        """The keys of a paginator's ``meta`` in ``serialize()``."""
        ...


class SnakeCaseNamingStrategy:
    """The default strategy: snake_case tables, columns and serialized keys.

    Examples:
        >>> s = SnakeCaseNamingStrategy()
        >>> class Person:
        ...     primary_key = "id"
        >>> s.table_name(Person)
        'people'
        >>> s.serialized_name(Person, "createdAt")
        'created_at'
    """

    def table_name(self, model: type[ModelLike]) -> str:
        """The snake_case plural of the class name: ``BlogPost`` → ``blog_posts``."""
        return str(inflection.pluralize(snake_case(model.__name__)))

    def column_name(self, model: type[ModelLike], attribute_name: str) -> str:
        """The snake_case attribute name."""
        return snake_case(attribute_name)

    def serialized_name(self, model: type[ModelLike], attribute_name: str) -> str:
        """The snake_case attribute name."""
        return snake_case(attribute_name)

    def relation_local_key(
        self,
        relation_type: RelationType,
        model: type[ModelLike],
        related_model: type[ModelLike],
        relation_name: str,
    ) -> str | tuple[str, ...]:
        """The related model's primary key for ``belongsTo``, else the model's own (a tuple
        when that key is composite)."""
        if relation_type == "belongsTo":
            return related_model.primary_key
        return model.primary_key

    def relation_foreign_key(
        self,
        relation_type: RelationType,
        model: type[ModelLike],
        related_model: type[ModelLike],
        relation_name: str,
    ) -> str | tuple[str, ...]:
        """``<related model>_<its primary key>`` for ``belongsTo``, else ``<model>_<its key>``.

        ``Post.author = belongs_to(User)`` and ``User.posts = has_many(Post)`` both give
        ``user_id``; a composite key gives one such name per component.
        """
        owner = related_model if relation_type == "belongsTo" else model
        return _prefixed(owner)

    def relation_pivot_table(
        self,
        relation_type: RelationType,
        model: type[ModelLike],
        related_model: type[ModelLike],
        relation_name: str,
    ) -> str:
        """Both singular snake_case model names, sorted, joined by ``_``: ``skill_user``."""
        names = sorted((snake_case(model.__name__), snake_case(related_model.__name__)))
        return "_".join(names)

    def relation_pivot_foreign_key(
        self,
        relation_type: RelationType,
        model: type[ModelLike],
        related_model: type[ModelLike],
        relation_name: str,
    ) -> str | tuple[str, ...]:
        """``<model>_<its primary key>``: ``user_id`` for ``User`` (one per component of a
        composite key)."""
        return _prefixed(model)

    def pagination_meta_keys(self) -> PaginationMetaKeys:
        """snake_case keys: ``per_page``, ``current_page``, ``first_page_url``, …"""
        return SnakeCaseMetaKeys().pagination_meta_keys()

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class CamelCaseNamingStrategy(SnakeCaseNamingStrategy):
    """snake_case tables and columns, camelCase serialized keys and paginator meta keys.

    Examples:
        >>> CamelCaseNamingStrategy().serialized_name(object, "created_at")
        'createdAt'
    """

    def serialized_name(self, model: type[ModelLike], attribute_name: str) -> str:
        """The camelCase attribute name: ``created_at`` → ``createdAt``."""
        return _camel_case(attribute_name)

    def pagination_meta_keys(self) -> PaginationMetaKeys:
        """camelCase keys: ``perPage``, ``currentPage``, ``firstPageUrl``, …"""
        keys = SnakeCaseMetaKeys().pagination_meta_keys()
        return cast(PaginationMetaKeys, {name: _camel_case(str(key)) for name, key in keys.items()})
