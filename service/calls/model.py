"""The values of call control (pure): leases, usage, and the policy-controlled fields
of a session that a held call keeps binding.

A call's controlled fields are fixed when the call is placed: the broker's policy
decided them (`apply_policy`), and any later change by the client to one of them is
reverted (or the call hung up). Fields the policy leaves open are the client's.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from service.policy.model import RoleRules

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


@dataclass(frozen=True, slots=True)
class ActiveCall:
    tenant: str
    user_id: str
    call_id: str
    # When the lease lapses unless renewed (epoch seconds).
    expires_at: float


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


def over_budget(rules: RoleRules, usage: Usage) -> str | None:
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
