"""Whether this replica may act on its calls, tenant by tenant (pure).

A replica cut off from Redis but not from OpenAI keeps reading its sidebands, while its
leases lapse and another replica adopts its calls: two supervisors would then revert the
same change and hang up the same call. So a supervisor acts only on leases it knows are
its own:

    fresh   the tenant's heartbeats were renewed within the last lease TTL: nobody else
            can have claimed its calls (a record is claimed only once its lease lapsed)
    stale   not renewed for a whole TTL: another replica may supervise them now. The
            supervisor neither reverts nor hangs up: what it would have done is held back
            until a renewal tells it whose the calls are; then it is done (still its own)
            or dropped (adopted elsewhere: let go)

A renewal counts from when it was sent, before Redis set the lease's expiry on its own
clock, so "fresh" never outlasts the lease. A tenant this replica never wrote a lease for
is fresh (its first call's record makes it known). A tenant's supervision keys share one
Redis slot, so on a Cluster a tenant's leases are all fresh or all stale together.
`Leases` is that bookkeeping, one per replica; the controller does the I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from service.calls.state import Action
from service.calls.supervised import Held

# Actions held back per call while its leases are stale: a client that keeps overriding
# needs only the last reverts; older ones are dropped.
HELD_BACK_PER_CALL = 8


class Leases:
    """Per tenant, until when this replica's leases are known to be its own; and the
    actions held back meanwhile (the module docstring)."""

    __slots__ = ("_held_back", "_ttl", "_until")

    def __init__(self, ttl: float) -> None:
        self._ttl = ttl
        self._until: dict[str, float] = {}
        self._held_back: dict[Held, list[Action]] = {}

    def fresh(self, tenant: str, now: float) -> bool:
        return now < self._until.get(tenant, math.inf)

    def any_stale(self, now: float) -> bool:
        """Whether some tenant's leases are stale (then they are renewed every tick)."""
        return any(now >= until for until in self._until.values())

    def renewed(self, tenant: str, sent_at: float) -> None:
        """Every heartbeat of the tenant's calls, sent at `sent_at`, was renewed."""
        self._until[tenant] = sent_at + self._ttl

    def recorded(self, tenant: str, sent_at: float) -> None:
        """A lease was written (a record made, or claimed) at `sent_at`: the tenant is
        known from then on, if it was not."""
        self._until.setdefault(tenant, sent_at + self._ttl)

    def only(self, tenants: Iterable[str]) -> None:
        """The tenants this replica holds calls of; the others are forgotten."""
        kept = set(tenants)
        for tenant in [t for t in self._until if t not in kept]:
            del self._until[tenant]

    def hold_back(self, held: Held, action: Action) -> None:
        actions = self._held_back.setdefault(held, [])
        actions.append(action)
        del actions[:-HELD_BACK_PER_CALL]

    def let_go(self, held: Held) -> None:
        """The call is no longer this replica's: what was held back is dropped."""
        self._held_back.pop(held, None)

    def due(self, tenant: str) -> list[tuple[Held, Action]]:
        """What was held back for the tenant's calls, now that they are known to be this
        replica's (taken: each is returned once)."""
        calls = [h for h in self._held_back if h.record.tenant == tenant]
        return [(h, action) for h in calls for action in self._held_back.pop(h)]
