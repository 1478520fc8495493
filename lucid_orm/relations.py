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

__all__ = [
    "BelongsTo",
    "HasMany",
    "HasManyThrough",
    "HasOne",
    "ManyToMany",
    "MorphMany",
    "MorphOne",
    "MorphTo",
    "MorphToMany",
    "MorphedByMany",
]
