"""many_to_many: rows linked through a pivot table (``skill_user``).
``ManyToMany``, ``ManyToManyQueryClient``, ``ManyToManyQueryBuilder``,
``ManyToManySubQueryBuilder`` and the pivot-only query builder."""

from __future__ import annotations

import builtins
import datetime as _dt
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, Literal, Self, TypeVar, Unpack

from sqlalchemy import and_, delete, false, insert, select, tuple_, update
from sqlalchemy.sql import ColumnElement, FromClause, TableClause
from sqlalchemy.sql.elements import ColumnClause
from sqlalchemy.types import NullType

from ...errors import LucidError
from ...query.chainable import (
    check_identifier,
    column_value,
    table_column,
    written_conditions,
)
from ...query.database import DatabaseQueryBuilder
from ...query.keys import keys_in, rows_in
from ..columns import UTCDateTime
from ..hydration import new_many
from ..model_info import check_component
from ..payload import as_mapping_list
from ..persistence import insert_many
from .base import (
    ManyRelation,
    P,
    RelationOptions,
    RelationQueryClient,
    SubQueryBuilder,
    check_related,
    constrained,
    key_label,
    key_names,
    key_value,
    managed,
    require_key,
    resolve,
    run_on_query,
)
from .has_many import HasManyQueryBuilder
from .pivot import PivotWhereMixin, pivot_table_column

if TYPE_CHECKING:
    from ...database.query_client import Client
    from ..base_model import BaseModel

R = TypeVar("R", bound="BaseModel")

PivotTimestamps = bool | Mapping[str, str | bool]


def _pivot_timestamp_names(option: PivotTimestamps) -> tuple[str | None, str | None]:
    """``True`` → ``("created_at", "updated_at")``; ``{"created_at": "col" | True | False,
    "updated_at": …}`` (a missing key is ``False``). Anything else raises at definition."""
    if option is True or option is False:
        return ("created_at", "updated_at") if option else (None, None)
    if not isinstance(option, Mapping) or set(option) - {"created_at", "updated_at"}:
        raise LucidError(
            'pivot_timestamps expects True, False or {"created_at": "column" | bool, '
            f'"updated_at": "column" | bool}}, got {option!r}',
            code="E_INVALID_ARGUMENT",
        )
    names: list[str | None] = []
    for key in ("created_at", "updated_at"):
        value = option.get(key, False)
        if value is True:
            names.append(key)
        elif value is False or value is None:
            names.append(None)
        else:
            names.append(check_identifier(value))
    return names[0], names[1]


class ManyToManyOptions(RelationOptions, total=False):
    """The options of ``many_to_many()``: the keys and the pivot table (see ``ManyToMany``)."""

    pivot_table: str | None
    local_key: str | tuple[str, ...] | None
    pivot_foreign_key: str | tuple[str, ...] | None
    related_key: str | tuple[str, ...] | None
    pivot_related_foreign_key: str | tuple[str, ...] | None
    pivot_columns: Sequence[str] | None
    pivot_timestamps: PivotTimestamps


def _pivot_alias(column: str) -> str:
    return f"pivot_{column}"


