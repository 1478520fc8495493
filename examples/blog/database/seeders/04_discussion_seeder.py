"""Comments on the posts, by random users, and the posts' tags (pivot rows with a
relevance). Development and testing data only."""

from typing import ClassVar

from lucid_orm.factories import Factory
from lucid_orm.seeders import BaseSeeder

from app.models import Post, Tag, User
from database.factories import CommentFactory


class DiscussionSeeder(BaseSeeder):
    environment: ClassVar[list[str] | None] = ["development", "testing"]

    async def run(self) -> None:
        faker = Factory.faker()
        async with self.client.transaction() as trx:
            users = await User.query(client=trx).order_by("id")
            tags = await Tag.query(client=trx).order_by("id")
            for post in await Post.query(client=trx).order_by("id"):
                count = faker.random_int(0, 5)
                if count:
                    commenters = [
                        {"post_id": post.id, "user_id": faker.random_element(users).id}
                        for _ in range(count)
                    ]
                    await CommentFactory.client(trx).merge(commenters).create_many(count)
                chosen = faker.random_elements(tags, length=faker.random_int(1, 3), unique=True)
                await post.related("tags").attach(
                    {tag.id: {"relevance": faker.random_int(1, 5)} for tag in chosen}
                )
