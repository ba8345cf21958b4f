"""The mint codecs: the four wire steps of a mint around the session model (pure: no I/O).

`decode_request` checks a client's body (GA, or beta translated by `service.session.translate`) and
normalizes it; `encode_upstream_request` renders the effective request for a GA or beta
upstream; `decode_upstream_response` reads the upstream's answer into a `MintResult`;
`encode_response` answers the client in its own shape. Sessions are read by
`service.session.decoder.SessionDecoder` and rendered by `render_ga`, the one GA
rendering (the beta shape is `service.session.translate.ga_to_beta` of it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import fields, replace
from typing import Any

from service.errors import InvalidJSON, InvalidRequest, InvalidValue, UpstreamError
from service.redact import Secret
from service.session.decoder import SessionDecoder
from service.session.model import (
    OFF,
    TTL_MAX,
    TTL_MIN,
    Api,
    AudioFormat,
    Endpoint,
    Kind,
    McpTool,
    MintRequest,
    MintResult,
    NoiseReduction,
    Session,
    Tool,
    ToolChoice,
    Transcription,
    TurnDetection,
    client_param,
)
from service.session.strict_json import as_int, as_object, as_str, check_keys
from service.session.translate import beta_to_ga, ga_to_beta

# Decoders are stateless but build their field tables once: one of each, by (strict, beta).
_DECODERS = {(s, b): SessionDecoder(strict=s, beta=b) for s in (True, False) for b in (True, False)}


def decode_request(endpoint: Endpoint, body: object) -> MintRequest:
    """Check a client's mint body against the spec and normalize it.

    Raises InvalidJSON (not an object), UnknownParameter or InvalidValue, each naming
    the parameter in the client's own shape.
    """
    if not isinstance(body, dict):
        raise InvalidJSON("The request body must be a JSON object.")
    if endpoint == "client_secrets":
        kind, session, ttl = _decode_ga(body, strict=True, beta=False)
        return MintRequest(kind=kind, session=session, ttl_seconds=ttl, endpoint=endpoint)
    kind = "realtime" if endpoint == "sessions" else "transcription"
    try:
        _, session, ttl = _decode_ga(beta_to_ga(body, kind), strict=True, beta=True)
    except InvalidRequest as exc:
        raise _respelled(exc, endpoint) from None
    return MintRequest(kind=kind, session=session, ttl_seconds=ttl, endpoint=endpoint)


def _respelled(exc: InvalidRequest, endpoint: Endpoint) -> InvalidRequest:
    if exc.param is None:
        return exc
    param = client_param(endpoint, exc.param)
    message = exc.message.replace(f"'{exc.param}'", f"'{param}'")
    return type(exc)(message, param=param)


def _decode_ga(
    body: Mapping[str, Any], *, strict: bool, beta: bool
) -> tuple[Kind, Session, int | None]:
    check_keys(body, ("expires_after", "session"), "")
    ttl = decode_expires_after(body)
    if body.get("session") is None:
        return "realtime", Session(), ttl
    raw = as_object(body["session"], "session")
    if "type" not in raw:
        raise InvalidValue("Missing required parameter: 'session.type'.", param="session.type")
    kind: Kind = "realtime"
    if as_str(raw["type"], "session.type", choices=("realtime", "transcription")) != "realtime":
        kind = "transcription"
    return kind, _DECODERS[strict, beta].session(raw, kind), ttl


def decode_expires_after(body: Mapping[str, Any]) -> int | None:
    """The TTL a GA-shaped body asks for (`expires_after.seconds`), checked; None if none."""
    if body.get("expires_after") is None:
        return None
    expiry = as_object(body["expires_after"], "expires_after")
    check_keys(expiry, ("anchor", "seconds"), "expires_after")
    if "anchor" in expiry:
        as_str(expiry["anchor"], "expires_after.anchor", choices=("created_at",))
    if "seconds" not in expiry:
        return None
    return as_int(expiry["seconds"], "expires_after.seconds", TTL_MIN, TTL_MAX)


# ---------------------------------------------------------------------------------------
# Rendering


def render_ga(session: Session, kind: Kind, *, response: bool = False) -> dict[str, Any]:
    """The session as a GA `session` object (without temperature, which GA lacks).

    `response=True` follows the response schemas: a custom voice is its id string, and
    MCP tools lose `authorization` and `headers` (never echo a credential back).
    """
    out: dict[str, Any] = {"type": kind}
    audio_in: dict[str, Any] = {}
    audio_out: dict[str, Any] = {}
    s = session
    if s.input_format is not None:
        audio_in["format"] = _render_format(s.input_format)
    if s.transcription is not None:
        audio_in["transcription"] = _compact(s.transcription)
    if s.noise_reduction is not None:
        audio_in["noise_reduction"] = _compact(s.noise_reduction)
    if s.turn_detection == OFF:
        audio_in["turn_detection"] = None
    elif s.turn_detection is not None:
        audio_in["turn_detection"] = _compact(s.turn_detection)
    if s.include is not None:
        out["include"] = list(s.include)
    if kind == "realtime":
        if s.output_format is not None:
            audio_out["format"] = _render_format(s.output_format)
        if s.voice is not None:
            audio_out["voice"] = {"id": s.voice} if s.custom_voice and not response else s.voice
        if s.speed is not None:
            audio_out["speed"] = s.speed
        for key in _PLAIN:  # in the order of the GA schema
            value = getattr(s, key)
            if value is None:
                continue
            if key == "output_modalities":
                if not value:
                    continue
                value = list(value)
            elif key == "tool_choice":
                value = _render_choice(value)
            out[key] = value
        if s.tools is not None:
            out["tools"] = [_render_tool(t, response=response) for t in s.tools]
    audio = {k: v for k, v in (("input", audio_in), ("output", audio_out)) if v}
    if audio:
        out["audio"] = audio
    return out


def _render_format(fmt: AudioFormat) -> dict[str, Any]:
    return {"type": fmt.type, "rate": 24000} if fmt.type == "audio/pcm" else {"type": fmt.type}


_PLAIN = (
    "model", "instructions", "output_modalities", "max_output_tokens", "tool_choice", "tracing",
    "truncation", "prompt", "reasoning", "parallel_tool_calls",
)  # fmt: skip
# Field names per class, read once (`dataclasses.fields` is slow for a per-mint loop).
_NAMES = {
    cls: tuple(f.name for f in fields(cls))
    for cls in (Transcription, NoiseReduction, TurnDetection)
}


def _compact(value: Transcription | NoiseReduction | TurnDetection) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in _NAMES[type(value)]:
        item = getattr(value, name)
        if item is not None:
            out[name] = list(item) if isinstance(item, tuple) else item
    return out


def _render_choice(choice: str | ToolChoice | None) -> object:
    if choice is None or isinstance(choice, str):
        return choice
    if choice.type == "function":
        return {"type": "function", "name": choice.name}
    return {"type": "mcp", "server_label": choice.server_label, "name": choice.name}


def _render_tool(tool: Tool, *, response: bool) -> dict[str, Any]:
    if isinstance(tool, McpTool):
        hidden = ("authorization", "headers") if response else ()
        return {k: v for k, v in tool.config.items() if k not in hidden}
    out: dict[str, Any] = {"type": "function", "name": tool.name}
    if tool.description is not None:
        out["description"] = tool.description
    if tool.parameters is not None:
        out["parameters"] = tool.parameters
    return out


def encode_upstream_request(
    request: MintRequest, api: Api
) -> tuple[str, dict[str, Any], list[str]]:
    """(upstream path, JSON body, GA paths dropped because `api` cannot express them)."""
    session, kind = request.session, request.kind
    expiry = {"anchor": "created_at", "seconds": request.ttl_seconds}
    ga = render_ga(session, kind)
    dropped: list[str] = []
    if api == "ga":
        if session.temperature is not None and "session.temperature" not in request.defaulted:
            dropped.append("session.temperature")
        if kind == "transcription" and session.output_modalities is not None:
            dropped.append("session.output_modalities")
        body: dict[str, Any] = {"session": ga}
        if request.ttl_seconds is not None:
            body["expires_after"] = expiry
        return "/realtime/client_secrets", body, dropped
    beta, dropped = ga_to_beta(ga, kind)
    if "session.reasoning.effort" in request.defaulted and len(session.reasoning or ()) == 1:
        # The policy's default effort, not the client's choice: beta has no reasoning.
        dropped.remove("session.reasoning")
    if session.temperature is not None:
        beta["temperature"] = session.temperature
    if kind == "transcription" and session.output_modalities is not None:
        beta["modalities"] = ["audio", "text"] if "audio" in session.output_modalities else ["text"]
    if request.ttl_seconds is not None:
        beta["client_secret"] = {"expires_after": expiry}
    path = "/realtime/sessions" if kind == "realtime" else "/realtime/transcription_sessions"
    return path, beta, dropped


_UNEXPECTED = "The upstream returned an unexpected response."
_OBJECTS = {"realtime": "realtime.session", "transcription": "realtime.transcription_session"}


def decode_upstream_response(api: Api, kind: Kind, body: object) -> MintResult:
    """Read an upstream's mint answer (GA or beta shape). Unreadable session fields are
    skipped; a missing or malformed secret raises UpstreamError."""
    if not isinstance(body, dict):
        raise UpstreamError(_UNEXPECTED)
    holder = body if api == "ga" else body.get("client_secret")
    raw = body.get("session") if api == "ga" else body
    if not isinstance(holder, dict) or not isinstance(raw, dict):
        raise UpstreamError(_UNEXPECTED)
    value, expires_at = holder.get("value"), holder.get("expires_at")
    if not isinstance(value, str) or not 0 < len(value) <= 4096:
        raise UpstreamError(_UNEXPECTED)
    if isinstance(expires_at, bool) or not isinstance(expires_at, int):
        raise UpstreamError(_UNEXPECTED)
    secret = Secret(value)
    try:
        ga = raw if api == "ga" else beta_to_ga(raw, kind, strict=False)["session"]
        session = _DECODERS[False, api == "beta"].session(ga, kind)
    except InvalidRequest as exc:
        raise UpstreamError(_UNEXPECTED) from exc
    rendered = render_ga(session, kind, response=True)
    session_id = raw.get("id")
    if not isinstance(session_id, str) or not session_id:
        # A beta upstream may omit it; the GA response requires one. Derived, never random,
        # so the function stays pure; the hash does not reveal the secret.
        session_id = "sess_" + hashlib.sha256(value.encode()).hexdigest()[:24]
    rendered.update(id=session_id, object=_OBJECTS[kind])
    if isinstance(raw.get("expires_at"), int) and not isinstance(raw["expires_at"], bool):
        rendered["expires_at"] = raw["expires_at"]
    if session.temperature is not None:
        rendered["temperature"] = session.temperature
    return MintResult(secret=secret, expires_at=expires_at, session=rendered, decoded=session)


def encode_response(
    endpoint: Endpoint, result: MintResult, effective: MintRequest
) -> dict[str, Any]:
    """The client's answer in its own shape. The upstream's session wins; what it left
    out is taken from the effective request (temperature only from the upstream)."""
    kind = effective.kind
    meta: dict[str, Any] = {
        k: result.session[k] for k in ("id", "object", "expires_at") if k in result.session
    }
    upstream = result.decoded
    if upstream is None:
        upstream = _DECODERS[False, True].session(result.session, kind)
    session = _merge(upstream, effective.session)
    if session is upstream and result.decoded is not None:
        # The usual case: the upstream reported every field the request set, so the
        # answer's session is the one decode_upstream_response rendered (and the same
        # `render_ga` of it, which tests/session/test_codec_fast.py checks); its
        # non-session keys go back in as `meta`.
        ga = {k: v for k, v in result.session.items() if k not in _NOT_RENDERED}
    else:
        ga = render_ga(session, kind, response=True)
    if endpoint == "client_secrets":
        return {
            "value": result.secret.reveal(),
            "expires_at": result.expires_at,
            "session": {**ga, **meta},
        }
    beta, _ = ga_to_beta(ga, kind, response=True)
    if session.temperature is not None and kind == "realtime":
        beta["temperature"] = session.temperature
    if kind == "transcription" and session.output_modalities is not None:
        beta["modalities"] = ["audio", "text"] if "audio" in session.output_modalities else ["text"]
    return {
        **meta,
        **beta,
        "client_secret": {"value": result.secret.reveal(), "expires_at": result.expires_at},
    }


# The keys decode_upstream_response adds to the rendered session.
_NOT_RENDERED = frozenset(("id", "object", "expires_at", "temperature"))
# The fields an upstream's session takes from the effective request when it left them out.
_MERGED = tuple(f.name for f in fields(Session) if f.name not in ("temperature", "custom_voice"))


def _merge(upstream: Session, effective: Session) -> Session:
    """`upstream` with its missing fields taken from `effective` (itself when none is)."""
    changes: dict[str, Any] = {}
    for name in _MERGED:
        if getattr(upstream, name) is None:
            value = getattr(effective, name)
            if value is not None:
                changes[name] = value
                if name == "voice":
                    changes["custom_voice"] = effective.custom_voice
    return replace(upstream, **changes) if changes else upstream
