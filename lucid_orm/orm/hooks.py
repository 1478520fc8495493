"""Model hooks (``@before("save")``, ``@after("create")``…), query scopes (``@scope``) and
global scopes (``@global_scope("tenant")``)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Literal, TypeVar

from ..errors import LucidError

HookEvent = Literal["create", "update", "save", "delete", "restore", "find", "fetch", "paginate"]
"""The events a hook can listen to (Lucid's names; ``restore`` for soft-deleting models)."""

_EVENTS: tuple[str, ...] = (
    "create",
    "update",
    "save",
    "delete",
    "restore",
    "find",
    "fetch",
    "paginate",
)
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

    create/update/save/delete/restore hooks receive the model instance; find/fetch/paginate hooks
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


GlobalScopeFn = Callable[[Any], Any]
"""A global scope: a plain function that adds conditions to the query it receives."""


def check_global_scope(name: Any, fn: Any) -> None:
    """Refuse a global scope that is not a named plain function (``E_INVALID_SCOPE``): it runs
    while a query compiles, so it cannot be awaited."""
    if not isinstance(name, str) or not name:
        raise LucidError(f"A global scope needs a name, got {name!r}", code="E_INVALID_SCOPE")
    if not callable(fn) or inspect.iscoroutinefunction(fn):
        raise LucidError(
            f'Global scope "{name}" must be a plain function taking the query (an async def '
            "is not allowed: scopes run while the query compiles)",
            code="E_INVALID_SCOPE",
        )


def global_scope(name: str) -> Callable[[F], F]:
    """Declare a global scope on a model: a function (plain or a ``@staticmethod``) that
    receives every query of the model and adds conditions to it::

        @global_scope("tenant")
        @staticmethod
        def tenant(query: ModelQueryBuilder[Any]) -> None:
            query.where("tenant_id", current_tenant.get())

    Opt out per query with ``without_global_scopes("tenant")``."""

    def decorate(fn: F) -> F:
        target: Any = fn.__func__ if isinstance(fn, staticmethod | classmethod) else fn
        check_global_scope(name, target)
        target._lucid_global_scope = name
        return fn

    return decorate


def collect_global_scopes(namespace: dict[str, Any]) -> dict[str, GlobalScopeFn]:
    """The global scopes a class body declares: the ``global_scopes`` dict, then the
    ``@global_scope`` functions."""
    found: dict[str, GlobalScopeFn] = {}
    declared = namespace.get("global_scopes")
    if declared is not None:
        if not isinstance(declared, dict):
            raise LucidError(
                '"global_scopes" must be a dict of name -> function', code="E_INVALID_SCOPE"
            )
        for name, fn in declared.items():
            target = fn.__func__ if isinstance(fn, staticmethod) else fn
            check_global_scope(name, target)
            found[name] = target
    for value in namespace.values():
        target = value.__func__ if isinstance(value, staticmethod | classmethod) else value
        name = getattr(target, "_lucid_global_scope", None)
        if name is not None:
            found[name] = target
    return found
