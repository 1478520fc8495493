"""Keys are checked (SPEC §10, issue "Trustworthy under failure" item 7): a primary-key value
that is not exactly of the key's type raises ``LucidError`` before any query — on PostgreSQL
``find(1.9)`` used to return row 1 and ``find(2.5)`` row 2."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import pytest

from lucid_orm import BaseModel, LucidError, column
from lucid_orm.database import Database
from tests import models
from tests.helpers import count_queries


class User(models.BaseUser):
    pass


class Gadget(BaseModel):
    """A text primary key (``gadgets.uuid``, VARCHAR(36))."""

    uuid: str = column(is_primary=True)
    name: str | None = column()


class UuidGadget(BaseModel):
    """The same table, its key typed as ``uuid.UUID``."""

    table = "gadgets"
    uuid: uuid.UUID = column(is_primary=True)
    name: str | None = column()


BAD_INT_KEYS: list[Any] = [1.9, 2.5, 1.0, "1", "1x", True, False, Decimal("1"), b"1", None]


class TestIntegerKeys:
    @pytest.mark.parametrize("value", BAD_INT_KEYS, ids=repr)
    async def test_find_refuses_a_value_of_another_type(
        self, database: Database, fast_paths: bool, value: Any
    ) -> None:
        await User.create({"id": 1, "username": "one"})
        await User.create({"id": 2, "username": "two"})
        with count_queries() as q:
            with pytest.raises(LucidError) as info:
                await User.find(value)
            with pytest.raises(LucidError):
                await User.find_or_fail(value)
            with pytest.raises(LucidError):
                await User.find_many([1, value])
            with pytest.raises(LucidError):
                await User.find_by("id", value)
            with pytest.raises(LucidError):
                await User.find_by({"id": value, "username": "one"})
        assert q.count == 0
        assert info.value.code == "E_INVALID_ARGUMENT"
        assert '"User.id"' in str(info.value) and "expected int" in str(info.value)

    async def test_exact_values_still_find_their_rows(
        self, database: Database, fast_paths: bool
    ) -> None:
        await User.create({"id": 1, "username": "one"})
        await User.create({"id": 2, "username": "two"})
        found = await User.find(2)
        assert found is not None and found.username == "two"
        assert [u.id for u in await User.find_many([1, 2])] == [2, 1]
        by = await User.find_by("id", 1)
        assert by is not None and by.username == "one"
        assert await User.find(3) is None


class TestTextKeys:
    async def test_a_text_key_refuses_numbers(self, database: Database) -> None:
        await Gadget.create({"uuid": "abc", "name": "a"})
        with count_queries() as q:
            for value in (1, 1.5, True):
                with pytest.raises(LucidError):
                    await Gadget.find(value)
        assert q.count == 0
        found = await Gadget.find("abc")
        assert found is not None and found.name == "a"

    async def test_a_uuid_key_takes_uuids_and_uuid_text_only(self, database: Database) -> None:
        key = uuid.uuid4()
        await UuidGadget.create({"uuid": key, "name": "u"})
        found = await UuidGadget.find(key)
        assert found is not None and found.name == "u"
        by_text = await UuidGadget.find(str(key))
        assert by_text is not None and by_text.name == "u"
        with count_queries() as q:
            for value in ("not-a-uuid", 1, key.int):
                with pytest.raises(LucidError):
                    await UuidGadget.find(value)
        assert q.count == 0
