"""Model instances to dicts: ``serialize`` (JSON-ready, serialized names, cherry-picking) and
``to_dict`` (Python values), called by the ``BaseModel`` methods of the same names."""

from __future__ import annotations

import base64
import datetime as _dt
import enum
import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

from .columns import UNSET
from .model_info import declared
from .state import extras_of

if TYPE_CHECKING:
    from .base_model import BaseModel


def json_ready(value: Any) -> Any:
    """``value`` as a JSON-compatible value (dates as ISO text, decimals and UUIDs as text,
    enums by value, bytes as base64)."""
    if isinstance(value, _dt.datetime | _dt.date | _dt.time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return value


def _pick(name: str, fields: Any) -> bool:
    """Whether ``name`` survives a cherry-pick ``fields`` spec (a list = pick)."""
    if not fields:
        return True
    if isinstance(fields, list | tuple | set | frozenset):
        return name in fields
    pick = fields.get("pick")
    omit = fields.get("omit")
    if pick is not None and name not in pick:
        return False
    return not (omit is not None and name in omit)


def attributes(instance: BaseModel, fields: Any = None, raw: bool = False) -> dict[str, Any]:
    """Set columns under their serialized names (``serialize_as``; ``None`` hides)."""
    d = instance.__dict__
    out: dict[str, Any] = {}
    for name, col in type(instance).columns.items():
        if name not in d:
            continue
        key = col.serialize_as
        if key is None or not _pick(key, fields):
            continue
        value = d[name]
        if col.serialize is not None and not raw:
            value = col.serialize(value, name, instance)
        out[key] = value if raw else json_ready(value)
    return out


def computed_key(model: type[BaseModel], name: str, declared_as: Any) -> str | None:
    """The key of computed value ``name`` in ``serialize()`` (``None``: hidden): its
    ``serialize_as``, else the naming strategy's name."""
    if declared_as is UNSET:
        return model.naming_strategy.serialized_name(model, name)
    return cast("str | None", declared_as)


def computed_values(instance: BaseModel, fields: Any = None) -> dict[str, Any]:
    """``@computed`` values under their serialized names."""
    model = type(instance)
    out: dict[str, Any] = {}
    for name, comp in declared(model).computed.items():
        key = computed_key(model, name, comp.serialize_as)
        if key is None or not _pick(key, fields):
            continue
        out[key] = json_ready(getattr(instance, name))
    return out


def _serialized(value: Any, sub: Any) -> Any:
    """A loaded relation value (a list, an instance or ``None``), serialized."""
    if isinstance(value, list):
        return [v.serialize(sub) for v in value]
    return None if value is None else value.serialize(sub)


def relations(instance: BaseModel, cherry_pick: Any = None, raw: bool = False) -> dict[str, Any]:
    """Loaded relations under their ``serialize_as`` names, serialized recursively."""
    preloaded = instance.preloaded
    if not preloaded:
        return {}
    out: dict[str, Any] = {}
    rels = type(instance).relations
    for name, value in preloaded.items():
        rel = rels.get(name)
        key = rel.serialize_as if rel is not None else name
        if key is None or (cherry_pick is not None and key not in cherry_pick):
            continue
        sub = cherry_pick.get(key) if cherry_pick else None
        out[key] = value if raw else _serialized(value, sub)
    return out


def serialize(instance: BaseModel, cherry_pick: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """See ``BaseModel.serialize``."""
    fields = cherry_pick.get("fields") if cherry_pick else None
    out = instance.serialize_attributes(fields)
    out.update(instance.serialize_relations(cherry_pick.get("relations") if cherry_pick else None))
    out.update(instance.serialize_computed(fields))
    if type(instance).serialize_extras:
        out["meta"] = {k: json_ready(v) for k, v in extras_of(instance).items()}
    return out


def to_dict(instance: BaseModel) -> dict[str, Any]:
    """See ``BaseModel.to_dict``."""
    out: dict[str, Any] = dict(instance.attributes)
    for name, value in instance.preloaded.items():
        if isinstance(value, list):
            out[name] = [v.to_dict() for v in value]
        else:
            out[name] = value.to_dict() if value is not None else None
    out["extras"] = dict(extras_of(instance))
    return out
