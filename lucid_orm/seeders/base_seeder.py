"""``BaseSeeder``: the class a seeder file defines (Lucid's ``BaseSeeder``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from ..database.query_client import Client


class BaseSeeder:
    """Subclass it once per seeder file and implement ``run``::

        class UserSeeder(BaseSeeder):
            environment = ["development", "testing"]   # None (default): every environment

            async def run(self) -> None:
                await User.create_many([{"email": "ada@example.com"}], client=self.client)

    ``self.client`` is the query client of the runner's connection. ``development_only = True``
    is short for ``environment = ["development"]``.
    """

    environment: ClassVar[list[str] | None] = None
    development_only: ClassVar[bool] = False

    def __init__(self, client: Client) -> None:
        self.client = client

    async def run(self) -> None:
        """Write the seed data."""

    @classmethod
    def disabled_reason(cls, environment: str) -> str | None:
        """Why this seeder does not run in ``environment``, or ``None`` when it does."""
        if cls.development_only and environment != "development":
            return f'Disabled in "{environment}" environment (development_only)'
        if cls.environment is not None and environment not in cls.environment:
            return (
                f'Disabled in "{environment}" environment (runs in: '
                f"{', '.join(cls.environment) or 'none'})"
            )
        return None
