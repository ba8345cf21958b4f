"""What the fake upstream accepts on each endpoint, after the reference OpenAPI subset.

Built once per fake app (`RequestShapes.build()`), never at import time. Where the
reference spec leaves objects open, these are closed, because the real API refuses unknown
fields: `temperature` in a GA session is refused here as OpenAI refuses it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from service.fake.validate import (
    Refusal,
    Shape,
    any_object,
    any_of,
    array,
    boolean,
    choice,
    integer,
    nullable,
    number,
    obj,
    string,
    string_map,
    tagged,
)

BETA_AUDIO_FORMATS = ("pcm16", "g711_ulaw", "g711_alaw")
LOGPROBS = "item.input_audio_transcription.logprobs"


def _audio_format() -> Shape:
    return tagged(
        {
            "audio/pcm": obj({"type": string(), "rate": choice(24000)}),
            "audio/pcmu": obj({"type": string()}),
            "audio/pcma": obj({"type": string()}),
        }
    )


def _turn_detection() -> Shape:
    common = {
        "type": string(),
        "create_response": boolean(),
        "interrupt_response": boolean(),
    }
    return nullable(
        tagged(
            {
                "server_vad": obj(
                    {
                        **common,
                        "threshold": number(0.0, 1.0),
                        "prefix_padding_ms": integer(0),
                        "silence_duration_ms": integer(0),
                        "idle_timeout_ms": nullable(integer(5000, 30000)),
                    }
                ),
                "semantic_vad": obj(
                    {**common, "eagerness": choice("low", "medium", "high", "auto")}
                ),
            }
        )
    )


def _transcription() -> Shape:
    return obj(
        {
            "model": string(),
            "language": string(),
            "languages": array(string()),
            "keywords": array(string()),
            "prompt": string(),
            "delay": choice("minimal", "low", "medium", "high", "xhigh"),
        }
    )


def _noise_reduction() -> Shape:
    return nullable(obj({"type": choice("near_field", "far_field")}))


def _tracing() -> Shape:
    config = obj({"workflow_name": string(), "group_id": string(), "metadata": any_object()})
    return nullable(any_of(choice("auto"), config, expected="'auto' or a tracing object"))


def _max_tokens() -> Shape:
    return any_of(integer(1, 4096), choice("inf"), expected="an integer in 1..4096 or 'inf'")


def _function_tool() -> Shape:
    return obj(
        {
            "type": string(),
            "name": string(),
            "description": string(),
            "parameters": any_object(),
        },
        required=("name",),
    )


def _ga_realtime_session() -> Shape:
    audio_input = obj(
        {
            "format": _audio_format(),
            "transcription": nullable(_transcription()),
            "noise_reduction": _noise_reduction(),
            "turn_detection": _turn_detection(),
        }
    )
    voice = any_of(string(), obj({"id": string()}, required=("id",)), expected="a voice")
    audio_output = obj({"format": _audio_format(), "voice": voice, "speed": number(0.25, 1.5)})
    tool_choice = any_of(
        choice("none", "auto", "required"),
        obj({"type": choice("function"), "name": string()}, required=("type", "name")),
        obj(
            {"type": choice("mcp"), "server_label": string(), "name": nullable(string())},
            required=("type", "server_label"),
        ),
        expected="'none', 'auto', 'required' or a tool choice object",
    )
    truncation, prompt = _truncation(), _prompt()
    return obj(
        {
            "type": string(),
            "model": string(),
            "output_modalities": array(choice("text", "audio")),
            "instructions": string(),
            "audio": obj({"input": audio_input, "output": audio_output}),
            "include": array(choice(LOGPROBS)),
            "tracing": _tracing(),
            "tools": array(
                tagged(
                    {
                        "function": _function_tool(),
                        # MCP tools carry many connector fields; only the tag and label matter.
                        "mcp": obj(
                            {"server_label": string()}, required=("server_label",), open=True
                        ),
                    }
                )
            ),
            "tool_choice": tool_choice,
            "parallel_tool_calls": boolean(),
            "reasoning": obj({"effort": choice("minimal", "low", "medium", "high", "xhigh")}),
            "max_output_tokens": _max_tokens(),
            "truncation": truncation,
            "prompt": prompt,
        }
    )


def _ga_transcription_session() -> Shape:
    audio_input = obj(
        {
            "format": _audio_format(),
            "transcription": _transcription(),
            "noise_reduction": _noise_reduction(),
            "turn_detection": _turn_detection(),
        }
    )
    return obj(
        {
            "type": string(),
            "audio": obj({"input": audio_input}),
            "include": array(choice(LOGPROBS)),
        }
    )


def _translation_client_secret() -> Shape:
    """POST /v1/realtime/translations/client_secrets, after the translation part of
    tests/schemas/openai-openapi-subset.yaml (RealtimeTranslationClientSecretCreateRequest):
    `session.model` is required; the session has no `type`."""
    noise_reduction = nullable(
        obj(
            {"type": choice("near_field", "far_field"), "strength": number(0.0)},
            required=("type",),
        )
    )
    audio = obj(
        {
            "input": obj(
                {
                    "noise_reduction": noise_reduction,
                    "transcription": nullable(obj({"model": string()}, required=("model",))),
                }
            ),
            "output": obj({"language": string(min_length=1)}),
        }
    )
    session = obj({"model": string(min_length=1), "audio": audio}, required=("model",))
    return obj({"expires_after": _expires_after(), "session": session}, required=("session",))


def _truncation() -> Shape:
    return any_of(
        choice("auto", "disabled"),
        obj(
            {
                "type": choice("retention_ratio"),
                "retention_ratio": number(0.0, 1.0),
                "token_limits": obj({"post_instructions": integer(0)}),
            },
            required=("type", "retention_ratio"),
        ),
        expected="'auto', 'disabled' or a retention_ratio object",
    )


def _prompt() -> Shape:
    return nullable(
        obj(
            {"id": string(), "version": nullable(string()), "variables": any_object()},
            required=("id",),
        )
    )


def _expires_after() -> Shape:
    return obj({"anchor": choice("created_at"), "seconds": integer(10, 7200)})


def _beta_turn_detection() -> Shape:
    return nullable(
        obj(
            {
                "type": choice("server_vad", "semantic_vad"),
                "threshold": number(0.0, 1.0),
                "prefix_padding_ms": integer(0),
                "silence_duration_ms": integer(0),
                "create_response": boolean(),
                "interrupt_response": boolean(),
                "eagerness": choice("low", "medium", "high", "auto"),
            }
        )
    )


def _beta_transcription() -> Shape:
    return nullable(obj({"model": string(), "language": string(), "prompt": string()}))


def _beta_session() -> Shape:
    function_tool = obj(
        {
            "type": choice("function"),
            "name": string(),
            "description": string(),
            "parameters": any_object(),
        }
    )
    return obj(
        {
            "client_secret": obj({"expires_after": _expires_after()}),
            "model": string(),
            "modalities": array(choice("text", "audio")),
            "instructions": string(),
            "voice": any_of(string(), obj({"id": string()}, required=("id",)), expected="a voice"),
            "input_audio_format": choice(*BETA_AUDIO_FORMATS),
            "output_audio_format": choice(*BETA_AUDIO_FORMATS),
            "input_audio_transcription": _beta_transcription(),
            "input_audio_noise_reduction": _noise_reduction(),
            "turn_detection": _beta_turn_detection(),
            "tools": array(function_tool),
            "tool_choice": string(),
            "temperature": number(0.6, 1.2),
            "max_response_output_tokens": _max_tokens(),
            "speed": number(0.25, 1.5),
            "tracing": _tracing(),
            "include": array(choice(LOGPROBS)),
            # The beta request schema (RealtimeSessionCreateRequest) allows both.
            "truncation": _truncation(),
            "prompt": _prompt(),
        }
    )


def _beta_transcription_session() -> Shape:
    return obj(
        {
            "client_secret": obj({"expires_after": _expires_after()}),
            "modalities": array(choice("text", "audio")),
            "input_audio_format": choice(*BETA_AUDIO_FORMATS),
            "input_audio_transcription": _beta_transcription(),
            "input_audio_noise_reduction": _noise_reduction(),
            "turn_detection": _beta_turn_detection(),
            "include": array(choice(LOGPROBS)),
        }
    )


def _vector_store_create() -> Shape:
    static = obj(
        {"max_chunk_size_tokens": integer(100, 4096), "chunk_overlap_tokens": integer(0)},
        required=("max_chunk_size_tokens", "chunk_overlap_tokens"),
    )
    return obj(
        {
            "file_ids": array(string(), max_items=500),
            "name": string(),
            "description": string(),
            "expires_after": obj(
                {"anchor": choice("last_active_at"), "days": integer(1, 365)},
                required=("anchor", "days"),
            ),
            "chunking_strategy": tagged(
                {
                    "auto": obj({"type": string()}),
                    "static": obj({"type": string(), "static": static}, required=("static",)),
                }
            ),
            "metadata": nullable(string_map(max_pairs=16, max_key=64, max_value=512)),
        }
    )


def _live_server_event() -> Shape:
    """A server event selector: a type, or `{type, response_event}` where the nested
    Responses event is named exactly when the type is `response.event`."""
    name = string(min_length=1)
    selector = obj({"type": name, "response_event": name}, required=("type",))

    def check(value: Any, path: str) -> None:
        if isinstance(value, str):
            name(value, path)
            if value == "response.event":
                raise Refusal(
                    400,
                    f"Invalid '{path}': select Responses events with an object "
                    "{type: 'response.event', response_event: ...}.",
                    param=path,
                    code="invalid_value",
                )
            return
        selector(value, path)
        nested = "response_event" in value
        if nested != (value["type"] == "response.event"):
            raise Refusal(
                400,
                f"Invalid '{path}.response_event': required for 'response.event' and "
                "forbidden for other types.",
                param=f"{path}.response_event",
                code="invalid_value",
            )

    return check


def _live_create() -> Shape:
    """POST /v1/live/sessions, after tests/schemas/openai-live-subset.yaml (the session
    configuration is strict: unknown fields are refused)."""
    name = string(min_length=1)
    every = choice("all")
    data_channel = obj(
        {
            "allowed_client_events": any_of(
                every, array(name), expected="'all' or an array of event types"
            ),
            "allowed_server_events": any_of(
                every, array(_live_server_event()), expected="'all' or an array of selectors"
            ),
        }
    )
    voice = any_of(name, obj({"id": name}, required=("id",)), expected="a voice")
    responses = obj(
        {
            "model": string(),
            "instructions": string(),
            "max_output_tokens": integer(1),
            "tools": array(
                obj({"type": string(), "name": string()}, required=("type",), open=True)
            ),
            "tool_choice": lambda value, path: None,
            "parallel_tool_calls": boolean(),
            "reasoning": any_object(),
            "text": any_object(),
            "service_tier": string(),
        },
        required=("model",),
        open=True,
    )
    delegation = tagged(
        {
            "client": obj({"type": string()}),
            "responses": obj({"type": string(), "responses": responses}, required=("responses",)),
        }
    )
    part = obj(
        {"type": choice("input_text", "output_text"), "text": string()}, required=("type", "text")
    )
    item = obj(
        {
            "type": choice("message"),
            "role": choice("developer", "user", "assistant"),
            "content": _one(part),
        },
        required=("type", "role", "content"),
    )
    session = obj(
        {
            "model": name,
            "instructions": string(),
            "audio": obj({"output": obj({"voice": voice})}),
            "client": obj({"data_channel": data_channel}),
            "delegation": delegation,
            "input": array(item, max_items=128),
            "store": boolean(),
        },
        required=("model",),
    )
    transport = obj({"type": choice("webrtc"), "sdp": name}, required=("type", "sdp"))
    return obj({"session": session, "transport": transport}, required=("session", "transport"))


def _one(item: Shape) -> Shape:
    """An array of exactly one element."""
    many = array(item, max_items=1)

    def check(value: Any, path: str) -> None:
        many(value, path)
        if not value:
            raise Refusal(
                400,
                f"Invalid '{path}': expected exactly one content part.",
                param=path,
                code="invalid_value",
            )

    return check


@dataclass(frozen=True)
class RequestShapes:
    ga_client_secret: Shape
    translation_client_secret: Shape
    beta_session: Shape
    beta_transcription: Shape
    vector_store_create: Shape
    live_create: Shape

    @classmethod
    def build(cls) -> RequestShapes:
        session = tagged(
            {"realtime": _ga_realtime_session(), "transcription": _ga_transcription_session()}
        )
        return cls(
            ga_client_secret=obj({"expires_after": _expires_after(), "session": session}),
            translation_client_secret=_translation_client_secret(),
            beta_session=_beta_session(),
            beta_transcription=_beta_transcription_session(),
            vector_store_create=_vector_store_create(),
            live_create=_live_create(),
        )
