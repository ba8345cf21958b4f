"""The event path of a held call (pure, no I/O): what the broker does with each event it
reads on the sideband. Measured alone by bench/sideband.py.

`CallState` reads a Realtime call's sideband, `LiveState` a GPT-Live session's; the
controller uses either through `EventState`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from service.calls.model import CallPolicy, Pinned, drift, revert_event
from service.policy.model import RoleRules
from service.relay.policing import brings_instructions
from service.usage.model import UNKNOWN_MODEL, Pending, realtime_counts, responses_counts

# `reasoning.effort`, held like the controlled fields when the role lists efforts
# (`with_reasoning`), but only where upstream reports one: a model that does not reason
# reports none, and its session was not overridden.
REASONING_EFFORT = ("reasoning", "effort")
_EFFORT = ".".join(REASONING_EFFORT)


def with_reasoning(pinned: Pinned, rules: RoleRules, session: Mapping[str, Any]) -> Pinned:
    """`pinned` and, when the role lists `reasoning_efforts`, the effort the call was
    placed with (its first entry when the session names none): a later change is reverted."""
    if rules.reasoning_efforts is None:
        return pinned
    reasoning = session.get("reasoning")
    effort = reasoning.get("effort") if isinstance(reasoning, dict) else None
    return {**pinned, REASONING_EFFORT: effort or rules.reasoning_efforts[0]}


@dataclass(frozen=True, slots=True)
class Action:
    kind: Literal["revert", "hangup", "cancel"]
    changed: tuple[str, ...]
    event: dict[str, Any] | None = None


class EventState(Protocol):
    """What the controller needs of a held call's event path."""

    # Tokens read on the sideband and not yet metered.
    pending_tokens: int
    # The same usage by model and kind, not yet in the ledger (service.usage).
    usage: Pending
    # The model the call's time is priced as: the one it was placed with, or the one
    # upstream says it runs.
    model: str
    # Upstream said the call is over (no need to join its sideband again).
    over: bool

    def on_text(self, text: str) -> Action | None: ...

    def has_pending(self) -> bool:
        """Usage read and not yet metered."""
        ...

    def seconds_due(self, elapsed: float) -> float:
        """The call seconds to meter now, `elapsed` seconds after the last metering."""
        ...

    def metered(self, tokens: int, seconds: float) -> None:
        """`tokens` and `seconds` were counted against the budgets."""
        ...


class CallState:
    """Compares each `session.updated` (or `session.created`) with the fields the policy
    pinned and answers a change with a reverting `session.update`, or a hangup when the
    role says `on_session_update: "hangup"`; counts `response.done` usage. A Realtime
    call's seconds are the time it is held.

    With `server_instructions` (the role's `instructions.mode: "server"`) the client
    brings no instructions by another door either: a `system` or `developer` message it
    adds to the conversation is deleted, a response started with such messages in its
    `input` or with a `prompt` reference is cancelled, and a session `prompt` is an
    override like the pinned fields."""

    __slots__ = ("model", "over", "pending_tokens", "policy", "server_instructions", "usage")

    def __init__(self, policy: CallPolicy, *, server_instructions: bool = False) -> None:
        self.policy = policy
        self.server_instructions = server_instructions
        self.pending_tokens = 0
        self.usage = Pending()
        self.model = policy.model or UNKNOWN_MODEL
        self.over = False

    def has_pending(self) -> bool:
        return self.pending_tokens > 0 or bool(self.usage)

    def seconds_due(self, elapsed: float) -> float:
        return elapsed

    def metered(self, tokens: int, seconds: float) -> None:
        self.pending_tokens -= tokens

    def on_text(self, text: str) -> Action | None:
        event = _event(text)
        if event is None:
            return None
        kind = event.get("type")
        if kind == "response.done":
            self.pending_tokens += _total_tokens(event)
            response = event.get("response")
            if isinstance(response, dict) and isinstance(response.get("usage"), dict):
                self.usage.add(self.model, realtime_counts(response["usage"]))
            return None
        if kind == "response.created":
            return self._response(event.get("response"))
        if kind in ("conversation.item.added", "conversation.item.created"):
            # GA and beta names of the same event.
            return self._item(event.get("item"))
        if kind not in ("session.updated", "session.created"):
            return None
        session = event.get("session")
        if not isinstance(session, dict):
            return None
        if isinstance(session.get("model"), str) and session["model"]:
            self.model = session["model"]
        changed = drift(self.policy.pinned, session)
        if _EFFORT in changed and _effort(session) is None:
            changed.remove(_EFFORT)
        prompted = self.server_instructions and session.get("prompt") is not None
        if prompted:
            changed.append("prompt")
        if not changed:
            return None
        if self.policy.on_session_update == "hangup":
            return Action("hangup", tuple(changed))
        revert = revert_event(self.policy.pinned, changed)
        if prompted:
            revert["session"]["prompt"] = None
        return Action("revert", tuple(changed), revert)

    def _item(self, item: object) -> Action | None:
        """A `system` or `developer` message in the conversation under server-mode
        instructions: only the client can have added it (the broker never does), so it
        is taken out again, as a session change would be reverted."""
        if not self.server_instructions or not brings_instructions(item):
            return None
        if not isinstance(item.get("id"), str):
            return None
        delete = {"type": "conversation.item.delete", "item_id": item["id"]}
        return Action("revert", (f"conversation.item.{item['role']}",), delete)

    def _response(self, response: object) -> Action | None:
        """A response started with per-response overrides (its own instructions, tools or
        voice) that the policy forbids, or, under server-mode instructions, with a prompt
        reference or system or developer messages in its `input`: cancelled, since it is
        not a session change a revert would catch."""
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
        if self.server_instructions:
            # Instructions by other doors: a stored prompt, system or developer messages.
            if response.get("prompt") is not None:
                changed.append("prompt")
            items = response.get("input")
            if isinstance(items, list) and any(brings_instructions(i) for i in items):
                changed.append("input")
        if not changed:
            return None
        cancel = {"type": "response.cancel", "response_id": response["id"]}
        return Action("cancel", tuple(changed), cancel)


