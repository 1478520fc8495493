"""has_many_through: related rows reached through an intermediate model
(``Country`` → ``User.country_id`` → ``Post.user_id``). ``HasManyThrough``,
``HasManyThroughClient``, ``HasManyThroughQueryBuilder``, ``HasManyThroughSubQueryBuilder``."""

from __future__ import annotations

import builtins
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, Unpack

from sqlalchemy import select
from sqlalchemy.sql import ColumnElement, FromClause, TableClause

from ...errors import LucidError
from ...query.chainable import compile_select, resolve_column
from ..model_info import info_of
from ..query_builder import row_locked
from .base import (
    KeyOptions,
    ManyRelation,
    RelationQueryClient,
    SubQueryBuilder,
    require_key,
    resolve,
)
from .has_many import HasManyQueryBuilder

if TYPE_CHECKING:
    from ...database.query_client import Client
    from ..base_model import BaseModel

R = TypeVar("R", bound="BaseModel")


def _through_alias(column: str) -> str:
    return f"through_{column}"


class HasManyThrough(ManyRelation[R]):
    """``posts: HasManyThrough[Post] = has_many_through((lambda: Post, lambda: User))`` on
    ``Country``: ``country.posts`` is ``list[Post]``.

    Keys: ``local_key`` on this model (its primary key), ``foreign_key`` on the through model
    (``country_id``), ``through_local_key`` on the through model (its primary key) and
    ``through_foreign_key`` on the related model (``user_id``)."""

    type = "hasManyThrough"
    _group_in_extras = True

    def __init__(
        self,
        related: Callable[[], builtins.type[R]],
        through: Callable[[], builtins.type[BaseModel]],
        *,
        through_foreign_key: str | None = None,
        through_local_key: str | None = None,
        **options: Unpack[KeyOptions],
    ) -> None:
        super().__init__(related, **options)
        if not callable(through):
            raise LucidError("has_many_through needs a callable returning the through model")
        self.through_model = through
        self._through_foreign_key_option = through_foreign_key
        self._through_local_key_option = through_local_key
        self.through_foreign_key = ""
        self.through_local_key = ""
        self.through_foreign_key_column_name = ""
        self.through_local_key_column_name = ""

    def _boot_keys(self) -> None:
        model, related, through = self.model, self.related_model(), self.through_model()
        strategy = model.naming_strategy
        name = self.relation_name
        self.local_key = self.options.get("local_key") or model.primary_key
        self.local_key_column_name = require_key(self, model, self.local_key)
        self.foreign_key = self.options.get("foreign_key") or strategy.relation_foreign_key(
            "hasManyThrough",
            model,
            through,
            name,
        )
        self.foreign_key_column_name = require_key(self, through, self.foreign_key)
        self.through_local_key = self._through_local_key_option or through.primary_key
        self.through_local_key_column_name = require_key(self, through, self.through_local_key)
        self.through_foreign_key = self._through_foreign_key_option or (
            strategy.relation_foreign_key("hasManyThrough", through, related, name)
        )
        self.through_foreign_key_column_name = require_key(self, related, self.through_foreign_key)
        self.parent_key = self.local_key
        self.match_column = self.foreign_key_column_name
        self.parent_column = self.local_key_column_name

    def through_table(self) -> TableClause:
        """The through model's table."""
        table = info_of(self.through_model()).table
        assert table is not None
        return table

    def _group_key(self) -> str:
        return _through_alias(self.foreign_key_column_name)

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
        super().__init__(relation, client, values=values, parent=parent)

    def _relation_sources(self) -> None:
        through = self._rel.through_table()
        self.state.aliases[through.name] = through

    def _match_target(self) -> ColumnElement[Any]:
        return self._rel.through_table().c[self._rel.foreign_key_column_name]

    def _match_key(self) -> str:
        return _through_alias(self._rel.foreign_key_column_name)

    def _key_columns(self, columns: list[ColumnElement[Any]]) -> list[ColumnElement[Any]]:
        """The through key, whatever the user selects; but an aggregate query
        (``count("* as total")``) selects none: PostgreSQL rejects the ungrouped column
        (Lucid skips it the same way)."""
        if self.state.has_aggregates:
            return []
        return [self._match_target().label(self._match_key())]

    def _base_from(self) -> FromClause | None:
        rel = self._rel
        through = rel.through_table()
        related = self.state.from_
        assert related is not None
        on = through.c[rel.through_local_key_column_name] == resolve_column(
            self, rel.through_foreign_key_column_name
        )
        return related.join(through, on)

    def _counts_over_subquery(self) -> bool:
        return True

    def _own_froms(self) -> list[Any]:
        return [*super()._own_froms(), self._rel.through_table()]

    def _dml_where(self) -> ColumnElement[Any] | None:
        """Related rows of this parent, by primary key, through a derived table (MySQL refuses
        a subquery on the table being written; Lucid's ``IN (SELECT * …)`` fails elsewhere).
        An UPDATE/DELETE/increment of this builder writes the rows it selects, no others:
        the inherited form would put the through table in a bare ``UPDATE … FROM users``."""
        model = self.model
        pk = resolve_column(self, model.columns[model.primary_key].column_name)
        state = self.state
        # The order only matters to pick the limited rows.
        order: list[ColumnElement[Any]] | None = (
            [] if state.limit is None and state.offset is None else None
        )
        inner = compile_select(self, columns=[pk.label("lucid_id")], order_by=order)
        ids = row_locked(self, inner).subquery("lucid_through_ids")
        return pk.in_(select(ids.c.lucid_id).scalar_subquery())


class HasManyThroughSubQueryBuilder(SubQueryBuilder[R]):
    """``has("posts")`` / ``with_count("posts")`` through the intermediate table."""

    def __init__(
        self, relation: HasManyThrough[R], client: Client, outer: FromClause, alias: str | None
    ) -> None:
        self._rel: HasManyThrough[R] = relation
        super().__init__(relation, client, outer, alias)

    def _relation_sources(self) -> None:
        rel = self._rel
        through = rel.through_table()
        self.state.aliases[through.name] = through
        self.state.joins.append(
            (
                through,
                through.c[rel.through_local_key_column_name]
                == self.own_column(rel.through_foreign_key_column_name),
                "inner",
            )
        )

    def _constraint(self) -> ColumnElement[Any] | None:
        rel = self._rel
        through = rel.through_table()
        clause: ColumnElement[Any] = through.c[rel.foreign_key_column_name] == self.outer_column(
            rel.local_key_column_name
        )
        return clause


class HasManyThroughClient(RelationQueryClient["HasManyThrough[R]"], Generic[R]):
    """``country.related("posts")``: the related query (a has_many_through is read-only)."""

    def query(self) -> HasManyThroughQueryBuilder[R]:
        """The related rows of this parent."""
        return HasManyThroughQueryBuilder(self.relation, resolve(self), parent=self.parent)


def has_many_through(
    models: tuple[Callable[[], builtins.type[R]], Callable[[], builtins.type[Any]]]
    | Callable[[], builtins.type[R]],
    *,
    through: Callable[[], builtins.type[Any]] | None = None,
    through_foreign_key: str | None = None,
    through_local_key: str | None = None,
    init: Literal[False] = False,
    **options: Unpack[KeyOptions],
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
        through_foreign_key=through_foreign_key,
        through_local_key=through_local_key,
        **options,
    )


# The roles of the kind, built by Relation's template methods.
HasManyThrough.query_builder_class = HasManyThroughQueryBuilder
HasManyThrough.sub_query_builder_class = HasManyThroughSubQueryBuilder
HasManyThrough.query_client_class = HasManyThroughClient