class ManyToMany(ManyRelation[R]):
    """``skills: ManyToMany[Skill] = many_to_many(lambda: Skill)``; ``user.skills`` is
    ``list[Skill]``. Pivot values land on ``skill.extras["pivot_<column>"]``."""

    type = "manyToMany"
    _group_in_extras = True

    def __init__(
        self,
        related: Callable[[], builtins.type[R]],
        *,
        pivot_table: str | None = None,
        local_key: str | tuple[str, ...] | None = None,
        pivot_foreign_key: str | tuple[str, ...] | None = None,
        related_key: str | tuple[str, ...] | None = None,
        pivot_related_foreign_key: str | tuple[str, ...] | None = None,
        pivot_columns: Sequence[str] | None = None,
        pivot_timestamps: PivotTimestamps = False,
        **options: Unpack[RelationOptions],
    ) -> None:
        super().__init__(related, local_key=local_key, **options)
        for col in pivot_columns or ():
            check_identifier(col)
        self._pivot_table_option = pivot_table
        self._pivot_foreign_key_option = pivot_foreign_key
        self._related_key_option = related_key
        self._pivot_related_foreign_key_option = pivot_related_foreign_key
        self.pivot_columns: list[str] = list(pivot_columns or ())
        self._pivot_timestamps_option = _pivot_timestamp_names(pivot_timestamps)
        self.pivot_table = ""
        self.pivot_foreign_key = ""
        self.pivot_related_foreign_key = ""
        self.related_key = ""
        self.related_key_column_name = ""
        self.pivot_foreign_key_column_name = ""
        self.pivot_related_foreign_key_column_name = ""
        self.pivot_created_at: str | None = None
        self.pivot_updated_at: str | None = None
        # Composite keys (tuples; the str attributes above then name them): the parent side
        # (``local_keys`` ↔ ``pivot_foreign_keys``, ``composite``) and the related side
        # (``related_keys`` ↔ ``pivot_related_foreign_keys``, ``related_composite``).
        self.pivot_foreign_keys: tuple[str, ...] = ()
        self.related_keys: tuple[str, ...] = ()
        self.related_key_columns: tuple[str, ...] = ()
        self.pivot_related_foreign_keys: tuple[str, ...] = ()
        self.related_composite = False
        self._pivot: TableClause = TableClause("")
        self._related_id_type: builtins.type | None = None

    def _boot_keys(self) -> None:
        model, related = self.model, self.related_model()
        strategy = model.naming_strategy
        name = self.relation_name
        locals_ = key_names(self.options.get("local_key") or model.primary_key)
        related_keys = key_names(self._related_key_option or related.primary_key)
        pivot_fks = key_names(
            self._pivot_foreign_key_option
            or strategy.relation_pivot_foreign_key("manyToMany", model, related, name)
        )
        pivot_related_fks = key_names(
            self._pivot_related_foreign_key_option
            or strategy.relation_pivot_foreign_key("manyToMany", related, model, name)
        )
        for keys, pivot, side in (
            (locals_, pivot_fks, "local_key and pivot_foreign_key"),
            (related_keys, pivot_related_fks, "related_key and pivot_related_foreign_key"),
        ):
            if len(keys) != len(pivot):
                raise LucidError(
                    f'"{model.__name__}.{name}": {side} must have as many attributes, got '
                    f"{keys!r} and {pivot!r}",
                    code="E_INVALID_RELATION",
                )
        for column in (*pivot_fks, *pivot_related_fks):
            check_identifier(column)
        local_columns = tuple(require_key(self, model, k) for k in locals_)
        related_columns = tuple(require_key(self, related, k) for k in related_keys)
        self.composite = len(locals_) > 1
        self.related_composite = len(related_keys) > 1
        self.local_keys, self.local_key_columns = locals_, local_columns
        self.pivot_foreign_keys = pivot_fks
        self.related_keys, self.related_key_columns = related_keys, related_columns
        self.pivot_related_foreign_keys = pivot_related_fks
        # The str attributes: the key itself, or its name in messages for a composite one.
        self.local_key = locals_[0] if not self.composite else key_label(locals_)
        self.local_key_column_name = (
            local_columns[0] if not self.composite else key_label(local_columns)
        )
        self.pivot_foreign_key = pivot_fks[0] if not self.composite else key_label(pivot_fks)
        self.related_key = (
            related_keys[0] if not self.related_composite else key_label(related_keys)
        )
        self.related_key_column_name = (
            related_columns[0] if not self.related_composite else key_label(related_columns)
        )
        self.pivot_related_foreign_key = (
            pivot_related_fks[0] if not self.related_composite else key_label(pivot_related_fks)
        )
        self.pivot_table = self._pivot_table_option or strategy.relation_pivot_table(
            "manyToMany",
            model,
            related,
            name,
        )
        check_identifier(self.pivot_table, "table")
        self.foreign_key = self.pivot_foreign_key
        self.foreign_key_column_name = self.pivot_foreign_key
        self.foreign_keys = self.foreign_key_columns = pivot_fks if self.composite else ()
        self.pivot_foreign_key_column_name = self.pivot_foreign_key
        self.pivot_related_foreign_key_column_name = self.pivot_related_foreign_key
        self.parent_key = self.local_key
        self.match_column = self.pivot_foreign_key
        self.parent_column = self.local_key_column_name
        if self.composite:
            self.parent_keys = locals_
            self.match_columns = pivot_fks
            self.parent_columns = local_columns
        self.pivot_created_at, self.pivot_updated_at = self._pivot_timestamps_option
        # A relation-private pivot table with typed key and timestamp columns.
        related_types = [related.columns[k].type_ or NullType() for k in related_keys]
        try:
            self._related_id_type = related_types[0].python_type
        except NotImplementedError:
            self._related_id_type = None
        columns = [
            *[
                ColumnClause(c, model.columns[k].type_ or NullType())
                for c, k in zip(pivot_fks, locals_, strict=True)
            ],
            *[ColumnClause(c, t) for c, t in zip(pivot_related_fks, related_types, strict=True)],
        ]
        for stamp in (self.pivot_created_at, self.pivot_updated_at):
            if stamp:
                columns.append(ColumnClause(stamp, UTCDateTime()))
        schema, _, table = self.pivot_table.rpartition(".")
        self._pivot = TableClause(table, *columns, schema=schema or None)

    def pivot_keys_match(self, keys: Sequence[str], value: Any) -> ColumnElement[Any]:
        """``pivot.k = v`` for each pivot column of ``keys`` and component of ``value`` (a
        tuple, one per column)."""
        return and_(*[self.pivot_column(k) == v for k, v in zip(keys, value, strict=True)])

    def related_ids_in(self, ids: list[Any], dialect: Any) -> ColumnElement[Any]:
        """The pivot rows whose related key is one of ``ids`` (tuples for a composite related
        key), the ids bound as the dialect binds key lists."""
        if self.related_composite:
            columns = [self.pivot_column(c) for c in self.pivot_related_foreign_keys]
            return rows_in(columns, ids, dialect)
        return keys_in(self.pivot_column(self.pivot_related_foreign_key), ids, dialect)

    def related_join(self, column: Any) -> ColumnElement[Any]:
        """The join of the related table (``column(name)`` gives its columns) to the pivot."""
        if self.related_composite:
            pairs = zip(self.related_key_columns, self.pivot_related_foreign_keys, strict=True)
            return and_(*[column(r) == self.pivot_column(p) for r, p in pairs])
        clause: ColumnElement[Any] = column(self.related_key_column_name) == self.pivot_column(
            self.pivot_related_foreign_key
        )
        return clause

    @property
    def pivot_timestamps(self) -> list[str]:
        return [s for s in (self.pivot_created_at, self.pivot_updated_at) if s]

    def pivot_column(self, name: str) -> ColumnElement[Any]:
        return table_column(self._pivot, name)

    def pivot_owner(self, value: Any) -> ColumnElement[Any]:
        """The pivot rows of the parent whose key is ``value`` (a tuple for a composite key;
        a hook of the writes: morph_to_many adds its type column)."""
        if self.composite:
            return self.pivot_keys_match(self.pivot_foreign_keys, value)
        clause: ColumnElement[Any] = self.pivot_column(self.pivot_foreign_key) == value
        return clause

    def _selected_pivot_columns(self, extra: Sequence[str] = ()) -> list[str]:
        names = [
            *(self.pivot_foreign_keys if self.composite else (self.pivot_foreign_key,)),
            *(
                self.pivot_related_foreign_keys
                if self.related_composite
                else (self.pivot_related_foreign_key,)
            ),
            *self.pivot_columns,
            *self.pivot_timestamps,
            *extra,
        ]
        return list(dict.fromkeys(names))

    def _group_key(self) -> str:
        return _pivot_alias(self.pivot_foreign_key)

    def _group_keys(self) -> tuple[str, ...]:
        return tuple(_pivot_alias(k) for k in self.pivot_foreign_keys)

    def hydrate_for_persistence(self, parent: BaseModel, values: Any) -> None:
        """A many_to_many writes its keys to the pivot table, not to the related row."""
        self.boot()


