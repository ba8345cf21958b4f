"""The real CLI as processes: `serve` against `fake-upstream`, `dev`, `jwt`, `config check`."""

from __future__ import annotations

import json
import re
import shlex
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests.processes import CLI, fake_upstream, free_port, running, tenant_issuers, tenant_token

pytestmark = pytest.mark.process

SECRET = "process-test-secret-0123456789abcdef"
TENANTS = ("good", "strict", "down", "slow", "broken")


class _Failing(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.send_response(500)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"error": {"message": "boom"}}')

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture(scope="module")
def failing_upstream() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Failing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def hanging_upstream() -> Iterator[int]:
    """Accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
                accepted.append(conn)
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    listener.close()


@pytest.fixture(scope="module")
def broker(failing_upstream: int, hanging_upstream: int) -> Iterator[str]:
    fake_port, broker_port = free_port(), free_port()
    env = {
        "BROKER_HOST": "127.0.0.1",
        "BROKER_PORT": str(broker_port),
        "BROKER_TENANTS": ",".join(TENANTS),
        "BROKER_JWT_SECRET": SECRET,
        "BROKER_UPSTREAM_API_KEY": "test-process-test-key",
        "BROKER_UPSTREAM_URL": f"http://127.0.0.1:{fake_port}/v1",
        "BROKER_UPSTREAM_TIMEOUT_MS": "700",
        "BROKER_POLICY": json.dumps(
            {
                "default_role": "reader",
                "on_violation": "clamp",
                "roles": {"reader": {"limits": ["3/minute"]}},
            }
        ),
        "BROKER_STRICT_POLICY": json.dumps(
            {
                "default_role": "reader",
                "on_violation": "reject",
                "roles": {"reader": {"voices": ["alloy"], "limits": ["50/minute"]}},
            }
        ),
        "BROKER_DOWN_UPSTREAM_URL": f"http://127.0.0.1:{free_port()}/v1",
        "BROKER_SLOW_UPSTREAM_URL": f"http://127.0.0.1:{hanging_upstream}/v1",
        "BROKER_BROKEN_UPSTREAM_URL": f"http://127.0.0.1:{failing_upstream}/v1",
        "BROKER_LOG_LEVEL": "warning",
    }
    env.update(tenant_issuers(TENANTS))
    with (
        fake_upstream(fake_port),
        running(["serve"], env=env, ready_url=f"http://127.0.0.1:{broker_port}/healthz"),
    ):
        yield f"http://127.0.0.1:{broker_port}"


def jwt_for(tenant: str, sub: str = "alice") -> str:
    return tenant_token(SECRET, tenant, sub)


def mint(base: str, tenant: str, body: bytes | None = None, sub: str = "alice") -> httpx.Response:
    return httpx.post(
        f"{base}/v1/realtime/client_secrets",
        content=b'{"session": {"type": "realtime"}}' if body is None else body,
        headers={"Authorization": f"Bearer {jwt_for(tenant, sub)}"},
        timeout=10,
    )


def error_code(response: httpx.Response) -> str:
    code: str = response.json()["error"]["code"]
    return code


def test_serve_mints_against_fake_upstream(broker: str) -> None:
    response = mint(broker, "good", sub="minter")
    assert response.status_code == 200, response.text
    assert response.json()["value"].startswith("ek_")
    assert response.headers["x-request-id"]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{", "invalid_json"),
        (b'{"bogus": 1}', "unknown_parameter"),
        (b'{"expires_after": {"seconds": "soon"}}', "invalid_value"),
    ],
)
def test_serve_400s(broker: str, body: bytes, code: str) -> None:
    response = mint(broker, "good", body, sub=f"bad-{code}")
    assert response.status_code == 400
    assert error_code(response) == code


def test_serve_policy_violation(broker: str) -> None:
    body = json.dumps({"session": {"type": "realtime", "audio": {"output": {"voice": "ash"}}}})
    response = mint(broker, "strict", body.encode())
    assert response.status_code == 400
    assert error_code(response) == "policy_violation"
    assert response.json()["error"]["param"] == "session.audio.output.voice"


def test_serve_401_404_413(broker: str) -> None:
    unauthenticated = httpx.post(f"{broker}/v1/realtime/client_secrets", json={})
    assert unauthenticated.status_code == 401
    assert error_code(unauthenticated) == "invalid_token"
    assert unauthenticated.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    missing = httpx.get(f"{broker}/v1/nothing-here")
    assert (missing.status_code, error_code(missing)) == (404, "not_found")
    huge = mint(broker, "good", b'{"x": "' + b"a" * 70_000 + b'"}', sub="huge")
    assert (huge.status_code, error_code(huge)) == (413, "request_too_large")


def test_serve_429(broker: str) -> None:
    statuses = [mint(broker, "good", sub="limited").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    last = mint(broker, "good", sub="limited")
    assert error_code(last) == "rate_limit_exceeded"
    assert int(last.headers["retry-after"]) >= 1


def test_serve_upstream_failures(broker: str) -> None:
    down = mint(broker, "down")
    assert (down.status_code, error_code(down)) == (503, "upstream_unavailable")
    broken = mint(broker, "broken")
    assert (broken.status_code, error_code(broken)) == (502, "upstream_error")
    assert "boom" not in broken.text
    started = time.monotonic()
    slow = mint(broker, "slow")
    assert (slow.status_code, error_code(slow)) == (504, "upstream_timeout")
    # Cut at the 700 ms upstream deadline: the hanging upstream never answers at all.
    assert time.monotonic() - started < 5


def test_serve_refuses_incomplete_configuration() -> None:
    result = subprocess.run(
        [*CLI, "serve"],
        env={"PATH": "/usr/bin:/bin", "BROKER_JWT_SECRT": "typo"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    assert "BROKER_JWT_SECRT" in result.stderr
    assert "UPSTREAM_API_KEY" in result.stderr


def test_serve_refuses_the_in_process_fake() -> None:
    result = subprocess.run(
        [*CLI, "serve"],
        env={"PATH": "/usr/bin:/bin", "BROKER_UPSTREAM": "fake", "BROKER_JWT_SECRET": SECRET},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "BROKER_UPSTREAM=fake" in result.stderr
    assert "token-broker dev" in result.stderr
    assert "token-broker fake-upstream" in result.stderr


def test_the_app_factory_refuses_the_fake_without_dev_wiring() -> None:
    from service.config.settings import load_settings
    from service.errors import ConfigError
    from service.web.app import create_app

    settings = load_settings({"BROKER_UPSTREAM": "fake", "BROKER_JWT_SECRET": SECRET})
    with pytest.raises(ConfigError, match="token-broker dev"):
        create_app(settings)


def test_config_check_masks_secrets() -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "BROKER_JWT_SECRET": SECRET,
        "BROKER_UPSTREAM_API_KEY": "test-config-check-key",
    }
    result = subprocess.run(
        [*CLI, "config", "check"], env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    assert SECRET not in result.stdout
    assert "test-config-check-key" not in result.stdout
    described = json.loads(result.stdout)
    assert "default" in json.dumps(described)


def test_dev_prints_a_curl_line_that_mints(tmp_path: Path) -> None:
    port = free_port()
    env = {"XDG_STATE_HOME": str(tmp_path)}
    with running(
        ["dev", "--port", str(port)], env=env, ready_url=f"http://127.0.0.1:{port}/healthz"
    ) as proc:
        assert proc.stdout is not None
        lines: list[str] = []
        while not any("-d '" in line for line in lines):
            lines.append(proc.stdout.readline())
        curl = " ".join(
            line.strip().rstrip("\\")
            for line in lines
            if line.strip()[:4] in ("curl", "-H '", "-d '")
        )
        assert any(line.startswith("Policy: dev mode's default") for line in lines)
        result = subprocess.run(shlex.split(curl), capture_output=True, text=True, timeout=30)
        body = json.loads(result.stdout)
        assert body["value"].startswith("ek_")
        # `token-broker jwt` signs with the same dev secret, so its tokens work too.
        jwt = subprocess.run(
            [*CLI, "jwt", "--sub", "bob", "--role", "owner"],
            env={"PATH": "/usr/bin:/bin", "XDG_STATE_HOME": str(tmp_path)},
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout.strip()
        assert re.fullmatch(r"[\w-]+\.[\w-]+\.[\w-]+", jwt)
        minted = httpx.post(
            f"http://127.0.0.1:{port}/v1/realtime/sessions",
            json={},
            headers={"Authorization": f"Bearer {jwt}"},
        )
        assert minted.status_code == 200, minted.text
        assert minted.json()["client_secret"]["value"].startswith("ek_")


def test_dev_upstream_gemini_says_so_and_its_curl_line_mints_a_gemini_token(
    tmp_path: Path,
) -> None:
    port = free_port()
    env = {"XDG_STATE_HOME": str(tmp_path), "BROKER_UPSTREAM_API_KEY": "test-not-for-the-fake"}
    with running(
        ["dev", "--upstream", "gemini", "--port", str(port)],
        env=env,
        ready_url=f"http://127.0.0.1:{port}/healthz",
    ) as proc:
        assert proc.stdout is not None
        lines: list[str] = []
        while not any("access_token=NAME" in line for line in lines):
            lines.append(proc.stdout.readline())
        curl = " ".join(
            line.strip().rstrip("\\")
            for line in lines
            if line.strip()[:4] in ("curl", "-H '", "-d '")
        )
        result = subprocess.run(shlex.split(curl), capture_output=True, text=True, timeout=30)

    [first] = [line for line in lines if line.startswith("token-broker dev:")]
    assert "the built-in fake Gemini (no key needed)" in first
    assert "config check --dev --upstream gemini" in "".join(lines)
    assert f"ws://127.0.0.1:{port}/ws/google.ai.generativelanguage.v1alpha." in lines[-1]
    assert f"{port}/v1alpha/auth_tokens" in curl
    assert json.loads(result.stdout)["name"].startswith("auth_tokens/")


def test_config_check_dev_upstream_gemini_shows_the_gemini_defaults(tmp_path: Path) -> None:
    from service.cli import DEV_GEMINI_MODELS

    shown = run_cli(
        "config", "check", "--dev", "--upstream", "gemini", env={"XDG_STATE_HOME": str(tmp_path)}
    )

    assert shown.returncode == 0, shown.stderr
    tenant = json.loads(shown.stdout)["tenants"]["default"]
    assert tenant["upstream"] == "gemini"
    assert tenant["upstream_api_key"] == "**********"
    for rules in tenant["policy"]["roles"].values():
        assert rules["models"] == DEV_GEMINI_MODELS


# --- the first hour of a frontend developer ---------------------------------------------


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        env={"PATH": "/usr/bin:/bin", **(env or {})},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_config_check_dev_says_dev_and_its_policy_can_be_pasted_back(tmp_path: Path) -> None:
    policy = {"default_role": "reader", "roles": {"reader": {"voices": ["alloy"],
              "tools": {"allow": ["lookup"]}, "vector_store_limits": ["5/minute"]}}}  # fmt: skip
    env = {"XDG_STATE_HOME": str(tmp_path), "BROKER_POLICY": json.dumps(policy)}
    first = run_cli("config", "check", "--dev", env=env)
    assert first.returncode == 0, first.stderr
    described = json.loads(first.stdout)
    assert described["dev"] is True
    printed = described["tenants"]["default"]["policy"]

    again = run_cli("config", "check", "--dev", env={**env, "BROKER_POLICY": json.dumps(printed)})

    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["tenants"]["default"]["policy"] == printed


def test_the_dev_banner_says_what_it_runs_on(tmp_path: Path) -> None:
    port = free_port()
    env = {
        "XDG_STATE_HOME": str(tmp_path),
        "BROKER_UPSTREAM": "openai",
        "BROKER_UPSTREAM_URL": "http://127.0.0.1:9/v1",
        "BROKER_UPSTREAM_API_KEY": "test-banner-test-key-0123456789",
    }
    with running(
        ["dev", "--port", str(port)], env=env, ready_url=f"http://127.0.0.1:{port}/healthz"
    ) as proc:
        assert proc.stdout is not None
        first = ""
        while not first.startswith("token-broker dev:"):
            first = proc.stdout.readline()
    assert "OpenAI at http://127.0.0.1:9/v1" in first
    assert "in-memory state" in first
    assert "fake" not in first


def test_dev_on_a_busy_port_says_so_and_prints_no_curl_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli("dev", "--port", str(port), env={"XDG_STATE_HOME": str(tmp_path)})
    assert result.returncode == 2
    assert "cannot listen" in result.stderr
    assert "curl" not in result.stdout


def test_jwt_signs_with_the_configured_secret_file_and_tenant(tmp_path: Path) -> None:
    secret_file = tmp_path / "jwt-secret"
    secret_file.write_text("file-secret-0123456789-abcdefghijklmnop\n")
    env = {
        "XDG_STATE_HOME": str(tmp_path),
        "BROKER_TENANTS": "acme,globex",
        "BROKER_ACME_JWT_SECRET_FILE": str(secret_file),
        "BROKER_ACME_JWT_ISSUER": "https://acme.example",
        "BROKER_ACME_JWT_AUDIENCE": "broker",
        "BROKER_GLOBEX_JWT_JWKS_URL": "https://idp.globex.example/jwks.json",
        "BROKER_GLOBEX_JWT_ISSUER": "https://globex.example",
        "BROKER_GLOBEX_JWT_AUDIENCE": "broker",
        "BROKER_GLOBEX_JWT_ALGORITHMS": "RS256",
    }
    import jwt as pyjwt

    signed = run_cli("jwt", "--sub", "amy", "--tenant", "acme", env=env)
    assert signed.returncode == 0, signed.stderr
    claims = pyjwt.decode(
        signed.stdout.strip(),
        "file-secret-0123456789-abcdefghijklmnop",
        algorithms=["HS256"],
        audience="broker",
    )
    assert (claims["sub"], claims["iss"]) == ("amy", "https://acme.example")
    unnamed = run_cli("jwt", "--sub", "amy", env=env)
    assert unnamed.returncode == 2
    assert "--tenant" in unnamed.stderr
    jwks = run_cli("jwt", "--sub", "gus", "--tenant", "globex", env=env)
    assert jwks.returncode == 2
    assert "identity provider" in jwks.stderr


HELP = [
    ("jwt", ["--sub", "--tenant", "--ttl"]),
    ("serve", ["BROKER_", "--host", "--port"]),
    ("dev", ["--port"]),
]


@pytest.mark.parametrize(("command", "words"), HELP)
def test_help_describes_the_options(command: str, words: list[str]) -> None:
    shown = run_cli(command, "--help")
    assert shown.returncode == 0
    for word in words:
        assert word in shown.stdout


# --- dev mode answers local host names only; /metrics on a port of its own ------------------


def upgrade_status(port: int, host: str) -> bytes:
    """The status line uvicorn answers a WebSocket handshake with, for this Host."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(
            f"GET /v1/realtime?call_id=rtc_1 HTTP/1.1\r\nHost: {host}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n".encode()
        )
        return conn.recv(4096).split(b"\r\n", 1)[0]


