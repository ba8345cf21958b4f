"""The ledger in Redis, shared by every replica (standalone, Sentinel, Cluster). Keys are
the tenant's (hash tag `{tenant}`, see stores.redis_keys), so a batch's writes for one
tenant and every read land on one slot:

    tb:{<tenant>}:use:<width>:<start>     a bucket (hash): <user>:<model>:<metric> → count
                                          (kept 25 h, 9 days, 401 days for 1m, 1h, 1d)
    tb:{<tenant>}:spend:d:<YYYY-MM-DD>    the day's spend (hash): user → nano-USD (2 days)
    tb:{<tenant>}:spend:m:<YYYY-MM>       the month's (hash): user → nano-USD, and `*`,
                                          the tenant's total (63 days)
    tb:{<tenant>}:spend_limit             the tenant's hard monthly limit, cents (durable)

User ids and models are percent-encoded in fields (as in keys), so `:` separates them.
Writes are plain commands (HINCRBY, EXPIRE) queued on the pipeline that carries the
batch's budget usage (calls.store_redis): no script to reload after a restart, no round
trip of their own, and the HINCRBY replies are the new spends. Durable as Redis is
(AOF): what a SIGKILL of a replica loses is its last batch not yet written (at most one
scheduler tick of usage, or one minute of call time). Not idempotent: a batch whose
write timed out is sent again (its usage pending again), so one that still reaches Redis
after the timeout (a frozen path that comes back) is counted twice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from service.errors import StoreUnavailable
from service.stores import redis_keys
from service.stores.redis_client import RedisConnection, awaitable
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
_part = redis_keys.quote_part


def bucket_key(tenant: str, width: str, start: int) -> str:
    return f"{redis_keys.tenant_tag(tenant)}:use:{width}:{start}"


def day_key(tenant: str, day: str) -> str:
    return f"{redis_keys.tenant_tag(tenant)}:spend:d:{day}"


def month_key(tenant: str, month: str) -> str:
    return f"{redis_keys.tenant_tag(tenant)}:spend:m:{month}"


def limit_key(tenant: str) -> str:
    return f"{redis_keys.tenant_tag(tenant)}:spend_limit"


def field(user_id: str, model: str, metric: str) -> str:
    return f"{_part(user_id)}:{_part(model)}:{metric}"


@dataclass(frozen=True, slots=True)
class QueuedWrites:
    """A batch's writes queued on a pipeline: how many replies they take (in order), and
    how to read the spends out of those replies."""

    count: int
    read: Callable[[list[Any]], Written]


def queue_writes(pipe: Any, entries: Sequence[LedgerEntry], now: float) -> QueuedWrites:
    """Queue one batch's writes on `pipe` (a redis-py pipeline), after whatever it holds."""
    day, month = utc_day(now), utc_month(now)
    # Reply positions: per (tenant, user) the day and month HINCRBY; per tenant the
    # total's HINCRBY and the limit's GET.
    users: dict[tuple[str, str], tuple[int, int]] = {}
    tenants: dict[str, tuple[int, int]] = {}
    count = 0

    def queue(call: Callable[..., Any], *args: Any) -> int:
        nonlocal count
        call(*args)
        count += 1
        return count - 1

    by_tenant: dict[str, list[LedgerEntry]] = {}
    for e in merged(entries):
        by_tenant.setdefault(e.tenant, []).append(e)
    for tenant, rows in by_tenant.items():
        keys = {width: bucket_key(tenant, width, bucket_start(now, width)) for width in WIDTHS}
        spent: dict[str, int] = {}
        for e in rows:
            for width, key in keys.items():
                for metric, n in metrics_of(e, with_cost=width == "1d").items():
                    queue(pipe.hincrby, key, field(e.user_id, e.model, metric), n)
            spent[e.user_id] = spent.get(e.user_id, 0) + e.nano
        dkey, mkey = day_key(tenant, day), month_key(tenant, month)
        for user, nano in spent.items():
            users[(tenant, user)] = (
                queue(pipe.hincrby, dkey, _part(user), nano),
                queue(pipe.hincrby, mkey, _part(user), nano),
            )
        tenants[tenant] = (
            queue(pipe.hincrby, mkey, TENANT_TOTAL, sum(spent.values())),
            queue(pipe.get, limit_key(tenant)),
        )
        for width, key in keys.items():
            queue(pipe.expire, key, RETENTION[width])
        queue(pipe.expire, dkey, DAY_SPEND_TTL)
        queue(pipe.expire, mkey, MONTH_SPEND_TTL)

    def read(replies: list[Any]) -> Written:
        if len(replies) != count:
            raise StoreUnavailable("redis ledger: unexpected replies")
        written: Written = {}
        for (tenant, user), (d, m) in users.items():
            total, limit = tenants[tenant]
            written[(tenant, user)] = Spend(
                int(replies[d]), int(replies[m]), int(replies[total]), _cents(replies[limit])
            )
        return written

    return QueuedWrites(count, read)


def _cents(reply: Any) -> int | None:
    try:
        return None if reply is None else int(reply)
    except ValueError:
        return None


class RedisLedger:
    """The ledger's reads and the spend limit, on the replica's shared connection."""

    def __init__(self, connection: RedisConnection) -> None:
        self.connection = connection
        self._client = connection.client

    async def spend(self, tenant: str, user_id: str, now: float) -> Spend:
        async def run() -> list[Any]:
            pipe = self._client.pipeline(transaction=False)
            pipe.hget(day_key(tenant, utc_day(now)), _part(user_id))
            pipe.hmget(month_key(tenant, utc_month(now)), [_part(user_id), TENANT_TOTAL])
            pipe.get(limit_key(tenant))
            return list(await pipe.execute())

        day, (month, total), limit = await self.connection.call("ledger_spend", run)
        try:
            return Spend(int(day or 0), int(month or 0), int(total or 0), _cents(limit))
        except ValueError as exc:
            raise StoreUnavailable("redis ledger_spend: unreadable spend") from exc

    async def buckets(self, tenant: str, width: Width, starts: Sequence[int]) -> list[BucketData]:
        if not starts:
            return []

        async def run() -> list[Any]:
            pipe = self._client.pipeline(transaction=False)
            for start in starts:
                pipe.hgetall(bucket_key(tenant, width, start))
            return list(await pipe.execute())

        replies = await self.connection.call("ledger_buckets", run)
        return [_bucket(reply) for reply in replies]

    async def spend_limit(self, tenant: str) -> int | None:
        reply = await self.connection.call(
            "ledger_limit", lambda: awaitable(self._client.get(limit_key(tenant)))
        )
        return _cents(reply)

    async def set_spend_limit(self, tenant: str, cents: int) -> None:
        await self.connection.call(
            "ledger_limit_set", lambda: awaitable(self._client.set(limit_key(tenant), cents))
        )

    async def delete_spend_limit(self, tenant: str) -> bool:
        deleted = await self.connection.call(
            "ledger_limit_delete", lambda: awaitable(self._client.delete(limit_key(tenant)))
        )
        return int(deleted) > 0


def _bucket(reply: dict[str, str]) -> BucketData:
    bucket: BucketData = {}
    for name, value in reply.items():
        user, _, rest = name.partition(":")
        model, _, metric = rest.partition(":")
        try:
            n = int(value)
        except ValueError:
            continue
        row = bucket.setdefault((unquote(user), unquote(model)), {})
        row[metric] = row.get(metric, 0) + n
    return bucket
