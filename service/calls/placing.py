"""Placing a call (POST /v1/realtime/calls): admit, apply the policy, check the budgets
(tokens, minutes, money and the tenant's spend limit),
take a concurrency lease, forward the offer, start supervising. The caller comes in
authenticated: the web layer does that before it reads the offer.

The browser gets an SDP answer and a call id, never a secret: the session is sent
upstream with the server key, and the broker holds the call from then on. A GPT-Live
session (service.live.placing) is placed the same way: `admit_call` and
`PendingCall.commit` are the steps they share.

A placement that stops half-way (refused, failed, or cancelled: the server stopping, the
request gone) leaves nothing behind: the admission is refunded, the lease released, and
a call upstream already placed is ended (`CallController.abandon`). What it takes to
give them back runs shielded, so that the cancellation does not cut it short. Only a
cancellation inside upstream's create request itself may leave a call upstream that the
broker cannot end: its id was in the answer not read.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from service.auth.tokens import Identity
from service.calls.controller import CallController
from service.calls.model import (
    CallKind,
    CallPolicy,
    Supervision,
    Usage,
    call_deadline,
    over_budget,
    seconds_to_midnight,
    utc_day,
)
from service.calls.sdp import audio_only
from service.calls.state import with_reasoning
from service.config.settings import TenantSettings
from service.errors import (
    BrokerError,
    InvalidValue,
    PolicyViolation,
    RateLimited,
    RateLimiterUnavailable,
    ServiceUnavailable,
    StoreUnavailable,
    UpstreamError,
)
from service.mint.broker import Broker, rate_limit_headers
from service.policy.apply import apply_policy
from service.policy.model import RoleRules
from service.redact import user_hash
from service.session.codec import decode_request, encode_upstream_request
from service.stores.base import Admission, AdmitRequest
from service.usage.budgets import refusal
from service.usage.model import Spend

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PlacedCall:
    call_id: str
    answer: str
    tenant: str
    user_id: str
    headers: dict[str, str]


@dataclass(slots=True)
class PendingCall:
    """A call being placed: admitted, within its user's budgets, its concurrency lease held
    under a provisional id until upstream names the call."""

    broker: Broker
    controller: CallController
    tenant: TenantSettings
    user_id: str
    role: str
    rules: RoleRules
    admit_request: AdmitRequest
    admission: Admission
    provisional: str
    now: float
    deadline: float
    lease_ttl: float

    @property
    def safety_identifier(self) -> str:
        return user_hash(self.tenant.id, self.user_id)

    async def fail(self) -> None:
        """No call placed (upstream did not take it, or the placement was cancelled): the
        lease and the admission are given back, whatever cancels the caller meanwhile."""
        await asyncio.shield(
            _give_back(
                self.broker, self.controller, self.admit_request, self.admission, self.provisional
            )
        )

    async def abandon(self, call_id: str, kind: CallKind, policy: CallPolicy) -> None:
        """Upstream placed the call, but its caller will not get the answer: it is ended
        (its supervisor frees its lease once it is over), and the provisional lease and
        the admission are given back."""
        self.controller.abandon(self.tenant, self._record(call_id, kind, policy))
        await self.fail()

    def _record(self, call_id: str, kind: CallKind, policy: CallPolicy) -> Supervision:
        return Supervision(
            tenant=self.tenant.id,
            user_id=self.user_id,
            call_id=call_id,
            policy=policy,
            started_at=self.now,
            deadline=self.deadline,
            kind=kind,
        )

    async def commit(
        self, call_id: str, kind: CallKind, policy: CallPolicy, adjusted: Sequence[str]
    ) -> dict[str, str]:
        """Upstream placed the call: its lease under its real id, its supervision record,
        its supervisor; the response headers. Cancelled on the way, the call is ended."""
        store, tenant, user = self.controller.store, self.tenant.id, self.user_id
        try:
            # The real id takes the lease's place: added before the provisional one goes,
            # so the count is briefly one too high (safe), never too low.
            try:
                await store.acquire(tenant, user, call_id, None, self.lease_ttl)
            except StoreUnavailable:
                # The provisional lease stays in its place until it lapses: the count is
                # right.
                pass
            else:
                await _release(self.controller, tenant, user, self.provisional)
            await self.controller.supervise(self.tenant, self._record(call_id, kind, policy))
        except BaseException:
            await self.abandon(call_id, kind, policy)
            raise
        headers = {"Cache-Control": "no-store", **rate_limit_headers(self.admission)}
        if adjusted:
            headers["X-Policy-Adjusted"] = ",".join(dict.fromkeys(adjusted))
        return headers


async def admit_call(
    broker: Broker,
    controller: CallController,
    identity: Identity,
    decide: Callable[[str, RoleRules], T],
) -> tuple[PendingCall, T]:
    """Admit a call of `identity`'s user: rate limits, then `decide(role, rules)` (the
    policy applied to what was asked; it raises to refuse), room on this replica, the
    user's budgets and the concurrency lease. Nothing is sent upstream; on any refusal
    the admission is refunded (and, cancelled, the lease it may have taken released)."""
    tenant = broker.tenant(identity.tenant)
    admit_request = broker.admit_request(identity)
    admission = await broker.admit(admit_request)
    store, user = controller.store, identity.user_id
    provisional = "pending_" + secrets.token_hex(8)
    try:
        rules = tenant.policy.rules_for(admission.role)
        decided = decide(admission.role, rules)
        if not controller.has_room():
            raise ServiceUnavailable(
                "This broker holds as many calls as it can.", code="calls_unavailable"
            )
        now = controller.now()
        # The lease lasts until the call is known to be over, and no longer than it may
        # run (its deadline) plus one heartbeat, for its supervisor to see it end.
        deadline = call_deadline(now, rules.max_call_seconds)
        lease_ttl = deadline - now + controller.lease_ttl
        try:
            # The day's tokens and seconds, and the money (service.usage): read together,
            # and only what a budget or the tenant's spend limit can refuse (most roles
            # have none: then nothing is read).
            daily = rules.daily_token_budget is not None or rules.daily_minute_budget is not None
            money = broker.spend is not None and await broker.spend.needed(tenant.id, rules)
            usage: Usage | None = None
            spend: Spend | None = None
            if daily and money:
                usage, spend = await asyncio.gather(
                    store.usage(tenant.id, user, utc_day(now)),
                    store.ledger.spend(tenant.id, user, now),
                )
            elif daily:
                usage = await store.usage(tenant.id, user, utc_day(now))
            elif money:
                spend = await store.ledger.spend(tenant.id, user, now)
            refused = refusal(rules, spend, now) if spend is not None else None
            if refused is not None:
                raise refused
            reached = over_budget(rules, usage) if usage is not None else None
            if reached is not None:
                raise RateLimited(
                    f"The user's {reached.replace('_', ' ')} is spent for today.",
                    retry_after=seconds_to_midnight(now),
                    code="call_budget_exceeded",
                )
            # The lease is taken before the call exists (the id comes from upstream), so
            # that two racing requests cannot both pass the bound.
            if not await store.acquire(
                tenant.id, user, provisional, rules.max_concurrent_calls, lease_ttl
            ):
                raise RateLimited(
                    "Too many calls in progress for this user.",
                    retry_after=1,
                    code="concurrent_calls_exceeded",
                )
        except StoreUnavailable as exc:
            raise RateLimiterUnavailable() from exc
    except BrokerError:
        await broker.refund(admit_request, admission)
        raise
    except BaseException:
        # Cancelled (or a bug): the lease may have been taken as the cancellation came.
        await asyncio.shield(_give_back(broker, controller, admit_request, admission, provisional))
        raise
    pending = PendingCall(
        broker=broker,
        controller=controller,
        tenant=tenant,
        user_id=user,
        role=admission.role,
        rules=rules,
        admit_request=admit_request,
        admission=admission,
        provisional=provisional,
        now=now,
        deadline=deadline,
        lease_ttl=lease_ttl,
    )
    return pending, decided


async def place_call(
    broker: Broker,
    controller: CallController,
    identity: Identity,
    offer: str,
    session: dict[str, Any] | None,
) -> PlacedCall:
    requested = decode_request("client_secrets", {} if session is None else {"session": session})
    if requested.kind != "realtime":
        raise InvalidValue("Calls need a realtime session.", param="session.type")
    tenant = broker.tenant(identity.tenant)

    def decide(role: str, rules: RoleRules) -> tuple[dict[str, Any], list[str]]:
        effective, adjustments = apply_policy(tenant.policy, role, requested)
        if rules.client_channel == "relay" and not audio_only(offer):
            # The browser's only channel to OpenAI must be media: its events go through
            # the broker's relay (GET /v1/realtime?call_id=...), where the policy holds.
            raise PolicyViolation(
                "This role's calls carry audio only: remove the data channel (and any "
                "other media) from the offer, and send events through the relay.",
                param="sdp",
            )
        _, body, dropped = encode_upstream_request(effective, "ga")
        return body["session"], [*adjustments, *dropped]

    pending, (upstream_session, adjusted) = await admit_call(broker, controller, identity, decide)
    upstream = broker.openai_upstream(tenant.id)
    try:
        answer, call_id = await upstream.create_call(
            offer, upstream_session, safety_identifier=pending.safety_identifier
        )
    except BaseException:
        await pending.fail()
        raise
    policy = CallPolicy.of(pending.role, pending.rules, upstream_session)
    policy = replace(policy, pinned=with_reasoning(policy.pinned, pending.rules, upstream_session))
    if pending.rules.client_channel == "relay" and not audio_only(answer):
        # Upstream accepted more than audio: the policy would not hold on that call.
        try:
            with contextlib.suppress(BrokerError):
                await upstream.hangup_call(call_id)
        except BaseException:
            await pending.abandon(call_id, "realtime", policy)
            raise
        await pending.fail()
        raise UpstreamError("The upstream answered with more than audio; the call was ended.")
    headers = await pending.commit(call_id, "realtime", policy, adjusted)
    return PlacedCall(call_id, answer, tenant.id, identity.user_id, headers)


async def _give_back(
    broker: Broker,
    controller: CallController,
    request: AdmitRequest,
    admission: Admission,
    lease: str,
) -> None:
    """A call not placed: its lease released, its admission refunded."""
    await _release(controller, request.tenant, request.user_id, lease)
    await broker.refund(request, admission)


async def _release(controller: CallController, tenant: str, user_id: str, call_id: str) -> None:
    with contextlib.suppress(StoreUnavailable):
        # Otherwise it expires within one lease TTL.
        await controller.store.release(tenant, user_id, call_id)
