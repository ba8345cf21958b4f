"""The relay's policing (pure): what a browser's event becomes before it reaches the call.

Under `client_channel: "relay"` the browser has no data channel to OpenAI; its events come
through the broker (`GET /v1/realtime?call_id=...`, service.web.relay). Each one is checked
here against the role:

- an event type outside `client_events` is refused (an `error` event goes back);
- `session.update` passes through the policy exactly as a mint does: clamped, or refused
  under `on_violation: "reject"`;
- `response.create` with per-response overrides (instructions, tools, voice, modalities,
  output tokens, reasoning effort) passes the same policy, for the fields the client set;
- under `instructions.mode: "server"` the policy's instructions are the only ones, whatever
  the door: a `conversation.item.create` of a `system` or `developer` message is refused;
  such messages in `response.create`'s `input`, and a `prompt` reference (a stored prompt
  brings its own instructions) in `response.create` or `session.update`, are dropped, or
  the event refused under `on_violation: "reject"`;
- every other allowed event is forwarded unchanged.

Server events are filtered by `server_events` (None, the default: all of them, the ones
OpenAI adds included, e.g. `input_audio_buffer.dtmf_event_received` and
`input_audio_buffer.timeout_triggered`).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

from service.errors import InvalidRequest, PolicyViolation
from service.policy.apply import apply_policy
from service.policy.model import Policy, RoleRules
from service.session.codec import decode_request, encode_upstream_request

# Keys of a `response.create`'s response that the policy decides, and where they live
# in a session.
_RESPONSE_OVERRIDES = (
    "instructions", "tools", "audio", "output_modalities", "max_output_tokens", "reasoning",
)  # fmt: skip
# Conversation messages in these roles are instructions by another door.
INSTRUCTION_ROLES = frozenset({"system", "developer"})


def brings_instructions(item: object) -> TypeGuard[dict[str, Any]]:
    """Whether a conversation item is a `system` or `developer` message."""
    return isinstance(item, dict) and item.get("role") in INSTRUCTION_ROLES


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
        # `instructions.mode: "server"`: the client brings no instructions of its own.
        self.exclusive = self.rules.instructions.mode == "server"
        self.reject = policy.on_violation == "reject"

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
            if (
                kind == "conversation.item.create"
                and self.exclusive
                and brings_instructions(event.get("item"))
            ):
                # Nothing is left to forward once the message is taken out: refused either way.
                raise PolicyViolation(
                    "This role's instructions are the server's: "
                    "system and developer messages are not allowed.",
                    param="item.role",
                )
        except InvalidRequest as exc:
            return Policed(
                error=error_event(exc.message, code=exc.code, param=exc.param, event_id=event_id)
            )
        return Policed(event=event)

    def _session(self, session: object) -> dict[str, Any]:
        if not isinstance(session, dict):
            raise InvalidRequest("`session` must be an object.", param="session")
        if self.exclusive:
            session = self._without_prompt(session, "session.prompt")
        requested = decode_request("client_secrets", {"session": {"type": "realtime", **session}})
        effective, _ = apply_policy(self.policy, self.role, requested)
        _, body, _ = encode_upstream_request(effective, "ga")
        result: dict[str, Any] = body["session"]
        return result

    def _response(self, response: Mapping[str, Any]) -> dict[str, Any]:
        if self.exclusive:
            response = self._without_prompt(response, "response.prompt")
            response = self._without_instruction_input(response)
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

    def _violation(self, param: str) -> None:
        """A server-mode door the client tried: refused under `reject`, else clamped."""
        if self.reject:
            raise PolicyViolation(
                f"The value of '{param}' is not allowed: this role's instructions are the "
                "server's.",
                param=param,
            )

    def _without_prompt(self, obj: Mapping[str, Any], param: str) -> Mapping[str, Any]:
        if obj.get("prompt") is None:
            return obj
        self._violation(param)
        return {k: v for k, v in obj.items() if k != "prompt"}

    def _without_instruction_input(self, response: Mapping[str, Any]) -> Mapping[str, Any]:
        items = response.get("input")
        if not isinstance(items, list):
            return response
        first = next((i for i, item in enumerate(items) if brings_instructions(item)), None)
        if first is None:
            return response
        self._violation(f"response.input[{first}]")
        return {**response, "input": [item for item in items if not brings_instructions(item)]}
