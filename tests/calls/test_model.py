"""The pinned-field comparison and the reverting update (pure)."""

from __future__ import annotations

from service.calls.model import (
    CallPolicy,
    Usage,
    drift,
    over_budget,
    pinned_fields,
    revert_event,
    seconds_to_midnight,
    utc_day,
)
from service.policy.model import InstructionsRule, RoleRules

SESSION = {
    "type": "realtime",
    "model": "gpt-realtime-mini",
    "instructions": "Policy.",
    "audio": {"output": {"voice": "alloy"}, "input": {"turn_detection": {"type": "server_vad"}}},
}


def test_defaults_filled_by_upstream_are_not_drift() -> None:
    pinned = pinned_fields(SESSION, RoleRules())
    observed = {
        **SESSION,
        "tracing": None,
        "audio": {
            "output": {"voice": "alloy", "speed": 1.0},
            "input": {"turn_detection": {"type": "server_vad", "threshold": 0.5}},
        },
    }
    assert drift(pinned, observed) == []


def test_changed_controlled_fields_are_named_and_reverted() -> None:
    pinned = pinned_fields(SESSION, RoleRules())
    observed = {**SESSION, "instructions": "evil", "audio": {"output": {"voice": "ash"}}}
    changed = drift(pinned, observed)
    assert changed == ["instructions", "audio.output.voice", "audio.input.turn_detection"]
    assert revert_event(pinned, changed) == {
        "type": "session.update",
        "session": {
            "type": "realtime",
            "instructions": "Policy.",
            "audio": {
                "output": {"voice": "alloy"},
                "input": {"turn_detection": {"type": "server_vad"}},
            },
        },
    }


def test_restricted_tools_are_pinned_even_when_none_were_given() -> None:
    pinned = pinned_fields(SESSION, RoleRules(tools_allow=("lookup_order",)))
    added = {**SESSION, "tools": [{"type": "function", "name": "delete_everything"}]}
    assert drift(pinned, added) == ["tools"]
    assert drift(pinned, SESSION) == []
    assert drift(pinned_fields(SESSION, RoleRules()), added) == []


def test_budgets_and_days() -> None:
    rules = RoleRules(daily_token_budget=100, daily_minute_budget=2)
    assert over_budget(rules, Usage(99, 119.0)) is None
    assert over_budget(rules, Usage(100, 0.0)) == "daily_token_budget"
    assert over_budget(rules, Usage(0, 120.0)) == "daily_minute_budget"
    assert utc_day(86400 * 365) == "1971-01-01"
    assert seconds_to_midnight(86400 * 365 + 86400 - 10) == 10


def test_a_call_policy_keeps_its_instructions_mode_through_the_record() -> None:
    rules = RoleRules(instructions=InstructionsRule(mode="server", text="Policy."))
    policy = CallPolicy.of("reader", rules, SESSION)

    assert policy.instructions_mode == "server"
    assert CallPolicy.from_json(policy.to_json()) == policy
    older = {k: v for k, v in policy.to_json().items() if k != "instructions_mode"}
    assert CallPolicy.from_json(older).instructions_mode == "client"
