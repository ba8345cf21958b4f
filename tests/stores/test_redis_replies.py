"""Reply decoding: `outcomes` (written for speed) against the plain reading of the
script's reply format it replaced."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from service.limits import Limit, Outcome, parse_limits
from service.stores.redis_replies import outcomes

LIMITS = parse_limits(["5/minute", "100/day", "600/minute"])


def reference(flat: Sequence[Any], limits: Sequence[Limit]) -> list[Outcome]:
    result = []
    for i in range(0, len(flat), 6):
        number, allowed, remaining, reset, retry, tat = flat[i : i + 6]
        result.append(
            Outcome(
                limit=limits[int(number) - 1],
                allowed=int(allowed) == 1,
                remaining=int(remaining),
                reset_after=float(reset) / 1e6,
                retry_after=float(retry) / 1e6,
                new_tat=float(tat) / 1e6,
            )
        )
    return result


REPLIES: list[list[Any]] = [
    [],
    [1, 1, 4, "12000000", "0", "1764000000000000"],
    [2, 0, 0, "86399999.999999985", "864.5", "1.7640000000000002e+15"],
    [3, 1, 599, "100000", "0", "5", 1, 0, 0, "60000000", "11999999", "7"],
    ["1", "1", "4", "12000000", "0", "1"],  # as strings (another client's decoding)
    [1, 1, 0, "-0", "1e-300", "1e+300", 2, 1, 99, "0", "0", "0", 3, 0, 598, "1", "2", "3"],
]


@pytest.mark.parametrize("flat", REPLIES)
def test_outcomes_as_reference(flat: list[Any]) -> None:
    assert outcomes(flat, LIMITS) == reference(flat, LIMITS)


@pytest.mark.parametrize("length", [1, 5, 7, 11])
def test_a_truncated_reply_is_an_error(length: int) -> None:
    flat = REPLIES[-1][:length]
    with pytest.raises(ValueError, match="values to unpack"):
        reference(flat, LIMITS)
    with pytest.raises(ValueError, match="shorter than"):
        outcomes(flat, LIMITS)
