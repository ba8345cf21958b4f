"""The in-memory store: dev mode, single-process deployments, the local fallback of
failure mode `open`, and the reference implementation the Redis store is tested against.

Every method runs without awaiting in between its reads and writes, so on one event
loop each call is atomic, which is what makes it exact under concurrency.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from service.clock import Clock, system_clock
from service.limits import Limit, Outcome, evaluate
from service.stores.base import Admission, AdmitRequest, UserRecord

# Buckets whose TAT is in the past are full again and carry no information; they are
# swept every this many admissions so memory stays bounded by the active users.
_SWEEP_EVERY = 10_000


def user_bucket(request: AdmitRequest, limit: Limit) -> tuple[str, ...]:
    return (request.tenant, "user", request.user_id, request.scope, limit.text)


def tenant_bucket(request: AdmitRequest, limit: Limit) -> tuple[str, ...]:
    return (request.tenant, "tenant", request.scope, limit.text)


class MemoryStore:
    """A real store kept in a dict. `degraded=True` marks its decisions as made without
    the shared store (used when it stands in for an unreachable Redis)."""

    def __init__(self, *, clock: Clock = system_clock, degraded: bool = False) -> None:
        self._clock = clock
        self._degraded = degraded
        self._tats: dict[tuple[str, ...], float] = {}
        self._users: dict[tuple[str, str], UserRecord] = {}
        self._secrets: dict[tuple[str, str], str] = {}
        self._admissions = 0

    def _limits_for(self, request: AdmitRequest, role: str) -> tuple[Limit, ...]:
        limits = request.user_limits.get(role)
        if limits is None:
            limits = request.user_limits.get(request.claimed_role, ())
        return limits

    async def admit(self, request: AdmitRequest) -> Admission:
        now = self._clock()
        key = (request.tenant, request.user_id)
        record = self._users.get(key)
        if record is not None and record.revoked:
            return Admission(allowed=False, revoked=True, role=record.role or request.claimed_role)
        role = record.role if record is not None and record.role else request.claimed_role
        if record is None:
            self._users[key] = UserRecord(
                tenant=request.tenant,
                id=request.user_id,
                name=request.profile.name,
                email=request.profile.email,
                added_at=int(now),
                claimed_role=request.claimed_role,
            )
        elif record.claimed_role != request.claimed_role:
            self._users[key] = replace(record, claimed_role=request.claimed_role)

        buckets: list[tuple[tuple[str, ...], Outcome]] = []
        for limit in self._limits_for(request, role):
            bucket = user_bucket(request, limit)
            buckets.append((bucket, evaluate(limit, self._tats.get(bucket), now, request.cost)))
        for limit in request.tenant_limits:
            bucket = tenant_bucket(request, limit)
            buckets.append((bucket, evaluate(limit, self._tats.get(bucket), now, request.cost)))
        outcomes = tuple(outcome for _, outcome in buckets)
        allowed = all(o.allowed for o in outcomes)
        if allowed:
            for bucket, outcome in buckets:
                self._tats[bucket] = outcome.new_tat
        self._maybe_sweep(now)
        return Admission(
            allowed=allowed, revoked=False, role=role, outcomes=outcomes, degraded=self._degraded
        )

    async def refund(self, request: AdmitRequest, admission: Admission) -> None:
        if not admission.allowed:
            return
        now = self._clock()
        user_limits = self._limits_for(request, admission.role)
        pairs = [(user_bucket(request, limit), limit) for limit in user_limits]
        pairs += [(tenant_bucket(request, limit), limit) for limit in request.tenant_limits]
        for bucket, limit in pairs:
            tat = self._tats.get(bucket)
            if tat is not None:
                self._tats[bucket] = max(now, tat - limit.interval * request.cost)

    def _maybe_sweep(self, now: float) -> None:
        self._admissions += 1
        if self._admissions % _SWEEP_EVERY:
            return
        for bucket in [b for b, tat in self._tats.items() if tat <= now]:
            del self._tats[bucket]

    async def get_user(self, tenant: str, user_id: str) -> UserRecord | None:
        return self._users.get((tenant, user_id))

    async def revoked_among(self, tenant: str, user_ids: Sequence[str]) -> set[str]:
        return {uid for uid in user_ids if (rec := self._users.get((tenant, uid))) and rec.revoked}

    async def revoked_users(self, tenant: str) -> set[str]:
        return {uid for (t, uid), rec in self._users.items() if t == tenant and rec.revoked}

    async def list_users(
        self, tenant: str, *, after: str | None, limit: int
    ) -> tuple[list[UserRecord], bool]:
        ids = sorted(
            uid for (t, uid), rec in self._users.items() if t == tenant and not rec.revoked
        )
        if after is not None:
            ids = [uid for uid in ids if uid > after]
        page = [self._users[(tenant, uid)] for uid in ids[:limit]]
        return page, len(ids) > limit

    async def set_role(self, tenant: str, user_id: str, role: str) -> UserRecord | None:
        record = self._users.get((tenant, user_id))
        if record is None:
            return None
        record = replace(record, role=role, revoked=False)
        self._users[(tenant, user_id)] = record
        return record

    async def revoke(self, tenant: str, user_id: str) -> UserRecord | None:
        record = self._users.get((tenant, user_id))
        if record is None:
            return None
        record = replace(record, revoked=True)
        self._users[(tenant, user_id)] = record
        return record

    async def tenant_secret(self, tenant: str, name: str, candidate: str) -> str:
        return self._secrets.setdefault((tenant, name), candidate)

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        return None
