"""Money budgets and the tenant's spend limit (pure): which one a user's spend has
reached, and the refusal that says so (DESIGN 11).

A user who has spent `daily_usd_budget` (UTC day) or `monthly_usd_budget` (UTC month) is
refused (429 `budget_exceeded`, `Retry-After` to the next day or month); while the
tenant's spend limit is enforcing, every user of the tenant is (429
`spend_limit_reached`, `Retry-After` to the next month: an admin who raises or deletes
the limit lets work through at once). A running call is ended on the batch that crosses
either (`spent`, service.calls.spending), with the reason `budget_exhausted` or
`spend_limit_reached`.
"""

from __future__ import annotations

from typing import Protocol

from service.errors import BudgetExceeded, RateLimited, SpendLimitReached
from service.usage.model import NANO, Spend
from service.usage.periods import seconds_to_next_day, seconds_to_next_month

BUDGET_EXHAUSTED = "budget_exhausted"
SPEND_LIMIT_REACHED = "spend_limit_reached"


class MoneyBudgets(Protocol):
    @property
    def daily_usd_budget(self) -> float | None: ...
    @property
    def monthly_usd_budget(self) -> float | None: ...


def _reached(budget: float | None, nano: int) -> bool:
    return budget is not None and nano >= round(budget * NANO)


def spent(rules: MoneyBudgets, spend: Spend) -> str | None:
    """Why the user may spend no more (an end reason), or None."""
    if spend.limit_reached:
        return SPEND_LIMIT_REACHED
    if _reached(rules.daily_usd_budget, spend.user_day) or _reached(
        rules.monthly_usd_budget, spend.user_month
    ):
        return BUDGET_EXHAUSTED
    return None


def refusal(rules: MoneyBudgets, spend: Spend, now: float) -> RateLimited | None:
    """The 429 a mint, placement or Live session gets now, or None."""
    if spend.limit_reached:
        return SpendLimitReached(
            "The organization's spend limit is reached for this month.",
            retry_after=seconds_to_next_month(now),
        )
    if _reached(rules.monthly_usd_budget, spend.user_month):
        return BudgetExceeded(
            "The user's monthly budget is spent.", retry_after=seconds_to_next_month(now)
        )
    if _reached(rules.daily_usd_budget, spend.user_day):
        return BudgetExceeded(
            "The user's daily budget is spent.", retry_after=seconds_to_next_day(now)
        )
    return None
