"""The normalized session model (pure: no I/O).

One model, `Session`, in the GA spelling, whichever shape the client or the upstream
speaks. The flow of a mint through the session modules:

    client body ──decode_request──▶ MintRequest ──(policy)──▶ effective MintRequest
    effective ──encode_upstream_request──▶ (path, body, dropped)   for a GA or beta upstream
    upstream body ──decode_upstream_response──▶ MintResult
    MintResult + effective ──encode_response──▶ the client's shape (GA or beta)

`decode_request` is in `service.session.decoder`, the other three in
`service.session.codec`. Beta bodies are translated to GA-shaped dicts by service.session.translate
and decoded once; error params are then rewritten into the client's spelling (`voice`,
not `session.audio.output.voice`) by `client_param`. Translation mints have a session of
their own, in service.session.translation.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from service.redact import Secret
from service.session.strict_json import MAX_ID_CHARS, TEXT_MAX_CHARS
from service.session.translate import beta_param

__all__ = [
    "AUDIO_FORMATS",
    "INSTRUCTIONS_HARD_CAP",
    "MAX_ID_CHARS",
    "MODALITIES",
    "REASONING_EFFORTS",
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
    "is_reasoning_model",
]

# The secret mints, by the last part of their path; `translations` is
# `/v1/realtime/translations/client_secrets` (service.session.translation).
Endpoint = Literal["client_secrets", "sessions", "transcription_sessions", "translations"]
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
# `reasoning.effort` of a reasoning Realtime model (RealtimeReasoningEffort).
REASONING_EFFORTS = ("minimal", "low", "medium", "high", "xhigh")
# The reasoning Realtime models: `gpt-realtime-2` and later, their minis and dated
# snapshots (`gpt-realtime-2`, `gpt-realtime-2.1`, `gpt-realtime-2.1-mini` as of
# openai-python 3.63). `gpt-realtime`, `gpt-realtime-1.5`, `gpt-realtime-mini` and the
# `gpt-4o-…` previews take no `reasoning`; `gpt-realtime-2025-08-28` is a date, not a version.
_REASONING_MODEL = re.compile(
    r"gpt-realtime-([0-9]{1,2})(?:\.[0-9]{1,2})?(?:-mini)?(?:-[0-9]{4}-[0-9]{2}-[0-9]{2})?"
)


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
    if endpoint in ("client_secrets", "translations"):
        return path
    return beta_param(path) or path


def is_reasoning_model(model: str | None) -> bool:
    """Whether `model` is known to take `reasoning.effort` (a name the broker does not
    know, an Azure deployment's, is not: the policy's default effort is filled only for
    these; an effort the client sends is held to the policy whatever the model)."""
    if model is None:
        return False
    match = _REASONING_MODEL.fullmatch(model)
    return match is not None and int(match[1]) >= 2
