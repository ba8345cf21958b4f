"""Where call leases and usage live: the `CallStore` protocol.

A lease says "this user has a call in progress". Leases expire unless renewed, so the
calls of a replica that died stop counting after at most one TTL. Implementations:
`store_memory.MemoryCallStore` (dev, single process) and `store_redis.RedisCallStore`;
one contract suite (tests/calls/test_store_contract.py) runs over both.
"""

from __future__ import annotations

from typing import Protocol

from service.calls.model import ActiveCall, Usage


class CallStore(Protocol):
    async def acquire(
        self, tenant: str, user_id: str, call_id: str, max_concurrent: int | None, ttl: float
    ) -> bool:
        """Take a lease for `call_id` unless the user already holds `max_concurrent`
        live leases (None: no bound). Expired leases are dropped first, atomically.
        Acquiring a lease the user already holds renews it."""
        ...

    async def renew(self, tenant: str, user_id: str, call_id: str, ttl: float) -> bool:
        """Push the lease's expiry to now + ttl; False when it had already lapsed."""
        ...

    async def release(self, tenant: str, user_id: str, call_id: str) -> None: ...

    async def user_calls(self, tenant: str, user_id: str) -> list[str]:
        """The user's live call ids."""
        ...

    async def active(self, tenant: str) -> list[ActiveCall]:
        """Every live lease of the tenant, ordered by expiry."""
        ...

    async def add_usage(
        self, tenant: str, user_id: str, tokens: int, seconds: float, day: str
    ) -> Usage:
        """Add to the user's usage of `day` (UTC, YYYY-MM-DD); the new total."""
        ...

    async def usage(self, tenant: str, user_id: str, day: str) -> Usage: ...

    async def close(self) -> None: ...
