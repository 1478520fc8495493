"""The database layer: connections, query clients, transactions, query events."""

from .events import QueryEvent
from .manager import Database, db
from .query_client import QueryClient
from .transaction import TransactionClient

__all__ = ["Database", "QueryClient", "QueryEvent", "TransactionClient", "db"]
