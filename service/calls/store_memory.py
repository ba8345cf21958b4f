"""Call control's state in process memory: dev mode and single-process deployments (and
the reference the Redis store is tested against). One process, so nothing to adopt after
it stops; the records and events still work, for the same code path in both."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from typing import Any

from service.calls.model import SupervisedCall, Supervision, Usage
from service.calls.store import (
    USAGE_TTL_SECONDS,
    EventDelivery,
    EventHandler,
    Metered,
    Reconnected,
    UsageDelta,
)
from service.clock import Clock, system_clock
from service.usage.ledger_memory import MemoryLedger
from service.usage.model import LedgerEntry

logger = logging.getLogger(__name__)


class MemoryCallStore:
    def __init__(self, *, clock: Clock = system_clock) -> None:
        self._clock = clock
        # (tenant, user) -> {call_id: expires_at}
        self._leases: dict[tuple[str, str], dict[str, float]] = {}
        # (tenant, user, day) -> (usage, kept until), oldest update first. Kept as Redis
        # keeps a usage key: USAGE_TTL_SECONDS after its last update.
        self._usage: dict[tuple[str, str, str], tuple[Usage, float]] = {}
        # tenant -> call_id -> [record, owner, heartbeat expiry]
        self._records: dict[str, dict[str, list[Any]]] = {}
        # Events travel as JSON text, as over Redis: listeners never share the
        # publisher's objects, and read them through the same checks.
        self._listeners: list[tuple[str, asyncio.Queue[str]]] = []
        self._events = EventDelivery(logger)
        # (tenant, call_id) -> (relay, expires_at)
        self._relays: dict[tuple[str, str], tuple[str, float]] = {}
        self._ledger = MemoryLedger(clock=clock)

    @property
    def ledger(self) -> MemoryLedger:
        return self._ledger

    async def meter(
        self, deltas: Sequence[UsageDelta], entries: Sequence[LedgerEntry], now: float
    ) -> Metered:
        return Metered(await self.add_usage(deltas), self._ledger.add(entries, now))

    @property
    def shared(self) -> bool:
        return False

    def _live(self, tenant: str, user_id: str) -> dict[str, float]:
        now = self._clock()
        leases = self._leases.setdefault((tenant, user_id), {})
        for call_id in [c for c, expiry in leases.items() if expiry <= now]:
            del leases[call_id]
        return leases

    async def acquire(
        self, tenant: str, user_id: str, call_id: str, max_concurrent: int | None, ttl: float
    ) -> bool:
        leases = self._live(tenant, user_id)
        if call_id not in leases and max_concurrent is not None and len(leases) >= max_concurrent:
            return False
        leases[call_id] = self._clock() + ttl
        return True

    async def release(self, tenant: str, user_id: str, call_id: str) -> None:
        self._leases.get((tenant, user_id), {}).pop(call_id, None)

    async def user_calls(self, tenant: str, user_id: str) -> list[str]:
        return sorted(self._live(tenant, user_id))

    async def add_usage(self, deltas: Sequence[UsageDelta]) -> list[Usage]:
        now = self._clock()
        self._drop_old_usage(now)
        totals = []
        for d in deltas:
            key = (d.tenant, d.user_id, d.day)
            old, _ = self._usage.pop(key, (Usage(), 0.0))
            new = Usage(tokens=old.tokens + d.tokens, seconds=old.seconds + d.seconds)
            # Re-inserted, so that the dict stays ordered by last update.
            self._usage[key] = (new, now + USAGE_TTL_SECONDS)
            totals.append(new)
        return totals

    async def usage(self, tenant: str, user_id: str, day: str) -> Usage:
        usage, kept_until = self._usage.get((tenant, user_id, day), (Usage(), 0.0))
        return usage if kept_until > self._clock() else Usage()

    def _drop_old_usage(self, now: float) -> None:
        expired = []
        for key, (_, kept_until) in self._usage.items():
            if kept_until > now:
                break
            expired.append(key)
        for key in expired:
            del self._usage[key]

    async def supervise(self, record: Supervision, owner: str, ttl: float) -> None:
        records = self._records.setdefault(record.tenant, {})
        records[record.call_id] = [record, owner, self._clock() + ttl]

    async def heartbeat(
        self, tenant: str, owner: str, call_ids: Sequence[str], ttl: float
    ) -> list[str]:
        records, lost = self._records.get(tenant, {}), []
        for call_id in call_ids:
            entry = records.get(call_id)
            if entry is None or entry[1] != owner:
                lost.append(call_id)
            else:
                entry[2] = self._clock() + ttl
        return lost

    async def claim_orphans(
        self, tenant: str, owner: str, ttl: float, limit: int
    ) -> list[Supervision]:
        now, claimed = self._clock(), list[Supervision]()
        for entry in sorted(self._records.get(tenant, {}).values(), key=lambda e: e[2]):
            if len(claimed) >= limit or entry[2] > now:
                break
            entry[1], entry[2] = owner, now + ttl
            claimed.append(entry[0])
        return claimed

    async def hand_over(self, tenant: str, owner: str, call_ids: Sequence[str]) -> None:
        records = self._records.get(tenant, {})
        for call_id in call_ids:
            entry = records.get(call_id)
            if entry is not None and entry[1] == owner:
                entry[1], entry[2] = "", 0.0

    async def forget(self, tenant: str, call_id: str) -> None:
        self._records.get(tenant, {}).pop(call_id, None)

    async def record(self, tenant: str, call_id: str) -> Supervision | None:
        entry = self._records.get(tenant, {}).get(call_id)
        return None if entry is None else entry[0]

    async def supervised(
        self, tenant: str, *, limit: int, after: str | None
    ) -> tuple[list[SupervisedCall], bool]:
        records = self._records.get(tenant, {})
        ids = sorted(c for c in records if after is None or c > after)
        page = [SupervisedCall(*records[c]) for c in ids[:limit]]
        return page, len(ids) > limit

    async def publish(self, event: dict[str, Any], *, to: str | None = None) -> None:
        message = json.dumps(event, separators=(",", ":"))
        for inbox, listener in self._listeners:
            if to is None or to == inbox:
                listener.put_nowait(message)

    async def listen(self, handler: EventHandler, reconnected: Reconnected, inbox: str) -> None:
        entry: tuple[str, asyncio.Queue[str]] = (inbox, asyncio.Queue())
        self._listeners.append(entry)
        try:
            await reconnected()
            while True:
                self._events.deliver(await entry[1].get(), handler)
        finally:
            self._listeners.remove(entry)

    async def claim_relay(self, tenant: str, call_id: str, relay: str, ttl: float) -> bool:
        holder = self._relays.get((tenant, call_id))
        if holder is not None and holder[0] != relay and holder[1] > self._clock():
            return False
        self._relays[(tenant, call_id)] = (relay, self._clock() + ttl)
        return True

    async def release_relay(self, tenant: str, call_id: str, relay: str) -> None:
        holder = self._relays.get((tenant, call_id))
        if holder is not None and holder[0] == relay:
            del self._relays[(tenant, call_id)]

    async def close(self) -> None:
        return None
