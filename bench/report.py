"""The results as a terminal table, docs/benchmarks.md, docs/benchmarks.png and the table in
the README (between its ``bench:start`` / ``bench:end`` markers)."""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from .contenders import Contender
from .run import FLOOR, NO_FEATURE, SHORT_MS, SHORT_ROUNDS, BackendResult, Cell, Failure
from .workload import MEMORY_OPS, OPS, OPS_BY_KEY, Op, Sizes


@dataclass
class Run:
    sizes: Sizes
    repeat: int
    started: datetime
    seconds: float
    contenders: list[Contender]
    results: list[BackendResult]
    failures: list[Failure]
    argv: list[str]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.contenders]


def _cell(cell: Cell) -> str:
    if cell.status == "ok":
        return "" if cell.median_ms is None else f"{cell.median_ms:.1f}"
    return cell.status


def _ratio(result: BackendResult, name: str, op: Op) -> str:
    cell = result.cells[name, op.key]
    if cell.status != "ok":
        return cell.status
    ratio = result.ratio(name, op)
    return "" if ratio is None else f"{ratio:.2f}x"


def _statements(cell: Cell) -> str:
    if cell.status in ("n/a", NO_FEATURE):
        return cell.status
    return "?" if cell.statements is None else str(cell.statements)


def _memory(result: BackendResult, name: str, key: str) -> str:
    peak = result.memory.get((name, key))
    if peak is None:
        return result.memory_status.get((name, key), "?")
    return f"{peak / 2**20:.1f} MiB"


def _throughput(result: BackendResult, name: str, tasks: int) -> str:
    """Op 10 as tasks per second (the median run)."""
    cell = result.cells[name, "concurrent_finds"]
    if cell.median_ms is None:
        return cell.status
    return f"{tasks / cell.median_ms * 1000:,.0f}/s"


def _sizes(s: Sizes) -> str:
    return (
        f"{s.users} users, {s.users * s.posts_per_user} posts ({s.posts_per_user} per user), "
        f"{s.users} profiles, {s.tags} tags, {s.tags_per_post} tags per post; "
        f"create_many of {s.new_posts} posts; {s.finds} finds; update_many of {s.updates} "
        f"posts; page {s.page} of {s.per_page}; {s.tasks} concurrent tasks on a pool of "
        f"{s.pool}; upsert of {s.upserts} users; cursor pages of {s.cursor_page}; "
        f"{s.stream_rows:,} rows streamed; seed {s.seed}"
    )


def _reasons(result: BackendResult, names: list[str]) -> list[str]:
    """One line per contender and reason for the cells that are n/a or failed."""
    lines = []
    for name in names:
        groups: dict[tuple[str, str], list[str]] = {}
        for op in OPS:
            cell = result.cells[name, op.key]
            if cell.status not in ("ok", NO_FEATURE):
                groups.setdefault((cell.status, cell.reason), []).append(str(op.number))
        for (status, reason), numbers in groups.items():
            where = "every operation" if len(numbers) == len(OPS) else "op " + ", ".join(numbers)
            lines.append(f"{name}: {status} on {where} — {reason}")
    return lines


# -- terminal -------------------------------------------------------------------------------------


def text(run: Run) -> str:
    names = run.names
    width = max(len(n) for n in names) + 2
    out = [
        f"\nlucid_orm benchmark — {_sizes(run.sizes)}; median of {run.repeat} reps "
        f"({SHORT_ROUNDS} rounds a rep for operations under {SHORT_MS:.0f} ms on the floor)\n"
    ]
    for result in run.results:
        out.append(f"== {result.backend.label}")
        if result.skipped:
            out.append(f"   not measured: {result.skipped}\n")
            continue
        out.append("   median ms (ratio to the bare driver) [statements]")
        out.append(f"   {'operation':<24}" + "".join(f"{n:>{width + 8}}" for n in names))
        for op in OPS:
            row = f"   {op.number} {op.title:<22}"
            for name in names:
                cell = result.cells[name, op.key]
                if cell.status == "ok":
                    value = f"{_cell(cell)} ({_ratio(result, name, op)}) [{_statements(cell)}]"
                else:
                    value = cell.status
                row += f"{value:>{width + 8}}"
            out.append(row)
        for key in MEMORY_OPS:
            mem = "".join(f"{_memory(result, n, key):>{width + 8}}" for n in names)
            out.append(f"   {f'peak memory, op {OPS_BY_KEY[key].number}':<24}" + mem)
        tasks = run.sizes.tasks
        rate = "".join(f"{_throughput(result, n, tasks):>{width + 8}}" for n in names)
        out.append(f"   {'op 10 tasks per second':<24}" + rate)
        out.extend(f"   {line}" for line in _reasons(result, names))
        out.append("")
    return "\n".join(out)


