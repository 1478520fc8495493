"""Request bodies. ``pydantic_model(..., mode="create")`` makes the required columns required
and everything the database fills optional; ``mode="update"`` makes every field optional
(apply only what was sent: ``model_dump(exclude_unset=True)``). FastAPI validates them before
the endpoint runs: a bad body is a 422 and nothing is written.

Responses need no schema of their own: the models are pydantic types (``-> User``,
``Page[Post]``), and relations appear in the JSON only when they were preloaded."""

from __future__ import annotations

from lucid_orm.pydantic import pydantic_model
from pydantic import BaseModel, Field

from app.models import Comment, Post, User

UserCreate = pydantic_model(User, mode="create", include=["email", "name", "password"])
UserUpdate = pydantic_model(User, mode="update", include=["email", "name", "password"])
PostCreate = pydantic_model(Post, mode="create", include=["title", "body", "published_at"])
PostUpdate = pydantic_model(Post, mode="update", include=["title", "body", "published_at"])
CommentCreate = pydantic_model(Comment, mode="create", include=["user_id", "body"])


class TagNames(BaseModel):
    """Tags to put on a post, by name: missing tags are created."""

    names: list[str] = Field(min_length=1, max_length=20)
