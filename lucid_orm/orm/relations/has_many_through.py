"""has_many_through: related rows reached through an intermediate model
(``Country`` → ``User.country_id`` → ``Post.user_id``). ``HasManyThrough``,
``HasManyThroughClient``, ``HasManyThroughQueryBuilder``, ``HasManyThroughSubQueryBuilder``."""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, overload

from sqlalchemy import delete, select, update
from sqlalchemy.sql import ColumnElement, FromClause, TableClause

from ...errors import LucidError
from ..columns import _UNSET
from ..model_info import info_of, pk_column
from .base import Relation, SubQueryBuilder, group_rows, resolve, self_alias
from .has_many import HasManyQueryBuilder

if TYPE_CHECKING:
    from ...database.query_client import Client
    from ..base_model import BaseModel

R = TypeVar("R", bound="BaseModel")


def _through_alias(column: str) -> str:
    return f"through_{column}"


class HasManyThrough(Relation[R]):
    """``posts: HasManyThrough[Post] = has_many_through((lambda: Post, lambda: User))`` on
    ``Country``: ``country.posts`` is ``list[Post]``.

    Keys: ``local_key`` on this model (its primary key), ``foreign_key`` on the through model
    (``country_id``), ``through_local_key`` on the through model (its primary key) and
    ``through_foreign_key`` on the related model (``user_id``)."""

    type = "hasManyThrough"
    _is_many = True

    def __init__(
        self,
        related: Callable[[], builtins.type[R]],
        through: Callable[[], builtins.type[BaseModel]],
        *,
        foreign_key: str | None = None,
        local_key: str | None = None,
        through_foreign_key: str | None = None,
        through_local_key: str | None = None,
        serialize_as: str | None = _UNSET,
        on_query: Callable[[Any], Any] | None = None,
        meta: Any = None,
    ) -> None:
        super().__init__(
            related,
            foreign_key=foreign_key,
            local_key=local_key,
            serialize_as=serialize_as,
            on_query=on_query,
            meta=meta,
        )
        if not callable(through):
            raise LucidError("has_many_through needs a callable returning the through model")
        self.through_model = through
        self._through_foreign_key_option = through_foreign_key
        self._through_local_key_option = through_local_key
        self.through_foreign_key = ""
        self.through_local_key = ""
        self.through_foreign_key_column_name = ""
        self.through_local_key_column_name = ""

    if TYPE_CHECKING:  # typed access; at run time Relation.__get__ serves

        @overload
        def __get__(self, obj: None, owner: builtins.type) -> HasManyThrough[R]: ...

        @overload
        def __get__(self, obj: object, owner: builtins.type) -> list[R]: ...

        def __get__(self, obj: Any, owner: builtins.type) -> Any: ...

        def __set__(self, obj: Any, value: list[R]) -> None: ...

    def _boot_keys(self) -> None:
        model, related, through = self.model, self.related_model(), self.through_model()
        strategy = model.naming_strategy
        name = self.relation_name
        self.local_key = self._local_key_option or model.primary_key
        self.local_key_column_name = self._require(model, self.local_key)
        self.foreign_key = self._foreign_key_option or strategy.relation_foreign_key(
            "hasManyThrough",
            model,
            through,
            name,
        )
        self.foreign_key_column_name = self._require(through, self.foreign_key)
        self.through_local_key = self._through_local_key_option or through.primary_key
        self.through_local_key_column_name = self._require(through, self.through_local_key)
        self.through_foreign_key = self._through_foreign_key_option or (
            strategy.relation_foreign_key("hasManyThrough", through, related, name)
        )
        self.through_foreign_key_column_name = self._require(related, self.through_foreign_key)

    def _through_table(self) -> TableClause:
        table = info_of(self.through_model()).table
        assert table is not None
        return table

    def set_related_for_many(self, parents: Sequence[BaseModel], related: Sequence[Any]) -> None:
        self.boot()
        self._assign_lists(
            parents, group_rows(related, _through_alias(self.foreign_key_column_name), extra=True)
        )

    def eager_query(
        self, parents: Sequence[BaseModel], client: Client
    ) -> HasManyThroughQueryBuilder[R]:
        self.boot()
        values = self._parent_key_values(parents, self.local_key)
        return HasManyThroughQueryBuilder(self, client, values=values)

    def sub_query(
        self, client: Client, outer: FromClause | None = None
    ) -> HasManyThroughSubQueryBuilder[R]:
        self.boot()
        outer_from = self._outer(outer)
        return HasManyThroughSubQueryBuilder(self, client, outer_from, self_alias(self, outer_from))

    def client(self, parent: BaseModel, query_client: Client) -> HasManyThroughClient[R]:
        self.boot()
        return HasManyThroughClient(self, parent, query_client)

    def hydrate_for_persistence(self, parent: BaseModel, values: Any) -> None:
        raise LucidError(
            f'Cannot persist through a hasManyThrough relationship "({self.relation_name})": '
            "create the rows through the intermediate model",
            code="E_RUNTIME_EXCEPTION",
        )


