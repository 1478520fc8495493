"""Packaging: server drivers are extras (a missing one raises a ``LucidError`` naming it), the
embedded default needs none of them, and ``lucid_orm.__version__``. The built wheel itself is
checked in clean virtual environments by ``make package-check`` (scripts/check_wheel.sh)."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

import lucid_orm
from lucid_orm import _version

ROOT = Path(__file__).resolve().parents[2]

# Run in a fresh interpreter where importing asyncpg and asyncmy fails, as in an environment
# where `pip install lucid-orm` left them out.
WITHOUT_SERVER_DRIVERS = """
    import asyncio, sys
    sys.modules["asyncpg"] = None
    sys.modules["asyncmy"] = None

    from lucid_orm import LucidError, db

    async def embedded():
        db.configure(url="sqlite://:memory:")
        await db.raw_query("create table notes (id integer primary key, body text)")
        await db.table("notes").insert({"body": "hello"})
        rows = await db.from_("notes").select("body")
        await db.close()
        return [row["body"] for row in rows]

    print("sqlite", asyncio.run(embedded()))
    for url in ("postgresql://app@127.0.0.1/app", "postgres://app@h/app", "mysql://root@h/app",
                "mariadb://root@h/app"):
        try:
            db.configure(url=url)
        except LucidError as exc:
            print(url.split(":")[0], exc.code, exc)
        else:
            print(url.split(":")[0], "configured")
    print("loaded", sorted(m for m in ("asyncpg", "asyncmy") if sys.modules.get(m)))
"""


def test_missing_server_driver_names_the_extra() -> None:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(WITHOUT_SERVER_DRIVERS)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "sqlite ['hello']"
    pg = (
        "E_MISSING_DEPENDENCY A postgresql connection needs the asyncpg driver, which is not "
        "installed: pip install 'lucid-orm[postgresql]'"
    )
    mysql = (
        "E_MISSING_DEPENDENCY A mysql connection needs the asyncmy driver, which is not "
        "installed: pip install 'lucid-orm[mysql]'"
    )
    assert lines[1:5] == [
        f"postgresql {pg}",
        f"postgres {pg}",
        f"mysql {mysql}",
        f"mariadb {mysql}",
    ]
    assert lines[5] == "loaded []"


def test_importing_lucid_orm_loads_no_server_driver() -> None:
    code = "import sys, lucid_orm; print([m for m in ('asyncpg', 'asyncmy') if m in sys.modules])"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_version() -> None:
    assert lucid_orm.__version__ == importlib.metadata.version("lucid-orm")
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        lucid_orm.nope  # type: ignore[attr-defined]


def test_version_from_a_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    # Run from a checkout that was never installed: no distribution metadata.
    def not_installed(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(_version, "_distribution_version", not_installed)
    _version.version.cache_clear()
    try:
        with (ROOT / "pyproject.toml").open("rb") as fh:
            declared = tomllib.load(fh)["project"]["version"]
        assert _version.version() == declared
    finally:
        _version.version.cache_clear()


def test_min_constraints_pin_every_floor(tmp_path: Path) -> None:
    script = ROOT / "scripts" / "min_constraints.py"
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    pins = dict(line.split("==") for line in result.stdout.split())
    with (ROOT / "pyproject.toml").open("rb") as fh:
        project = tomllib.load(fh)["project"]
    assert len(pins) == len(project["dependencies"])
    assert "asyncpg" not in pins and "asyncmy" not in pins  # extras, not the base install
    assert pins["sqlalchemy"] == "2.1.6" and pins["aiosqlite"] == "0.20"

    # A dependency without a floor is refused: CI could not prove it.
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "min_constraints.py").write_text(script.read_text())
    (tmp_path / "pyproject.toml").write_text('[project]\ndependencies = ["rich<14"]\n')
    refused = subprocess.run(
        [sys.executable, str(tmp_path / "scripts" / "min_constraints.py")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 1
    assert "'rich<14' has no >= floor" in refused.stderr
