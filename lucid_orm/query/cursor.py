"""Cursor (keyset) pagination: ``cursor_paginate(per_page, cursor=None)``.

A page is found by the values of its boundary row, not by its offset: the query keeps its
``order_by`` (the primary key appended as the tie-breaker, so the order is total), gets a
keyset condition — ``(a, b) > (?, ?)`` when every column sorts the same way, the expanded
``a > ? OR (a = ? AND b > ?)`` otherwise — and ``LIMIT per_page + 1`` (the extra row says
whether another page follows). No OFFSET, no COUNT: every page costs the same.

The cursor is opaque and URL-safe: base64url (unpadded) of a small JSON document holding the
direction (``"n"`` next / ``"p"`` previous), the boundary values (datetimes, dates, decimals,
UUIDs and bytes tagged so they come back as themselves) and a checksum of the ordering, so a
cursor made for another ``order_by`` is refused. Anything that does not decode, or whose
values do not fit the columns, is ``E_INVALID_CURSOR`` (status 400). A cursor is not signed:
forging one only moves to another position of the same query, whose values are bound.

NULLs: a plain keyset comparison never matches NULL. A sort column the query says may hold
NULL (a model column annotated optional, ``int | None``: ``OrderKey.nullable``) gets a
NULL-aware condition instead, in the database's own NULL order (``Dialect.nulls_sort_high``:
PostgreSQL sorts NULL above every value, SQLite and MySQL below), with ``IS NULL`` /
``IS NOT NULL`` terms, so its NULL rows are paged like any other. Any other sort column must
hold no NULLs: a page that reads a row with a NULL value there raises ``E_INVALID_ARGUMENT``
rather than lose rows silently.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime as dt
import functools
import json
import operator
import uuid
import zlib
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Generic, TypeVar

from sqlalchemy import and_, false, literal, or_, tuple_
from sqlalchemy.sql import ColumnElement, operators
from sqlalchemy.sql.elements import UnaryExpression

from ..database.connection import fast_paths_default
from ..errors import LucidError
from .chainable import check_page
from .paginator import MetaKeysNaming, SnakeCaseMetaKeys
from .shape import plain_literal_compare, plain_order

__all__ = [
    "CursorPaginator",
    "OrderKey",
    "PagePlan",
    "decode_cursor",
    "encode_cursor",
    "keyset_condition",
]

T = TypeVar("T")

INVALID_CURSOR = "E_INVALID_CURSOR"


def invalid_cursor(reason: str) -> LucidError:
    """The error of a cursor that does not decode or does not fit the query (status 400)."""
    return LucidError(f"Invalid pagination cursor: {reason}", code=INVALID_CURSOR, status=400)


@dataclass(slots=True, frozen=True)
class OrderKey:
    """One column of the ordering: the column, its direction and its result key;
    ``nullable``: the column may hold NULL (the keyset condition then takes NULLs in)."""

    column: ColumnElement[Any]
    desc: bool
    name: str
    nullable: bool = False

    def ordered(self, reverse: bool) -> ColumnElement[Any]:
        """``column ASC``/``DESC`` (flipped when reading backwards)."""
        descending = self.desc != reverse
        ordered = plain_order(self.column, descending)
        if ordered is None:
            ordered = self.column.desc() if descending else self.column.asc()
        return ordered


def order_keys(order_by: Sequence[ColumnElement[Any]], method: str) -> list[OrderKey]:
    """The ``OrderKey`` of each ``order_by`` element; a raw fragment or an expression without
    a name can't give a cursor value (``E_INVALID_ARGUMENT``)."""
    keys: list[OrderKey] = []
    for element in order_by:
        target, desc = _sort_column(element, method)
        keys.append(OrderKey(target, desc, target.name))
    return keys


