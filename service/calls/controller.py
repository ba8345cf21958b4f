"""Holding calls: the sideband reader, the timers, the metering (README "Call control").

For each call this replica placed, one task joins the call's sideband and runs until the
call ends. On the event path (`CallState.on_text`, pure and measured by
bench/sideband.py) it compares each `session.updated` with the fields the policy pinned
and answers a change with a reverting `session.update` (or a hangup, when the role says
`on_session_update: "hangup"`), and counts `response.done` usage. A watcher beside it,
ticking on the injected clock, renews the lease (TTL/3), flushes usage to the store and
enforces the daily budgets, `max_call_seconds` and revocation. Everything slow (Redis,
upstream HTTP) stays off the event path.

Every task is tracked and bounded (`max_calls`); `aclose()` hangs up and cancels them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from service.calls.model import ActiveCall, Usage, drift, over_budget, revert_event, utc_day
from service.calls.sideband import SidebandConnection, SidebandConnector
from service.calls.store import CallStore
from service.clock import Clock, system_clock
from service.config.settings import TenantSettings
from service.errors import BrokerError, NotFound, ServiceUnavailable, StoreUnavailable
from service.policy.model import RoleRules
from service.redact import user_hash
from service.stores.base import Store
from service.upstream.base import Upstream

logger = logging.getLogger(__name__)
audit_logger = logging.getLogger("service.audit")

IsRevoked = Callable[[str, str], Awaitable[bool]]


def revocation_check(store: Store) -> IsRevoked:
    """`is_revoked` from the user directory, so that a revocation made on any replica
    ends this replica's calls within one renewal interval."""

    async def is_revoked(tenant: str, user_id: str) -> bool:
        record = await store.get_user(tenant, user_id)
        return record is not None and record.revoked

    return is_revoked


@dataclass(frozen=True, slots=True)
class CallSpec:
    tenant: TenantSettings
    user_id: str
    call_id: str
    rules: RoleRules
    # GA path -> the value the policy decided (model.pinned_fields).
    pinned: Mapping[tuple[str, ...], Any]


@dataclass(frozen=True, slots=True)
class Action:
    kind: Literal["revert", "hangup"]
    changed: tuple[str, ...]
    event: dict[str, Any] | None = None


class CallState:
    """The per-event logic of one held call: no I/O, so it can be timed alone."""

    def __init__(self, spec: CallSpec) -> None:
        self.spec = spec
        self.pending_tokens = 0

    def on_text(self, text: str) -> Action | None:
        try:
            event = json.loads(text)
        except ValueError:
            return None
        if not isinstance(event, dict):
            return None
        kind = event.get("type")
        if kind == "response.done":
            self.pending_tokens += _total_tokens(event)
            return None
        if kind not in ("session.updated", "session.created"):
            return None
        session = event.get("session")
        if not isinstance(session, dict):
            return None
        changed = drift(self.spec.pinned, session)
        if not changed:
            return None
        if self.spec.rules.on_session_update == "hangup":
            return Action("hangup", tuple(changed))
        return Action("revert", tuple(changed), revert_event(self.spec.pinned, changed))


def _total_tokens(event: Mapping[str, Any]) -> int:
    response = event.get("response")
    usage = response.get("usage") if isinstance(response, dict) else None
    total = usage.get("total_tokens") if isinstance(usage, dict) else None
    return total if isinstance(total, int) and total > 0 else 0


@dataclass(eq=False)
class _Held:
    spec: CallSpec
    state: CallState
    started_at: float
    flushed_at: float
    task: asyncio.Task[None] | None = None
    connection: SidebandConnection | None = None
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    hangup_reason: str | None = None


