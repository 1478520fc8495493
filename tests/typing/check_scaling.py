"""Static typing of the scale-out API, checked by ``mypy --strict tests/typing`` (never run):
``db.connection(mode="write")`` is a query client, ``db.sticky_scope()`` a context manager for
``with`` and ``async with``."""

from __future__ import annotations

from typing import assert_type

from lucid_orm import BaseModel, QueryClient, column, db


class Note(BaseModel):
    id: int = column(is_primary=True)


async def check() -> None:
    writer = db.connection("pg", mode="write")
    assert_type(writer, QueryClient)
    assert_type(writer.mode, str)
    assert_type(await Note.query(client=writer).first(), Note | None)
    async with db.sticky_scope():
        pass
    with db.sticky_scope():
        pass
    db.connection(mode="read")  # type: ignore[arg-type]