def _sort_column(element: Any, method: str) -> tuple[Any, bool]:
    """``(column, descending)`` of one ``order_by`` element (see ``order_keys``)."""
    desc = False
    target: Any = element
    if isinstance(element, UnaryExpression):
        if element.modifier is operators.desc_op:
            desc = True
        target = element.element
    name = getattr(target, "name", None)
    if not isinstance(name, str) or not isinstance(target, ColumnElement):
        raise LucidError(
            f'{method}() orders by columns only (order_by("column", "desc")); got {element}',
            code="E_INVALID_ARGUMENT",
        )
    return target, desc


@dataclass(slots=True, frozen=True)
class Ordering:
    """What a page needs of its query's ordering, the same for every page of it: the keys
    (tie-breakers appended), their checksum, and the ORDER BY reading forward and backward."""

    keys: tuple[OrderKey, ...]
    checksum: int
    forward: tuple[ColumnElement[Any], ...]
    backward: tuple[ColumnElement[Any], ...]

    def order_by(self, forward: bool) -> list[ColumnElement[Any]]:
        """The ORDER BY of a page read forward or backward (a new list: the state's own)."""
        return list(self.forward if forward else self.backward)


def ordering(
    order_by: Sequence[ColumnElement[Any]], tie_breakers: Sequence[ColumnElement[Any]]
) -> Ordering:
    """The ``Ordering`` of a query ordered by ``order_by`` with ``tie_breakers`` (the primary
    key) appended unless it has them; ``E_INVALID_ARGUMENT`` for what can't give a cursor
    value (``order_keys``)."""
    sort = tuple(_sort_column(element, "cursor_paginate") for element in order_by)
    if not _REMEMBER:
        return _ordering(sort, tie_breakers)
    # Keyed by the column objects themselves (a table's columns are long-lived; the ORDER BY
    # constructs made per query are not): each page of a query otherwise re-derives the
    # same keys, checksum and ORDER BY constructs, which are immutable and can be shared.
    key = (sort, tuple(tie_breakers))
    found = _ORDERINGS.get(key)
    if found is None:
        found = _ordering(sort, tie_breakers)
        if len(_ORDERINGS) >= _ORDERINGS_MAX:
            with contextlib.suppress(KeyError, RuntimeError, StopIteration):
                del _ORDERINGS[next(iter(_ORDERINGS))]
        _ORDERINGS[key] = found
    return found


def _ordering(
    sort: Sequence[tuple[Any, bool]], tie_breakers: Sequence[ColumnElement[Any]]
) -> Ordering:
    keys = [OrderKey(target, desc, target.name) for target, desc in sort]
    named = {_qualified(k.column) for k in keys}
    for column in tie_breakers:
        if _qualified(column) not in named:
            keys.append(OrderKey(column, False, str(getattr(column, "name", ""))))
    return Ordering(
        tuple(keys),
        signature(keys),
        tuple(k.ordered(False) for k in keys),
        tuple(k.ordered(True) for k in keys),
    )


# The orderings of recent queries (``ordering``), keyed by their columns and directions.
# Bounded: the oldest entry goes first (columns of ad-hoc aliases would otherwise pile up).
_ORDERINGS: dict[tuple[Any, ...], Ordering] = {}
_ORDERINGS_MAX = 256


def signature(keys: Sequence[OrderKey]) -> int:
    """A checksum of the ordering a cursor was made for."""
    text = ",".join(f"{_qualified(k.column)}:{'d' if k.desc else 'a'}" for k in keys)
    return zlib.crc32(text.encode())


def _qualified(column: Any) -> str:
    table = getattr(column, "table", None)
    name = getattr(table, "name", None)
    return f"{name}.{column.name}" if isinstance(name, str) else str(column.name)


@dataclass(slots=True, frozen=True)
class PagePlan:
    """What every page of one query shape needs, whatever its cursor: the ``Ordering``'s
    keys (``nullable`` set as the query says), checksum and ORDER BY, the reader of each sort
    value, and the Python type a cursor value of each key must have (``_expected_type``)."""

    keys: tuple[OrderKey, ...]
    checksum: int
    forward: tuple[ColumnElement[Any], ...]
    backward: tuple[ColumnElement[Any], ...]
    readers: tuple[Callable[[Any], Any], ...]
    # (key, reader) of each key that must hold no NULL, checked on every row read
    checked: tuple[tuple[OrderKey, Callable[[Any], Any]], ...]
    expected: tuple[Any, ...]
    # Whether a key may hold NULL (the keyset condition may then need the NULL-aware form).
    nullable: bool


