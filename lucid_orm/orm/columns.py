"""Column definitions: ``column()``, ``column.date()``, ``column.date_time()``, ``@computed``,
and the mapping from Python annotations to SQLAlchemy types (UTC datetimes, exact decimals,
floats checked against what the database can hold, UUIDs, JSON)."""

from __future__ import annotations

import datetime as _dt
import enum
import operator
import types
import typing
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Generic, TypeVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    LargeBinary,
    Numeric,
    String,
    Time,
    TypeDecorator,
)
from sqlalchemy.engine.interfaces import Dialect
from sqlalchemy.types import NullType, TypeEngine, UserDefinedType

from ..database.executor import NAIVE_ONLY, NAIVE_TO_UTC
from ..errors import UnstorableValueError
from ..query.chainable import ColumnReference, utc_naive

UTC = _dt.UTC
# "Not given" for options whose ``None`` means something (``serialize_as=None`` hides).
UNSET: Any = object()
# PostgreSQL's type OID for ``timestamp with time zone``.
_PG_TIMESTAMPTZ_OID = 1184
_INF = float("inf")


def _no_nan(value: Any, dialect: str) -> None:
    raise UnstorableValueError(
        f"Cannot store {value!r}: {dialect} has no NaN (SQLite would store NULL). Store None "
        "for a missing number, or use PostgreSQL, whose float and numeric columns hold NaN."
    )


def _to_utc(value: _dt.datetime) -> _dt.datetime:
    """``value`` in UTC; a datetime outside years 1-9999 once in UTC (``datetime.min`` east
    of UTC, ``datetime.max`` west of it) can't be stored: ``UnstorableValueError``."""
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise UnstorableValueError(
            f"Cannot store {value!r}: in UTC it falls outside years 1-9999. Give it in UTC "
            "(datetime.max/min with tzinfo=UTC are stored as they are)."
        ) from None


