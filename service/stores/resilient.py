"""Failure modes around the shared store (RATE_LIMIT_FAILURE_MODE, README "Configuration").

`FailureAwareStore` wraps the Redis store with a circuit breaker and a local fallback:

    closed ──N consecutive failures──▶ open ──reset_seconds──▶ half-open (one trial call)
       ▲                                                         │ success      │ failure
       └─────────────────────────────────────────────────────────┘              ▼ open again

While Redis cannot answer (a failure, or the breaker open), `admit` follows the tenant's
mode: `closed` raises StoreUnavailable (the web layer answers 503
rate_limiter_unavailable); `open` decides with a local in-process GCRA (one per replica,
so the bound is per replica), marks the Admission degraded and reports every such
decision through `on_degraded` and a log line. A degraded decision knows no admin-set
role, but it knows revocations: the store keeps its own copy of each tenant's revoked
users (`revoked_users`, loaded at start and every revocation backstop by call control,
told of each revocation as it is published, `note_revoked`, and updated by every answer
the primary gives about revocations), so a user revoked before the outage stays
refused through it. Recovery needs nothing: the first successful call closes the
breaker.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Literal, TypeVar

from service.clock import Clock
from service.errors import StoreUnavailable
from service.logs import Throttled
from service.redact import user_hash
from service.stores.base import Admission, AdmitRequest, Store, UserRecord
from service.stores.memory import MemoryStore

logger = logging.getLogger(__name__)

T = TypeVar("T")
FailureMode = Literal["closed", "open"]


class CircuitBreaker:
    """Counts consecutive failures; while open, `allows()` is False and costs nothing.
    After `reset_seconds` one trial call is let through (half-open); others still fail
    fast until it reports back, so a recovering Redis is not hit by every request."""

    def __init__(self, *, clock: Clock, failures: int, reset_seconds: float) -> None:
        self._clock = clock
        self._threshold = failures
        self._reset = reset_seconds
        self._failures = 0
        self._open_until: float | None = None
        self._trial = False

    @property
    def is_open(self) -> bool:
        return self._open_until is not None

    def allows(self) -> bool:
        if self._open_until is None:
            return True
        if self._trial or self._clock() < self._open_until:
            return False
        self._trial = True
        return True

    def succeeded(self) -> None:
        if self._open_until is not None:
            logger.info("redis reachable again: circuit breaker closed")
        self._failures = 0
        self._open_until = None
        self._trial = False

    def abandoned(self) -> None:
        """The call ended without an answer either way (cancelled): allow a new trial."""
        self._trial = False

    def failed(self) -> None:
        self._failures += 1
        if self._trial or self._failures >= self._threshold:
            if self._open_until is None:
                logger.warning("redis unreachable: circuit breaker open")
            self._open_until = self._clock() + self._reset
            self._trial = False


class FailureAwareStore:
    """A Store that survives its primary (Redis) going away; see the module docstring.

    `failure_modes`: tenant id → "closed" | "open" (a tenant missing here is closed).
    `on_degraded(tenant, reason)`: called for every decision made without the primary,
    reason "unavailable" (the call failed) or "circuit_open" (not even tried); the hook
    for the metric.
    """

    def __init__(
        self,
        primary: Store,
        *,
        failure_modes: Mapping[str, FailureMode],
        clock: Clock,
        breaker_failures: int = 3,
        breaker_reset_seconds: float = 2.0,
        on_degraded: Callable[[str, str], None] | None = None,
    ) -> None:
        self._primary = primary
        self._modes = dict(failure_modes)
        self._breaker = CircuitBreaker(
            clock=clock, failures=breaker_failures, reset_seconds=breaker_reset_seconds
        )
        self._local = MemoryStore(clock=clock, degraded=True)
        # Each tenant's revoked users as last known (the module docstring).
        self._revoked: dict[str, set[str]] = {}
        self._on_degraded = on_degraded
        self._warn = Throttled(logger, interval=10.0)

    @property
    def breaker_open(self) -> bool:
        return self._breaker.is_open

    def _failed(self, exc: StoreUnavailable) -> None:
        # Named, so that an operator looking at 503s finds Redis in the log at once; one
        # line per 10 s however many requests fail.
        self._warn.warning("redis", "redis unavailable: %s (see BROKER_REDIS_URL)", exc)
        self._breaker.failed()

    async def _guard(self, call: Callable[[], Awaitable[T]]) -> T:
        if not self._breaker.allows():
            raise StoreUnavailable("redis circuit breaker open")
        try:
            result = await call()
        except StoreUnavailable as exc:
            self._failed(exc)
            raise
        except BaseException:
            self._breaker.abandoned()
            raise
        self._breaker.succeeded()
        return result

    async def admit(self, request: AdmitRequest) -> Admission:
        if not self._breaker.allows():
            return await self._fallback(request, "circuit_open")
        try:
            admission = await self._primary.admit(request)
        except StoreUnavailable as exc:
            self._failed(exc)
            return await self._fallback(request, "unavailable")
        except BaseException:
            self._breaker.abandoned()
            raise
        self._breaker.succeeded()
        return admission

    async def _fallback(self, request: AdmitRequest, reason: str) -> Admission:
        if self._modes.get(request.tenant, "closed") == "closed":
            raise StoreUnavailable(f"rate limiter unavailable ({reason})")
        if request.user_id in self._revoked.get(request.tenant, ()):
            admission = Admission(
                allowed=False, revoked=True, role=request.claimed_role, degraded=True
            )
        else:
            admission = await self._local.admit(request)
        logger.warning(
            "rate limit decided without redis",
            extra={
                "tenant": request.tenant,
                "user": user_hash(request.tenant, request.user_id),
                "reason": reason,
                "allowed": admission.allowed,
            },
        )
        if self._on_degraded is not None:
            self._on_degraded(request.tenant, reason)
        return admission

    async def refund(self, request: AdmitRequest, admission: Admission) -> None:
        if admission.degraded:
            await self._local.refund(request, admission)
            return
        # A refund that cannot reach Redis is dropped: the capacity it held comes back
        # by itself within one emission interval, and failing the response is worse.
        try:
            await self._guard(lambda: self._primary.refund(request, admission))
        except StoreUnavailable as exc:
            logger.warning("refund dropped: %s", exc)

    async def get_user(self, tenant: str, user_id: str) -> UserRecord | None:
        return await self._guard(lambda: self._primary.get_user(tenant, user_id))

    async def revoked_among(self, tenant: str, user_ids: Sequence[str]) -> set[str]:
        revoked = await self._guard(lambda: self._primary.revoked_among(tenant, user_ids))
        # Added only: a restoration is learnt from `set_role` or the next `revoked_users`.
        self._revoked.setdefault(tenant, set()).update(revoked)
        return revoked

    async def revoked_users(self, tenant: str) -> set[str]:
        known = self._revoked.setdefault(tenant, set())
        before = set(known)
        revoked = await self._guard(lambda: self._primary.revoked_users(tenant))
        # Revocations noted while the answer was on its way are newer than it: kept.
        self._revoked[tenant] = revoked | (known - before)
        return revoked

    def note_revoked(self, tenant: str, user_id: str) -> None:
        """A revocation published by a replica (call control's events)."""
        self._revoked.setdefault(tenant, set()).add(user_id)

    async def list_users(
        self, tenant: str, *, after: str | None, limit: int
    ) -> tuple[list[UserRecord], bool]:
        return await self._guard(lambda: self._primary.list_users(tenant, after=after, limit=limit))

    async def set_role(self, tenant: str, user_id: str, role: str) -> UserRecord | None:
        record = await self._guard(lambda: self._primary.set_role(tenant, user_id, role))
        if record is not None:
            self._revoked.get(tenant, set()).discard(user_id)
        return record

    async def revoke(self, tenant: str, user_id: str) -> UserRecord | None:
        record = await self._guard(lambda: self._primary.revoke(tenant, user_id))
        if record is not None:
            self.note_revoked(tenant, user_id)
        return record

    async def tenant_secret(self, tenant: str, name: str, candidate: str) -> str:
        # No local fallback: a secret made up by one replica would differ from the others'.
        return await self._guard(lambda: self._primary.tenant_secret(tenant, name, candidate))

    async def ping(self) -> bool:
        # Always asks the primary, breaker or not: /readyz must see real reachability,
        # and a successful ping closes the breaker without waiting for a trial.
        reachable = await self._primary.ping()
        if reachable:
            self._breaker.succeeded()
        return reachable

    async def close(self) -> None:
        await self._primary.close()
