"""SQLAlchemy 2 async ORM: ``selectinload``, ``relationship.any()`` (EXISTS), a correlated
count, ``session.add_all`` in ``session.begin()``, ``session.get``, the unit of work's flush of
changed objects, a dialect ``insert`` upsert returning entities, ``stream_scalars`` with
``yield_per``. A new session per operation (per task in op 10), so its identity map never
answers from an earlier one."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import Column, DateTime, ForeignKey, String, Table, Text, event, func, select
from sqlalchemy.engine.interfaces import ExecuteStyle
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, selectinload

from ..workload import Data, readings_digest
from . import Backend, Contender, NoFeature, StatementCounter


class Base(DeclarativeBase):
    pass


post_tags = Table(
    "post_tags",
    Base.metadata,
    Column("post_id", ForeignKey("posts.id"), primary_key=True),
    Column("tag_id", ForeignKey("tags.id"), primary_key=True),
)


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    posts: Mapped[list[Post]] = relationship(back_populates="author")


class Post(Base):
    __tablename__ = "posts"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    title: Mapped[str] = mapped_column(String(255))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    author: Mapped[User | None] = relationship(back_populates="posts")
    tags: Mapped[list[Tag]] = relationship(secondary=post_tags)


class Tag(Base):
    __tablename__ = "tags"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))


class Reading(Base):
    __tablename__ = "readings"
    id: Mapped[int] = mapped_column(primary_key=True)
    sensor: Mapped[int]
    value: Mapped[int]
    label: Mapped[str] = mapped_column(String(20))


class SQLAlchemyORM(Contender):
    name = "SQLAlchemy ORM"
    distribution = "sqlalchemy"
    notes = (
        "2.x async ORM on the same drivers: `selectinload` (500 keys per IN query, hence the "
        "extra statements), `User.posts.any(...)` (EXISTS), a correlated count subquery, "
        "`session.add_all([Post(author=user, ...)])` in `session.begin()` (one batched "
        "`INSERT … RETURNING` on PostgreSQL; row by row on SQLite, where SQLAlchemy cannot "
        "rely on the order of RETURNING rows), `session.get(..., populate_existing=True)` "
        "(without it a repeated id comes from the identity map with no SQL); a new session "
        "per operation; update_many: the changed objects flushed on commit (one executemany of "
        "UPDATEs); no paginator nor keyset pagination; concurrent finds: `session.get(..., "
        "options=[selectinload(...)])`, a session per task, the engine's pool capped at the "
        "floor's size; upsert: `insert(User).values([...]).on_conflict_do_update(...)` "
        "(MariaDB: `on_duplicate_key_update`) `.returning(User)` through the session; "
        "streaming: `session.stream_scalars(...)` with `yield_per(1000)`; statements from "
        "engine events."
    )

    def __init__(self) -> None:
        self._engine: AsyncEngine | None = None
        self._session: async_sessionmaker[Any] | None = None
        self._counter: StatementCounter | None = None

    async def open(self, backend: Backend) -> None:
        connect_args: dict[str, Any] = {}
        if backend.name == "sqlite":
            url = f"sqlite+aiosqlite:///{backend.sqlite_path}"
        elif backend.name == "mariadb":
            url = str(backend.mysql_url).replace("mysql://", "mysql+asyncmy://", 1)
            connect_args["init_command"] = "SET time_zone = '+00:00'"
        else:
            url = str(backend.pg_url).replace("postgresql://", "postgresql+asyncpg://", 1)
        self._backend = backend
        self._engine = create_async_engine(
            url, connect_args=connect_args, pool_size=backend.pool, max_overflow=0
        )
        self._session = async_sessionmaker(self._engine, expire_on_commit=False)

        @event.listens_for(self._engine.sync_engine, "before_cursor_execute")
        def _count(_c: Any, _cur: Any, sql: str, params: Any, ctx: Any, _many: bool) -> None:
            # Each "insertmanyvalues" batch is one multi-row statement; a real executemany
            # runs one statement per parameter set.
            if self._counter is not None:
                many = ctx is not None and ctx.execute_style is ExecuteStyle.EXECUTEMANY
                self._counter.add(sql, len(params) if many else 1)

    async def close(self) -> None:
        assert self._engine is not None
        await self._engine.dispose()

    @contextlib.contextmanager
    def count_statements(self) -> Iterator[StatementCounter | None]:
        self._counter = StatementCounter()
        try:
            yield self._counter
        finally:
            self._counter = None

    async def _all(self, stmt: Any) -> Any:
        assert self._session is not None
        async with self._session() as session:
            return (await session.scalars(stmt)).all()

    async def posts_with_author(self, data: Data) -> Any:
        posts = await self._all(select(Post).options(selectinload(Post.author)))
        return [(p.id, p.title, p.created_at, p.author.email) for p in posts]

    async def users_with_posts(self, data: Data) -> Any:
        users = await self._all(select(User).options(selectinload(User.posts)))
        return [(u.id, u.email, [p.id for p in u.posts]) for u in users]

    async def users_posts_tags(self, data: Data) -> Any:
        stmt = select(User).options(selectinload(User.posts).selectinload(Post.tags))
        users = await self._all(stmt)
        return [(u.id, [(p.id, [t.name for t in p.tags]) for p in u.posts]) for u in users]

    async def users_where_has(self, data: Data) -> Any:
        users = await self._all(select(User).where(User.posts.any(Post.title.contains(data.word))))
        return [(u.id, u.email) for u in users]

    async def users_with_count(self, data: Data) -> Any:
        count = (
            select(func.count(Post.id)).where(Post.user_id == User.id).scalar_subquery()
        ).label("posts_count")
        assert self._session is not None
        async with self._session() as session:
            rows = (await session.execute(select(User, count))).all()
        return [(u.id, n) for u, n in rows]

    async def create_many(self, data: Data) -> Any:
        assert self._session is not None
        async with self._session() as session, session.begin():
            user = await session.get(User, data.author_id)
            posts = [Post(author=user, **values) for values in data.new_posts]
            session.add_all(posts)
        return [(p.user_id, p.title) for p in posts]

    async def find_many_times(self, data: Data) -> Any:
        assert self._session is not None
        out = []
        async with self._session() as session:
            for key in data.find_ids:
                # populate_existing: always query, as the other contenders do; an id seen
                # before would otherwise come from the identity map without SQL.
                user = await session.get(User, key, populate_existing=True)
                out.append((user.id, user.email, user.created_at))
        return out

    async def update_many(self, data: Data) -> Any:
        assert self._session is not None
        async with self._session() as session, session.begin():
            posts = (
                await session.scalars(
                    select(Post).where(Post.id <= data.sizes.updates).order_by(Post.id)
                )
            ).all()
            for post in posts:
                post.title = post.title.upper()
        return [(p.id, p.title) for p in posts]

    def paginate(self, data: Data) -> Any:
        raise NoFeature("no paginator (a count and a LIMIT/OFFSET query by hand)")

    async def concurrent_finds(self, data: Data) -> Any:
        assert self._session is not None
        session_for = self._session

        async def task(key: int) -> tuple[Any, ...]:
            async with session_for() as session:
                user = await session.get(User, key, options=[selectinload(User.posts)])
                assert user is not None
                return (user.id, user.email, [p.id for p in user.posts])

        return list(await asyncio.gather(*(task(key) for key in data.task_ids)))

    async def upsert_many(self, data: Data) -> Any:
        assert self._session is not None
        name = self._backend.name
        if name == "mariadb":
            from sqlalchemy.dialects.mysql import insert as mysql_insert

            stmt: Any = mysql_insert(User).values(data.upserts)
            stmt = stmt.on_duplicate_key_update(name=stmt.inserted.name)
        else:
            if name == "sqlite":
                from sqlalchemy.dialects.sqlite import insert
            else:
                from sqlalchemy.dialects.postgresql import insert
            stmt = insert(User).values(data.upserts)
            stmt = stmt.on_conflict_do_update(
                index_elements=[User.email], set_={"name": stmt.excluded.name}
            )
        async with self._session() as session, session.begin():
            users = (
                await session.scalars(
                    stmt.returning(User), execution_options={"populate_existing": True}
                )
            ).all()
        return [(u.email, u.name) for u in users]

    def cursor_paginate(self, data: Data) -> Any:
        raise NoFeature("no keyset (cursor) pagination")

    async def stream(self, data: Data) -> Any:
        assert self._session is not None
        count = id_sum = value_sum = chars = 0
        async with self._session() as session:
            stmt = select(Reading).execution_options(yield_per=1000)
            # The identity map holds streamed objects weakly: memory stays flat.
            async for r in await session.stream_scalars(stmt):
                count += 1
                id_sum += r.id
                value_sum += r.value
                chars += len(r.label)
        return readings_digest(count, id_sum, value_sum, chars)
