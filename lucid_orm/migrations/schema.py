"""``BaseSchema``: the base class of a migration file (Lucid's ``BaseSchema``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from ..schema.builder import Schema
from ..schema.ddl import CurrentTimestamp

if TYPE_CHECKING:
    from ..database.query_client import Client


class BaseSchema:
    """A migration: subclass it in ``database/migrations/<timestamp>_<name>.py``::

        class CreateUsersTable(BaseSchema):
            async def up(self) -> None:
                self.schema.create_table("users", lambda t: (
                    t.increments("id"),
                    t.string("email", 255).not_nullable().unique(),
                    t.timestamp("created_at", use_tz=True),
                ))

            async def down(self) -> None:
                self.schema.drop_table("users")

    ``up``/``down`` queue schema calls on ``self.schema``; the migrator runs them once the
    method returns, in order, on ``self.client`` (the migration's transaction where the
    dialect has transactional DDL). ``disable_transactions = True`` runs the migration
    outside a transaction (e.g. PostgreSQL's ``CREATE INDEX CONCURRENTLY``). With
    ``self.dry_run`` the SQL is collected and nothing is executed.
    """

    disable_transactions: ClassVar[bool] = False

    def __init__(self, client: Client, name: str = "", *, dry_run: bool = False) -> None:
        self.client = client
        self.name = name
        self.dry_run = dry_run
        self.schema = Schema()

    async def up(self) -> None:
        """Apply the migration: queue calls on ``self.schema``."""

    async def down(self) -> None:
        """Undo what ``up`` did."""

    # Lucid's shortcuts on the migration itself.
    def defer(self, callback: Callable[[Any], Any]) -> Schema:
        """``self.schema.defer(callback)``: run ``callback(client)`` at this point."""
        return self.schema.defer(callback)

    def raw(self, sql: str, bindings: Any = None) -> Schema:
        """``self.schema.raw(sql)``: raw SQL, in order with the other calls."""
        return self.schema.raw(sql, bindings)

    def now(self) -> CurrentTimestamp:
        """The database's current timestamp, as a column default."""
        return self.schema.now()

    async def exec_up(self) -> list[str]:
        """Run ``up()`` and execute what it queued; the SQL when ``dry_run``."""
        await self.up()
        return await self.schema.execute(self.client, dry_run=self.dry_run)

    async def exec_down(self) -> list[str]:
        """Run ``down()`` and execute what it queued; the SQL when ``dry_run``."""
        await self.down()
        return await self.schema.execute(self.client, dry_run=self.dry_run)
