"""The mint endpoints end to end over ASGI: fake upstream, memory store."""

from __future__ import annotations

import json
import logging
import time

import httpx
import httpx2
import openai
import pytest
from starlette.applications import Starlette

from service.auth.tokens import sign_dev_token
from service.dev import create_dev_app
from service.mint import plans as mint_plans
from service.redact import user_hash
from service.session.model import Endpoint
from service.timing import parse_server_timing
from tests.web.conftest import SECRET, TokenFactory, make_settings


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_ga_mint_returns_a_client_secret(
    client: httpx.AsyncClient, token: TokenFactory
) -> None:
    response = await client.post(
        "/v1/realtime/client_secrets",
        json={"session": {"type": "realtime"}},
        headers=auth(token()),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["value"].startswith("ek_")
    assert body["expires_at"] > time.time()
    assert body["session"]["type"] == "realtime"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["ratelimit-limit"] == "10"
    assert response.headers["ratelimit-remaining"] == "9"
    assert int(response.headers["ratelimit-reset"]) >= 1
    assert len(response.headers["x-request-id"]) >= 16


async def test_request_id_is_echoed_when_valid_and_replaced_when_not(
    client: httpx.AsyncClient,
) -> None:
    ok = await client.get("/healthz", headers={"X-Request-ID": "abc-123.x"})
    assert ok.headers["x-request-id"] == "abc-123.x"
    bad = await client.get("/healthz", headers={"X-Request-ID": "no spaces <allowed>"})
    assert bad.headers["x-request-id"] != "no spaces <allowed>"


async def test_the_official_sdk_mints_through_the_broker(
    app: Starlette, token: TokenFactory
) -> None:
    # The openai SDK 3.x speaks through httpx2 (HTTPX's successor), so its in-process
    # transport comes from there.
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport) as http:
        sdk = openai.AsyncOpenAI(
            base_url="http://broker/v1", api_key=token(), http_client=http, max_retries=0
        )
        ga = await sdk.realtime.client_secrets.create(
            session={"type": "realtime", "model": "gpt-realtime"},
            expires_after={"anchor": "created_at", "seconds": 120},
        )
        assert ga.value.startswith("ek_")
        beta = await sdk.beta.realtime.sessions.create(model="gpt-4o-realtime-preview")
        assert beta.client_secret.value.startswith("ek_")
        transcription = await sdk.beta.realtime.transcription_sessions.create(
            input_audio_transcription={"model": "gpt-4o-mini-transcribe"}
        )
        assert transcription.client_secret.value.startswith("ek_")


