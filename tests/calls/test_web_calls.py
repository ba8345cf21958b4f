"""Call control end to end over ASGI: the broker, the in-process fake, a manual clock."""

from __future__ import annotations

import json
import logging

import pytest

from service.fake.calls import FAKE_USAGE
from tests.calls.conftest import ADMIN_KEY, HarnessFactory


async def test_a_call_is_placed_with_the_policy_and_no_secret(harness: HarnessFactory) -> None:
    h = await harness()
    response = await h.place()
    assert response.status_code == 201
    assert response.headers["content-type"].startswith("application/sdp")
    assert response.text.startswith("v=0\r\n")
    assert "m=audio" in response.text
    call_id = response.headers["location"].rsplit("/", 1)[1]
    assert response.headers["location"] == f"/v1/realtime/calls/{call_id}"
    assert "ek_" not in response.text
    assert response.headers["cache-control"] == "no-store"
    session = h.fake.calls[call_id].session
    assert session["instructions"] == "You are the Acme assistant."
    assert session["audio"]["output"]["voice"] == "alloy"
    await h.joined(call_id)
    assert h.controller.held("default") == [call_id]


async def test_garbage_offer_is_refused_before_upstream(harness: HarnessFactory) -> None:
    h = await harness()
    response = await h.client.post(
        "/v1/realtime/calls",
        content="hello",
        headers={"Authorization": f"Bearer {h.token()}", "Content-Type": "application/sdp"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "sdp"
    assert h.fake.calls == {}


async def test_multipart_session_goes_through_the_policy(harness: HarnessFactory) -> None:
    h = await harness()
    files = {
        "sdp": (None, b"v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n", "application/sdp"),
        "session": (
            None,
            json.dumps(
                {"type": "realtime", "instructions": "evil", "audio": {"output": {"voice": "ash"}}}
            ).encode(),
            "application/json",
        ),
    }
    response = await h.client.post(
        "/v1/realtime/calls", files=files, headers={"Authorization": f"Bearer {h.token()}"}
    )
    assert response.status_code == 201
    call_id = response.headers["location"].rsplit("/", 1)[1]
    session = h.fake.calls[call_id].session
    assert session["instructions"] == "You are the Acme assistant."
    assert session["audio"]["output"]["voice"] == "alloy"
    assert "session.instructions" in response.headers["x-policy-adjusted"]


async def test_a_call_over_max_concurrent_calls_is_refused(harness: HarnessFactory) -> None:
    h = await harness()
    assert (await h.place()).status_code == 201
    assert (await h.place()).status_code == 201
    refused = await h.place()
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "concurrent_calls_exceeded"
    assert len(h.fake.calls) == 2
    # Another user has leases of their own.
    assert (await h.place(sub="bob")).status_code == 201


async def test_the_lease_is_freed_when_the_call_ends(harness: HarnessFactory) -> None:
    h = await harness()
    first = (await h.place()).headers["location"].rsplit("/", 1)[1]
    await h.place()
    await h.joined(first)
    h.fake.hangup(first)  # the browser (or OpenAI) ended it
    await h.until(lambda: first not in h.controller.held("default"))
    assert (await h.place()).status_code == 201


async def test_a_call_is_hung_up_at_max_call_seconds(harness: HarnessFactory) -> None:
    h = await harness()
    call_id = (await h.place()).headers["location"].rsplit("/", 1)[1]
    await h.joined(call_id)
    h.clock.advance(59)
    await h.step()
    assert call_id in h.controller.held("default")  # a second early: still held
    assert call_id not in h.fake.hung_up
    h.clock.advance(1)
    await h.until(lambda: call_id in h.fake.hung_up)
    await h.until(lambda: h.controller.held("default") == [])


async def test_a_client_instructions_change_is_reverted(
    harness: HarnessFactory, caplog: pytest.LogCaptureFixture
) -> None:
    h = await harness()
    call_id = (await h.place()).headers["location"].rsplit("/", 1)[1]
    await h.joined(call_id)
    with caplog.at_level(logging.INFO, logger="service.audit"):
        h.fake.receive(
            call_id,
            {"type": "session.update", "session": {"type": "realtime", "instructions": "be evil"}},
        )
        await h.until(
            lambda: h.fake.calls[call_id].session["instructions"] == "You are the Acme assistant."
        )
    reverts = [e for e in h.fake.sideband_events if e["type"] == "session.update"]
    assert reverts == [
        {
            "type": "session.update",
            "session": {"type": "realtime", "instructions": "You are the Acme assistant."},
        }
    ]
    audit = [r for r in caplog.records if getattr(r, "action", "") == "call.session_reverted"]
    assert len(audit) == 1
    assert getattr(audit[0], "fields", None) == ["instructions"]
    assert call_id in h.fake.calls  # reverted, not hung up


async def test_an_allowed_change_is_left_alone(harness: HarnessFactory) -> None:
    h = await harness()
    call_id = (await h.place()).headers["location"].rsplit("/", 1)[1]
    await h.joined(call_id)
    h.fake.receive(call_id, {"type": "session.update", "session": {"tracing": "auto"}})
    h.fake.receive(call_id, {"type": "response.create"})
    await h.until(lambda: h.fake.calls[call_id].session.get("tracing") == "auto")
    await h.until_usage("alice", tokens=FAKE_USAGE["total_tokens"])
    assert h.fake.sideband_events == []
    assert call_id in h.fake.calls


async def test_role_with_hangup_mode_hangs_up_on_a_change(harness: HarnessFactory) -> None:
    h = await harness()
    call_id = (await h.place(sub="olivia", role="owner")).headers["location"].rsplit("/", 1)[1]
    await h.joined(call_id)
    h.fake.receive(call_id, {"type": "session.update", "session": {"instructions": "x"}})
    await h.until(lambda: call_id in h.fake.hung_up)


async def test_usage_is_metered_and_the_token_budget_enforced(harness: HarnessFactory) -> None:
    h = await harness()
    call_id = (await h.place()).headers["location"].rsplit("/", 1)[1]
    await h.joined(call_id)
    store, day = h.controller.store, h.day()
    h.fake.receive(call_id, {"type": "response.create"})
    await h.until_usage("alice", tokens=FAKE_USAGE["total_tokens"])
    assert call_id in h.fake.calls  # 100 of 250
    h.fake.receive(call_id, {"type": "response.create"})
    h.fake.receive(call_id, {"type": "response.create"})
    await h.until(lambda: call_id in h.fake.hung_up)  # 300 ≥ 250: hung up
    assert (await store.usage("default", "alice", day)).tokens == 300
    refused = await h.place()
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "call_budget_exceeded"
    assert int(refused.headers["retry-after"]) >= 1


async def test_the_minute_budget_hangs_up_and_refuses(harness: HarnessFactory) -> None:
    h = await harness()
    call_id = (await h.place(sub="olivia", role="owner")).headers["location"].rsplit("/", 1)[1]
    await h.joined(call_id)
    h.clock.advance(11)  # a lease renewal (every TTL/3) flushes the minutes
    await h.step()
    assert (await h.controller.store.usage("default", "olivia", h.day())).seconds == 11
    assert call_id not in h.fake.hung_up  # 11 s of the 60
    h.clock.advance(50)
    await h.until(lambda: call_id in h.fake.hung_up)
    refused = await h.place(sub="olivia", role="owner")
    assert refused.json()["error"]["code"] == "call_budget_exceeded"


async def test_admin_lists_and_hangs_up_calls(harness: HarnessFactory) -> None:
    h = await harness()
    call_id = (await h.place()).headers["location"].rsplit("/", 1)[1]
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    listed = (await h.client.get("/v1/realtime/calls", headers=admin)).json()
    assert [(c["id"], c["user_id"]) for c in listed["data"]] == [(call_id, "alice")]
    reader = {"Authorization": f"Bearer {h.token()}"}
    assert (await h.client.get("/v1/realtime/calls", headers=reader)).status_code == 403
    missing = await h.client.post("/v1/realtime/calls/rtc_nope/hangup", headers=admin)
    assert missing.status_code == 404
    done = await h.client.post(f"/v1/realtime/calls/{call_id}/hangup", headers=admin)
    assert done.status_code == 200
    assert call_id in h.fake.hung_up
    await h.until(lambda: h.controller.held("default") == [])
    assert (await h.client.get("/v1/realtime/calls", headers=admin)).json()["data"] == []


async def test_an_admin_hangups_audit_line_carries_its_requests_id(
    harness: HarnessFactory, caplog: pytest.LogCaptureFixture
) -> None:
    h = await harness()
    call_id = (await h.place()).headers["location"].rsplit("/", 1)[1]
    await h.joined(call_id)
    admin = {"Authorization": f"Bearer {ADMIN_KEY}", "X-Request-ID": "req-hangup-1"}

    with caplog.at_level(logging.INFO, logger="service.audit"):
        done = await h.client.post(f"/v1/realtime/calls/{call_id}/hangup", headers=admin)
        await h.until(lambda: h.controller.held("default") == [])

    assert done.headers["x-request-id"] == "req-hangup-1"
    hung_up = [r for r in caplog.records if getattr(r, "action", "") == "call.hung_up"]
    assert [getattr(r, "request_id", None) for r in hung_up] == ["req-hangup-1"]


async def test_a_revoked_users_live_calls_are_hung_up(harness: HarnessFactory) -> None:
    h = await harness()
    first = (await h.place()).headers["location"].rsplit("/", 1)[1]
    second = (await h.place()).headers["location"].rsplit("/", 1)[1]
    other = (await h.place(sub="bob")).headers["location"].rsplit("/", 1)[1]
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    assert (await h.client.delete("/v1/organization/users/alice", headers=admin)).status_code == 200
    assert {first, second} <= set(h.fake.hung_up)
    assert other in h.fake.calls
    assert (await h.place()).status_code == 403


async def test_the_admin_listing_pages_by_call_id(harness: HarnessFactory) -> None:
    h = await harness()
    placed = sorted(
        [(await h.place(sub=f"user{n}")).headers["location"].rsplit("/", 1)[1] for n in range(3)]
    )
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}

    first = (await h.client.get("/v1/realtime/calls?limit=2", headers=admin)).json()
    rest = await h.client.get(f"/v1/realtime/calls?limit=2&after={first['last_id']}", headers=admin)

    assert [c["id"] for c in first["data"]] == placed[:2]
    assert first["has_more"] is True
    assert [c["id"] for c in rest.json()["data"]] == placed[2:]
    assert rest.json()["has_more"] is False
    row = first["data"][0]
    assert row["supervised"] is True
    assert row["role"] == "reader"
    assert row["deadline"] - row["started_at"] == 60  # the role's max_call_seconds
    for query, code in [("limit=0", "invalid_value"), ("limit=x", "invalid_value"),
                        ("colour=1", "unknown_parameter")]:  # fmt: skip
        refused = await h.client.get(f"/v1/realtime/calls?{query}", headers=admin)
        assert (refused.status_code, refused.json()["error"]["code"]) == (400, code)
