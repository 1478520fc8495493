"""Fake users with their profiles and posts, made by the factories. Development and testing
data only: ignored in production."""

from typing import ClassVar

from lucid_orm.factories import Factory
from lucid_orm.seeders import BaseSeeder

from app.models import Country
from database.factories import UserFactory

USERS = 12


class UserSeeder(BaseSeeder):
    environment: ClassVar[list[str] | None] = ["development", "testing"]

    async def run(self) -> None:
        faker = Factory.faker()
        async with self.client.transaction() as trx:
            countries = await Country.query(client=trx).order_by("id")
            # New Zealand keeps no users: its has_many_through posts stay empty.
            homes = [c for c in countries if c.code != "NZ"]

            # A known first user, for the examples to find.
            await (
                UserFactory.client(trx)
                .apply("admin")
                .merge(
                    {
                        "email": "ada@example.com",
                        "full_name": "Ada Lovelace",
                        "country_id": homes[0].id,
                    }
                )
                .with_("profile")
                .with_("posts", 4, lambda post: post.apply("published"))
                .with_("posts", 1)
                .create()
            )
            for index in range(1, USERS):
                user = UserFactory.client(trx).merge({"country_id": faker.random_element(homes).id})
                if index % 4:  # every fourth user has no profile
                    user.with_("profile")
                published, drafts = faker.random_int(0, 4), faker.random_int(0, 1)
                user.with_("posts", published, lambda post: post.apply("published"))
                user.with_("posts", drafts)
                await user.create()
