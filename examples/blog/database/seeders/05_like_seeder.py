"""Likes on posts and on comments, from random users: one polymorphic ``likes`` table,
written through the ``morph_many`` relations (which set ``likeable_type`` and ``likeable_id``).
Development and testing data only."""

from typing import ClassVar

from lucid_orm.factories import Factory
from lucid_orm.seeders import BaseSeeder

from app.models import Comment, Post, User


class LikeSeeder(BaseSeeder):
    environment: ClassVar[list[str] | None] = ["development", "testing"]

    async def run(self) -> None:
        faker = Factory.faker()
        async with self.client.transaction() as trx:
            users = await User.query(client=trx).order_by("id")
            posts = await Post.query(client=trx).order_by("id")
            comments = await Comment.query(client=trx).order_by("id")
            for target in [*posts, *comments]:
                count = faker.random_int(0, 4)
                if not count:
                    continue
                fans = faker.random_elements(users, length=count, unique=True)
                await target.related("likes").create_many([{"user_id": fan.id} for fan in fans])
