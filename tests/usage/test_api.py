"""The usage, costs and spend-limit endpoints read and managed through openai-python's
admin client, on a real server (uvicorn) with the in-process fake upstream: usage as
reported per user and model, costs as priced, the spend limit enforcing and lifting, a
reader refused, a bad parameter named."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import openai
import pytest
import uvicorn
from openai.types.admin.organization.usage_completions_response import (
    DataResultOrganizationUsageCompletionsResult as CompletionsResult,
)
from openai.types.admin.organization.usage_completions_response import (
    UsageCompletionsResponse,
)
from openai.types.admin.organization.usage_costs_response import (
    DataResultOrganizationCostsResult as CostsResult,
)
from openai.types.admin.organization.usage_costs_response import UsageCostsResponse
from starlette.applications import Starlette

from service.auth.tokens import sign_dev_token
from service.calls.controller import CallController
from service.dev import create_dev_app
from service.fake.calls import FakeCalls
from service.usage.model import Spend
from tests.eventually import eventually
from tests.web.conftest import SECRET, make_settings

ADMIN_KEY = "admin-key-0123456789abcdef"
OFFER = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
MODEL = "gpt-realtime-mini"
POLICY = {
    "default_role": "reader",
    "roles": {
        "reader": {"models": [MODEL], "mint": False, "limits": ["100/minute"],
                   "daily_usd_budget": 0.01},
        "owner": {"models": ["gpt-realtime"], "limits": ["100/minute"]},
    },
}  # fmt: skip
# 100 audio in ($10/1M), 200 audio out ($20/1M), 50 text in of which 20 cached
# ($0.60 and $0.06 /1M), 10 text out ($2.40/1M).
USAGE = {
    "total_tokens": 360,
    "input_tokens": 150,
    "output_tokens": 210,
    "input_token_details": {
        "text_tokens": 50,
        "audio_tokens": 100,
        "cached_tokens": 20,
        "cached_tokens_details": {"text_tokens": 20, "audio_tokens": 0},
    },
    "output_token_details": {"text_tokens": 10, "audio_tokens": 200},
}
COST = 100 * 10e-6 + 200 * 20e-6 + 30 * 0.6e-6 + 20 * 0.06e-6 + 10 * 2.4e-6


def completions(page: UsageCompletionsResponse) -> list[CompletionsResult]:
    found = [r for bucket in page.data for r in bucket.results]
    assert all(isinstance(r, CompletionsResult) for r in found)
    return [r for r in found if isinstance(r, CompletionsResult)]


def costs(page: UsageCostsResponse) -> list[tuple[str | None, str | None, float]]:
    """(line item, project, USD) of each result."""
    found = [r for bucket in page.data for r in bucket.results]
    assert all(isinstance(r, CostsResult) and r.amount is not None for r in found)
    return [
        (r.line_item, r.project_id, r.amount.value or 0.0)
        for r in found
        if isinstance(r, CostsResult) and r.amount is not None
    ]


@dataclass
class Served:
    app: Starlette
    port: int
    clients: list[openai.AsyncOpenAI]

    @property
    def calls(self) -> CallController:
        controller: CallController = self.app.state.calls
        return controller

    @property
    def fake(self) -> FakeCalls:
        fake: FakeCalls = self.app.state.fake_calls["default"]
        return fake

    def admin(self, key: str = ADMIN_KEY) -> openai.AsyncOpenAI:
        client = openai.AsyncOpenAI(
            admin_api_key=key, api_key="unused", base_url=f"http://127.0.0.1:{self.port}/v1"
        )
        self.clients.append(client)
        return client

    async def place(self, sub: str, role: str = "reader") -> httpx.Response:
        jwt = sign_dev_token(SECRET, sub=sub, role=role, now=time.time())
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.port}") as client:
            return await client.post(
                "/v1/realtime/calls",
                content=OFFER,
                headers={"Authorization": f"Bearer {jwt}", "Content-Type": "application/sdp"},
            )

    async def placed(self, sub: str) -> str:
        response = await self.place(sub)
        assert response.status_code == 201, response.text
        call_id = response.headers["location"].rsplit("/", 1)[1]
        await eventually(lambda: len(self.fake.calls[call_id].lines) == 1, seconds=3)
        return call_id

    async def respond(self, call_id: str) -> None:
        """A response with USAGE on the call, metered by one scheduler pass."""
        self.fake.receive(call_id, {"type": "response.create", "usage": USAGE})
        await eventually(lambda: any(h.state.has_pending() for h in self.calls._held.values()))
        await self.calls.step()


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    settings = make_settings(
        {"BROKER_POLICY": json.dumps(POLICY), "BROKER_ADMIN_API_KEY": ADMIN_KEY}
    )
    app = create_dev_app(settings)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await eventually(lambda: server.started, seconds=10, what="uvicorn's start")
        served = Served(app, sock.getsockname()[1], [])
        yield served
        for client in served.clients:
            await client.close()
    finally:
        server.should_exit = True
        await task
        sock.close()


async def test_usage_and_costs_are_read_per_user_and_model_as_reported_and_priced(
    served: Served,
) -> None:
    call = await served.placed("ann")
    await served.respond(call)
    admin = served.admin()
    start = int(time.time()) - 3600

    usage = await admin.admin.organization.usage.completions(
        start_time=start, bucket_width="1h", group_by=["user_id", "model"], limit=2
    )
    (ann,) = completions(usage)
    assert (ann.user_id, ann.model, ann.project_id) == ("ann", MODEL, None)
    assert (ann.input_tokens, ann.output_tokens, ann.num_model_requests) == (150, 210, 1)
    assert (ann.input_audio_tokens, ann.output_audio_tokens) == (100, 200)
    assert (ann.input_cached_tokens, ann.input_text_tokens) == (20, 30)
    only_bob = await admin.admin.organization.usage.completions(
        start_time=start, bucket_width="1h", user_ids=["bob"]
    )
    assert all(b.results == [] for b in only_bob.data)

    by_line = await admin.admin.organization.usage.costs(start_time=start, group_by=["line_item"])
    lines = {line: value for line, _, value in costs(by_line)}
    assert lines[f"{MODEL}, output_audio_tokens"] == pytest.approx(200 * 20e-6)
    assert sum(lines.values()) == pytest.approx(COST)
    total = await admin.admin.organization.usage.costs(start_time=start, group_by=["project_id"])
    ((_, project, value),) = costs(total)
    assert project == "default"
    assert value == pytest.approx(COST)


async def test_pages_follow_next_page_to_the_end(served: Served) -> None:
    admin = served.admin()
    start = int(time.time()) // 60 * 60 - 150 * 60
    first = await admin.admin.organization.usage.completions(
        start_time=start, bucket_width="1m", limit=100
    )
    assert first.has_more
    assert first.next_page is not None
    second = await admin.admin.organization.usage.completions(
        start_time=start, bucket_width="1m", limit=100, page=first.next_page
    )
    assert not second.has_more
    assert first.data[-1].end_time == second.data[0].start_time
    assert len(first.data) + len(second.data) == 151


async def test_a_daily_budget_ends_the_call_that_crosses_it_and_refuses_the_next(
    served: Served,
) -> None:
    call = await served.placed("ann")
    await served.respond(call)  # $0.005: under the $0.01 budget
    assert call not in served.fake.hung_up
    await served.respond(call)  # $0.010: spent

    await eventually(lambda: call in served.fake.hung_up, seconds=3, what="the hangup")
    refused = await served.place("ann")
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "budget_exceeded"
    assert 0 < int(refused.headers["retry-after"]) <= 86_400
    assert (await served.place("bob")).status_code == 201


async def test_the_spend_limit_enforces_and_lifts_at_once(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="service.audit")
    admin = served.admin().admin.organization
    with pytest.raises(openai.NotFoundError):
        await admin.spend_limit.retrieve()
    limit = await admin.spend_limit.update(currency="USD", interval="month", threshold_amount=100)
    assert (limit.threshold_amount, limit.enforcement.status) == (100, "inactive")
    call = await served.placed("ann")

    limit = await admin.spend_limit.update(currency="USD", interval="month", threshold_amount=0)
    assert limit.enforcement.status == "enforcing"
    await eventually(lambda: call in served.fake.hung_up, seconds=3, what="the hangup")
    refused = await served.place("bob")
    assert refused.json()["error"]["code"] == "spend_limit_reached"

    deleted = await admin.spend_limit.delete()
    assert deleted.deleted is True
    assert (await served.place("bob")).status_code == 201
    # Each change is an audit line: who (never the key), what, the threshold.
    changes = [
        (r.__dict__["action"], r.__dict__["actor"], r.__dict__["threshold_amount"])
        for r in caplog.records
        if r.name == "service.audit.spend_limit"
    ]
    assert changes == [
        ("spend_limit.updated", "admin_key", 100),
        ("spend_limit.updated", "admin_key", 0),
        ("spend_limit.deleted", "admin_key", None),
    ]


async def test_a_reader_is_refused_and_a_bad_parameter_is_named(served: Served) -> None:
    jwt = sign_dev_token(SECRET, sub="rita", role="reader", now=time.time())
    reader = served.admin(jwt)
    with pytest.raises(openai.PermissionDeniedError):
        await reader.admin.organization.usage.costs(start_time=0)
    admin = served.admin().admin.organization
    for kwargs, param in (
        ({"start_time": 0, "bucket_width": "1w"}, "bucket_width"),
        ({"start_time": 0, "group_by": ["api_key_id"]}, "group_by"),
        ({"start_time": 0, "bucket_width": "1d", "limit": 32}, "limit"),
        ({"start_time": 10, "end_time": 5}, "end_time"),
    ):
        with pytest.raises(openai.BadRequestError) as refused:
            await admin.usage.completions(**kwargs)
        assert refused.value.param == param
    with pytest.raises(openai.BadRequestError) as refused:
        await admin.spend_limit.update(currency="USD", interval="month", threshold_amount=-1)
    assert refused.value.param == "threshold_amount"


async def test_a_placement_reads_the_ledger_only_when_money_can_refuse_it(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = served.calls.store.ledger
    spend, reads = ledger.spend, []

    async def counted(tenant: str, user_id: str, now: float) -> Spend:
        reads.append(user_id)
        return await spend(tenant, user_id, now)

    monkeypatch.setattr(ledger, "spend", counted)
    # The owner role has no money budget and the tenant no limit: no read, no round trip.
    for sub in ("olga", "oleg"):
        assert (await served.place(sub, role="owner")).status_code == 201
    assert reads == []
    assert (await served.place("rita")).status_code == 201  # a reader has daily_usd_budget
    assert reads == ["rita"]
    # A limit set here holds at this replica's next placement, not seconds later.
    admin = served.admin().admin.organization
    await admin.spend_limit.update(currency="USD", interval="month", threshold_amount=100)
    assert (await served.place("oscar", role="owner")).status_code == 201
    assert reads == ["rita", "", "oscar"]  # "": the endpoint's own read of the tenant