def page_plan(
    order_by: Sequence[ColumnElement[Any]],
    tie_breakers: Sequence[ColumnElement[Any]],
    reader_of: Callable[[OrderKey], Callable[[Any], Any]],
    nullable: Callable[[OrderKey], bool | None] | None,
    shape: Hashable | None = None,
) -> PagePlan:
    """The ``PagePlan`` of a query ordered by ``order_by`` (``ordering``: ``E_INVALID_ARGUMENT``
    for what can't give a cursor value). ``reader_of`` and ``nullable`` as
    ``paginate_by_cursor`` takes them; ``shape``: a value that stands for their answers (a
    model query: its model and whether it reads dicts), under which the plan is kept with
    the ordering's elements, so the next page of that query finds it instead of working it
    out again. Kept only when every ``nullable`` answer was final (not ``None``)."""
    if shape is None or not _REMEMBER:
        return _page_plan(order_by, tie_breakers, reader_of, nullable)[0]
    # The ORDER BY constructs of a table column are shared (query/shape.py's ``plain_order``)
    # and, like the columns, immutable: keyed by them, as ``ordering`` is by its columns.
    key = (tuple(order_by), tuple(tie_breakers), shape)
    try:
        found = _PLANS.get(key)
    except TypeError:  # an unhashable ORDER BY element (a user's construct)
        return _page_plan(order_by, tie_breakers, reader_of, nullable)[0]
    if found is None:
        found, final = _page_plan(order_by, tie_breakers, reader_of, nullable)
        if final:
            if len(_PLANS) >= _PLANS_MAX:
                with contextlib.suppress(KeyError, RuntimeError, StopIteration):
                    del _PLANS[next(iter(_PLANS))]
            _PLANS[key] = found
    return found


def _page_plan(
    order_by: Sequence[ColumnElement[Any]],
    tie_breakers: Sequence[ColumnElement[Any]],
    reader_of: Callable[[OrderKey], Callable[[Any], Any]],
    nullable: Callable[[OrderKey], bool | None] | None,
) -> tuple[PagePlan, bool]:
    """The plan, and whether every ``nullable`` answer was final."""
    order = ordering(order_by, tie_breakers)
    keys = order.keys
    final = True
    if nullable is not None:
        flags = [nullable(k) for k in keys]
        final = None not in flags
        if any(flags):
            keys = tuple(
                OrderKey(k.column, k.desc, k.name, True) if flag else k
                for k, flag in zip(keys, flags, strict=True)
            )
    readers = tuple(reader_of(k) for k in keys)
    plan = PagePlan(
        keys,
        order.checksum,
        order.forward,
        order.backward,
        readers,
        tuple((k, r) for k, r in zip(keys, readers, strict=True) if not k.nullable),
        tuple(_expected_type(k) for k in keys),
        any(k.nullable for k in keys),
    )
    return plan, final


# The page plans of recent model queries (``page_plan``), by ordering elements and shape.
# Bounded as ``_ORDERINGS``.
_PLANS: dict[tuple[Any, ...], PagePlan] = {}
_PLANS_MAX = 256


# -- the cursor token ------------------------------------------------------------------------------
def _encode_value(value: Any) -> Any:
    if type(value) in _PLAIN or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dt.datetime):
        return {"t": "dt", "v": value.isoformat()}
    if isinstance(value, dt.date):
        return {"t": "d", "v": value.isoformat()}
    if isinstance(value, dt.time):
        return {"t": "tm", "v": value.isoformat()}
    if isinstance(value, Decimal):
        return {"t": "dec", "v": str(value)}
    if isinstance(value, uuid.UUID):
        return {"t": "uuid", "v": str(value)}
    if isinstance(value, bytes):
        return {"t": "b", "v": base64.urlsafe_b64encode(value).decode()}
    raise LucidError(
        f"cursor_paginate() cannot put a {type(value).__name__} value in a cursor",
        code="E_INVALID_ARGUMENT",
    )


