"""The Redis store: the shared state of every broker replica (README "Rate limits").

`admit` is one EVALSHA of stores/lua/admit.lua on standalone Redis and Sentinel: the
script checks revocation, finds the effective role, creates the record on first sight
and decides every bucket, all or nothing, on Redis's own clock. On Redis Cluster the
tenant-wide buckets live in another slot than the user's; a request with tenant limits
then takes two calls, user slot first, and gives back the first call's consumption when
the second refuses or fails (docs/redis.md explains the cost and why nothing leaks).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from service.clock import Clock
from service.errors import StoreUnavailable
from service.limits import Limit, Outcome
from service.stores import redis_keys as keys
from service.stores import redis_replies as replies
from service.stores.base import Admission, AdmitRequest, UserRecord
from service.stores.redis_client import LuaScript, RedisConnection, load_script

logger = logging.getLogger(__name__)
T = TypeVar("T")

# list_users reads ids in batches this much larger than the page, since revoked users
# are in the index but not in the answer.
_LIST_BATCH_EXTRA = 16
# The admission script's limit plan travels as one argument, its fields joined by this.
PLAN_SEPARATOR = "\x1f"
# Plans are per tenant and scope; a bound keeps a policy reload loop from growing the cache.
_MAX_PLANS = 256


@dataclass(frozen=True, slots=True)
class _Plan:
    user_limits: list[Limit]
    tenant_limits: list[Limit]
    encoded: str


class RedisStore:
    """A Store on Redis (standalone, Sentinel or Cluster), on a `RedisConnection` it may
    share with the call store (stores.redis_client): the connection brings the client,
    the deadline, the bound on calls in flight and the test clock; the store its keys and
    scripts. It closes the connection only when it made it (`from_url`)."""

    def __init__(self, connection: RedisConnection, *, owns_connection: bool = False) -> None:
        self.connection = connection
        self._owns_connection = owns_connection
        self._client = connection.client
        self._cluster = connection.cluster
        self._scripts = replies.Scripts.load()
        self._tenant_secret = load_script("tenant_secret", with_gcra=False)
        self._plans: dict[object, _Plan] = {}

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        timeout_ms: int = 250,
        max_connections: int = 64,
        clock: Clock | None = None,
    ) -> RedisStore:
        """A store on a connection of its own (see `RedisConnection.from_url`), closed
        with it. Connects lazily."""
        connection = RedisConnection.from_url(
            url, timeout_ms=timeout_ms, max_connections=max_connections, clock=clock
        )
        return cls(connection, owns_connection=True)

    def _now(self) -> str:
        return self.connection.script_now()

    async def _call(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        return await self.connection.call(what, call)

    async def _run(self, script: LuaScript, ks: Sequence[str], args: Sequence[str | int]) -> Any:
        return await self.connection.run(script, ks, args)

    # --- admit and refund -------------------------------------------------------------

    def _plan(self, request: AdmitRequest) -> _Plan:
        """The limit plan of `admit`: the same for every request of a tenant and scope,
        so it is built (and encoded as one script argument) once and reused."""
        key = (tuple(request.user_limits.items()), request.tenant_limits)
        plan = self._plans.get(key)
        if plan is not None:
            return plan
        # Every role's user limits, deduplicated by text: the bucket of "5/minute" is
        # the same whichever role it comes from (as in MemoryStore).
        user_limits = list(
            {lim.text: lim for ls in request.user_limits.values() for lim in ls}.values()
        )
        numbers = {lim.text: i + 1 for i, lim in enumerate(user_limits)}
        tenant_limits = list(request.tenant_limits) if not self._cluster else []
        fields: list[str | int] = [
            len(user_limits),
            len(tenant_limits),
            *replies.bucket_args(user_limits + tenant_limits),
            len(request.user_limits),
        ]
        for role, limits in request.user_limits.items():
            if PLAN_SEPARATOR in role or not role:
                raise ValueError(f"role name {role!r} cannot be sent to the admission script")
            fields += [role, len(limits), *(numbers[lim.text] for lim in limits)]
        plan = _Plan(user_limits, tenant_limits, PLAN_SEPARATOR.join(map(str, fields)))
        if len(self._plans) >= _MAX_PLANS:
            self._plans.clear()
        self._plans[key] = plan
        return plan

    async def admit(self, request: AdmitRequest) -> Admission:
        t, uid = request.tenant, request.user_id
        plan = self._plan(request)
        user_limits, tenant_limits = plan.user_limits, plan.tenant_limits
        all_limits = user_limits + tenant_limits
        ks = [keys.record_key(t, uid)]
        ks += [keys.user_bucket_key(t, uid, request.scope, lim) for lim in user_limits]
        ks += [keys.tenant_bucket_key(t, request.scope, lim) for lim in tenant_limits]
        if not self._cluster:
            ks.append(keys.index_key(t))
        name, email = request.profile.name, request.profile.email
        args: list[str | int] = [
            self._now(),
            request.cost,
            uid,
            int(name is not None),
            name or "",
            int(email is not None),
            email or "",
            request.claimed_role,
            int(not self._cluster),
            plan.encoded,
        ]
        reply = await self._run(self._scripts.admit, ks, args)
        status, role, need_index = reply[0], reply[1], int(reply[2])
        if status == "revoked":
            return Admission(allowed=False, revoked=True, role=role)
        outcomes = replies.outcomes(reply[3:], all_limits)
        if not self._cluster:
            return Admission(
                allowed=status == "ok", revoked=False, role=role, outcomes=tuple(outcomes)
            )
        return await self._admit_tenant_slot(
            request, role, status == "ok", outcomes, need_index == 1
        )

    async def _admit_tenant_slot(
        self,
        request: AdmitRequest,
        role: str,
        user_ok: bool,
        outcomes: list[Outcome],
        need_index: bool,
    ) -> Admission:
        """Cluster only: the tenant's half of the decision, in the tenant's slot."""
        t, uid = request.tenant, request.user_id
        tenant_limits = list(request.tenant_limits)
        indexed = False
        if tenant_limits:
            ks = [keys.tenant_bucket_key(t, request.scope, lim) for lim in tenant_limits]
            if need_index:
                ks.append(keys.index_key(t))
            args: list[str | int] = [
                self._now(),
                request.cost,
                int(user_ok),  # a refused user still learns the tenant's outcomes
                len(tenant_limits),
                uid if need_index else "",
                *replies.bucket_args(tenant_limits),
            ]
            user_outcomes = list(outcomes)
            try:
                reply = await self._run(self._scripts.consume, ks, args)
            except StoreUnavailable:
                if user_ok:
                    await self._give_back(request, user_outcomes)
                raise
            indexed = need_index  # the script added the user to the index
            outcomes += replies.outcomes(reply[1:], tenant_limits)
            if user_ok and reply[0] != "ok":
                await self._give_back(request, user_outcomes)
                user_ok = False
        elif need_index:
            indexed = await self._index(t, uid)
        if indexed:
            # The index holds the user now; mark the record so later admits skip it.
            # A failure here only means the idempotent ZADD is repeated next time.
            try:
                await self._call(
                    "hset",
                    lambda: self._client.execute_command(
                        "HSET", keys.record_key(t, uid), "ix", "1"
                    ),
                )
            except StoreUnavailable as exc:
                logger.warning("user index mark failed: %s", exc)
        return Admission(allowed=user_ok, revoked=False, role=role, outcomes=tuple(outcomes))

    async def _index(self, tenant: str, user_id: str) -> bool:
        try:
            await self._call(
                "zadd",
                lambda: self._client.execute_command("ZADD", keys.index_key(tenant), 0, user_id),
            )
        except StoreUnavailable as exc:
            logger.warning("user index update failed: %s", exc)
            return False
        return True

    async def _give_back(self, request: AdmitRequest, outcomes: Sequence[Outcome]) -> None:
        """Compensate the user-slot consumption of a cluster admit that did not complete.
        If this fails too, the held capacity is one emission interval per user limit and
        comes back by itself as the bucket refills."""
        limits = [o.limit for o in outcomes]
        try:
            await self._refund_buckets(
                [
                    keys.user_bucket_key(request.tenant, request.user_id, request.scope, lim)
                    for lim in limits
                ],
                limits,
                request.cost,
            )
        except StoreUnavailable as exc:
            logger.warning("cluster admit compensation failed: %s", exc)

    async def refund(self, request: AdmitRequest, admission: Admission) -> None:
        if not admission.allowed:
            return
        t = request.tenant
        user_limits = request.user_limits.get(admission.role)
        if user_limits is None:
            user_limits = request.user_limits.get(request.claimed_role, ())
        user = [
            (keys.user_bucket_key(t, request.user_id, request.scope, lim), lim)
            for lim in user_limits
        ]
        tenant = [
            (keys.tenant_bucket_key(t, request.scope, lim), lim) for lim in request.tenant_limits
        ]
        groups = [user, tenant] if self._cluster else [user + tenant]
        for group in groups:
            if group:
                await self._refund_buckets(
                    [k for k, _ in group], [lim for _, lim in group], request.cost
                )

    async def _refund_buckets(self, ks: Sequence[str], limits: Sequence[Limit], cost: int) -> None:
        if not ks:
            return
        args: list[str | int] = [self._now(), cost, *(repr(lim.interval * 1e6) for lim in limits)]
        await self._run(self._scripts.refund, ks, args)

    # --- the user directory ----------------------------------------------------------

    async def get_user(self, tenant: str, user_id: str) -> UserRecord | None:
        fields = await self._call(
            "hgetall",
            lambda: self._client.execute_command("HGETALL", keys.record_key(tenant, user_id)),
        )
        return replies.record(
            tenant, dict(fields) if isinstance(fields, dict) else replies.pairs(fields)
        )

    async def list_users(
        self, tenant: str, *, after: str | None, limit: int
    ) -> tuple[list[UserRecord], bool]:
        page: list[UserRecord] = []
        cursor = after
        batch = limit + _LIST_BATCH_EXTRA
        while len(page) <= limit:
            start = "-" if cursor is None else "(" + cursor
            ids = await self._index_range(tenant, start, batch)
            if not ids:
                break
            for record in await self._records(tenant, ids):
                if record is not None and not record.revoked:
                    page.append(record)
            cursor = ids[-1]
            if len(ids) < batch:
                break
        return page[:limit], len(page) > limit

    async def _index_range(self, tenant: str, start: str, count: int) -> list[str]:
        async def fetch() -> list[str]:
            return list(
                await self._client.execute_command(
                    "ZRANGEBYLEX", keys.index_key(tenant), start, "+", "LIMIT", 0, count
                )
            )

        return await self._call("zrangebylex", fetch)

    async def revoked_among(self, tenant: str, user_ids: Sequence[str]) -> set[str]:
        if not user_ids:
            return set()

        async def fetch() -> list[Any]:
            # Not a transaction: on a Cluster the records live in different slots.
            pipe = self._client.pipeline(transaction=False)
            for uid in user_ids:
                pipe.hget(keys.record_key(tenant, uid), "revoked")
            return list(await pipe.execute())

        answers = await self._call("pipeline", fetch)
        return {uid for uid, flag in zip(user_ids, answers, strict=True) if flag == "1"}

    async def _records(self, tenant: str, ids: Sequence[str]) -> list[UserRecord | None]:
        async def fetch() -> list[Any]:
            pipe = self._client.pipeline()
            for uid in ids:
                pipe.hgetall(keys.record_key(tenant, uid))
            return list(await pipe.execute())

        answers = await self._call("pipeline", fetch)
        return [replies.record(tenant, dict(r)) for r in answers]

    async def set_role(self, tenant: str, user_id: str, role: str) -> UserRecord | None:
        return await self._update(tenant, user_id, "role", role)

    async def revoke(self, tenant: str, user_id: str) -> UserRecord | None:
        return await self._update(tenant, user_id, "revoke", "")

    async def revoked_users(self, tenant: str) -> set[str]:
        found = await self._call(
            "smembers",
            lambda: self._client.execute_command("SMEMBERS", keys.revoked_key(tenant)),
        )
        return {str(uid) for uid in found}

    async def _update(self, tenant: str, user_id: str, op: str, role: str) -> UserRecord | None:
        """One change of the record, and of the tenant's set of revoked users: in the same
        script on standalone Redis; on a Cluster (another slot) right after it."""
        ks = [keys.record_key(tenant, user_id)]
        if not self._cluster:
            ks.append(keys.revoked_key(tenant))
        reply = await self._run(self._scripts.update_user, ks, [op, role, user_id])
        if reply is None:
            return None
        if self._cluster:
            command = "SADD" if op == "revoke" else "SREM"
            await self._call(
                command.lower(),
                lambda: self._client.execute_command(command, keys.revoked_key(tenant), user_id),
            )
        return replies.record(tenant, replies.pairs(reply))

    # --- tenant secrets ----------------------------------------------------------------

    async def tenant_secret(self, tenant: str, name: str, candidate: str) -> str:
        # tb:{<tenant>}:secret:<name>, in the tenant's slot; durable, like the records.
        key = f"{keys.tenant_tag(tenant)}:secret:{name}"
        kept = await self._run(self._tenant_secret, [key], [candidate])
        return str(kept)

    # --- lifecycle ---------------------------------------------------------------------

    async def ping(self) -> bool:
        try:
            answer = await self._call("ping", lambda: self._client.execute_command("PING"))
        except StoreUnavailable:
            return False
        return bool(answer)

    async def close(self) -> None:
        if self._owns_connection:
            await self.connection.close()
