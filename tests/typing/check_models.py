"""Static typing of the model API, checked by ``mypy --strict tests/typing`` (never run).

Each ``assert_type`` pins an inferred type; each ``# type: ignore[code]`` marks an error that
must happen (``warn_unused_ignores`` under ``--strict`` fails the check if it does not).
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any, assert_type

from lucid_orm import (
    BaseModel,
    LucidError,
    ModelNotFoundError,
    SimplePaginator,
    after,
    before,
    column,
    computed,
    db,
)
from lucid_orm.orm.query_builder import ModelQueryBuilder


class User(BaseModel):
    id: int = column(is_primary=True)
    email: str = column()
    nickname: str | None = column(serialize_as="nick")
    is_active: bool = column()
    meta: dict[str, Any] | None = column()
    created_at: datetime = column.date_time(auto_create=True)
    updated_at: datetime | None = column.date_time(auto_create=True, auto_update=True)

    @computed
    def domain(self) -> str:
        return self.email.partition("@")[2]

    @before("save")
    def normalise(user: User) -> None:
        user.email = user.email.lower()

    # A hook whose argument is not the instance (find/fetch/paginate) is stacked on
    # @staticmethod, else mypy checks its first parameter as ``self``.
    @after("fetch")
    @staticmethod
    async def fetched(users: list[User]) -> None:
        pass

    @before("fetch")
    @staticmethod
    def scoped(query: ModelQueryBuilder[User]) -> None:
        query.where("is_active", True)


class Gadget(BaseModel):
    uuid: uuid.UUID = column(is_primary=True)
    price: Decimal | None = column()
    released_on: date | None = column.date()


def _constructor() -> None:
    User(email="a")
    User(email="a", nickname=None, is_active=True)
    User()
    User(email=1)  # type: ignore[arg-type]
    User(unknown="x")  # type: ignore[call-arg]
    User(1)  # type: ignore[call-arg]
    Gadget(uuid=uuid.uuid4(), price=Decimal("1.5"))


def _attributes(user: User, gadget: Gadget) -> None:
    assert_type(user.id, int)
    assert_type(user.email, str)
    assert_type(user.nickname, str | None)
    assert_type(user.is_active, bool)
    assert_type(user.meta, dict[str, Any] | None)
    assert_type(user.created_at, datetime)
    assert_type(user.updated_at, datetime | None)
    assert_type(user.domain, str)
    assert_type(gadget.uuid, uuid.UUID)
    assert_type(gadget.price, Decimal | None)
    assert_type(gadget.released_on, date | None)
    user.email = "b"
    user.email = None  # type: ignore[assignment]
    user.emial = "b"  # type: ignore[attr-defined]
    User.emial  # type: ignore[attr-defined]


def _state(user: User) -> None:
    assert_type(user.is_persisted, bool)
    assert_type(user.is_dirty, bool)
    assert_type(user.dirty, dict[str, Any])
    assert_type(user.attributes, dict[str, Any])
    assert_type(user.extras, dict[str, Any])
    assert_type(user.merge({"email": "x"}), User)
    assert_type(user.fill({"email": "x"}), User)
    assert_type(user.serialize(), dict[str, Any])
    assert_type(user.to_dict(), dict[str, Any])


async def _checks() -> None:
    assert_type(await User.find(1), User | None)
    assert_type(await User.find_or_fail(1), User)
    assert_type(await User.find_by("email", "a"), User | None)
    assert_type(await User.find_by({"email": "a"}), User | None)
    assert_type(await User.find_by_or_fail("email", "a"), User)
    assert_type(await User.find_many([1, 2]), list[User])
    assert_type(await User.find_many_by("email", "a"), list[User])
    assert_type(await User.first(), User | None)
    assert_type(await User.first_or_fail(), User)
    assert_type(await User.all(), list[User])
    assert_type(await User.create({"email": "a"}), User)
    assert_type(await User.create_many([{"email": "a"}]), list[User])
    assert_type(await User.first_or_new({"email": "a"}), User)
    assert_type(await User.first_or_create({"email": "a"}, {"is_active": True}), User)
    assert_type(await User.update_or_create({"email": "a"}, {"is_active": True}), User)
    assert_type(await User.fetch_or_new_up_many("email", [{"email": "a"}]), list[User])
    assert_type(await User.fetch_or_create_many("email", [{"email": "a"}]), list[User])
    assert_type(await User.update_or_create_many(["email"], [{"email": "a"}]), list[User])
    assert_type(await User.upsert({"email": "a"}, conflict="email"), User)
    assert_type(await User.upsert_many([{"email": "a"}], conflict=["email"]), list[User])
    assert_type(await User.update_many([User()]), list[User])
    assert_type(await User.save_many([User()]), list[User])
    assert_type(await Gadget.find(uuid.uuid4()), Gadget | None)

    query = User.query()
    assert_type(query, ModelQueryBuilder[User])
    assert_type(query.where("email", "a").order_by("id"), ModelQueryBuilder[User])
    assert_type(query.clone(), ModelQueryBuilder[User])
    assert_type(await User.query(), list[User])
    assert_type(await User.query().where("id", 1), list[User])
    assert_type(await User.query().exec(), list[User])
    assert_type(await User.query().first(), User | None)
    assert_type(await User.query().first_or_fail(), User)
    assert_type(await User.query().paginate(1, 10), SimplePaginator[User])
    assert_type(await User.query().count_rows(), int)
    assert_type(await User.query().exists(), bool)
    assert_type(await User.query().update({"email": "b"}), int)
    assert_type(await User.query().delete(), int)
    assert_type(User.query().to_sql(), tuple[str, list[Any]])

    user = await User.find_or_fail(1)
    assert_type(await user.save(), User)
    assert_type(await user.refresh(), User)
    await user.delete()

    async with db.transaction() as trx:
        assert_type(await User.find(1, client=trx), User | None)
        assert_type(await User.query(client=trx).first(), User | None)
        assert_type(user.use_transaction(trx), User)

    try:
        await User.find_or_fail(2)
    except ModelNotFoundError as exc:
        assert_type(exc.code, str)
        assert_type(exc.status, int)
    except LucidError:
        pass
