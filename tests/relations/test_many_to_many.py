"""many_to_many, read side (SPEC §5, §8): options and boot, set/push related, preload, the
related query (pivot extras, update/delete of pivot rows), ``pivot_query()``, the where_pivot
family, group limits and ``on_query``. Ported from Lucid's ``model_many_to_many.spec.ts``; the
writes live in ``test_many_to_many_writes.py`` and the has family / aggregates in
``test_many_to_many_has.py``."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from typing import Any

import pytest

from lucid_orm import (
    BaseModel,
    LucidError,
    RelationNotLoadedError,
    column,
    db,
    has_many,
    many_to_many,
    scope,
)
from lucid_orm.database import Database
from lucid_orm.orm.relations import base as relations_base
from lucid_orm.relations import HasMany, ManyToMany
from tests import models
from tests.helpers import count_queries
from tests.models import Player, Tag, create_many


class Skill(models.Skill):
    @scope
    def named(query: Any, name: str) -> None:
        query.where("name", name)


class User(models.BaseUser):
    skills: ManyToMany[Skill] = many_to_many(lambda: Skill)


class ProUser(models.BaseUser):
    """``users`` again, with pivot columns and timestamps (and so custom pivot names)."""

    table = "users"
    skills: ManyToMany[Skill] = many_to_many(
        lambda: Skill,
        pivot_table="skill_user",
        pivot_foreign_key="user_id",
        pivot_columns=["proficiency"],
        pivot_timestamps=True,
    )


class Team(BaseModel):
    """Every key customised; the pivot has no id column and one custom timestamp."""

    table = "m2m_teams"
    id: int = column(is_primary=True)
    code: int | None = column()
    name: str | None = column()
    players: ManyToMany[Player] = many_to_many(
        lambda: Player,
        pivot_table="m2m_team_players",
        local_key="code",
        pivot_foreign_key="team_code",
        related_key="uid",
        pivot_related_foreign_key="player_uid",
        pivot_columns=["role"],
        pivot_timestamps={"created_at": "joined_at", "updated_at": False},
    )


class Author(models.BaseUser):
    """``users`` with posts, whose tags are a many_to_many over ``post_tags`` (no id column)."""

    table = "users"
    posts: HasMany[Article] = has_many(lambda: Article, foreign_key="user_id")


class Article(models.Post):
    table = "posts"
    tags: ManyToMany[Tag] = many_to_many(
        lambda: Tag,
        pivot_table="post_tags",
        pivot_foreign_key="post_id",
        pivot_timestamps={"created_at": "created_at", "updated_at": False},
    )


make_users = partial(create_many, User, "username")
make_skills = partial(create_many, Skill, "name")


async def link(user_id: int, skill_id: int, **values: Any) -> None:
    """One ``skill_user`` row, written with the database query builder."""
    await db.table("skill_user").insert({"user_id": user_id, "skill_id": skill_id, **values})


def now_utc() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def names(models: list[Any]) -> list[str | None]:
    return [m.name for m in models]


# ----------------------------------------------------------------------------------------------
class TestManyToManyBoot:
    def test_default_keys_and_pivot_table(self) -> None:
        rel = User.get_relation("skills")
        rel.boot()
        assert isinstance(rel, ManyToMany)
        assert User.skills is rel
        assert rel.type == "manyToMany"
        assert rel.booted
        assert rel.relation_name == "skills"
        assert rel.serialize_as == "skills"
        assert rel.model is User
        assert rel.related_model() is Skill
        assert rel.pivot_table == "skill_user"
        assert (rel.local_key, rel.local_key_column_name) == ("id", "id")
        assert (rel.related_key, rel.related_key_column_name) == ("id", "id")
        assert rel.pivot_foreign_key == rel.pivot_foreign_key_column_name == "user_id"
        assert rel.pivot_related_foreign_key == "skill_id"
        assert rel.pivot_related_foreign_key_column_name == "skill_id"
        assert rel.pivot_columns == []
        assert rel.pivot_timestamps == []

    def test_custom_keys_pivot_columns_and_timestamps(self) -> None:
        rel = Team.get_relation("players")
        rel.boot()
        assert rel.pivot_table == "m2m_team_players"
        assert (rel.local_key, rel.related_key) == ("code", "uid")
        assert rel.pivot_foreign_key == "team_code"
        assert rel.pivot_related_foreign_key == "player_uid"
        assert rel.pivot_columns == ["role"]
        assert rel.pivot_timestamps == ["joined_at"]
        assert (rel.pivot_created_at, rel.pivot_updated_at) == ("joined_at", None)

        pro = ProUser.get_relation("skills")
        pro.boot()
        assert pro.pivot_timestamps == ["created_at", "updated_at"]
        assert pro.pivot_columns == ["proficiency"]

    async def test_missing_local_key_raises_on_first_use(self, database: Database) -> None:
        class Broken(BaseModel):
            table = "users"
            id: int = column(is_primary=True)
            skills: ManyToMany[Skill] = many_to_many(lambda: Skill, local_key="uid")

        with pytest.raises(LucidError) as exc:
            Broken.query().preload("skills")
        assert exc.value.code == "E_MISSING_MODEL_ATTRIBUTE"
        assert str(exc.value) == (
            '"Broken.skills" expects "uid" to exist on "Broken" model, but is missing'
        )

    def test_missing_related_key_raises_at_boot(self) -> None:
        class Broken(BaseModel):
            table = "users"
            id: int = column(is_primary=True)
            skills: ManyToMany[Skill] = many_to_many(lambda: Skill, related_key="uid")

        with pytest.raises(LucidError) as exc:
            Broken.get_relation("skills").boot()
        assert exc.value.code == "E_MISSING_MODEL_ATTRIBUTE"
        assert str(exc.value) == (
            '"Broken.skills" expects "uid" to exist on "Skill" model, but is missing'
        )

    def test_default_pivot_names_follow_the_models(self) -> None:
        class Wizard(BaseModel):
            id: int = column(is_primary=True)
            spells: ManyToMany[Spell] = many_to_many(lambda: Spell)

        class Spell(BaseModel):
            id: int = column(is_primary=True)

        rel = Wizard.get_relation("spells")
        rel.boot()
        # The two singular model names, sorted, joined by "_".
        assert rel.pivot_table == "spell_wizard"
        assert (rel.pivot_foreign_key, rel.pivot_related_foreign_key) == ("wizard_id", "spell_id")

    def test_relation_is_cloned_with_its_options_for_a_subclass(self) -> None:
        class SubUser(ProUser):
            table = "users"

        parent_rel = ProUser.get_relation("skills")
        rel = SubUser.get_relation("skills")
        assert rel is not parent_rel
        assert rel.model is SubUser
        assert parent_rel.model is ProUser
        rel.boot()
        assert rel.pivot_table == "skill_user"
        assert rel.pivot_foreign_key == "user_id"
        assert rel.pivot_columns == ["proficiency"]
        assert rel.pivot_timestamps == ["created_at", "updated_at"]

    def test_pivot_timestamps_option_forms(self) -> None:
        def stamps(option: Any) -> list[str]:
            class Owner(BaseModel):
                table = "users"
                id: int = column(is_primary=True)
                skills: ManyToMany[Skill] = many_to_many(lambda: Skill, pivot_timestamps=option)

            rel = Owner.get_relation("skills")
            rel.boot()
            return rel.pivot_timestamps  # type: ignore[no-any-return]

        assert stamps(False) == []
        assert stamps(True) == ["created_at", "updated_at"]
        assert stamps({"created_at": True}) == ["created_at"]
        assert stamps({"created_at": False, "updated_at": True}) == ["updated_at"]
        assert stamps({"created_at": "made_on", "updated_at": "changed_on"}) == [
            "made_on",
            "changed_on",
        ]
        for bad in ({"createdAt": True}, "yes", {"created_at": "bad name"}):
            with pytest.raises(LucidError) as exc:
                many_to_many(lambda: Skill, pivot_timestamps=bad)  # type: ignore[arg-type]
            assert exc.value.code in ("E_INVALID_ARGUMENT", "E_INVALID_IDENTIFIER")

    def test_invalid_pivot_column_name_is_rejected(self) -> None:
        with pytest.raises(LucidError) as exc:
            many_to_many(lambda: Skill, pivot_columns=["proficiency; drop table users"])
        assert exc.value.code == "E_INVALID_IDENTIFIER"

    def test_descriptor_never_queries(self) -> None:
        user = User(username="virk")
        with pytest.raises(RelationNotLoadedError) as exc:
            _ = user.skills
        assert isinstance(exc.value, AttributeError)
        assert exc.value.code == "E_RELATION_NOT_LOADED"
        assert str(exc.value) == (
            'Relation "skills" of "User" is not loaded: use preload("skills") or '
            'await user.load("skills")'
        )


# ----------------------------------------------------------------------------------------------
class TestManyToManySetRelations:
    def test_set_related(self) -> None:
        user, skill = User(username="virk"), Skill(name="Programming")
        User.get_relation("skills").set_related(user, [skill])
        assert user.skills == [skill]
        user.skills = []
        assert user.skills == []

    def test_push_related(self) -> None:
        user = User(username="virk")
        a, b, c = Skill(name="a"), Skill(name="b"), Skill(name="c")
        rel = User.get_relation("skills")
        rel.set_related(user, [a])
        rel.push_related(user, b)
        rel.push_related(user, [c])
        assert user.skills == [a, b, c]

    def test_set_related_for_many_matches_on_the_pivot_key(self) -> None:
        users = [User(id=1, username="virk"), User(id=2, username="nikk"), User(id=3)]
        rows = []
        for user_id, skill_id in [(1, 10), (2, 10), (1, 11)]:
            skill = Skill(id=skill_id)
            skill.extras.update({"pivot_user_id": user_id, "pivot_skill_id": skill_id})
            rows.append(skill)
        User.get_relation("skills").set_related_for_many(users, rows)
        assert [s.id for s in users[0].skills] == [10, 11]
        assert [s.id for s in users[1].skills] == [10]
        assert users[2].skills == []

    def test_set_related_rejects_bad_values(self) -> None:
        user = User(username="virk")
        rel = User.get_relation("skills")
        with pytest.raises(LucidError) as exc:
            rel.set_related(user, Skill(name="a"))
        assert exc.value.code == "E_RUNTIME_EXCEPTION"
        assert (
            str(exc.value) == '"User.skills" must be a list when setting "manyToMany" relationship'
        )
        with pytest.raises(LucidError) as exc:
            rel.set_related(user, [User()])
        assert exc.value.code == "E_INVALID_ARGUMENT"


# ----------------------------------------------------------------------------------------------
class TestManyToManyPreload:
    async def test_preload_relation(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        programming, _dancing = await make_skills("Programming", "Dancing")
        await link(virk.id, programming.id)

        with count_queries() as q:
            users = await User.query().preload("skills")
        assert q.count == 2
        assert len(users) == 1
        assert names(users[0].skills) == ["Programming"]
        skill = users[0].skills[0]
        assert isinstance(skill, Skill)
        assert skill.id == programming.id
        assert skill.extras == {"pivot_user_id": virk.id, "pivot_skill_id": programming.id}
        assert skill.attributes == {"id": programming.id, "name": "Programming"}

    async def test_preload_relation_for_many_parents_in_one_query(self, database: Database) -> None:
        virk, nikk, _romain = await make_users("virk", "nikk", "romain")
        programming, dancing, singing = await make_skills("Programming", "Dancing", "Singing")
        await link(virk.id, programming.id)
        await link(virk.id, dancing.id)
        await link(nikk.id, dancing.id)
        await link(nikk.id, singing.id)

        with count_queries() as q:
            users = await User.query().preload("skills", lambda s: s.order_by("id")).order_by("id")
        assert q.count == 2
        assert [u.username for u in users] == ["virk", "nikk", "romain"]
        assert names(users[0].skills) == ["Programming", "Dancing"]
        assert names(users[1].skills) == ["Dancing", "Singing"]
        assert users[2].skills == []
        # The same related row appears once per parent, each with its own pivot values.
        assert users[0].skills[1] is not users[1].skills[0]
        assert users[0].skills[1].extras["pivot_user_id"] == virk.id
        assert users[1].skills[0].extras["pivot_user_id"] == nikk.id

    async def test_pivot_timestamps_and_columns_are_selected(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        (programming,) = await make_skills("Programming")
        stamp = datetime(2024, 5, 6, 7, 8, 9, 123456)
        await link(
            virk.id, programming.id, proficiency="Master", created_at=stamp, updated_at=stamp
        )

        users = await ProUser.query().preload("skills")
        skill = users[0].skills[0]
        assert skill.extras == {
            "pivot_user_id": virk.id,
            "pivot_skill_id": programming.id,
            "pivot_proficiency": "Master",
            "pivot_created_at": stamp.replace(tzinfo=UTC),
            "pivot_updated_at": stamp.replace(tzinfo=UTC),
        }
        assert isinstance(skill.extras["pivot_created_at"], datetime)

    async def test_select_extra_pivot_columns_at_runtime(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        (programming,) = await make_skills("Programming")
        await link(virk.id, programming.id, proficiency="Beginner")

        users = await User.query().preload(
            "skills", lambda q: q.pivot_columns(["proficiency", "id"])
        )
        extras = users[0].skills[0].extras
        assert extras["pivot_proficiency"] == "Beginner"
        assert extras["pivot_user_id"] == virk.id
        assert isinstance(extras["pivot_id"], int)
        # The related row's own id is not overwritten by the pivot id.
        assert users[0].skills[0].id == programming.id

    async def test_preload_using_model_instance(self, database: Database) -> None:
        virk, nikk = await make_users("virk", "nikk")
        programming, dancing = await make_skills("Programming", "Dancing")
        await link(virk.id, programming.id)
        await link(nikk.id, dancing.id)

        user = await ProUser.find_or_fail(virk.id)
        with count_queries() as q:
            await user.load("skills")
        assert q.count == 1
        assert names(user.skills) == ["Programming"]
        assert user.skills[0].extras["pivot_created_at"] is None

        with count_queries() as q:
            await user.load_once("skills")
        assert q.count == 0

    async def test_cherry_pick_columns_during_preload(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        (programming,) = await make_skills("Programming")
        await link(virk.id, programming.id)

        users = await User.query().preload("skills", lambda q: q.select("name"))
        skill = users[0].skills[0]
        assert skill.attributes == {"name": "Programming"}
        # The pivot keys are always there: the preloader matches on them.
        assert skill.extras == {"pivot_user_id": virk.id, "pivot_skill_id": programming.id}

    async def test_unqualified_columns_refer_to_the_related_table(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        programming, dancing = await make_skills("Programming", "Dancing")
        await link(virk.id, programming.id)
        await link(virk.id, dancing.id)

        # skill_user has an ``id`` too: ``id`` must mean skills.id (no ambiguity error).
        users = await User.query().preload(
            "skills", lambda q: q.where("id", dancing.id).order_by("id", "desc")
        )
        assert names(users[0].skills) == ["Dancing"]
        users = await User.query().preload(
            "skills", lambda q: q.select("id", "name").order_by("id", "desc")
        )
        assert names(users[0].skills) == ["Dancing", "Programming"]

    async def test_where_pivot_in_preload_callback(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        programming, dancing = await make_skills("Programming", "Dancing")
        await link(virk.id, programming.id, proficiency="Master")
        await link(virk.id, dancing.id, proficiency="Beginner")

        users = await User.query().preload(
            "skills", lambda q: q.where_pivot("proficiency", "Master")
        )
        assert names(users[0].skills) == ["Programming"]

    async def test_raise_error_when_local_key_is_not_selected(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        (programming,) = await make_skills("Programming")
        await link(virk.id, programming.id)

        with pytest.raises(LucidError) as exc:
            await User.query().select("username").preload("skills")
        assert exc.value.code == "E_MISSING_MODEL_ATTRIBUTE"
        assert str(exc.value) == 'Cannot preload "skills", value of "User.id" is undefined'

    async def test_null_local_key_gives_an_empty_list(self, database: Database) -> None:
        team = await Team.create({"code": None, "name": "no code"})
        with count_queries() as q:
            teams = await Team.query().preload("players")
        assert [t.id for t in teams] == [team.id]
        assert teams[0].players == []
        # No key to look for: the preload query does not run.
        assert q.count == 1

    async def test_do_not_run_preload_query_when_parent_rows_are_empty(
        self, database: Database
    ) -> None:
        with count_queries() as q:
            users = await User.query().preload("skills")
        assert users == []
        assert q.count == 1

    async def test_custom_keys_and_timestamp_names(self, database: Database) -> None:
        team = await Team.create({"code": 700, "name": "Reds"})
        other = await Team.create({"code": 800, "name": "Blues"})
        alice = await Player.create({"uid": 9001, "name": "alice"})
        bob = await Player.create({"uid": 9002, "name": "bob"})
        joined = datetime(2023, 1, 2, 3, 4, 5)
        await database.table("m2m_team_players").multi_insert(
            [
                {"team_code": 700, "player_uid": 9001, "role": "captain", "joined_at": joined},
                {"team_code": 800, "player_uid": 9002, "role": "keeper", "joined_at": joined},
            ]
        )
        teams = await Team.query().preload("players").order_by("id")
        assert [t.id for t in teams] == [team.id, other.id]
        assert [p.id for p in teams[0].players] == [alice.id]
        assert [p.id for p in teams[1].players] == [bob.id]
        assert teams[0].players[0].extras == {
            "pivot_team_code": 700,
            "pivot_player_uid": 9001,
            "pivot_role": "captain",
            "pivot_joined_at": joined.replace(tzinfo=UTC),
        }

    async def test_nested_preload_and_pivot_without_id_column(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        first = await Article.create({"user_id": virk.id, "title": "first"})
        second = await Article.create({"user_id": virk.id, "title": "second"})
        orm, sql = await Tag.create_many([{"name": "orm"}, {"name": "sql"}])
        await database.table("post_tags").multi_insert(
            [
                {"post_id": first.id, "tag_id": orm.id},
                {"post_id": first.id, "tag_id": sql.id},
                {"post_id": second.id, "tag_id": sql.id},
            ]
        )
        for path in ("posts.tags", None):
            with count_queries() as q:
                if path:
                    authors = await Author.query().preload(path)
                else:
                    authors = await Author.query().preload(
                        "posts", lambda p: p.preload("tags", lambda t: t.order_by("id"))
                    )
            assert q.count == 3
            posts = sorted(authors[0].posts, key=lambda p: p.id)
            assert [sorted(names(p.tags)) for p in posts] == [["orm", "sql"], ["sql"]]
            assert posts[1].tags[0].extras == {
                "pivot_post_id": second.id,
                "pivot_tag_id": sql.id,
                "pivot_created_at": None,
            }

    async def test_paginate_during_preload_raises(self, database: Database) -> None:
        (_virk,) = await make_users("virk")
        with pytest.raises(LucidError) as exc:
            await User.query().preload("skills", lambda q: q.paginate(1, 5))
        assert exc.value.code == "E_RUNTIME_EXCEPTION"
        assert str(exc.value) == 'Cannot paginate relationship "skills" during preload'

    async def test_parent_keys_are_chunked(
        self, database: Database, dialect: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        users = await make_users("a", "b", "c", "d", "e")
        skills = await make_skills("s1", "s2")
        for i, user in enumerate(users):
            await link(user.id, skills[i % 2].id)
        monkeypatch.setattr(relations_base, "PRELOAD_CHUNK", 2)
        monkeypatch.setattr(relations_base._chunks, "__defaults__", (2,))
        with count_queries() as q:
            loaded = await User.query().preload("skills").order_by("id")
        # PostgreSQL (an array) and SQLite (JSON) send the keys as one parameter.
        assert q.count == (1 + 3 if dialect == "mysql" else 1 + 1)
        assert [names(u.skills) for u in loaded] == [["s1"], ["s2"], ["s1"], ["s2"], ["s1"]]


# ----------------------------------------------------------------------------------------------
class TestManyToManyQueryBuilder:
    async def test_related_query_returns_this_parents_rows(self, database: Database) -> None:
        virk, nikk = await make_users("virk", "nikk")
        programming, dancing = await make_skills("Programming", "Dancing")
        await link(virk.id, programming.id)
        await link(nikk.id, dancing.id)

        with count_queries() as q:
            skills = await virk.related("skills").query()
        assert q.count == 1
        assert names(skills) == ["Programming"]
        assert skills[0].extras == {"pivot_user_id": virk.id, "pivot_skill_id": programming.id}

    async def test_picked_columns_are_all_it_selects(self, database: Database) -> None:
        virk, nikk = await make_users("virk", "nikk")
        programming, dancing, singing = await make_skills("Programming", "Dancing", "Singing")
        await link(virk.id, programming.id)
        await link(virk.id, singing.id)
        await link(nikk.id, dancing.id)

        picked = await virk.related("skills").query().select("id").order_by("id")
        assert [(s.id, s.name, s.extras) for s in picked] == [
            (programming.id, None, {}),
            (singing.id, None, {}),
        ]
        # ... so it works as a where_in subquery (one column).
        with count_queries() as q:
            skills = await Skill.query().where_in("id", virk.related("skills").query().select("id"))
        assert q.count == 1
        assert sorted(names(skills)) == ["Programming", "Singing"]
        # "*" picks every column: the pivot keys come along, as without select().
        starred = await virk.related("skills").query().select("*").order_by("id")
        assert starred[0].extras == {"pivot_user_id": virk.id, "pivot_skill_id": programming.id}
        # Pivot columns still come when asked for.
        asked = await virk.related("skills").query().select("name").pivot_columns(["user_id"])
        assert sorted((s.name, s.extras["pivot_user_id"]) for s in asked) == [
            ("Programming", virk.id),
            ("Singing", virk.id),
        ]

    async def test_or_where_cannot_escape_the_parent(self, database: Database) -> None:
        virk, nikk = await make_users("virk", "nikk")
        programming, dancing = await make_skills("Programming", "Dancing")
        await link(virk.id, programming.id)
        await link(nikk.id, dancing.id)

        skills = await virk.related("skills").query().where("name", "x").or_where("name", "Dancing")
        assert skills == []

    async def test_pivot_columns_and_timestamps_as_datetime(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        (programming,) = await make_skills("Programming")
        await link(
            virk.id,
            programming.id,
            proficiency="Master",
            created_at=now_utc(),
            updated_at=now_utc(),
        )
        user = await ProUser.find_or_fail(virk.id)
        skills = await user.related("skills").query()
        extras = skills[0].extras
        assert extras["pivot_proficiency"] == "Master"
        for key in ("pivot_created_at", "pivot_updated_at"):
            assert isinstance(extras[key], datetime)
            assert extras[key].tzinfo is not None

        runtime = await virk.related("skills").query().pivot_columns(["proficiency"])
        assert runtime[0].extras["pivot_proficiency"] == "Master"

    async def test_first_count_and_paginate(self, database: Database) -> None:
        virk, nikk = await make_users("virk", "nikk")
        skills = await make_skills("a", "b", "c")
        for skill in skills:
            await link(virk.id, skill.id)
        await link(nikk.id, skills[0].id)

        first = await virk.related("skills").query().order_by("id", "desc").first()
        assert first is not None and first.name == "c"
        assert await virk.related("skills").query().count_rows() == 3
        assert await nikk.related("skills").query().count_rows() == 1

        page = await virk.related("skills").query().order_by("id").paginate(1, 2)
        assert page.total == 3
        assert names(list(page)) == ["a", "b"]
        assert page.last_page == 2
        assert page.all()[0].extras["pivot_user_id"] == virk.id

    async def test_clone_related_query(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        programming, dancing = await make_skills("Programming", "Dancing")
        await link(virk.id, programming.id)
        await link(virk.id, dancing.id)

        query = virk.related("skills").query().where("name", "Programming")
        cloned = query.clone().or_where("name", "Dancing")
        assert names(await query) == ["Programming"]
        assert sorted(names(await cloned)) == ["Dancing", "Programming"]

    async def test_scopes_on_related_and_preload_queries(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        programming, dancing = await make_skills("Programming", "Dancing")
        await link(virk.id, programming.id)
        await link(virk.id, dancing.id)

        related = await virk.related("skills").query().with_scopes(lambda s: s.named("Dancing"))
        assert names(related) == ["Dancing"]
        users = await User.query().preload(
            "skills", lambda q: q.with_scopes(lambda s: s.named("Programming"))
        )
        assert names(users[0].skills) == ["Programming"]

    async def test_update_acts_on_this_parents_pivot_rows(self, database: Database) -> None:
        virk, nikk = await make_users("virk", "nikk")
        programming, dancing = await make_skills("Programming", "Dancing")
        await link(virk.id, programming.id, proficiency="Beginner")
        await link(virk.id, dancing.id, proficiency="Beginner")
        await link(nikk.id, programming.id, proficiency="Beginner")

        with count_queries() as q:
            updated = await virk.related("skills").query().update({"proficiency": "Master"})
        assert q.count == 1
        assert updated == 2
        assert await pivot_rows(database) == [
            (virk.id, programming.id, "Master"),
            (virk.id, dancing.id, "Master"),
            (nikk.id, programming.id, "Beginner"),
        ]
        # Conditions on the related table pick the pivot rows to update.
        updated = await (
            virk.related("skills").query().where("name", "Dancing").update("proficiency", "Expert")
        )
        assert updated == 1
        assert await pivot_rows(database) == [
            (virk.id, programming.id, "Master"),
            (virk.id, dancing.id, "Expert"),
            (nikk.id, programming.id, "Beginner"),
        ]
        skills = await database.from_("skills").select("name").order_by("id")
        assert skills == [{"name": "Programming"}, {"name": "Dancing"}]

    async def test_update_with_where_pivot(self, database: Database) -> None:
        virk, nikk = await make_users("virk", "nikk")
        programming, dancing = await make_skills("Programming", "Dancing")
        await link(virk.id, programming.id, proficiency="Beginner")
        await link(virk.id, dancing.id, proficiency="Master")
        await link(nikk.id, programming.id, proficiency="Beginner")

        updated = await (
            virk.related("skills")
            .query()
            .where_pivot("proficiency", "Beginner")
            .update({"proficiency": "Intermediate"})
        )
        assert updated == 1
        assert await pivot_rows(database) == [
            (virk.id, programming.id, "Intermediate"),
            (virk.id, dancing.id, "Master"),
            (nikk.id, programming.id, "Beginner"),
        ]

    async def test_delete_acts_on_this_parents_pivot_rows(self, database: Database) -> None:
        virk, nikk = await make_users("virk", "nikk")
        programming, dancing = await make_skills("Programming", "Dancing")
        await link(virk.id, programming.id)
        await link(virk.id, dancing.id)
        await link(nikk.id, programming.id)

        deleted = await virk.related("skills").query().where("name", "Dancing").delete()
        assert deleted == 1
        assert await pivot_rows(database) == [
            (virk.id, programming.id, None),
            (nikk.id, programming.id, None),
        ]
        with count_queries() as q:
            deleted = await virk.related("skills").query().delete()
        assert q.count == 1
        assert deleted == 1
        assert await pivot_rows(database) == [(nikk.id, programming.id, None)]
        # Related rows are never deleted.
        assert len(await database.from_("skills")) == 2

    async def test_increment_and_decrement_act_on_pivot_rows(self, database: Database) -> None:
        reds = await Team.create({"code": 700, "name": "Reds"})
        await Team.create({"code": 800, "name": "Blues"})
        await Player.create_many([{"uid": 1, "name": "alice"}, {"uid": 2, "name": "bob"}])
        await database.table("m2m_team_players").multi_insert(
            [
                {"team_code": 700, "player_uid": 1, "score": 10},
                {"team_code": 700, "player_uid": 2, "score": 10},
                {"team_code": 800, "player_uid": 1, "score": 10},
            ]
        )

        async def scores() -> list[tuple[int, int, int]]:
            rows = await database.from_("m2m_team_players").select(
                "team_code", "player_uid", "score"
            )
            return sorted((r["team_code"], r["player_uid"], r["score"]) for r in rows)

        assert await reds.related("players").query().increment("score", 5) == 2
        assert await scores() == [(700, 1, 15), (700, 2, 15), (800, 1, 10)]
        assert await reds.related("players").query().where("name", "bob").decrement("score") == 1
        assert await reds.related("players").query().increment({"m2m_team_players.score": 2}) == 2
        assert await scores() == [(700, 1, 17), (700, 2, 16), (800, 1, 10)]
        players = await database.from_("m2m_players").select("uid").order_by("uid")
        assert players == [{"uid": 1}, {"uid": 2}]
        with pytest.raises(LucidError):
            await reds.related("players").query().increment("score", "1")

    async def test_update_with_qualified_and_typed_values(self, database: Database) -> None:
        reds = await Team.create({"code": 700, "name": "Reds"})
        await Player.create({"uid": 1, "name": "alice"})
        await reds.related("players").attach([1])
        when = datetime(2022, 2, 2, 2, 2, 2, tzinfo=UTC)
        updated = (
            await reds.related("players")
            .query()
            .update({"m2m_team_players.role": "keeper", "fee": Decimal("2.50"), "joined_at": when})
        )
        assert updated == 1
        (player,) = await reds.related("players").query().pivot_columns(["fee"])
        assert player.extras["pivot_role"] == "keeper"
        assert Decimal(str(player.extras["pivot_fee"])) == Decimal("2.50")
        assert player.extras["pivot_joined_at"] == when

    async def test_update_needs_a_dict(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        with pytest.raises(LucidError):
            await virk.related("skills").query().update({})

    async def test_unpersisted_or_null_parent(self, database: Database) -> None:
        team = await Team.create({"code": None, "name": "no code"})
        with count_queries() as q:
            assert await team.related("players").query() == []
            assert await team.related("players").query().update({"role": "x"}) == 0
            assert await team.related("players").query().delete() == 0
        assert q.count == 0

        user = User(username="virk")
        with pytest.raises(LucidError) as exc:
            await user.related("skills").query()
        assert exc.value.code == "E_MISSING_MODEL_ATTRIBUTE"
        assert str(exc.value) == 'Cannot select "skills", value of "User.id" is undefined'


async def pivot_rows(database: Database) -> list[tuple[Any, Any, Any]]:
    query = database.from_("skill_user").select("user_id", "skill_id", "proficiency")
    rows = await query.order_by("id")
    return [(r["user_id"], r["skill_id"], r["proficiency"]) for r in rows]


# ----------------------------------------------------------------------------------------------
class TestManyToManyPivotQuery:
    async def test_pivot_query_returns_dicts_of_this_parent(self, database: Database) -> None:
        virk, nikk = await make_users("virk", "nikk")
        programming, dancing = await make_skills("Programming", "Dancing")
        await link(virk.id, programming.id, proficiency="Master")
        await link(virk.id, dancing.id)
        await link(nikk.id, programming.id)

        with count_queries() as q:
            rows = await virk.related("skills").pivot_query().order_by("id")
        assert q.count == 1
        assert [type(r) for r in rows] == [dict, dict]
        assert [(r["user_id"], r["skill_id"], r["proficiency"]) for r in rows] == [
            (virk.id, programming.id, "Master"),
            (virk.id, dancing.id, None),
        ]
        selected = await virk.related("skills").pivot_query().select("skill_id").order_by("id")
        assert selected == [{"skill_id": programming.id}, {"skill_id": dancing.id}]

    async def test_pivot_query_where_pivot_and_writes(self, database: Database) -> None:
        virk, nikk = await make_users("virk", "nikk")
        programming, dancing = await make_skills("Programming", "Dancing")
        await link(virk.id, programming.id, proficiency="Master")
        await link(virk.id, dancing.id)
        await link(nikk.id, programming.id)

        rows = await virk.related("skills").pivot_query().where_null_pivot("proficiency")
        assert [r["skill_id"] for r in rows] == [dancing.id]
        rows = await virk.related("skills").pivot_query().where_pivot("proficiency", "Master")
        assert [r["skill_id"] for r in rows] == [programming.id]

        assert await virk.related("skills").pivot_query().update({"proficiency": "x"}) == 2
        assert (
            await virk.related("skills").pivot_query().where("skill_id", dancing.id).delete() == 1
        )
        assert await pivot_rows(database) == [
            (virk.id, programming.id, "x"),
            (nikk.id, programming.id, None),
        ]

    async def test_pivot_query_of_a_parent_with_a_null_key(self, database: Database) -> None:
        team = await Team.create({"code": None, "name": "no code"})
        await database.table("m2m_team_players").insert({"team_code": None, "player_uid": 1})
        assert await team.related("players").pivot_query() == []
        assert await team.related("players").pivot_query().delete() == 0
        assert await team.related("players").pivot_query().update({"role": "x"}) == 0
        rows = await database.from_("m2m_team_players").select("team_code", "role")
        assert rows == [{"team_code": None, "role": None}]

    async def test_pivot_query_timestamps_are_datetimes(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        (programming,) = await make_skills("Programming")
        stamp = datetime(2024, 1, 1, 12, 0, 0)
        await link(virk.id, programming.id, created_at=stamp, updated_at=stamp)
        user = await ProUser.find_or_fail(virk.id)
        rows = await user.related("skills").pivot_query()
        assert rows[0]["created_at"] == stamp.replace(tzinfo=UTC)
        assert rows[0]["updated_at"] == stamp.replace(tzinfo=UTC)


# ----------------------------------------------------------------------------------------------
class TestManyToManyWherePivot:
    """Every form, against rows (the Lucid groups compare SQL strings; rows are what matters)."""

    @pytest.fixture
    async def seeded(self, database: Database) -> dict[str, Any]:
        (virk,) = await make_users("virk")
        skills = await make_skills("Programming", "Dancing", "Singing", "Cooking")
        levels = ["Master", "Beginner", None, "Expert"]
        for skill, level in zip(skills, levels, strict=True):
            await link(virk.id, skill.id, proficiency=level)
        return {"user": virk, "skills": {s.name: s for s in skills}}

    async def run(self, seeded: dict[str, Any], build: Any) -> list[str | None]:
        query = seeded["user"].related("skills").query()
        build(query)
        return sorted(names(await query))  # type: ignore[type-var]

    @pytest.mark.parametrize(
        ("build", "expected"),
        [
            (lambda q: q.where_pivot("proficiency", "Master"), ["Programming"]),
            (lambda q: q.and_where_pivot("proficiency", "Master"), ["Programming"]),
            (lambda q: q.where_pivot("proficiency", "!=", "Master"), ["Cooking", "Dancing"]),
            (lambda q: q.where_pivot("skill_user.proficiency", "Master"), ["Programming"]),
            (
                lambda q: q.where(lambda g: g.where_pivot("proficiency", "Master")),
                ["Programming"],
            ),
            (
                lambda q: q.where_pivot("proficiency", "Master").or_where_pivot(
                    "proficiency", "Expert"
                ),
                ["Cooking", "Programming"],
            ),
            (
                lambda q: q.where_pivot("proficiency", "Master").or_where(
                    lambda g: g.where_pivot("proficiency", "Beginner")
                ),
                ["Dancing", "Programming"],
            ),
            (lambda q: q.where_not_pivot("proficiency", "Master"), ["Cooking", "Dancing"]),
            (lambda q: q.and_where_not_pivot("proficiency", "Master"), ["Cooking", "Dancing"]),
            # NOT (proficiency > 'D'): "Beginner" only; NULL compares unknown.
            (lambda q: q.where_not_pivot("proficiency", ">", "D"), ["Dancing"]),
            (
                lambda q: q.where_pivot("proficiency", "Master").or_where_not_pivot(
                    "proficiency", "Beginner"
                ),
                ["Cooking", "Programming"],
            ),
            (
                lambda q: q.where_in_pivot("proficiency", ["Master", "Expert"]),
                ["Cooking", "Programming"],
            ),
            (
                lambda q: q.and_where_in_pivot("proficiency", ["Master"]),
                ["Programming"],
            ),
            (
                lambda q: q.where_in_pivot("proficiency", ["Master"]).or_where_in_pivot(
                    "proficiency", ["Beginner"]
                ),
                ["Dancing", "Programming"],
            ),
            (
                lambda q: q.where_not_in_pivot("proficiency", ["Master", "Expert"]),
                ["Dancing"],
            ),
            (
                lambda q: q.where_pivot("proficiency", "Master").or_where_not_in_pivot(
                    "proficiency", ["Master", "Beginner"]
                ),
                ["Cooking", "Programming"],
            ),
            (lambda q: q.where_null_pivot("proficiency"), ["Singing"]),
            (lambda q: q.and_where_null_pivot("proficiency"), ["Singing"]),
            (
                lambda q: q.where_pivot("proficiency", "Master").or_where_null_pivot("proficiency"),
                ["Programming", "Singing"],
            ),
            (
                lambda q: q.where_not_null_pivot("proficiency"),
                ["Cooking", "Dancing", "Programming"],
            ),
            (
                lambda q: q.where_null_pivot("proficiency").or_where_not_null_pivot("proficiency"),
                ["Cooking", "Dancing", "Programming", "Singing"],
            ),
            (
                lambda q: q.where_pivot("proficiency", "Master").and_where_not_null_pivot(
                    "proficiency"
                ),
                ["Programming"],
            ),
        ],
    )
    async def test_where_pivot_family(
        self, seeded: dict[str, Any], build: Any, expected: list[str]
    ) -> None:
        assert await self.run(seeded, build) == expected

    async def test_where_in_pivot_with_a_subquery(self, seeded: dict[str, Any]) -> None:
        skills = seeded["skills"]
        sub = db.from_("skills").select("id").where("name", "Dancing")
        got = await self.run(seeded, lambda q: q.where_in_pivot("skill_id", sub))
        assert got == ["Dancing"]
        got = await self.run(
            seeded,
            lambda q: q.where_in_pivot(
                "skill_id", lambda s: s.from_("skills").select("id").where("name", "Singing")
            ),
        )
        assert got == ["Singing"]
        got = await self.run(
            seeded,
            lambda q: q.where_pivot("skill_id", skills["Cooking"].id).or_where_in_pivot(
                "skill_id", lambda s: s.from_("skills").select("id").where("name", "Singing")
            ),
        )
        assert got == ["Cooking", "Singing"]
        got = await self.run(seeded, lambda q: q.where_not_in_pivot("skill_id", sub))
        assert got == ["Cooking", "Programming", "Singing"]

    async def test_where_in_pivot_with_tuples_and_raw(self, seeded: dict[str, Any]) -> None:
        skills = seeded["skills"]
        pairs = [[skills["Programming"].id, "Master"], [skills["Dancing"].id, "Master"]]
        got = await self.run(seeded, lambda q: q.where_in_pivot(["skill_id", "proficiency"], pairs))
        assert got == ["Programming"]
        got = await self.run(
            seeded, lambda q: q.where_not_in_pivot(["skill_id", "proficiency"], pairs)
        )
        # (id, NULL) differs from both pairs by its id: NOT IN holds for Singing too.
        assert got == ["Cooking", "Dancing", "Singing"]
        got = await self.run(
            seeded, lambda q: q.where_in_pivot("proficiency", db.raw("?, ?", ["Master", "x"]))
        )
        assert got == ["Programming"]

    async def test_where_pivot_with_a_raw_value(self, seeded: dict[str, Any]) -> None:
        got = await self.run(
            seeded, lambda q: q.where_pivot("proficiency", db.raw("?", ["Expert"]))
        )
        assert got == ["Cooking"]

    async def test_where_pivot_rejects_bad_input(self, seeded: dict[str, Any]) -> None:
        query = seeded["user"].related("skills").query()
        with pytest.raises(LucidError) as exc:
            query.where_pivot("proficiency; --", "x")
        assert exc.value.code == "E_INVALID_IDENTIFIER"
        with pytest.raises(LucidError):
            query.where_pivot("proficiency")
        with pytest.raises(LucidError) as exc:
            query.where_pivot("proficiency", "~~", "x")
        assert exc.value.code == "E_INVALID_OPERATOR"


# ----------------------------------------------------------------------------------------------
class TestManyToManyGroupLimit:
    @pytest.fixture
    async def seeded(self, database: Database) -> dict[str, Any]:
        virk, nikk = await make_users("virk", "nikk")
        skills = await make_skills("Programming", "Dancing", "Designing", "Cooking", "Singing")
        virk_levels = ["Master", "Beginner", "Master", "Beginner", "Noob"]
        nikk_levels = ["Beginner", "Beginner", "Master", "Beginner", "Master"]
        for skill, a, b in zip(skills, virk_levels, nikk_levels, strict=True):
            await link(virk.id, skill.id, proficiency=a)
            await link(nikk.id, skill.id, proficiency=b)
        return {"users": [virk, nikk], "skills": skills}

    async def test_apply_group_limit(self, seeded: dict[str, Any]) -> None:
        with count_queries() as q:
            users = await User.query().preload("skills", lambda s: s.group_limit(2)).order_by("id")
        assert q.count == 2
        # Default order: related primary key descending.
        assert [names(u.skills) for u in users] == [["Singing", "Cooking"], ["Singing", "Cooking"]]
        assert [s.extras["pivot_user_id"] for s in users[1].skills] == [users[1].id] * 2

    async def test_group_limit_with_extra_constraints(self, seeded: dict[str, Any]) -> None:
        users = (
            await User.query()
            .preload("skills", lambda s: s.group_limit(2).where_pivot("proficiency", "Master"))
            .order_by("id")
        )
        assert [names(u.skills) for u in users] == [
            ["Designing", "Programming"],
            ["Singing", "Designing"],
        ]

    async def test_group_limit_and_custom_columns(self, seeded: dict[str, Any]) -> None:
        users = (
            await User.query()
            .preload(
                "skills", lambda s: s.group_limit(2).select("name").pivot_columns(["proficiency"])
            )
            .order_by("id")
        )
        first = users[0].skills[0]
        assert first.attributes == {"name": "Singing"}
        assert first.extras == {
            "pivot_user_id": users[0].id,
            "pivot_skill_id": seeded["skills"][4].id,
            "pivot_proficiency": "Noob",
        }

    async def test_custom_group_order_by(self, seeded: dict[str, Any]) -> None:
        users = (
            await User.query()
            .preload("skills", lambda s: s.group_limit(2).group_order_by("name", "asc"))
            .order_by("id")
        )
        assert [names(u.skills) for u in users] == [["Cooking", "Dancing"], ["Cooking", "Dancing"]]
        users = (
            await User.query()
            .preload(
                "skills",
                lambda s: (
                    s.group_limit(1)
                    .group_order_by("skill_user.proficiency", "desc")
                    .pivot_columns(["proficiency"])
                ),
            )
            .order_by("id")
        )
        # A pivot column orders the groups: virk's "Noob" (Singing), one of nikk's "Master"s.
        assert names(users[0].skills) == ["Singing"]
        assert [s.extras["pivot_proficiency"] for s in users[1].skills] == ["Master"]

    async def test_group_limit_outside_preload_limits_the_query(
        self, seeded: dict[str, Any]
    ) -> None:
        # As in Lucid: on one parent's query, a plain LIMIT and ORDER BY.
        virk = seeded["users"][0]
        with count_queries() as q:
            skills = await virk.related("skills").query().group_limit(2)
        assert len(skills) == 2 and q.count == 1
        skills = await virk.related("skills").query().group_limit(2).group_order_by("name", "desc")
        assert names(skills) == ["Singing", "Programming"]
        assert await virk.related("skills").query().group_order_by("name").count_rows() == 5

    async def test_group_limit_rejects_bad_values(self, seeded: dict[str, Any]) -> None:
        for bad in (0, -1, True, "2"):
            with pytest.raises(LucidError) as exc:
                await User.query().preload("skills", lambda s, bad=bad: s.group_limit(bad))
            assert str(exc.value) == f"group_limit() expects a positive int, got {bad!r}"
        with pytest.raises(LucidError) as exc:
            await User.query().preload("skills", lambda s: s.group_order_by("name", "up"))
        assert str(exc.value) == 'Invalid order direction "up": use "asc" or "desc"'


# ----------------------------------------------------------------------------------------------
class TestManyToManyOnQuery:
    async def test_on_query_runs_on_preload_and_related_queries(self, database: Database) -> None:
        seen: list[tuple[str, bool, bool, bool]] = []

        def hook(query: Any) -> None:
            seen.append(
                (
                    type(query).__name__,
                    query.is_related_preload_query,
                    query.is_related_sub_query,
                    query.is_pivot_only_query,
                )
            )
            if not query.is_pivot_only_query:
                query.where("name", "Programming")

        class Member(BaseModel):
            table = "users"
            id: int = column(is_primary=True)
            skills: ManyToMany[Skill] = many_to_many(
                lambda: Skill, pivot_foreign_key="user_id", pivot_table="skill_user", on_query=hook
            )

        (virk,) = await make_users("virk")
        programming, dancing = await make_skills("Programming", "Dancing")
        await link(virk.id, programming.id)
        await link(virk.id, dancing.id)

        # A grouped where in the callback does not run the hook again.
        members = await Member.query().preload("skills", lambda q: q.where(lambda g: None))
        assert names(members[0].skills) == ["Programming"]
        assert seen == [("ManyToManyQueryBuilder", True, False, False)]

        seen.clear()
        member = members[0]
        assert names(await member.related("skills").query()) == ["Programming"]
        assert seen == [("ManyToManyQueryBuilder", False, False, False)]

        seen.clear()
        rows = await member.related("skills").pivot_query()
        assert len(rows) == 2 and all(type(r) is dict for r in rows)
        assert seen == [("ManyToManyPivotQueryBuilder", False, False, True)]

        # update()/delete() through the related query go through the hook too.
        seen.clear()
        assert await member.related("skills").query().update({"proficiency": "Master"}) == 1
        assert len(seen) == 1
        assert await pivot_rows(database) == [
            (virk.id, programming.id, "Master"),
            (virk.id, dancing.id, None),
        ]
        assert await member.related("skills").query().delete() == 1
        assert await pivot_rows(database) == [(virk.id, dancing.id, None)]

        # has/with_count subqueries: a sub-query, not a related query (Lucid's flags).
        flags: list[tuple[bool, bool, bool]] = []
        Member.get_relation("skills").on_query = lambda q: flags.append(
            (q.is_related_query, q.is_related_preload_query, q.is_related_sub_query)
        )
        counted = await Member.query().with_count("skills").has("skills")
        assert [int(m.extras["skills_count"]) for m in counted] == [1]
        assert flags == [(False, False, True)] * 2

    async def test_on_query_never_runs_on_pivot_writes(self, database: Database) -> None:
        calls: list[Any] = []

        def hook(query: Any) -> None:
            calls.append(query)
            query.where("name", "Programming")

        class Member(BaseModel):
            table = "users"
            id: int = column(is_primary=True)
            skills: ManyToMany[Skill] = many_to_many(
                lambda: Skill, pivot_foreign_key="user_id", pivot_table="skill_user", on_query=hook
            )

        (virk,) = await make_users("virk")
        member = await Member.find_or_fail(virk.id)
        programming, dancing, singing = await make_skills("Programming", "Dancing", "Singing")
        rel = member.related("skills")
        await rel.attach([programming.id, dancing.id])
        await rel.sync({dancing.id: {"proficiency": "Master"}, singing.id: {}})
        assert await rel.detach([singing.id]) == 1
        await rel.save(Skill(name="Cooking"))
        await rel.save_many([Skill(name="Baking")])
        await rel.create({"name": "Painting"})
        await rel.create_many([{"name": "Running"}])
        assert calls == []
        rows = await database.from_("skill_user").select("skill_id", "proficiency").order_by("id")
        skill_names = {s.id: s.name for s in await Skill.all()}
        assert [(skill_names[r["skill_id"]], r["proficiency"]) for r in rows] == [
            ("Dancing", "Master"),
            ("Cooking", None),
            ("Baking", None),
            ("Painting", None),
            ("Running", None),
        ]
