"""The benchmark code paths on tiny sizes: well-formed results, never timings."""

from __future__ import annotations

import json
import os

import pytest

from bench import fires, memory, queue, run, schedule
from bench.common import BACKENDS, PG_ADMIN, pg_reachable


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    if request.param == "postgresql" and not pg_reachable():
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true requires PostgreSQL at {PG_ADMIN}")
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN}")
    return request.param


def _timing(entry: dict) -> None:
    assert entry["median_ms"] > 0
    assert entry["repeats"] == 1


def test_queue_small_large_and_without_composite_indexes(backend):
    result = queue.run(backend, 50, 200, repeats=1, baseline_repeats=1)

    assert result["large_rows"]["instances"] == 200
    assert 0 < result["large_rows"]["open_tasks"] < result["large_rows"]["tasks"]
    variants = ["small", "large", "large_no_composite"]
    if backend == "postgresql":
        variants.append("large_pattern_ops")
    names = {f"{who}/{page}" for who in queue.USERS for page in ("first", "filtered", "deep")}
    for variant in variants:
        assert set(result[variant]) == names
        for entry in result[variant].values():
            _timing(entry)
            assert 0 <= entry["rows"] <= min(entry["total"], 20)
    assert result["large"]["prefecture/first"]["total"] > 0
    plans = result["large"]["township/first"]["plans"]
    assert plans
    assert all(p["plan"] and p["scans"] for p in plans)
    assert all(("execution_ms" in p) == (backend == "postgresql") for p in plans)
    assert any("ix_task_queue" in scan for p in plans for scan in p["scans"])
    assert not any(
        "ix_task_queue" in scan
        for p in result["large_no_composite"]["township/first"]["plans"]
        for scan in p["scans"]
    )
    assert set(result["ratios"]) == names
    assert all(r["large_vs_small"] > 0 and r["no_index_vs_indexed"] > 0 for r in result["ratios"].values())


def test_fires_against_a_bare_update(backend):
    result = fires.run(backend, 5)

    for op in ("start", "fire", "bare_update"):
        assert result[op]["n"] == 5
        assert result[op]["ops_per_s"] > 0
    assert result["fire_vs_bare_update"] > 0


def test_run_due_acts_on_every_row_of_each_kind(backend):
    result = schedule.run(backend, 9)

    for kind in schedule.KINDS:
        assert result[kind]["rows"] == result[kind]["acted"] == 3
        assert result[kind]["rows_per_s"] > 0
    assert result["all"]["acted"] == 9
    assert result["pending_after"] == 3 * 3, "each fired timer starts two reminders and a breach clock"


def test_machine_memory_variants():
    result = memory.run(50)

    for name in memory.VARIANTS:
        assert result[name]["bytes"] > 0
        assert result[name]["seconds"] > 0
    assert result["machine_per_instance"]["bytes"] > result["shared"]["bytes"]


def test_cli_writes_json_and_prints_the_table(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(run.SIZES, "quick", {**run.SIZES["quick"], "memory": 20, "fires": 3})
    out = tmp_path / "results.json"

    assert run.main(["--quick", "--only", "memory,fires", "--out", str(out)]) == 0

    results = json.loads(out.read_text())
    assert results["mode"] == "quick"
    assert results["memory"]["instances"] == 20
    assert "sqlite" in results["fires"]
    printed = capsys.readouterr().out
    assert "memory machine_per_instance (20)" in printed
    assert "fire sqlite" in printed
    assert str(out) in printed


def test_unknown_section_is_refused():
    with pytest.raises(SystemExit):
        run.main(["--only", "nonsense"])
