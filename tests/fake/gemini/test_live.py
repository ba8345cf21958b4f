"""The fake Gemini Live peer, a token at a time: the token's setup over the client's,
`setupComplete`, each kind of turn answered (audio or text, transcription, usage,
`turnComplete`), and the sessions a token refuses. Every message it sends validates
against tests/schemas/gemini-live-subset.yaml's ServerMessage."""

from __future__ import annotations

import array
import base64
import json
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from service.clock import ManualClock
from tests.fake.gemini.conftest import AUTH, LIVE, MODEL, check

Session = Any  # starlette.testclient.WebSocketTestSession
VOICE = {"speechConfig": {"voiceConfig": {"prebuiltVoiceConfig": {"voiceName": "Kore"}}}}
TEXT_TURN = {"clientContent": {"turns": [{"role": "user", "parts": [{"text": "Hi there"}]}],
                               "turnComplete": True}}  # fmt: skip


def mint(http: TestClient, **body: Any) -> str:
    created = http.post("/v1alpha/auth_tokens", json=body, headers=AUTH)
    assert created.status_code == 200, created.text
    name: str = created.json()["name"]
    return name


def receive(ws: Session) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(ws.receive_text())
    check("ServerMessage", message)
    return message


def turn(ws: Session) -> list[dict[str, Any]]:
    """The server's messages up to and including `turnComplete`."""
    messages = [receive(ws)]
    while not messages[-1].get("serverContent", {}).get("turnComplete"):
        messages.append(receive(ws))
    return messages


def start(ws: Session, setup: dict[str, Any] | None = None) -> None:
    ws.send_json({"setup": setup or {"model": MODEL}})
    assert receive(ws) == {"setupComplete": {}}


def closed(ws: Session) -> tuple[int, str]:
    message = ws.receive()
    assert message["type"] == "websocket.close", message
    return message["code"], message.get("reason", "")


