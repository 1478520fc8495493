"""``lucid_orm.contrib.fastapi`` in real FastAPI and Starlette applications driven by httpx:
errors mapped to HTTP statuses and safe JSON bodies, the transaction per request (committed
before the response starts, rolled back on an exception), the lifespan, and page URLs built
from the request. Every test runs on the three dialects."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="needs the `fastapi` extra")

import httpx
from fastapi import Depends, FastAPI, HTTPException
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from lucid_orm import Database, IntegrityError, TransactionClient
from lucid_orm.contrib.fastapi import (
    PageRequest,
    Pagination,
    Transaction,
    install,
    lifespan,
    pagination,
    transaction,
)
from lucid_orm.database import db
from tests.helpers import DialectConfig
from tests.models import Membership, Thing


class SeenAtResponseStart:
    """ASGI middleware: when the response starts, counts the ``things`` rows a connection of
    its own sees (outside the request's transaction): what a client reading right after the
    response would find."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.seen: list[int] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.seen.append(await db.from_("things").count_rows())
            await send(message)

        await self.app(scope, receive, watch)


def make_app() -> FastAPI:
    app = FastAPI()
    install(app)

    @app.get("/things/{thing_id}")
    async def show(thing_id: int) -> dict[str, Any]:
        return (await Thing.find_or_fail(thing_id)).serialize()

    @app.post("/things", status_code=201)
    async def create(body: dict[str, Any], trx: Transaction) -> dict[str, Any]:
        return (await Thing.create(body, client=trx)).serialize()

    @app.post("/things/then-fail")
    async def create_then_fail(body: dict[str, Any], trx: Transaction) -> None:
        await Thing.create(body, client=trx)
        raise HTTPException(status_code=418, detail="changed my mind")

    @app.post("/things/then-crash")
    async def create_then_crash(body: dict[str, Any], trx: Transaction) -> None:
        await Thing.create(body, client=trx)
        raise RuntimeError("boom")

    @app.post("/things/request-scope", status_code=201)
    async def create_request_scope(
        body: dict[str, Any],
        trx: TransactionClient = Depends(transaction),  # noqa: B008
    ) -> dict[str, Any]:
        return (await Thing.create(body, client=trx)).serialize()

    @app.post("/memberships", status_code=201)
    async def create_membership(body: dict[str, Any], trx: Transaction) -> dict[str, Any]:
        return (await Membership.create(body, client=trx)).serialize()

    @app.post("/things/duplicate-swallowed")
    async def duplicate_swallowed(body: dict[str, Any], trx: Transaction) -> dict[str, str]:
        # PostgreSQL: a failed statement aborts the transaction, so the commit must fail.
        await Thing.create(body, client=trx)
        with suppress(IntegrityError):
            await Thing.create(body, client=trx)
        return {"status": "ok"}

    @app.post("/memberships/deferred")
    async def deferred(body: dict[str, Any], trx: Transaction) -> dict[str, str]:
        # SQLite: a deferred foreign-key check fails at COMMIT.
        await trx.raw_query("PRAGMA defer_foreign_keys = ON")
        await Membership.create(body, client=trx)
        return {"status": "ok"}

    @app.get("/things")
    async def index(pages: Pagination) -> dict[str, Any]:
        page = await pages.paginate(Thing.query().order_by("name"))
        return page.serialize()

    @app.get("/small-pages")
    async def small_pages(
        pages: PageRequest = Depends(pagination(per_page=2, max_per_page=3)),  # noqa: B008
    ) -> dict[str, Any]:
        return (await pages.paginate(db.from_("things").order_by("name"))).serialize()

    return app


@asynccontextmanager
async def client_for(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def thing_names() -> list[str]:
    return [thing.name for thing in await Thing.query().order_by("name")]


# -- errors -------------------------------------------------------------------------------------


async def test_find_or_fail_is_a_404_naming_the_model_not_the_key(database: Database) -> None:
    async with client_for(make_app()) as client:
        response = await client.get("/things/424242")
    assert response.status_code == 404
    assert response.json() == {"code": "E_ROW_NOT_FOUND", "message": "Thing not found"}


async def test_a_unique_violation_is_a_409_without_sql_or_values(database: Database) -> None:
    await Thing.create({"name": "secret-name"})
    async with client_for(make_app()) as client:
        response = await client.post("/things", json={"name": "secret-name"})
    assert response.status_code == 409
    assert response.json() == {
        "code": "E_INTEGRITY",
        "message": "A row with the same unique value already exists",
    }
    assert "secret-name" not in response.text
    assert "things" not in response.text.lower()
    assert await thing_names() == ["secret-name"]


async def test_a_missing_required_value_is_a_422(database: Database) -> None:
    async with client_for(make_app()) as client:
        response = await client.post("/things", json={"name": None, "amount": 7})
    assert response.status_code == 422
    assert response.json() == {"code": "E_INTEGRITY", "message": "A required value is missing"}
    assert await thing_names() == []


async def test_an_unknown_attribute_is_a_422_naming_it(database: Database) -> None:
    async with client_for(make_app()) as client:
        response = await client.post("/things", json={"name": "a", "colour": "red"})
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "E_UNKNOWN_ATTRIBUTE"
    assert '"colour"' in body["message"]


async def test_a_foreign_key_violation_is_a_409(database: Database) -> None:
    async with client_for(make_app()) as client:
        response = await client.post("/memberships", json={"user_id": 987654, "role": "x"})
    assert response.status_code == 409
    assert response.json()["code"] == "E_INTEGRITY"
    assert "987654" not in response.text
    assert await Membership.query().count_rows() == 0


async def test_an_unreachable_database_is_a_503_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No database of the suite is involved: the endpoint's own points at a closed port."""
    unreachable = Database()
    unreachable.configure(url="postgresql://postgres:s3cret@127.0.0.1:1/nowhere")
    app = FastAPI()
    install(app)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"rows": await unreachable.raw_query("select 1")}

    try:
        with caplog.at_level("ERROR", logger="lucid_orm.contrib.fastapi"):
            async with client_for(app) as client:
                response = await client.get("/health")
    finally:
        await unreachable.close()
    assert response.status_code == 503
    assert response.json() == {
        "code": "E_CONNECTION_FAILED",
        "message": "The database is unavailable",
    }
    assert "127.0.0.1" not in response.text
    [record] = caplog.records
    assert record.getMessage() == "GET /health failed: E_CONNECTION_FAILED"
    assert record.exc_info is not None
    assert "s3cret" not in caplog.text  # the log names the connection, its password masked


async def test_a_transaction_conflict_is_a_409_without_sql_or_values(
    database: Database, dialect: str
) -> None:
    """PostgreSQL: every attempt updates a row another connection changed since the
    transaction's snapshot (40001), so the retries run out."""
    if dialect != "postgresql":
        pytest.skip("a deterministic conflict: PostgreSQL's REPEATABLE READ snapshot")
    thing = await Thing.create({"name": "counter", "amount": 0})
    app = make_app()

    @app.post("/counter")
    async def bump() -> dict[str, str]:
        async def lose(trx: TransactionClient) -> None:
            await trx.from_("things").where("id", thing.id).first()
            await db.from_("things").where("id", thing.id).increment("amount")
            await trx.from_("things").where("id", thing.id).increment("amount")

        await db.transaction(lose, isolation_level="repeatable_read", retries=1)
        return {"status": "ok"}

    async with client_for(app) as client:
        response = await client.post("/counter")
    assert response.status_code == 409
    assert response.json() == {
        "code": "E_TRANSACTION_CONFLICT",
        "message": "The request conflicted with a concurrent one: try again",
    }
    assert "things" not in response.text.lower()
    assert [t.amount for t in await Thing.all()] == [2]  # the other connection's two


# -- a transaction per request ------------------------------------------------------------------


async def test_the_transaction_commits_before_the_response_starts(database: Database) -> None:
    app = SeenAtResponseStart(make_app())
    async with client_for(app) as client:
        response = await client.post("/things", json={"name": "kept", "amount": 1})
    assert response.status_code == 201
    assert response.json()["name"] == "kept"
    # A connection of its own saw the row when the response started.
    assert app.seen == [1]
    assert await thing_names() == ["kept"]


async def test_the_default_request_scope_would_commit_after_the_response_starts(
    database: Database,
) -> None:
    """Why ``Transaction`` asks for ``scope="function"``: with FastAPI's default scope the
    commit runs after the response started, so a client could read before it."""
    app = SeenAtResponseStart(make_app())
    async with client_for(app) as client:
        response = await client.post("/things/request-scope", json={"name": "late"})
    assert response.status_code == 201
    assert app.seen == [0]
    assert await thing_names() == ["late"]


async def test_an_http_exception_rolls_the_transaction_back(database: Database) -> None:
    async with client_for(make_app()) as client:
        response = await client.post("/things/then-fail", json={"name": "discarded"})
    assert response.status_code == 418
    assert response.json() == {"detail": "changed my mind"}
    assert await thing_names() == []


async def test_an_unhandled_exception_rolls_the_transaction_back(database: Database) -> None:
    async with client_for(make_app()) as client:
        response = await client.post("/things/then-crash", json={"name": "discarded"})
    assert response.status_code == 500
    assert await thing_names() == []


async def test_a_commit_the_database_refuses_is_an_error_response_and_nothing_is_kept(
    database: Database, dialect: str
) -> None:
    """Not a silent loss: the client hears of it. SQLite checks a deferred foreign key at
    COMMIT (409, as at the statement); PostgreSQL refuses to commit a transaction a statement
    failed in (500)."""
    if dialect == "mysql":
        pytest.skip("MySQL checks every constraint at its statement: no COMMIT fails")
    path, body, status, code = {
        "postgresql": ("/things/duplicate-swallowed", {"name": "twice"}, 500, "E_QUERY_FAILED"),
        "sqlite": ("/memberships/deferred", {"user_id": 987654}, 409, "E_INTEGRITY"),
    }[dialect]
    async with client_for(make_app()) as client:
        response = await client.post(path, json=body)
    assert response.status_code == status
    assert response.json()["code"] == code
    assert "twice" not in response.text
    assert await thing_names() == []
    assert await Membership.query().count_rows() == 0


# -- lifespan -----------------------------------------------------------------------------------


async def answers(database: Database) -> bool:
    rows = await database.raw_query("select 1 as one")
    return bool(rows)


async def test_lifespan_configures_on_start_and_closes_on_stop(
    database: Database, dialect_config: DialectConfig
) -> None:
    private = Database()
    events: list[str] = []

    @asynccontextmanager
    async def own(app: Starlette) -> AsyncIterator[dict[str, str]]:
        events.append(f"start configured={private.is_configured}")
        assert await answers(private)
        yield {"greeting": "hello"}
        events.append(f"stop open={not private.get_connection().closed}")

    app = FastAPI(
        lifespan=lifespan(
            connections=dialect_config.connections,
            connection=dialect_config.name,
            database=private,
            inner=own,
        )
    )
    assert not private.is_configured  # read at start-up, not when the app is built
    async with app.router.lifespan_context(app) as state:
        assert state == {"greeting": "hello"}
        assert await answers(private)
    assert events == ["start configured=True", "stop open=True"]
    assert private.get_connection().closed


async def test_lifespan_takes_a_url_a_callable_or_the_environment(
    database: Database, dialect_config: DialectConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []

    async def load() -> dict[str, Any]:
        calls.append("load")
        return {"url": dialect_config.url}

    sources: list[Callable[[Database], Any]] = [
        lambda target: lifespan(dialect_config.url, database=target),
        lambda target: lifespan(load, database=target),
        lambda target: lifespan(database=target),  # LUCID_DATABASE_URL
    ]
    monkeypatch.setenv("LUCID_DATABASE_URL", dialect_config.url)
    for make in sources:
        private = Database()
        app = Starlette(lifespan=make(private))
        async with app.router.lifespan_context(app):
            assert await answers(private)
        assert private.get_connection().closed
    assert calls == ["load"]


async def test_lifespan_without_any_configuration_fails_at_start_up(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LUCID_DATABASE_URL", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    private = Database()
    app = Starlette(lifespan=lifespan(database=private))
    with pytest.raises(Exception, match="LUCID_DATABASE_URL or DATABASE_URL") as info:
        async with app.router.lifespan_context(app):
            pass
    assert getattr(info.value, "code", None) == "E_INVALID_CONFIG"


# -- pagination ---------------------------------------------------------------------------------


async def seed_things(count: int) -> None:
    await Thing.create_many([{"name": f"thing-{n:02d}"} for n in range(count)])


async def test_page_urls_keep_the_request_path_and_parameters(database: Database) -> None:
    await seed_things(7)
    async with client_for(make_app()) as client:
        response = await client.get(
            "/things",
            params=[("sort", "name"), ("tag", "a"), ("tag", "b"), ("page", "2"), ("per_page", "3")],
        )
    assert response.status_code == 200
    body = response.json()
    assert [row["name"] for row in body["data"]] == ["thing-03", "thing-04", "thing-05"]
    meta = body["meta"]
    assert meta["current_page"] == 2
    assert meta["last_page"] == 3
    assert meta["next_page_url"] == "/things?sort=name&tag=a&tag=b&per_page=3&page=3"
    assert meta["previous_page_url"] == "/things?sort=name&tag=a&tag=b&per_page=3&page=1"


async def test_page_and_per_page_are_clamped(database: Database) -> None:
    await seed_things(5)
    async with client_for(make_app()) as client:
        low = await client.get("/small-pages", params={"page": "0", "per_page": "0"})
        high = await client.get("/small-pages", params={"per_page": "50"})
        default = await client.get("/small-pages")
        bad = await client.get("/small-pages", params={"page": "two"})
    assert low.json()["meta"]["current_page"] == 1
    assert low.json()["meta"]["per_page"] == 1
    assert high.json()["meta"]["per_page"] == 3
    assert high.json()["meta"]["next_page_url"] == "/small-pages?per_page=3&page=2"
    assert default.json()["meta"]["per_page"] == 2
    assert default.json()["meta"]["next_page_url"] == "/small-pages?page=2"
    assert bad.status_code == 422  # FastAPI validates the declared int parameters


async def test_openapi_documents_the_page_parameters(database: Database) -> None:
    schema = make_app().openapi()
    parameters = {p["name"]: p for p in schema["paths"]["/things"]["get"]["parameters"]}
    assert set(parameters) == {"page", "per_page"}
    assert parameters["per_page"]["schema"]["default"] == 20
    assert parameters["page"]["in"] == "query"


# -- plain Starlette ----------------------------------------------------------------------------


async def test_plain_starlette_handlers_and_pages(database: Database) -> None:
    await seed_things(3)

    async def things(request: Request) -> JSONResponse:
        pages = PageRequest.from_request(request, per_page=2)
        page = await pages.paginate(Thing.query().order_by("name"))
        return JSONResponse(page.serialize())

    async def show(request: Request) -> JSONResponse:
        thing = await Thing.find_or_fail(int(request.path_params["thing_id"]))
        return JSONResponse(thing.serialize())

    app = Starlette(
        routes=[
            Route("/things", things),
            Route("/things/{thing_id}", show),
        ]
    )
    install(app)
    async with client_for(app) as client:
        missing = await client.get("/things/999999")
        page = await client.get("/things", params={"page": "x", "per_page": "1", "q": "t"})
    assert missing.status_code == 404
    assert missing.json() == {"code": "E_ROW_NOT_FOUND", "message": "Thing not found"}
    meta = page.json()["meta"]
    assert meta["current_page"] == 1  # a non-integer page falls back to the first
    assert meta["next_page_url"] == "/things?per_page=1&q=t&page=2"
    assert [row["name"] for row in page.json()["data"]] == ["thing-00"]


# -- missing dependencies -----------------------------------------------------------------------


def run_without(modules: list[str], code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter where importing ``modules`` fails."""
    block = "import sys\n" + "".join(f"sys.modules[{name!r}] = None\n" for name in modules)
    return subprocess.run(
        [sys.executable, "-c", block + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_without_starlette_the_import_names_the_extra() -> None:
    run = run_without(
        ["starlette", "starlette.requests", "fastapi"],
        """
        import lucid_orm  # works without the extra
        from lucid_orm.errors import LucidError
        try:
            import lucid_orm.contrib.fastapi
        except LucidError as exc:
            print(exc.code, exc)
        """,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("E_MISSING_DEPENDENCY ")
    assert "pip install 'lucid-orm[fastapi]'" in run.stdout


def test_without_fastapi_the_starlette_pieces_work() -> None:
    run = run_without(
        ["fastapi"],
        """
        from starlette.applications import Starlette
        from lucid_orm.errors import LucidError
        from lucid_orm.contrib import fastapi as contrib
        app = Starlette(lifespan=contrib.lifespan(url="sqlite://:memory:"))
        contrib.install(app)
        try:
            contrib.Transaction
        except LucidError as exc:
            print(exc.code, exc)
        """,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("E_MISSING_DEPENDENCY lucid_orm.contrib.fastapi.Transaction")
    assert "lucid-orm[fastapi]" in run.stdout
