"""The fake upstream over HTTP: spec-valid answers, OpenAI's refusals, state per instance."""

from __future__ import annotations

import re
from typing import Any

import httpx
import jsonschema
import openai
import pytest
from openai.types import VectorStore
from openai.types.beta.realtime import SessionCreateResponse, TranscriptionSession
from openai.types.realtime import (
    ClientSecretCreateResponse,
    RealtimeSessionCreateResponse,
    RealtimeTranscriptionSessionCreateResponse,
)
from starlette.applications import Starlette

from service.clock import ManualClock
from service.fake.app import create_fake_app
from tests.fake.conftest import FAKE_KEY, SchemaCheck

EK = re.compile(r"ek_[0-9a-f]{32}")

GA_REALTIME: dict[str, Any] = {
    "expires_after": {"anchor": "created_at", "seconds": 120},
    "session": {
        "type": "realtime",
        "model": "gpt-realtime-mini",
        "instructions": "Be brief.",
        "output_modalities": ["audio"],
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "transcription": {"model": "gpt-4o-mini-transcribe", "language": "en"},
                "noise_reduction": {"type": "near_field"},
                "turn_detection": {"type": "semantic_vad", "eagerness": "low"},
            },
            "output": {"voice": "verse", "speed": 1.1, "format": {"type": "audio/pcmu"}},
        },
        "tools": [{"type": "function", "name": "lookup_order", "parameters": {"type": "object"}}],
        "tool_choice": "auto",
        "max_output_tokens": 1024,
        "include": ["item.input_audio_transcription.logprobs"],
    },
}
GA_TRANSCRIPTION: dict[str, Any] = {
    "session": {
        "type": "transcription",
        "audio": {"input": {"transcription": {"model": "whisper-1"}, "turn_detection": None}},
    }
}
BETA_REALTIME: dict[str, Any] = {
    "model": "gpt-4o-realtime-preview",
    "modalities": ["audio", "text"],
    "voice": "alloy",
    "temperature": 0.7,
    "max_response_output_tokens": 512,
    "input_audio_transcription": {"model": "whisper-1"},
    "turn_detection": {"type": "server_vad", "silence_duration_ms": 600},
    "tools": [{"type": "function", "name": "lookup_order", "parameters": {}}],
}
BETA_TRANSCRIPTION: dict[str, Any] = {
    "input_audio_format": "g711_ulaw",
    "input_audio_transcription": {"model": "gpt-4o-transcribe", "language": "de"},
}


@pytest.mark.parametrize("body", [{}, GA_REALTIME], ids=["defaults", "full"])
async def test_ga_realtime_mint_validates_and_parses(
    fake: httpx.AsyncClient, check_schema: SchemaCheck, clock: ManualClock, body: dict[str, Any]
) -> None:
    response = await fake.post("/v1/realtime/client_secrets", json=body)

    assert response.status_code == 200
    data = response.json()
    check_schema("RealtimeCreateClientSecretResponse", data)
    parsed = ClientSecretCreateResponse.model_validate(data)
    assert isinstance(parsed.session, RealtimeSessionCreateResponse)
    assert EK.fullmatch(parsed.value)
    ttl = body.get("expires_after", {}).get("seconds", 600)
    assert parsed.expires_at == int(clock.now) + ttl


async def test_ga_mint_fills_defaults_under_the_request(fake: httpx.AsyncClient) -> None:
    response = await fake.post("/v1/realtime/client_secrets", json=GA_REALTIME)

    session = response.json()["session"]
    assert session["model"] == "gpt-realtime-mini"
    assert session["audio"]["output"] == {
        "format": {"type": "audio/pcmu"},
        "voice": "verse",
        "speed": 1.1,
    }
    assert session["audio"]["input"]["turn_detection"] == {
        "type": "semantic_vad",
        "eagerness": "low",
        "create_response": True,
        "interrupt_response": True,
    }
    assert session["max_output_tokens"] == 1024


async def test_ga_transcription_mint_validates_and_parses(
    fake: httpx.AsyncClient, check_schema: SchemaCheck
) -> None:
    response = await fake.post("/v1/realtime/client_secrets", json=GA_TRANSCRIPTION)

    assert response.status_code == 200
    data = response.json()
    check_schema("RealtimeCreateClientSecretResponse", data)
    parsed = ClientSecretCreateResponse.model_validate(data)
    assert isinstance(parsed.session, RealtimeTranscriptionSessionCreateResponse)
    assert data["session"]["audio"]["input"]["transcription"] == {"model": "whisper-1"}
    assert data["session"]["audio"]["input"]["turn_detection"] is None


