"""Memory: one shared compiled ``transitions.Machine`` per definition against the alternatives.

``engine.machine`` compiles each (key, version) once, with ``model=None``, and moves a
throwaway cursor. The alternatives a first design reaches for are a Machine per instance,
or one Machine with every instance added as a model (``add_model``), which hangs trigger
methods on each model and keeps a reference to it. Each variant holds ``n`` instances
that have all been moved ``submit`` (草稿 → 村内公示); tracemalloc counts what stays
allocated, and a second, untraced pass times the same work.
"""

from __future__ import annotations

import gc
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from bench.common import ratio
from engine.definitions import GuardContext
from engine.machine import Compiled, compile_machine
from tests.conftest import T0
from tests.engine.sample import GRANT

CTX = GuardContext(data={"amount": 1}, form={}, now=T0)


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


def run(n: int) -> dict[str, Any]:
    out: dict[str, Any] = {"instances": n}
    for name, build in VARIANTS.items():
        held_bytes = _traced(build, n)
        out[name] = {
            "bytes": held_bytes,
            "bytes_per_instance": round(held_bytes / n, 1),
            "seconds": round(_seconds(build, n), 3),
        }
    for name in ("machine_per_instance", "add_model"):
        out[f"{name}_vs_shared"] = {
            "memory": ratio(out[name]["bytes"], out["shared"]["bytes"]),
            "time": ratio(out[name]["seconds"], out["shared"]["seconds"]),
        }
    return out