_DECODERS: dict[str, Callable[[str], Any]] = {
    "dt": dt.datetime.fromisoformat,
    "d": dt.date.fromisoformat,
    "tm": dt.time.fromisoformat,
    "dec": Decimal,
    "uuid": uuid.UUID,
    "b": base64.urlsafe_b64decode,
}


def _decode_value(value: Any) -> Any:
    if isinstance(value, dict):
        tag, text = value.get("t"), value.get("v")
        decode = _DECODERS.get(tag) if isinstance(tag, str) else None
        if decode is None or not isinstance(text, str) or len(value) != 2:
            raise invalid_cursor("unknown value")
        try:
            return decode(text)
        except (ValueError, ArithmeticError, binascii.Error) as exc:
            raise invalid_cursor("bad value") from exc
    if isinstance(value, list):
        raise invalid_cursor("bad value")
    return value


def encode_check(values: Sequence[Any], keys: Sequence[OrderKey]) -> None:
    """Refuse NULL values of sort columns not known to hold NULLs (``E_INVALID_ARGUMENT``)."""
    for key, value in zip(keys, values, strict=True):
        if value is None and not key.nullable:
            raise LucidError(
                f'cursor_paginate() found NULL in sort column "{key.name}": keyset pagination '
                "needs non-null sort columns (a comparison with NULL matches no row)",
                code="E_INVALID_ARGUMENT",
            )


def encode_cursor(values: Sequence[Any], direction: str, keys: Sequence[OrderKey]) -> str:
    """The token of a page boundary: ``direction`` is ``"next"`` or ``"prev"``."""
    encode_check(values, keys)
    return _pack([_encode_value(v) for v in values], direction, keys)


# ``json.dumps(doc, separators=(",", ":"))`` without building an encoder per token.
_DUMPS = json.JSONEncoder(separators=(",", ":")).encode

# The tokens this process packed lately, with what decoding them gives: ``(ordering checksum,
# forward, values)``. A page's ``next_cursor`` is usually the next request's cursor: its
# decoding (base64, JSON, the tagged values) is then a look-up. Decoding is a pure function of
# the token, so a hit answers exactly what the long way would (the values' fit to the columns
# is still checked per query). Bounded: the oldest entry goes first.
_PACKED: dict[str, tuple[int, bool, tuple[Any, ...]]] = {}
_PACKED_MAX = 256
_MAX_TOKEN = 4096
# Scalars JSON gives back as themselves (subclasses, e.g. an IntEnum, come back as the base).
_PLAIN = frozenset({int, str, float, bool, type(None)})
# With ``LUCID_FAST_PATHS=0`` every cursor is decoded the long way.
_REMEMBER = fast_paths_default()


def _pack(
    encoded: list[Any], direction: str, keys: Sequence[OrderKey], checksum: int | None = None
) -> str:
    """The token of values already checked and encoded (``_encode_value``); ``checksum``:
    ``signature(keys)`` when the caller has it."""
    if checksum is None:
        checksum = signature(keys)
    d = "n" if direction == "next" else "p"
    ints = _ONLY_INTS(map(type, encoded))
    if ints:
        # Integer keys (the usual primary key): the exact text ``_DUMPS`` writes for them,
        # without the encoder's generic walk (a third of a page's own cost on a short page).
        text = f'{{"d":"{d}","v":[{",".join(map(str, encoded))}],"o":{checksum}}}'
    else:
        text = _DUMPS({"d": d, "v": encoded, "o": checksum})
    # ``base64.urlsafe_b64encode`` without its two Python calls: the same steps.
    token = (
        binascii.b2a_base64(text.encode(), newline=False)
        .translate(_TO_URLSAFE)
        .rstrip(b"=")
        .decode()
    )
    if _REMEMBER and len(token) <= _MAX_TOKEN:
        # Integers decode as themselves: no value to look at.
        values = tuple(encoded) if ints else _remembered(encoded)
        if values is not None:
            if len(_PACKED) >= _PACKED_MAX:
                # Another thread may evict at the same time: one entry more or less is fine.
                with contextlib.suppress(KeyError, RuntimeError, StopIteration):
                    del _PACKED[next(iter(_PACKED))]
            _PACKED[token] = (checksum, direction == "next", values)
    return token


