"""Translation mints and reasoning effort through the real app, driven by the official
openai-python SDK (`client.realtime.translations.client_secrets.create`), with the fake
upstream behind the broker accepting only the tenant's key: what the SDK asked for is
clamped to the role (or refused, nothing sent upstream), a role naming no translation
model is refused, and such a mint is counted, audited, limited and revoked as every mint
is."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import httpx2
import openai
import pytest
from starlette.applications import Starlette

from service.dev import create_dev_app
from service.fake.app import create_fake_app
from tests.web.conftest import TokenFactory, make_settings

UPSTREAM_KEY = "test-tenant-translation-key-0123456789"
ADMIN_KEY = "admin-key-for-translations-0123"
TRANSLATIONS = "/v1/realtime/translations/client_secrets"
READER = {
    "translation_models": ["gpt-realtime-translate"],
    "translation_languages": ["fr", "de"],
    "transcription_models": ["gpt-4o-mini-transcribe"],
    "reasoning_efforts": ["low", "minimal"],
    "ttl_seconds": {"default": 60, "max": 300},
    "limits": ["5/minute"],
}
# No translation_models: no translation secrets.
OWNER = {"limits": ["5/minute"]}


class Recording(httpx.AsyncBaseTransport):
    """The fake upstream (accepting the tenant's key only), and every request it got."""

    def __init__(self) -> None:
        self.inner = httpx.ASGITransport(app=create_fake_app(api_key=UPSTREAM_KEY))
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        self.requests.append(request)
        return await self.inner.handle_async_request(request)

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(r.content) for r in self.requests]


def broker(upstream: Recording, on_violation: str = "clamp") -> Starlette:
    policy = {
        "default_role": "reader",
        "on_violation": on_violation,
        "roles": {"reader": READER, "owner": OWNER},
    }
    settings = make_settings(
        {
            "BROKER_UPSTREAM": "openai",
            "BROKER_UPSTREAM_API_KEY": UPSTREAM_KEY,
            "BROKER_ADMIN_API_KEY": ADMIN_KEY,
            "BROKER_POLICY": json.dumps(policy),
        }
    )
    return create_dev_app(settings, transport=upstream)


@pytest.fixture
def upstream() -> Recording:
    return Recording()


@pytest.fixture
def app(upstream: Recording) -> Starlette:
    return broker(upstream)


@pytest.fixture
async def sdk(app: Starlette, token: TokenFactory) -> AsyncIterator[Any]:
    async with _sdk(app, token()) as client:
        yield client


def _sdk(app: Starlette, jwt: str) -> openai.AsyncOpenAI:
    # The openai SDK 3.x speaks through httpx2, so its in-process transport comes from there.
    http = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app))
    return openai.AsyncOpenAI(
        base_url="http://broker/v1", api_key=jwt, http_client=http, max_retries=0
    )


@pytest.fixture
def audit(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.INFO, logger="service.audit.mint"):
        yield caplog


def test_the_sdk_has_the_translation_mint() -> None:
    client = openai.OpenAI(api_key="x", base_url="http://broker/v1")
    assert callable(client.realtime.translations.client_secrets.create)


async def test_a_translation_secret_is_clamped_to_the_role_with_the_tenants_key_upstream(
    sdk: Any, upstream: Recording, audit: pytest.LogCaptureFixture
) -> None:
    raw = await sdk.realtime.translations.client_secrets.with_raw_response.create(
        session={
            "model": "gpt-realtime-translate-pro",
            "audio": {
                "input": {"transcription": {"model": "whisper-1"}},
                "output": {"language": "ja"},
            },
        },
        expires_after={"anchor": "created_at", "seconds": 3600},
    )
    secret = raw.parse()

    assert secret.value.startswith("ek_")
    assert secret.session.type == "translation"
    assert secret.session.model == "gpt-realtime-translate"
    assert secret.session.audio.output.language == "fr"
    assert secret.session.audio.input.transcription.model == "gpt-4o-mini-transcribe"
    assert raw.headers["x-policy-adjusted"].split(",") == [
        "session.model",
        "session.audio.output.language",
        "session.audio.input.transcription.model",
        "expires_after.seconds",
    ]
    assert raw.headers["cache-control"] == "no-store"
    assert raw.headers["ratelimit-remaining"] == "4"
    [sent] = upstream.requests
    assert (sent.method, sent.url.path) == ("POST", TRANSLATIONS)
    assert sent.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert sent.headers["openai-safety-identifier"]
    assert json.loads(sent.content) == {
        "session": {
            "model": "gpt-realtime-translate",
            "audio": {
                "input": {"transcription": {"model": "gpt-4o-mini-transcribe"}},
                "output": {"language": "fr"},
            },
        },
        "expires_after": {"anchor": "created_at", "seconds": 300},
    }
    [line] = [r for r in audit.records if getattr(r, "action", None) == "secret.minted"]
    assert line.__dict__["endpoint"] == "translations"
    assert line.__dict__["expires_at"] == secret.expires_at


