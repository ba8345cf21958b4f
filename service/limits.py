"""Rate limits: parsing `N/period` and the GCRA arithmetic shared by every store.

GCRA (generic cell rate algorithm) keeps one number per bucket, the theoretical
arrival time (TAT). A limit of N per period P has emission interval T = P / N and
admits a burst of up to N: a request at time `now` is admitted when
`max(TAT, now) + T - now <= P`, and then TAT becomes `max(TAT, now) + T`.
The Redis Lua script (stores/lua/gcra.lua) mirrors `evaluate` line for line.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

PERIODS: dict[str, float] = {"second": 1.0, "minute": 60.0, "hour": 3600.0, "day": 86400.0}
_LIMIT = re.compile(r"^\s*([1-9][0-9]{0,8})\s*/\s*(second|minute|hour|day)s?\s*$")


@dataclass(frozen=True, slots=True)
class Limit:
    count: int
    period: float
    text: str

    @property
    def interval(self) -> float:
        return self.period / self.count


def parse_limit(text: str) -> Limit:
    """`"5/minute"` → Limit(5, 60.0). Raises ValueError with a readable message."""
    match = _LIMIT.match(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"{text!r} is not a rate limit of the form N/second|minute|hour|day")
    count, unit = int(match.group(1)), match.group(2)
    return Limit(count=count, period=PERIODS[unit], text=f"{count}/{unit}")


def parse_limits(texts: Sequence[str]) -> tuple[Limit, ...]:
    return tuple(parse_limit(t) for t in texts)


@dataclass(frozen=True, slots=True)
class Outcome:
    """One bucket's answer. `reset_after`: seconds until the bucket is full again;
    `retry_after`: seconds until this request would be admitted (0 when admitted)."""

    limit: Limit
    allowed: bool
    remaining: int
    reset_after: float
    retry_after: float
    new_tat: float


def evaluate(limit: Limit, tat: float | None, now: float, cost: int = 1) -> Outcome:
    """Decide one bucket without storing anything."""
    interval = limit.interval
    base = now if tat is None or tat < now else tat
    new_tat = base + interval * cost
    used = new_tat - now
    if used <= limit.period + 1e-9:
        remaining = max(0, math.floor((limit.period - used) / interval + 1e-9))
        return Outcome(limit, True, remaining, used, 0.0, new_tat)
    remaining = max(0, math.floor((limit.period - (base - now)) / interval + 1e-9))
    return Outcome(limit, False, remaining, base - now, used - limit.period, base)


def tightest(outcomes: Sequence[Outcome]) -> Outcome | None:
    """The outcome the RateLimit-* headers describe: the fewest remaining, then the
    longest wait."""
    # Same as `min(outcomes, key=lambda o: (o.remaining, -o.reset_after))` (the first of
    # equals wins), without a key tuple per outcome: this runs on every mint.
    if not outcomes:
        return None
    best = outcomes[0]
    for outcome in outcomes[1:]:
        if outcome.remaining < best.remaining or (
            outcome.remaining == best.remaining and outcome.reset_after > best.reset_after
        ):
            best = outcome
    return best
