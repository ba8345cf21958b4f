from __future__ import annotations

import copy
from typing import Any

import pytest

from service.errors import InvalidValue, PolicyViolation
from service.policy.apply import apply_policy
from service.policy.model import Policy
from service.policy.parse import default_policy, parse_policy
from service.session.codec import decode_request
from service.session.model import (
    AudioFormat,
    FunctionTool,
    McpTool,
    MintRequest,
    Session,
    ToolChoice,
    Transcription,
    TurnDetection,
)
from tests.policy.policies import DESIGN_POLICY


def policy(on_violation: str = "clamp", **overrides: Any) -> Policy:
    data = copy.deepcopy(DESIGN_POLICY)
    data["on_violation"] = on_violation
    data["roles"]["reader"].update(overrides)
    return parse_policy(data)


def realtime(**fields: Any) -> MintRequest:
    return MintRequest(kind="realtime", session=Session(**fields), ttl_seconds=None)


# ---------------------------------------------------------------------------------------
# apply_policy: allow-lists, per field, in both modes

ALLOW_LIST_CASES = [
    # (field, requested value, clamped value, adjusted path)
    ("model", "gpt-4o-realtime-preview", "gpt-realtime-mini", "session.model"),
    ("voice", "marin", "alloy", "session.audio.output.voice"),
    ("output_modalities", ("audio",), ("audio",), None),
    (
        "input_format",
        AudioFormat("audio/pcma"),
        AudioFormat("audio/pcm", 24000),
        "session.audio.input.format",
    ),
    (
        "output_format",
        AudioFormat("audio/pcma"),
        AudioFormat("audio/pcm", 24000),
        "session.audio.output.format",
    ),
    (
        "transcription",
        Transcription(model="gpt-4o-transcribe"),
        Transcription(model="gpt-4o-mini-transcribe"),
        "session.audio.input.transcription.model",
    ),
    (
        "turn_detection",
        TurnDetection("semantic_vad", eagerness="low"),
        TurnDetection("semantic_vad", eagerness="low"),
        None,
    ),
]


@pytest.mark.parametrize(("field", "requested", "clamped", "path"), ALLOW_LIST_CASES)
def test_allow_lists_clamp_to_the_first_entry(
    field: str, requested: object, clamped: object, path: str | None
) -> None:
    effective, adjusted = apply_policy(policy(), "reader", realtime(**{field: requested}))

    assert getattr(effective.session, field) == clamped
    assert (path in adjusted) if path else adjusted == []


@pytest.mark.parametrize(("field", "requested", "clamped", "path"), ALLOW_LIST_CASES)
def test_allow_lists_reject_in_reject_mode(
    field: str, requested: object, clamped: object, path: str | None
) -> None:
    if path is None:
        effective, _ = apply_policy(policy("reject"), "reader", realtime(**{field: requested}))
        assert getattr(effective.session, field) == requested
        return
    with pytest.raises(PolicyViolation) as caught:
        apply_policy(policy("reject"), "reader", realtime(**{field: requested}))

    assert caught.value.param == path
    assert caught.value.code == "policy_violation"


def test_a_missing_value_takes_the_first_entry_without_being_listed() -> None:
    effective, adjusted = apply_policy(policy(), "reader", realtime())

    s = effective.session
    assert s.model == "gpt-realtime-mini"
    assert s.voice == "alloy"
    assert s.input_format == AudioFormat("audio/pcm", 24000)
    assert s.turn_detection == TurnDetection("server_vad")
    assert s.temperature == 0.8
    assert s.max_output_tokens == 1024
    assert s.instructions == "You are the Acme assistant."
    assert s.transcription is None  # transcription stays off unless asked for
    assert s.output_modalities is None  # audio allowed: the upstream default stands
    assert effective.ttl_seconds == 60
    assert adjusted == []
    assert "session.temperature" in effective.defaulted


def test_a_custom_voice_is_checked_by_its_id() -> None:
    allowed = policy(voices=["voice_123"])

    kept, adjusted = apply_policy(allowed, "reader", realtime(voice="voice_123", custom_voice=True))
    clamped, adjusted_too = apply_policy(policy(), "reader", realtime(voice="x", custom_voice=True))

    assert (kept.session.voice, kept.session.custom_voice, adjusted) == ("voice_123", True, [])
    assert (clamped.session.voice, clamped.session.custom_voice) == ("alloy", False)
    assert adjusted_too == ["session.audio.output.voice"]


