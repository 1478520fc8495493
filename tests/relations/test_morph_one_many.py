"""morph_one and morph_many (SPEC §10 "Relations III", Eloquent's ``morphOne``/``morphMany``):
keys, preload (one query per relation and level), lazy loads, related queries, the ``has``
family, aggregates, writes, ``on_query`` and serialization — on every dialect. Posts and videos
share ids on purpose: every read must tell their comments apart by type."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from lucid_orm import (
    BaseModel,
    LucidError,
    column,
    db,
    has_many,
    morph_many,
    morph_map,
    morph_one,
)
from lucid_orm.database import Database
from lucid_orm.orm.relations.morph_map import clear_morph_map
from lucid_orm.relations import HasMany, MorphMany, MorphOne
from tests import models
from tests.helpers import count_queries

FLAGS: list[tuple[bool, bool, bool]] = []


def record_flags(query: Any) -> None:
    FLAGS.append(
        (query.is_related_query, query.is_related_preload_query, query.is_related_sub_query)
    )


class Comment(BaseModel):
    table = "morph_comments"
    id: int = column(is_primary=True)
    commentable_type: str | None = column()
    commentable_id: int | None = column()
    body: str | None = column()
    points: int | None = column()


class Image(BaseModel):
    table = "morph_images"
    id: int = column(is_primary=True)
    imageable_type: str | None = column()
    imageable_id: int | None = column()
    url: str | None = column()


class Post(models.Post):
    comments: MorphMany[Comment] = morph_many(lambda: Comment, name="commentable")
    image: MorphOne[Image] = morph_one(lambda: Image, name="imageable")
    hooked: MorphMany[Comment] = morph_many(
        lambda: Comment, name="commentable", on_query=record_flags, serialize_as=None
    )


class Video(BaseModel):
    table = "videos"
    id: int = column(is_primary=True)
    user_id: int | None = column()
    title: str | None = column()

    comments: MorphMany[Comment] = morph_many(lambda: Comment, name="commentable")
    image: MorphOne[Image] = morph_one(lambda: Image, name="imageable")


class User(models.BaseUser):
    posts: HasMany[Post] = has_many(lambda: Post)


class Reply(Comment):
    """A self relation: comments on comments (``commentable_type = "reply"``)."""

    replies: MorphMany[Reply] = morph_many(lambda: Reply, name="commentable")


@pytest.fixture(autouse=True)
def aliases() -> Iterator[None]:
    morph_map({"post": Post, "video": Video, "reply": Reply})
    FLAGS.clear()
    yield
    clear_morph_map()


async def seed() -> tuple[list[Post], list[Video]]:
    """Posts 1-2 and videos 1-2 (same ids); comments on post 1 (2), video 1 (1), video 2 (2)."""
    posts = await Post.create_many([{"title": "p1"}, {"title": "p2"}])
    # Explicit ids (the same as the posts'): never from the sequence, which PostgreSQL does not
    # advance for them.
    videos = await Video.create_many(
        [{"id": posts[0].id, "title": "v1"}, {"id": posts[1].id, "title": "v2"}]
    )
    p1, v1, v2 = posts[0], videos[0], videos[1]
    await Comment.create_many(
        [
            {"commentable_type": "post", "commentable_id": p1.id, "body": "p1-a", "points": 1},
            {"commentable_type": "post", "commentable_id": p1.id, "body": "p1-b", "points": 5},
            {"commentable_type": "video", "commentable_id": v1.id, "body": "v1-a", "points": 2},
            {"commentable_type": "video", "commentable_id": v2.id, "body": "v2-a", "points": 3},
            {"commentable_type": "video", "commentable_id": v2.id, "body": "v2-b", "points": 4},
        ]
    )
    return posts, videos


def bodies(comments: list[Comment]) -> list[str | None]:
    return sorted((c.body for c in comments), key=str)


class TestKeys:
    async def test_default_keys(self, database: Database) -> None:
        relation = Post.get_relation("comments")
        relation.boot()
        assert relation.type == "morphMany"
        assert (relation.foreign_key, relation.type_key, relation.local_key) == (
            "commentable_id",
            "commentable_type",
            "id",
        )
        assert relation.morph_type == "post"
        assert Post.get_relation("image").type == "morphOne"

    async def test_missing_type_column_raises_at_boot(self, database: Database) -> None:
        class Note(BaseModel):
            table = "comments"
            id: int = column(is_primary=True)
            body: str | None = column()

        class Article(models.Post):
            notes: MorphMany[Note] = morph_many(lambda: Note, name="notable")

        with pytest.raises(LucidError) as exc:
            Article.get_relation("notes").boot()
        assert exc.value.code == "E_MISSING_MODEL_ATTRIBUTE"
        assert str(exc.value) == (
            '"Article.notes" expects "notable_id" to exist on "Note" model, but is missing'
        )

    def test_name_is_required(self) -> None:
        with pytest.raises(LucidError) as exc:
            morph_many(lambda: Comment, name="")
        assert exc.value.code == "E_INVALID_ARGUMENT"


class TestPreload:
    async def test_preload_morph_many_splits_by_type(self, database: Database) -> None:
        _posts, _videos = await seed()
        with count_queries() as q:
            loaded = await Post.query().preload("comments").order_by("id")
            loaded_videos = await Video.query().preload("comments").order_by("id")
        assert q.count == 4
        assert [bodies(p.comments) for p in loaded] == [["p1-a", "p1-b"], []]
        assert [bodies(v.comments) for v in loaded_videos] == [["v1-a"], ["v2-a", "v2-b"]]
        assert "commentable_type" in q.sqls[1]

    async def test_preload_morph_one(self, database: Database) -> None:
        posts, _videos = await seed()
        await Image.create_many(
            [
                {"imageable_type": "post", "imageable_id": posts[1].id, "url": "p2.png"},
                {"imageable_type": "video", "imageable_id": posts[0].id, "url": "v1.png"},
            ]
        )
        with count_queries() as q:
            loaded = await Post.query().preload("image").order_by("id")
        assert q.count == 2
        assert loaded[0].image is None
        assert loaded[1].image is not None and loaded[1].image.url == "p2.png"

    async def test_preload_callback_and_group_limit(self, database: Database) -> None:
        await seed()
        loaded = await Video.query().preload(
            "comments", lambda q: q.group_limit(1).group_order_by("points", "desc")
        )
        by_title = {v.title: bodies(v.comments) for v in loaded}
        assert by_title == {"v1": ["v1-a"], "v2": ["v2-b"]}

    async def test_nested_dotted_path(self, database: Database) -> None:
        user = await models.User.create({"username": "u"})
        post = await Post.create({"user_id": user.id, "title": "t"})
        await Video.create({"id": post.id, "title": "same id"})
        await Comment.create_many(
            [
                {"commentable_type": "post", "commentable_id": post.id, "body": "mine"},
                {"commentable_type": "video", "commentable_id": post.id, "body": "not mine"},
            ]
        )
        with count_queries() as q:
            found = await User.query().preload("posts.comments").first_or_fail()
        assert q.count == 3
        assert [bodies(p.comments) for p in found.posts] == [["mine"]]

    async def test_lazy_load(self, database: Database) -> None:
        posts, _ = await seed()
        post = await Post.find_or_fail(posts[0].id)
        with count_queries() as q:
            await post.load("comments")
        assert q.count == 1
        assert bodies(post.comments) == ["p1-a", "p1-b"]


class TestRelatedQuery:
    async def test_query_filters_by_type(self, database: Database) -> None:
        posts, videos = await seed()
        comments = await posts[0].related("comments").query().where("points", ">", 1)
        assert bodies(comments) == ["p1-b"]
        assert bodies(await videos[0].related("comments").query()) == ["v1-a"]

    async def test_update_and_delete_stay_in_type(self, database: Database) -> None:
        posts, videos = await seed()
        changed = await posts[0].related("comments").query().update({"points": 0})
        assert changed == 2
        deleted = await videos[0].related("comments").query().delete()
        assert deleted == 1
        rows = await db.from_("morph_comments").select("body", "points").order_by("id")
        assert rows == [
            {"body": "p1-a", "points": 0},
            {"body": "p1-b", "points": 0},
            {"body": "v2-a", "points": 3},
            {"body": "v2-b", "points": 4},
        ]

    async def test_paginate(self, database: Database) -> None:
        _, videos = await seed()
        page = await videos[1].related("comments").query().order_by("id").paginate(1, 1)
        assert page.total == 2
        assert [c.body for c in page] == ["v2-a"]


class TestHas:
    async def test_has_and_doesnt_have_use_the_type(self, database: Database) -> None:
        _posts, _ = await seed()
        # Post 1 has comments; post 2 has none, though video 2 (same id) has two.
        has = await Post.query().has("comments").order_by("id")
        assert [p.title for p in has] == ["p1"]
        without = await Post.query().doesnt_have("comments")
        assert [p.title for p in without] == ["p2"]
        assert [p.title for p in await Post.query().has("comments", ">=", 2)] == ["p1"]

    async def test_where_has(self, database: Database) -> None:
        await seed()
        found = await Video.query().where_has("comments", lambda q: q.where("points", ">", 3))
        assert [v.title for v in found] == ["v2"]
        found = await Video.query().where_doesnt_have(
            "comments", lambda q: q.where("points", ">", 3)
        )
        assert [v.title for v in found] == ["v1"]
        found = await Post.query().where("title", "p2").or_where_has("comments").order_by("id")
        assert [p.title for p in found] == ["p1", "p2"]

    async def test_has_morph_one(self, database: Database) -> None:
        posts, _ = await seed()
        await Image.create({"imageable_type": "video", "imageable_id": posts[1].id})
        assert await Post.query().has("image") == []
        assert [v.title for v in await Video.query().has("image")] == ["v2"]


class TestSelfRelation:
    async def test_has_count_and_preload_on_one_table(self, database: Database) -> None:
        root = await Reply.create({"body": "root", "commentable_type": "post", "commentable_id": 1})
        await root.related("replies").create_many([{"body": "r1"}, {"body": "r2"}])
        with_replies = await Reply.query().has("replies")
        assert [r.body for r in with_replies] == ["root"]
        counted = await Reply.query().with_count("replies").order_by("id")
        assert [r.extras["replies_count"] for r in counted] == [2, 0, 0]
        loaded = await Reply.query().where("body", "root").preload("replies").first_or_fail()
        assert bodies(loaded.replies) == ["r1", "r2"]  # type: ignore[arg-type]


class TestAggregates:
    async def test_with_count_and_aggregate(self, database: Database) -> None:
        await seed()
        rows = await Post.query().with_count("comments").order_by("id")
        assert [p.extras["comments_count"] for p in rows] == [2, 0]
        videos = (
            await Video.query()
            .with_aggregate("comments", lambda q: q.sum("points").as_("total"))
            .order_by("id")
        )
        assert [int(v.extras["total"]) for v in videos] == [2, 7]

    async def test_load_count(self, database: Database) -> None:
        _, videos = await seed()
        with count_queries() as q:
            await videos[1].load_count("comments")
        assert q.count == 1
        assert videos[1].extras["comments_count"] == 2


class TestWrites:
    async def test_create_sets_type_and_id(self, database: Database) -> None:
        post = await Post.create({"title": "p"})
        comment = await post.related("comments").create({"body": "hi"})
        assert (comment.commentable_type, comment.commentable_id) == ("post", post.id)
        image = await post.related("image").create({"url": "a.png"})
        assert (image.imageable_type, image.imageable_id) == ("post", post.id)
        rows = await db.from_("morph_comments").select("commentable_type", "commentable_id")
        assert rows == [{"commentable_type": "post", "commentable_id": post.id}]

    async def test_save_and_save_many(self, database: Database) -> None:
        video = await Video.create({"id": 7, "title": "v"})
        one = Comment(body="a")
        await video.related("comments").save(one)
        assert one.is_persisted
        assert (one.commentable_type, one.commentable_id) == ("video", video.id)
        many = [Comment(body="b"), Comment(body="c")]
        with count_queries() as q:
            await video.related("comments").save_many(many)
        assert all(c.commentable_type == "video" for c in many)
        inserts = [e for e in q.sqls if e.lstrip().upper().startswith("INSERT")]
        assert len(inserts) == 2
        assert bodies(await video.related("comments").query()) == ["a", "b", "c"]

    async def test_create_many_one_insert(self, database: Database) -> None:
        post = await Post.create({"title": "p"})
        with count_queries() as q:
            created = await post.related("comments").create_many([{"body": "x"}, {"body": "y"}])
        inserts = [s for s in q.sqls if s.lstrip().upper().startswith("INSERT")]
        assert len(inserts) == 1
        assert [(c.commentable_type, c.commentable_id) for c in created] == [
            ("post", post.id),
            ("post", post.id),
        ]

    async def test_first_or_create_matches_type(self, database: Database) -> None:
        post = await Post.create({"title": "p"})
        # A video with the same id owns a comment with that body: not the post's.
        await Video.create({"id": post.id, "title": "v"})
        await Comment.create({"commentable_type": "video", "commentable_id": post.id, "body": "x"})
        made = await post.related("comments").first_or_create({"body": "x"})
        assert made.commentable_type == "post"
        assert await Comment.query().count_rows() == 2
        again = await post.related("comments").first_or_create({"body": "x"})
        assert again.id == made.id

    async def test_fetch_or_create_many_matches_type(self, database: Database) -> None:
        post = await Post.create({"title": "p"})
        await Comment.create({"commentable_type": "video", "commentable_id": post.id, "body": "x"})
        rows = await post.related("comments").fetch_or_create_many([{"body": "x"}], "body")
        assert rows[0].commentable_type == "post"
        assert await Comment.query().count_rows() == 2

    async def test_unmapped_model_stores_class_name(self, database: Database) -> None:
        clear_morph_map()
        video = await Video.create({"id": 7, "title": "v"})
        comment = await video.related("comments").create({"body": "b"})
        assert comment.commentable_type == "Video"


class TestOnQuery:
    async def test_flags(self, database: Database) -> None:
        posts, _ = await seed()
        await Post.query().preload("hooked")
        await posts[0].related("hooked").query()
        await Post.query().has("hooked")
        await Post.query().with_count("hooked")
        assert FLAGS == [
            (True, True, False),
            (True, False, False),
            (False, False, True),
            (False, False, True),
        ]


class TestSerialize:
    async def test_serialize_loaded(self, database: Database) -> None:
        posts, _ = await seed()
        post = (
            await Post.query()
            .where("id", posts[0].id)
            .preload("comments")
            .preload("image")
            .preload("hooked")
            .first_or_fail()
        )
        out = post.serialize()
        assert out["image"] is None
        assert sorted(c["body"] for c in out["comments"]) == ["p1-a", "p1-b"]
        assert out["comments"][0]["commentable_type"] == "post"
        assert "hooked" not in out
