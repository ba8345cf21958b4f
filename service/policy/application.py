"""The running state of one application of the policy: the rule of each field, and what
it adjusted or filled in (pure). `service.policy.apply.apply_policy` (a Realtime or
transcription session) and `service.policy.translation.apply_translation_policy` (a
translation mint) drive it field by field; the rules are in their docstrings.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, Literal

from service.errors import InvalidValue, PolicyViolation
from service.policy.model import (
    InstructionsRule,
    Policy,
    Range,
    RoleRules,
    TtlRule,
    TurnDetectionRule,
)
from service.session.model import (
    AudioFormat,
    Endpoint,
    FunctionTool,
    Tool,
    ToolChoice,
    Transcription,
    TurnDetection,
    client_param,
    is_reasoning_model,
)


def apply_instructions(
    value: str | None, rule: InstructionsRule, param: Callable[[], str]
) -> tuple[str | None, Literal["kept", "adjusted", "defaulted"]]:
    """The instructions a session gets under `rule` (the modes are in `apply_policy`'s
    docstring), and whether the client's were kept, changed, or filled in. `param()` names
    the client's field in the error for text longer than `max_chars` (only then: spelling
    a beta client's path costs ~2 µs, on a mint's path)."""
    limit = rule.max_chars
    if value is not None and rule.mode != "server" and limit is not None and len(value) > limit:
        name = param()
        raise InvalidValue(f"'{name}' is longer than the {limit} characters allowed.", param=name)
    if value is None:
        return (rule.text, "defaulted") if rule.text else (None, "kept")
    if rule.mode == "server" or (rule.mode == "prefix" and rule.text):
        result = rule.text if rule.mode == "server" else f"{rule.text}\n\n{value}"
        return result, "adjusted" if result != value else "kept"
    return value, "kept"


class Adjustments:
    """What one application of a role's rules adjusted, and the one way a value the rules
    do not allow is handled: refused in reject mode (a 400 naming it), else recorded.
    Shared by every provider's application (OpenAI mints and calls, GPT-Live, Gemini)."""

    def __init__(self, *, reject: bool) -> None:
        self.reject = reject
        self.adjusted: list[str] = []

    def param(self, path: str) -> str:
        """How the client spells `path` (as it is, unless a subclass knows better)."""
        return path

    def violation(self, path: str, allowed: tuple[str, ...] | None = None) -> None:
        """Raise in reject mode; otherwise record the adjustment."""
        if self.reject:
            param = self.param(path)
            hint = f" Allowed: {', '.join(allowed)}." if allowed else ""
            raise PolicyViolation(
                f"The value of '{param}' is not allowed for this role.{hint}", param=param
            )
        self.adjusted.append(path)


class PolicyApplication(Adjustments):
    """The running state of one application of the policy (`apply_policy`, or
    `apply_translation_policy` for a translation mint): what was adjusted or defaulted.
    `endpoint` spells a refused field's `param` the way its client does."""

    def __init__(self, policy: Policy, endpoint: Endpoint) -> None:
        super().__init__(reject=policy.on_violation == "reject")
        self.endpoint = endpoint
        self.defaulted: set[str] = set()

    def param(self, path: str) -> str:
        return client_param(self.endpoint, path)

    def choose(self, value: str | None, allowed: tuple[str, ...] | None, path: str) -> str | None:
        if allowed is None or value in allowed:
            return value
        if value is None:
            self.defaulted.add(path)
            return allowed[0]
        self.violation(path, allowed)
        return allowed[0]

    def ttl(self, value: int | None, rule: TtlRule) -> int:
        """The requested TTL clamped to the role's max, or the role's default."""
        if value is None:
            return rule.default
        ttl = min(value, rule.max)
        if ttl != value:
            self.adjusted.append("expires_after.seconds")
        return ttl

    def reasoning(
        self, value: Mapping[str, Any] | None, allowed: tuple[str, ...] | None, model: str | None
    ) -> Mapping[str, Any] | None:
        if allowed is None:
            return value
        path = "session.reasoning.effort"
        effort = None if value is None else value.get("effort")
        if effort is None:
            if not is_reasoning_model(model):
                return value
            self.defaulted.add(path)
            return {**(value or {}), "effort": allowed[0]}
        if effort in allowed:
            return value
        self.violation(path, allowed)
        return {**(value or {}), "effort": allowed[0]}

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
        result, outcome = apply_instructions(value, rule, lambda: client_param(self.endpoint, path))
        if outcome == "defaulted":
            self.defaulted.add(path)
        elif outcome == "adjusted":
            self.adjusted.append(path)
        return result

    def prompt(self, value: Mapping[str, Any] | None, rule: InstructionsRule) -> Any:
        """A prompt reference brings instructions of its own: under `server` mode the
        policy's are the only ones, so it is dropped (or refused under `reject`)."""
        if value is None or rule.mode != "server":
            return value
        self.violation("session.prompt")
        return None

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
