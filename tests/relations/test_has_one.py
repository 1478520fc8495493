"""has_one (SPEC §5), ported from Lucid's ``test/orm/model_has_one.spec.ts``: keys and boot, the
relation object's matching API, the related query, subqueries, preload, lazy load, the has
family, aggregates, save/create/first_or_create/update_or_create, ``on_query`` and
serialization."""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest

from lucid_orm import (
    BaseModel,
    LucidError,
    RelationNotLoadedError,
    before,
    belongs_to,
    column,
    has_one,
    scope,
)
from lucid_orm.database import Database
from lucid_orm.orm.relations.has_one import HasOneQueryBuilder
from lucid_orm.relations import BelongsTo, HasOne
from tests import models
from tests.helpers import count_queries
from tests.models import Country, create_each


class Profile(models.Profile):
    user: BelongsTo[User] = belongs_to(lambda: User)

    @scope
    def named(query: Any, name: str) -> None:
        query.where("display_name", name)


class StrictProfile(BaseModel):
    """A profile whose save fails without a display name: makes a write fail midway."""

    table = "profiles"
    id: int = column(is_primary=True)
    user_id: int | None = column()
    display_name: str | None = column()

    @before("save")
    def require_name(profile: StrictProfile) -> None:
        if not profile.display_name:
            raise LucidError("a profile needs a display name")


class Identity(BaseModel):
    id: int = column(is_primary=True)
    user_id: int | None = column()
    provider: str | None = column()


class User(models.User):
    parent_id: int | None = column()

    profile: HasOne[Profile] = has_one(lambda: Profile)
    strict_profile: HasOne[StrictProfile] = has_one(lambda: StrictProfile)
    identity: HasOne[Identity] = has_one(lambda: Identity)
    child: HasOne[User] = has_one(lambda: User, foreign_key="parent_id")
    country: BelongsTo[Country] = belongs_to(lambda: Country)


make_users = partial(create_each, User)


async def table_rows(database: Database, table: str, *columns: str) -> list[dict[str, Any]]:
    return await database.from_(table).select(*columns).order_by("id")


def error_of(excinfo: pytest.ExceptionInfo[LucidError]) -> tuple[str, str]:
    return excinfo.value.code, str(excinfo.value)


class TestHasOneBoot:
    async def test_default_keys(self, database: Database) -> None:
        relation = User.get_relation("profile")
        relation.boot()
        assert relation.booted
        assert relation.type == "hasOne"
        assert relation.model is User
        assert relation.related_model() is Profile
        assert (relation.local_key, relation.local_key_column_name) == ("id", "id")
        assert (relation.foreign_key, relation.foreign_key_column_name) == ("user_id", "user_id")
        assert relation.serialize_as == "profile"

    async def test_custom_keys_with_column_names(self, database: Database) -> None:
        class Account(BaseModel):
            table = "users"
            id: int = column(is_primary=True)
            uid: str | None = column(column_name="username")
            badge: HasOne[Badge] = has_one(lambda: Badge, local_key="uid", foreign_key="owner_uid")

        class Badge(BaseModel):
            table = "profiles"
            id: int = column(is_primary=True)
            owner_uid: str | None = column(column_name="display_name")

        relation = Account.get_relation("badge")
        relation.boot()
        assert (relation.local_key, relation.local_key_column_name) == ("uid", "username")
        assert (relation.foreign_key, relation.foreign_key_column_name) == (
            "owner_uid",
            "display_name",
        )
        virk = await Account.create({"uid": "virk"})
        await Account.create({"uid": "nikk"})
        await Badge.create({"owner_uid": "virk"})
        with count_queries() as q:
            accounts = await Account.query().preload("badge").order_by("id")
        assert q.count == 2
        assert [a.badge.owner_uid if a.badge else None for a in accounts] == ["virk", None]
        badge = await virk.related("badge").create({})
        assert badge.owner_uid == "virk"

    async def test_missing_foreign_key_raises_at_first_use(self, database: Database) -> None:
        class Note(BaseModel):
            table = "tags"
            id: int = column(is_primary=True)

        class Owner(BaseModel):
            table = "users"
            id: int = column(is_primary=True)
            note: HasOne[Note] = has_one(lambda: Note)

        relation = Owner.get_relation("note")
        assert not relation.booted
        message = '"Owner.note" expects "owner_id" to exist on "Note" model, but is missing'
        with pytest.raises(LucidError) as excinfo:
            relation.boot()
        assert error_of(excinfo) == ("E_MISSING_MODEL_ATTRIBUTE", message)
        with pytest.raises(LucidError) as excinfo:
            await Owner.query().has("note")
        assert error_of(excinfo) == ("E_MISSING_MODEL_ATTRIBUTE", message)

    async def test_missing_local_key(self, database: Database) -> None:
        class Owner(BaseModel):
            table = "users"
            id: int = column(is_primary=True)
            profile: HasOne[Profile] = has_one(lambda: Profile, local_key="uid")

        with pytest.raises(LucidError) as excinfo:
            Owner.get_relation("profile").boot()
        assert error_of(excinfo) == (
            "E_MISSING_MODEL_ATTRIBUTE",
            '"Owner.profile" expects "uid" to exist on "Owner" model, but is missing',
        )

    async def test_relation_is_cloned_with_its_options_onto_subclasses(
        self, database: Database
    ) -> None:
        class BaseUser(BaseModel):
            table = "users"
            id: int = column(is_primary=True)
            username: str | None = column()
            card: HasOne[Profile] = has_one(
                lambda: Profile, foreign_key="user_id", serialize_as="user_card"
            )

        class SubUser(BaseUser):
            table = "users"

        base_rel, sub_rel = BaseUser.get_relation("card"), SubUser.get_relation("card")
        assert sub_rel is not base_rel
        sub_rel.boot()
        assert sub_rel.model is SubUser and base_rel.model is BaseUser
        assert sub_rel.related_model() is Profile
        assert sub_rel.foreign_key == "user_id"
        assert sub_rel.serialize_as == "user_card"

        user = await SubUser.create({"username": "virk"})
        profile = await user.related("card").create({"display_name": "v"})
        assert profile.user_id == user.id
        users = await SubUser.query().preload("card")
        assert isinstance(users[0], SubUser)
        assert users[0].card is not None and users[0].card.id == profile.id
        assert users[0].serialize()["user_card"]["id"] == profile.id


