"""many_to_many in subqueries (SPEC §5): the has family, ``with_count``, ``with_aggregate``,
``load_count``, aggregates on the related query, self relations through a pivot, and
``on_query`` on subqueries. Ported from Lucid's ``model_many_to_many.spec.ts``."""

from __future__ import annotations

from typing import Any

import pytest

from lucid_orm import BaseModel, LucidError, column, db, many_to_many
from lucid_orm.database import Database
from lucid_orm.relations import ManyToMany
from tests import models
from tests.helpers import count_queries
from tests.models import Skill, Tag


class User(models.BaseUser):
    skills: ManyToMany[Skill] = many_to_many(lambda: Skill)
    friends: ManyToMany[User] = many_to_many(
        lambda: User, pivot_table="user_friends", pivot_related_foreign_key="friend_id"
    )


class Article(BaseModel):
    table = "posts"
    id: int = column(is_primary=True)
    title: str | None = column()
    tags: ManyToMany[Tag] = many_to_many(
        lambda: Tag, pivot_table="post_tags", pivot_foreign_key="post_id"
    )


async def link(user_id: int, skill_id: int, **values: Any) -> None:
    await db.table("skill_user").insert({"user_id": user_id, "skill_id": skill_id, **values})


async def befriend(user_id: int, friend_id: int, **values: Any) -> None:
    await db.table("user_friends").insert({"user_id": user_id, "friend_id": friend_id, **values})


def usernames(users: list[Any]) -> list[str | None]:
    return [u.username for u in users]


@pytest.fixture
async def seeded(database: Database) -> dict[str, Any]:
    """virk: Programming (Master), Dancing (Beginner); nikk: Dancing; romain: none.
    virk follows nikk and romain; romain follows virk."""
    virk, nikk, romain = await User.create_many(
        [{"username": "virk"}, {"username": "nikk"}, {"username": "romain"}]
    )
    programming, dancing, singing = await Skill.create_many(
        [{"name": "Programming"}, {"name": "Dancing"}, {"name": "Singing"}]
    )
    await link(virk.id, programming.id, proficiency="Master")
    await link(virk.id, dancing.id, proficiency="Beginner")
    await link(nikk.id, dancing.id)
    await befriend(virk.id, nikk.id)
    await befriend(virk.id, romain.id)
    await befriend(romain.id, virk.id)
    return {
        "users": {"virk": virk, "nikk": nikk, "romain": romain},
        "skills": {"Programming": programming, "Dancing": dancing, "Singing": singing},
    }


