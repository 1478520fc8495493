"""The scale-out tests run against real replication: a PostgreSQL hot standby streaming from
the primary and a three-node MariaDB Galera cluster, started by ``scripts/cluster up``
(``make test-cluster``; ``.ci/run`` runs them every time). They read where the servers are from
the environment ``scripts/cluster up`` writes, and skip when it is not set: ``make test``
leaves them out. They stop and start servers, so they run in one process (no xdist)."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

SCRIPT = os.environ.get("LUCID_CLUSTER_SCRIPT") or str(
    Path(__file__).resolve().parents[2] / "scripts" / "cluster"
)


@dataclass(frozen=True)
class Standby:
    primary: str
    standby: str


def cluster(action: str, server: str) -> None:
    """``scripts/cluster stop|start standby|galera1|galera2|galera3``: a real outage."""
    subprocess.run([SCRIPT, action, server], check=True, capture_output=True, timeout=120)


@pytest.fixture(scope="session")
def standby_urls() -> Standby:
    primary = os.environ.get("LUCID_PG_PRIMARY_URL")
    standby = os.environ.get("LUCID_PG_STANDBY_URL")
    if not primary or not standby:
        pytest.skip("no PostgreSQL standby: run scripts/cluster up and source its env file")
    return Standby(primary, standby)


@pytest.fixture(scope="session")
def galera_urls() -> list[str]:
    urls = [u for u in os.environ.get("LUCID_GALERA_URLS", "").split(",") if u.strip()]
    if len(urls) < 3:
        pytest.skip("no Galera cluster: run scripts/cluster up and source its env file")
    return urls
