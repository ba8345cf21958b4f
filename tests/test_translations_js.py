"""The npm SDK (openai, pinned in tests/js) mints a translation secret through
`token-broker dev` unchanged (`client.realtime.translations.clientSecrets.create`), clamped
to the role; a role naming no translation model gets the 403 as the SDK's error."""

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

JS = Path(__file__).resolve().parent / "js"
POLICY = {
    "default_role": "reader",
    "roles": {
        "reader": {
            "translation_models": ["gpt-realtime-translate"],
            "translation_languages": ["fr", "de"],
            "limits": ["10/minute"],
        },
        "owner": {"limits": ["10/minute"]},
    },
}


@pytest.fixture(scope="module")
def node() -> str:
    found = shutil.which("node")
    assert found, "Node.js is needed for the npm SDK's test (apt-get install nodejs)"
    if not (JS / "node_modules" / "openai").is_dir():
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"], cwd=JS, check=True, timeout=300,
            capture_output=True,
        )  # fmt: skip
    return found


def test_the_npm_sdk_mints_a_translation_secret_clamped_to_the_role(
    node: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    port = free_port()
    env = {"XDG_STATE_HOME": str(tmp_path), "BROKER_POLICY": json.dumps(POLICY)}
    base = f"http://127.0.0.1:{port}"
    with running(["dev", "--port", str(port)], env=env, ready_url=f"{base}/healthz"):
        now = time.time()
        reader = sign_dev_token(dev_secret(), sub="tara", role="reader", now=now)
        owner = sign_dev_token(dev_secret(), sub="omar", role="owner", now=now)
        ran = subprocess.run(
            [node, str(JS / "translations.mjs"), base, reader, owner],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    assert ran.returncode == 0, ran.stderr
    result = json.loads(ran.stdout.strip().splitlines()[-1])
    minted = result["minted"]
    assert minted["prefix"] == "ek_"
    assert minted["session"]["type"] == "translation"
    assert minted["session"]["model"] == "gpt-realtime-translate"
    assert minted["session"]["audio"] == {"output": {"language": "fr"}}
    assert minted["adjusted"] == "session.model,session.audio.output.language"
    assert minted["expires_at"] <= now + 130
    refused = result["refused"]
    assert (refused["status"], refused["code"]) == (403, "role_forbidden")
