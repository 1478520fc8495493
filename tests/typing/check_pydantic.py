"""Static typing of ``lucid_orm.pydantic``, checked by ``mypy --strict tests/typing`` (never run).

Each ``assert_type`` pins an inferred type; each ``# type: ignore[code]`` marks an error that
must happen (``warn_unused_ignores`` under ``--strict`` fails the check if it does not).
"""

from __future__ import annotations

from typing import Any, assert_type

import pydantic

from lucid_orm import BaseModel, column
from lucid_orm.pydantic import Page, PageMeta, pydantic_model


class User(BaseModel):
    id: int = column(is_primary=True)
    email: str = column()


# A model is a pydantic type: TypeAdapter keeps its type.
adapter = pydantic.TypeAdapter(User)
assert_type(adapter.validate_python(User(email="a")), User)
assert_type(pydantic.TypeAdapter(list[User]).dump_python([]), Any)

# Shapes are pydantic model classes.
UserOut = pydantic_model(User, exclude=["email"], name="UserOut")
assert_type(UserOut, type[pydantic.BaseModel])
body = pydantic_model(User, mode="create").model_validate({"email": "a"})
assert_type(body.model_dump(exclude_unset=True), dict[str, Any])
pydantic_model(User, mode="delete")  # type: ignore[arg-type]
pydantic_model(User, relations={"posts": int})  # type: ignore[dict-item]


def read_page(page: Page[User]) -> None:
    assert_type(page.data, list[User])
    assert_type(page.meta, PageMeta)
    assert_type(page.meta.next_page_url, str | None)