class ManyToManyQueryBuilder(PivotWhereMixin, HasManyQueryBuilder[R]):
    """The related query (joined to the pivot table) of a many_to_many and its preload query.
    Unqualified columns refer to the related table; ``where_pivot`` & co. to the pivot.
    ``update``/``delete`` act on this parent's pivot rows."""

    def __init__(
        self,
        relation: ManyToMany[R],
        client: Client,
        *,
        values: list[Any] | None = None,
        parent: BaseModel | None = None,
    ) -> None:
        # Pivot columns selected besides the relation's own (``pivot_columns()``).
        self._extra_pivot: tuple[str, ...] = ()
        self._rel: ManyToMany[R] = relation
        super().__init__(relation, client, values=values, parent=parent)

    def _relation_sources(self) -> None:
        self.state.aliases[self._rel._pivot.name] = self._rel._pivot

    def _pivot_table(self) -> TableClause:
        return self._rel._pivot

    def pivot_columns(self, columns: Sequence[str]) -> Self:
        """Select more pivot columns (into ``extras["pivot_<column>"]``)."""
        for col in columns:
            check_identifier(col)
        # A new tuple: clone() shares this attribute with its copies.
        self._extra_pivot = (*self._extra_pivot, *columns)
        return self

    def _match_target(self) -> ColumnElement[Any]:
        return self._rel.pivot_column(self._rel.pivot_foreign_key)

    def _match_key(self) -> str:
        return _pivot_alias(self._rel.pivot_foreign_key)

    def _match_targets(self) -> list[ColumnElement[Any]]:
        return [self._rel.pivot_column(k) for k in self._rel.pivot_foreign_keys]

    def _match_keys(self) -> list[str]:
        return [_pivot_alias(k) for k in self._rel.pivot_foreign_keys]

    def _key_columns(self, columns: list[ColumnElement[Any]]) -> list[ColumnElement[Any]]:
        """The pivot keys and columns. A preload always keeps them (it matches on them). A
        ``related(...).query()`` adds them to ``*`` but not to columns the user picks (or an
        aggregate, ``count("* as total")``, which would need a GROUP BY): ``select("id")``
        selects ``id`` alone, and so works as a ``where_in`` subquery. Pivot columns asked
        for with ``pivot_columns()`` are always selected."""
        rel = self._rel
        picked = self.state.has_aggregates or self._picks_columns()
        names = (
            list(dict.fromkeys(self._extra_pivot))
            if picked and not self.is_related_preload_query
            else rel._selected_pivot_columns(self._extra_pivot)
        )
        return [rel.pivot_column(c).label(_pivot_alias(c)) for c in names]

    def _picks_columns(self) -> bool:
        """Whether the SELECT list leaves out some of the model's columns: ``select("*")``
        and ``with_count`` (which add them all) still get the pivot columns."""
        chosen = {id(c) for c in self.state.columns}
        return bool(chosen) and any(id(c) not in chosen for c in self._default_columns())

    def _related_join(self) -> FromClause:
        """The related table joined to the pivot."""
        rel = self._rel
        related = self.state.from_
        assert related is not None
        return related.join(rel._pivot, rel.related_join(self._unqualified))

    def _base_from(self) -> FromClause | None:
        return self._related_join()

    def _counts_over_subquery(self) -> bool:
        return True

    def _own_froms(self) -> list[Any]:
        return [*super()._own_froms(), self._rel._pivot]

    # -- writes: this parent's pivot rows, never the related table -----------------------------
    def _dml_table(self, method: str) -> TableClause:
        return self._rel._pivot

    def _update_values(self, values: Any, value: Any, method: str) -> dict[Any, Any]:
        """``values`` are pivot columns."""
        if isinstance(values, str):
            values = {values: value}
        if not isinstance(values, Mapping) or not values:
            raise LucidError("update() expects a dict of pivot column -> value")
        return _pivot_values(self._rel, values)

    def _counter_values(self, column: Any, amount: Any, sign: int) -> dict[Any, Any]:
        """``pivot.column = column ± amount`` (the inherited form would UPDATE the related
        table: on PostgreSQL every row of it)."""
        pairs = column.items() if isinstance(column, Mapping) else [(column, amount)]
        values: dict[Any, Any] = {}
        for key, by in pairs:
            if isinstance(by, bool) or not isinstance(by, int | float):
                raise LucidError(f"increment/decrement amount must be a number, got {by!r}")
            col = self._rel.pivot_column(check_identifier(key).rpartition(".")[2])
            values[col] = col + by * sign
        return values

    def _dml_where(self) -> ColumnElement[Any] | None:
        """This parent's pivot rows whose related rows match the user's conditions."""
        rel = self._rel
        condition = rel.pivot_owner(self._parent_value())
        # The related model's global scopes too: only the rows this query reads are written.
        user = constrained(self._global_scope_clause(), written_conditions(self))
        if user is None:
            return condition
        if rel.related_composite:
            keys = [self._unqualified(c) for c in rel.related_key_columns]
            labels = [f"lucid_id_{i}" for i in range(len(keys))]
            targets = [rel.pivot_column(c) for c in rel.pivot_related_foreign_keys]
        else:
            keys = [self._unqualified(rel.related_key_column_name)]
            labels = ["lucid_id"]
            targets = [rel.pivot_column(rel.pivot_related_foreign_key)]
        related_ids = (
            select(*[k.label(n) for k, n in zip(keys, labels, strict=True)])
            .select_from(self._related_join())
            .where(and_(rel.pivot_owner(self._parent_value()), user))
            .subquery("lucid_pivot_ids")
        )
        # A derived table: MySQL refuses a subquery on the table being updated/deleted.
        if len(targets) > 1:
            rows = select(*[related_ids.c[n] for n in labels])
            return and_(condition, tuple_(*targets).in_(rows))
        ids = select(related_ids.c.lucid_id).scalar_subquery()
        return and_(condition, targets[0].in_(ids))


