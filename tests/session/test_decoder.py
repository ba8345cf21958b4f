from __future__ import annotations

from typing import Any

import pytest

from service.errors import InvalidJSON, InvalidValue, UnknownParameter
from service.session.codec import decode_request
from service.session.model import (
    AudioFormat,
    Endpoint,
    FunctionTool,
    McpTool,
    NoiseReduction,
    Session,
    ToolChoice,
    Transcription,
    TurnDetection,
)
from tests.session.bodies import BETA_FULL, GA_FULL, a_in, a_out, ga, gt

# ---------------------------------------------------------------------------------------
# decode_request: the whole of both shapes

EXPECTED_FULL = Session(
    model="gpt-realtime",
    instructions="Be brief.",
    output_modalities=("audio",),
    voice="verse",
    input_format=AudioFormat("audio/pcm", 24000),
    output_format=AudioFormat("audio/pcmu"),
    transcription=Transcription(model="whisper-1", language="en", prompt="names"),
    turn_detection=TurnDetection(
        "server_vad",
        threshold=0.5,
        prefix_padding_ms=300,
        silence_duration_ms=500,
        create_response=True,
        interrupt_response=False,
    ),
    noise_reduction=NoiseReduction("near_field"),
    speed=1.1,
    max_output_tokens=512,
    tools=(FunctionTool("lookup", "d", {"type": "object"}),),
    tool_choice=ToolChoice("function", name="lookup"),
    tracing={"workflow_name": "w", "group_id": "g", "metadata": {"a": 1}},
    truncation={"type": "retention_ratio", "retention_ratio": 0.5},
    prompt={"id": "pmpt_1", "version": "2", "variables": {"x": "y"}},
    include=("item.input_audio_transcription.logprobs",),
    reasoning={"effort": "low"},
    parallel_tool_calls=False,
)


def test_a_full_ga_body_decodes_field_by_field() -> None:
    request = decode_request("client_secrets", GA_FULL)

    assert request.kind == "realtime"
    assert request.ttl_seconds == 120
    assert request.session == EXPECTED_FULL


def test_a_full_beta_body_decodes_to_the_same_session() -> None:
    request = decode_request("sessions", BETA_FULL)

    ga_only = {"include": None, "reasoning": None, "parallel_tool_calls": None}
    expected = Session(**{**vars_of(EXPECTED_FULL), **ga_only, "temperature": 0.7})
    assert request.session == expected
    assert (request.kind, request.ttl_seconds, request.endpoint) == ("realtime", 120, "sessions")


def vars_of(session: Session) -> dict[str, Any]:
    return {name: getattr(session, name) for name in Session.__dataclass_fields__}


def test_transcription_bodies_of_both_shapes_decode_alike() -> None:
    ga = decode_request(
        "client_secrets",
        {
            "session": {
                "type": "transcription",
                "audio": {
                    "input": {
                        "format": {"type": "audio/pcma"},
                        "transcription": {"model": "gpt-4o-transcribe", "languages": ["en", "fr"]},
                        "noise_reduction": {"type": "far_field"},
                        "turn_detection": None,
                    }
                },
                "include": ["item.input_audio_transcription.logprobs"],
            }
        },
    )
    beta = decode_request(
        "transcription_sessions",
        {
            "input_audio_format": "g711_alaw",
            "input_audio_transcription": {"model": "gpt-4o-transcribe", "languages": ["en", "fr"]},
            "input_audio_noise_reduction": {"type": "far_field"},
            "turn_detection": None,
            "include": ["item.input_audio_transcription.logprobs"],
        },
    )

    assert ga.kind == beta.kind == "transcription"
    assert ga.session == beta.session
    assert ga.session.turn_detection == "off"
    assert ga.session.transcription == Transcription(
        model="gpt-4o-transcribe", languages=("en", "fr")
    )


def test_an_empty_ga_body_is_a_default_realtime_session() -> None:
    request = decode_request("client_secrets", {})

    assert (request.kind, request.session, request.ttl_seconds) == ("realtime", Session(), None)


