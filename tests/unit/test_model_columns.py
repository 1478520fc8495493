"""``ModelInfo.column_for_db`` reads the table's columns from a dict built with the table
(``db_columns``): it must give what ``table.c[name]`` gives for every column of the model,
and nothing for another name."""

from __future__ import annotations

import pytest

from lucid_orm import BaseModel, column
from lucid_orm.orm.model_info import info_of
from tests import models


class CtRenamed(BaseModel):
    table = "ct_renamed"
    id: int = column(is_primary=True)
    display_name: str = column(column_name="shown_as")


@pytest.mark.parametrize("model", [models.User, models.Post, models.Comment, CtRenamed])
def test_every_column_is_the_tables_own(model: type[BaseModel]) -> None:
    info = info_of(model)
    assert info.table is not None
    names = [c.column_name for c in info.columns.values() if c.column_name]
    assert names
    for name in names:
        assert info.column_for_db(name) is info.table.c[name]
    assert set(info.db_columns) == set(info.by_column)


def test_other_names_have_no_column() -> None:
    info = info_of(CtRenamed)
    assert info.column_for_db("shown_as") is not None
    assert info.column_for_db("display_name") is None  # the attribute's name, not the column's
    assert info.column_for_db("nope") is None


def test_a_rebuilt_table_gives_its_own_columns() -> None:
    info = info_of(CtRenamed)
    old = info.table
    info.build_table()  # (a model of this file only: no other test sees its new table)
    assert info.table is not old
    assert info.column_for_db("shown_as") is info.table.c["shown_as"]
