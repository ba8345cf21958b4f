from __future__ import annotations

from typing import Any

import pytest

from service.errors import InvalidValue, UnknownParameter
from service.session.translate import beta_param, beta_to_ga, ga_to_beta


@pytest.mark.parametrize(
    ("ga", "beta"),
    [
        ("session.model", "model"),
        ("session.instructions", "instructions"),
        ("session.audio.output.voice", "voice"),
        ("session.audio.output.voice.id", "voice.id"),
        ("session.audio.output.speed", "speed"),
        ("session.output_modalities", "modalities"),
        ("session.output_modalities[1]", "modalities[1]"),
        ("session.audio.input.format", "input_audio_format"),
        ("session.audio.output.format", "output_audio_format"),
        ("session.audio.input.transcription.model", "input_audio_transcription.model"),
        ("session.audio.input.noise_reduction.type", "input_audio_noise_reduction.type"),
        ("session.audio.input.turn_detection.type", "turn_detection.type"),
        ("session.max_output_tokens", "max_response_output_tokens"),
        ("session.tools[0].name", "tools[0].name"),
        ("session.tool_choice", "tool_choice"),
        ("session.temperature", "temperature"),
        ("expires_after.seconds", "client_secret.expires_after.seconds"),
        (None, None),
    ],
)
def test_beta_param_respells_ga_paths(ga: str | None, beta: str | None) -> None:
    assert beta_param(ga) == beta


