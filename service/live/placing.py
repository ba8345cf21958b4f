"""Placing a GPT-Live session (POST /v1/live/sessions, README "GPT-Live"): the steps of a
Realtime call (service.calls.placing: admit, the policy, budgets, lease, supervision),
with the Live create request upstream and the session supervised over its `/attach`
sideband, closed there with `session.close`. The caller comes in authenticated: the web
layer does that before it reads the body."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from service.auth.tokens import Identity
from service.calls.controller import CallController
from service.calls.model import CallPolicy
from service.calls.placing import admit_call
from service.live.request import apply_live_policy, parse_live_request
from service.mint.broker import Broker
from service.policy.model import RoleRules


@dataclass(frozen=True, slots=True)
class PlacedSession:
    session_id: str
    # Upstream's answer as OpenAI sends it: `{session: {id, ...}, transport: {type, sdp}}`.
    created: dict[str, Any]
    tenant: str
    user_id: str
    headers: dict[str, str]


async def place_live_session(
    broker: Broker,
    controller: CallController,
    identity: Identity,
    body: object,
) -> PlacedSession:
    request = parse_live_request(body)
    tenant = broker.tenant(identity.tenant)

    def decide(role: str, rules: RoleRules) -> tuple[dict[str, Any], list[str]]:
        return apply_live_policy(tenant.policy, role, request.session)

    pending, (session, adjusted) = await admit_call(broker, controller, identity, decide)
    upstream_body = {"session": session, "transport": {"type": "webrtc", "sdp": request.sdp}}
    try:
        created = await broker.openai_upstream(tenant.id).create_live_session(
            json.dumps(upstream_body, separators=(",", ":"), allow_nan=False).encode(),
            safety_identifier=pending.safety_identifier,
        )
        session_id = created["session"]["id"]
    except BaseException:
        # Refused, failed or cancelled: the lease and the admission are given back (a
        # commit cancelled below also ends the session).
        await pending.fail()
        raise
    # Nothing to pin: upstream keeps model, voice and instructions as created. The budgets
    # are the role's, fixed now, as for a Realtime call.
    model = session.get("model")
    policy = CallPolicy(
        role=pending.role,
        pinned={},
        on_session_update=pending.rules.on_session_update,
        daily_token_budget=pending.rules.daily_token_budget,
        daily_minute_budget=pending.rules.daily_minute_budget,
        # Its seconds are priced as this model's (service.usage).
        model=model if isinstance(model, str) else None,
        daily_usd_budget=pending.rules.daily_usd_budget,
        monthly_usd_budget=pending.rules.monthly_usd_budget,
    )
    headers = await pending.commit(session_id, "live", policy, adjusted)
    return PlacedSession(session_id, created, tenant.id, identity.user_id, headers)
