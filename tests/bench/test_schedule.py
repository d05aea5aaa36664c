"""The scheduler benchmark on tiny sizes."""

from __future__ import annotations

from bench import schedule

def test_run_due_acts_on_every_row_of_each_kind(backend):
    result = schedule.run(backend, 9)

    for kind in schedule.KINDS:
        assert result[kind]["rows"] == result[kind]["acted"] == 3
        assert result[kind]["rows_per_s"] > 0
    assert result["all"]["acted"] == 9
    assert result["pending_after"] == 3 * 3, "each fired timer starts two reminders and a breach clock"
