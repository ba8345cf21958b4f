"""Google's own SDK (google-genai) mints through the broker unchanged, served by uvicorn on
a free local port as `token-broker serve` runs it: the app JWT as its API key, the broker
as its base URL. Google's `auth_tokens` is a recording stand-in (tests/gemini/conftest.py),
so what the broker sent upstream is checked too."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import openai
import pytest
import uvicorn
from google import genai
from google.genai import errors, types

from service.clock import ManualClock
from service.config.settings import Settings
from service.gemini.times import parse_time
from tests.eventually import eventually
from tests.gemini.conftest import (
    GEMINI_KEY,
    MODEL,
    POLICY,
    GeminiStandIn,
    build_app,
    gemini_settings,
    token_for,
)

# The SDK marks token creation experimental, with a warning the suite would turn into an error.
pytestmark = pytest.mark.filterwarnings("ignore::google.genai.errors.ExperimentalWarning")
T = TypeVar("T")


class Served:
    """The broker on uvicorn, its Gemini upstream recorded."""

    def __init__(self, port: int, gemini: GeminiStandIn, clock: ManualClock) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.gemini = gemini
        self.clock = clock

    def client(self, api_key: str) -> genai.Client:
        return genai.Client(
            api_key=api_key, http_options={"base_url": self.url, "api_version": "v1alpha"}
        )

    def jwt(self, **who: str) -> str:
        return token_for(self.clock, **who)


async def in_thread(call: Callable[[], T]) -> T:
    """The SDK's sync client blocks: off the loop that serves the broker."""
    return await asyncio.to_thread(call)


@contextlib.asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[Served]:
    # The real clock's now: the SDK's times are the caller's, and JWTs must not be expired.
    clock = ManualClock(start=float(int(datetime.datetime.now(tz=datetime.UTC).timestamp())))
    app, gemini, _ = build_app(settings, clock)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await eventually(lambda: server.started, seconds=10, what="uvicorn's start")
        yield Served(sock.getsockname()[1], gemini, clock)
    finally:
        server.should_exit = True
        await task
        sock.close()


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    async with serve(gemini_settings()) as running:
        yield running


def create_config(now: datetime.datetime) -> types.CreateAuthTokenConfig:
    """What a Python app writes: snake_case speech config, aware datetimes, a partial lock."""
    return types.CreateAuthTokenConfig(
        uses=5,
        expire_time=now + datetime.timedelta(hours=2),
        new_session_expire_time=now + datetime.timedelta(minutes=10),
        live_connect_constraints=types.LiveConnectConstraints(
            model="gemini-2.0-flash-live-001",
            config=types.LiveConnectConfig(
                response_modalities=[types.Modality.AUDIO],
                temperature=1.7,
                max_output_tokens=4000,
                system_instruction="Answer in French.",
                speech_config=types.SpeechConfig(
                    voice_config=types.VoiceConfig(
                        prebuilt_voice_config=types.PrebuiltVoiceConfig(voice_name="Charon")
                    )
                ),
                realtime_input_config=types.RealtimeInputConfig(
                    automatic_activity_detection=types.AutomaticActivityDetection(
                        silence_duration_ms=5000
                    )
                ),
                tools=[
                    types.Tool(
                        function_declarations=[
                            types.FunctionDeclaration(name="lookup_order", description="Find."),
                            types.FunctionDeclaration(name="refund_order", description="Pay."),
                        ]
                    )
                ],
                input_audio_transcription=types.AudioTranscriptionConfig(),
            ),
        ),
        lock_additional_fields=["temperature"],
    )


