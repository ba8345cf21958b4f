from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator
from openai.types.beta.realtime import SessionCreateResponse, TranscriptionSession
from openai.types.realtime import ClientSecretCreateResponse
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from service.errors import InvalidJSON, InvalidValue, UnknownParameter, UpstreamError
from service.policy import apply_policy, default_policy, parse_policy
from service.redact import Secret
from service.session import (
    AudioFormat,
    Endpoint,
    FunctionTool,
    McpTool,
    MintRequest,
    MintResult,
    NoiseReduction,
    Session,
    ToolChoice,
    Transcription,
    TurnDetection,
    decode_request,
    decode_upstream_response,
    encode_response,
    encode_upstream_request,
)
from service.upstream import fake_sessions

SPEC = Path(__file__).parent / "schemas" / "openai-openapi-subset.yaml"
NOW = 1_700_000_000


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(SPEC.read_text())
    return loaded


@pytest.fixture(scope="module")
def schema(spec: dict[str, Any]) -> Any:
    """`schema("Name")` → a validator for components/schemas/Name (OpenAPI 3.1 ≈ 2020-12)."""
    resource = Resource.from_contents(spec, default_specification=DRAFT202012)
    registry: Registry[Any] = Registry().with_resource("urn:openai", resource)

    def validator(name: str) -> Draft202012Validator:
        ref = {"$ref": f"urn:openai#/components/schemas/{name}"}
        return Draft202012Validator(ref, registry=registry)

    return validator


# ---------------------------------------------------------------------------------------
# decode_request: the whole of both shapes

GA_FULL: dict[str, Any] = {
    "expires_after": {"anchor": "created_at", "seconds": 120},
    "session": {
        "type": "realtime",
        "model": "gpt-realtime",
        "instructions": "Be brief.",
        "output_modalities": ["audio"],
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "transcription": {"model": "whisper-1", "language": "en", "prompt": "names"},
                "noise_reduction": {"type": "near_field"},
                "turn_detection": {
                    "type": "server_vad",
                    "threshold": 0.5,
                    "prefix_padding_ms": 300,
                    "silence_duration_ms": 500,
                    "idle_timeout_ms": None,
                    "create_response": True,
                    "interrupt_response": False,
                },
            },
            "output": {"format": {"type": "audio/pcmu"}, "voice": "verse", "speed": 1.1},
        },
        "tools": [
            {
                "type": "function",
                "name": "lookup",
                "description": "d",
                "parameters": {"type": "object"},
            }
        ],
        "tool_choice": {"type": "function", "name": "lookup"},
        "max_output_tokens": 512,
        "tracing": {"workflow_name": "w", "group_id": "g", "metadata": {"a": 1}},
        "truncation": {"type": "retention_ratio", "retention_ratio": 0.5},
        "prompt": {"id": "pmpt_1", "version": "2", "variables": {"x": "y"}},
        "include": ["item.input_audio_transcription.logprobs"],
        "reasoning": {"effort": "low"},
        "parallel_tool_calls": False,
    },
}
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
BETA_FULL: dict[str, Any] = {
    "model": "gpt-realtime",
    "instructions": "Be brief.",
    "modalities": ["text", "audio"],
    "voice": "verse",
    "input_audio_format": "pcm16",
    "output_audio_format": "g711_ulaw",
    "input_audio_transcription": {"model": "whisper-1", "language": "en", "prompt": "names"},
    "input_audio_noise_reduction": {"type": "near_field"},
    "turn_detection": {
        "type": "server_vad",
        "threshold": 0.5,
        "prefix_padding_ms": 300,
        "silence_duration_ms": 500,
        "create_response": True,
        "interrupt_response": False,
    },
    "tools": [
        {"type": "function", "name": "lookup", "description": "d", "parameters": {"type": "object"}}
    ],
    "tool_choice": "lookup",
    "temperature": 0.7,
    "max_response_output_tokens": 512,
    "speed": 1.1,
    "tracing": {"workflow_name": "w", "group_id": "g", "metadata": {"a": 1}},
    "truncation": {"type": "retention_ratio", "retention_ratio": 0.5},
    "prompt": {"id": "pmpt_1", "version": "2", "variables": {"x": "y"}},
    "client_secret": {"expires_after": {"anchor": "created_at", "seconds": 120}},
}


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


def ga(session: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"session": {"type": "realtime", **session}, **top}


def gt(session: dict[str, Any]) -> dict[str, Any]:
    return {"session": {"type": "transcription", **session}}


def a_in(**fields: Any) -> dict[str, Any]:
    return {"audio": {"input": fields}}


def a_out(**fields: Any) -> dict[str, Any]:
    return {"audio": {"output": fields}}


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


