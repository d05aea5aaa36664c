"""Memory: what one process keeps after firing a transition on each of many instances.

The engine tests' sample grant workflow on SQLite. One instance is started through the
runtime; its instance and open-task rows are then copied in bulk to make the others, so
each stands in 草稿 with the applicant's open task exactly as ``Runtime.start`` leaves it
(the audit stream is created by the first fire). In a fresh process (so that memory freed by
an earlier section cannot hide growth) each instance is fired ``submit`` once through
``Runtime.fire``, one transaction each, as web requests would be. The baseline is the RSS
(psutil) after the first ``warmup`` fires, when caches, compiled statements and the pool
are warm; the growth is the RSS after the last fire minus that baseline. The fires stop at
``fires`` or after ``seconds``, whichever comes first.

The secondary table compares one shared compiled ``transitions.Machine`` per definition
(``engine.machine``: ``model=None``, a throwaway cursor) with a Machine per instance and with
one Machine holding every instance as a model (``add_model``); tracemalloc counts what stays
allocated after moving ``machines`` instances ``submit``, an untraced pass times it.
"""

from __future__ import annotations

import gc
import multiprocessing
import time
import tracemalloc
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import psutil
from sqlalchemy import func, insert, select

from bench.common import Target, database, ratio
from engine.deadlines import load_year
from engine.definitions import GuardContext
from engine.machine import Compiled, compile_machine
from engine.scope import load_actor
from engine.store.db import make_engine, session_factory
from engine.store.models import Instance, Task
from tests.conftest import T0
from tests.engine.sample import GRANT, build_world, grant_form, make_runtime

TITLE = "Memory (内存)"
SIZES = {
    "full": {"fires": 100_000, "warmup": 1_000, "seconds": 180.0, "machines": 2_000},
    "quick": {"fires": 150, "warmup": 50, "seconds": 10.0, "machines": 100},
}
MAX_GROWTH_MB = 50
CTX = GuardContext(data={"amount": 1}, form={}, now=T0)
MB = 1024 * 1024


# ---- RSS over many fires ---------------------------------------------------------------------


def _instances(sessions, runtime, applicant, village: int, n: int) -> list[int]:
    """One instance started by the runtime, then ``n - 1`` copies of its instance and task rows."""
    with sessions.begin() as s:
        first = runtime.start(s, "grant", applicant, org_unit_id=village, form=grant_form(), now=T0)
        s.flush()
        inst = {c.key: getattr(first, c.key) for c in Instance.__table__.columns}
        tasks = [
            {c.key: getattr(t, c.key) for c in Task.__table__.columns}
            for t in s.scalars(select(Task).where(Task.instance_id == first.id))
        ]
    ids = list(range(inst["id"], inst["id"] + n))
    with sessions.begin() as s:
        s.execute(
            insert(Instance),
            [{**inst, "id": i, "title": f"{inst['title']} {i}", "idempotency_key": None} for i in ids[1:]],
        )
        s.execute(
            insert(Task),
            [{**t, "id": None, "instance_id": i} for i in ids[1:] for t in tasks],
        )
    return ids


def fire_rss(fires: int, warmup: int, seconds: float) -> dict[str, Any]:
    """Fire ``submit`` once on each instance in this process; RSS after the warm-up and after all."""
    proc = psutil.Process()
    runtime = make_runtime()
    with database("sqlite") as url:
        engine = make_engine(url)
        sessions = session_factory(engine)
        with sessions.begin() as s:
            load_year(s, T0.year)
            world = build_world(s)
        with sessions() as s:
            applicant = load_actor(s, world.u["applicant_a1"].id, T0)
        t0 = time.perf_counter()
        ids = _instances(sessions, runtime, applicant, world.units["A1v"].id, fires)
        created_s = time.perf_counter() - t0
        at = T0 + timedelta(hours=1)
        curve: list[tuple[int, float]] = []
        baseline, warm_at, done = 0, 0.0, 0
        t0 = time.perf_counter()
        for iid in ids:
            with sessions.begin() as s:
                runtime.fire(s, iid, "submit", applicant, now=at)
            done += 1
            if done == warmup:
                gc.collect()
                baseline, warm_at = proc.memory_info().rss, time.perf_counter()
            if done % warmup == 0:
                curve.append((done, round(proc.memory_info().rss / MB, 1)))
            if done > warmup and time.perf_counter() - t0 > seconds:
                break
        end = time.perf_counter()
        gc.collect()
        final = proc.memory_info().rss
        with sessions() as s:
            moved = s.scalar(select(func.count()).select_from(Instance).where(Instance.state == "notice"))
        engine.dispose()
    measured = done - warmup
    return {
        "instances": fires,
        "created_seconds": round(created_s, 1),
        "fired": done,
        "moved": moved,
        "warmup": warmup,
        "measured": measured,
        "fire_seconds": round(end - t0, 1),
        "fires_per_s": round(measured / (end - warm_at), 1),
        "rss_baseline_mb": round(baseline / MB, 1),
        "rss_final_mb": round(final / MB, 1),
        "growth_mb": round((final - baseline) / MB, 2),
        "bytes_per_instance": round((final - baseline) / measured, 1),
        "curve_mb": curve,
    }


# ---- the compiled machine against the alternatives ------------------------------------------


