"""calls.lifecycle.Lifecycle: a held call's phase and its transitions (pure)."""

from __future__ import annotations

import pytest

from service.calls.lifecycle import Lifecycle, Phase


def life_in(phase: Phase) -> Lifecycle:
    life = Lifecycle()
    if phase is Phase.ENDING:
        life.end("admin")
    elif phase is Phase.ENDED:
        life.ended()
    elif phase is Phase.RELEASED:
        life.release()
    return life


@pytest.mark.parametrize(
    ("phase", "end", "ended", "release"),
    [
        (Phase.HELD, Phase.ENDING, Phase.ENDED, Phase.RELEASED),
        (Phase.ENDING, Phase.ENDING, Phase.ENDED, Phase.RELEASED),
        (Phase.ENDED, Phase.ENDED, Phase.ENDED, Phase.RELEASED),
        (Phase.RELEASED, Phase.RELEASED, Phase.RELEASED, Phase.RELEASED),
    ],
)
def test_each_transition_applies_in_its_phases_only(
    phase: Phase, end: Phase, ended: Phase, release: Phase
) -> None:
    for transition, after in (
        (lambda life: life.end("max_call_seconds"), end),
        (Lifecycle.ended, ended),
        (Lifecycle.release, release),
    ):
        life = life_in(phase)
        transition(life)
        assert life.phase is after


def test_the_first_reason_stays_and_names_the_end() -> None:
    life = Lifecycle()
    assert life.end_reason == "ended_upstream"
    assert life.end("max_call_seconds")
    assert life.end("admin")  # ending still: another hangup may be tried
    life.ended()
    assert not life.end("admin")
    assert (life.reason, life.end_reason) == ("max_call_seconds", "max_call_seconds")


def test_a_refused_hangup_is_due_again_later_and_later() -> None:
    life = Lifecycle()
    life.end("admin")
    delays = []
    for _ in range(8):
        life.refused(100.0, 1.0)
        assert not life.retry_due(100.0)
        assert life.retry_due(life.retry_at)
        delays.append(life.retry_at - 100.0)
    assert delays == [2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0, 30.0]
    life.ended()
    assert not life.retry_due(1e9)


def test_hours_of_refusals_do_not_overflow_the_backoff() -> None:
    life = Lifecycle()
    life.end("admin")
    for _ in range(1100):  # 2.0**1023 would overflow a float
        life.refused(100.0, 1.0)

    assert life.retry_at == 130.0
