"""Model state (SPEC §3, §9): ``is_persisted``/``is_new``/``is_local``, ``dirty`` and
``original``, absent vs ``None`` attributes, ``extras``, ``fill`` vs ``merge``, unknown keys."""

from __future__ import annotations

from typing import Any

import pytest

from lucid_orm import LucidError, column
from lucid_orm.database import Database
from lucid_orm.orm import hydration
from lucid_orm.orm.state import ROW_ATTRS
from tests import models
from tests.helpers import count_queries


class User(models.BaseUser):
    email: str | None = column()
    points: int | None = column()
    meta: dict[str, Any] | None = column()


UNKNOWN = 'Cannot set "foo" on "User" model: it is not a column'


class TestNewInstance:
    def test_constructor_sets_the_given_attributes(self) -> None:
        user = User(username="virk", email=None)
        assert user.username == "virk"
        assert user.email is None
        assert user.attributes == {"username": "virk", "email": None}
        assert user.is_new and not user.is_persisted
        assert user.is_local
        assert not user.is_deleted
        assert user.is_dirty
        assert user.dirty == {"username": "virk", "email": None}
        assert user.original == {}
        assert user.extras == {}
        assert user.trx is None

    def test_unset_columns_read_as_none(self) -> None:
        user = User()
        assert user.id is None
        assert user.points is None
        assert user.attributes == {}
        assert not user.is_dirty

    def test_constructor_rejects_unknown_keys(self) -> None:
        with pytest.raises(LucidError) as info:
            User(foo=1)  # type: ignore[call-arg]
        assert info.value.code == "E_UNKNOWN_ATTRIBUTE"
        assert str(info.value) == UNKNOWN

    def test_attribute_assignment(self) -> None:
        user = User()
        user.points = 3
        assert user.attributes == {"points": 3}
        assert user.dirty == {"points": 3}


class TestPersistedInstance:
    async def test_fetched_instance_state(self, database: Database) -> None:
        created = await User.create({"username": "virk", "points": 1})
        user = await User.find_or_fail(created.id)
        assert user.is_persisted and not user.is_new
        assert not user.is_local
        assert not user.is_dirty
        assert user.dirty == {}
        assert user.attributes == {
            "id": created.id,
            "username": "virk",
            "email": None,
            "points": 1,
            "meta": None,
        }
        assert user.original == user.attributes

    async def test_created_instance_is_local(self, database: Database) -> None:
        user = await User.create({"username": "virk"})
        assert user.is_local
        assert user.is_persisted
        assert user.original == user.attributes
        assert user.original == {"username": "virk", "id": user.id}

    async def test_changes_show_in_dirty_and_original_keeps_the_old_value(
        self, database: Database
    ) -> None:
        await User.create({"username": "virk", "points": 1})
        user = await User.first_or_fail()
        user.points = 2
        assert user.is_dirty
        assert user.dirty == {"points": 2}
        assert user.original["points"] == 1
        user.points = 1
        assert not user.is_dirty
        user.email = None  # NULL in the database too
        assert not user.is_dirty

    async def test_original_is_a_copy(self, database: Database) -> None:
        user = await User.create({"username": "virk"})
        original = user.original
        original["username"] = "changed"
        assert user.original["username"] == "virk"


class TestHydratedRowNames:
    """Hydration keeps each row as the instance's ``original`` until it is read; the names of
    the row's values are left out when they are the model's columns in declaration order
    (state.py's ``ROW_ATTRS``). Every reader must see the same state either way."""

    async def test_rows_of_the_model_columns_leave_their_names_out(
        self, database: Database
    ) -> None:
        await User.create_many([{"username": "a", "points": 1}, {"username": "b", "points": 2}])
        users = await User.query().order_by("id")
        if hydration.FAST_PATHS:
            assert all(ROW_ATTRS not in u.__dict__ for u in users)
        assert [u.original for u in users] == [
            {"id": u.id, "username": n, "email": None, "points": p, "meta": None}
            for u, n, p in zip(users, "ab", (1, 2), strict=True)
        ]
        for u in users:
            u.points = (u.points or 0) + 10
        assert [u.dirty for u in users] == [{"points": 11}, {"points": 12}]
        with count_queries() as q:
            await User.update_many(users)
        assert q.count == 1
        assert not any(u.is_dirty for u in users)
        assert [u.points for u in await User.query().order_by("id")] == [11, 12]

    async def test_rows_of_another_shape_keep_their_names(self, database: Database) -> None:
        await User.create({"username": "a", "points": 1})
        # The columns in another order, and a subset: the names go with the row.
        for columns in (["points", "username", "id"], ["id", "points"]):
            user = await User.query().select(*columns).first_or_fail()
            if hydration.FAST_PATHS:
                assert user.__dict__[ROW_ATTRS] == tuple(columns)
            assert user.original == {c: getattr(user, c) for c in columns}
            user.points = 5
            assert user.dirty == {"points": 5}
            with count_queries() as q:
                await User.update_many([user])
            assert q.count == 1
            user.points = 1
            await user.save()
            assert not user.is_dirty


