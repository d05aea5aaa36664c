"""Time zones of the engine (时间): stored in UTC, shown in Asia/Shanghai.

The engine has no clock of its own: every operation receives ``now``; callers that
have no frozen clock pass :func:`utcnow`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")

__all__ = ["SHANGHAI", "UTC", "local", "utcnow"]


def utcnow() -> datetime:
    return datetime.now(UTC)


def local(moment: datetime) -> datetime:
    """``moment`` as Asia/Shanghai wall-clock time, for display."""
    return moment.astimezone(SHANGHAI)
