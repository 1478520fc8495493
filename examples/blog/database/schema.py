"""Schema classes generated from the database by `lucid-orm schema:generate`.

Do not edit: this file is rewritten after every migration command. Extend the classes in your
models (``class Post(PostsSchema): ...``) and redeclare a column there to change its options.
"""

from __future__ import annotations

from datetime import datetime

from lucid_orm import BaseModel, column


class CommentsSchema(BaseModel, abstract=True):
    table = "comments"
    id: int = column(is_primary=True)
    post_id: int = column()
    user_id: int | None = column()
    body: str = column()
    created_at: datetime | None = column.date_time(auto_create=True)
    updated_at: datetime | None = column.date_time(auto_create=True, auto_update=True)


class CountriesSchema(BaseModel, abstract=True):
    table = "countries"
    id: int = column(is_primary=True)
    code: str = column()
    name: str = column()


class LikesSchema(BaseModel, abstract=True):
    table = "likes"
    id: int = column(is_primary=True)
    user_id: int = column()
    likeable_type: str = column()
    likeable_id: int = column()
    created_at: datetime | None = column.date_time(auto_create=True)


class PostTagsSchema(BaseModel, abstract=True):
    table = "post_tags"
    id: int = column(is_primary=True)
    post_id: int = column()
    tag_id: int = column()
    relevance: int = column()
    created_at: datetime | None = column.date_time(auto_create=True)
    updated_at: datetime | None = column.date_time(auto_create=True, auto_update=True)


class PostsSchema(BaseModel, abstract=True):
    table = "posts"
    id: int = column(is_primary=True)
    user_id: int | None = column()
    title: str = column()
    body: str = column()
    votes: int = column()
    published_at: datetime | None = column.date_time()
    created_at: datetime | None = column.date_time(auto_create=True)
    updated_at: datetime | None = column.date_time(auto_create=True, auto_update=True)


class ProfilesSchema(BaseModel, abstract=True):
    table = "profiles"
    id: int = column(is_primary=True)
    user_id: int = column()
    bio: str | None = column()
    website: str | None = column()
    created_at: datetime | None = column.date_time(auto_create=True)
    updated_at: datetime | None = column.date_time(auto_create=True, auto_update=True)


class TagsSchema(BaseModel, abstract=True):
    table = "tags"
    id: int = column(is_primary=True)
    name: str = column()


class UsersSchema(BaseModel, abstract=True):
    table = "users"
    id: int = column(is_primary=True)
    country_id: int | None = column()
    email: str = column()
    full_name: str = column()
    password: str | None = column()
    is_admin: bool = column()
    created_at: datetime | None = column.date_time(auto_create=True)
    updated_at: datetime | None = column.date_time(auto_create=True, auto_update=True)
