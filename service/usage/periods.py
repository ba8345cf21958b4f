"""Time in the ledger (pure): bucket widths and their retention, UTC days and months,
and how long until the next one (a budget's `Retry-After`)."""

from __future__ import annotations

import datetime
from typing import Literal

Width = Literal["1m", "1h", "1d"]
WIDTHS: dict[Width, int] = {"1m": 60, "1h": 3600, "1d": 86_400}
# How long each width's buckets are kept after their last write: at least 24 hours,
# 8 days and 400 days (DESIGN 11), plus one bucket, so the oldest one asked for is whole.
RETENTION: dict[Width, int] = {"1m": 25 * 3600, "1h": 9 * 86_400, "1d": 401 * 86_400}
# A day's and a month's spend (budgets, the spend limit) are kept past their period.
DAY_SPEND_TTL = 2 * 86_400
MONTH_SPEND_TTL = 63 * 86_400


def bucket_start(now: float, width: Width) -> int:
    seconds = WIDTHS[width]
    return int(now // seconds) * seconds


def _utc(now: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(now, datetime.UTC)


def utc_day(now: float) -> str:
    return _utc(now).strftime("%Y-%m-%d")


def utc_month(now: float) -> str:
    return _utc(now).strftime("%Y-%m")


def seconds_to_next_day(now: float) -> float:
    return _until(_utc(now).date() + datetime.timedelta(days=1), now)


def seconds_to_next_month(now: float) -> float:
    today = _utc(now).date()
    first = datetime.date(today.year + today.month // 12, today.month % 12 + 1, 1)
    return _until(first, now)


def _until(day: datetime.date, now: float) -> float:
    midnight = datetime.datetime.combine(day, datetime.time(), datetime.UTC)
    return max(1.0, midnight.timestamp() - now)