# ``all(type(v) is int for v in values)`` of ``map(type, values)``, in C.
_ONLY_INTS = frozenset({int}).issuperset
_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")
_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")


def _remembered(encoded: list[Any]) -> tuple[Any, ...] | None:
    """The values decoding ``encoded`` gives, ``None`` when it is not to be remembered."""
    values: list[Any] = []
    for value in encoded:
        if isinstance(value, dict):
            try:
                value = _decode_value(value)
            except LucidError:
                return None  # decoded the long way (and refused) when it comes back
        elif type(value) not in _PLAIN:
            return None
        values.append(value)
    return tuple(values)


def decode_cursor(
    token: Any,
    keys: Sequence[OrderKey],
    checksum: int | None = None,
    expected: Sequence[Any] | None = None,
) -> tuple[bool, list[Any]]:
    """``(forward, values)`` of a token made by ``encode_cursor`` for the same ordering;
    ``E_INVALID_CURSOR`` (status 400) for anything else. ``checksum``: ``signature(keys)``,
    ``expected``: the ``_expected_type`` of each key, when the caller has them."""
    if not isinstance(token, str) or not token or len(token) > _MAX_TOKEN:
        raise invalid_cursor("expected a cursor string")
    if checksum is None:
        checksum = signature(keys)
    packed = _PACKED.get(token)
    if packed is not None:
        if packed[0] != checksum or len(packed[2]) != len(keys):
            raise invalid_cursor("it was made for another ordering of the query")
        decoded = list(packed[2])
        _check_types(keys, decoded, expected)
        return packed[1], decoded
    try:
        # ``base64.urlsafe_b64decode`` without its three Python calls: the same steps.
        raw = binascii.a2b_base64(
            (token + "=" * (-len(token) % 4)).encode("ascii").translate(_FROM_URLSAFE),
            strict_mode=False,
        )
        doc = json.loads(raw)
    except (ValueError, binascii.Error) as exc:
        raise invalid_cursor("it does not decode") from exc
    if not isinstance(doc, dict) or set(doc) != {"d", "v", "o"}:
        raise invalid_cursor("unexpected content")
    direction, values = doc["d"], doc["v"]
    if direction not in ("n", "p") or not isinstance(values, list):
        raise invalid_cursor("unexpected content")
    if doc["o"] != checksum or len(values) != len(keys):
        raise invalid_cursor("it was made for another ordering of the query")
    decoded = [_decode_value(v) for v in values]
    _check_types(keys, decoded, expected)
    return direction == "n", decoded


def _check_types(keys: Sequence[OrderKey], values: list[Any], expected: Any) -> None:
    if expected is None:
        for key, value in zip(keys, values, strict=True):
            _check_type(key, value)
    else:
        for key, value, want in zip(keys, values, expected, strict=True):
            if type(value) is not want:  # a value of exactly that type fits
                _check_type(key, value, want)


def _check_type(key: OrderKey, value: Any, expected: Any = None) -> None:
    """Refuse a value the column can't hold (a forged cursor), before the database does.
    ``expected``: ``_expected_type(key)`` when the caller has it."""
    if value is None:
        if key.nullable:
            return
        raise invalid_cursor("a sort value is missing")
    if expected is None or expected is _ASK:
        try:
            expected = key.column.type.python_type
        except NotImplementedError:
            return
    elif expected is _ANY:
        return
    if expected is float:
        ok = isinstance(value, int | float | Decimal) and not isinstance(value, bool)
    elif expected is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif expected is Decimal:
        ok = isinstance(value, int | Decimal) and not isinstance(value, bool)
    else:
        ok = isinstance(value, expected)
    if not ok:
        raise invalid_cursor(f'a value does not fit column "{key.name}"')


