"""The sideband benchmark (bench/sideband.py) runs and measures the real event path.

Its figures are printed by the script, not asserted here: a timed assertion would
fail on a loaded CI machine without telling anything about the code.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.sideband import build_state, events

ROOT = Path(__file__).resolve().parents[2]


def test_the_measured_events_go_through_the_real_call_state() -> None:
    state, session = build_state()
    texts = events(session)
    for i in range(5000):
        state.on_text(texts[i % len(texts)])
    # Two response.done events of 100 tokens in each round of the mix.
    assert state.pending_tokens == 100 * 2 * (5000 // len(texts))


def test_the_script_prints_its_percentiles_and_the_budget_verdict() -> None:
    done = subprocess.run(
        [sys.executable, "bench/sideband.py", "--events", "2000"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = done.stdout.splitlines()
    assert lines[0] == "sideband event path, 2000 events"
    assert any(line.strip().startswith("response.done") for line in lines)
    assert lines[-1].startswith("budget: p99 < 1000 µs: ")
