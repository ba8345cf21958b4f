"""The steps every mint shares (Broker.grant, Broker.counted), whatever its upstream:
admission, the role's `mint` rule, the refund of a failed mint, headers, audit, metrics."""

from __future__ import annotations

import ast
import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from service.auth.tokens import Authenticator, Identity
from service.clock import ManualClock
from service.config.settings import TenantSettings, load_settings
from service.errors import (
    InvalidValue,
    NotFound,
    RateLimited,
    RoleForbidden,
    UpstreamError,
    UserRevoked,
)
from service.mint.broker import NOT_OPENAI, Broker, Issued
from service.stores.base import Admission, AdmitRequest
from service.stores.memory import MemoryStore
from service.timing import PhaseTimer, parse_server_timing
from tests.eventually import eventually
from tests.test_metrics import sample

POLICY = {
    "roles": {
        "reader": {"limits": ["2/minute"]},
        "supervised": {"mint": False, "limits": ["2/minute"]},
    }
}
ALICE = Identity("default", "alice", "reader", None, None, 2_000_000_000)


class HeldRefunds(MemoryStore):
    """The memory store, its refunds held until `release` is set (a store's round trip)."""

    def __init__(self, clock: ManualClock) -> None:
        super().__init__(clock=clock)
        self.release = asyncio.Event()
        self.release.set()
        self.started = self.done = 0

    async def refund(self, request: AdmitRequest, admission: Admission) -> None:
        self.started += 1
        await self.release.wait()
        await super().refund(request, admission)
        self.done += 1


@pytest.fixture
async def broker() -> AsyncIterator[Broker]:
    settings = load_settings(
        {
            "BROKER_UPSTREAM": "fake",
            "BROKER_JWT_SECRET": "broker-test-secret-0123456789-abcdef",
            "BROKER_POLICY": json.dumps(POLICY),
        }
    )
    clock = ManualClock()
    async with httpx.AsyncClient() as http:
        yield Broker(
            settings,
            store=HeldRefunds(clock),
            authenticator=Authenticator(settings.tenants, http=http, clock=clock),
            upstreams={},
            clock=clock,
        )


class Issuer:
    """A mint's own steps, recorded: what `grant` asked for, and what it answers."""

    def __init__(self, error: Exception | None = None) -> None:
        self.calls: list[tuple[str, str]] = []
        self.error = error

    async def __call__(self, tenant: TenantSettings, role: str) -> Issued:
        self.calls.append((tenant.id, role))
        if self.error is not None:
            raise self.error
        return Issued({"name": "token"}, 1_700_000_060, ("model", "uses"))


