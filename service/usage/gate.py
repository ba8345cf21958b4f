"""Money refusals at every door (DESIGN 11): a user whose money budget is spent, or a
tenant whose spend limit is enforcing, is refused mints (although a minted session's own
usage is never metered), call placements and GPT-Live sessions.

The check costs a ledger read (a round trip), so a request pays it only when it can
matter: the role has a money budget, or the tenant has a spend limit. Whether a tenant has
one is known from a copy refreshed at most every `refresh` seconds (one read per tenant
and interval, not per request) and dropped at once on the replica that changes the limit
(`changed`): a limit set on another replica holds here within that interval, and one
deleted or raised lets work through at once (the read that follows sees the store's
limit, not the copy).
"""

from __future__ import annotations

from service.clock import Clock, system_clock
from service.errors import StoreUnavailable
from service.usage.budgets import MoneyBudgets
from service.usage.ledger import Ledger
from service.usage.refusals import refuse_spent

LIMIT_REFRESH_SECONDS = 2.0


class SpendGate:
    def __init__(
        self, ledger: Ledger, *, clock: Clock = system_clock, refresh: float = LIMIT_REFRESH_SECONDS
    ) -> None:
        self._ledger = ledger
        self._clock = clock
        self._refresh = refresh
        # tenant → (has a limit, when that was read)
        self._limits: dict[str, tuple[bool, float]] = {}

    async def needed(self, tenant: str, rules: MoneyBudgets) -> bool:
        """Whether a request of `tenant` under `rules` must read the ledger."""
        budgeted = rules.daily_usd_budget is not None or rules.monthly_usd_budget is not None
        return budgeted or await self._has_limit(tenant)

    def changed(self, tenant: str) -> None:
        """The tenant's limit was set or deleted here: read it again at the next request."""
        self._limits.pop(tenant, None)

    async def check(
        self, tenant: str, user_id: str, rules: MoneyBudgets, *, fail_open: bool
    ) -> None:
        """Raise `BudgetExceeded` / `SpendLimitReached` (429) when the user or tenant may
        spend no more; 503 when the ledger cannot answer and the tenant fails closed."""
        if await self.needed(tenant, rules):
            await refuse_spent(
                self._ledger, tenant, user_id, rules, self._clock(), fail_open=fail_open
            )

    async def _has_limit(self, tenant: str) -> bool:
        now = self._clock()
        known = self._limits.get(tenant)
        if known is not None and now - known[1] < self._refresh:
            return known[0]
        try:
            has = await self._ledger.spend_limit(tenant) is not None
        except StoreUnavailable:
            # Not known: the full check decides, with the tenant's failure mode.
            return True
        self._limits[tenant] = (has, now)
        return has
