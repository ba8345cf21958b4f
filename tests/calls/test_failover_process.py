"""Redis failing over under load: a Sentinel promotion and a Cluster master failover while
mints run on two `token-broker serve` replicas and calls are held. No 500 (503 while no
master answers), mints back within seconds, no call hung up, every call supervised
afterwards (an override reverted), the admin listing complete; and records the failover
lost (replication is asynchronous: the last writes may not have reached the replica) are
written again by their owners. Real sentinels and a real cluster with replicas; the fake
upstream as its own process."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from service.auth.tokens import sign_dev_token
from tests.calls.test_supervision_process import POLICY, SECRET, Deployment, joined, wait_for
from tests.redis_servers import (
    RedisServer,
    client,
    start_cluster,
    start_replica,
    start_sentinel,
    start_server,
)

pytestmark = [pytest.mark.process, pytest.mark.redis]

# Calls outlive the test; leases as in production (a failover lasts less than one).
LONG_POLICY = {
    "default_role": "reader",
    "roles": {"reader": {**POLICY["roles"]["reader"], "max_call_seconds": 300}},  # type: ignore[index]
}
LEASE = "15"
CALLS = 4


@dataclass
class MintLoad:
    """Mints on every replica, one after another, until stopped: each one's status and
    when it was answered (seconds since the load started)."""

    urls: list[str]
    seen: list[tuple[float, int]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    @contextlib.contextmanager
    def running(self) -> Iterator[MintLoad]:
        thread = threading.Thread(target=self._run, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join(20)

    def _run(self) -> None:
        started, n = time.monotonic(), 0
        with httpx.Client(timeout=10) as http:
            while not self._stop.is_set():
                n += 1
                jwt = sign_dev_token(SECRET, sub=f"minter{n % 50}", role="reader", now=time.time())
                answer = http.post(
                    f"{self.urls[n % len(self.urls)]}/v1/realtime/client_secrets",
                    json={"session": {"type": "realtime"}},
                    headers={"Authorization": f"Bearer {jwt}"},
                )
                self.seen.append((time.monotonic() - started, answer.status_code))
                time.sleep(0.02)

    def back(self, since: float, refused: bool = True) -> bool:
        """Whether the last 20 mints, all after `since` (seconds into the load), were
        answered 200, after one that was not (`refused`). Users spread over the slots
        of a cluster's masters: 20 in a row missing a dead one are unlikely (1 in 3,000)."""
        last = self.seen[-20:]
        return (
            len(last) == 20
            and last[0][0] > since
            and all(s == 200 for _, s in last)
            and (not refused or any(t > since and s != 200 for t, s in self.seen))
        )

    @property
    def statuses(self) -> set[int]:
        return {status for _, status in self.seen}

    def window(self) -> float:
        """From the first mint not answered 200 to the first 200 after the last one."""
        refused = [t for t, s in self.seen if s != 200]
        if not refused:
            return 0.0
        return next(t for t, s in self.seen if t > refused[-1] and s == 200) - refused[0]


def held_through(d: Deployment, kill: Callable[[], None], lose: Callable[[], None]) -> None:
    """Two replicas hold CALLS calls while mints run; `kill` takes the master down (its
    replica is promoted); then `lose` drops the supervision records, as a failover to a
    replica the last writes had not reached would."""
    d.env["BROKER_POLICY"] = json.dumps(LONG_POLICY)
    d.env["BROKER_CALL_LEASE_SECONDS"] = LEASE
    a, b = d.start("a"), d.start("b")
    calls = [d.placed("ab"[n % 2], f"user{n}") for n in range(CALLS)]
    wait_for(joined(d, calls), 10, "joined")

    load = MintLoad([a, b])
    with load.running():
        wait_for(lambda: load.back(0.0, refused=False), 10, "mints before")
        killed_at = load.seen[-1][0]
        kill()
        wait_for(lambda: load.back(killed_at), 30, "mints back after the failover")
    window = load.window()

    assert load.statuses <= {200, 503}, load.seen  # no 500, nor anything else
    assert d.hung_up() == []
    assert sorted(str(c["id"]) for c in listing(d)) == sorted(calls)

    lose()
    lost_at = time.monotonic()
    assert len(listing(d)) < CALLS
    wait_for(lambda: len(listing(d)) == CALLS, float(LEASE), "the records written again")
    rewritten_in = time.monotonic() - lost_at
    assert all(c["supervised"] for c in listing(d))
    for call in calls:
        d.override(call)
    wait_for(lambda: all(d.instructions(c) == "Policy text." for c in calls), 5, "reverted")
    assert d.hung_up() == []
    print(f"failover: mints refused {window:.1f} s; records written again in {rewritten_in:.1f} s")
    assert window < 15


def listing(d: Deployment) -> list[dict[str, object]]:
    answer = d.admin("b", "GET", "/realtime/calls?limit=20")
    assert answer.status_code == 200, answer.text
    calls: list[dict[str, object]] = answer.json()["data"]
    return calls


def test_a_sentinel_failover_under_load(tmp_path: Path) -> None:
    master = start_server(tmp_path / "master")
    replica = start_replica(tmp_path, master)
    sentinel = start_sentinel(tmp_path / "sentinel", master, down_after_ms=1000)
    try:
        with contextlib.ExitStack() as stack:
            d = Deployment(sentinel.url, tmp_path, stack)

            def lose() -> None:
                with replica.client() as c:
                    c.delete(*(c.keys("tb:{default}:sup*") or ["-"]))

            held_through(d, lambda: master.process.kill() if master.process else None, lose)
    finally:
        for server in (sentinel, replica, master):
            server.stop()


def test_a_cluster_master_failover_under_load(tmp_path: Path) -> None:
    cluster = start_cluster(tmp_path / "cluster", replicas=1)
    try:
        # The master of the slot of the supervision records (`tb:{default}:sup`).
        with cluster.nodes[0].client() as c:
            slot = int(c.execute_command("CLUSTER", "KEYSLOT", "tb:{default}:sup"))
            shards = c.execute_command("CLUSTER", "SLOTS")
        owner = next(int(s[2][1]) for s in shards if int(s[0]) <= slot <= int(s[1]))
        doomed = next(n for n in cluster.nodes if n.port == owner)

        def lose() -> None:
            for node in cluster.nodes:
                if node is not doomed:
                    with contextlib.suppress(Exception), client(node.port) as c:
                        if c.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot):
                            c.delete(*c.keys("tb:{default}:sup*"))

        with contextlib.ExitStack() as stack:
            d = Deployment(cluster.url, tmp_path, stack)
            held_through(d, lambda: kill(doomed), lose)
    finally:
        cluster.stop()


def kill(server: RedisServer) -> None:
    if server.process is not None:
        server.process.kill()