class UTCDateTime(TypeDecorator[_dt.datetime]):
    """Writes datetimes as UTC (naive UTC on the wire) and reads them back timezone-aware UTC,
    ``datetime.max``/``datetime.min`` included.

    asyncpg sends ``datetime.max``/``min`` (naive or aware) as PostgreSQL's ``infinity`` /
    ``-infinity`` (the binary protocol has no other form for them) and reads those back as
    *naive* datetimes; from a ``timestamptz`` column, which asyncpg otherwise decodes as aware
    UTC, the result processor makes those aware. (They were once mapped in SQL, a ``CASE``
    around each selected column: the server then evaluated it for every row a sort read, not
    only for the rows returned — 10,000 rows for a page of 20 from an ORDER BY … LIMIT …
    OFFSET, more than the page itself cost.)"""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if isinstance(value, _dt.datetime):
            tz = value.tzinfo
            if tz is not None and tz is not UTC:
                value = _to_utc(value)
            return utc_naive(value)
        return value

    def bind_processor(self, dialect: Dialect) -> Any:
        composed: Any = super().bind_processor(dialect)
        utc = UTC
        datetime_cls = _dt.datetime
        if dialect.name != "sqlite":
            # ``process_bind_param`` then the impl's processor, in one call for a plain
            # datetime (the composed chain is three calls and an isinstance per value); any
            # other value (None, a subclass, a date) takes the composed chain.
            impl = self.impl_instance.bind_processor(dialect)
            combine = _dt.datetime.combine

            def naive_utc(value: Any) -> Any:
                if value.__class__ is datetime_cls:
                    tz = value.tzinfo
                    if tz is not None:
                        if tz is not utc:
                            value = _to_utc(value)
                        value = combine(value.date(), value.time())
                    return value if impl is None else impl(value)
                return composed(value)

            return naive_utc
        # SQLite stores SQLAlchemy's DATETIME text, ``YYYY-MM-DD HH:MM:SS.ffffff`` in UTC;
        # ``isoformat`` writes exactly that in one C call for a naive value (the composed
        # chain does two conversions and a %-format per value). For an aware one it also
        # asks the zone for its offset and writes it, to be cut off: the fields read in one
        # C call and %-formatted cost about two thirds of that (years are 1-9999, so
        # ``%04d`` is ``isoformat``'s zero-padded year).
        fields = operator.attrgetter(
            "year", "month", "day", "hour", "minute", "second", "microsecond"
        )
        text = "%04d-%02d-%02d %02d:%02d:%02d.%06d".__mod__

        def process(value: Any) -> Any:
            if value.__class__ is datetime_cls:
                tz = value.tzinfo
                if tz is None:
                    return value.isoformat(" ", "microseconds")
                if tz is not utc:
                    value = _to_utc(value)
                return text(fields(value))
            if value is None or composed is None:
                return value
            return composed(value)

        return process

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if isinstance(value, str):
            value = _dt.datetime.fromisoformat(value)
        if isinstance(value, _dt.datetime):
            if value.tzinfo is None:
                return value.replace(tzinfo=UTC)
            return value.astimezone(UTC)
        return value

    def result_processor(self, dialect: Dialect, coltype: Any) -> Any:
        # One function per value instead of SQLAlchemy's impl-then-decorator chain: this runs
        # for every datetime of every row. ``replace(tzinfo=)`` is slow (keyword parsing);
        # parsing the offset along with the text, or ``combine``, is several times faster.
        parse = _dt.datetime.fromisoformat
        combine = _dt.datetime.combine
        utc = UTC
        datetime_cls = _dt.datetime
        if coltype == _PG_TIMESTAMPTZ_OID and dialect.driver == "asyncpg":
            # asyncpg decodes ``timestamptz`` as aware UTC datetimes already; only ``infinity``
            # and ``-infinity`` come back naive (``datetime.max``/``min``).
            def aware(value: Any) -> Any:
                if value is not None and value.tzinfo is None:
                    return combine(value.date(), value.time(), utc)
                return value

            # The lean read path then checks these values in one pass per result and converts
            # only the rare row holding one (executor._converter): no tuple per row.
            aware.__dict__[NAIVE_ONLY] = True
            return aware

        def process(value: Any) -> Any:
            if value is None:
                return None
            if value.__class__ is str:
                if len(value) > 19 and (value[-6] in "+-" or value[-1] == "Z"):
                    return parse(value).astimezone(utc)
                return parse(value + "+00:00")
            if isinstance(value, datetime_cls):
                tz = value.tzinfo
                if tz is None:
                    return combine(value.date(), value.time(), utc)
                return value if tz is utc else value.astimezone(utc)
            return value

        if dialect.name != "sqlite":
            # The driver gives naive datetimes (SQLite's gives text): the lean read path's
            # row converter does their ``combine`` itself, no call per value
            # (executor._converter).
            process.__dict__[NAIVE_TO_UTC] = True
        return process


class FloatType(TypeDecorator[float]):
    """``float``: NaN and infinities are stored where the database holds them (PostgreSQL
    all, SQLite the infinities) and refused before the write elsewhere, never turned into
    NULL (SQLite's answer to NaN) or an error of the driver."""

    impl = Float
    cache_ok = True

    def bind_processor(self, dialect: Dialect) -> Any:
        composed = self.impl_instance.bind_processor(dialect)
        name = dialect.name
        if name == "postgresql":
            return composed
        inf = _INF

        def process(value: Any) -> Any:
            # ``value != value`` only for NaN (float or Decimal); None passes.
            if value != value or (name != "sqlite" and (value == inf or value == -inf)):
                if value != value:
                    _no_nan(value, "SQLite" if name == "sqlite" else "MariaDB/MySQL")
                raise UnstorableValueError(
                    f"Cannot store {value!r}: MariaDB/MySQL floats hold no infinity. Store "
                    "None, or a bound of your own (sys.float_info.max)."
                )
            return composed(value) if composed is not None else value

        return process


