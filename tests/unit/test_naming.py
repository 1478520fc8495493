"""Unit tests for the snake_case and camelCase naming strategies (no database)."""

from typing import ClassVar

import pytest

from lucid_orm.orm.naming import (
    CamelCaseNamingStrategy,
    NamingStrategy,
    RelationType,
    SnakeCaseNamingStrategy,
    _camel_case,
    snake_case,
)


class _Model:
    primary_key: ClassVar[str] = "id"


class User(_Model):
    pass


class Skill(_Model):
    pass


class Post(_Model):
    pass


class BlogPost(_Model):
    pass


class Person(_Model):
    pass


class Category(_Model):
    pass


class Address(_Model):
    pass


class HTTPRequest(_Model):
    pass


class Country(_Model):
    primary_key = "code"


snake = SnakeCaseNamingStrategy()
camel = CamelCaseNamingStrategy()

NOT_BELONGS_TO: list[RelationType] = ["hasOne", "hasMany", "manyToMany", "hasManyThrough"]


class TestCaseHelpers:
    @pytest.mark.parametrize(
        ("name", "expected"),
        [
            ("User", "user"),
            ("BlogPost", "blog_post"),
            ("HTTPRequest", "http_request"),
            ("userId", "user_id"),
            ("user_id", "user_id"),
            ("createdAt", "created_at"),
            ("APIKey2Factor", "api_key2_factor"),
            ("address_line2", "address_line2"),
            ("already snake-ish.name", "already_snake_ish_name"),
            ("__private__", "private"),
            ("ID", "id"),
            ("", ""),
        ],
    )
    def test_snake_case(self, name: str, expected: str) -> None:
        assert snake_case(name) == expected

    @pytest.mark.parametrize(
        ("name", "expected"),
        [
            ("created_at", "createdAt"),
            ("user_id", "userId"),
            ("userId", "userId"),
            ("UserId", "userId"),
            ("email", "email"),
            ("http_request", "httpRequest"),
            ("address_line_2", "addressLine2"),
            ("", ""),
        ],
    )
    def test_camel_case(self, name: str, expected: str) -> None:
        assert _camel_case(name) == expected


class TestTableName:
    @pytest.mark.parametrize(
        ("model", "expected"),
        [
            (User, "users"),
            (BlogPost, "blog_posts"),
            (Person, "people"),
            (Category, "categories"),
            (Address, "addresses"),
            (HTTPRequest, "http_requests"),
            (Country, "countries"),
        ],
    )
    @pytest.mark.parametrize("strategy", [snake, camel], ids=["snake", "camel"])
    def test_snake_case_plural_of_class_name(
        self, strategy: NamingStrategy, model: type[_Model], expected: str
    ) -> None:
        assert strategy.table_name(model) == expected


class TestAttributeNames:
    def test_column_name_is_snake_case_in_both_strategies(self) -> None:
        assert snake.column_name(User, "createdAt") == "created_at"
        assert camel.column_name(User, "createdAt") == "created_at"
        assert snake.column_name(User, "email") == "email"

    def test_serialized_name(self) -> None:
        assert snake.serialized_name(User, "created_at") == "created_at"
        assert snake.serialized_name(User, "createdAt") == "created_at"
        assert camel.serialized_name(User, "created_at") == "createdAt"
        assert camel.serialized_name(User, "email") == "email"


@pytest.mark.parametrize("strategy", [snake, camel], ids=["snake", "camel"])
class TestRelationKeys:
    def test_belongs_to_keys_point_at_the_related_model(self, strategy: NamingStrategy) -> None:
        # Post.author = belongs_to(User)
        assert strategy.relation_local_key("belongsTo", Post, User, "author") == "id"
        assert strategy.relation_foreign_key("belongsTo", Post, User, "author") == "user_id"
        # Address.country = belongs_to(Country): the related primary key is "code"
        assert strategy.relation_local_key("belongsTo", Address, Country, "country") == "code"
        assert (
            strategy.relation_foreign_key("belongsTo", Address, Country, "country")
            == "country_code"
        )

    @pytest.mark.parametrize("relation_type", NOT_BELONGS_TO)
    def test_other_kinds_point_at_the_parent_model(
        self, strategy: NamingStrategy, relation_type: RelationType
    ) -> None:
        # User.posts = has_many(Post), and the like
        assert strategy.relation_local_key(relation_type, User, Post, "posts") == "id"
        assert strategy.relation_foreign_key(relation_type, User, Post, "posts") == "user_id"
        assert strategy.relation_local_key(relation_type, Country, User, "users") == "code"
        assert (
            strategy.relation_foreign_key(relation_type, Country, User, "users") == "country_code"
        )
        assert (
            strategy.relation_foreign_key(relation_type, BlogPost, Post, "posts") == "blog_post_id"
        )

    def test_pivot_table_sorts_the_singular_names(self, strategy: NamingStrategy) -> None:
        assert strategy.relation_pivot_table("manyToMany", User, Skill, "skills") == "skill_user"
        assert strategy.relation_pivot_table("manyToMany", Skill, User, "users") == "skill_user"
        assert (
            strategy.relation_pivot_table("manyToMany", Person, BlogPost, "posts")
            == "blog_post_person"
        )
        assert (
            strategy.relation_pivot_table("manyToMany", Category, Category, "children")
            == "category_category"
        )

    def test_pivot_foreign_key(self, strategy: NamingStrategy) -> None:
        assert strategy.relation_pivot_foreign_key("manyToMany", User, Skill, "skills") == (
            "user_id"
        )
        # The related side swaps the models.
        assert strategy.relation_pivot_foreign_key("manyToMany", Skill, User, "skills") == (
            "skill_id"
        )
        assert strategy.relation_pivot_foreign_key("manyToMany", Country, User, "users") == (
            "country_code"
        )


class TestPaginationMetaKeys:
    def test_snake_case_keys(self) -> None:
        assert snake.pagination_meta_keys() == {
            "total": "total",
            "per_page": "per_page",
            "current_page": "current_page",
            "last_page": "last_page",
            "first_page": "first_page",
            "first_page_url": "first_page_url",
            "last_page_url": "last_page_url",
            "next_page_url": "next_page_url",
            "previous_page_url": "previous_page_url",
        }

    def test_camel_case_keys(self) -> None:
        assert camel.pagination_meta_keys() == {
            "total": "total",
            "per_page": "perPage",
            "current_page": "currentPage",
            "last_page": "lastPage",
            "first_page": "firstPage",
            "first_page_url": "firstPageUrl",
            "last_page_url": "lastPageUrl",
            "next_page_url": "nextPageUrl",
            "previous_page_url": "previousPageUrl",
        }


def test_strategies_satisfy_the_protocol() -> None:
    assert isinstance(snake, NamingStrategy)
    assert isinstance(camel, NamingStrategy)
    assert repr(camel) == "CamelCaseNamingStrategy()"