@pytest.mark.parametrize("body", [{}, BETA_REALTIME], ids=["defaults", "full"])
async def test_beta_session_mint_validates_and_parses(
    fake: httpx.AsyncClient, check_schema: SchemaCheck, clock: ManualClock, body: dict[str, Any]
) -> None:
    response = await fake.post("/v1/realtime/sessions", json=body)

    assert response.status_code == 200
    data = response.json()
    check_schema("RealtimeSessionCreateResponse", data)
    parsed = SessionCreateResponse.model_validate(data)
    assert EK.fullmatch(parsed.client_secret.value)
    assert parsed.client_secret.expires_at == int(clock.now) + 60
    assert parsed.temperature == body.get("temperature", 0.8)


async def test_beta_session_ttl_is_configurable(
    fake: httpx.AsyncClient, clock: ManualClock
) -> None:
    body = {"client_secret": {"expires_after": {"anchor": "created_at", "seconds": 300}}}

    response = await fake.post("/v1/realtime/sessions", json=body)

    assert response.json()["client_secret"]["expires_at"] == int(clock.now) + 300


@pytest.mark.parametrize("body", [{}, BETA_TRANSCRIPTION], ids=["defaults", "full"])
async def test_beta_transcription_mint_validates_and_parses(
    fake: httpx.AsyncClient, check_schema: SchemaCheck, body: dict[str, Any]
) -> None:
    response = await fake.post("/v1/realtime/transcription_sessions", json=body)

    assert response.status_code == 200
    data = response.json()
    check_schema("RealtimeTranscriptionSessionCreateResponse", data)
    parsed = TranscriptionSession.model_validate(data)
    assert EK.fullmatch(parsed.client_secret.value)
    assert parsed.input_audio_format == body.get("input_audio_format", "pcm16")


async def test_vector_store_objects_and_lists_validate_and_parse(
    fake: httpx.AsyncClient, check_schema: SchemaCheck, clock: ManualClock
) -> None:
    body = {
        "name": "docs",
        "file_ids": ["file-1", "file-2"],
        "expires_after": {"anchor": "last_active_at", "days": 7},
        "metadata": {"team": "support"},
    }

    created = (await fake.post("/v1/vector_stores", json=body)).json()
    listed = (await fake.get("/v1/vector_stores")).json()

    check_schema("VectorStoreObject", created)
    check_schema("ListVectorStoresResponse", listed)
    store = VectorStore.model_validate(created)
    assert store.id.startswith("vs_")
    assert store.file_counts.total == 2
    assert store.expires_at == int(clock.now) + 7 * 86_400
    assert listed["data"] == [created]


def test_the_schema_check_is_not_vacuous(check_schema: SchemaCheck) -> None:
    with pytest.raises(jsonschema.ValidationError):
        check_schema("RealtimeCreateClientSecretResponse", {"value": "ek_x", "expires_at": 1})
    with pytest.raises(jsonschema.ValidationError):
        check_schema("VectorStoreObject", {"id": "vs_1", "object": "vector_store"})


async def test_the_official_sdk_works_against_the_fake(fake_app: Starlette) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=fake_app)) as http:
        # The SDK is typed for httpx2's client and accepts an httpx one at run time.
        client = openai.AsyncOpenAI(
            base_url="http://fake/v1",
            api_key=FAKE_KEY,
            http_client=http,  # type: ignore[arg-type]
            max_retries=0,
        )
        secret = await client.realtime.client_secrets.create(session={"type": "realtime"})
        for index in range(5):
            await client.vector_stores.create(name=f"store-{index}")
        names = [store.name async for store in client.vector_stores.list(limit=2)]

    assert secret.value.startswith("ek_")
    assert names == ["store-4", "store-3", "store-2", "store-1", "store-0"]


@pytest.mark.parametrize(
    ("path", "body", "param", "code"),
    [
        (
            "/v1/realtime/client_secrets",
            {"session": {"type": "realtime", "temperature": 0.8}},
            "session.temperature",
            "unknown_parameter",
        ),
        ("/v1/realtime/client_secrets", {"ttl": 5}, "ttl", "unknown_parameter"),
        (
            "/v1/realtime/client_secrets",
            {"expires_after": {"seconds": 5}},
            "expires_after.seconds",
            "invalid_value",
        ),
        (
            "/v1/realtime/client_secrets",
            {"session": {"model": "gpt-realtime"}},
            "session.type",
            "missing_required_parameter",
        ),
        ("/v1/realtime/sessions", {"temperature": "hot"}, "temperature", "invalid_value"),
        ("/v1/realtime/sessions", {"temperature": 2.0}, "temperature", "invalid_value"),
        (
            "/v1/realtime/transcription_sessions",
            {"voice": "alloy"},
            "voice",
            "unknown_parameter",
        ),
        ("/v1/vector_stores", {"name": 7}, "name", "invalid_value"),
    ],
)
async def test_refuses_what_openai_refuses(
    fake: httpx.AsyncClient,
    check_schema: SchemaCheck,
    path: str,
    body: dict[str, Any],
    param: str,
    code: str,
) -> None:
    response = await fake.post(path, json=body)

    assert response.status_code == 400
    check_schema("ErrorResponse", response.json())
    error = response.json()["error"]
    assert (error["type"], error["param"], error["code"]) == ("invalid_request_error", param, code)


