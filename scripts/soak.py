"""Soak with a fault: two `token-broker serve` processes on one Redis (AOF on), N clients
minting for D seconds, Redis restarted once in the middle. Prints what happened and
exits non-zero on a 500, a lost directory record, or a user above the limit's bound.

    python scripts/soak.py [--seconds 60] [--clients 50] [--users 25]

Everything listens on 127.0.0.1; the upstream is the fake, as its own process
(`token-broker fake-upstream`).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from service.auth.tokens import sign_dev_token
from tests.processes import fake_upstream, free_port, running
from tests.redis_servers import start_server

SECRET = "soak-secret-0123456789-abcdefghijklmnopq"
ADMIN_KEY = "soak-admin-key-0123456789-abcdefghijk"
PER_MINUTE = 10  # the built-in policy's per-user limit
MINT = "/v1/realtime/client_secrets"


async def soak(
    urls: list[str], seconds: float, clients: int, users: int, restart: object
) -> dict[str, object]:
    statuses: collections.Counter[int] = collections.Counter()
    granted: collections.Counter[str] = collections.Counter()
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(timeout=10, limits=limits) as http:
        started = time.monotonic()
        stop_at = started + seconds

        async def worker(n: int) -> None:
            sub, url = f"user-{n % users}", urls[n % len(urls)]
            while time.monotonic() < stop_at:
                token = sign_dev_token(SECRET, sub=sub, role="reader", now=time.time())
                t0 = time.monotonic()
                try:
                    response = await http.post(
                        url + MINT,
                        json={"session": {"type": "realtime"}},
                        headers={"Authorization": f"Bearer {token}"},
                    )
                    status = response.status_code
                except httpx.HTTPError:
                    status = 0  # no answer at all: counted, never expected
                latencies.append(time.monotonic() - t0)
                statuses[status] += 1
                if status == 200:
                    granted[sub] += 1
                await asyncio.sleep(0.01)

        async def restarter() -> None:
            await asyncio.sleep(seconds / 2)
            await asyncio.to_thread(restart)  # type: ignore[arg-type]

        await asyncio.gather(restarter(), *(worker(n) for n in range(clients)))
        elapsed = time.monotonic() - started
        listed = await http.get(
            urls[0] + "/v1/organization/users",
            params={"limit": 100},
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        )
    directory = {u["id"] for u in listed.json()["data"]}
    bound = PER_MINUTE + PER_MINUTE * elapsed / 60
    latencies.sort()
    return {
        "seconds": round(elapsed, 1),
        "clients": clients,
        "replicas": len(urls),
        "statuses": dict(sorted(statuses.items())),
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 1),
        "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 1),
        "max_ms": round(latencies[-1] * 1000, 1),
        "max_granted_per_user": max(granted.values(), default=0),
        "bound_per_user": round(bound, 2),
        "users_granted": len(granted),
        "users_missing_from_directory": sorted(set(granted) - directory),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--users", type=int, default=25)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(
            Path(tmp), extra_args=("--appendonly", "yes", "--appendfsync", "always")
        )

        def restart() -> None:
            server.stop()
            server.start()

        try:
            ports = [free_port(), free_port()]
            fake_port = free_port()
            env = {
                "BROKER_HOST": "127.0.0.1",
                "BROKER_UPSTREAM_URL": f"http://127.0.0.1:{fake_port}/v1",
                "BROKER_UPSTREAM_API_KEY": "soak-fake-upstream-key",
                "BROKER_JWT_SECRET": SECRET,
                "BROKER_ADMIN_API_KEY": ADMIN_KEY,
                "BROKER_REDIS_URL": server.url,
                "BROKER_REDIS_TIMEOUT_MS": "100",
                "BROKER_LOG_LEVEL": "error",
            }
            urls = [f"http://127.0.0.1:{port}" for port in ports]
            with (
                fake_upstream(fake_port),
                running(
                    ["serve"],
                    env={**env, "BROKER_PORT": str(ports[0])},
                    ready_url=urls[0] + "/healthz",
                ),
                running(
                    ["serve"],
                    env={**env, "BROKER_PORT": str(ports[1])},
                    ready_url=urls[1] + "/healthz",
                ),
            ):
                result = asyncio.run(soak(urls, args.seconds, args.clients, args.users, restart))
        finally:
            server.stop()
    print(json.dumps(result, indent=2))
    statuses = result["statuses"]
    assert isinstance(statuses, dict)
    failed = (
        500 in statuses
        or 0 in statuses
        or bool(result["users_missing_from_directory"])
        or float(result["max_granted_per_user"]) > float(result["bound_per_user"])  # type: ignore[arg-type]
    )
    print("FAIL" if failed else "OK")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