def test_ga_mcp_tools_and_custom_voices_decode() -> None:
    mcp = {
        "type": "mcp",
        "server_label": "crm",
        "server_url": "https://x",
        "authorization": "mcp-secret-123",
    }
    body = {
        "session": {
            "type": "realtime",
            "tools": [mcp],
            "tool_choice": {"type": "mcp", "server_label": "crm", "name": None},
            "audio": {"output": {"voice": {"id": "voice_1234"}}},
        }
    }

    session = decode_request("client_secrets", body).session

    assert session.tools == (McpTool("crm", mcp),)
    assert "mcp-secret-123" not in repr(session)
    assert session.tool_choice == ToolChoice("mcp", server_label="crm")
    assert (session.voice, session.custom_voice) == ("voice_1234", True)


DECODE_ERRORS = [
    # GA: every field, the exact param
    ("client_secrets", {"foo": 1}, UnknownParameter, "foo"),
    ("client_secrets", {"expires_after": {"seconds": 9}}, InvalidValue, "expires_after.seconds"),
    ("client_secrets", {"expires_after": {"seconds": 7201}}, InvalidValue, "expires_after.seconds"),
    ("client_secrets", {"expires_after": {"seconds": "60"}}, InvalidValue, "expires_after.seconds"),
    ("client_secrets", {"expires_after": {"seconds": True}}, InvalidValue, "expires_after.seconds"),
    ("client_secrets", {"expires_after": {"anchor": "now"}}, InvalidValue, "expires_after.anchor"),
    ("client_secrets", {"expires_after": {"when": 1}}, UnknownParameter, "expires_after.when"),
    ("client_secrets", {"expires_after": 60}, InvalidValue, "expires_after"),
    ("client_secrets", {"session": "realtime"}, InvalidValue, "session"),
    ("client_secrets", {"session": {}}, InvalidValue, "session.type"),
    ("client_secrets", {"session": {"type": "translation"}}, InvalidValue, "session.type"),
    ("client_secrets", ga({"foo": 1}), UnknownParameter, "session.foo"),
    ("client_secrets", ga({"temperature": 0.8}), UnknownParameter, "session.temperature"),
    ("client_secrets", ga({"model": 5}), InvalidValue, "session.model"),
    ("client_secrets", ga({"model": "m" * 10_000}), InvalidValue, "session.model"),
    ("client_secrets", ga({"model": ""}), InvalidValue, "session.model"),
    ("client_secrets", ga({"instructions": ["a"]}), InvalidValue, "session.instructions"),
    ("client_secrets", ga({"instructions": "a" * 65_537}), InvalidValue, "session.instructions"),
    (
        "client_secrets",
        ga({"output_modalities": ["text", "audio"]}),
        InvalidValue,
        "session.output_modalities",
    ),
    ("client_secrets", ga({"output_modalities": []}), InvalidValue, "session.output_modalities"),
    (
        "client_secrets",
        ga({"output_modalities": ["video"]}),
        InvalidValue,
        "session.output_modalities[0]",
    ),
    ("client_secrets", ga({"audio": {"inputs": {}}}), UnknownParameter, "session.audio.inputs"),
    ("client_secrets", ga(a_in(foo=1)), UnknownParameter, "session.audio.input.foo"),
    ("client_secrets", ga(a_in(format="pcm16")), InvalidValue, "session.audio.input.format"),
    (
        "client_secrets",
        ga(a_in(format={"type": "audio/mp3"})),
        InvalidValue,
        "session.audio.input.format.type",
    ),
    (
        "client_secrets",
        ga(a_in(format={"type": "audio/pcm", "rate": 16000})),
        InvalidValue,
        "session.audio.input.format.rate",
    ),
    (
        "client_secrets",
        ga(a_in(format={"type": "audio/pcmu", "rate": 8000})),
        UnknownParameter,
        "session.audio.input.format.rate",
    ),
    (
        "client_secrets",
        ga(a_in(transcription={"model": 1})),
        InvalidValue,
        "session.audio.input.transcription.model",
    ),
    (
        "client_secrets",
        ga(a_in(transcription={"engine": "x"})),
        UnknownParameter,
        "session.audio.input.transcription.engine",
    ),
    (
        "client_secrets",
        ga(a_in(transcription={"languages": []})),
        InvalidValue,
        "session.audio.input.transcription.languages",
    ),
    (
        "client_secrets",
        ga(a_in(transcription={"delay": "never"})),
        InvalidValue,
        "session.audio.input.transcription.delay",
    ),
    (
        "client_secrets",
        ga(a_in(transcription={"keywords": [1]})),
        InvalidValue,
        "session.audio.input.transcription.keywords[0]",
    ),
    (
        "client_secrets",
        ga(a_in(noise_reduction={"type": "studio"})),
        InvalidValue,
        "session.audio.input.noise_reduction.type",
    ),
    (
        "client_secrets",
        ga(a_in(noise_reduction={"strength": 0.5})),
        UnknownParameter,
        "session.audio.input.noise_reduction.strength",
    ),
    (
        "client_secrets",
        ga(a_in(turn_detection={"threshold": 0.5})),
        InvalidValue,
        "session.audio.input.turn_detection.type",
    ),
    (
        "client_secrets",
        ga(a_in(turn_detection={"type": "push"})),
        InvalidValue,
        "session.audio.input.turn_detection.type",
    ),
    (
        "client_secrets",
        ga(a_in(turn_detection={"type": "server_vad", "threshold": 1.5})),
        InvalidValue,
        "session.audio.input.turn_detection.threshold",
    ),
    (
        "client_secrets",
        ga(a_in(turn_detection={"type": "server_vad", "silence_duration_ms": -1})),
        InvalidValue,
        "session.audio.input.turn_detection.silence_duration_ms",
    ),
    (
        "client_secrets",
        ga(a_in(turn_detection={"type": "server_vad", "prefix_padding_ms": 1.5})),
        InvalidValue,
        "session.audio.input.turn_detection.prefix_padding_ms",
    ),
    (
        "client_secrets",
        ga(a_in(turn_detection={"type": "server_vad", "idle_timeout_ms": 1000})),
        InvalidValue,
        "session.audio.input.turn_detection.idle_timeout_ms",
    ),
    (
        "client_secrets",
        ga(a_in(turn_detection={"type": "server_vad", "create_response": "yes"})),
        InvalidValue,
        "session.audio.input.turn_detection.create_response",
    ),
    (
        "client_secrets",
        ga(a_in(turn_detection={"type": "server_vad", "eagerness": "low"})),
        UnknownParameter,
        "session.audio.input.turn_detection.eagerness",
    ),
    (
        "client_secrets",
        ga(a_in(turn_detection={"type": "semantic_vad", "eagerness": "max"})),
        InvalidValue,
        "session.audio.input.turn_detection.eagerness",
    ),
    (
        "client_secrets",
        ga(a_in(turn_detection={"type": "semantic_vad", "threshold": 0.5})),
        UnknownParameter,
        "session.audio.input.turn_detection.threshold",
    ),
    ("client_secrets", ga(a_out(voice=7)), InvalidValue, "session.audio.output.voice"),
    ("client_secrets", ga(a_out(voice="v" * 257)), InvalidValue, "session.audio.output.voice"),
    (
        "client_secrets",
        ga(a_out(voice={"name": "x"})),
        UnknownParameter,
        "session.audio.output.voice.name",
    ),
    ("client_secrets", ga(a_out(speed=2)), InvalidValue, "session.audio.output.speed"),
    ("client_secrets", ga(a_out(speed=0.2)), InvalidValue, "session.audio.output.speed"),
    ("client_secrets", ga(a_out(speed=True)), InvalidValue, "session.audio.output.speed"),
    (
        "client_secrets",
        ga(a_out(format={"type": "audio/opus"})),
        InvalidValue,
        "session.audio.output.format.type",
    ),
    ("client_secrets", ga({"tools": {}}), InvalidValue, "session.tools"),
    (
        "client_secrets",
        ga({"tools": [{"type": "web_search"}]}),
        InvalidValue,
        "session.tools[0].type",
    ),
    (
        "client_secrets",
        ga({"tools": [{"type": "function"}]}),
        InvalidValue,
        "session.tools[0].name",
    ),
    (
        "client_secrets",
        ga({"tools": [{"type": "function", "name": "f", "strict": True}]}),
        UnknownParameter,
        "session.tools[0].strict",
    ),
    (
        "client_secrets",
        ga({"tools": [{"type": "function", "name": "f", "parameters": "{}"}]}),
        InvalidValue,
        "session.tools[0].parameters",
    ),
    (
        "client_secrets",
        ga({"tools": [{"type": "mcp"}]}),
        InvalidValue,
        "session.tools[0].server_label",
    ),
    (
        "client_secrets",
        ga({"tools": [{"type": "mcp", "server_label": "s", "colour": 1}]}),
        UnknownParameter,
        "session.tools[0].colour",
    ),
    (
        "client_secrets",
        ga({"tools": [{"type": "mcp", "server_label": "s", "require_approval": "sometimes"}]}),
        InvalidValue,
        "session.tools[0].require_approval",
    ),
    (
        "client_secrets",
        ga({"tools": [{"type": "mcp", "server_label": "s", "connector_id": "connector_x"}]}),
        InvalidValue,
        "session.tools[0].connector_id",
    ),
    ("client_secrets", ga({"tool_choice": "always"}), InvalidValue, "session.tool_choice"),
    (
        "client_secrets",
        ga({"tool_choice": {"type": "function"}}),
        InvalidValue,
        "session.tool_choice.name",
    ),
    (
        "client_secrets",
        ga({"tool_choice": {"type": "mcp", "name": "x"}}),
        InvalidValue,
        "session.tool_choice.server_label",
    ),
    ("client_secrets", ga({"max_output_tokens": 0}), InvalidValue, "session.max_output_tokens"),
    ("client_secrets", ga({"max_output_tokens": 4097}), InvalidValue, "session.max_output_tokens"),
    (
        "client_secrets",
        ga({"max_output_tokens": "infinite"}),
        InvalidValue,
        "session.max_output_tokens",
    ),
    ("client_secrets", ga({"tracing": "manual"}), InvalidValue, "session.tracing"),
    (
        "client_secrets",
        ga({"tracing": {"workflow": "w"}}),
        UnknownParameter,
        "session.tracing.workflow",
    ),
    ("client_secrets", ga({"truncation": "sometimes"}), InvalidValue, "session.truncation"),
    (
        "client_secrets",
        ga({"truncation": {"type": "retention_ratio", "retention_ratio": 2}}),
        InvalidValue,
        "session.truncation.retention_ratio",
    ),
    ("client_secrets", ga({"prompt": {"version": "1"}}), InvalidValue, "session.prompt.id"),
    ("client_secrets", ga({"include": ["everything"]}), InvalidValue, "session.include[0]"),
    (
        "client_secrets",
        ga({"reasoning": {"effort": "extreme"}}),
        InvalidValue,
        "session.reasoning.effort",
    ),
    ("client_secrets", ga({"parallel_tool_calls": 1}), InvalidValue, "session.parallel_tool_calls"),
    ("client_secrets", gt({"model": "whisper-1"}), UnknownParameter, "session.model"),
    ("client_secrets", gt({"audio": {"output": {}}}), UnknownParameter, "session.audio.output"),
    (
        "client_secrets",
        gt(a_in(transcription={"model": ""})),
        InvalidValue,
        "session.audio.input.transcription.model",
    ),
    # Beta sessions: the same checks, the beta spelling
    ("sessions", {"foo": 1}, UnknownParameter, "foo"),
    ("sessions", {"include": []}, UnknownParameter, "include"),
    ("sessions", {"model": 5}, InvalidValue, "model"),
    ("sessions", {"model": "m" * 10_000}, InvalidValue, "model"),
    ("sessions", {"instructions": 1}, InvalidValue, "instructions"),
    ("sessions", {"modalities": ["text", "video"]}, InvalidValue, "modalities[1]"),
    ("sessions", {"voice": 7}, InvalidValue, "voice"),
    ("sessions", {"input_audio_format": "mp3"}, InvalidValue, "input_audio_format"),
    ("sessions", {"output_audio_format": "mp3"}, InvalidValue, "output_audio_format"),
    (
        "sessions",
        {"input_audio_transcription": {"model": 1}},
        InvalidValue,
        "input_audio_transcription.model",
    ),
    (
        "sessions",
        {"input_audio_noise_reduction": {"type": "x"}},
        InvalidValue,
        "input_audio_noise_reduction.type",
    ),
    ("sessions", {"turn_detection": {"type": "push"}}, InvalidValue, "turn_detection.type"),
    (
        "sessions",
        {"turn_detection": {"silence_duration_ms": "1s"}},
        InvalidValue,
        "turn_detection.silence_duration_ms",
    ),
    ("sessions", {"turn_detection": {"foo": 1}}, UnknownParameter, "turn_detection.foo"),
    ("sessions", {"tools": [{"type": "mcp", "server_label": "s"}]}, InvalidValue, "tools[0].type"),
    ("sessions", {"tools": [{"description": "no name"}]}, InvalidValue, "tools[0].name"),
    ("sessions", {"tool_choice": 3}, InvalidValue, "tool_choice"),
    ("sessions", {"temperature": "warm"}, InvalidValue, "temperature"),
    ("sessions", {"temperature": False}, InvalidValue, "temperature"),
    ("sessions", {"max_response_output_tokens": 0}, InvalidValue, "max_response_output_tokens"),
    ("sessions", {"speed": 3}, InvalidValue, "speed"),
    ("sessions", {"tracing": "manual"}, InvalidValue, "tracing"),
    ("sessions", {"truncation": 1}, InvalidValue, "truncation"),
    ("sessions", {"prompt": {}}, InvalidValue, "prompt.id"),
    (
        "sessions",
        {"client_secret": {"expires_after": {"seconds": 5}}},
        InvalidValue,
        "client_secret.expires_after.seconds",
    ),
    (
        "sessions",
        {"client_secret": {"expires_after": {"seconds": 60, "x": 1}}},
        UnknownParameter,
        "client_secret.expires_after.x",
    ),
    # Beta transcription sessions
    ("transcription_sessions", {"model": "whisper-1"}, UnknownParameter, "model"),
    ("transcription_sessions", {"temperature": 0.8}, UnknownParameter, "temperature"),
    ("transcription_sessions", {"include": ["all"]}, InvalidValue, "include[0]"),
    ("transcription_sessions", {"input_audio_format": "wav"}, InvalidValue, "input_audio_format"),
    (
        "transcription_sessions",
        {"input_audio_transcription": {"language": 1}},
        InvalidValue,
        "input_audio_transcription.language",
    ),
    (
        "transcription_sessions",
        {"turn_detection": {"type": "server_vad", "threshold": -1}},
        InvalidValue,
        "turn_detection.threshold",
    ),
    (
        "transcription_sessions",
        {"client_secret": {"expires_at": {"seconds": 9000}}},
        InvalidValue,
        "client_secret.expires_after.seconds",
    ),
]


@pytest.mark.parametrize(("endpoint", "body", "error", "param"), DECODE_ERRORS)
def test_decode_errors_name_the_param_in_the_clients_shape(
    endpoint: Endpoint, body: dict[str, Any], error: type[Exception], param: str
) -> None:
    with pytest.raises(error) as caught:
        decode_request(endpoint, body)

    assert type(caught.value) is error
    assert getattr(caught.value, "param", None) == param
    assert f"'{param}'" in str(caught.value)


@pytest.mark.parametrize("body", [[], "x", 1, None])
@pytest.mark.parametrize("endpoint", ["client_secrets", "sessions", "transcription_sessions"])
def test_a_body_that_is_not_an_object_is_invalid_json(endpoint: Endpoint, body: object) -> None:
    with pytest.raises(InvalidJSON):
        decode_request(endpoint, body)


def test_null_means_not_given() -> None:
    body = ga(
        {
            "model": None,
            "tracing": None,
            "prompt": None,
            "audio": {"input": {"transcription": None}},
        }
    )

    assert decode_request("client_secrets", body).session == Session()
