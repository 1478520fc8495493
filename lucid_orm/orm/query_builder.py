"""``ModelQueryBuilder``: the chainable builder bound to a model — returns instances, runs
fetch/find/paginate hooks, scopes, ``pojo()``, ``sideload()``, row locks and pagination."""

from __future__ import annotations

import datetime as _dt
from collections.abc import (
    AsyncGenerator,
    Awaitable,
    Callable,
    Generator,
    Hashable,
    Mapping,
    Sequence,
)
from operator import attrgetter
from typing import TYPE_CHECKING, Any, Generic, Self, TypeAlias, TypeVar, overload

from sqlalchemy import Select, and_, exists, not_
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.elements import ColumnClause
from sqlalchemy.sql.schema import Column

from ..errors import LucidError, ModelNotFoundError, runtime_error
from ..query.chainable import (
    Chainable,
    ColumnReference,
    check_page,
    compare,
    compile_select,
    correlated,
    run_callback,
    written_conditions,
)
from ..query.cursor import paginate_by_cursor
from ..query.paginator import SimplePaginator
from ..query.shape import COUNT_TOTAL, Shape, columns_shape, condition_shape, order_shape
from ..query.state import BuilderState, fold
from .hooks import GlobalScopeFn, ScopesProxy, run_hooks
from .hydration import hydrate
from .model_info import SOFT_DELETES, info_of, relation_key
from .preloader import Preloader
from .state import extras_of, set_sideloaded

if TYPE_CHECKING:
    from ..database.query_client import Client
    from ..database.result import ExecResult
    from ..query.cursor import CursorPaginator, OrderKey
    from .base_model import BaseModel
    from .columns import ColumnDef
    from .relations.base import (
        ManyRelation,
        OneRelation,
        Relation,
        RelationQueryBuilder,
        SubQueryBuilder,
    )
    from .relations.has_many import HasManyQueryBuilder
    from .relations.many_to_many import (
        ManyToMany,
        ManyToManyQueryBuilder,
        ManyToManySubQueryBuilder,
    )
    from .relations.morph_to import MorphTo

M = TypeVar("M", bound="BaseModel")
R = TypeVar("R", bound="BaseModel")

#: A relation as the relation-naming methods take it: its name or its attribute (``Post.author``).
RelationRef: TypeAlias = "str | Relation[Any]"
# A callback given with a relation's name: its query's kind is not known statically. With the
# attribute, the overloads below type it: many_to_many's queries have the where_pivot family,
# many-relations' preload queries group_limit.
_Callback: TypeAlias = "Callable[[Any], Any]"
_PerType: TypeAlias = "Callable[[Any], Any] | Mapping[Any, Callable[[Any], Any]]"

# The models a ``where_has_morph`` names: classes or morph aliases, one or a list.
MorphTypes: TypeAlias = "type[BaseModel] | str | Sequence[type[BaseModel] | str]"