class TestHasOneSetRelations:
    async def test_set_related(self, database: Database) -> None:
        relation = User.get_relation("profile")
        user, profile = User(id=1), Profile(user_id=1)
        relation.set_related(user, profile)
        assert user.profile is profile
        relation.set_related(user, None)
        assert user.profile is None

    async def test_push_related_replaces_the_value(self, database: Database) -> None:
        relation = User.get_relation("profile")
        user = User(id=1)
        profile, profile1 = Profile(user_id=1), Profile(user_id=1)
        relation.set_related(user, profile)
        relation.push_related(user, profile1)
        assert user.profile is profile1

    async def test_set_related_for_many(self, database: Database) -> None:
        relation = User.get_relation("profile")
        user, user1, user2 = User(id=1), User(id=2), User(id=3)
        profile, profile1 = Profile(user_id=1), Profile(user_id=2)
        relation.set_related_for_many([user, user1, user2], [profile1, profile])
        assert user.profile is profile
        assert user1.profile is profile1
        assert user2.profile is None

    async def test_a_list_is_rejected(self, database: Database) -> None:
        relation = User.get_relation("profile")
        user = User(id=1)
        for method in (relation.set_related, relation.push_related):
            with pytest.raises(LucidError) as excinfo:
                method(user, [Profile(user_id=1)])
            assert error_of(excinfo) == (
                "E_RUNTIME_EXCEPTION",
                '"User.profile" cannot reference more than one instance of "Profile" model',
            )
        assert "profile" not in user.preloaded


class TestHasOneRelationNotLoaded:
    async def test_reading_an_unloaded_relation_raises(self, database: Database) -> None:
        (user,) = await make_users("virk")
        with count_queries() as q, pytest.raises(RelationNotLoadedError) as excinfo:
            user.profile
        assert q.count == 0
        assert isinstance(excinfo.value, AttributeError)
        assert excinfo.value.code == "E_RELATION_NOT_LOADED"
        assert str(excinfo.value) == (
            'Relation "profile" of "User" is not loaded: use preload("profile") '
            'or await user.load("profile")'
        )
        assert getattr(user, "profile", None) is None


