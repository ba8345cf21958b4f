"""Metrics: the Metrics class on its own, then /metrics of a real app over ASGI."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette

from service.auth.tokens import sign_dev_token
from service.dev import create_dev_app
from service.errors import (
    InvalidToken,
    RateLimited,
    StoreUnavailable,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from service.metrics import CONTENT_TYPE, Metrics, mint_outcome, upstream_error_kind
from service.stores.base import Admission, AdmitRequest
from service.stores.memory import MemoryStore
from service.stores.resilient import FailureAwareStore
from service.web.app import create_metrics_app
from tests.calls.conftest import ADMIN_KEY, close_harness, dev_harness
from tests.calls.conftest import POLICY as CALLS_POLICY
from tests.web.conftest import SECRET, TokenFactory, make_settings

MINT = "/v1/realtime/client_secrets"


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample of an exposition, 0 when absent."""
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return 0.0


def auth(jwt: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {jwt}"}


async def scrape(client: httpx.AsyncClient) -> str:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == CONTENT_TYPE
    return response.text


def client_for(app: Starlette) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://broker")


@pytest.fixture
def token() -> TokenFactory:
    def make(sub: str = "alice", role: str | None = "reader") -> str:
        return sign_dev_token(SECRET, sub=sub, role=role, now=time.time())

    return make


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(create_dev_app(make_settings())) as c:
        yield c


# --- the Metrics class -----------------------------------------------------------------


def test_mint_outcomes_and_upstream_kinds_are_bounded_names() -> None:
    assert mint_outcome(None) == "ok"
    assert mint_outcome(InvalidToken()) == "unauthorized"
    assert mint_outcome(RateLimited(retry_after=1.0)) == "rate_limited"
    assert mint_outcome(UpstreamTimeout("t")) == "upstream_timeout"
    assert mint_outcome(ValueError("x")) == "other"
    assert upstream_error_kind(UpstreamUnavailable("u")) == "unavailable"
    assert upstream_error_kind(UpstreamError("e")) == "error"


def test_each_metrics_object_has_its_own_registry() -> None:
    first, second = Metrics(["acme"]), Metrics(["acme"])
    first.mint("acme")
    assert sample(first.render().decode(), "broker_mints_total", tenant="acme") == 1
    assert sample(second.render().decode(), "broker_mints_total", tenant="acme") == 0


def test_unconfigured_tenants_and_odd_methods_do_not_make_new_labels() -> None:
    metrics = Metrics(["acme"])
    metrics.mint("not-a-tenant", InvalidToken())
    metrics.request(None, "BREW", 418, 0.01)
    text = metrics.render().decode()
    assert "not-a-tenant" not in text
    assert sample(text, "broker_mints_total", tenant="unknown", outcome="unauthorized") == 1
    labels = {"route": "other", "method": "other", "status_class": "4xx"}
    assert sample(text, "broker_request_duration_seconds_count", **labels) == 1


def test_jwks_refreshes_are_read_at_scrape_time() -> None:
    counts = {"acme": 1}
    metrics = Metrics(["acme"], jwks_refreshes=lambda: counts)
    assert sample(metrics.render().decode(), "broker_jwks_refreshes_total", tenant="acme") == 1
    counts["acme"] = 3
    assert sample(metrics.render().decode(), "broker_jwks_refreshes_total", tenant="acme") == 3


def test_call_metrics_have_their_names_and_bounded_labels() -> None:
    metrics = Metrics(["acme"])
    metrics.call_placed("acme", "realtime")
    metrics.call_placed("acme", "live")
    metrics.call_ended("acme", "max_call_seconds")
    metrics.call_ended("not-a-tenant", "ended_upstream")
    metrics.sideband_lost("acme")
    text = metrics.render().decode()
    assert sample(text, "broker_calls_total", tenant="acme", kind="realtime") == 1
    assert sample(text, "broker_calls_total", tenant="acme", kind="live") == 1
    ended = "broker_calls_ended_total"
    assert sample(text, ended, tenant="acme", reason="max_call_seconds") == 1
    assert sample(text, ended, tenant="unknown", reason="ended_upstream") == 1
    assert sample(text, "broker_call_sideband_losses_total", tenant="acme") == 1
    assert "not-a-tenant" not in text


# --- /metrics of an app ----------------------------------------------------------------


async def test_two_apps_do_not_share_counts(token: TokenFactory) -> None:
    async with (
        client_for(create_dev_app(make_settings())) as one,
        client_for(create_dev_app(make_settings())) as two,
    ):
        assert (await one.post(MINT, json={}, headers=auth(token()))).status_code == 200
        ok = {"tenant": "default", "outcome": "ok"}
        assert sample(await scrape(one), "broker_mints_total", **ok) == 1
        assert sample(await scrape(two), "broker_mints_total", **ok) == 0


async def test_with_a_metrics_port_the_api_does_not_serve_metrics(token: TokenFactory) -> None:
    app = create_dev_app(make_settings({"BROKER_METRICS_PORT": "9090"}))
    async with client_for(app) as api, client_for(create_metrics_app(app.state.metrics)) as port:
        assert (await api.post(MINT, json={}, headers=auth(token()))).status_code == 200
        hidden = await api.get("/metrics")
        text = await scrape(port)
        other = await port.get("/healthz")
    assert hidden.status_code == 404
    assert "default" not in hidden.text  # no tenant id on the API port
    assert sample(text, "broker_mints_total", tenant="default", outcome="ok") == 1
    assert other.status_code == 404  # the metrics port serves /metrics only


async def test_mints_decisions_and_upstream_latency_move(
    client: httpx.AsyncClient, token: TokenFactory
) -> None:
    jwt = token(sub="user-8f3a2c")
    statuses = [
        (await client.post(MINT, json={}, headers=auth(jwt))).status_code for _ in range(11)
    ]
    assert statuses == [200] * 10 + [429]
    assert (await client.post(MINT, json={}, headers=auth("nope"))).status_code == 401
    text = await scrape(client)
    mints = "broker_mints_total"
    assert sample(text, mints, tenant="default", outcome="ok") == 10
    assert sample(text, mints, tenant="default", outcome="rate_limited") == 1
    assert sample(text, mints, tenant="unknown", outcome="unauthorized") == 1
    decisions = "broker_rate_limit_decisions_total"
    assert sample(text, decisions, tenant="default", decision="allowed") == 10
    assert sample(text, decisions, tenant="default", decision="limited") == 1
    assert sample(text, "broker_upstream_latency_seconds_count", tenant="default") == 10
    assert "user-8f3a2c" not in text
    assert "user" not in {
        label for f in text_string_to_metric_families(text) for s in f.samples for label in s.labels
    }


async def test_a_mint_body_that_is_not_json_counts_as_an_invalid_request(
    client: httpx.AsyncClient, token: TokenFactory
) -> None:
    for body in (b"{", b"[]", b'{"session": {"type": "realtime", "bogus": 1}}'):
        response = await client.post(MINT, content=body, headers=auth(token()))
        assert response.status_code == 400
    text = await scrape(client)
    assert sample(text, "broker_mints_total", tenant="default", outcome="invalid_request") == 3
    assert sample(text, "broker_rate_limit_decisions_total", tenant="default") == 0


async def test_request_duration_is_labelled_by_route_template(
    client: httpx.AsyncClient, token: TokenFactory
) -> None:
    await client.get("/v1/organization/users/some-user-id", headers=auth(token()))
    await client.get("/no/such/route/42")
    text = await scrape(client)
    name = "broker_request_duration_seconds_count"
    template = "/v1/organization/users/{user_id:path}"
    assert sample(text, name, route=template, method="GET", status_class="4xx") == 1
    assert sample(text, name, route="other", method="GET", status_class="4xx") == 1
    assert "some-user-id" not in text
    assert "/no/such/route" not in text


async def test_upstream_errors_are_counted_by_kind(token: TokenFactory) -> None:
    def broken(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500, json={"error": {"message": "boom"}})

    settings = make_settings({"BROKER_UPSTREAM": "openai", "BROKER_UPSTREAM_API_KEY": "sk-test"})
    async with client_for(
        create_dev_app(settings, transport=httpx.MockTransport(broken))
    ) as client:
        assert (await client.post(MINT, json={}, headers=auth(token()))).status_code == 502
        text = await scrape(client)
    assert sample(text, "broker_upstream_errors_total", tenant="default", kind="error") == 1
    assert sample(text, "broker_upstream_latency_seconds_count", tenant="default") == 1
    assert sample(text, "broker_mints_total", tenant="default", outcome="upstream_error") == 1


class DownStore(MemoryStore):
    async def admit(self, request: AdmitRequest) -> Admission:
        raise StoreUnavailable("redis is down")


async def test_decisions_made_without_redis_are_counted_as_degraded(token: TokenFactory) -> None:
    policy = {"roles": {"reader": {"limits": ["2/minute"]}}}
    settings = make_settings({"BROKER_POLICY": json.dumps(policy)})
    fake_now = [1000.0]
    store = FailureAwareStore(
        DownStore(clock=lambda: fake_now[0]),
        failure_modes={"default": "open"},
        clock=lambda: fake_now[0],
    )
    async with client_for(create_dev_app(settings, store=store)) as client:
        statuses = [
            (await client.post(MINT, json={}, headers=auth(token()))).status_code for _ in range(3)
        ]
        text = await scrape(client)
    assert statuses == [200, 200, 429]
    decisions = "broker_rate_limit_decisions_total"
    assert sample(text, decisions, tenant="default", decision="degraded") == 3
    assert sample(text, decisions, tenant="default", decision="allowed") == 0


def test_collector_pauses_are_timed_by_generation() -> None:
    import gc

    metrics = Metrics(["default"])
    before = list(gc.callbacks)
    metrics.watch_gc()
    try:
        gc.collect()
    finally:
        gc.callbacks[:] = before  # process-wide: leave no hook behind
    text = metrics.render().decode()
    assert 'broker_gc_pause_seconds_count{generation="2"} 1.0' in text


async def test_calls_are_counted_placed_and_ended_and_an_end_is_not_a_sideband_loss() -> None:
    h = dev_harness(CALLS_POLICY)
    try:
        admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
        first = (await h.place()).headers["location"].rsplit("/", 1)[1]
        second = (await h.place(sub="bob")).headers["location"].rsplit("/", 1)[1]
        await h.joined(first)
        await h.joined(second)
        hung_up = await h.client.post(f"/v1/realtime/calls/{first}/hangup", headers=admin)
        assert hung_up.status_code == 200
        h.fake.hangup(second)  # the browser left: its sideband closes, and the call is over
        await h.until(lambda: h.controller.held("default") == [])
        text = h.app.state.metrics.render().decode()
    finally:
        await close_harness(h)
    assert sample(text, "broker_calls_total", tenant="default", kind="realtime") == 2
    ended = "broker_calls_ended_total"
    assert sample(text, ended, tenant="default", reason="admin") == 1
    assert sample(text, ended, tenant="default", reason="ended_upstream") == 1
    assert sample(text, "broker_call_sideband_losses_total", tenant="default") == 0


def test_every_exported_metric_is_in_the_readmes_table() -> None:
    import re
    from pathlib import Path

    from service.metrics import Metrics

    root = Path(__file__).resolve().parent.parent
    table = (root / "README.md").read_text().split("\n### Metrics", 1)[1].split("\n### ", 1)[0]
    listed = set(re.findall(r"^\| `(broker_[a-z_]+)`", table, flags=re.MULTILINE))
    metrics = Metrics(["default"])
    metrics.watch_gc()
    families = {family.name: family.type for family in metrics.registry.collect()}
    declared = set(re.findall(r'"(broker_[a-z_]+)"', (root / "service/metrics.py").read_text()))
    # Exposed names: a counter's ends in _total; one made on first use (JWKS refreshes) is
    # not in a fresh registry, and is a counter.
    exported = {
        f"{name}_total" if families.get(name, "counter") == "counter" else name
        for name in declared | set(families)
    }

    assert "broker_gc_pause_seconds" in exported
    assert exported - listed == set(), "add them to README's Metrics table"


def test_each_tenants_upstream_kind_is_a_series_to_join_on() -> None:
    from service.metrics import Metrics

    metrics = Metrics(["acme", "globex"], upstreams={"acme": "openai", "globex": "gemini"})
    metrics.mint("globex")
    text = metrics.render().decode()
    assert 'broker_tenant_info{tenant="acme",upstream="openai"} 1.0' in text
    assert 'broker_tenant_info{tenant="globex",upstream="gemini"} 1.0' in text
    assert 'broker_mints_total{outcome="ok",tenant="globex"} 1.0' in text
