"""FastAPI and Starlette integration (``pip install 'lucid-orm[fastapi]'``).

The pieces, each usable alone::

    from fastapi import FastAPI
    from lucid_orm.contrib.fastapi import Pagination, Transaction, install, lifespan
    from lucid_orm.pydantic import Page, pydantic_model

    app = FastAPI(lifespan=lifespan(url="sqlite:///app.db"))   # configure, then close
    install(app)                                  # LucidError -> JSON {"code", "message"}
    UserCreate = pydantic_model(User, mode="create")

    @app.post("/users", status_code=201)
    async def create_user(body: UserCreate, trx: Transaction) -> User:
        return await User.create(body.model_dump(exclude_unset=True), client=trx)
        # committed before the response is sent

    @app.get("/users", response_model=Page[User])
    async def list_users(pages: Pagination) -> SimplePaginator[User]:
        return await pages.paginate(User.query().order_by("id"))
        # meta.next_page_url from the request's URL

* :func:`lifespan` configures ``db`` on start-up and closes its pools on shut-down, around
  the application's own lifespan (``inner=``).
* :func:`install` registers :func:`lucid_error_handler`: ``LucidError.status`` becomes the
  HTTP status (``find_or_fail`` → 404), a unique violation → 409, values the database refuses
  → 422, with a JSON body ``{"code": ..., "message": ...}`` that never carries SQL or bound
  values (5xx errors are logged on the ``lucid_orm.contrib.fastapi`` logger instead).
* :func:`transaction` / :data:`Transaction`: a transaction per request, committed when the
  endpoint returns normally — before the response is sent — and rolled back on any exception.
* :func:`pagination` / :data:`Pagination`: ``page`` and ``per_page`` from the query string,
  clamped, and a paginator whose page URLs keep the request's path and other parameters.
* :class:`StickyScopeMiddleware`: a read-your-writes scope per request for connections with
  read replicas and ``sticky: True`` (``app.add_middleware(StickyScopeMiddleware)``).

The lifespan, the handlers and :meth:`PageRequest.from_request` need only Starlette; the
dependencies (:data:`Transaction`, :data:`Pagination`) are FastAPI's.
"""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Protocol, TypeAlias, TypeVar

from lucid_orm.database import Database, TransactionClient, db
from lucid_orm.errors import (
    IntegrityError,
    LucidError,
    ModelNotFoundError,
    QueryError,
    TransactionConflictError,
)
from lucid_orm.query.paginator import SimplePaginator

try:
    from starlette.requests import Request
    from starlette.responses import JSONResponse
except ImportError as exc:  # tests/ecosystem/test_fastapi.py hides Starlette to test it
    raise LucidError(
        "lucid_orm.contrib.fastapi needs FastAPI (or Starlette), which is not installed: "
        "pip install 'lucid-orm[fastapi]'",
        code="E_MISSING_DEPENDENCY",
    ) from exc

if TYPE_CHECKING:
    from starlette.applications import Starlette

