"""has_many_through: related rows reached through intermediate tables — one model
(``Country`` → ``User.country_id`` → ``Post.user_id``) or a chain of them, pivot tables
included (``through=[User, Post]``: Country → User → Post → Comment; ``through=[User,
"skill_user"]``: Country → User → skill_user → Skill). ``ThroughRelation`` (the keys and the
chain, shared with has_one_through), ``HasManyThrough``, ``HasManyThroughClient``,
``ThroughQueryBuilder``/``HasManyThroughQueryBuilder``, ``HasManyThroughSubQueryBuilder``."""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Literal, Self, TypeAlias, TypeVar, Unpack

from sqlalchemy import and_, select, tuple_
from sqlalchemy.sql import ColumnElement, FromClause, TableClause
from sqlalchemy.sql.elements import ColumnClause
from sqlalchemy.types import NullType

from ...errors import LucidError
from ...query.chainable import check_identifier, compile_select, resolve_column, table_column
from ..model_info import declared, info_of, pk_column, pk_columns
from ..query_builder import row_locked
from .base import (
    ManyRelation,
    P,
    Relation,
    RelationOptions,
    RelationQueryBuilder,
    RelationQueryClient,
    SubQueryBuilder,
    key_label,
    key_names,
    require_key,
    resolve,
)
from .has_many import HasManyQueryBuilder

if TYPE_CHECKING:
    from ...database.query_client import Client
    from ..base_model import BaseModel

R = TypeVar("R", bound="BaseModel")

#: One intermediate of a chain: a model (a class, or a function returning it, for models
#: defined later) or a pivot table's name.
ThroughHop: TypeAlias = "Callable[[], builtins.type[Any]] | builtins.type[Any] | str"
#: A link's key: an attribute (or pivot column) name, or a tuple of them (a composite key).
LinkKey: TypeAlias = "str | tuple[str, ...]"
#: The keys of a chain: one key for the first link (``foreign_key``/``local_key``), or a list
#: with one entry per link (``None``: the naming strategy's default).
HopKeys: TypeAlias = "str | tuple[str, ...] | list[str | tuple[str, ...] | None] | None"


class ThroughOptions(RelationOptions, total=False):
    """The options of ``has_many_through()``/``has_one_through()``: the keys of the first
    link (``local_key`` on the parent, ``foreign_key`` on the first intermediate) and of the
    last one (``through_local_key`` on the last intermediate, ``through_foreign_key`` on the
    related model) — or ``local_key``/``foreign_key`` as lists, one entry per link of a chain —
    and ``distinct`` (each related row once per parent, however many paths reach it)."""

    foreign_key: HopKeys
    local_key: HopKeys
    through_foreign_key: str | tuple[str, ...] | None
    through_local_key: str | tuple[str, ...] | None
    distinct: bool


def _through_alias(column: str) -> str:
    return f"through_{column}"


@dataclass(frozen=True, slots=True)
class Hop:
    """One table of a through chain (an intermediate, or the related model's table last) and
    its link back: ``table.<key>`` = ``<previous table>.<back>`` (the parent's for the first).
    ``key``/``back`` are column names; ``model`` is ``None`` for a pivot table."""

    table: TableClause
    model: builtins.type[BaseModel] | None
    key: str
    back: str
    #: Every column of ``key``/``back``: one, or several for a composite link (then ``key``
    #: and ``back`` name them for messages).
    keys: tuple[str, ...] = ()
    backs: tuple[str, ...] = ()

    def link(self, previous: TableClause, near: Sequence[ColumnElement[Any]]) -> ColumnElement[Any]:
        """``previous.back = near`` for each column of the link (``previous``: the table
        before this one in the chain, ``near``: this table's key columns)."""
        pairs = zip(self.backs, near, strict=True)
        return and_(*[table_column(previous, b) == n for b, n in pairs])