class ModelQueryBuilder(Chainable, Generic[M]):
    """``Model.query()``: awaiting it returns a list of model instances.

    Column arguments are database column names (``where("user_id", 1)``)."""

    # Where the query comes from (Lucid's ``isRelatedQuery`` & co.); relation builders set
    # them, so a scope or hook can test them on any model query.
    is_related_query: bool = False
    is_related_preload_query: bool = False
    is_related_sub_query: bool = False
    is_pivot_only_query: bool = False

    # Defaults of the options below, on the class: each is replaced, never mutated, so an
    # instance (and its clones, which share its ``__dict__``'s values) reads the class's until
    # it sets its own. Fewer stores in ``__init__``, which every ``Model.query()`` runs.
    _pojo = False
    _sideloaded: dict[str, Any] | None = None
    _lock: str | None = None
    _lock_options: Mapping[str, bool] = {}
    _preloader: Preloader | None = None
    # The global scopes lifted (``without_global_scopes``): names, or True for all.
    _without_scopes: frozenset[str] | bool = frozenset()
    _force_delete = False
    # The shapes of selected aggregate subqueries (``with_count``): ``(label, key, binds)`` per
    # column whose SQL is known from its key (``_statement_shape``).
    _column_shapes: tuple[tuple[Any, Hashable, list[Any]], ...] = ()
    # The same for conditions: ``(clause, key, binds)`` per ``has``/``where_has`` EXISTS whose
    # SQL is known from its key (``_exists_shape``), read by ``condition_shape``.
    _clause_shapes: tuple[tuple[Any, Hashable, list[Any]], ...] = ()

    def __init__(self, model: type[M], client: Client) -> None:
        info = model._lucid
        if not info.types_resolved or info.abstract:
            info = info_of(model)
        table = info.table
        assert table is not None
        aliases: dict[str, Any] = {info.table_name: table}
        if table.schema is not None:
            aliases[table.name] = table  # "users.id" names "public.users" too
        # ``Chainable.__init__``'s state, made here with its FROM and aliases in place.
        self.client = client
        self.state = BuilderState(
            table,
            aliases,
            {},
            None,
            [],
            [],
            [],
            [],
            [],
            [],
            [],
            None,
            None,
            False,
            None,
            None,
            False,
        )
        self.model = model
        self._info = info

    # -- columns -------------------------------------------------------------------------------
    def _unqualified(self, name: str) -> ColumnElement[Any]:
        found = self._info.column_for_db(name)
        return found if found is not None else ColumnClause(name)

    def _reference(self, ref: ColumnReference) -> ColumnElement[Any]:
        # A column of this model (or of a base it inherits the column from) is its own: read
        # unqualified, as a column name is (a self-relation subquery's alias, a relation
        # query's related table). Another model's is qualified with its table.
        owner = ref.owner
        if ref.table_name == self._info.table_name or (
            isinstance(owner, type) and issubclass(self.model, owner)
        ):
            return self._unqualified(ref.column_name)
        return super()._reference(ref)

    def _default_columns(self) -> list[ColumnElement[Any]]:
        return list(self._info.select_columns)

    def select(self, *columns: Any) -> Self:
        """As ``Chainable.select``; ``"*"`` and ``"<table>.*"`` expand to the model's columns."""
        star = f"{self._info.table_name}.*"
        for item in columns:
            if item == "*" or item == star:
                self.state.columns.extend(self._info.select_columns)
            else:
                super().select(item)
        return self

    def _model_name(self) -> str | None:
        return self.model.__name__

    # -- locks ---------------------------------------------------------------------------------
    def for_update(self, *, skip_locked: bool = False, no_wait: bool = False) -> Self:
        """``SELECT … FOR UPDATE``. SQLite has no row locks: there every transaction begins
        ``IMMEDIATE`` and holds the database's write lock, which gives the same guarantee."""
        self._lock = "update"
        self._lock_options = {"skip_locked": skip_locked, "nowait": no_wait}
        return self

    def for_share(self, *, skip_locked: bool = False, no_wait: bool = False) -> Self:
        """``SELECT … FOR SHARE`` (``LOCK IN SHARE MODE`` on MySQL)."""
        self._lock = "share"
        self._lock_options = {"skip_locked": skip_locked, "nowait": no_wait}
        return self

    def _finish(self, stmt: Select[Any]) -> Select[Any]:
        # Chainable._finish returns ``stmt`` as is: not chained, on every model query compiled.
        if self._lock is not None:
            return row_locked(self, stmt)
        return stmt

    # -- global scopes and soft deletes --------------------------------------------------------
    def without_global_scopes(self, *names: str) -> Self:
        """Lift the model's global scopes ``names`` for this query (all of them, soft deletes
        included, when none is named): ``Post.query().without_global_scopes("tenant")``.
        Scopes apply when the query compiles, so this works anywhere in the chain."""
        if not names:
            self._without_scopes = True
        elif self._without_scopes is not True:
            assert isinstance(self._without_scopes, frozenset)
            self._without_scopes = self._without_scopes | frozenset(names)
        return self

    def with_trashed(self) -> Self:
        """Include soft-deleted rows (lifts the ``soft_deletes`` global scope)."""
        return self.without_global_scopes(SOFT_DELETES)

    def only_trashed(self) -> Self:
        """Only soft-deleted rows."""
        name = self._soft_delete_column("only_trashed")
        self.with_trashed()
        # Grouped apart from the user's wheres: a later or_where can't OR around it.
        with self.scoped():
            self.where_not_null(name)
        return self

    def _soft_delete_column(self, method: str) -> str:
        attribute = self._info.soft_delete
        if attribute is None:
            raise LucidError(
                f'Cannot {method}(): "{self.model.__name__}" does not soft-delete '
                "(declare it with soft_deletes=True)",
                code="E_RUNTIME_EXCEPTION",
            )
        return self._info.columns[attribute].column_name

    def _intermediate_models(self) -> Sequence[type[BaseModel]]:
        """Hook: models whose tables this query joins besides its own (the intermediates of a
        through relation): their global scopes apply too."""
        return ()

    def _global_scope_clause(self) -> ColumnElement[Any] | None:
        """The conditions of the global scopes not lifted, as one group: each scope runs on a
        group of this query (its tables, no conditions), an intermediate model's on a query of
        that model. Compiled fresh each time, so a scope may read a contextvar."""
        without = self._without_scopes
        if without is True:
            return None
        assert isinstance(without, frozenset)
        parts: list[ColumnElement[Any]] = []
        scopes = self._info.global_scopes
        if scopes:
            found = _run_scopes(self._scope_group(), scopes, without)
            if found is not None:
                parts.append(found)
        for model in self._intermediate_models():
            through = info_of(model).global_scopes
            if through:
                found = _run_scopes(ModelQueryBuilder(model, self.client), through, without)
                if found is not None:
                    parts.append(found)
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else and_(*parts)

    def _scope_group(self) -> Self:
        """A copy of this builder with no conditions, for the scopes to write to: ``_group()``
        made with the state's positional ``clone()`` (``group()``'s dataclass ``replace`` costs
        more than the rest of a scope, on every query compiled)."""
        group = self.__class__.__new__(self.__class__)
        group.__dict__.update(self.__dict__)
        state = self.state.clone()
        state.wheres = []
        state.havings = []
        group.state = state
        return group

    def _where_clause(self) -> ColumnElement[Any] | None:
        # The global scopes AND-ed around the user's conditions: an or_where can't escape them.
        where = super()._where_clause()
        scoped = self._global_scope_clause()
        if scoped is None:
            return where
        if where is None:
            return scoped
        return and_(scoped, where.self_group())

    async def delete(self) -> int:
        """Delete matching rows; on a soft-deleting model stamp their ``deleted_at`` instead
        (``force_delete()`` removes them). Returns the number of rows."""
        attribute = self._info.soft_delete
        # A many_to_many related query deletes pivot rows (a detach), never the related rows.
        if (
            attribute is None
            or self._force_delete
            or self._dml_table("delete") is not self._info.table
        ):
            return await super().delete()
        return await self.update(self._trash_values(trash=True))

    def _trash_values(self, *, trash: bool) -> dict[str, Any]:
        """The columns a bulk soft delete (``trash``) or restore writes: the soft-delete stamp
        and the ``auto_update`` timestamps, as an instance's delete and restore do."""
        info = self._info
        assert info.soft_delete is not None
        now = _dt.datetime.now(_dt.UTC)
        stamp = info.columns[info.soft_delete].column_name
        values: dict[str, Any] = {stamp: now if trash else None}
        for name, col in info.timestamps:
            if col.auto_update and name != info.soft_delete:
                values[col.column_name] = now if col.kind == "datetime" else now.date()
        return values

    del_ = delete

    async def force_delete(self) -> int:
        """Delete matching rows for good, soft-deleted ones included (the other global scopes
        still apply)."""
        copy = self.clone()
        copy._force_delete = True
        if copy._info.soft_delete is not None:
            copy.with_trashed()
        return await copy.delete()

    async def restore(self) -> int:
        """Clear ``deleted_at`` on the matching trashed rows (no hooks: a bulk write)."""
        self._soft_delete_column("restore")
        copy = self.clone().only_trashed()
        return await copy.update(self._trash_values(trash=False))

    # -- scopes, pojo, sideload ----------------------------------------------------------------
    def with_scopes(self, callback: Callable[[Any], Any]) -> Self:
        """Apply ``@scope`` functions: ``with_scopes(lambda s: s.published().by(user))``."""
        run_callback(callback, "with_scopes", ScopesProxy(self, self._info.scopes))
        return self

    apply = with_scopes

    def pojo(self) -> Self:
        """Return plain dicts instead of model instances."""
        self._pojo = True
        return self

    def sideload(self, values: Mapping[str, Any]) -> Self:
        """Hand ``values`` to every returned instance as ``instance.sideloaded``."""
        self._sideloaded = dict(values)
        return self

    # -- execution -----------------------------------------------------------------------------
    async def _rows(self) -> Any:
        result = await self._read()
        if self._pojo:
            return result.dicts()
        models = self._hydrated(result)
        if self._preloader is not None:  # (``_after_hydrate``'s test, without its coroutine)
            await self._after_hydrate(models)
        return models

    def _hydrated(self, result: ExecResult) -> list[M]:
        """The instances of ``result``'s rows, sideloaded (``_rows`` without its preloads)."""
        # (No SELECT list of the user's: nothing but the model's columns, no call to say so.)
        lazy = not self.state.columns or self._extras_are_keys()
        models = hydrate(self.model, result.keys, result.rows, self.client, lazy)
        if self._sideloaded is not None:
            for m in models:
                set_sideloaded(m, dict(self._sideloaded))
        return models

    def _extras_are_keys(self) -> bool:
        """Whether the extras of this query's rows, if any, are only the keys a relation
        builder adds to the SELECT list for its own use (``_select_list``: the pivot or through
        columns a preload groups by): the query's own list (``state.columns``, what the user
        selected: ``with_count`` and ``with_aggregate`` subqueries, raw or computed columns,
        another table's) holds nothing but this model's table columns. ``hydrate`` keeps
        such extras lazily (``lazy_extras``); the user's are read on every row."""
        table = self._info.table
        for column in self.state.columns:
            if type(column) is not Column or column.table is not table:
                return False
        return True

    def _read(self) -> Awaitable[ExecResult]:
        """Run this query's SELECT: by its shape when it has one and the lean path is open
        (``query/shape.py``), else built and run as usual (its slow twin). Returns the
        coroutine that reads (no frame of its own around it)."""
        client = self.client
        model = self.model.__name__
        shape = self._statement_shape()
        if shape is None:
            return client.execute(self.to_core(), write=False, model=model)
        where = shape.where

        def build() -> Select[Any]:
            # Around the WHERE the shape was read from: the global scopes ran once.
            return self._finish(compile_select(self, where=where))

        read_shaped = getattr(client, "read_shaped", None)
        if read_shaped is None:
            return client.execute(build(), write=False, model=model)
        found: Awaitable[ExecResult] = read_shaped(shape, build, model)
        return found

    def _statement_shape(self) -> Shape | None:
        """This query's shape (``query/shape.py``), or ``None``: a builder of a subclass (a
        relation's: its hooks add to the statement), a part the shape can't read, or a
        client whose reads can't take the lean path (a transaction, fast paths off)."""
        if type(self) is not ModelQueryBuilder:
            return None
        lean = getattr(self.client, "lean_reads", None)
        if lean is None or not lean():
            return None
        state = self.state
        info = self._info
        if (
            state.from_ is not info.table
            or state.joins
            or state.group_by
            or state.havings
            or state.early_refs
            or state.ctes
            or state.parent is not None
        ):
            return None
        binds: list[Any] = []
        if state.columns:
            selected = state.columns
            columns = columns_shape(selected)
        else:
            # The model's own columns: the same shape on every query, taken once per table.
            selected = info.select_columns
            columns = info.select_shape
        if columns is None:
            columns = self._aggregate_columns_shape(selected, binds)
            if columns is None:
                return None
        order_by = state.order_by
        order = order_shape(order_by) if order_by else ()
        if order is None:
            return None
        # ``_where_clause()``, which for this class (a subclass has no shape) without global
        # scopes is the written conditions: those, without the three calls to find no scope.
        where = self._where_clause() if info.global_scopes else written_conditions(self)
        if where is None:
            condition: Any = ()
        else:
            condition = condition_shape(where, binds, self._clause_shapes)
            if condition is None:
                return None
        lock: Any = None
        if self._lock is not None:
            lock = (self._lock, *sorted(self._lock_options.items()))
        key = (
            "model",
            id(info.table),
            columns,
            condition,
            order,
            state.limit is not None,
            state.offset is not None,
            state.distinct,
            lock,
            self.client.dialect_name,
        )
        return Shape(key, binds, state.limit, state.offset, where)

    def _aggregate_columns_shape(self, columns: list[Any], binds: list[Any]) -> Hashable | None:
        """The shape of a SELECT list of table columns and ``with_count`` subqueries whose
        shape was taken when they were made (``_count_shape``), their parameters appended to
        ``binds``; ``None`` for anything else."""
        known = self._column_shapes
        if not known:
            return None
        parts: list[Hashable] = []
        for column in columns:
            if type(column) is Column and column.table is not None:
                parts.append(id(column))
                continue
            for label, key, sub_binds in known:
                if label is column:
                    parts.append(key)
                    binds.extend(sub_binds)
                    break
            else:
                return None
        return tuple(parts)

    def _count_shape(
        self, relation: Any, sub: Any, stmt: Select[Any]
    ) -> tuple[Hashable, list[Any]] | None:
        """The shape of ``with_count(relation)`` without callback, as the correlated
        ``count(*)`` of ``stmt`` (``sub`` compiled): the relation and its subquery builder
        class make the SQL around the condition, which is read as a WHERE is
        (``condition_shape``). ``None`` when anything else could change the SQL: an
        ``on_query``, composite keys, an aliased (self) relation, global scopes or soft
        deletes of the related model, or a subquery builder that joined or added parts."""
        if relation.on_query is not None or relation.composite:
            return None
        info = info_of(relation.related_model())
        state = sub.state
        if (
            info.global_scopes
            or info.soft_delete is not None
            or sub._target is not sub._table
            or state.from_ is not info.table
            or state.wheres
            or state.scoped
            or len(state.columns) != 1
            or _adds_parts(state)
        ):
            return None
        found = _where_shape(stmt)
        if found is None:
            return None
        condition, sub_binds = found
        # The relation itself (not its id): the key keeps it, so no other relation takes its id.
        return ("count", relation, type(sub), state.alias, condition), sub_binds

    async def count_rows(self) -> int:
        """The number of rows this query matches (respects distinct and group_by)."""
        state = self.state
        if (
            type(self) is not ModelQueryBuilder
            or state.distinct
            or state.group_by
            or state.havings
            or state.has_aggregates
        ):
            return await super().count_rows()
        # ``_count_statement``'s plain form, run by shape when it has one.
        base = self.clone()
        base_state = base.state
        base_state.order_by = []
        base_state.limit = None
        base_state.offset = None
        base_state.columns = [COUNT_TOTAL]
        result = await base._read()
        return int((result.rows[0][0] if result.rows else None) or 0)

    async def _after_hydrate(self, models: list[M]) -> None:
        if self._preloader is not None and models:
            await self._preloader.start(models, self.client, self._sideloaded)

    def clone(self) -> Self:
        copy = super().clone()
        if self._preloader is not None:
            copy._preloader = self._preloader.copy()
        return copy

    # -- relationships -------------------------------------------------------------------------
    @overload
    def preload(
        self,
        relation: ManyToMany[R],
        callback: Callable[[ManyToManyQueryBuilder[R]], object] | None = None,
    ) -> Self: ...
    @overload
    def preload(
        self,
        relation: ManyRelation[R],
        callback: Callable[[HasManyQueryBuilder[R]], object] | None = None,
    ) -> Self: ...
    @overload
    def preload(self, relation: MorphTo[R], callback: _PerType | None = None) -> Self: ...
    @overload
    def preload(
        self,
        relation: OneRelation[R],
        callback: Callable[[RelationQueryBuilder[R]], object] | None = None,
    ) -> Self: ...
    @overload
    def preload(self, relation: str, callback: _PerType | None = None) -> Self: ...

    def preload(self, relation: RelationRef, callback: _PerType | None = None) -> Self:
        """Eager-load a relation (one query per relation and level, whatever the number of
        rows): ``preload("author")``, ``preload("posts", lambda q: q.where(...))``,
        ``preload("posts.comments")``, or with the relation attribute: ``preload(Post.author)``.
        The callback runs when the relation's query is built; a morph_to takes one per model
        too: ``preload("commentable", {Post: callback})``."""
        if self._preloader is None:
            self._preloader = Preloader(self.model)
        self._preloader.add(relation, callback)
        return self

    def _sub_query(self, name: str, callback: Callable[[Any], Any] | None, method: str) -> Any:
        relation = self.model.get_relation(name)  # a name: callers resolve attributes
        relation.boot()
        sub = relation.sub_query(self.client, self.state.from_)
        sub.state.parent = self
        if callback is not None:
            run_callback(callback, method, sub)
        return sub

    def _has(
        self,
        name: RelationRef,
        callback: Callable[[Any], Any] | None,
        operator: str | None,
        value: Any,
        is_or: bool,
        negate: bool,
        method: str,
    ) -> Self:
        sub = self._sub_query(relation_key(self.model, name), callback, method)
        clause: Any
        if operator is None:
            stmt = correlated(sub)
            clause = exists(stmt)
            if negate:
                clause = not_(clause)
            found = _exists_shape(sub, stmt, negate)
            if found is not None:
                key, sub_binds = found
                self._clause_shapes = (*self._clause_shapes, (clause, key, sub_binds))
        else:
            if value is None:
                raise LucidError(f"{method}() with an operator needs a value to compare with")
            clause = compare(self, sub.aggregate_select().scalar_subquery(), operator, value)
            if negate:
                clause = not_(clause)
        self.state.add_where(is_or, clause)
        return self

    def has(self, relation: RelationRef, operator: str | None = None, value: Any = None) -> Self:
        """Rows that have related rows (``EXISTS``), or whose related count compares:
        ``has("comments", ">", 2)``."""
        return self._has(relation, None, operator, value, False, False, "has")

    and_has = has

    def or_has(self, relation: RelationRef, operator: str | None = None, value: Any = None) -> Self:
        return self._has(relation, None, operator, value, True, False, "or_has")

    def doesnt_have(
        self, relation: RelationRef, operator: str | None = None, value: Any = None
    ) -> Self:
        """Rows without related rows (``NOT EXISTS``), or ``NOT (count op value)``."""
        return self._has(relation, None, operator, value, False, True, "doesnt_have")

    and_doesnt_have = doesnt_have

    def or_doesnt_have(
        self, relation: RelationRef, operator: str | None = None, value: Any = None
    ) -> Self:
        return self._has(relation, None, operator, value, True, True, "or_doesnt_have")

    @overload
    def where_has(
        self,
        relation: ManyToMany[R],
        callback: Callable[[ManyToManySubQueryBuilder[R]], object] | None = None,
        operator: str | None = None,
        value: Any = None,
    ) -> Self: ...
    @overload
    def where_has(
        self,
        relation: Relation[R],
        callback: Callable[[SubQueryBuilder[R]], object] | None = None,
        operator: str | None = None,
        value: Any = None,
    ) -> Self: ...
    @overload
    def where_has(
        self,
        relation: str,
        callback: _Callback | None = None,
        operator: str | None = None,
        value: Any = None,
    ) -> Self: ...

    def where_has(
        self,
        relation: RelationRef,
        callback: _Callback | None = None,
        operator: str | None = None,
        value: Any = None,
    ) -> Self:
        """Like ``has``, with a callback constraining the related rows:
        ``where_has("posts", lambda q: q.where("is_published", True), ">=", 2)``. An aggregate
        set in the callback replaces the count."""
        return self._has(relation, callback, operator, value, False, False, "where_has")

    and_where_has = where_has

    @overload
    def or_where_has(
        self,
        relation: ManyToMany[R],
        callback: Callable[[ManyToManySubQueryBuilder[R]], object] | None = None,
        operator: str | None = None,
        value: Any = None,
    ) -> Self: ...
    @overload
    def or_where_has(
        self,
        relation: Relation[R],
        callback: Callable[[SubQueryBuilder[R]], object] | None = None,
        operator: str | None = None,
        value: Any = None,
    ) -> Self: ...
    @overload
    def or_where_has(
        self,
        relation: str,
        callback: _Callback | None = None,
        operator: str | None = None,
        value: Any = None,
    ) -> Self: ...

    def or_where_has(
        self,
        relation: RelationRef,
        callback: _Callback | None = None,
        operator: str | None = None,
        value: Any = None,
    ) -> Self:
        return self._has(relation, callback, operator, value, True, False, "or_where_has")

    @overload
    def where_doesnt_have(
        self,
        relation: ManyToMany[R],
        callback: Callable[[ManyToManySubQueryBuilder[R]], object] | None = None,
        operator: str | None = None,
        value: Any = None,
    ) -> Self: ...
    @overload
    def where_doesnt_have(
        self,
        relation: Relation[R],
        callback: Callable[[SubQueryBuilder[R]], object] | None = None,
        operator: str | None = None,
        value: Any = None,
    ) -> Self: ...
    @overload
    def where_doesnt_have(
        self,
        relation: str,
        callback: _Callback | None = None,
        operator: str | None = None,
        value: Any = None,
    ) -> Self: ...

    def where_doesnt_have(
        self,
        relation: RelationRef,
        callback: _Callback | None = None,
        operator: str | None = None,
        value: Any = None,
    ) -> Self:
        return self._has(relation, callback, operator, value, False, True, "where_doesnt_have")

    and_where_doesnt_have = where_doesnt_have

    @overload
    def or_where_doesnt_have(
        self,
        relation: ManyToMany[R],
        callback: Callable[[ManyToManySubQueryBuilder[R]], object] | None = None,
        operator: str | None = None,
        value: Any = None,
    ) -> Self: ...
    @overload
    def or_where_doesnt_have(
        self,
        relation: Relation[R],
        callback: Callable[[SubQueryBuilder[R]], object] | None = None,
        operator: str | None = None,
        value: Any = None,
    ) -> Self: ...
    @overload
    def or_where_doesnt_have(
        self,
        relation: str,
        callback: _Callback | None = None,
        operator: str | None = None,
        value: Any = None,
    ) -> Self: ...

    def or_where_doesnt_have(
        self,
        relation: RelationRef,
        callback: _Callback | None = None,
        operator: str | None = None,
        value: Any = None,
    ) -> Self:
        return self._has(relation, callback, operator, value, True, True, "or_where_doesnt_have")

    # -- the has family of morph_to relations (Eloquent's whereHasMorph) -----------------------
    def _has_morph(
        self,
        name: RelationRef,
        types: MorphTypes,
        callback: Callable[..., Any] | None,
        operator: str | None,
        value: Any,
        is_or: bool,
        negate: bool,
        method: str,
    ) -> Self:
        name = relation_key(self.model, name)
        relation = self.model.get_relation(name)
        relation.boot()
        if not getattr(relation, "_per_type", False):
            raise LucidError(
                f'{method}() expects a morph_to relation; "{name}" is a {relation.type} '
                "relation (use where_has)",
                code="E_INVALID_ARGUMENT",
            )
        clause = relation.has_morph_clause(self, types, callback, operator, value, negate, method)
        self.state.add_where(is_or, clause)
        return self

    def where_has_morph(
        self,
        relation: RelationRef,
        types: MorphTypes,
        callback: Callable[..., Any] | None = None,
        operator: str | None = None,
        value: Any = None,
    ) -> Self:
        """Rows whose morph_to points at a row of one of ``types`` (model classes or aliases)
        matching ``callback``: ``where_has_morph("commentable", [Post, Video], lambda q:
        q.where("title", "like", "A%"))``. A callback with two parameters also gets the model
        class; ``operator``/``value`` compare the related count as ``where_has`` does."""
        return self._has_morph(
            relation, types, callback, operator, value, False, False, "where_has_morph"
        )

    def or_where_has_morph(
        self,
        relation: RelationRef,
        types: MorphTypes,
        callback: Callable[..., Any] | None = None,
        operator: str | None = None,
        value: Any = None,
    ) -> Self:
        return self._has_morph(
            relation, types, callback, operator, value, True, False, "or_where_has_morph"
        )

    def where_doesnt_have_morph(
        self,
        relation: RelationRef,
        types: MorphTypes,
        callback: Callable[..., Any] | None = None,
    ) -> Self:
        """Rows whose morph_to is one of ``types`` without a related row matching
        ``callback`` (as Eloquent, rows of other types do not match)."""
        return self._has_morph(
            relation, types, callback, None, None, False, True, "where_doesnt_have_morph"
        )

    def or_where_doesnt_have_morph(
        self,
        relation: RelationRef,
        types: MorphTypes,
        callback: Callable[..., Any] | None = None,
    ) -> Self:
        return self._has_morph(
            relation, types, callback, None, None, True, True, "or_where_doesnt_have_morph"
        )

    def has_morph(
        self,
        relation: RelationRef,
        types: MorphTypes,
        operator: str | None = None,
        value: Any = None,
    ) -> Self:
        """``where_has_morph`` without a callback."""
        return self._has_morph(relation, types, None, operator, value, False, False, "has_morph")

    def doesnt_have_morph(self, relation: RelationRef, types: MorphTypes) -> Self:
        """``where_doesnt_have_morph`` without a callback."""
        return self._has_morph(relation, types, None, None, None, False, True, "doesnt_have_morph")

    @overload
    def with_aggregate(
        self,
        relation: ManyToMany[R],
        callback: Callable[[ManyToManySubQueryBuilder[R]], object],
    ) -> Self: ...
    @overload
    def with_aggregate(
        self, relation: Relation[R], callback: Callable[[SubQueryBuilder[R]], object]
    ) -> Self: ...
    @overload
    def with_aggregate(self, relation: str, callback: _Callback) -> Self: ...

    def with_aggregate(self, relation: RelationRef, callback: _Callback) -> Self:
        """Select an aggregate of the related rows into ``extras``:
        ``with_aggregate("posts", lambda q: q.max("score").as_("best_score"))``."""
        if callback is None:
            raise LucidError('"with_aggregate" needs a callback that defines the aggregate')
        sub = self._sub_query(relation_key(self.model, relation), callback, "with_aggregate")
        return self._select_aggregate(sub)

    def _select_aggregate(self, sub: Any) -> Self:
        if not sub.state.has_aggregates:
            raise runtime_error('"with_aggregate" callback must use an aggregate function')
        if not sub.state.alias:
            raise runtime_error(
                '"with_aggregate" callback must define the alias for the aggregate query'
            )
        columns = self.state.columns
        if not columns:
            columns.extend(self._default_columns())
        columns.append(correlated(sub).scalar_subquery().label(sub.state.alias))
        return self

    @overload
    def with_count(
        self,
        relation: ManyToMany[R],
        callback: Callable[[ManyToManySubQueryBuilder[R]], object] | None = None,
    ) -> Self: ...
    @overload
    def with_count(
        self, relation: Relation[R], callback: Callable[[SubQueryBuilder[R]], object] | None = None
    ) -> Self: ...
    @overload
    def with_count(self, relation: str, callback: _Callback | None = None) -> Self: ...

    def with_count(self, relation: RelationRef, callback: _Callback | None = None) -> Self:
        """Select the number of related rows into ``extras["<relation>_count"]`` (rename with
        ``as_`` in the callback): ``with_count("posts", lambda q: q.where(...).as_("n"))``."""
        name = relation_key(self.model, relation)
        sub = self._sub_query(name, callback, "with_count")
        if not sub.state.has_aggregates:
            sub.count("*")
        if not sub.state.alias:
            sub.state.alias = f"{name}_count"
        if callback is not None:
            return self._select_aggregate(sub)
        stmt = correlated(sub)
        label = stmt.scalar_subquery().label(sub.state.alias)
        found = self._count_shape(self.model.get_relation(name), sub, stmt)
        if found is not None:
            key, sub_binds = found
            self._column_shapes = (*self._column_shapes, (label, key, sub_binds))
        columns = self.state.columns
        if not columns:
            columns.extend(self._default_columns())
        columns.append(label)
        return self

    async def exec(self) -> list[M]:
        """Run the query and return model instances (dicts after ``pojo()``)."""
        hooks = self._info.hooks
        if not hooks:  # (no coroutine of ``run_hooks`` made to find none: as in ``first``)
            rows: list[M] = await self._rows()
            return rows
        await run_hooks(hooks.get("before:fetch"), self)
        rows = await self._rows()
        await run_hooks(hooks.get("after:fetch"), rows)
        return rows

    async def first(self) -> M | None:
        """The first instance (``LIMIT 1``) or ``None``; runs the find hooks."""
        hooks = self._info.hooks
        # ``run_hooks`` only when there are hooks: a coroutine made and awaited for nothing
        # costs more than the test, twice on every first().
        if hooks:
            await run_hooks(hooks.get("before:find"), self)
        self.state.limit = 1
        rows: list[M]
        if type(self) is ModelQueryBuilder and not self._pojo:
            # ``_rows`` (not overridden: a model query's) and its ``_after_hydrate``, without
            # their coroutines.
            rows = self._hydrated(await self._read())
            preloader = self._preloader
            if preloader is not None and rows:
                await preloader.start(rows, self.client, self._sideloaded)
        else:
            rows = await self._rows()
        row = rows[0] if rows else None
        if row is not None and hooks:
            await run_hooks(hooks.get("after:find"), row)
        return row

    async def first_or_fail(self) -> M:
        """Like ``first``; raises ``ModelNotFoundError`` when there is no row."""
        row = await self.first()
        if row is None:
            raise ModelNotFoundError(model=self.model.__name__)
        return row

    async def paginate(self, page: int, per_page: int = 20) -> SimplePaginator[M]:
        """One page of instances and the total (count query + page query). The total is
        right for ``distinct`` and ``group_by`` queries too. ``page`` (from 1) and ``per_page``
        must be positive ints: ``E_INVALID_ARGUMENT`` before any query or hook otherwise."""
        check_page(page, per_page, "paginate")
        hooks = self._info.hooks
        await run_hooks(hooks.get("before:paginate"), self)
        total = await self.count_rows()
        rows = await self.clone().for_page(page, per_page)._rows()
        paginator = SimplePaginator(
            total, per_page, page, rows, naming_strategy=self.model.naming_strategy
        )
        await run_hooks(hooks.get("after:paginate"), paginator)
        return paginator

    # -- cursor pagination (query/cursor.py) ---------------------------------------------------
    async def cursor_paginate(
        self, per_page: int = 20, cursor: str | None = None
    ) -> CursorPaginator[M]:
        """One page by keyset (no OFFSET, no COUNT: every page costs the same):
        ``page = await Post.query().order_by("created_at", "desc").cursor_paginate(20,
        cursor=request_cursor)``; ``page.next_cursor`` / ``page.previous_cursor`` fetch the
        neighbours. The primary key is appended to the ordering as the tie-breaker; sort
        columns annotated optional (``int | None``) may hold NULLs, paged in the database's
        NULL order; others must hold none. A cursor that does not fit the query raises
        ``E_INVALID_CURSOR`` (status 400)."""
        return await paginate_by_cursor(
            self,
            per_page,
            cursor,
            self._info.key_columns,
            self._cursor_reader,
            self.model.naming_strategy,
            self._cursor_nullable,
            # What ``_cursor_reader`` and ``_cursor_nullable`` answer depends on these only.
            (self.model, self._pojo),
        )

    def _own_column(self, key: OrderKey) -> ColumnDef | None:
        """The column of this model sort column ``key`` is (``None``: a column of another
        table, or a selected value)."""
        info = self._info
        found = info.by_column.get(key.name)
        table = getattr(key.column, "table", None)
        return found if table is None or table is info.table else None

    def _cursor_nullable(self, key: OrderKey) -> bool | None:
        """Whether sort column ``key`` may hold NULL: a column of this model whose attribute
        is annotated optional (``int | None``); ``None`` while its annotation names something
        not defined yet (taken as no, and asked again next page)."""
        found = self._own_column(key)
        if found is None or found.is_primary:
            return False
        optional = self._info.is_optional(found.attribute_name)
        if not optional and found.attribute_name not in self._info.optional:
            return None
        return optional

    def _cursor_reader(self, key: OrderKey) -> Callable[[Any], Any]:
        """The function reading sort value ``key`` back from a row of this query."""
        name = key.name
        if self._pojo:
            return lambda row: row.get(name)
        found = self._own_column(key)
        if found is not None:
            return attrgetter(found.attribute_name)

        def extra(row: Any) -> Any:
            extras = extras_of(row)
            if name not in extras:
                raise LucidError(
                    f'cursor_paginate() cannot read sort column "{name}" back from the rows: '
                    "select it",
                    code="E_INVALID_ARGUMENT",
                )
            return extras[name]

        return extra

    # -- streaming (orm/streaming.py) ----------------------------------------------------------
    def stream(self, batch_size: int = 1000) -> AsyncGenerator[M, None]:
        """Iterate over the query's instances in constant memory: ``async for post in
        Post.query().stream(batch_size=1000):``. Rows are read with a server-side cursor and
        hydrated (and preloaded) ``batch_size`` at a time; the connection is held for the loop
        and released when it ends, breaks or raises. A ``batch_size`` that is not a positive
        int raises ``E_INVALID_ARGUMENT`` here, before any query."""
        from .streaming import check_batch_size, model_stream  # loaded on first use

        check_batch_size(batch_size, "stream")
        return model_stream(self, batch_size)

    async def each_chunk(self, size: int) -> AsyncGenerator[list[M], None]:
        """As ``stream``, yielding lists of at most ``size`` instances."""
        from .streaming import check_batch_size, model_batches  # loaded on first use

        check_batch_size(size, "each_chunk")
        batches = model_batches(self, size)
        try:
            async for batch in batches:
                yield batch
        finally:
            await batches.aclose()

    def __await__(self) -> Generator[Any, None, list[M]]:
        return self.exec().__await__()


