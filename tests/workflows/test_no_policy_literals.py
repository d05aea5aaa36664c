"""The notice's numbers live only in workflows/policy/: none may be written into code.

Scans the Python of engine/ and workflows/ (outside workflows/policy/) for numeric
constants equal to a number of 甘农牧发〔2025〕30号 (as written, or as 分 for amounts in
万元), and for string constants (docstrings aside) that write a quantity with a unit
(``500万``, ``33%``, ``10天``, ``3个月``). Docstrings may cite a rule in words.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
POLICY_DIR = ROOT / "workflows" / "policy"
FEN_PER_WAN = 10**6

NOTICE_NUMBERS = {33, 75, 84, 300, 500, 3000, 848, 3500, 40000, 90000}
"""Distinctive numbers of the notice. 50, 59, 60, 100, 200 and small counts are too common in
code (23:59:59, batch sizes) to tell apart as bare numbers; their 分 forms and any text
with a unit (``59%``, ``200万``) are still caught."""
NOTICE_AMOUNTS_WAN = {100, 200, 300, 500, 3000, 3500, 40000, 90000}
FORBIDDEN = NOTICE_NUMBERS | {wan * FEN_PER_WAN for wan in NOTICE_AMOUNTS_WAN}
QUANTITY = re.compile(r"\d+(?:\.\d+)?\s*(?:万|亿|%|％|个月|天|日|工作日)")

ALLOWED = {
    ("engine/definitions.py", 500): "Field.max_length default: characters, not money",
    ("engine/delivery.py", 300): "HTTP status class (>= 300 is a failed webhook), not money",
}
"""(file, number) pairs that are not policy, each with the reason."""


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
        if isinstance(node, ast.Module | ast.ClassDef):
            for a, b in zip(node.body, node.body[1:], strict=False):
                if (
                    isinstance(a, ast.Assign | ast.AnnAssign)
                    and isinstance(b, ast.Expr)
                    and isinstance(b.value, ast.Constant)
                ):
                    ids.add(id(b.value))
    return ids


def offences(path: Path) -> list[str]:
    rel = path.relative_to(ROOT).as_posix()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Constant) or id(node) in skip:
            continue
        value = node.value
        if isinstance(value, int | float) and not isinstance(value, bool) and value in FORBIDDEN:
            if (rel, value) not in ALLOWED:
                found.append(f"{rel}:{node.lineno}: number {value}")
        elif isinstance(value, str) and QUANTITY.search(value):
            found.append(f"{rel}:{node.lineno}: text {value!r}")
    return found


def code_files() -> list[Path]:
    files = [*(ROOT / "engine").rglob("*.py"), *(ROOT / "workflows").rglob("*.py")]
    return sorted(p for p in files if POLICY_DIR not in p.parents and "migrations" not in p.parts)


def test_no_notice_number_outside_policy():
    assert [o for p in code_files() for o in offences(p)] == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("LIMIT = 500 * 1_000_000\n", "number 500"),
        ("LIMIT = 500_000_000\n", "number 500000000"),
        ("label = '金额≥3000万'\n", "text '金额≥3000万'"),
        ("share = '33%'\n", "text '33%'"),
        ("due = '完工后3个月内'\n", "text '完工后3个月内'"),
    ],
)
def test_the_scan_finds_a_planted_literal(tmp_path, monkeypatch, source, expected):
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    planted = tmp_path / "workflows" / "planted.py"
    planted.parent.mkdir()
    planted.write_text('"""Docstrings may say 500万 and 3个月."""\n' + source, encoding="utf-8")
    assert [o.split(": ", 1)[1] for o in offences(planted)] == [expected]
