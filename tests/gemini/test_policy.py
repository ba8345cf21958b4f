"""The role's policy applied to a Live setup: allow-lists clamped or refused, ranges
clamped, instructions by mode, tools by name; what changed listed by its path."""

from __future__ import annotations

from typing import Any

import pytest

from service.errors import InvalidValue, PolicyViolation
from service.gemini.policy import apply_setup_policy
from service.gemini.schema import SETUP_MESSAGE, normalize
from service.policy.parse import parse_policy

MODEL = "gemini-live-2.5-flash-preview"
G = "bidiGenerateContentSetup.generationConfig"
READER: dict[str, Any] = {
    "models": [f"models/{MODEL}", "gemini-2.0-flash-live-001"],
    "voices": ["Kore", "Puck"],
    "modalities": ["audio", "text"],
    "temperature": {"min": 0.6, "max": 1.0, "default": 0.8},
    "max_output_tokens": 1024,
    "instructions": {"mode": "prefix", "text": "Acme rules.", "max_chars": 100},
    "turn_detection": {
        "silence_duration_ms": {"min": 300, "max": 1500},
        "prefix_padding_ms": {"min": 100, "max": 500, "default": 200},
    },
    "tools": {"allow": ["lookup_order", "googleSearch"]},
}


def apply(
    setup: dict[str, Any], rules: dict[str, Any] | None = None, *, reject: bool = False
) -> tuple[dict[str, Any], list[str]]:
    policy = parse_policy(
        {
            "default_role": "reader",
            "on_violation": "reject" if reject else "clamp",
            "roles": {"reader": READER if rules is None else rules},
        }
    )
    return apply_setup_policy(policy.rules_for("reader"), setup, reject=reject)


SPEECH = ("generationConfig", "speechConfig")


def voice(name: str) -> dict[str, Any]:
    return {"voiceConfig": {"prebuiltVoiceConfig": {"voiceName": name}}}


def test_nothing_asked_gets_each_first_entry_and_default_unlisted() -> None:
    setup, adjusted = apply({})

    assert setup == {
        "model": f"models/{MODEL}",
        "generationConfig": {
            "responseModalities": ["AUDIO"],
            "speechConfig": voice("Kore"),
            "temperature": 0.8,
            "maxOutputTokens": 1024,
        },
        "systemInstruction": {"parts": [{"text": "Acme rules."}]},
        "realtimeInputConfig": {"automaticActivityDetection": {"prefixPaddingMs": 200}},
    }
    assert adjusted == []


def test_allowed_values_are_kept_with_or_without_the_models_prefix() -> None:
    asked: dict[str, Any] = {
        "model": "gemini-2.0-flash-live-001",
        "generationConfig": {
            "responseModalities": ["text"],
            "speechConfig": {**voice("Puck"), "languageCode": "fr-FR"},
            "temperature": 0.7,
            "maxOutputTokens": 10,
            "topK": 3,
        },
        "inputAudioTranscription": {},
    }

    setup, adjusted = apply(asked)

    assert setup["model"] == "models/gemini-2.0-flash-live-001"
    assert setup["generationConfig"] == {
        **asked["generationConfig"],
        "responseModalities": ["TEXT"],
    }
    assert setup["inputAudioTranscription"] == {}
    assert "systemInstruction" in setup
    assert adjusted == []


@pytest.mark.parametrize(
    ("asked", "path", "where", "effective"),
    [
        ({"model": "models/gemini-ultra"}, "bidiGenerateContentSetup.model", ("model",),
         f"models/{MODEL}"),
        ({"generationConfig": {"speechConfig": voice("Charon")}},
         f"{G}.speechConfig.voiceConfig.prebuiltVoiceConfig.voiceName", SPEECH, voice("Kore")),
        ({"generationConfig": {"speechConfig": {"voiceConfig": {"replicatedVoiceConfig": {}}}}},
         f"{G}.speechConfig.voiceConfig.replicatedVoiceConfig", SPEECH, voice("Kore")),
        ({"generationConfig": {"responseModalities": ["AUDIO", "IMAGE"]}},
         f"{G}.responseModalities", ("generationConfig", "responseModalities"), ["AUDIO"]),
    ],
)  # fmt: skip
def test_a_value_outside_an_allow_list_is_clamped_or_refused(
    asked: dict[str, Any], path: str, where: tuple[str, ...], effective: object
) -> None:
    setup, adjusted = apply(asked)
    with pytest.raises(PolicyViolation) as raised:
        apply(asked, reject=True)

    assert adjusted == [path]
    assert raised.value.param == path
    found: Any = setup
    for key in where:
        found = found[key]
    assert found == effective


