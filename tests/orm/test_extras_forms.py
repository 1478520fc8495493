"""The two forms hydration keeps a row's extras in (orm/hydration.py): a dict filled with the
row for the values a user selected (``with_count``, ``with_aggregate``, computed or aliased
columns), the lazy form (state.py's ``LazyExtras``, one per result shape, and the row) for the
keys a relation selects for its own use (a preload's or a related query's pivot columns). Which
form an instance got shows in nothing a user does with it: reads, writes, ``original``/``dirty``,
saves, serialization (``to_dict``, ``serialize`` with ``serialize_extras``, pydantic) and the
preloader's grouping are the same."""

from __future__ import annotations

import copy
import pickle
from typing import Any

import pytest

from lucid_orm import has_many, many_to_many
from lucid_orm.database import Database
from lucid_orm.orm import hydration
from lucid_orm.orm.relations.base import group_rows
from lucid_orm.orm.state import EXTRAS, EXTRAS_ROW, LazyExtras, extra_value, extras_of
from lucid_orm.relations import HasMany, ManyToMany
from tests.helpers import count_queries
from tests.models import Post, Skill, User

try:  # an optional extra: the minimum-versions run has no pydantic
    from pydantic import TypeAdapter
except ImportError:  # pragma: no cover
    TypeAdapter = None  # type: ignore[assignment,misc]


class MetaUser(User):
    serialize_extras = True
    posts: HasMany[Post] = has_many(lambda: Post, foreign_key="user_id")
    skills: ManyToMany[Skill] = many_to_many(
        lambda: Skill, pivot_table="skill_user", pivot_foreign_key="user_id"
    )


def form(instance: Any) -> type:
    return type(instance.__dict__[EXTRAS])


@pytest.fixture
async def seeded(database: Database) -> tuple[list[MetaUser], list[Skill]]:
    virk, nikk = await MetaUser.create_many(
        [{"username": "virk", "points": 1}, {"username": "nikk", "points": 2}]
    )
    await Post.create_many([{"user_id": virk.id, "title": t} for t in "ab"])
    php, go = await Skill.create_many([{"name": "php"}, {"name": "go"}])
    await database.table("skill_user").multi_insert(
        [
            {"user_id": virk.id, "skill_id": php.id, "proficiency": "high"},
            {"user_id": virk.id, "skill_id": go.id, "proficiency": "low"},
            {"user_id": nikk.id, "skill_id": go.id, "proficiency": None},
        ]
    )
    return [virk, nikk], [php, go]


class TestWhoAsked:
    async def test_the_users_extras_are_a_dict_the_relations_keys_the_lazy_pair(
        self, seeded: tuple[list[MetaUser], list[Skill]]
    ) -> None:
        (virk, _), (php, go) = seeded
        counted = await MetaUser.query().with_count("posts").order_by("id")
        best = (
            await MetaUser.query()
            .with_aggregate("posts", lambda q: q.max("title").as_("last_title"))
            .order_by("id")
        )
        aliased = await MetaUser.query().select("id", {"handle": "username"}).order_by("id")
        preloaded = await MetaUser.query().preload("skills").order_by("id")
        picked = (
            await MetaUser.query()
            .preload("skills", lambda q: q.pivot_columns(["proficiency"]))
            .order_by("id")
        )
        labelled = (
            await MetaUser.query()
            .preload("skills", lambda q: q.select("*", {"label": "name"}))
            .order_by("id")
        )
        related = await virk.related("skills").query().order_by("id")
        # The values, whatever the form.
        assert [u.extras for u in counted] == [{"posts_count": 2}, {"posts_count": 0}]
        assert [u.extras for u in best] == [{"last_title": "b"}, {"last_title": None}]
        assert [u.extras for u in aliased] == [{"handle": "virk"}, {"handle": "nikk"}]
        assert [s.extras["pivot_skill_id"] for s in preloaded[0].skills] == [php.id, go.id]
        assert [s.extras["pivot_proficiency"] for s in picked[0].skills] == ["high", "low"]
        assert [s.extras["label"] for s in labelled[0].skills] == ["php", "go"]
        assert labelled[0].skills[0].extras["pivot_user_id"] == virk.id
        assert [s.extras["pivot_user_id"] for s in related] == [virk.id, virk.id]
        if not hydration.FAST_PATHS:
            return  # the general loop: a dict each
        fresh = {
            "with_count": await MetaUser.query().with_count("posts"),
            "with_aggregate": await MetaUser.query().with_aggregate(
                "posts", lambda q: q.max("title").as_("last_title")
            ),
            "aliased": await MetaUser.query().select("id", {"handle": "username"}),
            "labelled": [
                s
                for u in await MetaUser.query().preload(
                    "skills", lambda q: q.select("*", {"label": "name"})
                )
                for s in u.skills
            ],
            "preload": [s for u in await MetaUser.query().preload("skills") for s in u.skills],
            "pivot_columns": [
                s
                for u in await MetaUser.query().preload(
                    "skills", lambda q: q.pivot_columns(["proficiency"])
                )
                for s in u.skills
            ],
            "related": await virk.related("skills").query(),
        }
        assert {k: {form(i) for i in v} for k, v in fresh.items()} == {
            "with_count": {dict},
            "with_aggregate": {dict},
            "aliased": {dict},
            "labelled": {dict},
            "preload": {LazyExtras},
            "pivot_columns": {LazyExtras},
            "related": {LazyExtras},
        }


KEYS = ["id", "username", "points", "country_id", "posts_count", "pivot_user_id"]
ROWS = [(1, "virk", 1, None, 2, 7), (2, "nikk", 2, 3, 0, 7), (3, "romain", None, 3, 5, 8)]


