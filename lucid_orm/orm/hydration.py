"""Rows to instances and back: hydration plans (one per result shape) with their generated fill
loops, ``hydrate()``, ``new_many()`` for bulk payloads, and ``set_columns()`` for bulk writes."""

from __future__ import annotations

import copy
import gc
import sys
from collections.abc import AsyncGenerator, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar
from weakref import getweakrefcount

from ..database.connection import fast_paths_default
from . import lazy_guard
from .binding import binding
from .model_info import info_of
from .state import EXTRAS, EXTRAS_ROW, LOCAL, ORIGINAL, PERSISTED, ROW, ROW_ATTRS, LazyExtras

if TYPE_CHECKING:
    from ..database.query_client import Client
    from .base_model import BaseModel
    from .columns import ColumnDef

M = TypeVar("M", bound="BaseModel")

GC_PAUSE_ROWS = 1000

# The ORM's fast paths (the generated fill loop per result shape, ``new_many``'s direct state
# setup) follow the process-wide switch of the database layer's: with ``LUCID_FAST_PATHS=0``
# every row goes through the general loop and every payload through ``merge``, so the slow
# pass of the suite holds each fast path against its twin.
FAST_PATHS = fast_paths_default()


@contextmanager
def gc_paused(rows: int) -> Iterator[None]:
    """Pause the cyclic garbage collector around a loop that builds ``rows`` instances when
    that is many: they can't form cycles, and the collections their allocations would trigger
    (each scanning every young object) cost as much as the loop itself."""
    if rows < GC_PAUSE_ROWS or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@dataclass(slots=True)
class HydrationPlan:
    """How to turn rows of one result shape into model attributes and extras."""

    attributes: list[str]  # attribute name per result column
    extras_index: list[tuple[int, str]]  # result columns that go to extras
    deep_copy: list[str]  # JSON attributes whose original must be a copy
    consume: list[tuple[str, Callable[[Any, str, Any], Any]]]
    # ``fill(cls, rows, stamp) -> instances`` (``stamp``: the binding state, or None) for rows
    # of exactly this width, written out once per shape (see filler); None when JSON copies or
    # consume functions need the slow path. Its extras are a dict per row, as the slow path's.
    fill: Callable[..., list[Any]] | None = None
    # ``fill`` keeping the extras lazy (state.py's ``LazyExtras``: ``hydrate(...,
    # lazy_extras=True)``); None without extras (``fill`` serves) or without ``fill``.
    fill_lazy: Callable[..., list[Any]] | None = None
    # ``each(cls, rows, stamp)``: the same loop as a generator, one instance per step
    # (``hydrate_each``); None with ``fill``.
    each: Callable[..., Iterator[Any]] | None = None
    # ``stream(cls, batches)``: the same loop as an async generator over a stream's batches
    # (``stream_batch``), one instance per step; None with ``fill``.
    stream: Callable[..., AsyncGenerator[Any, None]] | None = None


def build_plan(
    by_column: Mapping[str, ColumnDef], keys: Sequence[str], own: Sequence[str] = ()
) -> HydrationPlan:
    """The plan for result columns ``keys`` (columns not in ``by_column`` go to extras).
    ``own``: the model's column attributes in declaration order, the names ``ROW_ATTRS``
    stands for when absent (state.py)."""
    attributes: list[str] = []
    extras: list[tuple[int, str]] = []
    deep: list[str] = []
    consume: list[tuple[str, Callable[[Any, str, Any], Any]]] = []
    for i, k in enumerate(keys):
        col = by_column.get(k)
        if col is None:
            attributes.append(f"\x00{k}")
            extras.append((i, k))
            continue
        attributes.append(col.attribute_name)
        if col.is_json:
            deep.append(col.attribute_name)
        if col.consume is not None:
            consume.append((col.attribute_name, col.consume))
    plan = HydrationPlan(attributes, extras, deep, consume)
    if not deep and not consume:
        plan.fill, plan.each, plan.stream = filler(attributes, extras, own=own)
        if extras:
            plan.fill_lazy = filler(attributes, extras, lazy=True, own=own)[0]
    return plan