class HasManyThroughQueryBuilder(HasManyQueryBuilder[R]):
    """The related query (joined to the through table) and the preload query of a
    has_many_through; the through foreign key lands in ``extras["through_<column>"]``.
    ``update``/``delete`` compile to ``… WHERE pk IN (SELECT … FROM (…) AS t)``, valid on
    PostgreSQL and MariaDB too."""

    def __init__(
        self,
        relation: HasManyThrough[R],
        client: Client,
        *,
        values: list[Any] | None = None,
        parent: BaseModel | None = None,
    ) -> None:
        self._rel: HasManyThrough[R] = relation
        super().__init__(
            relation,
            client,
            match_column=relation.foreign_key_column_name,
            values=values,
            parent=parent,
            parent_key=relation.local_key,
        )

    def _relation_sources(self) -> None:
        through = self._rel._through_table()
        self._aliases[through.name] = through

    def _through_column(self, name: str) -> ColumnElement[Any]:
        return self._rel._through_table().c[name]

    def _constraint(self) -> ColumnElement[Any] | None:
        column = self._through_column(self._rel.foreign_key_column_name)
        if self._values is not None:
            return self._keys_in(column)
        clause: ColumnElement[Any] = column == self._parent_value()
        return clause

    def _add_match_column(self) -> None:
        """The through key is always selected, whatever the user selects."""

    def _partition_column(self) -> Any:
        return self._through_column(self._rel.foreign_key_column_name)

    def _partition_key(self) -> str:
        return _through_alias(self._rel.foreign_key_column_name)

    def _join_through(self) -> tuple[Any, Any, str]:
        rel = self._rel
        on = self._through_column(rel.through_local_key_column_name) == self._unqualified(
            rel.through_foreign_key_column_name
        )
        return (rel._through_table(), on, "inner")

    def to_core(self) -> Any:
        rel = self._rel
        saved_columns, saved_joins = self._columns, self._joins
        through_key = self._through_column(rel.foreign_key_column_name).label(
            _through_alias(rel.foreign_key_column_name)
        )
        # An aggregate query (``count("* as total")``) selects no through key: with it,
        # PostgreSQL rejects the ungrouped column (Lucid skips it the same way).
        if self._has_aggregates:
            self._columns = list(saved_columns)
        else:
            self._columns = [*(saved_columns or self._default_columns()), through_key]
        self._joins = [self._join_through(), *saved_joins]
        try:
            return super().to_core()
        finally:
            self._columns, self._joins = saved_columns, saved_joins

    def _count_statement(self) -> Any:
        return self._count_over_subquery()

    def _own_froms(self) -> list[Any]:
        return [*super()._own_froms(), self._rel._through_table()]

    def _rows_filter(self) -> ColumnElement[Any]:
        """Related rows of this parent, by primary key, through a derived table (MySQL refuses
        a subquery on the table being written; Lucid's ``IN (SELECT * …)`` fails elsewhere)."""
        pk = self._unqualified(pk_column(self.model))
        saved_columns, saved_order = self._columns, self._order_by
        self._columns = [pk.label("lucid_id")]
        if self._limit is None and self._offset is None:
            self._order_by = []  # the order only matters to pick the limited rows
        saved_joins = self._joins
        self._joins = [self._join_through(), *saved_joins]
        try:
            inner = super(HasManyQueryBuilder, self).to_core().subquery("lucid_through_ids")
        finally:
            self._columns, self._order_by, self._joins = saved_columns, saved_order, saved_joins
        return pk.in_(select(inner.c.lucid_id).scalar_subquery())

    async def update(self, values: Any, value: Any = None) -> int:
        self._action = "update"
        vals = self._update_values(values, value, "update")
        row_filter = self._rows_filter()
        if self._no_rows:
            return 0
        table = self._dml_table("update")
        return await self._run_dml(update(table).values(vals).where(row_filter))

    async def increment(self, column: Any, amount: int | float = 1) -> int:
        return await self._counter(column, amount, 1)

    async def decrement(self, column: Any, amount: int | float = 1) -> int:
        return await self._counter(column, amount, -1)

    async def _counter(self, column: Any, amount: int | float, sign: int) -> int:
        # Through the same row filter as ``update``: the inherited form would put the through
        # table in a bare ``UPDATE … FROM users``, a cross join touching every related row.
        self._action = "update"
        vals = self._counter_values(column, amount, sign)
        row_filter = self._rows_filter()
        if self._no_rows:
            return 0
        table = self._dml_table("increment" if sign > 0 else "decrement")
        return await self._run_dml(update(table).values(vals).where(row_filter))

    async def delete(self) -> int:
        self._action = "delete"
        row_filter = self._rows_filter()
        if self._no_rows:
            return 0
        return await self._run_dml(delete(self._dml_table("delete")).where(row_filter))


