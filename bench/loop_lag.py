"""``python -m bench.loop_lag``: how long SQLite reads hold the event loop, with inline reads
on (short reads on the loop thread under a 1 ms budget) and off (every read on aiosqlite's
worker thread).

One file database; concurrent tasks run a mixed load for ``--seconds`` per setting: short reads
by primary key, long reads (a LIKE scan over every row, well over the budget), and writes
(one-row INSERTs). Beside them a ticker sleeps ``--tick-ms`` at a time and records how late it
wakes up: the loop lag. Printed per setting: the maximum and 99th percentile lag, and how many
statements of each kind completed. The settings alternate ``--rounds`` times.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from statistics import median, quantiles

from lucid_orm.database import Database
from lucid_orm.database.executor import inline_stats


async def _seed(path: Path, rows: int) -> None:
    database = Database()
    database.configure(url=f"sqlite:///{path}")
    await database.raw_query("create table items (id integer primary key, label text, n integer)")
    await database.raw_query(
        "insert into items (label, n) select 'item ' || x, x % 97 from (with recursive c(x) as "
        f"(select 1 union all select x + 1 from c where x < {rows}) select x from c)"
    )
    await database.close()


async def _measure(
    path: Path, inline: bool, seconds: float, tick: float, rows: int, pause: float
) -> dict[str, float]:
    database = Database()
    database.configure(
        connections={"default": {"url": f"sqlite:///{path}", "inline_reads": inline}}
    )
    await database.from_("items").select("id").where("id", 1)  # connect outside the window
    done = {"short": 0, "long": 0, "write": 0}
    stop = time.perf_counter() + seconds
    lags: list[float] = []

    async def short_reads() -> None:
        i = 0
        while time.perf_counter() < stop:
            i = i % rows + 1
            await database.from_("items").select("id", "label", "n").where("id", i)
            done["short"] += 1
            if pause:
                await asyncio.sleep(pause)

    async def long_reads() -> None:
        while time.perf_counter() < stop:
            await database.from_("items").select("id").where_like("label", "%9999%")
            done["long"] += 1

    async def writes() -> None:
        while time.perf_counter() < stop:
            await database.table("items").insert({"label": "new", "n": -1})
            done["write"] += 1

    async def ticker() -> None:
        while time.perf_counter() < stop:
            expected = time.perf_counter() + tick
            await asyncio.sleep(tick)
            lags.append(time.perf_counter() - expected)

    before = inline_stats.interrupted
    inline_stats.longest = 0.0
    steps: list[float] = []
    run = asyncio.events.Handle._run

    def timed(handle: asyncio.events.Handle) -> None:
        # The time one callback (one step of a task) holds the loop.
        t0 = time.perf_counter()
        run(handle)
        steps.append(time.perf_counter() - t0)

    asyncio.events.Handle._run = timed  # type: ignore[method-assign]
    try:
        await asyncio.gather(
            ticker(), short_reads(), short_reads(), short_reads(), long_reads(), writes()
        )
    finally:
        asyncio.events.Handle._run = run  # type: ignore[method-assign]
    await database.from_("items").where("n", -1).delete()
    await database.close()
    return {
        "inline_max_ms": inline_stats.longest * 1000,
        "step_max_ms": max(steps) * 1000,
        "step_p99_ms": quantiles(steps, n=1000)[998] * 1000,
        "max_ms": max(lags) * 1000,
        "p99_ms": quantiles(lags, n=100)[98] * 1000,
        "median_ms": median(lags) * 1000,
        "short": done["short"] / seconds,
        "long": done["long"] / seconds,
        "write": done["write"] / seconds,
        "interrupted": inline_stats.interrupted - before,
    }


async def amain(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="lucid-loop-lag-") as tmp:
        path = Path(tmp) / "lag.db"
        await _seed(path, args.rows)
        results: dict[bool, list[dict[str, float]]] = {True: [], False: []}
        for _ in range(args.rounds):
            for inline in (True, False):
                results[inline].append(
                    await _measure(
                        path,
                        inline,
                        args.seconds,
                        args.tick_ms / 1000,
                        args.rows,
                        args.pause_ms / 1000,
                    )
                )
    print(
        f"loop lag under a mixed load ({args.rows} rows; 3 short readers, 1 long reader, "
        f"1 writer; {args.rounds} rounds of {args.seconds} s; ticker every {args.tick_ms} ms; "
        f"short readers pause {args.pause_ms} ms)"
    )
    print(
        f"{'inline_reads':<14}{'inline max':>11}{'step max':>10}{'step p99.9':>11}"
        f"{'max lag ms':>12}{'p99 lag ms':>12}{'median ms':>11}"
        f"{'short/s':>10}{'long/s':>8}{'write/s':>9}"
    )
    print("(max: the worst of the rounds; the others: medians over rounds)")
    for inline in (True, False):
        rs = results[inline]
        print(
            f"{'on' if inline else 'off':<14}"
            f"{max(r['inline_max_ms'] for r in rs):>11.2f}"
            f"{max(r['step_max_ms'] for r in rs):>10.2f}"
            f"{median(r['step_p99_ms'] for r in rs):>11.2f}"
            f"{max(r['max_ms'] for r in rs):>12.2f}"
            f"{median(r['p99_ms'] for r in rs):>12.2f}"
            f"{median(r['median_ms'] for r in rs):>11.3f}"
            f"{median(r['short'] for r in rs):>10.0f}"
            f"{median(r['long'] for r in rs):>8.1f}"
            f"{median(r['write'] for r in rs):>9.0f}"
        )


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.loop_lag", description=__doc__)
    p.add_argument("--rows", type=int, default=200_000)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--tick-ms", type=float, default=0.5)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument(
        "--pause-ms",
        type=float,
        default=0.0,
        help="each short reader's pause between reads (0: as fast as it can, the loop saturated)",
    )
    asyncio.run(amain(p.parse_args()))


if __name__ == "__main__":
    main()