class ManyToManySubQueryBuilder(PivotWhereMixin, SubQueryBuilder[R]):
    """``has("skills")`` / ``with_count("skills")``: the related table joined to the pivot,
    correlated to the parent through the pivot's foreign key."""

    def __init__(
        self, relation: ManyToMany[R], client: Client, outer: FromClause, alias: str | None
    ) -> None:
        self._rel: ManyToMany[R] = relation
        super().__init__(relation, client, outer, alias)

    def _relation_sources(self) -> None:
        rel = self._rel
        self.state.aliases[rel._pivot.name] = rel._pivot
        self.state.joins.append((rel._pivot, rel.related_join(self.own_column), "inner"))

    def _pivot_table(self) -> TableClause:
        return self._rel._pivot

    def pivot_columns(self, columns: Sequence[str]) -> Self:
        """Select pivot columns: ``User.query().select(User.skills.sub_query(client)
        .pivot_columns(["proficiency"]).where("name", "SQL").as_("sql_level"))``."""
        self.state.columns.extend(pivot_table_column(self._rel._pivot, c) for c in columns)
        return self

    def _constraint(self) -> ColumnElement[Any] | None:
        rel = self._rel
        if rel.composite:
            pairs = zip(rel.pivot_foreign_keys, rel.local_key_columns, strict=True)
            return and_(*[rel.pivot_column(p) == self.outer_column(c) for p, c in pairs])
        clause: ColumnElement[Any] = rel.pivot_column(rel.pivot_foreign_key) == self.outer_column(
            rel.local_key_column_name
        )
        return clause


