"""Reading a GA `session` object into the session model (pure: no I/O).

`SessionDecoder` checks each field against the spec: strictly for a client's mint body
(`decode_request`), leniently for an upstream's answer (`decode_upstream_response`);
both are in `service.session.codec`. Beta bodies reach it already translated to the GA
shape by `service.session.translate.beta_to_ga`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any, Literal

from service.errors import InvalidRequest, InvalidValue
from service.session.model import (
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
from service.session.passthrough import (
    check_mcp_tool,
    check_prompt,
    check_reasoning,
    check_tracing,
    check_truncation,
)
from service.session.strict_json import (
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

# A table of (key, parser) read in order by `SessionDecoder._read`.
_Table = tuple[tuple[str, Callable[[Any, str], Any]], ...]
# Where a session field lives: the session itself, `audio.input` or `audio.output`.
_TOP, _IN, _OUT = 0, 1, 2


class SessionDecoder:
    """Reads a GA `session` object into a `Session`: strictly for a client's body
    (unknown keys and bad values fail), leniently for an upstream's answer (they are
    skipped). `beta=True` follows the beta shape's rules (`temperature` is known, MCP
    tools are not). Decoders hold no state beyond their flags: `decoder()` shares them."""

    def __init__(self, *, strict: bool, beta: bool) -> None:
        self.strict, self.beta = strict, beta
        # The session's fields in the order they are checked (which error a body with
        # several problems gets), each with its container, key, GA path and parser. Built
        # once per decoder: this runs twice per mint, and per-call lambdas, paths and
        # readers were most of its cost.
        self._fields: tuple[tuple[str, int, str, str, Callable[[Any, str], Any]], ...] = (
            ("voice", _OUT, "voice", "session.audio.output.voice", _voice),
            ("turn_detection", _IN, "turn_detection", "session.audio.input.turn_detection",
             self.turn_detection),
            ("model", _TOP, "model", "session.model", _id),
            ("instructions", _TOP, "instructions", "session.instructions", _text),
            ("output_modalities", _TOP, "output_modalities", "session.output_modalities",
             _modalities),
            ("input_format", _IN, "format", "session.audio.input.format", self.audio_format),
            ("output_format", _OUT, "format", "session.audio.output.format", self.audio_format),
            ("transcription", _IN, "transcription", "session.audio.input.transcription",
             self.transcription),
            ("noise_reduction", _IN, "noise_reduction", "session.audio.input.noise_reduction",
             self.noise_reduction),
            ("speed", _OUT, "speed", "session.audio.output.speed", _speed),
            ("temperature", _TOP, "temperature", "session.temperature", _temperature),
            ("max_output_tokens", _TOP, "max_output_tokens", "session.max_output_tokens",
             _max_tokens),
            ("tools", _TOP, "tools", "session.tools", self.tools),
            ("tool_choice", _TOP, "tool_choice", "session.tool_choice", _tool_choice),
            ("tracing", _TOP, "tracing", "session.tracing", check_tracing),
            ("truncation", _TOP, "truncation", "session.truncation", check_truncation),
            ("prompt", _TOP, "prompt", "session.prompt", check_prompt),
            ("include", _TOP, "include", "session.include", _include),
            ("reasoning", _TOP, "reasoning", "session.reasoning", check_reasoning),
            ("parallel_tool_calls", _TOP, "parallel_tool_calls", "session.parallel_tool_calls",
             as_bool),
        )  # fmt: skip
        self._by_key: tuple[dict[str, tuple[str, str, Callable[[Any, str], Any]]], ...] = tuple(
            {key: (name, path, parse) for name, at, key, path, parse in self._fields if at == where}
            for where in (_TOP, _IN, _OUT)
        )

    def _first_error(self, objects: tuple[Mapping[str, Any], ...]) -> None:
        """Raise the first error of `objects` in the table's order (strict mode)."""
        for _, where, key, path, parse in self._fields:
            value = objects[where].get(key)
            if value is not None:
                parse(value, path)

    def _object(self, value: object, path: str, keys: Collection[str]) -> Mapping[str, Any]:
        obj = as_object(value, path)
        if self.strict:
            check_keys(obj, keys, path)
        return obj

    def session(self, raw: Mapping[str, Any], kind: Kind) -> Session:
        top = self._object(raw, "session", _SESSION_KEYS[kind, self.beta])
        audio = self._object(
            raw.get("audio") or {}, "session.audio", _AUDIO_KEYS[kind == "realtime"]
        )
        audio_in = self._object(audio.get("input") or {}, "session.audio.input", _IN_KEYS)
        audio_out = self._object(audio.get("output") or {}, "session.audio.output", _OUT_KEYS)
        objects = (top, audio_in, audio_out)
        values: dict[str, Any] = {}
        # Only the keys given are looked at (a body names few of the twenty fields). The
        # order does not change what a valid body gives; for an invalid one, the ordered
        # walk below finds the error the table's order puts first.
        for where, obj in enumerate(objects):
            by_key = self._by_key[where]
            for key, value in obj.items():
                entry = by_key.get(key)
                if entry is None or value is None:
                    continue
                name, path, parse = entry
                try:
                    values[name] = parse(value, path)
                except InvalidRequest:
                    if self.strict:
                        self._first_error(objects)
                        raise
        if "voice" in values:
            values["voice"], values["custom_voice"] = values["voice"]
        if "turn_detection" in audio_in and audio_in["turn_detection"] is None:
            values["turn_detection"] = OFF
        return Session(**values)

    def _read(self, obj: Mapping[str, Any], path: str, table: _Table) -> dict[str, Any]:
        """The fields of `table` given in `obj` (null is "not given"), as keyword
        arguments; in lenient mode an unreadable field is skipped, not fatal."""
        values: dict[str, Any] = {}
        for key, parse in table:
            value = obj.get(key)
            if value is None:
                continue
            try:
                values[key] = parse(value, f"{path}.{key}")
            except InvalidRequest:
                if self.strict:
                    raise
        return values

    def audio_format(self, value: object, path: str) -> AudioFormat:
        obj = as_object(value, path)
        kind = obj.get("type")
        self._object(obj, path, ("type", "rate") if kind == "audio/pcm" else ("type",))
        as_str(kind, f"{path}.type", choices=AUDIO_FORMATS)
        if kind == "audio/pcm":
            self._read(obj, path, _PCM_RATE)
        return _FORMATS[str(kind)]

    def transcription(self, value: object, path: str) -> Transcription:
        obj = self._object(value, path, _TRANSCRIPTION_KEYS)
        return Transcription(**self._read(obj, path, _TRANSCRIPTION))

    def noise_reduction(self, value: object, path: str) -> NoiseReduction:
        obj = self._object(value, path, ("type",))
        return NoiseReduction(**self._read(obj, path, _NOISE_REDUCTION))

    def turn_detection(self, value: object, path: str) -> TurnDetection:
        obj = as_object(value, path)
        kind = obj.get("type")
        if kind is None:
            raise InvalidValue(f"Missing required parameter: '{path}.type'.", param=f"{path}.type")
        as_str(kind, f"{path}.type", choices=VAD_TYPES)
        table = _SEMANTIC_VAD if kind == "semantic_vad" else _SERVER_VAD
        self._object(obj, path, _VAD_KEYS[kind])
        return TurnDetection(type=kind, **self._read(obj, path, table))

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
        obj = self._object(value, path, ("type", "name", "description", "parameters"))
        values = self._read(obj, path, _TOOL_NAME)  # the name first: its error comes first
        if "name" not in values:
            if not self.strict:
                return None
            raise InvalidValue(f"Missing required parameter: '{path}.name'.", param=f"{path}.name")
        return FunctionTool(**values, **self._read(obj, path, _TOOL_DETAILS))


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


