"""What the ledger counts (pure): token kinds as OpenAI reports them, one call's usage
not yet written (`Pending`), the entries a batch writes (`LedgerEntry`) and the spend a
write answers with (`Spend`).

Token kinds are the admin usage API's own names (`input_text_tokens` is uncached text
input, `input_cached_text_tokens` the cached part, ...). A Realtime `response.done`
reports text, audio and image input with the cached share inside each
(`input_token_details.cached_tokens_details`); the Responses API (a GPT-Live session's
delegated backend) reports text only, cached inside `input_tokens_details`. Money is
kept in nano-USD (integers): prices per 1M tokens with up to three decimals give whole
nano-dollars per token, so sums are exact.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

TOKEN_KINDS = (
    "input_text_tokens",
    "input_cached_text_tokens",
    "input_audio_tokens",
    "input_cached_audio_tokens",
    "input_image_tokens",
    "input_cached_image_tokens",
    "output_text_tokens",
    "output_audio_tokens",
)
INPUT_KINDS = TOKEN_KINDS[:6]
CACHED_KINDS = (
    "input_cached_text_tokens",
    "input_cached_audio_tokens",
    "input_cached_image_tokens",
)
OUTPUT_KINDS = TOKEN_KINDS[6:]
# The line item of call time (GPT-Live is priced per minute, billed per second).
MINUTES = "minutes"
NANO = 1_000_000_000
# The model of usage whose model the broker could not learn: unpriced, and visible.
UNKNOWN_MODEL = "unknown"

Counts = dict[str, int]


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _dict(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def realtime_counts(usage: object) -> Counts:
    """The kinds of a Realtime `response.done` usage. Without details, input and output
    count as text (the modality is unknown; text is the cheaper guess, and it shows)."""
    usage = _dict(usage)
    counts: Counts = {}
    details_in, details_out = usage.get("input_token_details"), usage.get("output_token_details")
    if isinstance(details_in, dict):
        cached = _dict(details_in.get("cached_tokens_details"))
        cached_total = _int(details_in.get("cached_tokens"))
        for modality in ("text", "audio", "image"):
            total = _int(details_in.get(f"{modality}_tokens"))
            if cached:
                hit = min(total, _int(cached.get(f"{modality}_tokens")))
            else:
                # No breakdown of the cached tokens: they are taken from text first.
                hit = min(total, cached_total)
                cached_total -= hit
            counts[f"input_{modality}_tokens"] = total - hit
            counts[f"input_cached_{modality}_tokens"] = hit
    else:
        counts["input_text_tokens"] = _int(usage.get("input_tokens"))
    if isinstance(details_out, dict):
        counts["output_text_tokens"] = _int(details_out.get("text_tokens"))
        counts["output_audio_tokens"] = _int(details_out.get("audio_tokens"))
    else:
        counts["output_text_tokens"] = _int(usage.get("output_tokens"))
    return {k: v for k, v in counts.items() if v}


def responses_counts(usage: object) -> Counts:
    """The kinds of a Responses API usage (`response.completed`): text only."""
    usage = _dict(usage)
    total = _int(usage.get("input_tokens"))
    cached = min(total, _int(_dict(usage.get("input_tokens_details")).get("cached_tokens")))
    counts = {
        "input_text_tokens": total - cached,
        "input_cached_text_tokens": cached,
        "output_text_tokens": _int(usage.get("output_tokens")),
    }
    return {k: v for k, v in counts.items() if v}


@dataclass(slots=True)
class Tally:
    """One model's usage of one call since its last write."""

    counts: Counts = field(default_factory=dict)
    requests: int = 0

    def add(self, counts: Mapping[str, int], requests: int) -> None:
        for kind, n in counts.items():
            self.counts[kind] = self.counts.get(kind, 0) + n
        self.requests += requests


class Pending:
    """A held call's usage read on its sideband and not yet in the ledger, per model. Small:
    thousands of calls hold one."""

    __slots__ = ("by_model",)

    def __init__(self) -> None:
        self.by_model: dict[str, Tally] = {}

    def __bool__(self) -> bool:
        return bool(self.by_model)

    def add(self, model: str, counts: Mapping[str, int], requests: int = 1) -> None:
        tally = self.by_model.get(model)
        if tally is None:
            tally = self.by_model[model] = Tally()
        tally.add(counts, requests)

    def take(self) -> dict[str, Tally]:
        """What is pending, handed over (and no longer pending)."""
        taken, self.by_model = self.by_model, {}
        return taken

    def restore(self, taken: Mapping[str, Tally]) -> None:
        """A write that failed: its usage is pending again (before anything newer)."""
        for model, tally in taken.items():
            self.add(model, tally.counts, tally.requests)


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """What one batch adds for one tenant, user and model: tokens by kind, responses,
    call seconds, and the money (nano-USD) by line kind (a token kind or `minutes`)."""

    tenant: str
    user_id: str
    model: str
    counts: Mapping[str, int] = field(default_factory=dict)
    requests: int = 0
    seconds: float = 0.0
    cost: Mapping[str, int] = field(default_factory=dict)

    @property
    def nano(self) -> int:
        return sum(self.cost.values())


@dataclass(frozen=True, slots=True)
class Spend:
    """Money spent (nano-USD): the user's UTC day and month, the tenant's UTC month; the
    tenant's spend limit (cents), if one is set."""

    user_day: int = 0
    user_month: int = 0
    tenant_month: int = 0
    limit_cents: int | None = None

    @property
    def limit_reached(self) -> bool:
        return self.limit_cents is not None and self.tenant_month >= self.limit_cents * (
            NANO // 100
        )


def usd(nano: int) -> float:
    return nano / NANO
