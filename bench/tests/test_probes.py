"""bench/probes.py: the verdicts the blocking check reports for slow event-loop steps."""

from __future__ import annotations

import pytest

from bench.probes import step_probes, verdict

DEBUG_STACK = "events.py:41 __init__ <- format_helpers.py:72 extract_stack <- base_events.py:436"


@pytest.mark.parametrize(
    ("wall", "cpu", "voluntary", "gc_ms", "stack", "expected"),
    [
        (7.7, 1.6, 1, 0.0, "__init__.py:1008 version", "blocked"),  # slept 6 ms in a scan
        (9.0, 8.8, 0, 0.0, "auth.py:190 authenticate", "cpu-bound"),
        (9.4, 9.3, 0, 0.0, DEBUG_STACK, "debug-mode"),
        (31.5, 30.4, 0, 31.4, "", "collector"),
        (12.0, 0.4, 0, 0.0, "", "descheduled"),  # neither ran nor slept: preempted/stolen
        (6.0, 5.9, 1, 0.0, "auth.py:190 authenticate", "cpu-bound"),  # a GIL handoff, no sleep
    ],
)
def test_verdicts(
    wall: float, cpu: float, voluntary: int, gc_ms: float, stack: str, expected: str
) -> None:
    got = verdict(wall_ms=wall, cpu_ms=cpu, voluntary=voluntary, gc_ms=gc_ms, stack=stack)
    assert got == expected


def test_a_probe_gets_the_stack_of_its_own_step() -> None:
    log = "\n".join(
        [
            "step-stack: step=10.000001 routing.py:62 app",  # a 4-5 ms step: no probe
            "step-stack: step=11.500000 __init__.py:1008 version <- connection.py:650",
            '{"level":"info","msg":"request"}',
            "step-probe: step=11.500000 wall_ms=7.7 cpu_ms=1.6 voluntary=1 involuntary=3 "
            "gc_ms=0.0 gc_generations=- what=<Task pending name='Task-3498'>",
            "step-probe: step=12.000000 wall_ms=31.5 cpu_ms=30.4 voluntary=0 involuntary=33 "
            "gc_ms=31.4 gc_generations=0 what=<Handle _SelectorSocketTransport._read_ready()>",
        ]
    )
    first, second = step_probes(log)
    assert first["verdict"] == "blocked"
    assert first["stack"].startswith("__init__.py:1008 version")
    assert (second["verdict"], second["stack"], second["gc_generations"]) == ("collector", "", "0")


def test_debug_mode_reading_source_files_is_not_counted_as_a_blocking_call() -> None:
    stack = "linecache.py:72 checkcache <- traceback.py:429 x <- " + DEBUG_STACK
    assert verdict(wall_ms=5.7, cpu_ms=0.4, voluntary=1, gc_ms=0.0, stack=stack) == "debug-mode"