# ----------------------------------------------------------------------------------------------
class TestManyToManyHas:
    async def run(self, query: Any) -> list[str | None]:
        with count_queries() as q:
            users = await query.order_by("id")
        assert q.count == 1
        return usernames(users)

    async def test_has(self, seeded: dict[str, Any]) -> None:
        assert await self.run(User.query().has("skills")) == ["virk", "nikk"]
        assert await self.run(User.query().and_has("skills")) == ["virk", "nikk"]
        assert await self.run(User.query().doesnt_have("skills")) == ["romain"]
        assert await self.run(User.query().and_doesnt_have("skills")) == ["romain"]

    async def test_has_with_a_count(self, seeded: dict[str, Any]) -> None:
        assert await self.run(User.query().has("skills", ">", 1)) == ["virk"]
        assert await self.run(User.query().has("skills", "=", 1)) == ["nikk"]
        assert await self.run(User.query().has("skills", "<", 1)) == ["romain"]
        assert await self.run(User.query().doesnt_have("skills", ">", 1)) == ["nikk", "romain"]

    async def test_or_forms(self, seeded: dict[str, Any]) -> None:
        query = User.query().where("username", "romain").or_has("skills", ">=", 2)
        assert await self.run(query) == ["virk", "romain"]
        query = User.query().where("username", "virk").or_doesnt_have("skills")
        assert await self.run(query) == ["virk", "romain"]
        query = (
            User.query()
            .where("username", "romain")
            .or_where_has("skills", lambda q: q.where("name", "Dancing"))
        )
        assert await self.run(query) == ["virk", "nikk", "romain"]
        query = (
            User.query()
            .where("username", "nikk")
            .or_where_doesnt_have("skills", lambda q: q.where("name", "Dancing"))
        )
        assert await self.run(query) == ["nikk", "romain"]

    async def test_where_has(self, seeded: dict[str, Any]) -> None:
        query = User.query().where_has("skills", lambda q: q.where("name", "Programming"))
        assert await self.run(query) == ["virk"]
        query = User.query().and_where_has("skills", lambda q: q.where("name", "Dancing"))
        assert await self.run(query) == ["virk", "nikk"]
        query = User.query().where_doesnt_have("skills", lambda q: q.where("name", "Programming"))
        assert await self.run(query) == ["nikk", "romain"]
        query = User.query().and_where_doesnt_have("skills", lambda q: q.where("name", "Dancing"))
        assert await self.run(query) == ["romain"]

    async def test_where_has_with_a_count(self, seeded: dict[str, Any]) -> None:
        query = User.query().where_has("skills", lambda q: q.where("name", "!=", "x"), ">", 1)
        assert await self.run(query) == ["virk"]
        query = User.query().where_has("skills", lambda q: q.where("name", "Dancing"), "=", 1)
        assert await self.run(query) == ["virk", "nikk"]

    async def test_unqualified_columns_refer_to_the_related_table(
        self, seeded: dict[str, Any]
    ) -> None:
        # skill_user has an ``id`` too: ``id`` means skills.id, never ambiguous.
        programming = seeded["skills"]["Programming"]
        query = User.query().where_has("skills", lambda q: q.where("id", programming.id))
        assert await self.run(query) == ["virk"]
        query = User.query().where_has(
            "skills", lambda q: q.where_in("id", [programming.id]).order_by("id")
        )
        assert await self.run(query) == ["virk"]

    async def test_where_pivot_in_the_callback(self, seeded: dict[str, Any]) -> None:
        query = User.query().where_has("skills", lambda q: q.where_pivot("proficiency", "Master"))
        assert await self.run(query) == ["virk"]
        query = User.query().where_has("skills", lambda q: q.where_null_pivot("proficiency"))
        assert await self.run(query) == ["nikk"]
        query = User.query().where_doesnt_have(
            "skills", lambda q: q.where_in_pivot("proficiency", ["Master", "Beginner"])
        )
        assert await self.run(query) == ["nikk", "romain"]

    async def test_self_relation(self, seeded: dict[str, Any]) -> None:
        assert await self.run(User.query().has("friends")) == ["virk", "romain"]
        assert await self.run(User.query().has("friends", ">", 1)) == ["virk"]
        assert await self.run(User.query().doesnt_have("friends")) == ["nikk"]
        # ``username`` in the callback is the friend's (the aliased related table).
        query = User.query().where_has("friends", lambda q: q.where("username", "virk"))
        assert await self.run(query) == ["romain"]
        query = User.query().where_has("friends", lambda q: q.where("users.username", "virk"))
        assert await self.run(query) == ["virk"]

    async def test_self_relation_with_where_pivot(self, seeded: dict[str, Any]) -> None:
        users = seeded["users"]
        query = User.query().where_has(
            "friends", lambda q: q.where_pivot("friend_id", users["nikk"].id)
        )
        assert await self.run(query) == ["virk"]
        query = User.query().where_has("friends", lambda q: q.where_null_pivot("created_at"))
        assert await self.run(query) == ["virk", "romain"]

    async def test_nested_has(self, seeded: dict[str, Any]) -> None:
        # Users with a friend who has the "Dancing" skill.
        query = User.query().where_has(
            "friends",
            lambda f: f.where_has("skills", lambda s: s.where("name", "Dancing")),
        )
        assert await self.run(query) == ["virk", "romain"]
        query = User.query().where_has("friends", lambda f: f.has("skills", ">", 1))
        assert await self.run(query) == ["romain"]

    async def test_pivot_without_id_column(self, database: Database) -> None:
        tagged, bare = await Article.create_many([{"title": "tagged"}, {"title": "bare"}])
        (tag,) = await Tag.create_many([{"name": "orm"}])
        await tagged.related("tags").attach([tag.id])
        assert [a.id for a in await Article.query().has("tags")] == [tagged.id]
        assert [a.id for a in await Article.query().doesnt_have("tags")] == [bare.id]

    async def test_subquery_cannot_be_executed(self, seeded: dict[str, Any]) -> None:
        captured: list[Any] = []
        User.query().where_has("skills", captured.append)
        with pytest.raises(LucidError) as exc:
            await captured[0]
        assert exc.value.code == "E_RUNTIME_EXCEPTION"
        assert str(exc.value) == "Cannot execute relationship subqueries"

    async def test_undefined_relation(self, database: Database) -> None:
        with pytest.raises(LucidError) as exc:
            User.query().has("skill")
        assert exc.value.code == "E_UNDEFINED_RELATIONSHIP"
        assert str(exc.value) == '"skill" is not defined as a relationship on "User" model'


