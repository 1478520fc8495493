"""Countries: reference data, seeded in every environment."""

from lucid_orm.seeders import BaseSeeder

from app.models import Country

COUNTRIES = [
    ("GB", "United Kingdom"),
    ("FR", "France"),
    ("IN", "India"),
    ("JP", "Japan"),
    ("NZ", "New Zealand"),
]


class CountrySeeder(BaseSeeder):
    async def run(self) -> None:
        await Country.create_many(
            [{"code": code, "name": name} for code, name in COUNTRIES], client=self.client
        )
