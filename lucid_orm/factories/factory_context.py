"""The context shared by everything one factory call builds (Faker, stubbed or not, the
transaction), and how factory callbacks are called."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import LucidError
from .main import Factory

if TYPE_CHECKING:
    from faker import Faker

    from ..database.transaction import TransactionClient
    from ..orm.base_model import BaseModel
    from .factory_builder import BuilderCallback

_ALL = 1 << 16


class FactoryContext:
    """Handed to factory callbacks: ``faker``, ``is_stubbed`` (``make_stubbed()``) and ``trx``
    — the transaction that ``create()`` runs in (``None`` for ``make()``)."""

    def __init__(self, is_stubbed: bool, trx: TransactionClient | None) -> None:
        self.is_stubbed = is_stubbed
        self.trx = trx

    @property
    def faker(self) -> Faker:
        return Factory.faker()


@dataclass(frozen=True, slots=True)
class FactoryCall:
    """One ``with_`` relation to make for an instance: the ``parent`` instance, the shared
    ``ctx``, the attributes ``merge_recursive`` passes down (``inherited``), how many
    (``count``; one-relations ignore it) and the ``callback`` configuring the related builder.
    """

    parent: BaseModel
    ctx: FactoryContext
    inherited: Mapping[str, Any]
    count: int
    callback: BuilderCallback | None


def arity(fn: Callable[..., Any]) -> int:
    """How many positional arguments ``fn`` takes (a large number for ``*args`` or when its
    signature cannot be read)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return _ALL
    count = 0
    for param in params:
        if param.kind is inspect.Parameter.VAR_POSITIONAL:
            return _ALL
        if param.kind in (
            inspect.Parameter.POSITIONAL_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
        ):
            count += 1
    return count


def call(fn: Callable[..., Any], *args: Any) -> Any:
    """Call ``fn`` with as many of ``args`` as it takes positionally (as JavaScript does):
    ``lambda user: ...`` and ``lambda user, ctx, builder: ...`` are both fine callbacks."""
    return fn(*args[: arity(fn)])


def call_sync(fn: Callable[..., Any], what: str, *args: Any) -> Any:
    """``call`` for callbacks that run while instances are made, which never awaits."""
    return ensure_sync(call(fn, *args), what)


def ensure_sync(result: Any, what: str) -> Any:
    """``result``, unless it is awaitable: then a ``LucidError`` naming the callback."""
    if inspect.isawaitable(result):
        if inspect.iscoroutine(result):
            result.close()
        raise LucidError(
            f"The {what} callback of a factory must be synchronous (making instances never "
            'awaits): do database work in an after("create") hook',
            code="E_INVALID_FACTORY",
        )
    return result


async def call_async(fn: Callable[..., Any], *args: Any) -> None:
    """``call``, awaiting the result when it is awaitable (create hooks)."""
    result = call(fn, *args)
    if inspect.isawaitable(result):
        await result
