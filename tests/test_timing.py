from __future__ import annotations

import pytest

from service.timing import PhaseTimer, parse_server_timing


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_marks_charge_the_time_since_the_previous_mark() -> None:
    clock = FakeClock()
    timer = PhaseTimer(clock)
    clock.now += 0.0005
    timer.mark("jwt")
    clock.now += 0.002
    timer.mark("store")
    assert timer.phases == pytest.approx({"jwt": 0.0005, "store": 0.002})
    assert timer.header() == "jwt;dur=0.500, store;dur=2.000"


def test_same_phase_twice_adds_up_and_skip_charges_nothing() -> None:
    clock = FakeClock()
    timer = PhaseTimer(clock)
    clock.now += 0.001
    timer.mark("policy")
    clock.now += 5.0
    timer.skip()
    clock.now += 0.003
    timer.mark("policy")
    assert timer.phases == pytest.approx({"policy": 0.004})


def test_empty_timer_gives_an_empty_header() -> None:
    assert PhaseTimer(FakeClock()).header() == ""


def test_parse_round_trips_and_tolerates_entries_without_dur() -> None:
    parsed = parse_server_timing("jwt;dur=0.052, policy;desc=x;dur=0.020, cache, ")
    assert parsed == {"jwt": 0.052, "policy": 0.02, "cache": 0.0}
    clock = FakeClock()
    timer = PhaseTimer(clock)
    clock.now += 0.0012345
    timer.mark("upstream")
    assert parse_server_timing(timer.header()) == {"upstream": 1.234}
