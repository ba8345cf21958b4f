"""Placing a call (POST /v1/realtime/calls): authenticate, admit, apply the policy,
check the budgets, take a concurrency lease, forward the offer, start supervising.

The browser gets an SDP answer and a call id, never a secret: the session is sent
upstream with the server key, and the broker holds the call from then on.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from service.calls.controller import CallController
from service.calls.model import (
    CallPolicy,
    Supervision,
    call_deadline,
    over_budget,
    seconds_to_midnight,
    utc_day,
)
from service.calls.sdp import audio_only
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
from service.redact import user_hash
from service.session.codec import decode_request, encode_upstream_request


@dataclass(frozen=True, slots=True)
class PlacedCall:
    call_id: str
    answer: str
    tenant: str
    user_id: str
    headers: dict[str, str]


async def place_call(
    broker: Broker,
    controller: CallController,
    authorization: Sequence[str],
    offer: str,
    session: dict[str, Any] | None,
) -> PlacedCall:
    identity = await broker.authenticate(authorization)
    tenant = broker.tenant(identity.tenant)
    requested = decode_request("client_secrets", {} if session is None else {"session": session})
    if requested.kind != "realtime":
        raise InvalidValue("Calls need a realtime session.", param="session.type")
    admit_request = broker.admit_request(identity)
    admission = await broker.admit(admit_request)
    store, user = controller.store, identity.user_id
    provisional = "pending_" + secrets.token_hex(8)
    try:
        effective, adjustments = apply_policy(tenant.policy, admission.role, requested)
        rules = tenant.policy.rules_for(admission.role)
        if rules.client_channel == "relay" and not audio_only(offer):
            # The browser's only channel to OpenAI must be media: its events go through
            # the broker's relay (GET /v1/realtime?call_id=...), where the policy holds.
            raise PolicyViolation(
                "This role's calls carry audio only: remove the data channel (and any "
                "other media) from the offer, and send events through the relay.",
                param="sdp",
            )
        _, body, dropped = encode_upstream_request(effective, "ga")
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
            reached = over_budget(rules, await store.usage(tenant.id, user, utc_day(now)))
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
    try:
        answer, call_id = await broker.upstreams[tenant.id].create_call(
            offer, body["session"], safety_identifier=user_hash(tenant.id, user)
        )
    except BrokerError:
        await _release(controller, tenant.id, user, provisional)
        await broker.refund(admit_request, admission)
        raise
    if rules.client_channel == "relay" and not audio_only(answer):
        # Upstream accepted more than audio: the policy would not hold on that call.
        with contextlib.suppress(BrokerError):
            await broker.upstreams[tenant.id].hangup_call(call_id)
        await _release(controller, tenant.id, user, provisional)
        await broker.refund(admit_request, admission)
        raise UpstreamError("The upstream answered with more than audio; the call was ended.")
    # The real id takes the lease's place: added before the provisional one goes, so
    # the count is briefly one too high (safe), never too low.
    try:
        await store.acquire(tenant.id, user, call_id, None, lease_ttl)
    except StoreUnavailable:
        # The provisional lease stays in its place until it lapses: the count is right.
        pass
    else:
        await _release(controller, tenant.id, user, provisional)
    record = Supervision(
        tenant=tenant.id,
        user_id=user,
        call_id=call_id,
        policy=CallPolicy.of(admission.role, rules, body["session"]),
        started_at=now,
        deadline=deadline,
    )
    await controller.supervise(tenant, record)
    headers = {"Cache-Control": "no-store", **rate_limit_headers(admission)}
    changed = tuple(dict.fromkeys([*adjustments, *dropped]))
    if changed:
        headers["X-Policy-Adjusted"] = ",".join(changed)
    return PlacedCall(call_id, answer, tenant.id, user, headers)


async def _release(controller: CallController, tenant: str, user_id: str, call_id: str) -> None:
    with contextlib.suppress(StoreUnavailable):
        # Otherwise it expires within one lease TTL.
        await controller.store.release(tenant, user_id, call_id)
