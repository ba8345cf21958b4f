"""Call leases and usage in process memory: dev mode and single-process deployments
(and the reference the Redis store is tested against)."""

from __future__ import annotations

from service.calls.model import ActiveCall, Usage
from service.clock import Clock, system_clock


class MemoryCallStore:
    def __init__(self, *, clock: Clock = system_clock) -> None:
        self._clock = clock
        # (tenant, user) -> {call_id: expires_at}
        self._leases: dict[tuple[str, str], dict[str, float]] = {}
        self._usage: dict[tuple[str, str, str], Usage] = {}

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

    async def renew(self, tenant: str, user_id: str, call_id: str, ttl: float) -> bool:
        leases = self._live(tenant, user_id)
        if call_id not in leases:
            return False
        leases[call_id] = self._clock() + ttl
        return True

    async def release(self, tenant: str, user_id: str, call_id: str) -> None:
        self._leases.get((tenant, user_id), {}).pop(call_id, None)

    async def user_calls(self, tenant: str, user_id: str) -> list[str]:
        return sorted(self._live(tenant, user_id))

    async def active(self, tenant: str) -> list[ActiveCall]:
        found = [
            ActiveCall(tenant=t, user_id=u, call_id=c, expires_at=expiry)
            for (t, u) in list(self._leases)
            if t == tenant
            for c, expiry in self._live(t, u).items()
        ]
        return sorted(found, key=lambda call: (call.expires_at, call.call_id))

    async def add_usage(
        self, tenant: str, user_id: str, tokens: int, seconds: float, day: str
    ) -> Usage:
        key = (tenant, user_id, day)
        old = self._usage.get(key, Usage())
        new = Usage(tokens=old.tokens + tokens, seconds=old.seconds + seconds)
        self._usage[key] = new
        return new

    async def usage(self, tenant: str, user_id: str, day: str) -> Usage:
        return self._usage.get((tenant, user_id, day), Usage())

    async def close(self) -> None:
        return None