def test_dev_answers_only_local_host_names(tmp_path: Path) -> None:
    port = free_port()
    env = {"XDG_STATE_HOME": str(tmp_path), "BROKER_DEV_ALLOWED_HOSTS": "devbox.test"}
    base = f"http://127.0.0.1:{port}"
    with running(["dev", "--port", str(port)], env=env, ready_url=f"{base}/healthz"):
        codes = {
            host: httpx.post(f"{base}/dev/token", json={}, headers={"Host": host}).status_code
            for host in (f"localhost:{port}", f"[::1]:{port}", "devbox.test", "evil.example")
        }
        refused = httpx.get(f"{base}/", headers={"Host": f"evil.example:{port}"})
        websocket = upgrade_status(port, "evil.example")
    assert codes == {f"localhost:{port}": 200, f"[::1]:{port}": 200, "devbox.test": 200,
                     "evil.example": 403}  # fmt: skip
    assert "BROKER_DEV_ALLOWED_HOSTS" in refused.text
    assert websocket.startswith(b"HTTP/1.1 403")


def test_serve_with_a_metrics_port_serves_metrics_only_there() -> None:
    port, metrics_port = free_port(), free_port()
    env = {
        "BROKER_HOST": "127.0.0.1",
        "BROKER_PORT": str(port),
        "BROKER_METRICS_PORT": str(metrics_port),
        "BROKER_JWT_SECRET": SECRET,
        "BROKER_UPSTREAM_API_KEY": "test-process-test-key",
        "BROKER_UPSTREAM_URL": f"http://127.0.0.1:{free_port()}/v1",
    }
    with running(["serve"], env=env, ready_url=f"http://127.0.0.1:{port}/healthz") as proc:
        api = httpx.get(f"http://127.0.0.1:{port}/metrics")
        scraped = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics")
    assert api.status_code == 404
    assert scraped.status_code == 200
    assert "broker_calls_active 0.0" in scraped.text
    assert proc.returncode in (0, -15)  # SIGTERM stopped both listeners, nothing hung


