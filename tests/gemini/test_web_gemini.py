"""POST /v1alpha/auth_tokens end to end over ASGI: a Gemini tenant beside an OpenAI one,
Google's `auth_tokens` a recording stand-in, the memory store, a manual clock."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest

from service.gemini.times import format_time, parse_time
from service.timing import parse_server_timing
from tests.gemini.conftest import (
    ADMIN_KEY,
    GEMINI_KEY,
    MODEL,
    POLICY,
    Harness,
    gemini_settings,
    harness_for,
)
from tests.test_metrics import sample

SETUP: dict[str, Any] = {
    "model": f"models/{MODEL}",
    "generationConfig": {
        "responseModalities": ["AUDIO"],
        "temperature": 0.8,
        "speechConfig": {"voiceConfig": {"prebuiltVoiceConfig": {"voiceName": "Puck"}}},
    },
    "systemInstruction": {"parts": [{"text": "Be brief."}]},
}


def google_error(response: httpx.Response, status: str) -> dict[str, Any]:
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == response.status_code
    assert error["status"] == status
    assert isinstance(error["message"], str)
    assert error["message"]
    return error


async def test_a_mint_returns_googles_token_with_the_locked_setup(harness: Harness) -> None:
    response = await harness.mint({"bidiGenerateContentSetup": SETUP})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["name"] == "auth_tokens/token-1"
    assert body["uses"] == 1
    assert parse_time(body["expireTime"], "t") == harness.clock.now + 120  # the role's default
    assert parse_time(body["newSessionExpireTime"], "t") == harness.clock.now + 60
    setup = body["bidiGenerateContentSetup"]
    assert setup["model"] == f"models/{MODEL}"
    assert setup["systemInstruction"] == {
        "parts": [{"text": "You are the Acme assistant.\n\nBe brief."}]
    }
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["ratelimit-limit"] == "3"
    assert response.headers["ratelimit-remaining"] == "2"
    assert response.headers["x-policy-adjusted"] == "bidiGenerateContentSetup.systemInstruction"
    phases = parse_server_timing(response.headers["server-timing"])
    assert list(phases) == ["jwt", "policy", "store", "upstream", "codec"]


async def test_upstream_gets_the_policy_whole_setup_locked_with_the_tenants_key(
    harness: Harness,
) -> None:
    jwt = harness.token()
    body = {
        "uses": 0,
        "expireTime": format_time(harness.clock.now + 86_400),
        "newSessionExpireTime": format_time(harness.clock.now + 3_600),
        "fieldMask": "generationConfig.temperature",
        "bidiGenerateContentSetup": {**SETUP, "model": "gemini-ultra"},
    }

    response = await harness.client.post(
        "/v1alpha/auth_tokens", json=body, headers={"x-goog-api-key": jwt}
    )

    assert response.status_code == 200, response.text
    [request] = harness.gemini.requests
    assert str(request.url) == "https://generativelanguage.googleapis.com/v1alpha/auth_tokens"
    assert request.headers["x-goog-api-key"] == GEMINI_KEY
    assert "authorization" not in request.headers
    assert jwt not in request.content.decode()
    assert jwt not in str(request.headers)
    sent = harness.gemini.bodies()[0]
    assert set(sent) == {"uses", "expireTime", "newSessionExpireTime", "bidiGenerateContentSetup"}
    assert sent["uses"] == 1
    assert parse_time(sent["expireTime"], "t") == harness.clock.now + 600  # the role's max
    assert parse_time(sent["newSessionExpireTime"], "t") == harness.clock.now + 60
    assert sent["bidiGenerateContentSetup"] == response.json()["bidiGenerateContentSetup"]
    assert sent["bidiGenerateContentSetup"]["model"] == f"models/{MODEL}"
    adjusted = response.headers["x-policy-adjusted"].split(",")
    assert {"uses", "expireTime", "newSessionExpireTime", "fieldMask"} <= set(adjusted)
    assert "bidiGenerateContentSetup.model" in adjusted


async def test_a_role_with_max_call_seconds_gets_tokens_that_last_as_long(
    harness: Harness,
) -> None:
    response = await harness.mint({"bidiGenerateContentSetup": {"model": MODEL}}, role="agent")

    assert response.status_code == 200, response.text
    assert parse_time(response.json()["expireTime"], "t") == harness.clock.now + 900


async def test_v1beta_is_served_too_and_upstream_gets_the_tenants_api_version() -> None:
    async with harness_for(gemini_settings(GEMINI_GEMINI_API_VERSION="v1beta")) as harness:
        response = await harness.mint({}, path="/v1beta/auth_tokens")
        alpha = await harness.mint({}, path="/v1alpha/auth_tokens")

    assert response.status_code == alpha.status_code == 200, response.text
    assert [r.url.path for r in harness.gemini.requests] == ["/v1beta/auth_tokens"] * 2


async def test_the_jwt_may_come_as_a_bearer_token_but_not_in_both_places(
    harness: Harness,
) -> None:
    jwt = harness.token()
    bearer = await harness.client.post(
        "/v1alpha/auth_tokens", json={}, headers={"Authorization": f"Bearer {jwt}"}
    )
    both = await harness.client.post(
        "/v1alpha/auth_tokens",
        json={},
        headers={"Authorization": f"Bearer {jwt}", "x-goog-api-key": jwt},
    )

    assert bearer.status_code == 200, bearer.text
    assert both.status_code == 401
    google_error(both, "UNAUTHENTICATED")


async def test_a_bad_jwt_is_a_google_401_and_nothing_is_read_or_sent(harness: Harness) -> None:
    response = await harness.client.post(
        "/v1alpha/auth_tokens", content=b"not json", headers={"x-goog-api-key": "not-a-jwt"}
    )

    assert response.status_code == 401
    error = google_error(response, "UNAUTHENTICATED")
    assert error["details"][0]["reason"] == "INVALID_TOKEN"
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert harness.gemini.requests == []


async def test_a_spent_rate_limit_is_a_google_429_with_its_retry_delay(harness: Harness) -> None:
    for _ in range(3):
        assert (await harness.mint()).status_code == 200

    response = await harness.mint()

    assert response.status_code == 429
    error = google_error(response, "RESOURCE_EXHAUSTED")
    retry = int(response.headers["retry-after"])
    assert {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{retry}s"} in (
        error["details"]
    )
    assert len(harness.gemini.requests) == 3


async def test_reject_mode_refuses_naming_the_field_sends_nothing_and_charges_nothing() -> None:
    policy = {**POLICY, "on_violation": "reject"}
    async with harness_for(gemini_settings(policy)) as harness:
        refused = await harness.mint({"bidiGenerateContentSetup": {**SETUP, "model": "other"}})
        minted = await harness.mint({"bidiGenerateContentSetup": SETUP})

    assert refused.status_code == 400
    error = google_error(refused, "INVALID_ARGUMENT")
    assert error["details"][0]["reason"] == "POLICY_VIOLATION"
    violation = error["details"][1]["fieldViolations"][0]
    assert violation["field"] == "bidiGenerateContentSetup.model"
    assert len(harness.gemini.requests) == 1  # the second mint's only
    # The refusal took nothing from the limit: the mint after it is the first counted.
    assert minted.headers["ratelimit-remaining"] == "2"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (
            {"bidiGenerateContentSetup": {"model": MODEL, "voice": "x"}},
            "bidiGenerateContentSetup.voice",
        ),
        ({"name": "auth_tokens/mine"}, "name"),
        ({"expireTime": "2030-01-01T00:00:00"}, "expireTime"),
        ({"uses": "many"}, "uses"),
    ],
)
async def test_unknown_fields_and_bad_values_are_400s_that_name_them(
    harness: Harness, body: dict[str, Any], param: str
) -> None:
    response = await harness.mint(body)

    assert response.status_code == 400
    error = google_error(response, "INVALID_ARGUMENT")
    assert error["details"][0]["metadata"] == {"param": param}
    assert harness.gemini.requests == []


async def test_a_revoked_user_and_a_role_without_mints_are_google_403s(harness: Harness) -> None:
    assert (await harness.mint(sub="bob")).status_code == 200  # seen, then revoked
    revoked = await harness.client.delete(
        "/v1/organization/users/bob", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
    )
    assert revoked.status_code == 200, revoked.text

    refused = await harness.mint(sub="bob")
    forbidden = await harness.mint(role="locked_out")

    assert refused.status_code == forbidden.status_code == 403
    assert google_error(refused, "PERMISSION_DENIED")["details"][0]["reason"] == "USER_REVOKED"
    assert google_error(forbidden, "PERMISSION_DENIED")["details"][0]["reason"] == "ROLE_FORBIDDEN"
    assert len(harness.gemini.requests) == 1


async def test_an_upstream_failure_is_a_google_error_and_refunds_the_mint(
    harness: Harness,
) -> None:
    harness.gemini.reply = lambda request: httpx.Response(
        400, json={"error": {"code": 400, "message": "Bad setup.", "status": "INVALID_ARGUMENT"}}
    )
    refused = await harness.mint()
    harness.gemini.reply = lambda request: httpx.Response(403, json={})
    misconfigured = await harness.mint()
    harness.gemini.reply = None

    minted = await harness.mint()

    assert refused.status_code == 400
    assert google_error(refused, "INVALID_ARGUMENT")["message"] == "Bad setup."
    assert misconfigured.status_code == 502
    google_error(misconfigured, "UNKNOWN")
    assert minted.headers["ratelimit-remaining"] == "2"


async def test_a_body_over_the_limit_is_a_google_413(harness: Harness) -> None:
    response = await harness.client.post(
        "/v1alpha/auth_tokens",
        content=b"{" + b" " * 70_000 + b"}",
        headers={"x-goog-api-key": harness.token(), "Content-Type": "application/json"},
    )

    assert response.status_code == 413
    google_error(response, "INVALID_ARGUMENT")


async def test_each_tenant_refuses_the_others_routes_and_minting_goes_on_beside(
    harness: Harness,
) -> None:
    openai_jwt = harness.token(tenant="openai")
    gemini_jwt = harness.token()

    wrong_gemini = await harness.client.post(
        "/v1alpha/auth_tokens", json={}, headers={"x-goog-api-key": openai_jwt}
    )
    wrong_openai = [
        await harness.client.post(path, json={}, headers={"Authorization": f"Bearer {gemini_jwt}"})
        for path in (
            "/v1/realtime/client_secrets",
            "/v1/realtime/sessions",
            "/v1/realtime/calls",
            "/v1/live/sessions",
            "/v1/vector_stores",
        )
    ]
    secret = await harness.client.post(
        "/v1/realtime/client_secrets",
        json={"session": {"type": "realtime"}},
        headers={"Authorization": f"Bearer {openai_jwt}"},
    )
    token = await harness.mint()

    assert wrong_gemini.status_code == 404
    assert "client_secrets" in google_error(wrong_gemini, "NOT_FOUND")["message"]
    for response in wrong_openai:
        assert response.status_code == 404, response.text
        assert "/v1alpha/auth_tokens" in response.json()["error"]["message"]
    assert secret.status_code == 200, secret.text
    assert secret.json()["value"] == "ek_test_openai"
    assert token.status_code == 200, token.text
    assert len(harness.openai_requests) == 1
    assert len(harness.gemini.requests) == 1
    assert (
        harness.openai_requests[0].headers["authorization"]
        == "Bearer openai-upstream-test-key-0123456789"
    )


async def test_mints_are_counted_audited_and_timed_as_every_mint(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="service.audit.mint"):
        ok = await harness.mint()
    refused = await harness.mint({"uses": -1})

    assert ok.status_code == 200
    assert refused.status_code == 400
    metrics = (await harness.client.get("/metrics")).text
    assert sample(metrics, "broker_mints_total", tenant="gemini", outcome="ok") == 1
    assert sample(metrics, "broker_mints_total", tenant="gemini", outcome="invalid_request") == 1
    assert sample(metrics, "broker_upstream_latency_seconds_count", tenant="gemini") == 1
    [audit] = [r for r in caplog.records if r.name == "service.audit.mint"]
    assert audit.endpoint == "auth_tokens"  # type: ignore[attr-defined]
    assert audit.tenant == "gemini"  # type: ignore[attr-defined]
    assert audit.expires_at == harness.clock.now + 120  # type: ignore[attr-defined]
    assert harness.token() not in caplog.text


async def test_a_gemini_mint_gets_its_tenants_cors_headers() -> None:
    origin = "https://app.gemini.example"
    async with harness_for(gemini_settings(GEMINI_CORS_ORIGINS=origin)) as harness:
        preflight = await harness.client.options(
            "/v1alpha/auth_tokens",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type, x-goog-api-key, x-goog-api-client",
            },
        )
        minted = await harness.client.post(
            "/v1alpha/auth_tokens",
            json={},
            headers={"x-goog-api-key": harness.token(), "Origin": origin},
        )

    assert preflight.status_code == 204
    assert "x-goog-api-key" in preflight.headers["access-control-allow-headers"]
    assert minted.status_code == 200, minted.text
    assert minted.headers["access-control-allow-origin"] == origin


async def test_empty_modalities_get_the_roles_modality_and_no_default_voice() -> None:
    """`responseModalities: []` is unset to Google (AUDIO, the default voice): it must
    get neither around `modalities` nor around `voices`."""
    reader = {**POLICY["roles"]["reader"], "modalities": ["text"], "voices": ["Kore"]}
    policy = {**POLICY, "roles": {**POLICY["roles"], "reader": reader}}
    empty = {"model": MODEL, "generationConfig": {"responseModalities": []}}
    async with harness_for(gemini_settings(policy)) as harness:
        response = await harness.mint({"bidiGenerateContentSetup": empty})

    assert response.status_code == 200, response.text
    [sent] = harness.gemini.bodies()
    generation = sent["bidiGenerateContentSetup"]["generationConfig"]
    assert generation["responseModalities"] == ["TEXT"]
    assert "speechConfig" not in generation


async def test_a_number_out_of_range_is_a_400_naming_it_before_anything_is_spent(
    harness: Harness,
) -> None:
    raw = b'{"bidiGenerateContentSetup":{"model":"x","generationConfig":{"topP":1e999}}}'

    refused = await harness.client.post(
        "/v1alpha/auth_tokens", content=raw, headers={"x-goog-api-key": harness.token()}
    )
    minted = await harness.mint()

    assert refused.status_code == 400
    error = google_error(refused, "INVALID_ARGUMENT")
    violation = error["details"][1]["fieldViolations"][0]
    assert violation["field"] == "bidiGenerateContentSetup.generationConfig.topP"
    assert len(harness.gemini.requests) == 1  # the second mint's only
    assert minted.headers["ratelimit-remaining"] == "2"


async def test_an_unexpected_error_is_a_google_500_that_refunds_and_counts_the_mint(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(request: httpx.Request) -> httpx.Response:
        raise RuntimeError("a bug")

    harness.gemini.reply = broken
    with caplog.at_level(logging.ERROR, logger="service.web"):
        failed = await harness.mint()
    harness.gemini.reply = None
    minted = await harness.mint()

    assert failed.status_code == 500
    error = google_error(failed, "INTERNAL")
    assert "a bug" not in error["message"]
    assert failed.headers["x-request-id"]
    assert [r.getMessage() for r in caplog.records] == ["unhandled error"]
    assert minted.headers["ratelimit-remaining"] == "2"  # the failed mint was given back
    metrics = (await harness.client.get("/metrics")).text
    assert sample(metrics, "broker_mints_total", tenant="gemini", outcome="other") == 1


async def test_mcp_servers_are_refused_even_when_the_role_allows_the_name() -> None:
    """`tools.allow` lists function names and tool kinds alike: `mcpServers` there would
    let a client name a server (its URL, its headers) that Google calls."""
    reader = {**POLICY["roles"]["reader"], "tools": {"allow": ["mcpServers"]}}
    policy = {**POLICY, "roles": {**POLICY["roles"], "reader": reader}}
    tools = [{"mcpServers": [{"name": "x", "streamableHttpTransport": {"url": "https://x"}}]}]
    async with harness_for(gemini_settings(policy)) as harness:
        response = await harness.mint(
            {"bidiGenerateContentSetup": {"model": MODEL, "tools": tools}}
        )

    assert response.status_code == 400
    error = google_error(response, "INVALID_ARGUMENT")
    assert error["details"][0]["reason"] == "POLICY_VIOLATION"
    assert error["details"][1]["fieldViolations"][0]["field"] == (
        "bidiGenerateContentSetup.tools[0].mcpServers"
    )
    assert harness.gemini.requests == []