class HasManyThroughSubQueryBuilder(SubQueryBuilder[R]):
    """``has("posts")`` / ``with_count("posts")`` through the intermediate table."""

    def __init__(
        self, relation: HasManyThrough[R], client: Client, outer: FromClause, alias: str | None
    ) -> None:
        self._rel: HasManyThrough[R] = relation
        super().__init__(
            relation,
            client,
            outer,
            alias,
            own_column=relation.through_foreign_key_column_name,
            outer_column=relation.local_key_column_name,
        )

    def _relation_sources(self) -> None:
        rel = self._rel
        through = rel._through_table()
        self._aliases[through.name] = through
        self._joins.append(
            (
                through,
                through.c[rel.through_local_key_column_name]
                == self.own_column(rel.through_foreign_key_column_name),
                "inner",
            )
        )

    def _constraint(self) -> ColumnElement[Any] | None:
        rel = self._rel
        through = rel._through_table()
        clause: ColumnElement[Any] = through.c[rel.foreign_key_column_name] == self.outer_column(
            rel.local_key_column_name
        )
        return clause


class HasManyThroughClient(Generic[R]):
    """``country.related("posts")``: the related query (a has_many_through is read-only)."""

    def __init__(self, relation: HasManyThrough[R], parent: BaseModel, client: Client) -> None:
        self.relation = relation
        self.parent = parent
        self.client = client

    def query(self) -> HasManyThroughQueryBuilder[R]:
        """The related rows of this parent."""
        return HasManyThroughQueryBuilder(self.relation, resolve(self), parent=self.parent)


def has_many_through(
    models: tuple[Callable[[], builtins.type[R]], Callable[[], builtins.type[Any]]]
    | Callable[[], builtins.type[R]],
    *,
    through: Callable[[], builtins.type[Any]] | None = None,
    foreign_key: str | None = None,
    local_key: str | None = None,
    through_foreign_key: str | None = None,
    through_local_key: str | None = None,
    serialize_as: str | None = _UNSET,
    on_query: Callable[[Any], Any] | None = None,
    meta: Any = None,
    init: Literal[False] = False,
) -> HasManyThrough[R]:
    """Declare a has_many_through relation: ``has_many_through((lambda: Post, lambda: User))``
    or ``has_many_through(lambda: Post, through=lambda: User)``."""
    if isinstance(models, tuple):
        if len(models) != 2 or through is not None:
            raise LucidError("has_many_through takes (related, through) or related with through=")
        related, through_model = models
    else:
        if through is None:
            raise LucidError("has_many_through needs the through model: through=lambda: Model")
        related, through_model = models, through
    return HasManyThrough(
        related,
        through_model,
        foreign_key=foreign_key,
        local_key=local_key,
        through_foreign_key=through_foreign_key,
        through_local_key=through_local_key,
        serialize_as=serialize_as,
        on_query=on_query,
        meta=meta,
    )
