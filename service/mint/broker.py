"""The mint path: authenticate, admit, apply the policy, ask upstream, answer.

`Broker` holds the per-tenant parts (policy limits, upstream client) built once at
startup; handlers parse the HTTP request, call one method here and render the result.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from service.auth.tokens import Authenticator, Identity
from service.config.settings import Settings, TenantSettings
from service.errors import (
    BrokerError,
    RateLimited,
    RateLimiterUnavailable,
    RoleForbidden,
    StoreUnavailable,
    UserRevoked,
)
from service.limits import Limit, tightest
from service.logs import current_request_id
from service.metrics import Metrics
from service.mint.plans import MintPlans
from service.redact import user_hash
from service.session.model import Endpoint
from service.stores.base import Admission, AdmitRequest, Store, UserProfile
from service.timing import HEADER as SERVER_TIMING
from service.timing import PhaseTimer
from service.upstream.base import Upstream

logger = logging.getLogger("service.mint.broker")
# A child of `service.audit` (directory changes log there): audit routing by the
# `service.audit` prefix gets both, and each can be filtered on its own.
audit_logger = logging.getLogger("service.audit.mint")

NO_MINTS = (
    "This role may not mint client secrets: its sessions go through call control "
    "(POST /v1/realtime/calls), where the policy holds for the whole call."
)


@dataclass(frozen=True, slots=True)
class Minted:
    body: dict[str, Any]
    headers: dict[str, str]
    identity: Identity
    adjustments: tuple[str, ...] = field(default_factory=tuple)


def rate_limit_headers(admission: Admission) -> dict[str, str]:
    """RateLimit-* of the tightest limit (draft-ietf-httpapi-ratelimit-headers)."""
    outcome = tightest(admission.outcomes)
    if outcome is None:
        return {}
    return {
        "RateLimit-Limit": str(outcome.limit.count),
        "RateLimit-Remaining": str(outcome.remaining),
        "RateLimit-Reset": str(max(0, int(-(-outcome.reset_after // 1)))),
    }


class Broker:
    def __init__(
        self,
        settings: Settings,
        *,
        store: Store,
        authenticator: Authenticator,
        upstreams: Mapping[str, Upstream],
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics if metrics is not None else Metrics(t.id for t in settings.tenants)
        self.store = store
        self.authenticator = authenticator
        self.upstreams = dict(upstreams)
        self._tenants = {tenant.id: tenant for tenant in settings.tenants}
        # Computed once: the per-role limits every admission of a tenant carries.
        self._user_limits: dict[str, dict[str, tuple[Limit, ...]]] = {
            tenant.id: tenant.policy.user_limits() for tenant in settings.tenants
        }
        self._plans = MintPlans()

    def tenant(self, tenant_id: str) -> TenantSettings:
        return self._tenants[tenant_id]

    async def authenticate(self, authorization: Sequence[str]) -> Identity:
        return await self.authenticator.authenticate(authorization)

    def admit_request(
        self,
        identity: Identity,
        *,
        scope: str = "mint",
        user_limits: Mapping[str, tuple[Limit, ...]] | None = None,
    ) -> AdmitRequest:
        """The admission of one request. `user_limits` (per role) replaces the mint limits,
        for endpoints with limits of their own; give them a `scope` of their own too."""
        tenant = self._tenants[identity.tenant]
        policy = tenant.policy
        claimed = (
            identity.role
            if identity.role is not None and identity.role in policy.roles
            else policy.default_role
        )
        return AdmitRequest(
            tenant=tenant.id,
            user_id=identity.user_id,
            claimed_role=claimed,
            user_limits=self._user_limits[tenant.id] if user_limits is None else user_limits,
            tenant_limits=policy.tenant_limits,
            profile=UserProfile(name=identity.name, email=identity.email),
            scope=scope,
        )

    async def admit(self, request: AdmitRequest) -> Admission:
        """Admit or raise: revoked → 403, over a limit → 429, store down → 503."""
        try:
            admission = await self.store.admit(request)
        except StoreUnavailable as exc:
            raise RateLimiterUnavailable() from exc
        if not admission.revoked:
            self.metrics.rate_limit_decision(
                request.tenant, allowed=admission.allowed, degraded=admission.degraded
            )
        if admission.revoked:
            raise UserRevoked()
        if not admission.allowed:
            raise RateLimited(
                retry_after=admission.retry_after, headers=rate_limit_headers(admission)
            )
        return admission

    async def refund(self, request: AdmitRequest, admission: Admission) -> None:
        """Nothing delivered, nothing charged. Best effort: a store that is down now
        keeps the charge, which expires with the bucket."""
        try:
            await self.store.refund(request, admission)
        except StoreUnavailable:
            logger.warning("refund skipped: store unavailable", extra={"tenant": request.tenant})

    async def identify(self, authorization: Sequence[str]) -> Identity:
        """Authenticate a mint's caller (a refusal counts as an unauthorized mint)."""
        try:
            return await self.authenticate(authorization)
        except BrokerError as exc:
            self.metrics.mint(None, exc)
            raise

    async def mint(
        self, endpoint: Endpoint, identity: Identity, raw: bytes, *, timer: PhaseTimer
    ) -> Minted:
        """The mint of an authenticated caller, from the raw body it sent; `timer` has
        measured the authentication."""
        try:
            minted = await self._mint(endpoint, identity, raw, timer)
        except BrokerError as exc:
            self.metrics.mint(identity.tenant, exc)
            raise
        self.metrics.mint(identity.tenant)
        return minted

    async def _mint(
        self, endpoint: Endpoint, identity: Identity, raw: bytes, timer: PhaseTimer
    ) -> Minted:
        tenant = self._tenants[identity.tenant]
        requested = self._plans.request(endpoint, raw)
        admit_request = self.admit_request(identity)
        timer.mark("policy")
        admission = await self.admit(admit_request)
        timer.mark("store")
        try:
            if not tenant.policy.rules_for(admission.role).mint:
                # A secret's holder talks to OpenAI directly and may override its session.
                raise RoleForbidden(NO_MINTS)
            plan = self._plans.plan(
                tenant.id, tenant.policy, admission.role, requested, tenant.upstream_api
            )
            timer.mark("policy")
            answer = await self.upstreams[tenant.id].create_secret(
                plan.path,
                plan.upstream_json,
                safety_identifier=user_hash(tenant.id, identity.user_id),
            )
            timer.mark("upstream")
            response_body, expires_at = plan.answer(tenant.upstream_api, answer)
        except BrokerError:
            await self.refund(admit_request, admission)
            raise
        changed = tuple(dict.fromkeys([*plan.adjustments, *plan.dropped]))
        timer.mark("codec")
        headers = {"Cache-Control": "no-store", **rate_limit_headers(admission)}
        if changed:
            headers["X-Policy-Adjusted"] = ",".join(changed)
        headers[SERVER_TIMING] = timer.header()
        audit_logger.info(
            "mint",
            extra={
                "event": "audit",
                "action": "secret.minted",
                # The mint's access line has the same id: the two join on it.
                "request_id": current_request_id(),
                "tenant": tenant.id,
                "user_hash": user_hash(tenant.id, identity.user_id),
                "role": admission.role,
                "endpoint": endpoint,
                "expires_at": expires_at,
                "adjusted": list(changed),
            },
        )
        return Minted(
            body=response_body,
            headers=headers,
            identity=identity,
            adjustments=changed,
        )
