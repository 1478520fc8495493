"""Validation of the payloads the ``*_many`` helpers take: plain mappings, never models."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..errors import LucidError


def as_mapping_list(values: Any, method: str) -> list[Mapping[str, Any]]:
    if isinstance(values, Mapping) or not isinstance(values, Iterable):
        raise LucidError(f"{method}() expects a list of mappings", code="E_INVALID_ARGUMENT")
    out = list(values)
    for item in out:
        if type(item) is dict:
            continue
        if hasattr(type(item), "_lucid"):
            raise LucidError(
                f"{method}() expects plain mappings (dicts) of attribute values, not model "
                f'instances ("{type(item).__name__}")',
                code="E_INVALID_ARGUMENT",
            )
        if not isinstance(item, Mapping):
            raise LucidError(
                f"{method}() expects a list of mappings, got {item!r}", code="E_INVALID_ARGUMENT"
            )
    return out


def keys_list(keys: str | Sequence[str], method: str) -> list[str]:
    out = [keys] if isinstance(keys, str) else list(keys)
    if not out or not all(isinstance(k, str) for k in out):
        raise LucidError(f"{method}() needs one or more attribute names as keys")
    return out
