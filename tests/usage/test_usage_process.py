"""Usage and spend across real processes (issue #24): a real Redis (standalone), two real
`token-broker serve` replicas and the fake upstream as its own process, told to end
responses with the usage a test gives (`response.done` usage, the fake-only `usage` key of
an injected `response.create`). Everything is read and managed through openai-python's
admin client, from the replica that did not write it: usage per user and model exactly as
reported, costs exactly as priced, a daily budget ending a call and refusing the next
placement, the tenant's spend limit enforcing on every replica and lifting, and usage
still there after a SIGKILL of the replica that wrote it.

One deployment for the module (replicas A and B, C started to be killed); each test has
users of its own, and the spend-limit test lifts the limit it set."""

from __future__ import annotations

import contextlib
import json
import math
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai.types.admin.organization.usage_completions_response import (
    DataResultOrganizationUsageCompletionsResult as CompletionsResult,
)
from openai.types.admin.organization.usage_costs_response import (
    DataResultOrganizationCostsResult as CostsResult,
)

from service.auth.tokens import sign_dev_token
from tests.calls.test_supervision_process import OFFER, SECRET, Deployment, joined, wait_for
from tests.redis_servers import start_server

pytestmark = [pytest.mark.process, pytest.mark.redis]

MINI, FULL = "gpt-realtime-mini", "gpt-realtime"
POLICY = {
    "default_role": "reader",
    "roles": {
        "reader": {"models": [MINI, FULL], "limits": ["1000/minute"]},
        "capped": {"models": [MINI], "limits": ["1000/minute"], "daily_usd_budget": 0.01},
    },
}
# A response's usage, as OpenAI reports it: 100 audio in, 200 audio out, 50 text in of
# which 20 cached, 10 text out.
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
# USD per token (service/usage/prices.json): text in, cached text in, audio in, text out,
# audio out.
PRICE = {
    MINI: (0.6e-6, 0.06e-6, 10e-6, 2.4e-6, 20e-6),
    FULL: (4e-6, 0.4e-6, 32e-6, 16e-6, 64e-6),
}


def cost(model: str, usage: dict[str, Any] = USAGE) -> float:
    text_in, cached_in, audio_in, text_out, audio_out = PRICE[model]
    details, out = usage["input_token_details"], usage["output_token_details"]
    cached = details["cached_tokens_details"]["text_tokens"]
    return float(
        (details["text_tokens"] - cached) * text_in
        + cached * cached_in
        + details["audio_tokens"] * audio_in
        + out["text_tokens"] * text_out
        + out["audio_tokens"] * audio_out
    )


