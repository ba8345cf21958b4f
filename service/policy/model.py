"""The session policy as data (README "Policy"): what each role may get.

Parsing and validation live in `parse_policy` (service.policy.parse); this module only holds
the frozen shapes so that settings, policy and handlers share one vocabulary.
`None` for an allow-list or a range means "whatever the upstream allows".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from service.limits import Limit

InstructionsMode = Literal["server", "prefix", "client"]
OnViolation = Literal["clamp", "reject"]
OnSessionUpdate = Literal["reapply", "hangup"]
ClientChannel = Literal["data_channel", "relay"]
# What a browser may send through the relay by default: enough for a voice app, and none
# of it can change the session (README "Call control", the relay).
DEFAULT_CLIENT_EVENTS = (
    "response.create",
    "response.cancel",
    "conversation.item.create",
    "conversation.item.delete",
    "input_audio_buffer.clear",
    "output_audio_buffer.clear",
)


@dataclass(frozen=True, slots=True)
class Range:
    min: float | None = None
    max: float | None = None
    default: float | None = None


@dataclass(frozen=True, slots=True)
class InstructionsRule:
    mode: InstructionsMode = "client"
    text: str = ""
    max_chars: int | None = None


@dataclass(frozen=True, slots=True)
class TurnDetectionRule:
    # Allowed `type` values (server_vad, semantic_vad); the first is the default.
    types: tuple[str, ...] | None = None
    silence_duration_ms: Range | None = None
    prefix_padding_ms: Range | None = None
    threshold: Range | None = None


@dataclass(frozen=True, slots=True)
class TtlRule:
    default: int = 60
    max: int = 600


@dataclass(frozen=True, slots=True)
class RoleRules:
    models: tuple[str, ...] | None = None
    voices: tuple[str, ...] | None = None
    modalities: tuple[str, ...] | None = None
    # Audio formats in the normalized (GA) spelling: audio/pcm, audio/pcmu, audio/pcma.
    audio_formats: tuple[str, ...] | None = None
    transcription_models: tuple[str, ...] | None = None
    # `reasoning.effort` of reasoning models (gpt-realtime-2 and later).
    reasoning_efforts: tuple[str, ...] | None = None
    # Translation mints (POST /v1/realtime/translations/client_secrets): None means the
    # role may not mint one; languages: None means any target language.
    translation_models: tuple[str, ...] | None = None
    translation_languages: tuple[str, ...] | None = None
    tools_allow: tuple[str, ...] | None = None
    temperature: Range | None = None
    max_output_tokens: int | None = None
    speed: Range | None = None
    turn_detection: TurnDetectionRule | None = None
    instructions: InstructionsRule = field(default_factory=InstructionsRule)
    ttl_seconds: TtlRule = field(default_factory=TtlRule)
    limits: tuple[Limit, ...] = ()
    # Per-user limits of the vector-store endpoints (own buckets); None means `limits`.
    vector_store_limits: tuple[Limit, ...] | None = None
    # Call control (README "Call control"); None means no limit.
    max_concurrent_calls: int | None = None
    max_call_seconds: int | None = None
    # Per user and UTC day, metered on the sideband; None means no budget.
    daily_token_budget: int | None = None
    daily_minute_budget: int | None = None
    # Money budgets per user (USD, UTC day and UTC month), spent by supervised calls' usage
    # as priced (service.usage); None means no budget.
    daily_usd_budget: float | None = None
    monthly_usd_budget: float | None = None
    # What the broker does when a client changes a policy-controlled field mid-call.
    on_session_update: OnSessionUpdate = "reapply"
    # The browser's channel for events: WebRTC's data channel straight to OpenAI, or the
    # broker's relay (an audio-only offer; events through the broker, policed).
    client_channel: ClientChannel = "data_channel"
    # Whether the role may mint client secrets at all (every secret mint). A secret's
    # holder talks to OpenAI directly and may override its session, so a role that must
    # stay supervised gets none: a `relay` role never mints.
    mint: bool = True
    # Event types the relay forwards from the browser, and to it (None: every one).
    client_events: tuple[str, ...] = DEFAULT_CLIENT_EVENTS
    server_events: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class Policy:
    default_role: str
    on_violation: OnViolation
    tenant_limits: tuple[Limit, ...]
    roles: Mapping[str, RoleRules]

    def rules_for(self, role: str) -> RoleRules:
        """A role missing from the policy gets `default_role`'s rules."""
        rules = self.roles.get(role)
        if rules is None:
            rules = self.roles[self.default_role]
        return rules

    def user_limits(self) -> dict[str, tuple[Limit, ...]]:
        """Per-role user limits, for the store's single-round-trip admission."""
        return {role: rules.limits for role, rules in self.roles.items()}
