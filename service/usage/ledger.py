"""The ledger's interface and shapes: usage per tenant, user, model and time bucket, the
money it is worth, and the tenant's spend limit (DESIGN 11).

Writes come from call control's usage batches (`CallStore.meter`): one batch's entries
are written together, in the round trip that already carries the batch's budget usage,
and the write answers with each user's spend and their tenant's (`Written`), so budgets
and the spend limit are enforced on the batch that crosses them. Reads serve the admin
API (`buckets`), refusals (`spend`) and the spend-limit endpoints.

Implementations: `ledger_memory.MemoryLedger` (dev, one process) and
`ledger_redis.RedisLedger`; one contract suite (tests/usage/test_ledger_contract.py).

What a bucket holds, per (user, model): the token kinds (service.usage.model), `requests`
(responses), `ms` (call time, milliseconds) and `$<kind>` (nano-USD, 1d buckets only: the
costs endpoint is daily).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from service.usage.model import LedgerEntry, Spend
from service.usage.periods import Width

REQUESTS = "requests"
MILLISECONDS = "ms"
COST = "$"
# (user, model) → metric → count
BucketData = dict[tuple[str, str], dict[str, int]]
# (tenant, user) → what they have spent, after a write
Written = dict[tuple[str, str], Spend]


class Ledger(Protocol):
    async def spend(self, tenant: str, user_id: str, now: float) -> Spend:
        """The user's spend this UTC day and month, the tenant's this month, the limit."""
        ...

    async def buckets(self, tenant: str, width: Width, starts: Sequence[int]) -> list[BucketData]:
        """The tenant's buckets of `width` starting at `starts` (epoch seconds), in order;
        an empty one for a bucket with nothing (or no longer kept)."""
        ...

    async def spend_limit(self, tenant: str) -> int | None:
        """The tenant's hard monthly limit in cents, or None."""
        ...

    async def set_spend_limit(self, tenant: str, cents: int) -> None: ...

    async def delete_spend_limit(self, tenant: str) -> bool:
        """Whether there was one."""
        ...


def merged(entries: Iterable[LedgerEntry]) -> list[LedgerEntry]:
    """Entries of one (tenant, user, model) summed: one batch writes each once."""
    by_key: dict[tuple[str, str, str], LedgerEntry] = {}
    for e in entries:
        key = (e.tenant, e.user_id, e.model)
        old = by_key.get(key)
        if old is None:
            by_key[key] = e
            continue
        by_key[key] = LedgerEntry(
            e.tenant,
            e.user_id,
            e.model,
            _sum(old.counts, e.counts),
            old.requests + e.requests,
            old.seconds + e.seconds,
            _sum(old.cost, e.cost),
        )
    return list(by_key.values())


def _sum(a: Mapping[str, int], b: Mapping[str, int]) -> dict[str, int]:
    out = dict(a)
    for k, v in b.items():
        out[k] = out.get(k, 0) + v
    return out


def metrics_of(entry: LedgerEntry, *, with_cost: bool) -> dict[str, int]:
    """What `entry` adds to a bucket (nonzero only)."""
    out = {kind: n for kind, n in entry.counts.items() if n}
    if entry.requests:
        out[REQUESTS] = entry.requests
    ms = round(entry.seconds * 1000)
    if ms:
        out[MILLISECONDS] = ms
    if with_cost:
        out.update({COST + kind: n for kind, n in entry.cost.items() if n})
    return out