BETA_TO_GA = [
    ({"model": "m"}, {"model": "m"}),
    ({"instructions": "i"}, {"instructions": "i"}),
    ({"modalities": ["text"]}, {"output_modalities": ["text"]}),
    ({"modalities": ["text", "audio"]}, {"output_modalities": ["audio"]}),
    ({"voice": "ash"}, {"audio": {"output": {"voice": "ash"}}}),
    ({"speed": 1.1}, {"audio": {"output": {"speed": 1.1}}}),
    (
        {"input_audio_format": "pcm16"},
        {"audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000}}}},
    ),
    (
        {"output_audio_format": "g711_alaw"},
        {"audio": {"output": {"format": {"type": "audio/pcma"}}}},
    ),
    (
        {"input_audio_transcription": {"model": "whisper-1"}},
        {"audio": {"input": {"transcription": {"model": "whisper-1"}}}},
    ),
    (
        {"input_audio_noise_reduction": {"type": "far_field"}},
        {"audio": {"input": {"noise_reduction": {"type": "far_field"}}}},
    ),
    (
        {"turn_detection": {"silence_duration_ms": 5}},
        {"audio": {"input": {"turn_detection": {"type": "server_vad", "silence_duration_ms": 5}}}},
    ),
    ({"turn_detection": None}, {"audio": {"input": {"turn_detection": None}}}),
    ({"tool_choice": "auto"}, {"tool_choice": "auto"}),
    ({"tool_choice": "lookup"}, {"tool_choice": {"type": "function", "name": "lookup"}}),
    ({"temperature": 0.7}, {"temperature": 0.7}),
    ({"max_response_output_tokens": "inf"}, {"max_output_tokens": "inf"}),
    ({"tracing": "auto"}, {"tracing": "auto"}),
]


@pytest.mark.parametrize(("beta", "ga"), BETA_TO_GA)
def test_beta_to_ga_moves_each_field(beta: dict[str, Any], ga: dict[str, Any]) -> None:
    assert beta_to_ga(beta, "realtime") == {"session": {"type": "realtime", **ga}}


def test_beta_to_ga_reads_the_ttl_under_either_sdk_spelling() -> None:
    after = beta_to_ga(
        {"client_secret": {"expires_after": {"anchor": "created_at", "seconds": 30}}}, "realtime"
    )
    at = beta_to_ga({"client_secret": {"expires_at": {"seconds": 40}}}, "transcription")

    assert after["expires_after"] == {"anchor": "created_at", "seconds": 30}
    assert at["expires_after"] == {"seconds": 40}


@pytest.mark.parametrize(
    ("kind", "body", "error", "param"),
    [
        ("realtime", {"include": []}, UnknownParameter, "include"),
        ("realtime", {"foo": 1}, UnknownParameter, "foo"),
        ("transcription", {"model": "m"}, UnknownParameter, "model"),
        ("transcription", {"voice": "ash"}, UnknownParameter, "voice"),
        ("realtime", {"input_audio_format": "mp3"}, InvalidValue, "input_audio_format"),
        ("realtime", {"output_audio_format": 1}, InvalidValue, "output_audio_format"),
        ("realtime", {"modalities": []}, InvalidValue, "modalities"),
        ("realtime", {"modalities": ["video"]}, InvalidValue, "modalities[0]"),
        ("realtime", {"temperature": "hot"}, InvalidValue, "temperature"),
        ("realtime", {"temperature": 3}, InvalidValue, "temperature"),
        ("realtime", {"client_secret": {"value": "x"}}, UnknownParameter, "client_secret.value"),
        (
            "realtime",
            {"client_secret": {"expires_after": {"anchor": "now"}}},
            InvalidValue,
            "client_secret.expires_after.anchor",
        ),
    ],
)
def test_beta_to_ga_checks_beta_only_fields_with_beta_params(
    kind: str, body: dict[str, Any], error: type[Exception], param: str
) -> None:
    with pytest.raises(error) as caught:
        beta_to_ga(body, kind)

    assert getattr(caught.value, "param", None) == param


def test_beta_to_ga_ignores_response_only_keys_when_lenient() -> None:
    body = {
        "id": "sess_1",
        "object": "realtime.session",
        "client_secret": {"value": "ek_x"},
        "model": "m",
    }

    assert beta_to_ga(body, "realtime", strict=False) == {
        "session": {"type": "realtime", "model": "m"}
    }


GA_TO_BETA = [
    # (GA session fields, beta fields, dropped)
    ({"model": "m", "instructions": "i"}, {"model": "m", "instructions": "i"}, []),
    ({"output_modalities": ["audio"]}, {"modalities": ["audio", "text"]}, []),
    ({"output_modalities": ["text"]}, {"modalities": ["text"]}, []),
    ({"max_output_tokens": 5}, {"max_response_output_tokens": 5}, []),
    (
        {"audio": {"input": {"format": {"type": "audio/pcmu"}}}},
        {"input_audio_format": "g711_ulaw"},
        [],
    ),
    (
        {
            "audio": {
                "output": {
                    "format": {"type": "audio/pcm", "rate": 24000},
                    "voice": "ash",
                    "speed": 1.0,
                }
            }
        },
        {"output_audio_format": "pcm16", "voice": "ash", "speed": 1.0},
        [],
    ),
    (
        {
            "audio": {
                "input": {
                    "transcription": {
                        "model": "w",
                        "languages": ["en"],
                        "keywords": ["k"],
                        "delay": "low",
                    }
                }
            }
        },
        {"input_audio_transcription": {"model": "w"}},
        [
            "session.audio.input.transcription.languages",
            "session.audio.input.transcription.keywords",
            "session.audio.input.transcription.delay",
        ],
    ),
    (
        {"audio": {"input": {"noise_reduction": {"type": "near_field"}}}},
        {"input_audio_noise_reduction": {"type": "near_field"}},
        [],
    ),
    (
        {"audio": {"input": {"turn_detection": {"type": "server_vad", "idle_timeout_ms": 6000}}}},
        {"turn_detection": {"type": "server_vad"}},
        ["session.audio.input.turn_detection.idle_timeout_ms"],
    ),
    ({"audio": {"input": {"turn_detection": None}}}, {"turn_detection": None}, []),
    (
        {"tools": [{"type": "function", "name": "f"}, {"type": "mcp", "server_label": "crm"}]},
        {"tools": [{"type": "function", "name": "f"}]},
        ["session.tools"],
    ),
    ({"tool_choice": {"type": "function", "name": "f"}}, {"tool_choice": "f"}, []),
    ({"tool_choice": {"type": "mcp", "server_label": "crm"}}, {}, ["session.tool_choice"]),
    ({"include": ["item.input_audio_transcription.logprobs"]}, {}, ["session.include"]),
    (
        {"reasoning": {"effort": "low"}, "parallel_tool_calls": True},
        {},
        ["session.reasoning", "session.parallel_tool_calls"],
    ),
    (
        {"tracing": "auto", "truncation": "auto", "prompt": {"id": "p"}},
        {"tracing": "auto", "truncation": "auto", "prompt": {"id": "p"}},
        [],
    ),
]


@pytest.mark.parametrize(("ga", "beta", "dropped"), GA_TO_BETA)
def test_ga_to_beta_moves_each_field_and_lists_what_beta_lacks(
    ga: dict[str, Any], beta: dict[str, Any], dropped: list[str]
) -> None:
    assert ga_to_beta({"type": "realtime", **ga}, "realtime") == (beta, dropped)


def test_ga_to_beta_keeps_include_for_transcription_sessions() -> None:
    ga = {"type": "transcription", "include": ["item.input_audio_transcription.logprobs"]}

    assert ga_to_beta(ga, "transcription") == (
        {"include": ["item.input_audio_transcription.logprobs"]},
        [],
    )


def test_ga_to_beta_responses_leave_out_nulls_the_beta_schema_refuses() -> None:
    ga = {"type": "realtime", "audio": {"input": {"turn_detection": None}}}

    assert ga_to_beta(ga, "realtime", response=True) == ({}, [])
