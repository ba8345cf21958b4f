"""Proxied upstream calls (vector stores): admit, check the role, forward with the server key.

The caller has already authenticated the user and validated the request (a malformed
request must cost neither a rate-limit token nor an upstream call). What is left is the
same for every proxied endpoint: count the request in buckets of its own `scope`, refuse
a role that may not use the endpoint, and pass the upstream's JSON back unchanged. A
request that delivered nothing (role refused, upstream failed) is refunded.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from service.auth.tokens import Identity
from service.errors import BrokerError, RoleForbidden
from service.limits import Limit
from service.mint.broker import Broker, rate_limit_headers
from service.policy.model import Policy
from service.redact import user_hash

logger = logging.getLogger("service.vector_stores.proxy")

VECTOR_STORES_SCOPE = "vector_stores"
VECTOR_STORES_PATH = "/vector_stores"
LIST_ROLES = frozenset({"owner", "reader"})
CREATE_ROLES = frozenset({"owner"})


@dataclass(frozen=True, slots=True)
class UpstreamCall:
    """One call to the tenant's upstream, already validated."""

    method: str
    path: str
    params: dict[str, str] | None = None
    json_body: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Proxied:
    body: dict[str, Any]
    headers: dict[str, str]


def vector_store_limits(policy: Policy) -> dict[str, tuple[Limit, ...]]:
    """Per-role user limits of the vector-store endpoints: a role's `vector_store_limits`,
    else its mint `limits` (counted in separate buckets all the same)."""
    return {
        role: rules.limits if rules.vector_store_limits is None else rules.vector_store_limits
        for role, rules in policy.roles.items()
    }


async def forward(
    broker: Broker,
    identity: Identity,
    call: UpstreamCall,
    *,
    roles: Collection[str],
    scope: str = VECTOR_STORES_SCOPE,
    user_limits: Mapping[str, tuple[Limit, ...]] | None = None,
) -> Proxied:
    """Admit `identity` in `scope`, require its effective role in `roles`, make `call`.

    Raises `NotFound` for a tenant without OpenAI's API (a Gemini one), what
    `Broker.admit` raises (403 revoked, 429, 503), `RoleForbidden`, or the upstream's
    `BrokerError`; in the last two cases nothing stays charged.
    """
    # A Gemini tenant has no vector stores (404), known before anything is charged.
    upstream = broker.openai_upstream(identity.tenant)
    if user_limits is None:
        user_limits = vector_store_limits(broker.tenant(identity.tenant).policy)
    admit_request = broker.admit_request(identity, scope=scope, user_limits=user_limits)
    # The effective role is only known from the admission: an admin-set role wins over
    # the token's claim, and that lives in the store.
    admission = await broker.admit(admit_request)
    if admission.role not in roles:
        await broker.refund(admit_request, admission)
        raise RoleForbidden(
            f"The role '{admission.role}' may not do this; it needs one of: "
            f"{', '.join(sorted(roles))}."
        )
    try:
        body = await upstream.request(
            call.method,
            call.path,
            params=call.params,
            json_body=call.json_body,
            safety_identifier=user_hash(identity.tenant, identity.user_id),
        )
    except BrokerError:
        await broker.refund(admit_request, admission)
        raise
    return Proxied(body=body, headers=rate_limit_headers(admission))
