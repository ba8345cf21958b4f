"""`apply_policy`'s shortcut (`with_changes`) against the general path (`replace`): same
effective request, same adjusted paths, for every policy and body in the table."""

from __future__ import annotations

import copy
from dataclasses import fields, replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import service.policy.apply
from bench.fixtures import ADJUST_BODY, ADJUST_POLICY, BODY, PERMISSIVE_POLICY
from service.errors import BrokerError
from service.policy.apply import apply_policy, with_changes
from service.policy.parse import default_policy, parse_policy
from service.session.codec import decode_request
from service.session.model import MintRequest, Session
from tests.policy.policies import DESIGN_POLICY
from tests.session.bodies import BETA_FULL, GA_FULL

REJECTING = {**copy.deepcopy(DESIGN_POLICY), "on_violation": "reject"}
POLICIES = [default_policy()] + [
    parse_policy(p) for p in (PERMISSIVE_POLICY, ADJUST_POLICY, DESIGN_POLICY, REJECTING)
]
GA_EMPTY: dict[str, Any] = {}
TRANSCRIPTION = {"session": {"type": "transcription"}}
REQUESTS = [
    decode_request("client_secrets", body)
    for body in (BODY, ADJUST_BODY, GA_FULL, GA_EMPTY, TRANSCRIPTION)
] + [
    decode_request("sessions", BETA_FULL),
    decode_request("transcription_sessions", {}),
]


def _outcome(policy: Any, role: str, request: MintRequest) -> object:
    try:
        return apply_policy(policy, role, request)
    except BrokerError as exc:
        return (type(exc), str(exc))


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("request_", REQUESTS)
@pytest.mark.parametrize("role", ["reader", "owner", "unknown"])
def test_the_shortcut_matches_a_full_replace(
    policy: Any, request_: MintRequest, role: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast = _outcome(policy, role, request_)
    monkeypatch.setattr(service.policy.apply, "with_changes", lambda s, c: replace(s, **c))
    general = _outcome(policy, role, request_)
    assert fast == general


def test_an_unchanged_session_is_shared_and_a_changed_one_is_not() -> None:
    permissive, adjusting = parse_policy(PERMISSIVE_POLICY), parse_policy(ADJUST_POLICY)
    request = decode_request("client_secrets", BODY)
    assert apply_policy(permissive, "reader", request)[0].session is request.session
    adjusted = decode_request("client_secrets", ADJUST_BODY)
    effective, listed = apply_policy(adjusting, "reader", adjusted)
    assert effective.session is not adjusted.session
    assert effective.session.model == "gpt-realtime-mini"
    assert "session.model" in listed


NAMES = [f.name for f in fields(Session) if f.name != "custom_voice"]
VALUES = st.one_of(st.none(), st.text(max_size=3), st.floats(allow_nan=False))


@given(
    base=st.dictionaries(st.sampled_from(NAMES), VALUES),
    changes=st.dictionaries(st.sampled_from(NAMES), VALUES | st.just("same")),
)
def test_with_changes_is_replace(base: dict[str, Any], changes: dict[str, Any]) -> None:
    session = Session(**base)
    # "same" stands for the very object the session holds: the shortcut's case.
    resolved = {k: getattr(session, k) if v == "same" else v for k, v in changes.items()}
    result = with_changes(session, resolved)
    assert result == replace(session, **resolved)
    if all(v is getattr(session, k) for k, v in resolved.items()):
        assert result is session
