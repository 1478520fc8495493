"""The guides in ``docs/`` and the README are executable: every ```python block of a page runs,
in order, in one namespace, on each dialect. Blocks fenced ```python no-run are skipped; blocks
fenced ```python sqlite-only (showing SQLite's own behaviour, such as its database file) run on
SQLite only.

Each page runs in its own interpreter (``tests/docs_runner.py``) so that the examples'
``db.configure()`` / ``db.close()`` never touch the ``db`` the dialect fixtures configured. The
pages configure SQLite; on PostgreSQL and MariaDB the runner redirects their SQLite URLs to a
database of their own (the dialect's test database name + ``_docs``), created empty before each
page, so a page never sees another page's tables nor the suite's.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from lucid_orm import db
from mkdocs_hooks import on_page_markdown
from tests.docs_runner import _redirected, blocks
from tests.helpers import DialectConfig

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
RUNNER = Path(__file__).resolve().parent / "docs_runner.py"
PAGES = [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]
# Pages with a block to run (the API reference pages and the benchmark report have none).
RUNNABLE = [p for p in PAGES if any(b.runs for b in blocks(p.read_text(encoding="utf-8")))]
TIMEOUT = 120


def _page_id(page: Path) -> str:
    return page.relative_to(DOCS if page.is_relative_to(DOCS) else ROOT).as_posix()


async def _fresh_docs_database(config: DialectConfig) -> str:
    """Drop and create the docs database next to the dialect's test database (through the
    configured ``db``, which is connected to the latter); returns its URL."""
    url = make_url(config.url)
    name = f"{url.database}_docs"
    force = " WITH (FORCE)" if config.name == "postgresql" else ""
    await db.raw_query(f"DROP DATABASE IF EXISTS ??{force}", [name])
    await db.raw_query("CREATE DATABASE ??", [name])
    return url.set(database=name).render_as_string(hide_password=False)


async def _run(page: Path, cwd: Path, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run ``tests/docs_runner.py page`` in a fresh interpreter: (exit code, its output)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(RUNNER),
        str(page),
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        pytest.fail(f"{page}: examples still running after {TIMEOUT}s", pytrace=False)
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace")


def test_docs_exist() -> None:
    assert PAGES, f"no Markdown pages under {DOCS}"
    assert ROOT / "README.md" in RUNNABLE


@pytest.mark.parametrize("page", RUNNABLE, ids=[_page_id(p) for p in RUNNABLE])
async def test_page_examples_run(page: Path, dialect_config: DialectConfig, tmp_path: Path) -> None:
    """The page's blocks run on the dialect (its ```python sqlite-only blocks on SQLite only);
    the working directory is a fresh temporary one, so a relative SQLite file starts empty."""
    await dialect_config.restore()
    env = {"LUCID_DOCS_URL": ""}
    if dialect_config.name != "sqlite":
        env["LUCID_DOCS_URL"] = await _fresh_docs_database(dialect_config)
    code, out = await _run(page, tmp_path, env)
    if code != 0:
        pytest.fail(out, pytrace=False)


def test_blocks_parse_fences_and_no_run() -> None:
    page = "# T\n\n```python\nx = 1\n```\n\n```python no-run\nboom()\n```\n\n```sh\nls\n```\n"
    found = blocks(page)
    assert [(b.info, b.line, b.source) for b in found] == [
        (["python"], 4, "x = 1\n"),
        (["python", "no-run"], 8, "boom()\n"),
        (["sh"], 12, "ls\n"),
    ]
    assert [b.runs for b in found] == [True, False, False]


async def test_runner_reports_page_line_and_traceback(tmp_path: Path) -> None:
    page = tmp_path / "broken.md"
    page.write_text(
        "# Broken\n\n```python\nimport asyncio\nvalue = 1\n```\n\n"
        "```python no-run\nraise SystemExit(3)\n```\n\n"
        "```python\nawait asyncio.sleep(0)\nassert value == 2, 'value is wrong'\n```\n",
        encoding="utf-8",
    )
    code, out = await _run(page, tmp_path)
    assert code == 1
    assert f"{page}: the block starting at line 13 failed" in out
    assert f'File "{page}", line 14' in out
    assert "AssertionError: value is wrong" in out


def test_runner_redirects_sqlite_urls_only() -> None:
    config = {
        "url": "sqlite:///app.db",
        "busy_timeout_ms": 10_000,
        "pool": {"max": 2},
        "replicas": {"write": {"url": "sqlite:///w.db"}, "read": [{"url": "postgresql://h/r"}]},
    }
    assert _redirected(config, "mysql://root@h/docs") == {
        "url": "mysql://root@h/docs",
        "pool": {"max": 2},
        "replicas": {
            "write": {"url": "mysql://root@h/docs"},
            "read": [{"url": "postgresql://h/r"}],
        },
    }


def test_site_sees_the_bare_language_of_runner_fences() -> None:
    page = "```python no-run\na()\n```\n\n```python sqlite-only\nb()\n```\n\n```python\nc()\n```\n"
    bare = "```python\na()\n```\n\n```python\nb()\n```\n\n```python\nc()\n```\n"
    assert on_page_markdown(page) == bare