def filler(
    attributes: list[str],
    extras: list[tuple[int, str]],
    *,
    lazy: bool = False,
    own: Sequence[str] = (),
) -> tuple[
    Callable[..., list[Any]],
    Callable[..., Iterator[Any]],
    Callable[..., AsyncGenerator[Any, None]],
]:
    """The hydration loop for one result shape, generated: each row is unpacked into locals
    and stored with one subscript per attribute, which is several times cheaper per row than
    ``dict.update(zip(...))``. The code holds only quoted names (attributes, extras and the
    state keys of state.py); ``original`` is built lazily from ``ROW`` and ``ROW_ATTRS``. The
    extras are a dict per row, written out (``{"posts_count": v5}``: the aggregates a user
    selected, read on every row), or with ``lazy`` read from the row on first use (state.py's
    ``LazyExtras``, one per shape, and the row: no dict per row, which a preload's thousands
    of pivot rows would each keep for nobody). Returns the loop three times: building a list
    (``fill``), as a generator (``each``) and as an async generator over a stream's batches
    (``stream``: ``stream()`` hands out each instance from the loop itself, one generator step
    per row instead of two)."""
    extra_at = {i: k for i, k in extras}
    column_values: list[str] = []
    names: list[str] = []  # the column attributes, in row order
    for i, attr in enumerate(attributes):
        if i not in extra_at:
            column_values.append(f"v{i}")
            names.append(attr)
    if extras:
        values = [f"v{i}" for i in range(len(attributes))]
        lines = [f"{_tuple(values)} = row"]
        lines += [f"d[{attr!r}] = {v}" for attr, v in zip(names, column_values, strict=True)]
    else:
        # Every value is a column: unpacked straight into the ``__dict__``, no locals.
        lines = [f"{_tuple([f'd[{attr!r}]' for attr in names])} = row"]
    column_lines = len(lines)
    if extras:
        if min(extra_at) >= len(names):
            # The extras follow every column (a preload's pivot or through keys): the row
            # itself serves as ROW, whose reader stops at the last column (state.py).
            lines.append(f"d[{ROW!r}] = row")
        else:
            lines.append(f"d[{ROW!r}] = {_tuple(column_values)}")
        if lazy:
            lines += [f"d[{EXTRAS!r}] = lazy", f"d[{EXTRAS_ROW!r}] = row"]
        else:
            # A repeated name keeps its last value, as the slow path's comprehension does.
            pairs = ", ".join(f"{k!r}: v{i}" for i, k in extras)
            lines.append(f"d[{EXTRAS!r}] = {{{pairs}}}")
    else:
        lines.append(f"d[{ROW!r}] = row")
    if tuple(names) != tuple(own):
        # Rows of the model's own columns in declaration order (a query without
        # ``select()``, a preload's related rows) leave ``ROW_ATTRS`` out: absent, it stands
        # for those names (state.py). One store less per row, about 3% of a stream's time.
        lines.append(f"d[{ROW_ATTRS!r}] = names")
    # No ``PERSISTED``: the ``ROW`` says a hydrated instance is persisted (state.py's
    # ``persisted_in``), one store less per row.

    def loop(tail: list[str]) -> list[str]:
        # A new instance per row, then ``tail``; the stamp test is made once per call, not
        # per row: one loop per case.
        return _stamp_cases(
            _new_each([*lines, *tail]), _new_each([*lines, "d.update(stamp)", *tail])
        )

    stream_source = (
        _stream_source([], loop(["yield obj"]))
        if RECYCLE is None
        else _recycling_stream(lines, RECYCLE)
    )
    source = "\n".join(
        [
            "def fill(cls, rows, stamp):",
            "    out = []",
            "    append = out.append",
            *_indent(loop(["append(obj)"]), 1),
            "    return out",
            "def each(cls, rows, stamp):",
            *_indent(loop(["yield obj"]), 1),
            *stream_source,
        ]
    )
    namespace: dict[str, Any] = {
        "new": object.__new__,
        "names": tuple(names),
        "lazy": LazyExtras({k: i for i, k in extras}),
        "refs": getattr(sys, "getrefcount", None),
        "weak": getweakrefcount,
        "recyclable": recyclable,
        # The keys the lines give a new instance's ``__dict__`` (``_recycling_stream``): a
        # repeated column name is one key, each line past the columns' one more.
        "size": len(set(names)) + len(lines) - column_lines,
    }
    exec(source, namespace)
    fill: Callable[..., list[Any]] = namespace["fill"]
    each: Callable[..., Iterator[Any]] = namespace["each"]
    stream: Callable[..., AsyncGenerator[Any, None]] = namespace["stream"]
    return fill, each, stream


def _indent(lines: list[str], levels: int) -> list[str]:
    return [f"{'    ' * levels}{line}" for line in lines]


def _new_each(body: list[str]) -> list[str]:
    """A loop over ``rows`` that builds a new instance per row (``obj``, its ``__dict__``
    ``d``), then runs ``body``."""
    return ["for row in rows:", *_indent(["obj = new(cls)", "d = obj.__dict__", *body], 1)]


