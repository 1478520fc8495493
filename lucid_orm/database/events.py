"""Query events: the ``QueryEvent`` record and the listener registry behind ``db.on_query``."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger("lucid_orm.query")

# Transaction control statements are not reported (SPEC §8): only real statements are.
_CONTROL = re.compile(r"^\s*(BEGIN|COMMIT|ROLLBACK|SAVEPOINT|RELEASE|START TRANSACTION)\b", re.I)


@dataclass(slots=True)
class QueryEvent:
    """One executed statement, as handed to ``db.on_query`` listeners."""

    sql: str
    bindings: list[Any] = field(default_factory=list)
    connection: str = "default"
    duration_ms: float = 0.0
    model: str | None = None
    in_transaction: bool = False


QueryListener = Callable[[QueryEvent], None]


class QueryEmitter:
    """Holds the listeners; survives ``configure()`` and ``close()`` of the manager."""

    def __init__(self) -> None:
        self.listeners: list[QueryListener] = []

    def subscribe(self, listener: QueryListener) -> Callable[[], None]:
        self.listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self.listeners:
                self.listeners.remove(listener)

        return unsubscribe

    @staticmethod
    def is_control(sql: str) -> bool:
        return _CONTROL.match(sql) is not None

    def emit(self, event: QueryEvent, *, debug: bool) -> None:
        if debug:
            logger.info(
                "[%s] %.2f ms %s %s", event.connection, event.duration_ms, event.sql, event.bindings
            )
        for listener in list(self.listeners):
            listener(event)
