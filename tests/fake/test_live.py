"""The fake's GPT-Live sessions, held to tests/schemas/openai-live-subset.yaml: what it
accepts is what the schema accepts, and what it sends validates against it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx2
import jsonschema
import openai
import pytest
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from starlette.testclient import TestClient, WebSocketDenialResponse
from starlette.websockets import WebSocketDisconnect

from service.clock import ManualClock
from service.fake.app import create_fake_app
from service.fake.shapes import RequestShapes
from service.fake.validate import Refusal
from tests.calls.conftest import OFFER
from tests.fake.conftest import FAKE_KEY

SPEC = yaml.safe_load(
    (Path(__file__).parents[1] / "schemas" / "openai-live-subset.yaml").read_text()
)
URI = "urn:openai-live-subset"
REGISTRY: Registry[Any] = Registry().with_resource(
    URI, Resource.from_contents(SPEC, default_specification=DRAFT202012)
)
AUTH = {"Authorization": f"Bearer {FAKE_KEY}"}
SHAPE = RequestShapes.build().live_create


def valid(name: str, instance: Any) -> bool:
    assert name in SPEC["components"]["schemas"], name
    validator = jsonschema.Draft202012Validator(
        {"$ref": f"{URI}#/components/schemas/{name}"}, registry=REGISTRY
    )
    return bool(validator.is_valid(instance))


def check(name: str, instance: Any) -> None:
    assert valid(name, instance), (name, instance)


def body(**session: Any) -> dict[str, Any]:
    return {
        "session": {"model": "gpt-live-1", **session},
        "transport": {"type": "webrtc", "sdp": OFFER},
    }


DEV = {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "x"}]}
BODIES = [
    body(),
    body(instructions="Be brief.", store=True, audio={"output": {"voice": "marin"}}),
    body(audio={"output": {"voice": {"id": "voice_1"}}}),
    body(client={"data_channel": {"allowed_client_events": "all", "allowed_server_events": "all"}}),
    body(client={"data_channel": {"allowed_client_events": [], "allowed_server_events": []}}),
    body(
        client={"data_channel": {"allowed_server_events": ["error", {"type": "session.started"}]}}
    ),
    body(
        client={
            "data_channel": {
                "allowed_server_events": [
                    {"type": "response.event", "response_event": "response.completed"}
                ]
            }
        }
    ),
    body(delegation={"type": "client"}),
    body(
        delegation={
            "type": "responses",
            "responses": {"model": "gpt-5", "tools": [{"type": "web_search"}]},
        }
    ),
    body(input=[DEV]),
    # Refused:
    {"session": {"model": "gpt-live-1"}},
    {"session": {}, "transport": {"type": "webrtc", "sdp": OFFER}},
    body(temperature=1),
    body(audio={"input": {"format": {"type": "audio/pcm"}}}),
    body(audio={"output": {"voice": 3}}),
    body(audio={"output": {"voice": {"name": "x"}}}),
    body(client={"data_channel": {"allowed_client_events": "none"}}),
    body(client={"data_channel": {"allowed_client_events": [3]}}),
    body(client={"data_channel": {"allowed_server_events": ["response.event"]}}),
    body(
        client={
            "data_channel": {"allowed_server_events": [{"type": "error", "response_event": "x"}]}
        }
    ),
    body(client={"data_channel": {"allowed_server_events": [{"type": "response.event"}]}}),
    body(client={"other": {}}),
    body(delegation={"type": "server"}),
    body(delegation={"type": "client", "responses": {"model": "gpt-5"}}),
    body(input=[{**DEV, "role": "system"}]),
    body(input=[{**DEV, "content": []}]),
    body(input=[DEV] * 129),
    body(store="yes"),
    {"session": {"model": "gpt-live-1"}, "transport": {"type": "websocket", "sdp": OFFER}},
    {"session": {"model": "gpt-live-1"}, "transport": {"type": "webrtc", "sdp": ""}},
]


@pytest.mark.parametrize("request_body", BODIES)
def test_the_fake_accepts_what_the_schema_accepts(request_body: dict[str, Any]) -> None:
    try:
        SHAPE(request_body, "")
    except Refusal:
        accepted = False
    else:
        accepted = True
    assert accepted == valid("LiveCreateRequest", request_body)


def test_the_table_is_not_vacuous() -> None:
    verdicts = [valid("LiveCreateRequest", b) for b in BODIES]
    assert verdicts.count(True) == 10
    assert verdicts.count(False) == len(BODIES) - 10


@pytest.fixture
def fake() -> Any:
    app = create_fake_app(clock=ManualClock(1_750_000_000.0), api_key=FAKE_KEY, usage_interval=0.02)
    with TestClient(app) as client:
        yield client, app


def start(http: TestClient, **session: Any) -> str:
    created = http.post("/v1/live/sessions", json=body(**session), headers=AUTH)
    assert created.status_code == 201, created.text
    check("LiveCreateResponse", created.json())
    session_id: str = created.json()["session"]["id"]
    assert session_id.startswith("live_")
    return session_id


def test_create_refuses_in_openais_error_shape(fake: Any) -> None:
    client, _ = fake
    refused = client.post("/v1/live/sessions", json=body(temperature=1), headers=AUTH)
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "session.temperature"
    assert client.post("/v1/live/sessions", json=body()).status_code == 401


def test_the_sideband_closes_the_session_with_its_final_usage(fake: Any) -> None:
    client, app = fake
    session_id = start(client, instructions="Be brief.")
    with client.websocket_connect(f"/v1/live/sessions/{session_id}/attach", headers=AUTH) as ws:
        update = ws.receive_json()  # every 20 ms while attached
        check("LiveSessionUsageUpdated", update)
        ws.send_json({"type": "session.close"})
        while (event := ws.receive_json())["type"] != "session.closed":
            pass
        check("LiveSessionClosed", event)
        assert event["reason"] == "close_requested"
        assert event["session"]["instructions"] == "Be brief."
    assert app.state.live_sessions.closed[session_id] == "close_requested"
    attach = client.websocket_connect(f"/v1/live/sessions/{session_id}/attach", headers=AUTH)
    with pytest.raises(WebSocketDenialResponse) as gone, attach:
        pass
    assert gone.value.status_code == 404


def test_the_sideband_needs_the_key_bearer_or_azures_header(fake: Any) -> None:
    client, _ = fake
    session_id = start(client)
    path = f"/v1/live/sessions/{session_id}/attach"
    with client.websocket_connect(path, headers={"api-key": FAKE_KEY}) as ws:
        check("LiveSessionUsageUpdated", ws.receive_json())
    with (
        pytest.raises(WebSocketDisconnect) as refused,
        client.websocket_connect(path, headers={"api-key": "wrong"}) as ws,
    ):
        ws.receive_json()
    assert refused.value.code == 1008


def test_the_browsers_channel_is_held_to_its_allow_lists(fake: Any) -> None:
    client, app = fake
    session_id = start(
        client,
        client={
            "data_channel": {
                "allowed_client_events": ["response.create"],
                "allowed_server_events": [
                    "error",
                    {"type": "response.event", "response_event": "response.completed"},
                ],
            }
        },
    )
    events = f"/v1/_fake/live/sessions/{session_id}/events"
    refused = client.post(
        events,
        json={"type": "session.instructions.append", "content": "x", "event_id": "c1"},
        headers=AUTH,
    )
    (error,) = refused.json()["events"]
    check("LiveErrorEvent", error)
    assert (error["error"]["code"], error["client_event_id"]) == ("event_not_allowed", "c1")
    seen = client.post(events, json={"type": "response.create"}, headers=AUTH).json()["events"]
    # Only the selected nested event reaches the browser; both reach a sideband.
    assert [e["event"]["type"] for e in seen] == ["response.completed"]
    check("LiveResponseEvent", seen[0])
    assert seen[0]["event"]["response"]["usage"]["total_tokens"] == 100
    shown = client.get(f"/v1/_fake/live/sessions/{session_id}", headers=AUTH).json()
    assert (
        shown["session"]["instructions"]
        == app.state.live_sessions.sessions[session_id].session["instructions"]
    )
    assert "x" not in shown["session"]["instructions"]


def test_the_browser_leaving_ends_the_session(fake: Any) -> None:
    client, app = fake
    session_id = start(client)
    assert (
        client.post(f"/v1/_fake/live/sessions/{session_id}/hangup", headers=AUTH).status_code == 200
    )
    assert app.state.live_sessions.closed[session_id] == "remote_hangup"
    shown = client.get(f"/v1/_fake/live/sessions/{session_id}", headers=AUTH).json()
    assert shown == {"id": session_id, "closed": "remote_hangup"}


async def test_the_sdks_rest_hangup_ends_the_session_as_a_close_does() -> None:
    """`client.live.sessions.hangup` (openai-python ≥ 3.12): the session ends with
    `close_requested`, as at OpenAI (an application close or hangup); a second one is
    OpenAI's 404."""
    app = create_fake_app(clock=ManualClock(1_750_000_000.0), api_key=FAKE_KEY)
    registry = app.state.live_sessions
    session_id = registry.create({"model": "gpt-live-1"})
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app)) as http:
        sdk = openai.AsyncOpenAI(
            api_key=FAKE_KEY, base_url="http://fake/v1", http_client=http, max_retries=0
        )
        await sdk.live.sessions.hangup(session_id)
        assert registry.closed[session_id] == "close_requested"
        with pytest.raises(openai.NotFoundError):
            await sdk.live.sessions.hangup(session_id)
        with pytest.raises(openai.AuthenticationError):
            await sdk.with_options(api_key="wrong").live.sessions.hangup("live_x")
