"""`reasoning.effort` held to the role for a call's whole life, through the real app and
the in-process fake upstream with its sideband: clamped (or refused under `reject`) when
the call is placed, reverted on the sideband when the browser's data channel changes it,
and clamped by the relay before it reaches the call."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from service.auth.tokens import sign_dev_token
from service.config.settings import load_settings
from service.dev import create_dev_app
from service.fake.calls import FakeCalls
from service.policy.model import DEFAULT_CLIENT_EVENTS
from tests.eventually import eventually_sync

SECRET = "test-secret-0123456789-abcdefghijklmnop"
AUDIO = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
REASONING = {
    "models": ["gpt-realtime-2", "gpt-realtime-2.1-mini"],
    "reasoning_efforts": ["low", "minimal"],
    "limits": ["100/minute"],
}
ROLES = {
    "reader": REASONING,
    "relayed": {
        **REASONING,
        "client_channel": "relay",
        "client_events": [*DEFAULT_CLIENT_EVENTS, "session.update"],
    },
}


class Calls:
    def __init__(self, client: TestClient) -> None:
        self.client = client
        app: Any = client.app
        self.fake: FakeCalls = app.state.fake_calls["default"]

    def token(self, role: str = "reader") -> str:
        return sign_dev_token(SECRET, sub=f"{role}-user", role=role, now=time.time())

    def place(self, session: dict[str, Any] | None = None, role: str = "reader") -> Any:
        headers = {"Authorization": f"Bearer {self.token(role)}"}
        if session is None:
            return self.client.post(
                "/v1/realtime/calls",
                content=AUDIO,
                headers={**headers, "Content-Type": "application/sdp"},
            )
        files = {
            "sdp": (None, AUDIO.encode(), "application/sdp"),
            "session": (None, json.dumps(session).encode(), "application/json"),
        }
        return self.client.post("/v1/realtime/calls", files=files, headers=headers)

    def placed(self, session: dict[str, Any] | None = None, role: str = "reader") -> str:
        response = self.place(session, role)
        assert response.status_code == 201, response.text
        call_id: str = response.headers["location"].rsplit("/", 1)[1]
        eventually_sync(
            lambda: call_id in self.fake.calls and bool(self.fake.calls[call_id].lines),
            seconds=3,
            what="the broker's sideband on the call",
        )
        return call_id

    def effort(self, call_id: str) -> object:
        return self.fake.calls[call_id].session.get("reasoning", {}).get("effort")


def app_client(on_violation: str = "clamp") -> TestClient:
    policy = {"default_role": "reader", "on_violation": on_violation, "roles": ROLES}
    settings = load_settings(
        {
            "BROKER_UPSTREAM": "fake",
            "BROKER_JWT_SECRET": SECRET,
            "BROKER_POLICY": json.dumps(policy),
        }
    )
    return TestClient(create_dev_app(settings))


@pytest.fixture
def calls() -> Iterator[Calls]:
    with app_client() as client:
        yield Calls(client)


def test_an_effort_outside_the_role_is_clamped_when_the_call_is_placed(calls: Calls) -> None:
    response = calls.place(
        {"type": "realtime", "model": "gpt-realtime-2", "reasoning": {"effort": "xhigh"}}
    )

    assert response.status_code == 201, response.text
    assert "session.reasoning.effort" in response.headers["x-policy-adjusted"].split(",")
    call_id = response.headers["location"].rsplit("/", 1)[1]
    assert calls.effort(call_id) == "low"


def test_a_call_placed_with_nothing_asked_runs_with_the_roles_first_effort(
    calls: Calls,
) -> None:
    call_id = calls.placed()

    assert calls.fake.calls[call_id].session["model"] == "gpt-realtime-2"
    assert calls.effort(call_id) == "low"


def test_under_reject_a_call_with_another_effort_is_refused_before_upstream() -> None:
    with app_client("reject") as client:
        refused = Calls(client).place(
            {"type": "realtime", "model": "gpt-realtime-2", "reasoning": {"effort": "high"}}
        )
        placed_upstream = dict(Calls(client).fake.calls)

    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "session.reasoning.effort"
    assert placed_upstream == {}


def test_the_browser_changing_the_effort_is_reverted_on_the_sideband(calls: Calls) -> None:
    call_id = calls.placed({"type": "realtime", "reasoning": {"effort": "minimal"}})
    override = {"type": "session.update", "session": {"reasoning": {"effort": "xhigh"}}}

    # What the browser's data channel would do at OpenAI.
    calls.client.portal.call(calls.fake.receive, call_id, override)  # type: ignore[union-attr]

    eventually_sync(
        lambda: calls.effort(call_id) == "minimal",
        seconds=3,
        what="the effort reverted to the one the call was placed with",
    )
    reverts = [e for e in calls.fake.sideband_events if e.get("type") == "session.update"]
    assert reverts[-1]["session"]["reasoning"] == {"effort": "minimal"}


def test_the_relay_clamps_an_effort_before_it_reaches_the_call(calls: Calls) -> None:
    call_id = calls.placed(role="relayed")
    update = {
        "type": "session.update",
        "event_id": "evt_1",
        "session": {"type": "realtime", "reasoning": {"effort": "xhigh"}},
    }

    with calls.client.websocket_connect(
        f"/v1/realtime?call_id={call_id}",
        subprotocols=["realtime", f"openai-insecure-api-key.{calls.token('relayed')}"],
    ) as ws:
        ws.send_json(update)
        for _ in range(50):
            event = ws.receive_json()
            if event.get("type") == "session.updated":
                break
        else:
            raise AssertionError("no session.updated on the relay")

    assert event["session"]["reasoning"] == {"effort": "low"}
    [sent] = [e for e in calls.fake.sideband_events if e.get("type") == "session.update"]
    assert sent["session"]["reasoning"] == {"effort": "low"}
