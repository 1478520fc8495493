"""Run the ```python blocks of one docs page, in order, in one shared namespace.

``python tests/docs_runner.py docs/models.md`` exits 0 when every block ran, else prints the
page, the failing block's first line number and the traceback, and exits 1. Blocks fenced
```python no-run are skipped. Top-level ``await`` is allowed in a block.

``tests/test_docs.py`` runs it in a subprocess per page, so the examples' ``db.configure()``
never touches the ``db`` of the test process.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import re
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")


@dataclass
class Block:
    """One fenced code block: its info string words, first code line (1-based) and source."""

    info: list[str]
    line: int
    source: str

    @property
    def runs(self) -> bool:
        return bool(self.info) and self.info[0] == "python" and "no-run" not in self.info[1:]


def blocks(text: str) -> list[Block]:
    """Every fenced code block of a Markdown page, in order."""
    found: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if match is None:
            i += 1
            continue
        fence = match.group("fence")
        indent = len(match.group("indent"))
        info = match.group("info").split()
        start = i + 1
        body: list[str] = []
        i += 1
        while i < len(lines):
            stripped = lines[i].strip()
            if stripped.startswith(fence[0] * len(fence)) and set(stripped) == {fence[0]}:
                break
            line = lines[i]
            body.append(line[indent:] if line[:indent].isspace() else line)
            i += 1
        found.append(Block(info, start + 1, "\n".join(body) + "\n"))
        i += 1
    return found


async def run_page(path: Path) -> int:
    """Run the page's python blocks; 0 on success, 1 after printing the first failure."""
    from lucid_orm import db

    if db.is_configured:
        await db.close()
    namespace: dict[str, Any] = {"__name__": "__docs__"}
    try:
        for block in blocks(path.read_text(encoding="utf-8")):
            if not block.runs:
                continue
            # Blank lines keep the traceback's line numbers equal to the page's.
            source = "\n" * (block.line - 1) + block.source
            try:
                # dont_inherit: this module's ``from __future__ import annotations`` must not
                # turn the examples' model annotations into strings.
                code = compile(
                    source,
                    str(path),
                    "exec",
                    flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT,
                    dont_inherit=True,
                )
                result = eval(code, namespace)
                if inspect.iscoroutine(result):
                    await result
            except BaseException:
                print(f"{path}: the block starting at line {block.line} failed", file=sys.stderr)
                traceback.print_exc()
                return 1
        return 0
    finally:
        if db.is_configured:
            await db.close()


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python tests/docs_runner.py PAGE.md", file=sys.stderr)
        return 2
    return asyncio.run(run_page(Path(argv[0])))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