class TestHasOneQueryBuilder:
    async def test_related_query(self, database: Database) -> None:
        virk, nikk = await make_users("virk", "nikk")
        await Profile.create({"user_id": nikk.id, "display_name": "nikk"})
        mine = await Profile.create({"user_id": virk.id, "display_name": "virk"})
        query = virk.related("profile").query()
        assert isinstance(query, HasOneQueryBuilder)
        with count_queries() as q:
            profile = await query.first()
        assert q.count == 1
        assert profile is not None and profile.id == mine.id

    async def test_or_where_cannot_escape_the_relation(self, database: Database) -> None:
        virk, nikk = await make_users("virk", "nikk")
        await Profile.create({"user_id": nikk.id, "display_name": "nikk"})
        rows = await virk.related("profile").query().where("id", 0).or_where("display_name", "nikk")
        assert rows == []

    async def test_update_and_delete_are_scoped(self, database: Database) -> None:
        virk, nikk = await make_users("virk", "nikk")
        await Profile.create({"user_id": virk.id, "display_name": "virk"})
        await Profile.create({"user_id": nikk.id, "display_name": "nikk"})
        with count_queries() as q:
            assert await virk.related("profile").query().update({"bio": "hi"}) == 1
        assert q.count == 1
        assert await table_rows(database, "profiles", "user_id", "bio") == [
            {"user_id": virk.id, "bio": "hi"},
            {"user_id": nikk.id, "bio": None},
        ]
        with count_queries() as q:
            assert await virk.related("profile").query().delete() == 1
        assert q.count == 1
        assert await table_rows(database, "profiles", "user_id") == [{"user_id": nikk.id}]

    async def test_null_local_key_runs_no_query(self, database: Database) -> None:
        await Profile.create({"user_id": None, "display_name": "orphan"})
        user = User(id=None, username="virk")
        with count_queries() as q:
            assert await user.related("profile").query().first() is None
            assert await user.related("profile").query().delete() == 0
        assert q.count == 0
        assert len(await table_rows(database, "profiles", "id")) == 1

    async def test_absent_local_key_raises(self, database: Database) -> None:
        await make_users("virk")
        user = await User.query().select("username").first_or_fail()
        for action, run in (
            ("select", lambda: user.related("profile").query().first()),
            ("update", lambda: user.related("profile").query().update({"bio": "x"})),
            ("delete", lambda: user.related("profile").query().delete()),
        ):
            with count_queries() as q, pytest.raises(LucidError) as excinfo:
                await run()
            assert q.count == 0
            assert error_of(excinfo) == (
                "E_MISSING_MODEL_ATTRIBUTE",
                f'Cannot {action} "profile", value of "User.id" is undefined',
            )

    async def test_paginate_raises(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        with count_queries() as q, pytest.raises(LucidError) as excinfo:
            await virk.related("profile").query().paginate(1)
        assert q.count == 0
        assert error_of(excinfo) == (
            "E_RUNTIME_EXCEPTION",
            'Cannot paginate a hasOne relationship "(profile)"',
        )

    async def test_clone(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        await Profile.create({"user_id": virk.id, "display_name": "virk"})
        query = virk.related("profile").query()
        cloned = query.clone().where("display_name", "nobody")
        assert isinstance(cloned, HasOneQueryBuilder)
        assert await cloned == []
        assert len(await query) == 1

    async def test_scopes_on_the_related_query(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        await Profile.create({"user_id": virk.id, "display_name": "virk"})
        assert await virk.related("profile").query().apply(lambda s: s.named("x")).first() is None
        found = await virk.related("profile").query().apply(lambda s: s.named("virk")).first()
        assert found is not None


class TestHasOneSubQuery:
    async def test_executing_a_sub_query_raises(self, database: Database) -> None:
        relation = User.get_relation("profile")
        relation.boot()
        client = database.connection()
        with count_queries() as q:
            for run in (
                lambda: relation.sub_query(client).exec(),
                lambda: relation.sub_query(client).first(),
                lambda: relation.sub_query(client).paginate(1),
                lambda: relation.sub_query(client).update({"bio": "x"}),
                lambda: relation.sub_query(client).delete(),
            ):
                with pytest.raises(LucidError) as excinfo:
                    await run()
                assert error_of(excinfo) == (
                    "E_RUNTIME_EXCEPTION",
                    "Cannot execute relationship subqueries",
                )
        assert q.count == 0


class TestHasOnePreload:
    async def test_preload_one_query_for_many_parents(self, database: Database) -> None:
        users = await make_users("a", "b", "c", "d")
        for user in users[:3]:
            await Profile.create({"user_id": user.id, "display_name": user.username})
        with count_queries() as q:
            loaded = await User.query().preload("profile").order_by("id")
        assert q.count == 2
        assert [u.profile.display_name if u.profile else None for u in loaded] == [
            "a",
            "b",
            "c",
            None,
        ]
        assert all(u.profile is None or u.profile.user_id == u.id for u in loaded)

    async def test_no_related_rows(self, database: Database) -> None:
        await make_users("virk")
        users = await User.query().preload("profile")
        assert users[0].profile is None
        assert users[0].serialize()["profile"] is None

    async def test_no_parents_no_query(self, database: Database) -> None:
        def callback(query: Any) -> None:
            raise AssertionError("not expected to run")

        with count_queries() as q:
            assert await User.query().preload("profile", callback) == []
        assert q.count == 1

    async def test_constraints(self, database: Database) -> None:
        virk, nikk = await make_users("virk", "nikk")
        await Profile.create({"user_id": virk.id, "display_name": "virk"})
        await Profile.create({"user_id": nikk.id, "display_name": "nikk"})
        users = await User.query().preload("profile", lambda q: q.where("display_name", "nikk"))
        by_name = {u.username: u.profile for u in users}
        assert by_name["virk"] is None
        assert by_name["nikk"] is not None and by_name["nikk"].display_name == "nikk"

    async def test_cherry_picked_columns_still_match(self, database: Database) -> None:
        virk, nikk = await make_users("virk", "nikk")
        await Profile.create({"user_id": virk.id, "display_name": "virk", "bio": "b"})
        await Profile.create({"user_id": nikk.id, "display_name": "nikk"})
        users = await User.query().preload("profile", lambda q: q.select("display_name"))
        for user in users:
            assert user.profile is not None
            assert user.profile.display_name == user.username
            assert set(user.profile.attributes) == {"display_name", "user_id"}
            assert user.profile.extras == {}

    async def test_foreign_key_selected_explicitly(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        await Profile.create({"user_id": virk.id, "display_name": "virk"})
        users = await User.query().preload("profile", lambda q: q.select("display_name", "user_id"))
        assert users[0].profile is not None
        assert set(users[0].profile.attributes) == {"display_name", "user_id"}

    async def test_unselected_local_key_raises(self, database: Database) -> None:
        await make_users("virk")
        with pytest.raises(LucidError) as excinfo:
            await User.query().select("username").preload("profile")
        assert error_of(excinfo) == (
            "E_MISSING_MODEL_ATTRIBUTE",
            'Cannot preload "profile", value of "User.id" is undefined',
        )

    async def test_self_referenced_nested_preload(self, database: Database) -> None:
        virk, nikk = await make_users("virk", "nikk")
        await Profile.create({"user_id": virk.id, "display_name": "virk"})
        await Profile.create({"user_id": nikk.id, "display_name": "nikk"})
        with count_queries() as q:
            users = await User.query().preload("profile", lambda q: q.preload("user"))
        assert q.count == 3
        for user in users:
            assert user.profile is not None and user.profile.user is not None
            assert user.profile.user.id == user.id
        with count_queries() as q:
            dotted = await User.query().preload("profile.user.country")
        assert q.count == 3  # no country key set: the third level runs no query
        assert all(u.profile and u.profile.user and u.profile.user.country is None for u in dotted)

    async def test_self_relation(self, database: Database) -> None:
        root = await User.create({"username": "root"})
        child = await User.create({"username": "child", "parent_id": root.id})
        with count_queries() as q:
            users = await User.query().preload("child").order_by("id")
        assert q.count == 2
        assert users[0].child is not None and users[0].child.id == child.id
        assert users[1].child is None

    async def test_sideloaded_values_reach_related_rows(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        await Profile.create({"user_id": virk.id, "display_name": "virk"})
        users = await User.query().preload("profile").sideload({"tenant": 1})
        assert users[0].sideloaded == {"tenant": 1}
        assert users[0].profile is not None
        assert users[0].profile.sideloaded == {"tenant": 1}

    async def test_group_limit_raises(self, database: Database) -> None:
        await make_users("virk")
        with pytest.raises(LucidError) as excinfo:
            await User.query().preload("profile", lambda q: q.group_limit(1))
        assert error_of(excinfo) == (
            "E_RUNTIME_EXCEPTION",
            'Cannot apply group_limit or group_order_by on a hasOne relationship "(profile)"',
        )

    async def test_preload_inside_a_transaction(self, database: Database) -> None:
        trx = await database.transaction()
        try:
            user = await User.create({"username": "virk"}, client=trx)
            await Profile.create({"user_id": user.id, "display_name": "v"}, client=trx)
            with count_queries() as q:
                users = await User.query(client=trx).preload("profile")
            assert q.count == 2 and all(e.in_transaction for e in q.events)
            assert users[0].profile is not None and users[0].profile.trx is trx
        finally:
            await trx.rollback()
        assert await table_rows(database, "profiles", "id") == []


class TestHasOneLazyLoad:
    async def test_load_and_load_once(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        await Profile.create({"user_id": virk.id, "display_name": "virk"})
        with count_queries() as q:
            await virk.load_once("profile")
            await virk.load_once("profile")
        assert q.count == 1
        assert virk.profile is not None and virk.profile.user_id == virk.id

    async def test_load_nested_through_the_loader(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        await Profile.create({"user_id": virk.id, "display_name": "virk"})
        await Identity.create({"user_id": virk.id, "provider": "github"})
        with count_queries() as q:
            await virk.load(
                lambda loader: loader.load("profile", lambda q: q.preload("user")).load("identity")
            )
        assert q.count == 3
        assert virk.profile is not None and virk.profile.user is not None
        assert virk.profile.user.id == virk.id
        assert virk.identity is not None and virk.identity.provider == "github"

    async def test_load_passes_sideloaded_values_down(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        await Profile.create({"user_id": virk.id, "display_name": "virk"})
        user = (await User.query().sideload({"tenant": 2}))[0]
        await user.load("profile")
        assert user.profile is not None
        assert user.profile.sideloaded == {"tenant": 2}

    async def test_load_on_an_unpersisted_instance(self, database: Database) -> None:
        with pytest.raises(LucidError) as excinfo:
            await User(username="virk").load("profile")
        assert error_of(excinfo) == (
            "E_RUNTIME_EXCEPTION",
            "Cannot lazy load relationship for an unpersisted model instance",
        )


class TestHasOneHas:
    async def _data(self) -> tuple[User, User, User]:
        virk, nikk, romain = await make_users("virk", "nikk", "romain")
        await Profile.create({"user_id": virk.id, "display_name": "Virk", "bio": "personal"})
        await Profile.create({"user_id": nikk.id, "display_name": "@nikk", "bio": "social"})
        await Profile.create({"user_id": nikk.id, "display_name": "Nikk", "bio": "personal"})
        return virk, nikk, romain

    async def test_has(self, database: Database) -> None:
        await self._data()
        with count_queries() as q:
            users = await User.query().has("profile").order_by("id")
        assert q.count == 1
        assert [u.username for u in users] == ["virk", "nikk"]

    async def test_has_with_count(self, database: Database) -> None:
        await self._data()
        assert [u.username for u in await User.query().has("profile", ">", 1)] == ["nikk"]
        assert [u.username for u in await User.query().has("profile", "<", 1)] == ["romain"]

    async def test_where_has(self, database: Database) -> None:
        await self._data()
        users = await User.query().where_has("profile", lambda q: q.where("bio", "social"))
        assert [u.username for u in users] == ["nikk"]
        users = await User.query().where_has(
            "profile", lambda q: q.where("bio", "personal"), "=", 1
        )
        assert sorted(u.username for u in users) == ["nikk", "virk"]

    async def test_doesnt_have_family(self, database: Database) -> None:
        await self._data()
        assert [u.username for u in await User.query().doesnt_have("profile")] == ["romain"]
        social = lambda q: q.where("bio", "social")  # noqa: E731
        users = await User.query().where_doesnt_have("profile", social).order_by("id")
        assert [u.username for u in users] == ["virk", "romain"]
        users = await User.query().where("username", "romain").or_has("profile").order_by("id")
        assert len(users) == 3
        users = await User.query().where("username", "virk").or_where_has("profile", social)
        assert sorted(u.username for u in users) == ["nikk", "virk"]
        users = await User.query().where("username", "virk").or_doesnt_have("profile")
        assert sorted(u.username for u in users) == ["romain", "virk"]
        users = await User.query().where("username", "nikk").or_where_doesnt_have("profile", social)
        assert len(users) == 3

    async def test_self_referenced_has(self, database: Database) -> None:
        root = await User.create({"username": "root"})
        await User.create({"username": "child", "parent_id": root.id})
        users = await User.query().has("child")
        assert [u.id for u in users] == [root.id]
        users = await User.query().where_has("child", lambda q: q.where("username", "child"))
        assert [u.id for u in users] == [root.id]


class TestHasOneWithCount:
    async def test_with_count(self, database: Database) -> None:
        virk, _nikk = await make_users("virk", "nikk")
        await Profile.create({"user_id": virk.id, "display_name": "virk"})
        with count_queries() as q:
            users = await User.query().with_count("profile").order_by("id")
        assert q.count == 1
        counts = [u.extras["profile_count"] for u in users]
        assert counts == [1, 0]
        assert all(type(c) is int for c in counts)

    async def test_with_count_alias_and_cherry_picked_columns(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        await Profile.create({"user_id": virk.id, "display_name": "virk"})
        users = (
            await User.query()
            .select("username")
            .with_count("profile", lambda q: q.where("display_name", "virk").as_("virk_profiles"))
        )
        assert users[0].attributes == {"username": "virk"}
        assert users[0].extras == {"virk_profiles": 1}

    async def test_with_aggregate(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        profile = await Profile.create({"user_id": virk.id, "display_name": "virk"})
        users = await User.query().with_aggregate(
            "profile", lambda q: q.max("id").as_("profile_id")
        )
        assert users[0].extras == {"profile_id": profile.id}
        with pytest.raises(LucidError) as excinfo:
            User.query().with_aggregate("profile", lambda q: q.max("id"))
        assert str(excinfo.value) == (
            '"with_aggregate" callback must define the alias for the aggregate query'
        )

    async def test_load_count(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        await Profile.create({"user_id": virk.id, "display_name": "virk"})
        with count_queries() as q:
            await virk.load_count("profile")
        assert q.count == 1
        assert virk.extras["profile_count"] == 1
        assert type(virk.extras["profile_count"]) is int

    async def test_load_count_of_self_referenced_relation(self, database: Database) -> None:
        root = await User.create({"username": "root"})
        child = await User.create({"username": "child", "parent_id": root.id})
        await root.load_count("child")
        await child.load_count("child")
        assert (root.extras["child_count"], child.extras["child_count"]) == (1, 0)
        users = await User.query().with_count("child").order_by("id")
        assert [u.extras["child_count"] for u in users] == [1, 0]


class TestHasOneSave:
    async def test_save_with_a_persisted_parent(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        profile = Profile(display_name="Hvirk")
        with count_queries() as q:
            await virk.related("profile").save(profile)
        assert q.count == 1
        assert profile.is_persisted
        assert profile.user_id == virk.id
        assert await table_rows(database, "profiles", "user_id", "display_name") == [
            {"user_id": virk.id, "display_name": "Hvirk"}
        ]

    async def test_save_persists_a_new_parent_first(self, database: Database) -> None:
        user = User(username="virk")
        profile = Profile(display_name="Hvirk")
        with count_queries() as q:
            await user.related("profile").save(profile)
        assert q.count == 2
        assert user.is_persisted and profile.user_id == user.id

    async def test_save_is_one_managed_transaction(self, database: Database) -> None:
        user = User(username="virk")
        with pytest.raises(LucidError, match="a profile needs a display name"):
            await user.related("strict_profile").save(StrictProfile())
        assert await table_rows(database, "users", "id") == []
        assert await table_rows(database, "profiles", "id") == []

    async def test_save_uses_the_parent_transaction(self, database: Database) -> None:
        trx = await database.transaction()
        user = User(username="virk")
        user.use_transaction(trx)
        with pytest.raises(LucidError):
            await user.related("strict_profile").save(StrictProfile())
        assert not trx.is_completed
        assert user.trx is trx
        await trx.rollback()
        assert await table_rows(database, "users", "id") == []
        assert await table_rows(database, "profiles", "id") == []

    async def test_failure_inside_a_given_trx_rolls_back_only_that_call(
        self, database: Database
    ) -> None:
        async with database.transaction() as trx:
            user = await User.create({"username": "virk"}, client=trx)
            with pytest.raises(LucidError):
                await user.related("strict_profile").save(StrictProfile(), client=trx)
            saved = await user.related("strict_profile").save(
                StrictProfile(display_name="ok"), client=trx
            )
            assert saved.is_persisted
        assert await table_rows(database, "users", "username") == [{"username": "virk"}]
        assert await table_rows(database, "profiles", "display_name") == [{"display_name": "ok"}]


class TestHasOneCreate:
    async def test_create(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        with count_queries() as q:
            profile = await virk.related("profile").create({"display_name": "Hvirk"})
        assert q.count == 1
        assert isinstance(profile, Profile)
        assert profile.is_persisted and profile.user_id == virk.id

    async def test_create_is_one_managed_transaction(self, database: Database) -> None:
        user = User(username="virk")
        with pytest.raises(LucidError):
            await user.related("strict_profile").create({})
        assert await table_rows(database, "users", "id") == []
        assert await table_rows(database, "profiles", "id") == []

    async def test_create_with_the_parent_transaction(self, database: Database) -> None:
        trx = await database.transaction()
        user = User(username="virk")
        user.use_transaction(trx)
        profile = await user.related("profile").create({"display_name": "Hvirk"})
        assert not trx.is_completed
        assert profile.trx is trx
        await trx.rollback()
        assert await table_rows(database, "users", "id") == []
        assert await table_rows(database, "profiles", "id") == []
        assert user.trx is None
        assert profile.trx is None

    async def test_create_with_client_trx(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        async with database.transaction() as trx:
            with count_queries() as q:
                await virk.related("profile").create({"display_name": "v"}, client=trx)
            assert [e.in_transaction for e in q.events] == [True]
            await trx.rollback()
        assert await table_rows(database, "profiles", "id") == []

    async def test_create_rejects_an_unknown_attribute(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        with count_queries() as q, pytest.raises(LucidError) as excinfo:
            await virk.related("profile").create({"nope": 1})
        assert excinfo.value.code == "E_UNKNOWN_ATTRIBUTE"
        assert [s for s in q.sqls if "INSERT" in s.upper()] == []

    async def test_create_on_a_parent_without_key(self, database: Database) -> None:
        await make_users("virk")
        user = await User.query().select("username").first_or_fail()
        with pytest.raises(LucidError) as excinfo:
            await user.related("profile").create({"display_name": "x"})
        assert error_of(excinfo) == (
            "E_MISSING_MODEL_ATTRIBUTE",
            'Cannot persist "profile", value of "User.id" is undefined',
        )


class TestHasOneFirstOrCreate:
    async def test_creates_when_missing(self, database: Database) -> None:
        virk, nikk = await make_users("virk", "nikk")
        # Another user's row with the same values is not a match.
        await Profile.create({"user_id": nikk.id, "display_name": "Hvirk"})
        profile = await virk.related("profile").first_or_create({}, {"display_name": "Hvirk"})
        assert profile.is_persisted and profile.is_local
        assert profile.user_id == virk.id and profile.display_name == "Hvirk"
        assert len(await table_rows(database, "profiles", "id")) == 2

    async def test_returns_the_existing_row(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        await Profile.create({"user_id": virk.id, "display_name": "Hvirk"})
        profile = await virk.related("profile").first_or_create(
            {"display_name": "Hvirk"}, {"bio": "new"}
        )
        assert profile.is_persisted and not profile.is_local
        assert profile.user_id == virk.id and profile.bio is None
        assert len(await table_rows(database, "profiles", "id")) == 1

    async def test_search_and_payload_are_merged(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        await Profile.create({"user_id": virk.id, "display_name": "old"})
        profile = await virk.related("profile").first_or_create(
            {"display_name": "new"}, {"bio": "b"}
        )
        assert profile.is_local
        assert (profile.display_name, profile.bio, profile.user_id) == ("new", "b", virk.id)

    async def test_with_client_trx(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        trx = await database.transaction()
        with count_queries() as q:
            profile = await virk.related("profile").first_or_create(
                {}, {"display_name": "v"}, client=trx
            )
        assert all(e.in_transaction for e in q.events) and q.count == 2
        assert profile.is_persisted
        await trx.rollback()
        assert await table_rows(database, "profiles", "id") == []


class TestHasOneUpdateOrCreate:
    async def test_creates_when_missing(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        profile = await virk.related("profile").update_or_create({}, {"display_name": "Virk"})
        assert profile.is_persisted and profile.is_local
        assert profile.user_id == virk.id
        assert await table_rows(database, "profiles", "display_name") == [{"display_name": "Virk"}]

    async def test_updates_the_existing_row(self, database: Database) -> None:
        virk, nikk = await make_users("virk", "nikk")
        await Profile.create({"user_id": virk.id, "display_name": "Hvirk"})
        await Profile.create({"user_id": nikk.id, "display_name": "Hvirk"})
        profile = await virk.related("profile").update_or_create({}, {"display_name": "Virk"})
        assert profile.is_persisted and not profile.is_local
        assert profile.user_id == virk.id and profile.display_name == "Virk"
        assert await table_rows(database, "profiles", "user_id", "display_name") == [
            {"user_id": virk.id, "display_name": "Virk"},
            {"user_id": nikk.id, "display_name": "Hvirk"},
        ]

    async def test_update_or_create_in_the_parent_transaction(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        await Profile.create({"user_id": virk.id, "display_name": "old"})
        trx = await database.transaction()
        virk.use_transaction(trx)
        profile = await virk.related("profile").update_or_create({}, {"display_name": "new"})
        assert profile.display_name == "new" and not trx.is_completed
        await trx.rollback()
        assert await table_rows(database, "profiles", "display_name") == [{"display_name": "old"}]


class TestHasOneOnQuery:
    @staticmethod
    def model(log: list[tuple[bool, bool, bool]]) -> type[BaseModel]:
        def on_query(query: Any) -> None:
            log.append(
                (query.is_related_query, query.is_related_preload_query, query.is_related_sub_query)
            )
            query.where("bio", "twitter")

        class Owner(BaseModel):
            table = "users"
            id: int = column(is_primary=True)
            username: str | None = column()
            profile: HasOne[Profile] = has_one(
                lambda: Profile, foreign_key="user_id", on_query=on_query
            )

        return Owner

    async def test_preload(self, database: Database) -> None:
        log: list[tuple[bool, bool, bool]] = []
        Owner = self.model(log)
        owner = await Owner.create({"username": "virk"})
        await Profile.create({"user_id": owner.id, "bio": "github"})  # type: ignore[attr-defined]
        owners = await Owner.query().preload("profile")
        assert owners[0].profile is None  # type: ignore[attr-defined]
        assert log == [(True, True, False)]

    async def test_related_query_and_its_writes(self, database: Database) -> None:
        log: list[tuple[bool, bool, bool]] = []
        Owner = self.model(log)
        owner = await Owner.create({"username": "virk"})
        await Profile.create({"user_id": owner.id, "bio": "github"})  # type: ignore[attr-defined]
        # The callback's own group keeps the on_query filter.
        query = owner.related("profile").query().where(lambda q: q.where_not_null("id"))
        assert await query.first() is None
        assert await owner.related("profile").query().delete() == 0
        assert len(await table_rows(database, "profiles", "id")) == 1
        assert log == [(True, False, False)] * 2

    async def test_sub_queries(self, database: Database) -> None:
        log: list[tuple[bool, bool, bool]] = []
        Owner = self.model(log)
        owner = await Owner.create({"username": "virk"})
        await Profile.create({"user_id": owner.id, "bio": "github"})  # type: ignore[attr-defined]
        assert await Owner.query().has("profile") == []
        owners = await Owner.query().with_count("profile")
        assert owners[0].extras["profile_count"] == 0
        assert log == [(False, False, True)] * 2

    async def test_not_applied_to_writes(self, database: Database) -> None:
        log: list[tuple[bool, bool, bool]] = []
        Owner = self.model(log)
        owner = await Owner.create({"username": "virk"})
        await owner.related("profile").save(Profile(bio="github"))
        await owner.related("profile").create({"bio": "gitlab"})
        assert log == []
        assert len(await table_rows(database, "profiles", "id")) == 2

    async def test_not_applied_to_first_or_create_and_update_or_create(
        self, database: Database
    ) -> None:
        # Lucid runs these through the related model's own first_or_create/update_or_create.
        log: list[tuple[bool, bool, bool]] = []
        Owner = self.model(log)
        owner = await Owner.create({"username": "virk"})
        await Profile.create({"user_id": owner.id, "bio": "github"})  # type: ignore[attr-defined]
        found = await owner.related("profile").first_or_create({}, {"bio": "twitter"})
        assert not found.is_local and found.bio == "github"
        updated = await owner.related("profile").update_or_create({}, {"display_name": "v"})
        assert not updated.is_local and updated.display_name == "v"
        assert log == []
        assert len(await table_rows(database, "profiles", "id")) == 1


class TestHasOneSerialize:
    async def test_serialize(self, database: Database) -> None:
        (virk,) = await make_users("virk")
        await Profile.create({"user_id": virk.id, "display_name": "v"})
        user = (await User.query().preload("profile"))[0]
        assert user.serialize()["profile"]["display_name"] == "v"
        assert user.to_dict()["profile"]["display_name"] == "v"

    async def test_serialize_as_renames_and_none_hides(self, database: Database) -> None:
        class Owner(BaseModel):
            table = "users"
            id: int = column(is_primary=True)
            profile: HasOne[Profile] = has_one(
                lambda: Profile, foreign_key="user_id", serialize_as="card"
            )
            secret: HasOne[Profile] = has_one(
                lambda: Profile, foreign_key="user_id", serialize_as=None
            )

        owner = await Owner.create({})
        await Profile.create({"user_id": owner.id, "display_name": "v"})  # type: ignore[attr-defined]
        owner = (await Owner.query().preload("profile").preload("secret"))[0]
        data = owner.serialize()
        assert data["card"]["display_name"] == "v"
        assert "profile" not in data and "secret" not in data
