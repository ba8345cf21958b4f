"""Reading a GA `session` object into the session model (pure: no I/O).

`SessionDecoder` checks each field against the spec: strictly for a client's mint body
(`decode_request`), leniently for an upstream's answer (`decode_upstream_response`);
both are in `service.session_codec`. Beta bodies reach it already translated to the GA
shape by `service.codecs.beta_to_ga`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeVar

from service.errors import InvalidRequest, InvalidValue
from service.json_checks import (
    MAX_LIST_ITEMS,
    TEXT_MAX_CHARS,
    as_bool,
    as_int,
    as_number,
    as_object,
    as_str,
    as_str_list,
    check_keys,
    invalid,
    join,
    wrong_type,
)
from service.passthrough import (
    check_mcp_tool,
    check_prompt,
    check_reasoning,
    check_tracing,
    check_truncation,
)
from service.session import (
    AUDIO_FORMATS,
    LOGPROBS,
    MAX_OUTPUT_TOKENS,
    OFF,
    VAD_MS_MAX,
    VAD_TYPES,
    AudioFormat,
    FunctionTool,
    Kind,
    McpTool,
    NoiseReduction,
    Session,
    Tool,
    ToolChoice,
    Transcription,
    TurnDetection,
)

T = TypeVar("T")


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


class SessionDecoder:
    """Reads a GA `session` object into a `Session`: strictly for a client's body
    (unknown keys and bad values fail), leniently for an upstream's answer (they are
    skipped). `beta=True` follows the beta shape's rules (`temperature` is known, MCP
    tools are not)."""

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
