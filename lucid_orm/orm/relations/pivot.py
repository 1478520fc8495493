"""The ``where_pivot`` family (conditions on a many_to_many pivot table) as a mixin."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Self

from sqlalchemy import not_, tuple_
from sqlalchemy.sql import ColumnElement, TableClause

from ...query.chainable import check_identifier, compare, in_values, table_column
from ...query.keys import keys_in, rows_in
from ...query.raw import Raw

if TYPE_CHECKING:
    from ...query.chainable import Chainable

    _Base = Chainable
else:
    _Base = object


def pivot_table_column(pivot: TableClause, name: str) -> ColumnElement[Any]:
    """The pivot column ``name`` (``"proficiency"`` or ``"skill_user.proficiency"``)."""
    check_identifier(name)
    return table_column(pivot, name.rpartition(".")[2])


class PivotWhereMixin(_Base):
    """Conditions on the pivot table's columns: ``where_pivot("proficiency", "expert")``."""

    def _pivot_table(self) -> TableClause:
        """Hook: the pivot table the conditions name."""
        raise NotImplementedError

    def _pivot_where(self, is_or: bool, clause: ColumnElement[Any]) -> Self:
        self.state.add_where(is_or, clause)
        return self

    def _pivot_column(self, name: str) -> ColumnElement[Any]:
        return pivot_table_column(self._pivot_table(), name)

    def _pivot_compare(self, args: tuple[Any, ...]) -> ColumnElement[Any]:
        if len(args) == 2:
            column, op, value = args[0], "=", args[1]
        elif len(args) == 3:
            column, op, value = args
        else:
            from ...errors import LucidError

            raise LucidError("where_pivot() takes a column, an optional operator and a value")
        return compare(self, self._pivot_column(column), op, value)

    def where_pivot(self, *args: Any) -> Self:
        """A condition on a pivot column: ``where_pivot("role", "admin")``."""
        return self._pivot_where(False, self._pivot_compare(args))

    and_where_pivot = where_pivot

    def or_where_pivot(self, *args: Any) -> Self:
        return self._pivot_where(True, self._pivot_compare(args))

    def where_not_pivot(self, *args: Any) -> Self:
        return self._pivot_where(False, not_(self._pivot_compare(args)))

    and_where_not_pivot = where_not_pivot

    def or_where_not_pivot(self, *args: Any) -> Self:
        return self._pivot_where(True, not_(self._pivot_compare(args)))

    def _pivot_in(self, column: Any, values: Any, method: str, negate: bool) -> Any:
        values = in_values(self, values, method)
        target: Any
        dialect = self.client.dialect
        if isinstance(column, list | tuple):
            parts = [self._pivot_column(c) for c in column]
            if isinstance(values, list):
                # Any number of keys, as ``where_in`` (see query/keys.py).
                return rows_in(parts, [tuple(v) for v in values], dialect, negate)
            target = tuple_(*parts)
        else:
            target = self._pivot_column(column)
            if isinstance(values, list):
                return keys_in(target, values, dialect, negate)
        if isinstance(values, Raw):
            return target.op("NOT IN" if negate else "IN")(values.self_group())
        return target.not_in(values) if negate else target.in_(values)

    def where_in_pivot(self, column: Any, values: Any) -> Self:
        """``pivot.column IN (...)``: a list, a subquery (builder or callback) or ``db.raw``;
        ``where_in_pivot(["a", "b"], [[1, 2], [3, 4]])`` compares tuples."""
        return self._pivot_where(False, self._pivot_in(column, values, "where_in_pivot", False))

    and_where_in_pivot = where_in_pivot

    def or_where_in_pivot(self, column: Any, values: Any) -> Self:
        return self._pivot_where(True, self._pivot_in(column, values, "or_where_in_pivot", False))

    def where_not_in_pivot(self, column: Any, values: Any) -> Self:
        return self._pivot_where(False, self._pivot_in(column, values, "where_not_in_pivot", True))

    and_where_not_in_pivot = where_not_in_pivot

    def or_where_not_in_pivot(self, column: Any, values: Any) -> Self:
        return self._pivot_where(
            True, self._pivot_in(column, values, "or_where_not_in_pivot", True)
        )

    def where_null_pivot(self, column: str) -> Self:
        """``pivot.column IS NULL``."""
        return self._pivot_where(False, self._pivot_column(column).is_(None))

    and_where_null_pivot = where_null_pivot

    def or_where_null_pivot(self, column: str) -> Self:
        return self._pivot_where(True, self._pivot_column(column).is_(None))

    def where_not_null_pivot(self, column: str) -> Self:
        """``pivot.column IS NOT NULL``."""
        return self._pivot_where(False, self._pivot_column(column).is_not(None))

    and_where_not_null_pivot = where_not_null_pivot

    def or_where_not_null_pivot(self, column: str) -> Self:
        return self._pivot_where(True, self._pivot_column(column).is_not(None))
