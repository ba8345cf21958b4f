"""The fields of a Live setup (`BidiGenerateContentSetup`) the broker knows, and its one
reader: `normalize` checks a client's setup against them and spells every field in
camelCase.

Google's JSON mapping of protocol buffers takes a field by its camelCase name or by its
proto (snake_case) name, and the SDKs use both: the Python SDK writes
`speechConfig.voice_config.prebuilt_voice_config.voice_name` (a pydantic model dumped
inside a camelCase dict) next to `generationConfig.responseModalities`. The policy reads
one spelling, so the setup is normalized before it is read, and sent upstream so.

A field is a nested message (checked field by field, recursively), a repeated message, or
a value kept exactly as sent (scalars, enums, maps such as `labels`, free-form JSON such
as a function's `parameters` schema, whose keys are the caller's names and must not be
respelled). A field the broker does not know is refused, as Google refuses it: a field
the broker let through unread could carry what the policy decides by another name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from service.errors import InvalidValue, UnknownParameter
from service.session.strict_json import MAX_LIST_ITEMS, join, wrong_type


@dataclass(frozen=True, slots=True)
class Message:
    """A message's fields by camelCase name: a nested `Message`, a `Repeated` one, or
    `None` for a value kept as sent."""

    fields: Mapping[str, Field]
    # snake_case (the proto's own name) → camelCase, for every field whose names differ.
    aliases: Mapping[str, str] = field(init=False)

    def __post_init__(self) -> None:
        aliases = {snake_case(name): name for name in self.fields}
        object.__setattr__(self, "aliases", {k: v for k, v in aliases.items() if k != v})


@dataclass(frozen=True, slots=True)
class Repeated:
    item: Message


Field = Message | Repeated | None

_UPPER = re.compile(r"(?<!^)([A-Z])")


def snake_case(name: str) -> str:
    return _UPPER.sub(r"_\1", name).lower()


def message(*names: str, **nested: Field) -> Message:
    """A message of value fields `names` and message fields `nested`."""
    return Message({**dict.fromkeys(names), **nested})


# What Google's Live API takes (the google-genai 3.x types and Google's Live API
# reference); the Vertex-only fields are left out, as Gemini's Developer API refuses them.
# So are `routingConfig` and `modelSelectionConfig` of the generation config: they pick
# the model, which is the policy's (`models`), so a client may not send them at all.
PREBUILT_VOICE_CONFIG = message("voiceName")
VOICE_CONFIG = message("replicatedVoiceConfig", prebuiltVoiceConfig=PREBUILT_VOICE_CONFIG)
SPEECH_CONFIG = message("languageCode", voiceConfig=VOICE_CONFIG)
GENERATION_CONFIG = message(
    "audioTimestamp",
    "candidateCount",
    "enableAffectiveDialog",
    "enableEnhancedCivicAnswers",
    "frequencyPenalty",
    "logprobs",
    "maxOutputTokens",
    "mediaResolution",
    "presencePenalty",
    "responseJsonSchema",
    "responseLogprobs",
    "responseMimeType",
    "responseModalities",
    "responseSchema",
    "seed",
    "stopSequences",
    "temperature",
    "topK",
    "topP",
    speechConfig=SPEECH_CONFIG,
    thinkingConfig=message("includeThoughts", "thinkingBudget", "thinkingLevel"),
    translationConfig=message("echoTargetLanguage", "targetLanguageCode"),
)
# A system instruction is text: other parts (media, function calls) have no place in it.
CONTENT = message("role", parts=Repeated(message("text")))
FUNCTION_DECLARATION = message(
    "behavior",
    "description",
    "name",
    "parameters",
    "parametersJsonSchema",
    "response",
    "responseJsonSchema",
)
# Every kind of tool but function declarations is named by its field (`googleSearch`),
# which is what a role's `tools.allow` lists for it.
TOOL = message(
    "codeExecution",
    "computerUse",
    "fileSearch",
    "googleMaps",
    "googleSearch",
    "googleSearchRetrieval",
    "mcpServers",
    "urlContext",
    functionDeclarations=Repeated(FUNCTION_DECLARATION),
)
AUTOMATIC_ACTIVITY_DETECTION = message(
    "disabled",
    "endOfSpeechSensitivity",
    "prefixPaddingMs",
    "silenceDurationMs",
    "startOfSpeechSensitivity",
)
REALTIME_INPUT_CONFIG = message(
    "activityHandling",
    "interimTranscriptTimestampEnabled",
    "turnCoverage",
    automaticActivityDetection=AUTOMATIC_ACTIVITY_DETECTION,
)
AUDIO_TRANSCRIPTION_CONFIG = message(
    "adaptationPhrases",
    "customVocabulary",
    "diarization",
    "languageAuto",
    "languageCodes",
    "languageHints",
    "mode",
    "sourceText",
    "wordTimestamp",
)
# The field of an AuthToken that holds the setup, and the setup's own fields.
SETUP_PARAM = "bidiGenerateContentSetup"
SETUP_MESSAGE = message(
    "labels",
    "model",
    avatarConfig=message("audioBitrateBps", "avatarName", "customizedAvatar", "videoBitrateBps"),
    contextWindowCompression=message("triggerTokens", slidingWindow=message("targetTokens")),
    generationConfig=GENERATION_CONFIG,
    historyConfig=message("initialHistoryInClientContent"),
    inputAudioTranscription=AUDIO_TRANSCRIPTION_CONFIG,
    outputAudioTranscription=AUDIO_TRANSCRIPTION_CONFIG,
    proactivity=message("proactiveAudio", "proactiveVideo"),
    realtimeInputConfig=REALTIME_INPUT_CONFIG,
    safetySettings=Repeated(message("category", "threshold")),
    sessionResumption=message("handle", "transparent"),
    systemInstruction=CONTENT,
    tools=Repeated(TOOL),
)


def normalize(value: object, shape: Message, path: str) -> dict[str, Any]:
    """`value` checked against `shape`, every field in camelCase. A field given as `null`
    is left out (JSON's null is an unset field in Google's mapping); a field given under
    both of its names is refused, as is any field `shape` does not know."""
    if not isinstance(value, dict):
        wrong_type(path, "an object", value)
    out: dict[str, Any] = {}
    for key, item in value.items():
        name = key if key in shape.fields else shape.aliases.get(key)
        if name is None:
            where = join(path, key)[:200]
            raise UnknownParameter(f"Unknown parameter: '{where}'.", param=where)
        if name in out:
            where = join(path, name)
            raise InvalidValue(f"'{where}' is given twice (camelCase and snake_case).", param=where)
        if item is None:
            continue
        out[name] = _field(item, shape.fields[name], join(path, name))
    return out


def _field(value: object, kind: Field, path: str) -> Any:
    if kind is None:
        return value
    if isinstance(kind, Message):
        return normalize(value, kind, path)
    if not isinstance(value, list):
        wrong_type(path, "an array", value)
    if len(value) > MAX_LIST_ITEMS:
        raise InvalidValue(f"'{path}' has more than {MAX_LIST_ITEMS} items.", param=path)
    return [normalize(item, kind.item, join(path, index)) for index, item in enumerate(value)]
