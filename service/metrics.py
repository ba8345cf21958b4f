"""Prometheus metrics, one registry per app (so two apps in one process, as in tests,
never share counts). This module owns `prometheus_client`.

    broker_mints_total{tenant,outcome}                     every mint attempt's end
    broker_rate_limit_decisions_total{tenant,decision}     allowed | limited | degraded
    broker_rate_limit_fallbacks_total{tenant,reason}       decisions made without Redis, why
    broker_upstream_latency_seconds{tenant}                histogram, every upstream call
    broker_upstream_errors_total{tenant,kind}              timeout | unavailable | error | ...
    broker_jwks_refreshes_total{tenant}                    read from the Authenticator at scrape
    broker_tenant_info{tenant,upstream}                    1 per tenant: its upstream kind
    broker_request_duration_seconds{route,method,status_class}   histogram, route template
    broker_calls_active                                    calls this replica supervises
    broker_calls_total{tenant,kind}                        calls placed: realtime | live
    broker_calls_ended_total{tenant,reason}                calls over, why: the broker's
                                                           reason, or ended_upstream
    broker_call_adoptions_total{tenant}                    calls adopted from another replica
    broker_call_reverts_total{tenant}                      client overrides reverted
    broker_call_sideband_losses_total{tenant}              sidebands that closed under a call
                                                           that went on
    broker_call_hangup_failures_total{tenant}              hangups upstream refused (retried)
    broker_call_lease_renewal_failures_total               heartbeat batches the store missed
    broker_gc_pause_seconds{generation}                    histogram, the collector's pauses
    broker_usage_tokens_total{tenant,model,kind}           tokens of supervised calls written
                                                           to the ledger, by kind
    broker_spend_usd_total{tenant,model}                   what they cost (USD, as priced)
    broker_usage_unpriced_total{tenant,model,kind}         usage with no price (tokens, or
                                                           minutes): counted, costing nothing

Labels are bounded on purpose: a tenant not configured is counted as "unknown" (a 401
has no tenant yet), routes are templates ("other" when none matched), a model neither
priced nor named by the policy is "other", and no label ever holds a user id or anything
a caller chose freely.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Final, Generic, TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from service.errors import (
    BrokerError,
    InvalidRequest,
    InvalidToken,
    NotFound,
    PermissionDenied,
    RateLimited,
    RateLimiterUnavailable,
    RequestTooLarge,
    ServiceUnavailable,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
    UserRevoked,
)

CONTENT_TYPE: Final = CONTENT_TYPE_LATEST
UNKNOWN_TENANT: Final = "unknown"
OTHER_ROUTE: Final = "other"

# Order matters: the first matching class names the outcome (subclasses first).
_MINT_OUTCOMES: tuple[tuple[type[BrokerError], str], ...] = (
    (InvalidToken, "unauthorized"),
    (UserRevoked, "revoked"),
    (PermissionDenied, "forbidden"),
    (RateLimited, "rate_limited"),
    (RateLimiterUnavailable, "unavailable"),
    (RequestTooLarge, "invalid_request"),
    (NotFound, "upstream_error"),
    (InvalidRequest, "invalid_request"),
    (UpstreamTimeout, "upstream_timeout"),
    (UpstreamUnavailable, "upstream_unavailable"),
    (UpstreamError, "upstream_error"),
    (ServiceUnavailable, "unavailable"),
)
_UPSTREAM_KINDS: tuple[tuple[type[BrokerError], str], ...] = (
    (UpstreamTimeout, "timeout"),
    (UpstreamUnavailable, "unavailable"),
    (NotFound, "not_found"),
    (InvalidRequest, "rejected"),
    (UpstreamError, "error"),
)
# Mints and upstream calls take tens to hundreds of milliseconds; a slow upstream up to
# the 10 s deadline.
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

JwksRefreshes = Callable[[], Mapping[str, int]]
_F = TypeVar("_F", Counter, Histogram)


class _Bound(Generic[_F]):
    """A metric family whose label children are bound once per label set: `labels()`
    takes a lock and validates its arguments, which the hot path need not pay per call."""

    def __init__(self, family: _F) -> None:
        self._family: _F = family
        self._children: dict[tuple[str, ...], _F] = {}

    def __call__(self, *labels: str) -> _F:
        child = self._children.get(labels)
        if child is None:
            child = self._children[labels] = self._family.labels(*labels)
        return child


def _classify(exc: BaseException, table: tuple[tuple[type[BrokerError], str], ...]) -> str:
    for cls, label in table:
        if isinstance(exc, cls):
            return label
    return "other"


def mint_outcome(exc: BaseException | None) -> str:
    """The `outcome` label of a mint that ended with `exc` (None: it succeeded)."""
    return "ok" if exc is None else _classify(exc, _MINT_OUTCOMES)


def upstream_error_kind(exc: BaseException) -> str:
    return _classify(exc, _UPSTREAM_KINDS)


class _JwksCollector(Collector):
    """Reads the Authenticator's refresh counts at scrape time: no hook on the JWKS path."""

    def __init__(self, source: JwksRefreshes) -> None:
        self._source = source

    def collect(self) -> Iterable[Metric]:
        family = CounterMetricFamily(
            "broker_jwks_refreshes", "JWKS documents fetched, per tenant.", labels=["tenant"]
        )
        for tenant, count in sorted(self._source().items()):
            family.add_metric([tenant], count)
        yield family


