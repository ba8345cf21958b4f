"""Call control's share of usage and spend (DESIGN 11), for the controller
(service.calls.controller): what a usage batch adds to the ledger, the metrics of what
it wrote, and the money budgets and the tenant's spend limit enforced on the batch that
crosses them.

A batch is built from what each call's state took (`Pending.take`), and put back when
the store did not take it (`Pending.restore`): a store that was down loses nothing and
counts nothing twice. Once written, a user whose batch crossed a budget has every call
held here ended (`budget_exhausted`); a tenant whose spend limit is reached has every
call ended on every replica (`spend_limit_reached`, through a `tenant.ended` event).
Only the batch's own calls are looked at, and all held calls only for a user that is
over (rare): a batch of thousands stays cheap.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from service.calls.ending import Endings, Hangup
from service.calls.store import CallStore, Metered, UsageDelta
from service.calls.supervised import CallMetrics, Held
from service.config.settings import TenantSettings
from service.errors import StoreUnavailable
from service.usage.budgets import SPEND_LIMIT_REACHED, spent
from service.usage.metering import Unpriced, UsageMetrics, count_written, entries_of
from service.usage.model import LedgerEntry, Tally

TENANT_ENDED = "tenant.ended"
# A tenant's spend limit was set, raised or deleted (service.web.usage).
LIMIT_CHANGED = "spend_limit.changed"


@dataclass(slots=True)
class UsageBatch:
    """One batch's ledger entries, and what its calls' states gave for them."""

    held: list[Held]
    entries: list[LedgerEntry] = field(default_factory=list)
    unpriced: dict[str, list[Unpriced]] = field(default_factory=dict)
    taken: list[dict[str, Tally]] = field(default_factory=list)

    def restore(self) -> None:
        """Not written: each call's usage is pending again."""
        for h, report in zip(self.held, self.taken, strict=True):
            h.state.usage.restore(report)


class Spending:
    """Usage batches' ledger side and the money rules, over the controller's held calls
    (`held`, its live mapping), its endings and its side tasks (`spawn`)."""

    def __init__(
        self,
        store: CallStore,
        tenants: Iterable[TenantSettings],
        held: Mapping[tuple[str, str], Held],
        endings: Endings,
        spawn: Callable[[Awaitable[Any]], None],
        metrics: CallMetrics | None,
    ) -> None:
        self._store = store
        self._held = held
        self._endings = endings
        self._spawn = spawn
        self._metrics = metrics if isinstance(metrics, UsageMetrics) else None
        # Told a tenant's spend limit changed or is reached, here or on another replica:
        # the doors' copies of it (service.usage.gate.SpendGate.changed).
        self.limit_listeners: list[Callable[[str], None]] = []
        # Per tenant, the models whose name is a metric label (priced, or in the policy).
        self._model_labels = {
            t.id: frozenset(
                [*t.prices.models, *(m for r in t.policy.roles.values() for m in r.models or ())]
            )
            for t in tenants
        }

    async def meter(self, held: list[Held], deltas: Sequence[UsageDelta], now: float) -> Metered:
        """Write the batch (`deltas`: the calls' tokens and seconds, in order) with its
        ledger entries, in one round trip, and count what was written. Not written
        (the store is down, or the write was cancelled): each call's usage is pending
        again, and the error raised."""
        batch = self._batch(held, [d.seconds for d in deltas])
        try:
            metered = await self._store.meter(deltas, batch.entries, now)
        except BaseException:
            batch.restore()
            raise
        if self._metrics is not None:
            count_written(self._metrics, batch.entries, batch.unpriced, self._model_labels)
        return metered

    def _batch(self, held: list[Held], seconds: Sequence[float]) -> UsageBatch:
        """The ledger entries of these calls' usage since their last flush, with
        `seconds` of call time each (taken from their states: `restore` if not written)."""
        batch = UsageBatch(held)
        for h, secs in zip(held, seconds, strict=True):
            record = h.record
            batch.taken.append(h.state.usage.take())
            made, missing = entries_of(
                record.tenant, record.user_id, h.tenant.prices, h.state.model, batch.taken[-1], secs
            )
            batch.entries += made
            if missing:
                batch.unpriced.setdefault(record.tenant, []).extend(missing)
        return batch

    def enforce(self, held: list[Held], metered: Metered) -> None:
        """The budgets and spend limits a written batch of these calls crossed."""
        limited: set[str] = set()
        over: set[tuple[str, str]] = set()
        for h in held:
            key = (h.record.tenant, h.record.user_id)
            spend = metered.spend.get(key)
            if spend is None:
                continue
            if spend.limit_reached:
                limited.add(key[0])
            elif spent(h.record.policy, spend) is not None:
                over.add(key)
        for h in list(self._held.values()) if over else ():
            key = (h.record.tenant, h.record.user_id)
            if key in over and (reason := spent(h.record.policy, metered.spend[key])):
                self._endings.end(h, reason)
        for tenant in limited:
            self._spawn(self.end_tenant_everywhere(tenant, SPEND_LIMIT_REACHED))

    def end_tenant(self, tenant: str, reason: str) -> list[asyncio.Task[Hangup]]:
        """End every call of the tenant held here (the spend limit); the hangups started."""
        held = [h for h in self._held.values() if h.record.tenant == tenant]
        return [task for h in held if (task := self._endings.end(h, reason)) is not None]

    async def end_tenant_everywhere(self, tenant: str, reason: str) -> None:
        """`end_tenant` here and, through the store's events, on every replica."""
        self.end_tenant(tenant, reason)
        self._limit_changed(tenant)
        with contextlib.suppress(StoreUnavailable):
            await self._store.publish({"type": TENANT_ENDED, "tenant": tenant, "reason": reason})

    async def limit_changed_everywhere(self, tenant: str) -> None:
        """The tenant's limit was set or deleted here: every replica's doors read it again
        (at once where the event arrives; within their refresh where it is lost)."""
        self._limit_changed(tenant)
        with contextlib.suppress(StoreUnavailable):
            await self._store.publish({"type": LIMIT_CHANGED, "tenant": tenant})

    def receive(self, kind: object, tenant: str, event: Mapping[str, Any]) -> bool:
        """An event from another replica, if it is this module's (`tenant.ended`,
        `spend_limit.changed`)."""
        if kind == LIMIT_CHANGED:
            self._limit_changed(tenant)
            return True
        if kind != TENANT_ENDED:
            return False
        if event.get("reason") == SPEND_LIMIT_REACHED:
            self._limit_changed(tenant)
            self.end_tenant(tenant, SPEND_LIMIT_REACHED)
        return True

    def _limit_changed(self, tenant: str) -> None:
        for listener in self.limit_listeners:
            listener(tenant)
