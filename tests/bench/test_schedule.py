"""The scheduler benchmark on tiny sizes: well-formed results and exactly-once counts, never timings."""

from __future__ import annotations

from bench import schedule


def test_due_rows_are_acted_on_exactly_once_by_each_run(backend):
    result = schedule.run((backend,), 30)

    out = result[backend]
    assert out["counts"] == dict.fromkeys(schedule.KINDS, 10)
    assert out["raw"]["rows"] == 30
    runs = (1, 2) if backend == "postgresql" else (1,)
    for processes in runs:
        r = out[f"processes_{processes}"]
        assert r["processes"] == processes == len(r["acted_per_process"])
        assert r["acted"] == sum(r["acted_per_process"]) == r["fired"] == r["events"] == 30
        assert r["instances_with_events"] == 30
        assert r["supervise_tasks"] == 10
        assert r["exactly_once"] is True
        assert r["rows_per_s"] > 0 and r["engine_vs_raw"] > 0
    targets = schedule.targets(result)
    assert len(targets) == len(runs) and all(t.met for t in targets)
    assert "exactly once" in schedule.markdown(result)
