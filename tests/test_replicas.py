"""Two `token-broker serve` processes sharing one real Redis: limits hold together,
failure modes apply within a second, recovery needs no restart (issue 3)."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.eventually import eventually
from tests.processes import fake_upstream, free_port, running, tenant_issuers, tenant_token
from tests.redis_servers import RedisServer, start_server

pytestmark = [pytest.mark.process, pytest.mark.redis]

SECRET = "replica-test-secret-0123456789abcdef"
# solo: one user limited to 10/minute (a refill every 6 s), closed failure mode.
# crowd: a tenant limit of 20/minute over many users, open failure mode.
POLICIES = {
    "solo": {"default_role": "reader", "roles": {"reader": {"limits": ["10/minute"]}}},
    "crowd": {
        "default_role": "reader",
        "tenant_limits": ["20/minute"],
        "roles": {"reader": {"limits": ["1000/minute"]}},
    },
}


@pytest.fixture(scope="module")
def replicas_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = start_server(tmp_path_factory.mktemp("replicas"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def replicas(replicas_redis: RedisServer) -> Iterator[list[str]]:
    fake_port = free_port()
    ports = [free_port(), free_port()]
    env = {
        "BROKER_HOST": "127.0.0.1",
        "BROKER_TENANTS": "solo,crowd",
        "BROKER_JWT_SECRET": SECRET,
        "BROKER_UPSTREAM_API_KEY": "test-replica-test",
        "BROKER_UPSTREAM_URL": f"http://127.0.0.1:{fake_port}/v1",
        "BROKER_REDIS_URL": replicas_redis.url,
        "BROKER_REDIS_TIMEOUT_MS": "500",
        "BROKER_SOLO_RATE_LIMIT_FAILURE_MODE": "closed",
        "BROKER_CROWD_RATE_LIMIT_FAILURE_MODE": "open",
        "BROKER_LOG_LEVEL": "error",
    }
    env.update(tenant_issuers(list(POLICIES)))
    for tenant, policy in POLICIES.items():
        env[f"BROKER_{tenant.upper()}_POLICY"] = json.dumps(policy)
    with (
        fake_upstream(fake_port),
        running(
            ["serve"],
            env={**env, "BROKER_PORT": str(ports[0])},
            ready_url=f"http://127.0.0.1:{ports[0]}/healthz",
        ),
        running(
            ["serve"],
            env={**env, "BROKER_PORT": str(ports[1])},
            ready_url=f"http://127.0.0.1:{ports[1]}/healthz",
        ),
    ):
        yield [f"http://127.0.0.1:{port}" for port in ports]


def token(tenant: str, sub: str) -> str:
    return tenant_token(SECRET, tenant, sub)


async def burst(bases: list[str], tokens: list[str]) -> tuple[Counter[int], float]:
    """Fire every mint at once, alternating replicas; the statuses and the slowest."""
    limits = httpx.Limits(max_connections=len(tokens), max_keepalive_connections=len(tokens))
    async with httpx.AsyncClient(limits=limits, timeout=10) as client:

        async def one(i: int, jwt: str) -> tuple[int, float]:
            started = time.monotonic()
            response = await client.post(
                f"{bases[i % len(bases)]}/v1/realtime/client_secrets",
                json={"session": {"type": "realtime"}},
                headers={"Authorization": f"Bearer {jwt}"},
            )
            return response.status_code, time.monotonic() - started

        results = await asyncio.gather(*(one(i, jwt) for i, jwt in enumerate(tokens)))
    return Counter(status for status, _ in results), max(elapsed for _, elapsed in results)


async def test_limits_hold_across_replicas_and_refill(replicas: list[str]) -> None:
    solo = token("solo", "only-user")
    crowd = [token("crowd", f"user-{i}") for i in range(40)]
    user_statuses, _ = await burst(replicas, [solo] * 100)
    user_done = time.monotonic()
    tenant_statuses, tenant_slowest = await burst(replicas, crowd * 5)
    tenant_done = time.monotonic()
    assert user_statuses == Counter({200: 10, 429: 90})
    assert tenant_statuses[200] == 20
    assert set(tenant_statuses) == {200, 429}

    # One refill interval of the tenant limit (60/20 = 3 s) after the burst, which took
    # less than another interval: exactly one more.
    assert tenant_slowest < 3.0
    await asyncio.sleep(max(0.0, tenant_done + 3.05 - time.monotonic()))
    again, _ = await burst(replicas, crowd[:10])
    assert again[200] == 1
    # One refill interval of the user limit (60/10 = 6 s): exactly one more.
    await asyncio.sleep(max(0.0, user_done + 6.05 - time.monotonic()))
    again, _ = await burst(replicas, [solo] * 10)
    assert again == Counter({200: 1, 429: 9})


async def test_redis_down_then_back(replicas: list[str], replicas_redis: RedisServer) -> None:
    replicas_redis.stop()
    try:
        closed, slowest_closed = await burst(
            replicas, [token("solo", f"down-{i}") for i in range(20)]
        )
        opened, slowest_open = await burst(
            replicas, [token("crowd", f"down-{i}") for i in range(20)]
        )
    finally:
        replicas_redis.start()
    assert closed == Counter({503: 20})
    assert opened == Counter({200: 20})
    # Each answered within the 500 ms Redis deadline (once the breaker opens, at once),
    # not held until the client gives up (10 s).
    assert slowest_closed < 1.0
    assert slowest_open < 1.0

    # Back without restarting either broker: decisions come from Redis again (a closed
    # tenant mints only when Redis answers).
    async def minted() -> bool:
        statuses, _ = await burst(replicas, [token("solo", "after-recovery")])
        return statuses == Counter({200: 1})

    await eventually(minted, seconds=10, what="a mint decided by Redis again", every=0.25)
    keys = replicas_redis.client().keys("*after-recovery*")
    size: Any = replicas_redis.client().dbsize()  # redis-py 6 types it `Awaitable | int`
    assert keys or size > 0
