"""The fake Gemini accepts exactly what tests/schemas/gemini-live-subset.yaml accepts: token
create bodies and Live client messages, valid and not, side by side."""

from __future__ import annotations

from typing import Any

import pytest

from service.fake.gemini.shapes import GeminiShapes, camel_case
from service.fake.validate import Refusal, Shape
from tests.fake.gemini.conftest import MODEL, valid

SHAPES = GeminiShapes.build()
WHEN = "2025-06-15T15:00:00Z"
AUDIO = {"mimeType": "audio/pcm;rate=16000", "data": "AAAAAA=="}
TEXT_TURN = {"role": "user", "parts": [{"text": "Hello"}]}
RICH_SETUP: dict[str, Any] = {
    "model": MODEL,
    "generationConfig": {
        "responseModalities": ["AUDIO"],
        "temperature": 0.7,
        "topP": 0.9,
        "topK": 40,
        "maxOutputTokens": 256,
        "candidateCount": 1,
        "presencePenalty": 0.5,
        "frequencyPenalty": -0.5,
        "seed": 7,
        "mediaResolution": "MEDIA_RESOLUTION_LOW",
        "enableAffectiveDialog": True,
        "speechConfig": {
            "voiceConfig": {"prebuiltVoiceConfig": {"voiceName": "Kore"}},
            "languageCode": "en-US",
        },
        "thinkingConfig": {"includeThoughts": False, "thinkingBudget": 0, "thinkingLevel": "LOW"},
        "translationConfig": {"targetLanguageCode": "fr", "echoTargetLanguage": False},
    },
    "systemInstruction": {"role": "user", "parts": [{"text": "Be brief."}]},
    "tools": [
        {"functionDeclarations": [{"name": "lookup_order", "parameters": {"type": "OBJECT"}}]},
        {"googleSearch": {}},
        {"codeExecution": {}, "urlContext": {}},
    ],
    "realtimeInputConfig": {
        "automaticActivityDetection": {
            "disabled": False,
            "startOfSpeechSensitivity": "START_SENSITIVITY_LOW",
            "endOfSpeechSensitivity": "END_SENSITIVITY_HIGH",
            "prefixPaddingMs": 20,
            "silenceDurationMs": 300,
        },
        "activityHandling": "NO_INTERRUPTION",
        "turnCoverage": "TURN_INCLUDES_ALL_INPUT",
    },
    "sessionResumption": {"handle": "h", "transparent": True},
    "contextWindowCompression": {
        "triggerTokens": "25600",
        "slidingWindow": {"targetTokens": 12800},
    },
    "inputAudioTranscription": {},
    "outputAudioTranscription": {"languageCodes": ["en-US"]},
    "proactivity": {"proactiveAudio": True},
    "historyConfig": {"initialHistoryInClientContent": True},
    "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
    "labels": {"team": "voice"},
}


def token(**setup: Any) -> dict[str, Any]:
    return {"uses": 1, "bidiGenerateContentSetup": {"model": MODEL, **setup}}


def config(**generation: Any) -> dict[str, Any]:
    return token(generationConfig=generation)


TOKEN_BODIES: list[dict[str, Any]] = [
    {},
    {"uses": 0, "expireTime": WHEN, "newSessionExpireTime": "2025-06-15T14:31:00.123456789+02:00"},
    {"bidiGenerateContentSetup": RICH_SETUP},
    {"bidiGenerateContentSetup": {}, "fieldMask": "generationConfig.temperature"},
    {"bidiGenerateContentSetup": {"generationConfig": {"responseModalities": ["TEXT"]}}},
    {"name": "ignored", "uses": 2147483647},
    config(responseModalities=[]),
    config(speechConfig={"voiceConfig": {"replicatedVoiceConfig": {"mimeType": "audio/wav"}}}),
    token(contextWindowCompression={"triggerTokens": 100}),
    token(tools=[{"functionDeclarations": [{"name": "a.b:c-d_1", "behavior": "NON_BLOCKING"}]}]),
    # Refused:
    {"uses": -1},
    {"uses": 2147483648},
    {"uses": 1.5},
    {"uses": "1"},
    {"expireTime": "2025-06-15 15:00:00Z"},
    {"expireTime": "2025-06-15T15:00:00"},
    {"expireTime": 1750000000},
    {"newSessionExpireTime": "tomorrow"},
    {"fieldMask": ["generationConfig.temperature"]},
    {"expire_time": WHEN},
    {"bidiGenerateContentSetup": {"model": ""}},
    {"bidiGenerateContentSetup": {"voice": "Puck"}},
    token(generation_config={}),
    config(temperature=2.5),
    config(topP=-0.1),
    config(maxOutputTokens=0),
    config(responseModalities=["TEXT", "AUDIO"]),
    config(responseModalities=["IMAGE"]),
    config(responseMimeType="application/json"),
    config(stopSequences=["x"]),
    config(speechConfig={"voiceConfig": {"prebuiltVoiceConfig": {"voiceName": ""}}}),
    config(speechConfig={"multiSpeakerVoiceConfig": {}}),
    config(mediaResolution="HIGH"),
    config(thinkingConfig={"thinkingLevel": "EXTREME"}),
    token(systemInstruction="Be brief."),
    token(systemInstruction={"role": "system", "parts": [{"text": "x"}]}),
    token(systemInstruction={"parts": [{"text": "x", "inlineData": AUDIO}]}),
    token(systemInstruction={"parts": [{}]}),
    token(tools=[{"functionDeclarations": [{"description": "no name"}]}]),
    token(tools=[{"functionDeclarations": [{"name": "has space"}]}]),
    token(tools=[{"computerUse": {}}]),
    token(realtimeInputConfig={"automaticActivityDetection": {"silenceDurationMs": -1}}),
    token(realtimeInputConfig={"activityHandling": "SOMETIMES"}),
    token(contextWindowCompression={"triggerTokens": "many"}),
    token(inputAudioTranscription={"diarization": True}),
    token(proactivity={"proactiveAudio": "yes"}),
    token(safetySettings=[{"category": "HARM_CATEGORY_HARASSMENT"}]),
    token(labels={"team": 1}),
    token(avatarConfig={"avatarName": 1}),
]