@pytest.mark.parametrize("content", [b"[1, 2]", b"{not json", b"\xff\xfe"])
async def test_refuses_bodies_that_are_not_a_json_object(
    fake: httpx.AsyncClient, content: bytes
) -> None:
    response = await fake.post("/v1/realtime/client_secrets", content=content)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer "}, {"Authorization": "Basic abc"}, {"api-key": ""}],
)
async def test_a_request_without_a_key_is_refused(
    fake_app: Starlette, headers: dict[str, str]
) -> None:
    transport = httpx.ASGITransport(app=fake_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://fake") as client:
        response = await client.post("/v1/realtime/client_secrets", json={}, headers=headers)

    assert response.status_code == 401
    assert response.json()["error"]["type"] == "invalid_request_error"


async def test_a_wrong_key_is_refused_like_openai_does(fake_app: Starlette) -> None:
    transport = httpx.ASGITransport(app=fake_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://fake") as client:
        response = await client.get("/v1/vector_stores", headers={"api-key": "test-wrong-key-9876"})

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"
    assert "test-wrong-key-9876" not in response.text


async def test_azure_style_api_key_header_is_accepted(fake_app: Starlette) -> None:
    transport = httpx.ASGITransport(app=fake_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://fake") as client:
        response = await client.post(
            "/v1/realtime/client_secrets", json={}, headers={"api-key": FAKE_KEY}
        )

    assert response.status_code == 200


async def test_without_a_configured_key_any_key_is_accepted() -> None:
    transport = httpx.ASGITransport(app=create_fake_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://fake") as client:
        response = await client.post(
            "/v1/realtime/sessions", json={}, headers={"Authorization": "Bearer anything"}
        )

    assert response.status_code == 200


async def test_unknown_routes_answer_in_openai_shape(
    fake: httpx.AsyncClient, check_schema: SchemaCheck
) -> None:
    missing = await fake.get("/v1/realtime/nothing")
    wrong_method = await fake.delete("/v1/vector_stores")

    assert missing.status_code == 404
    assert wrong_method.status_code == 405
    check_schema("ErrorResponse", missing.json())
    check_schema("ErrorResponse", wrong_method.json())


async def test_state_belongs_to_each_app_instance(
    fake: httpx.AsyncClient, fake_app: Starlette
) -> None:
    await fake.post("/v1/vector_stores", json={"name": "mine"})
    other = create_fake_app()

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=other),
        base_url="http://fake",
        headers={"Authorization": "Bearer x"},
    ) as client:
        listed = (await client.get("/v1/vector_stores")).json()

    assert listed["data"] == []
    assert fake_app.state.calls["POST /v1/vector_stores"] == 1
    assert other.state.calls["GET /v1/vector_stores"] == 1


async def test_each_mint_is_a_new_secret(fake: httpx.AsyncClient) -> None:
    first = (await fake.post("/v1/realtime/client_secrets", json={})).json()
    second = (await fake.post("/v1/realtime/client_secrets", json={})).json()

    assert first["value"] != second["value"]
    assert first["session"]["id"] != second["session"]["id"]


OFFER = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"


@pytest.mark.parametrize(
    ("path", "minted_from"),
    [("/v1/realtime/client_secrets", "value"), ("/v1/realtime/sessions", "client_secret")],
)
async def test_a_secret_it_minted_places_a_call_until_it_expires_and_does_nothing_else(
    fake: httpx.AsyncClient, fake_app: Starlette, clock: ManualClock, path: str, minted_from: str
) -> None:
    minted = (await fake.post(path, json={})).json()
    secret = minted["value"] if minted_from == "value" else minted["client_secret"]["value"]
    as_client = {"Authorization": f"Bearer {secret}", "Content-Type": "application/sdp"}
    transport = httpx.ASGITransport(app=fake_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://fake") as client:
        placed = await client.post("/v1/realtime/calls", content=OFFER, headers=as_client)
        call_id = placed.headers["location"].rsplit("/", 1)[1]
        hangup = await client.post(f"/v1/realtime/calls/{call_id}/hangup", headers=as_client)
        minting = await client.post(path, json={}, headers=as_client)
        clock.advance(3600)
        expired = await client.post("/v1/realtime/calls", content=OFFER, headers=as_client)

    assert placed.status_code == 201
    assert [hangup.status_code, minting.status_code, expired.status_code] == [401, 401, 401]
    assert secret not in expired.text
