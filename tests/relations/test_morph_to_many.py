"""morph_to_many and morphed_by_many (SPEC §10 "Relations III", Eloquent's ``morphToMany`` /
``morphedByMany``) over the ``taggables`` pivot: keys, preload, related and pivot queries, the
``has`` family, aggregates, ``attach``/``detach``/``sync`` with pivot columns, ``save``/
``create``, ``on_query`` and serialization — on every dialect. Posts and reels share ids on
purpose: every read and write of the pivot must keep to its type."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from lucid_orm import BaseModel, column, db, morph_map, morph_to_many, morphed_by_many
from lucid_orm.database import Database
from lucid_orm.orm.relations.morph_map import clear_morph_map
from lucid_orm.relations import MorphedByMany, MorphToMany
from tests import models
from tests.helpers import count_queries

FLAGS: list[tuple[bool, bool, bool]] = []


def record_flags(query: Any) -> None:
    FLAGS.append(
        (query.is_related_query, query.is_related_preload_query, query.is_related_sub_query)
    )


class Tag(models.Tag):
    posts: MorphedByMany[Post] = morphed_by_many(lambda: Post, name="taggable")
    reels: MorphedByMany[Reel] = morphed_by_many(
        lambda: Reel, name="taggable", pivot_columns=["note"]
    )


class Post(models.Post):
    tags: MorphToMany[Tag] = morph_to_many(lambda: Tag, name="taggable", pivot_columns=["note"])
    hooked: MorphToMany[Tag] = morph_to_many(
        lambda: Tag, name="taggable", on_query=record_flags, serialize_as=None
    )


class Reel(BaseModel):
    table = "videos"
    id: int = column(is_primary=True)
    title: str | None = column()

    tags: MorphToMany[Tag] = morph_to_many(lambda: Tag, name="taggable", pivot_columns=["note"])


@pytest.fixture(autouse=True)
def aliases() -> Iterator[None]:
    morph_map({"post": Post, "clip": Reel})
    FLAGS.clear()
    yield
    clear_morph_map()


async def seed() -> tuple[list[Post], list[Reel], list[Tag]]:
    """Posts 1-2, reels 1-2 (same ids), tags red/green/blue; post 1: red, green; clip 1: blue;
    clip 2: red."""
    posts = await Post.create_many([{"title": "p1"}, {"title": "p2"}])
    # Explicit ids, the posts' (never from the sequence: PostgreSQL would not advance it).
    reels = await Reel.create_many(
        [{"id": posts[0].id, "title": "v1"}, {"id": posts[1].id, "title": "v2"}]
    )
    tags = await Tag.create_many([{"name": "red"}, {"name": "green"}, {"name": "blue"}])
    red, green, blue = tags
    await posts[0].related("tags").attach({red.id: {"note": "first"}, green.id: None})
    await reels[0].related("tags").attach([blue.id])
    await reels[1].related("tags").attach([red.id])
    return posts, reels, tags


async def pivot_rows() -> list[tuple[int, int, str, str | None]]:
    rows = await db.from_("taggables").select("tag_id", "taggable_id", "taggable_type", "note")
    return sorted(
        (r["tag_id"], r["taggable_id"], r["taggable_type"], r["note"])
        for r in rows  # type: ignore[union-attr]
    )


def names(tags: list[Tag]) -> list[str | None]:
    return sorted((t.name for t in tags), key=str)


class TestKeys:
    async def test_keys(self, database: Database) -> None:
        rel = Post.get_relation("tags")
        rel.boot()
        assert rel.type == "morphToMany"
        assert (rel.pivot_table, rel.pivot_foreign_key, rel.pivot_related_foreign_key) == (
            "taggables",
            "taggable_id",
            "tag_id",
        )
        assert (rel.pivot_type_column, rel.morph_type) == ("taggable_type", "post")
        inverse = Tag.get_relation("posts")
        inverse.boot()
        assert inverse.type == "morphedByMany"
        assert (inverse.pivot_foreign_key, inverse.pivot_related_foreign_key) == (
            "tag_id",
            "taggable_id",
        )
        assert inverse.morph_type == "post"


class TestPreload:
    async def test_preload_keeps_to_the_type(self, database: Database) -> None:
        await seed()
        with count_queries() as q:
            posts = await Post.query().preload("tags").order_by("id")
            reels = await Reel.query().preload("tags").order_by("id")
        assert q.count == 4
        assert [names(p.tags) for p in posts] == [["green", "red"], []]
        assert [names(c.tags) for c in reels] == [["blue"], ["red"]]
        notes = {t.name: t.extras["pivot_note"] for t in posts[0].tags}
        assert notes == {"red": "first", "green": None}

    async def test_preload_inverse(self, database: Database) -> None:
        await seed()
        with count_queries() as q:
            tags = await Tag.query().preload("posts").preload("reels").order_by("id")
        assert q.count == 3
        by_name = {
            t.name: ([p.title for p in t.posts], sorted(c.title or "" for c in t.reels))
            for t in tags
        }
        assert by_name == {
            "red": (["p1"], ["v2"]),
            "green": (["p1"], []),
            "blue": ([], ["v1"]),
        }

    async def test_nested_and_lazy(self, database: Database) -> None:
        posts, _, _ = await seed()
        with count_queries() as q:
            loaded = (
                await Post.query().where("id", posts[0].id).preload("tags.reels").first_or_fail()
            )
        assert q.count == 3
        clips_of = {t.name: [c.title for c in t.reels] for t in loaded.tags}
        assert clips_of == {"red": ["v2"], "green": []}
        post = await Post.find_or_fail(posts[0].id)
        with count_queries() as q:
            await post.load("tags")
        assert q.count == 1
        assert names(post.tags) == ["green", "red"]


class TestQueries:
    async def test_related_and_pivot_query(self, database: Database) -> None:
        posts, reels, _ = await seed()
        assert names(await posts[0].related("tags").query().where("name", "red")) == ["red"]
        assert names(await reels[0].related("tags").query()) == ["blue"]
        pivots = await posts[0].related("tags").pivot_query()
        assert sorted(r["taggable_type"] for r in pivots) == ["post", "post"]
        tagged = await Tag.query().where("name", "red").first_or_fail()
        assert [c.title for c in await tagged.related("reels").query()] == ["v2"]

    async def test_pivot_update_keeps_to_the_type(self, database: Database) -> None:
        posts, reels, tags = await seed()
        await reels[0].related("tags").attach({tags[0].id: {"note": "clip"}})
        changed = (
            await posts[0].related("tags").query().where("name", "red").update({"note": "changed"})
        )
        assert changed == 1
        rows = await pivot_rows()
        assert (tags[0].id, posts[0].id, "post", "changed") in rows
        assert (tags[0].id, reels[0].id, "clip", "clip") in rows

    async def test_has_family_and_counts(self, database: Database) -> None:
        await seed()
        assert [p.title for p in await Post.query().has("tags")] == ["p1"]
        assert [p.title for p in await Post.query().doesnt_have("tags")] == ["p2"]
        found = await Reel.query().where_has("tags", lambda q: q.where("name", "red"))
        assert [c.title for c in found] == ["v2"]
        tags = await Tag.query().has("posts").order_by("id")
        assert [t.name for t in tags] == ["red", "green"]
        counted = await Tag.query().with_count("reels").with_count("posts").order_by("id")
        assert [(t.extras["reels_count"], t.extras["posts_count"]) for t in counted] == [
            (1, 1),
            (0, 1),
            (1, 0),
        ]
        post = await Post.query().where("title", "p1").first_or_fail()
        await post.load_count("tags")
        assert post.extras["tags_count"] == 2


class TestWrites:
    async def test_attach_sets_the_type(self, database: Database) -> None:
        posts, reels, tags = await seed()
        assert await pivot_rows() == sorted(
            [
                (tags[0].id, posts[0].id, "post", "first"),
                (tags[1].id, posts[0].id, "post", None),
                (tags[2].id, reels[0].id, "clip", None),
                (tags[0].id, reels[1].id, "clip", None),
            ]
        )

    async def test_detach_keeps_to_the_type(self, database: Database) -> None:
        posts, reels, tags = await seed()
        await reels[0].related("tags").attach([tags[0].id])
        removed = await posts[0].related("tags").detach([tags[0].id])
        assert removed == 1
        assert (tags[0].id, reels[0].id, "clip", None) in await pivot_rows()
        assert await posts[0].related("tags").detach() == 1  # green
        assert [r for r in await pivot_rows() if r[2] == "post"] == []

    async def test_sync(self, database: Database) -> None:
        posts, reels, tags = await seed()
        red, green, blue = tags
        await reels[0].related("tags").attach([green.id])  # clip 1 = post 1's id
        await posts[0].related("tags").sync({red.id: {"note": "again"}, blue.id: None})
        rows = await pivot_rows()
        assert [r for r in rows if r[2] == "post"] == sorted(
            [(red.id, posts[0].id, "post", "again"), (blue.id, posts[0].id, "post", None)]
        )
        # The clip's rows with the same taggable_id are untouched.
        assert sorted(r[0] for r in rows if r[2] == "clip" and r[1] == reels[0].id) == sorted(
            [green.id, blue.id]
        )
        with count_queries() as q:
            await posts[0].related("tags").sync({red.id: {"note": "again"}, blue.id: None})
        writes = [
            s for s in q.sqls if s.lstrip().split()[0].upper() in ("INSERT", "UPDATE", "DELETE")
        ]
        assert writes == []

    async def test_inverse_attach(self, database: Database) -> None:
        posts, _, tags = await seed()
        await tags[2].related("posts").attach({posts[1].id: {"note": "inv"}})
        assert (tags[2].id, posts[1].id, "post", "inv") in await pivot_rows()
        await tags[2].related("posts").sync([])
        assert [r for r in await pivot_rows() if r[0] == tags[2].id] == [
            (tags[2].id, posts[0].id, "clip", None)
        ]

    async def test_save_and_create(self, database: Database) -> None:
        clip = await Reel.create({"id": 9, "title": "v"})
        made = await clip.related("tags").create({"name": "new"}, {"note": "n"})
        saved = Tag(name="saved")
        await clip.related("tags").save(saved)
        many = await clip.related("tags").create_many([{"name": "a"}, {"name": "b"}])
        rows = await pivot_rows()
        assert rows == sorted(
            [
                (made.id, 9, "clip", "n"),
                (saved.id, 9, "clip", None),
                (many[0].id, 9, "clip", None),
                (many[1].id, 9, "clip", None),
            ]
        )


class TestOnQueryAndSerialize:
    async def test_flags(self, database: Database) -> None:
        posts, _, _ = await seed()
        await Post.query().preload("hooked")
        await posts[0].related("hooked").query()
        await Post.query().has("hooked")
        assert FLAGS == [(True, True, False), (True, False, False), (False, False, True)]

    async def test_serialize(self, database: Database) -> None:
        posts, _, _ = await seed()
        post = (
            await Post.query()
            .where("id", posts[0].id)
            .preload("tags")
            .preload("hooked")
            .first_or_fail()
        )
        out = post.serialize()
        assert sorted(t["name"] for t in out["tags"]) == ["green", "red"]
        assert "hooked" not in out