async def test_auth_failures_are_one_401_whatever_the_cause(
    client: httpx.AsyncClient, token: TokenFactory
) -> None:
    cases = [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer not.a.jwt"},
        {"Authorization": f"Bearer {token()}x"},
        auth(sign_dev_token(SECRET, sub="old", role=None, now=time.time() - 7200, ttl_seconds=60)),
        auth(
            sign_dev_token(
                "another-secret-of-at-least-32-bytes!!", sub="x", role=None, now=time.time()
            )
        ),
    ]
    bodies = set()
    for headers in cases:
        response = await client.post("/v1/realtime/client_secrets", json={}, headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
        assert response.json()["error"]["code"] == "invalid_token"
        bodies.add(response.text)
    assert len(bodies) == 1


async def test_doubled_authorization_header_is_refused(
    client: httpx.AsyncClient, token: TokenFactory
) -> None:
    value = f"Bearer {token()}"
    response = await client.post(
        "/v1/realtime/client_secrets",
        json={},
        headers=[("Authorization", value), ("Authorization", value)],
    )
    assert response.status_code == 401


async def test_over_the_limit_is_429_with_retry_after(
    client: httpx.AsyncClient, token: TokenFactory
) -> None:
    jwt = token(sub="busy")
    statuses = []
    for _ in range(11):
        response = await client.post("/v1/realtime/client_secrets", json={}, headers=auth(jwt))
        statuses.append(response.status_code)
    assert statuses == [200] * 10 + [429]
    assert response.json()["error"]["code"] == "rate_limit_exceeded"
    assert int(response.headers["retry-after"]) >= 1


BAD_BODIES: list[tuple[str, bytes, int, str]] = [
    ("not json", b"{nope", 400, "invalid_json"),
    ("array", b"[]", 400, "invalid_json"),
    ("string", b'"x"', 400, "invalid_json"),
    ("NaN", b'{"session": {"type": "realtime", "max_output_tokens": NaN}}', 400, "invalid_json"),
    ("Infinity", b'{"expires_after": {"seconds": Infinity}}', 400, "invalid_json"),
    ("invalid utf-8", b'{"session": {"instructions": "\xff\xfe"}}', 400, "invalid_json"),
    ("unknown field", b'{"sesion": {}}', 400, "unknown_parameter"),
    ("wrong type", b'{"session": {"type": "realtime", "model": 5}}', 400, "invalid_value"),
    (
        "long model",
        json.dumps({"session": {"type": "realtime", "model": "m" * 10_000}}).encode(),
        400,
        "invalid_value",
    ),
    ("huge", b'{"session": {"instructions": "' + b"a" * 70_000 + b'"}}', 413, "request_too_large"),
]


@pytest.mark.parametrize(
    ("name", "raw", "status", "code"), BAD_BODIES, ids=[b[0] for b in BAD_BODIES]
)
async def test_bad_input_gets_a_4xx_in_the_error_shape(
    client: httpx.AsyncClient, token: TokenFactory, name: str, raw: bytes, status: int, code: str
) -> None:
    response = await client.post(
        "/v1/realtime/client_secrets",
        content=raw,
        headers={
            **auth(token(sub=f"bad-{name.replace(' ', '-')}")),
            "Content-Type": "application/json",
        },
    )
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert set(error) == {"message", "type", "param", "code"}


async def test_policy_adjustments_are_reported(token: TokenFactory) -> None:
    policy = {
        "default_role": "reader",
        "on_violation": "clamp",
        "roles": {
            "reader": {
                "models": ["gpt-realtime-mini"],
                "voices": ["alloy", "verse"],
                "ttl_seconds": {"default": 60, "max": 300},
                "limits": ["5/minute"],
            }
        },
    }
    app = create_dev_app(make_settings({"BROKER_POLICY": json.dumps(policy)}))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://broker"
    ) as client:
        response = await client.post(
            "/v1/realtime/client_secrets",
            json={
                "expires_after": {"anchor": "created_at", "seconds": 3600},
                "session": {
                    "type": "realtime",
                    "model": "gpt-realtime",
                    "audio": {"output": {"voice": "ash"}},
                },
            },
            headers=auth(token()),
        )
    assert response.status_code == 200, response.text
    adjusted = set(response.headers["x-policy-adjusted"].split(","))
    assert {"session.model", "session.audio.output.voice", "expires_after.seconds"} <= adjusted
    body = response.json()
    assert body["session"]["model"] == "gpt-realtime-mini"
    assert body["session"]["audio"]["output"]["voice"] == "alloy"
    assert body["expires_at"] <= time.time() + 301


