"""The throughput section on tiny sizes: the fire and the raw step write the same rows, every chain verifies."""

from __future__ import annotations

from bench import throughput


def test_fire_and_raw_steps_write_the_same_rows(backend):
    sizes = dict(throughput.SIZES["quick"], workers=(1, 2))
    result = throughput.run((backend,), **sizes)

    runs = result[backend]["runs"]
    assert [r["workers"] for r in runs] == ([1, 1] if backend == "sqlite" else [1, 2])
    for r in runs:
        steps = r["steps"] + 1
        assert r["engine_per_s"] > 0 and r["raw_per_s"] > 0 and r["engine_vs_raw"] > 0
        assert r["engine_writes"] == r["raw_writes"]
        assert "INSERT audit_event" in r["engine_writes"] and "INSERT notification" in r["engine_writes"]
        assert r["same_columns"] and r["rows_match"] and r["broken_chains"] == 0
        rows = r["engine_rows"]
        assert rows["instances"] == {"county_review/3": steps}
        assert rows["tasks"] == {"county_review/open": steps, "township_review/done": steps}
        assert rows["events"] == {"start/1": steps, "transition/2": steps}
        assert rows["notifications"] == {"assigned/inapp": steps}
        assert rows["deadlines"] == {"breach/cancelled": steps, "breach/pending": steps,
                                     "remind/cancelled": steps, "remind/pending": steps}
    assert len(throughput.targets(result)) == (2 if backend == "sqlite" else 1)
    assert "engine / raw" in throughput.markdown(result)
