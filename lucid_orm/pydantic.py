"""Pydantic v2 for models: ``BaseModel.__get_pydantic_core_schema__`` (a model is a pydantic
type that validates instances and serializes through ``serialize()``), ``pydantic_model`` (an
explicit read, create or update shape as a real pydantic model) and ``Page[T]``.

Only this module imports pydantic: ``import lucid_orm`` works without it.
"""

from __future__ import annotations

import base64
import inspect
import typing
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, TypeVar, cast

from sqlalchemy import Integer

from .errors import InvalidArgumentError, LucidError
from .orm.base_model import BaseModel as LucidModel
from .orm.columns import ColumnDef, allows_none
from .orm.model_info import declared, info_of
from .orm.serializer import computed_key
from .query.paginator import PaginationMetaKeys, SimplePaginator, SnakeCaseMetaKeys

try:
    import pydantic
    from pydantic import AliasChoices, ConfigDict, Field, model_validator
    from pydantic_core import PydanticUndefined, core_schema
except ImportError as exc:  # pragma: no cover - exercised by the packaging job
    raise LucidError(
        "lucid_orm.pydantic needs pydantic 2: pip install 'lucid-orm[pydantic]'",
        code="E_MISSING_DEPENDENCY",
    ) from exc

if TYPE_CHECKING:
    from pydantic import GetCoreSchemaHandler

__all__ = ["Page", "PageMeta", "pydantic_model"]

Mode = Literal["read", "create", "update"]
T = TypeVar("T")

# Read shapes dump their JSON keys by default on pydantic 2.11+ (older versions ignore the
# option and dump them when asked, as FastAPI does).
_BY_ALIAS = ConfigDict(serialize_by_alias=True)
# Read shapes write bytes as ``serialize()`` does: base64 text.
_READ_CONFIG = ConfigDict(serialize_by_alias=True, ser_json_bytes="base64")


# -- reading a model's declarations --------------------------------------------------------------


def _annotation(model: type[LucidModel], name: str) -> Any:
    """The annotation of column ``name`` as the model resolves it (``Any`` when it has none
    or it cannot be evaluated)."""
    try:
        ann = declared(model).annotation(name)
    except Exception:
        return Any
    return Any if ann is None else ann


def _return_annotation(fn: Callable[..., Any] | None) -> Any:
    """The return annotation of a ``@computed`` function, ``Any`` when absent or unresolvable."""
    try:
        return typing.get_type_hints(fn).get("return", Any) if fn is not None else Any
    except Exception:
        return Any


def _nullable(annotation: Any) -> bool:
    return allows_none(annotation, untyped=True)


def _is_auto_key(col: ColumnDef) -> bool:
    """An integer primary key: the database numbers it."""
    return col.is_primary and isinstance(col.type_, Integer)


def _is_bytes(annotation: Any) -> bool:
    return annotation is bytes or (_nullable(annotation) and bytes in typing.get_args(annotation))


def _from_base64(value: Any) -> Any:
    """Serialized bytes (base64 text, as ``serialize()`` writes them) read back."""
    return base64.b64decode(value) if isinstance(value, str) else value


# -- the schema of a model as a pydantic type ----------------------------------------------------


def _ref(model: type[Any]) -> str:
    # pydantic names a JSON schema definition after the dotted name before the colon.
    return f"{model.__module__}.{model.__qualname__}:lucid-{id(model)}"


def _same(value: Any) -> Any:
    return value


def _dump(value: Any) -> Any:
    """A model instance as ``serialize()`` makes it (anything else passes)."""
    return value.serialize() if isinstance(value, LucidModel) else value


# Values are written by inference, in Rust (no Python call per value), where pydantic-core
# has the "any" serializer; older versions (pydantic 2.7) call an identity function.
_AS_IS: core_schema.SerSchema = (
    core_schema.simple_ser_schema("any")
    if "any" in typing.get_args(core_schema.ExpectedSerializationTypes)
    else core_schema.plain_serializer_function_ser_schema(_same)
)


