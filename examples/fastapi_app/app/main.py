"""The API: ``uvicorn app.main:app`` from this folder (see README.md).

The database comes from ``DATABASE_URL`` (default: the SQLite file ``tmp/app.db`` next to
this folder's README); pending migrations run at start-up, so a fresh database just works.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI
from lucid_orm import ModelQueryBuilder, SimplePaginator
from lucid_orm.contrib.fastapi import Pagination, Transaction, install, lifespan
from lucid_orm.migrations import Migrator
from lucid_orm.pydantic import Page

from app.models import Comment, Post, Tag, User
from app.schemas import CommentCreate, PostCreate, PostUpdate, TagNames, UserCreate, UserUpdate

HERE = Path(__file__).resolve().parents[1]
MIGRATIONS = HERE / "database" / "migrations"

router = APIRouter()


# -- users --------------------------------------------------------------------------------------


@router.post("/users", status_code=201)
async def create_user(body: UserCreate, trx: Transaction) -> User:
    return await User.create(body.model_dump(exclude_unset=True), client=trx)


@router.get("/users", response_model=Page[User])
async def list_users(pages: Pagination) -> SimplePaginator[User]:
    return await pages.paginate(User.query().with_count("posts").order_by("id"))


@router.get("/users/{user_id}")
async def show_user(user_id: int) -> User:
    return await (
        User.query()
        .where("id", user_id)
        .with_count("comments")
        .preload("posts", lambda posts: posts.order_by("id").preload("tags"))
        .first_or_fail()
    )


@router.patch("/users/{user_id}")
async def update_user(user_id: int, body: UserUpdate, trx: Transaction) -> User:
    user = await User.find_or_fail(user_id, client=trx)
    user.merge(body.model_dump(exclude_unset=True))
    return await user.save(client=trx)


@router.delete("/users/{user_id}", status_code=204)
async def delete_user(user_id: int, trx: Transaction) -> None:
    user = await User.find_or_fail(user_id, client=trx)
    await user.delete(client=trx)


# -- posts --------------------------------------------------------------------------------------


def posts_query() -> ModelQueryBuilder[Post]:
    """Posts as the API shows them: author, tags by name and the number of comments."""
    return (
        Post.query()
        .preload("author")
        .preload("tags", lambda tags: tags.order_by("name"))
        .with_count("comments")
    )


@router.post("/users/{user_id}/posts", status_code=201)
async def create_post(user_id: int, body: PostCreate, trx: Transaction) -> Post:
    user = await User.find_or_fail(user_id, client=trx)
    post: Post = await user.related("posts").create(body.model_dump(exclude_unset=True), client=trx)
    return post


@router.get("/posts", response_model=Page[Post])
async def list_posts(pages: Pagination, tag: str | None = None) -> SimplePaginator[Post]:
    query = posts_query().order_by("id")
    if tag is not None:
        query.where_has("tags", lambda tags: tags.where("name", tag))
    return await pages.paginate(query)


@router.get("/posts/{post_id}")
async def show_post(post_id: int) -> Post:
    return await (
        posts_query()
        .where("id", post_id)
        .preload("comments", lambda comments: comments.order_by("id").preload("author"))
        .first_or_fail()
    )


@router.patch("/posts/{post_id}")
async def update_post(post_id: int, body: PostUpdate, trx: Transaction) -> Post:
    post = await Post.find_or_fail(post_id, client=trx)
    post.merge(body.model_dump(exclude_unset=True))
    return await post.save(client=trx)


@router.delete("/posts/{post_id}", status_code=204)
async def delete_post(post_id: int, trx: Transaction) -> None:
    post = await Post.find_or_fail(post_id, client=trx)
    await post.delete(client=trx)


@router.post("/posts/{post_id}/tags")
async def tag_post(post_id: int, body: TagNames, trx: Transaction) -> Post:
    """Attach tags by name (created when new); tags already on the post stay once."""
    post = await Post.find_or_fail(post_id, client=trx)
    names = sorted(set(body.names))
    tags = await Tag.fetch_or_create_many("name", [{"name": n} for n in names], client=trx)
    await post.related("tags").sync([tag.id for tag in tags], detach=False, client=trx)
    await post.load("tags", lambda tags: tags.order_by("name"), client=trx)
    return post


@router.post("/posts/{post_id}/comments", status_code=201)
async def create_comment(post_id: int, body: CommentCreate, trx: Transaction) -> Comment:
    post = await Post.find_or_fail(post_id, client=trx)
    comment: Comment = await post.related("comments").create(
        body.model_dump(exclude_unset=True), client=trx
    )
    await comment.load("author", client=trx)
    return comment


# -- tags ---------------------------------------------------------------------------------------


@router.get("/tags")
async def list_tags() -> list[Tag]:
    return await Tag.query().with_count("posts").order_by("name")


# -- the application ----------------------------------------------------------------------------


def database_url() -> str:
    """``DATABASE_URL``, else the SQLite file ``tmp/app.db`` of this example."""
    url = os.environ.get("DATABASE_URL")
    if url:
        return url
    path = HERE / "tmp" / "app.db"
    path.parent.mkdir(exist_ok=True)
    return f"sqlite:///{path}"


@asynccontextmanager
async def migrate(app: FastAPI) -> AsyncIterator[None]:
    """Run the pending migrations at start-up (a real deployment would rather run
    ``lucid-orm migration:run`` before starting the servers)."""
    await Migrator(MIGRATIONS).run()
    yield


def create_app(database: str | Mapping[str, Any] | None = None) -> FastAPI:
    """The application on ``database`` (a URL or ``db.configure`` keyword arguments; default
    :func:`database_url`, read at start-up)."""
    application = FastAPI(
        title="lucid_orm FastAPI example",
        lifespan=lifespan(database if database is not None else database_url, inner=migrate),
    )
    install(application)
    application.include_router(router)
    return application


app = create_app()
