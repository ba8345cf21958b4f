"""Money budgets and the spend limit: which is reached, the refusal and its Retry-After;
and the refusal check every door runs (`refuse_spent`), on the memory ledger."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from service.errors import BudgetExceeded, RateLimiterUnavailable, SpendLimitReached
from service.usage.budgets import refusal, spent
from service.usage.ledger_memory import MemoryLedger
from service.usage.model import NANO, LedgerEntry, Spend
from service.usage.refusals import refuse_spent

NOON = 1_767_268_800.0  # 2026-01-01T12:00:00Z


@dataclass(frozen=True)
class Rules:
    daily_usd_budget: float | None = None
    monthly_usd_budget: float | None = None


def test_which_budget_is_spent() -> None:
    rules = Rules(daily_usd_budget=1.0, monthly_usd_budget=5.0)
    assert spent(rules, Spend(user_day=NANO - 1)) is None
    assert spent(rules, Spend(user_day=NANO)) == "budget_exhausted"
    assert spent(rules, Spend(user_month=5 * NANO)) == "budget_exhausted"
    assert spent(Rules(), Spend(tenant_month=NANO, limit_cents=100)) == "spend_limit_reached"
    assert spent(Rules(), Spend(tenant_month=NANO, limit_cents=101)) is None


def test_a_refusal_says_until_when() -> None:
    daily = refusal(Rules(daily_usd_budget=1.0), Spend(user_day=NANO), NOON)
    assert isinstance(daily, BudgetExceeded)
    assert daily.headers["Retry-After"] == str(12 * 3600)
    monthly = refusal(Rules(monthly_usd_budget=1.0), Spend(user_month=NANO), NOON)
    assert isinstance(monthly, BudgetExceeded)
    assert monthly.headers["Retry-After"] == str(31 * 86_400 - 12 * 3600)
    limited = refusal(Rules(), Spend(limit_cents=0), NOON)
    assert isinstance(limited, SpendLimitReached)
    assert limited.code == "spend_limit_reached"
    assert limited.status == 429


async def test_refuse_spent_reads_the_ledger() -> None:
    ledger = MemoryLedger(clock=lambda: NOON)
    ledger.add([LedgerEntry("acme", "ann", "m", cost={"output_audio_tokens": 2 * NANO})], NOON)

    with pytest.raises(BudgetExceeded):
        await refuse_spent(ledger, "acme", "ann", Rules(daily_usd_budget=2.0), NOON)
    await refuse_spent(ledger, "acme", "bob", Rules(daily_usd_budget=2.0), NOON)
    await ledger.set_spend_limit("acme", 200)
    with pytest.raises(SpendLimitReached):
        await refuse_spent(ledger, "acme", "bob", Rules(), NOON)


async def test_a_ledger_that_cannot_answer_follows_the_failure_mode() -> None:
    from service.errors import StoreUnavailable

    class Down(MemoryLedger):
        async def spend(self, tenant: str, user_id: str, now: float) -> Spend:
            raise StoreUnavailable("down")

    with pytest.raises(RateLimiterUnavailable):
        await refuse_spent(Down(), "acme", "ann", Rules(), NOON)
    await refuse_spent(Down(), "acme", "ann", Rules(), NOON, fail_open=True)
