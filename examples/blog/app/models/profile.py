"""``Profile``: columns declared by hand (the other models extend generated schema classes;
both styles mix freely)."""

from __future__ import annotations

from datetime import datetime

from lucid_orm import BaseModel, belongs_to, column
from lucid_orm.relations import BelongsTo

from app import models


class Profile(BaseModel):
    id: int = column(is_primary=True)
    user_id: int = column()
    bio: str | None = column()
    website: str | None = column()
    created_at: datetime = column.date_time(auto_create=True)
    updated_at: datetime = column.date_time(auto_create=True, auto_update=True)

    user: BelongsTo[models.User] = belongs_to(lambda: models.User)
