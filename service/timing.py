"""Server-Timing for a mint: where the time of one request went, so a regression can be
located from the outside (`curl -i`, browser devtools, the benchmark harness).

    timer = PhaseTimer()
    ...; timer.mark("jwt"); ...; timer.mark("store"); ...
    headers["Server-Timing"] = timer.header()   # "jwt;dur=0.052, store;dur=0.310"

`mark(name)` charges the time since the previous mark (or since the timer was made) to
`name`; marking the same name twice adds up. Durations are milliseconds with three
decimals, as the Server-Timing spec's `dur` expects. Cost: one `perf_counter()` and a dict
update per mark, well under a microsecond, so it is always on (measured in bench/).
"""

from __future__ import annotations

from collections.abc import Callable
from time import perf_counter

HEADER = "Server-Timing"


class PhaseTimer:
    """Accumulates per-phase durations of one request. Not shared between requests."""

    __slots__ = ("_clock", "_last", "_phases")

    def __init__(self, clock: Callable[[], float] = perf_counter) -> None:
        self._clock = clock
        self._last = clock()
        self._phases: dict[str, float] = {}

    def mark(self, name: str) -> None:
        now = self._clock()
        self._phases[name] = self._phases.get(name, 0.0) + (now - self._last)
        self._last = now

    def skip(self) -> None:
        """Restart the interval without charging it to any phase (work not worth naming)."""
        self._last = self._clock()

    @property
    def phases(self) -> dict[str, float]:
        """Seconds per phase, in the order the phases were first marked."""
        return dict(self._phases)

    def header(self) -> str:
        # A list, not a generator: join() would build one from it anyway.
        return ", ".join(
            [f"{name};dur={seconds * 1000:.3f}" for name, seconds in self._phases.items()]
        )


def parse_server_timing(value: str) -> dict[str, float]:
    """`name;dur=ms` entries back into milliseconds (for the benchmark and tests);
    entries without a `dur` count as 0."""
    result: dict[str, float] = {}
    for entry in value.split(","):
        name, _, params = entry.strip().partition(";")
        if not name:
            continue
        duration = 0.0
        for param in params.split(";"):
            key, _, raw = param.strip().partition("=")
            if key == "dur":
                duration = float(raw)
        result[name] = duration
    return result