@pytest.mark.parametrize(
    ("asked", "path", "key", "effective"),
    [
        ({"temperature": 1.9}, f"{G}.temperature", "temperature", 1.0),
        ({"temperature": 0.1}, f"{G}.temperature", "temperature", 0.6),
        ({"maxOutputTokens": 50_000}, f"{G}.maxOutputTokens", "maxOutputTokens", 1024),
    ],
)
def test_ranges_are_clamped_in_reject_mode_too(
    asked: dict[str, Any], path: str, key: str, effective: float
) -> None:
    for reject in (False, True):
        setup, adjusted = apply({"generationConfig": asked}, reject=reject)
        assert setup["generationConfig"][key] == effective
        assert adjusted == [path]


def test_without_a_range_the_temperature_stays_within_geminis() -> None:
    setup, adjusted = apply({"model": "m", "generationConfig": {"temperature": 2.5}}, {})

    assert setup["generationConfig"] == {"temperature": 2.0}
    assert adjusted == [f"{G}.temperature"]


@pytest.mark.parametrize(
    ("mode", "expected", "listed"),
    [
        ("prefix", "Acme rules.\n\nBe brief.", True),
        ("server", "Acme rules.", True),
        ("client", "Be brief.", False),
    ],
)
def test_the_system_instruction_follows_the_mode(mode: str, expected: str, listed: bool) -> None:
    rules = {**READER, "instructions": {"mode": mode, "text": "Acme rules."}}
    asked = {"systemInstruction": {"parts": [{"text": "Be "}, {"text": "brief."}], "role": "user"}}

    setup, adjusted = apply(asked, rules)

    if listed:
        assert setup["systemInstruction"] == {"parts": [{"text": expected}], "role": "user"}
    else:
        assert setup["systemInstruction"] is asked["systemInstruction"]
    assert ("bidiGenerateContentSetup.systemInstruction" in adjusted) is listed


def test_a_system_instruction_over_max_chars_is_refused() -> None:
    with pytest.raises(InvalidValue) as raised:
        apply({"systemInstruction": {"parts": [{"text": "x" * 101}]}})
    assert raised.value.param == "bidiGenerateContentSetup.systemInstruction"


def test_activity_detection_is_held_within_the_roles_bounds_unless_turned_off() -> None:
    detection = "bidiGenerateContentSetup.realtimeInputConfig.automaticActivityDetection"
    asked = {
        "realtimeInputConfig": {
            "activityHandling": "NO_INTERRUPTION",
            "automaticActivityDetection": {
                "silenceDurationMs": 50,
                "prefixPaddingMs": 9000,
                "endOfSpeechSensitivity": "END_SENSITIVITY_LOW",
            },
        }
    }
    off = {"realtimeInputConfig": {"automaticActivityDetection": {"disabled": True}}}

    setup, adjusted = apply(asked)
    kept, unchanged = apply(off)

    assert setup["realtimeInputConfig"] == {
        "activityHandling": "NO_INTERRUPTION",
        "automaticActivityDetection": {
            "silenceDurationMs": 300,
            "prefixPaddingMs": 500,
            "endOfSpeechSensitivity": "END_SENSITIVITY_LOW",
        },
    }
    assert adjusted == [f"{detection}.silenceDurationMs", f"{detection}.prefixPaddingMs"]
    assert kept["realtimeInputConfig"] == off["realtimeInputConfig"]
    assert unchanged == []