# ----------------------------------------------------------------------------------------------
class TestManyToManyWithCount:
    async def counts(self, query: Any, key: str = "skills_count") -> list[Any]:
        with count_queries() as q:
            users = await query.order_by("id")
        assert q.count == 1
        return [u.extras[key] for u in users]

    async def test_with_count(self, seeded: dict[str, Any]) -> None:
        counts = await self.counts(User.query().with_count("skills"))
        assert counts == [2, 1, 0]
        assert all(type(c) is int for c in counts)

    async def test_with_count_constraints(self, seeded: dict[str, Any]) -> None:
        query = User.query().with_count("skills", lambda q: q.where("name", "Programming"))
        assert await self.counts(query) == [1, 0, 0]
        query = User.query().with_count("skills", lambda q: q.where_pivot("proficiency", "Master"))
        assert await self.counts(query) == [1, 0, 0]
        query = User.query().with_count("skills", lambda q: q.where_not_null_pivot("proficiency"))
        assert await self.counts(query) == [2, 0, 0]

    async def test_custom_alias(self, seeded: dict[str, Any]) -> None:
        query = (
            User.query()
            .select("username")
            .with_count("skills", lambda q: q.as_("my_skills"))
            .with_count("skills", lambda q: q.where("name", "Dancing").as_("dancing"))
        )
        with count_queries() as q:
            users = await query.order_by("id")
        assert q.count == 1
        assert [(u.extras["my_skills"], u.extras["dancing"]) for u in users] == [
            (2, 1),
            (1, 1),
            (0, 0),
        ]
        assert users[0].attributes == {"username": "virk"}

    async def test_custom_aggregates(self, seeded: dict[str, Any]) -> None:
        query = User.query().with_count(
            "skills", lambda q: q.count_distinct("skill_user.proficiency").as_("levels")
        )
        assert await self.counts(query, "levels") == [2, 0, 0]
        query = User.query().with_aggregate("skills", lambda q: q.max("name").as_("top_skill"))
        assert await self.counts(query, "top_skill") == ["Programming", "Dancing", None]

    async def test_with_aggregate_needs_an_alias(self, seeded: dict[str, Any]) -> None:
        with pytest.raises(LucidError) as exc:
            User.query().with_aggregate("skills", lambda q: q.max("name"))
        assert exc.value.code == "E_RUNTIME_EXCEPTION"
        assert str(exc.value) == (
            '"with_aggregate" callback must define the alias for the aggregate query'
        )

    async def test_self_relation_count(self, seeded: dict[str, Any]) -> None:
        assert await self.counts(User.query().with_count("friends"), "friends_count") == [2, 0, 1]

    async def test_count_on_a_related_query(self, seeded: dict[str, Any]) -> None:
        # virk's friends (nikk, romain) with their own skill counts.
        virk = seeded["users"]["virk"]
        query = virk.related("friends").query().with_count("skills").order_by("id")
        with count_queries() as q:
            friends = await query
        assert q.count == 1
        assert [(f.username, f.extras["skills_count"]) for f in friends] == [
            ("nikk", 1),
            ("romain", 0),
        ]
        assert friends[0].extras["pivot_user_id"] == virk.id

    async def test_count_in_a_preload(self, seeded: dict[str, Any]) -> None:
        with count_queries() as q:
            users = (
                await User.query()
                .preload("friends", lambda f: f.with_count("skills").order_by("id"))
                .order_by("id")
            )
        assert q.count == 2
        assert [[(f.username, f.extras["skills_count"]) for f in u.friends] for u in users] == [
            [("nikk", 1), ("romain", 0)],
            [],
            [("virk", 2)],
        ]

    async def test_load_count(self, seeded: dict[str, Any]) -> None:
        virk = seeded["users"]["virk"]
        with count_queries() as q:
            await virk.load_count("skills")
        assert q.count == 1
        assert virk.extras["skills_count"] == 2
        await virk.load_count("skills", lambda q: q.where("name", "Programming").as_("coding"))
        assert virk.extras["coding"] == 1
        await virk.load_aggregate("skills", lambda q: q.min("name").as_("first_skill"))
        assert virk.extras["first_skill"] == "Dancing"

    async def test_aggregates_on_the_related_query(self, seeded: dict[str, Any]) -> None:
        virk = seeded["users"]["virk"]
        rows = await virk.related("skills").query().count("* as total")
        assert [r.extras["total"] for r in rows] == [2]

        rows = await (
            virk.related("skills")
            .query()
            .select("name", "id")
            .group_by("skills.name", "skills.id")
            .count("* as total")
            .order_by("skills.id", "desc")
        )
        assert [(r.name, r.extras["total"]) for r in rows] == [("Dancing", 1), ("Programming", 1)]

        rows = await (
            virk.related("skills")
            .query()
            .pivot_columns(["proficiency"])
            .select("id")
            .group_by("skill_user.proficiency", "skills.id")
            .count("* as total")
            .order_by("skills.id", "desc")
        )
        assert [(r.extras["pivot_proficiency"], r.extras["total"]) for r in rows] == [
            ("Beginner", 1),
            ("Master", 1),
        ]