async def test_a_grant_admits_issues_and_answers_with_the_mints_headers(
    broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    issue = Issuer()

    with caplog.at_level(logging.INFO, logger="service.audit.mint"):
        minted = await broker.grant(ALICE, "auth_tokens", issue, timer=PhaseTimer())

    assert issue.calls == [("default", "reader")]
    assert minted.body == {"name": "token"}
    assert minted.adjustments == ("model", "uses")
    assert minted.headers["Cache-Control"] == "no-store"
    assert minted.headers["RateLimit-Remaining"] == "1"
    assert minted.headers["X-Policy-Adjusted"] == "model,uses"
    assert list(parse_server_timing(minted.headers["Server-Timing"])) == [
        "policy",
        "store",
        "codec",
    ]
    [audit] = caplog.records
    assert audit.endpoint == "auth_tokens"  # type: ignore[attr-defined]
    assert audit.expires_at == 1_700_000_060  # type: ignore[attr-defined]


async def test_a_failed_issue_gives_its_admission_back(broker: Broker) -> None:
    with pytest.raises(UpstreamError):
        await broker.grant(ALICE, "x", Issuer(UpstreamError("Broke.")), timer=PhaseTimer())

    minted = await broker.grant(ALICE, "x", Issuer(), timer=PhaseTimer())
    assert minted.headers["RateLimit-Remaining"] == "1"


async def test_a_role_that_may_not_mint_is_refused_before_issuing(broker: Broker) -> None:
    issue = Issuer()
    supervised = Identity("default", "bob", "supervised", None, None, 2_000_000_000)

    with pytest.raises(RoleForbidden) as raised:
        await broker.grant(supervised, "x", issue, timer=PhaseTimer(), refused="Not you.")

    assert raised.value.message == "Not you."
    assert issue.calls == []


async def test_revoked_and_limited_users_are_refused_before_issuing(broker: Broker) -> None:
    issue = Issuer()
    bob = Identity("default", "bob", "reader", None, None, 2_000_000_000)
    for who in (ALICE, ALICE, bob):
        await broker.grant(who, "x", issue, timer=PhaseTimer())
    await broker.store.revoke("default", "bob")

    with pytest.raises(RateLimited):
        await broker.grant(ALICE, "x", issue, timer=PhaseTimer())
    with pytest.raises(UserRevoked):
        await broker.grant(bob, "x", issue, timer=PhaseTimer())

    assert len(issue.calls) == 3


def count(broker: Broker, outcome: str) -> float:
    return sample(broker.metrics.render().decode(), "broker_mints_total", outcome=outcome)


async def test_counted_counts_each_mint_by_its_outcome(broker: Broker) -> None:
    with broker.counted("default"):
        pass
    with pytest.raises(InvalidValue), broker.counted("default"):
        raise InvalidValue("Bad.")
    # Not a refusal but a bug (the caller gets a 500): counted all the same, as `other`.
    with pytest.raises(KeyError), broker.counted("default"):
        raise KeyError("bug")
    # A cancelled mint (the caller left) has no outcome.
    with pytest.raises(asyncio.CancelledError), broker.counted("default"):
        raise asyncio.CancelledError

    assert count(broker, "ok") == 1
    assert count(broker, "invalid_request") == 1
    assert count(broker, "other") == 1


async def test_an_unexpected_error_in_issue_gives_its_admission_back(broker: Broker) -> None:
    with pytest.raises(ValueError, match="a bug"):
        await broker.grant(ALICE, "x", Issuer(ValueError("a bug")), timer=PhaseTimer())

    minted = await broker.grant(ALICE, "x", Issuer(), timer=PhaseTimer())
    assert minted.headers["RateLimit-Remaining"] == "1"


async def test_a_cancelled_mint_gives_its_admission_back_even_cancelled_again(
    broker: Broker,
) -> None:
    """The caller left while upstream answered: nothing was delivered. A task cancelled
    once may be cancelled again while it refunds (a server shutting down); the refund,
    shielded, still runs to its end."""
    store = broker.store
    assert isinstance(store, HeldRefunds)
    upstream_answers = asyncio.Event()
    issuing = 0

    async def issue(tenant: TenantSettings, role: str) -> Issued:
        nonlocal issuing
        issuing += 1
        await upstream_answers.wait()
        return Issued({}, 0)

    store.release.clear()
    mint = asyncio.create_task(broker.grant(ALICE, "x", issue, timer=PhaseTimer()))
    await eventually(lambda: issuing == 1, what="the upstream call")
    mint.cancel()
    await eventually(lambda: store.started == 1, what="the refund's start")
    mint.cancel()
    with pytest.raises(asyncio.CancelledError):
        await mint
    store.release.set()

    await eventually(lambda: store.done == 1, what="the refund's end")
    minted = await broker.grant(ALICE, "x", Issuer(), timer=PhaseTimer())
    assert minted.headers["RateLimit-Remaining"] == "1"


async def test_an_openai_mint_with_a_number_out_of_range_is_refused_before_admission(
    broker: Broker,
) -> None:
    """A free-form value (a tool's JSON schema) is sent as it came: `Infinity` there is
    not JSON."""
    tool = b'{"type": "function", "name": "f", "parameters": {"maximum": 1e999}}'
    raw = b'{"session": {"type": "realtime", "tools": [' + tool + b"]}}"

    with pytest.raises(InvalidValue) as raised:
        await broker.mint("client_secrets", ALICE, raw, timer=PhaseTimer())

    assert raised.value.param == "session.tools[0].parameters.maximum"
    minted = await broker.grant(ALICE, "x", Issuer(), timer=PhaseTimer())
    assert minted.headers["RateLimit-Remaining"] == "1"


async def test_a_tenant_without_openais_api_is_a_404_not_a_key_error(broker: Broker) -> None:
    """Here `default` has no OpenAI client, as a Gemini tenant has none."""
    with pytest.raises(NotFound) as raised:
        broker.openai_upstream("default")

    assert raised.value.message == NOT_OPENAI


def test_the_mint_package_knows_no_provider() -> None:
    """STYLE: a provider is a package beside `mint/`, not a branch in it."""
    package = Path(__file__).parents[2] / "service" / "mint"
    imported = {
        node.module
        for path in package.glob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom) and node.module
    }

    assert not {name for name in imported if "gemini" in name}