# ``_expected_type`` of a column type without a Python type (every value passes), and of one
# whose ``python_type`` raised otherwise (asked again per value, to raise as before).
_ANY = object()
_ASK = object()


def _expected_type(key: OrderKey) -> Any:
    """The Python type ``_check_type`` holds the cursor values of ``key`` to: its column
    type's ``python_type``, ``_ANY`` when it has none, ``_ASK`` when asking raised."""
    try:
        return key.column.type.python_type
    except NotImplementedError:
        return _ANY
    except Exception:
        return _ASK


# -- the keyset condition --------------------------------------------------------------------------
def keyset_condition(
    keys: Sequence[OrderKey], values: Sequence[Any], forward: bool, nulls_high: bool = False
) -> ColumnElement[Any]:
    """The rows after (``forward``) or before the boundary ``values`` in the order of
    ``keys``: one row-value comparison when every key sorts the same way, else the expanded
    OR of equal prefixes; NULL-aware (``_with_nulls``) when a key may hold NULL, in the order
    of a database that sorts NULL above every value (``nulls_high``) or below."""
    if any(k.nullable for k in keys) and (
        any(v is None for v in values)
        or any(k.nullable and nulls_high == (k.desc != forward) for k in keys)
    ):
        # NULLs past the boundary, or a NULL boundary value. Otherwise (non-NULL values,
        # every NULL before them in the reading direction: SQLite and MySQL reading
        # ascending columns forward) the plain forms below are exact: a comparison with
        # NULL is never true, and those rows are behind the boundary anyway.
        return _with_nulls(keys, values, forward, nulls_high)
    if len(keys) == 1:
        # asc + forward or desc + backward: greater; else smaller.
        op = operator.gt if keys[0].desc != forward else operator.lt
        plain = plain_literal_compare(keys[0].column, op, values[0])
        if plain is not None:
            return plain
    bound = [literal(v, k.column.type) for k, v in zip(keys, values, strict=True)]
    if all(k.desc == keys[0].desc for k in keys):
        # asc + forward or desc + backward: greater; else smaller.
        greater = keys[0].desc != forward
        if len(keys) == 1:
            col = keys[0].column
            return col > bound[0] if greater else col < bound[0]
        left, right = tuple_(*(k.column for k in keys)), tuple_(*bound)
        return left > right if greater else left < right
    terms: list[ColumnElement[Any]] = []
    for i, key in enumerate(keys):
        greater = key.desc != forward
        step = key.column > bound[i] if greater else key.column < bound[i]
        equal = [keys[j].column == bound[j] for j in range(i)]
        terms.append(and_(*equal, step) if equal else step)
    return or_(*terms)


def _with_nulls(
    keys: Sequence[OrderKey], values: Sequence[Any], forward: bool, nulls_high: bool
) -> ColumnElement[Any]:
    """The expanded keyset condition with NULL as the database orders it: per key, the rows
    past the boundary value in the reading direction, after an equal prefix (``IS NULL`` for
    a NULL boundary value). Reading towards greater values where NULL sorts high (or towards
    smaller ones where it sorts low), the NULLs come after every value: past a value are the
    greater ones and the NULLs, past NULL nothing (that term drops out); the other way round,
    past a value are the smaller ones only, past NULL every non-NULL value."""
    terms: list[ColumnElement[Any]] = []
    equal: list[ColumnElement[Any]] = []
    for key, value in zip(keys, values, strict=True):
        col = key.column
        greater = key.desc != forward
        nulls_after = nulls_high == greater
        step: ColumnElement[Any] | None
        same: ColumnElement[Any]
        if value is None:
            step = None if nulls_after else col.is_not(None)
            same = col.is_(None)
        else:
            bound = literal(value, col.type)
            step = col > bound if greater else col < bound
            if key.nullable and nulls_after:
                step = or_(step, col.is_(None))
            same = col == bound
        if step is not None:
            terms.append(and_(*equal, step) if equal else step)
        equal.append(same)
    return or_(*terms) if terms else false()


