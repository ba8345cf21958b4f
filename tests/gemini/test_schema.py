"""Reading a Live setup: both spellings of a field, camelCase out, unknown fields refused,
free-form values (schemas, maps) kept exactly as sent."""

from __future__ import annotations

from typing import Any

import pytest

from service.errors import InvalidValue, UnknownParameter
from service.gemini.schema import SETUP_MESSAGE, message, normalize, snake_case


def test_the_python_sdks_mixed_spelling_comes_out_camel_case() -> None:
    setup = {
        "model": "models/gemini-live",
        "generationConfig": {
            "responseModalities": ["AUDIO"],
            "speechConfig": {"voice_config": {"prebuilt_voice_config": {"voice_name": "Kore"}}},
        },
        "realtime_input_config": {
            "automatic_activity_detection": {"disabled": False, "silence_duration_ms": 500}
        },
        "contextWindowCompression": {"sliding_window": {"target_tokens": 1000}},
    }

    assert normalize(setup, SETUP_MESSAGE, "s") == {
        "model": "models/gemini-live",
        "generationConfig": {
            "responseModalities": ["AUDIO"],
            "speechConfig": {"voiceConfig": {"prebuiltVoiceConfig": {"voiceName": "Kore"}}},
        },
        "realtimeInputConfig": {
            "automaticActivityDetection": {"disabled": False, "silenceDurationMs": 500}
        },
        "contextWindowCompression": {"slidingWindow": {"targetTokens": 1000}},
    }


def test_free_form_values_are_kept_as_sent() -> None:
    parameters = {"type": "OBJECT", "properties": {"order_id": {"type": "STRING"}}}
    setup = {
        "tools": [{"function_declarations": [{"name": "lookup", "parameters": parameters}]}],
        "labels": {"team_name": "voice"},
    }

    out = normalize(setup, SETUP_MESSAGE, "s")

    assert out["tools"][0]["functionDeclarations"][0]["parameters"] == parameters
    assert out["labels"] == {"team_name": "voice"}


@pytest.mark.parametrize(
    ("setup", "param"),
    [
        ({"voice": "Kore"}, "s.voice"),
        ({"generationConfig": {"speechConfig": {"multiSpeakerVoiceConfig": {}}}},
         "s.generationConfig.speechConfig.multiSpeakerVoiceConfig"),
        ({"systemInstruction": {"parts": [{"inlineData": {}}]}},
         "s.systemInstruction.parts[0].inlineData"),
        ({"tools": [{"retrieval": {}}]}, "s.tools[0].retrieval"),
        # They choose the model, which is the policy's.
        ({"generationConfig": {"routingConfig": {"manualMode": {"modelName": "x"}}}},
         "s.generationConfig.routingConfig"),
        ({"generation_config": {"routing_config": {}}}, "s.generationConfig.routing_config"),
        ({"generationConfig": {"modelSelectionConfig": {}}},
         "s.generationConfig.modelSelectionConfig"),
    ],
)  # fmt: skip
def test_an_unknown_field_is_refused_by_its_path(setup: dict[str, Any], param: str) -> None:
    with pytest.raises(UnknownParameter) as raised:
        normalize(setup, SETUP_MESSAGE, "s")
    assert raised.value.param == param


def test_a_field_under_both_names_is_refused() -> None:
    with pytest.raises(InvalidValue) as raised:
        normalize({"generationConfig": {}, "generation_config": {}}, SETUP_MESSAGE, "s")
    assert raised.value.param == "s.generationConfig"


@pytest.mark.parametrize(
    ("setup", "param"),
    [
        ({"generationConfig": "hot"}, "s.generationConfig"),
        ({"tools": {"googleSearch": {}}}, "s.tools"),
        ({"tools": ["googleSearch"]}, "s.tools[0]"),
    ],
)
def test_a_message_that_is_not_an_object_is_refused(setup: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidValue) as raised:
        normalize(setup, SETUP_MESSAGE, "s")
    assert raised.value.param == param


def test_null_is_an_unset_field() -> None:
    assert normalize({"model": "m", "generationConfig": None}, SETUP_MESSAGE, "s") == {"model": "m"}


def test_a_list_is_bounded() -> None:
    with pytest.raises(InvalidValue):
        normalize({"safetySettings": [{}] * 1000}, SETUP_MESSAGE, "s")


def test_snake_case_is_the_protos_field_name() -> None:
    assert snake_case("newSessionExpireTime") == "new_session_expire_time"
    assert snake_case("model") == "model"
    assert message("topK").aliases == {"top_k": "topK"}
