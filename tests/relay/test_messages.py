"""relay.messages: each message survives its trip through the store (JSON) unchanged, its
wire shape is the one replicas have always sent, and garbage decodes to None, never raises."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.relay.messages import (
    CallHangup,
    CallOwner,
    Message,
    RelayAttach,
    RelayDetach,
    RelayDown,
    RelayOwner,
    RelayUp,
    UserRevoked,
    decode,
)

# Each message and its wire shape: the keys of the previous release, so that replicas of
# both understand each other during a rolling deploy.
WIRE: list[tuple[Message, dict[str, Any]]] = [
    (RelayAttach("acme", "rtc_1", "replica-b"),
     {"type": "relay.attach", "tenant": "acme", "call_id": "rtc_1", "relay": "replica-b"}),
    (RelayDetach("acme", "rtc_1", "replica-b"),
     {"type": "relay.detach", "tenant": "acme", "call_id": "rtc_1", "relay": "replica-b"}),
    (RelayOwner("acme", "rtc_1", "replica-a"),
     {"type": "relay.owner", "tenant": "acme", "call_id": "rtc_1", "owner": "replica-a"}),
    (RelayDown("acme", "rtc_1", '{"type":"response.done"}'),
     {"type": "relay.down", "tenant": "acme", "call_id": "rtc_1",
      "event": '{"type":"response.done"}'}),
    (RelayDown("acme", "rtc_1", None),
     {"type": "relay.down", "tenant": "acme", "call_id": "rtc_1", "event": None}),
    (RelayUp("acme", "rtc_1", {"type": "response.create", "response": {"conversation": "none"}}),
     {"type": "relay.up", "tenant": "acme", "call_id": "rtc_1",
      "event": {"type": "response.create", "response": {"conversation": "none"}}}),
    (CallOwner("acme", "rtc_1"), {"type": "call.owner", "tenant": "acme", "call_id": "rtc_1"}),
    (UserRevoked("acme", "alice"), {"type": "user.revoked", "tenant": "acme", "user_id": "alice"}),
    (CallHangup("acme", "rtc_1", "budget"),
     {"type": "call.hangup", "tenant": "acme", "call_id": "rtc_1", "reason": "budget"}),
]  # fmt: skip
IDS = [f"{message.encode()['type']}-{i}" for i, (message, _) in enumerate(WIRE)]


@pytest.mark.parametrize(("message", "wire"), WIRE, ids=IDS)
def test_a_message_is_encoded_in_its_wire_shape(message: Message, wire: dict[str, Any]) -> None:
    assert message.encode() == wire


@pytest.mark.parametrize(("message", "wire"), WIRE, ids=IDS)
def test_a_message_decodes_to_itself_after_a_trip_through_json(
    message: Message, wire: dict[str, Any]
) -> None:
    assert decode(json.loads(json.dumps(message.encode()))) == message


def test_a_hangup_that_does_not_say_why_is_an_admins() -> None:
    assert decode({"type": "call.hangup", "tenant": "acme", "call_id": "rtc_1"}) == CallHangup(
        "acme", "rtc_1", "admin"
    )
    assert decode({"type": "call.hangup", "tenant": "acme", "call_id": "rtc_1", "reason": 3}) == (
        CallHangup("acme", "rtc_1", "admin")
    )


BASE = {"tenant": "acme", "call_id": "rtc_1"}


@pytest.mark.parametrize(
    "data",
    [
        None,
        42,
        "relay.attach",
        ["relay.attach"],
        {},
        {**BASE, "type": "relay.sideways", "relay": "replica-b"},
        {**BASE, "type": ["relay.attach"], "relay": "replica-b"},
        {**BASE, "type": {"unhashable": True}},
        {**BASE, "type": None},
        {"type": "relay.attach", "call_id": "rtc_1", "relay": "replica-b"},
        {"type": "relay.attach", "tenant": 7, "call_id": "rtc_1", "relay": "replica-b"},
        {"type": "relay.attach", "tenant": "acme", "relay": "replica-b"},
        {"type": "relay.attach", "tenant": "acme", "call_id": ["rtc_1"], "relay": "replica-b"},
        {**BASE, "type": "relay.attach"},
        {**BASE, "type": "relay.detach", "relay": None},
        {**BASE, "type": "relay.owner", "owner": 1},
        {**BASE, "type": "relay.down", "event": {"type": "response.done"}},
        {**BASE, "type": "relay.up", "event": '{"type": "response.create"}'},
        {**BASE, "type": "relay.up"},
        {"type": "call.owner", "tenant": "acme"},
        {"type": "user.revoked", "tenant": "acme"},
        {"type": "user.revoked", "tenant": "acme", "user_id": 3},
        {"type": "call.hangup", "tenant": "acme", "call_id": None},
    ],
)
def test_garbage_decodes_to_none(data: object) -> None:
    assert decode(data) is None


KEYS = st.sampled_from(
    ["type", "tenant", "call_id", "relay", "owner", "event", "user_id", "reason"]
)
KINDS = st.sampled_from(["relay.attach", "relay.detach", "relay.owner", "relay.down",
                         "relay.up", "call.owner", "user.revoked", "call.hangup"])  # fmt: skip
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text() | KINDS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(KEYS | st.text(), inner, max_size=4)
    ),
    max_leaves=12,
)


@given(st.dictionaries(KEYS, JSON, max_size=8) | JSON)
def test_decode_never_raises(data: object) -> None:
    message = decode(data)
    # Whatever it decodes to survives its own trip through the wire.
    if message is not None:
        assert decode(message.encode()) == message