class TestAbsentVsNone:
    async def test_unselected_column_is_absent(self, database: Database) -> None:
        await User.create({"username": "virk"})
        user = await User.query().select("id", "email").first_or_fail()
        assert "email" in user.attributes
        assert user.email is None
        assert "username" not in user.attributes
        assert user.username is None
        assert user.attributes.keys() == {"id", "email"}
        assert user.serialize() == {"id": user.id, "email": None}

    async def test_setting_none_makes_it_present(self, database: Database) -> None:
        await User.create({"username": "virk"})
        user = await User.query().select("id").first_or_fail()
        user.username = None
        assert "username" in user.attributes
        assert user.dirty == {"username": None}
        with count_queries() as q:
            await user.save()
        assert q.count == 1
        assert (await User.first_or_fail()).username is None


class TestExtras:
    async def test_aggregate_lands_in_extras(self, database: Database) -> None:
        await User.create_many([{"username": "a"}, {"username": "b"}])
        [row] = await User.query().count("* as total")
        assert row.extras == {"total": 2}
        assert row.attributes == {}

    async def test_lazy_extras_read_once_into_a_kept_dict(self, database: Database) -> None:
        # Two extras after the columns: hydration keeps them unread; the first ``extras``
        # builds the dict, which later reads return and a write into it stays in.
        await User.create_many([{"username": "a", "points": 4}, {"username": "b", "points": 6}])
        rows = (
            await User.query()
            .select("username")
            .sum("points as total")
            .max("points as best")
            .group_by("username")
            .order_by("username")
        )
        assert [(r.username, int(r.extras["total"]), int(r.extras["best"])) for r in rows] == [
            ("a", 4, 4),
            ("b", 6, 6),
        ]
        first = rows[0].extras
        assert rows[0].extras is first
        first["note"] = "x"
        assert rows[0].extras == {"total": first["total"], "best": first["best"], "note": "x"}
        assert rows[1].extras.keys() == {"total", "best"}

    async def test_extras_of_a_row_without_any_is_a_kept_empty_dict(
        self, database: Database
    ) -> None:
        await User.create({"username": "a"})
        user = await User.first_or_fail()
        assert user.extras == {}
        user.extras["k"] = 1
        assert user.extras == {"k": 1}

    async def test_extras_next_to_columns(self, database: Database) -> None:
        await User.create_many([{"username": "a", "points": 1}, {"username": "a", "points": 2}])
        [row] = await User.query().select("username").sum("points as total").group_by("username")
        assert row.username == "a"
        assert int(row.extras["total"]) == 3
        assert row.attributes == {"username": "a"}
        assert not row.is_dirty

    def test_allow_extra_properties_keeps_unknown_keys_in_extras(self) -> None:
        user = User().merge({"username": "virk", "foo": 1}, allow_extra_properties=True)
        assert user.attributes == {"username": "virk"}
        assert user.extras == {"foo": 1}
        user.fill({"email": "a@b.c", "bar": 2}, allow_extra_properties=True)
        assert user.attributes == {"email": "a@b.c"}
        assert user.extras["bar"] == 2

    async def test_create_with_allow_extra_properties(self, database: Database) -> None:
        user = await User.create({"username": "virk", "foo": 1}, allow_extra_properties=True)
        assert user.extras == {"foo": 1}
        assert (await User.find_or_fail(user.id)).username == "virk"


class TestFillAndMerge:
    def test_merge_keeps_other_attributes(self) -> None:
        user = User(username="virk", email="virk@adonisjs.com")
        returned = user.merge({"email": "new@adonisjs.com", "points": 2})
        assert returned is user
        assert user.attributes == {
            "username": "virk",
            "email": "new@adonisjs.com",
            "points": 2,
        }

    def test_fill_replaces_all_attributes(self) -> None:
        user = User(username="virk", email="virk@adonisjs.com")
        returned = user.fill({"points": 2})
        assert returned is user
        assert user.attributes == {"points": 2}
        assert user.username is None

    async def test_fill_keeps_the_primary_key_of_a_persisted_instance(
        self, database: Database
    ) -> None:
        user = await User.create({"username": "virk", "email": "virk@adonisjs.com"})
        user.fill({"username": "romain"})
        assert user.attributes == {"id": user.id, "username": "romain"}
        await user.save()
        rows = await database.from_("users").select("username", "email")
        # Unset attributes are not written: fill does not NULL the other columns.
        assert rows == [{"username": "romain", "email": "virk@adonisjs.com"}]

    @pytest.mark.parametrize("method", ["fill", "merge"])
    def test_unknown_key_raises(self, method: str) -> None:
        user = User(username="virk")
        with pytest.raises(LucidError) as info:
            getattr(user, method)({"email": "a@b.c", "foo": 1})
        assert info.value.code == "E_UNKNOWN_ATTRIBUTE"
        assert str(info.value) == UNKNOWN
        # Nothing was applied.
        assert user.attributes == {"username": "virk"}

    async def test_create_with_unknown_key_raises_before_any_query(
        self, database: Database
    ) -> None:
        with count_queries() as q, pytest.raises(LucidError) as info:
            await User.create({"username": "virk", "foo": 1})
        assert q.count == 0
        assert info.value.code == "E_UNKNOWN_ATTRIBUTE"
        assert str(info.value) == UNKNOWN

    def test_column_names_are_not_attribute_names(self) -> None:
        # Model-level APIs take attribute names only.
        with pytest.raises(LucidError) as info:
            User().merge({"id ": 1})
        assert info.value.code == "E_UNKNOWN_ATTRIBUTE"


class TestRepr:
    async def test_repr_names_the_model_and_key(self, database: Database) -> None:
        user = await User.create({"username": "virk"})
        assert repr(user) == f"<User id={user.id!r} (persisted)>"
        assert repr(User()) == "<User id=None (new)>"
