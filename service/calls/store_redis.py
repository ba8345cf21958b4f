"""Call control's state in Redis, shared by every replica (standalone, Sentinel, Cluster).

Keys (hash-tagged like the rate-limit keys, see stores.redis_keys):

    tb:{<tenant>:<user>}:calls          the user's leases: sorted set call id -> expiry (µs)
    tb:{<tenant>:<user>}:usage:<day>    the user's metered usage of a UTC day (hash, 2 days)
    tb:{<tenant>}:sup                   supervision records: hash call id -> JSON
    tb:{<tenant>}:sup:own               their owners: hash call id -> replica id ("": none)
    tb:{<tenant>}:sup:beat              heartbeats: sorted set call id -> expiry (µs)
    tb:{<tenant>}:sup:ids               the same ids, score 0, for paging by id
    tb:{<tenant>}:relay:<call id>       the call's relay (which replica), with a TTL
    tb:events                           pub/sub channel: revocations, admin hangups, relays
    tb:inbox:<replica>                  pub/sub channel: messages to one replica (relays)

The concurrency decision is one script on the user's set (stores/lua/calls_acquire.lua):
lapsed leases are pruned and the bound checked atomically, so replicas racing for the
same user never admit more than `max_concurrent` calls. A tenant's supervision keys share
one slot, so each supervision step is one script there (stores/lua/sup_*.lua): finding
orphans needs no cross-slot command, on a Cluster too. Heartbeats and record times are on
Redis's own clock, the one clock every replica shares.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from service.calls.model import SupervisedCall, Supervision, Usage
from service.calls.store import (
    USAGE_TTL_SECONDS,
    EventDelivery,
    EventHandler,
    Metered,
    Reconnected,
    UsageDelta,
)
from service.clock import Clock
from service.errors import StoreUnavailable
from service.logs import Throttled
from service.stores import redis_keys
from service.stores.redis_client import RedisConnection, awaitable, load_script
from service.usage.ledger_redis import RedisLedger, queue_writes
from service.usage.model import LedgerEntry

logger = logging.getLogger(__name__)

T = TypeVar("T")
CHANNEL = "tb:events"
INBOX = "tb:inbox:"
# Pub/sub reconnects: first after RECONNECT_MIN seconds, doubling to RECONNECT_MAX.
RECONNECT_MIN, RECONNECT_MAX = 0.1, 5.0


def lease_key(tenant: str, user_id: str) -> str:
    return f"{redis_keys.user_tag(tenant, user_id)}:calls"


def usage_key(tenant: str, user_id: str, day: str) -> str:
    return f"{redis_keys.user_tag(tenant, user_id)}:usage:{day}"


def relay_key(tenant: str, call_id: str) -> str:
    return f"{redis_keys.tenant_tag(tenant)}:relay:{call_id}"


def supervision_keys(tenant: str) -> list[str]:
    tag = redis_keys.tenant_tag(tenant)
    return [f"{tag}:sup", f"{tag}:sup:own", f"{tag}:sup:beat", f"{tag}:sup:ids"]


class RedisCallStore:
    """A CallStore on Redis, on a `RedisConnection` it may share with the rate-limit store
    (stores.redis_client): the connection brings the client, the deadline, the bound on
    calls in flight and the test clock (lease tests only; production decides lease expiry
    on Redis's own clock); the store its keys and scripts. It closes the connection only
    when it made it (`from_url`)."""

    def __init__(self, connection: RedisConnection, *, owns_connection: bool = False) -> None:
        self.connection = connection
        self._owns_connection = owns_connection
        self._client = connection.client
        self._scripts = {
            name: load_script(name, with_gcra=False)
            for name in (
                "calls_acquire",
                "sup_put",
                "sup_beat",
                "sup_claim",
                "sup_release",
                "sup_forget",
                "sup_list",
                "relay_claim",
                "relay_release",
            )
        }
        self._listen_failures = Throttled(logger, interval=30.0)
        self._events = EventDelivery(logger)
        self._ledger = RedisLedger(connection)

    @property
    def ledger(self) -> RedisLedger:
        return self._ledger

    @classmethod
    def from_url(
        cls, url: str, *, timeout_ms: int = 250, clock: Clock | None = None
    ) -> RedisCallStore:
        """A store on a connection of its own (see `RedisConnection.from_url`), closed
        with it. Connects lazily."""
        connection = RedisConnection.from_url(url, timeout_ms=timeout_ms, clock=clock)
        return cls(connection, owns_connection=True)

    @property
    def shared(self) -> bool:
        return True

    async def _call(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        return await self.connection.call(what, call)

    async def _script(self, name: str, keys: Sequence[str], args: Sequence[str | int]) -> Any:
        return await self.connection.run(self._scripts[name], keys, args)

    # --- leases ----------------------------------------------------------------------

    async def acquire(
        self, tenant: str, user_id: str, call_id: str, max_concurrent: int | None, ttl: float
    ) -> bool:
        now = self.connection.script_now()
        bound = -1 if max_concurrent is None else max_concurrent
        reply = await self._script(
            "calls_acquire", [lease_key(tenant, user_id)], [call_id, bound, repr(ttl * 1e6), now]
        )
        return int(reply[0]) == 1

    async def release(self, tenant: str, user_id: str, call_id: str) -> None:
        lease = lease_key(tenant, user_id)
        await self._call("calls_release", lambda: self._client.zrem(lease, call_id))

    async def user_calls(self, tenant: str, user_id: str) -> list[str]:
        now = await self.connection.now_us()
        found: Any = await self._call(
            "calls_user",
            lambda: self._client.zrangebyscore(lease_key(tenant, user_id), now, "+inf"),
        )
        return sorted(str(call_id) for call_id in found)

    # --- usage -----------------------------------------------------------------------

    async def add_usage(self, deltas: Sequence[UsageDelta]) -> list[Usage]:
        return (await self.meter(deltas, (), 0.0)).usage

    async def meter(
        self, deltas: Sequence[UsageDelta], entries: Sequence[LedgerEntry], now: float
    ) -> Metered:
        if not deltas and not entries:
            return Metered([], {})

        async def run() -> Metered:
            # One round trip for the batch (per node on a Cluster): plain commands, so a
            # restarted server needs no script reloaded mid-pipeline. The ledger's
            # writes ride on it (service.usage.ledger_redis).
            pipe = self._client.pipeline(transaction=False)
            for d in deltas:
                key = usage_key(d.tenant, d.user_id, d.day)
                pipe.hincrby(key, "tokens", d.tokens)
                pipe.hincrbyfloat(key, "seconds", float(d.seconds))
                pipe.expire(key, USAGE_TTL_SECONDS)
            ledger = queue_writes(pipe, entries, now)
            replies = list(await pipe.execute())
            split = len(replies) - ledger.count
            usage = [
                Usage(tokens=int(replies[i]), seconds=float(replies[i + 1]))
                for i in range(0, split, 3)
            ]
            return Metered(usage, ledger.read(replies[split:]))

        return await self._call("calls_usage", run)

    async def usage(self, tenant: str, user_id: str, day: str) -> Usage:
        fields: Any = await self._call(
            "calls_usage_get",
            lambda: awaitable(self._client.hgetall(usage_key(tenant, user_id, day))),
        )
        try:
            return Usage(int(fields.get("tokens", 0)), float(fields.get("seconds", 0.0)))
        except ValueError as exc:
            raise StoreUnavailable("redis calls_usage_get: unreadable usage") from exc

    # --- supervision -----------------------------------------------------------------

    async def supervise(self, record: Supervision, owner: str, ttl: float) -> None:
        args: list[str | int] = [record.call_id, record.encode(), owner, int(ttl * 1e6)]
        await self._script("sup_put", supervision_keys(record.tenant), args)

    async def heartbeat(
        self, tenant: str, owner: str, call_ids: Sequence[str], ttl: float
    ) -> list[str]:
        if not call_ids:
            return []
        args: list[str | int] = [owner, int(ttl * 1e6), *call_ids]
        lost = await self._script("sup_beat", supervision_keys(tenant), args)
        return [str(call_id) for call_id in lost]

    async def claim_orphans(
        self, tenant: str, owner: str, ttl: float, limit: int
    ) -> list[Supervision]:
        reply = await self._script(
            "sup_claim", supervision_keys(tenant), [owner, int(ttl * 1e6), limit]
        )
        claimed = []
        for i in range(0, len(reply), 2):
            try:
                claimed.append(Supervision.decode(reply[i + 1]))
            except (ValueError, KeyError, TypeError):
                logger.warning("call %s: unreadable supervision record dropped", reply[i])
                await self.forget(tenant, str(reply[i]))
        return claimed

    async def hand_over(self, tenant: str, owner: str, call_ids: Sequence[str]) -> None:
        if call_ids:
            await self._script("sup_release", supervision_keys(tenant), [owner, *call_ids])

    async def forget(self, tenant: str, call_id: str) -> None:
        await self._script("sup_forget", supervision_keys(tenant), [call_id])

    async def record(self, tenant: str, call_id: str) -> Supervision | None:
        key = supervision_keys(tenant)[0]
        text: Any = await self._call("sup_get", lambda: awaitable(self._client.hget(key, call_id)))
        try:
            return None if text is None else Supervision.decode(text)
        except (ValueError, KeyError, TypeError):
            return None

    async def supervised(
        self, tenant: str, *, limit: int, after: str | None
    ) -> tuple[list[SupervisedCall], bool]:
        start = "-" if after is None else "(" + after
        rows = await self._script("sup_list", supervision_keys(tenant), [start, limit + 1])
        page = []
        for i in range(0, len(rows), 4):
            try:
                record = Supervision.decode(rows[i + 1])
            except (ValueError, KeyError, TypeError):
                continue
            page.append(SupervisedCall(record, str(rows[i + 2]), float(rows[i + 3]) / 1e6))
        more = len(rows) // 4 > limit
        return page[:limit], more

    # --- events ----------------------------------------------------------------------

    async def publish(self, event: dict[str, Any], *, to: str | None = None) -> None:
        message = json.dumps(event, separators=(",", ":"))
        channel = CHANNEL if to is None else INBOX + to
        # execute_command: redis-py 5.x's async RedisCluster has no `publish` method.
        await self._call(
            "publish", lambda: self._client.execute_command("PUBLISH", channel, message)
        )

    async def claim_relay(self, tenant: str, call_id: str, relay: str, ttl: float) -> bool:
        key = relay_key(tenant, call_id)
        reply = await self._script("relay_claim", [key], [relay, int(ttl * 1000)])
        return int(reply) == 1

    async def release_relay(self, tenant: str, call_id: str, relay: str) -> None:
        await self._script("relay_release", [relay_key(tenant, call_id)], [relay])

    async def listen(self, handler: EventHandler, reconnected: Reconnected, inbox: str) -> None:
        delay, attempt = RECONNECT_MIN, 0
        while True:
            subscriber = self.connection.subscriber()
            try:
                await subscriber.subscribe([CHANNEL, INBOX + inbox], attempt)
                delay = RECONNECT_MIN
                await reconnected()
                async for message in subscriber.messages():
                    self._events.deliver(message, handler)
            except StoreUnavailable as exc:
                self._listen_failures.warning("events", "call events: %s; reconnecting", exc)
            finally:
                await subscriber.close()
            attempt += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX)

    async def close(self) -> None:
        if self._owns_connection:
            await self.connection.close()
