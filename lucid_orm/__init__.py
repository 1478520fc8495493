"""lucid_orm: an async Active Record ORM for Python, after AdonisJS Lucid."""

from typing import TYPE_CHECKING, Any

from .database import Database, QueryClient, QueryEvent, TransactionClient, db
from .errors import (
    ConnectionLostError,
    IntegrityError,
    LazyLoadError,
    LazyLoadWarning,
    LucidError,
    ModelNotFoundError,
    QueryError,
    RelationNotLoadedError,
    TransactionConflictError,
    UnstorableValueError,
)
from .orm.base_model import BaseModel
from .orm.columns import column, computed
from .orm.hooks import after, before, global_scope, scope
from .orm.naming import CamelCaseNamingStrategy, SnakeCaseNamingStrategy
from .orm.query_builder import ModelQueryBuilder
from .orm.relations import (
    belongs_to,
    has_many,
    has_many_through,
    has_one,
    many_to_many,
    morph_many,
    morph_map,
    morph_one,
    morph_to,
    morph_to_many,
    morphed_by_many,
)
from .orm.relations.has_one_through import has_one_through
from .query.database import DatabaseQueryBuilder
from .query.json import json_extract
from .query.paginator import SimplePaginator

if TYPE_CHECKING:
    from .query.cursor import CursorPaginator


__all__ = [
    "BaseModel",
    "CamelCaseNamingStrategy",
    "ConnectionLostError",
    "CursorPaginator",
    "Database",
    "DatabaseQueryBuilder",
    "IntegrityError",
    "LazyLoadError",
    "LazyLoadWarning",
    "LucidError",
    "ModelNotFoundError",
    "ModelQueryBuilder",
    "QueryClient",
    "QueryError",
    "QueryEvent",
    "RelationNotLoadedError",
    "SimplePaginator",
    "SnakeCaseNamingStrategy",
    "TransactionClient",
    "TransactionConflictError",
    "UnstorableValueError",
    "__version__",
    "after",
    "before",
    "belongs_to",
    "column",
    "computed",
    "db",
    "global_scope",
    "has_many",
    "has_many_through",
    "has_one",
    "has_one_through",
    "json_extract",
    "many_to_many",
    "morph_many",
    "morph_map",
    "morph_one",
    "morph_to",
    "morph_to_many",
    "morphed_by_many",
    "scope",
]


def __getattr__(name: str) -> Any:
    # ``__version__`` on first access: the metadata lookup scans sys.path (~5 ms), which
    # ``import lucid_orm`` should not pay; ``CursorPaginator`` likewise (keyset pagination
    # loads with its first use).
    if name == "__version__":
        from ._version import version

        return version()
    if name == "CursorPaginator":
        from .query.cursor import CursorPaginator

        return CursorPaginator
    raise AttributeError(f"module 'lucid_orm' has no attribute {name!r}")
