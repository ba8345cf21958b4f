"""The fake upstream's mint answers: OpenAI's response shapes with the defaults filled in.

Each builder takes a request already accepted by `fake_shapes` and the current time.
Secrets are `ek_` plus 32 hex characters with a real `expires_at`. A field the request
left out gets OpenAI's default; a null the response schema does not allow is left out
rather than sent as null, so every answer validates against the reference schemas.
"""

from __future__ import annotations

import secrets
from typing import Any

GA_DEFAULT_TTL = 600
BETA_DEFAULT_TTL = 60
DEFAULT_INSTRUCTIONS = "You are a helpful, witty, and friendly AI."
PCM = {"type": "audio/pcm", "rate": 24000}
GA_DEFAULT_MODEL = "gpt-realtime"
BETA_DEFAULT_MODEL = "gpt-4o-realtime-preview"
DEFAULT_TRANSCRIPTION = {"model": "gpt-4o-mini-transcribe"}
# OpenAI's Realtime models (openai-python 3.63's RealtimeSessionCreateRequest), and those
# that reason: a session of one of these reports the effort it runs with, OpenAI's
# default (`low`) when none was asked for.
REALTIME_MODELS = (
    "gpt-realtime", "gpt-realtime-1.5", "gpt-realtime-2", "gpt-realtime-2.1",
    "gpt-realtime-2.1-mini", "gpt-realtime-2025-08-28", "gpt-realtime-mini",
    "gpt-realtime-mini-2025-10-06", "gpt-realtime-mini-2025-12-15",
    "gpt-4o-realtime-preview", "gpt-4o-realtime-preview-2024-10-01",
    "gpt-4o-realtime-preview-2024-12-17", "gpt-4o-realtime-preview-2025-06-03",
    "gpt-4o-mini-realtime-preview", "gpt-4o-mini-realtime-preview-2024-12-17",
    "gpt-audio-1.5", "gpt-audio-mini", "gpt-audio-mini-2025-10-06", "gpt-audio-mini-2025-12-15",
)  # fmt: skip
REASONING_MODELS = ("gpt-realtime-2", "gpt-realtime-2.1", "gpt-realtime-2.1-mini")
DEFAULT_REASONING = {"effort": "low"}


def new_client_secret() -> str:
    return "ek_" + secrets.token_hex(16)


def _session_id() -> str:
    return "sess_" + secrets.token_hex(11)[:21]


def _turn_detection(
    requested: dict[str, Any] | None, *, silence_ms: int, ga_realtime: bool
) -> dict[str, Any] | None:
    """OpenAI's VAD defaults under what the caller set; None when the caller turned it off."""
    if requested is None:
        return None
    kind = requested.get("type", "server_vad")
    if kind == "semantic_vad":
        defaults: dict[str, Any] = {
            "type": "semantic_vad",
            "eagerness": "auto",
            "create_response": True,
            "interrupt_response": True,
        }
    else:
        defaults = {
            "type": "server_vad",
            "threshold": 0.5,
            "prefix_padding_ms": 300,
            "silence_duration_ms": silence_ms,
        }
        if ga_realtime:
            defaults |= {
                "idle_timeout_ms": None,
                "create_response": True,
                "interrupt_response": True,
            }
    return defaults | requested


def _expires_at(body: dict[str, Any], key: str, default: int, now: float) -> int:
    expires_after = body.get(key) or {}
    if key == "client_secret":
        expires_after = expires_after.get("expires_after") or {}
    return int(now) + int(expires_after.get("seconds", default))


def _ga_realtime(request: dict[str, Any]) -> dict[str, Any]:
    audio = request.get("audio") or {}
    requested_in = audio.get("input") or {}
    requested_out = audio.get("output") or {}
    audio_in: dict[str, Any] = {
        "format": requested_in.get("format", dict(PCM)),
        "turn_detection": _turn_detection(
            requested_in.get("turn_detection", {}), silence_ms=200, ga_realtime=True
        ),
    }
    for key in ("transcription", "noise_reduction"):
        if requested_in.get(key) is not None:
            audio_in[key] = requested_in[key]
    voice = requested_out.get("voice", "alloy")
    session: dict[str, Any] = {
        "type": "realtime",
        "object": "realtime.session",
        "id": _session_id(),
        "model": request.get("model", GA_DEFAULT_MODEL),
        "output_modalities": request.get("output_modalities", ["audio"]),
        "instructions": request.get("instructions", DEFAULT_INSTRUCTIONS),
        "tools": request.get("tools", []),
        "tool_choice": request.get("tool_choice", "auto"),
        "max_output_tokens": request.get("max_output_tokens", "inf"),
        "tracing": request.get("tracing"),
        "truncation": request.get("truncation", "auto"),
        "prompt": request.get("prompt"),
        # OpenAI reports 0 here: the session has no expiry until a connection starts it.
        "expires_at": 0,
        "audio": {
            "input": audio_in,
            "output": {
                "format": requested_out.get("format", dict(PCM)),
                # A custom voice is requested as {"id": ...} and reported by its id.
                "voice": voice["id"] if isinstance(voice, dict) else voice,
                "speed": requested_out.get("speed", 1.0),
            },
        },
    }
    for key in ("include", "reasoning"):
        if request.get(key) is not None:
            session[key] = request[key]
    if session["model"] in REASONING_MODELS:
        session["reasoning"] = DEFAULT_REASONING | (request.get("reasoning") or {})
    return session