_is_none = functools.partial(operator.is_, None)


# -- the page --------------------------------------------------------------------------------------
class CursorPaginator(Generic[T]):
    """One page of a cursor-paginated query: ``data``, ``next_cursor``, ``previous_cursor``,
    ``has_more`` (a page follows this one), ``per_page``; iterable, ``len()``, indexable.
    ``serialize()`` gives ``{"meta": {...}, "data": [...]}`` with the meta keys spelled as the
    model's naming strategy spells the paginator's (``perPage``/``nextCursor`` in camelCase)."""

    def __init__(
        self,
        rows: Sequence[T],
        per_page: int,
        next_cursor: str | None,
        previous_cursor: str | None,
        naming_strategy: MetaKeysNaming | None = None,
    ) -> None:
        self.data: list[T] = list(rows)
        self.per_page = per_page
        self._next_cursor = next_cursor
        self._previous_cursor = previous_cursor
        # The boundary values of a token not encoded yet, by direction ("next"/"prev").
        # (values, ordering, its checksum)
        self._boundaries: dict[str, tuple[list[Any], Sequence[OrderKey], int]] = {}
        self.naming_strategy: MetaKeysNaming = (
            SnakeCaseMetaKeys() if naming_strategy is None else naming_strategy
        )

    def _token(self, direction: str) -> str | None:
        pending = self._boundaries.pop(direction, None)
        if pending is None:
            return None
        token = _pack(pending[0], direction, pending[1], pending[2])
        if direction == "next":
            self._next_cursor = token
        else:
            self._previous_cursor = token
        return token

    @property
    def next_cursor(self) -> str | None:
        """The token of the page after this one, ``None`` on the last page."""
        if self._next_cursor is None and self._boundaries:
            return self._token("next")
        return self._next_cursor

    @next_cursor.setter
    def next_cursor(self, value: str | None) -> None:
        self._boundaries.pop("next", None)
        self._next_cursor = value

    @property
    def previous_cursor(self) -> str | None:
        """The token of the page before this one, ``None`` on the first page."""
        if self._previous_cursor is None and self._boundaries:
            return self._token("prev")
        return self._previous_cursor

    @previous_cursor.setter
    def previous_cursor(self, value: str | None) -> None:
        self._boundaries.pop("prev", None)
        self._previous_cursor = value

    @property
    def has_more(self) -> bool:
        """Whether a page follows this one (``next_cursor`` is set)."""
        return self._next_cursor is not None or "next" in self._boundaries

    @property
    def is_empty(self) -> bool:
        """Whether this page has no rows."""
        return not self.data

    def all(self) -> list[T]:
        """The rows of this page."""
        return self.data

    def meta_keys(self) -> dict[str, str]:
        """The meta keys, canonical name → spelling: camelCase when the naming strategy
        spells the paginator's ``per_page`` as ``perPage``."""
        names = ("per_page", "next_cursor", "previous_cursor", "has_more")
        per_page = self.naming_strategy.pagination_meta_keys()["per_page"]
        if per_page == "per_page":
            return {n: n for n in names}
        return {n: _camel(n) for n in names}

    def get_meta(self) -> dict[str, Any]:
        """``per_page``, ``next_cursor``, ``previous_cursor``, ``has_more``."""
        keys = self.meta_keys()
        return {
            keys["per_page"]: self.per_page,
            keys["next_cursor"]: self.next_cursor,
            keys["previous_cursor"]: self.previous_cursor,
            keys["has_more"]: self.has_more,
        }

    def serialize(self, cherry_pick: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """``{"meta": get_meta(), "data": [...]}``; instances serialized with
        ``cherry_pick``, plain dicts kept as they are."""
        data: list[Any] = []
        for row in self.data:
            serialize = getattr(row, "serialize", None)
            data.append(serialize(cherry_pick) if callable(serialize) else row)
        return {"meta": self.get_meta(), "data": data}

    def to_json(self) -> dict[str, Any]:
        """Same as :meth:`serialize` without cherry picking."""
        return self.serialize()

    def __len__(self) -> int:
        return len(self.data)

    def __iter__(self) -> Iterator[T]:
        return iter(self.data)

    def __getitem__(self, index: int) -> T:
        return self.data[index]

    def __bool__(self) -> bool:
        return bool(self.data)

    def __repr__(self) -> str:
        return (
            f"<CursorPaginator rows={len(self.data)} has_more={self.has_more} "
            f"per_page={self.per_page}>"
        )


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


async def paginate_by_cursor(
    builder: Any,
    per_page: int,
    cursor: str | None,
    tie_breakers: Sequence[ColumnElement[Any]],
    reader_of: Callable[[OrderKey], Callable[[Any], Any]],
    naming_strategy: MetaKeysNaming | None = None,
    nullable: Callable[[OrderKey], bool | None] | None = None,
    shape: Hashable | None = None,
) -> CursorPaginator[Any]:
    """Run one page of ``builder`` (a ``Chainable`` whose ``exec()`` returns rows):
    ``tie_breakers`` (the primary key) are appended to its ordering unless it has them;
    ``reader_of(key)`` is the function that reads that sort value back from a row (resolved
    once per query shape or page, not per row); ``nullable(key)``: whether that sort column
    may hold NULL (none may, without it; ``None``: not known yet, taken as no). ``shape``
    stands for what ``reader_of`` and ``nullable`` answer: the plan of the page is then kept
    for the next page of the same shape (``page_plan``)."""
    if type(per_page) is not int or per_page < 1:
        check_page(1, per_page, "cursor_paginate")
    plan = page_plan(builder.state.order_by, tie_breakers, reader_of, nullable, shape)
    keys = plan.keys
    forward = True
    page = builder.clone()
    state = page.state
    if cursor is not None:
        forward, values = decode_cursor(cursor, keys, plan.checksum, plan.expected)
        # AND-ed around the user's conditions: an or_where can't escape the keyset.
        # (Where NULLs sort matters only when a key may hold one: the dialect asked then.)
        nulls_high = plan.nullable and builder.client.dialect_ops.nulls_sort_high
        state.scoped.append(keyset_condition(keys, values, forward, nulls_high))
    state.order_by = list(plan.forward if forward else plan.backward)
    state.limit = per_page + 1
    state.offset = None
    rows = list(await page.exec())
    # A NULL sort value would drop out of every later keyset comparison: refuse it as soon
    # as such a row is read (the extra row included), never skip rows silently.
    for key, read in plan.checked:
        # ``None in`` is the quick test (compared in C, identity first); a value that claims
        # equality with None is then told apart by identity, which is what counts.
        if None in map(read, rows) and any(map(_is_none, map(read, rows))):
            encode_check([None], [key])
    more = len(rows) > per_page
    if more:
        del rows[per_page:]
    if not forward:
        rows.reverse()

    page_of = CursorPaginator(rows, per_page, None, None, naming_strategy)
    if rows:
        # Forward: a next page when the extra row came; a previous one when we came from one.
        # Backward: the mirror image. The values are read and encoded now (a value no token
        # can hold raises here); the token itself is packed when first read.
        readers = plan.readers
        if more if forward else True:
            last = [_encode_value(r(rows[-1])) for r in readers]
            page_of._boundaries["next"] = (last, keys, plan.checksum)
        if (cursor is not None) if forward else more:
            first = [_encode_value(r(rows[0])) for r in readers]
            page_of._boundaries["prev"] = (first, keys, plan.checksum)
    return page_of