def failures_text(run: Run) -> str:
    lines = ["", "!" * 72, f"!! {len(run.failures)} FAILURE(S): the run is not valid", "!" * 72]
    for f in run.failures:
        lines.append(f"- {f.backend} / {f.contender} / {f.op}: {f.message}")
        if f.detail:
            lines.append("  " + f.detail.strip().replace("\n", "\n  "))
    return "\n".join(lines)


# -- markdown -------------------------------------------------------------------------------------


def _machine() -> list[str]:
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if "model name" in line)
    except (OSError, StopIteration):
        pass
    memory = "?"
    try:
        with open("/proc/meminfo") as fh:
            kib = int(next(line.split()[1] for line in fh if line.startswith("MemTotal")))
        memory = f"{kib / 2**20:.0f} GiB"
    except (OSError, StopIteration, ValueError):
        pass
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return [
        f"- Machine: {cpu}, {os.cpu_count()} cores, {memory} RAM; {platform.platform()}; "
        f"load average at the end of the run {load} (other work on the machine adds noise)",
        f"- Python {sys.version.split()[0]} ({platform.python_implementation()})",
    ]


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def markdown(run: Run) -> str:
    names = run.names
    argv = " ".join(run.argv)
    lines = [
        "# Benchmarks",
        "",
        f"Generated by `make bench` (`python -m bench{' ' + argv if argv else ''}`) on "
        f"{run.started:%Y-%m-%d %H:%M} UTC in {run.seconds:.0f} s. Regenerate it with the same "
        "command; edits to this file are overwritten.",
        "",
        "**Quote the ratios to the bare driver, not the milliseconds**: absolute times depend on "
        "the machine; the ratios say what each library adds on top of the driver it runs on.",
        "",
        "![Ratio to the bare driver per operation](benchmarks.png)",
        "",
        "## Setup",
        "",
        *_machine(),
        "- Libraries: "
        + "; ".join(f"{c.name} {c.version()}" for c in run.contenders if c.name != FLOOR)
        + f"; floor: {next(c.version() for c in run.contenders if c.name == FLOOR)}",
        f"- Data: {_sizes(run.sizes)}; generated from the seed and loaded once per backend "
        "by one bare-SQL loader (SQLite: a file in a temporary directory, WAL journal).",
        f"- Method: one warm-up rep that also checks every answer against the bare driver's "
        "(a digest of sorted tuples; a mismatch fails the run) and counts statements; then "
        f"{run.repeat} timed reps, the contenders interleaved round-robin (their order rotated "
        f"each rep; an operation the bare driver's warm-up ran in under {SHORT_MS:.0f} ms runs "
        f"{SHORT_ROUNDS} such rounds per rep, {SHORT_ROUNDS * run.repeat} timings: a few "
        "milliseconds of the shared machine's noise are as long as the operation itself), "
        "`gc.collect()` before each timing; medians. Django and Peewee are sync and "
        "are called directly in the same process. Statements counted: SELECT/INSERT/UPDATE/"
        "DELETE, not BEGIN/COMMIT; an executemany over N rows counts N. Peak memory: the "
        "`tracemalloc` peak during one untimed run of op 1 (answer included) and of op 13 "
        "(whose answer is four totals: the peak is what the library holds at once; memory "
        "outside Python's allocator, such as a C driver's buffers, is not seen). The writing "
        "operations (6, 8, 11) are checked on their answer and on the rows read back "
        "afterwards, then undone, untimed (on PostgreSQL the undo ends with `VACUUM (ANALYZE)` of "
        "the table, as autovacuum would: without it the reps' dead rows grow the planner's "
        "estimates until small reads cross `jit_above_cost`).",
        "- The floor is the async driver each async contender runs on (aiosqlite, asyncpg, "
        "asyncmy). Django and Peewee use sync drivers (`sqlite3`, psycopg 3 / psycopg2), so on "
        "SQLite they skip aiosqlite's hop to its worker thread and can come out below 1x; on "
        "MariaDB they need mysqlclient / PyMySQL, which the `bench` extra does not install.",
        "- A cell is `—` where the library has no such feature (no paginator, no keyset "
        "pagination, no streaming, no concurrent tasks in a sync ORM), `n/a` where it cannot "
        "run here (the reason is listed under each backend).",
        "",
        "Operations:",
        "",
        "1. all posts, author preloaded, reading `post.author.email`",
        "2. all users, posts preloaded",
        "3. users → posts → tags (nested preload)",
        "4. users having a post whose title contains a word (`where_has`, EXISTS)",
        "5. all users with their post count (`with_count`)",
        f'6. `user.related("posts").create_many([...])` of {run.sizes.new_posts} posts in one '
        "transaction (each library's bulk create through its relation; rows deleted after each "
        "rep, untimed)",
        f"7. {run.sizes.finds} single-row `find` by primary key",
        f"8. {run.sizes.updates} posts loaded, each title changed, all saved in one transaction "
        "with the library's bulk update (`update_many`); titles restored after each rep, "
        "untimed",
        f"9. page {run.sizes.page} ({run.sizes.per_page} a page) of the posts ordered by "
        "`created_at` desc, `id` desc, with the total (`paginate`)",
        f"10. {run.sizes.tasks} concurrent tasks (`asyncio.gather`), each a `find` of a user "
        f"with its posts preloaded, on a pool of {run.sizes.pool} connections; the table "
        "gives the time for all of them (ratio = the floor's throughput ÷ the library's), "
        "the tasks per second are below it",
        f"11. upsert of {run.sizes.upserts} users on their unique email, half of them new "
        "(one statement where the library can); users restored after each rep, untimed",
        f"12. every post through keyset (cursor) pages of {run.sizes.cursor_page} ordered by "
        "id, each page asked for with the previous one's cursor (`cursor_paginate`)",
        f"13. {run.sizes.stream_rows:,} rows of a four-column table streamed as objects "
        "(`stream`), totalled on the fly; the rows are generated by the database at load "
        "(`--stream-rows 1000000` for the full size)",
        "",
    ]
    for result in run.results:
        lines += [f"## {result.backend.label}", ""]
        if result.skipped:
            lines += [f"Not measured: {result.skipped}", ""]
            continue
        header = ["operation", *names]
        ops = [f"{op.number}. {op.title}" for op in OPS]
        lines += ["### Median time (ms)", ""]
        rows = [
            [title] + [_cell(result.cells[n, op.key]) for n in names]
            for title, op in zip(ops, OPS, strict=True)
        ]
        lines += [*_table(header, rows), ""]
        lines += ["### Ratio to the bare driver", ""]
        rows = [
            [title] + [_ratio(result, n, op) for n in names]
            for title, op in zip(ops, OPS, strict=True)
        ]
        lines += [*_table(header, rows), ""]
        lines += ["### SQL statements per operation", ""]
        rows = [
            [title] + [_statements(result.cells[n, op.key]) for n in names]
            for title, op in zip(ops, OPS, strict=True)
        ]
        lines += [*_table(header, rows), ""]
        lines += ["### Peak memory (tracemalloc)", ""]
        rows = [
            [f"{OPS_BY_KEY[key].number}. {OPS_BY_KEY[key].title}"]
            + [_memory(result, n, key) for n in names]
            for key in MEMORY_OPS
        ]
        lines += [*_table(["operation", *names], rows), ""]
        lines += [f"### Op 10 throughput ({run.sizes.tasks} tasks, pool of {run.sizes.pool})", ""]
        rate = [_throughput(result, n, run.sizes.tasks) for n in names]
        lines += [*_table(["", *names], [["tasks per second", *rate]]), ""]
        reasons = _reasons(result, names)
        if reasons:
            lines += ["Not measured or failed:", "", *(f"- {r}" for r in reasons), ""]
    lines += ["## How each contender runs the operations", ""]
    lines += [f"- **{c.name}** — {c.notes}" for c in run.contenders if c.notes]
    lines += [""]
    if run.failures:
        lines += ["## Failures", "", "The run failed; these cells are not comparable:", ""]
        lines += [f"- {f.backend} / {f.contender} / {f.op}: {f.message}" for f in run.failures]
        lines += [""]
    return "\n".join(lines)


