"""The public relation types, for annotations: ``author: BelongsTo[User] = belongs_to(...)``."""

from .orm.relations import (
    BelongsTo,
    HasMany,
    HasManyThrough,
    HasOne,
    ManyToMany,
    MorphedByMany,
    MorphMany,
    MorphOne,
    MorphTo,
    MorphToMany,
)
from .orm.relations.has_one_through import HasOneThrough

__all__ = [
    "BelongsTo",
    "HasMany",
    "HasManyThrough",
    "HasOne",
    "HasOneThrough",
    "ManyToMany",
    "MorphMany",
    "MorphOne",
    "MorphTo",
    "MorphToMany",
    "MorphedByMany",
]
