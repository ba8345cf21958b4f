"""Reading the session policy (README "Policy"): `parse_policy` and `default_policy`.

`parse_policy` turns the policy JSON into the frozen shapes of `service.policy.model`,
collecting every problem (each names the role and key) before raising `PolicyError`.
The parsers of single values, and the bounds they enforce, are in `service.policy.values`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from service.limits import parse_limit
from service.policy.model import DEFAULT_CLIENT_EVENTS, Policy, Range, RoleRules, TtlRule
from service.policy.values import (
    MAX_OUTPUT_TOKENS_BOUNDS,
    SPEED_BOUNDS,
    TEMPERATURE_BOUNDS,
    Problems,
    allow_list,
    client_channel,
    instructions_rule,
    is_int,
    mint_rule,
    on_session_update,
    parse_limits,
    positive_amount,
    positive_int,
    range_rule,
    ttl_rule,
    turn_detection_rule,
)
from service.session.model import AUDIO_FORMATS, MODALITIES, REASONING_EFFORTS

_TOP_KEYS = frozenset({"default_role", "on_violation", "tenant_limits", "roles"})
_ALLOW_LIST_KEYS = {
    "models": None,
    "voices": None,
    "modalities": MODALITIES,
    "audio_formats": AUDIO_FORMATS,
    "transcription_models": None,
    "reasoning_efforts": REASONING_EFFORTS,
    "translation_models": None,
    "translation_languages": None,
}
_ROLE_KEYS = frozenset(
    {
        *_ALLOW_LIST_KEYS,
        "tools",
        "temperature",
        "max_output_tokens",
        "speed",
        "turn_detection",
        "instructions",
        "ttl_seconds",
        "limits",
        "vector_store_limits",
        "max_concurrent_calls",
        "max_call_seconds",
        "daily_token_budget",
        "daily_minute_budget",
        "daily_usd_budget",
        "monthly_usd_budget",
        "on_session_update",
        "client_channel",
        "client_events",
        "server_events",
        "mint",
    }
)

DEFAULT_LIMITS = ("10/minute", "500/day")


class PolicyError(Exception):
    """The policy JSON is invalid; `.problems` lists every problem, each naming its key."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid policy:\n" + "\n".join(f"- {p}" for p in problems))


def default_policy() -> Policy:
    """The built-in policy: every value the upstream allows, TTL 60 s (at most 600),
    10/minute and 500/day per user, for both roles; no tenant limit."""
    limits = tuple(parse_limit(text) for text in DEFAULT_LIMITS)
    rules = RoleRules(ttl_seconds=TtlRule(default=60, max=600), limits=limits)
    return Policy(
        default_role="reader",
        on_violation="clamp",
        tenant_limits=(),
        roles={"owner": rules, "reader": rules},
    )


def parse_policy(data: object) -> Policy:
    """Validate the policy JSON (already decoded) and build a `Policy`.

    Raises `PolicyError` listing every problem, e.g.
    `roles.reader.temperature.max: must be ≤ 1.2`.
    """
    problems = Problems()
    if not isinstance(data, Mapping):
        raise PolicyError(["policy: must be a JSON object"])
    for key in sorted(set(data) - _TOP_KEYS):
        problems.add(str(key), "unknown key")

    on_violation = data.get("on_violation", "clamp")
    if on_violation not in ("clamp", "reject"):
        problems.add("on_violation", 'must be "clamp" or "reject"')
        on_violation = "clamp"

    tenant_limits = parse_limits(data.get("tenant_limits", []), "tenant_limits", problems)

    roles: dict[str, RoleRules] = {}
    raw_roles = data.get("roles")
    if not isinstance(raw_roles, Mapping) or not raw_roles:
        problems.add("roles", "must be a non-empty object of role name → rules")
    else:
        for name, raw in raw_roles.items():
            roles[str(name)] = _parse_role(raw, f"roles.{name}", problems)

    default_role = data.get("default_role", "reader")
    if not isinstance(default_role, str):
        problems.add("default_role", "must be a string")
    elif isinstance(raw_roles, Mapping) and raw_roles and default_role not in roles:
        problems.add("default_role", f"{default_role!r} is not one of the roles")

    if problems.items:
        raise PolicyError(problems.items)
    return Policy(
        default_role=cast(str, default_role),
        on_violation=on_violation,
        tenant_limits=tenant_limits,
        roles=roles,
    )