def test_tools_outside_the_allow_list_are_dropped_or_refused_by_name() -> None:
    asked = {
        "tools": [
            {"functionDeclarations": [{"name": "lookup_order"}, {"name": "delete_account"}]},
            {"googleSearch": {}},
            {"codeExecution": {}},
            {"functionDeclarations": [{"name": "delete_account"}]},
        ]
    }

    setup, adjusted = apply(asked)
    with pytest.raises(PolicyViolation) as raised:
        apply(asked, reject=True)

    assert setup["tools"] == [
        {"functionDeclarations": [{"name": "lookup_order"}]},
        {"googleSearch": {}},
    ]
    assert adjusted == ["bidiGenerateContentSetup.tools"]
    assert raised.value.param == "bidiGenerateContentSetup.tools[0].functionDeclarations[1].name"


def test_a_policy_that_allows_everything_still_needs_a_model() -> None:
    setup, adjusted = apply({"model": "tunedModels/mine", "tools": [{"codeExecution": {}}]}, {})
    with pytest.raises(InvalidValue) as raised:
        apply({}, {})

    assert setup == {"model": "tunedModels/mine", "tools": [{"codeExecution": {}}]}
    assert adjusted == []
    assert raised.value.param == "bidiGenerateContentSetup.model"


def test_the_asked_setup_is_left_as_it_was() -> None:
    asked = {"generationConfig": {"temperature": 1.9, "speechConfig": voice("Charon")}}

    apply(asked)

    assert asked == {"generationConfig": {"temperature": 1.9, "speechConfig": voice("Charon")}}


def test_empty_modalities_are_none_asked_and_the_voice_follows_what_google_will_use() -> None:
    """Google reads `responseModalities: []` as unset, and an unset modality is AUDIO:
    an empty list must get neither around `modalities` nor around `voices`."""
    text_only = {"models": [MODEL], "modalities": ["text"], "voices": ["Kore"]}
    any_modality = {"models": [MODEL], "voices": ["Kore"]}
    empty: dict[str, Any] = {"generationConfig": {"responseModalities": []}}

    as_text, text_adjusted = apply(empty, text_only, reject=True)
    as_audio, audio_adjusted = apply(empty, any_modality, reject=True)
    unrestricted, _ = apply({"model": "m", **empty}, {})

    assert as_text["generationConfig"] == {"responseModalities": ["TEXT"]}
    assert text_adjusted == []
    # Nothing asked: Google answers with AUDIO, so the voice is the role's.
    assert as_audio["generationConfig"] == {"speechConfig": voice("Kore")}
    assert audio_adjusted == []
    assert "generationConfig" not in unrestricted


@pytest.mark.parametrize("allow", [None, ["mcpServers", "lookup_order"]])
@pytest.mark.parametrize("reject", [False, True])
def test_mcp_servers_are_refused_whatever_the_allow_list(
    allow: list[str] | None, reject: bool
) -> None:
    rules: dict[str, Any] = {"models": [MODEL]}
    if allow is not None:
        rules["tools"] = {"allow": allow}
    asked = {
        "tools": [
            {"functionDeclarations": [{"name": "lookup_order"}]},
            {"mcp_servers": [{"name": "x", "streamableHttpTransport": {"url": "https://evil"}}]},
        ]
    }

    with pytest.raises(PolicyViolation) as raised:
        apply(normalize(asked, SETUP_MESSAGE, ""), rules, reject=reject)

    assert raised.value.param == "bidiGenerateContentSetup.tools[1].mcpServers"
    assert "https://evil" not in raised.value.message


def test_a_built_in_tool_is_allowed_only_by_its_field_name() -> None:
    rules = {"models": [MODEL], "tools": {"allow": ["google_search", "GoogleSearch"]}}

    setup, adjusted = apply({"tools": [{"googleSearch": {}}]}, rules)

    assert setup["tools"] == []
    assert adjusted == ["bidiGenerateContentSetup.tools"]
