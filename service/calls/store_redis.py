"""Call leases and usage in Redis, shared by every replica.

Keys (hash-tagged like the rate-limit keys, see stores.redis_keys):

    tb:{<tenant>:<user>}:calls          the user's leases: sorted set call id -> expiry (µs)
    tb:{<tenant>:<user>}:usage:<day>    the user's metered usage of a UTC day (hash, 2 days)
    tb:{<tenant>}:calls                 tenant index: sorted set JSON [user, call] -> expiry

The concurrency decision is one script on the user's set (stores/lua/calls_acquire.lua):
lapsed leases are pruned and the bound checked atomically, so replicas racing for the
same user never admit more than `max_concurrent` calls. The tenant index lives in
another slot (Redis Cluster), so it is written by separate commands after the decision;
it is only read by the admin listing, which prunes it by expiry. Listing costs
O(log N + M) for N indexed leases of the tenant and M live ones, with one prune.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from service.calls.model import ActiveCall, Usage
from service.clock import Clock
from service.errors import StoreUnavailable
from service.stores import redis_keys
from service.stores.redis_client import (
    Client,
    create_client,
    guarded,
    load_script,
    run_script,
)
from service.stores.redis_url import parse_redis_url

T = TypeVar("T")
USAGE_TTL_SECONDS = 2 * 86400


def lease_key(tenant: str, user_id: str) -> str:
    return f"{redis_keys.user_tag(tenant, user_id)}:calls"


def usage_key(tenant: str, user_id: str, day: str) -> str:
    return f"{redis_keys.user_tag(tenant, user_id)}:usage:{day}"


def index_key(tenant: str) -> str:
    return f"{redis_keys.tenant_tag(tenant)}:calls"


class RedisCallStore:
    """A CallStore on Redis. `clock`: tests only (as in RedisStore); production decides
    lease expiry on Redis's own clock, the one clock every replica shares."""

    def __init__(
        self, client: Client, *, timeout_ms: int = 250, clock: Clock | None = None
    ) -> None:
        self._client = client
        self._timeout = timeout_ms / 1000
        self._clock = clock
        self._slots = asyncio.Semaphore(16)
        self._acquire = load_script("calls_acquire", with_gcra=False)
        self._usage = load_script("calls_usage", with_gcra=False)

    @classmethod
    def from_url(
        cls, url: str, *, timeout_ms: int = 250, clock: Clock | None = None
    ) -> RedisCallStore:
        client, _ = create_client(parse_redis_url(url), timeout_ms=timeout_ms, max_connections=16)
        return cls(client, timeout_ms=timeout_ms, clock=clock)

    async def _call(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        return await guarded(what, self._timeout, self._slots, call)

    async def _now_us(self) -> float:
        if self._clock is not None:
            return self._clock() * 1e6
        seconds, micros = await self._call("time", lambda: self._client.time())
        return float(seconds) * 1e6 + float(micros)

    async def _lease(
        self, tenant: str, user_id: str, call_id: str, max_concurrent: int, ttl: float, renew: bool
    ) -> float | None:
        now = "" if self._clock is None else repr(self._clock() * 1e6)
        args: Sequence[str | int] = [
            call_id, max_concurrent, repr(ttl * 1e6), now, "1" if renew else "0"
        ]  # fmt: skip
        reply: Any = await self._call(
            "calls_acquire",
            lambda: run_script(self._client, self._acquire, [lease_key(tenant, user_id)], args),
        )
        if int(reply[0]) != 1:
            return None
        return float(reply[1]) / 1e6

    async def acquire(
        self, tenant: str, user_id: str, call_id: str, max_concurrent: int | None, ttl: float
    ) -> bool:
        bound = -1 if max_concurrent is None else max_concurrent
        expiry = await self._lease(tenant, user_id, call_id, bound, ttl, renew=False)
        if expiry is None:
            return False
        await self._index(tenant, user_id, call_id, expiry)
        return True

    async def renew(self, tenant: str, user_id: str, call_id: str, ttl: float) -> bool:
        expiry = await self._lease(tenant, user_id, call_id, -1, ttl, renew=True)
        if expiry is None:
            return False
        await self._index(tenant, user_id, call_id, expiry)
        return True

    async def _index(self, tenant: str, user_id: str, call_id: str, expiry: float) -> None:
        member = json.dumps([user_id, call_id])
        await self._call(
            "calls_index", lambda: self._client.zadd(index_key(tenant), {member: expiry})
        )

    async def release(self, tenant: str, user_id: str, call_id: str) -> None:
        member = json.dumps([user_id, call_id])
        lease = lease_key(tenant, user_id)
        await self._call("calls_release", lambda: self._client.zrem(lease, call_id))
        await self._call("calls_unindex", lambda: self._client.zrem(index_key(tenant), member))

    async def user_calls(self, tenant: str, user_id: str) -> list[str]:
        now = await self._now_us()
        found: Any = await self._call(
            "calls_user",
            lambda: self._client.zrangebyscore(lease_key(tenant, user_id), now, "+inf"),
        )
        return sorted(str(call_id) for call_id in found)

    async def active(self, tenant: str) -> list[ActiveCall]:
        now_s = await self._now_us() / 1e6
        key = index_key(tenant)
        await self._call("calls_prune", lambda: self._client.zremrangebyscore(key, "-inf", now_s))
        rows: Any = await self._call(
            "calls_active",
            lambda: self._client.zrangebyscore(key, now_s, "+inf", withscores=True),
        )
        calls = []
        for member, expiry in rows:
            try:
                user_id, call_id = json.loads(member)
            except (ValueError, TypeError):
                continue
            calls.append(ActiveCall(tenant, str(user_id), str(call_id), float(expiry)))
        return calls

    async def add_usage(
        self, tenant: str, user_id: str, tokens: int, seconds: float, day: str
    ) -> Usage:
        args: Sequence[str | int] = [tokens, repr(float(seconds)), USAGE_TTL_SECONDS]
        keys = [usage_key(tenant, user_id, day)]
        reply: Any = await self._call(
            "calls_usage", lambda: run_script(self._client, self._usage, keys, args)
        )
        return Usage(tokens=int(reply[0]), seconds=float(reply[1]))

    async def usage(self, tenant: str, user_id: str, day: str) -> Usage:
        fields: Any = await self._call(
            "calls_usage_get", lambda: self._client.hgetall(usage_key(tenant, user_id, day))
        )
        try:
            return Usage(int(fields.get("tokens", 0)), float(fields.get("seconds", 0.0)))
        except ValueError as exc:
            raise StoreUnavailable("redis calls_usage_get: unreadable usage") from exc

    async def close(self) -> None:
        await self._client.aclose()
