"""Model factories: fake users, profiles, posts, comments and tags (Faker fills them in).

The seeders use them, and so can tests: ``await UserFactory.with_("posts", 3).create()``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from faker import Faker
from lucid_orm.factories import Factory, FactoryBuilderQuery

from app.models import Comment, Post, Profile, Tag, User

# Posts are published in 2024; a fixed window keeps seeded data the same on every run.
_FIRST_DAY = datetime(2024, 1, 1, tzinfo=UTC)


def _title(faker: Faker) -> str:
    """A short title: a sentence of about four words, without its full stop."""
    return str(faker.sentence(nb_words=4)).rstrip(".")


UserFactory: FactoryBuilderQuery[User] = (
    Factory.define(
        User,
        lambda faker: {
            "email": faker.unique.email(),
            "full_name": faker.name(),
            "password": faker.password(length=16),
            "is_admin": False,
        },
    )
    .state("admin", lambda user: user.merge({"is_admin": True}))
    .relation("profile", lambda: ProfileFactory)
    .relation("posts", lambda: PostFactory)
    .build()
)

ProfileFactory: FactoryBuilderQuery[Profile] = Factory.define(
    Profile, lambda faker: {"bio": faker.sentence(nb_words=10), "website": faker.url()}
).build()

PostFactory: FactoryBuilderQuery[Post] = (
    Factory.define(
        Post,
        lambda faker: {
            "title": _title(faker),
            "body": faker.paragraph(nb_sentences=3),
            "votes": faker.random_int(0, 60),
        },
    )
    .state(
        "published",
        lambda post, ctx: post.merge(
            {"published_at": _FIRST_DAY + timedelta(hours=ctx.faker.random_int(0, 365 * 24))}
        ),
    )
    .relation("author", lambda: UserFactory)
    .relation("comments", lambda: CommentFactory)
    .relation("tags", lambda: TagFactory)
    .build()
)

CommentFactory: FactoryBuilderQuery[Comment] = (
    Factory.define(Comment, lambda faker: {"body": faker.sentence(nb_words=8)})
    .relation("author", lambda: UserFactory)
    .build()
)

TagFactory: FactoryBuilderQuery[Tag] = Factory.define(
    Tag, lambda faker: {"name": faker.unique.word()}
).build()
