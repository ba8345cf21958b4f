"""The relay's policing (pure): what a browser's event becomes before it reaches the call.

Under `client_channel: "relay"` the browser has no data channel to OpenAI; its events come
through the broker (`GET /v1/realtime?call_id=...`, service.web.relay). Each one is checked
here against the role:

- an event type outside `client_events` is refused (an `error` event goes back);
- `session.update` passes through the policy exactly as a mint does: clamped, or refused
  under `on_violation: "reject"`;
- `response.create` with per-response overrides (instructions, tools, voice, modalities,
  output tokens) passes the same policy, for the fields the client set;
- every other allowed event is forwarded unchanged.

Server events are filtered by `server_events` (None: all).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from service.errors import InvalidRequest
from service.policy.apply import apply_policy
from service.policy.model import Policy, RoleRules
from service.session.codec import decode_request, encode_upstream_request

# Keys of a `response.create`'s response that the policy decides, and where they live
# in a session.
_RESPONSE_OVERRIDES = ("instructions", "tools", "audio", "output_modalities", "max_output_tokens")


def error_event(
    message: str, *, code: str, param: str | None = None, event_id: object = None
) -> dict[str, Any]:
    """An OpenAI-shaped `error` server event (the client's `event_id` echoed when given)."""
    return {
        "type": "error",
        "event_id": "event_" + secrets.token_hex(8),
        "error": {
            "type": "invalid_request_error",
            "code": code,
            "message": message,
            "param": param,
            "event_id": event_id if isinstance(event_id, str) else None,
        },
    }


@dataclass(frozen=True, slots=True)
class Policed:
    """What to do with a client event: forward `event`, or answer with `error`."""

    event: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


class RelayPolicy:
    """One call's rules for the relay: the tenant's policy and the role the call was
    placed under."""

    def __init__(self, policy: Policy, role: str) -> None:
        self.policy = policy
        self.role = role
        self.rules: RoleRules = policy.rules_for(role)

    def server_event_allowed(self, kind: object) -> bool:
        allowed = self.rules.server_events
        return allowed is None or kind in allowed

    def police(self, event: object) -> Policed:
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            return Policed(error=error_event("An event is a JSON object with a `type`.",
                                             code="invalid_event"))  # fmt: skip
        kind, event_id = event["type"], event.get("event_id")
        if kind not in self.rules.client_events:
            return Policed(
                error=error_event(
                    f"The event type '{kind[:64]}' is not allowed on this call.",
                    code="event_not_allowed",
                    param="type",
                    event_id=event_id,
                )
            )
        try:
            if kind == "session.update":
                return Policed(event={**event, "session": self._session(event.get("session"))})
            if kind == "response.create" and isinstance(event.get("response"), dict):
                return Policed(event={**event, "response": self._response(event["response"])})
        except InvalidRequest as exc:
            return Policed(
                error=error_event(exc.message, code=exc.code, param=exc.param, event_id=event_id)
            )
        return Policed(event=event)

    def _session(self, session: object) -> dict[str, Any]:
        if not isinstance(session, dict):
            raise InvalidRequest("`session` must be an object.", param="session")
        requested = decode_request("client_secrets", {"session": {"type": "realtime", **session}})
        effective, _ = apply_policy(self.policy, self.role, requested)
        _, body, _ = encode_upstream_request(effective, "ga")
        result: dict[str, Any] = body["session"]
        return result

    def _response(self, response: Mapping[str, Any]) -> dict[str, Any]:
        given = {k: response[k] for k in _RESPONSE_OVERRIDES if k in response}
        if not given:
            return dict(response)
        # Per-response overrides are the session's fields for one response: checked as a
        # session, and only the fields the client set are kept.
        policed = self._session(given)
        out = {k: v for k, v in response.items() if k not in given}
        for key in given:
            if key in policed:
                out[key] = policed[key]
        return out
