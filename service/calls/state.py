"""The event path of a held call (pure, no I/O): what the broker does with each event it
reads on the sideband. Measured alone by bench/sideband.py."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from service.calls.model import CallPolicy, drift, revert_event


@dataclass(frozen=True, slots=True)
class Action:
    kind: Literal["revert", "hangup", "cancel"]
    changed: tuple[str, ...]
    event: dict[str, Any] | None = None


class CallState:
    """Compares each `session.updated` (or `session.created`) with the fields the policy
    pinned and answers a change with a reverting `session.update`, or a hangup when the
    role says `on_session_update: "hangup"`; counts `response.done` usage."""

    __slots__ = ("pending_tokens", "policy")

    def __init__(self, policy: CallPolicy) -> None:
        self.policy = policy
        self.pending_tokens = 0

    def on_text(self, text: str) -> Action | None:
        try:
            event = json.loads(text)
        except ValueError:
            return None
        if not isinstance(event, dict):
            return None
        kind = event.get("type")
        if kind == "response.done":
            self.pending_tokens += _total_tokens(event)
            return None
        if kind == "response.created":
            return self._response(event.get("response"))
        if kind not in ("session.updated", "session.created"):
            return None
        session = event.get("session")
        if not isinstance(session, dict):
            return None
        changed = drift(self.policy.pinned, session)
        if not changed:
            return None
        if self.policy.on_session_update == "hangup":
            return Action("hangup", tuple(changed))
        return Action("revert", tuple(changed), revert_event(self.policy.pinned, changed))

    def _response(self, response: object) -> Action | None:
        """A response started with per-response overrides (its own instructions, tools or
        voice) that the policy forbids: cancelled, since it is not a session change a
        revert would catch."""
        if not isinstance(response, dict) or not isinstance(response.get("id"), str):
            return None
        seen: dict[str, Any] = {}
        for key in ("instructions", "tools"):
            if key in response:
                seen[key] = response[key]
        voice = response.get("voice")
        audio = response.get("audio")
        if isinstance(audio, dict) and isinstance(audio.get("output"), dict):
            voice = audio["output"].get("voice", voice)
        if voice is not None:
            seen["audio"] = {"output": {"voice": voice}}
        pinned = {p: v for p, v in self.policy.pinned.items() if p[0] in seen}
        changed = drift(pinned, seen)
        if not changed:
            return None
        cancel = {"type": "response.cancel", "response_id": response["id"]}
        return Action("cancel", tuple(changed), cancel)


def _total_tokens(event: Mapping[str, Any]) -> int:
    response = event.get("response")
    usage = response.get("usage") if isinstance(response, dict) else None
    total = usage.get("total_tokens") if isinstance(usage, dict) else None
    return total if isinstance(total, int) and total > 0 else 0
