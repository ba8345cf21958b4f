"""The session policy (DESIGN.md section 5): parsing it, and applying it to a mint request.

`parse_policy` turns the policy JSON into the frozen shapes of `service.policy_model`,
collecting every problem (each names the role and key) before raising `PolicyError`.
`apply_policy` is a pure function from (policy, role, request) to (effective request,
adjusted field paths); the rules for each field are in its docstring.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Literal, cast

from service.errors import InvalidValue, PolicyViolation
from service.limits import Limit, parse_limit
from service.policy_model import (
    InstructionsRule,
    OnSessionUpdate,
    Policy,
    Range,
    RoleRules,
    TtlRule,
    TurnDetectionRule,
)
from service.session import (
    AUDIO_FORMATS,
    INSTRUCTIONS_HARD_CAP,
    MAX_ID_CHARS,
    MODALITIES,
    TTL_MAX,
    TTL_MIN,
    VAD_TYPES,
    AudioFormat,
    FunctionTool,
    MintRequest,
    Tool,
    ToolChoice,
    Transcription,
    TurnDetection,
    client_param,
)

# The temperature any role may get, whatever the policy says (beta upstream's useful range).
TEMPERATURE_BOUNDS = (0.6, 1.2)
SPEED_BOUNDS = (0.25, 1.5)
MAX_OUTPUT_TOKENS_BOUNDS = (1, 4096)
# VAD numbers: the spec gives no bounds for durations; these keep a policy sane.
DURATION_MS_BOUNDS = (0, 10_000)
THRESHOLD_BOUNDS = (0.0, 1.0)

_TOP_KEYS = frozenset({"default_role", "on_violation", "tenant_limits", "roles"})
_ALLOW_LIST_KEYS = {
    "models": None,
    "voices": None,
    "modalities": MODALITIES,
    "audio_formats": AUDIO_FORMATS,
    "transcription_models": None,
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
        "on_session_update",
    }
)
_INSTRUCTION_MODES = ("server", "prefix", "client")

DEFAULT_LIMITS = ("10/minute", "500/day")
_TTL = TtlRule()


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


# ---------------------------------------------------------------------------------------
# Parsing


class _Problems:
    """Collects problems so that one run reports all of them."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, path: str, message: str) -> None:
        self.items.append(f"{path}: {message}")


def _is_number(value: object) -> bool:
    # bool is an int subclass; `true` is never a number in a policy.
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_policy(data: object) -> Policy:
    """Validate the policy JSON (already decoded) and build a `Policy`.

    Raises `PolicyError` listing every problem, e.g.
    `roles.reader.temperature.max: must be ≤ 1.2`.
    """
    problems = _Problems()
    if not isinstance(data, Mapping):
        raise PolicyError(["policy: must be a JSON object"])
    for key in sorted(set(data) - _TOP_KEYS):
        problems.add(str(key), "unknown key")

    on_violation = data.get("on_violation", "clamp")
    if on_violation not in ("clamp", "reject"):
        problems.add("on_violation", 'must be "clamp" or "reject"')
        on_violation = "clamp"

    tenant_limits = _parse_limits(data.get("tenant_limits", []), "tenant_limits", problems)

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


def _parse_limits(raw: object, path: str, problems: _Problems) -> tuple[Limit, ...]:
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


def _parse_role(raw: object, path: str, problems: _Problems) -> RoleRules:
    if not isinstance(raw, Mapping):
        problems.add(path, "must be an object")
        return RoleRules()
    for key in sorted(set(raw) - _ROLE_KEYS, key=str):
        problems.add(f"{path}.{key}", "unknown key")

    lists: dict[str, tuple[str, ...] | None] = {}
    for key, allowed in _ALLOW_LIST_KEYS.items():
        lists[key] = _allow_list(raw.get(key), f"{path}.{key}", allowed, problems)

    tools_allow: tuple[str, ...] | None = None
    if (tools := raw.get("tools")) is not None:
        if not isinstance(tools, Mapping) or set(tools) - {"allow"}:
            problems.add(f"{path}.tools", 'must be an object {"allow": [tool names]}')
        else:
            # An empty tools allow-list is meaningful: no tools at all.
            tools_allow = _allow_list(
                tools.get("allow"), f"{path}.tools.allow", None, problems, allow_empty=True
            )

    max_tokens = raw.get("max_output_tokens")
    if max_tokens is not None and not (
        _is_int(max_tokens)
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
        tools_allow=tools_allow,
        temperature=_range(
            raw.get("temperature"), f"{path}.temperature", TEMPERATURE_BOUNDS, problems
        ),
        max_output_tokens=cast(int | None, max_tokens),
        speed=_range(raw.get("speed"), f"{path}.speed", SPEED_BOUNDS, problems),
        turn_detection=_turn_detection(
            raw.get("turn_detection"), f"{path}.turn_detection", problems
        ),
        instructions=_instructions(raw.get("instructions"), f"{path}.instructions", problems),
        ttl_seconds=_ttl(raw.get("ttl_seconds"), f"{path}.ttl_seconds", problems),
        limits=_parse_limits(raw.get("limits", []), f"{path}.limits", problems),
        vector_store_limits=(
            _parse_limits(raw["vector_store_limits"], f"{path}.vector_store_limits", problems)
            if "vector_store_limits" in raw
            else None
        ),
        max_concurrent_calls=_positive_int(raw, "max_concurrent_calls", path, problems),
        max_call_seconds=_positive_int(raw, "max_call_seconds", path, problems),
        daily_token_budget=_positive_int(raw, "daily_token_budget", path, problems),
        daily_minute_budget=_positive_int(raw, "daily_minute_budget", path, problems),
        on_session_update=_on_session_update(raw.get("on_session_update"), path, problems),
    )


