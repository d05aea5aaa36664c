"""The peer section on tiny sizes: both engines finish every instance on the branch its amount takes."""

from __future__ import annotations

from bench import peer


def test_spiff_and_shuangti_take_the_amount_gateway():
    result = peer.run(("sqlite",), **peer.SIZES["quick"])

    n = result["n"]
    big = n // 2
    assert result["steps"] == {"spiff": 3 * n + big, "shuangti": 3 * n + big}
    assert result["spiff_per_s"] > 0 and result["shuangti_per_s"] > 0 and result["shuangti_vs_spiff"] > 0
    assert result["paths"]["spiff"] == {
        "big": [["submit", "township_review", "county_review", "prefecture_review"]],
        "small": [["submit", "township_review", "county_review"]],
    }
    assert result["paths"]["shuangti"] == {
        "big": [["draft", "township_review", "county_review", "prefecture_review"]],
        "small": [["draft", "township_review", "county_review"]],
    }
    ours = result["shuangti"]
    assert ours["states"] == {"approved": n}
    assert ours["events"] == n + 3 * n + big
    assert ours["notifications"] == 3 * n + big
    assert ours["broken_chains"] == 0
    assert peer.targets(result)[0].target == "≥ ×3"
