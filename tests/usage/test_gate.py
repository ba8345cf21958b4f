"""Money refusals at the mint (service.usage.gate, DESIGN 11): a user whose money budget
is spent and a tenant whose spend limit is enforcing are refused every mint — OpenAI's
and Gemini's — with the admission refunded; a mint that cannot be refused for money
costs no ledger read beyond the tenant's limit, read once per interval."""

from __future__ import annotations

from typing import Any

import pytest

from service.clock import ManualClock
from service.errors import (
    BudgetExceeded,
    RateLimiterUnavailable,
    SpendLimitReached,
    StoreUnavailable,
)
from service.usage.gate import SpendGate
from service.usage.ledger_memory import MemoryLedger
from service.usage.model import LedgerEntry, Spend
from tests.gemini.conftest import MODEL, POLICY, gemini_settings, harness_for

NOW = 1_800_000_000.0  # 2027-01-15 08:00 UTC
USD = 1_000_000_000  # nano-USD


class Rules:
    def __init__(self, daily: float | None = None, monthly: float | None = None) -> None:
        self.daily_usd_budget, self.monthly_usd_budget = daily, monthly


class CountingLedger(MemoryLedger):
    """The memory ledger, counting its reads (and failing them on demand)."""

    def __init__(self, clock: ManualClock) -> None:
        super().__init__(clock=clock)
        self.reads: list[str] = []
        self.down = False

    async def spend(self, tenant: str, user_id: str, now: float) -> Spend:
        self.reads.append("spend")
        if self.down:
            raise StoreUnavailable("down")
        return await super().spend(tenant, user_id, now)

    async def spend_limit(self, tenant: str) -> int | None:
        self.reads.append("limit")
        if self.down:
            raise StoreUnavailable("down")
        return await super().spend_limit(tenant)


def spent(ledger: MemoryLedger, usd: float, user: str = "alice", tenant: str = "t") -> None:
    ledger.add(
        [LedgerEntry(tenant, user, MODEL, cost={"output_audio_tokens": round(usd * USD)})],
        NOW,
    )


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=NOW)


async def test_a_mint_without_budget_or_limit_reads_only_the_limit_once_per_interval(
    clock: ManualClock,
) -> None:
    ledger = CountingLedger(clock)
    spent(ledger, 100.0)
    gate = SpendGate(ledger, clock=clock, refresh=2.0)
    for _ in range(50):
        await gate.check("t", "alice", Rules(), fail_open=False)
    assert ledger.reads == ["limit"]
    clock.advance(2.0)
    await gate.check("t", "alice", Rules(), fail_open=False)
    assert ledger.reads == ["limit", "limit"]


async def test_a_spent_daily_budget_refuses_until_the_next_utc_day(clock: ManualClock) -> None:
    ledger = CountingLedger(clock)
    gate = SpendGate(ledger, clock=clock)
    spent(ledger, 0.009)
    await gate.check("t", "alice", Rules(daily=0.01), fail_open=False)
    spent(ledger, 0.001)
    with pytest.raises(BudgetExceeded) as refused:
        await gate.check("t", "alice", Rules(daily=0.01), fail_open=False)
    assert refused.value.retry_after == 16 * 3600  # 08:00 → midnight UTC
    await gate.check("t", "bob", Rules(daily=0.01), fail_open=False)  # another user's day


async def test_a_limit_set_holds_within_the_interval_and_lifts_at_once(
    clock: ManualClock,
) -> None:
    ledger = CountingLedger(clock)
    gate = SpendGate(ledger, clock=clock, refresh=2.0)
    spent(ledger, 5.0, user="bob")
    await gate.check("t", "alice", Rules(), fail_open=False)
    await ledger.set_spend_limit("t", 500)  # $5.00: bob's spend reaches it
    clock.advance(2.0)
    with pytest.raises(SpendLimitReached):
        await gate.check("t", "alice", Rules(), fail_open=False)
    await ledger.delete_spend_limit("t")
    await gate.check("t", "alice", Rules(), fail_open=False)  # no wait for the copy


async def test_a_ledger_that_cannot_answer_follows_the_tenants_failure_mode(
    clock: ManualClock,
) -> None:
    ledger = CountingLedger(clock)
    ledger.down = True
    gate = SpendGate(ledger, clock=clock)
    await gate.check("t", "alice", Rules(daily=1.0), fail_open=True)
    with pytest.raises(RateLimiterUnavailable):
        await gate.check("t", "alice", Rules(daily=1.0), fail_open=False)


def budgeted_policy() -> dict[str, Any]:
    reader = {**POLICY["roles"]["reader"], "daily_usd_budget": 0.5, "limits": ["100/minute"]}
    return {**POLICY, "roles": {**POLICY["roles"], "reader": reader}}


async def test_both_mints_are_refused_for_money_and_the_admission_refunded() -> None:
    async with harness_for(gemini_settings(budgeted_policy())) as harness:
        ledger: MemoryLedger = harness.app.state.calls.store.ledger
        setup = {"bidiGenerateContentSetup": {"model": f"models/{MODEL}"}}
        assert (await harness.mint(setup)).status_code == 200
        ledger.add([LedgerEntry("gemini", "alice", MODEL, cost={"minutes": USD})], harness.clock())

        refused = await harness.mint(setup)
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["status"] == "RESOURCE_EXHAUSTED"
        assert int(refused.headers["retry-after"]) > 0
        assert len(harness.gemini.requests) == 1  # nothing more went upstream
        # Refunded: the refusals did not use up the rate limit.
        for _ in range(3):
            assert (await harness.mint(setup)).status_code == 429
        assert (await harness.mint(setup, sub="bob")).headers["ratelimit-remaining"] == "99"

        # The OpenAI tenant's mint, under its tenant's spend limit.
        ledger.add(
            [LedgerEntry("openai", "carol", "gpt-realtime", cost={"minutes": USD})],
            harness.clock(),
        )
        await ledger.set_spend_limit("openai", 100)
        harness.clock.advance(5)
        jwt = harness.token(tenant="openai", sub="dave")
        minted = await harness.client.post(
            "/v1/realtime/client_secrets",
            json={"session": {"type": "realtime", "model": "gpt-realtime"}},
            headers={"Authorization": f"Bearer {jwt}"},
        )
        assert minted.status_code == 429, minted.text
        assert minted.json()["error"]["code"] == "spend_limit_reached"
        assert harness.openai_requests == []


async def test_needed_names_what_can_refuse_and_a_change_here_is_read_at_once(
    clock: ManualClock,
) -> None:
    ledger = CountingLedger(clock)
    gate = SpendGate(ledger, clock=clock, refresh=60.0)
    assert await gate.needed("t", Rules(monthly=5.0))
    assert ledger.reads == []  # a budget decides without reading anything
    assert not await gate.needed("t", Rules())
    await ledger.set_spend_limit("t", 100)
    assert not await gate.needed("t", Rules())  # another replica's change: within `refresh`
    gate.changed("t")
    assert await gate.needed("t", Rules())
    assert ledger.reads == ["limit", "limit"]
