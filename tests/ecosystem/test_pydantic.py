"""Models as pydantic v2 types (``TypeAdapter``, FastAPI ``response_model``), the explicit
shapes of ``pydantic_model`` (read, create, update) and ``Page[T]``, on every dialect.

The FastAPI app runs in process through httpx's ``ASGITransport`` against the real database.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel as PydanticModel
from pydantic import TypeAdapter, ValidationError

from lucid_orm import (
    BaseModel,
    CamelCaseNamingStrategy,
    Database,
    LucidError,
    belongs_to,
    column,
    computed,
    has_many,
)
from lucid_orm.pydantic import Page, PageMeta, pydantic_model
from lucid_orm.relations import BelongsTo, HasMany
from tests.helpers import count_queries


class Author(BaseModel):
    """``users``: a hidden column, a renamed one, an auto timestamp, a computed value."""

    table = "users"
    id: int = column(is_primary=True)
    username: str = column()
    email: str | None = column(serialize_as=None)
    is_active: bool | None = column(serialize_as="active")
    points: int | None = column()
    created_at: dt.datetime | None = column.date_time(auto_create=True)
    posts: HasMany[Article] = has_many(lambda: Article, foreign_key="user_id")

    @computed
    def handle(self) -> str:
        return f"@{self.username}"


class Article(BaseModel):
    """``posts``, pointing back at ``Author`` (a User ↔ Post cycle)."""

    table = "posts"
    id: int = column(is_primary=True)
    user_id: int | None = column()
    title: str = column()
    score: int | None = column(serialize=lambda value, _name, _model: f"{value} pts")
    author: BelongsTo[Author] = belongs_to(lambda: Author, foreign_key="user_id")


class CamelUser(BaseModel):
    """``users`` serialized camelCase, with its extras under ``meta``."""

    table = "users"
    naming_strategy = CamelCaseNamingStrategy()
    serialize_extras = True
    id: int = column(is_primary=True)
    username: str = column()
    country_id: int | None = column()
    created_at: dt.datetime | None = column.date_time(auto_create=True)
    posts: HasMany[CamelPost] = has_many(lambda: CamelPost, foreign_key="user_id")


class CamelPost(BaseModel):
    table = "posts"
    naming_strategy = CamelCaseNamingStrategy()
    id: int = column(is_primary=True)
    user_id: int | None = column()
    title: str = column()


class Node(BaseModel):
    """``users`` as a tree (``country_id`` points at the parent row): a self-reference."""

    table = "users"
    id: int = column(is_primary=True)
    username: str = column()
    country_id: int | None = column()
    parent: BelongsTo[Node] = belongs_to(lambda: Node, foreign_key="country_id")
    children: HasMany[Node] = has_many(lambda: Node, foreign_key="country_id")


async def _author_with_posts(*titles: str) -> Author:
    author = await Author.create({"username": "ann", "email": "ann@example.com", "points": 3})
    for title in titles:
        await Article.create({"user_id": author.id, "title": title, "score": 7})
    return await Author.query().where("id", author.id).preload("posts").first_or_fail()


def _schema(adapter: TypeAdapter[Any]) -> dict[str, Any]:
    return adapter.json_schema(mode="serialization")


def _ref_of(schema: dict[str, Any]) -> str:
    """The ``$ref`` of a JSON schema (older pydantic versions wrap it in an ``allOf``)."""
    return str(schema.get("$ref") or schema["allOf"][0]["$ref"])


class TestModelAsPydanticType:
    async def test_dump_is_serialize(self, database: Database) -> None:
        author = await _author_with_posts("one", "two")
        adapter = TypeAdapter(Author)
        expected = author.serialize()
        assert adapter.dump_python(author) == expected
        assert json.loads(adapter.dump_json(author)) == expected
        assert TypeAdapter(list[Author]).dump_python([author]) == [expected]
        assert adapter.validate_python(author) is author

    async def test_serialization_rules_followed(self, database: Database) -> None:
        author = await _author_with_posts("one")
        out = TypeAdapter(Author).dump_python(author)
        assert "email" not in out  # hidden
        assert "is_active" not in out and out["active"] is False  # serialize_as
        assert out["handle"] == "@ann"  # computed
        assert out["created_at"] == author.created_at.isoformat()  # type: ignore[union-attr]
        assert [p["title"] for p in out["posts"]] == ["one"]
        assert out["posts"][0]["score"] == "7 pts"  # the column's serialize function

    async def test_unloaded_relations_are_omitted(self, database: Database) -> None:
        await _author_with_posts("one")
        plain = await Author.query().first_or_fail()
        assert "posts" not in TypeAdapter(Author).dump_python(plain)
        empty = await Author.create({"username": "bob"})
        loaded = await Author.query().where("id", empty.id).preload("posts").first_or_fail()
        assert TypeAdapter(Author).dump_python(loaded)["posts"] == []
        orphan = await Article.create({"title": "alone"})
        article = await Article.query().where("id", orphan.id).preload("author").first_or_fail()
        dumped = TypeAdapter(Article).dump_python(article)
        assert "author" in dumped and dumped["author"] is None

    async def test_json_round_trip_gives_unsaved_instance(self, database: Database) -> None:
        author = await _author_with_posts()
        adapter = TypeAdapter(Author)
        back = adapter.validate_json(adapter.dump_json(author))
        assert isinstance(back, Author) and not back.is_persisted
        assert back.id == author.id and back.username == "ann" and back.points == 3
        assert back.created_at == author.created_at
        assert "email" not in back.attributes  # hidden: never in the output, never read back
        partial = adapter.validate_json(adapter.dump_json(Author(id=9, username="x")))
        assert partial.attributes == {"id": 9, "username": "x"}

    async def test_camel_case_and_extras(self, database: Database) -> None:
        user = await CamelUser.create({"username": "cam", "country_id": 4})
        await CamelPost.create({"user_id": user.id, "title": "x"})
        found = await CamelUser.query().where("id", user.id).with_count("posts").first_or_fail()
        out = TypeAdapter(CamelUser).dump_python(found)
        assert out == found.serialize()
        assert out["countryId"] == 4 and "createdAt" in out and "country_id" not in out
        assert out["meta"]["posts_count"] == 1
        # No cycle here: pydantic inlines the model's definition at the top.
        props = _schema(TypeAdapter(CamelUser))["properties"]
        assert {"id", "username", "countryId", "createdAt", "posts", "meta"} == set(props)

    async def test_self_reference(self, database: Database) -> None:
        root = await Node.create({"username": "root"})
        await Node.create({"username": "leaf", "country_id": root.id})
        tree = await Node.query().where("id", root.id).preload("children").first_or_fail()
        adapter = TypeAdapter(Node)
        assert adapter.dump_python(tree) == {
            "id": root.id,
            "username": "root",
            "country_id": None,
            "children": [{"id": tree.children[0].id, "username": "leaf", "country_id": root.id}],
        }
        props = _schema(adapter)["$defs"]["Node"]["properties"]
        assert props["children"]["items"] == {"$ref": "#/$defs/Node"}
        assert {"$ref": "#/$defs/Node"} in props["parent"]["anyOf"]

    async def test_inside_a_pydantic_model(self, database: Database) -> None:
        author = await _author_with_posts("one")

        class Feed(PydanticModel):
            owner: Author
            others: list[Author]
            maybe: Author | None = None

        feed = Feed(owner=author, others=[author])
        assert feed.owner is author
        assert feed.model_dump() == {
            "owner": author.serialize(),
            "others": [author.serialize()],
            "maybe": None,
        }
        props = Feed.model_json_schema(mode="serialization")["properties"]
        assert _ref_of(props["owner"]) == "#/$defs/Author"

    def test_json_schema_has_real_fields_and_types(self) -> None:
        schema = _schema(TypeAdapter(Author))
        assert _ref_of(schema) == "#/$defs/Author"
        author = schema["$defs"]["Author"]
        assert author["title"] == "Author" and author["description"] == Author.__doc__
        props = author["properties"]
        assert set(props) == {"id", "username", "active", "points", "created_at", "handle", "posts"}
        assert props["id"]["type"] == "integer"
        assert props["username"]["type"] == "string"
        assert props["handle"]["type"] == "string"
        assert props["active"]["anyOf"] == [{"type": "boolean"}, {"type": "null"}]
        assert {"type": "string", "format": "date-time"} in props["created_at"]["anyOf"]
        assert props["posts"] == {
            "items": {"$ref": "#/$defs/Article"},
            "type": "array",
            "title": "Posts",
        }
        assert author["required"] == ["id", "username", "handle"]  # nullable may be unset
        # The cycle back: Article.author refers to Author's definition.
        article = schema["$defs"]["Article"]["properties"]
        assert {"$ref": "#/$defs/Author"} in article["author"]["anyOf"]
        assert article["score"] == {"title": "Score"}  # a serialize function: any value


class TestPydanticModel:
    async def test_read_shape_from_instance(self, database: Database) -> None:
        author = await _author_with_posts("one", "two")
        ArticleOut = pydantic_model(Article, include=["id", "title"], name="ArticleOut")
        AuthorOut = pydantic_model(
            Author, exclude=["points"], relations={"posts": ArticleOut}, name="AuthorOut"
        )
        out = AuthorOut.model_validate(author).model_dump(mode="json", by_alias=True)
        assert out == {
            "id": author.id,
            "username": "ann",
            "active": False,
            "created_at": out["created_at"],
            "handle": "@ann",
            "posts": [{"id": p.id, "title": p.title} for p in author.posts],
        }
        assert AuthorOut.__name__ == "AuthorOut"
        schema = AuthorOut.model_json_schema(mode="serialization")
        assert "email" not in schema["properties"] and "points" not in schema["properties"]
        assert schema["properties"]["posts"]["items"] == {"$ref": "#/$defs/ArticleOut"}

    async def test_read_shape_refuses_an_unloaded_relation(self, database: Database) -> None:
        await _author_with_posts("one")
        AuthorOut = pydantic_model(Author, relations={"posts": Article})
        plain = await Author.query().first_or_fail()
        with pytest.raises(ValidationError) as caught:
            AuthorOut.model_validate(plain)
        assert [e["loc"] for e in caught.value.errors()] == [("posts",)]

    async def test_hidden_column_only_when_included(self, database: Database) -> None:
        author = await _author_with_posts()
        assert "email" not in pydantic_model(Author).model_fields
        shape = pydantic_model(Author, include=["id", "email"])
        assert shape.model_validate(author).model_dump() == {
            "id": author.id,
            "email": "ann@example.com",
        }

    def test_unknown_names_raise(self) -> None:
        with pytest.raises(LucidError, match='nope: not a column or computed value of "Author"'):
            pydantic_model(Author, include=["nope"])
        with pytest.raises(LucidError, match="Unknown pydantic_model mode"):
            pydantic_model(Author, mode="delete")  # type: ignore[arg-type]
        with pytest.raises(LucidError, match='"likes" is not defined as a relationship'):
            pydantic_model(Author, relations={"likes": Article})
        with pytest.raises(LucidError, match="relations= is for mode='read' shapes"):
            pydantic_model(Author, mode="update", relations={"posts": Article})


class TestInputShapes:
    def test_create_required_and_optional(self) -> None:
        schema = pydantic_model(Author, mode="create").model_json_schema()
        assert set(schema["properties"]) == {
            "id", "username", "email", "active", "points", "created_at"
        }  # fmt: skip
        # Not nullable, not an auto key, not an auto timestamp: username only.
        assert schema["required"] == ["username"]
        with_default = pydantic_model(Author, mode="create", optional=["username"])
        assert "required" not in with_default.model_json_schema()

    def test_input_keys_by_serialized_or_attribute_name(self) -> None:
        CamelCreate = pydantic_model(CamelUser, mode="create")
        assert set(CamelCreate.model_json_schema()["properties"]) == {
            "id", "username", "countryId", "createdAt"
        }  # fmt: skip
        for sent in ({"username": "x", "countryId": 3}, {"username": "x", "country_id": 3}):
            body = CamelCreate.model_validate(sent)
            assert body.model_dump(exclude_unset=True) == {"username": "x", "country_id": 3}

    async def test_invalid_body_fails_before_any_write(self, database: Database) -> None:
        AuthorCreate = pydantic_model(Author, mode="create")
        with count_queries() as log, pytest.raises(ValidationError) as caught:
            AuthorCreate.model_validate({"points": "many"})
        assert log.count == 0
        assert {e["loc"] for e in caught.value.errors()} == {("username",), ("points",)}
        assert await Author.all() == []

    async def test_create_applies_what_was_sent(self, database: Database) -> None:
        body = pydantic_model(Author, mode="create").model_validate(
            {"username": "neo", "active": True}
        )
        author = await Author.create(body.model_dump(exclude_unset=True))
        row = await Author.find_or_fail(author.id)
        assert (row.username, row.is_active, row.points) == ("neo", True, 0)  # points: db default

    async def test_update_applies_only_sent_fields(self, database: Database) -> None:
        author = await Author.create({"username": "old", "points": 5})
        AuthorUpdate = pydantic_model(Author, mode="update")
        assert "required" not in AuthorUpdate.model_json_schema()
        body = AuthorUpdate.model_validate({"username": "new"})
        with count_queries() as log:
            await author.merge(body.model_dump(exclude_unset=True)).save()
        assert log.count == 1
        row = await Author.find_or_fail(author.id)
        assert (row.username, row.points) == ("new", 5)


class TestPage:
    async def test_paginator_validates_into_page(self, database: Database) -> None:
        for name in ("a", "b", "c"):
            await Author.create({"username": name})
        paginator = await Author.query().order_by("id").paginate(1, per_page=2)
        page = Page[Author].model_validate(paginator)
        out = page.model_dump(mode="json")
        assert out == paginator.serialize()
        assert out["meta"]["per_page"] == 2 and out["meta"]["last_page"] == 2
        assert type(page.meta) is PageMeta

    async def test_meta_follows_naming_strategy(self, database: Database) -> None:
        await CamelUser.create({"username": "a"})
        paginator = await CamelUser.query().paginate(1, per_page=5)
        dumped = Page[CamelUser].model_validate(paginator).model_dump(mode="json", by_alias=True)
        assert dumped == paginator.serialize()
        assert dumped["meta"]["perPage"] == 5 and "per_page" not in dumped["meta"]
        shape = pydantic_model(CamelUser, name="CamelOut")
        ShapePage = Page[shape]  # type: ignore[valid-type]
        shaped = ShapePage.model_validate(paginator).model_dump(mode="json", by_alias=True)
        assert shaped["data"][0]["createdAt"] is not None and "created_at" not in shaped["data"][0]
        assert shaped["meta"]["perPage"] == 5
        schema = ShapePage.model_json_schema(mode="serialization")
        assert "perPage" in schema["$defs"]["PageMetaCamelCase"]["properties"]


AuthorCreate = pydantic_model(Author, mode="create")


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/authors/{author_id}", response_model=Author)
    async def show(author_id: int) -> Any:
        return await Author.query().where("id", author_id).preload("posts").first_or_fail()

    @app.get("/authors")
    async def index() -> list[Author]:
        return await Author.query().order_by("id")

    @app.get("/pages", response_model=Page[Author])
    async def pages(page: int = 1) -> Any:
        return await Author.query().order_by("id").paginate(page, per_page=2)

    @app.post("/authors", response_model=Author, status_code=201)
    async def store(body: AuthorCreate) -> Any:  # type: ignore[valid-type]
        return await Author.create(body.model_dump(exclude_unset=True))  # type: ignore[attr-defined]

    return app


class TestFastAPI:
    async def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=_app()), base_url="http://t")

    async def test_response_models(self, database: Database) -> None:
        author = await _author_with_posts("one")
        await Author.create({"username": "bob"})
        async with await self._client() as client:
            shown = await client.get(f"/authors/{author.id}")
            listed = await client.get("/authors")
            paged = await client.get("/pages", params={"page": 1})
        assert shown.status_code == 200
        assert shown.json() == json.loads(json.dumps(author.serialize()))
        assert shown.json()["posts"][0]["title"] == "one" and "email" not in shown.json()
        assert [a["username"] for a in listed.json()] == ["ann", "bob"]
        assert all("posts" not in a for a in listed.json())  # not loaded: omitted
        body = paged.json()
        assert [a["username"] for a in body["data"]] == ["ann", "bob"]
        assert body["meta"]["total"] == 2 and body["meta"]["next_page_url"] is None

    async def test_create_body_validation(self, database: Database) -> None:
        async with await self._client() as client:
            with count_queries() as log:
                refused = await client.post("/authors", json={"points": 2})
            assert log.count == 0
            created = await client.post("/authors", json={"username": "neo"})
        assert refused.status_code == 422
        assert refused.json()["detail"][0]["loc"] == ["body", "username"]
        assert created.status_code == 201 and created.json()["username"] == "neo"
        assert [a.username for a in await Author.all()] == ["neo"]

    def test_openapi_shows_real_fields(self) -> None:
        spec = _app().openapi()
        schemas = spec["components"]["schemas"]
        assert set(schemas["Author"]["properties"]) == {
            "id", "username", "active", "points", "created_at", "handle", "posts"
        }  # fmt: skip
        assert schemas["Article"]["properties"]["author"]["anyOf"][0] == {
            "$ref": "#/components/schemas/Author"
        }
        assert schemas["AuthorCreate"]["required"] == ["username"]
        page = schemas["Page_Author_"]["properties"]
        assert page["data"]["items"] == {"$ref": "#/components/schemas/Author"}
        assert page["meta"] == {"$ref": "#/components/schemas/PageMeta"}
        listed = spec["paths"]["/authors"]["get"]["responses"]["200"]["content"]
        assert listed["application/json"]["schema"]["items"] == {
            "$ref": "#/components/schemas/Author"
        }


class TestOptionalDependency:
    def _run(self, code: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
        )

    def test_import_lucid_orm_does_not_import_pydantic(self) -> None:
        done = self._run("import sys, lucid_orm; print('pydantic' in sys.modules)")
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "False"

    def test_missing_pydantic_names_the_extra(self) -> None:
        done = self._run(
            "import sys; sys.modules['pydantic'] = None\n"
            "from lucid_orm import LucidError\n"
            "try:\n    import lucid_orm.pydantic\n"
            "except LucidError as e:\n    print(e.code, e)\n"
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("E_MISSING_DEPENDENCY")
        assert "pip install 'lucid-orm[pydantic]'" in done.stdout
