"""What every benchmark shares: timing by median of repeats, throwaway databases, ratios."""

from __future__ import annotations

import os
import secrets
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg

from engine.store.db import migrate

PG_ADMIN = os.environ.get(
    "SHUANGTI_BENCH_PG",
    os.environ.get("SHUANGTI_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres"),
)
BACKENDS = ("sqlite", "postgresql")


@dataclass(frozen=True)
class Target:
    """One target of the benchmark issue, with the figure this run measured against it."""

    what: str
    figure: str
    target: str
    met: bool


def timed(fn: Callable[[], object], repeats: int) -> dict[str, float]:
    """Call ``fn`` once to warm up, then ``repeats`` times; the median and minimum in milliseconds."""
    fn()
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return {
        "median_ms": round(statistics.median(samples) * 1000, 3),
        "min_ms": round(min(samples) * 1000, 3),
        "repeats": repeats,
    }


def per_op(fn: Callable[[int], object], items: list[int]) -> dict[str, float]:
    """Time ``fn(item)`` for each item: the median latency and the throughput over all of them."""
    samples = []
    for item in items:
        t0 = time.perf_counter()
        fn(item)
        samples.append(time.perf_counter() - t0)
    return {
        "n": len(items),
        "median_ms": round(statistics.median(samples) * 1000, 3),
        "ops_per_s": round(len(items) / sum(samples), 1),
    }


def ratio(value: float, baseline: float) -> float:
    return round(value / baseline, 2)


def pg_url(name: str, driver: str = "postgresql+psycopg") -> str:
    return f"{driver}://{PG_ADMIN.split('://', 1)[1].rsplit('/', 1)[0]}/{name}"


def pg_reachable() -> bool:
    try:
        with psycopg.connect(PG_ADMIN, connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


def _pg_admin(sql: str) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3) as conn:
        conn.execute(sql)


@contextmanager
def database(backend: str) -> Iterator[str]:
    """A fresh database migrated by Alembic, as an SQLAlchemy URL; removed afterwards.

    PostgreSQL databases get a unique name (process id and a random suffix) and are
    dropped even if the benchmark fails.
    """
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="shuangti-bench-") as tmp:
            url = f"sqlite:///{Path(tmp) / 'bench.db'}"
            migrate(url)
            yield url
        return
    name = f"shuangti_bench_{os.getpid()}_{secrets.token_hex(3)}"
    _pg_admin(f'CREATE DATABASE "{name}"')
    try:
        url = pg_url(name)
        migrate(url)
        yield url
    finally:
        _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
