"""CORS per tenant, end to end over ASGI, on success and error responses alike."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.auth.tokens import sign_dev_token
from service.clock import ManualClock
from service.config.settings import load_settings
from service.dev import create_dev_app
from service.web.cors import MAX_TRACKED_ORIGINS, CORSMiddleware, RefusalLog
from tests.eventually import eventually

ACME_SECRET = "acme-jwt-secret-0123456789-abcdefghij"
GLOBEX_SECRET = "globex-jwt-secret-0123456789-abcdefgh"
ACME_ORIGIN = "https://app.acme.example"
GLOBEX_ORIGIN = "https://app.globex.example"
EVIL_ORIGIN = "https://evil.example"
MINT = "/v1/realtime/client_secrets"
EXPOSED = {
    "location",
    "server-timing",
    "retry-after",
    "x-request-id",
    "x-policy-adjusted",
    "ratelimit-limit",
    "ratelimit-remaining",
    "ratelimit-reset",
}


def acme_token(sub: str = "alice") -> str:
    return sign_dev_token(
        ACME_SECRET,
        sub=sub,
        role="reader",
        now=time.time(),
        issuer="https://acme.example",
        audience="broker",
    )


@pytest.fixture
def app() -> Starlette:
    env = {
        "BROKER_TENANTS": "acme,globex",
        "BROKER_UPSTREAM": "fake",
        "BROKER_ACME_CORS_ORIGINS": ACME_ORIGIN,
        "BROKER_GLOBEX_CORS_ORIGINS": GLOBEX_ORIGIN,
        "BROKER_POLICY": '{"roles": {"reader": {"limits": ["1/minute"]}}}',
    }
    for tenant, secret in (("acme", ACME_SECRET), ("globex", GLOBEX_SECRET)):
        env[f"BROKER_{tenant.upper()}_JWT_SECRET"] = secret
        env[f"BROKER_{tenant.upper()}_JWT_ISSUER"] = f"https://{tenant}.example"
        env[f"BROKER_{tenant.upper()}_JWT_AUDIENCE"] = "broker"
    return create_dev_app(load_settings(env))


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://broker") as c:
        yield c


def assert_cors(response: httpx.Response, origin: str) -> None:
    assert response.headers["access-control-allow-origin"] == origin
    exposed = {
        h.strip().lower() for h in response.headers["access-control-expose-headers"].split(",")
    }
    assert exposed == EXPOSED
    assert "origin" in response.headers["vary"].lower()
    assert "access-control-allow-credentials" not in response.headers


def assert_no_cors(response: httpx.Response) -> None:
    assert not [name for name in response.headers if name.lower().startswith("access-control-")]


async def test_a_mint_from_the_tenants_origin_gets_cors_headers(
    client: httpx.AsyncClient,
) -> None:
    headers = {"Authorization": f"Bearer {acme_token()}", "Origin": ACME_ORIGIN}
    response = await client.post(MINT, json={}, headers=headers)
    assert response.status_code == 200
    assert_cors(response, ACME_ORIGIN)


async def test_401_404_and_429_carry_cors_headers_too(client: httpx.AsyncClient) -> None:
    unauthorized = await client.post(MINT, json={}, headers={"Origin": ACME_ORIGIN})
    missing = await client.get("/no/such/route", headers={"Origin": GLOBEX_ORIGIN})
    headers = {"Authorization": f"Bearer {acme_token('busy')}", "Origin": ACME_ORIGIN}
    first = await client.post(MINT, json={}, headers=headers)
    limited = await client.post(MINT, json={}, headers=headers)
    assert (unauthorized.status_code, missing.status_code) == (401, 404)
    assert (first.status_code, limited.status_code) == (200, 429)
    assert_cors(unauthorized, ACME_ORIGIN)
    assert_cors(missing, GLOBEX_ORIGIN)
    assert_cors(limited, ACME_ORIGIN)
    assert "retry-after" in limited.headers


async def test_an_authenticated_request_needs_its_own_tenants_origin(
    client: httpx.AsyncClient,
) -> None:
    # globex's origin is allowed for someone, but this token is acme's.
    headers = {"Authorization": f"Bearer {acme_token()}", "Origin": GLOBEX_ORIGIN}
    response = await client.post(MINT, json={}, headers=headers)
    assert response.status_code == 200
    assert_no_cors(response)


async def test_a_disallowed_origin_gets_no_cors_headers(client: httpx.AsyncClient) -> None:
    headers = {"Authorization": f"Bearer {acme_token()}", "Origin": EVIL_ORIGIN}
    minted = await client.post(MINT, json={}, headers=headers)
    refused = await client.post(MINT, json={}, headers={"Origin": EVIL_ORIGIN})
    preflight = await client.options(
        MINT, headers={"Origin": EVIL_ORIGIN, "Access-Control-Request-Method": "POST"}
    )
    assert minted.status_code == 200
    for response in (minted, refused, preflight):
        assert_no_cors(response)


async def test_preflight_from_an_allowed_origin(client: httpx.AsyncClient) -> None:
    requested = "authorization, content-type, x-stainless-os, x-stainless-retry-count"
    response = await client.options(
        MINT,
        headers={
            "Origin": ACME_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": requested,
            "X-Request-ID": "pre-1",
        },
    )
    assert response.status_code == 204
    assert_cors(response, ACME_ORIGIN)
    methods = {m.strip() for m in response.headers["access-control-allow-methods"].split(",")}
    assert {"GET", "POST", "DELETE", "OPTIONS"} <= methods
    assert response.headers["access-control-allow-headers"] == requested
    assert int(response.headers["access-control-max-age"]) > 0
    assert response.headers["x-request-id"] == "pre-1"


async def test_preflight_without_requested_headers_allows_the_sdk_defaults(
    client: httpx.AsyncClient,
) -> None:
    response = await client.options(
        MINT, headers={"Origin": GLOBEX_ORIGIN, "Access-Control-Request-Method": "POST"}
    )
    allowed = {
        h.strip().lower() for h in response.headers["access-control-allow-headers"].split(",")
    }
    assert {"authorization", "content-type", "x-request-id", "openai-beta"} <= allowed
    # Google's SDKs send their key (here the app JWT) in x-goog-api-key.
    assert {"x-goog-api-key", "x-goog-api-client"} <= allowed


async def test_preflight_for_a_gemini_mint_allows_googles_sdk_headers(
    client: httpx.AsyncClient,
) -> None:
    requested = "content-type, x-goog-api-client, x-goog-api-key"
    response = await client.options(
        "/v1alpha/auth_tokens",
        headers={
            "Origin": ACME_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": requested,
        },
    )
    assert response.status_code == 204
    assert_cors(response, ACME_ORIGIN)
    assert response.headers["access-control-allow-headers"] == requested


async def test_without_configured_origins_there_are_no_cors_headers() -> None:
    env = {"BROKER_UPSTREAM": "fake", "BROKER_JWT_SECRET": ACME_SECRET}
    app = create_dev_app(load_settings(env))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://broker"
    ) as client:
        response = await client.get("/healthz", headers={"Origin": ACME_ORIGIN})
    assert response.status_code == 200
    assert_no_cors(response)


async def test_a_star_allows_any_origin_without_credentials() -> None:
    async def ok(request: Request) -> Response:
        return Response("ok")

    app = CORSMiddleware(Starlette(routes=[Route("/", ok)]), origins={"t": ("*",)})
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://broker"
    ) as client:
        response = await client.get("/", headers={"Origin": EVIL_ORIGIN})
    assert_cors(response, EVIL_ORIGIN)


# --- dev mode's local frontends, and refusals that say why ---------------------------


def dev_app() -> Starlette:
    from service.cli import dev_environ

    env = dev_environ({"BROKER_JWT_SECRET": ACME_SECRET})
    return create_dev_app(load_settings(env))


async def test_a_local_page_mints_against_dev_mode_with_no_setting() -> None:
    origin = "http://localhost:5173"
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=dev_app()), base_url="http://127.0.0.1:8080"
    ) as client:
        preflight = await client.options(
            MINT,
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )
        token = sign_dev_token(ACME_SECRET, sub="dev", role="reader", now=time.time())
        minted = await client.post(
            MINT, json={}, headers={"Origin": origin, "Authorization": f"Bearer {token}"}
        )
        other_port = await client.options(
            MINT,
            headers={"Origin": "http://127.0.0.1:3000", "Access-Control-Request-Method": "POST"},
        )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == origin
    assert minted.status_code == 200
    assert minted.headers["access-control-allow-origin"] == origin
    assert other_port.status_code == 204


async def test_a_preflight_from_an_origin_not_allowed_is_403_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=dev_app()), base_url="http://broker"
    ) as client:
        refused = await client.options(
            MINT,
            headers={
                "Origin": EVIL_ORIGIN,
                "Access-Control-Request-Method": "POST",
                "X-Request-ID": "refused-1",
            },
        )
        # Production with no origin configured answers the same way, not 405.
    assert refused.status_code == 403
    assert refused.json() == {
        "error": {
            "message": "This origin is not allowed to call the broker: its operator lists "
            "allowed origins in BROKER_CORS_ORIGINS.",
            "type": "permission_error",
            "param": None,
            "code": "origin_not_allowed",
        }
    }
    assert refused.headers["content-type"] == "application/json"
    assert refused.headers["x-request-id"] == "refused-1"
    assert refused.headers["vary"] == "Origin"
    assert "access-control-allow-origin" not in refused.headers
    assert any("BROKER_CORS_ORIGINS" in r.getMessage() for r in caplog.records)


def test_a_wildcard_port_is_one_hosts_any_port_only() -> None:
    cors = CORSMiddleware(Starlette(), origins={"t": ["http://localhost:*"]})
    assert cors.allowed("http://localhost:5173", None)
    assert not cors.allowed("http://localhost.evil.example:5173", None)
    assert not cors.allowed("http://evil.example:5173", None)
    assert not cors.allowed("https://localhost:5173", None)


# --- refusals: bounded memory, bounded log lines ----------------------------------------


def refusal_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "service.web.cors"]


async def test_a_flood_of_refused_origins_is_one_line_per_interval_and_bounded_memory(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = ManualClock(0.0)
    refusals = RefusalLog(logging.getLogger("service.web.cors"), clock=clock)
    cors = CORSMiddleware(Starlette(), origins={"t": [ACME_ORIGIN]}, refusals=refusals)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=cors), base_url="http://broker"
    ) as client:
        for n in range(1500):
            refused = await client.options(
                MINT,
                headers={
                    "Origin": f"https://o{n}.example",
                    "Access-Control-Request-Method": "POST",
                },
            )
            assert refused.status_code == 403
        during = refusal_lines(caplog)
        assert refusals.tracked == MAX_TRACKED_ORIGINS  # not 1,499

        clock.advance(61)  # the interval is over: the next refusal sums it up
        await client.options(
            MINT, headers={"Origin": EVIL_ORIGIN, "Access-Control-Request-Method": "POST"}
        )

    assert len(during) == 1
    assert "https://o0.example" in during[0]
    assert "BROKER_CORS_ORIGINS" in during[0]
    (summary,) = refusal_lines(caplog)[1:]
    assert "1499 more preflights refused" in summary
    assert f"from {MAX_TRACKED_ORIGINS}+ distinct origins" in summary
    assert "e.g. https://o1.example, https://o2.example, https://o3.example)" in summary
    assert "BROKER_CORS_ORIGINS" in summary
    assert refusals.tracked == 1  # the new interval counts only the refusal after it


async def test_the_summary_is_written_when_the_interval_ends_without_another_refusal(
    caplog: pytest.LogCaptureFixture,
) -> None:
    refusals = RefusalLog(logging.getLogger("service.web.cors"), interval=0.01)
    for origin in ("https://a.example", "https://b.example", "https://b.example"):
        refusals.refused(origin)
    assert len(refusal_lines(caplog)) == 1

    # A timer on this loop writes it.
    await eventually(lambda: len(refusal_lines(caplog)) >= 2, seconds=5, what="the summary line")

    assert "2 more preflights refused" in refusal_lines(caplog)[1]
    assert "from 1 distinct origins (e.g. https://b.example)" in refusal_lines(caplog)[1]
    assert refusals.tracked == 0


def test_a_quiet_interval_logs_the_next_refusal_at_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = ManualClock(0.0)
    refusals = RefusalLog(logging.getLogger("service.web.cors"), clock=clock)
    refusals.refused("https://a.example")
    clock.advance(61)
    refusals.refused("https://b.example")
    lines = refusal_lines(caplog)
    assert len(lines) == 2
    assert all("was refused" in line for line in lines)