def test_the_servers_websocket_limit_is_the_relays_frame_cap() -> None:
    # ASGI's accept cannot bound a message: uvicorn's server-wide limit must (16 MiB else).
    from service.cli import api_config
    from service.config.settings import load_settings
    from service.web.relay import MAX_FRAME_BYTES

    settings = load_settings({"BROKER_UPSTREAM": "fake", "BROKER_JWT_SECRET": "x" * 40})
    config = api_config(object(), settings)

    assert config.ws_max_size == MAX_FRAME_BYTES == 64 * 1024


# --- start-up says what it runs on and refuses what cannot work (issue 23) -----------------


def first_line(proc: subprocess.Popen[str], prefix: str) -> str:
    """The first line of the process's output that starts with `prefix`."""
    assert proc.stdout is not None
    line = ""
    while not line.startswith(prefix):
        line = proc.stdout.readline()
        assert line, f"the process ended before printing {prefix!r}"
    return line.strip()


SERVE_ENV = {
    "BROKER_JWT_SECRET": SECRET,
    "BROKER_UPSTREAM_API_KEY": "test-process-test-key",
    "BROKER_UPSTREAM_URL": "http://127.0.0.1:9/v1",
}


@pytest.mark.parametrize("command", [["config", "check"], ["serve"]])
def test_one_admin_key_for_several_tenants_is_refused_at_start_up(command: list[str]) -> None:
    env = {
        **SERVE_ENV,
        "BROKER_TENANTS": "acme,globex",
        "BROKER_ADMIN_API_KEY": "one-admin-key-for-all-0123456789",
        **tenant_issuers(("acme", "globex")),
    }

    result = run_cli(*command, env=env)

    assert result.returncode == 2
    assert "BROKER_ADMIN_API_KEY: tenants acme, globex have the same admin key" in result.stderr
    assert "BROKER_ACME_ADMIN_API_KEY, BROKER_GLOBEX_ADMIN_API_KEY" in result.stderr
    assert "one-admin-key-for-all" not in result.stderr + result.stdout


