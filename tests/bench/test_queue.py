"""The task-queue section on tiny sizes: well-formed results, the engine's pages equal the naive SQL's."""

from __future__ import annotations

from bench import queue


def test_queue_engine_raw_and_naive_agree(backend):
    result = queue.run((backend,), instances=400, repeats=2, naive_repeats=1)

    assert result["rows"]["instances"] == 400
    assert 0 < result["rows"]["open_tasks"] < result["rows"]["tasks"]
    assert result["rows"]["deadlines"] > 0
    measured = result[backend]
    assert set(measured) == {*queue.queries(queue.org_tree()), "overdue scan"}
    for name, entry in measured.items():
        assert entry["same_as_naive"], name
        assert 0 <= entry["rows"] <= (queue.SCAN_BATCH if name == "overdue scan" else queue.PER_PAGE)
        for how in ("engine", "raw", "naive"):
            assert 0 < entry[how]["p50_ms"] <= entry[how]["p99_ms"]
        assert entry["engine_vs_raw"] > 0
        assert entry["plans"] and all(p["plan"] and p["scans"] for p in entry["plans"])
        assert all(("execution_ms" in p) == (backend == "postgresql") for p in entry["plans"])
    assert measured["prefecture/first"]["rows"] > 0
    assert measured["overdue scan"]["rows"] > 0
    assert any("ix_task" in s for p in measured["township/first"]["plans"] for s in p["scans"])


def test_markdown_and_targets_cover_every_backend(backend):
    result = queue.run((backend,), instances=100, repeats=1, naive_repeats=1)

    text = queue.markdown(result)
    assert f"**{backend}**" in text and "overdue scan" in text
    targets = queue.targets(result)
    assert len(targets) == 2 * len(queue.TARGETED)
    assert all(t.figure and t.target for t in targets)
