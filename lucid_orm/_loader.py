"""Import a Python file by path: the one loader behind config modules, migration files and
seeder files (each caller names the module and turns failures into its own error)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import TypeVar

T = TypeVar("T")


class UnloadableFileError(Exception):
    """Python has no loader for the path (it is not a ``.py`` file)."""


def load_file(path: Path, module_name: str, *, register: bool = True) -> ModuleType:
    """Run the file at ``path`` as module ``module_name`` and return the module.

    ``register``: the module is in ``sys.modules`` while it runs and after (dataclasses and
    typing look a module up by name); it is removed again when the file raises. The file's own
    exception propagates; ``UnloadableFileError`` when ``path`` cannot be imported at all.
    """
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise UnloadableFileError(str(path))
    module = importlib.util.module_from_spec(spec)
    if register:
        sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        if register:
            sys.modules.pop(module_name, None)
        raise
    return module


def defined_subclasses(module: ModuleType, base: type[T]) -> list[type[T]]:
    """The subclasses of ``base`` that ``module`` defines (imported ones are not counted)."""
    return [
        value
        for value in vars(module).values()
        if isinstance(value, type)
        and issubclass(value, base)
        and value is not base
        and value.__module__ == module.__name__
    ]
