"""Assigning to a model attribute: a plain column is stored straight into the instance
``__dict__`` (``BaseModel.__setattr__``'s short path); a name the class serves otherwise (a
property overriding a column, a relation, any other attribute) goes through Python's own
``object.__setattr__``, descriptors included; a deleted instance refuses either."""

from __future__ import annotations

from typing import Any

import pytest

from lucid_orm import BaseModel, LucidError, column
from lucid_orm.orm.state import DELETED


class Note(BaseModel):
    id: int = column(is_primary=True)
    title: str | None = column()
    body: str | None = column()


class ShoutingNote(Note):
    """``title`` overridden by a property whose setter upper-cases what it stores."""

    table = "notes"

    @property  # type: ignore[override]
    def title(self) -> Any:
        return self.__dict__.get("title")

    @title.setter
    def title(self, value: Any) -> None:
        self.__dict__["title"] = None if value is None else str(value).upper()


def test_plain_columns_are_stored_in_the_instance_and_show_as_dirty() -> None:
    note = Note()
    note.title = "draft"
    note.body = "text"
    assert note.__dict__["title"] == "draft" and note.title == "draft"
    assert note.dirty == {"title": "draft", "body": "text"}
    assert Note._lucid_plain_columns == frozenset({"id", "title", "body"})


def test_a_property_overriding_a_column_keeps_its_setter() -> None:
    note = ShoutingNote()
    note.title = "quiet"
    assert note.title == "QUIET"
    note.body = "kept"
    assert note.body == "kept"
    assert "title" not in ShoutingNote._lucid_plain_columns
    assert "body" in ShoutingNote._lucid_plain_columns
    # The parent class is unaffected by its subclass's override.
    parent = Note()
    parent.title = "quiet"
    assert parent.title == "quiet"


def test_other_attributes_go_through_python_s_own_assignment() -> None:
    note = Note()
    note.scratch = 1  # type: ignore[attr-defined]
    assert note.__dict__["scratch"] == 1
    with pytest.raises(AttributeError):
        note.is_dirty = True  # type: ignore[misc]  # a read-only property


def test_a_deleted_instance_refuses_every_assignment() -> None:
    note = Note()
    note.__dict__[DELETED] = True
    with pytest.raises(LucidError):
        note.title = "again"
    with pytest.raises(LucidError):
        note.scratch = 1  # type: ignore[attr-defined]
    assert "title" not in note.__dict__