def _stamp_cases(plain: list[str], stamped: list[str]) -> list[str]:
    """``plain`` for rows without a binding stamp, ``stamped`` for rows with one."""
    return ["if stamp is None:", *_indent(plain, 1), "else:", *_indent(stamped, 1)]


def _stream_source(start: list[str], rows: list[str]) -> list[str]:
    """The source of ``filler``'s ``stream`` (``async def stream(cls, batches)``): ``start``
    first, then ``rows`` for each batch of rows of the shape to hydrate in the loop.
    ``batches`` yields ``(rows, stamp, None)`` for those, ``(None, None, instances)`` for a
    batch hydrated otherwise."""
    return [
        "async def stream(cls, batches):",
        *_indent(start, 1),
        "    try:",
        "        async for rows, stamp, ready in batches:",
        "            if ready is not None:",
        "                for item in ready:",
        "                    yield item",
        "                continue",
        *_indent(rows, 3),
        "    finally:",
        "        await batches.aclose()",
    ]


def _recycling_stream(lines: list[str], counts: tuple[int, int]) -> list[str]:
    """``filler``'s ``stream``, filling again in place an instance it built and handed out two rows
    before once nothing else can reach it: the loop's own variables hold the only references
    to it and to its ``__dict__`` (``counts``: what ``getrefcount`` says of them then, see
    ``RECYCLE``), no weak reference points to it, its class is still the model's, and after
    the fill its ``__dict__`` holds as many keys as a new instance's (``size``: none the loop
    body added or deleted is left). A loop that drops each instance when it takes the next
    (``async for p in query.stream():``) so goes on with two instances filled in turn: no
    instance, ``__dict__`` and values array allocated and freed per row, about a third of
    the per-row time. An instance something keeps (a list, a variable, a weak set, its
    ``__dict__`` held alone) is never touched again: the loop builds a new one."""
    # ``obj``/``d``: the instance handed out last (the loop body may still hold it);
    # ``spare``/``sd``: the one handed out before it, each held by one variable here.
    unreachable = (
        f"if refs(spare) == {counts[0]} and refs(sd) == {counts[1]} and fits"
        " and type(spare) is cls and not weak(spare):"
    )

    def loop(stamp: list[str], size: str) -> list[str]:
        fill = [*lines, *stamp]
        return [
            "for row in rows:",
            f"    {unreachable}",
            "        spare, obj = obj, spare",
            "        sd, d = d, sd",
            *(f"        {line}" for line in fill),
            f"        if len(d) != {size}:",
            # Keys the loop body left: a new instance after all (the old one is freed).
            "            obj = new(cls)",
            "            d = obj.__dict__",
            *(f"            {line}" for line in fill),
            "    else:",
            "        spare = obj",
            "        sd = d",
            "        obj = new(cls)",
            "        d = obj.__dict__",
            *(f"        {line}" for line in fill),
            "    yield obj",
        ]

    return _stream_source(
        ["obj = d = spare = sd = None", "fits = recyclable(cls)"],
        _stamp_cases(
            loop([], "size"),
            ["stamped = size + len(stamp)", *loop(["d.update(stamp)"], "stamped")],
        ),
    )


def _recycle_counts() -> tuple[int, int] | None:
    """What ``getrefcount`` says of an instance and of its ``__dict__`` that only one
    variable of a generated loop holds (``_recycling_stream``), measured on a function
    written the same way (the numbers depend on the interpreter's calls and stack
    references), then checked on a generated loop: one that keeps every instance must get
    new ones, one that drops them two in turn. None (no recycling) when that fails, or
    where reference counts don't say who holds an object: an interpreter without them, or
    a free-threaded one, whose other threads hold references too."""
    refs = getattr(sys, "getrefcount", None)
    is_gil_enabled = getattr(sys, "_is_gil_enabled", None)
    if (
        refs is None
        or sys.implementation.name != "cpython"
        or (is_gil_enabled is not None and not is_gil_enabled())
    ):
        return None

    namespace: dict[str, Any] = {"refs": refs, "new": object.__new__}
    exec(
        "def probe(cls):\n"
        "    spare = new(cls)\n"
        "    sd = spare.__dict__\n"
        "    return refs(spare), refs(sd)\n",
        namespace,
    )
    counts: tuple[int, int] = namespace["probe"](_Probe)
    return counts if recycles(counts) else None


class _Probe:
    a: int


def recyclable(cls: type[Any]) -> bool:
    """Whether ``_recycling_stream`` may fill instances of ``cls`` again: it has no
    finalizer (``__del__``, which runs once per instance) and no slots of its own (values
    outside the ``__dict__``, which a fill would leave as the last row's loop body set
    them)."""
    return getattr(cls, "__del__", None) is None and cls.__basicsize__ == _Probe.__basicsize__


