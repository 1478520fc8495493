"""MkDocs hooks (mkdocs.yml ``hooks:``).

The docs test (tests/docs_runner.py) reads words after a fence's language — ```python no-run,
```python sqlite-only — which GitHub ignores but pymdownx.superfences does not accept: the page
would show the fence as text. The site sees the bare language.
"""

from __future__ import annotations

import re
from typing import Any

_RUNNER_WORDS = re.compile(r"^( {0,3})(`{3,}|~{3,})python(?: +(?:no-run|sqlite-only))+ *$", re.M)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    return _RUNNER_WORDS.sub(r"\1\2python", markdown)
