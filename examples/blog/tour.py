"""The tour of the relationship features (sections 4 to 13 of ``main.py``): one function per
section, each printing what its calls return. Imported once ``database/schema.py`` is up to
date, since the models extend its classes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lucid_orm import IntegrityError, RelationNotLoadedError, db

from app.models import Comment, Country, Like, Post, Tag, User
from report import clip, count_queries, line, models_of, section, show_json

if TYPE_CHECKING:
    from lucid_orm import ModelQueryBuilder


async def run() -> None:
    ada = await User.find_by_or_fail("email", "ada@example.com")
    reader = await User.query().where("id", "!=", ada.id).order_by("id").first_or_fail()
    tags = {tag.name: tag for tag in await Tag.query().order_by("name")}

    await preloading()
    await filtering(ada)
    await aggregates(ada)
    post = await associating(ada, reader)
    await creating(post, ada, reader)
    await pivoting(ada, tags)
    await through()
    await paginating()
    await serializing(ada)
    await transactions(ada, post)
    await polymorphic(ada, reader)


async def preloading() -> None:
    section("4. Preload: callbacks, nesting, one query per relation and level")
    post = await Post.query().order_by("id").first_or_fail()
    try:
        print(post.author)  # never loaded: raises, never queries
    except RelationNotLoadedError as error:
        line("post.author, never loaded, raises:")
        line(f"  {error}")

    def published_posts(posts: ModelQueryBuilder[Post]) -> None:
        posts.apply(lambda s: s.published()).order_by("votes", "desc")
        posts.preload("tags", lambda q: q.order_by("name"))
        posts.preload("comments", lambda comments: comments.preload("author"))

    with count_queries() as seen:
        users = await (
            User.query()
            .preload("country")
            .preload("profile")
            .preload("posts", published_posts)
            .order_by("id")
            .limit(3)
        )
    line(f"3 users and 6 relations: {len(seen)} queries", models_of(seen))
    print("  (each post: votes, title, [tags], initials of the commenters)")
    for user in users:
        home = user.country.name if user.country else "-"
        website = user.profile.website if user.profile else "no profile"
        print(f"  {user.full_name} ({home}) {website}")
        for p in user.posts:
            tag_names = ", ".join(t.name for t in p.tags)
            commenters = ", ".join(sorted({c.author.initials for c in p.comments if c.author}))
            print(f"    {p.votes:>3} votes  {clip(p.title, 34)} [{tag_names}] {commenters}")

    with count_queries() as seen:
        comments = await Comment.query().preload("post.author").order_by("id").limit(3)
    line(f'preload("post.author"), a dotted path: {len(seen)} queries')
    for c in comments:
        assert c.post is not None  # comments.post_id is NOT NULL
        author = c.post.author.full_name if c.post.author else "nobody"
        line(f"  comment #{c.id} on post #{c.post.id}", f"post by {author}")


async def filtering(ada: User) -> None:
    section("5. Filtering by relationships: has / where_has / doesnt_have")
    filters: list[tuple[str, ModelQueryBuilder[User] | ModelQueryBuilder[Post]]] = [
        ("users with posts", User.query().has("posts")),
        ("users with 4 posts or more", User.query().has("posts", ">=", 4)),
        ("users without posts", User.query().doesnt_have("posts")),
        ("users without a profile", User.query().doesnt_have("profile")),
        (
            'posts tagged "python"',
            Post.query().where_has("tags", lambda q: q.where("name", "python")),
        ),
        (
            'posts with 3+ comments, tagged "sql" or "orm"',
            Post.query()
            .has("comments", ">=", 3)
            .where_has("tags", lambda q: q.where_in("name", ["sql", "orm"])),
        ),
        (
            "users who commented on Ada's posts",
            User.query().where_has(
                "comments", lambda q: q.where_has("post", lambda p: p.where("user_id", ada.id))
            ),
        ),
    ]
    for label, query in filters:
        line(label, f"{len(await query):>3}")
    countries = await Country.query().where_has("posts", lambda q: q.where("votes", ">", 50))
    line("countries with a post of 50+ votes", f"{len(countries):>3}")
    sql, bindings = User.query().select("id").has("posts", ">=", 4).to_sql()
    line('User.query().select("id").has("posts", ">=", 4).to_sql():')
    print(f"    {' '.join(sql.split())}  {bindings}")


async def aggregates(ada: User) -> None:
    section("6. Aggregates: with_count / with_aggregate (subqueries, no extra query)")
    with count_queries() as seen:
        users = await (
            User.query()
            .with_count("posts")
            .with_count("posts", lambda q: q.apply(lambda s: s.published()).as_("published"))
            .with_aggregate("posts", lambda q: q.sum("votes").as_("votes"))
            .with_count("comments")
            .order_by("id")
        )
    line(f"{len(users)} users with 4 aggregates each: {len(seen)} query")
    print(f"  {'top 5 by votes':<24} {'posts':>5} {'published':>9} {'votes':>5} {'comments':>8}")
    best = sorted(users, key=lambda u: u.extras["votes"] or 0, reverse=True)[:5]
    for user in best:
        x = user.extras
        print(
            f"  {user.full_name:<24} {x['posts_count']:>5} {x['published']:>9}"
            f" {x['votes'] or 0:>5} {x['comments_count']:>8}"
        )

    cloud = await (
        Tag.query()
        .with_count("posts")
        .with_aggregate("posts", lambda q: q.max("votes").as_("best_votes"))
        .order_by("name")
    )
    print(f"  {'tag':<24} {'posts':>5} {'best votes':>10}")
    for tag in cloud:
        print(f"  {tag.name:<24} {tag.extras['posts_count']:>5} {tag.extras['best_votes']:>10}")
    await ada.load_count("comments")
    line('ada.load_count("comments")', ada.extras["comments_count"])


async def associating(ada: User, reader: User) -> Post:
    section("7. belongs_to: associate / dissociate")
    post = await (
        Post.query().where("user_id", ada.id).order_by("id").preload("author").first_or_fail()
    )
    line(
        f"post #{post.id} {post.title!r}",
        f"author {post.author.full_name if post.author else None}",
    )
    await post.related("author").associate(reader)
    by = post.author.full_name if post.author else None
    line(f'related("author").associate({reader.full_name})', f"user_id={post.user_id}, {by}")
    await post.related("author").dissociate()
    line('related("author").dissociate()', f"user_id={post.user_id}, author={post.author}")
    stored = await Post.find_or_fail(post.id)
    line("  in the database", f"user_id={stored.user_id} (the post is kept)")
    await post.related("author").associate(ada)
    line("associate(ada) again", f"user_id={post.user_id}")
    return post


async def creating(post: Post, ada: User, reader: User) -> None:
    section("8. has_many / has_one: create and create_many through a relation")
    with count_queries() as seen:
        comments = await post.related("comments").create_many(
            [
                {"body": "Great read, thanks!", "user_id": reader.id},
                {"body": "Could you cover savepoints next?", "user_id": reader.id},
                {"body": "Replying to myself: I will.", "user_id": ada.id},
            ]
        )
    line(
        'post.related("comments").create_many([...])',
        f"{len(comments)} rows, {len(seen)} statement",
    )
    line("  ids", ", ".join(str(c.id) for c in comments))
    line("  post_id set on each", all(c.post_id == post.id for c in comments))
    lonely = await User.query().doesnt_have("profile").order_by("id").first_or_fail()
    profile = await lonely.related("profile").create({"bio": "Joined for the comments."})
    line(f'{lonely.full_name}.related("profile").create', f"profile #{profile.id}")


async def pivoting(ada: User, tags: dict[str, Tag]) -> None:
    section("9. many_to_many: attach / sync with pivot values (post_tags)")
    draft = await ada.related("posts").create(
        {"title": "Pivot tables in practice", "body": "Tags, with a relevance of their own."}
    )

    async def show_tags(label: str) -> None:
        await draft.load("tags", lambda q: q.order_by("name"))
        value = ", ".join(f"{t.name}({t.extras['pivot_relevance']})" for t in draft.tags)
        line(label, value or "-")

    sql, orm, python, testing = (tags[name].id for name in ("sql", "orm", "python", "testing"))
    await draft.related("tags").attach({sql: {"relevance": 5}, orm: {"relevance": 3}})
    await show_tags("attach({sql: 5, orm: 3})")
    await draft.related("tags").sync({orm: {"relevance": 4}, python: {"relevance": 2}})
    await show_tags("sync({orm: 4, python: 2})")
    await draft.related("tags").sync([testing], detach=False)
    await show_tags("sync([testing], detach=False)")
    await draft.related("tags").detach([python])
    await show_tags("detach([python])")

    relevant = await draft.related("tags").query().where_pivot("relevance", ">=", 3)
    line('where_pivot("relevance", ">=", 3)', ", ".join(sorted(t.name for t in relevant)))
    pivot = await draft.related("tags").pivot_query().order_by("tag_id")
    stamped = all(row["created_at"] and row["updated_at"] for row in pivot)
    line("pivot_query(): rows, timestamps set", f"{len(pivot)} rows, {stamped}")


async def through() -> None:
    section("10. has_many_through: Country.posts (through users)")
    with count_queries() as seen:
        countries = await (
            Country.query()
            .with_count("posts")
            .preload("posts", lambda q: q.group_order_by("votes", "desc").group_limit(2))
            .order_by("name")
        )
    line(f"{len(countries)} countries, post counts, top 2 posts: {len(seen)} queries")
    for country in countries:
        top = "; ".join(f"{clip(p.title, 24).rstrip()} ({p.votes})" for p in country.posts)
        print(f"  {country.name:<16} {country.extras['posts_count']:>2} posts  {top or '-'}")
    uk = next(c for c in countries if c.code == "GB")
    popular = await uk.related("posts").query().where("votes", ">=", 30).count_rows()
    line(f'{uk.code}: related("posts").query().where(votes >= 30)', popular)


async def paginating() -> None:
    section("11. Pagination")
    page = await (
        Post.query()
        .apply(lambda s: s.published())
        .preload("author")
        .order_by("published_at", "desc")
        .paginate(2, per_page=4)
    )
    page.base_url("/posts")
    line(f"page {page.current_page} of {page.last_page}", f"{page.total} published posts")
    for p in page:
        published = p.published_at.strftime("%Y-%m-%d") if p.published_at else "-"
        name = p.author.full_name if p.author else "-"
        print(f"    {published}  {clip(p.title, 36)} {name}")
    line("page.serialize()['meta']:")
    show_json(page.serialize()["meta"])


async def serializing(ada: User) -> None:
    section("12. Serialize to JSON, cherry-picking fields and relations")
    post = await (
        Post.query()
        .where("user_id", ada.id)
        .apply(lambda s: s.published())
        .preload("author", lambda q: q.preload("country"))
        .preload("tags", lambda q: q.order_by("name"))
        .preload("comments", lambda q: q.preload("author").group_limit(2))
        .order_by("id")
        .first_or_fail()
    )
    data = post.serialize(
        {
            "fields": {"pick": ["id", "title", "votes", "published_at"]},
            "relations": {
                "author": {
                    "fields": {"pick": ["full_name", "initials"]},
                    "relations": {"country": {"fields": ["name"]}},
                },
                "tags": {"fields": ["name"]},
                "comments": {
                    "fields": ["body"],
                    "relations": {"author": {"fields": ["full_name"]}},
                },
            },
        }
    )
    show_json(data)
    line('"password" in ada.serialize()', "password" in ada.serialize())


async def transactions(ada: User, post: Post) -> None:
    section("13. Transactions: everything or nothing")
    ada_posts = Post.query().where("user_id", ada.id)
    before = await ada_posts.clone().count_rows()
    votes = await ada_posts.clone().sum("votes as total").first_or_fail()
    try:
        async with db.transaction() as trx:
            ada_in_trx = await User.find_or_fail(ada.id, client=trx)
            await ada_in_trx.related("posts").create({"title": "Never published", "body": "…"})
            await Post.query(client=trx).where("user_id", ada.id).update({"votes": 0})
            inside = await Post.query(client=trx).where("user_id", ada.id).count_rows()
            line("inside: Ada's posts, one new, all at 0 votes", inside)
            raise RuntimeError("changed my mind")
    except RuntimeError as error:
        after = await ada_posts.clone().count_rows()
        total = await ada_posts.clone().sum("votes as total").first_or_fail()
        line(f'rolled back on "{error}": Ada\'s posts', f"{after} (was {before})")
        line("  votes restored", total.extras["total"] == votes.extras["total"])

    comments_before = await Comment.query().count_rows()
    try:
        await post.related("comments").create_many([{"body": "kept?"}, {"body": None}])
    except IntegrityError as error:
        written = await Comment.query().count_rows() - comments_before
        line("create_many with a NULL body", f"{type(error).__name__}, {written} rows written")


async def polymorphic(ada: User, reader: User) -> None:
    section("14. Polymorphic: one likes table for posts and comments (morph_to / morph_many)")
    with count_queries() as seen:
        likes = await (
            Like.query()
            .preload("user")
            .preload(
                "likeable",
                # One query per type present, each with its own preloads.
                {Post: lambda q: q.preload("author"), Comment: lambda q: q.preload("post")},
            )
            # The likes of the first posts and comments: both types in one result.
            .order_by("likeable_id")
            .order_by("id")
            .limit(6)
        )
    line(f"6 likes, their users and targets: {len(seen)} queries", models_of(seen))
    for like in likes:
        target = like.likeable
        if isinstance(target, Post):
            by = target.author.full_name if target.author else "nobody"
            what = f"post {clip(target.title, 24).rstrip()!r} by {by}"
        elif isinstance(target, Comment):
            what = f"comment #{target.id} on post #{target.post.id if target.post else '-'}"
        else:
            what = "nothing"
        name = like.user.full_name if like.user else "-"
        print(f"    {like.likeable_type:<8} {name:<22} likes {what}")

    top = await Post.query().with_count("likes").order_by("likes_count", "desc").order_by("id")
    line("most liked post (with_count)", f"{top[0].extras['likes_count']} likes")
    fans = await Like.query().where_has_morph(
        "likeable", [Post, Comment], lambda q: q.where("user_id", ada.id)
    )
    line("likes of Ada's posts/comments (where_has_morph)", len(fans))

    post = await Post.query().where("user_id", ada.id).order_by("id").first_or_fail()
    like = await post.related("likes").first_or_create({"user_id": reader.id})
    line('post.related("likes").first_or_create(...)', f"{like.likeable_type} #{like.likeable_id}")
    comment = await post.related("comments").query().order_by("id").first_or_fail()
    await like.related("likeable").associate(comment)
    stored = await Like.find_or_fail(like.id)
    line("associate(comment): stored type and id", f"{stored.likeable_type} #{stored.likeable_id}")
