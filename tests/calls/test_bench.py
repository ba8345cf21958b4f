"""The sideband event path stays far under the 1 ms p99 budget (bench/sideband.py)."""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.sideband import build_state, events


def test_event_path_p99_is_under_one_millisecond() -> None:
    state, session = build_state()
    texts = events(session)
    samples = []
    for i in range(5000):
        start = time.perf_counter()
        state.on_text(texts[i % len(texts)])
        samples.append(time.perf_counter() - start)
    assert statistics.quantiles(samples, n=100)[98] < 0.001
    assert state.pending_tokens == 100 * 2 * (5000 // len(texts))
