"""``lucid_orm.__version__``: the installed distribution's version, else (a checkout run
without installing it) the one its ``pyproject.toml`` declares."""

from __future__ import annotations

import tomllib
from functools import cache
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _distribution_version
from pathlib import Path

UNKNOWN = "0+unknown"


@cache
def version() -> str:
    """The version of lucid_orm ("0+unknown" when neither source names one)."""
    try:
        return _distribution_version("lucid-orm")
    except PackageNotFoundError:
        pass
    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    try:
        with pyproject.open("rb") as fh:
            project = tomllib.load(fh).get("project", {})
    except (OSError, tomllib.TOMLDecodeError):
        return UNKNOWN
    found = project.get("version") if project.get("name") == "lucid-orm" else None
    return found if isinstance(found, str) else UNKNOWN