def _model_of(hop: ThroughHop) -> Callable[[], builtins.type[Any]] | str:
    """A hop as a function returning its model (a class is wrapped), or a pivot table name."""
    if isinstance(hop, str):
        return check_identifier(hop, "table")
    if isinstance(hop, type):
        model = hop
        return lambda: model
    if callable(hop):
        return hop
    raise LucidError(
        f"A through hop is a model, a function returning one or a pivot table name, got {hop!r}",
        code="E_INVALID_ARGUMENT",
    )


def _per_link(option: HopKeys, links: int, name: str) -> list[LinkKey | None] | None:
    """A list option (one key per link) checked for its length; ``None`` for a key of the
    first link (a string, or a tuple: a composite key)."""
    if option is None or isinstance(option, str | tuple):
        return None
    keys = list(option)
    if len(keys) != links:
        raise LucidError(
            f"{name} takes one key per link of the chain: {links} (the parent and "
            f"{links - 1} intermediate table(s)), got {len(keys)}",
            code="E_INVALID_ARGUMENT",
        )
    return keys


class ThroughRelation(Relation[R]):
    """The keys and the chain of has_many_through and has_one_through.

    Two models (``through=lambda: User``): ``local_key`` on this model (its primary key),
    ``foreign_key`` on the through model (``country_id``), ``through_local_key`` on the
    through model (its primary key) and ``through_foreign_key`` on the related model
    (``user_id``). A chain (``through=[User, Post]`` or with pivot tables ``through=[User,
    "skill_user"]``) has one link per table after the parent; ``foreign_key=[...]`` gives each
    link's key on its far side, ``local_key=[...]`` on its near side (``None`` entries keep the
    default); string forms set the first link (``foreign_key``/``local_key``) and the last
    (``through_*``). Keys are attribute names on models, column names on pivot tables."""

    _group_in_extras = True

    def __init__(
        self,
        related: Callable[[], builtins.type[R]],
        through: Callable[[], builtins.type[BaseModel]] | Sequence[ThroughHop],
        *,
        foreign_key: HopKeys = None,
        local_key: HopKeys = None,
        through_foreign_key: str | tuple[str, ...] | None = None,
        through_local_key: str | tuple[str, ...] | None = None,
        distinct: bool = False,
        **options: Unpack[RelationOptions],
    ) -> None:
        super().__init__(
            related,
            foreign_key=foreign_key if isinstance(foreign_key, str | tuple) else None,
            local_key=local_key if isinstance(local_key, str | tuple) else None,
            **options,
        )
        kind = type(self).__name__
        if isinstance(through, type):  # a model class given as is
            hops: list[Callable[[], builtins.type[Any]] | str] = [_model_of(through)]
        elif callable(through):
            hops = [through]
        elif isinstance(through, Sequence) and not isinstance(through, str) and through:
            hops = [_model_of(h) for h in through]
        else:
            raise LucidError(
                f"{kind} needs a callable returning the through model, or a list of hops"
            )
        self._hops_spec = hops
        links = len(hops) + 1
        self._foreign_keys = _per_link(foreign_key, links, "foreign_key")
        self._local_keys = _per_link(local_key, links, "local_key")
        if (self._foreign_keys is not None and through_foreign_key is not None) or (
            self._local_keys is not None and through_local_key is not None
        ):
            raise LucidError(
                "through_foreign_key/through_local_key cannot be combined with a list of keys: "
                "the list's last entry is the last link's key",
                code="E_INVALID_ARGUMENT",
            )
        first = hops[0]
        self.through_model: Callable[[], builtins.type[BaseModel]] = (
            first if not isinstance(first, str) else self._pivot_first
        )
        self._through_foreign_key_option = through_foreign_key
        self._through_local_key_option = through_local_key
        self.distinct = distinct
        self.through_foreign_key = ""
        self.through_local_key = ""
        self.through_foreign_key_column_name = ""
        self.through_local_key_column_name = ""
        #: The chain, set by boot(): the intermediate tables, then the related model's.
        self.hops: list[Hop] = []

    def _pivot_first(self) -> builtins.type[BaseModel]:
        raise LucidError(
            f'"{self.model.__name__}.{self.relation_name}" goes through a pivot table first: '
            "it has no through model",
            code="E_RUNTIME_EXCEPTION",
        )

    def through_models(self) -> list[builtins.type[BaseModel] | str]:
        """The intermediates in order: model classes, and pivot table names."""
        return [h if isinstance(h, str) else h() for h in self._hops_spec]

    def _boot_keys(self) -> None:
        model, related = self.model, self.related_model()
        strategy = model.naming_strategy
        name, kind = self.relation_name, self.type
        chain: list[builtins.type[BaseModel] | str] = [model, *self.through_models(), related]
        links = len(chain) - 1
        fks: list[LinkKey | None] = list(self._foreign_keys or [None] * links)
        lks: list[LinkKey | None] = list(self._local_keys or [None] * links)
        if self._foreign_keys is None:
            fks[0] = self.options.get("foreign_key")
            fks[-1] = self._through_foreign_key_option or fks[-1]
        if self._local_keys is None:
            lks[0] = self.options.get("local_key")
            lks[-1] = self._through_local_key_option or lks[-1]
        if links > 2:
            tables = [c if isinstance(c, str) else declared_table(c) for c in chain[1:]]
            parent_table = declared_table(model)
            repeated = {t for t in tables if tables.count(t) > 1}
            repeated |= {t for t in tables[:-1] if t == parent_table}
            if repeated:
                raise LucidError(
                    f'"{model.__name__}.{name}" goes through table(s) {sorted(repeated)} twice: '
                    "a chain names each table once",
                    code="E_RUNTIME_EXCEPTION",
                )
        # Attribute names (models) and column names (pivots) of each link, near side first;
        # each a tuple (several names for a composite link).
        attrs: list[tuple[tuple[str, ...], tuple[str, ...]]] = []
        columns: list[tuple[tuple[str, ...], tuple[str, ...]]] = []
        for i in range(links):
            near, far = chain[i], chain[i + 1]
            back, key = lks[i], fks[i]
            if isinstance(near, str) and isinstance(far, str):
                if back is None or key is None:
                    raise LucidError(
                        f'"{model.__name__}.{name}": two pivot tables in a row need both keys '
                        "of their link",
                        code="E_INVALID_ARGUMENT",
                    )
            elif isinstance(near, str):  # pivot → model: the pivot holds the model's key
                assert not isinstance(far, str)
                back = back or strategy.relation_pivot_foreign_key("manyToMany", far, far, name)
                key = key or far.primary_key
            else:
                back = back or near.primary_key
                if isinstance(far, str):
                    key = key or strategy.relation_pivot_foreign_key("manyToMany", near, near, name)
                else:
                    key = key or strategy.relation_foreign_key(kind, near, far, name)
            assert back is not None and key is not None
            backs, keys = key_names(back), key_names(key)
            if len(backs) != len(keys):
                raise LucidError(
                    f'"{model.__name__}.{name}": the keys {back!r} and {key!r} of link {i + 1} '
                    "must have as many attributes",
                    code="E_INVALID_RELATION",
                )
            back_cols = tuple(
                check_identifier(b) if isinstance(near, str) else require_key(self, near, b)
                for b in backs
            )
            key_cols = tuple(
                check_identifier(k) if isinstance(far, str) else require_key(self, far, k)
                for k in keys
            )
            attrs.append((backs, keys))
            columns.append((back_cols, key_cols))
        self.hops = self._build_hops(chain, columns)
        (local, foreign), (local_cols, foreign_cols) = attrs[0], columns[0]
        self.composite = len(local) > 1
        self.local_key, self.foreign_key = _name(local), _name(foreign)
        self.local_key_column_name = _name(local_cols)
        self.foreign_key_column_name = _name(foreign_cols)
        self.through_local_key, self.through_foreign_key = map(_name, attrs[-1])
        self.through_local_key_column_name = _name(columns[-1][0])
        self.through_foreign_key_column_name = _name(columns[-1][1])
        self.parent_key = self.local_key
        self.match_column = self.foreign_key_column_name
        self.parent_column = self.local_key_column_name
        if self.composite:
            self.local_keys, self.foreign_keys = local, foreign
            self.local_key_columns, self.foreign_key_columns = local_cols, foreign_cols
            self.parent_keys = local
            self.match_columns = foreign_cols
            self.parent_columns = local_cols

    @staticmethod
    def _build_hops(
        chain: list[builtins.type[BaseModel] | str],
        columns: list[tuple[tuple[str, ...], tuple[str, ...]]],
    ) -> list[Hop]:
        """One ``Hop`` per table after the parent; a pivot table gets a table of its key
        columns, typed as the model columns they hold (PostgreSQL binds the keys by type)."""

        def column_type(item: builtins.type[BaseModel] | str, column: str) -> Any:
            if isinstance(item, str):
                return NullType()
            table = info_of(item).table
            found = table.c.get(column) if table is not None else None
            return found.type if found is not None else NullType()

        hops: list[Hop] = []
        for i, item in enumerate(chain[1:], start=1):
            backs, keys = columns[i - 1]
            key, back = _name(keys), _name(backs)
            if isinstance(item, str):
                nxt_backs, nxt_keys = columns[i]
                schema, _, table_name = item.rpartition(".")
                pivot = TableClause(
                    table_name,
                    *[
                        ColumnClause(k, column_type(chain[i - 1], b))
                        for k, b in zip(keys, backs, strict=True)
                    ],
                    *[
                        ColumnClause(b, column_type(chain[i + 1], k))
                        for b, k in zip(nxt_backs, nxt_keys, strict=True)
                        if b not in keys
                    ],
                    schema=schema or None,
                )
                hops.append(Hop(pivot, None, key, back, keys, backs))
            else:
                table = info_of(item).table
                assert table is not None
                hops.append(Hop(table, item, key, back, keys, backs))
        return hops

    def through_table(self) -> TableClause:
        """The first intermediate table (the one the parents' keys are matched on)."""
        self.boot()
        return self.hops[0].table

    def _group_key(self) -> str:
        return _through_alias(self.foreign_key_column_name)

    def _group_keys(self) -> tuple[str, ...]:
        return tuple(_through_alias(c) for c in self.foreign_key_columns)

    def hydrate_for_persistence(self, parent: BaseModel, values: Any) -> None:
        raise LucidError(
            f'Cannot persist through a {self.type} relationship "({self.relation_name})": '
            "create the rows through the intermediate model",
            code="E_RUNTIME_EXCEPTION",
        )


