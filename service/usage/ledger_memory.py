"""The ledger in process memory: dev mode and single-process deployments, and the
reference the Redis ledger is tested against. Buckets, spends and the limit are kept as
the Redis ledger keeps them (the same retention, dropped as they lapse)."""

from __future__ import annotations

from collections.abc import Sequence

from service.clock import Clock, system_clock
from service.usage.ledger import BucketData, Written, merged, metrics_of
from service.usage.model import LedgerEntry, Spend
from service.usage.periods import (
    DAY_SPEND_TTL,
    MONTH_SPEND_TTL,
    RETENTION,
    WIDTHS,
    Width,
    bucket_start,
    utc_day,
    utc_month,
)

TENANT_TOTAL = "*"


class MemoryLedger:
    def __init__(self, *, clock: Clock = system_clock) -> None:
        self._clock = clock
        # (tenant, width, start) -> (bucket, kept until)
        self._buckets: dict[tuple[str, str, int], tuple[BucketData, float]] = {}
        # (tenant, "d" | "m", period) -> (user (or "*") -> nano, kept until)
        self._spends: dict[tuple[str, str, str], tuple[dict[str, int], float]] = {}
        self._limits: dict[str, int] = {}

    def add(self, entries: Sequence[LedgerEntry], now: float) -> Written:
        """Write one batch; each user's spend after it."""
        self._drop_lapsed()
        kept = self._clock()
        written: Written = {}
        day, month = utc_day(now), utc_month(now)
        for e in merged(entries):
            for width in WIDTHS:
                key = (e.tenant, width, bucket_start(now, width))
                bucket, _ = self._buckets.get(key, ({}, 0.0))
                row = bucket.setdefault((e.user_id, e.model), {})
                for metric, n in metrics_of(e, with_cost=width == "1d").items():
                    row[metric] = row.get(metric, 0) + n
                self._buckets[key] = (bucket, kept + RETENTION[width])
            days = self._spend(e.tenant, "d", day, kept + DAY_SPEND_TTL)
            months = self._spend(e.tenant, "m", month, kept + MONTH_SPEND_TTL)
            days[e.user_id] = days.get(e.user_id, 0) + e.nano
            months[e.user_id] = months.get(e.user_id, 0) + e.nano
            months[TENANT_TOTAL] = months.get(TENANT_TOTAL, 0) + e.nano
        for e in entries:
            written[(e.tenant, e.user_id)] = self._read(e.tenant, e.user_id, day, month)
        return written

    def _spend(self, tenant: str, period: str, name: str, until: float) -> dict[str, int]:
        spends, _ = self._spends.get((tenant, period, name), ({}, 0.0))
        self._spends[(tenant, period, name)] = (spends, until)
        return spends

    def _get(self, tenant: str, period: str, name: str) -> dict[str, int]:
        spends, until = self._spends.get((tenant, period, name), ({}, 0.0))
        return spends if until > self._clock() else {}

    def _read(self, tenant: str, user_id: str, day: str, month: str) -> Spend:
        months = self._get(tenant, "m", month)
        return Spend(
            user_day=self._get(tenant, "d", day).get(user_id, 0),
            user_month=months.get(user_id, 0),
            tenant_month=months.get(TENANT_TOTAL, 0),
            limit_cents=self._limits.get(tenant),
        )

    def _drop_lapsed(self) -> None:
        now = self._clock()
        for key in [k for k, (_, until) in self._buckets.items() if until <= now]:
            del self._buckets[key]
        for skey in [k for k, (_, until) in self._spends.items() if until <= now]:
            del self._spends[skey]

    async def spend(self, tenant: str, user_id: str, now: float) -> Spend:
        return self._read(tenant, user_id, utc_day(now), utc_month(now))

    async def buckets(self, tenant: str, width: Width, starts: Sequence[int]) -> list[BucketData]:
        now = self._clock()
        out: list[BucketData] = []
        for start in starts:
            bucket, until = self._buckets.get((tenant, width, start), ({}, 0.0))
            out.append({k: dict(v) for k, v in bucket.items()} if until > now else {})
        return out

    async def spend_limit(self, tenant: str) -> int | None:
        return self._limits.get(tenant)

    async def set_spend_limit(self, tenant: str, cents: int) -> None:
        self._limits[tenant] = cents

    async def delete_spend_limit(self, tenant: str) -> bool:
        return self._limits.pop(tenant, None) is not None
