"""Tags: reference data, seeded in every environment."""

from lucid_orm.seeders import BaseSeeder

from app.models import Tag

TAGS = ["python", "sql", "async", "orm", "testing", "performance", "postgres", "sqlite"]


class TagSeeder(BaseSeeder):
    async def run(self) -> None:
        await Tag.create_many([{"name": name} for name in TAGS], client=self.client)
