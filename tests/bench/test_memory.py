"""The memory benchmark on tiny sizes."""

from __future__ import annotations

from bench import memory

def test_machine_memory_variants():
    result = memory.run(50)

    for name in memory.VARIANTS:
        assert result[name]["bytes"] > 0
        assert result[name]["seconds"] > 0
    assert result["machine_per_instance"]["bytes"] > result["shared"]["bytes"]
