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

from service.errors import UpstreamError
from service.policy.apply import apply_policy
from service.policy.parse import default_policy, parse_policy
from service.redact import Secret
from service.session.codec import (
    decode_request,
    decode_upstream_response,
    encode_response,
    encode_upstream_request,
)
from service.session.model import Endpoint, MintRequest, MintResult, Session
from tests.session.bodies import BETA_FULL, GA_FULL, NOW, a_in, a_out, ga, gt, upstream_answer

SPEC = Path(__file__).parents[1] / "schemas" / "openai-openapi-subset.yaml"


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
    result = decode_upstream_response(
        api, effective.kind, upstream_answer(api, path, upstream_body)
    )
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
