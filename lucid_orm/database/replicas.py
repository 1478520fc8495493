"""Scale-out routing on top of the servers' own replication: read-your-writes scopes
(``sticky``), replicas or write hosts that are down (skipped for a cool-down), replica lag
(``max_replica_lag``) and failover between several write hosts."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.util.concurrency import greenlet_spawn

from ..errors import LucidError

if TYPE_CHECKING:
    from .connection import Engines

logger = logging.getLogger("lucid_orm.replicas")
"""Where a replica or write host that stops answering is reported (a warning when it goes down,
once per outage; an info line when it answers again)."""

DEFAULT_COOLDOWN = 10.0
"""Seconds a replica or write host that failed to connect is skipped (``replica_cooldown``)."""

DEFAULT_LAG_INTERVAL = 1.0
"""Seconds a replica's measured lag is trusted before it is measured again
(``replica_lag_interval``)."""

# -- read-your-writes -----------------------------------------------------------------------------

# The names of the sticky connections written in the current scope. A context variable: each
# asyncio task (each web request) has its own; a task sees the writes its parent made before
# starting it, never those of its siblings or children. sticky_scope() starts an empty one.
_WRITTEN: ContextVar[frozenset[str]] = ContextVar("lucid_sticky_writes", default=frozenset())


def note_write(name: str) -> None:
    """Record that connection ``name`` was written (or a transaction began on it) in the
    current scope: its reads go to the write side from now on, in this scope."""
    written = _WRITTEN.get()
    if name not in written:
        _WRITTEN.set(written | {name})


def wrote_in_scope(name: str) -> bool:
    """Whether the current scope wrote through sticky connection ``name``."""
    return name in _WRITTEN.get()


class StickyScope:
    """A read-your-writes scope (``db.sticky_scope()``): it starts with no write; a write made
    inside it sends the reads that follow in it (and in the tasks started after the write) to
    the write side. Leaving it restores the enclosing scope. ``with`` and ``async with``."""

    __slots__ = ("_token",)

    def __init__(self) -> None:
        self._token: Token[frozenset[str]] | None = None

    def __enter__(self) -> StickyScope:
        self._token = _WRITTEN.set(frozenset())
        return self

    def __exit__(self, *exc_info: object) -> None:
        token, self._token = self._token, None
        if token is not None:
            try:
                _WRITTEN.reset(token)
            except ValueError:
                # Left in another context than it was entered in (a framework running the
                # exit elsewhere): that context ends with its request anyway.
                _WRITTEN.set(frozenset())

    async def __aenter__(self) -> StickyScope:
        return self.__enter__()

    async def __aexit__(self, *exc_info: object) -> None:
        self.__exit__()


# -- hosts that are down ------------------------------------------------------------------------


class HostState:
    """Whether one server (a read replica, a write host) answers: after a failed connection
    attempt it is skipped for ``cooldown`` seconds, then tried again. Reported once per
    outage."""

    __slots__ = ("cooldown", "down", "down_until", "label")

    def __init__(self, label: str, cooldown: float) -> None:
        self.label = label
        self.cooldown = cooldown
        self.down = False
        self.down_until = 0.0

    def available(self, now: float) -> bool:
        """Whether to try it: up, or down for longer than the cool-down."""
        return not self.down or now >= self.down_until

    def failed(self, exc: BaseException, instead: str) -> None:
        """A connection attempt failed: skip it for a cool-down (a warning the first time)."""
        if not self.down:
            logger.warning(
                "%s is unreachable (%s); %s, and it is tried again in %gs",
                self.label,
                _first_line(exc),
                instead,
                self.cooldown,
            )
        else:
            logger.debug("%s is still unreachable: %s", self.label, _first_line(exc))
        self.down = True
        self.down_until = time.monotonic() + self.cooldown

    def answered(self) -> None:
        """It answered: use it again."""
        if self.down:
            self.down = False
            logger.info("%s answers again", self.label)


def _first_line(exc: BaseException) -> str:
    from .connection import mask_text

    # The driver's own words (a LucidError from connecting() names the server again).
    if isinstance(exc, LucidError) and exc.__cause__ is not None:
        exc = exc.__cause__
    text = mask_text(str(exc).strip()) or type(exc).__name__
    return text.splitlines()[0]


def seconds_option(config: Mapping[str, Any], key: str, name: str) -> float | None:
    """A non-negative number of seconds from the connection config, ``None`` when absent."""
    value = config.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise LucidError(
            f'Connection "{name}": {key} must be a number of seconds >= 0, got {value!r}',
            code="E_INVALID_CONFIG",
        )
    return float(value)


# -- replica lag --------------------------------------------------------------------------------


class LagProbe:
    """The replay lag of one replica, measured with ``sql`` (the dialect's
    ``replica_lag_sql``) on a pooled driver connection at most once per ``interval`` seconds.
    The probe bypasses SQLAlchemy's execution layer: it is no statement of the application's
    (``db.on_query`` never sees it)."""

    __slots__ = ("checked_at", "interval", "lag", "sql")

    def __init__(self, sql: str, interval: float) -> None:
        self.sql = sql
        self.interval = interval
        self.checked_at = -1e18
        self.lag = 0.0

    async def seconds(self, engines: Engines) -> float:
        now = time.monotonic()
        if now - self.checked_at < self.interval:
            return self.lag
        raw = await engines.engine.raw_connection()
        try:
            driver: Any = raw.driver_connection
            value = await driver.fetchval(self.sql)
        finally:
            await greenlet_spawn(raw.close)
        self.lag = float("inf") if value is None else float(value)
        self.checked_at = time.monotonic()
        return self.lag


# -- several write hosts ------------------------------------------------------------------------


def write_hosts(name: str, config: Mapping[str, Any], write: Any) -> list[dict[str, Any]]:
    """The write side's configs, one per host in failover order: ``replicas.write`` as a list
    of configs, or a ``hosts`` list (``"host:port"`` strings) next to a ``url`` that gives the
    rest."""
    entries: list[dict[str, Any]]
    if isinstance(write, Sequence) and not isinstance(write, str | bytes):
        if not write:
            raise LucidError(
                f'Connection "{name}": replicas.write is an empty list', code="E_INVALID_CONFIG"
            )
        entries = [{**config, **w} for w in write]
    else:
        entries = [{**config, **(write or {})}]
    out: list[dict[str, Any]] = []
    for entry in entries:
        entry.pop("replicas", None)
        hosts = entry.pop("hosts", None)
        if hosts is None:
            out.append(entry)
            continue
        if isinstance(hosts, str) or not isinstance(hosts, Sequence) or not hosts:
            raise LucidError(
                f'Connection "{name}": hosts must be a non-empty list of "host:port" strings',
                code="E_INVALID_CONFIG",
            )
        if not entry.get("url"):
            raise LucidError(
                f'Connection "{name}": hosts needs a "url" giving the driver, user and database',
                code="E_INVALID_CONFIG",
            )
        for host in hosts:
            out.append({**entry, "url": _with_host(name, entry["url"], host)})
    for entry in out:
        if not entry.get("url"):
            raise LucidError(f'Connection "{name}" has no "url"', code="E_INVALID_CONFIG")
    return out


def _with_host(name: str, url: str | URL, host: object) -> URL:
    if not isinstance(host, str) or not host or host.count(":") > 1:
        raise LucidError(
            f'Connection "{name}": a host must be a "host" or "host:port" string, got {host!r}',
            code="E_INVALID_CONFIG",
        )
    hostname, _, port = host.partition(":")
    parsed = make_url(url)
    if not port:
        return parsed.set(host=hostname)
    if not port.isdigit():
        raise LucidError(f'Connection "{name}": bad port in host {host!r}', code="E_INVALID_CONFIG")
    return parsed.set(host=hostname, port=int(port))


def install_failover(engines: Engines, urls: list[URL], states: list[HostState]) -> None:
    """Connect the pool of ``engines`` to the first of ``urls`` that answers: each new driver
    connection tries the hosts in order, those in their cool-down last. Existing connections
    are not moved (a host that goes down drops them: reads are retried on a new connection,
    ``pool={"pre_ping": True}`` checks them before a transaction or write)."""
    sync = engines.engine.sync_engine
    dialect = sync.dialect
    # What each URL makes of the connect parameters (host, port, user, password, database);
    # the rest (connect_args, the dialect's own) comes from the parameters SQLAlchemy built.
    per_host = [dialect.create_connect_args(url)[1] for url in urls]

    @event.listens_for(sync, "do_connect")
    def _connect(_dialect: Any, _record: Any, cargs: Any, cparams: dict[str, Any]) -> Any:
        now = time.monotonic()
        order = [i for i, s in enumerate(states) if s.available(now)]
        order += [i for i, s in enumerate(states) if not s.available(now)]
        last: BaseException | None = None
        for position, i in enumerate(order):
            params = {**cparams, **per_host[i]}
            try:
                found = dialect.connect(*cargs, **params)
            except Exception as exc:
                last = exc
                rest = order[position + 1 :]
                instead = (
                    f"new connections go to {states[rest[0]].label}"
                    if rest
                    else "no other write host is left"
                )
                states[i].failed(exc, instead)
                continue
            states[i].answered()
            return found
        assert last is not None
        raise last
