"""Revocation in failure mode `open`, with real `token-broker serve` replicas on a real
Redis that dies: a user revoked before the outage stays refused on every replica (the one
that revoked, one told by the revocation event, one started after the revocation), while
everyone else is served by the local limiter."""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

import httpx
import pytest

from service.auth.tokens import sign_dev_token
from tests.processes import fake_upstream, free_port, running
from tests.redis_servers import start_server

pytestmark = [pytest.mark.process, pytest.mark.redis]

SECRET = "test-secret-0123456789-abcdefghijklmnop"
ADMIN_KEY = "admin-key-0123456789abcdef"
POLICY = {"default_role": "reader", "roles": {"reader": {"limits": ["1000/minute"]}}}


def mint(url: str, user: str) -> httpx.Response:
    jwt = sign_dev_token(SECRET, sub=user, role="reader", now=time.time())
    return httpx.post(
        f"{url}/v1/realtime/client_secrets",
        json={"session": {"type": "realtime"}},
        headers={"Authorization": f"Bearer {jwt}"},
        timeout=10,
    )


def test_a_user_revoked_before_an_outage_stays_refused_in_open_mode(tmp_path: Path) -> None:
    server = start_server(tmp_path / "redis")
    fake_port = free_port()
    env = {
        "BROKER_HOST": "127.0.0.1",
        "BROKER_JWT_SECRET": SECRET,
        "BROKER_ADMIN_API_KEY": ADMIN_KEY,
        "BROKER_UPSTREAM_API_KEY": "test-revocation-test-0123456789",
        "BROKER_UPSTREAM_URL": f"http://127.0.0.1:{fake_port}/v1",
        "BROKER_REDIS_URL": server.url,
        "BROKER_REDIS_TIMEOUT_MS": "500",
        "BROKER_RATE_LIMIT_FAILURE_MODE": "open",
        "BROKER_POLICY": json.dumps(POLICY),
        "BROKER_LOG_LEVEL": "warning",
    }

    def serve(name: str) -> contextlib.AbstractContextManager[object]:
        port = free_port()
        urls[name] = f"http://127.0.0.1:{port}"
        return running(
            ["serve"],
            env={**env, "BROKER_PORT": str(port)},
            ready_url=urls[name] + "/healthz",
            log=tmp_path / f"{name}.log",
        )

    urls: dict[str, str] = {}
    try:
        with contextlib.ExitStack() as stack:
            stack.enter_context(fake_upstream(fake_port))
            stack.enter_context(serve("a"))
            stack.enter_context(serve("b"))
            assert [mint(urls["a"], u).status_code for u in ("rita", "bob")] == [200, 200]
            revoked = httpx.delete(
                f"{urls['a']}/v1/organization/users/rita",
                headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            )
            assert revoked.status_code == 200
            stack.enter_context(serve("c"))  # loads the revocations as it starts
            time.sleep(1.0)  # the event reaches B; C's first load is done

            server.stop()

            for name in ("a", "b", "c"):
                refused = mint(urls[name], "rita")
                assert refused.status_code == 403, (name, refused.text)
                assert refused.json()["error"]["code"] == "user_revoked"
                assert mint(urls[name], "bob").status_code == 200, name
                assert mint(urls[name], "newcomer").status_code == 200, name
    finally:
        server.stop()