async def test_nothing_asked_gets_the_roles_first_model_and_language(
    sdk: Any, upstream: Recording
) -> None:
    secret = await sdk.realtime.translations.client_secrets.create(
        session={"model": "gpt-realtime-translate"}
    )

    assert (secret.session.model, secret.session.audio.output.language) == (
        "gpt-realtime-translate",
        "fr",
    )
    assert upstream.bodies()[0]["session"]["audio"] == {"output": {"language": "fr"}}


@pytest.mark.parametrize(
    ("session", "param"),
    [
        ({"model": "gpt-realtime-translate-pro"}, "session.model"),
        ({"model": "gpt-realtime-translate", "audio": {"output": {"language": "ja"}}},
         "session.audio.output.language"),
    ],
)  # fmt: skip
async def test_under_reject_the_mint_is_refused_and_nothing_goes_upstream(
    upstream: Recording, token: TokenFactory, session: Any, param: str
) -> None:
    async with _sdk(broker(upstream, "reject"), token()) as sdk:
        with pytest.raises(openai.BadRequestError) as caught:
            await sdk.realtime.translations.client_secrets.create(session=session)

    assert caught.value.code == "policy_violation"
    assert caught.value.param == param
    assert upstream.requests == []


async def test_a_role_naming_no_translation_model_is_refused_and_charged_nothing(
    app: Starlette, upstream: Recording, token: TokenFactory
) -> None:
    async with _sdk(app, token(sub="olga", role="owner")) as owner:
        for _ in range(7):  # more than the role's 5/minute: a refusal costs nothing
            with pytest.raises(openai.PermissionDeniedError) as caught:
                await owner.realtime.translations.client_secrets.create(
                    session={"model": "gpt-realtime-translate"}
                )
            assert caught.value.code == "role_forbidden"
            assert "translation_models" in caught.value.message
        assert upstream.requests == []

        raw = await owner.realtime.client_secrets.with_raw_response.create(
            session={"type": "realtime"}
        )
    assert raw.headers["ratelimit-remaining"] == "4"
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://broker"
    ) as client:
        metrics = await client.get("/metrics")
    assert 'broker_mints_total{outcome="forbidden",tenant="default"} 7.0' in metrics.text


async def test_translation_mints_are_rate_limited_and_revoked_as_every_mint(
    app: Starlette, sdk: Any
) -> None:
    async def translate() -> Any:
        return await sdk.realtime.translations.client_secrets.create(
            session={"model": "gpt-realtime-translate"}
        )

    for _ in range(5):
        await translate()
    with pytest.raises(openai.RateLimitError):
        await translate()

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://broker"
    ) as admin:
        deleted = await admin.delete(
            "/v1/organization/users/alice", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
        )
    assert deleted.status_code == 200
    with pytest.raises(openai.PermissionDeniedError) as caught:
        await translate()
    assert caught.value.code == "user_revoked"


# --- reasoning effort at mint --------------------------------------------------------------


async def test_reasoning_effort_is_clamped_at_mint(sdk: Any, upstream: Recording) -> None:
    raw = await sdk.realtime.client_secrets.with_raw_response.create(
        session={"type": "realtime", "model": "gpt-realtime-2", "reasoning": {"effort": "xhigh"}}
    )

    assert raw.parse().session.reasoning.effort == "low"
    assert "session.reasoning.effort" in raw.headers["x-policy-adjusted"].split(",")
    assert upstream.bodies()[0]["session"]["reasoning"] == {"effort": "low"}


async def test_a_reasoning_model_gets_the_roles_first_effort(sdk: Any, upstream: Recording) -> None:
    secret = await sdk.realtime.client_secrets.create(
        session={"type": "realtime", "model": "gpt-realtime-2.1"}
    )

    assert secret.session.reasoning.effort == "low"
    assert upstream.bodies()[0]["session"]["reasoning"] == {"effort": "low"}


async def test_reasoning_effort_outside_the_role_is_refused_under_reject(
    upstream: Recording, token: TokenFactory
) -> None:
    async with _sdk(broker(upstream, "reject"), token()) as sdk:
        with pytest.raises(openai.BadRequestError) as caught:
            await sdk.realtime.client_secrets.create(
                session={
                    "type": "realtime",
                    "model": "gpt-realtime-2",
                    "reasoning": {"effort": "high"},
                }
            )

    assert (caught.value.code, caught.value.param) == (
        "policy_violation",
        "session.reasoning.effort",
    )
    assert upstream.requests == []


async def test_an_anonymous_translation_mint_is_a_401_that_reads_nothing(
    app: Starlette, upstream: Recording
) -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://broker"
    ) as client:
        response = await client.post(TRANSLATIONS, content=b"{not json")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_token"
    assert upstream.requests == []


async def test_no_log_line_holds_the_translation_secret(
    sdk: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        secret = await sdk.realtime.translations.client_secrets.create(
            session={"model": "gpt-realtime-translate"}
        )

    assert caplog.records
    assert all(secret.value not in record.getMessage() for record in caplog.records)
    assert all(secret.value not in str(record.__dict__) for record in caplog.records)
