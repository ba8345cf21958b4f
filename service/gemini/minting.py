"""Minting a Gemini Live token (POST /v1alpha/auth_tokens, README "Gemini Live"): the
steps every mint shares (service.mint.broker: admission, the role's `mint` rule, refund,
headers, audit, metrics) around the policy applied to the setup, the token locked, and
Google's `auth_tokens` call. The caller comes in authenticated: the web layer does that
before it reads the body.

The Gemini tenants' clients live here, not in the `Broker` (whose upstreams are OpenAI's
API): `create_app` builds one `GeminiMinting` for the app.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from service.auth.tokens import Identity
from service.config.settings import TenantSettings
from service.errors import NotFound
from service.gemini.locking import lock_token
from service.gemini.policy import apply_setup_policy
from service.gemini.request import parse_token_request
from service.mint.broker import Broker, Issued, Minted
from service.session.strict_json import parse_json_object
from service.timing import PhaseTimer
from service.upstream.gemini import GeminiUpstream

ENDPOINT = "auth_tokens"
NOT_GEMINI = (
    "This tenant's upstream is OpenAI, which has no auth_tokens: mint with "
    "POST /v1/realtime/client_secrets."
)
NO_MINTS = "This role may not mint tokens: its policy says `mint: false`."


class GeminiMinting:
    """The mints of the tenants with UPSTREAM=gemini: `upstreams` are their clients, by
    tenant id; `broker` takes the steps every mint shares."""

    def __init__(self, broker: Broker, upstreams: Mapping[str, GeminiUpstream]) -> None:
        self.broker = broker
        self.upstreams = dict(upstreams)

    def upstream(self, identity: Identity) -> GeminiUpstream:
        """The client of the caller's tenant, which must be a Gemini one (404 otherwise)."""
        upstream = self.upstreams.get(identity.tenant)
        if upstream is None:
            raise NotFound(NOT_GEMINI)
        return upstream

    async def mint(
        self, upstream: GeminiUpstream, identity: Identity, raw: bytes, *, timer: PhaseTimer
    ) -> Minted:
        """The token of an authenticated caller, from the raw body it sent; `timer` has
        measured the authentication."""
        broker = self.broker
        with broker.counted(identity.tenant):
            request = parse_token_request(parse_json_object(raw, empty={}))

            async def issue(tenant: TenantSettings, role: str) -> Issued:
                rules = tenant.policy.rules_for(role)
                reject = tenant.policy.on_violation == "reject"
                setup, adjusted = apply_setup_policy(rules, request.setup, reject=reject)
                locked = lock_token(request, setup, rules, broker.clock())
                timer.mark("policy")
                answer = await upstream.create_auth_token(
                    json.dumps(locked.body, separators=(",", ":"), allow_nan=False).encode()
                )
                timer.mark("upstream")
                # Google answers the token's name; what it holds is what the broker locked.
                body = {"name": answer["name"], **locked.body}
                changed = tuple(dict.fromkeys([*adjusted, *locked.adjustments]))
                return Issued(body, locked.expire_time, changed)

            return await broker.grant(identity, ENDPOINT, issue, timer=timer, refused=NO_MINTS)
