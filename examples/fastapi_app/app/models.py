"""The API's models: users write posts, posts have tags (many to many) and comments.

``serialize_extras = True`` puts what ``with_count`` selects under ``"meta"`` in the JSON
(``{"meta": {"posts_count": 3}}``); ``password`` is never serialized."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from lucid_orm import BaseModel, before, belongs_to, column, computed, has_many, many_to_many
from lucid_orm.relations import BelongsTo, HasMany, ManyToMany


class User(BaseModel):
    serialize_extras = True

    id: int = column(is_primary=True)
    email: str = column()
    name: str = column()
    password: str | None = column(serialize_as=None)
    created_at: datetime = column.date_time(auto_create=True)
    updated_at: datetime = column.date_time(auto_create=True, auto_update=True)

    posts: HasMany[Post] = has_many(lambda: Post)
    comments: HasMany[Comment] = has_many(lambda: Comment)

    @computed
    def initials(self) -> str:
        return "".join(word[0].upper() for word in self.name.split())

    @before("save")
    def hash_password(user: User) -> None:
        # A demo hash (salted PBKDF2); a real service would use passlib/argon2.
        if user.password is not None and "password" in user.dirty:
            salt = secrets.token_hex(8)
            digest = hashlib.pbkdf2_hmac("sha256", user.password.encode(), salt.encode(), 100_000)
            user.password = f"pbkdf2${salt}${digest.hex()}"


class Post(BaseModel):
    serialize_extras = True

    id: int = column(is_primary=True)
    user_id: int = column()
    title: str = column()
    body: str = column()
    published_at: datetime | None = column.date_time()
    created_at: datetime = column.date_time(auto_create=True)
    updated_at: datetime = column.date_time(auto_create=True, auto_update=True)

    author: BelongsTo[User] = belongs_to(lambda: User, foreign_key="user_id")
    comments: HasMany[Comment] = has_many(lambda: Comment)
    tags: ManyToMany[Tag] = many_to_many(lambda: Tag, pivot_table="post_tags")


class Tag(BaseModel):
    serialize_extras = True

    id: int = column(is_primary=True)
    name: str = column()

    posts: ManyToMany[Post] = many_to_many(lambda: Post, pivot_table="post_tags")


class Comment(BaseModel):
    id: int = column(is_primary=True)
    post_id: int = column()
    user_id: int = column()
    body: str = column()
    created_at: datetime = column.date_time(auto_create=True)
    updated_at: datetime = column.date_time(auto_create=True, auto_update=True)

    post: BelongsTo[Post] = belongs_to(lambda: Post)
    author: BelongsTo[User] = belongs_to(lambda: User, foreign_key="user_id")
