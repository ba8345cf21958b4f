"""The mint memos (service/mint/plans.py) give what the general path gives, fresh."""

from __future__ import annotations

import dataclasses
import json
from typing import Any, cast

import pytest

from bench.fixtures import ADJUST_POLICY
from service.errors import (
    InvalidJSON,
    InvalidRequest,
    PolicyViolation,
    RoleForbidden,
    UnknownParameter,
)
from service.mint.plans import MAX_MEMO_BODY, MintPlans, decode_body, make_plan
from service.policy.parse import default_policy, parse_policy
from service.session.codec import encode_upstream_request
from service.session.model import Api, Endpoint, MintRequest
from tests.session.test_codec_fast import REQUESTS

# The benchmark's adjusting policy, plus a role it does not restrict.
_ROLES = cast(dict[str, Any], ADJUST_POLICY["roles"])
CLAMPING = parse_policy({**ADJUST_POLICY, "roles": {**_ROLES, "owner": {}}})
REJECTING = parse_policy(
    {
        "default_role": "reader",
        "on_violation": "reject",
        "roles": {"reader": {"models": ["gpt-realtime-mini"]}},
    }
)

BODIES: list[tuple[Endpoint, dict[str, Any]]] = [
    ("client_secrets", {}),
    ("client_secrets", {"session": {"type": "transcription"}, "expires_after": {"seconds": 60}}),
    ("sessions", {"model": "gpt-realtime", "voice": "ash", "temperature": 0.9}),
    ("transcription_sessions", {"input_audio_format": "pcm16"}),
    *cast(list[tuple[Endpoint, dict[str, Any]]], REQUESTS[:2]),
]
ADJUSTED = REQUESTS[1][1]  # asks for what CLAMPING does not allow


def raw(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()


@pytest.mark.parametrize(("endpoint", "body"), BODIES)
def test_a_remembered_request_equals_a_fresh_decode(endpoint: Endpoint, body: Any) -> None:
    plans = MintPlans()
    first = plans.request(endpoint, raw(body))
    again = plans.request(endpoint, raw(body))

    assert first == decode_body(endpoint, raw(body))
    assert again is first  # the second mint did not decode


def test_the_endpoint_is_part_of_the_key() -> None:
    plans = MintPlans()
    body = raw({})
    assert plans.request("client_secrets", body).endpoint == "client_secrets"
    assert plans.request("sessions", body).endpoint == "sessions"


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"{", InvalidJSON),
        (b"[]", InvalidJSON),
        (b'{"session": {"type": "realtime", "bogus": 1}}', UnknownParameter),
        (b'{"session": {"type": "realtime", "temperature": NaN}}', InvalidJSON),
    ],
)
def test_a_refused_body_is_refused_again_every_time(body: bytes, error: type[Exception]) -> None:
    plans = MintPlans()
    for _ in range(3):
        with pytest.raises(error):
            plans.request("client_secrets", body)
    assert not plans._requests


@pytest.mark.parametrize("api", ["ga", "beta"])
@pytest.mark.parametrize("role", ["reader", "owner"])
@pytest.mark.parametrize(("endpoint", "body"), BODIES)
def test_a_remembered_plan_equals_a_fresh_one(
    endpoint: Endpoint, body: Any, role: str, api: Api
) -> None:
    plans = MintPlans()
    requested = plans.request(endpoint, raw(body))
    fresh = make_plan(CLAMPING, role, requested, api)

    first = plans.plan("acme", CLAMPING, role, requested, api)
    again = plans.plan("acme", CLAMPING, role, requested, api)

    assert again is first
    for name in ("effective", "adjustments", "path", "dropped"):
        assert getattr(first, name) == getattr(fresh, name), name
    assert isinstance(fresh.effective, MintRequest)
    _, body, _ = encode_upstream_request(fresh.effective, api)
    assert json.loads(first.upstream_json) == body


def test_a_shared_plan_cannot_be_changed_by_the_mint_that_uses_it() -> None:
    plans = MintPlans()
    requested = plans.request("client_secrets", raw(ADJUSTED))
    plan = plans.plan("acme", CLAMPING, "reader", requested, "ga")

    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.path = "/elsewhere"  # type: ignore[misc]
    assert isinstance(plan.upstream_json, bytes)  # immutable
    assert isinstance(plan.adjustments, tuple)


