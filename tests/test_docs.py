"""The guides in ``docs/`` are executable: every ```python block of a page runs, in order, in
one namespace, against embedded SQLite (blocks fenced ```python no-run are skipped).

Each page runs in its own interpreter (``tests/docs_runner.py``) so that the examples'
``db.configure()`` / ``db.close()`` never touch the ``db`` the dialect fixtures configured.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from tests.docs_runner import blocks

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
RUNNER = Path(__file__).resolve().parent / "docs_runner.py"
PAGES = sorted(DOCS.rglob("*.md"))
TIMEOUT = 120


async def _run(page: Path) -> tuple[int, str]:
    """Run ``tests/docs_runner.py page`` in a fresh interpreter: (exit code, its output)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(RUNNER),
        str(page),
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
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


@pytest.mark.parametrize("page", PAGES, ids=[p.relative_to(DOCS).as_posix() for p in PAGES])
async def test_page_examples_run(page: Path) -> None:
    if not any(b.runs for b in blocks(page.read_text(encoding="utf-8"))):
        pytest.skip(f"{page.name} has no runnable python block")
    code, out = await _run(page.relative_to(ROOT))
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
    code, out = await _run(page)
    assert code == 1
    assert f"{page}: the block starting at line 13 failed" in out
    assert f'File "{page}", line 14' in out
    assert "AssertionError: value is wrong" in out