# ---------------------------------------------------------------------------------------
# encode_upstream_request: both upstreams, translation both ways


def test_a_ga_request_to_a_ga_upstream_round_trips() -> None:
    request = decode_request("client_secrets", GA_FULL)

    path, body, dropped = encode_upstream_request(request, "ga")

    assert path == "/realtime/client_secrets"
    assert dropped == []
    assert body == GA_FULL | {"session": strip_nulls(GA_FULL["session"])}
    assert decode_request("client_secrets", body) == request


def strip_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: strip_nulls(v) for k, v in value.items() if v is not None}
    return value


def test_a_beta_request_to_a_beta_upstream_round_trips() -> None:
    request = decode_request("sessions", BETA_FULL)

    path, body, dropped = encode_upstream_request(request, "beta")

    assert path == "/realtime/sessions"
    assert dropped == []
    assert body == BETA_FULL | {"modalities": ["audio", "text"]}
    assert decode_request("sessions", body).session == request.session


def test_a_beta_request_to_a_ga_upstream_drops_temperature() -> None:
    request = decode_request("sessions", BETA_FULL)

    path, body, dropped = encode_upstream_request(request, "ga")

    assert path == "/realtime/client_secrets"
    assert dropped == ["session.temperature"]
    assert "temperature" not in body["session"]
    assert body["expires_after"] == {"anchor": "created_at", "seconds": 120}
    assert body["session"]["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert body["session"]["tool_choice"] == {"type": "function", "name": "lookup"}


def test_a_defaulted_temperature_is_dropped_silently_for_a_ga_upstream() -> None:
    rules = parse_policy({"roles": {"reader": {"temperature": {"default": 0.8}}}})
    effective, adjusted = apply_policy(rules, "reader", decode_request("client_secrets", {}))

    _, body, dropped = encode_upstream_request(effective, "ga")

    assert effective.session.temperature == 0.8
    assert (adjusted, dropped) == ([], [])
    assert "temperature" not in body["session"]


def test_a_ga_request_to_a_beta_upstream_drops_what_beta_lacks() -> None:
    body = copy.deepcopy(GA_FULL)
    body["session"]["audio"]["input"]["transcription"]["keywords"] = ["Acme"]
    body["session"]["audio"]["input"]["turn_detection"]["idle_timeout_ms"] = 6000
    body["session"]["tools"].append({"type": "mcp", "server_label": "crm"})
    request = decode_request("client_secrets", body)

    path, upstream, dropped = encode_upstream_request(request, "beta")

    assert path == "/realtime/sessions"
    assert dropped == [
        "session.include",
        "session.reasoning",
        "session.parallel_tool_calls",
        "session.tools",
        "session.audio.input.transcription.keywords",
        "session.audio.input.turn_detection.idle_timeout_ms",
    ]
    assert upstream["client_secret"] == {"expires_after": {"anchor": "created_at", "seconds": 120}}
    assert upstream["modalities"] == ["audio", "text"]
    assert upstream["input_audio_format"] == "pcm16"
    assert upstream["output_audio_format"] == "g711_ulaw"
    assert upstream["tool_choice"] == "lookup"
    assert upstream["max_response_output_tokens"] == 512
    assert [t["name"] for t in upstream["tools"]] == ["lookup"]
    assert "idle_timeout_ms" not in upstream["turn_detection"]


@pytest.mark.parametrize(
    ("endpoint", "body", "api", "path", "expected_dropped"),
    [
        (
            "transcription_sessions",
            {"modalities": ["text"], "include": ["item.input_audio_transcription.logprobs"]},
            "ga",
            "/realtime/client_secrets",
            ["session.output_modalities"],
        ),
        (
            "transcription_sessions",
            {"modalities": ["text"]},
            "beta",
            "/realtime/transcription_sessions",
            [],
        ),
        (
            "client_secrets",
            gt({"include": ["item.input_audio_transcription.logprobs"]}),
            "beta",
            "/realtime/transcription_sessions",
            [],
        ),
        (
            "client_secrets",
            gt(a_in(transcription={"model": "m", "delay": "low"})),
            "beta",
            "/realtime/transcription_sessions",
            ["session.audio.input.transcription.delay"],
        ),
    ],
)
def test_transcription_sessions_translate_both_ways(
    endpoint: Endpoint, body: dict[str, Any], api: Any, path: str, expected_dropped: list[str]
) -> None:
    request = decode_request(endpoint, body)

    got_path, upstream, dropped = encode_upstream_request(request, api)

    assert (got_path, dropped) == (path, expected_dropped)
    if api == "ga":
        assert upstream["session"]["type"] == "transcription"
    else:
        assert "model" not in upstream


def test_the_ttl_is_sent_only_once_set() -> None:
    request = MintRequest(kind="realtime", session=Session(), ttl_seconds=None)

    _, ga_body, _ = encode_upstream_request(request, "ga")
    _, beta_body, _ = encode_upstream_request(request, "beta")

    assert "expires_after" not in ga_body
    assert "client_secret" not in beta_body


# ---------------------------------------------------------------------------------------
# decode_upstream_response


def spec_example(spec: dict[str, Any]) -> dict[str, Any]:
    meta = spec["components"]["schemas"]["RealtimeCreateClientSecretResponse"]["x-oaiMeta"]
    example: dict[str, Any] = json.loads(meta["example"])
    return example


def test_the_specs_ga_example_decodes(spec: dict[str, Any]) -> None:
    result = decode_upstream_response("ga", "realtime", spec_example(spec))

    assert result.secret == Secret("ek_68af296e8e408191a1120ab6383263c2")
    assert result.expires_at == 1756310470
    assert result.session["id"] == "sess_C9CiUVUzUzYIssh3ELY1d"
    assert result.session["object"] == "realtime.session"
    assert result.session["audio"]["output"]["voice"] == "alloy"
    assert "ek_68af" not in repr(result)


def test_a_beta_upstream_answer_decodes_to_a_ga_shaped_session() -> None:
    body = {
        "id": "sess_001",
        "object": "realtime.session",
        "model": "gpt-realtime",
        "modalities": ["audio", "text"],
        "voice": "alloy",
        "input_audio_format": "pcm16",
        "turn_detection": None,
        "temperature": 0.7,
        "client_secret": {"value": "ek_abc123", "expires_at": 1234567890},
    }

    result = decode_upstream_response("beta", "realtime", body)

    assert (result.secret.reveal(), result.expires_at) == ("ek_abc123", 1234567890)
    assert result.session["output_modalities"] == ["audio"]
    assert result.session["audio"]["input"] == {
        "format": {"type": "audio/pcm", "rate": 24000},
        "turn_detection": None,
    }
    assert result.session["temperature"] == 0.7


@pytest.mark.parametrize(
    ("api", "body"),
    [
        ("ga", []),
        ("ga", {}),
        ("ga", {"value": "ek_1", "expires_at": 1}),
        ("ga", {"value": "ek_1", "expires_at": "soon", "session": {}}),
        ("ga", {"value": "ek_1", "expires_at": True, "session": {}}),
        ("ga", {"value": "", "expires_at": 1, "session": {}}),
        ("ga", {"value": 5, "expires_at": 1, "session": {}}),
        ("ga", {"expires_at": 1, "session": {}}),
        ("beta", {"id": "sess_1"}),
        ("beta", {"client_secret": "ek_1"}),
        ("beta", {"client_secret": {"value": "ek_1"}}),
        ("beta", {"client_secret": {"value": "ek_1", "expires_at": 1}, "modalities": "audio"}),
    ],
)
def test_a_malformed_upstream_answer_is_an_upstream_error(api: Any, body: object) -> None:
    with pytest.raises(UpstreamError) as caught:
        decode_upstream_response(api, "realtime", body)

    assert caught.value.message == "The upstream returned an unexpected response."
    assert "ek_1" not in str(caught.value)


def test_unreadable_ga_session_fields_are_skipped_not_fatal() -> None:
    body = {
        "value": "ek_1",
        "expires_at": 5,
        "session": {"id": "s", "model": 5, "audio": {"input": {"format": "pcm16"}}, "new": 1},
    }

    result = decode_upstream_response("ga", "realtime", body)

    assert result.session == {"type": "realtime", "id": "s", "object": "realtime.session"}


# ---------------------------------------------------------------------------------------
# encode_response: the client's shape, schema-valid and SDK-parsable whatever the upstream


def fake_upstream(api: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    if api == "ga":
        return fake_sessions.ga_client_secret(body, NOW)
    if path == "/realtime/sessions":
        return fake_sessions.beta_session(body, NOW)
    return fake_sessions.beta_transcription_session(body, NOW)


RESPONSE_CASES = [
    ("client_secrets", {}),
    ("client_secrets", GA_FULL),
    (
        "client_secrets",
        ga(
            {
                "tools": [
                    {
                        "type": "mcp",
                        "server_label": "crm",
                        "authorization": "mcp-secret-123",
                        "headers": {"X": "mcp-secret-123"},
                    }
                ],
                "audio": {
                    "output": {"voice": {"id": "voice_1"}},
                    "input": {"turn_detection": None},
                },
            }
        ),
    ),
    (
        "client_secrets",
        gt(
            a_in(
                transcription={"model": "gpt-4o-mini-transcribe", "languages": ["en"]},
                turn_detection=None,
            )
        ),
    ),
    ("client_secrets", gt({})),
    ("sessions", {}),
    ("sessions", BETA_FULL),
    (
        "sessions",
        {
            "turn_detection": None,
            "voice": {"id": "voice_1"},
            "modalities": ["text"],
            "tool_choice": "required",
        },
    ),
    ("transcription_sessions", {}),
    (
        "transcription_sessions",
        {
            "input_audio_transcription": {"model": "whisper-1", "language": "en"},
            "modalities": ["text"],
            "include": ["item.input_audio_transcription.logprobs"],
            "turn_detection": None,
        },
    ),
]


def respond(
    endpoint: Endpoint, body: dict[str, Any], api: Any
) -> tuple[dict[str, Any], MintRequest]:
    effective, _ = apply_policy(default_policy(), "reader", decode_request(endpoint, body))
    path, upstream_body, _ = encode_upstream_request(effective, api)
    result = decode_upstream_response(api, effective.kind, fake_upstream(api, path, upstream_body))
    return encode_response(endpoint, result, effective), effective


@pytest.mark.parametrize("api", ["ga", "beta"])
@pytest.mark.parametrize(("endpoint", "body"), RESPONSE_CASES)
def test_responses_validate_against_the_spec_and_parse_with_the_sdk(
    schema: Any, endpoint: Endpoint, body: dict[str, Any], api: str
) -> None:
    response, effective = respond(endpoint, body, api)

    if endpoint == "client_secrets":
        schema("RealtimeCreateClientSecretResponse").validate(response)
        parsed = ClientSecretCreateResponse.model_validate(response)
        assert parsed.value.startswith("ek_")
        assert parsed.session.type == effective.kind
        assert parsed.session.id.startswith("sess_")
    elif endpoint == "sessions":
        schema("RealtimeSessionCreateResponse").validate(response)
        beta = SessionCreateResponse.model_validate(response)
        assert beta.client_secret.value.startswith("ek_")
    else:
        schema("RealtimeTranscriptionSessionCreateResponse").validate(response)
        transcription = TranscriptionSession.model_validate(response)
        assert transcription.client_secret.expires_at == NOW + 60
    assert "mcp-secret-123" not in json.dumps(response)


def test_a_ga_response_reports_the_effective_session() -> None:
    response, _ = respond("client_secrets", GA_FULL, "beta")

    session = response["session"]
    assert response["expires_at"] == NOW + 120
    assert session["model"] == "gpt-realtime"
    assert session["audio"]["output"] == {
        "format": {"type": "audio/pcmu"},
        "voice": "verse",
        "speed": 1.1,
    }
    assert session["tool_choice"] == {"type": "function", "name": "lookup"}
    assert session["include"] == ["item.input_audio_transcription.logprobs"]
    assert "temperature" not in session


def test_a_beta_response_from_a_ga_upstream_speaks_beta() -> None:
    response, _ = respond("sessions", BETA_FULL, "ga")

    assert response["client_secret"]["expires_at"] == NOW + 120
    assert response["object"] == "realtime.session"
    assert response["modalities"] == ["audio", "text"]
    assert response["input_audio_format"] == "pcm16"
    assert response["output_audio_format"] == "g711_ulaw"
    assert response["max_response_output_tokens"] == 512
    assert response["tool_choice"] == "lookup"
    assert "audio" not in response
    assert "temperature" not in response  # a GA upstream applied none


def test_a_beta_response_from_a_beta_upstream_keeps_the_temperature() -> None:
    response, _ = respond("sessions", BETA_FULL, "beta")

    assert response["temperature"] == 0.7


def test_a_custom_voice_is_reported_by_its_id() -> None:
    response, _ = respond("client_secrets", ga(a_out(voice={"id": "voice_1"})), "ga")

    assert response["session"]["audio"]["output"]["voice"] == "voice_1"


def test_fields_the_upstream_left_out_come_from_the_effective_request() -> None:
    effective = decode_request(
        "client_secrets", ga({"model": "gpt-realtime", "instructions": "Hi."})
    )
    result = MintResult(
        Secret("ek_1"), 99, {"type": "realtime", "id": "sess_1", "object": "realtime.session"}
    )

    response = encode_response("client_secrets", result, effective)

    assert response == {
        "value": "ek_1",
        "expires_at": 99,
        "session": {
            "type": "realtime",
            "id": "sess_1",
            "object": "realtime.session",
            "model": "gpt-realtime",
            "instructions": "Hi.",
        },
    }
