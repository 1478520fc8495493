"""The morph map: the type values polymorphic relations store (``commentable_type``).

``morph_map({"post": Post, "video": Video})`` gives models stable aliases, so renaming a class
does not orphan its rows. A model without an alias is stored under its class name, which is
looked up among the loaded model classes when read back (refused when two share it)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ...errors import LucidError

if TYPE_CHECKING:
    from ..base_model import BaseModel

# alias -> model, and its inverse; one registry per process, as Eloquent's Relation::morphMap.
_ALIASES: dict[str, type[BaseModel]] = {}
_MODELS: dict[type[BaseModel], str] = {}


def morph_map(mapping: Mapping[str, type[BaseModel]] | None = None) -> dict[str, type[BaseModel]]:
    """Register morph aliases (``{"post": Post}``) and return the whole map.

    Registering an alias again points it at the new model (the last registration wins), and a
    model registered under a new alias drops its old one: each model has one alias."""
    from ..base_model import BaseModel

    for alias, model in (mapping or {}).items():
        if not isinstance(alias, str) or not alias:
            raise LucidError(
                f"morph_map() aliases must be non-empty strings, got {alias!r}",
                code="E_INVALID_ARGUMENT",
            )
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise LucidError(
                f'morph_map() expects model classes, got {model!r} for alias "{alias}"',
                code="E_INVALID_ARGUMENT",
            )
        previous = _ALIASES.get(alias)
        if previous is not None:
            _MODELS.pop(previous, None)
        old_alias = _MODELS.get(model)
        if old_alias is not None:
            _ALIASES.pop(old_alias, None)
        _ALIASES[alias] = model
        _MODELS[model] = alias
    return dict(_ALIASES)


def clear_morph_map() -> None:
    """Forget every alias (test suites that register several maps)."""
    _ALIASES.clear()
    _MODELS.clear()


def morph_alias(model: type[BaseModel]) -> str:
    """The type value stored for ``model``: its alias, else its class name."""
    return _MODELS.get(model) or model.__name__


def _subclasses(root: type[Any]) -> list[type[Any]]:
    out: list[type[Any]] = []
    stack = [root]
    while stack:
        for sub in stack.pop().__subclasses__():
            out.append(sub)
            stack.append(sub)
    return out


def morph_model(alias: str) -> type[BaseModel]:
    """The model of a stored type value: the morph map's, else the one loaded model class of
    that name. ``E_INVALID_ARGUMENT`` naming the value and the map otherwise."""
    found = _ALIASES.get(alias)
    if found is not None:
        return found
    from ..base_model import BaseModel

    named = [m for m in _subclasses(BaseModel) if m.__name__ == alias and m not in _MODELS]
    if len(named) == 1:
        return named[0]
    known = ", ".join(f'"{a}": {m.__name__}' for a, m in sorted(_ALIASES.items())) or "empty"
    if named:
        raise LucidError(
            f'Morph type "{alias}" names {len(named)} model classes: give one of them an alias '
            f"with morph_map() (morph map: {known})",
            code="E_INVALID_ARGUMENT",
        )
    raise LucidError(
        f'Unknown morph type "{alias}": it is neither a morph_map() alias nor the name of a '
        f"model class (morph map: {known})",
        code="E_INVALID_ARGUMENT",
    )


def as_morph_model(value: Any) -> type[BaseModel]:
    """A model class given as itself or as its stored type value."""
    if isinstance(value, str):
        return morph_model(value)
    from ..base_model import BaseModel

    if isinstance(value, type) and issubclass(value, BaseModel):
        return value
    raise LucidError(
        f"Expected a model class or a morph alias, got {value!r}", code="E_INVALID_ARGUMENT"
    )