# -- chart ----------------------------------------------------------------------------------------


def chart(run: Run, path: Path) -> None:
    """Ratio to the bare driver per operation and contender, one subplot per backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    measured = [r for r in run.results if not r.skipped]
    names = [n for n in run.names if n != FLOOR]
    if not measured:
        return
    fig, axes = plt.subplots(
        len(measured), 1, figsize=(15, 4.8 * len(measured)), squeeze=False, sharey=True
    )
    width = 0.8 / len(names)
    colors = plt.get_cmap("tab10").colors
    for ax, result in zip(axes[:, 0], measured, strict=True):
        for i, name in enumerate(names):
            xs, ys = [], []
            for j, op in enumerate(OPS):
                x = j + (i - (len(names) - 1) / 2) * width
                ratio = result.ratio(name, op)
                if ratio is None:
                    status = result.cells[name, op.key].status
                    turn = 0 if status == NO_FEATURE else 90
                    ax.text(x, 1.02, status, rotation=turn, ha="center", va="bottom", fontsize=7)
                else:
                    xs.append(x)
                    ys.append(ratio)
            # A contender with no bar on this backend stays out of its legend.
            label = name if xs else "_nolegend_"
            ax.bar(xs, ys, width, label=label, color=colors[i % len(colors)])
        ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(FixedLocator([0.5, 1, 2, 5, 10, 20, 50, 100]))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _pos: f"{y:g}x"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_ylabel("ratio to the bare driver (log scale)")
        ax.set_title(f"{result.backend.label}: median time ÷ bare driver (lower is better)")
        labels = [f"{op.number}. {op.title}" for op in OPS]
        ax.set_xticks(range(len(OPS)), labels, fontsize=8, rotation=25, ha="right")
        ax.grid(axis="y", which="both", alpha=0.3)
        ax.legend(fontsize=8, ncol=len(names), loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -- README ---------------------------------------------------------------------------------------

README_START = "<!-- bench:start -->"
README_END = "<!-- bench:end -->"


def _best_peer(result: BackendResult, op: Op, names: list[str]) -> str:
    peers = [n for n in names if n not in (FLOOR, "lucid_orm")]
    ratios = [(r, n) for n in peers if (r := result.ratio(n, op)) is not None]
    if not ratios:
        return NO_FEATURE
    ratio, name = min(ratios)
    return f"{ratio:.2f}x {name}"


def readme_table(run: Run) -> str:
    """lucid_orm's ratio and the best peer's, per operation and backend, as markdown."""
    measured = [r for r in run.results if not r.skipped]
    header = ["operation"]
    for result in measured:
        label = result.backend.label.split()[0]
        header += [f"{label}: lucid_orm", "best peer"]
    rows = []
    for op in OPS:
        row = [f"{op.number}. {op.title}"]
        for result in measured:
            row += [_ratio(result, "lucid_orm", op), _best_peer(result, op, run.names)]
        rows.append(row)
    started = f"{run.started:%Y-%m-%d}"
    return "\n".join(
        [
            f"Ratios to the bare driver from the run of {started} (lower is better; a shared "
            "2-core machine: noisy, quote ratios only; `—`: no peer has the feature):",
            "",
            *_table(header, rows),
        ]
    )


def update_readme(run: Run, path: Path) -> bool:
    """Replace the README's table between its markers; ``False`` when it has none (or the
    run left lucid_orm out)."""
    text = path.read_text()
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start or "lucid_orm" not in run.names:
        return False
    body = f"{README_START}\n{readme_table(run)}\n{README_END}"
    path.write_text(text[:start] + body + text[end + len(README_END) :])
    return True
