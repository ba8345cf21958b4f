"""The broker's added latency per sideband event (p50/p99), printed.

What the broker adds to a call's event path is `CallState.on_text`: JSON parsing, the
comparison of a `session.updated` with the pinned policy fields, and usage counting.
Redis and upstream calls are off that path (the watcher does them), so this measures
the whole per-event cost. Run: `python bench/sideband.py [--events N]`; the budget is
1 ms p99 (issue 9).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from service.calls.model import CallPolicy
from service.calls.state import CallState
from service.policy.apply import apply_policy
from service.policy.parse import parse_policy
from service.session.codec import decode_request, encode_upstream_request

POLICY = {
    "default_role": "reader",
    "roles": {
        "reader": {
            "models": ["gpt-realtime-mini"],
            "voices": ["alloy", "verse"],
            "instructions": {"mode": "server", "text": "You are the Acme assistant. " * 40},
            "tools": {"allow": ["lookup_order"]},
            "turn_detection": {"types": ["server_vad"]},
            "max_output_tokens": 1024,
        }
    },
}


def build_state() -> tuple[CallState, dict[str, object]]:
    policy = parse_policy(POLICY)
    request = decode_request("client_secrets", {"session": {"type": "realtime"}})
    effective, _ = apply_policy(policy, "reader", request)
    _, body, _ = encode_upstream_request(effective, "ga")
    session = body["session"]
    rules = policy.rules_for("reader")
    return CallState(CallPolicy.of("reader", rules, session)), session


def events(session: dict[str, object]) -> list[str]:
    same = {"type": "session.updated", "event_id": "e1", "session": session}
    changed = {**same, "session": {**session, "instructions": "be evil"}}
    done = {
        "type": "response.done",
        "event_id": "e2",
        "response": {"status": "completed", "usage": {"total_tokens": 100}},
    }
    audio = {"type": "response.output_audio.delta", "event_id": "e3", "delta": "A" * 2000}
    # A realistic mix: mostly streaming deltas, some usage, a few session updates.
    mix = [audio] * 16 + [done] * 2 + [same, changed]
    return [json.dumps(e) for e in mix]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    args = parser.parse_args()
    state, session = build_state()
    texts = events(session)
    samples: list[float] = []
    clock = time.perf_counter_ns
    for i in range(args.events):
        text = texts[i % len(texts)]
        start = clock()
        state.on_text(text)
        samples.append((clock() - start) / 1000)
    cuts = statistics.quantiles(samples, n=100)
    by_kind: dict[str, list[float]] = {}
    for i, micros in enumerate(samples):
        kind = json.loads(texts[i % len(texts)])["type"]
        by_kind.setdefault(kind, []).append(micros)
    print(f"sideband event path, {args.events} events")
    print(f"  all:   p50 {cuts[49]:.1f} µs   p99 {cuts[98]:.1f} µs   max {max(samples):.1f} µs")
    for kind, values in sorted(by_kind.items()):
        q = statistics.quantiles(values, n=100)
        print(f"  {kind:30s} p50 {q[49]:.1f} µs   p99 {q[98]:.1f} µs")
    print("budget: p99 < 1000 µs:", "ok" if cuts[98] < 1000 else "OVER")


if __name__ == "__main__":
    main()
