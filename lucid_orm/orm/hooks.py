"""Model hooks (``@before("save")``, ``@after("create")``…) and query scopes (``@scope``)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Literal, TypeVar

from ..errors import LucidError

HookEvent = Literal["create", "update", "save", "delete", "find", "fetch", "paginate"]
"""The events a hook can listen to (Lucid's names)."""

_EVENTS: tuple[str, ...] = ("create", "update", "save", "delete", "find", "fetch", "paginate")
F = TypeVar("F", bound=Callable[..., Any])


def _hook(when: str, event: str) -> Callable[[F], F]:
    if event not in _EVENTS:
        raise LucidError(
            f'Unknown hook event "{event}": use one of {", ".join(_EVENTS)}',
            code="E_INVALID_HOOK",
        )

    def decorate(fn: F) -> F:
        target: Any = fn.__func__ if isinstance(fn, staticmethod | classmethod) else fn
        marks = list(getattr(target, "_lucid_hooks", ()))
        marks.append((when, event))
        target._lucid_hooks = marks
        return fn

    return decorate


def before(event: HookEvent) -> Callable[[F], F]:
    """Run the decorated function before ``event``.

    create/update/save/delete hooks receive the model instance; find/fetch/paginate hooks
    receive the query builder. ``async def`` hooks are awaited::

        @before("save")
        async def hash_password(user: "User") -> None: ...
    """
    return _hook("before", event)


def after(event: HookEvent) -> Callable[[F], F]:
    """Run the decorated function after ``event`` (the instance, or for find the instance, for
    fetch the list of instances, for paginate the paginator)."""
    return _hook("after", event)


def collect_hooks(namespace: dict[str, Any]) -> dict[str, list[Callable[..., Any]]]:
    hooks: dict[str, list[Callable[..., Any]]] = {}
    for value in namespace.values():
        target = value.__func__ if isinstance(value, staticmethod | classmethod) else value
        for when, event in getattr(target, "_lucid_hooks", ()):
            hooks.setdefault(f"{when}:{event}", []).append(target)
    return hooks


async def run_hooks(hooks: list[Callable[..., Any]] | None, arg: Any) -> None:
    if not hooks:
        return
    for hook in hooks:
        result = hook(arg)
        if inspect.isawaitable(result):
            await result


class Scope:
    """A query scope declared with ``@scope``; applied through ``with_scopes``::

    @scope
    def published(query, since=None):
        query.where_not_null("published_at")

    await Post.query().with_scopes(lambda s: s.published())
    """

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn: Callable[..., Any] = fn.__func__ if isinstance(fn, staticmethod) else fn
        self.name = self.fn.__name__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __call__(self, query: Any, *args: Any, **kwargs: Any) -> Any:
        return self.fn(query, *args, **kwargs)


def scope(fn: Callable[..., Any]) -> Any:
    """Declare a query scope (a plain function, or stacked on ``@staticmethod``) whose first
    parameter is the query."""
    return Scope(fn)


class ScopesProxy:
    """What ``with_scopes`` passes to its callback: each scope bound to the query."""

    def __init__(self, query: Any, scopes: dict[str, Scope]) -> None:
        self._query = query
        self._scopes = scopes

    def __getattr__(self, name: str) -> Callable[..., ScopesProxy]:
        found = self._scopes.get(name)
        if found is None:
            model = getattr(self._query, "model", None)
            raise LucidError(
                f'"{name}" is not a scope on "{getattr(model, "__name__", "?")}" model',
                code="E_UNDEFINED_SCOPE",
            )

        def apply(*args: Any, **kwargs: Any) -> ScopesProxy:
            found(self._query, *args, **kwargs)
            return self

        return apply
