"""``ColumnRows``: a bulk UPDATE's rows ``(key, *values)`` held column by column read as the
row tuples they stand for."""

from __future__ import annotations

from lucid_orm.database.dialects.base import ColumnRows


class TestColumnRows:
    def test_reads_as_the_row_tuples(self) -> None:
        rows = ColumnRows([(1, 2, 3), ("a", "b", "c"), (None, 0.5, True)])
        assert len(rows) == 3
        assert list(rows) == [(1, "a", None), (2, "b", 0.5), (3, "c", True)]
        assert rows[0] == (1, "a", None) and rows[-1] == (3, "c", True)
        assert rows[1:] == [(2, "b", 0.5), (3, "c", True)]
        assert [r[0] for r in rows] == [1, 2, 3]

    def test_keeps_the_columns_as_given(self) -> None:
        keys, titles = (1, 2), ("A", "B")
        rows = ColumnRows([keys, titles])
        assert rows.columns[0] is keys and rows.columns[1] is titles
        assert list(zip(*rows, strict=True)) == [keys, titles]
