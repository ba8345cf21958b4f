"""A broker with a Gemini tenant (and an OpenAI one beside it), its Gemini upstream a
recording stand-in (an httpx MockTransport), on a manual clock and the memory store."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from service.auth.tokens import sign_dev_token
from service.clock import ManualClock
from service.config.settings import Settings, load_settings
from service.web.app import create_app

GEMINI_SECRET = "gemini-tenant-jwt-secret-0123456789abcdef"
OPENAI_SECRET = "openai-tenant-jwt-secret-0123456789abcdef"
GEMINI_KEY = "gemini-upstream-test-key-0123456789"
OPENAI_KEY = "openai-upstream-test-key-0123456789"
ADMIN_KEY = "gemini-admin-key-0123456789abcdef"
MODEL = "gemini-live-2.5-flash-preview"
POLICY: dict[str, Any] = {
    "default_role": "reader",
    "roles": {
        "reader": {
            "models": [MODEL, "models/gemini-2.0-flash-live-001"],
            "voices": ["Kore", "Puck"],
            "modalities": ["audio", "text"],
            "temperature": {"min": 0.6, "max": 1.0},
            "max_output_tokens": 1024,
            "instructions": {"mode": "prefix", "text": "You are the Acme assistant."},
            "turn_detection": {"silence_duration_ms": {"min": 300, "max": 1500}},
            "tools": {"allow": ["lookup_order", "googleSearch"]},
            "ttl_seconds": {"default": 120, "max": 600},
            "limits": ["3/minute"],
        },
        "agent": {"models": [MODEL], "max_call_seconds": 900, "limits": ["100/minute"]},
        "locked_out": {"models": [MODEL], "mint": False},
    },
}


def token_for(
    clock: ManualClock, *, tenant: str = "gemini", sub: str = "alice", role: str = "reader"
) -> str:
    secret = GEMINI_SECRET if tenant == "gemini" else OPENAI_SECRET
    return sign_dev_token(
        secret,
        sub=sub,
        role=role,
        now=clock.now,
        issuer=f"https://{tenant}.example",
        audience="broker",
    )


def gemini_settings(policy: Mapping[str, Any] = POLICY, **extra: str) -> Settings:
    """Two tenants: `gemini` (UPSTREAM=gemini) and `openai` (the default upstream)."""
    env = {
        "BROKER_TENANTS": "gemini,openai",
        "BROKER_GEMINI_UPSTREAM": "gemini",
        "BROKER_GEMINI_UPSTREAM_API_KEY": GEMINI_KEY,
        "BROKER_GEMINI_POLICY": json.dumps(policy),
        "BROKER_GEMINI_ADMIN_API_KEY": ADMIN_KEY,
        "BROKER_OPENAI_UPSTREAM_API_KEY": OPENAI_KEY,
    }
    for tenant, secret in (("gemini", GEMINI_SECRET), ("openai", OPENAI_SECRET)):
        env[f"BROKER_{tenant.upper()}_JWT_SECRET"] = secret
        env[f"BROKER_{tenant.upper()}_JWT_ISSUER"] = f"https://{tenant}.example"
        env[f"BROKER_{tenant.upper()}_JWT_AUDIENCE"] = "broker"
    env.update({f"BROKER_{name}": value for name, value in extra.items()})
    return load_settings(env)


@dataclass
class GeminiStandIn:
    """Google's `auth_tokens`, as far as the broker sees it: each request recorded, each
    answered by `reply` (a token name by default)."""

    requests: list[httpx.Request] = field(default_factory=list)
    reply: Callable[[httpx.Request], httpx.Response] | None = None

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.reply is not None:
            return self.reply(request)
        return httpx.Response(200, json={"name": f"auth_tokens/token-{len(self.requests)}"})

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(request.content) for request in self.requests]


def openai_stand_in(requests: list[httpx.Request]) -> httpx.MockTransport:
    """OpenAI's GA mint, enough for a client secret."""

    def handle(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        session = json.loads(request.content)["session"]
        body = {"value": "ek_test_openai", "expires_at": 2_000_000_000, "session": session}
        return httpx.Response(200, json=body)

    return httpx.MockTransport(handle)


@dataclass
class Harness:
    app: Starlette
    client: httpx.AsyncClient
    gemini: GeminiStandIn
    openai_requests: list[httpx.Request]
    clock: ManualClock

    def token(self, **who: str) -> str:
        return token_for(self.clock, **who)

    async def mint(
        self, body: object = None, *, path: str = "/v1alpha/auth_tokens", **who: str
    ) -> httpx.Response:
        headers = {"x-goog-api-key": self.token(**who)}
        return await self.client.post(path, json={} if body is None else body, headers=headers)


def build_app(
    settings: Settings, clock: ManualClock
) -> tuple[Starlette, GeminiStandIn, list[httpx.Request]]:
    gemini = GeminiStandIn()
    openai_requests: list[httpx.Request] = []
    app = create_app(
        settings,
        clock=clock,
        transports={"gemini": gemini.transport(), "openai": openai_stand_in(openai_requests)},
    )
    return app, gemini, openai_requests


@contextlib.asynccontextmanager
async def harness_for(settings: Settings) -> AsyncIterator[Harness]:
    """The app of `settings` running (its lifespan too), driven over ASGI."""
    clock = ManualClock(start=1_800_000_000.0)
    app, gemini, openai_requests = build_app(settings, clock)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://broker") as client,
    ):
        yield Harness(app, client, gemini, openai_requests, clock)


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    async with harness_for(gemini_settings()) as running:
        yield running