def _id(value: object, path: str) -> str:
    return as_str(value, path, min_chars=1)


def _speed(value: object, path: str) -> float:
    return as_number(value, path, 0.25, 1.5)


def _temperature(value: object, path: str) -> float:
    return as_number(value, path, 0.0, 2.0)


def _include(value: object, path: str) -> tuple[str, ...]:
    return as_str_list(value, path, choices=LOGPROBS)


def _languages(value: object, path: str) -> tuple[str, ...]:
    return as_str_list(value, path, min_items=1)


def _delay(value: object, path: str) -> str:
    return as_str(value, path, choices=("minimal", "low", "medium", "high", "xhigh"))


def _threshold(value: object, path: str) -> float:
    return as_number(value, path, 0.0, 1.0)


def _idle_timeout(value: object, path: str) -> int:
    return as_int(value, path, 5000, 30000)


def _pcm_rate(value: object, path: str) -> int:
    return as_int(value, path, 24000, 24000)


_REALTIME_KEYS = (
    "model", "instructions", "output_modalities", "tools", "tool_choice", "tracing",
    "truncation", "prompt", "reasoning", "parallel_tool_calls", "max_output_tokens",
)  # fmt: skip
# The keys a `session` may hold, by (kind, beta): beta realtime sessions know
# `temperature`; beta transcription sessions take `modalities` (as output_modalities).
_SESSION_KEYS: dict[tuple[str, bool], frozenset[str]] = {
    ("realtime", False): frozenset(("type", "audio", "include", *_REALTIME_KEYS)),
    ("realtime", True): frozenset(("type", "audio", "include", *_REALTIME_KEYS, "temperature")),
    ("transcription", False): frozenset(("type", "audio", "include")),
    ("transcription", True): frozenset(("type", "audio", "include", "output_modalities")),
}
_AUDIO_KEYS = {True: frozenset(("input", "output")), False: frozenset(("input",))}  # realtime?
_IN_KEYS = frozenset(("format", "transcription", "noise_reduction", "turn_detection"))
_OUT_KEYS = frozenset(("format", "voice", "speed"))
_TRANSCRIPTION_KEYS = frozenset(("model", "language", "languages", "keywords", "prompt", "delay"))
_VAD_COMMON = ("type", "create_response", "interrupt_response")
_VAD_KEYS = {
    "semantic_vad": frozenset((*_VAD_COMMON, "eagerness")),
    "server_vad": frozenset(
        (*_VAD_COMMON, "threshold", "prefix_padding_ms", "silence_duration_ms", "idle_timeout_ms")
    ),
}
# Frozen, so one instance of each serves every session.
_FORMATS = {
    name: AudioFormat(name, 24000 if name == "audio/pcm" else None) for name in AUDIO_FORMATS
}

# Field tables, in the order the fields are checked (and so which error comes first).
_PCM_RATE: _Table = (("rate", _pcm_rate),)
_TRANSCRIPTION: _Table = (
    ("model", _id),
    ("language", as_str),
    ("prompt", _text),
    ("languages", _languages),
    ("keywords", as_str_list),
    ("delay", _delay),
)
_NOISE_REDUCTION: _Table = (("type", _noise_type),)
_SEMANTIC_VAD: _Table = (
    ("create_response", as_bool),
    ("interrupt_response", as_bool),
    ("eagerness", _eagerness),
)
_SERVER_VAD: _Table = (
    ("threshold", _threshold),
    ("prefix_padding_ms", _vad_ms),
    ("silence_duration_ms", _vad_ms),
    ("idle_timeout_ms", _idle_timeout),
    ("create_response", as_bool),
    ("interrupt_response", as_bool),
)
_TOOL_NAME: _Table = (("name", _id),)
_TOOL_DETAILS: _Table = (("description", _text), ("parameters", as_object))
