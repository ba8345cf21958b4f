"""The README's "From the browser" JavaScript, run by Node with the npm packages (pinned in
tests/js) against `token-broker dev`: the npm SDK mints, and the Agents SDK connects with
the secret the broker minted. Installs the packages from the npm registry when missing."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from service.auth.tokens import sign_dev_token
from service.cli import dev_secret
from tests.processes import free_port, running

pytestmark = pytest.mark.process

ROOT = Path(__file__).resolve().parent.parent
JS = ROOT / "tests" / "js"


@pytest.fixture(scope="module")
def node() -> str:
    found = shutil.which("node")
    assert found, "Node.js is needed for the README's browser snippets (apt-get install nodejs)"
    if not (JS / "node_modules" / "@openai" / "agents-realtime").is_dir():
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"], cwd=JS, check=True, timeout=300,
            capture_output=True,
        )  # fmt: skip
    return found


def test_the_readme_browser_snippets_mint_and_connect(
    node: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    port = free_port()
    env = {"XDG_STATE_HOME": str(tmp_path)}
    with running(
        ["dev", "--port", str(port)], env=env, ready_url=f"http://127.0.0.1:{port}/healthz"
    ):
        jwt = sign_dev_token(
            dev_secret(), sub="dana", role="reader", now=time.time(), ttl_seconds=600
        )
        ran = subprocess.run(
            [node, str(JS / "run_readme.mjs"), str(ROOT / "README.md"),
             f"http://127.0.0.1:{port}", jwt],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    result = json.loads(ran.stdout.strip().splitlines()[-1])
    assert result["blocks"] == 2
    # 1: the npm SDK minted; 2: the Agents SDK asked the broker for a secret and opened its
    # connection (to OpenAI, refused here) with exactly that secret.
    assert len(result["minted"]) == 2
    assert all(value.startswith("ek_") for value in result["minted"])
    [opened] = result["opened"]
    assert opened["host"] == "api.openai.com"
    assert opened["authorization"] == f"Bearer {result['minted'][1]}"
