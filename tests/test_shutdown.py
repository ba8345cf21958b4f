"""Graceful shutdown: SIGTERM during a slow upstream call lets that mint finish, refuses new
connections, and the process then exits cleanly."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from service.auth.tokens import sign_dev_token
from tests.eventually import eventually_sync
from tests.processes import fake_upstream, free_port, running, wait_http

pytestmark = pytest.mark.process

SECRET = "shutdown-test-secret-0123456789abcdef"
UPSTREAM_DELAY_SECONDS = 1.5


class SlowUpstream(ThreadingHTTPServer):
    """Forwards every POST to the real fake upstream after a delay, and says when one
    has arrived, so the test knows the mint is in flight."""

    def __init__(self, fake_base: str) -> None:
        super().__init__(("127.0.0.1", 0), _SlowHandler)
        self.fake_base = fake_base
        self.request_arrived = threading.Event()


class _SlowHandler(BaseHTTPRequestHandler):
    server: SlowUpstream

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.request_arrived.set()
        time.sleep(UPSTREAM_DELAY_SECONDS)
        forwarded = httpx.post(
            self.server.fake_base + self.path,
            content=body,
            headers={"Content-Type": "application/json", "Authorization": "Bearer sk-fake"},
        )
        self.send_response(forwarded.status_code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(forwarded.content)))
        self.end_headers()
        self.wfile.write(forwarded.content)

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def slow_upstream() -> Iterator[SlowUpstream]:
    fake_port = free_port()
    with fake_upstream(fake_port):
        server = SlowUpstream(f"http://127.0.0.1:{fake_port}")
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        yield server
        server.shutdown()
        server.server_close()


def test_sigterm_finishes_the_in_flight_mint_then_exits_cleanly(
    slow_upstream: SlowUpstream,
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        "BROKER_HOST": "127.0.0.1",
        "BROKER_PORT": str(port),
        "BROKER_JWT_SECRET": SECRET,
        "BROKER_UPSTREAM_API_KEY": "test-shutdown-test-key",
        "BROKER_UPSTREAM_URL": f"http://127.0.0.1:{slow_upstream.server_address[1]}/v1",
        "BROKER_UPSTREAM_TIMEOUT_MS": "10000",
        "BROKER_LOG_LEVEL": "warning",
        "UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN": "10",
    }
    token = sign_dev_token(SECRET, sub="alice", role="reader", now=time.time())
    outcome: dict[str, httpx.Response | BaseException] = {}

    def mint() -> None:
        try:
            outcome["response"] = httpx.post(
                f"{base}/v1/realtime/client_secrets",
                json={"session": {"type": "realtime"}},
                headers={"Authorization": f"Bearer {token}"},
                timeout=15,
            )
        except BaseException as exc:
            outcome["response"] = exc

    with running(["serve"], env=env, ready_url=None) as proc:
        wait_http(f"{base}/healthz", proc)
        client = threading.Thread(target=mint)
        client.start()
        assert slow_upstream.request_arrived.wait(10), "the mint never reached the upstream"

        proc.send_signal(signal.SIGTERM)

        # The listener closes: a new connection is refused while the mint finishes.
        def refused() -> bool:
            try:
                httpx.get(f"{base}/healthz", timeout=1)
            except httpx.ConnectError:
                return True
            except httpx.TransportError:  # a connection made just before the close
                return False
            return False

        eventually_sync(refused, seconds=5, what="new connections refused after SIGTERM")

        client.join(15)
        try:
            returncode = proc.wait(15)
        except subprocess.TimeoutExpired:
            pytest.fail("the broker did not exit after SIGTERM")

    response = outcome["response"]
    assert isinstance(response, httpx.Response), f"the mint failed: {response!r}"
    assert response.status_code == 200, response.text
    assert response.json()["value"].startswith("ek_")
    # uvicorn (>= 0.29) re-raises the signal once its graceful shutdown is done, so a clean
    # exit is 0 or "terminated by SIGTERM" (143 to a shell); never the SIGKILL fallback.
    assert returncode in (0, -signal.SIGTERM)