# The compile hooks of a relation's subquery builder that make the SQL around its WHERE (the
# SELECT list, the FROM, the correlation, the last step): a class that overrides one may make
# other SQL for the same relation and condition, so its EXISTS has no shape.
_AROUND_WHERE = (
    "_select_list",
    "_default_columns",
    "_base_from",
    "_from_clause",
    "_own_froms",
    "_finish",
    "to_core",
)
_plain_subqueries: dict[type, bool] = {}


def _plain_subquery_class(kind: type) -> bool:
    """Whether subquery builder class ``kind`` makes the SQL around its WHERE as
    ``SubQueryBuilder`` does (``_AROUND_WHERE``): from the relation alone."""
    found = _plain_subqueries.get(kind)
    if found is None:
        from .relations.base import SubQueryBuilder

        found = issubclass(kind, SubQueryBuilder) and all(
            getattr(kind, name) is getattr(SubQueryBuilder, name) for name in _AROUND_WHERE
        )
        _plain_subqueries[kind] = found
    return found


def _adds_parts(state: Any) -> bool:
    """Whether a correlated subquery's builder state holds more than its FROM, SELECT list and
    WHERE: a join, grouping, order, paging, DISTINCT, CTEs or a qualifier not yet bound to a
    table (any of which a statement shape keyed on the WHERE alone would miss)."""
    return bool(
        state.joins
        or state.group_by
        or state.havings
        or state.order_by
        or state.limit is not None
        or state.offset is not None
        or state.distinct
        or state.ctes
        or state.early_refs
    )


