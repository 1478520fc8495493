"""Static typing of polymorphic relations, checked by ``mypy --strict tests/typing`` (never
run): ``comment.commentable`` is ``Post | Video | None``, the many-kinds give lists, the query
clients and their builders are typed, the declarations take only their kind's options."""

from __future__ import annotations

from typing import assert_type

from lucid_orm import (
    BaseModel,
    column,
    morph_many,
    morph_map,
    morph_one,
    morph_to,
    morph_to_many,
    morphed_by_many,
)
from lucid_orm.orm.relations.morph_many import MorphManyQueryBuilder, MorphManyQueryClient
from lucid_orm.orm.relations.morph_to import MorphToQueryBuilder, MorphToQueryClient
from lucid_orm.orm.relations.morph_to_many import MorphToManyQueryBuilder, MorphToManyQueryClient
from lucid_orm.relations import MorphedByMany, MorphMany, MorphOne, MorphTo, MorphToMany


class Comment(BaseModel):
    id: int = column(is_primary=True)
    commentable_type: str | None = column()
    commentable_id: int | None = column()
    commentable: MorphTo[Post | Video] = morph_to()


class Image(BaseModel):
    id: int = column(is_primary=True)


class Tag(BaseModel):
    id: int = column(is_primary=True)
    posts: MorphedByMany[Post] = morphed_by_many(lambda: Post, name="taggable")


class Post(BaseModel):
    id: int = column(is_primary=True)
    comments: MorphMany[Comment] = morph_many(lambda: Comment, name="commentable")
    image: MorphOne[Image] = morph_one(lambda: Image, name="imageable", serialize_as=None)
    tags: MorphToMany[Tag] = morph_to_many(lambda: Tag, name="taggable", pivot_columns=["note"])


class Video(BaseModel):
    id: int = column(is_primary=True)
    comments: MorphMany[Comment] = morph_many(lambda: Comment, name="commentable")


async def typed_access(
    c: Comment,
    p: Post,
    t: Tag,
) -> None:
    to_client = c.related(Comment.commentable)
    assert_type(to_client, MorphToQueryClient[Comment, Post | Video])
    many_client = p.related(Post.comments)
    assert_type(many_client, MorphManyQueryClient[Post, Comment])
    tags_client = p.related(Post.tags)
    assert_type(tags_client, MorphToManyQueryClient[Post, Tag])
    assert_type(c.commentable, Post | Video | None)
    assert_type(Comment.commentable, MorphTo[Post | Video])
    assert_type(p.comments, list[Comment])
    assert_type(p.image, Image | None)
    assert_type(p.tags, list[Tag])
    assert_type(t.posts, list[Post])
    assert_type(Post.tags, MorphToMany[Tag])
    assert_type(to_client.query(), MorphToQueryBuilder[Post | Video])
    assert_type(await to_client.query().first(), Post | Video | None)
    await to_client.associate(p)
    await to_client.associate(Image())  # type: ignore[arg-type]
    assert_type(many_client.query(), MorphManyQueryBuilder[Comment])
    assert_type(await many_client.create({"id": 1}), Comment)
    assert_type(await many_client.create_many([{"id": 1}]), list[Comment])
    assert_type(tags_client.query(), MorphToManyQueryBuilder[Tag])
    await tags_client.attach({1: {"note": "x"}})
    morph_map({"post": Post, "video": Video})
    Comment.query().where_has_morph("commentable", [Post, "video"], lambda q, model: None)
    Comment.query().where_doesnt_have_morph("commentable", Post)
    Comment.query().where_has_morph("commentable", 1)  # type: ignore[arg-type]
    morph_to(type_column="kind", bogus=1)  # type: ignore[call-arg]
    morph_many(lambda: Comment)  # type: ignore[call-arg]
    morph_many(lambda: Comment, name="commentable", pivot_table="x")  # type: ignore[call-arg]
