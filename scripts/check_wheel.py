"""What ``scripts/check_wheel.sh`` runs inside the clean virtual environment it installed the
wheel into: ``python check_wheel.py EXTRAS...`` with the extras installed so far."""

from __future__ import annotations

import asyncio
import importlib.metadata
import importlib.util
import os
import sys

import lucid_orm
from lucid_orm import LucidError, db

DRIVERS = {"postgresql": "asyncpg", "mysql": "asyncmy"}
URLS = {
    "postgresql": os.environ.get("LUCID_PG_URL", "postgresql://postgres@127.0.0.1:5432/test"),
    "mysql": os.environ.get("LUCID_MYSQL_URL", "mysql://root@127.0.0.1:3306/test"),
}


def check(condition: bool, message: str) -> None:
    if not condition:
        sys.exit(f"check_wheel: {message}")


async def round_trip(url: str) -> None:
    db.configure(url=url)
    try:
        await db.raw_query("create table if not exists wheel_check (id integer primary key)")
        await db.table("wheel_check").insert({"id": 1})
        rows = await db.from_("wheel_check").select("id")
        check([row["id"] for row in rows] == [1], f"round trip on {url} read {rows}")
    finally:
        await db.raw_query("drop table if exists wheel_check")
        await db.close()


# The integration extras: the module each one enables, and what it needs.
INTEGRATIONS = {
    "pydantic": "lucid_orm.pydantic",
    "otel": "lucid_orm.contrib.opentelemetry",
    "fastapi": "lucid_orm.contrib.fastapi",
}


def integration(extra: str, installed: bool) -> None:
    """``import`` of the extra's module works with it, and without it raises a LucidError
    (``E_MISSING_DEPENDENCY``) naming ``pip install 'lucid-orm[extra]'``."""
    module = INTEGRATIONS[extra]
    try:
        __import__(module)
    except LucidError as exc:
        wanted = f"pip install 'lucid-orm[{extra}]'"
        check(not installed, f"{module} refused with [{extra}] installed: {exc}")
        check(wanted in str(exc) and exc.code == "E_MISSING_DEPENDENCY", str(exc))
        print(f"check_wheel: without [{extra}], {module} names the extra: ok")
        return
    check(installed, f"{module} imported without [{extra}]")
    print(f"check_wheel: with [{extra}], {module} imports: ok")


def main(extras: list[str]) -> None:
    version = importlib.metadata.version("lucid-orm")
    check(lucid_orm.__version__ == version, f"__version__ {lucid_orm.__version__} != {version}")
    meta = importlib.metadata.metadata("lucid-orm")
    check(meta["License-Expression"] == "MIT", f"License-Expression: {meta['License-Expression']}")
    urls = meta.get_all("Project-URL") or []
    for label in ("Documentation", "Changelog", "Source"):
        check(any(u.startswith(f"{label},") for u in urls), f"no {label} URL in {urls}")
    check(__import__("aiosqlite") is not None, "aiosqlite missing from the base install")

    # The embedded default works with no extra: a file database, written and read back.
    asyncio.run(round_trip(f"sqlite:///{os.environ['CHECK_WHEEL_TMP']}/check.db"))
    for extra, driver in DRIVERS.items():
        installed = importlib.util.find_spec(driver) is not None
        check(installed == (extra in extras), f"{driver} installed: {installed}, extras {extras}")
        if installed:
            db.configure(url=URLS[extra])  # the driver is there: configuring is accepted
            continue
        try:
            db.configure(url=URLS[extra])
        except LucidError as exc:
            wanted = f"pip install 'lucid-orm[{extra}]'"
            check(wanted in str(exc) and exc.code == "E_MISSING_DEPENDENCY", str(exc))
        else:
            check(False, f"configuring {extra} without {driver} raised nothing")
    # With the extra and a server to talk to (CI): a round trip through the installed driver.
    for extra in extras:
        if os.environ.get("CHECK_WHEEL_SERVERS") == "1":
            asyncio.run(round_trip(URLS[extra]))
    print(f"check_wheel: lucid-orm {version} with extras {extras or 'none'}: ok")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--integration"]:
        integration(sys.argv[2], sys.argv[3] == "installed")
    else:
        main(sys.argv[1:])
