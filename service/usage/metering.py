"""From a held call's usage to the ledger's entries (pure): each model's tokens and
responses, the call's seconds (priced as the call's model), the money by the tenant's
prices; and the metrics of what was written.

Used by the call scheduler's batches (service.calls.spending `Spending.meter`): entries are
built from what each call's state took (`Pending.take`), and put back when the batch
is not written (`Pending.restore`), so a store that was down loses nothing and counts
nothing twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from service.usage.model import MINUTES, LedgerEntry, Tally, usd
from service.usage.prices import PriceTable

# The model label of usage whose model is neither priced nor named by the policy: the
# label set stays bounded whatever upstream reports.
OTHER_MODEL = "other"


@runtime_checkable
class UsageMetrics(Protocol):
    """What service.metrics.Metrics counts of usage (no user label: tenant and model)."""

    def usage_tokens(self, tenant: str, model: str, kind: str, count: int) -> None: ...
    def usage_spend(self, tenant: str, model: str, usd: float) -> None: ...
    def usage_unpriced(self, tenant: str, model: str, kind: str, count: float) -> None: ...


@dataclass(frozen=True, slots=True)
class Unpriced:
    model: str
    kind: str
    # Tokens, or minutes for `minutes`.
    amount: float


def entries_of(
    tenant: str,
    user_id: str,
    prices: PriceTable,
    model: str,
    taken: Mapping[str, Tally],
    seconds: float,
) -> tuple[list[LedgerEntry], list[Unpriced]]:
    """One call's ledger entries: a model's tokens per model, the call's seconds with
    `model` (the call's own)."""
    entries: list[LedgerEntry] = []
    unpriced: list[Unpriced] = []
    models = dict(taken)
    if seconds > 0 and model not in models:
        models[model] = Tally()
    for name, tally in models.items():
        secs = seconds if name == model else 0.0
        priced = prices.cost(name, tally.counts, secs)
        entries.append(
            LedgerEntry(
                tenant, user_id, name, dict(tally.counts), tally.requests, secs, priced.cost
            )
        )
        for kind in priced.unpriced:
            amount = secs / 60 if kind == MINUTES else float(tally.counts.get(kind, 0))
            unpriced.append(Unpriced(name, kind, amount))
    return entries, unpriced


def count_written(
    metrics: UsageMetrics,
    entries: Sequence[LedgerEntry],
    unpriced: Mapping[str, Sequence[Unpriced]],
    label: Mapping[str, frozenset[str]],
) -> None:
    """The metrics of a written batch. `unpriced` by tenant; `label`: per tenant, the
    models that keep their name as a label (the rest are `other`)."""
    known = label
    for e in entries:
        model = e.model if e.model in known.get(e.tenant, frozenset()) else OTHER_MODEL
        for kind, n in e.counts.items():
            metrics.usage_tokens(e.tenant, model, kind, n)
        if e.nano:
            metrics.usage_spend(e.tenant, model, usd(e.nano))
    for tenant, items in unpriced.items():
        for u in items:
            model = u.model if u.model in known.get(tenant, frozenset()) else OTHER_MODEL
            metrics.usage_unpriced(tenant, model, u.kind, u.amount)
