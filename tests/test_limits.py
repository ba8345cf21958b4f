from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.limits import Limit, Outcome, evaluate, parse_limit, tightest


@pytest.mark.parametrize(
    ("text", "count", "period"),
    [
        ("5/minute", 5, 60.0),
        ("1/second", 1, 1.0),
        ("200/day", 200, 86400.0),
        (" 3 / hours ", 3, 3600.0),
    ],
)
def test_parse_limit(text: str, count: int, period: float) -> None:
    limit = parse_limit(text)
    assert (limit.count, limit.period) == (count, period)


@pytest.mark.parametrize(
    "text", ["0/minute", "-1/minute", "5/fortnight", "5", "", "five/minute", "1e3/day"]
)
def test_parse_limit_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="N/second"):
        parse_limit(text)


def run(limit: Limit, times: list[float]) -> list[bool]:
    tat: float | None = None
    admitted = []
    for now in times:
        outcome = evaluate(limit, tat, now)
        if outcome.allowed:
            tat = outcome.new_tat
        admitted.append(outcome.allowed)
    return admitted


def test_burst_of_n_then_refused_then_one_per_interval() -> None:
    limit = parse_limit("5/minute")
    assert run(limit, [0.0] * 6) == [True] * 5 + [False]
    # After one emission interval (12 s) exactly one more is admitted.
    assert run(limit, [0.0] * 5 + [12.0, 12.0]) == [True] * 5 + [True, False]


def test_outcome_numbers() -> None:
    limit = parse_limit("5/minute")
    first = evaluate(limit, None, 100.0)
    assert (first.remaining, first.reset_after, first.retry_after) == (4, 12.0, 0.0)
    full = evaluate(limit, 160.0, 100.0)
    assert not full.allowed
    assert full.remaining == 0
    assert full.retry_after == pytest.approx(12.0)


def test_tightest_prefers_fewest_remaining() -> None:
    a = evaluate(parse_limit("5/minute"), None, 0.0)
    b = evaluate(parse_limit("200/day"), None, 0.0)
    assert tightest([b, a]) is a
    assert tightest([]) is None


OUTCOMES = st.builds(
    Outcome,
    limit=st.just(parse_limit("5/minute")),
    allowed=st.booleans(),
    remaining=st.integers(0, 3),
    reset_after=st.sampled_from([0.0, 1.5, 12.0, 60.0]),
    retry_after=st.just(0.0),
    new_tat=st.just(0.0),
)


@given(st.lists(OUTCOMES, max_size=5))
def test_tightest_is_the_first_of_the_fewest_remaining_then_longest_wait(
    outcomes: list[Outcome],
) -> None:
    # The definition, spelled as the key it was written with; `is`: the first of equals.
    expected = min(outcomes, key=lambda o: (o.remaining, -o.reset_after)) if outcomes else None
    assert tightest(outcomes) is expected
