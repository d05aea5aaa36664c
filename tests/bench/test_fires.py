"""The fire benchmark on tiny sizes."""

from __future__ import annotations

from bench import fires

def test_fires_against_a_bare_update(backend):
    result = fires.run(backend, 5)

    for op in ("start", "fire", "bare_update"):
        assert result[op]["n"] == 5
        assert result[op]["ops_per_s"] > 0
    assert result["fire_vs_bare_update"] > 0
