"""The benchmark harness (``bench/``): a tiny run per backend checks every answer of the floor
and lucid_orm against each other and writes the report and the README table; a contender
with a wrong answer fails the run, one without a feature shows a dash. No timings are
asserted: the harness is what is tested, not the speed.

The server runs use a database of their own (the test database's name + ``_bench``), which the
harness creates: its loader drops and recreates the benchmark's tables there."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from bench import report
from bench.contenders import Contender, NoFeature
from bench.contenders.bare import Bare
from bench.run import FLOOR, NO_FEATURE, SHORT_MS, SHORT_ROUNDS, Runner, sqlite_backend
from bench.workload import OPS, Sizes, generate
from tests.helpers import MYSQL_URL, PG_URL

ROOT = Path(__file__).resolve().parents[2]
DIALECTS = ["sqlite", "postgresql", "mysql"]
# The harness's backend names and the URL of each server's bench database.
BACKEND = {"sqlite": "sqlite", "postgresql": "postgresql", "mysql": "mariadb"}
TINY = [
    "--users", "20", "--posts-per-user", "3", "--tags", "5", "--new-posts", "20",
    "--finds", "10", "--updates", "25", "--page", "2", "--per-page", "5", "--tasks", "12",
    "--pool", "3", "--upserts", "10", "--cursor-page", "7", "--stream-rows", "500",
    "--repeat", "1",
]  # fmt: skip


def _bench_url(url: str) -> str:
    parsed = make_url(url)
    return parsed.set(database=f"{parsed.database}_bench").render_as_string(hide_password=False)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_tiny_run_checks_every_answer_and_writes_the_report(dialect: str, tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n\n{report.README_START}\nold table\n{report.README_END}\n\nafter\n")
    # The chart needs matplotlib (the `bench` extra), which the test environment has not.
    args = [
        *TINY,
        "--no-chart",
        "--only",
        "lucid",
        "--backends",
        BACKEND[dialect],
        "--pg-url",
        _bench_url(PG_URL),
        "--mysql-url",
        _bench_url(MYSQL_URL),
        "--out",
        str(tmp_path),
        "--readme",
        str(readme),
    ]
    done = subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    output = done.stdout + done.stderr
    if "not measured" in output and os.environ.get("CI", "").lower() != "true":
        pytest.skip(f"{dialect} is not reachable")
    assert done.returncode == 0, output
    assert "not measured" not in output
    assert "FAILURE" not in output
    markdown = (tmp_path / "benchmarks.md").read_text()
    assert not (tmp_path / "benchmarks.png").exists()
    # Every operation has a time for the floor and a ratio for lucid_orm.
    for op in OPS:
        row = f"| {op.number}. {op.title} | 1.00x | "
        assert row in markdown, op.title
    written = readme.read_text()
    assert written.startswith("intro\n\n") and written.endswith("\n\nafter\n")
    assert "old table" not in written
    table = written.split(report.README_START)[1].split(report.README_END)[0]
    for op in OPS:
        assert re.search(rf"\| {op.number}\. {re.escape(op.title)} \| \d+\.\d\dx \|", table)


class WrongPage(Bare):
    """The floor with one wrong answer (op 9's total) and one missing feature (op 12)."""

    name = "wrong page"

    async def paginate(self, data: Any) -> Any:
        total, rows = await super().paginate(data)
        return (total + 1, rows)

    def cursor_paginate(self, data: Any) -> Any:
        raise NoFeature("no keyset pagination")


async def test_a_wrong_answer_fails_the_run_and_a_missing_feature_is_a_dash(
    tmp_path: Path,
) -> None:
    sizes = Sizes(
        users=10, posts_per_user=2, tags=4, new_posts=5, finds=5, updates=8, page=2,
        per_page=3, tasks=6, pool=2, upserts=6, cursor_page=4, stream_rows=100,
    )  # fmt: skip
    contenders: list[Contender] = [Bare(), WrongPage()]
    runner = Runner(contenders, generate(sizes), repeat=1)
    result = await runner.run_backend(sqlite_backend(tmp_path))
    cells = {op.key: result.cells["wrong page", op.key] for op in OPS}
    assert cells["paginate"].status == "mismatch"
    assert cells["cursor_paginate"].status == NO_FEATURE
    assert cells["cursor_paginate"].reason == "no keyset pagination"
    others = {
        key: c.status for key, c in cells.items() if key not in ("paginate", "cursor_paginate")
    }
    assert set(others.values()) == {"ok"}, others
    assert all(result.cells[FLOOR, op.key].status == "ok" for op in OPS)
    assert [(f.contender, f.op) for f in runner.failures] == [("wrong page", "paginate + total")]
    # Every operation of data this small is short: timed SHORT_ROUNDS times in the one rep.
    floor = [result.cells[FLOOR, op.key] for op in OPS]
    assert all(c.warmup_ms is not None and c.warmup_ms < SHORT_MS for c in floor)
    assert [len(c.times_ms) for c in floor] == [SHORT_ROUNDS] * len(OPS)
    assert len(cells["create_many"].times_ms) == SHORT_ROUNDS
    # The writing operations were undone after each run: the seeded rows are back.
    import aiosqlite

    async with aiosqlite.connect(tmp_path / "bench.db") as conn:
        rows = await conn.execute_fetchall("SELECT count(*) FROM users")
        titles = await conn.execute_fetchall(
            "SELECT count(*) FROM posts WHERE title <> lower(title)"
        )
    assert list(rows) == [(sizes.users,)]
    assert list(titles) == [(0,)]


def test_the_floor_runs_alone_when_no_peer_is_asked_for() -> None:
    from bench.contenders import all_contenders

    assert [c.name for c in all_contenders(set())] == [FLOOR]
    assert [c.name for c in all_contenders({"lucid"})] == [FLOOR, "lucid_orm"]


def test_the_report_has_no_readme_markers_to_replace(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("no table here\n")
    from bench.contenders.lucid import Lucid

    run = report.Run(
        sizes=Sizes(), repeat=1, started=datetime.now(UTC), seconds=0,
        contenders=[Bare(), Lucid()], results=[], failures=[], argv=[],
    )  # fmt: skip
    assert report.update_readme(run, readme) is False
    assert readme.read_text() == "no table here\n"
