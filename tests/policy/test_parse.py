from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from service.limits import parse_limit
from service.policy.parse import PolicyError, default_policy, parse_policy
from tests.policy.policies import DESIGN_POLICY


def test_parse_policy_reads_every_key() -> None:
    parsed = parse_policy(DESIGN_POLICY)

    rules = parsed.roles["reader"]
    assert parsed.default_role == "reader"
    assert parsed.tenant_limits == (parse_limit("600/minute"),)
    assert rules.models == ("gpt-realtime-mini", "gpt-realtime")
    assert rules.audio_formats == ("audio/pcm", "audio/pcmu")
    assert rules.temperature is not None
    assert rules.temperature.default == 0.8
    assert rules.turn_detection is not None
    assert rules.turn_detection.types == ("server_vad", "semantic_vad")
    assert rules.turn_detection.threshold is not None
    assert rules.turn_detection.threshold.max == 0.7
    assert rules.instructions.mode == "prefix"
    assert rules.tools_allow == ("lookup_order", "crm")
    assert (rules.ttl_seconds.default, rules.ttl_seconds.max) == (60, 300)
    assert rules.limits == (parse_limit("5/minute"), parse_limit("200/day"))
    assert (rules.max_concurrent_calls, rules.max_call_seconds) == (2, 600)
    assert parsed.roles["owner"].models is None


def test_default_policy_allows_everything_with_the_documented_limits() -> None:
    built_in = default_policy()

    assert built_in.default_role == "reader"
    assert set(built_in.roles) == {"owner", "reader"}
    for rules in built_in.roles.values():
        assert (rules.models, rules.voices, rules.tools_allow) == (None, None, None)
        assert (rules.ttl_seconds.default, rules.ttl_seconds.max) == (60, 600)
        assert [limit.text for limit in rules.limits] == ["10/minute", "500/day"]


