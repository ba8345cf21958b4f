"""Money refusals at the mint (DESIGN 11): a user whose money budget is spent, or a
tenant whose spend limit is enforcing, is refused a mint as a placement is, although a
minted session's own usage is never metered.

The check costs a ledger read (a round trip), so a mint pays it only when it can matter:
the role has a money budget, or the tenant has a spend limit. Whether a tenant has one is
known from a copy refreshed at most every `refresh` seconds (one read per tenant and
interval, not per mint): a limit set on any replica holds at this replica's mints within
that interval, and one deleted or raised lets them through at once (the read that follows
sees the store's limit, not the copy).
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

    async def check(
        self, tenant: str, user_id: str, rules: MoneyBudgets, *, fail_open: bool
    ) -> None:
        """Raise `BudgetExceeded` / `SpendLimitReached` (429) when the user or tenant may
        spend no more; 503 when the ledger cannot answer and the tenant fails closed."""
        budgeted = rules.daily_usd_budget is not None or rules.monthly_usd_budget is not None
        if budgeted or await self._has_limit(tenant):
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
