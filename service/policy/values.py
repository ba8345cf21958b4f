"""Parsing one value of a role's rules, and the bounds any policy value must respect.

Each parser takes the raw JSON value and its dotted path, records every problem in a
`Problems` (so that `parse_policy` reports all of them at once) and returns the frozen
shape of `service.policy.model`, or a safe fallback when the value is invalid.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, cast

from service.limits import Limit, parse_limit
from service.policy.model import (
    ClientChannel,
    InstructionsRule,
    OnSessionUpdate,
    Range,
    TtlRule,
    TurnDetectionRule,
)
from service.session.model import (
    INSTRUCTIONS_HARD_CAP,
    MAX_ID_CHARS,
    TTL_MAX,
    TTL_MIN,
    VAD_TYPES,
)

# The temperature any role may get, whatever the policy says (beta upstream's useful range).
TEMPERATURE_BOUNDS = (0.6, 1.2)
SPEED_BOUNDS = (0.25, 1.5)
MAX_OUTPUT_TOKENS_BOUNDS = (1, 4096)
# VAD numbers: the spec gives no bounds for durations; these keep a policy sane.
DURATION_MS_BOUNDS = (0, 10_000)
THRESHOLD_BOUNDS = (0.0, 1.0)

_INSTRUCTION_MODES = ("server", "prefix", "client")
_TTL = TtlRule()


class Problems:
    """Collects problems so that one run reports all of them."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, path: str, message: str) -> None:
        self.items.append(f"{path}: {message}")


def is_number(value: object) -> bool:
    # bool is an int subclass; `true` is never a number in a policy.
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_limits(raw: object, path: str, problems: Problems) -> tuple[Limit, ...]:
    if not isinstance(raw, list):
        problems.add(path, 'must be a list such as ["5/minute", "200/day"]')
        return ()
    limits: list[Limit] = []
    for index, text in enumerate(raw):
        try:
            limits.append(parse_limit(text))
        except ValueError as exc:
            problems.add(f"{path}[{index}]", str(exc))
    return tuple(limits)


def on_session_update(raw: object, path: str, problems: Problems) -> OnSessionUpdate:
    if raw is None:
        return "reapply"
    if raw == "hangup":
        return "hangup"
    if raw != "reapply":
        problems.add(f"{path}.on_session_update", 'must be "reapply" or "hangup"')
    return "reapply"


def client_channel(raw: object, path: str, problems: Problems) -> ClientChannel:
    if raw is None or raw == "data_channel":
        return "data_channel"
    if raw == "relay":
        return "relay"
    problems.add(f"{path}.client_channel", 'must be "data_channel" or "relay"')
    return "data_channel"


def mint_rule(raw: object, channel: ClientChannel, path: str, problems: Problems) -> bool:
    """`mint` (default true): false closes every secret mint to the role. A `relay` role
    never mints: a secret's holder reaches OpenAI directly, around the relay."""
    if raw is None:
        return channel != "relay"
    if not isinstance(raw, bool):
        problems.add(f"{path}.mint", "must be true or false")
        return channel != "relay"
    if raw and channel == "relay":
        problems.add(
            f"{path}.mint",
            'must be false (or left out) when client_channel is "relay": a client secret '
            "reaches OpenAI around the relay",
        )
        return False
    return raw


def allow_list(
    raw: object,
    path: str,
    allowed: tuple[str, ...] | None,
    problems: Problems,
    *,
    allow_empty: bool = False,
) -> tuple[str, ...] | None:
    if raw is None:
        return None
    if not isinstance(raw, list) or (not raw and not allow_empty):
        problems.add(path, "must be a non-empty list of strings (the first is the default)")
        return None
    entries: list[str] = []
    for index, entry in enumerate(raw):
        if not isinstance(entry, str) or not entry or len(entry) > MAX_ID_CHARS:
            problems.add(f"{path}[{index}]", f"must be a string of 1 to {MAX_ID_CHARS} characters")
        elif allowed is not None and entry not in allowed:
            problems.add(f"{path}[{index}]", f"{entry!r} is not one of {', '.join(allowed)}")
        elif entry in entries:
            problems.add(f"{path}[{index}]", f"{entry!r} is listed twice")
        else:
            entries.append(entry)
    return tuple(entries)


