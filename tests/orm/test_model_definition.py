"""Model definition (SPEC §3, §9): table names, primary keys, reserved names, abstract bases,
``column_name`` mapping and per-model connections."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from lucid_orm import BaseModel, LucidError, before, column, db
from lucid_orm.database import Database
from tests.conftest import DialectConfig
from tests.helpers import count_queries


class User(BaseModel):
    id: int = column(is_primary=True)
    email: str | None = column()


class BlogPost(BaseModel):
    id: int = column()


class Person(BaseModel):
    id: int = column()


class Category(BaseModel):
    id: int = column()


class Address(BaseModel):
    id: int = column()


class Member(BaseModel):
    table = "users"
    id: int = column()
    username: str | None = column()


class Gadget(BaseModel):
    uuid: str = column(is_primary=True)
    name: str = column()


class Profile(BaseModel):
    id: int = column()
    user_id: int | None = column()
    display: str | None = column(column_name="display_name")


_saved: list[str] = []


class AppModel(BaseModel, abstract=True):
    created_at: datetime | None = column.date_time(auto_create=True)
    updated_at: datetime | None = column.date_time(auto_create=True, auto_update=True)

    @before("save")
    def record_save(model: Any) -> None:
        _saved.append(type(model).__name__)


class Post(AppModel):
    id: int = column()
    title: str | None = column()


class Comment(AppModel):
    id: int = column()
    body: str | None = column()


class Tagged(BaseModel):
    table = "tags"
    id: int = column()
    label: str = column(column_name="save")


class RemoteUser(BaseModel):
    table = "users"
    connection = "secondary"
    id: int = column()
    email: str | None = column()


class TestTableNames:
    def test_default_table_names_are_snake_case_plurals(self) -> None:
        assert User.table == "users"
        assert BlogPost.table == "blog_posts"
        assert Person.table == "people"
        assert Category.table == "categories"
        assert Address.table == "addresses"

    def test_table_option_overrides_the_naming_strategy(self) -> None:
        assert Member.table == "users"

    async def test_table_option_is_used_by_queries(self, database: Database) -> None:
        await database.table("users").insert({"username": "virk"})
        members = await Member.all()
        assert [m.username for m in members] == ["virk"]
        assert isinstance(members[0], Member)


class TestPrimaryKey:
    def test_primary_key_from_is_primary(self) -> None:
        assert Gadget.primary_key == "uuid"
        assert Gadget.columns["uuid"].is_primary
        assert not Gadget.columns["name"].is_primary

    def test_primary_key_defaults_to_a_column_named_id(self) -> None:
        assert BlogPost.primary_key == "id"
        assert BlogPost.columns["id"].is_primary

    def test_model_without_primary_key_raises_at_class_definition(self) -> None:
        with pytest.raises(LucidError) as info:

            class Orphan(BaseModel):
                name: str = column()

        assert info.value.code == "E_INVALID_MODEL"
        assert "Orphan" in str(info.value)
        assert "primary key" in str(info.value)

    def test_two_primary_keys_raise(self) -> None:
        with pytest.raises(LucidError) as info:

            class Twice(BaseModel):
                a: int = column(is_primary=True)
                b: int = column(is_primary=True)

        assert info.value.code == "E_INVALID_MODEL"


class TestReservedNames:
    @pytest.mark.parametrize(
        "name", ["save", "attributes", "table", "trx", "is_dirty", "serialize", "primary_key"]
    )
    def test_reserved_name_as_a_column_raises(self, name: str) -> None:
        namespace: dict[str, Any] = {
            "__annotations__": {"id": int, name: str},
            "id": column(),
            name: column(),
        }
        with pytest.raises(LucidError) as info:
            type("Clash", (BaseModel,), namespace)
        assert info.value.code == "E_INVALID_MODEL"
        assert f'"Clash.{name}"' in str(info.value)
        assert "reserved" in str(info.value)

    def test_reserved_word_as_column_name_is_fine(self) -> None:
        assert Tagged.columns["label"].column_name == "save"


class TestAbstractModels:
    def test_abstract_base_needs_no_primary_key_and_maps_no_table(self) -> None:
        with pytest.raises(LucidError) as info:
            AppModel.query()
        assert info.value.code == "E_INVALID_MODEL"

    def test_subclasses_share_the_columns(self) -> None:
        assert list(Post.columns) == ["created_at", "updated_at", "id", "title"]
        assert list(Comment.columns) == ["created_at", "updated_at", "id", "body"]
        assert Post.table == "posts"
        assert Post.primary_key == "id"
        # Each subclass gets its own copy of the inherited definitions.
        assert Post.columns["created_at"] is not Comment.columns["created_at"]

    async def test_subclasses_share_the_hooks_and_timestamps(self, database: Database) -> None:
        _saved.clear()
        post = await Post.create({"title": "Hello"})
        comment = await Comment.create({"body": "Nice"})
        assert _saved == ["Post", "Comment"]
        assert isinstance(post.created_at, datetime)
        assert isinstance(comment.updated_at, datetime)
        fetched = await Post.find_or_fail(post.id)
        assert fetched.created_at == post.created_at


class TestColumnName:
    def test_column_name_maps_the_attribute(self) -> None:
        assert Profile.columns["display"].column_name == "display_name"
        assert Profile.columns["user_id"].column_name == "user_id"

    async def test_values_round_trip_through_the_mapped_column(self, database: Database) -> None:
        profile = await Profile.create({"display": "Virk"})
        rows = await database.from_("profiles").select("display_name")
        assert rows == [{"display_name": "Virk"}]

        fetched = await Profile.find_or_fail(profile.id)
        assert fetched.display == "Virk"
        assert fetched.attributes == {"id": profile.id, "user_id": None, "display": "Virk"}
        # Query builder methods take column names; model-level APIs take attribute names.
        assert (await Profile.query().where("display_name", "Virk").first()) is not None
        assert (await Profile.find_by("display", "Virk")) is not None
        assert fetched.serialize()["display"] == "Virk"

    async def test_update_writes_the_mapped_column(self, database: Database) -> None:
        profile = await Profile.create({"display": "Virk"})
        profile.display = "Romain"
        with count_queries() as q:
            await profile.save()
        assert q.count == 1
        assert "display_name" in q.sqls[0]
        rows = await database.from_("profiles").select("display_name")
        assert rows == [{"display_name": "Romain"}]


class TestConnection:
    async def test_unknown_connection_raises(self, database: Database) -> None:
        with pytest.raises(LucidError) as info:
            await RemoteUser.all()
        assert info.value.code == "E_UNMANAGED_DB_CONNECTION"

    async def test_model_connection_is_used(
        self, database: Database, dialect_config: DialectConfig
    ) -> None:
        await db.close()
        db.configure(
            connection=dialect_config.name,
            connections={
                dialect_config.name: {"url": dialect_config.url},
                "secondary": {"url": dialect_config.url},
            },
        )
        with count_queries() as q:
            user = await RemoteUser.create({"email": "remote@example.com"})
            found = await RemoteUser.find_or_fail(user.id)
            by_option = await User.find_or_fail(user.id, connection="secondary")
            default = await User.find_or_fail(user.id)
        assert found.email == by_option.email == default.email == "remote@example.com"
        assert [e.connection for e in q.events] == [
            "secondary",
            "secondary",
            "secondary",
            dialect_config.name,
        ]
        assert [e.model for e in q.events] == ["RemoteUser", "RemoteUser", "User", "User"]

        with count_queries() as q:
            created = await User.create({"email": "b@example.com"}, connection="secondary")
            made = await User.first_or_create({"email": "c@example.com"}, connection="secondary")
            listed = await User.query(connection="secondary").order_by("id")
            every = await User.all(connection="secondary")
            many = await User.create_many([{"email": "d@example.com"}], connection="secondary")
        assert {e.connection for e in q.events} == {"secondary"}
        assert created.is_persisted and made.is_persisted and many[0].is_persisted
        assert [u.email for u in listed] == [
            "remote@example.com",
            "b@example.com",
            "c@example.com",
        ]
        assert len(every) == 3
        await db.close()