async def test_a_repeated_body_is_decoded_once_and_adjusted_every_time(
    token: TokenFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded: list[bytes] = []
    general = mint_plans.decode_body

    def counting(endpoint: Endpoint, raw: bytes) -> mint_plans.Requested:
        decoded.append(raw)
        return general(endpoint, raw)

    monkeypatch.setattr(mint_plans, "decode_body", counting)
    policy = {
        "default_role": "reader",
        "on_violation": "clamp",
        "roles": {"reader": {"models": ["gpt-realtime-mini"], "limits": ["50/minute"]}},
    }
    body = {"session": {"type": "realtime", "model": "gpt-realtime"}}
    app = create_dev_app(make_settings({"BROKER_POLICY": json.dumps(policy)}))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://broker"
    ) as client:
        responses = [
            await client.post("/v1/realtime/client_secrets", json=body, headers=auth(token()))
            for _ in range(3)
        ]
        refused = await client.post(
            "/v1/realtime/client_secrets",
            content=b'{"session": {"type": "realtime", "bogus": 1}}',
            headers=auth(token()),
        )

    assert [r.status_code for r in responses] == [200] * 3
    assert {r.headers["x-policy-adjusted"] for r in responses} == {"session.model"}
    assert {r.json()["session"]["model"] for r in responses} == {"gpt-realtime-mini"}
    assert len({r.json()["value"] for r in responses}) == 3  # a secret of its own each
    assert len(decoded) == 2  # the repeated body once, the refused one once
    assert refused.status_code == 400


async def test_upstream_refusing_the_key_is_a_502_and_charges_nothing(
    token: TokenFactory,
) -> None:
    calls = 0

    def refuse(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(401, json={"error": {"message": "Incorrect API key sk-abc"}})

    settings = make_settings({"BROKER_UPSTREAM": "openai", "BROKER_UPSTREAM_API_KEY": "sk-test"})
    app = create_dev_app(settings, transport=httpx.MockTransport(refuse))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://broker"
    ) as client:
        jwt = token(sub="carol")
        for _ in range(12):
            response = await client.post("/v1/realtime/client_secrets", json={}, headers=auth(jwt))
            assert response.status_code == 502
            assert "sk-" not in response.text
            assert "misconfigured" in response.json()["error"]["message"]
    # 12 > the 10/minute limit: had failures been charged, the last ones would be 429s.
    assert calls == 12


async def test_unknown_route_and_method_use_the_error_shape(client: httpx.AsyncClient) -> None:
    missing = await client.get("/v1/nope")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    wrong = await client.get("/v1/realtime/client_secrets")
    assert wrong.status_code == 405
    assert wrong.json()["error"]["type"] == "invalid_request_error"


async def test_health_and_readiness(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/readyz")).status_code == 200


async def test_an_anonymous_caller_learns_nothing_about_its_body(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/v1/realtime/client_secrets", content=b"{nope")
    assert response.status_code == 401


async def test_refused_mints_are_logged_with_their_tenant(
    client: httpx.AsyncClient, token: TokenFactory, caplog: pytest.LogCaptureFixture
) -> None:
    jwt = token(sub="logged")
    with caplog.at_level(logging.INFO, logger="service.access"):
        for _ in range(11):
            last = await client.post("/v1/realtime/client_secrets", json={}, headers=auth(jwt))
    assert last.status_code == 429
    access = [r for r in caplog.records if r.name == "service.access"]
    refused = [r for r in access if getattr(r, "status", None) == 429]
    assert len(refused) == 1
    assert refused[0].__dict__["tenant"] == "default"
    assert refused[0].__dict__["user_hash"] == user_hash("default", "logged")


async def test_mints_carry_server_timing(client: httpx.AsyncClient, token: TokenFactory) -> None:
    response = await client.post("/v1/realtime/client_secrets", json={}, headers=auth(token()))
    phases = parse_server_timing(response.headers["server-timing"])
    assert {"jwt", "policy", "store", "upstream"} <= set(phases)
    assert all(duration >= 0 for duration in phases.values())


async def test_a_beta_upstream_takes_truncation_and_prompt(token: TokenFactory) -> None:
    app = create_dev_app(make_settings({"BROKER_UPSTREAM_API": "beta"}))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://broker"
    ) as client:
        response = await client.post(
            "/v1/realtime/client_secrets",
            json={
                "session": {
                    "type": "realtime",
                    "truncation": "disabled",
                    "prompt": {"id": "pmpt_1"},
                }
            },
            headers=auth(token()),
        )
    assert response.status_code == 200, response.text
    assert response.json()["value"].startswith("ek_")
