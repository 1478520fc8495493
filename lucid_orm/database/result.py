"""``ExecResult``: what running one statement returned."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class ExecResult:
    """What a statement returned: rows (tuples) with their column keys, and counters."""

    rows: Sequence[Sequence[Any]]
    keys: list[str]
    rowcount: int
    lastrowid: Any = None

    def dicts(self) -> list[dict[str, Any]]:
        keys = self.keys
        return [dict(zip(keys, row, strict=False)) for row in self.rows]
