"""Run the ```python blocks of one docs page, in order, in one shared namespace.

``python tests/docs_runner.py docs/models.md`` exits 0 when every block ran, else prints the
page, the failing block's first line number and the traceback, and exits 1. Blocks fenced
```python no-run are skipped, and so are blocks fenced ```python sqlite-only on a server.
Top-level ``await`` is allowed in a block.

The pages configure SQLite (``db.configure(url="sqlite://:memory:")``). With
``LUCID_DOCS_URL`` set to a PostgreSQL or MySQL URL, every SQLite URL a page hands to
``Database.configure`` (``url=``, each connection's ``url``, replicas included) is replaced by
that URL, so the same page runs unchanged on the server: the examples must be portable.

``tests/test_docs.py`` runs it in a subprocess per page and dialect, so the examples'
``db.configure()`` never touches the ``db`` of the test process.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import os
import re
import sys
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Connection options only SQLite understands.
_SQLITE_ONLY = frozenset({"busy_timeout_ms", "wal"})
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

    @property
    def sqlite_only(self) -> bool:
        """```python sqlite-only: the block shows SQLite's own behaviour (a database file)."""
        return "sqlite-only" in self.info[1:]


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


def _redirected(config: Mapping[str, Any], target: str) -> dict[str, Any]:
    """One connection's configuration with its SQLite URLs (replicas' too) set to ``target``;
    SQLite-only options are dropped."""
    out = {k: v for k, v in config.items() if k not in _SQLITE_ONLY}
    if str(out.get("url", "")).startswith("sqlite"):
        out["url"] = target
    replicas = out.get("replicas")
    if isinstance(replicas, Mapping):
        out["replicas"] = {
            "write": _redirected(replicas.get("write") or {}, target),
            "read": [_redirected(r, target) for r in replicas.get("read") or []],
        }
    return out


def redirect_sqlite(target: str) -> None:
    """Make every ``Database.configure`` of this process use ``target`` instead of SQLite."""
    from lucid_orm.database import Database

    original = Database.configure

    def configure(
        self: Database,
        url: str | None = None,
        *,
        connections: Mapping[str, Mapping[str, Any]] | None = None,
        **options: Any,
    ) -> None:
        if url is not None and url.startswith("sqlite"):
            url = target
        if connections is not None:
            connections = {name: _redirected(c, target) for name, c in connections.items()}
        original(self, url, connections=connections, **options)

    Database.configure = configure  # type: ignore[method-assign]


async def run_page(path: Path, on_server: bool = False) -> int:
    """Run the page's python blocks; 0 on success, 1 after printing the first failure.
    ``on_server``: the page runs on PostgreSQL or MySQL, so its sqlite-only blocks are skipped."""
    from lucid_orm import db

    if db.is_configured:
        await db.close()
    namespace: dict[str, Any] = {"__name__": "__docs__"}
    try:
        for block in blocks(path.read_text(encoding="utf-8")):
            if not block.runs or (on_server and block.sqlite_only):
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
    target = os.environ.get("LUCID_DOCS_URL")
    if target:
        redirect_sqlite(target)
    return asyncio.run(run_page(Path(argv[0]), on_server=bool(target)))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