MESSAGES: list[Any] = [
    {"setup": {"model": MODEL}},
    {"setup": RICH_SETUP},
    {"clientContent": {"turns": [TEXT_TURN], "turnComplete": True}},
    {"clientContent": {"turns": [{"role": "model", "parts": [{"text": "Hi"}]}]}},
    {"clientContent": {}},
    {"realtimeInput": {"audio": AUDIO}},
    {"realtimeInput": {"audio": {"mimeType": "audio/pcm", "data": "_-8="}}},
    {"realtimeInput": {"mediaChunks": [AUDIO, {"mimeType": "image/jpeg", "data": ""}]}},
    {"realtimeInput": {"text": "Hi", "audioStreamEnd": True}},
    {"realtimeInput": {"activityStart": {}}},
    {"realtimeInput": {"activityEnd": {}, "video": {"mimeType": "image/jpeg", "data": "AA=="}}},
    {"toolResponse": {"functionResponses": [{"id": "1", "name": "f", "response": {"ok": 1}}]}},
    {"toolResponse": {"functionResponses": [{"name": "f", "scheduling": "WHEN_IDLE"}]}},
    # Refused:
    {},
    [],
    "setup",
    {"setup": {}},
    {"setup": {"model": MODEL}, "clientContent": {}},
    {"setup": {"model": MODEL, "fieldMask": "x"}},
    {"client_content": {"turns": []}},
    {"clientContent": {"turns": [TEXT_TURN], "turnComplete": "yes"}},
    {"clientContent": {"turns": [{"role": "user", "parts": [{"text": 1}]}]}},
    {"realtimeInput": {"audio": {"data": "AAAA"}}},
    {"realtimeInput": {"audio": {"mimeType": "audio/pcm", "data": "AAA"}}},
    {"realtimeInput": {"audio": {"mimeType": "audio/pcm", "data": "AA AA"}}},
    {"realtimeInput": {"audio": {"mimeType": "", "data": "AAAA"}}},
    {"realtimeInput": {"activityStart": {"now": True}}},
    {"realtimeInput": {"audioStreamEnd": 1}},
    {"realtimeInput": {"speech": "hi"}},
    {"toolResponse": {"functionResponses": [{"id": "1"}]}},
    {"toolResponse": {"functionResponses": [{"name": "f", "scheduling": "LATER"}]}},
]
ACCEPTED_TOKENS = 10
ACCEPTED_MESSAGES = 13


def accepts(shape: Shape, value: Any) -> bool:
    try:
        shape(value, "")
    except Refusal:
        return False
    return True


@pytest.mark.parametrize("body", TOKEN_BODIES)
def test_the_fake_takes_the_token_bodies_the_schema_takes(body: dict[str, Any]) -> None:
    assert accepts(SHAPES.auth_token, body) == valid("CreateAuthTokenRequest", body)


@pytest.mark.parametrize("message", MESSAGES)
def test_the_fake_takes_the_client_messages_the_schema_takes(message: Any) -> None:
    assert accepts(SHAPES.client_message, message) == valid("ClientMessage", message)


def test_the_tables_are_not_vacuous() -> None:
    tokens = [valid("CreateAuthTokenRequest", body) for body in TOKEN_BODIES]
    messages = [valid("ClientMessage", message) for message in MESSAGES]

    assert tokens == [True] * ACCEPTED_TOKENS + [False] * (len(TOKEN_BODIES) - ACCEPTED_TOKENS)
    assert messages == [True] * ACCEPTED_MESSAGES + [False] * (len(MESSAGES) - ACCEPTED_MESSAGES)


def test_a_refusal_names_the_field() -> None:
    with pytest.raises(Refusal) as refused:
        SHAPES.auth_token(config(temperature=3), "")

    assert refused.value.param == "bidiGenerateContentSetup.generationConfig.temperature"


def test_proto_names_are_read_as_their_camel_case_names() -> None:
    # As google-genai sends a voice (a pydantic model dumped inside a camelCase dict).
    body = {
        "expire_time": WHEN,
        "bidiGenerateContentSetup": {
            "model": MODEL,
            "generation_config": {
                "speechConfig": {"voice_config": {"prebuilt_voice_config": {"voice_name": "Kore"}}}
            },
            "tools": [{"function_declarations": [{"name": "f", "parameters": {"my_arg": {}}}]}],
            "labels": {"cost_center": "a"},
        },
    }

    read = SHAPES.read_token(body)

    assert read == {
        "expireTime": WHEN,
        "bidiGenerateContentSetup": {
            "model": MODEL,
            "generationConfig": {
                "speechConfig": {"voiceConfig": {"prebuiltVoiceConfig": {"voiceName": "Kore"}}}
            },
            # Free-form values keep their keys.
            "tools": [{"functionDeclarations": [{"name": "f", "parameters": {"my_arg": {}}}]}],
            "labels": {"cost_center": "a"},
        },
    }
    assert valid("CreateAuthTokenRequest", read)
    assert SHAPES.read_message({"client_content": {"turn_complete": True}}) == {
        "clientContent": {"turnComplete": True}
    }


def test_a_field_named_both_ways_is_refused() -> None:
    with pytest.raises(Refusal) as refused:
        camel_case({"setup": {"model": MODEL, "generationConfig": {}, "generation_config": {}}})

    assert refused.value.param == "setup.generationConfig"