def _parse_role(raw: object, path: str, problems: Problems) -> RoleRules:
    if not isinstance(raw, Mapping):
        problems.add(path, "must be an object")
        return RoleRules()
    for key in sorted(set(raw) - _ROLE_KEYS, key=str):
        problems.add(f"{path}.{key}", "unknown key")

    lists: dict[str, tuple[str, ...] | None] = {}
    for key, allowed in _ALLOW_LIST_KEYS.items():
        lists[key] = allow_list(raw.get(key), f"{path}.{key}", allowed, problems)

    tools_allow: tuple[str, ...] | None = None
    if (tools := raw.get("tools")) is not None:
        if not isinstance(tools, Mapping) or set(tools) - {"allow"}:
            problems.add(f"{path}.tools", 'must be an object {"allow": [tool names]}')
        else:
            # An empty tools allow-list is meaningful: no tools at all.
            tools_allow = allow_list(
                tools.get("allow"), f"{path}.tools.allow", None, problems, allow_empty=True
            )

    channel = client_channel(raw.get("client_channel"), path, problems)
    max_tokens = raw.get("max_output_tokens")
    if max_tokens is not None and not (
        is_int(max_tokens)
        and MAX_OUTPUT_TOKENS_BOUNDS[0] <= max_tokens <= MAX_OUTPUT_TOKENS_BOUNDS[1]
    ):
        problems.add(f"{path}.max_output_tokens", "must be an integer from 1 to 4096")
        max_tokens = None

    return RoleRules(
        models=lists["models"],
        voices=lists["voices"],
        modalities=lists["modalities"],
        audio_formats=lists["audio_formats"],
        transcription_models=lists["transcription_models"],
        reasoning_efforts=lists["reasoning_efforts"],
        translation_models=lists["translation_models"],
        translation_languages=lists["translation_languages"],
        tools_allow=tools_allow,
        temperature=range_rule(
            raw.get("temperature"), f"{path}.temperature", TEMPERATURE_BOUNDS, problems
        ),
        max_output_tokens=cast(int | None, max_tokens),
        speed=range_rule(raw.get("speed"), f"{path}.speed", SPEED_BOUNDS, problems),
        turn_detection=turn_detection_rule(
            raw.get("turn_detection"), f"{path}.turn_detection", problems
        ),
        instructions=instructions_rule(raw.get("instructions"), f"{path}.instructions", problems),
        ttl_seconds=ttl_rule(raw.get("ttl_seconds"), f"{path}.ttl_seconds", problems),
        limits=parse_limits(raw.get("limits", []), f"{path}.limits", problems),
        vector_store_limits=(
            parse_limits(raw["vector_store_limits"], f"{path}.vector_store_limits", problems)
            if "vector_store_limits" in raw
            else None
        ),
        max_concurrent_calls=positive_int(raw, "max_concurrent_calls", path, problems),
        max_call_seconds=positive_int(raw, "max_call_seconds", path, problems),
        daily_token_budget=positive_int(raw, "daily_token_budget", path, problems),
        daily_minute_budget=positive_int(raw, "daily_minute_budget", path, problems),
        daily_usd_budget=positive_amount(raw, "daily_usd_budget", path, problems),
        monthly_usd_budget=positive_amount(raw, "monthly_usd_budget", path, problems),
        on_session_update=on_session_update(raw.get("on_session_update"), path, problems),
        client_channel=channel,
        mint=mint_rule(raw.get("mint"), channel, path, problems),
        client_events=allow_list(
            raw.get("client_events"), f"{path}.client_events", None, problems, allow_empty=True
        )
        or (() if raw.get("client_events") == [] else DEFAULT_CLIENT_EVENTS),
        server_events=allow_list(raw.get("server_events"), f"{path}.server_events", None, problems),
    )


def render_policy(policy: Policy) -> dict[str, Any]:
    """The policy as the JSON `parse_policy` reads: `parse_policy(render_policy(p)) == p`,
    so the effective policy `config check` prints can be fed back as BROKER_POLICY."""
    return {
        "default_role": policy.default_role,
        "on_violation": policy.on_violation,
        "tenant_limits": [limit.text for limit in policy.tenant_limits],
        "roles": {name: _render_role(rules) for name, rules in policy.roles.items()},
    }


def _render_range(rule: Range | None) -> dict[str, float] | None:
    if rule is None:
        return None
    return {k: v for k, v in (("min", rule.min), ("max", rule.max), ("default", rule.default))
            if v is not None}  # fmt: skip


def _render_role(rules: RoleRules) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in _ALLOW_LIST_KEYS:
        if (values := getattr(rules, key)) is not None:
            out[key] = list(values)
    if rules.tools_allow is not None:
        out["tools"] = {"allow": list(rules.tools_allow)}
    for key in ("temperature", "speed"):
        if (rendered := _render_range(getattr(rules, key))) is not None:
            out[key] = rendered
    if rules.max_output_tokens is not None:
        out["max_output_tokens"] = rules.max_output_tokens
    if (vad := rules.turn_detection) is not None:
        turn: dict[str, Any] = {} if vad.types is None else {"types": list(vad.types)}
        for key in ("silence_duration_ms", "prefix_padding_ms", "threshold"):
            if (rendered := _render_range(getattr(vad, key))) is not None:
                turn[key] = rendered
        out["turn_detection"] = turn
    instructions: dict[str, Any] = {"mode": rules.instructions.mode}
    if rules.instructions.text:
        instructions["text"] = rules.instructions.text
    if rules.instructions.max_chars is not None:
        instructions["max_chars"] = rules.instructions.max_chars
    out["instructions"] = instructions
    out["ttl_seconds"] = {"default": rules.ttl_seconds.default, "max": rules.ttl_seconds.max}
    out["limits"] = [limit.text for limit in rules.limits]
    if rules.vector_store_limits is not None:
        out["vector_store_limits"] = [limit.text for limit in rules.vector_store_limits]
    for key in ("max_concurrent_calls", "max_call_seconds", "daily_token_budget",
                "daily_minute_budget", "daily_usd_budget", "monthly_usd_budget"):  # fmt: skip
        if (value := getattr(rules, key)) is not None:
            out[key] = value
    out["on_session_update"] = rules.on_session_update
    out["client_channel"] = rules.client_channel
    if not rules.mint:
        out["mint"] = False
    out["client_events"] = list(rules.client_events)
    if rules.server_events is not None:
        out["server_events"] = list(rules.server_events)
    return out