def _on_session_update(raw: object, path: str, problems: _Problems) -> OnSessionUpdate:
    if raw is None:
        return "reapply"
    if raw == "hangup":
        return "hangup"
    if raw != "reapply":
        problems.add(f"{path}.on_session_update", 'must be "reapply" or "hangup"')
    return "reapply"


def _allow_list(
    raw: object,
    path: str,
    allowed: tuple[str, ...] | None,
    problems: _Problems,
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


def _range(
    raw: object, path: str, bounds: tuple[float, float], problems: _Problems
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
        elif not _is_number(value):
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


def _turn_detection(raw: object, path: str, problems: _Problems) -> TurnDetectionRule | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        problems.add(path, "must be an object")
        return None
    known = {"types", "silence_duration_ms", "prefix_padding_ms", "threshold"}
    for key in sorted(set(raw) - known, key=str):
        problems.add(f"{path}.{key}", "unknown key")
    return TurnDetectionRule(
        types=_allow_list(raw.get("types"), f"{path}.types", VAD_TYPES, problems),
        silence_duration_ms=_range(
            raw.get("silence_duration_ms"),
            f"{path}.silence_duration_ms",
            DURATION_MS_BOUNDS,
            problems,
        ),
        prefix_padding_ms=_range(
            raw.get("prefix_padding_ms"), f"{path}.prefix_padding_ms", DURATION_MS_BOUNDS, problems
        ),
        threshold=_range(raw.get("threshold"), f"{path}.threshold", THRESHOLD_BOUNDS, problems),
    )


def _instructions(raw: object, path: str, problems: _Problems) -> InstructionsRule:
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
        _is_int(max_chars) and 1 <= max_chars <= INSTRUCTIONS_HARD_CAP
    ):
        problems.add(f"{path}.max_chars", f"must be an integer from 1 to {INSTRUCTIONS_HARD_CAP}")
        max_chars = None
    return InstructionsRule(mode=mode, text=text, max_chars=cast(int | None, max_chars))


def _ttl(raw: object, path: str, problems: _Problems) -> TtlRule:
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
        if not _is_int(value) or not TTL_MIN <= value <= TTL_MAX:
            problems.add(f"{path}.{key}", f"must be an integer from {TTL_MIN} to {TTL_MAX}")
            value = fallback
        values[key] = value
    if values["default"] > values["max"]:
        problems.add(f"{path}.default", "must be ≤ max")
    return TtlRule(default=values["default"], max=values["max"])


def _positive_int(raw: Mapping[str, Any], key: str, path: str, problems: _Problems) -> int | None:
    value = raw.get(key)
    if value is None:
        return None
    if not _is_int(value) or value < 1:
        problems.add(f"{path}.{key}", "must be a positive integer")
        return None
    return cast(int, value)


# ---------------------------------------------------------------------------------------
# Applying


def apply_policy(policy: Policy, role: str, request: MintRequest) -> tuple[MintRequest, list[str]]:
    """The effective request for `role`, and the GA paths the policy changed.

    Adjusted paths (for `X-Policy-Adjusted`): `session.model`, `session.output_modalities`,
    `session.audio.output.voice`, `session.audio.input.format`, `session.audio.output.format`,
    `session.audio.input.transcription.model`, `session.audio.input.turn_detection.type`,
    `session.audio.input.turn_detection.{silence_duration_ms,prefix_padding_ms,threshold}`,
    `session.temperature`, `session.max_output_tokens`, `session.audio.output.speed`,
    `session.instructions`, `session.tools`, `session.tool_choice`, `expires_after.seconds`.

    - Allow-lists: a value outside → PolicyViolation (`reject`) or the first entry
      (`clamp`, listed). Nothing requested → the first entry (not listed). Modalities are
      a set: nothing requested keeps the upstream default (audio) when audio is allowed.
      A transcription model is filled only when transcription is on. Tools are never
      added; a tool outside `tools.allow` is dropped (clamp) and a forced `tool_choice`
      naming it becomes `auto`.
    - Ranges are always clamped (temperature also into [0.6, 1.2]); a role `default`
      fills a missing value, unlisted. `max_output_tokens` caps `inf` and fills a missing value.
    - Instructions: `server` replaces the client's (listed when the client sent other
      text), `prefix` puts the policy text and a blank line before the client's (listed
      when the client sent any), `client` keeps it; the policy text fills a missing value.
      The client's text longer than `max_chars` → InvalidValue in `prefix`/`client` mode.
    - TTL: the requested value clamped to the role's max, or the role's default.
    """
    rules = policy.rules_for(role)
    apply = _Application(policy, request)
    s = request.session
    changes: dict[str, Any] = {
        "input_format": apply.audio_format(s.input_format, rules, "session.audio.input.format"),
        "transcription": apply.transcription(s.transcription, rules, request.kind),
        "turn_detection": apply.turn_detection(s.turn_detection, rules.turn_detection),
    }
    if request.kind == "realtime":
        voice = apply.choose(s.voice, rules.voices, "session.audio.output.voice")
        changes.update(
            model=apply.choose(s.model, rules.models, "session.model"),
            output_modalities=apply.modalities(s.output_modalities, rules.modalities),
            voice=voice,
            custom_voice=s.custom_voice and voice == s.voice,
            output_format=apply.audio_format(s.output_format, rules, "session.audio.output.format"),
            temperature=apply.clamp(
                s.temperature, rules.temperature, "session.temperature", TEMPERATURE_BOUNDS
            ),
            speed=apply.clamp(s.speed, rules.speed, "session.audio.output.speed", SPEED_BOUNDS),
            max_output_tokens=apply.max_tokens(s.max_output_tokens, rules.max_output_tokens),
            instructions=apply.instructions(s.instructions, rules.instructions),
        )
        changes["tools"], changes["tool_choice"] = apply.tools(
            s.tools, s.tool_choice, rules.tools_allow
        )
    ttl = rules.ttl_seconds.default
    if request.ttl_seconds is not None:
        ttl = min(request.ttl_seconds, rules.ttl_seconds.max)
        if ttl != request.ttl_seconds:
            apply.adjusted.append("expires_after.seconds")
    effective = MintRequest(
        kind=request.kind,
        session=replace(s, **changes),
        ttl_seconds=ttl,
        endpoint=request.endpoint,
        defaulted=frozenset(request.defaulted | apply.defaulted),
    )
    return effective, list(dict.fromkeys(apply.adjusted))


class _Application:
    """The running state of one `apply_policy` call: what was adjusted or defaulted."""

    def __init__(self, policy: Policy, request: MintRequest) -> None:
        self.reject = policy.on_violation == "reject"
        self.endpoint = request.endpoint
        self.adjusted: list[str] = []
        self.defaulted: set[str] = set()

    def violation(self, path: str, allowed: tuple[str, ...] | None = None) -> None:
        """Raise in reject mode; otherwise record the adjustment."""
        if self.reject:
            param = client_param(self.endpoint, path)
            hint = f" Allowed: {', '.join(allowed)}." if allowed else ""
            raise PolicyViolation(
                f"The value of '{param}' is not allowed for this role.{hint}", param=param
            )
        self.adjusted.append(path)

    def choose(self, value: str | None, allowed: tuple[str, ...] | None, path: str) -> str | None:
        if allowed is None or value in allowed:
            return value
        if value is None:
            self.defaulted.add(path)
            return allowed[0]
        self.violation(path, allowed)
        return allowed[0]

    def modalities(
        self, value: tuple[str, ...] | None, allowed: tuple[str, ...] | None
    ) -> tuple[str, ...] | None:
        if allowed is None or (value is None and "audio" in allowed):
            return value
        if value is None:
            self.defaulted.add("session.output_modalities")
            return ("text",)
        if value[0] in allowed:
            return value
        self.violation("session.output_modalities", allowed)
        return ("text",) if "text" in allowed else ("audio",)

    def audio_format(
        self, value: AudioFormat | None, rules: RoleRules, path: str
    ) -> AudioFormat | None:
        chosen = self.choose(value.type if value else None, rules.audio_formats, path)
        if chosen is None or (value is not None and chosen == value.type):
            return value
        return AudioFormat(chosen, 24000 if chosen == "audio/pcm" else None)

    def transcription(
        self, value: Transcription | None, rules: RoleRules, kind: str
    ) -> Transcription | None:
        allowed = rules.transcription_models
        if allowed is None or (value is None and kind == "realtime"):
            return value  # a realtime session's transcription stays off unless asked for
        current = value or Transcription()
        model = self.choose(current.model, allowed, "session.audio.input.transcription.model")
        return replace(current, model=model)

    def turn_detection(
        self, value: TurnDetection | Literal["off"] | None, rule: TurnDetectionRule | None
    ) -> TurnDetection | Literal["off"] | None:
        if rule is None or value == "off":
            return value
        path = "session.audio.input.turn_detection"
        detection = value or TurnDetection(type=rule.types[0] if rule.types else "server_vad")
        if value is None and rule.types is None:
            return None
        if value is None:
            self.defaulted.add(path)
        elif rule.types is not None and detection.type not in rule.types:
            self.violation(f"{path}.type", rule.types)
            detection = TurnDetection(
                type=rule.types[0],
                create_response=detection.create_response,
                interrupt_response=detection.interrupt_response,
            )
        if detection.type != "server_vad":
            return detection
        silence = self.clamp(
            detection.silence_duration_ms, rule.silence_duration_ms, f"{path}.silence_duration_ms"
        )
        padding = self.clamp(
            detection.prefix_padding_ms, rule.prefix_padding_ms, f"{path}.prefix_padding_ms"
        )
        return replace(
            detection,
            silence_duration_ms=None if silence is None else round(silence),
            prefix_padding_ms=None if padding is None else round(padding),
            threshold=self.clamp(detection.threshold, rule.threshold, f"{path}.threshold"),
        )

    def clamp(
        self,
        value: float | None,
        rule: Range | None,
        path: str,
        bounds: tuple[float, float] | None = None,
    ) -> float | None:
        low, high = bounds if bounds else (-math.inf, math.inf)
        if rule is not None:
            low = max(low, rule.min if rule.min is not None else low)
            high = min(high, rule.max if rule.max is not None else high)
        if value is None:
            if rule is None or rule.default is None:
                return None
            self.defaulted.add(path)
            return rule.default
        clamped = min(max(value, low), high)
        if clamped != value:
            self.adjusted.append(path)
        return clamped

    def max_tokens(
        self, value: int | Literal["inf"] | None, cap: int | None
    ) -> int | Literal["inf"] | None:
        if cap is None:
            return value
        if value is None:
            self.defaulted.add("session.max_output_tokens")
            return cap
        if value == "inf" or value > cap:
            self.adjusted.append("session.max_output_tokens")
            return cap
        return value

    def instructions(self, value: str | None, rule: InstructionsRule) -> str | None:
        path = "session.instructions"
        limit = rule.max_chars
        if value is not None and rule.mode != "server" and limit is not None and len(value) > limit:
            param = client_param(self.endpoint, path)
            raise InvalidValue(
                f"'{param}' is longer than the {limit} characters allowed.", param=param
            )
        if value is None:
            if rule.text:
                self.defaulted.add(path)
                return rule.text
            return None
        if rule.mode == "server" or (rule.mode == "prefix" and rule.text):
            result = rule.text if rule.mode == "server" else f"{rule.text}\n\n{value}"
            if result != value:
                self.adjusted.append(path)
            return result
        return value

    def tools(
        self,
        tools: tuple[Tool, ...] | None,
        choice: str | ToolChoice | None,
        allowed: tuple[str, ...] | None,
    ) -> tuple[tuple[Tool, ...] | None, str | ToolChoice | None]:
        if allowed is None:
            return tools, choice
        kept: list[Tool] = []
        for index, tool in enumerate(tools or ()):
            if isinstance(tool, FunctionTool):
                name, key = tool.name, "name"
            else:
                name, key = tool.server_label, "server_label"
            if name in allowed:
                kept.append(tool)
                continue
            if self.reject:
                self.violation(f"session.tools[{index}].{key}", allowed)
            self.adjusted.append("session.tools")
        if isinstance(choice, ToolChoice):
            forced = choice.name if choice.type == "function" else choice.server_label
            if forced not in allowed:
                self.violation("session.tool_choice", allowed)
                choice = "auto"
        elif choice == "required" and tools and not kept:
            self.adjusted.append("session.tool_choice")
            choice = "auto"
        return (tuple(kept) if tools is not None else None), choice
