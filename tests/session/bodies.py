"""Mint bodies of both shapes, shared by the session decoder and codec tests."""

from __future__ import annotations

from typing import Any

from service.fake import sessions as fake_sessions

# The clock of the fake upstream's answers in these tests.
NOW = 1_700_000_000

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


def ga(session: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"session": {"type": "realtime", **session}, **top}


def gt(session: dict[str, Any]) -> dict[str, Any]:
    return {"session": {"type": "transcription", **session}}


def a_in(**fields: Any) -> dict[str, Any]:
    return {"audio": {"input": fields}}


def a_out(**fields: Any) -> dict[str, Any]:
    return {"audio": {"output": fields}}


def upstream_answer(api: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """The fake upstream's answer to a mint sent as `body` to `path`, at NOW."""
    if api == "ga":
        return fake_sessions.ga_client_secret(body, NOW)
    if path == "/realtime/sessions":
        return fake_sessions.beta_session(body, NOW)
    return fake_sessions.beta_transcription_session(body, NOW)