class Usage(Deployment):
    """The supervision tests' deployment, with placements of a model and role, responses
    with usage, and the admin client."""

    def place_as(self, name: str, user: str, *, role: str = "reader", model: str = MINI) -> Any:
        jwt = sign_dev_token(SECRET, sub=user, role=role, now=time.time())
        session = json.dumps({"type": "realtime", "model": model}).encode()
        files = {
            "sdp": (None, OFFER.encode(), "application/sdp"),
            "session": (None, session, "application/json"),
        }
        return httpx.post(
            f"{self.url(name)}/v1/realtime/calls",
            files=files,
            headers={"Authorization": f"Bearer {jwt}"},
            timeout=10,
        )

    def placed_as(self, name: str, user: str, **kwargs: str) -> str:
        response = self.place_as(name, user, **kwargs)
        assert response.status_code == 201, response.text
        call_id: str = response.headers["location"].rsplit("/", 1)[1]
        wait_for(joined(self, [call_id]), 10, "joined")
        return call_id

    def respond(self, call_id: str, usage: dict[str, Any] = USAGE) -> None:
        """A response on the call, done with `usage` (the fake ends it at once)."""
        event = {"type": "response.create", "usage": usage}
        sent = self._fake("POST", f"/_fake/realtime/calls/{call_id}/events", json=event)
        assert sent.is_success, sent.text

    def admin_client(self, name: str) -> openai.OpenAI:
        client = openai.OpenAI(
            admin_api_key=self.env["BROKER_ADMIN_API_KEY"],
            api_key="unused",
            base_url=f"{self.url(name)}/v1",
        )
        self.stack.callback(client.close)
        return client

    def usage(self, name: str, users: list[str]) -> dict[tuple[str, str], CompletionsResult]:
        """The users' usage of the last day (read on replica `name`), per user and model."""
        page = self.admin_client(name).admin.organization.usage.completions(
            start_time=int(time.time()) - 86_400,
            bucket_width="1d",
            group_by=["user_id", "model"],
            user_ids=users,
        )
        assert not page.has_more
        found: dict[tuple[str, str], CompletionsResult] = {}
        for bucket in page.data:
            for r in bucket.results:
                assert isinstance(r, CompletionsResult)
                assert r.user_id is not None
                assert r.model is not None
                # A day's bucket may be cut at UTC midnight: summed.
                if (key := (r.user_id, r.model)) in found:
                    r = _sum(found[key], r)
                found[key] = r
        return found

    def tokens(self, name: str, user: str, model: str = MINI) -> tuple[int, ...] | None:
        """The user's usage of `model` (`tokens`), read on replica `name`; None: none."""
        found = self.usage(name, [user]).get((user, model))
        return None if found is None else tokens(found)

    def costs(self, name: str, start: int, group_by: list[str]) -> dict[str, float]:
        """USD since `start` per line item (or project), read on replica `name`."""
        page = self.admin_client(name).admin.organization.usage.costs(
            start_time=start,
            group_by=group_by,  # type: ignore[arg-type]
            limit=31,
        )
        assert not page.has_more
        found: dict[str, float] = {}
        for bucket in page.data:
            for r in bucket.results:
                assert isinstance(r, CostsResult)
                assert r.amount is not None
                key = str(r.line_item if "line_item" in group_by else r.project_id)
                found[key] = found.get(key, 0.0) + (r.amount.value or 0.0)
        return found


def _sum(a: CompletionsResult, b: CompletionsResult) -> CompletionsResult:
    fields = ("input_tokens", "output_tokens", "input_cached_tokens", "input_audio_tokens",
              "output_audio_tokens", "num_model_requests")  # fmt: skip
    return a.model_copy(update={f: (getattr(a, f) or 0) + (getattr(b, f) or 0) for f in fields})


def tokens(r: CompletionsResult) -> tuple[int, ...]:
    return (
        r.input_tokens,
        r.output_tokens,
        r.input_cached_tokens or 0,
        r.input_audio_tokens or 0,
        r.output_audio_tokens or 0,
        r.num_model_requests,
    )


# input, output, cached in, audio in, audio out, responses: USAGE once
ONCE = (150, 210, 20, 100, 200, 1)


def times(n: int) -> tuple[int, ...]:
    return tuple(n * x for x in ONCE)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Usage]:
    tmp: Path = tmp_path_factory.mktemp("usage")
    server = start_server(tmp / "redis")
    try:
        with contextlib.ExitStack() as stack:
            d = Usage(server.url, tmp, stack)
            d.env["BROKER_POLICY"] = json.dumps(POLICY)
            d.start("a")
            d.start("b")
            yield d
    finally:
        server.stop()


def test_usage_and_costs_are_read_from_the_other_replica_as_reported_and_priced(
    deployment: Usage,
) -> None:
    d = deployment
    ann_mini = d.placed_as("a", "ann", model=MINI)
    bob_full = d.placed_as("a", "bob", model=FULL)
    d.respond(ann_mini)
    d.respond(ann_mini)
    d.respond(bob_full)

    expected = {("ann", MINI): times(2), ("bob", FULL): times(1)}
    wait_for(
        lambda: {k: tokens(r) for k, r in d.usage("b", ["ann", "bob"]).items()} == expected,
        5,
        "the usage written by A, read on B",
    )
    only_ann = d.usage("b", ["ann"])
    assert set(only_ann) == {("ann", MINI)}

    start = int(time.time()) - 86_400
    lines = d.costs("b", start, ["line_item"])
    assert lines[f"{MINI}, output_audio_tokens"] == pytest.approx(2 * 200 * 20e-6)
    assert lines[f"{FULL}, output_audio_tokens"] == pytest.approx(200 * 64e-6)
    mini = sum(v for k, v in lines.items() if k.startswith(MINI + ","))
    full = sum(v for k, v in lines.items() if k.startswith(FULL + ","))
    assert mini == pytest.approx(2 * cost(MINI))
    assert full == pytest.approx(cost(FULL))
    # The tenant's metrics on the replica that wrote it: USD per model, no user label.
    text = httpx.get(f"{d.url('a')}/metrics", timeout=10).text
    spend = f'broker_spend_usd_total{{model="{FULL}",tenant="default"}}'
    assert any(line.startswith(spend) for line in text.splitlines()), text[-2000:]


