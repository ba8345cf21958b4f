"""The life of a held call on this replica: its phases and their transitions (pure).

    held      supervised here; nobody is ending it
    ending    the broker ends it for `reason`: a hangup is in flight, or due again at
              `retry_at` after upstream refused one
    ended     known to be over (hung up, or upstream said so): its last usage, lease and
              record are settled next
    released  nothing of it is held here any more: settled, or its record let go (handed
              over at a graceful stop, or adopted by another replica)

    end(reason)        held → ending          the first reason stays
    refused(now, tick) ending → ending        tried again at retry_at, backing off to 30 s
    held_back(now)     ending → ending        not tried (this replica's lease on the call is
                                              stale, service.calls.leases): due again at once
    ended()            held | ending → ended
    release()          any → released

`Lifecycle` is that state, one small object per call (thousands are held), pure, the way
`service.stores.resilient.CircuitBreaker` is a breaker's: transitions that do not apply
in the current phase do nothing, so callers need not check first. The controller
(service.calls.controller, and service.calls.ending for the hangups) reads `phase` and
does the I/O each transition asks for.
"""

from __future__ import annotations

import enum

# The longest wait between two rounds of a hangup upstream keeps refusing.
MAX_RETRY_SECONDS = 30.0
# Why calls end, as the metrics count them (anything else is counted as "other").
ENDED_UPSTREAM = "ended_upstream"
END_REASONS = frozenset(
    {
        ENDED_UPSTREAM,
        "admin",
        "budget_exhausted",
        "daily_minute_budget",
        "daily_token_budget",
        "max_call_seconds",
        "placement_cancelled",
        "session_update",
        "shutdown",
        "sideband_unavailable",
        "spend_limit_reached",
        "user_revoked",
    }
)


class Phase(enum.Enum):
    HELD = "held"
    ENDING = "ending"
    ENDED = "ended"
    RELEASED = "released"


class Lifecycle:
    """One held call's phase, why the broker ends it, and when a refused hangup is tried
    again (the module docstring has the transitions)."""

    __slots__ = ("_refusals", "phase", "reason", "retry_at")

    def __init__(self) -> None:
        self.phase = Phase.HELD
        # Why the broker ends it (None: it does not).
        self.reason: str | None = None
        self.retry_at = 0.0
        self._refusals = 0

    @property
    def holding(self) -> bool:
        """Supervised here and not known to be over: the sideband is read (or joined)."""
        return self.phase is Phase.HELD or self.phase is Phase.ENDING

    @property
    def end_reason(self) -> str:
        """Why it ended: the broker's reason, or upstream ended it."""
        return self.reason or ENDED_UPSTREAM

    def end(self, reason: str) -> bool:
        """The broker ends the call (held → ending). True while it is ending: a hangup
        may be attempted."""
        if self.phase is Phase.HELD:
            self.phase, self.reason = Phase.ENDING, reason
        return self.phase is Phase.ENDING

    def refused(self, now: float, tick: float) -> None:
        """Upstream refused the hangup: due again after a delay that doubles each round
        (from two ticks), up to MAX_RETRY_SECONDS."""
        if self.phase is Phase.ENDING:
            self._refusals += 1
            # The exponent is capped: 2.0**1023 and beyond overflow (hours of refusals).
            self.retry_at = now + min(MAX_RETRY_SECONDS, tick * 2.0 ** min(self._refusals, 16))

    def held_back(self, now: float) -> None:
        """The hangup was not attempted (the lease is stale): due again from `now`, every
        tick, until it may be."""
        if self.phase is Phase.ENDING:
            self.retry_at = now

    def retry_due(self, now: float) -> bool:
        return self.phase is Phase.ENDING and 0.0 < self.retry_at <= now

    def ended(self) -> bool:
        """The call is over (held or ending → ended). False if it was not held."""
        if not self.holding:
            return False
        self.phase = Phase.ENDED
        return True

    def release(self) -> None:
        """Nothing of the call is held here any more (any phase → released)."""
        self.phase = Phase.RELEASED
