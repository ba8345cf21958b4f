"""Where call control keeps its state: the `CallStore` protocol.

Three things, each shared by every replica on Redis:

- **Leases**: "this user has a call in progress", counted against `max_concurrent_calls`.
  A lease is taken before the call is placed and lasts until the call is known to be
  over (released then), bounded by the call's deadline: nobody renews it.
- **Supervision records** (`model.Supervision`): per call the tenant, user, policy
  snapshot, start and deadline, with an owner (the replica supervising it) and the
  owner's heartbeat. Owners renew their heartbeats in one batch per interval; a record
  whose heartbeat lapsed is an orphan, and `claim_orphans` hands it to the caller,
  atomically, so at most one replica adopts it.
- **Events**: revocations and admin hangups, published by the replica that received them
  and delivered to every replica within a second (`listen`).

- **Usage**: each user's metered tokens and seconds per UTC day (the token and minute
  budgets), and the ledger (service.usage.ledger), written in the same batches.

Implementations: `store_memory.MemoryCallStore` (dev, single process: nothing to adopt)
and `store_redis.RedisCallStore`; one contract suite (tests/calls/test_store_contract.py)
runs over memory, standalone Redis and a Redis Cluster.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from service.calls.model import SupervisedCall, Supervision, Usage
from service.logs import Throttled
from service.usage.ledger import Ledger, Written
from service.usage.model import LedgerEntry

EventHandler = Callable[[dict[str, Any]], None]
# Called by `listen` each time it (re)connects: events sent while it was away are lost,
# so the caller checks what they would have told it.
Reconnected = Callable[[], Awaitable[None]]
# How long a user's usage of a day is kept after its last update, by every store: the
# day's budget is checked until the day is over, and a call may run past midnight.
USAGE_TTL_SECONDS = 2 * 86400


class EventDelivery:
    """What a `listen` loop does with each message it receives, so that no message ends
    the loop: one that is not JSON, or not a JSON object, is skipped, and so is one whose
    handler raised. Pub/sub carries whatever anyone with access to Redis publishes, and a
    listener that ended would leave its replica deaf to revocations and hangups. Each
    kind of skip is logged at warning at most every 30 s, with a count of those held back.
    """

    def __init__(self, logger: logging.Logger) -> None:
        self._skipped = Throttled(logger, interval=30.0)

    def deliver(self, message: str, handler: EventHandler) -> None:
        """Hand the message to `handler`, unless it is skipped."""
        try:
            event = json.loads(message)
        except (ValueError, RecursionError):  # RecursionError: nesting too deep
            self._skipped.warning(
                "event_unreadable", "call events: a message that is not JSON skipped"
            )
            return
        if not isinstance(event, dict):
            self._skipped.warning(
                "event_not_object", "call events: a message that is not a JSON object skipped"
            )
            return
        try:
            handler(event)
        except Exception as exc:
            kind = event.get("type")
            self._skipped.warning(
                "event_failed",
                "call events: a %s event failed (%s); skipped",
                kind[:64] if isinstance(kind, str) else "untyped",
                type(exc).__name__,
            )


@dataclass(frozen=True, slots=True)
class UsageDelta:
    tenant: str
    user_id: str
    day: str
    tokens: int
    seconds: float


@dataclass(frozen=True, slots=True)
class Metered:
    """What a usage batch wrote: each delta's new day totals (in order), and the spend of
    each user the ledger entries named (service.usage.ledger.Written)."""

    usage: list[Usage]
    spend: Written


class CallStore(Protocol):
    # --- leases ----------------------------------------------------------------------

    async def acquire(
        self, tenant: str, user_id: str, call_id: str, max_concurrent: int | None, ttl: float
    ) -> bool:
        """Take a lease for `call_id`, lasting `ttl` seconds, unless the user already holds
        `max_concurrent` live leases (None: no bound). Lapsed leases are dropped first,
        atomically. Acquiring a lease the user already holds extends it."""
        ...

    async def release(self, tenant: str, user_id: str, call_id: str) -> None: ...

    async def user_calls(self, tenant: str, user_id: str) -> list[str]:
        """The user's live leases (call ids)."""
        ...

    # --- usage -----------------------------------------------------------------------

    async def add_usage(self, deltas: Sequence[UsageDelta]) -> list[Usage]:
        """Add each delta to its user's usage of its day (UTC, YYYY-MM-DD), in one batch;
        the new totals, in order."""
        ...

    async def usage(self, tenant: str, user_id: str, day: str) -> Usage: ...

    async def meter(
        self, deltas: Sequence[UsageDelta], entries: Sequence[LedgerEntry], now: float
    ) -> Metered:
        """`add_usage` and the ledger's `entries` (usage and spend, service.usage) in one
        batch: one round trip on Redis (per node on a Cluster)."""
        ...

    @property
    def ledger(self) -> Ledger:
        """The usage ledger beside the calls (the admin usage API, budgets, spend limit)."""
        ...

    # --- supervision -----------------------------------------------------------------

    async def supervise(self, record: Supervision, owner: str, ttl: float) -> None:
        """Create (or overwrite) the record, owned by `owner` for `ttl` seconds."""
        ...

    async def heartbeat(
        self, tenant: str, owner: str, call_ids: Sequence[str], ttl: float
    ) -> list[str]:
        """Renew `owner`'s heartbeat on these calls; the ones it no longer owns (adopted
        by another replica, or forgotten) are returned."""
        ...

    async def claim_orphans(
        self, tenant: str, owner: str, ttl: float, limit: int
    ) -> list[Supervision]:
        """Take over up to `limit` records whose heartbeat lapsed (or that were handed
        over); each is claimed by one caller only. Unreadable records are dropped."""
        ...

    async def hand_over(self, tenant: str, owner: str, call_ids: Sequence[str]) -> None:
        """Release `owner`'s records so that any replica may claim them at once."""
        ...

    async def forget(self, tenant: str, call_id: str) -> None:
        """The call is over: drop its record."""
        ...

    async def record(self, tenant: str, call_id: str) -> Supervision | None: ...

    async def supervised(
        self, tenant: str, *, limit: int, after: str | None
    ) -> tuple[list[SupervisedCall], bool]:
        """The tenant's records ordered by call id, after `after`; whether more follow."""
        ...

    # --- events ----------------------------------------------------------------------

    async def publish(self, event: dict[str, Any], *, to: str | None = None) -> None:
        """Deliver `event` (JSON) to every replica's `listen`, this one's included; or,
        with `to`, only to the replica whose inbox that is."""
        ...

    async def listen(self, handler: EventHandler, reconnected: Reconnected, inbox: str) -> None:
        """Deliver published events, and those sent to `inbox`, to `handler` until
        cancelled, reconnecting on failure (and calling `reconnected` after each
        connection is made). No message ends it: what is not a JSON object, or makes
        `handler` raise, is skipped (`EventDelivery`)."""
        ...

    async def claim_relay(self, tenant: str, call_id: str, relay: str, ttl: float) -> bool:
        """Take (or renew) the call's one relay slot for `relay`; False when another
        relay holds it."""
        ...

    async def release_relay(self, tenant: str, call_id: str, relay: str) -> None: ...

    @property
    def shared(self) -> bool:
        """Whether other replicas see this state (and can adopt this replica's calls)."""
        ...

    async def close(self) -> None: ...
