"""morph_to (SPEC §10 "Relations III", Eloquent's ``morphTo``) and the morph map: keys,
preload (one query per type present, per-type callbacks, dotted paths), lazy loads, related
queries, ``where_has_morph`` and its ``or_``/``doesnt_have`` forms, ``associate``/``dissociate``,
``on_query`` and serialization — on every dialect. Posts and clips share ids on purpose."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from lucid_orm import (
    BaseModel,
    LucidError,
    belongs_to,
    column,
    db,
    morph_many,
    morph_map,
    morph_to,
)
from lucid_orm.database import Database
from lucid_orm.orm.relations.morph_map import clear_morph_map, morph_model
from lucid_orm.relations import BelongsTo, MorphMany, MorphTo
from tests import models
from tests.helpers import count_queries

FLAGS: list[tuple[str, bool, bool, bool]] = []


def record_flags(query: Any) -> None:
    FLAGS.append(
        (
            query.model.__name__,
            query.is_related_query,
            query.is_related_preload_query,
            query.is_related_sub_query,
        )
    )


class Author(models.BaseUser):
    pass


class Post(models.Post):
    author: BelongsTo[Author] = belongs_to(lambda: Author, foreign_key="user_id")
    comments: MorphMany[Comment] = morph_many(lambda: Comment, name="commentable")


class Clip(BaseModel):
    table = "videos"
    id: int = column(is_primary=True)
    user_id: int | None = column()
    title: str | None = column()

    author: BelongsTo[Author] = belongs_to(lambda: Author, foreign_key="user_id")


class Comment(BaseModel):
    table = "morph_comments"
    id: int = column(is_primary=True)
    commentable_type: str | None = column()
    commentable_id: int | None = column()
    body: str | None = column()
    points: int | None = column()

    commentable: MorphTo[Post | Clip] = morph_to()
    hooked: MorphTo[Post | Clip] = morph_to(
        type_column="commentable_type",
        id_column="commentable_id",
        on_query=record_flags,
        serialize_as=None,
    )


@pytest.fixture(autouse=True)
def aliases() -> Iterator[None]:
    morph_map({"post": Post, "clip": Clip})
    FLAGS.clear()
    yield
    clear_morph_map()


async def seed() -> tuple[list[Post], list[Clip], list[Comment]]:
    """Authors a (1), b (2); posts 1-2 by a; clips 1-2 (same ids) by b; comments c1 → post 1,
    c2 → clip 1, c3 → clip 2, c4 → no type, c5 → post 99 (missing)."""
    authors = await Author.create_many([{"username": "a"}, {"username": "b"}])
    a, b = authors
    posts = await Post.create_many(
        [{"title": "p1", "user_id": a.id}, {"title": "p2", "user_id": a.id}]
    )
    # Explicit ids, the posts' (never from the sequence: PostgreSQL would not advance it).
    clips = await Clip.create_many(
        [
            {"id": posts[0].id, "title": "v1", "user_id": b.id},
            {"id": posts[1].id, "title": "v2", "user_id": b.id},
        ]
    )
    comments = await Comment.create_many(
        [
            {"commentable_type": "post", "commentable_id": posts[0].id, "body": "c1"},
            {"commentable_type": "clip", "commentable_id": clips[0].id, "body": "c2"},
            {"commentable_type": "clip", "commentable_id": clips[1].id, "body": "c3"},
            {"commentable_type": None, "commentable_id": None, "body": "c4"},
            {"commentable_type": "post", "commentable_id": 99999, "body": "c5"},
        ]
    )
    return posts, clips, comments


def owners(comments: list[Comment]) -> dict[str | None, tuple[str, str | None] | None]:
    out: dict[str | None, tuple[str, str | None] | None] = {}
    for c in comments:
        target = c.commentable
        out[c.body] = None if target is None else (type(target).__name__, target.title)
    return out


class TestKeys:
    async def test_default_keys(self, database: Database) -> None:
        relation = Comment.get_relation("commentable")
        relation.boot()
        assert relation.type == "morphTo"
        assert (relation.type_key, relation.foreign_key) == ("commentable_type", "commentable_id")
        with pytest.raises(LucidError):
            relation.related_model()

    async def test_missing_columns_raise_at_boot(self, database: Database) -> None:
        class Note(BaseModel):
            table = "comments"
            id: int = column(is_primary=True)
            notable: MorphTo[Post] = morph_to()

        with pytest.raises(LucidError) as exc:
            Note.query().preload("notable")
        assert exc.value.code == "E_MISSING_MODEL_ATTRIBUTE"
        assert str(exc.value) == (
            '"Note.notable" expects "notable_type" to exist on "Note" model, but is missing'
        )


class TestMorphMap:
    def test_aliases_and_class_names(self) -> None:
        assert morph_model("post") is Post
        clear_morph_map()
        # Unmapped: the class name, when one loaded model class has it.
        assert morph_model("Clip") is Clip

    def test_unknown_alias_names_it_and_the_map(self) -> None:
        with pytest.raises(LucidError) as exc:
            morph_model("podcast")
        assert exc.value.code == "E_INVALID_ARGUMENT"
        assert str(exc.value) == (
            'Unknown morph type "podcast": it is neither a morph_map() alias nor the name of a '
            'model class (morph map: "clip": Clip, "post": Post)'
        )

    def test_ambiguous_class_name_is_refused(self) -> None:
        clear_morph_map()
        with pytest.raises(LucidError) as exc:
            morph_model("Post")  # tests.models.Post, this file's Post, other files' ...
        assert "model classes: give one of them an alias" in str(exc.value)

    def test_realias_moves_the_model(self) -> None:
        morph_map({"article": Post})
        assert morph_model("article") is Post
        with pytest.raises(LucidError):
            morph_model("post")  # the old alias is gone (and "Post" is ambiguous)

    def test_bad_entries(self) -> None:
        with pytest.raises(LucidError) as exc:
            morph_map({"x": object})  # type: ignore[dict-item]
        assert exc.value.code == "E_INVALID_ARGUMENT"


class TestPreload:
    async def test_one_query_per_type(self, database: Database) -> None:
        await seed()
        with count_queries() as q:
            comments = await Comment.query().preload("commentable").order_by("id")
        assert q.count == 3  # comments, posts, clips
        assert owners(comments) == {
            "c1": ("Post", "p1"),
            "c2": ("Clip", "v1"),
            "c3": ("Clip", "v2"),
            "c4": None,
            "c5": None,
        }

    async def test_no_type_no_query(self, database: Database) -> None:
        await Comment.create({"body": "orphan"})
        with count_queries() as q:
            comments = await Comment.query().preload("commentable")
        assert q.count == 1
        assert comments[0].commentable is None

    async def test_per_type_callbacks(self, database: Database) -> None:
        await seed()
        with count_queries() as q:
            comments = await Comment.query().preload(
                "commentable", {Post: lambda q: q.preload("author")}
            )
        assert q.count == 4  # comments, posts, post authors, clips
        for c in comments:
            target = c.commentable
            if isinstance(target, Post):
                assert target.author is not None and target.author.username == "a"
            elif isinstance(target, Clip):
                assert "author" not in target.preloaded

    async def test_per_type_callbacks_by_alias(self, database: Database) -> None:
        await seed()
        comments = await Comment.query().preload(
            "commentable", {"clip": lambda q: q.where("title", "v2")}
        )
        assert owners(comments)["c2"] is None
        assert owners(comments)["c3"] == ("Clip", "v2")
        assert owners(comments)["c1"] == ("Post", "p1")

    async def test_plain_callback_applies_to_every_type(self, database: Database) -> None:
        await seed()
        comments = await Comment.query().preload(
            "commentable", lambda q: q.where_in("title", ["p1", "v2"])
        )
        assert owners(comments) == {
            "c1": ("Post", "p1"),
            "c2": None,
            "c3": ("Clip", "v2"),
            "c4": None,
            "c5": None,
        }

    async def test_dotted_path_runs_in_each_type(self, database: Database) -> None:
        await seed()
        with count_queries() as q:
            comments = await Comment.query().preload("commentable.author")
        assert q.count == 5  # comments, posts, their authors, clips, their authors
        names = {
            c.body: c.commentable.author.username  # type: ignore[union-attr]
            for c in comments
            if c.commentable is not None
        }
        assert names == {"c1": "a", "c2": "b", "c3": "b"}

    async def test_nested_from_the_other_side(self, database: Database) -> None:
        posts, _, _ = await seed()
        with count_queries() as q:
            found = (
                await Post.query()
                .where("id", posts[0].id)
                .preload("comments.commentable")
                .first_or_fail()
            )
        assert q.count == 3
        assert [c.body for c in found.comments] == ["c1"]
        back = found.comments[0].commentable
        assert isinstance(back, Post) and back.id == found.id

    async def test_per_type_mapping_refused_on_other_kinds(self, database: Database) -> None:
        with pytest.raises(LucidError) as exc:
            Post.query().preload("author", {Post: lambda q: q})
        assert exc.value.code == "E_INVALID_ARGUMENT"

    async def test_unknown_type_in_a_row(self, database: Database) -> None:
        await Comment.create({"commentable_type": "podcast", "commentable_id": 1})
        with pytest.raises(LucidError) as exc:
            await Comment.query().preload("commentable")
        assert 'Unknown morph type "podcast"' in str(exc.value)
        assert '"post": Post' in str(exc.value)

    async def test_unmapped_class_name_rows(self, database: Database) -> None:
        clear_morph_map()
        clip = await Clip.create({"id": 5, "title": "v"})
        comment = await Comment.create({"body": "x"})
        await comment.related("commentable").associate(clip)
        assert comment.commentable_type == "Clip"
        loaded = await Comment.query().preload("commentable").first_or_fail()
        assert isinstance(loaded.commentable, Clip) and loaded.commentable.id == 5

    async def test_lazy_load(self, database: Database) -> None:
        _, _, comments = await seed()
        comment = await Comment.find_or_fail(comments[1].id)
        with count_queries() as q:
            await comment.load("commentable")
        assert q.count == 1
        assert isinstance(comment.commentable, Clip) and comment.commentable.title == "v1"

    async def test_lazy_load_with_per_type_callbacks(self, database: Database) -> None:
        _, _, comments = await seed()
        comment = await Comment.find_or_fail(comments[0].id)
        with count_queries() as q:
            await comment.load(
                "commentable", {Post: lambda q: q.preload("author"), Clip: lambda q: q}
            )
        assert q.count == 2  # the post, its author
        target = comment.commentable
        assert isinstance(target, Post)
        assert target.author is not None and target.author.username == "a"


class TestRelatedQuery:
    async def test_query_of_the_rows_type(self, database: Database) -> None:
        _, _, comments = await seed()
        target = await comments[2].related("commentable").query().first()
        assert isinstance(target, Clip) and target.title == "v2"
        post = await comments[0].related("commentable").query().first()
        assert isinstance(post, Post) and post.title == "p1"

    async def test_null_id_runs_no_query(self, database: Database) -> None:
        comment = await Comment.create(
            {"commentable_type": "post", "commentable_id": None, "body": "x"}
        )
        with count_queries() as q:
            assert await comment.related("commentable").query() == []
        assert q.count == 0

    async def test_null_type(self, database: Database) -> None:
        _, _, comments = await seed()
        with pytest.raises(LucidError) as exc:
            comments[3].related("commentable").query()
        assert str(exc.value) == 'Cannot query "commentable": "Comment.commentable_type" is NULL'


class TestWhereHasMorph:
    async def test_where_has_morph(self, database: Database) -> None:
        await seed()
        found = await Comment.query().where_has_morph("commentable", [Post, Clip]).order_by("id")
        assert [c.body for c in found] == ["c1", "c2", "c3"]
        found = await Comment.query().where_has_morph(
            "commentable", [Post, Clip], lambda q: q.where("title", "like", "%2")
        )
        assert [c.body for c in found] == ["c3"]
        found = await Comment.query().where_has_morph("commentable", "clip").order_by("id")
        assert [c.body for c in found] == ["c2", "c3"]

    async def test_callback_gets_the_type(self, database: Database) -> None:
        await seed()
        seen: list[type] = []

        def titled(query: Any, model: type) -> None:
            seen.append(model)
            query.where("title", "p1" if model is Post else "v2")

        found = await Comment.query().where_has_morph("commentable", [Post, Clip], titled)
        assert sorted(c.body or "" for c in found) == ["c1", "c3"]
        assert seen == [Post, Clip]

    async def test_or_and_doesnt_have_forms(self, database: Database) -> None:
        await seed()
        found = (
            await Comment.query()
            .where("body", "c4")
            .or_where_has_morph("commentable", [Post])
            .order_by("id")
        )
        assert [c.body for c in found] == ["c1", "c4"]
        # Eloquent's semantics: rows of the given types without a matching related row.
        found = await Comment.query().where_doesnt_have_morph("commentable", [Post]).order_by("id")
        assert [c.body for c in found] == ["c5"]
        found = await Comment.query().where_doesnt_have_morph(
            "commentable", [Clip], lambda q: q.where("title", "v1")
        )
        assert [c.body for c in found] == ["c3"]
        found = (
            await Comment.query()
            .where("body", "c1")
            .or_where_doesnt_have_morph("commentable", [Post])
            .order_by("id")
        )
        assert [c.body for c in found] == ["c1", "c5"]

    async def test_has_morph_with_count(self, database: Database) -> None:
        await seed()
        found = await Comment.query().has_morph("commentable", [Post, Clip], ">=", 1)
        assert sorted(c.body or "" for c in found) == ["c1", "c2", "c3"]
        assert [c.body for c in await Comment.query().doesnt_have_morph("commentable", [Post])] == [
            "c5"
        ]

    async def test_has_on_morph_to_points_to_where_has_morph(self, database: Database) -> None:
        with pytest.raises(LucidError) as exc:
            Comment.query().has("commentable")
        assert 'use where_has_morph("commentable", [Model, ...])' in str(exc.value)
        with pytest.raises(LucidError):
            Comment.query().with_count("commentable")
        with pytest.raises(LucidError) as exc:
            Post.query().where_has_morph("author", [Post])
        assert exc.value.code == "E_INVALID_ARGUMENT"


class Pin(BaseModel):
    """A morph_to with renamed columns and an owner key other than the primary key."""

    table = "morph_comments"
    id: int = column(is_primary=True)
    kind: str | None = column(column_name="commentable_type")
    ref: int | None = column(column_name="commentable_id")
    target: MorphTo[Author] = morph_to(type_column="kind", id_column="ref", owner_key="points")


class TestOptions:
    async def test_columns_and_owner_key(self, database: Database) -> None:
        author = await PointsAuthor.create({"username": "z", "points": 42})
        await Pin.create({"kind": "PointsAuthor", "ref": 42})
        pins = await Pin.query().preload("target")
        assert isinstance(pins[0].target, PointsAuthor)
        assert pins[0].target.id == author.id
        found = await Pin.query().where_has_morph("target", [PointsAuthor])
        assert len(found) == 1


class PointsAuthor(models.BaseUser):
    points: int | None = column()


class TestWrites:
    async def test_associate(self, database: Database) -> None:
        comment = await Comment.create({"body": "x"})
        clip = Clip(id=3, title="new clip")
        with count_queries() as q:
            await comment.related("commentable").associate(clip)
        assert clip.is_persisted
        assert comment.commentable is clip
        assert (comment.commentable_type, comment.commentable_id) == ("clip", 3)
        rows = await db.from_("morph_comments").select("commentable_type", "commentable_id")
        assert rows == [{"commentable_type": "clip", "commentable_id": 3}]
        assert q.count >= 2

    async def test_dissociate(self, database: Database) -> None:
        _, _, comments = await seed()
        comment = comments[0]
        await comment.related("commentable").dissociate()
        assert comment.commentable is None
        row = await db.from_("morph_comments").where("id", comment.id).first()
        assert (row["commentable_type"], row["commentable_id"]) == (None, None)

    async def test_associate_refuses_non_models(self, database: Database) -> None:
        comment = await Comment.create({"body": "x"})
        with pytest.raises(LucidError) as exc:
            await comment.related("commentable").associate("nope")  # type: ignore[arg-type]
        assert exc.value.code == "E_INVALID_ARGUMENT"


class TestOnQuery:
    async def test_flags(self, database: Database) -> None:
        _, _, comments = await seed()
        await Comment.query().preload("hooked")
        await comments[0].related("hooked").query()
        await Comment.query().where_has_morph("hooked", [Clip])
        assert FLAGS == [
            ("Post", True, True, False),
            ("Clip", True, True, False),
            ("Post", True, False, False),
            ("Clip", False, False, True),
        ]


class TestSerialize:
    async def test_serialize(self, database: Database) -> None:
        await seed()
        comments = await Comment.query().preload("commentable").preload("hooked").order_by("id")
        out = [c.serialize() for c in comments]
        assert out[0]["commentable"]["title"] == "p1"
        assert out[1]["commentable"]["title"] == "v1"
        assert out[3]["commentable"] is None
        assert all("hooked" not in o for o in out)
