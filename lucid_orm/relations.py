"""The public relation types, for annotations: ``author: BelongsTo[User] = belongs_to(...)``."""

from .orm.relations import BelongsTo, HasMany, HasOne

__all__ = ["BelongsTo", "HasMany", "HasOne"]
