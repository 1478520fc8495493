"""Project configuration for the ``lucid-orm`` command line: ``lucid_config.py`` or
``[tool.lucid-orm]`` in ``pyproject.toml``; the database from there, else from
``LUCID_DATABASE_URL`` / ``DATABASE_URL``."""

from __future__ import annotations

import os
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from ._loader import UnloadableFileError, load_file
from .errors import LucidError

__all__ = [
    "CONFIG_FILE",
    "DATABASE_URL_VARIABLES",
    "DEFAULT_DATABASE_URL",
    "ENVIRONMENT_VARIABLE",
    "LucidConfig",
    "load_config",
]

CONFIG_FILE = "lucid_config.py"
"""The configuration module looked up in the project directory."""

ENVIRONMENT_VARIABLE = "LUCID_ENV"
"""The environment variable naming the environment (``development``, ``production``…)."""

DATABASE_URL_VARIABLES = ("LUCID_DATABASE_URL", "DATABASE_URL")
"""The environment variables naming the database when no configuration does (the first set
wins)."""

DEFAULT_DATABASE_URL = "sqlite:///database/app.db"
"""The database of a configuration file that names none, when no environment variable does
(relative to the project directory). Without any configuration file there is no default:
commands that need a database stop and say where they looked."""

# Setting name (snake_case, as in pyproject.toml) -> its default.
_DEFAULT_PATHS = {
    "migrations_path": "database/migrations",
    "seeders_path": "database/seeders",
    "factories_path": "database/factories",
    "models_path": "app/models",
}
_SETTINGS = {
    "database",
    *_DEFAULT_PATHS,
    "migrations_table",
    "schema_output",
    "schema_rules",
    "schema_generate",
    "environment",
}
# Shorthands accepted at the top of [tool.lucid-orm]: they fill `database`.
_DATABASE_KEYS = {"url", "connection", "connections", "debug", "pool"}


@dataclass
class LucidConfig:
    """The configuration of one project. Relative paths (folders and SQLite files) are
    resolved against ``root``, the directory holding the configuration file.

    ``database`` holds the keyword arguments of ``db.configure()`` (``None``: nothing names a
    database, ``configure_db()`` refuses; ``searched`` lists where ``load_config`` looked, and
    ``database_source`` says where the database came from); ``environment`` comes from
    ``LUCID_ENV`` when set, else the file's ``ENVIRONMENT``, else ``"development"``.
    ``schema_output`` is the module ``schema:generate`` writes, ``schema_rules`` its rules
    (``SchemaRules.from_config``) and ``schema_generate`` whether the migration commands
    regenerate it.
    """

    root: Path
    database: dict[str, Any] | None = field(default_factory=lambda: {"url": DEFAULT_DATABASE_URL})
    source: Path | None = None
    database_source: str = "the default"
    searched: tuple[Path, ...] = ()
    migrations_path: Path = Path("database/migrations")
    seeders_path: Path = Path("database/seeders")
    factories_path: Path = Path("database/factories")
    models_path: Path = Path("app/models")
    migrations_table: str = "lucid_schema"
    schema_output: Path = Path("database/schema.py")
    schema_rules: dict[str, Any] = field(default_factory=dict)
    schema_generate: bool = True
    environment: str = "development"

    def __post_init__(self) -> None:
        self.root = self.root.resolve()
        self.migrations_path = self._resolve(self.migrations_path)
        self.seeders_path = self._resolve(self.seeders_path)
        self.factories_path = self._resolve(self.factories_path)
        self.models_path = self._resolve(self.models_path)
        self.schema_output = self._resolve(self.schema_output)
        if self.database is not None:
            self.database = _resolve_sqlite_urls(self.database, self.root)

    def _resolve(self, path: Path) -> Path:
        return path if path.is_absolute() else self.root / path

    @property
    def is_production(self) -> bool:
        """True when the environment is ``production``."""
        return self.environment == "production"

    @property
    def connection_names(self) -> list[str]:
        """The names of the configured connections (``["default"]`` for a plain ``url``)."""
        if self.database is None:
            return []
        names = list(self.database.get("connections") or {})
        if self.database.get("url") is not None:
            name = self.database.get("connection") or "default"
            if name not in names:
                names.append(name)
        return names

    def module_path(self, folder: Path) -> str | None:
        """The dotted import path of ``folder`` from ``root`` (``app/models`` →
        ``"app.models"``), or ``None`` when it lies outside the project."""
        if not folder.is_relative_to(self.root):
            return None
        parts = folder.relative_to(self.root).parts
        if not parts or not all(part.isidentifier() for part in parts):
            return None
        return ".".join(parts)

    def configure_db(self) -> None:
        """Apply ``database`` to ``lucid_orm.db`` (creating the folders of SQLite files) and
        put ``root`` on ``sys.path`` so migrations and seeders can import the project's models.

        Raises ``LucidError`` (``E_MISSING_DATABASE``) when nothing names a database: no
        configuration file and neither ``LUCID_DATABASE_URL`` nor ``DATABASE_URL``; the message
        lists where ``load_config`` looked. (A database file is never created by accident in
        whatever directory the command ran from.)
        """
        from .database import db

        if self.database is None:
            raise self.missing_database()
        for url in _urls(self.database):
            folder = _sqlite_folder(url)
            if folder is not None:
                folder.mkdir(parents=True, exist_ok=True)
        root = str(self.root)
        if root not in sys.path:
            sys.path.insert(0, root)
        db.configure(**self.database)

    def missing_database(self) -> LucidError:
        """The error of a command that needs a database when nothing names one."""
        looked = ", ".join(f'"{path}"' for path in self.searched) or f'"{self.root}"'
        variables = " or ".join(DATABASE_URL_VARIABLES)
        return LucidError(
            f"No database configured: no configuration found (looked for {looked}) and "
            f"neither {variables} is set. Run the command in your project directory, pass "
            f"--config, set {DATABASE_URL_VARIABLES[0]} (e.g. sqlite:///database/app.db), or "
            f'create {CONFIG_FILE} with DATABASE = {{"url": "sqlite:///database/app.db"}}',
            code="E_MISSING_DATABASE",
        )


