"""The held-calls benchmark (bench/calls.py) runs end to end with a small N: real `serve`,
Redis and fake upstream processes, every call placed, joined and reverted. Its timings are
printed by the script, not asserted here."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.process, pytest.mark.redis]


@pytest.mark.skipif(shutil.which("taskset") is None, reason="the benchmark pins with taskset")
def test_the_benchmark_places_holds_and_reverts_calls(tmp_path: Path) -> None:
    out = tmp_path / "calls.json"
    done = subprocess.run(
        [sys.executable, "bench/calls.py", "--calls", "30", "--smoke", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    [run] = json.loads(out.read_text())["runs"]
    assert run["statuses"] == {"201": 30}
    assert run["joined"] == 30
    assert run["reverts_seen"] == run["reverts_sampled"] == 30
    assert run["mint_statuses"] == {"200": 500}
    # Usage flowed on every held call and the ledger counted each response once.
    assert run["usage_responses_in_ledger"] == run["usage_responses_sent"] >= 30
    assert "30 calls: placed 30" in done.stdout