class CallController:
    """Holds this replica's calls. `tick` is how often (real seconds) the watcher looks
    at the clock; `lease_ttl` bounds how long a dead replica's calls keep counting."""

    def __init__(
        self,
        *,
        store: CallStore,
        connector: SidebandConnector,
        upstreams: Mapping[str, Upstream],
        clock: Clock = system_clock,
        is_revoked: IsRevoked | None = None,
        lease_ttl: float = 30.0,
        tick: float = 1.0,
        max_calls: int = 10_000,
    ) -> None:
        self.store = store
        self.lease_ttl = lease_ttl
        self._connector = connector
        self._upstreams = dict(upstreams)
        self._clock = clock
        self._is_revoked = is_revoked
        self._tick = tick
        self._max_calls = max_calls
        self._held: dict[tuple[str, str], _Held] = {}

    def now(self) -> float:
        return self._clock()

    def has_room(self) -> bool:
        return len(self._held) < self._max_calls

    def held(self, tenant: str) -> list[str]:
        """Call ids this replica holds for `tenant` (tests, diagnostics)."""
        return sorted(call_id for t, call_id in self._held if t == tenant)

    def hold(self, spec: CallSpec) -> None:
        """Start holding a placed call; returns at once. The lease must already be taken."""
        now = self._clock()
        held = _Held(spec, CallState(spec), started_at=now, flushed_at=now)
        self._held[(spec.tenant.id, spec.call_id)] = held
        held.task = asyncio.create_task(self._run(held), name=f"call {spec.call_id}")

    async def wait_ended(self, tenant: str, call_id: str) -> None:
        held = self._held.get((tenant, call_id))
        if held is not None and held.task is not None:
            await asyncio.shield(held.task)

    async def active(self, tenant: str) -> list[ActiveCall]:
        try:
            return await self.store.active(tenant)
        except StoreUnavailable as exc:
            raise ServiceUnavailable(
                "The call registry is unavailable.", code="store_unavailable"
            ) from exc

    async def hangup(self, tenant: TenantSettings, call_id: str, reason: str) -> None:
        """Hang up a call held by any replica: upstream ends it, its holder sees the end."""
        held = self._held.get((tenant.id, call_id))
        if held is not None:
            await self._end(held, reason)
            return
        await self._hangup_upstream(tenant.id, call_id)
        self._audit("call.hung_up", tenant.id, None, call_id, reason=reason)

    async def hangup_user(self, tenant: TenantSettings, user_id: str, reason: str) -> int:
        """Hang up the user's calls this replica holds (revocation); the number hung up.
        Other replicas' watchers see the revocation in the directory within one renewal
        interval (TTL/3), so this needs no call-store round trip."""
        held = [
            h
            for h in self._held.values()
            if (h.spec.tenant.id, h.spec.user_id) == (tenant.id, user_id)
        ]
        await asyncio.gather(*(self._end(h, reason) for h in held))
        return len(held)

    async def aclose(self) -> None:
        """Shutdown: hang up what we hold (an unwatched call would no longer be bound by
        the policy), then cancel and await every task."""
        held = list(self._held.values())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await asyncio.gather(*(self._end(h, "shutdown") for h in held))
        tasks = [h.task for h in held if h.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # --- one call --------------------------------------------------------------------

    async def _run(self, held: _Held) -> None:
        spec = held.spec
        try:
            try:
                held.connection = await self._connector.connect(spec.tenant, spec.call_id)
            except BrokerError:
                # Without a sideband the policy is not binding: fail closed.
                logger.warning("call %s: sideband unavailable, hanging up", spec.call_id)
                await self._end(held, "sideband_unavailable")
                return
            watcher = asyncio.create_task(self._watch(held))
            try:
                await self._read(held, held.connection)
            finally:
                watcher.cancel()
                await asyncio.gather(watcher, return_exceptions=True)
        finally:
            held.ended.set()
            if held.connection is not None:
                with contextlib.suppress(Exception):
                    await held.connection.close()
            await self._settle(held)
            self._held.pop((spec.tenant.id, spec.call_id), None)

    async def _read(self, held: _Held, connection: SidebandConnection) -> None:
        spec = held.spec
        while (text := await connection.recv()) is not None:
            action = held.state.on_text(text)
            if action is None:
                continue
            if action.kind == "revert" and action.event is not None:
                await connection.send(action.event)
                self._audit(
                    "call.session_reverted",
                    spec.tenant.id,
                    spec.user_id,
                    spec.call_id,
                    fields=list(action.changed),
                )
            else:
                await self._end(held, "session_update", fields=list(action.changed))
                return

    async def _watch(self, held: _Held) -> None:
        spec, rules = held.spec, held.spec.rules
        renew_at = self._clock() + self.lease_ttl / 3
        while True:
            await asyncio.sleep(self._tick)
            now = self._clock()
            limit = rules.max_call_seconds
            if limit is not None and now - held.started_at >= limit:
                await self._end(held, "max_call_seconds")
                return
            due = now >= renew_at
            try:
                if held.state.pending_tokens or due:
                    usage = await self._flush(held)
                    reached = over_budget(rules, usage)
                    if reached is not None:
                        await self._end(held, reached)
                        return
                if due:
                    renew_at = now + self.lease_ttl / 3
                    await self._renew(spec)
                    if self._is_revoked and await self._is_revoked(spec.tenant.id, spec.user_id):
                        await self._end(held, "user_revoked")
                        return
            except StoreUnavailable:
                # The call goes on; the lease and usage catch up at the next tick.
                logger.warning("call %s: store unavailable in the watcher", spec.call_id)

    async def _renew(self, spec: CallSpec) -> None:
        tenant, user, call_id = spec.tenant.id, spec.user_id, spec.call_id
        if not await self.store.renew(tenant, user, call_id, self.lease_ttl):
            # Lapsed (Redis was away longer than a TTL): the call is live, so it counts.
            await self.store.acquire(tenant, user, call_id, None, self.lease_ttl)

    async def _flush(self, held: _Held) -> Usage:
        spec, now = held.spec, self._clock()
        tokens, held.state.pending_tokens = held.state.pending_tokens, 0
        seconds, held.flushed_at = max(0.0, now - held.flushed_at), now
        try:
            return await self.store.add_usage(
                spec.tenant.id, spec.user_id, tokens, seconds, utc_day(now)
            )
        except StoreUnavailable:
            held.state.pending_tokens += tokens
            held.flushed_at -= seconds
            raise

    async def _settle(self, held: _Held) -> None:
        spec = held.spec
        try:
            await self._flush(held)
        except StoreUnavailable:
            logger.warning("call %s: final usage lost, store unavailable", spec.call_id)
        try:
            await self.store.release(spec.tenant.id, spec.user_id, spec.call_id)
        except StoreUnavailable:
            logger.warning("call %s: lease left to expire, store unavailable", spec.call_id)

    async def _end(self, held: _Held, reason: str, **detail: Any) -> None:
        if held.hangup_reason is not None or held.ended.is_set():
            return
        held.hangup_reason = reason
        spec = held.spec
        await self._hangup_upstream(spec.tenant.id, spec.call_id)
        self._audit(
            "call.hung_up", spec.tenant.id, spec.user_id, spec.call_id, reason=reason, **detail
        )
        if held.connection is not None:
            await held.connection.close()

    async def _hangup_upstream(self, tenant: str, call_id: str) -> None:
        try:
            await self._upstreams[tenant].hangup_call(call_id)
        except NotFound:
            return
        except BrokerError as exc:
            logger.warning("call %s: hangup failed (%s)", call_id, exc.code)

    def _audit(
        self, action: str, tenant: str, user_id: str | None, call_id: str, **detail: Any
    ) -> None:
        audit_logger.info(
            "call control",
            extra={
                "event": "audit",
                "action": action,
                "tenant": tenant,
                "target_user_hash": user_hash(tenant, user_id) if user_id else None,
                "call_id": call_id,
                "at": int(self._clock()),
                **detail,
            },
        )


@dataclass(frozen=True, slots=True)
class CallOptions:
    """The seams of call control for `create_app`: a store and a sideband connector
    replacing the configured ones, and the watcher's timing (tests shorten `tick`)."""

    store: CallStore | None = None
    connector: SidebandConnector | None = None
    lease_ttl: float = 30.0
    tick: float = 1.0
    max_calls: int = 10_000
