"""The token benchmark (bench/tokens.py) measures real authentications: every token it
times is a valid one, of its own user. Its figures are printed by the script, not asserted
here: a timed assertion would fail on a loaded CI machine without telling anything about
the code."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.tokens import authenticate_all, tenant, tokens
from service.auth.tokens import Authenticator

ROOT = Path(__file__).resolve().parents[2]


async def test_the_timed_tokens_authenticate_each_as_its_own_user() -> None:
    async with httpx.AsyncClient() as http:
        auth = Authenticator([tenant()], http=http, clock=time.time)
        identities = await authenticate_all(auth, tokens(50, now=time.time()))

    assert [i.user_id for i in identities] == [f"user-{n}" for n in range(50)]
    assert {i.role for i in identities} == {"reader"}


def test_the_script_prints_both_figures_and_the_budget_verdict() -> None:
    done = subprocess.run(
        [sys.executable, "bench/tokens.py", "--tokens", "200", "--rounds", "2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = done.stdout.splitlines()
    assert lines[0] == "HS256 authentication, 200 tokens x 2 rounds"
    assert [line.split()[0] for line in lines[1:3]] == ["verified", "cached"]
    assert lines[3].startswith("budget: < 500 µs/token: ")
