"""The store interface: rate-limit state and durable user records.

One `admit` call decides everything a request needs from shared state, in one
round trip on standalone Redis: whether the user is revoked, the user's effective
role (an admin-set role overrides the token's claim), every limit of that role and
of the tenant (all or nothing), and the user's directory record (created when the
user is first seen). It also keeps each tenant's generated secrets (`tenant_secret`).
Implementations: `memory.MemoryStore` (dev and single process) and `redis.RedisStore`
(production). One contract suite (tests/stores/test_contract.py) runs over both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from service.limits import Limit, Outcome

ROLES = ("owner", "reader")


@dataclass(frozen=True, slots=True)
class UserProfile:
    """What the token says about a user; fills the directory record on first sight."""

    name: str | None = None
    email: str | None = None


@dataclass(frozen=True, slots=True)
class AdmitRequest:
    tenant: str
    user_id: str
    # The role from the token (or the policy's default role); an admin-set role wins.
    claimed_role: str
    # Per-user limits by role; the effective role's entry applies. A role missing here
    # gets `claimed_role`'s entry.
    user_limits: Mapping[str, tuple[Limit, ...]]
    tenant_limits: tuple[Limit, ...] = ()
    profile: UserProfile = field(default_factory=UserProfile)
    # Bucket namespace, so that other endpoints (vector stores) can have their own limits.
    scope: str = "mint"
    cost: int = 1


@dataclass(frozen=True, slots=True)
class Admission:
    allowed: bool
    revoked: bool
    role: str
    # The outcomes of every limit evaluated (user's first, then tenant's).
    outcomes: tuple[Outcome, ...] = ()
    # True when the decision was made without the shared store (failure mode `open`).
    degraded: bool = False

    @property
    def retry_after(self) -> float:
        return max((o.retry_after for o in self.outcomes if not o.allowed), default=0.0)


@dataclass(frozen=True, slots=True)
class UserRecord:
    tenant: str
    id: str
    name: str | None
    email: str | None
    added_at: int
    # Role set by an admin; None means "from the token, else the policy default".
    role: str | None = None
    revoked: bool = False
    # The role the user's token last claimed (normalized to the policy's roles).
    claimed_role: str | None = None


class Store(Protocol):
    async def admit(self, request: AdmitRequest) -> Admission:
        """Decide a request. Consumes from every limit only when all admit, and never
        when the user is revoked. Raises StoreUnavailable when the backend cannot answer."""
        ...

    async def refund(self, request: AdmitRequest, admission: Admission) -> None:
        """Give back what `admit` consumed, when no secret was delivered."""
        ...

    async def get_user(self, tenant: str, user_id: str) -> UserRecord | None:
        """The record, revoked or not; None when the user was never seen."""
        ...

    async def revoked_among(self, tenant: str, user_ids: Sequence[str]) -> set[str]:
        """Which of these users are revoked, in one round trip (call supervision)."""
        ...

    async def revoked_users(self, tenant: str) -> set[str]:
        """Every revoked user of the tenant, in one round trip: what a replica keeps
        locally so that revocations hold while the store is down (stores.resilient)."""
        ...

    async def list_users(
        self, tenant: str, *, after: str | None, limit: int
    ) -> tuple[list[UserRecord], bool]:
        """Non-revoked records ordered by id, strictly after `after`; and has_more."""
        ...

    async def set_role(self, tenant: str, user_id: str, role: str) -> UserRecord | None:
        """Set the admin role and clear any revocation. None when the user is unknown."""
        ...

    async def revoke(self, tenant: str, user_id: str) -> UserRecord | None:
        """Revoke durably. None when the user is unknown."""
        ...

    async def tenant_secret(self, tenant: str, name: str, candidate: str) -> str:
        """The tenant's secret `name` (the key of its user_hash), kept durably: the value
        stored first, `candidate` when there was none. Atomic, so replicas that start
        together all get the same one. Raises StoreUnavailable."""
        ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...