def database_url_from_env() -> tuple[str, str] | None:
    """``(variable, url)`` of the first of ``LUCID_DATABASE_URL``, ``DATABASE_URL`` that is
    set and not blank, else ``None``."""
    for variable in DATABASE_URL_VARIABLES:
        url = os.environ.get(variable, "").strip()
        if url:
            return variable, url
    return None


def load_config(cwd: Path | None = None, *, path: Path | None = None) -> LucidConfig:
    """Read the configuration of the project in ``cwd`` (default: the current directory).

    ``path`` names the file to read (a ``.py`` module or a ``.toml`` file with a
    ``[tool.lucid-orm]`` table); without it, ``lucid_config.py`` in ``cwd`` wins over
    ``pyproject.toml``'s ``[tool.lucid-orm]``.

    The database is the file's ``DATABASE`` setting; when it names none, ``LUCID_DATABASE_URL``,
    else ``DATABASE_URL``; else, if a file was found, ``sqlite:///database/app.db``; with no
    file at all, ``database`` is ``None`` and ``configure_db()`` refuses, naming the files it
    looked for. Raises ``LucidError`` (``E_INVALID_CONFIG``) for a file that cannot be read or
    holds unknown or ill-typed settings.
    """
    base = (cwd or Path.cwd()).resolve()
    if path is not None:
        path = (base / path).resolve()
        if not path.is_file():
            raise _invalid(f'Configuration file "{path}" does not exist')
        settings = _read_toml(path, required=True) if path.suffix == ".toml" else _read_py(path)
        assert settings is not None
        return _build(path.parent, path, settings)
    module = base / CONFIG_FILE
    if module.is_file():
        return _build(base, module, _read_py(module))
    pyproject = base / "pyproject.toml"
    if pyproject.is_file():
        settings = _read_toml(pyproject, required=False)
        if settings is not None:
            return _build(base, pyproject, settings)
    return _build(base, None, {}, searched=(module, pyproject))


def _invalid(message: str) -> LucidError:
    return LucidError(message, code="E_INVALID_CONFIG")


def _read_py(path: Path) -> dict[str, Any]:
    try:
        # Not registered in sys.modules: the settings are read once, the module then dropped.
        module = load_file(path, "_lucid_config", register=False)
    except UnloadableFileError:
        raise _invalid(f'Cannot load configuration module "{path}"') from None
    except Exception as exc:
        raise _invalid(f'Cannot load "{path}": {type(exc).__name__}: {exc}') from exc
    return {
        name.lower(): value
        for name, value in vars(module).items()
        if name.isupper() and name.lower() in _SETTINGS
    }