# ----------------------------------------------------------------------------------------------
class TestManyToManySubQueries:
    async def test_on_query_runs_on_subqueries(self, seeded: dict[str, Any]) -> None:
        flags: list[tuple[bool, bool, bool]] = []

        def hook(query: Any) -> None:
            flags.append(
                (
                    query.is_related_sub_query,
                    query.is_related_preload_query,
                    query.is_pivot_only_query,
                )
            )
            query.where("name", "Programming")

        class Member(BaseModel):
            table = "users"
            id: int = column(is_primary=True)
            username: str | None = column()
            skills: ManyToMany[Skill] = many_to_many(
                lambda: Skill, pivot_table="skill_user", pivot_foreign_key="user_id", on_query=hook
            )

        members = await Member.query().has("skills").order_by("id")
        assert usernames(members) == ["virk"]
        members = await Member.query().with_count("skills").order_by("id")
        assert [m.extras["skills_count"] for m in members] == [1, 0, 0]
        members = await Member.query().where_has("skills", lambda q: q.where("id", ">", 0))
        assert usernames(members) == ["virk"]
        assert flags == [(True, False, False)] * 3

    async def test_sub_query_as_a_selected_value(self, seeded: dict[str, Any]) -> None:
        rel = User.get_relation("skills")
        level = rel.sub_query(db.connection()).pivot_columns(["proficiency"])
        level.where("name", "Programming").as_("coding_level")
        name = rel.sub_query(db.connection()).select("name").where_pivot("proficiency", "Master")
        users = await User.query().select("username", level, name.as_("master_of")).order_by("id")
        assert [(u.extras["coding_level"], u.extras["master_of"]) for u in users] == [
            ("Master", "Programming"),
            (None, None),
            (None, None),
        ]
