"""The load section on tiny sizes: well-formed results, no 5xx, no lost or doubled transition; never timings."""

from __future__ import annotations

from bench import web


def test_quick_load_run(backend):
    result = web.run((backend,), **web.SIZES["quick"])
    if backend == "sqlite":
        assert "PostgreSQL" in result["skipped"] and web.targets(result) == []
        assert web.markdown(result).startswith("Skipped")
        return
    assert result["requests"] == sum(k["n"] for k in result["kinds"].values()) > 0
    assert {"login", "queue_page", "api_tasks", "instance", "approve"} <= set(result["kinds"])
    assert result["server_errors"] == 0 and result["no_response"] == 0, result["log_errors"]
    assert result["approved_2xx"] > 0 and result["approved_2xx"] == result["approve_events"]
    assert (result["lost"], result["duplicated"], result["replay_mismatch"]) == (0, 0, 0)
    assert result["doubled_open_tasks"] == 0 and result["audit_breaks"] == []
    assert [t.met for t in web.targets(result)] == [True, True]
    assert "lost / duplicated transitions | 0 / 0" in web.markdown(result)