def _read_toml(path: Path, *, required: bool) -> dict[str, Any] | None:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise _invalid(f'Cannot read "{path}": {exc}') from exc
    table = data.get("tool", {}).get("lucid-orm")
    if table is None:
        if required:
            raise _invalid(f'"{path}" has no [tool.lucid-orm] table')
        return None
    if not isinstance(table, dict):
        raise _invalid(f'[tool.lucid-orm] in "{path}" must be a table')
    settings: dict[str, Any] = {}
    shorthand: dict[str, Any] = {}
    for key, value in table.items():
        name = key.replace("-", "_")
        if name in _DATABASE_KEYS:
            shorthand[name] = value
        elif name in _SETTINGS:
            settings[name] = value
        else:
            known = ", ".join(sorted(_SETTINGS | _DATABASE_KEYS))
            raise _invalid(f'Unknown setting "{key}" in [tool.lucid-orm] of "{path}" ({known})')
    if shorthand:
        if "database" in settings:
            raise _invalid(
                f'[tool.lucid-orm] of "{path}" sets both "database" and '
                f"{', '.join(sorted(shorthand))}: use one"
            )
        settings["database"] = shorthand
    return settings


def _build(
    root: Path,
    source: Path | None,
    settings: Mapping[str, Any],
    *,
    searched: tuple[Path, ...] = (),
) -> LucidConfig:
    where = f'"{source}"' if source else "the defaults"
    kwargs: dict[str, Any] = {"searched": searched}
    database = settings.get("database")
    from_env = database_url_from_env() if database is None else None
    if from_env is not None:
        kwargs["database_source"], database = from_env
    elif database is not None:
        kwargs["database_source"] = source.name if source else "the configuration"
    elif source is not None:
        database = DEFAULT_DATABASE_URL
    else:
        kwargs["database"] = None
        return _finish(root, source, settings, where, kwargs)
    if isinstance(database, str):
        database = {"url": database}
    if not isinstance(database, Mapping) or not (
        database.get("url") or database.get("connections")
    ):
        raise _invalid(
            f"The database setting of {where} must be a mapping with a url or connections "
            '(the arguments of db.configure()), e.g. {"url": "sqlite:///database/app.db"}'
        )
    kwargs["database"] = dict(database)
    return _finish(root, source, settings, where, kwargs)


def _finish(
    root: Path, source: Path | None, settings: Mapping[str, Any], where: str, kwargs: dict[str, Any]
) -> LucidConfig:
    for name in (*_DEFAULT_PATHS, "schema_output"):
        value = settings.get(name)
        if value is None:
            continue
        if not isinstance(value, str | os.PathLike):
            raise _invalid(f'"{name}" in {where} must be a path, got {value!r}')
        kwargs[name] = Path(value)
    rules = settings.get("schema_rules")
    if rules is not None:
        if not isinstance(rules, Mapping):
            raise _invalid(f'"schema_rules" in {where} must be a mapping, got {rules!r}')
        kwargs["schema_rules"] = dict(rules)
    generate = settings.get("schema_generate")
    if generate is not None:
        if not isinstance(generate, bool):
            raise _invalid(f'"schema_generate" in {where} must be True or False, got {generate!r}')
        kwargs["schema_generate"] = generate
    for name in ("migrations_table", "environment"):
        value = settings.get(name)
        if value is None:
            continue
        if not isinstance(value, str) or not value:
            raise _invalid(f'"{name}" in {where} must be a non-empty string, got {value!r}')
        kwargs[name] = value
    environment = os.environ.get(ENVIRONMENT_VARIABLE)
    if environment:
        kwargs["environment"] = environment
    return LucidConfig(root=root, source=source, **kwargs)


def _urls(value: Any) -> list[str]:
    """Every ``url`` in a ``db.configure()`` mapping (connections and replicas included)."""
    if isinstance(value, Mapping):
        found = [value["url"]] if isinstance(value.get("url"), str) else []
        for key, item in value.items():
            if key != "url":
                found += _urls(item)
        return found
    if isinstance(value, list | tuple):
        return [url for item in value for url in _urls(item)]
    return []


def _resolve_sqlite_urls(value: Any, root: Path) -> Any:
    """A copy of ``value`` whose relative SQLite file URLs point under ``root``."""
    if isinstance(value, Mapping):
        return {
            key: _absolute_sqlite(item, root)
            if key == "url" and isinstance(item, str)
            else _resolve_sqlite_urls(item, root)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [_resolve_sqlite_urls(item, root) for item in value]
    return value


def _sqlite_file(url: str) -> str | None:
    """The file of a SQLite URL (``None`` for any other database or for ``:memory:``)."""
    if not url.startswith("sqlite") or ":memory:" in url:
        return None
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    return parsed.database


def _absolute_sqlite(url: str, root: Path) -> str:
    file = _sqlite_file(url)
    if file is None or Path(file).is_absolute():
        return url
    parsed = make_url(url).set(database=str(root / file))
    return parsed.render_as_string(hide_password=False)


def _sqlite_folder(url: str) -> Path | None:
    file = _sqlite_file(url)
    return None if file is None else Path(file).parent
