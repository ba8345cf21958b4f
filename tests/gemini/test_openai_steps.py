"""A Gemini tenant has none of OpenAI's API: the steps that reach it (the OpenAI mint,
the vector-store proxy) refuse such a tenant with the 404 its routes give, before
anything is charged, rather than failing on a missing client (a KeyError, a 500)."""

from __future__ import annotations

import pytest

from service.auth.tokens import Identity
from service.errors import NotFound
from service.mint.broker import NOT_OPENAI, Broker
from service.timing import PhaseTimer
from service.vector_stores.proxy import LIST_ROLES, UpstreamCall, forward
from tests.gemini.conftest import Harness

ALICE = Identity("gemini", "alice", "reader", None, None, 2_000_000_000)


async def test_the_proxy_and_the_openai_mint_refuse_a_gemini_tenant_uncharged(
    harness: Harness,
) -> None:
    broker: Broker = harness.app.state.broker

    with pytest.raises(NotFound) as proxied:
        await forward(broker, ALICE, UpstreamCall("GET", "/vector_stores"), roles=LIST_ROLES)
    with pytest.raises(NotFound) as minted:
        await broker.mint("client_secrets", ALICE, b"{}", timer=PhaseTimer())
    token = await harness.mint()

    assert proxied.value.message == minted.value.message == NOT_OPENAI
    assert token.headers["ratelimit-remaining"] == "2"  # the mint's own limit, untouched
    assert broker.openai_upstream("openai") is broker.upstreams["openai"]
