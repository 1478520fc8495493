"""Print pip constraints pinning every runtime dependency of pyproject.toml to its floor
(``sqlalchemy[asyncio]>=2.1.0,<2.2`` -> ``sqlalchemy==2.1.0``): ``make test-min`` installs
lucid_orm against them, so CI proves the lowest versions the package allows. A dependency
without a ``>=`` floor is an error: every floor must be one CI runs."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*([^;]*)")
_FLOOR = re.compile(r">=\s*([^,\s]+)")


def constraints(pyproject: Path) -> list[str]:
    with pyproject.open("rb") as fh:
        dependencies: list[str] = tomllib.load(fh)["project"]["dependencies"]
    pins = []
    for requirement in dependencies:
        match = _REQUIREMENT.match(requirement)
        floor = _FLOOR.search(match.group(2)) if match else None
        if match is None or floor is None:
            sys.exit(f"min_constraints: {requirement!r} has no >= floor")
        pins.append(f"{match.group(1)}=={floor.group(1)}")
    return pins


if __name__ == "__main__":
    root = Path(__file__).resolve().parent.parent
    print("\n".join(constraints(root / "pyproject.toml")))