async def test_the_sdk_mints_a_token_whose_setup_is_the_users_policy_locked(
    served: Served,
) -> None:
    now = datetime.datetime.fromtimestamp(served.clock.now, tz=datetime.UTC)
    client = served.client(served.jwt())

    token = await in_thread(lambda: client.auth_tokens.create(config=create_config(now)))

    assert token.name == "auth_tokens/token-1"
    assert token.uses == 1
    assert token.expire_time is not None
    assert token.new_session_expire_time is not None
    assert parse_time(token.expire_time, "t") == served.clock.now + 600
    assert parse_time(token.new_session_expire_time, "t") == served.clock.now + 60
    [request] = served.gemini.requests
    assert request.headers["x-goog-api-key"] == GEMINI_KEY
    assert served.jwt() not in request.content.decode()
    sent = served.gemini.bodies()[0]
    assert "fieldMask" not in sent
    assert sent["uses"] == 1
    assert sent["bidiGenerateContentSetup"] == {
        "model": "models/gemini-2.0-flash-live-001",
        "generationConfig": {
            "responseModalities": ["AUDIO"],
            "temperature": 1.0,
            "maxOutputTokens": 1024,
            "speechConfig": {"voiceConfig": {"prebuiltVoiceConfig": {"voiceName": "Kore"}}},
        },
        "systemInstruction": {
            "parts": [{"text": "You are the Acme assistant.\n\nAnswer in French."}],
            "role": "user",
        },
        "realtimeInputConfig": {"automaticActivityDetection": {"silenceDurationMs": 1500}},
        "tools": [{"functionDeclarations": [{"name": "lookup_order", "description": "Find."}]}],
        "inputAudioTranscription": {},
    }


async def test_reject_mode_raises_the_sdks_400_and_sends_nothing_upstream() -> None:
    async with serve(gemini_settings({**POLICY, "on_violation": "reject"})) as served:
        now = datetime.datetime.fromtimestamp(served.clock.now, tz=datetime.UTC)
        client = served.client(served.jwt())

        with pytest.raises(errors.ClientError) as raised:
            await in_thread(lambda: client.auth_tokens.create(config=create_config(now)))

        assert raised.value.code == 400
        assert raised.value.status == "INVALID_ARGUMENT"
        assert served.gemini.requests == []


async def test_a_bad_jwt_is_the_sdks_401(served: Served) -> None:
    client = served.client("not-a-jwt")

    with pytest.raises(errors.ClientError) as raised:
        await in_thread(lambda: client.auth_tokens.create(config={"uses": 1}))

    assert raised.value.code == 401
    assert raised.value.status == "UNAUTHENTICATED"
    assert served.gemini.requests == []


async def test_a_spent_rate_limit_is_the_sdks_429(served: Served) -> None:
    client = served.client(served.jwt())
    config: dict[str, Any] = {"live_connect_constraints": {"model": MODEL}}
    for _ in range(3):  # the reader's 3/minute
        await in_thread(lambda: client.auth_tokens.create(config=config))

    with pytest.raises(errors.ClientError) as raised:
        await in_thread(lambda: client.auth_tokens.create(config=config))

    assert raised.value.code == 429
    assert raised.value.status == "RESOURCE_EXHAUSTED"
    assert len(served.gemini.requests) == 3


async def test_a_gemini_and_an_openai_tenant_mint_side_by_side_with_their_sdks(
    served: Served,
) -> None:
    gemini = served.client(served.jwt())
    openai_sdk = openai.OpenAI(
        base_url=f"{served.url}/v1", api_key=served.jwt(tenant="openai"), max_retries=0
    )

    token = await in_thread(lambda: gemini.auth_tokens.create(config={"uses": 1}))
    secret = await in_thread(
        lambda: openai_sdk.realtime.client_secrets.create(session={"type": "realtime"})
    )
    wrong = served.client(served.jwt(tenant="openai"))
    with pytest.raises(errors.ClientError) as raised:
        await in_thread(lambda: wrong.auth_tokens.create(config={"uses": 1}))

    assert token.name == "auth_tokens/token-1"
    assert secret.value == "ek_test_openai"
    assert raised.value.code == 404
    assert len(served.gemini.requests) == 1
    openai_sdk.close()