def test_serve_takes_host_and_port_over_the_environment_and_says_what_it_runs_on() -> None:
    port = free_port()
    env = {**SERVE_ENV, "BROKER_HOST": "0.0.0.0", "BROKER_PORT": str(free_port()),
           "BROKER_CORS_ORIGINS": "https://app.example"}  # fmt: skip
    with running(
        ["serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        ready_url=f"http://127.0.0.1:{port}/healthz",
    ) as proc:
        line = first_line(proc, "token-broker serve:")
    assert line == (
        f"token-broker serve: http://127.0.0.1:{port} (tenants default; upstream openai; "
        "in-memory state (one process); CORS https://app.example; /metrics on this port)"
    )
    assert SECRET not in line
    assert "test-process-test-key" not in line


def test_serve_on_a_busy_port_names_the_flag_it_takes() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        taken = run_cli("serve", "--host", "127.0.0.1", "--port", str(port), env=SERVE_ENV)
    assert taken.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in taken.stderr
    assert "choose another port with --port" in taken.stderr
    assert "token-broker serve:" not in taken.stdout


def test_fake_upstream_says_where_it_listens(tmp_path: Path) -> None:
    port = free_port()
    with running(
        ["fake-upstream", "--port", str(port)],
        env={},
        ready_url=f"http://127.0.0.1:{port}/v1/vector_stores",
    ) as proc:
        line = first_line(proc, "token-broker fake-upstream:")
    assert line.startswith(f"token-broker fake-upstream: http://127.0.0.1:{port}/v1 (")
    assert "real WebRTC calls (aiortc)" in line  # the test environment has the dev extra
    assert f"the fake Gemini at http://127.0.0.1:{port} (/v1alpha/auth_tokens" in line


def test_dev_mode_s_default_policy_shows_what_a_policy_does(tmp_path: Path) -> None:
    from service.cli import DEV_INSTRUCTIONS

    shown = run_cli("config", "check", "--dev", env={"XDG_STATE_HOME": str(tmp_path)})

    assert shown.returncode == 0, shown.stderr
    roles = json.loads(shown.stdout)["tenants"]["default"]["policy"]["roles"]
    assert set(roles) == {"owner", "reader"}
    for rules in roles.values():
        assert rules["models"]  # no role may use any model
        assert "gpt-live-1" in rules["models"]  # the demo page's GPT-Live session
        assert "ash" not in rules["voices"]  # the demo page's override is reverted
        assert rules["instructions"] == {"mode": "server", "text": DEV_INSTRUCTIONS}
    # A policy of one's own replaces it.
    own = {"roles": {"reader": {"voices": ["echo"]}}}
    env = {"XDG_STATE_HOME": str(tmp_path), "BROKER_POLICY": json.dumps(own)}
    mine = json.loads(run_cli("config", "check", "--dev", env=env).stdout)
    assert set(mine["tenants"]["default"]["policy"]["roles"]) == {"reader"}
