"""Static typing of the sync escape hatch, checked by ``mypy --strict tests/typing`` (never
run): ``run_sync()`` and ``sync.run()`` return what awaiting gives."""

from __future__ import annotations

from typing import Any, assert_type

from lucid_orm import BaseModel, SimplePaginator, column, db, has_many, sync
from lucid_orm.relations import HasMany


class Author(BaseModel):
    id: int = column(is_primary=True)
    books: HasMany[Book] = has_many(lambda: Book)


class Book(BaseModel):
    id: int = column(is_primary=True)
    author_id: int = column()


def check() -> None:
    assert_type(Author.query().where("id", 1).run_sync(), list[Author])
    assert_type(sync.run(Author.find(1)), Author | None)
    assert_type(sync.run(Author.find_or_fail(1)), Author)
    assert_type(sync.run(Author.query().paginate(1, 10)), SimplePaginator[Author])
    assert_type(sync.run(Author.query().count_rows()), int)
    assert_type(db.from_("books").run_sync(), Any)
    assert_type(db.raw_query("select 1").run_sync(), Any)
    sync.close()
