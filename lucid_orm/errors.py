"""Every error lucid_orm raises: ``LucidError`` with a ``code`` and a ``status``, and its kin."""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import DontWrapMixin


class LucidError(Exception):
    """Base error. ``str(exc)`` is the bare message; ``code`` and ``status`` carry the rest."""

    code: str = "E_RUNTIME_EXCEPTION"
    status: int = 500

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status


class ModelNotFoundError(LucidError):
    """Raised by ``find_or_fail``/``first_or_fail`` when no row matches."""

    code = "E_ROW_NOT_FOUND"
    status = 404

    def __init__(self, message: str = "Row not found", *, model: str | None = None) -> None:
        super().__init__(message)
        self.model = model


class RelationNotLoadedError(LucidError, AttributeError):
    """Reading a relation attribute that was never preloaded or loaded. Never queries."""

    code = "E_RELATION_NOT_LOADED"

    def __init__(self, model: str, relation: str) -> None:
        instance = model[:1].lower() + model[1:]
        super().__init__(
            f'Relation "{relation}" of "{model}" is not loaded: use preload("{relation}") '
            f'or await {instance}.load("{relation}")'
        )
        self.model = model
        self.relation = relation


class QueryError(LucidError):
    """A database error from the driver, with the SQL and bindings that caused it.

    The message ends with the statement, ``[SQL: …]``, as sent (placeholders, values never
    inlined: they are in ``bindings``)."""

    code = "E_QUERY_FAILED"

    def __init__(
        self,
        message: str,
        *,
        sql: str | None = None,
        bindings: list[Any] | None = None,
        original: BaseException | None = None,
    ) -> None:
        if sql and f"[SQL: {sql}]" not in message:
            message = f"{message} [SQL: {sql}]"
        super().__init__(message)
        self.sql = sql
        self.bindings = bindings if bindings is not None else []
        self.original = original


class IntegrityError(QueryError):
    """A unique, foreign-key, not-null or check constraint violation."""

    code = "E_INTEGRITY"


class ConnectionLostError(QueryError):
    """The server dropped the connection a statement ran on (restart, failover, idle kill).
    Reads outside a transaction are retried once on a fresh connection before this is raised;
    inside a transaction nothing is retried (the transaction is gone: run it again), nor is a
    write outside one (it may or may not have been applied)."""

    code = "E_CONNECTION_LOST"


class TransactionConflictError(QueryError):
    """The database gave up on the transaction to keep concurrent ones consistent: a
    serialization failure (PostgreSQL ``40001``), a deadlock (PostgreSQL ``40P01``, MySQL and
    MariaDB ``1213``) or a Galera certification failure (``1213`` at commit). The transaction's
    work is gone; running it again usually succeeds: ``db.transaction(callback, retries=N)``
    does that, and raises this error once the retries are spent."""

    code = "E_TRANSACTION_CONFLICT"
    status = 409


class MigrationError(LucidError):
    """A migration that failed (``E_MIGRATION_FAILED``, the cause in ``original`` and
    ``__cause__``), a recorded migration whose file is gone (``E_MIGRATION_CORRUPT``), a
    migration file that cannot be loaded (``E_INVALID_MIGRATION``) or a migrations lock held
    by another runner (``E_MIGRATIONS_LOCKED``). ``file`` names the migration, when one is
    concerned."""

    code = "E_MIGRATION_FAILED"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        file: str | None = None,
        original: BaseException | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.file = file
        self.original = original


def runtime_error(message: str) -> LucidError:
    """A ``LucidError`` with code ``E_RUNTIME_EXCEPTION`` (relationship misuse and the like)."""
    return LucidError(message, code="E_RUNTIME_EXCEPTION")


def missing_attribute(message: str) -> LucidError:
    """A ``LucidError`` with code ``E_MISSING_MODEL_ATTRIBUTE``."""
    return LucidError(message, code="E_MISSING_MODEL_ATTRIBUTE")


__all__ = [
    "ConnectionLostError",
    "IntegrityError",
    "LucidError",
    "MigrationError",
    "ModelNotFoundError",
    "QueryError",
    "RelationNotLoadedError",
    "TransactionConflictError",
    "missing_attribute",
    "runtime_error",
]


class UnstorableValueError(DontWrapMixin, LucidError):
    """A value the database cannot hold as given (``E_INVALID_VALUE``): NaN on SQLite or
    MariaDB, infinity on MariaDB, a datetime whose UTC form falls outside years 1-9999.
    Raised while the statement's values are bound, before anything reaches the database
    (``DontWrapMixin``: SQLAlchemy lets it through unwrapped)."""

    code = "E_INVALID_VALUE"

    def __init__(self, message: str) -> None:
        super().__init__(message, code=self.code)


class InvalidArgumentError(LucidError, ValueError):
    """A bad argument refused before any query (``E_INVALID_ARGUMENT``). Also a
    ``ValueError``, for code that catches the built-in one."""

    code = "E_INVALID_ARGUMENT"

    def __init__(self, message: str) -> None:
        super().__init__(message, code=self.code)


class LazyLoadError(LucidError):
    """The N+1 guard in ``"raise"`` mode (``db.configure(lazy_load_guard="raise")``): a
    relation loaded one instance at a time for rows of one result set. The message names the
    ``preload(...)`` to use."""

    code = "E_LAZY_LOAD"


class LazyLoadWarning(UserWarning):
    """The N+1 guard in ``"warn"`` mode: a relation loaded one instance at a time for rows of
    one result set (once per relation and result set)."""
