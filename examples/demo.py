"""The lucid_orm demo: models, the query builder, transactions and pagination on an embedded
SQLite database. Run with ``make demo``."""

from __future__ import annotations

import asyncio
import json
import tempfile
from datetime import datetime
from pathlib import Path

from lucid_orm import BaseModel, after, before, column, computed, db, scope


class User(BaseModel):
    id: int = column(is_primary=True)
    email: str = column()
    name: str | None = column()
    is_admin: bool = column()
    password: str | None = column(serialize_as=None)
    created_at: datetime = column.date_time(auto_create=True)
    updated_at: datetime = column.date_time(auto_create=True, auto_update=True)

    @computed
    def initials(self) -> str:
        return "".join(part[0] for part in (self.name or "?").split())

    @before("save")
    def normalise_email(user: User) -> None:
        user.email = user.email.strip().lower()

    @scope
    def admins(query):  # type: ignore[no-untyped-def]
        query.where("is_admin", True)


class Post(BaseModel):
    id: int = column(is_primary=True)
    user_id: int | None = column()
    title: str = column()
    score: int = column()
    created_at: datetime = column.date_time(auto_create=True)

    @after("create")
    def announce(post: Post) -> None:
        print(f"    (after create hook) post #{post.id} {post.title!r}")


SCHEMA = [
    """create table users (id integer primary key autoincrement, email varchar(255) not null
       unique, name varchar(255), is_admin boolean not null default 0, password varchar(255),
       created_at timestamp, updated_at timestamp)""",
    """create table posts (id integer primary key autoincrement, user_id integer,
       title varchar(255) not null, score integer not null default 0, created_at timestamp)""",
]


def heading(text: str) -> None:
    print(f"\n== {text}")


async def main() -> None:
    path = Path(tempfile.mkdtemp()) / "demo.db"
    db.configure(url=f"sqlite:///{path}")
    statements = 0

    def count(_event: object) -> None:
        nonlocal statements
        statements += 1

    db.on_query(count)
    for sql in SCHEMA:
        await db.raw_query(sql)

    heading("Models: create, find, update only what changed")
    ada = await User.create({"email": "  Ada@Example.com ", "name": "Ada Lovelace", "is_admin": True})
    print(f"created {ada!r}: email={ada.email!r}, created_at={ada.created_at.isoformat()}")
    found = await User.find_or_fail(ada.id)
    found.name = "Ada King"
    print(f"dirty before save: {found.dirty}")
    await found.save()
    users = await User.create_many(
        [{"email": f"user{i}@example.com", "name": f"User {i}", "is_admin": False} for i in range(1, 6)]
    )
    print(f"create_many inserted ids {[u.id for u in users]} in one transaction")

    heading("Query builder")
    for i, user in enumerate([ada, *users]):
        await Post.create({"user_id": user.id, "title": f"Post by {user.name}", "score": i * 10})
    top = await Post.query().where("score", ">=", 20).order_by("score", "desc").limit(3)
    print("top posts:", [(p.title, p.score) for p in top])
    grouped = await (
        db.from_("posts")
        .select("user_id")
        .sum("score as total")
        .group_by("user_id")
        .having("total", ">", 15)
        .order_by("total", "desc")
    )
    print("score per user (> 15):", grouped)
    admins = await User.query().with_scopes(lambda s: s.admins())
    print("admins via scope:", [u.email for u in admins])
    sql, bindings = Post.query().where("user_id", ada.id).where_like("title", "%Ada%").to_sql()
    print("to_sql():", " ".join(sql.split()), bindings)

    heading("Transactions")
    try:
        async with db.transaction() as trx:
            await Post.create({"user_id": ada.id, "title": "Draft", "score": 0}, client=trx)
            raise RuntimeError("changed my mind")
    except RuntimeError as exc:
        print(f"rolled back ({exc}); drafts in table: {await Post.query().where('title', 'Draft').count_rows()}")
    async with db.transaction() as trx:
        await trx.from_("posts").where("user_id", ada.id).increment("score", 5)
        async with trx.transaction() as savepoint:
            await savepoint.from_("posts").delete()
            await savepoint.rollback()
        print(f"savepoint rolled back; posts still there: {await trx.from_('posts').count_rows()}")

    heading("Pagination and serialization")
    page = await User.query().order_by("id").paginate(2, 2)
    print(f"page {page.current_page}/{page.last_page}, total {page.total}, next: {page.get_next_page_url()}")
    print(json.dumps(page.serialize()["data"][0], indent=2))
    print(json.dumps(found.serialize({"fields": {"pick": ["id", "email", "initials"]}})))

    heading("Done")
    print(f"{statements} SQL statements ran (counted with db.on_query)")
    await db.close()


if __name__ == "__main__":
    asyncio.run(main())