def test_tenants_and_roles_get_their_own_plans() -> None:
    plans = MintPlans()
    requested = plans.request("client_secrets", raw(ADJUSTED))

    clamped = plans.plan("acme", CLAMPING, "reader", requested, "ga")
    free = plans.plan("acme", CLAMPING, "owner", requested, "ga")
    other = plans.plan("globex", default_policy(), "reader", requested, "ga")

    assert clamped.effective.session.model == "gpt-realtime-mini"
    assert "session.model" in clamped.adjustments
    assert free.effective.session.model == "gpt-realtime"
    assert not free.adjustments
    assert other is not clamped


def test_a_policy_refusal_is_raised_every_time() -> None:
    plans = MintPlans()
    requested = plans.request("client_secrets", raw(ADJUSTED))
    for _ in range(2):
        with pytest.raises(PolicyViolation):
            plans.plan("acme", REJECTING, "reader", requested, "ga")
    assert not plans._plans


def test_both_memos_stay_within_their_bound() -> None:
    plans = MintPlans(entries=8)
    for i in range(50):
        body = raw({"session": {"type": "realtime", "instructions": f"user {i}"}})
        requested = plans.request("client_secrets", body)
        plans.plan("acme", CLAMPING, "reader", requested, "ga")

    assert len(plans._requests) == 8
    assert len(plans._plans) == 8
    # The newest are kept: the last body is still remembered.
    assert plans.request("client_secrets", body) is requested


def test_a_large_body_is_decoded_but_not_remembered() -> None:
    plans = MintPlans()
    text = "x" * MAX_MEMO_BODY
    body = raw({"session": {"type": "realtime", "instructions": text}})

    first = plans.request("client_secrets", body)
    again = plans.request("client_secrets", body)

    assert first == again
    assert first is not again
    assert not plans._requests


def test_the_plan_of_a_request_that_is_no_longer_remembered_is_rebuilt() -> None:
    plans = MintPlans(entries=1)
    requested = decode_body("client_secrets", raw(REQUESTS[0][1]))
    stale = plans.plan("acme", CLAMPING, "reader", requested, "ga")
    # Another object can take a freed id; the plan holds its request, so a lookup
    # with a different object of the same id must not return it.
    other = decode_body("client_secrets", raw(ADJUSTED))
    plans._plans[("acme", "reader", id(other))] = stale

    rebuilt = plans.plan("acme", CLAMPING, "reader", other, "ga")

    assert rebuilt is not stale
    assert rebuilt.requested is other
    assert isinstance(rebuilt.effective.session.model, str)


def test_invalid_request_subclasses_stay_the_errors_clients_see() -> None:
    # The memo raises the general path's own errors, with their params.
    with pytest.raises(InvalidRequest) as caught:
        MintPlans().request("client_secrets", b'{"session": {"type": "realtime", "x": 1}}')
    assert caught.value.param == "session.x"


TRANSLATING = parse_policy(
    {
        "default_role": "reader",
        "roles": {
            "reader": {"translation_models": ["gpt-realtime-translate"],
                       "translation_languages": ["fr"]},
            "owner": {},
        },
    }
)  # fmt: skip
TRANSLATION = {"session": {"model": "gpt-realtime-translate-pro",
                           "audio": {"output": {"language": "ja"}}}}  # fmt: skip


@pytest.mark.parametrize("api", ["ga", "beta"])
def test_a_translation_is_remembered_and_planned_as_a_fresh_one(api: Api) -> None:
    plans = MintPlans()
    requested = plans.request("translations", raw(TRANSLATION))
    fresh = make_plan(TRANSLATING, "reader", decode_body("translations", raw(TRANSLATION)), api)

    plan = plans.plan("acme", TRANSLATING, "reader", requested, api)

    assert plans.request("translations", raw(TRANSLATION)) is requested
    assert plans.plan("acme", TRANSLATING, "reader", requested, api) is plan
    for name in ("effective", "adjustments", "path", "dropped", "upstream_json"):
        assert getattr(plan, name) == getattr(fresh, name), name
    # The translation path whatever the tenant's API: there is no beta translation mint.
    assert plan.path == "/realtime/translations/client_secrets"
    assert json.loads(plan.upstream_json)["session"] == {
        "model": "gpt-realtime-translate",
        "audio": {"output": {"language": "fr"}},
    }
    assert plan.adjustments == ("session.model", "session.audio.output.language")


def test_a_role_without_translation_models_is_refused_every_time() -> None:
    plans = MintPlans()
    requested = plans.request("translations", raw(TRANSLATION))
    for _ in range(2):
        with pytest.raises(RoleForbidden):
            plans.plan("acme", TRANSLATING, "owner", requested, "ga")
    assert not plans._plans
