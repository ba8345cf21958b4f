"""Starting the real CLI as child processes, for process-level tests and benchmarks."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import httpx

from tests.eventually import eventually_sync

# The installed console script, as operators run it; `-m` where scripts are not on disk.
_SCRIPT = Path(sys.executable).parent / "token-broker"
CLI = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "service.cli"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_http(url: str, proc: subprocess.Popen[str], timeout: float = 20.0) -> None:
    def answers() -> bool:
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            raise RuntimeError(f"process exited with {proc.returncode}:\n{out}")
        try:
            httpx.get(url, timeout=0.5)
        except httpx.HTTPError:
            return False
        return True

    eventually_sync(answers, seconds=timeout, what=f"an answer from {url}", every=0.05)


def stop(proc: subprocess.Popen[str], timeout: float = 10.0) -> str:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stdout is None:
        return ""
    with proc.stdout:
        return proc.stdout.read()


@contextlib.contextmanager
def running(
    args: Sequence[str],
    *,
    env: Mapping[str, str],
    ready_url: str | None,
    clean_env: bool = True,
    log: Path | None = None,
) -> Iterator[subprocess.Popen[str]]:
    """Run `token-broker ARGS` until the block ends. With `clean_env`, BROKER_* variables
    of the test runner's own environment are not inherited. With `log`, the output goes
    to that file (a pipe nobody reads would stall a chatty process)."""
    base = {k: v for k, v in os.environ.items() if not (clean_env and k.startswith("BROKER_"))}
    with contextlib.ExitStack() as files:
        output = subprocess.PIPE if log is None else files.enter_context(log.open("w"))
        proc = subprocess.Popen(
            [*CLI, *args],
            env={**base, **env},
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
        )
    try:
        if ready_url is not None:
            wait_http(ready_url, proc)
        yield proc
    finally:
        stop(proc)


def fake_upstream(
    port: int, log: Path | None = None
) -> contextlib.AbstractContextManager[subprocess.Popen[str]]:
    """`token-broker fake-upstream` on `port`, answering when the block starts. Its output
    goes to `log` (by default a file in the temp dir), never to a pipe nobody reads."""
    return running(
        ["fake-upstream", "--port", str(port)],
        env={},
        ready_url=f"http://127.0.0.1:{port}/v1/vector_stores",
        log=log or Path(tempfile.gettempdir()) / f"fake-upstream-{port}.log",
    )


def tenant_issuers(tenants: Sequence[str]) -> dict[str, str]:
    """Per-tenant issuer and audience (required with several tenants): `https://<id>.example`
    and `broker`, which `tenant_token` signs for."""
    env: dict[str, str] = {}
    for tenant in tenants:
        env[f"BROKER_{tenant.upper()}_JWT_ISSUER"] = f"https://{tenant}.example"
        env[f"BROKER_{tenant.upper()}_JWT_AUDIENCE"] = "broker"
    return env


def tenant_token(secret: str, tenant: str, sub: str, role: str = "reader") -> str:
    from service.auth.tokens import sign_dev_token

    return sign_dev_token(
        secret,
        sub=sub,
        role=role,
        now=time.time(),
        issuer=f"https://{tenant}.example",
        audience="broker",
    )
