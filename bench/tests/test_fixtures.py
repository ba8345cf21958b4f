"""What the benchmark sends: the adjusting target defeats the broker's mint memo."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench import fixtures
from service.mint.plans import MAX_MEMO_BODY, MEMO_ENTRIES


def test_the_adjusting_target_sends_more_distinct_bodies_than_the_broker_remembers() -> None:
    bodies = fixtures.bodies("broker-adjust", 4096)

    assert len(set(bodies)) == 4096 > MEMO_ENTRIES
    assert all(len(b) <= MAX_MEMO_BODY for b in bodies)  # each one would be remembered
    first = json.loads(bodies[0])["session"]
    assert {k: v for k, v in first.items() if k != "instructions"} == {
        k: v for k, v in fixtures.ADJUST_BODY["session"].items() if k != "instructions"
    }


def test_the_other_targets_send_an_apps_one_body() -> None:
    for target in ("broker-hs256", "broker-jwks", "proxy"):
        bodies = fixtures.bodies(target, 8)
        assert set(bodies) == {json.dumps(fixtures.BODY).encode()}