class ManyToManyPivotQueryBuilder(PivotWhereMixin, DatabaseQueryBuilder):
    """``user.related("skills").pivot_query()``: this parent's pivot rows as dicts (pivot
    timestamps as datetimes). ``where`` and ``where_pivot`` both name pivot columns; a parent
    whose key is NULL has no pivot rows (nothing is read, updated or deleted)."""

    is_related_query = True
    is_related_sub_query = False
    is_related_preload_query = False
    is_pivot_only_query = True

    def __init__(self, relation: ManyToMany[Any], client: Client, parent: BaseModel) -> None:
        super().__init__(client)
        self.relation = relation
        self._parent_model = parent
        self.state.from_ = relation._pivot
        self.state.aliases[relation._pivot.name] = relation._pivot
        run_on_query(relation, self)

    def _pivot_table(self) -> TableClause:
        return self.relation._pivot

    def _unqualified(self, name: str) -> ColumnElement[Any]:
        return self.relation.pivot_column(name)

    def _where_clause(self) -> ColumnElement[Any] | None:
        rel = self.relation
        if rel.composite:
            parent, keys = self._parent_model, rel.local_keys
            row = tuple([key_value(rel, parent, k, "select") for k in keys])
            value = None if None in row else row
        else:
            value = key_value(rel, self._parent_model, rel.local_key, "select")
        constraint: ColumnElement[Any]
        if value is None:
            constraint = false()
        elif rel.composite:
            constraint = rel.pivot_keys_match(rel.pivot_foreign_keys, value)
        else:
            constraint = rel.pivot_column(rel.pivot_foreign_key) == value
        return constrained(constraint, super()._where_clause())

    async def exec(self) -> list[dict[str, Any]]:
        rows = await super().exec()
        # ``*`` carries no column types: read the pivot timestamps back as UTC datetimes.
        stamps = [s for s in self.relation.pivot_timestamps if rows and s in rows[0]]
        if stamps:
            read = UTCDateTime().process_result_value
            dialect = self.client.dialect
            for row in rows:
                for stamp in stamps:
                    row[stamp] = read(row[stamp], dialect)
        return rows


def _pivot_values(relation: ManyToMany[Any], values: Mapping[str, Any]) -> dict[Any, Any]:
    """``{pivot column: value}`` for INSERT/UPDATE (see ``column_value``: keys and timestamps
    are typed)."""
    out: dict[Any, Any] = {}
    for key, value in values.items():
        col = relation.pivot_column(check_identifier(key).rpartition(".")[2])
        out[col] = column_value(col, value)
    return out


def _check_id(value: Any, relation: ManyToMany[Any]) -> Any:
    if relation.related_composite:
        return _check_composite_id(value, relation)
    if isinstance(value, bool) or not isinstance(value, int | str | uuid.UUID):
        raise LucidError(
            f'"{relation.model.__name__}.{relation.relation_name}" expects related ids '
            f"(int, str or UUID), got {value!r}",
            code="E_INVALID_ARGUMENT",
        )
    # Ids from a form or a URL arrive as text: bind them as the related key's type, so that
    # "1" and 1 are one id (sync/save compare them) and PostgreSQL accepts the value.
    expected = relation._related_id_type
    if expected is int and isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            raise LucidError(
                f'"{relation.model.__name__}.{relation.relation_name}" expects integer related '
                f"ids, got {value!r}",
                code="E_INVALID_ARGUMENT",
            ) from None
    if expected is str and isinstance(value, int):
        return str(value)
    return value


def _check_composite_id(value: Any, relation: ManyToMany[Any]) -> tuple[Any, ...]:
    """A related id of a composite related key: a tuple of one value per component, each
    exactly of its column's type (``E_INVALID_ARGUMENT``)."""
    names = relation.related_keys
    where = f'"{relation.model.__name__}.{relation.relation_name}" related key {names!r}'
    if not isinstance(value, tuple) or len(value) != len(names):
        raise LucidError(
            f"{where} expects tuples of {len(names)} values ({', '.join(names)}), got {value!r}",
            code="E_INVALID_ARGUMENT",
        )
    related = relation.related_model()
    for name, component in zip(names, value, strict=True):
        check_component(related, name, component, where)
    return value


