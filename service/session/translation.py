"""Realtime translation mints: the wire shape of
`POST /v1/realtime/translations/client_secrets` (pure: no I/O).

OpenAI's shape, as openai-python (3.23 and later) and openai-node (7.24 and later) type it
(`RealtimeTranslationSessionCreateRequest`, `RealtimeTranslationClientSecretCreateResponse`):

    {"session": {"model", "audio"?: {"input"?: {"noise_reduction"?, "transcription"?:
     {"model"}}, "output"?: {"language"}}}, "expires_after"?: {"anchor", "seconds"}}
    → {"value", "expires_at", "session": {"id", "type": "translation", "model", "audio",
       "expires_at"}}

There is no beta shape: the upstream path is the same whatever the tenant's UPSTREAM_API.
The session carries no `type` (the answer's is always `translation`). `session` and its
`model` may be left out here, for the role's first translation model. The flow mirrors a
Realtime mint's (service.session.codec): `decode_translation_request` → the policy
(service.policy.translation) → `encode_translation_upstream` → `decode_translation_response`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from service.errors import InvalidJSON, InvalidValue, UpstreamError
from service.redact import Secret
from service.session.codec import decode_expires_after
from service.session.model import OFF, Endpoint
from service.session.strict_json import as_number, as_object, as_str, check_keys

TRANSLATIONS_PATH = "/realtime/translations/client_secrets"
NOISE_REDUCTION_TYPES = ("near_field", "far_field")
_INPUT_KEYS = ("noise_reduction", "transcription")
_UNEXPECTED = "The upstream returned an unexpected response."


@dataclass(frozen=True, slots=True)
class TranslationSession:
    """A translation session's configuration; `None` means "not given". A null
    `noise_reduction` (turned off) is kept as `"off"`; a null `transcription` is the same
    as none (a new session transcribes nothing unless asked)."""

    model: str | None = None
    language: str | None = None  # audio.output.language
    transcription_model: str | None = None  # audio.input.transcription.model
    noise_reduction: Mapping[str, Any] | Literal["off"] | None = None


@dataclass(frozen=True, slots=True)
class TranslationRequest:
    """A decoded translation mint. `defaulted` holds the paths the policy filled from the
    role's defaults (not the client's choices, so never reported as adjusted)."""

    session: TranslationSession
    ttl_seconds: int | None
    defaulted: frozenset[str] = frozenset()
    endpoint: Endpoint = "translations"


def decode_translation_request(body: object) -> TranslationRequest:
    """Check a client's translation mint body against OpenAI's shape and normalize it.
    Raises InvalidJSON (not an object), UnknownParameter or InvalidValue naming the
    parameter."""
    if not isinstance(body, dict):
        raise InvalidJSON("The request body must be a JSON object.")
    check_keys(body, ("expires_after", "session"), "")
    ttl = decode_expires_after(body)
    if body.get("session") is None:
        return TranslationRequest(TranslationSession(), ttl)
    raw = as_object(body["session"], "session")
    check_keys(raw, ("model", "audio"), "session")
    audio = _object(raw.get("audio"), "session.audio", ("input", "output"))
    audio_in = _object(audio.get("input"), "session.audio.input", _INPUT_KEYS)
    audio_out = _object(audio.get("output"), "session.audio.output", ("language",))
    session = TranslationSession(
        model=_optional_str(raw.get("model"), "session.model"),
        language=_optional_str(audio_out.get("language"), "session.audio.output.language"),
        transcription_model=_transcription(audio_in.get("transcription")),
        noise_reduction=_noise_reduction(audio_in),
    )
    return TranslationRequest(session, ttl)


def _object(value: object, path: str, keys: tuple[str, ...]) -> Mapping[str, Any]:
    if value is None:
        return {}
    obj = as_object(value, path)
    check_keys(obj, keys, path)
    return obj


def _optional_str(value: object, path: str) -> str | None:
    return None if value is None else as_str(value, path, min_chars=1)


def _transcription(value: object) -> str | None:
    path = "session.audio.input.transcription"
    if value is None:
        return None
    obj = _object(value, path, ("model",))
    model = _optional_str(obj.get("model"), f"{path}.model")
    if model is None:
        raise _missing(f"{path}.model")
    return model


def _noise_reduction(audio_in: Mapping[str, Any]) -> Mapping[str, Any] | Literal["off"] | None:
    path = "session.audio.input.noise_reduction"
    if "noise_reduction" not in audio_in:
        return None
    value = audio_in["noise_reduction"]
    if value is None:
        return OFF
    obj = _object(value, path, ("type", "strength"))
    if obj.get("type") is None:
        raise _missing(f"{path}.type")
    checked: dict[str, Any] = {
        "type": as_str(obj["type"], f"{path}.type", choices=NOISE_REDUCTION_TYPES)
    }
    if obj.get("strength") is not None:
        checked["strength"] = as_number(obj["strength"], f"{path}.strength", 0.0)
    return checked


def _missing(path: str) -> InvalidValue:
    return InvalidValue(f"Missing required parameter: '{path}'.", param=path)


# ---------------------------------------------------------------------------------------
# Rendering


def render_translation(session: TranslationSession) -> dict[str, Any]:
    """The session in OpenAI's request shape (also the answer's, less id and expiry)."""
    out: dict[str, Any] = {}
    if session.model is not None:
        out["model"] = session.model
    audio_in: dict[str, Any] = {}
    if session.noise_reduction == OFF:
        audio_in["noise_reduction"] = None
    elif session.noise_reduction is not None:
        audio_in["noise_reduction"] = dict(session.noise_reduction)
    if session.transcription_model is not None:
        audio_in["transcription"] = {"model": session.transcription_model}
    audio: dict[str, Any] = {}
    if audio_in:
        audio["input"] = audio_in
    if session.language is not None:
        audio["output"] = {"language": session.language}
    if audio:
        out["audio"] = audio
    return out


def encode_translation_upstream(request: TranslationRequest) -> tuple[str, dict[str, Any]]:
    """(upstream path, JSON body) of the effective request."""
    body: dict[str, Any] = {"session": render_translation(request.session)}
    if request.ttl_seconds is not None:
        body["expires_after"] = {"anchor": "created_at", "seconds": request.ttl_seconds}
    return TRANSLATIONS_PATH, body


def decode_translation_response(
    body: object, effective: TranslationRequest
) -> tuple[dict[str, Any], int]:
    """The client's answer from the upstream's, and the secret's `expires_at`.

    The secret and its expiry must be there (else UpstreamError); the session is read
    leniently, field by field: what the upstream reports wins, what it left out (or
    reports in a shape not known here) is taken from the effective request, so the
    answer always has the shape the SDKs parse."""
    if not isinstance(body, dict):
        raise UpstreamError(_UNEXPECTED)
    value, expires_at = body.get("value"), body.get("expires_at")
    if not isinstance(value, str) or not 0 < len(value) <= 4096:
        raise UpstreamError(_UNEXPECTED)
    if isinstance(expires_at, bool) or not isinstance(expires_at, int):
        raise UpstreamError(_UNEXPECTED)
    secret = Secret(value)
    raw = body.get("session")
    upstream = raw if isinstance(raw, dict) else {}
    reported = _lenient(upstream)
    wanted = effective.session
    session = TranslationSession(
        model=reported.model or wanted.model,
        language=reported.language or wanted.language,
        transcription_model=reported.transcription_model or wanted.transcription_model,
        noise_reduction=(
            wanted.noise_reduction if reported.noise_reduction is None else reported.noise_reduction
        ),
    )
    rendered = render_translation(session)
    if session.noise_reduction == OFF:
        # The answer's schema has no null noise reduction: off is left out.
        del rendered["audio"]["input"]["noise_reduction"]
        if not rendered["audio"]["input"]:
            del rendered["audio"]["input"]
    session_id = upstream.get("id")
    if not isinstance(session_id, str) or not session_id:
        # Derived, never random (the function stays pure); the hash reveals nothing.
        session_id = "sess_" + hashlib.sha256(value.encode()).hexdigest()[:24]
    session_expiry = upstream.get("expires_at")
    if isinstance(session_expiry, bool) or not isinstance(session_expiry, int):
        session_expiry = 0
    answer = {
        "id": session_id,
        "type": "translation",
        "model": rendered.get("model", ""),
        "audio": rendered.get("audio", {}),
        "expires_at": session_expiry,
    }
    return {"value": secret.reveal(), "expires_at": expires_at, "session": answer}, expires_at


def _lenient(raw: Mapping[str, Any]) -> TranslationSession:
    """An upstream's session: each field kept only when it has the expected shape."""

    def text(value: object) -> str | None:
        return value if isinstance(value, str) and value else None

    def part(obj: Mapping[str, Any], key: str) -> Mapping[str, Any]:
        value = obj.get(key)
        return value if isinstance(value, dict) else {}

    audio = part(raw, "audio")
    audio_in, audio_out = part(audio, "input"), part(audio, "output")
    transcription = audio_in.get("transcription")
    noise = audio_in.get("noise_reduction")
    noise_reduction: dict[str, Any] | None = None
    if isinstance(noise, dict) and noise.get("type") in NOISE_REDUCTION_TYPES:
        noise_reduction = {"type": noise["type"]}
        strength = noise.get("strength")
        if isinstance(strength, int | float) and not isinstance(strength, bool):
            noise_reduction["strength"] = strength
    return TranslationSession(
        model=text(raw.get("model")),
        language=text(audio_out.get("language")),
        transcription_model=(
            text(transcription.get("model")) if isinstance(transcription, dict) else None
        ),
        noise_reduction=noise_reduction,
    )
