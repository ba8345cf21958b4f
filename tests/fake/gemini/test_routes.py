"""The fake Gemini's REST side: `POST /{v1alpha,v1beta}/auth_tokens` in Google's shapes (the
key in `x-goog-api-key` or `?key=`, Google's errors), what it records, and google-genai's
own `auth_tokens.create` against it."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from google import genai
from google.genai import errors, types
from starlette.applications import Starlette
from starlette.testclient import TestClient

from service.fake.gemini.tokens import digest
from tests.fake.gemini.conftest import AUTH, KEY, MODEL, check

SETUP = {"model": MODEL, "generationConfig": {"temperature": 0.5}}


@pytest.mark.parametrize("version", ["v1alpha", "v1beta"])
def test_a_token_is_created_and_named(http: TestClient, fake_app: Starlette, version: str) -> None:
    created = http.post(
        f"/{version}/auth_tokens", json={"uses": 1, "bidiGenerateContentSetup": SETUP}, headers=AUTH
    )

    assert created.status_code == 200
    check("AuthToken", created.json())
    assert set(created.json()) == {"name"}  # every other field is input only
    token = fake_app.state.gemini.tokens.tokens[created.json()["name"]]
    assert (token.setup, token.uses, token.field_mask) == (SETUP, 1, None)


@pytest.mark.parametrize(
    ("headers", "query", "status", "reason"),
    [
        ({}, "", 403, None),
        ({"x-goog-api-key": "AIza-wrong"}, "", 400, "API_KEY_INVALID"),
        ({"Authorization": f"Bearer {KEY}"}, "", 403, None),  # OAuth tokens are not keys
        ({}, f"?key={KEY}", 200, None),
    ],
)
def test_the_key_is_required(
    http: TestClient, headers: dict[str, str], query: str, status: int, reason: str | None
) -> None:
    answer = http.post(f"/v1alpha/auth_tokens{query}", json={}, headers=headers)

    assert answer.status_code == status
    if status != 200:
        check("Status", answer.json())
        assert answer.json()["error"]["code"] == status
        details = answer.json()["error"].get("details", [{}])
        assert details[0].get("reason") == reason


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"uses": -1}, "Invalid JSON payload received. Invalid 'uses': expected a value between"),
        ({"expireTime": "2025-06-15T16:00:00Z", "expire_time": "2025-06-15T16:00:00Z"},
         "Invalid JSON payload received. Field 'expireTime' is given twice."),
        ({"expireTimes": "2030-01-01T00:00:00Z"},
         'Invalid JSON payload received. Unknown name "expireTimes": Cannot find field.'),
        ({"bidiGenerateContentSetup": {"generationConfig": {"temp": 1}}},
         'Invalid JSON payload received. Unknown name "temp" at '
         "'bidiGenerateContentSetup.generationConfig': Cannot find field."),
        ({"expireTime": "2025-06-15T15:00:00Z"}, "expireTime must be in the future."),
        ([], "Invalid JSON payload received. Expected an object."),
    ],
)  # fmt: skip
def test_a_bad_body_is_refused_in_googles_words(http: TestClient, body: Any, message: str) -> None:
    answer = http.post("/v1alpha/auth_tokens", content=json.dumps(body), headers=AUTH)

    assert answer.status_code == 400
    check("Status", answer.json())
    assert answer.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert answer.json()["error"]["message"].startswith(message)


def test_requests_are_recorded_with_the_credentials_that_carried_them(http: TestClient) -> None:
    http.post("/v1alpha/auth_tokens", json={"uses": 1}, headers=AUTH)
    http.post(
        "/v1beta/auth_tokens?key=other", json={"uses": 5}, headers={"Authorization": "Bearer j"}
    )

    listed = http.get("/_fake/gemini/auth_tokens", headers=AUTH)
    refused = http.get("/_fake/gemini/auth_tokens")

    assert listed.status_code == 200
    assert listed.json()["data"] == [
        {"version": "v1alpha", "credentials": {"x-goog-api-key": digest(KEY)},
         "body": {"uses": 1}, "status": 200},
        {"version": "v1beta", "credentials": {"authorization": digest("Bearer j"),
                                              "?key": digest("other")},
         "body": {"uses": 5}, "status": 400},
    ]  # fmt: skip
    assert KEY not in listed.text
    assert refused.status_code == 403


# google-genai calls its ephemeral tokens experimental, once per process.
@pytest.mark.filterwarnings("ignore::google.genai.errors.ExperimentalWarning")
async def test_google_genai_creates_a_token_from_the_fake(fake_app: Starlette) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=fake_app)) as http:
        client = genai.Client(
            api_key=KEY,
            http_options=types.HttpOptions(
                base_url="http://fake", api_version="v1alpha", httpx_async_client=http
            ),
        )
        config = types.CreateAuthTokenConfig(
            uses=1,
            live_connect_constraints=types.LiveConnectConstraints(
                model="gemini-live-2.5-flash-preview",
                config=types.LiveConnectConfig(
                    response_modalities=[types.Modality.AUDIO],
                    system_instruction="Be brief.",
                    speech_config=types.SpeechConfig(
                        voice_config=types.VoiceConfig(
                            prebuilt_voice_config=types.PrebuiltVoiceConfig(voice_name="Kore")
                        )
                    ),
                    output_audio_transcription=types.AudioTranscriptionConfig(),
                ),
            ),
        )
        token = await client.aio.auth_tokens.create(config=config)
        wrong = genai.Client(
            api_key="AIza-wrong",
            http_options=types.HttpOptions(
                base_url="http://fake", api_version="v1alpha", httpx_async_client=http
            ),
        )
        with pytest.raises(errors.ClientError) as refused:
            await wrong.aio.auth_tokens.create(config=types.CreateAuthTokenConfig(uses=1))

    assert token.name is not None
    assert token.name.startswith("auth_tokens/")
    sent = fake_app.state.gemini.tokens.received[0]["body"]
    assert sent["bidiGenerateContentSetup"]["model"] == "models/gemini-live-2.5-flash-preview"
    [token_held] = fake_app.state.gemini.tokens.tokens.values()
    voice = token_held.setup["generationConfig"]["speechConfig"]["voiceConfig"]
    assert voice == {"prebuiltVoiceConfig": {"voiceName": "Kore"}}
    assert (refused.value.code, refused.value.status) == (400, "INVALID_ARGUMENT")
