"""The fake's translation mints and its reasoning models: answers valid against the
vendored schema (its translation part written from openai-python's types) and parsed by
the SDK's own models; OpenAI's refusals; a translation secret places no Realtime call."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from openai.types.realtime import (
    ClientSecretCreateResponse,
    RealtimeTranslationClientSecretCreateResponse,
)

from service.clock import ManualClock
from service.fake.sessions import REALTIME_MODELS, REASONING_MODELS
from tests.fake.conftest import SchemaCheck

EK = re.compile(r"ek_[0-9a-f]{32}")
TRANSLATIONS = "/v1/realtime/translations/client_secrets"
FULL: dict[str, Any] = {
    "expires_after": {"anchor": "created_at", "seconds": 120},
    "session": {
        "model": "gpt-realtime-translate",
        "audio": {
            "input": {
                "noise_reduction": {"type": "far_field", "strength": 0.8},
                "transcription": {"model": "gpt-4o-mini-transcribe"},
            },
            "output": {"language": "fr"},
        },
    },
}


@pytest.mark.parametrize(
    "body",
    [FULL, {"session": {"model": "gpt-realtime-translate"}}],
    ids=["full", "model only"],
)
async def test_a_translation_mint_validates_and_parses(
    fake: httpx.AsyncClient, check_schema: SchemaCheck, clock: ManualClock, body: dict[str, Any]
) -> None:
    check_schema("RealtimeTranslationClientSecretCreateRequest", body)

    response = await fake.post(TRANSLATIONS, json=body)

    assert response.status_code == 200, response.text
    data = response.json()
    check_schema("RealtimeTranslationClientSecretCreateResponse", data)
    parsed = RealtimeTranslationClientSecretCreateResponse.model_validate(data)
    assert EK.fullmatch(parsed.value)
    assert parsed.session.type == "translation"
    assert parsed.session.model == "gpt-realtime-translate"
    assert parsed.expires_at == int(clock.now) + body.get("expires_after", {}).get("seconds", 600)
    assert data["session"]["audio"] == body["session"].get("audio", {})


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "session"),
        ({"session": {}}, "session.model"),
        ({"session": {"model": "m", "type": "translation"}}, "session.type"),
        ({"session": {"model": "m", "audio": {"output": {"voice": "ash"}}}},
         "session.audio.output.voice"),
        ({"session": {"model": "m", "audio": {"input": {"noise_reduction": {"strength": 1}}}}},
         "session.audio.input.noise_reduction.type"),
        ({"session": {"model": "m"}, "expires_after": {"seconds": 9000}}, "expires_after.seconds"),
    ],
)  # fmt: skip
async def test_a_translation_mint_openai_would_refuse_is_refused(
    fake: httpx.AsyncClient, body: dict[str, Any], param: str
) -> None:
    response = await fake.post(TRANSLATIONS, json=body)

    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


async def test_a_translation_secret_places_no_realtime_call(fake: httpx.AsyncClient) -> None:
    secret = (await fake.post(TRANSLATIONS, json=FULL)).json()["value"]

    placed = await fake.post(
        "/v1/realtime/calls",
        content="v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n",
        headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/sdp"},
    )

    assert placed.status_code == 401


def test_the_fake_knows_the_current_realtime_models() -> None:
    assert {"gpt-realtime-2", "gpt-realtime-2.1", "gpt-realtime-2.1-mini"} <= set(REALTIME_MODELS)
    assert set(REASONING_MODELS) <= set(REALTIME_MODELS)


@pytest.mark.parametrize(
    ("model", "asked", "reported"),
    [
        ("gpt-realtime-2", None, {"effort": "low"}),
        ("gpt-realtime-2.1-mini", {"effort": "xhigh"}, {"effort": "xhigh"}),
        ("gpt-realtime", None, None),
    ],
)
async def test_a_reasoning_model_reports_its_effort(
    fake: httpx.AsyncClient,
    check_schema: SchemaCheck,
    model: str,
    asked: dict[str, str] | None,
    reported: dict[str, str] | None,
) -> None:
    session: dict[str, Any] = {"type": "realtime", "model": model}
    if asked is not None:
        session["reasoning"] = asked

    response = await fake.post("/v1/realtime/client_secrets", json={"session": session})

    assert response.status_code == 200, response.text
    data = response.json()
    check_schema("RealtimeCreateClientSecretResponse", data)
    ClientSecretCreateResponse.model_validate(data)
    assert data["session"].get("reasoning") == reported
