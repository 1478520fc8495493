"""The SQLite bind processor of ``UTCDateTime`` (its one-call forms for plain datetimes) writes
what SQLAlchemy's composed chain writes: ``process_bind_param`` then ``DateTime``'s processor."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import TypeDecorator
from sqlalchemy.dialects import sqlite

from lucid_orm.errors import UnstorableValueError
from lucid_orm.orm.columns import UTCDateTime

UTC = dt.UTC
EAST = dt.timezone(dt.timedelta(hours=5, minutes=30))
WEST = dt.timezone(dt.timedelta(hours=-8))


class _Later(dt.datetime):
    """A subclass: takes the composed chain."""


def _composed(value: Any) -> Any:
    # SQLAlchemy's own chain for a type decorator, which the processor stands in for.
    dialect = sqlite.dialect()
    chain = TypeDecorator.bind_processor(UTCDateTime().dialect_impl(dialect), dialect)
    assert chain is not None
    return chain(value)


def _processor() -> Any:
    # As statements get it: the type adapted to the dialect (its impl SQLite's DATETIME).
    dialect = sqlite.dialect()
    return UTCDateTime().dialect_impl(dialect).bind_processor(dialect)


VALUES: list[Any] = [
    *[
        dt.datetime(year, month, day, h, m, s, us, tzinfo=tz)
        for year in (1, 9, 999, 1970, 2024, 9999)
        for month, day, h, m, s, us in ((1, 2, 3, 4, 5, 0), (12, 31, 23, 59, 59, 999999))
        for tz in (UTC, None)
    ],
    dt.datetime(2024, 6, 1, 12, 0, 0, 7, tzinfo=EAST),
    dt.datetime(2024, 6, 1, 1, 0, 0, tzinfo=EAST),  # the day before, in UTC
    dt.datetime(2024, 12, 31, 20, 0, 0, 10, tzinfo=WEST),  # the year after, in UTC
    dt.datetime.max.replace(tzinfo=UTC),
    dt.datetime.min.replace(tzinfo=UTC),
    dt.datetime.max,
    dt.datetime.min,
    _Later(2024, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
    _Later(2024, 1, 2, 3, 4, 5),
    None,
]


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_sqlite_bind_matches_the_composed_chain(value: Any) -> None:
    process = _processor()
    assert process(value) == _composed(value)


def test_sqlite_bind_of_a_utc_value_is_its_naive_iso_text() -> None:
    process = _processor()
    assert process(dt.datetime(7, 1, 2, 3, 4, 5, tzinfo=UTC)) == "0007-01-02 03:04:05.000000"
    assert process(dt.datetime(2024, 1, 2, 3, 4, 5, 60, tzinfo=EAST)) == (
        "2024-01-01 21:34:05.000060"
    )


def test_sqlite_bind_out_of_range_in_utc_is_refused() -> None:
    process = _processor()
    with pytest.raises(UnstorableValueError):
        process(dt.datetime.min.replace(tzinfo=EAST))