def _effort(session: Mapping[str, Any]) -> object:
    reasoning = session.get("reasoning")
    return reasoning.get("effort") if isinstance(reasoning, dict) else None


def _event(text: str) -> dict[str, Any] | None:
    try:
        event = json.loads(text)
    except ValueError:
        return None
    return event if isinstance(event, dict) else None


def _total_tokens(event: Mapping[str, Any]) -> int:
    response = event.get("response")
    usage = response.get("usage") if isinstance(response, dict) else None
    total = usage.get("total_tokens") if isinstance(usage, dict) else None
    return total if isinstance(total, int) and total > 0 else 0


class LiveState:
    """A GPT-Live session's event path. Nothing to revert: model, voice and instructions
    are immutable upstream once it started, and the browser's channel cannot send an
    event that rewrites the session (its allow-list was decided when it was created).

    Usage: `session.usage.updated` and `session.closed` report the session's cumulative
    audio seconds (totals, not increments: each second is counted once), and the
    delegated Responses backend's tokens arrive in `response.event`s carrying a
    `response.completed`. A session adopted from another replica takes its first report
    as the baseline: that replica metered what came before (up to its last batch).
    `session.closed` ends it."""

    __slots__ = (
        "model",
        "over",
        "pending_seconds",
        "pending_tokens",
        "policy",
        "reported",
        "usage",
    )

    def __init__(self, policy: CallPolicy, *, adopted: bool = False) -> None:
        self.policy = policy
        self.pending_tokens = 0
        self.usage = Pending()
        self.model = policy.model or UNKNOWN_MODEL
        self.pending_seconds = 0.0
        self.reported: float | None = None if adopted else 0.0
        self.over = False

    def on_text(self, text: str) -> Action | None:
        event = _event(text)
        if event is None:
            return None
        kind = event.get("type")
        if kind in ("session.usage.updated", "session.closed"):
            self._usage(event.get("usage"))
            if kind == "session.closed":
                self.over = True
        elif kind == "response.event":
            nested = event.get("event")
            if isinstance(nested, dict) and nested.get("type") == "response.completed":
                self.pending_tokens += _total_tokens(nested)
                response = nested.get("response")
                if isinstance(response, dict) and isinstance(response.get("usage"), dict):
                    # The delegated backend's own model (a Responses model), not the
                    # session's: its tokens are priced as that model's.
                    model = response.get("model")
                    backend = model if isinstance(model, str) and model else UNKNOWN_MODEL
                    self.usage.add(backend, responses_counts(response["usage"]))
        return None

    def has_pending(self) -> bool:
        return self.pending_tokens > 0 or self.pending_seconds > 0 or bool(self.usage)

    def seconds_due(self, elapsed: float) -> float:
        return self.pending_seconds

    def metered(self, tokens: int, seconds: float) -> None:
        self.pending_tokens -= tokens
        self.pending_seconds = max(0.0, self.pending_seconds - seconds)

    def _usage(self, usage: object) -> None:
        seconds = usage.get("seconds") if isinstance(usage, dict) else None
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
            return
        if self.reported is None:
            self.reported = float(seconds)
        elif seconds > self.reported:
            self.pending_seconds += seconds - self.reported
            self.reported = float(seconds)
