"""Relations, one kind per module: the relation/descriptor, its query client, query builder and
sub-query builder (Lucid's four roles)."""

from .belongs_to import BelongsTo, belongs_to
from .has_many import HasMany, has_many
from .has_one import HasOne, has_one

__all__ = ["BelongsTo", "HasMany", "HasOne", "belongs_to", "has_many", "has_one"]
