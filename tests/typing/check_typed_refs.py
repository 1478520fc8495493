"""Typed relation and column references, checked by ``mypy --strict`` and pyright (never run).

The attribute form (``Post.author``, ``Post.title``) names relations and columns in every
relation-naming API and builder method; ``related(Post.author)`` returns the kind's client
typed with both models. Six common mistakes are planted below, each on one line marked
``# type: ignore[code]``: mypy (``warn_unused_ignores`` under ``--strict``) and pyright
(``reportUnnecessaryTypeIgnoreComment``) both fail if a marked line stops being an error.
"""

from __future__ import annotations

from typing import Any, assert_type

from lucid_orm import (
    BaseModel,
    belongs_to,
    column,
    has_many,
    has_many_through,
    has_one,
    has_one_through,
    many_to_many,
)
from lucid_orm.orm.query_builder import ModelQueryBuilder
from lucid_orm.orm.relations.belongs_to import BelongsToQueryBuilder
from lucid_orm.orm.relations.has_many import HasManyQueryBuilder
from lucid_orm.orm.relations.has_many_through import HasManyThroughQueryBuilder
from lucid_orm.orm.relations.many_to_many import ManyToManyQueryBuilder
from lucid_orm.relations import (
    BelongsTo,
    BelongsToQueryClient,
    HasMany,
    HasManyQueryClient,
    HasManyThrough,
    HasManyThroughClient,
    HasOne,
    HasOneQueryClient,
    HasOneThrough,
    HasOneThroughClient,
    ManyToMany,
    ManyToManyQueryClient,
    RelationClient,
)


class Country(BaseModel):
    id: int = column(is_primary=True)
    posts: HasManyThrough[Post] = has_many_through((lambda: Post, lambda: User))


class Profile(BaseModel):
    id: int = column(is_primary=True)
    user_id: int = column()
    bio: str = column()


class Skill(BaseModel):
    id: int = column(is_primary=True)
    name: str = column()


class User(BaseModel):
    id: int = column(is_primary=True)
    country_id: int = column()
    email: str = column()
    profile: HasOne[Profile] = has_one(lambda: Profile)
    posts: HasMany[Post] = has_many(lambda: Post)
    skills: ManyToMany[Skill] = many_to_many(lambda: Skill)


class Post(BaseModel):
    id: int = column(is_primary=True)
    user_id: int = column()
    title: str = column()
    author: BelongsTo[User] = belongs_to(lambda: User)
    comments: HasMany[Comment] = has_many(lambda: Comment)


class Comment(BaseModel):
    id: int = column(is_primary=True)
    post_id: int = column()
    body: str = column()
    # The comment's author's profile, through the post's author... kept one hop: the post.
    post: BelongsTo[Post] = belongs_to(lambda: Post)
    post_author_profile: HasOneThrough[Profile] = has_one_through((lambda: Profile, lambda: User))


async def typed_clients(post: Post, user: User, country: Country, comment: Comment) -> None:
    # related(<attribute>): the kind's client, typed with the parent and the related model.
    author = post.related(Post.author)
    assert_type(author, BelongsToQueryClient[Post, User])
    assert_type(author.query(), BelongsToQueryBuilder[User])
    assert_type(await author.query().first(), User | None)
    await author.associate(user)

    posts = user.related(User.posts)
    assert_type(posts, HasManyQueryClient[User, Post])
    assert_type(posts.query(), HasManyQueryBuilder[Post])
    assert_type(await posts.query().where(Post.title, "like", "A%"), list[Post])
    assert_type(await posts.create({"title": "x"}), Post)
    assert_type(await posts.create_many([{"title": "x"}]), list[Post])
    assert_type(await posts.save(Post(title="x")), Post)

    profile = user.related(User.profile)
    assert_type(profile, HasOneQueryClient[User, Profile])
    assert_type(await profile.create({"bio": "x"}), Profile)

    skills = user.related(User.skills)
    assert_type(skills, ManyToManyQueryClient[User, Skill])
    assert_type(skills.query(), ManyToManyQueryBuilder[Skill])
    assert_type(await skills.create({"name": "x"}, {"level": 1}), Skill)
    await skills.attach([1, 2])

    through = country.related(Country.posts)
    assert_type(through, HasManyThroughClient[Country, Post])
    assert_type(through.query(), HasManyThroughQueryBuilder[Post])
    assert_type(await through.query().first_or_fail(), Post)
    assert_type(comment.related(Comment.post_author_profile), HasOneThroughClient[Comment, Profile])

    # The string form: one protocol for every kind, the related model left open — method
    # names and arguments are still checked (never plain Any).
    named = post.related("author")
    assert_type(named, RelationClient[Post, Any])
    await named.associate(user)
    await named.asociate(user)  # type: ignore[attr-defined]


