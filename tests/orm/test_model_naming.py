"""Naming strategies on models (SPEC §3, §9): snake_case defaults, camelCase serialization,
and a custom strategy shared through an abstract base."""

from __future__ import annotations

from datetime import UTC, datetime

from lucid_orm import BaseModel, CamelCaseNamingStrategy, SnakeCaseNamingStrategy, column
from lucid_orm.database import Database
from lucid_orm.orm.naming import ModelLike


class CamelModel(BaseModel, abstract=True):
    naming_strategy = CamelCaseNamingStrategy()


class User(CamelModel):
    id: int = column(is_primary=True)
    country_id: int | None = column()
    is_active: bool | None = column()
    username: str | None = column(serialize_as="handle")
    created_at: datetime | None = column.date_time()


class BlogPost(CamelModel):
    table = "posts"
    id: int = column()
    is_published: bool | None = column()


class PrefixedStrategy(SnakeCaseNamingStrategy):
    """Tables named after the lower-cased class name plus ``s`` (``Tag`` → ``tags``)."""

    def table_name(self, model: type[ModelLike]) -> str:
        return model.__name__.lower() + "s"


class Tag(BaseModel):
    naming_strategy = PrefixedStrategy()
    id: int = column()
    name: str | None = column()


class Comment(BaseModel):
    id: int = column()
    postId: int | None = column()  # an attribute spelt in camelCase
    body: str | None = column()


class TestDefaults:
    def test_snake_case_is_the_default(self) -> None:
        assert isinstance(BaseModel.naming_strategy, SnakeCaseNamingStrategy)
        assert Comment.table == "comments"
        # The column of a camelCase attribute is snake_case; so is its serialized name.
        assert Comment.columns["postId"].column_name == "post_id"
        assert Comment.columns["postId"].serialize_as == "post_id"

    async def test_camel_case_attribute_round_trip(self, database: Database) -> None:
        comment = await Comment.create({"postId": 3, "body": "Nice"})
        rows = await database.from_("comments").select("post_id", "body")
        assert rows == [{"post_id": 3, "body": "Nice"}]
        found = await Comment.find_or_fail(comment.id)
        assert found.postId == 3
        assert found.serialize() == {"id": comment.id, "post_id": 3, "body": "Nice"}


class TestCamelCase:
    def test_tables_and_columns_stay_snake_case(self) -> None:
        assert User.table == "users"
        assert User.columns["country_id"].column_name == "country_id"
        assert BlogPost.table == "posts"

    async def test_serialized_names_are_camel_case(self, database: Database) -> None:
        stamp = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
        user = await User.create(
            {"country_id": 1, "is_active": True, "username": "virk", "created_at": stamp}
        )
        found = await User.find_or_fail(user.id)
        assert found.serialize() == {
            "id": user.id,
            "countryId": 1,
            "isActive": True,
            "handle": "virk",
            "createdAt": "2024-01-02T03:04:05+00:00",
        }
        assert found.serialize({"fields": ["countryId"]}) == {"countryId": 1}
        # to_dict keeps attribute names.
        assert found.to_dict()["country_id"] == 1

    async def test_inherited_strategy(self, database: Database) -> None:
        post = await BlogPost.create({"is_published": False})
        assert post.serialize() == {"id": post.id, "isPublished": False}


class TestCustomStrategy:
    async def test_custom_table_name(self, database: Database) -> None:
        assert Tag.table == "tags"
        tag = await Tag.create({"name": "python"})
        assert (await Tag.find_or_fail(tag.id)).name == "python"