def _normalise_ids(ids: Any, relation: ManyToMany[Any]) -> dict[Any, dict[str, Any]]:
    """``[1, 2]`` or ``{1: {"role": "x"}}`` → ``{id: pivot_values}`` (duplicates merged)."""
    if isinstance(ids, Mapping):
        out: dict[Any, dict[str, Any]] = {}
        for key, values in ids.items():
            if values is None:
                values = {}
            if not isinstance(values, Mapping):
                raise LucidError(
                    f"Pivot values for id {key!r} must be a dict, got {values!r}",
                    code="E_INVALID_ARGUMENT",
                )
            for col in values:
                check_identifier(col)
            out[_check_id(key, relation)] = dict(values)
        return out
    if isinstance(ids, str | bytes) or not isinstance(ids, Sequence | set | frozenset):
        raise LucidError(
            f"Expected a list of ids or a dict of id -> pivot values, got {ids!r}",
            code="E_INVALID_ARGUMENT",
        )
    return {_check_id(i, relation): {} for i in ids}


class ManyToManyQueryClient(RelationQueryClient[P, "ManyToMany[R]"], Generic[P, R]):
    """``user.related("skills")``: the related query, the pivot query and the writes
    (``attach``, ``detach``, ``sync``, ``save``, ``create`` and their many-forms). Writes run in
    one transaction (a savepoint inside ``client=`` or the parent's ``trx``); ``on_query`` is
    never applied to them."""

    def query(self) -> ManyToManyQueryBuilder[R]:
        """The related rows of this parent, with their pivot values in ``extras``."""
        return ManyToManyQueryBuilder(self.relation, resolve(self), parent=self.parent)

    def pivot_query(self) -> ManyToManyPivotQueryBuilder:
        """This parent's pivot rows, as plain dicts."""
        return ManyToManyPivotQueryBuilder(self.relation, resolve(self), self.parent)

    def _parent_value(self) -> Any:
        rel = self.relation
        if rel.composite:
            d = self.parent.__dict__
            row = tuple([d.get(k) for k in rel.local_keys])
            if None in row:
                missing = rel.local_keys[row.index(None)]
                raise LucidError(
                    f'Cannot persist "{rel.relation_name}", value of '
                    f'"{type(self.parent).__name__}.{missing}" is undefined',
                    code="E_MISSING_MODEL_ATTRIBUTE",
                )
            return row
        value = self.parent.__dict__.get(rel.local_key)
        if value is None:  # absent or NULL: the same error
            raise LucidError(
                f'Cannot persist "{rel.relation_name}", value of '
                f'"{type(self.parent).__name__}.{rel.local_key}" is undefined',
                code="E_MISSING_MODEL_ATTRIBUTE",
            )
        return value

    def _stamps(self, creating: bool) -> dict[str, Any]:
        rel = self.relation
        now = _dt.datetime.now(_dt.UTC)
        out: dict[str, Any] = {}
        if creating and rel.pivot_created_at:
            out[rel.pivot_created_at] = now
        if rel.pivot_updated_at:
            out[rel.pivot_updated_at] = now
        return out

    async def _insert_pivot(self, trx: Client, rows: dict[Any, dict[str, Any]]) -> None:
        if not rows:
            return
        rel = self.relation
        parent_value = self._parent_value()
        stamps = self._stamps(True)
        if rel.composite or rel.related_composite:
            owner = (
                dict(zip(rel.pivot_foreign_keys, parent_value, strict=True))
                if rel.composite
                else {rel.pivot_foreign_key: parent_value}
            )
            fks = rel.pivot_related_foreign_keys
            payload = [
                {
                    **owner,
                    **(
                        dict(zip(fks, related_id, strict=True))
                        if rel.related_composite
                        else {rel.pivot_related_foreign_key: related_id}
                    ),
                    **stamps,
                    **values,
                }
                for related_id, values in rows.items()
            ]
        else:
            payload = [
                {
                    rel.pivot_foreign_key: parent_value,
                    rel.pivot_related_foreign_key: related_id,
                    **stamps,
                    **values,
                }
                for related_id, values in rows.items()
            ]
        # One statement per run of rows with the same columns (a multi-row VALUES needs one
        # shape); runs keep the rows in the order given.
        shapes: list[tuple[str, ...]] = []
        groups: list[list[dict[str, Any]]] = []
        for row in payload:
            shape = tuple(row)
            if shapes and shapes[-1] == shape:
                groups[-1].append(row)
            else:
                shapes.append(shape)
                groups.append([row])
        for group in groups:
            values = [_pivot_values(rel, r) for r in group]
            if len(values) == 1:
                stmt = insert(rel._pivot).values(values[0])
                await trx.execute(stmt, write=True, model=rel.model.__name__)
                continue
            # Many rows: executemany, which SQLAlchemy sends as multi-row batches that each
            # stay under the driver's parameter limit (one VALUES list would not, from some
            # 16,000 rows on PostgreSQL), all inside ``trx``.
            params = [{col.key: value for col, value in row.items()} for row in values]
            await trx.execute(
                insert(rel._pivot), write=True, model=rel.model.__name__, params=params
            )

    async def attach(self, ids: Any, *, client: Client | None = None) -> None:
        """Insert pivot rows for ``ids`` (a list, or ``{id: {pivot column: value}}``)."""
        rows = _normalise_ids(ids, self.relation)
        self._parent_value()
        async with managed(self, client) as trx:
            await self._insert_pivot(trx, rows)

    async def detach(self, ids: Any = None, *, client: Client | None = None) -> int:
        """Delete this parent's pivot rows (only those of ``ids`` when given); returns the
        number removed. Related rows are never deleted."""
        rel = self.relation
        targets = None if ids is None else list(_normalise_ids(ids, rel))
        parent_value = self._parent_value()
        async with managed(self, client) as trx:
            stmt = delete(rel._pivot).where(rel.pivot_owner(parent_value))
            if targets is not None:
                if not targets:
                    return 0
                stmt = stmt.where(rel.related_ids_in(targets, trx.dialect))
            result = await trx.execute(stmt, write=True, model=rel.model.__name__)
            return result.rowcount

    async def sync(self, ids: Any, detach: bool = True, *, client: Client | None = None) -> None:
        """Make this parent's pivot rows match ``ids``: insert the missing, update changed pivot
        values, and (unless ``detach=False``) remove the others."""
        rel = self.relation
        wanted = _normalise_ids(ids, rel)
        parent_value = self._parent_value()
        owned = rel.pivot_owner(parent_value)
        related_fks = [
            rel.pivot_column(c)
            for c in (
                rel.pivot_related_foreign_keys
                if rel.related_composite
                else (rel.pivot_related_foreign_key,)
            )
        ]
        width = len(related_fks)
        # By text: a UUID key reads back as uuid.UUID, may be given as str.
        text_of: Callable[[Any], Any] = (
            (lambda key: tuple(str(k) for k in key)) if rel.related_composite else str
        )
        value_columns = sorted({c for values in wanted.values() for c in values})
        async with managed(self, client) as trx:
            if not wanted:
                if detach:  # sync([]): every row of the parent goes, in one statement
                    stmt_all = delete(rel._pivot).where(owned)
                    await trx.execute(stmt_all, write=True, model=rel.model.__name__)
                return
            # Read the parent's pivot rows (all of them when detaching, as Lucid does, so that
            # a sync that changes nothing writes nothing; else only the wanted ids).
            select_cols = [*related_fks, *[rel.pivot_column(c) for c in value_columns]]
            stmt = select(*select_cols).where(owned)
            if not detach:
                stmt = stmt.where(rel.related_ids_in(list(wanted), trx.dialect))
            result = await trx.execute(stmt, write=False, model=rel.model.__name__)
            wanted_text = {text_of(k) for k in wanted}
            existing: dict[Any, dict[str, Any]] = {}
            stale: dict[Any, Any] = {}
            for row in result.rows:
                key = tuple(row[:width]) if width > 1 else row[0]
                text = text_of(key)
                if text in wanted_text:
                    existing[text] = dict(zip(value_columns, row[width:], strict=True))
                else:
                    stale[text] = key
            added = {k: v for k, v in wanted.items() if text_of(k) not in existing}
            await self._insert_pivot(trx, added)
            # Changed pivot values: one UPDATE per distinct set of new values, for all the ids
            # that take it (a sync of 100,000 ids to one role is one statement).
            changes: dict[Any, tuple[dict[str, Any], list[Any]]] = {}
            for related_id, values in wanted.items():
                current = existing.get(text_of(related_id))
                if current is None or not values:
                    continue
                if all(current.get(k) == v for k, v in values.items()):
                    continue
                try:
                    shape: Any = tuple(sorted(values.items()))
                    hash(shape)
                except TypeError:  # an unhashable value (a JSON pivot column): on its own
                    shape = object()
                changes.setdefault(shape, (values, []))[1].append(related_id)
            for values, ids in changes.values():
                stmt_u = (
                    update(rel._pivot)
                    .values(_pivot_values(rel, {**self._stamps(False), **values}))
                    .where(owned, rel.related_ids_in(ids, trx.dialect))
                )
                await trx.execute(stmt_u, write=True, model=rel.model.__name__)
            if detach and stale:
                stmt_d = delete(rel._pivot).where(
                    owned, rel.related_ids_in(list(stale.values()), trx.dialect)
                )
                await trx.execute(stmt_d, write=True, model=rel.model.__name__)

    def _related_id(self, related: BaseModel) -> Any:
        rel = self.relation
        if rel.related_composite:
            d = related.__dict__
            row = tuple([d.get(k) for k in rel.related_keys])
            if None in row:
                raise LucidError(
                    f'Cannot persist "{rel.relation_name}", value of '
                    f'"{type(related).__name__}.{rel.related_keys[row.index(None)]}" is undefined',
                    code="E_MISSING_MODEL_ATTRIBUTE",
                )
            return row
        value = related.__dict__.get(rel.related_key)
        if value is None:
            raise LucidError(
                f'Cannot persist "{rel.relation_name}", value of '
                f'"{type(related).__name__}.{rel.related_key}" is undefined',
                code="E_MISSING_MODEL_ATTRIBUTE",
            )
        return value

    async def save(
        self,
        related: R,
        check_existing: bool = True,
        pivot_attributes: Mapping[str, Any] | None = None,
        *,
        client: Client | None = None,
    ) -> R:
        """Save the parent and ``related``, then link them (skipping an existing link when
        ``check_existing``; updating its pivot attributes if they changed)."""
        await self.save_many(
            [related],
            check_existing,
            [pivot_attributes or {}] if pivot_attributes is not None else None,
            client=client,
        )
        return related

    async def save_many(
        self,
        related: Sequence[R],
        check_existing: bool = True,
        pivot_attributes: Sequence[Mapping[str, Any]] | None = None,
        *,
        client: Client | None = None,
    ) -> list[R]:
        """``save`` for several related instances in one transaction; ``pivot_attributes`` is
        a list with one mapping per instance."""
        rel = self.relation
        items = list(related)
        for item in items:
            check_related(rel, item)
        attrs = list(pivot_attributes) if pivot_attributes is not None else [{}] * len(items)
        if len(attrs) != len(items):
            raise LucidError(
                "pivot_attributes must have one mapping per related instance",
                code="E_INVALID_ARGUMENT",
            )
        async with managed(self, client, items) as trx:
            await self.parent.save(client=trx)
            for item in items:
                await item.save(client=trx)
            rows = {self._related_id(item): dict(a) for item, a in zip(items, attrs, strict=True)}
            if check_existing:
                await self.sync(rows, detach=False, client=trx)
            else:
                await self._insert_pivot(trx, rows)
        return items

    async def create(
        self,
        values: Mapping[str, Any],
        pivot_attributes: Mapping[str, Any] | None = None,
        *,
        client: Client | None = None,
    ) -> R:
        """Create a related row and link it to the parent."""
        created = await self.create_many(
            [values],
            [pivot_attributes] if pivot_attributes is not None else None,
            client=client,
        )
        return created[0]

    async def create_many(
        self,
        values: Sequence[Mapping[str, Any]],
        pivot_attributes: Sequence[Mapping[str, Any]] | None = None,
        *,
        client: Client | None = None,
    ) -> list[R]:
        """Create several related rows (one multi-row insert when they share their columns)
        and link them, in one transaction."""
        rows = as_mapping_list(values, "create_many")
        attrs = list(pivot_attributes) if pivot_attributes is not None else [{}] * len(rows)
        if len(attrs) != len(rows):
            raise LucidError(
                "pivot_attributes must have one mapping per row", code="E_INVALID_ARGUMENT"
            )
        if not rows:
            return []
        model = self.relation.related_model()
        instances = new_many(model, rows)  # a bad row fails before anything is written
        # Its BEGIN may run on the driver while the rows are prepared (``implicit``).
        async with managed(self, client, instances, pipelined=True) as trx:
            await self.parent.save(client=trx)
            # The model's bulk insert inside this transaction: one multi-row INSERT, then the
            # pivot rows.
            await insert_many(model, instances, trx)
            pivot_rows = {
                self._related_id(item): dict(a) for item, a in zip(instances, attrs, strict=True)
            }
            await self._insert_pivot(trx, pivot_rows)
        return instances


def many_to_many(
    related: Callable[[], builtins.type[R]],
    *,
    init: Literal[False] = False,
    **options: Unpack[ManyToManyOptions],
) -> ManyToMany[R]:
    """Declare a many_to_many relation: ``skills: ManyToMany[Skill] = many_to_many(lambda:
    Skill, pivot_columns=["proficiency"], pivot_timestamps=True)``; the options are
    ``ManyToMany``'s."""
    return ManyToMany(related, **options)


# The roles of the kind, built by Relation's template methods.
ManyToMany.query_builder_class = ManyToManyQueryBuilder
ManyToMany.sub_query_builder_class = ManyToManySubQueryBuilder
ManyToMany.query_client_class = ManyToManyQueryClient