def _exists_shape(sub: Any, stmt: Select[Any], negate: bool) -> tuple[Hashable, list[Any]] | None:
    """The shape of ``[NOT] EXISTS (stmt)``, the correlated subquery of ``has``/``where_has``
    without operator (``sub`` compiled): keyed by the relation, its subquery builder class and
    the subquery's WHERE, read as a WHERE is (``condition_shape``: the relation's constraint,
    the callback's conditions, the related model's global scopes, a nested ``where_has``'s
    EXISTS), its parameters in ``binds``. The relation and the class make the rest of the SQL
    when the subquery has nothing else: ``None`` (no shape) for an ``on_query``, composite
    keys, an aliased (self) relation, a class with its own compile hooks, or a callback or
    kind that selected columns, joined a table (a pivot, an intermediate) or added grouping,
    order, paging, DISTINCT, CTEs, a row lock or a qualifier not yet bound to a table."""
    relation = sub.relation
    if relation.on_query is not None or relation.composite:
        return None
    if not _plain_subquery_class(type(sub)):
        return None
    state = sub.state
    if (
        sub._target is not sub._table
        or state.from_ is not sub._table
        or sub._lock is not None
        or state.columns
        or _adds_parts(state)
    ):
        return None
    found = _where_shape(stmt, sub._clause_shapes)
    if found is None:
        return None
    condition, sub_binds = found
    # The relation itself (not its id): the key keeps it, so no other relation takes its id.
    return ("exists", relation, type(sub), negate, condition), sub_binds


