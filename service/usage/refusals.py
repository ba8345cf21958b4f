"""Refusing work that would spend money a user or tenant no longer has: the check every
door runs before it goes upstream (mints, call placements, GPT-Live sessions).

    await refuse_spent(ledger, tenant, user_id, rules, now)

One read of the ledger (one round trip, one slot on Redis). A ledger that cannot answer
is the caller's failure mode: `fail_open` lets the work through (the tenant's
RATE_LIMIT_FAILURE_MODE=open), otherwise 503 `rate_limiter_unavailable`, as an admission
without Redis.
"""

from __future__ import annotations

from service.errors import RateLimiterUnavailable, StoreUnavailable
from service.usage.budgets import MoneyBudgets, refusal
from service.usage.ledger import Ledger


async def refuse_spent(
    ledger: Ledger,
    tenant: str,
    user_id: str,
    rules: MoneyBudgets,
    now: float,
    *,
    fail_open: bool = False,
) -> None:
    """Raise `BudgetExceeded` or `SpendLimitReached` (429, `Retry-After`) when the user or
    the tenant may spend no more."""
    try:
        spend = await ledger.spend(tenant, user_id, now)
    except StoreUnavailable as exc:
        if fail_open:
            return
        raise RateLimiterUnavailable() from exc
    refused = refusal(rules, spend, now)
    if refused is not None:
        raise refused