def pcm(seconds: float, level: int) -> str:
    count = int(16_000 * seconds)
    samples = array.array("h", (level if (n // 20) % 2 else -level for n in range(count)))
    return base64.b64encode(samples.tobytes()).decode()


def audio(seconds: float, level: int) -> dict[str, Any]:
    return {"realtimeInput": {"audio": {"mimeType": "audio/pcm;rate=16000",
                                        "data": pcm(seconds, level)}}}  # fmt: skip


def test_the_tokens_locked_setup_wins_and_a_text_turn_is_answered_in_audio(
    http: TestClient, fake_app: Starlette
) -> None:
    locked = {"model": MODEL, "generationConfig": {"responseModalities": ["AUDIO"], **VOICE},
              "outputAudioTranscription": {}}  # fmt: skip
    name = mint(http, uses=1, bidiGenerateContentSetup=locked)
    client = {"model": "models/other", "generationConfig": {"responseModalities": ["TEXT"]}}

    with http.websocket_connect(f"{LIVE}?access_token={name}") as ws:
        start(ws, client)
        ws.send_json(TEXT_TURN)
        answer = turn(ws)

    [session] = fake_app.state.gemini.tokens.sessions
    assert (session["setup"], session["client_setup"]) == (locked, client)
    contents = [m["serverContent"] for m in answer]
    audio_parts = [p for c in contents for p in c.get("modelTurn", {}).get("parts", [])]
    assert audio_parts
    assert all(p["inlineData"]["mimeType"] == "audio/pcm;rate=24000" for p in audio_parts)
    said = "".join(c["outputTranscription"]["text"] for c in contents if "outputTranscription" in c)
    assert said == "Hello from the fake Gemini (voice Kore)."
    assert {"generationComplete": True} in contents
    usage = answer[-1]["usageMetadata"]
    assert usage["promptTokensDetails"] == [{"modality": "TEXT", "tokenCount": 2}]
    assert usage["responseTokensDetails"] == [{"modality": "AUDIO", "tokenCount": 16}]
    assert usage["totalTokenCount"] == 18


def test_a_text_session_answers_in_text_without_transcription(http: TestClient) -> None:
    name = mint(
        http, bidiGenerateContentSetup={"generationConfig": {"responseModalities": ["TEXT"]}}
    )

    with http.websocket_connect(f"{LIVE}?access_token={name}") as ws:
        start(ws)
        ws.send_json({"realtimeInput": {"text": "Hello"}})
        answer = turn(ws)

    texts = [
        p["text"] for m in answer for p in m["serverContent"].get("modelTurn", {}).get("parts", [])
    ]
    assert "".join(texts) == "Hello from the fake Gemini."
    assert not any("outputTranscription" in m["serverContent"] for m in answer)
    assert answer[-1]["usageMetadata"]["responseTokensDetails"][0]["modality"] == "TEXT"


def test_a_spoken_turn_is_heard_transcribed_and_answered(http: TestClient) -> None:
    name = mint(http, bidiGenerateContentSetup={"inputAudioTranscription": {}})

    with http.websocket_connect(f"{LIVE}?access_token={name}") as ws:
        start(ws)
        ws.send_json(audio(0.5, 8000))
        ws.send_json(audio(0.6, 0))  # 0.5 s of quiet ends the turn
        answer = turn(ws)

    assert answer[0] == {"serverContent": {"inputTranscription": {"text": "(speech, 1.1 s)"}}}
    prompt = answer[-1]["usageMetadata"]["promptTokensDetails"]
    assert prompt == [{"modality": "AUDIO", "tokenCount": 36}]


def test_a_turn_marked_by_the_client_when_it_detects_activity_itself(http: TestClient) -> None:
    manual = {"realtimeInputConfig": {"automaticActivityDetection": {"disabled": True}}}
    name = mint(http, bidiGenerateContentSetup=manual)

    with http.websocket_connect(f"{LIVE}?access_token={name}") as ws:
        start(ws)
        ws.send_json({"realtimeInput": {"activityStart": {}}})
        ws.send_json(audio(0.25, 0))  # quiet: no voice activity decides anything here
        ws.send_json({"realtimeInput": {"activityEnd": {}}})
        answer = turn(ws)

    prompt = answer[-1]["usageMetadata"]["promptTokensDetails"]
    assert prompt == [{"modality": "AUDIO", "tokenCount": 8}]


def test_the_end_of_the_audio_stream_ends_the_turn(http: TestClient) -> None:
    name = mint(http)

    with http.websocket_connect(f"{LIVE}?access_token={name}") as ws:
        start(ws)
        ws.send_json(audio(0.2, 8000))
        ws.send_json({"realtimeInput": {"audioStreamEnd": True}})
        answer = turn(ws)

    assert answer[-1]["serverContent"] == {"turnComplete": True}


@pytest.mark.parametrize("path", ["/ws/", "//ws/"])
def test_the_token_may_come_in_a_header_on_either_version_and_path(
    http: TestClient, path: str
) -> None:
    name = mint(http, uses=0)
    url = LIVE.replace("/ws/", path)

    for version in ("v1alpha", "v1beta"):
        with http.websocket_connect(
            url.replace("v1alpha", version), headers={"Authorization": f"Token {name}"}
        ) as ws:
            start(ws)


def test_a_second_session_of_a_single_use_token_is_refused(http: TestClient) -> None:
    name = mint(http, uses=1)
    with http.websocket_connect(f"{LIVE}?access_token={name}") as ws:
        start(ws)

    with http.websocket_connect(f"{LIVE}?access_token={name}") as ws:
        ws.send_json({"setup": {"model": MODEL}})
        code, reason = closed(ws)

    assert (code, reason) == (1008, "The access token has no uses left.")


def test_no_session_starts_after_the_new_session_time(http: TestClient, clock: ManualClock) -> None:
    name = mint(http, uses=0)
    clock.advance(61)

    with http.websocket_connect(f"{LIVE}?access_token={name}") as ws:
        ws.send_json({"setup": {"model": MODEL}})
        assert closed(ws) == (1008, "The access token no longer starts new sessions.")


def test_a_session_ends_at_the_tokens_expire_time(http: TestClient, clock: ManualClock) -> None:
    name = mint(http, expireTime="2025-06-15T15:16:40Z")  # ten minutes from the clock's now
    with http.websocket_connect(f"{LIVE}?access_token={name}") as ws:
        start(ws)
        clock.advance(600)
        ws.send_json(TEXT_TURN)
        assert closed(ws) == (1008, "The access token has expired.")


@pytest.mark.parametrize(
    ("sent", "reason"),
    [
        ("not json", "Invalid JSON payload received."),
        ({"clientContent": {}}, "The first message must be setup."),
        ({"setup": {}}, "* setup.model: required field is not set."),
        ({"setup": {"model": MODEL, "voice": "Puck"}},
         'Invalid JSON payload received. Unknown name "voice" at \'setup\': Cannot find field.'),
    ],
)  # fmt: skip
def test_a_message_that_is_not_a_client_message_closes_with_1007(
    http: TestClient, sent: Any, reason: str
) -> None:
    name = mint(http)

    with http.websocket_connect(f"{LIVE}?access_token={name}") as ws:
        ws.send_text(sent) if isinstance(sent, str) else ws.send_json(sent)
        assert closed(ws) == (1007, reason)


def test_setup_comes_once(http: TestClient) -> None:
    name = mint(http)

    with http.websocket_connect(f"{LIVE}?access_token={name}") as ws:
        start(ws)
        ws.send_json({"setup": {"model": MODEL}})
        assert closed(ws)[0] == 1007


def test_an_unknown_token_opens_nothing(http: TestClient) -> None:
    with http.websocket_connect(f"{LIVE}?access_token=auth_tokens/nope") as ws:
        ws.send_json({"setup": {"model": MODEL}})
        assert closed(ws) == (1008, "Unauthenticated: the access token is not valid.")
    with (
        pytest.raises(WebSocketDisconnect),
        http.websocket_connect(LIVE.replace("Constrained", "")) as ws,
    ):
        ws.receive_text()  # the unconstrained endpoint (an API key's) is not the fake's
