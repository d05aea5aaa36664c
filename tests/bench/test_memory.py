"""The memory section on tiny sizes: every instance fired once, RSS figures and the machine table well formed."""

from __future__ import annotations

from bench import memory


def test_fire_rss_fires_each_instance_once():
    result = memory.fire_rss(fires=30, warmup=10, seconds=60.0)

    assert result["fired"] == result["instances"] == 30
    assert result["measured"] == 20
    assert result["rss_baseline_mb"] > 0 and result["rss_final_mb"] > 0
    assert result["moved"] == 30, "every copy is in 草稿 with its open task, as the runtime leaves it"
    assert [n for n, _ in result["curve_mb"]] == [10, 20, 30]


def test_section_in_a_fresh_process_with_targets():
    result = memory.run(("sqlite",), fires=12, warmup=4, seconds=60.0, machines=20)

    assert result["fires"]["fired"] == 12
    for name in memory.VARIANTS:
        assert result["machines"][name]["bytes"] > 0
    assert result["machines"]["machine_per_instance"]["bytes"] > result["machines"]["shared"]["bytes"]
    assert "RSS after warm-up" in memory.markdown(result)
    (target,) = memory.targets(result)
    assert "100,000" in target.what and "MB" in target.figure