@pytest.mark.parametrize(
    ("allowed", "requested", "effective", "listed"),
    [
        (["text"], ("audio",), ("text",), True),
        (["text"], None, ("text",), False),
        (["audio"], ("text",), ("audio",), True),
        (["audio"], None, None, False),
        (["text", "audio"], ("text",), ("text",), False),
    ],
)
def test_modalities_are_a_set(
    allowed: list[str], requested: tuple[str, ...] | None, effective: object, listed: bool
) -> None:
    result, adjusted = apply_policy(
        policy(modalities=allowed), "reader", realtime(output_modalities=requested)
    )

    assert result.session.output_modalities == effective
    assert ("session.output_modalities" in adjusted) is listed


def test_a_transcription_session_gets_the_first_transcription_model() -> None:
    request = MintRequest(kind="transcription", session=Session(), ttl_seconds=None)

    effective, adjusted = apply_policy(policy(), "reader", request)

    assert effective.session.transcription == Transcription(model="gpt-4o-mini-transcribe")
    assert effective.session.model is None  # realtime rules do not touch transcription
    assert adjusted == []


# ---------------------------------------------------------------------------------------
# Ranges


@pytest.mark.parametrize(
    ("rule", "requested", "effective", "listed"),
    [
        ({"min": 0.6, "max": 1.0}, 1.1, 1.0, True),
        ({"min": 0.7, "max": 1.0}, 0.6, 0.7, True),
        ({"min": 0.6, "max": 1.0}, 0.9, 0.9, False),
        (None, 0.3, 0.6, True),  # the [0.6, 1.2] bound holds without a role range
        (None, 1.5, 1.2, True),
        (None, 0.6, 0.6, False),
        (None, 1.2, 1.2, False),
        ({"max": 1.2}, 2.0, 1.2, True),
    ],
)
def test_temperature_is_clamped_into_the_role_range_and_0_6_to_1_2(
    rule: dict[str, float] | None, requested: float, effective: float, listed: bool
) -> None:
    result, adjusted = apply_policy(
        policy(temperature=rule), "reader", realtime(temperature=requested)
    )

    assert result.session.temperature == effective
    assert ("session.temperature" in adjusted) is listed


@pytest.mark.parametrize(
    ("fields", "read", "expected", "path"),
    [
        ({"speed": 1.5}, lambda s: s.speed, 1.2, "session.audio.output.speed"),
        ({"speed": 0.25}, lambda s: s.speed, 0.8, "session.audio.output.speed"),
        (
            {"max_output_tokens": "inf"},
            lambda s: s.max_output_tokens,
            1024,
            "session.max_output_tokens",
        ),
        (
            {"max_output_tokens": 4096},
            lambda s: s.max_output_tokens,
            1024,
            "session.max_output_tokens",
        ),
        (
            {"turn_detection": TurnDetection("server_vad", silence_duration_ms=100)},
            lambda s: s.turn_detection.silence_duration_ms,
            300,
            "session.audio.input.turn_detection.silence_duration_ms",
        ),
        (
            {"turn_detection": TurnDetection("server_vad", silence_duration_ms=5000)},
            lambda s: s.turn_detection.silence_duration_ms,
            1500,
            "session.audio.input.turn_detection.silence_duration_ms",
        ),
        (
            {"turn_detection": TurnDetection("server_vad", prefix_padding_ms=900)},
            lambda s: s.turn_detection.prefix_padding_ms,
            500,
            "session.audio.input.turn_detection.prefix_padding_ms",
        ),
        (
            {"turn_detection": TurnDetection("server_vad", threshold=0.9)},
            lambda s: s.turn_detection.threshold,
            0.7,
            "session.audio.input.turn_detection.threshold",
        ),
    ],
)
def test_ranges_are_always_clamped_even_in_reject_mode(
    fields: dict[str, Any], read: Any, expected: object, path: str
) -> None:
    effective, adjusted = apply_policy(policy("reject"), "reader", realtime(**fields))

    assert read(effective.session) == expected
    assert adjusted == [path]


def test_values_inside_the_ranges_are_kept_and_not_listed() -> None:
    request = realtime(
        speed=1.0,
        max_output_tokens=100,
        turn_detection=TurnDetection("server_vad", silence_duration_ms=500, threshold=0.5),
    )

    effective, adjusted = apply_policy(policy(), "reader", request)

    assert (effective.session.speed, effective.session.max_output_tokens) == (1.0, 100)
    assert effective.session.turn_detection == request.session.turn_detection
    assert adjusted == []


def test_a_vad_type_outside_the_list_is_replaced_with_its_own_fields_dropped() -> None:
    strict = policy(turn_detection={"types": ["semantic_vad"]})
    request = realtime(
        turn_detection=TurnDetection("server_vad", threshold=0.9, create_response=False)
    )

    effective, adjusted = apply_policy(strict, "reader", request)

    assert effective.session.turn_detection == TurnDetection("semantic_vad", create_response=False)
    assert adjusted == ["session.audio.input.turn_detection.type"]


