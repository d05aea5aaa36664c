"""Form parsing (表单校验): raw user input → typed values, or an error per field.

Money (``money``) is entered in 万元 and stored as integer 分: 1万元 = 1,000,000 分.
A value with a fraction of a 分 is refused, never rounded.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from engine.definitions import Field
from engine.errors import InvalidForm

FEN_PER_WAN = 1_000_000


def wan_to_fen(text: Any) -> int:
    """'12.5' 万元 → 12,500,000 分; raises ValueError on anything inexact or not a number."""
    try:
        amount = Decimal(str(text).strip().replace(",", ""))
    except InvalidOperation:
        raise ValueError("不是有效金额 (not a number)") from None
    if not amount.is_finite():
        raise ValueError("不是有效金额 (not a number)")
    fen = amount * FEN_PER_WAN
    if fen != fen.to_integral_value():
        raise ValueError("金额精度不能小于1分 (finer than 1 fen)")
    return int(fen)


def fen_to_wan(fen: int) -> Decimal:
    """Integer 分 → exact Decimal 万元, for display."""
    return (Decimal(fen) / FEN_PER_WAN).normalize()


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip()) or value == []


def _parse_one(f: Field, raw: Any) -> Any:
    if f.kind == "text":
        text = str(raw).strip()
        if len(text) > f.max_length:
            raise ValueError(f"最多{f.max_length}字 (at most {f.max_length} characters)")
        return text
    if f.kind in ("int", "money"):
        if f.kind == "money":
            value = wan_to_fen(raw)
        else:
            try:
                value = int(str(raw).strip())
            except ValueError:
                raise ValueError("须为整数 (must be a whole number)") from None
        if f.min_value is not None and value < f.min_value:
            raise ValueError(f"不能小于 {f.min_value if f.kind == 'int' else fen_to_wan(f.min_value)}")
        if f.max_value is not None and value > f.max_value:
            raise ValueError(f"不能大于 {f.max_value if f.kind == 'int' else fen_to_wan(f.max_value)}")
        return value
    if f.kind == "date":
        try:
            return date.fromisoformat(str(raw).strip()).isoformat()
        except ValueError:
            raise ValueError("日期格式应为 YYYY-MM-DD (date must be YYYY-MM-DD)") from None
    if f.kind == "choice":
        if raw not in f.choices:
            raise ValueError(f"不在可选范围内: {raw} (not one of the choices)")
        return raw
    if f.kind == "multichoice":
        values = list(raw) if isinstance(raw, list | tuple) else [raw]
        bad = [v for v in values if v not in f.choices]
        if bad:
            raise ValueError(f"不在可选范围内: {', '.join(map(str, bad))} (not one of the choices)")
        return values
    if f.kind == "bool":
        if isinstance(raw, bool):
            return raw
        if str(raw).lower() in ("1", "true", "on", "yes", "y", "是"):
            return True
        if str(raw).lower() in ("0", "false", "off", "no", "n", "否"):
            return False
        raise ValueError("须为是或否 (must be yes or no)")
    raise ValueError(f"unknown field kind {f.kind}")


def parse(fields: Iterable[Field], raw: Mapping[str, Any] | None) -> dict[str, Any]:
    """Typed values for ``fields`` from ``raw``; raises InvalidForm naming every bad field."""
    raw = raw or {}
    fields = list(fields)
    known = {f.name for f in fields}
    errors: dict[str, str] = {k: "未知字段 (unknown field)" for k in raw if k not in known}
    values: dict[str, Any] = {}
    for f in fields:
        value = raw.get(f.name)
        if _blank(value):
            if f.required and f.kind != "bool":
                errors[f.name] = f"{f.label}: 必填 (required)"
            continue
        try:
            values[f.name] = _parse_one(f, value)
        except ValueError as exc:
            errors[f.name] = f"{f.label}: {exc}"
    if errors:
        raise InvalidForm(errors)
    return values
