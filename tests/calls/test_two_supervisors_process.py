"""Two supervisors (issue #25): a replica cut off from Redis but not from OpenAI, whose
call another replica adopted, must not act on it too. Real `token-broker serve` replicas
on a real Redis, the fake upstream as its own process; replica A reaches Redis through a
proxy that cuts the path (connections held open, nothing through, new ones too) while
its sidebands to the fake go on. Who reverted an override is told by each replica's
`broker_call_reverts_total`: the fake sees the reverts, not which sideband sent them."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import httpx
import pytest

from tests.calls.test_supervision_process import POLICY, Deployment, joined, wait_for
from tests.freezing_proxy import FreezingProxy
from tests.redis_servers import RedisServer

pytestmark = [pytest.mark.process, pytest.mark.redis]

LEASE = 2  # seconds: A's leases lapse, and B adopts, within a few seconds of the cut
# Deadlines far beyond the test: no hangup but one the two supervisors cause.
LONG_POLICY = {
    "default_role": "reader",
    "roles": {"reader": {**POLICY["roles"]["reader"], "max_call_seconds": 300}},  # type: ignore[index]
}


def metric(d: Deployment, replica: str, name: str) -> float:
    """The sum of a metric's samples on one replica (0 before its first)."""
    text = httpx.get(f"{d.url(replica)}/metrics", timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.split("{", 1)[0].split(" ", 1)[0] == name
    )


def reverts(d: Deployment, replica: str) -> float:
    return metric(d, replica, "broker_call_reverts_total")


def test_a_replica_cut_off_from_redis_leaves_the_call_to_its_adopter(
    clean_redis: RedisServer, tmp_path: Path
) -> None:
    with contextlib.ExitStack() as stack:
        d = Deployment(clean_redis.url, tmp_path, stack)
        d.env["BROKER_POLICY"] = json.dumps(LONG_POLICY)
        d.env["BROKER_CALL_LEASE_SECONDS"] = str(LEASE)
        proxy = FreezingProxy(clean_redis.port).start()
        stack.callback(proxy.stop)
        d.start(
            "a",
            BROKER_REDIS_URL=f"redis://127.0.0.1:{proxy.port}",
            # Commands into the cut path fail within a second, not two.
            BROKER_REDIS_TIMEOUT_MS="1000",
        )
        d.start("b")
        call = d.placed("a", "user0")
        wait_for(joined(d, [call]), 10, "joined by A")

        # A keeps its sideband (OpenAI is reachable) but no longer reaches Redis.
        assert proxy.cut() >= 1
        wait_for(lambda: metric(d, "b", "broker_call_adoptions_total") == 1, 15, "adopted by B")
        # A's sideband is still open: B's is the second.
        wait_for(lambda: d.sidebands(call) == 2, 10, "joined by B")
        assert reverts(d, "a") == reverts(d, "b") == 0

        d.override(call)
        wait_for(lambda: reverts(d, "b") == 1, 10, "the override reverted by B")
        # A read the override on its own sideband too: it held its revert back (its
        # warning), or reverted as well (the bug).
        held_back = "reverts and hangups held back"
        wait_for(
            lambda: held_back in d.log("a") or reverts(d, "a") > 0, 10, "A reading the override"
        )
        assert reverts(d, "a") == 0, "A reverted too: two supervisors"
        assert d.instructions(call) == "Policy text."
        assert metric(d, "a", "broker_calls_active") == 1  # A does not know yet
        assert d.hung_up() == []

        # A reaches Redis again: its renewal says the call is B's, and A lets it go,
        # with the revert it held back.
        proxy.mend()
        wait_for(lambda: metric(d, "a", "broker_calls_active") == 0, 15, "let go by A")
        wait_for(lambda: d.sidebands(call) == 1, 10, "A's sideband closed")
        assert "adopted elsewhere; let go" in d.log("a")
        assert reverts(d, "a") == 0
        assert reverts(d, "b") == 1  # the first override: one revert, B's

        d.override(call)
        wait_for(lambda: reverts(d, "b") == 2, 10, "the second override reverted by B")
        assert d.instructions(call) == "Policy text."
        assert reverts(d, "a") == 0
        assert metric(d, "b", "broker_calls_active") == 1
        assert d.hung_up() == []
