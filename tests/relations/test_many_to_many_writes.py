"""many_to_many, writes (SPEC §5, §7, §8, §9): ``attach``, ``detach``, ``sync``, ``save``,
``save_many``, ``create``, ``create_many`` — pivot values and timestamps, one transaction per
call (a savepoint inside ``client=trx`` or the parent's ``trx``), bad input rejected before any
SQL, unknown ids (foreign keys) failing whole. Ported from Lucid's ``model_many_to_many.spec.ts``.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any

import pytest

from lucid_orm import BaseModel, LucidError, QueryError, column, db, many_to_many
from lucid_orm.database import Database
from lucid_orm.relations import ManyToMany
from tests import models
from tests.helpers import count_queries
from tests.models import Gadget, Player, Skill, Tag, create_many


class User(models.BaseUser):
    skills: ManyToMany[Skill] = many_to_many(lambda: Skill)


def users_model(name: str, **options: Any) -> type[BaseModel]:
    """A model on ``users`` whose ``skills`` go through ``skill_user`` with ``options``."""
    options.setdefault("pivot_table", "skill_user")
    options.setdefault("pivot_foreign_key", "user_id")
    attrs: dict[str, Any] = {
        "__annotations__": {"id": int, "username": str | None, "skills": ManyToMany[Skill]},
        "table": "users",
        "id": column(is_primary=True),
        "username": column(),
        "skills": many_to_many(lambda: Skill, **options),
    }
    return type(name, (BaseModel,), attrs)


ProUser = users_model("ProUser", pivot_columns=["proficiency"], pivot_timestamps=True)
StrictUser = users_model("StrictUser", pivot_table="skill_user_strict")


class Team(BaseModel):
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


class Article(BaseModel):
    table = "posts"
    id: int = column(is_primary=True)
    title: str | None = column()
    tags: ManyToMany[Tag] = many_to_many(
        lambda: Tag, pivot_table="post_tags", pivot_foreign_key="post_id"
    )


class Owner(models.BaseUser):
    table = "users"
    gadgets: ManyToMany[Gadget] = many_to_many(
        lambda: Gadget,
        pivot_table="m2m_gadget_user",
        pivot_foreign_key="user_id",
        pivot_related_foreign_key="gadget_uuid",
        pivot_columns=["color"],
    )


make_users = partial(create_many, User, "username")
make_skills = partial(create_many, Skill, "name")


async def link(user_id: int, skill_id: int, **values: Any) -> None:
    await db.table("skill_user").insert({"user_id": user_id, "skill_id": skill_id, **values})


async def pivot_rows(table: str = "skill_user") -> list[tuple[Any, ...]]:
    """``(user_id, skill_id, proficiency)`` of every row of ``table``, in insertion order."""
    columns = ["user_id", "skill_id"] + (["proficiency"] if table != "user_friends" else [])
    rows = await db.from_(table).select(*columns).order_by("id")
    return [tuple(r[c] for c in columns) for r in rows]


async def count(table: str) -> int:
    return await db.from_(table).count_rows()


def statements(sqls: list[str]) -> list[str]:
    return [s.lstrip().split()[0].upper() for s in sqls]


BAD_IDS: list[Any] = [
    [{"id": 1}],
    [[1]],
    [None],
    [True],
    [1.5],
    None,
    "1,2",
    5,
    {True: {}},
    {1: "Master"},
]


# ----------------------------------------------------------------------------------------------
class TestManyToManyAttach:
    async def test_attach_ids(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        programming, dancing = await make_skills("Programming", "Dancing")
        with count_queries() as q:
            await virk.related("skills").attach([programming.id, dancing.id])
        assert statements(q.sqls) == ["INSERT"]
        assert await pivot_rows() == [
            (virk.id, programming.id, None),
            (virk.id, dancing.id, None),
        ]
        assert await count("skills") == 2
        assert virk.trx is None

    async def test_attach_with_pivot_values(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        programming, dancing, singing = await make_skills("Programming", "Dancing", "Singing")
        await virk.related("skills").attach(
            {
                programming.id: {"proficiency": "Beginner"},
                dancing.id: {"proficiency": "Master"},
                singing.id: {},
            }
        )
        assert await pivot_rows() == [
            (virk.id, programming.id, "Beginner"),
            (virk.id, dancing.id, "Master"),
            (virk.id, singing.id, None),
        ]

    async def test_attach_deduplicates_ids(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        (programming,) = await make_skills("Programming")
        await virk.related("skills").attach([programming.id, programming.id])
        assert await pivot_rows() == [(virk.id, programming.id, None)]

    async def test_attach_sets_pivot_timestamps(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        (programming,) = await make_skills("Programming")
        user = await ProUser.find_or_fail(virk.id)
        before = datetime.now(UTC) - timedelta(seconds=2)
        await user.related("skills").attach({programming.id: {"proficiency": "Master"}})
        (row,) = await user.related("skills").pivot_query()
        assert row["proficiency"] == "Master"
        assert isinstance(row["created_at"], datetime)
        assert row["created_at"] == row["updated_at"]
        assert before <= row["created_at"] <= datetime.now(UTC) + timedelta(seconds=2)

    async def test_attach_with_custom_keys_and_no_id_column(self, database: Database) -> None:
        team = await Team.create({"code": 700, "name": "Reds"})
        alice = await Player.create({"uid": 9001, "name": "alice"})
        bob = await Player.create({"uid": 9002, "name": "bob"})
        await team.related("players").attach({9001: {"role": "captain"}, 9002: {}})
        rows = await db.from_("m2m_team_players").select("team_code", "player_uid", "role")
        assert sorted(rows, key=lambda r: r["player_uid"]) == [
            {"team_code": 700, "player_uid": 9001, "role": "captain"},
            {"team_code": 700, "player_uid": 9002, "role": None},
        ]
        players = await team.related("players").query().order_by("uid")
        assert [p.id for p in players] == [alice.id, bob.id]
        assert players[0].extras["pivot_role"] == "captain"
        assert isinstance(players[0].extras["pivot_joined_at"], datetime)

    async def test_attach_typed_pivot_values(self, database: Database) -> None:
        team = await Team.create({"code": 700, "name": "Reds"})
        await Player.create({"uid": 1, "name": "alice"})
        when = datetime(2021, 6, 1, 12, 0, tzinfo=UTC)
        await team.related("players").attach(
            {1: {"fee": Decimal("9.99"), "joined_at": when, "score": 3}}
        )
        (player,) = await team.related("players").query().pivot_columns(["fee", "score"])
        assert Decimal(str(player.extras["pivot_fee"])) == Decimal("9.99")
        assert player.extras["pivot_score"] == 3
        # An explicit value wins over the automatic timestamp.
        assert player.extras["pivot_joined_at"] == when

    async def test_attach_nothing_runs_no_query(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        with count_queries() as q:
            await virk.related("skills").attach([])
            await virk.related("skills").attach({})
        assert q.count == 0

    @pytest.mark.parametrize("ids", BAD_IDS, ids=repr)
    async def test_wrong_id_types_raise_before_any_sql(self, database: Database, ids: Any) -> None:
        (virk,) = await make_users("virk")
        rel = virk.related("skills")
        for write in (rel.attach, rel.sync, rel.detach):
            if write.__name__ == "detach" and ids is None:
                continue  # detach(None) means "every row"
            with count_queries() as q, pytest.raises(LucidError) as exc:
                await write(ids)
            assert exc.value.code == "E_INVALID_ARGUMENT", write
            assert q.count == 0

    async def test_invalid_pivot_column_name(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        with count_queries() as q, pytest.raises(LucidError) as exc:
            await virk.related("skills").attach({1: {"proficiency = 1; --": "x"}})
        assert exc.value.code == "E_INVALID_IDENTIFIER"
        assert q.count == 0

    async def test_unknown_ids_raise_and_attach_nothing(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        (programming,) = await make_skills("Programming")
        user = await StrictUser.find_or_fail(virk.id)
        with pytest.raises(QueryError) as exc:
            await user.related("skills").attach([programming.id, programming.id + 1000])
        assert exc.value.code == "E_INTEGRITY"
        assert exc.value.sql
        assert await count("skill_user_strict") == 0
        await user.related("skills").attach([programming.id])
        assert await pivot_rows("skill_user_strict") == [(virk.id, programming.id, None)]

    async def test_parent_without_a_key(self, database: Database) -> None:
        user = User(username="virk")
        with count_queries() as q, pytest.raises(LucidError) as exc:
            await user.related("skills").attach([1])
        assert exc.value.code == "E_MISSING_MODEL_ATTRIBUTE"
        assert str(exc.value) == 'Cannot persist "skills", value of "User.id" is undefined'
        assert q.count == 0
        team = await Team.create({"code": None, "name": "no code"})
        with pytest.raises(LucidError) as exc:
            await team.related("players").attach([9001])
        assert exc.value.code == "E_MISSING_MODEL_ATTRIBUTE"
        assert str(exc.value) == 'Cannot persist "players", value of "Team.code" is undefined'


# ----------------------------------------------------------------------------------------------
class TestManyToManyDetach:
    async def test_detach_ids(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        programming, dancing = await make_skills("Programming", "Dancing")
        await link(virk.id, programming.id, proficiency="Beginner")
        await link(virk.id, dancing.id, proficiency="Beginner")
        with count_queries() as q:
            removed = await virk.related("skills").detach([programming.id])
        assert statements(q.sqls) == ["DELETE"]
        assert removed == 1
        assert await pivot_rows() == [(virk.id, dancing.id, "Beginner")]
        assert await count("skills") == 2

    async def test_detach_is_scoped_to_the_parent(self, database: Database) -> None:
        virk, nikk = await make_users("virk", "nikk")
        programming, dancing = await make_skills("Programming", "Dancing")
        await link(virk.id, programming.id)
        await link(nikk.id, dancing.id)
        await link(nikk.id, programming.id)
        assert await virk.related("skills").detach([dancing.id]) == 0
        assert await virk.related("skills").detach() == 1
        assert await pivot_rows() == [(nikk.id, dancing.id, None), (nikk.id, programming.id, None)]

    async def test_detach_nothing(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        (programming,) = await make_skills("Programming")
        await link(virk.id, programming.id)
        with count_queries() as q:
            assert await virk.related("skills").detach([]) == 0
        assert q.count == 0
        assert await pivot_rows() == [(virk.id, programming.id, None)]

    async def test_detach_with_custom_keys(self, database: Database) -> None:
        team = await Team.create({"code": 700, "name": "Reds"})
        other = await Team.create({"code": 800, "name": "Blues"})
        await team.related("players").attach([9001, 9002])
        await other.related("players").attach([9001])
        assert await team.related("players").detach([9001]) == 1
        rows = await db.from_("m2m_team_players").select("team_code", "player_uid")
        assert sorted((r["team_code"], r["player_uid"]) for r in rows) == [
            (700, 9002),
            (800, 9001),
        ]


# ----------------------------------------------------------------------------------------------
class TestManyToManySync:
    @pytest.fixture
    async def seeded(self, database: Database) -> dict[str, Any]:
        virk, nikk = await make_users("virk", "nikk")
        skills = await make_skills("Programming", "Dancing", "Singing")
        await link(virk.id, skills[0].id, proficiency="Beginner")
        await link(virk.id, skills[1].id, proficiency="Master")
        await link(nikk.id, skills[0].id, proficiency="Master")
        return {"virk": virk, "nikk": nikk, "skills": skills}

    async def test_sync_drops_only_the_missing_ones(self, seeded: dict[str, Any]) -> None:
        virk, nikk, (a, _b, _c) = seeded["virk"], seeded["nikk"], seeded["skills"]
        await virk.related("skills").sync([a.id])
        assert await pivot_rows() == [(virk.id, a.id, "Beginner"), (nikk.id, a.id, "Master")]
        assert await count("skills") == 3

    async def test_sync_keeps_duplicate_rows_of_a_kept_id(self, seeded: dict[str, Any]) -> None:
        virk, nikk, (a, _b, _c) = seeded["virk"], seeded["nikk"], seeded["skills"]
        await link(virk.id, a.id, proficiency="Master")
        await virk.related("skills").sync([a.id])
        assert await pivot_rows() == [
            (virk.id, a.id, "Beginner"),
            (nikk.id, a.id, "Master"),
            (virk.id, a.id, "Master"),
        ]

    async def test_sync_inserts_the_new_ones(self, seeded: dict[str, Any]) -> None:
        virk, nikk, (a, b, c) = seeded["virk"], seeded["nikk"], seeded["skills"]
        with count_queries() as q:
            await virk.related("skills").sync([b.id, c.id, c.id])
        # select the existing, insert the missing, delete the others.
        assert statements(q.sqls) == ["SELECT", "INSERT", "DELETE"]
        assert await pivot_rows() == [
            (virk.id, b.id, "Master"),
            (nikk.id, a.id, "Master"),
            (virk.id, c.id, None),
        ]

    async def test_sync_updates_changed_pivot_values_only(self, seeded: dict[str, Any]) -> None:
        virk, nikk, (a, b, c) = seeded["virk"], seeded["nikk"], seeded["skills"]
        with count_queries() as q:
            await virk.related("skills").sync(
                {
                    a.id: {"proficiency": "Intermediate"},  # changed
                    b.id: {"proficiency": "Master"},  # unchanged
                    c.id: {"proficiency": "Noob"},  # new
                }
            )
        # Nothing to detach (virk had a and b): no DELETE.
        assert statements(q.sqls) == ["SELECT", "INSERT", "UPDATE"]
        assert await pivot_rows() == [
            (virk.id, a.id, "Intermediate"),
            (virk.id, b.id, "Master"),
            (nikk.id, a.id, "Master"),
            (virk.id, c.id, "Noob"),
        ]

    async def test_sync_without_values_does_not_update(self, seeded: dict[str, Any]) -> None:
        virk, nikk, (a, _b, _c) = seeded["virk"], seeded["nikk"], seeded["skills"]
        with count_queries() as q:
            await virk.related("skills").sync({a.id: {}})
        assert statements(q.sqls) == ["SELECT", "DELETE"]
        assert await pivot_rows() == [(virk.id, a.id, "Beginner"), (nikk.id, a.id, "Master")]

    async def test_sync_with_detach_false(self, seeded: dict[str, Any]) -> None:
        virk, nikk, (a, b, c) = seeded["virk"], seeded["nikk"], seeded["skills"]
        with count_queries() as q:
            await virk.related("skills").sync([a.id], detach=False)
        assert statements(q.sqls) == ["SELECT"]
        await virk.related("skills").sync([c.id], False)
        assert await pivot_rows() == [
            (virk.id, a.id, "Beginner"),
            (virk.id, b.id, "Master"),
            (nikk.id, a.id, "Master"),
            (virk.id, c.id, None),
        ]

    async def test_ids_given_as_text(self, seeded: dict[str, Any]) -> None:
        virk, nikk, (a, b, c) = seeded["virk"], seeded["nikk"], seeded["skills"]
        # "1" and 1 are one id: no duplicate row, and PostgreSQL gets an integer.
        await virk.related("skills").sync([str(a.id), c.id, str(c.id)])
        assert await pivot_rows() == [
            (virk.id, a.id, "Beginner"),
            (nikk.id, a.id, "Master"),
            (virk.id, c.id, None),
        ]
        await virk.related("skills").save(b, pivot_attributes={"proficiency": "x"})
        await virk.related("skills").save_many([b, a])
        assert len(await pivot_rows()) == 4
        assert await virk.related("skills").detach([str(b.id)]) == 1
        with count_queries() as q, pytest.raises(LucidError) as exc:
            await virk.related("skills").attach(["one"])
        assert exc.value.code == "E_INVALID_ARGUMENT"
        assert str(exc.value) == "\"User.skills\" expects integer related ids, got 'one'"
        assert q.count == 0

    async def test_sync_when_nothing_changed(self, seeded: dict[str, Any]) -> None:
        virk, nikk, (a, b, _c) = seeded["virk"], seeded["nikk"], seeded["skills"]
        before = await pivot_rows()
        with count_queries() as q:
            await virk.related("skills").sync([a.id, b.id])
        # Lucid reads the pivot rows and writes nothing (no DELETE of nothing either).
        assert statements(q.sqls) == ["SELECT"]
        assert await pivot_rows() == before
        assert before == [
            (virk.id, a.id, "Beginner"),
            (virk.id, b.id, "Master"),
            (nikk.id, a.id, "Master"),
        ]

    async def test_sync_to_nothing_detaches_everything(self, seeded: dict[str, Any]) -> None:
        virk, nikk, (a, _b, _c) = seeded["virk"], seeded["nikk"], seeded["skills"]
        with count_queries() as q:
            await virk.related("skills").sync([])
        assert statements(q.sqls) == ["DELETE"]
        assert await pivot_rows() == [(nikk.id, a.id, "Master")]

    async def test_sync_in_a_custom_transaction(self, seeded: dict[str, Any]) -> None:
        virk, (a, _b, c) = seeded["virk"], seeded["skills"]
        before = await pivot_rows()
        trx = await db.transaction()
        await virk.related("skills").sync(
            {a.id: {"proficiency": "Intermediate"}, c.id: {"proficiency": "Intermediate"}},
            True,
            client=trx,
        )
        rows = await trx.from_("skill_user").select("skill_id").where("user_id", virk.id)
        assert sorted(r["skill_id"] for r in rows) == [a.id, c.id]
        await trx.rollback()
        assert await pivot_rows() == before
        assert virk.trx is None

    async def test_sync_updates_updated_at_only(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        (a,) = await make_skills("Programming")
        old = datetime(2020, 1, 1, 0, 0, 0)
        await link(virk.id, a.id, proficiency="Beginner", created_at=old, updated_at=old)
        user = await ProUser.find_or_fail(virk.id)
        await user.related("skills").sync({a.id: {"proficiency": "Master"}})
        (row,) = await user.related("skills").pivot_query()
        assert row["proficiency"] == "Master"
        assert row["created_at"] == old.replace(tzinfo=UTC)
        assert row["updated_at"] > datetime.now(UTC) - timedelta(minutes=5)

    async def test_sync_pivot_without_id_column(self, database: Database) -> None:
        post = await Article.create({"title": "hello"})
        other = await Article.create({"title": "other"})
        orm, sql, web = await Tag.create_many([{"name": "orm"}, {"name": "sql"}, {"name": "web"}])
        await post.related("tags").attach([orm.id, sql.id])
        await other.related("tags").attach([orm.id])
        await post.related("tags").sync([sql.id, web.id])
        rows = await db.from_("post_tags").select("post_id", "tag_id")
        assert sorted((r["post_id"], r["tag_id"]) for r in rows) == sorted(
            [(post.id, sql.id), (post.id, web.id), (other.id, orm.id)]
        )
        assert await post.related("tags").detach() == 2

    async def test_failed_sync_leaves_nothing(self, seeded: dict[str, Any]) -> None:
        virk, (a, _b, c) = seeded["virk"], seeded["skills"]
        before = await pivot_rows()
        with pytest.raises(QueryError):
            # ``nope`` is no pivot column: the insert fails after nothing else has run.
            await virk.related("skills").sync({a.id: {"proficiency": "x"}, c.id: {"nope": 1}})
        assert await pivot_rows() == before


# ----------------------------------------------------------------------------------------------
class TestManyToManySave:
    async def test_save_related_instance(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        skill = Skill(name="Programming")
        returned = await virk.related("skills").save(skill)
        assert returned is skill
        assert skill.is_persisted
        assert await pivot_rows() == [(virk.id, skill.id, None)]
        assert virk.trx is None and skill.trx is None

    async def test_save_persists_a_new_parent_first(self, database: Database) -> None:
        user = User(username="virk")
        skill = Skill(name="Programming")
        await user.related("skills").save(skill)
        assert user.is_persisted and skill.is_persisted
        assert await pivot_rows() == [(user.id, skill.id, None)]

    async def test_save_with_pivot_attributes(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        skill = Skill(name="Programming")
        await virk.related("skills").save(skill, True, {"proficiency": "Master"})
        assert await pivot_rows() == [(virk.id, skill.id, "Master")]

    async def test_save_twice_does_not_duplicate(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        skill = Skill(name="Programming")
        await virk.related("skills").save(skill)
        with count_queries() as q:
            await virk.related("skills").save(skill)
        # Nothing dirty, link present: only the existence check runs.
        assert statements(q.sqls) == ["SELECT"]
        assert await pivot_rows() == [(virk.id, skill.id, None)]

    async def test_save_again_updates_pivot_attributes(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        skill = Skill(name="Programming")
        await virk.related("skills").save(skill, pivot_attributes={"proficiency": "Beginner"})
        await virk.related("skills").save(skill, pivot_attributes={"proficiency": "Master"})
        assert await pivot_rows() == [(virk.id, skill.id, "Master")]

    async def test_save_without_check_existing_attaches_duplicates(
        self, database: Database
    ) -> None:
        (virk,) = await make_users("virk")
        skill = Skill(name="Programming")
        await virk.related("skills").save(skill, False)
        await virk.related("skills").save(skill, False, {"proficiency": "Master"})
        assert await pivot_rows() == [(virk.id, skill.id, None), (virk.id, skill.id, "Master")]

    async def test_save_when_another_parent_has_the_link(self, database: Database) -> None:
        virk, nikk = await make_users("virk", "nikk")
        skill = Skill(name="Programming")
        await nikk.related("skills").save(skill)
        await virk.related("skills").save(skill)
        assert await pivot_rows() == [(nikk.id, skill.id, None), (virk.id, skill.id, None)]

    async def test_save_sets_timestamps_and_keeps_created_at_on_update(
        self, database: Database
    ) -> None:
        (virk,) = await make_users("virk")
        (skill,) = await make_skills("Programming")
        old = datetime(2020, 1, 1)
        await link(virk.id, skill.id, proficiency="Beginner", created_at=old, updated_at=old)
        user = await ProUser.find_or_fail(virk.id)
        await user.related("skills").save(skill, True, {"proficiency": "Master"})
        (row,) = await user.related("skills").pivot_query()
        assert row["created_at"] == old.replace(tzinfo=UTC)
        assert row["updated_at"] > old.replace(tzinfo=UTC)

        fresh = Skill(name="Dancing")
        await user.related("skills").save(fresh)
        rows = await user.related("skills").pivot_query().where("skill_id", fresh.id)
        assert rows[0]["created_at"] is not None
        assert rows[0]["created_at"] == rows[0]["updated_at"]

    @pytest.mark.parametrize(
        ("stamps", "created", "updated"),
        [
            ({"created_at": True, "updated_at": False}, True, False),
            ({"created_at": False, "updated_at": True}, False, True),
            (False, False, False),
        ],
    )
    async def test_disabled_timestamps_are_not_set(
        self, database: Database, stamps: Any, created: bool, updated: bool
    ) -> None:
        model = users_model("StampUser", pivot_timestamps=stamps)
        user: Any = await model.create({"username": "virk"})
        skill = Skill(name="Programming")
        await user.related("skills").save(skill)
        rows = await db.from_("skill_user").select("created_at", "updated_at")
        assert (rows[0]["created_at"] is not None, rows[0]["updated_at"] is not None) == (
            created,
            updated,
        )

    async def test_save_rejects_another_model(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        with count_queries() as q, pytest.raises(LucidError) as exc:
            await virk.related("skills").save(User(username="nikk"))
        assert exc.value.code == "E_INVALID_ARGUMENT"
        assert q.count == 0

    async def test_failed_save_leaves_nothing(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        skill = Skill(name="Programming")
        with pytest.raises(QueryError):
            await virk.related("skills").save(skill, pivot_attributes={"nope": 1})
        assert await count("skills") == 0
        assert await count("skill_user") == 0


# ----------------------------------------------------------------------------------------------
class TestManyToManySaveMany:
    async def test_save_many(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        skills = [Skill(name="Programming"), Skill(name="Cooking")]
        with count_queries() as q:
            returned = await virk.related("skills").save_many(skills)
        assert returned == skills
        assert all(s.is_persisted for s in skills)
        # Two related inserts, the existence check, one multi-row pivot insert.
        assert statements(q.sqls) == ["INSERT", "INSERT", "SELECT", "INSERT"]
        assert await pivot_rows() == [(virk.id, skills[0].id, None), (virk.id, skills[1].id, None)]
        assert virk.trx is None and skills[0].trx is None

    async def test_save_many_with_pivot_attributes(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        skills = [Skill(name="Programming"), Skill(name="Cooking"), Skill(name="Singing")]
        await virk.related("skills").save_many(
            skills, True, [{"proficiency": "Beginner"}, {}, {"proficiency": "Master"}]
        )
        assert await pivot_rows() == [
            (virk.id, skills[0].id, "Beginner"),
            (virk.id, skills[1].id, None),
            (virk.id, skills[2].id, "Master"),
        ]

    async def test_save_many_twice(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        skills = [Skill(name="Programming"), Skill(name="Cooking")]
        await virk.related("skills").save_many(skills)
        await virk.related("skills").save_many(skills)
        assert len(await pivot_rows()) == 2
        await virk.related("skills").save_many(
            skills, pivot_attributes=[{"proficiency": "Master"}, {}]
        )
        assert await pivot_rows() == [
            (virk.id, skills[0].id, "Master"),
            (virk.id, skills[1].id, None),
        ]
        await virk.related("skills").save_many(skills, check_existing=False)
        assert len(await pivot_rows()) == 4

    async def test_save_many_when_another_parent_has_the_link(self, database: Database) -> None:
        virk, nikk = await make_users("virk", "nikk")
        skills = [Skill(name="Programming"), Skill(name="Cooking")]
        await nikk.related("skills").save_many(skills)
        await virk.related("skills").save_many(skills)
        assert await pivot_rows() == [
            (nikk.id, skills[0].id, None),
            (nikk.id, skills[1].id, None),
            (virk.id, skills[0].id, None),
            (virk.id, skills[1].id, None),
        ]

    async def test_save_many_inside_the_parents_transaction(self, database: Database) -> None:
        trx = await db.transaction()
        user = User(username="virk")
        user.use_transaction(trx)
        await user.save()
        other = User(username="nikk")
        other.use_transaction(trx)
        skills = [Skill(name="Programming"), Skill(name="Cooking")]
        await user.related("skills").save_many(skills)
        await other.related("skills").save_many(skills)
        assert user.trx is trx and other.trx is trx
        assert not trx.is_completed
        assert await trx.from_("skill_user").count_rows() == 4
        await trx.rollback()
        assert await count("users") == 0
        assert await count("skills") == 0
        assert await count("skill_user") == 0

    async def test_pivot_attributes_must_match_the_instances(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        with count_queries() as q, pytest.raises(LucidError) as exc:
            await virk.related("skills").save_many([Skill(name="a"), Skill(name="b")], True, [{}])
        assert exc.value.code == "E_INVALID_ARGUMENT"
        assert q.count == 0

    async def test_failed_save_many_leaves_nothing(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        skills = [Skill(name="Programming"), Skill(name="Cooking")]
        with pytest.raises(QueryError):
            await virk.related("skills").save_many(skills, False, [{}, {"nope": 1}])
        assert await count("skills") == 0
        assert await count("skill_user") == 0


# ----------------------------------------------------------------------------------------------
class TestManyToManyCreate:
    async def test_create(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        with count_queries() as q:
            skill = await virk.related("skills").create({"name": "Programming"})
        assert statements(q.sqls) == ["INSERT", "INSERT"]
        assert isinstance(skill, Skill) and skill.is_persisted
        assert skill.name == "Programming"
        assert await pivot_rows() == [(virk.id, skill.id, None)]
        assert virk.trx is None and skill.trx is None

    async def test_create_with_pivot_attributes(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        skill = await virk.related("skills").create({"name": "Programming"}, {"proficiency": "X"})
        assert await pivot_rows() == [(virk.id, skill.id, "X")]

    async def test_create_in_a_custom_transaction(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        trx = await db.transaction()
        skill = await virk.related("skills").create({"name": "Programming"}, client=trx)
        assert skill.trx is trx
        assert virk.trx is trx
        await trx.rollback()
        assert await count("skills") == 0
        assert await count("skill_user") == 0
        assert virk.trx is None

    async def test_create_with_custom_keys(self, database: Database) -> None:
        team = await Team.create({"code": 700, "name": "Reds"})
        player = await team.related("players").create({"uid": 42, "name": "alice"}, {"role": "x"})
        rows = await db.from_("m2m_team_players").select("team_code", "player_uid", "role")
        assert rows == [{"team_code": 700, "player_uid": 42, "role": "x"}]
        assert [p.id for p in await team.related("players").query()] == [player.id]

    async def test_unknown_attribute_raises_before_any_sql(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        with count_queries() as q, pytest.raises(LucidError) as exc:
            await virk.related("skills").create({"nope": 1})
        assert exc.value.code == "E_UNKNOWN_ATTRIBUTE"
        assert q.count == 0

    async def test_failed_create_leaves_nothing(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        with pytest.raises(QueryError):
            await virk.related("skills").create({"name": "Programming"}, {"nope": 1})
        assert await count("skills") == 0


# ----------------------------------------------------------------------------------------------
class TestManyToManyCreateMany:
    async def test_create_many(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        with count_queries() as q:
            skills = await virk.related("skills").create_many(
                [{"name": "Programming"}, {"name": "Cooking"}]
            )
        assert [s.name for s in skills] == ["Programming", "Cooking"]
        assert all(s.is_persisted for s in skills)
        # One multi-row insert of the related rows, one of the pivot rows.
        assert statements(q.sqls) == ["INSERT", "INSERT"]
        assert await pivot_rows() == [(virk.id, skills[0].id, None), (virk.id, skills[1].id, None)]

    async def test_create_many_with_pivot_attributes(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        skills = await virk.related("skills").create_many(
            [{"name": "Programming"}, {"name": "Cooking"}, {"name": "Singing"}],
            [{"proficiency": "Beginner"}, {}, {"proficiency": "Master"}],
        )
        assert await pivot_rows() == [
            (virk.id, skills[0].id, "Beginner"),
            (virk.id, skills[1].id, None),
            (virk.id, skills[2].id, "Master"),
        ]

    async def test_create_many_in_a_custom_transaction(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        async with db.transaction() as trx:
            await virk.related("skills").create_many([{"name": "a"}, {"name": "b"}], client=trx)
            await trx.rollback()
        assert await count("skills") == 0
        assert await count("skill_user") == 0

    async def test_create_many_of_nothing(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        with count_queries() as q:
            assert await virk.related("skills").create_many([]) == []
        assert q.count == 0

    async def test_failed_create_many_leaves_nothing(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        with pytest.raises(QueryError):
            await virk.related("skills").create_many(
                [{"name": "a"}, {"name": "b"}], [{}, {"nope": 1}]
            )
        assert await count("skills") == 0
        assert await count("skill_user") == 0

    async def test_pivot_attributes_must_match_the_rows(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        with count_queries() as q, pytest.raises(LucidError) as exc:
            await virk.related("skills").create_many([{"name": "a"}], [{}, {}])
        assert exc.value.code == "E_INVALID_ARGUMENT"
        assert q.count == 0


# ----------------------------------------------------------------------------------------------
class TestManyToManyTransactions:
    async def test_writes_use_the_parents_transaction(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        a, b = await make_skills("a", "b")
        trx = await db.transaction()
        virk.use_transaction(trx)
        with count_queries() as q:
            await virk.related("skills").attach([a.id])
            await virk.related("skills").sync([a.id, b.id])
        assert q.count >= 3 and all(e.in_transaction for e in q.events)
        assert virk.trx is trx
        if database.dialect_name() != "sqlite":
            assert await count("skill_user") == 0
        await trx.rollback()
        assert await count("skill_user") == 0
        assert virk.trx is None

    async def test_a_failed_write_in_a_transaction_uses_a_savepoint(
        self, database: Database
    ) -> None:
        (virk,) = await make_users("virk")
        (programming,) = await make_skills("Programming")
        user = await StrictUser.find_or_fail(virk.id)
        async with db.transaction() as trx:
            await user.related("skills").attach([programming.id], client=trx)
            with pytest.raises(QueryError):
                await user.related("skills").attach([programming.id + 1000], client=trx)
            with pytest.raises(QueryError):
                # The related row is inserted, then the pivot insert fails: both roll back.
                await user.related("skills").save_many(
                    [Skill(name="Cooking")], False, [{"nope": 1}], client=trx
                )
            # Nothing of the failed calls, and the transaction is still usable.
            assert await trx.from_("skills").count_rows() == 1
            rows = await trx.from_("skill_user_strict").select("skill_id", "proficiency")
            assert rows == [{"skill_id": programming.id, "proficiency": None}]
        assert await pivot_rows("skill_user_strict") == [(virk.id, programming.id, None)]
        assert await count("skills") == 1


# ----------------------------------------------------------------------------------------------
class TestManyToManyUUIDKeys:
    async def test_uuid_related_keys(self, database: Database) -> None:
        owner = await Owner.create({"username": "virk"})
        phone = await Gadget.create({"uuid": uuid.uuid4(), "name": "phone"})
        watch = await Gadget.create({"uuid": uuid.uuid4(), "name": "watch"})
        await owner.related("gadgets").attach({phone.uuid: {"color": "red"}})
        # The same id as text: recognised as the existing link (updated, not duplicated).
        await owner.related("gadgets").sync({str(phone.uuid): {"color": "blue"}, watch.uuid: {}})
        rows = await db.from_("m2m_gadget_user").select("gadget_uuid", "color").order_by("id")
        assert rows == [
            {"gadget_uuid": str(phone.uuid), "color": "blue"},
            {"gadget_uuid": str(watch.uuid), "color": None},
        ]
        owners = await Owner.query().preload("gadgets", lambda q: q.order_by("name"))
        gadgets = owners[0].gadgets
        assert [g.uuid for g in gadgets] == [phone.uuid, watch.uuid]
        assert gadgets[0].extras["pivot_gadget_uuid"] == phone.uuid
        assert gadgets[0].extras["pivot_color"] == "blue"
        assert await owner.related("gadgets").detach([str(watch.uuid)]) == 1
        assert [o.id for o in await Owner.query().has("gadgets")] == [owner.id]