def _name(names: tuple[str, ...]) -> str:
    """A link key's one name, or the name of a composite one in messages."""
    return names[0] if len(names) == 1 else key_label(names)


def declared_table(model: builtins.type[BaseModel]) -> str:
    """``model``'s table name as declared (schema-qualified when it is)."""
    return declared(model).table_name


class HasManyThrough(ThroughRelation[R], ManyRelation[R]):
    """``posts: HasManyThrough[Post] = has_many_through((lambda: Post, lambda: User))`` on
    ``Country``: ``country.posts`` is ``list[Post]``. Keys and chains: ``ThroughRelation``."""

    type = "hasManyThrough"


class ThroughQueryBuilder(RelationQueryBuilder[R]):
    """What the related and preload queries of the through kinds share: the related table
    joined back along the chain to the first intermediate, whose key (matched with the parents'
    keys) lands in ``extras["through_<column>"]``. ``update``/``delete`` compile to ``… WHERE
    pk IN (SELECT … FROM (…) AS t)``, valid on PostgreSQL and MariaDB too."""

    def __init__(
        self,
        relation: ThroughRelation[R],
        client: Client,
        *,
        values: list[Any] | None = None,
        parent: BaseModel | None = None,
    ) -> None:
        self._rel: ThroughRelation[R] = relation
        super().__init__(relation, client, values=values, parent=parent)
        if relation.distinct:
            self.state.distinct = True

    def _relation_sources(self) -> None:
        aliases = self.state.aliases
        for hop in self._rel.hops[:-1]:
            aliases[hop.table.name] = hop.table

    def _match_target(self) -> ColumnElement[Any]:
        first = self._rel.hops[0]
        return table_column(first.table, first.key)

    def _match_key(self) -> str:
        return _through_alias(self._rel.foreign_key_column_name)

    def _match_targets(self) -> list[ColumnElement[Any]]:
        first = self._rel.hops[0]
        return [table_column(first.table, k) for k in first.keys]

    def _match_keys(self) -> list[str]:
        return [_through_alias(k) for k in self._rel.foreign_key_columns]

    def _key_columns(self, columns: list[ColumnElement[Any]]) -> list[ColumnElement[Any]]:
        """The through key, whatever the user selects; but an aggregate query
        (``count("* as total")``) selects none: PostgreSQL rejects the ungrouped column
        (Lucid skips it the same way)."""
        if self.state.has_aggregates:
            return []
        if self._composite:
            pairs = zip(self._match_targets(), self._match_keys(), strict=True)
            return [target.label(key) for target, key in pairs]
        return [self._match_target().label(self._match_key())]

    def _base_from(self) -> FromClause | None:
        """The related table joined to each intermediate, last to first."""
        hops = self._rel.hops
        joined = self.state.from_
        assert joined is not None
        near = [resolve_column(self, k) for k in hops[-1].keys]
        for i in range(len(hops) - 1, 0, -1):
            table = hops[i - 1].table
            joined = joined.join(table, hops[i].link(table, near))
            near = [table_column(table, k) for k in hops[i - 1].keys]
        return joined

    def _counts_over_subquery(self) -> bool:
        return True

    def _own_froms(self) -> list[Any]:
        return [*super()._own_froms(), *(hop.table for hop in self._rel.hops[:-1])]

    def _dml_where(self) -> ColumnElement[Any] | None:
        """Related rows of this parent, by primary key, through a derived table (MySQL refuses
        a subquery on the table being written; Lucid's ``IN (SELECT * …)`` fails elsewhere).
        An UPDATE/DELETE/increment of this builder writes the rows it selects, no others:
        the inherited form would put the through table in a bare ``UPDATE … FROM users``."""
        model = self.model
        pks = [resolve_column(self, c) for c in pk_columns(model)]
        labels = [f"lucid_id_{i}" for i in range(len(pks))] if len(pks) > 1 else ["lucid_id"]
        state = self.state
        # The order only matters to pick the limited rows.
        order: list[ColumnElement[Any]] | None = (
            [] if state.limit is None and state.offset is None else None
        )
        picked: list[ColumnElement[Any]] = [pk.label(n) for pk, n in zip(pks, labels, strict=True)]
        inner = compile_select(self, columns=picked, order_by=order)
        ids = row_locked(self, inner).subquery("lucid_through_ids")
        if len(pks) > 1:  # a composite related key: (a, b) IN (SELECT …)
            return tuple_(*pks).in_(select(*[ids.c[n] for n in labels]))
        return pks[0].in_(select(ids.c.lucid_id).scalar_subquery())