def _leaf(annotation: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
    """The schema of one serialized value: typed for the JSON schema (and for validating JSON
    input), written as ``serialize()`` already made it."""
    after = _same
    if _is_bytes(annotation):  # base64 text (serialize() writes bytes so)
        annotation = str | None if _nullable(annotation) else str
        after = _from_base64
    try:
        inner = handler.generate_schema(annotation)
    except Exception:  # a type pydantic does not know: described as any value
        inner = core_schema.any_schema()
    # The JSON schema comes from ``inner``; the value is written as it is.
    return core_schema.no_info_after_validator_function(after, inner, serialization=_AS_IS)


def _serialized_shape(
    model: type[LucidModel], handler: GetCoreSchemaHandler
) -> tuple[core_schema.CoreSchema, list[type[LucidModel]]]:
    """The typed dict ``serialize()`` returns for ``model``, and the models its relations
    reach. Computed values and non-nullable columns are required; relations are not (only
    loaded ones are written)."""
    info = info_of(model)
    fields: dict[str, core_schema.TypedDictField] = {}
    for name, col in info.columns.items():
        if col.serialize_as is None:
            continue
        ann = _annotation(model, name)
        leaf = _leaf(Any if col.serialize is not None else ann, handler)
        # serialize() writes set columns only: a nullable one may be absent (never set).
        fields[col.serialize_as] = core_schema.typed_dict_field(leaf, required=not _nullable(ann))
    for name, comp in info.computed.items():
        key = computed_key(model, name, comp.serialize_as)
        if key is not None:
            fields[key] = core_schema.typed_dict_field(_leaf(_return_annotation(comp.fn), handler))
    reached: list[type[LucidModel]] = []
    for rel in model.relations.values():
        key = rel.serialize_as
        if key is None:
            continue
        related = rel.related_model()
        reached.append(related)
        target = core_schema.definition_reference_schema(_ref(related))
        value = (
            core_schema.list_schema(target) if rel._is_many else core_schema.nullable_schema(target)
        )
        fields[key] = core_schema.typed_dict_field(value, required=False)
    if model.serialize_extras:
        fields["meta"] = core_schema.typed_dict_field(
            core_schema.dict_schema(core_schema.str_schema(), core_schema.any_schema())
        )
    shape = core_schema.typed_dict_schema(
        fields,
        ref=_ref(model),
        extra_behavior="ignore",
        metadata={"pydantic_js_functions": [_titled(model)]},
    )
    return shape, reached


def _titled(model: type[LucidModel]) -> Callable[[Any, Any], Any]:
    """Gives a model's JSON schema its title, and its docstring as description."""

    def update(schema: Any, handler: Any) -> Any:
        json_schema = handler(schema)
        target = handler.resolve_ref_schema(json_schema)
        target["title"] = model.__name__
        doc = model.__dict__.get("__doc__")
        if doc:
            target["description"] = inspect.cleandoc(doc)
        return json_schema

    return update


def _instance_from(model: type[LucidModel]) -> Callable[[Any], Any]:
    """Validated serialized data → an unsaved instance with the columns it carries."""
    keys = {c.serialize_as: n for n, c in model.columns.items() if c.serialize_as is not None}

    def build(data: Any) -> Any:
        if isinstance(data, LucidModel):
            return data
        return model().merge({keys[k]: v for k, v in data.items() if k in keys})

    return build


def model_core_schema(
    model: type[LucidModel], handler: GetCoreSchemaHandler
) -> core_schema.CoreSchema:
    """The core schema behind ``BaseModel.__get_pydantic_core_schema__``.

    Validation accepts an instance as it is (or, from JSON or a dict, the serialized shape,
    giving an unsaved instance); serialization is ``instance.serialize()`` typed by the
    serialized shape, so a JSON schema (OpenAPI) lists the real fields: columns by their
    ``serialize_as`` names and types, computed values, ``meta`` for ``serialize_extras``,
    and each relation as an optional nested object or array of the related model's shape.
    Every reachable model's shape is one definition: ``User`` ↔ ``Post`` cycles are refs.
    """
    definitions: list[core_schema.CoreSchema] = []
    pending, seen = [model], {model}
    while pending:
        shape, reached = _serialized_shape(pending.pop(), handler)
        definitions.append(shape)
        for related in reached:
            if related not in seen:
                seen.add(related)
                pending.append(related)
    ref = core_schema.definition_reference_schema(_ref(model))
    from_data = core_schema.no_info_after_validator_function(_instance_from(model), ref)
    schema = core_schema.json_or_python_schema(
        json_schema=from_data,
        python_schema=core_schema.union_schema(
            [core_schema.is_instance_schema(model), from_data], mode="left_to_right"
        ),
        serialization=core_schema.plain_serializer_function_ser_schema(
            _dump, return_schema=ref, when_used="always"
        ),
    )
    return core_schema.definitions_schema(schema, definitions)


# -- explicit shapes -----------------------------------------------------------------------------


class LucidShape(pydantic.BaseModel):
    """Base of the classes ``pydantic_model`` builds: validates a model instance (or a
    mapping) into the shape."""

    __lucid_model__: ClassVar[type[LucidModel] | None] = None
    __lucid_mode__: ClassVar[Mode] = "read"

    @model_validator(mode="before")
    @classmethod
    def _from_instance(cls, data: Any) -> Any:
        if isinstance(data, LucidModel):
            return _instance_values(data, cls.__lucid_mode__)
        return data


def _instance_values(instance: LucidModel, mode: Mode) -> dict[str, Any]:
    """What a shape reads from an instance, by attribute name: set columns (through their
    ``serialize`` function when read), computed values, loaded relations, extras."""
    d = instance.__dict__
    model = type(instance)
    out: dict[str, Any] = {}
    for name, col in model.columns.items():
        if name in d:
            value = d[name]
            out[name] = (
                col.serialize(value, name, instance) if col.serialize and mode == "read" else value
            )
    if mode != "read":
        return out
    for name in declared(model).computed:
        out[name] = getattr(instance, name)
    out.update(instance.preloaded)
    out["extras"] = instance.extras
    return out


def _field(annotation: Any, alias: str, name: str, required: bool) -> tuple[Any, Any]:
    default = PydanticUndefined if required else None
    return (
        annotation,
        Field(
            default,
            # Titled after the attribute, as pydantic titles fields without an alias.
            title=name.replace("_", " ").title(),
            validation_alias=AliasChoices(alias, name) if alias != name else None,
            serialization_alias=alias if alias != name else None,
        ),
    )


def _usable(annotation: Any) -> Any:
    """``annotation`` when pydantic can validate it, else ``Any``."""
    try:
        pydantic.TypeAdapter(annotation)
    except Exception:
        return Any
    return annotation


def _picked(name: str, include: Collection[str] | None, exclude: Collection[str]) -> bool:
    return (include is None or name in include) and name not in exclude


def pydantic_model(
    model: type[LucidModel],
    *,
    include: Collection[str] | None = None,
    exclude: Collection[str] = (),
    relations: Mapping[str, type[pydantic.BaseModel] | type[LucidModel]] | None = None,
    mode: Mode = "read",
    name: str | None = None,
    optional: Collection[str] = (),
) -> type[pydantic.BaseModel]:
    """A pydantic model class for an explicit shape of ``model``.

    ``mode="read"`` (default): the columns ``serialize()`` writes (hidden ones only when named
    in ``include``), computed values, ``meta`` for ``serialize_extras``, and the relations
    named in ``relations`` (each a shape of the related model, or the related model class for
    its full read shape; required: an unloaded one fails validation instead of turning into
    ``[]`` or ``null``). Fields are attribute names; JSON keys their ``serialize_as`` names.
    ``Shape.model_validate(instance)`` reads an instance::

        UserOut = pydantic_model(User, exclude=["email"], relations={"posts": Post})
        UserOut.model_validate(await User.query().preload("posts").first_or_fail())

    ``mode="create"``: a body for ``Model.create``: every column (hidden ones included),
    required unless nullable, an integer primary key, an ``auto_create``/``auto_update``
    timestamp or named in ``optional`` (for columns the database defaults).
    ``mode="update"``: every column optional. Apply only the fields sent:
    ``User.create(body.model_dump(exclude_unset=True))``,
    ``user.merge(body.model_dump(exclude_unset=True))``. Keys may be given by attribute or
    serialized name; ``model_dump()`` gives attribute names.

    ``include``/``exclude`` take attribute names (columns, computed values); ``name`` names
    the class (default ``<Model>Read``, ``<Model>Create``, ``<Model>Update``).

    Raises:
        InvalidArgumentError: an unknown mode or name, ``relations`` outside read mode.
        LucidError: ``E_UNDEFINED_RELATIONSHIP`` for an unknown relation.
    """
    if mode not in ("read", "create", "update"):
        raise InvalidArgumentError(f"Unknown pydantic_model mode {mode!r}")
    info = info_of(model)
    known = set(info.columns) | set(info.computed)
    for listed in (include or ()), exclude, optional:
        unknown = sorted(set(listed) - known)
        if unknown:
            raise InvalidArgumentError(
                f'{", ".join(unknown)}: not a column or computed value of "{model.__name__}"'
            )
    fields: dict[str, tuple[Any, Any]] = {}
    for attr, col in info.columns.items():
        if not _picked(attr, include, exclude):
            continue
        alias = col.serialize_as if col.serialize_as is not None else attr
        ann = _annotation(model, attr)
        if mode == "read":
            if col.serialize_as is None and (include is None or attr not in include):
                continue
            # A nullable column never set (a new instance) is NULL in its row: null, not an error.
            required = not _nullable(ann)
            ann = Any if col.serialize is not None else _usable(ann)
            fields[attr] = _field(ann, alias, attr, required)
            continue
        required = mode == "create" and not (
            _nullable(ann)
            or _is_auto_key(col)
            or col.auto_create
            or col.auto_update
            or attr in optional
        )
        fields[attr] = _field(_usable(ann), alias, attr, required)
    if mode == "read":
        for attr, comp in info.computed.items():
            key = computed_key(model, attr, comp.serialize_as)
            if key is not None and _picked(attr, include, exclude):
                fields[attr] = _field(_usable(_return_annotation(comp.fn)), key, attr, True)
        for rel_name, shape in (relations or {}).items():
            rel = model.get_relation(rel_name)
            if isinstance(shape, type) and issubclass(shape, LucidModel):
                shape = pydantic_model(shape)
            ann = list[shape] if rel._is_many else shape | None  # type: ignore[valid-type]
            fields[rel_name] = _field(ann, rel.serialize_as or rel_name, rel_name, True)
        if model.serialize_extras and "meta" not in {
            f[1].serialization_alias for f in fields.values()
        }:
            fields["extras"] = _field(dict[str, Any], "meta", "extras", True)
    elif relations:
        raise InvalidArgumentError("relations= is for mode='read' shapes")
    shape_name = name or f"{model.__name__}{mode.capitalize()}"
    config = _READ_CONFIG if mode == "read" else ConfigDict()
    created = pydantic.create_model(  # type: ignore[call-overload]
        shape_name, __base__=LucidShape, __module__=model.__module__, **fields
    )
    created.model_config = {**created.model_config, **config}
    created.model_rebuild(force=True)
    created.__lucid_model__ = model
    created.__lucid_mode__ = mode
    return cast("type[pydantic.BaseModel]", created)


# -- pages -------------------------------------------------------------------------------------


class PageMeta(pydantic.BaseModel):
    """A paginator's ``meta`` (``SimplePaginator.get_meta()``), snake_case keys."""

    model_config = _BY_ALIAS

    total: int
    per_page: int
    current_page: int
    last_page: int
    first_page: int
    first_page_url: str
    last_page_url: str
    next_page_url: str | None
    previous_page_url: str | None


_SNAKE_KEYS = SnakeCaseMetaKeys().pagination_meta_keys()
_META_MODELS: dict[tuple[tuple[str, str], ...], type[PageMeta]] = {}


def _meta_model(keys: PaginationMetaKeys) -> type[PageMeta]:
    """``PageMeta`` with the JSON keys a naming strategy spells (one class per spelling)."""
    if keys == _SNAKE_KEYS:
        return PageMeta
    spelled = tuple(sorted((k, str(v)) for k, v in keys.items()))
    found = _META_MODELS.get(spelled)
    if found is None:
        fields = {
            attr: _field(info.annotation, keys[attr], attr, True)  # type: ignore[literal-required]
            for attr, info in PageMeta.model_fields.items()
        }
        camel = keys["per_page"] == "perPage" and keys["first_page_url"] == "firstPageUrl"
        suffix = "CamelCase" if camel else str(len(_META_MODELS) + 1)
        found = pydantic.create_model(  # type: ignore[call-overload]
            f"PageMeta{suffix}", __base__=PageMeta, **fields
        )
        _META_MODELS[spelled] = found
    return cast("type[PageMeta]", found)


def _lucid_model_of(item: Any) -> type[LucidModel] | None:
    if isinstance(item, type):
        if issubclass(item, LucidModel):
            return item
        found = getattr(item, "__lucid_model__", None)
        if isinstance(found, type) and issubclass(found, LucidModel):
            return found
    return None


class Page(pydantic.BaseModel, Generic[T]):
    """One page of rows: ``{"data": [...], "meta": {...}}``, what
    ``SimplePaginator.serialize()`` returns, as a generic pydantic model.

    A paginator validates into it, so an endpoint declared ``response_model=Page[User]``
    returns ``await User.query().paginate(page)``; ``meta``'s keys follow the naming strategy
    of a model ``T`` (or of the model a ``pydantic_model`` shape ``T`` was built from).
    """

    model_config = _BY_ALIAS

    data: list[T]
    meta: PageMeta

    @model_validator(mode="before")
    @classmethod
    def _from_paginator(cls, data: Any) -> Any:
        if isinstance(data, SimplePaginator):
            return {"data": data.all(), "meta": data.get_meta()}
        return data

    def __class_getitem__(cls, params: Any) -> Any:
        page = super().__class_getitem__(params)
        model = _lucid_model_of(params)
        if model is None:
            return page
        keys = model.naming_strategy.pagination_meta_keys()
        if keys == _SNAKE_KEYS:
            return page
        return _page_with_meta(cast("type[Any]", page), _meta_model(keys))


_PAGES: dict[tuple[type[Any], type[PageMeta]], type[Any]] = {}


def _page_with_meta(page: type[Any], meta: type[PageMeta]) -> type[Any]:
    found = _PAGES.get((page, meta))
    if found is None:
        found = _PAGES[(page, meta)] = pydantic.create_model(
            page.__name__, __base__=page, meta=(meta, ...)
        )
    return found