def test_turn_detection_off_is_kept() -> None:
    effective, adjusted = apply_policy(policy(), "reader", realtime(turn_detection="off"))

    assert effective.session.turn_detection == "off"
    assert adjusted == []


# ---------------------------------------------------------------------------------------
# Instructions, tools, TTL


@pytest.mark.parametrize(
    ("mode", "client", "effective", "listed"),
    [
        ("server", "Be rude.", "Policy text.", True),
        ("server", None, "Policy text.", False),
        ("server", "Policy text.", "Policy text.", False),
        ("prefix", "Be brief.", "Policy text.\n\nBe brief.", True),
        ("prefix", None, "Policy text.", False),
        ("client", "Be brief.", "Be brief.", False),
        ("client", None, "Policy text.", False),
    ],
)
def test_instruction_modes(mode: str, client: str | None, effective: str, listed: bool) -> None:
    rules = policy(instructions={"mode": mode, "text": "Policy text.", "max_chars": 100})

    result, adjusted = apply_policy(rules, "reader", realtime(instructions=client))

    assert result.session.instructions == effective
    assert ("session.instructions" in adjusted) is listed


PROMPT = {"id": "pmpt_123", "version": "2"}


@pytest.mark.parametrize("mode", ["server", "prefix", "client"])
def test_a_prompt_reference_is_dropped_only_under_server_instructions(mode: str) -> None:
    # A stored prompt brings instructions of its own: "server" means the policy's alone.
    rules = policy(instructions={"mode": mode, "text": "Policy text."})

    result, adjusted = apply_policy(rules, "reader", realtime(prompt=PROMPT))

    assert result.session.prompt == (None if mode == "server" else PROMPT)
    assert ("session.prompt" in adjusted) is (mode == "server")


def test_a_prompt_reference_under_server_instructions_is_refused_in_reject_mode() -> None:
    rules = policy("reject", instructions={"mode": "server", "text": "Policy text."})

    with pytest.raises(PolicyViolation) as caught:
        apply_policy(rules, "reader", realtime(prompt=PROMPT))

    assert caught.value.param == "session.prompt"


@pytest.mark.parametrize("mode", ["prefix", "client"])
@pytest.mark.parametrize("on_violation", ["clamp", "reject"])
def test_instructions_longer_than_max_chars_are_a_400(mode: str, on_violation: str) -> None:
    rules = policy(on_violation, instructions={"mode": mode, "text": "T.", "max_chars": 10})

    with pytest.raises(InvalidValue) as caught:
        apply_policy(rules, "reader", realtime(instructions="x" * 11))

    assert caught.value.param == "session.instructions"
    assert caught.value.status == 400


def test_instructions_at_max_chars_pass() -> None:
    rules = policy(instructions={"mode": "client", "max_chars": 10})

    effective, _ = apply_policy(rules, "reader", realtime(instructions="x" * 10))

    assert effective.session.instructions == "x" * 10


def test_tools_outside_the_allow_list_are_dropped() -> None:
    tools = (
        FunctionTool("lookup_order"),
        FunctionTool("delete_account"),
        McpTool("crm"),
        McpTool("shell"),
    )

    effective, adjusted = apply_policy(policy(), "reader", realtime(tools=tools))

    assert effective.session.tools == (FunctionTool("lookup_order"), McpTool("crm"))
    assert adjusted == ["session.tools"]


@pytest.mark.parametrize(
    ("tools", "param"),
    [
        ((FunctionTool("lookup_order"), FunctionTool("delete_account")), "session.tools[1].name"),
        ((McpTool("shell"),), "session.tools[0].server_label"),
    ],
)
def test_tools_outside_the_allow_list_are_rejected(tools: tuple[Any, ...], param: str) -> None:
    with pytest.raises(PolicyViolation) as caught:
        apply_policy(policy("reject"), "reader", realtime(tools=tools))

    assert caught.value.param == param


def test_a_forced_tool_outside_the_list_becomes_auto() -> None:
    request = realtime(tool_choice=ToolChoice("function", name="delete_account"))

    effective, adjusted = apply_policy(policy(), "reader", request)

    assert effective.session.tool_choice == "auto"
    assert adjusted == ["session.tool_choice"]


def test_an_empty_tool_allow_list_allows_no_tool() -> None:
    request = realtime(tools=(FunctionTool("lookup_order"),), tool_choice="required")

    effective, adjusted = apply_policy(policy(tools={"allow": []}), "reader", request)

    assert effective.session.tools == ()
    assert effective.session.tool_choice == "auto"
    assert adjusted == ["session.tools", "session.tool_choice"]


