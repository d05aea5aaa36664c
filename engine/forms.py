"""Form parsing (表单校验): raw user input → typed values, or an error per field.

Money (``money``) is entered in 万元 and stored as integer 分: 1万元 = 1,000,000 分.
A value with a fraction of a 分 is refused, never rounded.

Field rules (the same from the web forms, the JSON API and the Excel import):

- ``text``: a string (or a number, taken as its text). ``\\r\\n`` becomes ``\\n``, the ends are
  stripped, then any control character other than newline and tab (NUL, ESC…), any bidi
  embedding/override/isolate mark (U+202A–U+202E, U+2066–U+2069) or lone surrogate is refused,
  naming its code point; it is never silently stripped. Longer than ``max_length`` characters is
  refused with the limit named. Every script is accepted (中文, བོད་ཡིག), and markup is stored as
  given: pages escape it when they show it.
- ``int``: ASCII (or full-width) digits with an optional sign; ``money``: plain decimal 万元
  (thousands commas allowed), no exponent, NaN or Infinity, at most 6 decimals (1 分). Both lie
  within ±:data:`LIMIT` (int) or 0…:data:`LIMIT` 分 (money) unless the field sets its own bounds;
  money is never negative unless the field's ``min_value`` is.
- ``date``: ``YYYY-MM-DD``, a real calendar day between :data:`FIRST_DAY` and :data:`LAST_DAY`.
- ``choice``/``multichoice``: only the listed choices.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from datetime import date
from decimal import Decimal, localcontext
from typing import Any

from engine.definitions import Field
from engine.errors import InvalidForm

FEN_PER_WAN = 1_000_000
LIMIT = 10**15
"""The largest whole number or amount in 分 (10亿万元) a field takes: exact in JSON and JavaScript."""
FIRST_DAY, LAST_DAY = date(1900, 1, 1), date(2100, 12, 31)

_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_WHOLE = re.compile(r"[+-]?[0-9]+")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_MAX_DIGITS = 40


def _number_text(raw: Any, not_number: str) -> str:
    """A number as typed: full-width digits made ASCII, spaces and thousands commas dropped."""
    if isinstance(raw, bool) or not isinstance(raw, str | int | float | Decimal):
        raise ValueError(not_number)
    if isinstance(raw, float):
        raw = format(Decimal(repr(raw)), "f")
    text = unicodedata.normalize("NFKC", str(raw)).strip().replace(",", "")
    if len(text) > _MAX_DIGITS:
        raise ValueError(f"数字过长 (longer than {_MAX_DIGITS} characters)")
    return text


def wan_to_fen(text: Any) -> int:
    """'12.5' 万元 → 12,500,000 分; raises ValueError on anything inexact, out of range or not a number."""
    not_number = "不是有效金额，应如 12.5 (not a number like 12.5)"
    plain = _number_text(text, not_number)
    if not _DECIMAL.fullmatch(plain):
        raise ValueError(not_number)
    with localcontext(prec=2 * _MAX_DIGITS):
        fen = Decimal(plain) * FEN_PER_WAN
    if fen != fen.to_integral_value():
        raise ValueError("金额精度不能小于1分 (finer than 1 fen)")
    if abs(fen) > LIMIT:
        raise ValueError(
            f"金额超出范围，最多 {LIMIT // FEN_PER_WAN} 万元 (at most {LIMIT // FEN_PER_WAN} 万元)"
        )
    return int(fen)


def fen_to_wan(fen: int) -> Decimal:
    """Integer 分 → exact Decimal 万元, for display."""
    return (Decimal(fen) / FEN_PER_WAN).normalize()


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip()) or value == []


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 20 else text[:20] + "…"


def clean_text(raw: Any, max_length: int) -> str:
    """Text as stored: newlines normalised, ends stripped; ValueError on control marks or excess length."""
    if isinstance(raw, bool) or not isinstance(raw, str | int | float | Decimal):
        raise ValueError("须为文字 (must be text)")
    text = str(raw).replace("\r\n", "\n").replace("\r", "\n").strip()
    for ch in text:
        if ch in "\n\t":
            continue
        if unicodedata.category(ch) in ("Cc", "Cs") or ch in _BIDI:
            raise ValueError(f"含有不允许的控制字符 U+{ord(ch):04X} (control character U+{ord(ch):04X})")
    if len(text) > max_length:
        raise ValueError(f"最多{max_length}字 (at most {max_length} characters)")
    return text


COMMENT_MAX = 2000
"""The longest approver's comment (意见) stored, in characters."""
IDEMPOTENCY_KEY_MAX = 128
"""The width of the idempotency key columns."""


