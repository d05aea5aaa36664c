"""``python -m bench.run``: sections picked by ``--only``, JSON and the Markdown report written."""

from __future__ import annotations

import json
import sys
import types

import pytest

from bench import run
from bench.common import Target


@pytest.fixture
def toy_section(monkeypatch):
    """A section module with the interface ``bench.run`` expects, counting a list's length."""
    mod = types.ModuleType("bench.toy")
    mod.__doc__ = "Counts a list (the runner's own test)."
    mod.TITLE = "Toy"
    mod.SIZES = {"full": {"n": 1000}, "quick": {"n": 3}}
    mod.run = lambda backends, n: {"n": n, "backends": list(backends)}
    mod.markdown = lambda r: f"| n |\n|---|\n| {r['n']} |"
    mod.targets = lambda r: [Target("count", str(r["n"]), "= 3", r["n"] == 3)]
    monkeypatch.setitem(sys.modules, "bench.toy", mod)
    monkeypatch.setattr(run, "SECTIONS", (*run.SECTIONS, "toy"))
    return mod


def test_quick_run_writes_json_and_the_report(toy_section, tmp_path, capsys):
    out, doc = tmp_path / "r.json", tmp_path / "bench.md"

    assert run.main(["--quick", "--only", "toy", "--out", str(out), "--doc", str(doc)]) == 0

    results = json.loads(out.read_text())
    assert results["mode"] == "quick"
    assert results["toy"]["n"] == 3
    assert "sqlite" in results["toy"]["backends"]
    text = doc.read_text()
    assert "| toy | count | 3 | = 3 | yes |" in text
    assert "## 1. Toy" in text and "Counts a list" in text
    assert "SQLAlchemy" in text and "python -m bench.run --quick --only toy" in text
    assert text in capsys.readouterr().out


def test_unknown_section_is_refused():
    with pytest.raises(SystemExit):
        run.main(["--only", "nonsense"])
