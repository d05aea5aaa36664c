"""The task-queue benchmark on tiny sizes."""

from __future__ import annotations

from bench import queue

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