class Metrics:
    """The broker's metrics on a registry of its own.

    `tenants` are the configured tenant ids: any other value is counted as "unknown".
    `jwks_refreshes` (optional) is read at every scrape. `upstreams` (optional): each
    tenant's upstream kind, exported as `broker_tenant_info{tenant,upstream} 1`, so that any
    per-tenant series can be summed by upstream kind (`* on (tenant) group_left (upstream)
    broker_tenant_info`) without an extra label on every series.
    """

    def __init__(
        self,
        tenants: Iterable[str],
        *,
        jwks_refreshes: JwksRefreshes | None = None,
        upstreams: Mapping[str, str] | None = None,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._tenants = frozenset(tenants)
        r = self.registry
        info = Gauge(
            "broker_tenant_info",
            "Each configured tenant's upstream kind (openai, azure, gemini, fake); always 1.",
            ["tenant", "upstream"],
            registry=r,
        )
        for tenant, kind in (upstreams or {}).items():
            info.labels(tenant, kind).set(1)
        self._mints = _Bound(
            Counter("broker_mints", "Mint requests by outcome.", ["tenant", "outcome"], registry=r)
        )
        self._decisions = _Bound(
            Counter(
                "broker_rate_limit_decisions",
                "Rate-limit decisions; degraded = made without Redis (failure mode open).",
                ["tenant", "decision"],
                registry=r,
            )
        )
        self._fallbacks = _Bound(
            Counter(
                "broker_rate_limit_fallbacks",
                "Decisions made by the local limiter, by why Redis was not used.",
                ["tenant", "reason"],
                registry=r,
            )
        )
        self._upstream_latency = _Bound(
            Histogram(
                "broker_upstream_latency_seconds",
                "Upstream call latency, retries included.",
                ["tenant"],
                buckets=_LATENCY_BUCKETS,
                registry=r,
            )
        )
        self._upstream_errors = _Bound(
            Counter(
                "broker_upstream_errors",
                "Failed upstream calls by kind.",
                ["tenant", "kind"],
                registry=r,
            )
        )
        self._requests = _Bound(
            Histogram(
                "broker_request_duration_seconds",
                "HTTP request latency by route template.",
                ["route", "method", "status_class"],
                buckets=_LATENCY_BUCKETS,
                registry=r,
            )
        )
        if jwks_refreshes is not None:
            r.register(_JwksCollector(jwks_refreshes))
        self._calls_active = Gauge(
            "broker_calls_active", "Calls this replica supervises now.", registry=r
        )
        self._calls_placed = _Bound(
            Counter("broker_calls", "Calls placed, by kind.", ["tenant", "kind"], registry=r)
        )
        self._calls_ended = _Bound(
            Counter(
                "broker_calls_ended",
                "Calls over, by why: the broker's reason, or ended_upstream.",
                ["tenant", "reason"],
                registry=r,
            )
        )
        self._call_events = {
            name: _Bound(Counter(f"broker_call_{name}", text, ["tenant"], registry=r))
            for name, text in (
                ("adoptions", "Calls adopted from a replica that stopped supervising them."),
                ("reverts", "Client session overrides reverted on the sideband."),
                ("sideband_losses", "Sidebands that closed while their call went on."),
                ("hangup_failures", "Hangups upstream did not accept (they are retried)."),
            )
        }
        self._renewal_failures = Counter(
            "broker_call_lease_renewal_failures",
            "Heartbeat batches of supervised calls the state store did not take.",
            registry=r,
        )
        self._usage_tokens = _Bound(
            Counter(
                "broker_usage_tokens",
                "Tokens of supervised calls and GPT-Live sessions written to the usage ledger.",
                ["tenant", "model", "kind"],
                registry=r,
            )
        )
        self._spend = _Bound(
            Counter(
                "broker_spend_usd",
                "What supervised usage cost, USD, as priced (PRICES or the built-in table).",
                ["tenant", "model"],
                registry=r,
            )
        )
        self._unpriced = _Bound(
            Counter(
                "broker_usage_unpriced",
                "Usage with no price (tokens, or minutes of call time): counted, costing nothing.",
                ["tenant", "model", "kind"],
                registry=r,
            )
        )

    def tenant_label(self, tenant: str | None) -> str:
        return tenant if tenant is not None and tenant in self._tenants else UNKNOWN_TENANT

    def mint(self, tenant: str | None, exc: BaseException | None = None) -> None:
        self._mints(self.tenant_label(tenant), mint_outcome(exc)).inc()

    def rate_limit_decision(self, tenant: str, *, allowed: bool, degraded: bool) -> None:
        decision = "degraded" if degraded else ("allowed" if allowed else "limited")
        self._decisions(self.tenant_label(tenant), decision).inc()

    def store_fallback(self, tenant: str, reason: str) -> None:
        """`FailureAwareStore(on_degraded=...)`: why a decision was made without Redis."""
        self._fallbacks(self.tenant_label(tenant), reason).inc()

    def upstream_call(self, tenant: str, seconds: float, error: BaseException | None) -> None:
        label = self.tenant_label(tenant)
        self._upstream_latency(label).observe(seconds)
        if error is not None:
            self._upstream_errors(label, upstream_error_kind(error)).inc()

    def upstream_observer(self, tenant: str) -> Callable[[float, BaseException | None], None]:
        """The per-tenant hook an upstream client calls after every call."""

        def observe(seconds: float, error: BaseException | None) -> None:
            self.upstream_call(tenant, seconds, error)

        return observe

    def request(self, route: str | None, method: str, status: int, seconds: float) -> None:
        status_class = f"{status // 100}xx"
        method = method if method in _METHODS else "other"
        self._requests(route or OTHER_ROUTE, method, status_class).observe(seconds)

    def watch_gc(self) -> None:
        """Time the cycle collector's pauses (`gc.callbacks`): with thousands of held
        calls a full collection walks them all, and a pause delays every event."""
        pauses = Histogram(
            "broker_gc_pause_seconds",
            "Cycle collector pauses, by generation.",
            ["generation"],
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
            registry=self.registry,
        )
        children = [pauses.labels(str(g)) for g in range(3)]
        started = [0.0]

        def callback(phase: str, info: dict[str, int]) -> None:
            if phase == "start":
                started[0] = time.perf_counter()
            else:
                children[info["generation"]].observe(time.perf_counter() - started[0])

        gc.callbacks.append(callback)

    def watch_calls(self, count: Callable[[], int]) -> None:
        """`broker_calls_active` reads `count()` at scrape time (an HPA can scale on it)."""
        self._calls_active.set_function(count)

    def call_placed(self, tenant: str, kind: str) -> None:
        self._calls_placed(self.tenant_label(tenant), kind).inc()

    def call_ended(self, tenant: str, reason: str) -> None:
        """`reason` is one of a bounded set (service.calls.lifecycle.END_REASONS)."""
        self._calls_ended(self.tenant_label(tenant), reason).inc()

    def call_adopted(self, tenant: str) -> None:
        self._call_events["adoptions"](self.tenant_label(tenant)).inc()

    def call_reverted(self, tenant: str) -> None:
        self._call_events["reverts"](self.tenant_label(tenant)).inc()

    def sideband_lost(self, tenant: str) -> None:
        self._call_events["sideband_losses"](self.tenant_label(tenant)).inc()

    def hangup_failed(self, tenant: str) -> None:
        self._call_events["hangup_failures"](self.tenant_label(tenant)).inc()

    def lease_renewal_failed(self) -> None:
        self._renewal_failures.inc()

    # Usage and spend (service.usage.metering.UsageMetrics): what the ledger was written.

    def usage_tokens(self, tenant: str, model: str, kind: str, count: int) -> None:
        self._usage_tokens(self.tenant_label(tenant), model, kind).inc(count)

    def usage_spend(self, tenant: str, model: str, usd: float) -> None:
        self._spend(self.tenant_label(tenant), model).inc(usd)

    def usage_unpriced(self, tenant: str, model: str, kind: str, count: float) -> None:
        self._unpriced(self.tenant_label(tenant), model, kind).inc(count)

    def render(self) -> bytes:
        """The text exposition of this registry (content type `CONTENT_TYPE`)."""
        return generate_latest(self.registry)
