"""The normalized session model and the mint codecs (pure: no I/O).

One model, `Session`, in the GA spelling, whichever shape the client or the upstream
speaks. The flow of a mint through this module:

    client body ──decode_request──▶ MintRequest ──(policy)──▶ effective MintRequest
    effective ──encode_upstream_request──▶ (path, body, dropped)   for a GA or beta upstream
    upstream body ──decode_upstream_response──▶ MintResult
    MintResult + effective ──encode_response──▶ the client's shape (GA or beta)

Beta bodies are translated to GA-shaped dicts by service.codecs and decoded once; error
params are then rewritten into the client's spelling (`voice`, not
`session.audio.output.voice`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal, TypeVar

from service.codecs import (
    MAX_ID_CHARS,
    MAX_LIST_ITEMS,
    TEXT_MAX_CHARS,
    as_bool,
    as_int,
    as_number,
    as_object,
    as_str,
    as_str_list,
    beta_param,
    beta_to_ga,
    check_keys,
    check_mcp_tool,
    check_prompt,
    check_reasoning,
    check_tracing,
    check_truncation,
    ga_to_beta,
    invalid,
    join,
    wrong_type,
)
from service.errors import InvalidJSON, InvalidRequest, InvalidValue, UpstreamError
from service.redact import Secret

__all__ = [
    "AUDIO_FORMATS",
    "INSTRUCTIONS_HARD_CAP",
    "MAX_ID_CHARS",
    "MODALITIES",
    "TTL_MAX",
    "TTL_MIN",
    "VAD_TYPES",
    "AudioFormat",
    "Endpoint",
    "FunctionTool",
    "Kind",
    "McpTool",
    "MintRequest",
    "MintResult",
    "NoiseReduction",
    "Session",
    "Tool",
    "ToolChoice",
    "Transcription",
    "TurnDetection",
    "client_param",
    "decode_request",
    "decode_upstream_response",
    "encode_response",
    "encode_upstream_request",
]

Endpoint = Literal["client_secrets", "sessions", "transcription_sessions"]
Kind = Literal["realtime", "transcription"]
Api = Literal["ga", "beta"]

AUDIO_FORMATS = ("audio/pcm", "audio/pcmu", "audio/pcma")
MODALITIES = ("text", "audio")
VAD_TYPES = ("server_vad", "semantic_vad")
INSTRUCTIONS_HARD_CAP = TEXT_MAX_CHARS
TTL_MIN, TTL_MAX = 10, 7200
MAX_OUTPUT_TOKENS = 4096
# VAD durations have no bound in the spec; a minute is far beyond any useful value.
VAD_MS_MAX = 60_000
LOGPROBS = ("item.input_audio_transcription.logprobs",)
OFF: Literal["off"] = "off"

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class AudioFormat:
    type: str  # one of AUDIO_FORMATS; pcm is always 24 kHz
    rate: int | None = None


@dataclass(frozen=True, slots=True)
class Transcription:
    model: str | None = None
    language: str | None = None
    prompt: str | None = None
    # GA only; dropped (and reported) for a beta upstream.
    languages: tuple[str, ...] | None = None
    keywords: tuple[str, ...] | None = None
    delay: str | None = None


@dataclass(frozen=True, slots=True)
class TurnDetection:
    type: str  # one of VAD_TYPES
    threshold: float | None = None
    prefix_padding_ms: int | None = None
    silence_duration_ms: int | None = None
    idle_timeout_ms: int | None = None
    create_response: bool | None = None
    interrupt_response: bool | None = None
    eagerness: str | None = None


@dataclass(frozen=True, slots=True)
class NoiseReduction:
    type: str | None = None


@dataclass(frozen=True, slots=True)
class FunctionTool:
    name: str
    description: str | None = None
    parameters: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class McpTool:
    """An MCP tool, identified by its server label. `config` is the whole checked
    object; it may hold an `authorization`, hence no repr."""

    server_label: str
    config: Mapping[str, Any] = field(repr=False, default_factory=dict)


@dataclass(frozen=True, slots=True)
class ToolChoice:
    """A forced tool (`{"type": "function", "name"}` or `{"type": "mcp", ...}`)."""

    type: Literal["function", "mcp"]
    name: str | None = None
    server_label: str | None = None


Tool = FunctionTool | McpTool


@dataclass(frozen=True, slots=True)
class Session:
    """A session configuration in the GA spelling. `None` means "not given" (the
    upstream's default applies); `turn_detection == "off"` is an explicit null."""

    model: str | None = None
    instructions: str | None = None
    output_modalities: tuple[str, ...] | None = None  # ("audio",) or ("text",)
    voice: str | None = None  # a built-in name, or a custom voice id
    custom_voice: bool = False
    input_format: AudioFormat | None = None
    output_format: AudioFormat | None = None
    transcription: Transcription | None = None
    turn_detection: TurnDetection | Literal["off"] | None = None
    noise_reduction: NoiseReduction | None = None
    speed: float | None = None
    temperature: float | None = None  # beta only
    max_output_tokens: int | Literal["inf"] | None = None
    tools: tuple[Tool, ...] | None = None
    tool_choice: str | ToolChoice | None = None
    tracing: str | Mapping[str, Any] | None = None
    truncation: str | Mapping[str, Any] | None = None
    prompt: Mapping[str, Any] | None = None
    include: tuple[str, ...] | None = None
    reasoning: Mapping[str, Any] | None = None
    parallel_tool_calls: bool | None = None


@dataclass(frozen=True, slots=True)
class MintRequest:
    """A decoded mint request. `endpoint` remembers the client's shape (for error
    params); `defaulted` holds the GA paths the policy filled from role defaults, which
    are not the client's choices and so are never reported as adjusted."""

    kind: Kind
    session: Session
    ttl_seconds: int | None
    endpoint: Endpoint = "client_secrets"
    defaulted: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class MintResult:
    """An upstream's answer. `session` is the upstream session as a GA-shaped dict
    (with `id`, `object`, maybe `expires_at`, and `temperature` from a beta upstream)."""

    secret: Secret
    expires_at: int
    session: dict[str, Any]
    # The same session already decoded, so that answering the client does not parse it
    # again (a third of a mint's codec time); None when built from a dict alone.
    decoded: Session | None = field(default=None, compare=False, repr=False)


def client_param(endpoint: Endpoint, path: str) -> str:
    """A GA parameter path in the spelling of the client that called `endpoint`."""
    return path if endpoint == "client_secrets" else (beta_param(path) or path)


# ---------------------------------------------------------------------------------------
# Decoding


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
    ttl = None
    if body.get("expires_after") is not None:
        expiry = as_object(body["expires_after"], "expires_after")
        check_keys(expiry, ("anchor", "seconds"), "expires_after")
        if "anchor" in expiry:
            as_str(expiry["anchor"], "expires_after.anchor", choices=("created_at",))
        if "seconds" in expiry:
            ttl = as_int(expiry["seconds"], "expires_after.seconds", TTL_MIN, TTL_MAX)
    if body.get("session") is None:
        return "realtime", Session(), ttl
    raw = as_object(body["session"], "session")
    if "type" not in raw:
        raise InvalidValue("Missing required parameter: 'session.type'.", param="session.type")
    kind: Kind = "realtime"
    if as_str(raw["type"], "session.type", choices=("realtime", "transcription")) != "realtime":
        kind = "transcription"
    return kind, _Decoder(strict=strict, beta=beta).session(raw, kind), ttl


class _Reader:
    """Reads one JSON object: null is "not given"; in lenient mode (an upstream's
    answer) an unreadable field is skipped instead of failing the whole mint."""

    def __init__(self, obj: Mapping[str, Any], prefix: str, *, strict: bool) -> None:
        self.obj, self.prefix, self.strict = obj, prefix, strict

    def read(self, key: str, parse: Callable[[Any, str], T]) -> T | None:
        value = self.obj.get(key)
        if value is None:
            return None
        try:
            return parse(value, join(self.prefix, key))
        except InvalidRequest:
            if self.strict:
                raise
            return None


class _Decoder:
    def __init__(self, *, strict: bool, beta: bool) -> None:
        self.strict, self.beta = strict, beta

    def reader(self, value: object, path: str, keys: tuple[str, ...]) -> _Reader:
        obj = as_object(value, path)
        if self.strict:
            check_keys(obj, keys, path)
        return _Reader(obj, path, strict=self.strict)

    def session(self, raw: Mapping[str, Any], kind: Kind) -> Session:
        keys: tuple[str, ...] = ("type", "audio", "include")
        if kind == "realtime":
            keys += (
                "model", "instructions", "output_modalities", "tools", "tool_choice",
                "tracing", "truncation", "prompt", "reasoning", "parallel_tool_calls",
                "max_output_tokens",
            )  # fmt: skip
            keys += ("temperature",) if self.beta else ()
        elif self.beta:
            keys += ("output_modalities",)  # beta transcription sessions take `modalities`
        r = self.reader(raw, "session", keys)
        audio = self.reader(
            raw.get("audio") or {},
            "session.audio",
            ("input", "output") if kind == "realtime" else ("input",),
        )
        audio_in = self.reader(
            audio.obj.get("input") or {},
            "session.audio.input",
            ("format", "transcription", "noise_reduction", "turn_detection"),
        )
        audio_out = self.reader(
            audio.obj.get("output") or {}, "session.audio.output", ("format", "voice", "speed")
        )
        voice = audio_out.read("voice", _voice)
        detection: TurnDetection | Literal["off"] | None = audio_in.read(
            "turn_detection", self.turn_detection
        )
        if "turn_detection" in audio_in.obj and audio_in.obj["turn_detection"] is None:
            detection = OFF
        return Session(
            model=r.read("model", lambda v, p: as_str(v, p, min_chars=1)),
            instructions=r.read("instructions", _text),
            output_modalities=r.read("output_modalities", _modalities),
            voice=voice[0] if voice else None,
            custom_voice=voice[1] if voice else False,
            input_format=audio_in.read("format", self.audio_format),
            output_format=audio_out.read("format", self.audio_format),
            transcription=audio_in.read("transcription", self.transcription),
            turn_detection=detection,
            noise_reduction=audio_in.read("noise_reduction", self.noise_reduction),
            speed=audio_out.read("speed", lambda v, p: as_number(v, p, 0.25, 1.5)),
            temperature=r.read("temperature", lambda v, p: as_number(v, p, 0.0, 2.0)),
            max_output_tokens=r.read("max_output_tokens", _max_tokens),
            tools=r.read("tools", self.tools),
            tool_choice=r.read("tool_choice", _tool_choice),
            tracing=r.read("tracing", check_tracing),
            truncation=r.read("truncation", check_truncation),
            prompt=r.read("prompt", check_prompt),
            include=r.read("include", lambda v, p: as_str_list(v, p, choices=LOGPROBS)),
            reasoning=r.read("reasoning", check_reasoning),
            parallel_tool_calls=r.read("parallel_tool_calls", as_bool),
        )  # fmt: skip

    def audio_format(self, value: object, path: str) -> AudioFormat:
        kind = as_object(value, path).get("type")
        r = self.reader(value, path, ("type", "rate") if kind == "audio/pcm" else ("type",))
        as_str(kind, join(path, "type"), choices=AUDIO_FORMATS)
        if kind == "audio/pcm":
            r.read("rate", lambda v, p: as_int(v, p, 24000, 24000))
            return AudioFormat("audio/pcm", 24000)
        return AudioFormat(str(kind))

    def transcription(self, value: object, path: str) -> Transcription:
        keys = ("model", "language", "languages", "keywords", "prompt", "delay")
        r = self.reader(value, path, keys)
        return Transcription(
            model=r.read("model", lambda v, p: as_str(v, p, min_chars=1)),
            language=r.read("language", as_str),
            prompt=r.read("prompt", _text),
            languages=r.read("languages", lambda v, p: as_str_list(v, p, min_items=1)),
            keywords=r.read("keywords", as_str_list),
            delay=r.read(
                "delay",
                lambda v, p: as_str(v, p, choices=("minimal", "low", "medium", "high", "xhigh")),
            ),
        )

    def noise_reduction(self, value: object, path: str) -> NoiseReduction:
        r = self.reader(value, path, ("type",))
        return NoiseReduction(type=r.read("type", _noise_type))

    def turn_detection(self, value: object, path: str) -> TurnDetection:
        kind = as_object(value, path).get("type")
        if kind is None:
            raise InvalidValue(f"Missing required parameter: '{path}.type'.", param=f"{path}.type")
        as_str(kind, join(path, "type"), choices=VAD_TYPES)
        common = ("type", "create_response", "interrupt_response")
        if kind == "semantic_vad":
            r = self.reader(value, path, (*common, "eagerness"))
            return TurnDetection(
                type="semantic_vad",
                create_response=r.read("create_response", as_bool),
                interrupt_response=r.read("interrupt_response", as_bool),
                eagerness=r.read("eagerness", _eagerness),
            )  # fmt: skip
        vad = ("threshold", "prefix_padding_ms", "silence_duration_ms", "idle_timeout_ms")
        r = self.reader(value, path, (*common, *vad))
        return TurnDetection(
            type="server_vad",
            threshold=r.read("threshold", lambda v, p: as_number(v, p, 0.0, 1.0)),
            prefix_padding_ms=r.read("prefix_padding_ms", _vad_ms),
            silence_duration_ms=r.read("silence_duration_ms", _vad_ms),
            idle_timeout_ms=r.read("idle_timeout_ms", lambda v, p: as_int(v, p, 5000, 30000)),
            create_response=r.read("create_response", as_bool),
            interrupt_response=r.read("interrupt_response", as_bool),
        )  # fmt: skip

    def tools(self, value: object, path: str) -> tuple[Tool, ...]:
        if not isinstance(value, list):
            wrong_type(path, "an array", value)
        if len(value) > MAX_LIST_ITEMS:
            invalid(path, f"expected at most {MAX_LIST_ITEMS} items.")
        tools = (self.tool(item, join(path, i)) for i, item in enumerate(value))
        return tuple(tool for tool in tools if tool is not None)

    def tool(self, value: object, path: str) -> Tool | None:
        kind = as_object(value, path).get("type", "function")
        as_str(
            kind, join(path, "type"), choices=("function",) if self.beta else ("function", "mcp")
        )
        if kind == "mcp":
            config = check_mcp_tool(as_object(value, path), path)
            return McpTool(server_label=config["server_label"], config=config)
        r = self.reader(value, path, ("type", "name", "description", "parameters"))
        name = r.read("name", lambda v, p: as_str(v, p, min_chars=1))
        if name is None:
            if not self.strict:
                return None
            raise InvalidValue(f"Missing required parameter: '{path}.name'.", param=f"{path}.name")
        return FunctionTool(
            name=name,
            description=r.read("description", _text),
            parameters=r.read("parameters", as_object),
        )


def _text(value: object, path: str) -> str:
    return as_str(value, path, max_chars=TEXT_MAX_CHARS)


def _noise_type(value: object, path: str) -> str:
    return as_str(value, path, choices=("near_field", "far_field"))


def _eagerness(value: object, path: str) -> str:
    return as_str(value, path, choices=("low", "medium", "high", "auto"))


def _vad_ms(value: object, path: str) -> int:
    return as_int(value, path, 0, VAD_MS_MAX)


def _voice(value: object, path: str) -> tuple[str, bool]:
    if isinstance(value, dict):
        check_keys(value, ("id",), path)
        return as_str(value.get("id"), join(path, "id"), min_chars=1), True
    return as_str(value, path, min_chars=1), False


def _modalities(value: object, path: str) -> tuple[str, ...]:
    modes = as_str_list(value, path, choices=("text", "audio"), min_items=1)
    if len(set(modes)) > 1:
        invalid(path, 'it is not possible to request both "text" and "audio".')
    return modes[:1]


def _max_tokens(value: object, path: str) -> int | Literal["inf"]:
    if value == "inf":
        return "inf"
    if isinstance(value, str):
        invalid(path, "expected an integer between 1 and 4096, or 'inf'.")
    return as_int(value, path, 1, MAX_OUTPUT_TOKENS)


def _tool_choice(value: object, path: str) -> str | ToolChoice:
    if isinstance(value, str):
        return as_str(value, path, choices=("none", "auto", "required"))
    obj = as_object(value, path)
    kind = as_str(obj.get("type"), join(path, "type"), choices=("function", "mcp"))
    if kind == "function":
        check_keys(obj, ("type", "name"), path)
        return ToolChoice("function", name=as_str(obj.get("name"), join(path, "name"), min_chars=1))
    check_keys(obj, ("type", "server_label", "name"), path)
    label = as_str(obj.get("server_label"), join(path, "server_label"), min_chars=1)
    name = obj.get("name")
    return ToolChoice(
        "mcp", name=None if name is None else as_str(name, join(path, "name")), server_label=label
    )


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
        simple = {
            "model": s.model,
            "instructions": s.instructions,
            "output_modalities": list(s.output_modalities) if s.output_modalities else None,
            "max_output_tokens": s.max_output_tokens,
            "tool_choice": _render_choice(s.tool_choice),
            "tracing": s.tracing,
            "truncation": s.truncation,
            "prompt": s.prompt,
            "reasoning": s.reasoning,
            "parallel_tool_calls": s.parallel_tool_calls,
        }
        out.update({k: v for k, v in simple.items() if v is not None})
        if s.tools is not None:
            out["tools"] = [_render_tool(t, response=response) for t in s.tools]
    audio = {k: v for k, v in (("input", audio_in), ("output", audio_out)) if v}
    if audio:
        out["audio"] = audio
    return out


def _render_format(fmt: AudioFormat) -> dict[str, Any]:
    return {"type": fmt.type, "rate": 24000} if fmt.type == "audio/pcm" else {"type": fmt.type}


def _compact(value: Transcription | NoiseReduction | TurnDetection) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields(value):
        item = getattr(value, f.name)
        if item is not None:
            out[f.name] = list(item) if isinstance(item, tuple) else item
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
        session = _Decoder(strict=False, beta=api == "beta").session(ga, kind)
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
    upstream = result.decoded
    if upstream is None:
        upstream = _Decoder(strict=False, beta=True).session(result.session, kind)
    session = _merge(upstream, effective.session)
    ga = render_ga(session, kind, response=True)
    meta: dict[str, Any] = {
        k: result.session[k] for k in ("id", "object", "expires_at") if k in result.session
    }
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


def _merge(upstream: Session, effective: Session) -> Session:
    changes: dict[str, Any] = {}
    for f in fields(Session):
        if f.name in ("temperature", "custom_voice"):
            continue
        if getattr(upstream, f.name) is None and getattr(effective, f.name) is not None:
            changes[f.name] = getattr(effective, f.name)
            if f.name == "voice":
                changes["custom_voice"] = effective.custom_voice
    return replace(upstream, **changes)
