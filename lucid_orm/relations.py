"""The public relation types, for annotations: ``author: BelongsTo[User] = belongs_to(...)``;
and the query clients that ``instance.related(...)`` returns (``related(Post.author)`` is a
``BelongsToQueryClient[Post, User]``, ``related("author")`` a ``RelationClient[Post, Any]``)."""

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
from .orm.relations.base import RelationClient
from .orm.relations.belongs_to import BelongsToQueryClient
from .orm.relations.has_many import HasManyQueryClient
from .orm.relations.has_many_through import HasManyThroughClient
from .orm.relations.has_one import HasOneQueryClient
from .orm.relations.has_one_through import HasOneThrough, HasOneThroughClient
from .orm.relations.many_to_many import ManyToManyQueryClient
from .orm.relations.morph_many import MorphManyQueryClient
from .orm.relations.morph_one import MorphOneQueryClient
from .orm.relations.morph_to import MorphToQueryClient
from .orm.relations.morph_to_many import MorphToManyQueryClient

__all__ = [
    "BelongsTo",
    "BelongsToQueryClient",
    "HasMany",
    "HasManyQueryClient",
    "HasManyThrough",
    "HasManyThroughClient",
    "HasOne",
    "HasOneQueryClient",
    "HasOneThrough",
    "HasOneThroughClient",
    "ManyToMany",
    "ManyToManyQueryClient",
    "MorphMany",
    "MorphManyQueryClient",
    "MorphOne",
    "MorphOneQueryClient",
    "MorphTo",
    "MorphToMany",
    "MorphToManyQueryClient",
    "MorphToQueryClient",
    "MorphedByMany",
    "RelationClient",
]
