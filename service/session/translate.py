"""Wire shapes: the translation between the beta and GA shapes.

The session model (service.session.model) is decoded from, and rendered to, one shape only:
the GA one (`POST /realtime/client_secrets`). Beta bodies (`/realtime/sessions`,
`/realtime/transcription_sessions`) are first translated here into a GA-shaped dict
(`beta_to_ga`), and GA-shaped dicts are translated back for a beta upstream or a beta
client (`ga_to_beta`). Errors found while decoding the GA dict carry GA parameter
paths; `beta_param` rewrites them into the beta client's own spelling. The strict JSON
checks used on the way are in `service.session.strict_json`.

This module knows nothing of the session dataclasses, so session imports it, never
the other way round.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from service.session.strict_json import as_number, as_object, as_str, as_str_list, check_keys

BETA_FORMATS = {"pcm16": "audio/pcm", "g711_ulaw": "audio/pcmu", "g711_alaw": "audio/pcma"}
GA_FORMATS = {ga: beta for beta, ga in BETA_FORMATS.items()}

# GA path prefix → the beta client's spelling, longest first so nested paths map right.
_BETA_PATHS: tuple[tuple[str, str], ...] = (
    ("session.audio.input.transcription", "input_audio_transcription"),
    ("session.audio.input.noise_reduction", "input_audio_noise_reduction"),
    ("session.audio.input.turn_detection", "turn_detection"),
    ("session.audio.input.format", "input_audio_format"),
    ("session.audio.output.format", "output_audio_format"),
    ("session.audio.output.voice", "voice"),
    ("session.audio.output.speed", "speed"),
    ("session.output_modalities", "modalities"),
    ("session.max_output_tokens", "max_response_output_tokens"),
    ("expires_after", "client_secret.expires_after"),
    ("session.", ""),
)


def beta_param(path: str | None) -> str | None:
    """A GA parameter path in the beta client's spelling (`session.audio.output.voice`
    → `voice`, `session.tools[0].name` → `tools[0].name`)."""
    if path is None:
        return None
    for ga, beta in _BETA_PATHS:
        if (
            path == ga
            or path.startswith((ga + ".", ga + "["))
            or (ga.endswith(".") and path.startswith(ga))
        ):
            rest = path[len(ga) :]
            return (beta + rest).lstrip(".")
    return path


# ---------------------------------------------------------------------------------------
# Beta → GA

_BETA_SESSION_KEYS = frozenset(
    {
        "model",
        "modalities",
        "instructions",
        "voice",
        "input_audio_format",
        "output_audio_format",
        "input_audio_transcription",
        "input_audio_noise_reduction",
        "turn_detection",
        "tools",
        "tool_choice",
        "temperature",
        "max_response_output_tokens",
        "speed",
        "tracing",
        "truncation",
        "prompt",
        "client_secret",
    }
)
_BETA_TRANSCRIPTION_KEYS = frozenset(
    {
        "input_audio_format",
        "input_audio_transcription",
        "input_audio_noise_reduction",
        "turn_detection",
        "include",
        "modalities",
        "client_secret",
    }
)
# Keys of a beta *response* session that describe it rather than configure it.
_BETA_RESPONSE_KEYS = frozenset({"id", "object", "expires_at"})


def beta_to_ga(body: Mapping[str, Any], kind: str, *, strict: bool = True) -> dict[str, Any]:
    """A beta session body as a GA-shaped `{"expires_after"?, "session"}` dict.

    Beta-only scalars (formats, modalities, temperature, client_secret) are checked here
    with beta paths; everything else is moved as is, for the GA decoder to check.
    `strict=False` reads an upstream's beta response: unknown keys are ignored.
    `temperature`, which GA lacks, is carried as `session.temperature`.
    """
    allowed = _BETA_SESSION_KEYS if kind == "realtime" else _BETA_TRANSCRIPTION_KEYS
    if strict:
        check_keys(body, allowed, "")
    session: dict[str, Any] = {"type": kind}
    audio_in: dict[str, Any] = {}
    audio_out: dict[str, Any] = {}
    out: dict[str, Any] = {"session": session}

    def put(target: dict[str, Any], ga_key: str, beta_key: str) -> None:
        if beta_key in body and (strict or beta_key in allowed):
            target[ga_key] = body[beta_key]

    for key in ("model", "instructions", "tools", "tracing", "truncation", "prompt", "include"):
        put(session, key, key)
    put(session, "max_output_tokens", "max_response_output_tokens")
    put(audio_in, "transcription", "input_audio_transcription")
    put(audio_in, "noise_reduction", "input_audio_noise_reduction")
    put(audio_out, "voice", "voice")
    put(audio_out, "speed", "speed")
    if "turn_detection" in body:
        detection = body["turn_detection"]
        # Beta's type is optional (server_vad); GA's is required.
        if isinstance(detection, dict) and "type" not in detection:
            detection = {**detection, "type": "server_vad"}
        audio_in["turn_detection"] = detection
    if body.get("tool_choice") is not None:
        session["tool_choice"] = _beta_tool_choice(body["tool_choice"])
    for beta_key, target in (("input_audio_format", audio_in), ("output_audio_format", audio_out)):
        if body.get(beta_key) is not None and beta_key in allowed:
            value = as_str(body[beta_key], beta_key, choices=BETA_FORMATS)
            fmt = BETA_FORMATS[value]
            target["format"] = {"type": fmt, "rate": 24000} if fmt == "audio/pcm" else {"type": fmt}
    if body.get("modalities") is not None:
        modes = as_str_list(
            body["modalities"], "modalities", choices=("text", "audio"), min_items=1
        )
        # Beta's ["text", "audio"] is GA's ["audio"]: audio plus a transcript.
        session["output_modalities"] = ["audio"] if "audio" in modes else ["text"]
    if body.get("temperature") is not None and kind == "realtime":
        session["temperature"] = as_number(body["temperature"], "temperature", 0.0, 2.0)
    if strict and body.get("client_secret") is not None:
        out["expires_after"] = _beta_expiry(body["client_secret"])
    if audio_in or audio_out:
        session["audio"] = {k: v for k, v in (("input", audio_in), ("output", audio_out)) if v}
    return out


def _beta_tool_choice(value: object) -> object:
    if isinstance(value, str) and value not in ("auto", "none", "required"):
        # Beta names a function by its bare name.
        return {"type": "function", "name": value}
    return value


def _beta_expiry(value: object) -> dict[str, Any]:
    # The SDK spells it `expires_after` for sessions and `expires_at` for transcription
    # sessions; both carry {anchor, seconds}.
    secret = as_object(value, "client_secret")
    check_keys(secret, ("expires_after", "expires_at"), "client_secret")
    key = "expires_after" if "expires_after" in secret else "expires_at"
    if key not in secret:
        return {}
    expiry = as_object(secret[key], f"client_secret.{key}")
    check_keys(expiry, ("anchor", "seconds"), f"client_secret.{key}")
    if "anchor" in expiry:
        as_str(expiry["anchor"], f"client_secret.{key}.anchor", choices=("created_at",))
    return dict(expiry)


# ---------------------------------------------------------------------------------------
# GA → beta


def ga_to_beta(
    session: Mapping[str, Any], kind: str, *, response: bool = False
) -> tuple[dict[str, Any], list[str]]:
    """A canonical GA session dict (as rendered by service.session.codec) in the beta shape.

    Returns (beta dict, GA paths of what beta cannot express and was dropped).
    `response=True` omits nulls the beta response schemas do not allow.
    """
    dropped: list[str] = []
    out: dict[str, Any] = {}
    audio = session.get("audio") or {}
    audio_in = dict(audio.get("input") or {})
    audio_out = dict(audio.get("output") or {})

    for key in ("model", "instructions", "tracing", "truncation", "prompt"):
        if key in session and not (kind == "transcription" and key != "tracing"):
            out[key] = session[key]
    if "max_output_tokens" in session:
        out["max_response_output_tokens"] = session["max_output_tokens"]
    if "output_modalities" in session:
        modes = session["output_modalities"]
        out["modalities"] = ["audio", "text"] if "audio" in modes else ["text"]
    if "include" in session:
        if kind == "transcription":
            out["include"] = session["include"]
        else:
            dropped.append("session.include")
    for key in ("reasoning", "parallel_tool_calls"):
        if key in session:
            dropped.append(f"session.{key}")
    if "tools" in session:
        tools = [t for t in session["tools"] if t.get("type") == "function"]
        if len(tools) < len(session["tools"]):
            dropped.append("session.tools")
        out["tools"] = tools
    if "tool_choice" in session:
        choice = session["tool_choice"]
        if isinstance(choice, str):
            out["tool_choice"] = choice
        elif choice.get("type") == "function":
            out["tool_choice"] = choice["name"]
        else:
            dropped.append("session.tool_choice")

    if "format" in audio_in:
        out["input_audio_format"] = GA_FORMATS[audio_in["format"]["type"]]
    if "format" in audio_out:
        out["output_audio_format"] = GA_FORMATS[audio_out["format"]["type"]]
    if "voice" in audio_out:
        out["voice"] = audio_out["voice"]
    if "speed" in audio_out:
        out["speed"] = audio_out["speed"]
    if audio_in.get("transcription") is not None:
        transcription = dict(audio_in["transcription"])
        for key in ("languages", "keywords", "delay"):
            if transcription.pop(key, None) is not None:
                dropped.append(f"session.audio.input.transcription.{key}")
        out["input_audio_transcription"] = transcription
    if audio_in.get("noise_reduction") is not None:
        out["input_audio_noise_reduction"] = audio_in["noise_reduction"]
    if "turn_detection" in audio_in:
        detection = audio_in["turn_detection"]
        if detection is None:
            if not response:
                out["turn_detection"] = None
        else:
            detection = dict(detection)
            if detection.pop("idle_timeout_ms", None) is not None:
                dropped.append("session.audio.input.turn_detection.idle_timeout_ms")
            out["turn_detection"] = detection
    if response:
        out = {k: v for k, v in out.items() if v is not None}
    return out, dropped
