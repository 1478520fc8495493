"""The FastAPI example (``examples/fastapi_app``) end to end through httpx, on every dialect:
its lifespan migrates a fresh database, then users, posts, tags and comments are written
through the API and read back with nested preloads, counts and pages; the OpenAPI schema
lists the models' real fields.

The example's tables (``users``, ``posts``…) share names with the suite's, so it runs on a
database of its own, emptied before each test: a new SQLite file, a ``lucid_example`` schema on
PostgreSQL, a ``<db>_example`` database on MySQL."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="needs the `fastapi` extra")

import httpx

from lucid_orm import Database, db

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fastapi_app"
PG_SCHEMA = "lucid_example"

sys.path.insert(0, str(EXAMPLE))
from app.main import create_app  # noqa: E402
from app.models import Comment, User  # noqa: E402

assert Path(sys.modules["app"].__file__ or "").is_relative_to(EXAMPLE), "another `app` package"


@pytest.fixture(scope="session")
async def example_server(dialect: str) -> AsyncIterator[dict[str, Any]]:
    """The example's connection for this dialect on PostgreSQL and MySQL (its schema or
    database created for the session, dropped after)."""
    url = db.get_connection().url
    if dialect == "postgresql":
        yield {
            "url": url.render_as_string(hide_password=False),
            "connect_args": {"server_settings": {"search_path": PG_SCHEMA}},
        }
        await db.raw_query(f"drop schema if exists {PG_SCHEMA} cascade")
    elif dialect == "mysql":
        name = f"{url.database}_example"
        yield {"url": url.set(database=name).render_as_string(hide_password=False)}
        await db.raw_query(f"drop database if exists {name}")
    else:
        yield {}


@pytest.fixture
async def example_config(
    database: Database, dialect: str, example_server: dict[str, Any], tmp_path: Path
) -> dict[str, Any]:
    """``db.configure`` arguments for an empty example database."""
    if dialect == "sqlite":
        connection = {"url": f"sqlite:///{tmp_path / 'app.db'}"}
    elif dialect == "postgresql":
        await db.raw_query(f"drop schema if exists {PG_SCHEMA} cascade")
        await db.raw_query(f"create schema {PG_SCHEMA}")
        connection = example_server
    else:
        name = db.get_connection().url.database
        await db.raw_query(f"drop database if exists {name}_example")
        await db.raw_query(f"create database {name}_example")
        connection = example_server
    return {"connections": {"example": connection}, "connection": "example"}


@asynccontextmanager
async def running(config: dict[str, Any]) -> AsyncIterator[httpx.AsyncClient]:
    """The example app started (lifespan: configure ``db``, migrate) and a client for it; the
    ``database`` fixture puts the suite's ``db`` back afterwards."""
    app = create_app(config)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://test") as client,
    ):
        yield client


async def seed(client: httpx.AsyncClient) -> dict[str, int]:
    """Two users, three posts (two by Ada), tags and comments, all through the API."""
    ids: dict[str, int] = {}
    for key, email, name in (
        ("ada", "ada@example.com", "Ada Lovelace"),
        ("alan", "al@x.org", "Alan Turing"),
    ):
        response = await client.post(
            "/users", json={"email": email, "name": name, "password": "hunter2"}
        )
        assert response.status_code == 201, response.text
        ids[key] = response.json()["id"]
    for key, author, title in (
        ("engines", "ada", "Notes on the engine"),
        ("poetry", "ada", "Poetical science"),
        ("machines", "alan", "Computing machinery"),
    ):
        response = await client.post(
            f"/users/{ids[author]}/posts", json={"title": title, "body": f"{title}…"}
        )
        assert response.status_code == 201, response.text
        ids[key] = response.json()["id"]
    for post, names in (("engines", ["math", "history"]), ("machines", ["math", "ai"])):
        response = await client.post(f"/posts/{ids[post]}/tags", json={"names": names})
        assert response.status_code == 200, response.text
    for author, body in (("alan", "Remarkable"), ("ada", "Thank you")):
        response = await client.post(
            f"/posts/{ids['engines']}/comments", json={"user_id": ids[author], "body": body}
        )
        assert response.status_code == 201, response.text
    return ids