def clean_comment(raw: Any) -> str | None:
    """An approver's comment (意见) as stored: the text rules of a field, at most ``COMMENT_MAX``; None if blank."""
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise InvalidForm({"comment": "意见须为文字 (a comment must be text)"})
    try:
        return clean_text(raw, COMMENT_MAX) or None
    except ValueError as exc:
        raise InvalidForm({"comment": f"意见{exc}"}) from None


def check_idempotency_key(key: Any) -> None:
    """A client's idempotency key must be 1–128 printable characters (it is stored and compared as given)."""
    if key is not None and not (
        isinstance(key, str) and 0 < len(key) <= IDEMPOTENCY_KEY_MAX and key.isprintable()
    ):
        raise InvalidForm(
            {"idempotency_key": f"须为1至{IDEMPOTENCY_KEY_MAX}个可打印字符 (1 to {IDEMPOTENCY_KEY_MAX} printable characters)"}
        )


def _whole(raw: Any) -> int:
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    not_whole = "须为整数 (must be a whole number)"
    text = _number_text(raw, not_whole)
    if not _WHOLE.fullmatch(text):
        raise ValueError(not_whole)
    return int(text)


def _bounded(f: Field, value: int) -> int:
    shown = (lambda v: v) if f.kind == "int" else (lambda v: f"{fen_to_wan(v):f} 万元")
    low = f.min_value if f.min_value is not None else (0 if f.kind == "money" else -LIMIT)
    high = f.max_value if f.max_value is not None else LIMIT
    if value < low:
        raise ValueError(f"不能小于 {shown(low)} (must be at least {shown(low)})")
    if value > high:
        raise ValueError(f"不能大于 {shown(high)} (must be at most {shown(high)})")
    return value


def _parse_one(f: Field, raw: Any) -> Any:
    if f.kind == "text":
        return clean_text(raw, f.max_length)
    if f.kind == "int":
        return _bounded(f, _whole(raw))
    if f.kind == "money":
        return _bounded(f, wan_to_fen(raw))
    if f.kind == "date":
        text = str(raw).strip() if isinstance(raw, str | date) else ""
        try:
            day = date.fromisoformat(text) if _ISO_DATE.fullmatch(text) else None
        except ValueError:
            day = None
        if day is None:
            raise ValueError("日期格式应为 YYYY-MM-DD，且须是真实日期 (date must be a real YYYY-MM-DD)")
        if not FIRST_DAY <= day <= LAST_DAY:
            raise ValueError(
                f"日期须在 {FIRST_DAY} 至 {LAST_DAY} 之间 (date must be from {FIRST_DAY} to {LAST_DAY})"
            )
        return day.isoformat()
    if f.kind == "choice":
        if not isinstance(raw, str) or raw not in f.choices:
            raise ValueError(f"不在可选范围内: {_short(raw)} (not one of the choices)")
        return raw
    if f.kind == "multichoice":
        values = list(raw) if isinstance(raw, list | tuple) else [raw]
        bad = [v for v in values if not isinstance(v, str) or v not in f.choices]
        if bad:
            raise ValueError(f"不在可选范围内: {', '.join(map(_short, bad[:5]))} (not one of the choices)")
        return list(dict.fromkeys(values))
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
    errors: dict[str, str] = {str(k): "未知字段 (unknown field)" for k in raw if k not in known}
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
