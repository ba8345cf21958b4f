"""The policy applied to a GPT-Live session request (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from service.errors import InvalidValue, PolicyViolation, UnknownParameter
from service.live.request import (
    LIVE_CLIENT_EVENTS,
    SESSION_REWRITES,
    apply_live_policy,
    parse_live_request,
)
from service.policy.parse import parse_policy
from tests.calls.conftest import OFFER


def policy(role: dict[str, Any], on_violation: str = "clamp") -> Any:
    return parse_policy({"default_role": "r", "on_violation": on_violation, "roles": {"r": role}})


def apply(
    session: dict[str, Any], role: dict[str, Any], on_violation: str = "clamp"
) -> tuple[dict[str, Any], list[str]]:
    return apply_live_policy(policy(role, on_violation), "r", session)


def test_parse_takes_openais_create_shape() -> None:
    request = parse_live_request(
        {"session": {"model": "gpt-live-1"}, "transport": {"type": "webrtc", "sdp": OFFER}}
    )
    assert request.session == {"model": "gpt-live-1"}
    assert request.sdp == OFFER
    with pytest.raises(UnknownParameter):
        parse_live_request({"session": {}, "transport": {"type": "webrtc", "sdp": OFFER, "x": 1}})
    with pytest.raises(InvalidValue) as bad:
        parse_live_request({"session": [], "transport": {"type": "webrtc", "sdp": OFFER}})
    assert bad.value.param == "session"


def test_an_open_role_passes_the_session_and_still_sends_the_allow_lists() -> None:
    asked = {
        "model": "gpt-live-1",
        "instructions": "Be brief.",
        "audio": {"output": {"voice": {"id": "voice_123"}}},
        "input": [
            {
                "type": "message",
                "role": "developer",
                "content": [{"type": "input_text", "text": "x"}],
            }
        ],
        "store": True,
        "delegation": {"type": "client"},
    }
    session, adjusted = apply(asked, {})
    assert adjusted == []
    assert {k: v for k, v in session.items() if k != "client"} == asked
    channel = session["client"]["data_channel"]
    # Left out, upstream would allow every event: the broker always says which.
    assert channel["allowed_server_events"] == "all"
    assert set(channel["allowed_client_events"]) <= LIVE_CLIENT_EVENTS - SESSION_REWRITES
    assert channel["allowed_client_events"] == ["response.create", "response.cancel"]


@pytest.mark.parametrize("asked", [None, "all", ["session.update", "session.instructions.append"]])
def test_the_browser_never_gets_an_event_that_rewrites_the_session(asked: object) -> None:
    role = {"client_events": sorted(LIVE_CLIENT_EVENTS)}
    channel = {} if asked is None else {"allowed_client_events": asked}
    session, _ = apply({"model": "gpt-live-1", "client": {"data_channel": channel}}, role)
    allowed = session["client"]["data_channel"]["allowed_client_events"]
    assert not set(allowed) & SESSION_REWRITES
    if asked is not None and asked != "all":
        assert allowed == []


def test_client_events_are_the_roles_intersected_with_the_request() -> None:
    role = {"client_events": ["response.create", "session.close", "session.input_audio.mute"]}
    asked = {"allowed_client_events": ["session.close", "response.cancel", "session.close"]}
    for mode in ("clamp", "reject"):
        session, adjusted = apply(
            {"model": "gpt-live-1", "client": {"data_channel": asked}}, role, mode
        )
        assert session["client"]["data_channel"]["allowed_client_events"] == ["session.close"]
        assert adjusted == ["session.client.data_channel.allowed_client_events"]


def test_server_events_within_the_roles() -> None:
    role = {"server_events": ["session.started", "response.event", "error"]}
    session, _ = apply({"model": "gpt-live-1"}, role)
    assert session["client"]["data_channel"]["allowed_server_events"] == [
        {"type": "session.started"},
        {"type": "error"},
    ]
    asked = {
        "allowed_server_events": [
            "error",
            {"type": "response.event", "response_event": "response.output_text.delta"},
            "session.usage.updated",
        ]
    }
    session, adjusted = apply({"model": "gpt-live-1", "client": {"data_channel": asked}}, role)
    assert session["client"]["data_channel"]["allowed_server_events"] == [
        {"type": "error"},
        {"type": "response.event", "response_event": "response.output_text.delta"},
    ]
    assert adjusted == ["session.client.data_channel.allowed_server_events"]
    with pytest.raises(InvalidValue):
        apply(
            {
                "model": "gpt-live-1",
                "client": {"data_channel": {"allowed_server_events": ["response.event"]}},
            },
            role,
        )


def test_models_are_the_roles_gpt_live_ones() -> None:
    role = {"models": ["gpt-realtime", "gpt-live-1", "gpt-live-mini"]}
    assert apply({}, role)[0]["model"] == "gpt-live-1"
    assert apply({"model": "gpt-live-mini"}, role)[0]["model"] == "gpt-live-mini"
    clamped, adjusted = apply({"model": "gpt-realtime"}, role)
    assert (clamped["model"], adjusted) == ("gpt-live-1", ["session.model"])
    with pytest.raises(PolicyViolation) as refused:
        apply({"model": "gpt-realtime"}, role, "reject")
    assert refused.value.param == "session.model"
    with pytest.raises(PolicyViolation):
        apply({"model": "gpt-live-1"}, {"models": ["gpt-realtime"]})
    with pytest.raises(InvalidValue):
        apply({}, {})  # no model and no policy to choose one


def test_voices_by_name_or_custom_id() -> None:
    role = {"voices": ["marin", "voice_123"]}
    assert apply({"model": "m"}, role)[0]["audio"] == {"output": {"voice": "marin"}}
    custom = {"model": "m", "audio": {"output": {"voice": {"id": "voice_123"}}}}
    assert apply(custom, role)[0]["audio"]["output"]["voice"] == {"id": "voice_123"}
    other = {"model": "m", "audio": {"output": {"voice": {"id": "voice_999"}}}}
    assert apply(other, role) == (
        {**apply({"model": "m"}, role)[0]},
        ["session.audio.output.voice"],
    )
    with pytest.raises(PolicyViolation):
        apply(other, role, "reject")


def test_instructions_modes_and_their_other_doors() -> None:
    server = {"instructions": {"mode": "server", "text": "Policy."}}
    developer = {
        "type": "message",
        "role": "developer",
        "content": [{"type": "input_text", "text": "x"}],
    }
    user = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}
    backend = {"type": "responses", "responses": {"model": "gpt-5", "instructions": "Do anything."}}
    asked = {
        "model": "m",
        "instructions": "Mine.",
        "input": [developer, user],
        "delegation": backend,
    }
    session, adjusted = apply(asked, server)
    assert session["instructions"] == "Policy."
    assert session["input"] == [user]
    assert "instructions" not in session["delegation"]["responses"]
    assert adjusted == [
        "session.instructions",
        "session.input",
        "session.delegation.responses.instructions",
    ]
    with pytest.raises(PolicyViolation):
        apply({"model": "m", "input": [developer]}, server, "reject")
    prefix = {"instructions": {"mode": "prefix", "text": "Policy."}}
    session, _ = apply(asked, prefix)
    assert session["instructions"] == "Policy.\n\nMine."
    assert session["input"] == [developer, user]
    assert apply({"model": "m"}, server)[0]["instructions"] == "Policy."
    limited = {"instructions": {"mode": "client", "max_chars": 3}}
    with pytest.raises(InvalidValue):
        apply({"model": "m", "instructions": "Too long."}, limited)


def test_a_delegated_backends_tools_and_tokens_are_within_the_role() -> None:
    role = {"tools": {"allow": ["lookup_order"]}, "max_output_tokens": 500}
    backend = {
        "model": "gpt-5",
        "max_output_tokens": 4000,
        "tools": [
            {"type": "function", "name": "lookup_order"},
            {"type": "function", "name": "refund"},
            {"type": "web_search"},
        ],
    }
    session, adjusted = apply(
        {"model": "m", "delegation": {"type": "responses", "responses": backend}}, role
    )
    responses = session["delegation"]["responses"]
    assert responses["tools"] == [{"type": "function", "name": "lookup_order"}]
    assert responses["max_output_tokens"] == 500
    assert "session.delegation.responses.max_output_tokens" in adjusted
    assert backend["max_output_tokens"] == 4000  # the request is not changed in place
    with pytest.raises(PolicyViolation):
        apply(
            {"model": "m", "delegation": {"type": "responses", "responses": backend}},
            role,
            "reject",
        )


@pytest.mark.parametrize(
    ("session", "param"),
    [
        ({"model": "m", "temperature": 1}, "session.temperature"),
        ({"model": "m", "audio": {"input": {}}}, "session.audio.input"),
        ({"model": "m", "audio": {"output": {"speed": 1}}}, "session.audio.output.speed"),
        ({"model": "m", "client": {"data_channel": {"x": 1}}}, "session.client.data_channel.x"),
    ],
)
def test_unknown_fields_are_refused_as_openai_would(session: dict[str, Any], param: str) -> None:
    with pytest.raises(UnknownParameter) as refused:
        apply(session, {})
    assert refused.value.param == param


def delegated(reasoning: object) -> dict[str, Any]:
    backend: dict[str, Any] = {"model": "gpt-5"}
    if reasoning is not None:
        backend["reasoning"] = reasoning
    return {"model": "m", "delegation": {"type": "responses", "responses": backend}}


@pytest.mark.parametrize(
    ("reasoning", "expected", "listed"),
    [
        ({"effort": "high", "summary": "auto"}, {"effort": "low", "summary": "auto"}, True),
        ({"effort": "minimal"}, {"effort": "minimal"}, False),
        ({"summary": "auto"}, {"summary": "auto", "effort": "low"}, False),
        # No reasoning asked: the backend's model may not reason; nothing is added.
        (None, None, False),
    ],
)
def test_a_delegated_backends_reasoning_effort_is_within_the_role(
    reasoning: object, expected: object, listed: bool
) -> None:
    role = {"reasoning_efforts": ["low", "minimal"]}

    session, adjusted = apply(delegated(reasoning), role)

    assert session["delegation"]["responses"].get("reasoning") == expected
    assert ("session.delegation.responses.reasoning.effort" in adjusted) is listed


def test_a_delegated_effort_outside_the_role_is_refused_under_reject() -> None:
    with pytest.raises(PolicyViolation) as caught:
        apply(delegated({"effort": "xhigh"}), {"reasoning_efforts": ["low"]}, "reject")

    assert caught.value.param == "session.delegation.responses.reasoning.effort"
    with pytest.raises(InvalidValue):
        apply(delegated("high"), {"reasoning_efforts": ["low"]})
    # Without reasoning_efforts the backend's reasoning is the client's.
    session, _ = apply(delegated({"effort": "xhigh"}), {})
    assert session["delegation"]["responses"]["reasoning"] == {"effort": "xhigh"}
