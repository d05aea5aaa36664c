"""``python -m bench.run [--quick] [--out PATH] [--only queue,fires,memory,schedule]``.

Runs every benchmark, prints a table of figures and their ratios to the baseline of the
same run, and writes the whole result (with the EXPLAIN plans) as JSON to ``--out``, or
to a file in the temporary directory. PostgreSQL is at ``SHUANGTI_BENCH_PG`` (default
``postgresql://postgres@127.0.0.1:5432/postgres``); without it only SQLite runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from bench import fires, memory, queue, schedule
from bench.common import BACKENDS, PG_ADMIN, pg_reachable

SIZES: dict[str, dict[str, Any]] = {
    "full": {
        "queue": {"postgresql": (10_000, 1_000_000), "sqlite": (10_000, 100_000)},
        "repeats": 7,
        "baseline_repeats": 3,
        "fires": 500,
        "memory": 10_000,
        "schedule": 1_500,
    },
    "quick": {
        "queue": {"postgresql": (1_000, 10_000), "sqlite": (1_000, 10_000)},
        "repeats": 3,
        "baseline_repeats": 2,
        "fires": 50,
        "memory": 1_000,
        "schedule": 90,
    },
}
SECTIONS = ("queue", "fires", "memory", "schedule")


def benchmarks(sizes: dict[str, Any], backends: tuple[str, ...]) -> dict[str, Callable[[], Any]]:
    """Each section's work as a thunk, so that ``--only`` can pick."""
    return {
        "queue": lambda: {
            b: queue.run(b, *sizes["queue"][b], sizes["repeats"], sizes["baseline_repeats"]) for b in backends
        },
        "fires": lambda: {b: fires.run(b, sizes["fires"]) for b in backends},
        "memory": lambda: memory.run(sizes["memory"]),
        "schedule": lambda: {b: schedule.run(b, sizes["schedule"]) for b in backends},
    }


def cross_backend(results: dict[str, Any]) -> dict[str, float]:
    """PostgreSQL against SQLite: per-operation latency ratios (above 1: PostgreSQL is slower)."""
    out = {}
    if "postgresql" in results.get("fires", {}):
        f = results["fires"]
        out["fire_pg_vs_sqlite"] = round(
            f["postgresql"]["fire"]["median_ms"] / f["sqlite"]["fire"]["median_ms"], 2
        )
    if "postgresql" in results.get("schedule", {}):
        s = results["schedule"]
        out["run_due_sqlite_vs_pg_throughput"] = round(
            s["sqlite"]["all"]["rows_per_s"] / s["postgresql"]["all"]["rows_per_s"], 2
        )
    return out


def table(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(what, figure, ratio) rows for the terminal."""
    rows: list[tuple[str, str, str]] = []
    for backend, r in results.get("queue", {}).items():
        small, large = r["small_rows"]["instances"], r["large_rows"]["instances"]
        for q, ratios in r["ratios"].items():
            ms = r["large"][q]["median_ms"]
            figure = f"{ms:.1f} ms @{large:,} (total {r['large'][q]['total']})"
            text = f"x{ratios['large_vs_small']} vs @{small:,}; no composite x{ratios['no_index_vs_indexed']}"
            if "pattern_ops_vs_indexed" in ratios:
                text += f"; pattern_ops x{ratios['pattern_ops_vs_indexed']}"
            rows.append((f"queue {backend} {q}", figure, text))
    for backend, r in results.get("fires", {}).items():
        rows.append(
            (
                f"fire {backend}",
                f"{r['fire']['ops_per_s']:.0f}/s, median {r['fire']['median_ms']:.1f} ms",
                f"x{r['fire_vs_bare_update']} vs bare UPDATE ({r['bare_update']['median_ms']:.1f} ms)",
            )
        )
    if "memory" in results:
        m = results["memory"]
        for name in ("machine_per_instance", "add_model"):
            rows.append(
                (
                    f"memory {name} ({m['instances']:,})",
                    f"{m[name]['bytes'] / 1e6:.1f} MB vs shared {m['shared']['bytes'] / 1e6:.3f} MB",
                    f"x{m[f'{name}_vs_shared']['memory']} memory, x{m[f'{name}_vs_shared']['time']} time",
                )
            )
    for backend, r in results.get("schedule", {}).items():
        kinds = ", ".join(f"{k} {r[k]['rows_per_s']:.0f}/s" for k in schedule.KINDS)
        rows.append(
            (f"run_due {backend} ({r['rows']:,} rows)", f"{r['all']['rows_per_s']:.0f} rows/s", kinds)
        )
    rows += [(name, "", f"x{value}") for name, value in results.get("cross_backend", {}).items()]
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[1])
    parser.add_argument("--quick", action="store_true", help="small sizes (under two minutes)")
    parser.add_argument("--out", type=Path, help="where to write the JSON results")
    parser.add_argument("--only", default=",".join(SECTIONS), help="comma-separated: " + ",".join(SECTIONS))
    args = parser.parse_args(argv)
    mode = "quick" if args.quick else "full"
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(only) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s): {', '.join(sorted(unknown))}")
    backends = BACKENDS if pg_reachable() else ("sqlite",)
    if "postgresql" not in backends:
        print(f"PostgreSQL not reachable at {PG_ADMIN}: SQLite only", file=sys.stderr)
    results: dict[str, Any] = {
        "mode": mode,
        "started": datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "load_average_before": os.getloadavg(),
    }
    work = benchmarks(SIZES[mode], backends)
    t_all = time.perf_counter()
    for section in only:
        t0 = time.perf_counter()
        print(f"[{section}] …", file=sys.stderr, flush=True)
        results[section] = work[section]()
        results[f"{section}_seconds"] = round(time.perf_counter() - t0, 1)
        print(f"[{section}] {results[f'{section}_seconds']} s", file=sys.stderr, flush=True)
    results["cross_backend"] = cross_backend(results)
    results["seconds"] = round(time.perf_counter() - t_all, 1)
    results["load_average_after"] = os.getloadavg()
    out = args.out or Path(tempfile.gettempdir()) / f"shuangti-bench-{mode}-{int(time.time())}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, ensure_ascii=False, indent=1, default=str))
    rows = table(results)
    widths = [max(len(r[i]) for r in rows) for i in range(2)] if rows else [0, 0]
    for what, figure, text in rows:
        print(f"{what:<{widths[0]}}  {figure:<{widths[1]}}  {text}")
    print(f"\n{results['seconds']} s; JSON: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