def with_reader(**keys: Any) -> dict[str, Any]:
    data = copy.deepcopy(DESIGN_POLICY)
    data["roles"]["reader"].update(keys)
    return data


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ([], "policy: must be a JSON object"),
        ({**DESIGN_POLICY, "colour": 1}, "colour: unknown key"),
        ({**DESIGN_POLICY, "on_violation": "ignore"}, "on_violation: must be"),
        ({**DESIGN_POLICY, "default_role": "guest"}, "default_role: 'guest' is not one of"),
        ({**DESIGN_POLICY, "tenant_limits": ["5/fortnight"]}, "tenant_limits[0]:"),
        ({**DESIGN_POLICY, "roles": {}}, "roles: must be a non-empty object"),
        (with_reader(colour=1), "roles.reader.colour: unknown key"),
        (with_reader(models=[]), "roles.reader.models: must be a non-empty list"),
        (with_reader(models=["m" * 300]), "roles.reader.models[0]: must be a string"),
        (with_reader(voices=["alloy", "alloy"]), "roles.reader.voices[1]: 'alloy' is listed twice"),
        (with_reader(modalities=["video"]), "roles.reader.modalities[0]: 'video' is not one of"),
        (with_reader(audio_formats=["pcm16"]), "roles.reader.audio_formats[0]: 'pcm16' is not"),
        (with_reader(transcription_models="whisper-1"), "roles.reader.transcription_models:"),
        (with_reader(tools=["lookup_order"]), "roles.reader.tools: must be an object"),
        (with_reader(temperature={"max": 1.5}), "roles.reader.temperature.max: must be ≤ 1.2"),
        (with_reader(temperature={"min": 0.2}), "roles.reader.temperature.min: must be ≥ 0.6"),
        (
            with_reader(temperature={"min": 1.0, "max": 0.8}),
            "roles.reader.temperature.min: must be ≤ max",
        ),
        (
            with_reader(temperature={"max": 0.8, "default": 0.9}),
            "roles.reader.temperature.default: must be ≤ max",
        ),
        (with_reader(temperature={"min": True}), "roles.reader.temperature.min: must be a number"),
        (with_reader(temperature={"step": 1}), "roles.reader.temperature.step: unknown key"),
        (with_reader(speed={"max": 2.0}), "roles.reader.speed.max: must be ≤ 1.5"),
        (with_reader(max_output_tokens=5000), "roles.reader.max_output_tokens: must be an integer"),
        (
            with_reader(max_output_tokens="inf"),
            "roles.reader.max_output_tokens: must be an integer",
        ),
        (
            with_reader(turn_detection={"types": ["push_to_talk"]}),
            "roles.reader.turn_detection.types[0]:",
        ),
        (
            with_reader(turn_detection={"threshold": {"max": 2}}),
            "roles.reader.turn_detection.threshold.max: must be ≤ 1",
        ),
        (
            with_reader(turn_detection={"eagerness": "low"}),
            "roles.reader.turn_detection.eagerness: unknown key",
        ),
        (with_reader(instructions={"mode": "append"}), "roles.reader.instructions.mode: must be"),
        (
            with_reader(instructions={"mode": "server"}),
            "roles.reader.instructions.text: is required",
        ),
        (with_reader(instructions={"max_chars": 0}), "roles.reader.instructions.max_chars:"),
        (
            with_reader(ttl_seconds={"default": 5}),
            "roles.reader.ttl_seconds.default: must be an integer from 10",
        ),
        (
            with_reader(ttl_seconds={"default": 700, "max": 600}),
            "roles.reader.ttl_seconds.default: must be ≤ max",
        ),
        (with_reader(ttl_seconds={"max": 9000}), "roles.reader.ttl_seconds.max:"),
        (with_reader(limits=["lots"]), "roles.reader.limits[0]:"),
        (with_reader(limits="5/minute"), "roles.reader.limits: must be a list"),
        (
            with_reader(max_concurrent_calls=0),
            "roles.reader.max_concurrent_calls: must be a positive",
        ),
        (with_reader(max_call_seconds=1.5), "roles.reader.max_call_seconds: must be a positive"),
        (with_reader(reasoning_efforts=["none"]), "roles.reader.reasoning_efforts[0]: 'none' is"),
        (with_reader(reasoning_efforts=[]), "roles.reader.reasoning_efforts: must be a non-empty"),
        (with_reader(translation_models=[]), "roles.reader.translation_models: must be a non-"),
        (with_reader(translation_languages=["fr", "fr"]), "roles.reader.translation_languages[1]"),
        (with_reader(mint="no"), "roles.reader.mint: must be true or false"),
        (
            with_reader(client_channel="relay", mint=True),
            'roles.reader.mint: must be false (or left out) when client_channel is "relay"',
        ),
    ],
)
def test_parse_policy_names_the_role_and_key_of_each_problem(data: object, problem: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy(data)

    assert any(p.startswith(problem) for p in caught.value.problems), caught.value.problems


def test_parse_policy_collects_every_problem() -> None:
    data = with_reader(models=[], temperature={"max": 9})
    data["on_violation"] = "maybe"

    with pytest.raises(PolicyError) as caught:
        parse_policy(data)

    assert len(caught.value.problems) == 3
    assert "roles.reader.models" in str(caught.value)


def test_vector_store_limits_are_parsed_per_role() -> None:
    policy = parse_policy(
        {"roles": {"reader": {"limits": ["5/minute"], "vector_store_limits": ["30/minute"]}}}
    )
    rules = policy.rules_for("reader")
    assert [limit.text for limit in rules.vector_store_limits or ()] == ["30/minute"]
    with pytest.raises(PolicyError, match=r"roles\.reader\.vector_store_limits"):
        parse_policy({"roles": {"reader": {"vector_store_limits": ["lots"]}}})


@pytest.mark.parametrize("data", [DESIGN_POLICY, None], ids=["design", "default"])
def test_a_rendered_policy_parses_back_to_itself(data: object) -> None:
    from service.policy.parse import render_policy

    policy = default_policy() if data is None else parse_policy(data)
    rendered = render_policy(policy)

    assert parse_policy(json.loads(json.dumps(rendered))) == policy


def test_every_role_key_renders() -> None:
    from service.policy.parse import _ROLE_KEYS, render_policy

    full = {
        **DESIGN_POLICY["roles"]["reader"],
        "audio_formats": ["audio/pcm"],
        "vector_store_limits": ["3/minute"],
        "max_concurrent_calls": 2,
        "max_call_seconds": 600,
        "daily_token_budget": 1000,
        "daily_minute_budget": 30,
        "daily_usd_budget": 2.5,
        "monthly_usd_budget": 40,
        "on_session_update": "hangup",
        "client_channel": "relay",
        "client_events": ["response.create"],
        "server_events": ["response.done"],
        "reasoning_efforts": ["low", "minimal"],
        "translation_models": ["gpt-realtime-translate"],
        "translation_languages": ["fr", "de"],
        # Rendered because a relay role never mints.
        "mint": False,
    }
    policy = parse_policy({"default_role": "reader", "roles": {"reader": full}})
    rendered = render_policy(policy)["roles"]["reader"]
    assert set(rendered) == set(_ROLE_KEYS)
    assert parse_policy({"default_role": "reader", "roles": {"reader": rendered}}) == policy


def test_the_readme_sample_policy_parses_and_names_every_roles_models() -> None:
    import json
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    sample = readme.split("\n## Policy\n", 1)[1].split("```json\n", 1)[1].split("\n```", 1)[0]

    policy = parse_policy(json.loads(sample))

    for role in ("reader", "owner"):
        assert policy.rules_for(role).models, f"the sample's {role} may use any model"


def test_the_new_role_keys_are_read() -> None:
    rules = parse_policy(
        with_reader(
            reasoning_efforts=["low", "minimal"],
            translation_models=["gpt-realtime-translate"],
            translation_languages=["fr", "de"],
            mint=False,
        )
    ).rules_for("reader")

    assert rules.reasoning_efforts == ("low", "minimal")
    assert rules.translation_models == ("gpt-realtime-translate",)
    assert rules.translation_languages == ("fr", "de")
    assert rules.mint is False


@pytest.mark.parametrize(
    ("keys", "mints"),
    [
        ({}, True),
        ({"mint": True}, True),
        ({"mint": False}, False),
        ({"client_channel": "data_channel", "mint": False}, False),
        # A relay role never mints, said or not.
        ({"client_channel": "relay"}, False),
        ({"client_channel": "relay", "mint": False}, False),
    ],
)
def test_mint_defaults_to_true_except_for_a_relay_role(keys: dict[str, Any], mints: bool) -> None:
    rules = parse_policy(with_reader(**keys)).rules_for("reader")

    assert rules.mint is mints


def test_the_default_policy_names_no_translation_model_nor_effort() -> None:
    for rules in default_policy().roles.values():
        assert rules.mint is True
        assert (rules.translation_models, rules.reasoning_efforts) == (None, None)


@pytest.mark.parametrize("value", [0, -1, "5", True, float("inf")])
def test_a_money_budget_is_a_positive_number_of_usd(value: object) -> None:
    with pytest.raises(PolicyError, match=r"roles\.reader\.daily_usd_budget: must be a positive"):
        parse_policy({"roles": {"reader": {"daily_usd_budget": value}}})


def test_money_budgets_are_parsed_per_role() -> None:
    policy = parse_policy({"roles": {"reader": {"daily_usd_budget": 2, "monthly_usd_budget": 9.5}}})
    rules = policy.rules_for("reader")
    assert (rules.daily_usd_budget, rules.monthly_usd_budget) == (2.0, 9.5)