class HasManyThroughQueryBuilder(ThroughQueryBuilder[R], HasManyQueryBuilder[R]):
    """The related query and the preload query of a has_many_through (with the per-parent
    limits of has_many: ``group_limit``/``group_order_by``)."""

    def group_limit(self, limit: int) -> Self:
        # The per-parent row number is computed before DISTINCT removes a row's other paths,
        # so the limit would count duplicates: refused rather than wrong.
        if self._rel.distinct:
            raise LucidError(
                "Cannot apply group_limit on the distinct relationship "
                f'"({self._rel.relation_name})"'
                ": declare one without distinct=True for per-parent limits",
                code="E_RUNTIME_EXCEPTION",
            )
        return super().group_limit(limit)


class ThroughSubQueryBuilder(SubQueryBuilder[R]):
    """``has("posts")`` / ``with_count("posts")`` of the through kinds: the related table
    joined to each intermediate, the first one correlated to the parent."""

    def __init__(
        self, relation: ThroughRelation[R], client: Client, outer: FromClause, alias: str | None
    ) -> None:
        self._rel: ThroughRelation[R] = relation
        super().__init__(relation, client, outer, alias)

    def _relation_sources(self) -> None:
        hops = self._rel.hops
        state = self.state
        near = [self.own_column(k) for k in hops[-1].keys]
        for i in range(len(hops) - 1, 0, -1):
            table = hops[i - 1].table
            state.aliases[table.name] = table
            state.joins.append((table, hops[i].link(table, near), "inner"))
            near = [table_column(table, k) for k in hops[i - 1].keys]

    def _constraint(self) -> ColumnElement[Any] | None:
        rel = self._rel
        first = rel.hops[0]
        if rel.composite:
            pairs = zip(first.keys, rel.local_key_columns, strict=True)
            return and_(*[table_column(first.table, k) == self.outer_column(c) for k, c in pairs])
        clause: ColumnElement[Any] = table_column(first.table, first.key) == self.outer_column(
            rel.local_key_column_name
        )
        return clause

    def count(self, *columns: Any) -> Self:
        """``count(*)``, or with ``distinct=True`` ``count(DISTINCT <related pk>)``: a related
        row reached by several paths counts once."""
        if self._rel.distinct and (not columns or columns == ("*",)):
            model = self.model
            return self.count_distinct(self.own_column(pk_column(model)))
        return super().count(*columns)


