"""``python -m bench``: load the same seeded data on each backend (SQLite, PostgreSQL, MariaDB),
check every contender's answers against the bare driver's, count statements, then time the
operations round-robin and write docs/benchmarks.md, docs/benchmarks.png and the README's
table."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import inspect
import os
import sqlite3
import sys
import tempfile
import time
import traceback
import tracemalloc
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from statistics import median
from typing import Any

from .contenders import Backend, Contender, NoFeature, Unsupported, all_contenders
from .workload import (
    MEMORY_OPS,
    OPS,
    OPS_BY_KEY,
    Admin,
    Data,
    Op,
    Sizes,
    digest,
    generate,
    mysql_params,
)

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/bench"
DEFAULT_MYSQL_URL = "mysql://root@127.0.0.1:3306/bench"
# The cell of an operation a library has no feature for.
NO_FEATURE = "—"
# The status of an operation left out by ``--ops``.
NOT_RUN = "not run"


@dataclass
class Cell:
    """One contender on one operation on one backend."""

    times_ms: list[float] = field(default_factory=list)
    # The untimed warm-up call (answer checked, statements counted), in ms.
    warmup_ms: float | None = None
    statements: int | None = None
    digest: str = ""
    status: str = "ok"  # ok | n/a | — (no such feature) | error | mismatch
    reason: str = ""

    @property
    def median_ms(self) -> float | None:
        return median(self.times_ms) if self.status == "ok" and self.times_ms else None


@dataclass
class BackendResult:
    backend: Backend
    skipped: str = ""  # why the whole backend was not measured
    cells: dict[tuple[str, str], Cell] = field(default_factory=dict)
    # Peak memory per (contender, op key) of MEMORY_OPS, or why there is none (n/a, error…).
    memory: dict[tuple[str, str], int | None] = field(default_factory=dict)
    memory_status: dict[tuple[str, str], str] = field(default_factory=dict)

    def ratio(self, contender: str, op: Op) -> float | None:
        mine = self.cells[contender, op.key].median_ms
        floor = self.cells[FLOOR, op.key].median_ms
        return mine / floor if mine is not None and floor else None


FLOOR = "bare driver"
# An operation the bare driver's warm-up ran in under SHORT_MS is timed SHORT_ROUNDS times per
# rep (each round all contenders, interleaved): a few milliseconds swing by as much as the
# operation's own time on a shared machine, and a median of 7 such timings still does.
SHORT_MS = 100.0
SHORT_ROUNDS = 3


@dataclass
class Failure:
    backend: str
    contender: str
    op: str
    message: str
    detail: str = ""


# -- backends -----------------------------------------------------------------------------------


def sqlite_backend(directory: Path) -> Backend:
    return Backend("sqlite", f"SQLite {sqlite3.sqlite_version}", sqlite_path=directory / "bench.db")


async def postgresql_backend(url: str) -> tuple[Backend | None, str]:
    """The PostgreSQL backend at ``url`` (its database created if missing), or why not."""
    import asyncpg

    try:
        try:
            conn = await asyncpg.connect(url, timeout=5)
        except asyncpg.InvalidCatalogNameError:
            name = url.rsplit("/", 1)[1].split("?")[0]
            admin = await asyncpg.connect(url.rsplit("/", 1)[0] + "/postgres", timeout=5)
            try:
                await admin.execute(f'CREATE DATABASE "{name}"')
            finally:
                await admin.close()
            conn = await asyncpg.connect(url, timeout=5)
        version = await conn.fetchval("SHOW server_version")
        await conn.close()
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        return None, f"{type(exc).__name__}: {exc}"
    return Backend("postgresql", f"PostgreSQL {version.split()[0]}", pg_url=url), ""


async def mariadb_backend(url: str) -> tuple[Backend | None, str]:
    """The MariaDB backend at ``url`` (``mysql://``; its database created if missing), or
    why not."""
    import asyncmy

    params = mysql_params(url)
    name = params.pop("database")
    try:
        conn = await asyncmy.connect(**params, connect_timeout=5)
        try:
            async with conn.cursor() as cur:
                await cur.execute(
                    "SELECT count(*) FROM information_schema.schemata WHERE schema_name = %s",
                    (name,),
                )
                if not (await cur.fetchone())[0]:
                    # The name is the URL's own, quoted as an identifier.
                    await cur.execute(f"CREATE DATABASE `{name.replace('`', '``')}`")
                await cur.execute("SELECT VERSION()")
                version = (await cur.fetchone())[0]
        finally:
            conn.close()
    except (OSError, asyncmy.errors.Error) as exc:  # type: ignore[attr-defined]
        return None, f"{type(exc).__name__}: {exc}"
    if "mariadb" not in version.lower():
        return None, f"not MariaDB: {version}"
    return Backend("mariadb", f"MariaDB {version.split('-')[0]}", mysql_url=url), ""


# -- running ------------------------------------------------------------------------------------


async def call(contender: Contender, op: Op, data: Data) -> Any:
    """Run one operation: sync contenders are called directly, in this process."""
    result = getattr(contender, op.key)(data)
    if inspect.isawaitable(result):
        result = await result
    return result


class Runner:
    """Runs every contender on one backend: open, verify (the warm-up rep), memory, timing."""

    def __init__(
        self,
        contenders: list[Contender],
        data: Data,
        repeat: int,
        ops: frozenset[int] | None = None,
    ) -> None:
        self.contenders = contenders
        self.data = data
        self.repeat = repeat
        # The operation numbers to run (``--ops``); the others show as not selected.
        self.ops = ops
        self.failures: list[Failure] = []

    async def run_backend(self, backend: Backend) -> BackendResult:
        backend = dataclasses.replace(backend, pool=self.data.sizes.pool)
        result = BackendResult(backend)
        for c in self.contenders:
            for op in OPS:
                if self.ops is None or op.number in self.ops:
                    result.cells[c.name, op.key] = Cell()
                else:
                    result.cells[c.name, op.key] = Cell(status=NOT_RUN, reason="not in --ops")
        target = backend.sqlite_path or backend.pg_url or backend.mysql_url
        async with Admin(backend.name, target) as admin:
            t0 = time.perf_counter()
            await admin.load(self.data)
            log(f"{backend.label}: data loaded in {time.perf_counter() - t0:.1f} s")
            opened = await self._open(backend, result)
            try:
                await self._verify(backend, result, opened, admin)
                await self._measure_memory(result, opened)
                # Everything alive now (libraries, caches, the data) is left out of later
                # collections, so the gc.collect() before each timing costs little.
                gc.collect()
                gc.freeze()
                try:
                    await self._time(result, opened, admin)
                finally:
                    gc.unfreeze()
            finally:
                for c in opened:
                    await c.close()
        return result

    async def _open(self, backend: Backend, result: BackendResult) -> list[Contender]:
        opened = []
        for c in self.contenders:
            reason = c.unavailable(backend)
            if reason is None:
                try:
                    await c.open(backend)
                except Exception as exc:
                    reason = f"cannot connect: {type(exc).__name__}: {exc}"
            if reason is None:
                opened.append(c)
                continue
            for op in OPS:
                result.cells[c.name, op.key] = Cell(status="n/a", reason=reason)
            for key in MEMORY_OPS:
                result.memory_status[c.name, key] = "n/a"
            log(f"  {c.name}: n/a on {backend.name} ({reason})")
        if not opened or opened[0].name != FLOOR:
            raise SystemExit(
                f"The bare driver could not run on {backend.label}: nothing to compare"
            )
        return opened

    async def _verify(
        self, backend: Backend, result: BackendResult, opened: list[Contender], admin: Admin
    ) -> None:
        """The warm-up rep: each answer hashed and checked against the floor's, statements
        counted (instrumentation stays out of the timed reps)."""
        for op in OPS:
            if self.ops is not None and op.number not in self.ops:
                continue
            for c in opened:
                cell = result.cells[c.name, op.key]
                try:
                    with c.count_statements() as counter:
                        t0 = time.perf_counter()
                        answer = await call(c, op, self.data)
                        cell.warmup_ms = (time.perf_counter() - t0) * 1000
                    canonical: Any = op.canonical(answer)
                    if op.readback:
                        written = await getattr(admin, op.readback)(self.data)
                        canonical = (canonical, written)
                except NoFeature as exc:
                    cell.status, cell.reason = NO_FEATURE, str(exc)
                    continue
                except Unsupported as exc:
                    cell.status, cell.reason = "n/a", str(exc)
                    log(f"  {c.name}: op {op.number} n/a on {backend.name} ({exc})")
                    continue
                except Exception as exc:
                    cell.status, cell.reason = "error", f"{type(exc).__name__}: {exc}"
                    self._fail(backend, c, op, cell.reason, traceback.format_exc())
                    continue
                finally:
                    if op.reset:
                        await getattr(admin, op.reset)(self.data)
                cell.statements = counter.n if counter is not None else None
                cell.digest = digest(canonical)
                floor = result.cells[FLOOR, op.key]
                if c.name == FLOOR and not canonical:
                    raise SystemExit(f"{op.title}: the bare driver's answer is empty")
                if floor.status != "ok":
                    cell.status, cell.reason = "error", "no floor answer to compare with"
                elif cell.digest != floor.digest:
                    cell.status = "mismatch"
                    cell.reason = f"digest {cell.digest} != floor {floor.digest}"
                    self._fail(backend, c, op, "answer differs from the bare driver's", "")
        log(f"  {backend.label}: answers checked, statements counted")

    async def _measure_memory(self, result: BackendResult, opened: list[Contender]) -> None:
        """The ``tracemalloc`` peak of one untimed run of each of MEMORY_OPS (op 1: the answer
        included; op 13: a stream, whose answer is four numbers, so the peak is what the
        library holds at once)."""
        for key in MEMORY_OPS:
            op = OPS_BY_KEY[key]
            for c in opened:
                if result.cells[c.name, op.key].status != "ok":
                    result.memory_status[c.name, key] = result.cells[c.name, op.key].status
                    continue
                gc.collect()
                tracemalloc.start()
                try:
                    base = tracemalloc.get_traced_memory()[0]
                    answer = await call(c, op, self.data)
                    result.memory[c.name, key] = tracemalloc.get_traced_memory()[1] - base
                    del answer
                finally:
                    tracemalloc.stop()

    async def _time(self, result: BackendResult, opened: list[Contender], admin: Admin) -> None:
        """``repeat`` reps; in each, every operation runs once per contender (``SHORT_ROUNDS``
        times for a short one, see ``SHORT_MS``), contenders in an order rotated per round so
        none always goes first."""
        started = time.perf_counter()
        for rep in range(self.repeat):
            for op in OPS:
                floor = result.cells[FLOOR, op.key].warmup_ms
                rounds = SHORT_ROUNDS if floor is not None and floor < SHORT_MS else 1
                for round_ in range(rounds):
                    await self._round(result, opened, admin, op, rep * rounds + round_)
            elapsed_s = time.perf_counter() - started
            log(f"  {result.backend.label}: rep {rep + 1}/{self.repeat} ({elapsed_s:.0f} s)")

    async def _round(
        self, result: BackendResult, opened: list[Contender], admin: Admin, op: Op, turn: int
    ) -> None:
        """Every contender runs ``op`` once, timed, in an order rotated by ``turn``."""
        ready = [c for c in opened if result.cells[c.name, op.key].status == "ok"]
        shift = turn % max(len(ready), 1)
        for c in ready[shift:] + ready[:shift]:
            cell = result.cells[c.name, op.key]
            gc.collect()
            try:
                t0 = time.perf_counter()
                await call(c, op, self.data)
                elapsed = time.perf_counter() - t0
            except Exception as exc:
                cell.status, cell.reason = "error", f"{type(exc).__name__}: {exc}"
                self._fail(result.backend, c, op, cell.reason, traceback.format_exc())
                continue
            finally:
                if op.reset:
                    await getattr(admin, op.reset)(self.data)
            cell.times_ms.append(elapsed * 1000)

    def _fail(self, backend: Backend, c: Contender, op: Op, message: str, detail: str) -> None:
        self.failures.append(Failure(backend.label, c.name, op.title, message, detail))
        log(f"  !! {c.name} failed op {op.number} ({op.title}) on {backend.label}: {message}")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    d = Sizes()
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--users", type=int, default=d.users)
    p.add_argument("--posts-per-user", type=int, default=d.posts_per_user)
    p.add_argument("--tags", type=int, default=d.tags)
    p.add_argument("--tags-per-post", type=int, default=d.tags_per_post)
    p.add_argument("--new-posts", type=int, default=d.new_posts, help="rows for create_many")
    p.add_argument("--finds", type=int, default=d.finds, help="finds by primary key")
    p.add_argument("--updates", type=int, default=d.updates, help="posts bulk-updated (op 8)")
    p.add_argument("--page", type=int, default=d.page, help="page read by op 9")
    p.add_argument("--per-page", type=int, default=d.per_page, help="page size of op 9")
    p.add_argument("--tasks", type=int, default=d.tasks, help="concurrent tasks (op 10)")
    p.add_argument("--pool", type=int, default=d.pool, help="pool size for op 10")
    p.add_argument("--upserts", type=int, default=d.upserts, help="rows upserted (op 11)")
    p.add_argument("--cursor-page", type=int, default=d.cursor_page, help="op 12's page size")
    p.add_argument(
        "--stream-rows",
        type=int,
        default=d.stream_rows,
        help="rows streamed by op 13 (the full size: 1000000, about 10x longer for op 13)",
    )
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--repeat", type=int, default=7, help="timed reps after the warm-up rep")
    p.add_argument(
        "--backends",
        default="sqlite,postgresql,mariadb",
        help="comma-separated: sqlite,postgresql,mariadb",
    )
    p.add_argument(
        "--pg-url",
        default=os.environ.get("LUCID_PG_URL", DEFAULT_PG_URL),
        help="$LUCID_PG_URL",
    )
    p.add_argument(
        "--mysql-url",
        default=os.environ.get("LUCID_MYSQL_URL", DEFAULT_MYSQL_URL),
        help="$LUCID_MYSQL_URL (a MariaDB server)",
    )
    p.add_argument("--out", type=Path, default=ROOT / "docs", help="where the report goes")
    p.add_argument(
        "--only",
        help="comma-separated contenders besides the floor (modules or names: lucid,"
        "sqlalchemy_orm,tortoise_orm,django_orm,peewee_orm); default: all",
    )
    p.add_argument(
        "--ops",
        help="comma-separated operation numbers to run (e.g. 8,11); the others are not run and"
        " nothing is written (implies --no-write)",
    )
    p.add_argument(
        "--readme",
        type=Path,
        default=ROOT / "README.md",
        help="the README whose table (between its bench:start/end markers) is rewritten",
    )
    p.add_argument(
        "--no-write", action="store_true", help="print only; leave docs/ and the README alone"
    )
    p.add_argument(
        "--no-chart",
        action="store_true",
        help="write the report and the README table but not the chart (no matplotlib needed)",
    )
    return p.parse_args(argv)


async def amain(args: argparse.Namespace) -> int:
    from . import report

    sizes = Sizes(
        users=args.users,
        posts_per_user=args.posts_per_user,
        tags=args.tags,
        tags_per_post=args.tags_per_post,
        new_posts=args.new_posts,
        finds=args.finds,
        updates=args.updates,
        page=args.page,
        per_page=args.per_page,
        tasks=args.tasks,
        pool=args.pool,
        upserts=args.upserts,
        cursor_page=args.cursor_page,
        stream_rows=args.stream_rows,
        seed=args.seed,
    )
    data = generate(sizes)
    only = None if args.only is None else {n.strip() for n in args.only.split(",") if n.strip()}
    contenders = all_contenders(only)
    ops = None
    if args.ops:
        ops = frozenset(int(n) for n in args.ops.split(","))
        unknown = ops - {op.number for op in OPS}
        if unknown:
            raise SystemExit(f"--ops: no operation {', '.join(map(str, sorted(unknown)))}")
        args.no_write = True  # a partial run never replaces the published report
    runner = Runner(contenders, data, args.repeat, ops)
    wanted = {b.strip() for b in args.backends.split(",") if b.strip()}
    results: list[BackendResult] = []
    started = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="lucid-bench-") as tmp:
        if "sqlite" in wanted:
            results.append(await runner.run_backend(sqlite_backend(Path(tmp))))
        if "postgresql" in wanted:
            pg, reason = await postgresql_backend(args.pg_url)
            if pg is None:
                log(f"PostgreSQL at {args.pg_url} not measured: {reason}")
                results.append(BackendResult(Backend("postgresql", "PostgreSQL"), skipped=reason))
            else:
                results.append(await runner.run_backend(pg))
        if "mariadb" in wanted:
            maria, reason = await mariadb_backend(args.mysql_url)
            if maria is None:
                log(f"MariaDB at {args.mysql_url} not measured: {reason}")
                results.append(BackendResult(Backend("mariadb", "MariaDB"), skipped=reason))
            else:
                results.append(await runner.run_backend(maria))
    run = report.Run(
        sizes=sizes,
        repeat=args.repeat,
        started=started,
        seconds=(datetime.now(UTC) - started).total_seconds(),
        contenders=contenders,
        results=results,
        failures=runner.failures,
        argv=sys.argv[1:],
    )
    print(report.text(run))
    if not args.no_write:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "benchmarks.md").write_text(report.markdown(run))
        log(f"wrote {args.out / 'benchmarks.md'}")
        if not args.no_chart:
            report.chart(run, args.out / "benchmarks.png")
            log(f"wrote {args.out / 'benchmarks.png'}")
        if args.readme.exists() and report.update_readme(run, args.readme):
            log(f"rewrote the table in {args.readme}")
        else:
            log(f"{args.readme}: no {report.README_START} marker, its table left alone")
    if runner.failures:
        log(report.failures_text(run))
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(amain(parse_args(argv)))
