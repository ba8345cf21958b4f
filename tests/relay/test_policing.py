"""The relay's policing (pure) of what OpenAI added: `reasoning.effort` in `session.update`
and in `response.create` held to the role's `reasoning_efforts` (clamped, or refused under
`reject`), and the newer server events passed by the default `server_events`."""

from __future__ import annotations

from typing import Any

import pytest

from service.policy.model import DEFAULT_CLIENT_EVENTS
from service.policy.parse import parse_policy
from service.relay.policing import RelayPolicy

ROLE = {
    "client_channel": "relay",
    "models": ["gpt-realtime-2", "gpt-realtime-2.1-mini"],
    "reasoning_efforts": ["low", "minimal"],
    "client_events": [*DEFAULT_CLIENT_EVENTS, "session.update"],
}


def relay_policy(on_violation: str = "clamp", **role: Any) -> RelayPolicy:
    data = {"default_role": "reader", "on_violation": on_violation,
            "roles": {"reader": {**ROLE, **role}}}  # fmt: skip
    return RelayPolicy(parse_policy(data), "reader")


def update(**session: Any) -> dict[str, Any]:
    return {"type": "session.update", "event_id": "evt_1", "session": session}


@pytest.mark.parametrize(
    ("asked", "effort"),
    [({"effort": "xhigh"}, "low"), ({"effort": "minimal"}, "minimal"), (None, "low")],
)
def test_a_session_update_gets_an_allowed_effort(asked: Any, effort: str) -> None:
    session: dict[str, Any] = {"type": "realtime", "model": "gpt-realtime-2"}
    if asked is not None:
        session["reasoning"] = asked

    policed = relay_policy().police(update(**session))

    assert policed.error is None
    assert policed.event is not None
    assert policed.event["session"]["reasoning"] == {"effort": effort}


def test_under_reject_an_effort_outside_the_role_is_refused() -> None:
    policed = relay_policy("reject").police(
        update(type="realtime", model="gpt-realtime-2", reasoning={"effort": "high"})
    )

    assert policed.event is None
    assert policed.error is not None
    error = policed.error["error"]
    assert (error["code"], error["param"], error["event_id"]) == (
        "policy_violation",
        "session.reasoning.effort",
        "evt_1",
    )


def test_a_per_response_effort_is_policed_and_nothing_else_added() -> None:
    create = {
        "type": "response.create",
        "response": {"reasoning": {"effort": "xhigh"}, "conversation": "none"},
    }

    policed = relay_policy().police(create)

    assert policed.event == {
        "type": "response.create",
        "response": {"reasoning": {"effort": "low"}, "conversation": "none"},
    }
    refused = relay_policy("reject").police(create)
    assert refused.error is not None
    assert refused.error["error"]["param"] == "session.reasoning.effort"


def test_without_reasoning_efforts_the_clients_effort_passes() -> None:
    rules = relay_policy(reasoning_efforts=None)

    policed = rules.police(update(model="gpt-realtime-2", reasoning={"effort": "xhigh"}))

    assert policed.event is not None
    assert policed.event["session"]["reasoning"] == {"effort": "xhigh"}


@pytest.mark.parametrize(
    "kind",
    [
        "input_audio_buffer.dtmf_event_received",
        "input_audio_buffer.timeout_triggered",
        "response.done",
        "session.updated",
    ],
)
def test_the_default_server_events_pass_the_newer_events(kind: str) -> None:
    assert relay_policy().server_event_allowed(kind)
    listed = relay_policy(server_events=["response.done"])
    assert listed.server_event_allowed(kind) is (kind == "response.done")
