"""Printing for ``main.py``: section headers, aligned ``label  value`` lines, JSON, and the
statements run in a block (``db.on_query``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from lucid_orm import QueryEvent, db

LABEL_WIDTH = 48


def section(title: str) -> None:
    print(f"\n{title}\n{'─' * len(title)}")


def line(label: str, value: object = "") -> None:
    print(f"  {label:<{LABEL_WIDTH}} {value}".rstrip())


def clip(text: str, width: int) -> str:
    """``text`` padded or cut to ``width`` characters."""
    return f"{text[: width - 1]}…" if len(text) > width else f"{text:<{width}}"


def show_json(data: Any) -> None:
    for text in json.dumps(data, indent=2, default=str).splitlines():
        print(f"  {text}")


@contextmanager
def count_queries() -> Iterator[list[QueryEvent]]:
    """The statements run inside the block."""
    seen: list[QueryEvent] = []
    unsubscribe = db.on_query(seen.append)
    try:
        yield seen
    finally:
        unsubscribe()


def models_of(events: list[QueryEvent]) -> str:
    """The model of each statement, in order: ``User → Country → Profile``."""
    return " → ".join(event.model or "-" for event in events)
