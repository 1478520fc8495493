"""The per-result checks of the lean read path and of cursor pages: the scan for naive
datetimes (PostgreSQL ``timestamptz`` ``infinity``) and the NULL check of sort values."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from lucid_orm.database.executor import NAIVE_ONLY, _converter
from lucid_orm.errors import LucidError
from lucid_orm.query.cursor import paginate_by_cursor

UTC = dt.UTC


def _aware(value: Any) -> Any:
    if value is not None and value.tzinfo is None:
        return dt.datetime.combine(value.date(), value.time(), UTC)
    return value


_aware.__dict__[NAIVE_ONLY] = True


def _rows(count: int) -> list[tuple[Any, ...]]:
    at = dt.datetime(2024, 1, 1, tzinfo=UTC)
    return [(i, f"t{i}", at + dt.timedelta(seconds=i)) for i in range(count)]


def test_aware_rows_come_back_as_given() -> None:
    convert = _converter([None, None, _aware])
    rows = _rows(100)
    rows[10] = (10, "t10", None)  # NULL passes untouched
    assert convert(rows) is rows


@pytest.mark.parametrize("at", [0, 57, 99])
def test_a_naive_value_anywhere_converts_that_row_only(at: int) -> None:
    convert = _converter([None, None, _aware])
    rows = _rows(100)
    rows[at] = (at, "inf", dt.datetime.max)
    out = convert(rows)
    assert out is not rows and len(out) == 100
    assert out[at] == (at, "inf", dt.datetime.max.replace(tzinfo=UTC))
    assert all(out[i] is rows[i] for i in range(100) if i != at)


def test_other_processors_convert_every_row() -> None:
    convert = _converter([None, str.upper, None])
    assert list(convert([(1, "a", 2), (2, None, 3)])) == [(1, "A", 2), (2, None, 3)]


class _EqualsEverything:
    """A sort value claiming equality with anything, None included (it is not None)."""

    def __eq__(self, other: object) -> bool:
        return True

    __hash__ = object.__hash__


class _Page:
    """A stand-in builder: ``exec()`` gives ``rows``; the ordering is one plain column."""

    def __init__(self, rows: list[Any]) -> None:
        from sqlalchemy import Column, Integer, MetaData, Table

        table = Table("t", MetaData(), Column("id", Integer, primary_key=True))
        self.column = table.c.id
        self.rows = rows
        self.state = _State()

    def clone(self) -> _Page:
        return self

    async def exec(self) -> list[Any]:
        return list(self.rows)


class _State:
    def __init__(self) -> None:
        self.order_by: list[Any] = []
        self.scoped: list[Any] = []
        self.limit: int | None = None
        self.offset: int | None = None


class _Row:
    def __init__(self, id: Any) -> None:
        self.id = id


def _reader(key: Any) -> Any:
    return lambda row: row.id


async def test_a_value_equal_to_none_is_not_taken_for_null() -> None:
    page = _Page([_Row(1), _Row(_EqualsEverything()), _Row(3)])
    found = await paginate_by_cursor(page, 5, None, [page.column], _reader)
    assert len(found) == 3 and not found.has_more


async def test_a_null_sort_value_is_refused() -> None:
    page = _Page([_Row(1), _Row(None), _Row(3)])
    with pytest.raises(LucidError) as info:
        await paginate_by_cursor(page, 5, None, [page.column], _reader)
    assert info.value.code == "E_INVALID_ARGUMENT"


class _Later(dt.datetime):
    """A datetime subclass: the converter leaves it to the processor."""


@pytest.mark.parametrize("name", ["mysql", "postgresql"])
def test_written_out_naive_to_utc_is_the_processor(name: str) -> None:
    # The converter writes out what a NAIVE_TO_UTC processor does to a naive datetime; every
    # value must come out as the processor itself gives it.
    from sqlalchemy.dialects import mysql, postgresql

    from lucid_orm.database.executor import NAIVE_TO_UTC
    from lucid_orm.orm.columns import UTCDateTime

    dialect = mysql.dialect() if name == "mysql" else postgresql.dialect()
    process = UTCDateTime().result_processor(dialect, 1114)
    assert getattr(process, NAIVE_TO_UTC, False)
    values: list[Any] = [
        dt.datetime(2024, 1, 2, 3, 4, 5, 6),
        dt.datetime.max,
        dt.datetime(2024, 1, 2, tzinfo=UTC),
        dt.datetime(2024, 1, 2, tzinfo=dt.timezone(dt.timedelta(hours=2))),
        _Later(2024, 1, 2, 3),
        "2024-01-02 03:04:05",
        "2024-01-02T03:04:05+02:00",
        None,
    ]
    rows = [(i, v) for i, v in enumerate(values)]
    out = _converter([None, process])(rows)
    expected = [(i, process(v) if v is not None else None) for i, v in rows]
    assert out == expected
    assert [type(r[1]) for r in out] == [type(r[1]) for r in expected]
    assert all(r[1] is None or r[1].tzinfo is UTC for r in out)


def test_rows_of_another_width_convert_as_indexed() -> None:
    # The unpacking comprehension refuses them; the indexed form converts them as before.
    convert = _converter([None, str.upper])
    assert convert([(1, "a", "extra"), (2, "b")]) == [(1, "A"), (2, "B")]
    with pytest.raises(IndexError):
        convert([(1,)])


def test_a_processor_error_is_raised_as_is() -> None:
    def refuse(value: Any) -> Any:
        raise ValueError(f"bad {value}")

    with pytest.raises(ValueError, match="bad b"):
        _converter([None, refuse])([(1, "b")])