async def attribute_form(post: Post, user: User) -> None:
    # Every relation-naming API takes the attribute; column attributes are column references.
    query = Post.query().preload(Post.author).preload(Post.comments, lambda q: q.limit(2))
    assert_type(query, ModelQueryBuilder[Post])
    assert_type(
        await User.query()
        .where_has(User.posts, lambda q: q.where(Post.title, "like", "A%"))
        .has(User.skills, ">", 1)
        .with_count(User.posts)
        .with_aggregate(User.posts, lambda q: q.max(Post.id).as_("last_post_id"))
        .where(User.email, "like", "%@example.com")
        .where_in(User.id, [1, 2])
        .where_not_null(User.email)
        .order_by(User.id, "desc")
        .select(User.id, User.email),
        list[User],
    )
    # With the attribute, the callbacks' queries are typed by the relation's kind (with a
    # name they are not): many_to_many's have the where_pivot family, a many-relation's
    # preload query group_limit; the marked lines are errors only because of that.
    User.query().preload(User.posts, lambda q: q.group_limit(2))
    User.query().preload(User.skills, lambda q: q.where_pivot("level", ">", 1))
    User.query().where_has(User.skills, lambda q: q.where_pivot("level", 2))
    User.query().with_count(User.posts, lambda q: q.where(Post.title, "x").as_("x_count"))
    User.query().preload(User.posts, lambda q: q.group_limit("2"))  # type: ignore[arg-type]
    User.query().where_has(User.posts, lambda q: q.wher(Post.title))  # type: ignore[attr-defined]
    Post.query().preload(Post.author, lambda q: q.where_pivot("x", 1))  # type: ignore[attr-defined]

    def latest(query: HasManyQueryBuilder[Post]) -> None:
        query.order_by(Post.id, "desc").group_limit(1)

    User.query().preload(User.posts, latest)
    User.query().preload(User.skills, latest)  # type: ignore[arg-type]
    await post.load(Post.author)
    await user.load_once(User.posts)
    await user.load_count(User.posts)
    assert_type(Post.author, BelongsTo[User])


async def six_mistakes(post: Post, user: User, comment: Comment) -> None:
    # 1. a misspelt relation
    Post.query().preload(Post.autor)  # type: ignore[attr-defined]
    # 2. a misspelt column
    Post.query().where(Post.titel, "like", "A%")  # type: ignore[attr-defined]
    # 3. the wrong related type in associate (a Comment is not a User)
    await post.related(Post.author).associate(comment)  # type: ignore[arg-type]
    # 4. the wrong value type in create: a list of rows (create_many's payload) for one row
    await user.related(User.posts).create([{"title": "x"}])  # type: ignore[arg-type]
    # 5. an attribute typo on assignment
    post.titel = "x"  # type: ignore[attr-defined]
    # 6. the wrong return type used: the author query returns a User, not a Comment
    found: Comment = await post.related(Post.author).query().first_or_fail()  # type: ignore[assignment]
    print(found)