async def test_reads_nest_preloads_and_count(example_config: dict[str, Any]) -> None:
    async with running(example_config) as client:
        ids = await seed(client)
        post = (await client.get(f"/posts/{ids['engines']}")).json()
        user = (await client.get(f"/users/{ids['ada']}")).json()
        tags = (await client.get("/tags")).json()

    assert post["title"] == "Notes on the engine"
    assert post["author"]["name"] == "Ada Lovelace"
    assert [tag["name"] for tag in post["tags"]] == ["history", "math"]
    assert [(c["body"], c["author"]["initials"]) for c in post["comments"]] == [
        ("Remarkable", "AT"),
        ("Thank you", "AL"),
    ]
    assert post["meta"]["comments_count"] == 2

    assert [p["title"] for p in user["posts"]] == ["Notes on the engine", "Poetical science"]
    assert [[t["name"] for t in p["tags"]] for p in user["posts"]] == [["history", "math"], []]
    assert user["meta"] == {"comments_count": 1}
    # Relations that were not preloaded are left out, never an empty list.
    assert "comments" not in user
    assert "author" not in user["posts"][0]
    assert "password" not in user

    assert [(t["name"], t["meta"]["posts_count"]) for t in tags] == [
        ("ai", 1),
        ("history", 1),
        ("math", 2),
    ]


async def test_pages_and_filters(example_config: dict[str, Any]) -> None:
    async with running(example_config) as client:
        ids = await seed(client)
        users = (await client.get("/users", params={"per_page": 1, "page": 2})).json()
        tagged = (await client.get("/posts", params={"tag": "math", "per_page": 1})).json()

    assert [u["name"] for u in users["data"]] == ["Alan Turing"]
    assert users["data"][0]["meta"] == {"posts_count": 1}
    assert users["meta"]["total"] == 2
    assert users["meta"]["next_page_url"] is None
    assert users["meta"]["previous_page_url"] == "/users?per_page=1&page=1"

    assert tagged["meta"]["total"] == 2
    assert tagged["meta"]["next_page_url"] == "/posts?tag=math&per_page=1&page=2"
    [first] = tagged["data"]
    assert first["id"] == ids["engines"]
    assert first["author"]["name"] == "Ada Lovelace"
    assert first["meta"]["comments_count"] == 2


async def test_writes(example_config: dict[str, Any]) -> None:
    async with running(example_config) as client:
        ids = await seed(client)
        renamed = await client.patch(f"/users/{ids['alan']}", json={"name": "Alan M. Turing"})
        retagged = await client.post(
            f"/posts/{ids['engines']}/tags", json={"names": ["math", "ai"]}
        )
        duplicate = await client.post("/users", json={"email": "ada@example.com", "name": "Ada"})
        invalid = await client.post("/users", json={"name": "Nobody"})
        deleted = await client.delete(f"/posts/{ids['engines']}")
        gone = await client.get(f"/posts/{ids['engines']}")
        missing = await client.patch("/posts/999999", json={"title": "x"})
        users = (await client.get("/users")).json()
        stored = await User.find_or_fail(ids["ada"])
        comments = await Comment.query().count_rows()

    assert renamed.status_code == 200
    assert renamed.json()["name"] == "Alan M. Turing"
    assert renamed.json()["initials"] == "AMT"
    # Attaching tags the post already has keeps them once.
    assert [t["name"] for t in retagged.json()["tags"]] == ["ai", "history", "math"]
    assert duplicate.status_code == 409
    assert duplicate.json()["code"] == "E_INTEGRITY"
    assert invalid.status_code == 422
    assert invalid.json()["detail"][0]["loc"] == ["body", "email"]
    assert users["meta"]["total"] == 2  # neither the duplicate nor the invalid one was written
    assert deleted.status_code == 204
    assert gone.status_code == 404
    assert gone.json() == {"code": "E_ROW_NOT_FOUND", "message": "Post not found"}
    assert missing.status_code == 404
    assert comments == 0  # the post's comments went with it (ON DELETE CASCADE)
    assert stored.password is not None and stored.password.startswith("pbkdf2$")


async def test_openapi_lists_the_models_fields(example_config: dict[str, Any]) -> None:
    schema = create_app(example_config).openapi()
    components = schema["components"]["schemas"]
    user = components["User"]["properties"]
    assert {"id", "email", "name", "initials", "posts", "created_at"} <= set(user)
    assert "password" not in user
    assert user["email"]["type"] == "string"
    assert user["posts"]["type"] == "array"
    create = components["UserCreate"]
    assert set(create["required"]) == {"email", "name"}
    assert "password" in create["properties"]
    page = schema["paths"]["/posts"]["get"]["responses"]["200"]["content"]["application/json"]
    page_schema = components[page["schema"]["$ref"].rsplit("/", 1)[-1]]
    assert set(page_schema["properties"]) == {"data", "meta"}
    parameters = {p["name"] for p in schema["paths"]["/posts"]["get"]["parameters"]}
    assert parameters == {"page", "per_page", "tag"}


async def test_by_default_a_fresh_sqlite_file_from_database_url(
    database: Database, dialect: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if dialect != "sqlite":
        pytest.skip("the default database is an SQLite file")
    path = tmp_path / "from-env.db"
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{path}")
    app = create_app()
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://test") as client,
    ):
        response = await client.post("/users", json={"email": "e@x.org", "name": "Env"})
    assert response.status_code == 201
    assert path.exists()
