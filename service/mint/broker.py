"""The mint path: authenticate, admit, apply the policy, ask upstream, answer.

`Broker` holds the per-tenant parts (policy limits, upstream clients) built once at
startup; handlers parse the HTTP request, call one method here and render the result.
Every mint takes the same steps (`Broker.grant`: admission, the role's `mint` rule,
refund on failure, headers, audit; `Broker.counted`: its metric) around its own policy
and upstream call: OpenAI's client secrets here (`Broker.mint`), Gemini's Live tokens in
service.gemini.minting.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from service.auth.tokens import Authenticator, Identity
from service.clock import Clock, system_clock
from service.config.settings import Settings, TenantSettings
from service.errors import (
    BrokerError,
    NotFound,
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
from service.usage.gate import SpendGate

logger = logging.getLogger("service.mint.broker")
# A child of `service.audit` (directory changes log there): audit routing by the
# `service.audit` prefix gets both, and each can be filtered on its own.
audit_logger = logging.getLogger("service.audit.mint")

NOT_OPENAI = (
    "This tenant's upstream is Gemini, which serves none of OpenAI's routes: mint a Gemini "
    "Live token with POST /v1alpha/auth_tokens."
)
NO_MINTS = (
    "This role may not mint client secrets: its sessions go through call control "
    "(POST /v1/realtime/calls), where the policy holds for the whole call."
)


@dataclass(frozen=True, slots=True)
class Issued:
    """What a mint's own steps made (`Broker.grant`'s `issue`): the client's answer, when
    its secret expires, and the fields the policy changed (for X-Policy-Adjusted)."""

    body: dict[str, Any]
    expires_at: int
    adjustments: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Minted:
    body: dict[str, Any]
    headers: dict[str, str]
    identity: Identity
    adjustments: tuple[str, ...] = field(default_factory=tuple)


class Counted:
    """`Broker.counted`'s context (a class: a generator-based one costs a mint ~1 µs)."""

    __slots__ = ("_metrics", "_tenant")

    def __init__(self, metrics: Metrics, tenant: str) -> None:
        self._metrics = metrics
        self._tenant = tenant

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is None:
            self._metrics.mint(self._tenant)
        elif isinstance(exc, Exception):
            # A refusal by its kind; anything else (a bug: the caller got a 500) as
            # `other`. A cancelled mint (the caller left) has no outcome to count.
            self._metrics.mint(self._tenant, exc)


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
        clock: Clock = system_clock,
        spend: SpendGate | None = None,
    ) -> None:
        """`upstreams`: the OpenAI (and Azure) tenants' clients; a tenant with
        UPSTREAM=gemini has none here (its client is service.gemini.minting's). `clock`
        dates what a mint dates itself (a Gemini token's expiry). `spend`: money refusals
        (budgets, the tenant's spend limit); None: none (a broker without a ledger)."""
        self.settings = settings
        self.clock = clock
        self.metrics = metrics if metrics is not None else Metrics(t.id for t in settings.tenants)
        self.store = store
        self.authenticator = authenticator
        self.upstreams = dict(upstreams)
        self.spend = spend
        self._tenants = {tenant.id: tenant for tenant in settings.tenants}
        # Computed once: the per-role limits every admission of a tenant carries.
        self._user_limits: dict[str, dict[str, tuple[Limit, ...]]] = {
            tenant.id: tenant.policy.user_limits() for tenant in settings.tenants
        }
        self._plans = MintPlans()
        # Refunds that outlive a cancelled mint, held until done (the loop holds tasks
        # weakly).
        self._refunds: set[asyncio.Task[None]] = set()

    def tenant(self, tenant_id: str) -> TenantSettings:
        return self._tenants[tenant_id]

    def openai_upstream(self, tenant_id: str) -> Upstream:
        """The tenant's client of OpenAI's API; NotFound (404) for a Gemini tenant, which
        serves none of OpenAI's routes."""
        upstream = self.upstreams.get(tenant_id)
        if upstream is None:
            raise NotFound(NOT_OPENAI)
        return upstream

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

    async def _refund_shielded(self, request: AdmitRequest, admission: Admission) -> None:
        """`refund`, run to its end even when the mint's task is cancelled (again) while
        it waits: a cancelled request must not keep its admission."""
        task = asyncio.ensure_future(self.refund(request, admission))
        self._refunds.add(task)
        task.add_done_callback(self._refunds.discard)
        await asyncio.shield(task)

    async def identify(self, authorization: Sequence[str]) -> Identity:
        """Authenticate a mint's caller (a refusal counts as an unauthorized mint)."""
        try:
            return await self.authenticate(authorization)
        except BrokerError as exc:
            self.metrics.mint(None, exc)
            raise

    def counted(self, tenant: str) -> Counted:
        """`with broker.counted(tenant): ...` counts the mint run inside by its outcome
        (`broker_mints`): the refusal it raises, or ok."""
        return Counted(self.metrics, tenant)

    async def mint(
        self, endpoint: Endpoint, identity: Identity, raw: bytes, *, timer: PhaseTimer
    ) -> Minted:
        """The mint of an authenticated caller, from the raw body it sent; `timer` has
        measured the authentication."""
        with self.counted(identity.tenant):
            requested = self._plans.request(endpoint, raw)

            async def issue(tenant: TenantSettings, role: str) -> Issued:
                plan = self._plans.plan(
                    tenant.id, tenant.policy, role, requested, tenant.upstream_api
                )
                timer.mark("policy")
                answer = await self.openai_upstream(tenant.id).create_secret(
                    plan.path,
                    plan.upstream_json,
                    safety_identifier=user_hash(tenant.id, identity.user_id),
                )
                timer.mark("upstream")
                body, expires_at = plan.answer(tenant.upstream_api, answer)
                changed = tuple(dict.fromkeys([*plan.adjustments, *plan.dropped]))
                return Issued(body, expires_at, changed)

            return await self.grant(identity, endpoint, issue, timer=timer)

    async def grant(
        self,
        identity: Identity,
        endpoint: str,
        issue: Callable[[TenantSettings, str], Awaitable[Issued]],
        *,
        timer: PhaseTimer,
        refused: str = NO_MINTS,
    ) -> Minted:
        """The steps every mint shares, around `issue(tenant, role)`, which applies the
        policy and asks upstream (marking `policy` and `upstream` on `timer`): admission
        (revoked → 403, limited → 429), the role's `mint` rule (403 `refused`), the
        admission refunded when `issue` fails (however: a bug and a cancelled request
        deliver nothing either), then the headers (no-store, RateLimit-*,
        X-Policy-Adjusted, Server-Timing) and the audit line. The request was decoded
        before: a body refused costs no admission."""
        tenant = self._tenants[identity.tenant]
        admit_request = self.admit_request(identity)
        timer.mark("policy")
        admission = await self.admit(admit_request)
        timer.mark("store")
        try:
            rules = tenant.policy.rules_for(admission.role)
            if not rules.mint:
                raise RoleForbidden(refused)
            if self.spend is not None:
                await self.spend.check(
                    tenant.id,
                    identity.user_id,
                    rules,
                    fail_open=tenant.rate_limit_failure_mode == "open",
                )
            issued = await issue(tenant, admission.role)
        except BrokerError:
            await self.refund(admit_request, admission)
            raise
        except BaseException:
            # Anything else (a bug, the request cancelled) delivered nothing either.
            await self._refund_shielded(admit_request, admission)
            raise
        timer.mark("codec")
        headers = {"Cache-Control": "no-store", **rate_limit_headers(admission)}
        if issued.adjustments:
            headers["X-Policy-Adjusted"] = ",".join(issued.adjustments)
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
                "expires_at": issued.expires_at,
                "adjusted": list(issued.adjustments),
            },
        )
        return Minted(
            body=issued.body,
            headers=headers,
            identity=identity,
            adjustments=issued.adjustments,
        )
