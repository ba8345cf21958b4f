"""The composition root: settings in, a running ASGI app out.

Every backend is chosen here and only here (memory or Redis store, OpenAI, Azure or
Gemini upstream), and every seam a test needs is a keyword argument. The in-process fake
upstream is not one of them: dev mode (service.dev) passes it in through `transports`
and `call_options`, so production code never imports it.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Literal

import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Scope

from service.auth.hash_keys import UserHashKeys
from service.auth.tokens import Authenticator
from service.calls.controller import CallController
from service.calls.sideband import Keepalive, WebSocketConnector
from service.calls.store import CallStore
from service.calls.store_memory import MemoryCallStore
from service.calls.supervised import CallOptions, revocation_check
from service.clock import Clock, system_clock
from service.config.settings import Settings, TenantSettings
from service.errors import BrokerError, ConfigError
from service.gemini.minting import GeminiMinting
from service.metrics import CONTENT_TYPE, Metrics
from service.mint.broker import Broker
from service.redact import Secret
from service.stores.base import Store
from service.stores.memory import MemoryStore
from service.stores.resilient import FailureAwareStore
from service.upstream.base import Upstream
from service.upstream.gemini import GeminiUpstream
from service.upstream.openai import OpenAIUpstream
from service.usage.gate import SpendGate
from service.web.admin import admin_routes
from service.web.calls import call_routes
from service.web.cors import CORSMiddleware
from service.web.demo import demo_routes
from service.web.errors import broker_error_handler, http_exception_handler
from service.web.gemini import gemini_routes
from service.web.handlers import health_routes, mint_routes
from service.web.live import live_routes
from service.web.middleware import RequestContextMiddleware, route_template
from service.web.openapi import STRING, DocumentedRoute, Operation, openapi_routes
from service.web.relay import relay_routes
from service.web.usage import usage_routes
from service.web.vector_stores import vector_store_routes

if TYPE_CHECKING:  # a name for annotations only: memory-only deployments never load redis
    from service.stores.redis_client import RedisConnection

# What `create_app` returns, named so that its callers need not import starlette.
BrokerApp = Starlette
FAKE_UPSTREAM_URL = "http://fake-upstream.invalid/v1"
FAKE_REFUSED = (
    "tenant {tenant}: BROKER_UPSTREAM=fake is the in-process fake of `token-broker dev`; "
    "its secrets are not valid at OpenAI. Run `token-broker dev`, or run the fake as its own "
    "process (`token-broker fake-upstream --port N`) and point BROKER_UPSTREAM_URL at it."
)


def call_options_of(settings: Settings) -> CallOptions:
    """Call control's options as the settings give them (BROKER_MAX_CALLS,
    BROKER_CALL_LEASE_SECONDS, BROKER_SIDEBAND_REJOIN_SECONDS, BROKER_SIDEBAND_PING_SECONDS)."""
    return CallOptions(
        lease_ttl=settings.call_lease_seconds,
        # Orphans are looked for every tick: a dead replica's calls are adopted within
        # one lease plus a fifth of it.
        tick=min(1.0, settings.call_lease_seconds / 5),
        max_calls=settings.max_calls,
        rejoin_seconds=settings.sideband_rejoin_seconds,
        ping_seconds=settings.sideband_ping_seconds,
    )


def connect_redis(settings: Settings) -> RedisConnection | None:
    """The replica's one connection to Redis, shared by both stores; None without Redis.
    Nothing connects before the first call."""
    if settings.redis_url is None:
        return None
    # Imported here so that dev mode and memory-only deployments never load redis.
    from service.stores.redis_client import RedisConnection

    return RedisConnection.from_url(
        settings.redis_url.reveal(), timeout_ms=settings.redis_timeout_ms
    )


def build_store(
    settings: Settings,
    clock: Clock,
    redis: RedisConnection | None,
    *,
    on_degraded: Callable[[str, str], None] | None = None,
) -> Store:
    if redis is None:
        return MemoryStore(clock=clock)
    from service.stores.redis import RedisStore

    modes = {tenant.id: tenant.rate_limit_failure_mode for tenant in settings.tenants}
    return FailureAwareStore(
        RedisStore(redis), failure_modes=modes, clock=clock, on_degraded=on_degraded
    )


def build_gemini_upstream(
    tenant: TenantSettings,
    *,
    transport: httpx.AsyncBaseTransport | None,
    observer: Callable[[float, BaseException | None], None] | None = None,
) -> GeminiUpstream:
    """The client of a tenant with UPSTREAM=gemini: Gemini's API, which serves only
    Gemini Live tokens."""
    return GeminiUpstream(
        base_url=tenant.upstream_url,
        api_key=tenant.upstream_api_key,
        api_version=tenant.gemini_api_version,
        transport=transport,
        deadline=tenant.upstream_timeout_ms / 1000,
        observer=observer,
    )


def build_upstream(
    tenant: TenantSettings,
    *,
    transport: httpx.AsyncBaseTransport | None,
    observer: Callable[[float, BaseException | None], None] | None = None,
) -> Upstream:
    """The client of OpenAI's API of any other tenant: OpenAI, Azure, or the in-process
    fake."""
    if tenant.upstream == "fake":
        if transport is None:
            # Only dev mode wires the in-process fake (its secrets are not valid at OpenAI).
            raise ConfigError([FAKE_REFUSED.format(tenant=tenant.id)])
        return OpenAIUpstream(
            base_url=FAKE_UPSTREAM_URL,
            api_key=tenant.upstream_api_key or Secret("fake"),
            transport=transport,
            observer=observer,
        )
    flavor: Literal["openai", "azure"] = "azure" if tenant.upstream == "azure" else "openai"
    return OpenAIUpstream(
        base_url=tenant.upstream_url,
        api_key=tenant.upstream_api_key or Secret("fake"),
        flavor=flavor,
        transport=transport,
        deadline=tenant.upstream_timeout_ms / 1000,
        observer=observer,
    )


# A mint allocates thousands of short-lived objects, and with dozens of mints in flight
# the default threshold (700) collects so often that in-flight objects survive into the
# older generations, whose collections then dominate: measured in bench/, a mint spent
# ~20% of its CPU in the cycle collector. 50 000 keeps the young generation a few MB.
GC_THRESHOLDS = (50_000, 20, 20)


def tune_gc() -> None:
    """At startup: what exists now (modules, settings, pools) lives as long as the
    process, so it is moved out of the collector's view (`gc.freeze`) instead of being
    walked by every full collection; then the thresholds above."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def build_call_store(clock: Clock, redis: RedisConnection | None) -> CallStore:
    if redis is None:
        return MemoryCallStore(clock=clock)
    from service.calls.store_redis import RedisCallStore

    return RedisCallStore(redis)