class HasManyThroughSubQueryBuilder(ThroughSubQueryBuilder[R]):
    """``has("posts")`` / ``with_count("posts")`` through the intermediate tables."""


class HasManyThroughClient(RelationQueryClient[P, "HasManyThrough[R]"], Generic[P, R]):
    """``country.related("posts")``: the related query (a has_many_through is read-only)."""

    def query(self) -> HasManyThroughQueryBuilder[R]:
        """The related rows of this parent."""
        return HasManyThroughQueryBuilder(self.relation, resolve(self), parent=self.parent)


def through_chain(
    kind: str,
    models: tuple[Callable[[], builtins.type[R]], Callable[[], builtins.type[Any]]]
    | list[Callable[[], builtins.type[Any]]]
    | Callable[[], builtins.type[R]],
    through: Callable[[], builtins.type[Any]] | Sequence[ThroughHop] | None,
) -> tuple[Callable[[], builtins.type[R]], Any]:
    """The related model and the through argument of a declaration: ``(related, through)``
    as a pair, or ``related`` with ``through=`` (a model function, or a list of hops)."""
    if isinstance(models, tuple | list):  # the pair: Lucid's tuple, the SPEC's list
        if len(models) != 2 or through is not None:
            raise LucidError(f"{kind} takes (related, through) or related with through=")
        return models[0], models[1]
    if through is None:
        raise LucidError(f"{kind} needs the through model: through=lambda: Model")
    return models, through


def has_many_through(
    models: tuple[Callable[[], builtins.type[R]], Callable[[], builtins.type[Any]]]
    | list[Callable[[], builtins.type[Any]]]
    | Callable[[], builtins.type[R]],
    *,
    through: Callable[[], builtins.type[Any]] | Sequence[ThroughHop] | None = None,
    init: Literal[False] = False,
    **options: Unpack[ThroughOptions],
) -> HasManyThrough[R]:
    """Declare a has_many_through relation: ``has_many_through((lambda: Post, lambda: User))``
    or ``has_many_through(lambda: Post, through=lambda: User)``; over a chain,
    ``has_many_through(lambda: Comment, through=[User, Post])`` (a pivot table by name:
    ``through=[User, "skill_user"]``). Options: ``ThroughOptions``."""
    related, through_arg = through_chain("has_many_through", models, through)
    return HasManyThrough(related, through_arg, **options)


# The roles of the kind, built by Relation's template methods.
HasManyThrough.query_builder_class = HasManyThroughQueryBuilder
HasManyThrough.sub_query_builder_class = HasManyThroughSubQueryBuilder
HasManyThrough.query_client_class = HasManyThroughClient