def hydrated(lazy: bool) -> list[MetaUser]:
    return hydration.hydrate(MetaUser, KEYS, ROWS, None, lazy_extras=lazy)


def uses(instances: list[MetaUser]) -> list[Any]:
    """Everything a user (or the preloader) reads of the extras, in an order that reads
    before and after a write."""
    out: list[Any] = []
    first = instances[0]
    out.append([extra_value(i.__dict__, "posts_count") for i in instances])
    out.append(
        {
            k: [i.id for i in v]
            for k, v in group_rows(instances, "pivot_user_id", extra=True).items()
        }
    )
    out.append([dict(extras_of(i)) for i in instances])
    out.append([i.to_dict() for i in instances])
    out.append([i.serialize() for i in instances])
    if TypeAdapter is not None:
        out.append([TypeAdapter(MetaUser).dump_python(i) for i in instances])
    out.append([(i.original, i.dirty, i.attributes, i.is_persisted) for i in instances])
    # Writes: into the kept dict, seen by every later read; the columns untouched.
    first.extras["note"] = "x"
    first.extras["posts_count"] = 9
    out.append(first.extras is first.extras)
    out.append([i.extras for i in instances])
    out.append([extra_value(i.__dict__, "posts_count") for i in instances])
    out.append([i.serialize()["meta"] for i in instances])
    first.points = 5
    out.append((first.dirty, first.original, first.extras))
    return out


class TestSameForUsers:
    def test_every_read_and_write_is_the_same_in_both_forms(self) -> None:
        lazy, eager = hydrated(True), hydrated(False)
        if hydration.FAST_PATHS:
            assert {form(i) for i in lazy} == {LazyExtras} and {form(i) for i in eager} == {dict}
        assert uses(lazy) == uses(eager)
        again = hydrated(False)
        assert again[0].serialize() == {
            "id": 1,
            "username": "virk",
            "points": 1,
            "country_id": None,
            "meta": {"posts_count": 2, "pivot_user_id": 7},
        }

    def test_the_lazy_form_is_one_object_per_shape_and_the_row(self) -> None:
        if not hydration.FAST_PATHS:
            return  # the general loop: a dict each
        lazy = hydrated(True)
        shared = lazy[0].__dict__[EXTRAS]
        # No object per instance: the shape's positions, shared, and the row itself.
        assert all(i.__dict__[EXTRAS] is shared for i in lazy)
        assert [i.__dict__[EXTRAS_ROW] for i in lazy] == ROWS
        assert shared.positions == {"posts_count": 4, "pivot_user_id": 5}
        # Read once, the extras become the instance's own dict and the row reference goes.
        assert lazy[1].extras == {"posts_count": 0, "pivot_user_id": 7}
        assert EXTRAS_ROW not in lazy[1].__dict__ and EXTRAS_ROW in lazy[0].__dict__
        assert type(lazy[1].__dict__[EXTRAS]) is dict

    async def test_a_saved_instance_keeps_its_extras_in_both_forms(
        self, seeded: tuple[list[MetaUser], list[Skill]]
    ) -> None:
        (virk, _), _ = seeded
        counted = await MetaUser.query().where("id", virk.id).with_count("posts").first_or_fail()
        (skilled,) = await MetaUser.query().where("id", virk.id).preload("skills")
        skill = skilled.skills[0]
        counted.points = 7
        skill.name = "PHP"
        await counted.save()
        await skill.save()
        assert counted.extras == {"posts_count": 2} and counted.dirty == {}
        assert skill.extras["pivot_user_id"] == virk.id and skill.dirty == {}
        assert (await MetaUser.find_or_fail(virk.id)).points == 7
        assert counted.serialize()["meta"] == {"posts_count": 2}

    async def test_fetched_instances_pickle_and_copy_in_both_forms(
        self, seeded: tuple[list[MetaUser], list[Skill]]
    ) -> None:
        # Hydration keeps the driver's rows for lazy reads (``original``, pivot keys); on
        # PostgreSQL those are asyncpg Records, which neither pickle nor copy.deepcopy take.
        users = await MetaUser.query().preload("skills").with_count("posts").order_by("id")

        def state(u: MetaUser) -> tuple[Any, ...]:
            skills = [(s.attributes, s.original, s.extras, s.is_persisted) for s in u.skills]
            return (u.attributes, u.original, u.extras, u.is_persisted, u.dirty, skills)

        expected = [
            state(u)
            for u in await MetaUser.query().preload("skills").with_count("posts").order_by("id")
        ]
        for copied in (pickle.loads(pickle.dumps(users)), copy.deepcopy(users)):
            assert [state(u) for u in copied] == expected
            skill = copied[0].skills[0]
            skill.name = "changed"
            assert skill.dirty == {"name": "changed"}
            with count_queries() as q:
                await skill.save()
            assert q.count == 1
            assert (await Skill.find_or_fail(skill.id)).name == "changed"
        # The instances copied from are as they were: their rows still lazy.
        assert [state(u) for u in users] == expected

    async def test_an_instance_bound_to_a_transaction_pickles_unbound_and_copies_bound(
        self, seeded: tuple[list[MetaUser], list[Skill]], database: Database
    ) -> None:
        async with database.transaction() as trx:
            user = await MetaUser.query(client=trx).order_by("id").first_or_fail()
            assert user.trx is trx
            unpickled = pickle.loads(pickle.dumps(user))
            deep, shallow = copy.deepcopy(user), copy.copy(user)
            assert unpickled.trx is None and deep.trx is trx and shallow.trx is trx
            assert unpickled.original == deep.original == shallow.original == user.original
            deep.points = 41
            await deep.save()  # through the transaction it is bound to
            assert (await MetaUser.find_or_fail(user.id, client=trx)).points == 41
        assert (await MetaUser.find_or_fail(user.id)).points == 41
