"""docker-compose.yml run the way compose runs it, without an engine: each service's
command and environment as a process on this machine, the service names it uses (`redis`,
`fake-upstream`) resolved to the loopback ports those processes listen on, and the broker's
published port to one of its own. What the file's header tells a developer to do works."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.processes import CLI, free_port, running
from tests.redis_servers import start_server

pytestmark = [pytest.mark.process, pytest.mark.redis]

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"


def services() -> dict[str, Any]:
    found: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())["services"]
    return found


def header() -> str:
    return "\n".join(
        line.removeprefix("#") for line in COMPOSE.read_text().splitlines() if line[:1] == "#"
    )


def resolved(value: str, addresses: Mapping[str, str]) -> str:
    """A value with compose's service addresses (`redis:6379`) as local ones."""
    for name, address in addresses.items():
        value = value.replace(name, address)
    return value


def environment(service: Mapping[str, Any], addresses: Mapping[str, str]) -> dict[str, str]:
    env = service.get("environment", {})
    return {key: resolved(str(value), addresses) for key, value in env.items()}


def listening_on(command: list[str], port: int) -> list[str]:
    """The command on 127.0.0.1:`port` (the container's address and port, on this host):
    its own --host and --port replaced, else given, winning over BROKER_HOST/BROKER_PORT."""
    args = list(command)
    for flag, value in (("--host", "127.0.0.1"), ("--port", str(port))):
        if flag in args:
            args[args.index(flag) + 1] = value
        else:
            args += [flag, value]
    return args


def first_line(log: Path, prefix: str) -> str:
    return next(line for line in log.read_text().splitlines() if line.startswith(prefix))


def test_the_compose_services_run_against_each_other_as_its_header_says(tmp_path: Path) -> None:
    compose = services()
    redis_command = compose["redis"]["command"]
    assert redis_command[0] == "redis-server"
    redis = start_server(tmp_path / "redis", extra_args=tuple(redis_command[1:]))
    fake_port, broker_port = free_port(), free_port()
    addresses = {
        "redis:6379": f"127.0.0.1:{redis.port}",
        "fake-upstream:8081": f"127.0.0.1:{fake_port}",
    }
    fake, broker = compose["fake-upstream"], compose["broker"]
    env = environment(broker, addresses)
    base = f"http://127.0.0.1:{broker_port}"
    text = header()
    token_args = re.search(r"docker compose exec -T broker token-broker ([^)]*)\)", text)
    body = re.search(r"-d '([^']*)'", text)
    assert token_args
    assert body
    try:
        with (
            running(
                listening_on(fake["command"], fake_port),
                env=environment(fake, addresses),
                ready_url=f"http://127.0.0.1:{fake_port}/v1/vector_stores",
                log=tmp_path / "fake.log",
            ),
            running(
                listening_on(broker["command"], broker_port),
                env=env,
                ready_url=f"{base}/healthz",
                log=tmp_path / "broker.log",
            ),
        ):
            ready = httpx.get(f"{base}/readyz")
            # `docker compose exec -T broker token-broker jwt ...`: in the broker's environment.
            token = subprocess.run(
                [*CLI, *shlex.split(token_args.group(1))],
                env={"PATH": "/usr/bin:/bin", **env},
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
            ).stdout.strip()
            minted = httpx.post(
                f"{base}/v1/realtime/client_secrets",
                content=body.group(1),
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )
            # A frontend of one's own (Vite's port) may call it from the browser.
            preflight = httpx.options(
                f"{base}/v1/realtime/calls",
                headers={
                    "Origin": "http://localhost:5173",
                    "Access-Control-Request-Method": "POST",
                    "Access-Control-Request-Headers": "authorization, content-type",
                },
            )
            # The broker's healthcheck, as compose runs it in the container.
            check = [
                sys.executable if word == "python" else word.replace(":8080/", f":{broker_port}/")
                for word in broker["healthcheck"]["test"][1:]
            ]
            healthy = subprocess.run(check, capture_output=True, timeout=30)
    finally:
        redis.stop()

    assert ready.json() == {"status": "ready"}
    assert minted.status_code == 200, minted.text
    assert minted.json()["value"].startswith("ek_")  # the fake-upstream process minted it
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "http://localhost:5173"
    assert healthy.returncode == 0, healthy.stderr
    assert first_line(tmp_path / "broker.log", "token-broker serve:") == (
        f"token-broker serve: http://127.0.0.1:{broker_port} (tenants default; upstream "
        "openai; Redis state; CORS http://localhost:* http://127.0.0.1:*; /metrics on this port)"
    )
    assert "real WebRTC calls (aiortc)" in first_line(
        tmp_path / "fake.log", "token-broker fake-upstream:"
    )