class Model:
    """An instance as ``transitions`` would see it in the alternatives: an object with a state."""

    def __init__(self, state: str) -> None:
        self.state = state


def shared(n: int) -> list[Any]:
    compiled = Compiled(GRANT, compile_machine(GRANT))
    states = [compiled.move(GRANT.initial, "submit", CTX) for _ in range(n)]
    return [compiled, states]


def per_instance(n: int) -> list[Any]:
    held = []
    for _ in range(n):
        machine = compile_machine(GRANT)
        model = Model(GRANT.initial)
        machine.events["submit"].trigger(model, ctx=CTX)
        held.append((machine, model))
    return held


def added_models(n: int) -> list[Any]:
    machine = compile_machine(GRANT)
    models = [Model(GRANT.initial) for _ in range(n)]
    for model in models:
        machine.add_model(model)
        model.trigger("submit", ctx=CTX)
    return [machine, models]


VARIANTS: dict[str, Callable[[int], list[Any]]] = {
    "shared": shared,
    "machine_per_instance": per_instance,
    "add_model": added_models,
}


def _traced(build: Callable[[int], list[Any]], n: int) -> int:
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    held = build(n)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del held
    return after - before


def _seconds(build: Callable[[int], list[Any]], n: int) -> float:
    gc.collect()
    t0 = time.perf_counter()
    held = build(n)
    elapsed = time.perf_counter() - t0
    del held
    return elapsed


def machine_memory(n: int) -> dict[str, Any]:
    out: dict[str, Any] = {"instances": n}
    elapsed = {}
    for name, build in VARIANTS.items():
        held_bytes = _traced(build, n)
        elapsed[name] = _seconds(build, n)
        out[name] = {
            "bytes": held_bytes,
            "bytes_per_instance": round(held_bytes / n, 1),
            "seconds": round(elapsed[name], 3),
        }
    for name in ("machine_per_instance", "add_model"):
        out[f"{name}_vs_shared"] = {
            "memory": ratio(out[name]["bytes"], out["shared"]["bytes"]),
            "time": ratio(elapsed[name], elapsed["shared"]),
        }
    return out


# ---- the section ------------------------------------------------------------------------------


def run(backends: tuple[str, ...], fires: int, warmup: int, seconds: float, machines: int) -> dict[str, Any]:
    """The fires in a fresh process (SQLite whatever ``backends`` holds), then the machine comparison."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        fired = pool.apply(fire_rss, (fires, warmup, seconds))
    return {"fires": fired, "machines": machine_memory(machines)}


def markdown(result: dict[str, Any]) -> str:
    f, m = result["fires"], result["machines"]
    scope = (
        f"all {f['instances']:,}"
        if f["fired"] == f["instances"]
        else f"{f['fired']:,} of {f['instances']:,} (the time budget ran out)"
    )
    lines = [
        f"Fired {scope} instances in {f['fire_seconds']} s ({f['fires_per_s']} fires/s after the warm-up); "
        f"bulk copies made in {f['created_seconds']} s.",
        "",
        "| RSS after warm-up | RSS after all | growth | fires measured | per instance | target |",
        "|---|---|---|---|---|---|",
        f"| {f['rss_baseline_mb']} MB ({f['warmup']:,} fires) | {f['rss_final_mb']} MB ({f['fired']:,}) | "
        f"{f['growth_mb']} MB | {f['measured']:,} | {f['bytes_per_instance']:,.0f} B | "
        f"< {MAX_GROWTH_MB} MB over 100,000 |",
        "",
        f"RSS (MB) every {f['warmup']:,} fires: "
        + ", ".join(f"{n:,}: {mb}" for n, mb in f["curve_mb"])
        + ".",
        "",
        f"**Compiled machines**, {m['instances']:,} instances moved `submit` and held:",
        "",
        "| design | held | per instance | time | vs shared |",
        "|---|---|---|---|---|",
    ]
    labels = {
        "shared": "one compiled Machine per definition (the engine)",
        "machine_per_instance": "one Machine per instance",
        "add_model": "one Machine, `add_model` per instance",
    }
    for name, label in labels.items():
        v = m[name]
        vs = m.get(f"{name}_vs_shared")
        lines.append(
            f"| {label} | {v['bytes'] / MB:.3f} MB | {v['bytes_per_instance']:,.0f} B | {v['seconds']} s | "
            + (f"×{vs['memory']} memory, ×{vs['time']} time |" if vs else "1 |")
        )
    return "\n".join(lines)


def growth_over(result: dict[str, Any], n: int = 100_000) -> float:
    """The RSS growth measured, scaled to ``n`` instances when fewer were fired after the warm-up."""
    f = result["fires"]
    return f["growth_mb"] * n / f["measured"] if f["fired"] < n else f["growth_mb"]


def targets(result: dict[str, Any]) -> list[Target]:
    f = result["fires"]
    projected = growth_over(result)
    figure = f"{f['growth_mb']} MB over {f['measured']:,} fires"
    if f["fired"] < 100_000:
        figure += f" (≈ {projected:.1f} MB per 100,000)"
    return [
        Target(
            "RSS growth firing once on each of 100,000 instances",
            figure,
            f"< {MAX_GROWTH_MB} MB",
            projected < MAX_GROWTH_MB,
        )
    ]