__all__ = [
    "PageRequest",
    "Pagination",
    "StickyScopeMiddleware",
    "Transaction",
    "constraint_kind",
    "error_body",
    "install",
    "lifespan",
    "lucid_error_handler",
    "pagination",
    "status_of",
    "transaction",
    "transaction_dependency",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")
AppT = TypeVar("AppT")
Lifespan: TypeAlias = Callable[[AppT], AbstractAsyncContextManager[Any]]

DATABASE_URL_VARIABLES = ("LUCID_DATABASE_URL", "DATABASE_URL")
"""Read, in this order, by :func:`lifespan` when it is given no configuration."""

# -- lifespan -----------------------------------------------------------------------------------


def lifespan(
    config: str | Mapping[str, Any] | Callable[[], Any] | None = None,
    /,
    *,
    inner: Lifespan[Any] | None = None,
    database: Database | None = None,
    **configure_kwargs: Any,
) -> Lifespan[Any]:
    """A lifespan for ``FastAPI(lifespan=...)`` or ``Starlette(lifespan=...)``: configures the
    database on start-up, runs ``inner`` (the application's own lifespan) inside, and closes
    the pools (``await db.close()``) on shut-down, also when start-up fails half-way.

    The configuration, read at start-up (not when the application is built):

    * keyword arguments of ``db.configure``: ``lifespan(url="sqlite:///app.db")``,
      ``lifespan(connections={...}, connection="pg")``;
    * ``config``, a URL string or a mapping of those keyword arguments;
    * ``config``, a callable (sync or async) returning either of them, or ``None`` when it
      configured the database itself: settings loaded at start-up, secrets from a vault;
    * nothing: the database as already configured, else ``LUCID_DATABASE_URL`` or
      ``DATABASE_URL`` from the environment, else ``LucidError`` (``E_INVALID_CONFIG``).

    What ``inner`` yields (the lifespan state) is yielded on. ``database`` is the manager to
    configure (default: the global ``db``). The result is an ordinary lifespan: call it inside
    your own lifespan instead (``async with lifespan(url=...)(app): ...``) if you prefer.
    """
    manager = db if database is None else database
    if config is not None and configure_kwargs:
        raise LucidError(
            "lifespan() takes a configuration or db.configure() keyword arguments, not both",
            code="E_INVALID_ARGUMENT",
        )

    @asynccontextmanager
    async def run(app: Any) -> AsyncIterator[Any]:
        try:
            await _configure(manager, config, configure_kwargs)
            if inner is None:
                yield None
            else:
                async with inner(app) as state:
                    yield state
        finally:
            if manager.is_configured:
                await manager.close()

    return run


async def _configure(manager: Database, source: Any, kwargs: dict[str, Any]) -> None:
    config = source
    if callable(source):
        config = source()
        if inspect.isawaitable(config):
            config = await config
        if config is None:  # the callable configured the database itself
            return
    if isinstance(config, str):
        kwargs = {"url": config}
    elif isinstance(config, Mapping):
        kwargs = dict(config)
    elif config is not None:
        raise LucidError(
            f"lifespan() expects a URL, a mapping or a callable, got {type(config).__name__}",
            code="E_INVALID_ARGUMENT",
        )
    if not kwargs:
        if manager.is_configured:
            return
        url = next((os.environ[n] for n in DATABASE_URL_VARIABLES if os.environ.get(n)), None)
        if url is None:
            raise LucidError(
                "lifespan() has no database to configure: pass url=... (or a configuration), "
                "configure db before start-up, or set LUCID_DATABASE_URL or DATABASE_URL",
                code="E_INVALID_CONFIG",
            )
        kwargs = {"url": url}
    manager.configure(**kwargs)


# -- exception handlers -------------------------------------------------------------------------

# Statuses of codes whose LucidError keeps the default 500 but that a client's input causes.
_STATUS_BY_CODE = {
    "E_INVALID_VALUE": 422,  # a value the database cannot hold (NaN, a year out of range)
    "E_UNKNOWN_ATTRIBUTE": 422,  # create/merge/fill with a key that is not a column
    # The database is out of reach: a load balancer or client may retry elsewhere or later.
    "E_CONNECTION_FAILED": 503,
    "E_CONNECTION_LOST": 503,
}

# Constraint kinds by driver error: PostgreSQL SQLSTATE, SQLite extended result code, MySQL
# and MariaDB error number.
_PG_KINDS = {"23505": "unique", "23503": "foreign_key", "23502": "not_null", "23514": "check"}
_SQLITE_KINDS = {2067: "unique", 1555: "unique", 787: "foreign_key", 1299: "not_null", 275: "check"}
_MYSQL_KINDS = {
    **dict.fromkeys((1062, 1169, 1557), "unique"),
    **dict.fromkeys((1216, 1217, 1451, 1452), "foreign_key"),
    **dict.fromkeys((1048, 1364), "not_null"),
    4025: "check",
}
_INTEGRITY = {
    "unique": (409, "A row with the same unique value already exists"),
    "foreign_key": (409, "The row refers to a row that does not exist, or is referred to"),
    "not_null": (422, "A required value is missing"),
    "check": (422, "A value breaks a check constraint"),
    "constraint": (409, "The change breaks a database constraint"),
}


def constraint_kind(exc: IntegrityError) -> str:
    """``"unique"``, ``"foreign_key"``, ``"not_null"``, ``"check"`` or ``"constraint"``
    (unknown): what the violated constraint was, from the driver's error code."""
    original = exc.original
    sqlite_code = getattr(original, "sqlite_errorcode", None)
    if isinstance(sqlite_code, int):
        return _SQLITE_KINDS.get(sqlite_code, "constraint")
    # MySQL's drivers: (errno, message); their sqlstate is the generic 23000.
    args: tuple[Any, ...] = getattr(original, "args", ())
    if args and isinstance(args[0], int):
        return _MYSQL_KINDS.get(args[0], "constraint")
    sqlstate = getattr(original, "sqlstate", None)
    if isinstance(sqlstate, str):
        return _PG_KINDS.get(sqlstate, "constraint")
    return "constraint"


def status_of(exc: LucidError) -> int:
    """The HTTP status for ``exc``: 409/422 for constraint violations (see
    :func:`constraint_kind`), 422 for values a client sent that the model or the database
    refuses (``E_INVALID_VALUE``, ``E_UNKNOWN_ATTRIBUTE``), 503 when the database cannot be
    reached (``E_CONNECTION_FAILED``, ``E_CONNECTION_LOST``), else ``exc.status``
    (``ModelNotFoundError``: 404, ``TransactionConflictError``: 409)."""
    if isinstance(exc, IntegrityError):
        return _INTEGRITY[constraint_kind(exc)][0]
    return _STATUS_BY_CODE.get(exc.code, exc.status)


def error_body(exc: LucidError, status: int) -> dict[str, Any]:
    """The JSON body for ``exc``: ``{"code": exc.code, "message": ...}``. The message is safe
    to show a client: database errors (``QueryError``, which carries SQL and bound values) and
    5xx errors get a fixed message; not-found errors name the model, never the key."""
    if isinstance(exc, IntegrityError):
        message = _INTEGRITY[constraint_kind(exc)][1]
    elif isinstance(exc, ModelNotFoundError):
        message = f"{exc.model} not found" if exc.model else "Row not found"
    elif isinstance(exc, TransactionConflictError) and status == 409:
        message = "The request conflicted with a concurrent one: try again"
    elif status == 503:
        message = "The database is unavailable"
    elif isinstance(exc, QueryError) or status >= 500:
        message = "Internal server error"
    else:
        message = exc.message
    return {"code": exc.code, "message": message}


async def lucid_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """Starlette/FastAPI exception handler for ``LucidError``: the status of
    :func:`status_of`, the body of :func:`error_body`. A 5xx error is logged with its
    traceback (SQL included) on this module's logger: the handler takes it from the server's
    own error log."""
    if not isinstance(exc, LucidError):  # registered for LucidError only
        raise exc
    status = status_of(exc)
    if status >= 500:
        logger.error("%s %s failed: %s", request.method, request.url.path, exc.code, exc_info=exc)
    return JSONResponse(error_body(exc, status), status_code=status)


def install(app: Starlette) -> None:
    """Register :func:`lucid_error_handler` for every ``LucidError`` on a FastAPI or Starlette
    application (``app.add_exception_handler``). Handlers registered for a subclass, before or
    after, take precedence for it."""
    app.add_exception_handler(LucidError, lucid_error_handler)


# -- read-your-writes per request ---------------------------------------------------------------


class StickyScopeMiddleware:
    """An ASGI middleware that runs each request (HTTP or WebSocket) in a read-your-writes
    scope of its own (``db.sticky_scope()``): after the request writes through a connection
    configured with ``sticky: True``, its reads on that connection go to the write side, while
    other requests keep reading the replicas::

        app.add_middleware(StickyScopeMiddleware)

    ``database``: the manager whose scope it opens (default: the global ``db``; the scope is
    process-wide, so any manager's works)."""

    def __init__(self, app: Any, database: Database | None = None) -> None:
        self.app = app
        self.database = db if database is None else database

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope.get("type") not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        async with self.database.sticky_scope():
            await self.app(scope, receive, send)


# -- a transaction per request ------------------------------------------------------------------


def transaction_dependency(
    *,
    connection: str | None = None,
    isolation_level: str | None = None,
    database: Database | None = None,
) -> Callable[[], AsyncIterator[TransactionClient]]:
    """A FastAPI dependency yielding a transaction of ``connection`` (default: the primary
    one): committed when the endpoint returns normally, rolled back when anything raises (an
    ``HTTPException`` too); a transaction the endpoint committed or rolled back itself is left
    alone. Pass the transaction on: ``await User.create(values, client=trx)``.

    Use it with ``Depends(dependency, scope="function")`` (FastAPI 0.121 and later): only then
    does the commit run before the response is sent, so a client reading right after sees the
    rows, and a commit the database refuses is an error response (500) instead of a silent
    loss. With the default scope, FastAPI runs the commit after sending the response.
    :data:`Transaction` is the ready-made annotation for the default connection.
    """
    manager = db if database is None else database

    async def dependency() -> AsyncIterator[TransactionClient]:
        trx = await manager.transaction(connection=connection, isolation_level=isolation_level)
        try:
            yield trx
        except BaseException:
            if not trx.is_completed:
                await trx.rollback()
            raise
        if not trx.is_completed:
            await trx.commit()

    return dependency


transaction = transaction_dependency()
"""The dependency of :func:`transaction_dependency` for the default connection of ``db``."""


# -- pagination ---------------------------------------------------------------------------------

PageT = TypeVar("PageT", bound=SimplePaginator[Any])


class _Paginates(Protocol[T]):
    def paginate(self, page: int, per_page: int = ...) -> Awaitable[SimplePaginator[T]]: ...


def _clamp(value: Any, low: int, high: int | None, default: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return default
    number = max(low, number)
    return number if high is None else min(high, number)


@dataclass(frozen=True)
class PageRequest:
    """The page a request asks for (``?page=2&per_page=10``, clamped) and the request, whose
    path and other query parameters the page URLs keep.

    ``await pages.paginate(query)`` runs ``query.paginate(page, per_page)`` and points the
    paginator's URLs at the request (:meth:`apply`)."""

    page: int
    per_page: int
    request: Request

    @classmethod
    def from_request(
        cls, request: Request, *, per_page: int = 20, max_per_page: int = 100
    ) -> PageRequest:
        """Read ``page`` and ``per_page`` from the query string (plain Starlette): ``page`` at
        least 1, ``per_page`` from 1 to ``max_per_page``; a missing or non-integer value gives
        the default (page 1, ``per_page``)."""
        params = request.query_params
        return cls(
            page=_clamp(params.get("page"), 1, None, 1),
            per_page=_clamp(params.get("per_page"), 1, max_per_page, per_page),
            request=request,
        )

    def apply(self, paginator: PageT) -> PageT:
        """Point ``paginator``'s URLs at the request: its path as the base URL, its query
        parameters but ``page`` kept (``per_page`` as clamped). Returns the paginator."""
        kept: dict[str, list[str]] = {}
        for key, value in self.request.query_params.multi_items():
            if key != "page":
                kept.setdefault(key, []).append(value)
        if "per_page" in kept:
            kept["per_page"] = [str(self.per_page)]
        return paginator.base_url(self.request.url.path).query_string(kept)

    async def paginate(self, query: _Paginates[T]) -> SimplePaginator[T]:
        """``query.paginate(page, per_page)`` (a model or database query builder), with its
        URLs pointed at the request."""
        return self.apply(await query.paginate(self.page, self.per_page))


def pagination(*, per_page: int = 20, max_per_page: int = 100) -> Callable[..., PageRequest]:
    """A FastAPI dependency giving the :class:`PageRequest` of the request: ``page`` and
    ``per_page`` query parameters (documented in the OpenAPI schema), clamped as
    :meth:`PageRequest.from_request` does. :data:`Pagination` uses the defaults (20, at most
    100)."""
    if per_page < 1 or max_per_page < per_page:
        raise LucidError(
            f"pagination() needs 1 <= per_page <= max_per_page, got {per_page} and {max_per_page}",
            code="E_INVALID_ARGUMENT",
        )
    default_per_page = per_page

    def dependency(
        request: Request, page: int = 1, per_page: int = default_per_page
    ) -> PageRequest:
        return PageRequest(
            page=max(1, page), per_page=min(max_per_page, max(1, per_page)), request=request
        )

    return dependency


# -- FastAPI annotations ------------------------------------------------------------------------

# The annotations FastAPI cannot provide here, and why (see __getattr__).
_MISSING: dict[str, str] = {}
try:
    import fastapi
    from fastapi import Depends
except ImportError:  # plain Starlette: everything else works
    _MISSING = dict.fromkeys(("Transaction", "Pagination"), "FastAPI is not installed")
else:
    if "scope" not in inspect.signature(Depends).parameters:
        _MISSING["Transaction"] = (
            f"it needs FastAPI 0.121 or later (Depends(scope=...)), not {fastapi.__version__}"
        )

if TYPE_CHECKING or "Transaction" not in _MISSING:
    Transaction: TypeAlias = Annotated[TransactionClient, Depends(transaction, scope="function")]
    """``trx: Transaction`` in an endpoint: the transaction of :data:`transaction`, committed
    before the response is sent."""

if TYPE_CHECKING or "Pagination" not in _MISSING:
    Pagination: TypeAlias = Annotated[PageRequest, Depends(pagination())]
    """``pages: Pagination`` in an endpoint: the :class:`PageRequest` of the request."""

if not TYPE_CHECKING:  # a module __getattr__ would hide misspelt imports from type checkers

    def __getattr__(name: str) -> Any:
        if name in _MISSING:
            raise LucidError(
                f"lucid_orm.contrib.fastapi.{name} is a FastAPI dependency, and "
                f"{_MISSING[name]}: pip install -U 'lucid-orm[fastapi]'",
                code="E_MISSING_DEPENDENCY",
            )
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