def sideband_connector(
    settings: Settings, keepalive: Keepalive | None = None
) -> WebSocketConnector:
    return WebSocketConnector(
        {t.id: t.upstream_api_key for t in settings.tenants}, keepalive=keepalive
    )


async def metrics_endpoint(request: Request) -> Response:
    metrics: Metrics = request.app.state.metrics
    return Response(metrics.render(), media_type=CONTENT_TYPE)


METRICS = Operation("Prometheus metrics.", STRING, secured=False, media_type="text/plain")


def create_metrics_app(metrics: Metrics) -> Starlette:
    """`/metrics` alone, for BROKER_METRICS_PORT: served on a port of its own, so that the
    API port (which the gateway exposes) does not show tenant ids to anyone."""
    app = Starlette(routes=[Route("/metrics", metrics_endpoint, methods=["GET"])])
    app.state.metrics = metrics
    return app


def _request_observer(metrics: Metrics) -> Callable[[Scope, int, float], None]:
    def observe(scope: Scope, status: int, seconds: float) -> None:
        metrics.request(route_template(scope), scope.get("method", ""), status, seconds)

    return observe


def create_app(
    settings: Settings,
    *,
    store: Store | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
    jwks_transport: httpx.AsyncBaseTransport | None = None,
    clock: Clock = system_clock,
    call_options: CallOptions | None = None,
) -> Starlette:
    """Build the broker app.

    `store` replaces the configured store; `transport` replaces the HTTP transport of
    every tenant's upstream (tests pass a MockTransport or the fake's ASGITransport) and
    `transports` that of single tenants, by id (dev mode's in-process fakes);
    `jwks_transport` does the same for JWKS fetches; `clock` drives token expiry,
    the memory store and the fake upstream; `call_options` replaces call control's
    store, sideband connector and timing.
    """
    # What the lifespan closes, in the order made (it closes them in reverse).
    closers: list[Callable[[], Awaitable[object]]] = []
    jwks_http = httpx.AsyncClient(transport=jwks_transport, timeout=httpx.Timeout(2.0))
    closers.append(jwks_http.aclose)
    authenticator = Authenticator(settings.tenants, http=jwks_http, clock=clock)
    closers.append(authenticator.aclose)
    # One registry per app: two apps in one process (tests) never share counts.
    metrics = Metrics(
        (tenant.id for tenant in settings.tenants),
        jwks_refreshes=lambda: authenticator.jwks_refreshes,
        upstreams={tenant.id: tenant.upstream for tenant in settings.tenants},
    )
    options = call_options or call_options_of(settings)
    # One Redis connection (pool, bound, deadline) for both stores, closed after them.
    redis = connect_redis(settings) if store is None or options.store is None else None
    if redis is not None:
        closers.append(redis.close)
    state_store = (
        store
        if store is not None
        else build_store(settings, clock, redis, on_degraded=metrics.store_fallback)
    )
    closers.append(state_store.close)
    call_store = options.store or build_call_store(clock, redis)
    closers.append(call_store.close)
    per_tenant = transports or {}
    # OpenAI's API (calls, mints, vector stores: the broker's) and Gemini's (Live tokens
    # only: service.gemini's), apart: each tenant is in one of the two.
    upstreams: dict[str, Upstream] = {}
    gemini: dict[str, GeminiUpstream] = {}
    for tenant in settings.tenants:
        tenant_transport = per_tenant.get(tenant.id, transport)
        observer = metrics.upstream_observer(tenant.id)
        if tenant.upstream == "gemini":
            client = build_gemini_upstream(tenant, transport=tenant_transport, observer=observer)
            gemini[tenant.id] = client
            closers.append(client.aclose)
        else:
            upstream = build_upstream(tenant, transport=tenant_transport, observer=observer)
            upstreams[tenant.id] = upstream
            closers.append(upstream.aclose)
    spend_gate = SpendGate(call_store.ledger, clock=clock)
    broker = Broker(
        settings,
        store=state_store,
        authenticator=authenticator,
        upstreams=upstreams,
        metrics=metrics,
        clock=clock,
        # Mints, placements and Live sessions are refused for money (DESIGN 11), read
        # from call control's ledger.
        spend=spend_gate,
    )

    # The sidebands' keepalive, driven by the call scheduler (service.calls.sideband).
    keepalive = Keepalive()
    calls = CallController(
        store=call_store,
        connector=options.connector or sideband_connector(settings, keepalive),
        keepalive=keepalive,
        upstreams=upstreams,
        tenants=settings.tenants,
        clock=clock,
        is_revoked=revocation_check(state_store),
        # Failing open keeps revocations: the store's own copy, kept fresh by call control.
        revocations=state_store if isinstance(state_store, FailureAwareStore) else None,
        options=options,
        metrics=metrics,
    )
    # Made last, so closed first: handing calls over (or hanging them up) needs the
    # stores and the upstream clients still open.
    closers.append(calls.aclose)
    metrics.watch_calls(lambda: len(calls))
    # A spend limit changed or reached on any replica: the doors read it again at once.
    calls.spending.limit_listeners.append(spend_gate.changed)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Everything made is closed, last made first, each even when another's close
        # raises (the exit stack raises the last failure once all are closed); a
        # startup that fails closes them too.
        async with contextlib.AsyncExitStack() as stack:
            for close in closers:
                stack.push_async_callback(close)
            # user_hash's keys before anything is logged or sent upstream (README "Logs").
            hash_keys = UserHashKeys({t.id: t.user_hash_key for t in settings.tenants}, state_store)
            stack.push_async_callback(hash_keys.aclose)
            await hash_keys.start()
            # Supervision starts with the app: a replica that starts adopts orphaned calls.
            calls.start()
            yield

    # Each route carries its OpenAPI operations (web.openapi.DocumentedRoute).
    routes: list[BaseRoute] = [*health_routes(), *mint_routes()]
    if settings.metrics_port is None:
        # Otherwise on a port of its own (create_metrics_app, served by the CLI).
        routes.append(DocumentedRoute("/metrics", metrics_endpoint, get=METRICS))
    routes += admin_routes(clock=clock)
    routes += call_routes(clock=clock)
    routes += relay_routes()
    routes += live_routes()
    routes += gemini_routes()
    routes += vector_store_routes()
    routes += usage_routes(clock=clock)
    routes += openapi_routes()
    if settings.dev:
        # The demo page and its token endpoint exist only in dev mode.
        routes += demo_routes(settings, clock=clock)
    app = Starlette(
        routes=routes,
        # CORS outermost, so that it sees every response, even the 500 that
        # RequestContextMiddleware renders for an unexpected error.
        middleware=[
            Middleware(
                CORSMiddleware,
                origins={tenant.id: tenant.cors_origins for tenant in settings.tenants},
            ),
            Middleware(RequestContextMiddleware, on_request=_request_observer(metrics)),
        ],
        exception_handlers={
            BrokerError: broker_error_handler,
            HTTPException: http_exception_handler,
        },
        lifespan=lifespan,
    )
    app.state.broker = broker
    app.state.gemini_minting = GeminiMinting(broker, gemini)
    app.state.calls = calls
    app.state.relays = calls.relays
    app.state.metrics = metrics
    app.state.settings = settings
    return app