def recycles(counts: tuple[int, int]) -> bool:
    """Whether a loop generated with ``counts`` (``_recycling_stream``) gives a body that
    keeps every instance new ones and one that drops them two filled in turn."""
    built: list[None] = []

    def new(cls: type[Any]) -> Any:
        built.append(None)
        return object.__new__(cls)

    namespace: dict[str, Any] = {
        "refs": sys.getrefcount,
        "weak": getweakrefcount,
        "recyclable": recyclable,
        "size": 2,
        "new": new,
    }
    exec("\n".join(_recycling_stream(["(d['a'],) = row", "d['r'] = row"], counts)), namespace)

    async def batches() -> AsyncGenerator[Any, None]:
        yield [(i,) for i in range(6)], None, None

    def values(keep: bool) -> list[Any]:
        # The generator never waits: each step is one ``send`` (no event loop needed).
        out: list[Any] = []
        stream = namespace["stream"](_Probe, batches())
        while True:
            try:
                stream.asend(None).send(None)
            except StopIteration as step:
                out.append(step.value if keep else step.value.a)
            except StopAsyncIteration:
                return out

    kept = values(keep=True)
    if [p.a for p in kept] != list(range(6)) or len({id(p) for p in kept}) != 6:
        return False
    del built[:]
    return values(keep=False) == list(range(6)) and len(built) == 2


# Computed once per process (``_recycle_counts``); None: ``stream`` builds every instance.
RECYCLE = _recycle_counts()


def _tuple(names: list[str]) -> str:
    return f"({', '.join(names)},)" if names else "()"


def snapshot(values: dict[str, Any], deep: list[str]) -> dict[str, Any]:
    """A copy of attribute values for ``original``; JSON values are copied deeply so in-place
    changes show up as dirty."""
    orig = dict(values)
    for name in deep:
        if name in orig:
            orig[name] = copy.deepcopy(orig[name])
    return orig


def hydrate(
    model: type[M],
    keys: Sequence[str],
    rows: Sequence[Sequence[Any]],
    client: Client | None,
    lazy_extras: bool = False,
) -> list[M]:
    """Rows → persisted instances of ``model`` (the garbage collector paused for large
    batches), bound to ``client`` when that is not the model's default (see persistence).
    ``lazy_extras``: the rows' extras are only the keys a relation selected to match them to
    their parents (pivot or through columns), which its grouping reads from the rows and a
    user seldom does: each instance keeps them lazy (the shape's ``LazyExtras`` and the row,
    state.py), not a dict. The extras a user selected (aggregates, computed columns) are read
    on every row: a dict each, filled with the row. Either way an instance reads and writes
    its extras the same."""
    return hydrate_planned(model, info_of(model).plan(keys), rows, client, lazy_extras)


def hydrate_planned(
    model: type[M],
    plan: HydrationPlan,
    rows: Sequence[Sequence[Any]],
    client: Client | None,
    lazy_extras: bool = False,
) -> list[M]:
    """``hydrate`` with the plan of the rows' columns given (``info_of(model).plan(keys)``),
    for a caller that keeps it per result shape (a preload's statement)."""
    if len(rows) < GC_PAUSE_ROWS:  # a find: no context manager to enter
        return _hydrate_rows(model, plan, rows, client, lazy_extras)
    with gc_paused(len(rows)):
        return _hydrate_rows(model, plan, rows, client, lazy_extras)


def hydrate_each(
    model: type[M], keys: Sequence[str], rows: Sequence[Sequence[Any]], client: Client | None
) -> Iterable[M]:
    """As ``hydrate``, but each instance is built as the caller's iteration reaches its row,
    when nothing needs the rows' instances all at once: the N+1 guard is off (else:
    ``hydrate``'s list), inside a transaction too (whose end they follow with no list of
    them, state.py's ``open_transaction``). A stream that hands instances out one by one
    then holds one at a time, not a batch of them: memory stays that of the rows, and the
    instances die young, before the garbage collector's scans would have promoted them."""
    plan = info_of(model).plan(keys)
    each = plan.each
    if (
        each is None
        or not FAST_PATHS
        or (rows and len(rows[0]) != len(plan.attributes))
        or lazy_guard.active() is not None
    ):
        return hydrate(model, keys, rows, client)
    instances: Iterable[M] = each(model, rows, binding(model, client))
    return instances