@pytest.mark.parametrize(
    ("requested", "effective", "listed"),
    [(None, 60, False), (10, 10, False), (300, 300, False), (301, 300, True), (7200, 300, True)],
)
def test_ttl_is_clamped_to_the_role_max(
    requested: int | None, effective: int, listed: bool
) -> None:
    request = MintRequest(kind="realtime", session=Session(), ttl_seconds=requested)

    result, adjusted = apply_policy(policy(), "reader", request)

    assert result.ttl_seconds == effective
    assert ("expires_after.seconds" in adjusted) is listed


def test_an_unknown_role_gets_the_default_roles_rules() -> None:
    effective, adjusted = apply_policy(policy(), "guest", realtime(model="gpt-realtime-2"))

    assert effective.session.model == "gpt-realtime-mini"
    assert adjusted == ["session.model"]


def test_the_default_policy_changes_nothing_but_the_ttl() -> None:
    request = decode_request(
        "client_secrets",
        {"session": {"type": "realtime", "model": "gpt-realtime", "instructions": "Hi."}},
    )

    effective, adjusted = apply_policy(default_policy(), "reader", request)

    assert effective.session == request.session
    assert (effective.ttl_seconds, adjusted) == (60, [])


def test_a_beta_clients_violation_names_the_param_in_its_own_shape() -> None:
    request = decode_request("sessions", {"voice": "marin", "max_response_output_tokens": "inf"})

    with pytest.raises(PolicyViolation) as caught:
        apply_policy(policy("reject"), "reader", request)

    assert caught.value.param == "voice"
    assert "'voice'" in caught.value.message


# ---------------------------------------------------------------------------------------
# reasoning_efforts


@pytest.mark.parametrize(
    ("model", "asked", "effort", "listed"),
    [
        ("gpt-realtime-2", {"effort": "xhigh"}, "low", True),
        ("gpt-realtime-2", {"effort": "minimal"}, "minimal", False),
        # Nothing asked: the first entry, for a model that reasons, unlisted.
        ("gpt-realtime-2.1-mini", None, "low", False),
        ("gpt-realtime-2", {}, "low", False),
        # A model that does not reason gets no effort it did not ask for...
        ("gpt-realtime", None, None, False),
        # ...but one it asks for is held to the list like any other.
        ("gpt-realtime", {"effort": "high"}, "low", True),
    ],
)
def test_reasoning_effort_is_clamped_and_defaulted_for_reasoning_models(
    model: str, asked: dict[str, str] | None, effort: str | None, listed: bool
) -> None:
    rules = policy(models=None, reasoning_efforts=["low", "minimal"])

    effective, adjusted = apply_policy(rules, "reader", realtime(model=model, reasoning=asked))

    reasoning = effective.session.reasoning
    assert (reasoning or {}).get("effort") == effort
    assert ("session.reasoning.effort" in adjusted) is listed


def test_reasoning_effort_outside_the_list_is_refused_under_reject() -> None:
    request = decode_request(
        "client_secrets",
        {"session": {"type": "realtime", "model": "gpt-realtime-2",
                     "reasoning": {"effort": "xhigh"}}},
    )  # fmt: skip

    with pytest.raises(PolicyViolation) as caught:
        apply_policy(policy("reject", models=None, reasoning_efforts=["low"]), "reader", request)

    assert caught.value.param == "session.reasoning.effort"
    assert "Allowed: low." in caught.value.message


def test_the_role_default_model_decides_whether_an_effort_is_filled() -> None:
    rules = policy(models=["gpt-realtime-2", "gpt-realtime"], reasoning_efforts=["minimal"])

    effective, adjusted = apply_policy(rules, "reader", realtime())

    assert effective.session.model == "gpt-realtime-2"
    assert effective.session.reasoning == {"effort": "minimal"}
    assert adjusted == []
    assert "session.reasoning.effort" in effective.defaulted


def test_without_reasoning_efforts_any_effort_passes() -> None:
    asked = realtime(model="gpt-realtime-2", reasoning={"effort": "xhigh"})

    effective, adjusted = apply_policy(policy(models=None), "reader", asked)

    assert effective.session.reasoning == {"effort": "xhigh"}
    assert adjusted == []


def test_a_beta_upstream_drops_only_the_clients_reasoning() -> None:
    from service.session.codec import encode_upstream_request

    rules = policy(models=None, reasoning_efforts=["low"])
    filled, _ = apply_policy(rules, "reader", realtime(model="gpt-realtime-2"))
    asked, _ = apply_policy(
        rules, "reader", realtime(model="gpt-realtime-2", reasoning={"effort": "low"})
    )

    assert encode_upstream_request(filled, "beta")[2] == []
    assert encode_upstream_request(asked, "beta")[2] == ["session.reasoning"]
