"""Relations, one kind per module: the relation/descriptor, its query client, query builder and
sub-query builder (Lucid's four roles)."""

from .belongs_to import BelongsTo, belongs_to
from .has_many import HasMany, has_many
from .has_many_through import HasManyThrough, has_many_through
from .has_one import HasOne, has_one
from .has_one_through import HasOneThrough, has_one_through
from .many_to_many import ManyToMany, many_to_many
from .morph_many import MorphMany, morph_many
from .morph_map import morph_map
from .morph_one import MorphOne, morph_one
from .morph_to import MorphTo, morph_to
from .morph_to_many import MorphedByMany, MorphToMany, morph_to_many, morphed_by_many

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
    "belongs_to",
    "has_many",
    "has_many_through",
    "has_one",
    "has_one_through",
    "many_to_many",
    "morph_many",
    "morph_map",
    "morph_one",
    "morph_to",
    "morph_to_many",
    "morphed_by_many",
]
