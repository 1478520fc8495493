"""``Executor`` (what the query builders call: run a statement, know the dialect) and
``Client`` (an executor with the builder factories, what models and tooling hold); the
database layer's ``QueryClient`` and ``TransactionClient`` implement both."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy.engine.interfaces import Dialect
from sqlalchemy.sql import Executable

# Many parameter sets for one statement (``executemany``), or ``None``.
Params = Sequence[Mapping[str, Any]] | None

if TYPE_CHECKING:
    from ..database.dialects.base import Dialect as DialectOps
    from ..database.result import ExecResult
    from ..database.transaction import TransactionStarter
    from .database import DatabaseQueryBuilder
    from .insert import InsertQueryBuilder
    from .raw import RawQueryBuilder


class Executor(Protocol):
    """Runs statements and knows its dialect: what the builders call on their client."""

    connection_name: str
    is_transaction: bool

    @property
    def dialect(self) -> Dialect:
        """SQLAlchemy's dialect of the connection (compilation, type processing)."""
        ...

    @property
    def dialect_name(self) -> str:
        """``"sqlite"``, ``"postgresql"`` or ``"mysql"``."""
        ...

    @property
    def dialect_ops(self) -> DialectOps:
        """lucid_orm's ``Dialect`` of the connection: capabilities and the operations that
        differ between databases (``database/dialects``)."""
        ...

    async def execute(
        self, stmt: Executable, *, write: bool, model: str | None = None, params: Params = None
    ) -> ExecResult:
        """Run ``stmt`` (``params``: many parameter sets) and read its whole result."""
        ...

    def transaction(self, callback: Any = None) -> TransactionStarter[Any]:
        """A transaction (a savepoint inside a transaction client)."""
        ...

    def stream(
        self, stmt: Executable, *, model: str | None = None, batch_size: int = 1000
    ) -> AsyncGenerator[ExecResult, None]:
        """Run a SELECT with a server-side cursor, yielding its rows ``batch_size`` at a time."""
        ...


class Client(Executor, Protocol):
    """An executor with the builder factories (``db.connection()``, a transaction)."""

    def query(self) -> DatabaseQueryBuilder:
        """A select query builder on this client."""
        ...

    def from_(self, table: Any) -> DatabaseQueryBuilder:
        """A select query builder for ``table``."""
        ...

    def insert_query(self) -> InsertQueryBuilder:
        """An insert query builder."""
        ...

    def raw_query(self, sql: str, bindings: Any = None, *, read: bool = False) -> RawQueryBuilder:
        """An executable raw query."""
        ...
