"""``ModelQueryBuilder``: the chainable builder bound to a model — returns instances, runs
fetch/find/paginate hooks, scopes, ``pojo()``, ``sideload()``, row locks and pagination."""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping
from typing import TYPE_CHECKING, Any, Generic, Self, TypeVar

from sqlalchemy import Select
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.elements import ColumnClause

from ..errors import LucidError, ModelNotFoundError
from ..query.chainable import Chainable
from ..query.paginator import SimplePaginator
from .hooks import ScopesProxy, run_hooks

if TYPE_CHECKING:
    from ..database.query_client import Client
    from .base_model import BaseModel

M = TypeVar("M", bound="BaseModel")


class ModelQueryBuilder(Chainable, Generic[M]):
    """``Model.query()``: awaiting it returns a list of model instances.

    Column arguments are database column names (``where("user_id", 1)``)."""

    def __init__(self, model: type[M], client: Client) -> None:
        super().__init__(client)
        info = model._info()
        self.model = model
        self._info = info
        table = info.table
        assert table is not None
        self._from = table
        self._aliases[info.table_name] = table
        self._pojo = False
        self._sideloaded: dict[str, Any] | None = None
        self._lock: str | None = None
        self._lock_options: dict[str, bool] = {}

    # -- columns -------------------------------------------------------------------------------
    def _unqualified(self, name: str) -> ColumnElement[Any]:
        found = self._info.column_for_db(name)
        return found if found is not None else ColumnClause(name)

    def _default_columns(self) -> list[ColumnElement[Any]]:
        return list(self._info.select_columns)

    def select(self, *columns: Any) -> Self:
        """As ``Chainable.select``; ``"*"`` and ``"<table>.*"`` expand to the model's columns."""
        star = f"{self._info.table_name}.*"
        for item in columns:
            if item == "*" or item == star:
                self._columns.extend(self._info.select_columns)
            else:
                super().select(item)
        return self

    def _model_name(self) -> str | None:
        return self.model.__name__

    # -- locks ---------------------------------------------------------------------------------
    def for_update(self, *, skip_locked: bool = False, no_wait: bool = False) -> Self:
        """``SELECT … FOR UPDATE`` (ignored on SQLite, which locks the whole database)."""
        self._lock = "update"
        self._lock_options = {"skip_locked": skip_locked, "nowait": no_wait}
        return self

    def for_share(self, *, skip_locked: bool = False, no_wait: bool = False) -> Self:
        """``SELECT … FOR SHARE`` (``LOCK IN SHARE MODE`` on MySQL)."""
        self._lock = "share"
        self._lock_options = {"skip_locked": skip_locked, "nowait": no_wait}
        return self

    def to_core(self) -> Select[Any]:
        stmt = super().to_core()
        if self._lock is not None:
            stmt = stmt.with_for_update(read=self._lock == "share", **self._lock_options)
        return stmt

    # -- scopes, pojo, sideload ----------------------------------------------------------------
    def with_scopes(self, callback: Callable[[Any], Any]) -> Self:
        """Apply ``@scope`` functions: ``with_scopes(lambda s: s.published().by(user))``."""
        self._run_callback(callback, "with_scopes", ScopesProxy(self, self._info.scopes))
        return self

    apply = with_scopes

    def pojo(self) -> Self:
        """Return plain dicts instead of model instances."""
        self._pojo = True
        return self

    def sideload(self, values: Mapping[str, Any]) -> Self:
        """Hand ``values`` to every returned instance as ``instance.sideloaded``."""
        self._sideloaded = dict(values)
        return self

    # -- execution -----------------------------------------------------------------------------
    async def _rows(self) -> Any:
        client = self.client
        result = await client.execute(self.to_core(), write=False, model=self.model.__name__)
        if self._pojo:
            return result.dicts()
        models = self.model._hydrate(result.keys, result.rows, client)
        if self._sideloaded is not None:
            for m in models:
                m.__dict__["_lucid_sideloaded"] = dict(self._sideloaded)
        await self._after_hydrate(models)
        return models

    async def _after_hydrate(self, models: list[M]) -> None:
        """Hook for the relationships layer (preloads)."""

    async def exec(self) -> list[M]:
        """Run the query and return model instances (dicts after ``pojo()``)."""
        hooks = self._info.hooks
        await run_hooks(hooks.get("before:fetch"), self)
        rows = await self._rows()
        await run_hooks(hooks.get("after:fetch"), rows)
        return rows  # type: ignore[no-any-return]

    async def first(self) -> M | None:
        """The first instance (``LIMIT 1``) or ``None``; runs the find hooks."""
        hooks = self._info.hooks
        await run_hooks(hooks.get("before:find"), self)
        self._limit = 1
        rows = await self._rows()
        row = rows[0] if rows else None
        if row is not None:
            await run_hooks(hooks.get("after:find"), row)
        return row  # type: ignore[no-any-return]

    async def first_or_fail(self) -> M:
        """Like ``first``; raises ``ModelNotFoundError`` when there is no row."""
        row = await self.first()
        if row is None:
            raise ModelNotFoundError(model=self.model.__name__)
        return row

    async def paginate(self, page: int, per_page: int = 20) -> SimplePaginator[M]:
        """One page of instances and the total (count query + page query). The total is
        right for ``distinct`` and ``group_by`` queries too."""
        if isinstance(page, bool) or not isinstance(page, int):
            raise LucidError(f"paginate() expects an int page, got {page!r}")
        hooks = self._info.hooks
        await run_hooks(hooks.get("before:paginate"), self)
        page = max(page, 1)
        total = await self.count_rows()
        rows = await self.clone().for_page(page, per_page)._rows()
        paginator = SimplePaginator(
            total, per_page, page, rows, naming_strategy=self.model.naming_strategy
        )
        await run_hooks(hooks.get("after:paginate"), paginator)
        return paginator

    def __await__(self) -> Generator[Any, None, list[M]]:
        return self.exec().__await__()
