"""What the fake Gemini accepts, written after tests/schemas/gemini-live-subset.yaml (a test
holds the two to the same verdicts): the ephemeral-token create body and the messages a
Live client sends. Google's JSON parser refuses unknown fields, so objects are closed.

The schema names fields in camelCase. Google's parser also takes a field by its proto name
(`voice_config`), and the Python SDK sends some so (inside `speechConfig`): `camel_case`
reads those as their camelCase names first, as Google does (a field named both ways is
refused), leaving alone the keys of free-form values (a function's `parameters`, `labels`).

The combinators are the fake OpenAI's (service.fake.validate); a refusal's `param` is the
field's path (`bidiGenerateContentSetup.generationConfig.temperature`), which
`service.fake.gemini.status` words as Google does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
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
    number,
    obj,
    string,
)

# google.protobuf.Timestamp's JSON form (RFC 3339; the subset's `Timestamp`).
TIMESTAMP = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})"
)
# Padded base64, either alphabet (proto JSON bytes).
BASE64 = re.compile(r"(?:[A-Za-z0-9+/_-]{4})*(?:[A-Za-z0-9+/_-]{2}==|[A-Za-z0-9+/_-]{3}=)?")
FUNCTION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.:-]{0,127}")
INT64 = re.compile(r"[0-9]{1,19}")
INT32_MAX = 2**31 - 1
MODALITIES = ("TEXT", "AUDIO")
# The four kinds of client message; `setup` is the first and only the first.
CLIENT_MESSAGES = ("setup", "clientContent", "realtimeInput", "toolResponse")
# Fields whose values are free-form JSON: their keys are the caller's, never respelled.
FREE_FORM = frozenset(
    {
        "parameters",
        "parametersJsonSchema",
        "response",
        "responseJsonSchema",
        "labels",
        "customizedAvatar",
        "replicatedVoiceConfig",
        "googleSearch",
        "codeExecution",
        "urlContext",
        "googleMaps",
    }
)
_SNAKE = re.compile(r"_([a-z0-9])")


def camel_case(value: Any, path: str = "") -> Any:
    """`value` with every field named in camelCase (`voice_config` → `voiceConfig`); a
    field given under both names is refused, as Google refuses it."""
    if isinstance(value, list):
        return [camel_case(item, f"{path}[{index}]") for index, item in enumerate(value)]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        name = _SNAKE.sub(lambda m: m.group(1).upper(), key) if isinstance(key, str) else key
        where = f"{path}.{name}" if path else name
        if name in out:
            raise Refusal(
                400, f"Field '{where}' is given twice.", param=where, code="invalid_value"
            )
        out[name] = item if name in FREE_FORM else camel_case(item, where)
    return out


def matching(pattern: re.Pattern[str], what: str) -> Shape:
    def check(value: Any, path: str) -> None:
        string()(value, path)
        if pattern.fullmatch(value) is None:
            raise Refusal(
                400, f"Invalid value at '{path}': not {what}.", param=path, code="invalid_value"
            )

    return check


def exactly_one(fields: Mapping[str, Shape], what: str) -> Shape:
    """A closed object holding exactly one of `fields` (a proto `oneof`)."""
    closed = obj(fields)

    def check(value: Any, path: str) -> None:
        closed(value, path)
        if len(value) != 1:
            raise Refusal(
                400,
                f"Invalid value at '{path or 'message'}': expected exactly one of {what}.",
                param=path,
                code="invalid_value",
            )

    return check


def _blob() -> Shape:
    return obj(
        {"mimeType": string(min_length=1), "data": matching(BASE64, "base64 data")},
        required=("mimeType", "data"),
    )


def _content() -> Shape:
    part = exactly_one({"text": string(), "inlineData": _blob()}, "text, inlineData")
    return obj({"role": choice("user", "model"), "parts": array(part)})


def _generation_config() -> Shape:
    voice = obj(
        {
            "prebuiltVoiceConfig": obj({"voiceName": string(min_length=1)}),
            "replicatedVoiceConfig": any_object(),
        }
    )
    levels = ("THINKING_LEVEL_UNSPECIFIED", "MINIMAL", "LOW", "MEDIUM", "HIGH", "XHIGH")
    resolutions = ("UNSPECIFIED", "LOW", "MEDIUM", "HIGH")
    return obj(
        {
            "candidateCount": integer(1),
            "maxOutputTokens": integer(1),
            "temperature": number(0, 2),
            "topP": number(0, 1),
            "topK": integer(1),
            "presencePenalty": number(),
            "frequencyPenalty": number(),
            "responseModalities": array(choice(*MODALITIES), max_items=1),
            "speechConfig": obj({"voiceConfig": voice, "languageCode": string()}),
            "mediaResolution": choice(*(f"MEDIA_RESOLUTION_{r}" for r in resolutions)),
            "seed": integer(),
            "enableAffectiveDialog": boolean(),
            "thinkingConfig": obj(
                {
                    "includeThoughts": boolean(),
                    "thinkingBudget": integer(),
                    "thinkingLevel": choice(*levels),
                }
            ),
            "translationConfig": obj(
                {"targetLanguageCode": string(), "echoTargetLanguage": boolean()}
            ),
        }
    )


def _tool() -> Shape:
    declaration = obj(
        {
            "name": matching(FUNCTION_NAME, "a function name"),
            "description": string(),
            "parameters": any_object(),
            "parametersJsonSchema": any_object(),
            "behavior": choice("UNSPECIFIED", "BLOCKING", "NON_BLOCKING"),
            "response": any_object(),
            "responseJsonSchema": any_object(),
        },
        required=("name",),
    )
    return obj(
        {
            "functionDeclarations": array(declaration),
            "googleSearch": any_object(),
            "codeExecution": any_object(),
            "urlContext": any_object(),
            "googleMaps": any_object(),
        }
    )


def _realtime_input_config() -> Shape:
    detection = obj(
        {
            "disabled": boolean(),
            "startOfSpeechSensitivity": choice(
                "START_SENSITIVITY_UNSPECIFIED", "START_SENSITIVITY_HIGH", "START_SENSITIVITY_LOW"
            ),
            "endOfSpeechSensitivity": choice(
                "END_SENSITIVITY_UNSPECIFIED", "END_SENSITIVITY_HIGH", "END_SENSITIVITY_LOW"
            ),
            "prefixPaddingMs": integer(0),
            "silenceDurationMs": integer(0),
        }
    )
    return obj(
        {
            "automaticActivityDetection": detection,
            "activityHandling": choice(
                "ACTIVITY_HANDLING_UNSPECIFIED", "START_OF_ACTIVITY_INTERRUPTS", "NO_INTERRUPTION"
            ),
            "turnCoverage": choice(
                "TURN_COVERAGE_UNSPECIFIED",
                "TURN_INCLUDES_ONLY_ACTIVITY",
                "TURN_INCLUDES_ALL_INPUT",
            ),
        }
    )


def _setup(*, model_required: bool) -> Shape:
    int64 = any_of(integer(0), matching(INT64, "an int64"), expected="an int64")
    transcription = obj({"languageCodes": array(string())})
    safety = obj({"category": string(), "threshold": string()}, required=("category", "threshold"))
    avatar = obj(
        {
            "avatarName": string(),
            "customizedAvatar": any_object(),
            "audioBitrateBps": integer(),
            "videoBitrateBps": integer(),
        }
    )
    return obj(
        {
            "model": string(min_length=1),
            "generationConfig": _generation_config(),
            "systemInstruction": _content(),
            "tools": array(_tool()),
            "realtimeInputConfig": _realtime_input_config(),
            "sessionResumption": obj({"handle": string(), "transparent": boolean()}),
            "contextWindowCompression": obj(
                {"triggerTokens": int64, "slidingWindow": obj({"targetTokens": int64})}
            ),
            "inputAudioTranscription": transcription,
            "outputAudioTranscription": transcription,
            "proactivity": obj({"proactiveAudio": boolean(), "proactiveVideo": boolean()}),
            "historyConfig": obj({"initialHistoryInClientContent": boolean()}),
            "safetySettings": array(safety),
            "avatarConfig": avatar,
            "labels": _labels(),
        },
        required=("model",) if model_required else (),
    )


def _labels() -> Shape:
    def check(value: Any, path: str) -> None:
        any_object()(value, path)
        for key, label in value.items():
            string()(label, f"{path}.{key}")

    return check


def _client_message() -> Shape:
    empty = obj({})
    function_response = obj(
        {
            "id": string(),
            "name": string(min_length=1),
            "response": any_object(),
            "willContinue": boolean(),
            "scheduling": choice("SCHEDULING_UNSPECIFIED", "SILENT", "WHEN_IDLE", "INTERRUPT"),
        },
        required=("name",),
    )
    return exactly_one(
        {
            "setup": _setup(model_required=True),
            "clientContent": obj({"turns": array(_content()), "turnComplete": boolean()}),
            "realtimeInput": obj(
                {
                    "mediaChunks": array(_blob()),
                    "audio": _blob(),
                    "video": _blob(),
                    "text": string(),
                    "audioStreamEnd": boolean(),
                    "activityStart": empty,
                    "activityEnd": empty,
                }
            ),
            "toolResponse": obj({"functionResponses": array(function_response)}),
        },
        ", ".join(CLIENT_MESSAGES),
    )


@dataclass(frozen=True)
class GeminiShapes:
    """`auth_token`: the body of `POST /{version}/auth_tokens`; `client_message`: one JSON
    message of a Live session."""

    auth_token: Shape
    client_message: Shape

    def read_token(self, body: Any) -> dict[str, Any]:
        """A create body in camelCase, checked (`Refusal` otherwise)."""
        read = camel_case(body)
        self.auth_token(read, "")
        assert isinstance(read, dict)
        return read

    def read_message(self, message: Any) -> dict[str, Any]:
        """A client message in camelCase, checked (`Refusal` otherwise)."""
        read = camel_case(message)
        self.client_message(read, "")
        assert isinstance(read, dict)
        return read

    @classmethod
    def build(cls) -> GeminiShapes:
        timestamp = matching(TIMESTAMP, "an RFC 3339 timestamp")
        auth_token = obj(
            {
                "name": string(),
                "expireTime": timestamp,
                "newSessionExpireTime": timestamp,
                "uses": integer(0, INT32_MAX),
                "bidiGenerateContentSetup": _setup(model_required=False),
                "fieldMask": string(),
            }
        )
        return cls(auth_token=auth_token, client_message=_client_message())