def test_usage_written_before_a_sigkill_is_still_there(deployment: Usage) -> None:
    """What a SIGKILL may lose: the usage its replica had not written yet, at most its
    last unflushed batch (one scheduler tick of tokens, up to a minute of call time).
    Usage written before the kill (read on B first) is all there after it; the call is
    adopted by B, whose responses are counted from then on."""
    d = deployment
    d.start("c")
    call = d.placed_as("c", "cyd")
    d.respond(call)
    wait_for(lambda: d.tokens("b", "cyd") == ONCE, 5, "written by C")

    d.signal("c", signal.SIGKILL)
    assert d.tokens("b", "cyd") == ONCE
    # Adopted by A or B once its lease lapsed (C's sideband closed with C): supervised,
    # and metered, again.
    wait_for(lambda: '"action":"call.adopted"' in d.log("a") + d.log("b"), 10, "adopted")
    wait_for(joined(d, [call]), 10, "joined by its adopter")
    d.respond(call)
    wait_for(lambda: d.tokens("a", "cyd") == times(2), 5, "metered after the adoption")


def test_a_daily_budget_ends_the_call_that_crosses_it_and_refuses_the_next(
    deployment: Usage,
) -> None:
    d = deployment
    call = d.placed_as("a", "dee", role="capped")
    d.respond(call)  # ~$0.005 of the $0.01 budget
    wait_for(lambda: d.tokens("b", "dee") == ONCE, 5, "written")
    assert call not in d.hung_up()

    d.respond(call)  # ~$0.010: spent
    wait_for(lambda: call in d.hung_up(), 5, "the call ended")
    refused = d.place_as("b", "dee", role="capped")
    assert refused.status_code == 429, refused.text
    assert refused.json()["error"]["code"] == "budget_exceeded"
    assert 0 < int(refused.headers["retry-after"]) <= 86_400
    assert '"reason":"budget_exhausted"' in d.log("a")
    # Another user of the same role is not held by it.
    assert d.place_as("b", "eve", role="capped").status_code == 201


def test_the_spend_limit_ends_calls_on_every_replica_refuses_and_lifts(deployment: Usage) -> None:
    d = deployment
    limits = d.admin_client("b").admin.organization.spend_limit
    now = time.gmtime()
    month_start = int(time.mktime((now.tm_year, now.tm_mon, 1, 0, 0, 0, 0, 0, 0)) - time.timezone)
    spent = sum(d.costs("b", month_start, ["project_id"]).values())
    # Just above what the tenant spent this month: one FULL response crosses it.
    cents = math.ceil(spent * 100) + 1
    assert cost(FULL) * 100 > 1
    on_a = d.placed_as("a", "fay", model=FULL)
    on_b = d.placed_as("b", "gus")
    try:
        limit = limits.update(currency="USD", interval="month", threshold_amount=cents)
        assert (limit.threshold_amount, limit.enforcement.status) == (cents, "inactive")

        d.respond(on_a)
        # A's batch crosses it: A ends its call, and B, told, ends its own.
        wait_for(lambda: {on_a, on_b} <= set(d.hung_up()), 5, "both calls ended")
        assert limits.retrieve().enforcement.status == "enforcing"
        refused = d.place_as("a", "hal")
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["code"] == "spend_limit_reached"
        assert '"reason":"spend_limit_reached"' in d.log("b")

        # Raised: work goes through again at once, on either replica.
        limits.update(currency="USD", interval="month", threshold_amount=cents + 10_000)
        assert d.place_as("a", "hal").status_code == 201
    finally:
        limits.delete()
    with pytest.raises(openai.NotFoundError):
        limits.retrieve()
