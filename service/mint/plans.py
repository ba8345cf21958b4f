"""Memos of the pure steps of a mint: body bytes → decoded request, and (tenant, role,
decoded request) → effective request and upstream body.

A browser app sends the same mint body for every session it starts (its session
config is part of its code), so these steps see the same inputs over and over; each is
a pure function of them (tests/mint/test_plans.py checks memoized results against fresh
ones). Remembering the answers takes JSON parsing, the spec checks, the policy and the
upstream encoding (~20 µs) off a repeated mint; nothing is skipped: a body decoded
here passed every check once, and identical bytes pass them identically.

Translation mints (`translations`) take the same steps with their own shape
(service.session.translation) and policy (service.policy.translation); `Plan.answer`
reads either upstream answer into the client's.

Only successes are remembered (an error is raised afresh each time, with its own
message). Both memos are bounded, and oldest-first eviction keeps a flood of distinct
bodies from growing them; bodies over `MAX_MEMO_BODY` bytes are never remembered.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from service.policy.apply import apply_policy
from service.policy.model import Policy
from service.policy.translation import apply_translation_policy
from service.session.codec import (
    decode_request,
    decode_upstream_response,
    encode_response,
    encode_upstream_request,
)
from service.session.model import Api, Endpoint, MintRequest
from service.session.strict_json import parse_json_object
from service.session.translation import (
    TranslationRequest,
    decode_translation_request,
    decode_translation_response,
    encode_translation_upstream,
)

MAX_MEMO_BODY = 4096
MEMO_ENTRIES = 512

# A decoded mint: a Realtime or transcription session, or a translation session.
Requested = MintRequest | TranslationRequest


@dataclass(frozen=True, slots=True)
class Plan:
    """What a mint sends upstream for one (tenant, role, request). Shared between the
    mints that hit it, so it is frozen all the way down: the upstream body is kept as the
    JSON bytes sent (encoded once, not at every mint)."""

    requested: Requested
    effective: Requested
    adjustments: tuple[str, ...]
    path: str
    upstream_json: bytes
    dropped: tuple[str, ...]

    def answer(self, api: Api, upstream: object) -> tuple[dict[str, Any], int]:
        """The client's answer to the upstream's, and its secret's `expires_at`; an
        upstream answer without a usable secret raises UpstreamError."""
        effective = self.effective
        if isinstance(effective, TranslationRequest):
            return decode_translation_response(upstream, effective)
        result = decode_upstream_response(api, effective.kind, upstream)
        return encode_response(effective.endpoint, result, effective), result.expires_at


def decode_body(endpoint: Endpoint, raw: bytes) -> Requested:
    """The general path: strict JSON, then the spec checks."""
    body = parse_json_object(raw, empty={})
    if endpoint == "translations":
        return decode_translation_request(body)
    return decode_request(endpoint, body)


def make_plan(policy: Policy, role: str, requested: Requested, api: Api) -> Plan:
    """The general path: the policy for `role`, then the upstream encoding."""
    dropped: list[str] = []
    if isinstance(requested, TranslationRequest):
        translation, adjustments = apply_translation_policy(policy, role, requested)
        effective: Requested = translation
        path, upstream_body = encode_translation_upstream(translation)
    else:
        realtime, adjustments = apply_policy(policy, role, requested)
        effective = realtime
        path, upstream_body, dropped = encode_upstream_request(realtime, api)
    upstream_json = json.dumps(upstream_body, separators=(",", ":"), allow_nan=False).encode()
    return Plan(requested, effective, tuple(adjustments), path, upstream_json, tuple(dropped))


class MintPlans:
    """The two memos of one broker. Not thread-safe: one event loop uses it."""

    def __init__(self, entries: int = MEMO_ENTRIES) -> None:
        self._entries = entries
        self._requests: dict[tuple[Endpoint, bytes], Requested] = {}
        # Keyed by the decoded request's id: the plan holds that request, so the id
        # cannot be reused by another object while the entry exists.
        self._plans: dict[tuple[str, str, int], Plan] = {}

    def request(self, endpoint: Endpoint, raw: bytes) -> Requested:
        if len(raw) > MAX_MEMO_BODY:
            return decode_body(endpoint, raw)
        key = (endpoint, raw)
        found = self._requests.get(key)
        if found is None:
            found = decode_body(endpoint, raw)
            _put(self._requests, key, found, self._entries)
        return found

    def plan(self, tenant: str, policy: Policy, role: str, requested: Requested, api: Api) -> Plan:
        key = (tenant, role, id(requested))
        found = self._plans.get(key)
        if found is None or found.requested is not requested:
            found = make_plan(policy, role, requested, api)
            _put(self._plans, key, found, self._entries)
        return found


def _put(memo: dict[Any, Any], key: Any, value: Any, entries: int) -> None:
    if len(memo) >= entries:
        del memo[next(iter(memo))]  # the oldest entry (dicts keep insertion order)
    memo[key] = value
