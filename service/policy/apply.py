"""Applying the session policy (README "Policy") to a mint request.

`apply_policy` is a pure function from (policy, role, request) to (effective request,
adjusted field paths); the rules for each field are in its docstring. Reading the policy
JSON is `service.policy.parse`'s job.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from service.policy.application import PolicyApplication, apply_instructions
from service.policy.model import Policy
from service.policy.values import SPEED_BOUNDS, TEMPERATURE_BOUNDS
from service.session.model import MintRequest, Session

__all__ = ["apply_instructions", "apply_policy", "with_changes"]


def apply_policy(policy: Policy, role: str, request: MintRequest) -> tuple[MintRequest, list[str]]:
    """The effective request for `role`, and the GA paths the policy changed.

    Adjusted paths (for `X-Policy-Adjusted`): `session.model`, `session.output_modalities`,
    `session.audio.output.voice`, `session.audio.input.format`, `session.audio.output.format`,
    `session.audio.input.transcription.model`, `session.audio.input.turn_detection.type`,
    `session.audio.input.turn_detection.{silence_duration_ms,prefix_padding_ms,threshold}`,
    `session.temperature`, `session.max_output_tokens`, `session.audio.output.speed`,
    `session.instructions`, `session.prompt`, `session.tools`, `session.tool_choice`,
    `session.reasoning.effort`, `expires_after.seconds`.

    - Allow-lists: a value outside → PolicyViolation (`reject`) or the first entry
      (`clamp`, listed). Nothing requested → the first entry (not listed). Modalities are
      a set: nothing requested keeps the upstream default (audio) when audio is allowed.
      A transcription model is filled only when transcription is on. Tools are never
      added; a tool outside `tools.allow` is dropped (clamp) and a forced `tool_choice`
      naming it becomes `auto`. `reasoning_efforts`: an effort outside the list is
      clamped or refused whatever the model; none asked for, the first entry is filled in
      only for a model known to reason (`is_reasoning_model`), which others would refuse.
    - Ranges are always clamped (temperature also into [0.6, 1.2]); a role `default`
      fills a missing value, unlisted. `max_output_tokens` caps `inf` and fills a missing value.
    - Instructions: `server` replaces the client's (listed when the client sent other
      text), `prefix` puts the policy text and a blank line before the client's (listed
      when the client sent any), `client` keeps it; the policy text fills a missing value.
      The client's text longer than `max_chars` → InvalidValue in `prefix`/`client` mode.
      Under `server` a prompt reference (which brings instructions of its own) is dropped,
      listed (`clamp`), or refused (`reject`).
    - TTL: the requested value clamped to the role's max, or the role's default.
    """
    rules = policy.rules_for(role)
    apply = PolicyApplication(policy, request.endpoint)
    s = request.session
    changes: dict[str, Any] = {
        "input_format": apply.audio_format(s.input_format, rules, "session.audio.input.format"),
        "transcription": apply.transcription(s.transcription, rules, request.kind),
        "turn_detection": apply.turn_detection(s.turn_detection, rules.turn_detection),
    }
    if request.kind == "realtime":
        voice = apply.choose(s.voice, rules.voices, "session.audio.output.voice")
        model = apply.choose(s.model, rules.models, "session.model")
        changes.update(
            model=model,
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
            prompt=apply.prompt(s.prompt, rules.instructions),
            reasoning=apply.reasoning(s.reasoning, rules.reasoning_efforts, model),
        )
        changes["tools"], changes["tool_choice"] = apply.tools(
            s.tools, s.tool_choice, rules.tools_allow
        )
    effective = MintRequest(
        kind=request.kind,
        session=with_changes(s, changes),
        ttl_seconds=apply.ttl(request.ttl_seconds, rules.ttl_seconds),
        endpoint=request.endpoint,
        defaulted=frozenset(request.defaulted | apply.defaulted),
    )
    return effective, list(dict.fromkeys(apply.adjusted))


def with_changes(session: Session, changes: dict[str, Any]) -> Session:
    """`replace(session, **changes)`, without the rebuild when no value changed.

    `replace` constructs all of Session's fields (~3.5 µs, more than the rest of
    `apply_policy`), and under most policies every value comes back as the very object
    the client sent. Any other value, even an equal one, means a full `replace`.
    tests/policy/test_apply_fast.py checks this against `replace` itself."""
    for name, value in changes.items():
        if value is not getattr(session, name):
            return replace(session, **changes)
    return session