class _SQLiteDecimal(UserDefinedType[Decimal]):
    """SQLite's side of ``DecimalType``: no conversion by SQLAlchemy (which goes through
    float); ``DecimalType`` binds and reads the values itself."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "NUMERIC"


# Decimals of up to 15 significant digits (DBL_DIG) survive decimal -> double -> decimal.
_DBL_DIG = 15
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _sqlite_decimal_bind(value: Any) -> Any:
    """A ``Decimal`` as SQLite can hold it exactly, in any column affinity: an INTEGER when it
    is a whole number in 64 bits, a REAL when it has at most 15 significant digits (both
    compare and sort as numbers in SQL), else its text as a BLOB (SQLite rounds numeric text
    to a double in a NUMERIC column, but stores BLOBs as given)."""
    if value is None:
        return None
    if value.__class__ is not Decimal:
        if isinstance(value, float):
            if value != value:
                _no_nan(value, "SQLite")
            return value
        if isinstance(value, int):
            return value
        value = Decimal(value)
    if not value.is_finite():
        if value.is_nan():
            _no_nan(value, "SQLite")
        return float(value)  # SQLite's REAL holds the infinities
    exponent = value.adjusted()
    if exponent < 19 and value == value.to_integral_value():
        whole = int(value)
        if _INT64_MIN <= whole <= _INT64_MAX:
            return whole
    if len(value.as_tuple().digits) <= _DBL_DIG and -307 <= exponent <= 308:
        return float(value)
    return str(value).encode("ascii")


def _sqlite_decimal_result(value: Any) -> Any:
    cls = value.__class__
    if cls is float:
        # The shortest text that reads back as this double: the digits that were written.
        return Decimal(repr(value))
    if cls is int or cls is str:
        return Decimal(value)
    if cls is bytes:
        return Decimal(value.decode("ascii"))
    return value


class DecimalType(TypeDecorator[Decimal]):
    """``Decimal``, exact on every dialect: PostgreSQL and MariaDB hold it natively (within
    the column's precision and scale; NaN on PostgreSQL, refused before the write on
    MariaDB); on SQLite see ``_sqlite_decimal_bind``."""

    impl = Numeric(asdecimal=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return _SQLiteDecimal()
        return dialect.type_descriptor(self.impl_instance)

    def process_literal_param(self, value: Any, dialect: Dialect) -> Any:
        # Inlined values (``to_query``): SQLite's impl renders none of its own.
        return str(value) if dialect.name == "sqlite" else value

    def bind_processor(self, dialect: Dialect) -> Any:
        if dialect.name == "sqlite":
            return _sqlite_decimal_bind
        composed = self.impl_instance.bind_processor(dialect)
        if dialect.name == "postgresql":
            return composed
        inf = _INF

        def process(value: Any) -> Any:
            if value.__class__ is Decimal:
                finite = value.is_finite()
            else:
                finite = not isinstance(value, float) or (value == value and abs(value) != inf)
            if not finite:
                raise UnstorableValueError(
                    f"Cannot store {value!r}: MariaDB/MySQL decimals hold neither NaN nor "
                    "infinity. Store None, or use PostgreSQL (NaN in any numeric column)."
                )
            return composed(value) if composed is not None else value

        return process

    def result_processor(self, dialect: Dialect, coltype: Any) -> Any:
        if dialect.name == "sqlite":

            def process(value: Any) -> Any:
                return _sqlite_decimal_result(value) if value is not None else None

            return process
        return self.impl_instance.result_processor(dialect, coltype)


class _UncastText(UserDefinedType[str]):
    """Text bound with no cast on PostgreSQL: the server types the parameter from the column
    it meets (``uuid`` or ``varchar``), and asyncpg encodes the text either way."""

    cache_ok = True
    render_bind_cast = False

    def get_col_spec(self, **kw: Any) -> str:
        return "VARCHAR(36)"


class UUIDType(TypeDecorator[uuid.UUID]):
    """``uuid.UUID`` written as its 36-character text: a ``VARCHAR(36)`` column, or on
    PostgreSQL a native ``uuid`` one (what the schema builder's ``uuid()`` creates there)."""

    impl = String(36)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return _UncastText()
        return dialect.type_descriptor(self.impl_instance)

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        return str(value) if value is not None else None

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if value is None or isinstance(value, uuid.UUID):
            return value
        return uuid.UUID(str(value))


class EnumValue(TypeDecorator[Any]):
    """A Python ``Enum`` stored as its value."""

    impl = String
    cache_ok = True

    def __init__(self, enum_cls: type[enum.Enum]) -> None:
        super().__init__()
        self.enum_cls = enum_cls

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        return value.value if isinstance(value, enum.Enum) else value

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        return self.enum_cls(value) if value is not None else None


class BoolType(TypeDecorator[bool]):
    """``bool`` on every dialect (MariaDB and SQLite hand back integers)."""

    impl = Boolean(create_constraint=False)
    cache_ok = True

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        return bool(value) if value is not None else None


def allows_none(annotation: Any, *, untyped: bool = False) -> bool:
    """Whether a column annotation admits ``None``: ``X | None``, ``Optional[X]``, ``None``
    itself, also inside ``Annotated[...]``. ``untyped``: the answer for no annotation
    (``None`` here) and for ``Any``."""
    if annotation is None or annotation is typing.Any:
        return untyped
    if annotation is type(None):
        return True
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return allows_none(typing.get_args(annotation)[0], untyped=untyped)
    if origin is typing.Union or origin is types.UnionType:
        return type(None) in typing.get_args(annotation)
    return False


def _strip_optional(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    if origin is typing.Annotated:
        return typing.get_args(annotation)[0]
    return annotation


def sql_type_for(annotation: Any) -> TypeEngine[Any]:
    """The SQLAlchemy type for a column annotation (``int``, ``str``, ``datetime``…)."""
    ann = _strip_optional(annotation)
    base = typing.get_origin(ann) or ann
    if base is bool:
        return BoolType()
    if isinstance(base, type):
        if issubclass(base, enum.Enum):
            return EnumValue(base)
        if issubclass(base, int):
            # BIGINT binds: a Python int may exceed 32 bits, and asyncpg refuses such a value
            # for an INTEGER parameter (it still compares/inserts fine into INTEGER columns).
            return BigInteger()
        if issubclass(base, float):
            return FloatType()
        if issubclass(base, Decimal):
            return DecimalType()
        if issubclass(base, str):
            return String()
        if issubclass(base, _dt.datetime):
            return UTCDateTime()
        if issubclass(base, _dt.date):
            return Date()
        if issubclass(base, _dt.time):
            return Time()
        if issubclass(base, dict | list):
            return JSON()
        if issubclass(base, bytes):
            return LargeBinary()
        if issubclass(base, uuid.UUID):
            return UUIDType()
    if base is typing.Any or _json_union(ann):
        return JSON()
    return NullType()


def _json_union(annotation: Any) -> bool:
    """``dict[str, Any] | list[Any]`` (optional or not): a JSON column of either shape."""
    origin = typing.get_origin(annotation)
    if origin is not typing.Union and origin is not types.UnionType:
        return False
    members = [a for a in typing.get_args(annotation) if a is not type(None)]
    return all(
        isinstance(base := typing.get_origin(m) or m, type) and issubclass(base, dict | list)
        for m in members
    )


@dataclass(slots=True)
class ColumnDef:
    """A column's options as declared (``column(...)``); completed when the model class is made.

    ``attribute_name`` is the Python attribute, ``column_name`` the database column.
    """

    is_primary: bool = False
    column_name: str = ""  # "" until the model class fills it from the naming strategy
    serialize_as: Any = UNSET
    serialize: Callable[[Any, str, Any], Any] | None = None
    prepare: Callable[[Any, str, Any], Any] | None = None
    consume: Callable[[Any, str, Any], Any] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    type_: TypeEngine[Any] | None = None
    kind: str = "column"  # "column" | "date" | "datetime"
    auto_create: bool = False
    auto_update: bool = False
    attribute_name: str = ""
    has_explicit_type: bool = False

    @property
    def is_json(self) -> bool:
        return isinstance(self.type_, JSON)


class ColumnAttribute(ColumnReference):
    """A column on its model class: ``Post.title`` is a column reference that the query
    builders take wherever they take a column name (``where(Post.title, "like", "A%")``,
    ``order_by(Post.created_at, "desc")``). Instances keep their values in ``__dict__``; this
    is a non-data descriptor, so reading ``post.title`` never calls it (the same plain
    attribute read as before) — only a column that was never set or selected lands here, and
    reads ``None``.

    On CPython 3.11 a descriptor here keeps ``post.title`` from being specialized, yet a plain
    ``None`` in its place (with the class access served by a metaclass) gains nothing: the
    instances hydration makes hold a split ``__dict__`` (shared keys), which 3.11's
    specialized dict-hint read cannot use, so their reads cost the same either way (measured
    ~22 ns each). Only combined dicts would read faster, at ~180 ns more per hydrated row and
    twice the dict's memory."""

    __slots__ = ("attribute",)

    def __init__(self, model: type, table_name: str, definition: ColumnDef) -> None:
        super().__init__(table_name, definition.column_name, model)
        #: The attribute name (``column_name`` is the database column's).
        self.attribute = definition.attribute_name

    @typing.overload
    def __get__(self, obj: None, owner: type) -> ColumnAttribute: ...

    @typing.overload
    def __get__(self, obj: object, owner: type) -> Any: ...

    def __get__(self, obj: object | None, owner: type) -> Any:
        return self if obj is None else None

    def __repr__(self) -> str:
        owner = getattr(self.owner, "__name__", "?")
        return f"<column {owner}.{self.attribute} ({self.qualified_name()})>"


class _ColumnFactory:
    """``column(...)`` declares a column; ``column.date(...)`` / ``column.date_time(...)``
    declare date and datetime columns (with ``auto_create`` / ``auto_update`` timestamps)."""

    def __call__(
        self,
        *,
        is_primary: bool = False,
        column_name: str | None = None,
        serialize_as: str | None = UNSET,
        serialize: Callable[[Any, str, Any], Any] | None = None,
        prepare: Callable[[Any, str, Any], Any] | None = None,
        consume: Callable[[Any, str, Any], Any] | None = None,
        meta: dict[str, Any] | None = None,
        type_: TypeEngine[Any] | None = None,
    ) -> Any:
        return ColumnDef(
            is_primary=is_primary,
            column_name=column_name or "",
            serialize_as=serialize_as,
            serialize=serialize,
            prepare=prepare,
            consume=consume,
            meta=dict(meta or {}),
            type_=type_,
            has_explicit_type=type_ is not None,
        )

    def date(
        self,
        *,
        auto_create: bool = False,
        auto_update: bool = False,
        column_name: str | None = None,
        serialize_as: str | None = UNSET,
        serialize: Callable[[Any, str, Any], Any] | None = None,
        meta: dict[str, Any] | None = None,
    ) -> Any:
        """A ``datetime.date`` column; ``auto_create``/``auto_update`` set today's date."""
        return ColumnDef(
            column_name=column_name or "",
            serialize_as=serialize_as,
            serialize=serialize,
            meta=dict(meta or {}),
            type_=Date(),
            kind="date",
            auto_create=auto_create,
            auto_update=auto_update,
            has_explicit_type=True,
        )

    def date_time(
        self,
        *,
        auto_create: bool = False,
        auto_update: bool = False,
        column_name: str | None = None,
        serialize_as: str | None = UNSET,
        serialize: Callable[[Any, str, Any], Any] | None = None,
        meta: dict[str, Any] | None = None,
    ) -> Any:
        """A timezone-aware UTC ``datetime`` column; ``auto_create`` sets it on insert,
        ``auto_update`` on every update."""
        return ColumnDef(
            column_name=column_name or "",
            serialize_as=serialize_as,
            serialize=serialize,
            meta=dict(meta or {}),
            type_=UTCDateTime(),
            kind="datetime",
            auto_create=auto_create,
            auto_update=auto_update,
            has_explicit_type=True,
        )


column = _ColumnFactory()
"""Declare a model column: ``email: str = column()``; see :class:`_ColumnFactory`."""

T = TypeVar("T")


class computed(Generic[T]):
    """A read-only computed property included in ``serialize()``::

        @computed
        def full_name(self) -> str:
            return f"{self.first_name} {self.last_name}"

    ``@computed(serialize_as="fullName")`` renames it in ``serialize()``.
    """

    def __init__(
        self, fn: Callable[[Any], T] | None = None, *, serialize_as: str | None = UNSET
    ) -> None:
        self.fn = fn
        self.serialize_as = serialize_as
        self.name = fn.__name__ if fn is not None else ""

    def __call__(self, fn: Callable[[Any], T]) -> computed[T]:
        self.fn = fn
        self.name = fn.__name__
        return self

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @typing.overload
    def __get__(self, obj: None, owner: type) -> computed[T]: ...

    @typing.overload
    def __get__(self, obj: object, owner: type) -> T: ...

    def __get__(self, obj: object | None, owner: type) -> Any:
        if obj is None:
            return self
        assert self.fn is not None
        return self.fn(obj)