def range_rule(
    raw: object, path: str, bounds: tuple[float, float], problems: Problems
) -> Range | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        problems.add(path, 'must be an object {"min", "max", "default"}')
        return None
    for key in sorted(set(raw) - {"min", "max", "default"}, key=str):
        problems.add(f"{path}.{key}", "unknown key")
    values: dict[str, float | None] = {}
    low, high = bounds
    for key in ("min", "max", "default"):
        value = raw.get(key)
        if value is None:
            values[key] = None
        elif not is_number(value):
            problems.add(f"{path}.{key}", "must be a number")
            values[key] = None
        elif value < low:
            problems.add(f"{path}.{key}", f"must be ≥ {low:g}")
            values[key] = None
        elif value > high:
            problems.add(f"{path}.{key}", f"must be ≤ {high:g}")
            values[key] = None
        else:
            values[key] = float(value)
    lo, hi, default = values["min"], values["max"], values["default"]
    if lo is not None and hi is not None and lo > hi:
        problems.add(f"{path}.min", "must be ≤ max")
    if default is not None and lo is not None and default < lo:
        problems.add(f"{path}.default", "must be ≥ min")
    if default is not None and hi is not None and default > hi:
        problems.add(f"{path}.default", "must be ≤ max")
    return Range(min=lo, max=hi, default=default)


def turn_detection_rule(raw: object, path: str, problems: Problems) -> TurnDetectionRule | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        problems.add(path, "must be an object")
        return None
    known = {"types", "silence_duration_ms", "prefix_padding_ms", "threshold"}
    for key in sorted(set(raw) - known, key=str):
        problems.add(f"{path}.{key}", "unknown key")
    return TurnDetectionRule(
        types=allow_list(raw.get("types"), f"{path}.types", VAD_TYPES, problems),
        silence_duration_ms=range_rule(
            raw.get("silence_duration_ms"),
            f"{path}.silence_duration_ms",
            DURATION_MS_BOUNDS,
            problems,
        ),
        prefix_padding_ms=range_rule(
            raw.get("prefix_padding_ms"), f"{path}.prefix_padding_ms", DURATION_MS_BOUNDS, problems
        ),
        threshold=range_rule(raw.get("threshold"), f"{path}.threshold", THRESHOLD_BOUNDS, problems),
    )


def instructions_rule(raw: object, path: str, problems: Problems) -> InstructionsRule:
    if raw is None:
        return InstructionsRule()
    if not isinstance(raw, Mapping):
        problems.add(path, 'must be an object {"mode", "text", "max_chars"}')
        return InstructionsRule()
    for key in sorted(set(raw) - {"mode", "text", "max_chars"}, key=str):
        problems.add(f"{path}.{key}", "unknown key")
    mode = raw.get("mode", "client")
    if mode not in _INSTRUCTION_MODES:
        problems.add(f"{path}.mode", 'must be "server", "prefix" or "client"')
        mode = "client"
    text = raw.get("text", "")
    if not isinstance(text, str) or len(text) > INSTRUCTIONS_HARD_CAP:
        problems.add(
            f"{path}.text", f"must be a string of at most {INSTRUCTIONS_HARD_CAP} characters"
        )
        text = ""
    elif mode in ("server", "prefix") and not text:
        problems.add(f"{path}.text", f"is required in {mode} mode")
    max_chars = raw.get("max_chars")
    if max_chars is not None and not (
        is_int(max_chars) and 1 <= max_chars <= INSTRUCTIONS_HARD_CAP
    ):
        problems.add(f"{path}.max_chars", f"must be an integer from 1 to {INSTRUCTIONS_HARD_CAP}")
        max_chars = None
    return InstructionsRule(mode=mode, text=text, max_chars=cast(int | None, max_chars))


def ttl_rule(raw: object, path: str, problems: Problems) -> TtlRule:
    if raw is None:
        return TtlRule()
    if not isinstance(raw, Mapping):
        problems.add(path, 'must be an object {"default", "max"}')
        return TtlRule()
    for key in sorted(set(raw) - {"default", "max"}, key=str):
        problems.add(f"{path}.{key}", "unknown key")
    values: dict[str, int] = {}
    for key, fallback in (("default", _TTL.default), ("max", _TTL.max)):
        value = raw.get(key, fallback)
        if not is_int(value) or not TTL_MIN <= value <= TTL_MAX:
            problems.add(f"{path}.{key}", f"must be an integer from {TTL_MIN} to {TTL_MAX}")
            value = fallback
        values[key] = value
    if values["default"] > values["max"]:
        problems.add(f"{path}.default", "must be ≤ max")
    return TtlRule(default=values["default"], max=values["max"])


def positive_int(raw: Mapping[str, Any], key: str, path: str, problems: Problems) -> int | None:
    value = raw.get(key)
    if value is None:
        return None
    if not is_int(value) or value < 1:
        problems.add(f"{path}.{key}", "must be a positive integer")
        return None
    return cast(int, value)


def positive_amount(
    raw: Mapping[str, Any], key: str, path: str, problems: Problems
) -> float | None:
    """A money amount (USD): a positive finite number."""
    value = raw.get(key)
    if value is None:
        return None
    if not is_number(value) or value <= 0:
        problems.add(f"{path}.{key}", "must be a positive number of USD")
        return None
    return float(value)