def _ga_transcription(request: dict[str, Any]) -> dict[str, Any]:
    requested_in = (request.get("audio") or {}).get("input") or {}
    audio_in: dict[str, Any] = {
        "format": requested_in.get("format", dict(PCM)),
        "transcription": requested_in.get("transcription") or dict(DEFAULT_TRANSCRIPTION),
        "turn_detection": _turn_detection(
            requested_in.get("turn_detection", {}), silence_ms=500, ga_realtime=False
        ),
    }
    if requested_in.get("noise_reduction") is not None:
        audio_in["noise_reduction"] = requested_in["noise_reduction"]
    session: dict[str, Any] = {
        "type": "transcription",
        "object": "realtime.transcription_session",
        "id": _session_id(),
        "expires_at": 0,
        "audio": {"input": audio_in},
    }
    if request.get("include") is not None:
        session["include"] = request["include"]
    return session


def ga_client_secret(body: dict[str, Any], now: float) -> dict[str, Any]:
    """POST /v1/realtime/client_secrets → RealtimeCreateClientSecretResponse."""
    session = body.get("session") or {"type": "realtime"}
    built = _ga_realtime(session) if session["type"] == "realtime" else _ga_transcription(session)
    return {
        "value": new_client_secret(),
        "expires_at": _expires_at(body, "expires_after", GA_DEFAULT_TTL, now),
        "session": built,
    }


def translation_client_secret(body: dict[str, Any], now: float) -> dict[str, Any]:
    """POST /v1/realtime/translations/client_secrets →
    RealtimeTranslationClientSecretCreateResponse: the session as asked for (the
    translation reference names no defaults for its audio), `type: "translation"`."""
    request = body["session"]
    requested = request.get("audio") or {}
    audio: dict[str, Any] = {}
    audio_in = {
        key: value
        for key, value in (requested.get("input") or {}).items()
        if value is not None  # a null (turned off) is not reported
    }
    if audio_in:
        audio["input"] = audio_in
    if requested.get("output"):
        audio["output"] = dict(requested["output"])
    return {
        "value": new_client_secret(),
        "expires_at": _expires_at(body, "expires_after", GA_DEFAULT_TTL, now),
        "session": {
            "id": _session_id(),
            "type": "translation",
            "model": request["model"],
            "audio": audio,
            "expires_at": 0,
        },
    }


def beta_session(body: dict[str, Any], now: float) -> dict[str, Any]:
    """POST /v1/realtime/sessions → the beta session object plus `client_secret`."""
    voice = body.get("voice", "alloy")
    session: dict[str, Any] = {
        "id": _session_id(),
        "object": "realtime.session",
        "expires_at": 0,
        "model": body.get("model", BETA_DEFAULT_MODEL),
        "modalities": body.get("modalities", ["audio", "text"]),
        "instructions": body.get("instructions", DEFAULT_INSTRUCTIONS),
        "voice": voice["id"] if isinstance(voice, dict) else voice,
        "input_audio_format": body.get("input_audio_format", "pcm16"),
        "output_audio_format": body.get("output_audio_format", "pcm16"),
        "input_audio_transcription": body.get("input_audio_transcription"),
        "input_audio_noise_reduction": body.get("input_audio_noise_reduction"),
        "tools": body.get("tools", []),
        "tool_choice": body.get("tool_choice", "auto"),
        "temperature": body.get("temperature", 0.8),
        "max_response_output_tokens": body.get("max_response_output_tokens", "inf"),
        "speed": body.get("speed", 1.0),
        "client_secret": {
            "value": new_client_secret(),
            "expires_at": _expires_at(body, "client_secret", BETA_DEFAULT_TTL, now),
        },
    }
    turn_detection = _turn_detection(
        body.get("turn_detection", {}), silence_ms=200, ga_realtime=False
    )
    optional = {
        "turn_detection": turn_detection,
        "tracing": body.get("tracing"),
        "include": body.get("include"),
    }
    session |= {key: value for key, value in optional.items() if value is not None}
    return session


def beta_transcription_session(body: dict[str, Any], now: float) -> dict[str, Any]:
    """POST /v1/realtime/transcription_sessions → the beta transcription session."""
    session: dict[str, Any] = {
        "id": _session_id(),
        "object": "realtime.transcription_session",
        "expires_at": 0,
        "modalities": body.get("modalities", ["audio", "text"]),
        "input_audio_format": body.get("input_audio_format", "pcm16"),
        "input_audio_transcription": body.get("input_audio_transcription")
        or dict(DEFAULT_TRANSCRIPTION),
        "input_audio_noise_reduction": body.get("input_audio_noise_reduction"),
        "client_secret": {
            "value": new_client_secret(),
            "expires_at": _expires_at(body, "client_secret", BETA_DEFAULT_TTL, now),
        },
    }
    turn_detection = _turn_detection(
        body.get("turn_detection", {}), silence_ms=500, ga_realtime=False
    )
    optional = {"turn_detection": turn_detection, "include": body.get("include")}
    session |= {key: value for key, value in optional.items() if value is not None}
    return session
