"""``SeedsRunner``: finds the seeder files of a directory and runs them in name order (Lucid's
``SeedsRunner`` and ``SeedersSource``)."""

from __future__ import annotations

import hashlib
import inspect
import os
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Literal

from .._loader import UnloadableFileError, defined_subclasses, load_file
from ..database.manager import db
from ..errors import LucidError
from .base_seeder import BaseSeeder

if TYPE_CHECKING:
    from ..database.query_client import Client

SeederState = Literal["completed", "ignored", "failed"]

DEFAULT_ENVIRONMENT = "development"
ENVIRONMENT_VARIABLE = "LUCID_ENV"


@dataclass(frozen=True, slots=True)
class SeederStatus:
    """The outcome of one seeder file: ``name`` (its path inside the seeders directory,
    without ``.py``), ``status``, ``reason`` (why it was ignored or failed) and ``error`` (the
    exception of a failed one)."""

    name: str
    status: SeederState
    reason: str | None = None
    error: BaseException | None = None


class SeedsRunner:
    """Runs the seeders of ``path`` (default ``database/seeders``, relative to the current
    directory) on ``connection`` (default: the primary one)::

        results = await SeedsRunner("database/seeders").run()
        failed = [r for r in results if r.status == "failed"]

    Every ``*.py`` file under ``path`` (subdirectories included, names starting with ``_`` or
    ``.`` skipped) defines one ``BaseSeeder`` subclass. Files run in order of their names.
    ``environment`` defaults to the ``LUCID_ENV`` variable, else ``"development"``; a seeder
    whose ``environment`` excludes it is ``"ignored"``. A seeder that raises is ``"failed"``
    and ends the run: the files after it are not run (nor listed).
    """

    def __init__(
        self,
        path: str | os.PathLike[str] = "database/seeders",
        *,
        connection: str | None = None,
        environment: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.connection = connection
        self.environment = (
            environment or os.environ.get(ENVIRONMENT_VARIABLE) or DEFAULT_ENVIRONMENT
        )

    def get_list(self) -> list[str]:
        """The seeder names under ``path``, in the order they run. Raises ``LucidError``
        (``E_SEEDERS_NOT_FOUND``) when the directory does not exist."""
        return sorted(self._files())

    def _files(self) -> dict[str, Path]:
        root = self.path
        if not root.is_dir():
            raise LucidError(
                f'Seeders directory "{root}" does not exist', code="E_SEEDERS_NOT_FOUND"
            )
        found: dict[str, Path] = {}
        for file in root.rglob("*.py"):
            relative = file.relative_to(root)
            if any(part.startswith(("_", ".")) for part in relative.parts):
                continue
            found[relative.with_suffix("").as_posix()] = file
        return found

    def _select(self, files: Sequence[str], available: dict[str, Path]) -> list[str]:
        return select_seeders(self.path, files, available)

    async def run(self, files: Sequence[str] | None = None) -> list[SeederStatus]:
        """Run every seeder (or only ``files``: names as ``get_list()`` gives them, with or
        without ``.py``, or paths to the files) and return one ``SeederStatus`` per file run.
        Raises ``LucidError`` before running anything when a name in ``files`` is unknown."""
        available = self._files()
        names = sorted(available) if files is None else self._select(files, available)
        client = db.connection(self.connection)
        results: list[SeederStatus] = []
        for name in names:
            result = await self._run_one(name, available[name], client)
            results.append(result)
            if result.status == "failed":
                break
        return results

    async def _run_one(self, name: str, file: Path, client: Client) -> SeederStatus:
        try:
            seeder_class = _seeder_class(name, file)
        except Exception as exc:
            return SeederStatus(name, "failed", _describe(exc), exc)
        reason = seeder_class.disabled_reason(self.environment)
        if reason is not None:
            return SeederStatus(name, "ignored", reason)
        try:
            result = seeder_class(client).run()
            if inspect.isawaitable(result):
                await result
        except Exception as exc:
            return SeederStatus(name, "failed", _describe(exc), exc)
        return SeederStatus(name, "completed")


def select_seeders(
    path: Path, files: Sequence[str], available: Collection[str], *, shown: str | None = None
) -> list[str]:
    """The seeder names ``files`` give: names as ``get_list()`` lists them, with or without
    ``.py``, or paths to the files under ``path``. Raises ``LucidError``
    (``E_SEEDERS_NOT_FOUND``) naming the unknown ones and the folder (``shown``, default
    ``path``)."""
    root = path.resolve()
    names: list[str] = []
    unknown: list[str] = []
    for given in files:
        name = Path(given).as_posix().removesuffix(".py").removeprefix("./")
        if name not in available:
            # A path to the file (relative to the current directory, or absolute).
            candidate = Path(given).resolve()
            if candidate.is_relative_to(root):
                name = candidate.relative_to(root).with_suffix("").as_posix()
        if name in available:
            names.append(name)
        else:
            unknown.append(given)
    if unknown:
        raise LucidError(
            f"Unknown seeder file(s) {', '.join(repr(u) for u in unknown)} in "
            f'"{shown or path}" (available: {", ".join(sorted(available)) or "none"})',
            code="E_SEEDERS_NOT_FOUND",
        )
    return names


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def _load(name: str, file: Path) -> ModuleType:
    digest = hashlib.sha1(str(file.resolve()).encode()).hexdigest()[:10]
    module_name = f"_lucid_seeder_{name.replace('/', '__')}_{digest}"
    try:
        return load_file(file, module_name)
    except UnloadableFileError:
        raise LucidError(f'Cannot load seeder file "{file}"', code="E_INVALID_SEEDER") from None


def _seeder_class(name: str, file: Path) -> type[BaseSeeder]:
    module = _load(name, file)
    found = defined_subclasses(module, BaseSeeder)
    if len(found) != 1:
        what = "no BaseSeeder subclass" if not found else f"{len(found)} BaseSeeder subclasses"
        raise LucidError(
            f'Seeder file "{name}" must define one BaseSeeder subclass, found {what}',
            code="E_INVALID_SEEDER",
        )
    return found[0]
