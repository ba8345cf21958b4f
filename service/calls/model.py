"""The values of call control (pure): leases, usage, and the policy-controlled fields
of a session that a held call keeps binding.

A call's controlled fields are fixed when the call is placed: the broker's policy
decided them (`apply_policy`), and any later change by the client to one of them is
reverted (or the call hung up). Fields the policy leaves open are the client's.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from service.policy.model import InstructionsMode, OnSessionUpdate, RoleRules

# What the broker supervises: a Realtime call (`/realtime/calls`, hung up over REST) or a
# GPT-Live session (`/live/sessions`, closed with `session.close` on its sideband).
CallKind = Literal["realtime", "live"]

# GA session paths the policy decides; compared on every `session.updated`.
CONTROLLED: tuple[tuple[str, ...], ...] = (
    ("model",),
    ("instructions",),
    ("output_modalities",),
    ("max_output_tokens",),
    ("tools",),
    ("audio", "output", "voice"),
    ("audio", "output", "format"),
    ("audio", "input", "format"),
    ("audio", "input", "turn_detection"),
)
_TOOLS = ("tools",)
# OpenAI ends a Realtime call after 60 minutes: no call is supervised (or leased) longer.
CALL_LIFETIME_CAP = 3600.0


@dataclass(frozen=True, slots=True)
class Usage:
    tokens: int = 0
    seconds: float = 0.0


def utc_day(now: float) -> str:
    """The metering day of an instant: budgets reset at midnight UTC."""
    return datetime.datetime.fromtimestamp(now, datetime.UTC).strftime("%Y-%m-%d")


def seconds_to_midnight(now: float) -> float:
    day = datetime.datetime.fromtimestamp(now, datetime.UTC).date()
    midnight = datetime.datetime.combine(
        day + datetime.timedelta(days=1), datetime.time(), datetime.UTC
    )
    return max(1.0, midnight.timestamp() - now)


class Budgets(Protocol):
    @property
    def daily_token_budget(self) -> int | None: ...
    @property
    def daily_minute_budget(self) -> int | None: ...
    @property
    def daily_usd_budget(self) -> float | None: ...
    @property
    def monthly_usd_budget(self) -> float | None: ...


def over_budget(rules: Budgets, usage: Usage) -> str | None:
    """Which budget `usage` has reached, or None."""
    if rules.daily_token_budget is not None and usage.tokens >= rules.daily_token_budget:
        return "daily_token_budget"
    if rules.daily_minute_budget is not None and usage.seconds >= rules.daily_minute_budget * 60:
        return "daily_minute_budget"
    return None


def pinned_fields(session: Mapping[str, Any], rules: RoleRules) -> dict[tuple[str, ...], Any]:
    """The controlled values of the effective GA session: what a held call must keep.

    A field the effective session leaves out is pinned only for tools, and only when
    the role restricts tools: "no tools" is then a decision, not an omission.
    """
    pinned: dict[tuple[str, ...], Any] = {}
    for path in CONTROLLED:
        value = _get(session, path)
        if value is not None:
            pinned[path] = value
    if _TOOLS not in pinned and rules.tools_allow is not None:
        pinned[_TOOLS] = []
    return pinned


def drift(pinned: Mapping[tuple[str, ...], Any], observed: Mapping[str, Any]) -> list[str]:
    """The pinned paths whose value in the `observed` session differs (dotted names).

    Upstream echoes a session with its own defaults filled in, so a pinned object
    matches when its keys are a subset of the observed one; tools compare by name.
    """
    changed: list[str] = []
    for path, want in pinned.items():
        have = _get(observed, path)
        same = _tool_names(want) == _tool_names(have) if path == _TOOLS else _matches(want, have)
        if not same:
            changed.append(".".join(path))
    return changed


def revert_event(pinned: Mapping[tuple[str, ...], Any], changed: list[str]) -> dict[str, Any]:
    """The `session.update` that puts the `changed` paths back to their pinned values."""
    session: dict[str, Any] = {"type": "realtime"}
    for path, value in pinned.items():
        if ".".join(path) not in changed:
            continue
        node = session
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
    return {"type": "session.update", "session": session}


def _get(obj: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = obj
    for key in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node


def _matches(want: Any, have: Any) -> bool:
    if isinstance(want, Mapping):
        return isinstance(have, Mapping) and all(_matches(v, have.get(k)) for k, v in want.items())
    if isinstance(want, list | tuple):
        return isinstance(have, list | tuple) and list(want) == list(have)
    return bool(want == have)


def _tool_names(tools: Any) -> list[str] | None:
    if tools is None:
        return []
    if not isinstance(tools, list):
        return None
    return sorted(str(t.get("name") or t.get("server_label")) for t in tools if isinstance(t, dict))


Pinned = Mapping[tuple[str, ...], Any]


@dataclass(frozen=True, slots=True)
class CallPolicy:
    """What a held call keeps binding, fixed when it is placed. Part of the supervision
    record, so a replica that adopts the call enforces the policy it was placed under,
    not whatever the policy says by then."""

    role: str
    pinned: Pinned
    on_session_update: OnSessionUpdate = "reapply"
    daily_token_budget: int | None = None
    daily_minute_budget: int | None = None
    # Under "server" the client brings no instructions by any door (state.CallState).
    instructions_mode: InstructionsMode = "client"
    # The model the call was placed with (its usage is priced as this model's); money
    # budgets of the user, USD per UTC day and month (service.usage).
    model: str | None = None
    daily_usd_budget: float | None = None
    monthly_usd_budget: float | None = None

    @classmethod
    def of(cls, role: str, rules: RoleRules, session: Mapping[str, Any]) -> CallPolicy:
        model = session.get("model")
        return cls(
            role=role,
            pinned=pinned_fields(session, rules),
            on_session_update=rules.on_session_update,
            daily_token_budget=rules.daily_token_budget,
            daily_minute_budget=rules.daily_minute_budget,
            instructions_mode=rules.instructions.mode,
            model=model if isinstance(model, str) else None,
            daily_usd_budget=rules.daily_usd_budget,
            monthly_usd_budget=rules.monthly_usd_budget,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "pinned": [[list(path), value] for path, value in self.pinned.items()],
            "on_session_update": self.on_session_update,
            "daily_token_budget": self.daily_token_budget,
            "daily_minute_budget": self.daily_minute_budget,
            "instructions_mode": self.instructions_mode,
            "model": self.model,
            "daily_usd_budget": self.daily_usd_budget,
            "monthly_usd_budget": self.monthly_usd_budget,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CallPolicy:
        return cls(
            role=str(data["role"]),
            pinned={tuple(path): value for path, value in data["pinned"]},
            on_session_update=data.get("on_session_update", "reapply"),
            daily_token_budget=data.get("daily_token_budget"),
            daily_minute_budget=data.get("daily_minute_budget"),
            # A record written before the field: the mode is unknown, nothing extra enforced.
            instructions_mode=data.get("instructions_mode", "client"),
            # Records written before usage and spend: no model known, no money budget.
            model=data.get("model"),
            daily_usd_budget=data.get("daily_usd_budget"),
            monthly_usd_budget=data.get("monthly_usd_budget"),
        )


@dataclass(frozen=True, slots=True)
class Supervision:
    """A call's supervision record, kept in the state store for the call's whole life:
    who placed it, under what policy, and until when it may run (epoch seconds). The
    owner and its heartbeat are kept beside it by the store."""

    tenant: str
    user_id: str
    call_id: str
    policy: CallPolicy
    started_at: float
    deadline: float
    kind: CallKind = "realtime"

    def encode(self) -> str:
        data: dict[str, Any] = {
            "tenant": self.tenant,
            "user_id": self.user_id,
            "call_id": self.call_id,
            "policy": self.policy.to_json(),
            "started_at": self.started_at,
            "deadline": self.deadline,
        }
        if self.kind != "realtime":
            # Absent for Realtime calls: records written before GPT-Live read the same.
            data["kind"] = self.kind
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def decode(cls, text: str | bytes) -> Supervision:
        """Raises ValueError (or KeyError, TypeError) on a record it cannot read."""
        data = json.loads(text)
        kind = data.get("kind", "realtime")
        if kind not in ("realtime", "live"):
            raise ValueError(f"unknown call kind {kind!r}")
        return cls(
            tenant=str(data["tenant"]),
            user_id=str(data["user_id"]),
            call_id=str(data["call_id"]),
            policy=CallPolicy.from_json(data["policy"]),
            started_at=float(data["started_at"]),
            deadline=float(data["deadline"]),
            kind=kind,
        )


def call_deadline(started_at: float, max_call_seconds: int | None) -> float:
    limit = (
        CALL_LIFETIME_CAP if max_call_seconds is None else min(max_call_seconds, CALL_LIFETIME_CAP)
    )
    return started_at + limit


@dataclass(frozen=True, slots=True)
class SupervisedCall:
    """A row of the admin listing: the record, its owner ("" while unowned) and when
    the owner's heartbeat lapses (epoch seconds)."""

    record: Supervision
    owner: str
    heartbeat_until: float
