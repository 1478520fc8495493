"""The dialect wing: one ``Dialect`` per database kind (capabilities and the operations that
differ), looked up by SQLAlchemy's backend name."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine.interfaces import Dialect as SADialect

from .base import Dialect
from .mysql import MysqlDialect
from .postgresql import PostgresqlDialect
from .sqlite import SqliteDialect

_DIALECTS: dict[str, Dialect] = {
    "sqlite": SqliteDialect(),
    "postgresql": PostgresqlDialect(),
    "mysql": MysqlDialect(),
    "mariadb": MysqlDialect(),
}
_DEFAULT = Dialect()

# Driver error codes that mean a constraint violation, whichever dialect raised them.
INTEGRITY_ERROR_CODES: frozenset[int] = frozenset().union(
    *(d.integrity_error_codes for d in _DIALECTS.values())
)

# Driver error codes (MySQL) and SQLSTATEs (PostgreSQL) of a transaction conflict: a
# serialization failure or a deadlock (``TransactionConflictError``).
CONFLICT_ERROR_CODES: frozenset[int | str] = frozenset().union(
    *(d.conflict_error_codes for d in _DIALECTS.values())
)


def is_conflict(original: BaseException) -> bool:
    """Whether the driver error ``original`` is a transaction conflict (PostgreSQL's SQLSTATE,
    else MySQL's error number, the first argument)."""
    if getattr(original, "sqlstate", None) in CONFLICT_ERROR_CODES:
        return True
    args: tuple[Any, ...] = getattr(original, "args", ())
    return bool(args) and isinstance(args[0], int) and args[0] in CONFLICT_ERROR_CODES


def dialect_for(name: str) -> Dialect:
    """The ``Dialect`` of SQLAlchemy backend ``name`` (the portable one for others)."""
    return _DIALECTS.get(name, _DEFAULT)


def dialect_of(dialect: SADialect) -> Dialect:
    """The ``Dialect`` matching a SQLAlchemy dialect (``client.dialect``)."""
    return dialect_for(dialect.name)


__all__ = [
    "CONFLICT_ERROR_CODES",
    "INTEGRITY_ERROR_CODES",
    "Dialect",
    "MysqlDialect",
    "PostgresqlDialect",
    "SqliteDialect",
    "dialect_for",
    "dialect_of",
    "is_conflict",
]