def stream_plan(model: type[BaseModel]) -> HydrationPlan | None:
    """The plan whose generated ``stream`` loop ``stream()`` runs for ``model``: that of its
    columns selected in declaration order (the result of a query with no ``select()``; a
    batch of another shape is hydrated by ``stream_batch`` instead). ``None`` when no
    generated loop applies."""
    if not FAST_PATHS:
        return None
    info = info_of(model)
    plan = info.plan([c.column_name for c in info.columns.values() if c.column_name])
    return plan if plan.stream is not None else None


def stream_batch(
    model: type[M],
    plan: HydrationPlan,
    keys: Sequence[str],
    rows: Sequence[Sequence[Any]],
    client: Client | None,
) -> tuple[Sequence[Sequence[Any]] | None, Any, Iterable[M] | None]:
    """What ``plan.stream`` takes per batch: ``(rows, stamp, None)`` when the rows have the
    plan's shape and may be hydrated one by one (``hydrate_each``'s conditions), else
    ``(None, None, instances)`` (``hydrate_each``)."""
    if (
        info_of(model).plan(keys) is plan
        and (not rows or len(rows[0]) == len(plan.attributes))
        and lazy_guard.active() is None
    ):
        return rows, binding(model, client), None
    return None, None, hydrate_each(model, keys, rows, client)


def _hydrate_rows(
    model: type[M],
    plan: HydrationPlan,
    rows: Sequence[Sequence[Any]],
    client: Client | None,
    lazy_extras: bool = False,
) -> list[M]:
    """The rows through ``plan`` (one per result shape), one dict copy per row."""
    attrs = plan.attributes
    # The binding (persistence.py): rows read through another connection than the model's
    # default, or through a transaction, keep it for their own statements. Bound to a
    # transaction, they follow it when it ends with no hook of theirs (state.py's
    # ``open_transaction``): nothing keeps them alive but their holders.
    stamp = binding(model, client)
    fill = plan.fill_lazy if lazy_extras and plan.fill_lazy is not None else plan.fill
    if fill is not None and FAST_PATHS and (not rows or len(rows[0]) == len(attrs)):
        out: list[M] = fill(model, rows, stamp)
    else:
        out = _fill_general(model, plan, rows, stamp)
    if len(out) > 1 and lazy_guard.active() is not None:  # the N+1 guard is on
        lazy_guard.tag(out)
    return out


def _fill_general(
    model: type[M], plan: HydrationPlan, rows: Sequence[Sequence[Any]], stamp: Any
) -> list[M]:
    """The general loop, for shapes without a generated one (JSON columns whose original must
    be a copy, ``consume`` functions)."""
    attrs = plan.attributes
    deep = plan.deep_copy
    consume = plan.consume
    extras_index = plan.extras_index
    new = object.__new__
    out: list[M] = []
    append = out.append
    for row in rows:
        obj = new(model)
        values = dict(zip(attrs, row, strict=False))
        extras = {k: row[i] for i, k in extras_index} if extras_index else None
        if extras:
            for k in extras:
                values.pop(f"\x00{k}", None)
        for attr, fn in consume:
            if attr in values:
                values[attr] = fn(values[attr], attr, obj)
        state = values.copy()
        state[ORIGINAL] = snapshot(values, deep) if deep else values
        state[PERSISTED] = True
        if extras:
            state[EXTRAS] = extras
        if stamp is not None:
            state.update(stamp)
        obj.__dict__.update(state)
        append(obj)
    return out


def new_many(
    model: type[M], rows: Sequence[Mapping[str, Any]], allow_extra_properties: bool = False
) -> list[M]:
    """``[model().merge(row) for row in rows]``, without the per-row checks where a row only
    names columns (the usual ``create_many`` payload): its values go in with one update."""
    from .base_model import BaseModel

    if not FAST_PATHS or model.__init__ is not BaseModel.__init__:
        return [model().merge(row, allow_extra_properties) for row in rows]
    cols = model.columns.keys()
    new = object.__new__
    out: list[M] = []
    append = out.append
    with gc_paused(len(rows)):
        for row in rows:
            if not row.keys() <= cols:
                append(model().merge(row, allow_extra_properties))
                continue
            obj = new(model)
            # ``BaseModel.__init__``'s new-instance state, written out (a call per row
            # less), then the values.
            d = obj.__dict__
            d[PERSISTED] = False
            d[LOCAL] = True
            d[ORIGINAL] = {}
            d.update(row)
            append(obj)
    return out


def set_columns(instances: Sequence[BaseModel], names: list[str]) -> list[dict[str, Any]]:
    """Each instance's set column attributes, as a new dict. (One comprehension per instance:
    comparing each ``__dict__``'s keys with the previous one's to reuse a C-level getter cost
    more than it saved.)"""
    return [{k: d[k] for k in names if k in d} for d in [inst.__dict__ for inst in instances]]