def _where_shape(
    stmt: Select[Any], known: tuple[tuple[Any, Hashable, list[Any]], ...] = ()
) -> tuple[Hashable, list[Any]] | None:
    """The shape of a correlated subquery's WHERE, read as a query's is (``condition_shape``,
    ``known``: its own shaped EXISTS conditions), and its parameters; ``None`` without a WHERE
    or with a part it doesn't read completely."""
    where = stmt.whereclause
    if where is None:
        return None
    binds: list[Any] = []
    condition = condition_shape(where, binds, known)
    return None if condition is None else (condition, binds)


def _run_scopes(
    group: ModelQueryBuilder[Any], scopes: Mapping[str, GlobalScopeFn], without: frozenset[str]
) -> ColumnElement[Any] | None:
    """Run ``scopes`` (but those in ``without``) on ``group``; their conditions folded."""
    for name, scope in scopes.items():
        if name not in without:
            scope(group)
    folded = fold(group.state.wheres)
    return folded.self_group() if folded is not None else None


def row_locked(builder: ModelQueryBuilder[Any], stmt: Select[Any]) -> Select[Any]:
    """``stmt`` with ``builder``'s row lock (``for_update()``/``for_share()``), if any: also for
    variant selects of the same rows (a relation's UPDATE/DELETE id filter)."""
    if builder._lock is None:
        return stmt
    opts = builder._lock_options
    return stmt.with_for_update(
        read=builder._lock == "share",
        skip_locked=opts.get("skip_locked", False),
        nowait=opts.get("nowait", False),
    )
