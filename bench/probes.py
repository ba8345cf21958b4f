"""Reading bench/debug_serve.py's report of slow event-loop steps.

For every step over 5 ms the debug server prints one `step-probe:` line (the step's wall
and CPU time, the thread's voluntary and involuntary context switches, the collector's
passes inside it) and, from its watchdog, the `step-stack:` lines of where the step was
after 4 ms, just before it. Each step gets one verdict:

- `blocked`: the thread went to sleep inside the step (a voluntary switch) for at least
  a millisecond: a blocking call (file, DNS, a lock, `time.sleep`). What must be zero.
- `cpu-bound`: 5 ms of the thread's own CPU, outside the collector and outside asyncio
  debug mode's own bookkeeping. Also to fix (key parsing, a huge JSON document).
- `debug-mode`: the time went to asyncio debug mode itself: it captures a traceback
  (`traceback.extract_stack`, which stats and reads source files through `linecache`)
  for every handle, task and future, which production does not do. Judged from the
  watchdog's stack, a sample taken 4 ms into the step.
- `collector`: most of the CPU went to a cycle-collector pass. Debug mode keeps those
  tracebacks alive with every pending handle, so young-generation passes find far more
  survivors than in production, where a steady-state mint triggers none (bench/README.md).
- `descheduled`: neither: the thread did not run (preempted, or the VM's vCPU stolen).
"""

from __future__ import annotations

import re
from typing import Any

_PROBE = re.compile(
    r"step-probe: step=([0-9.]+) wall_ms=([0-9.]+) cpu_ms=([0-9.]+) voluntary=(\d+) "
    r"involuntary=(\d+) gc_ms=([0-9.]+) gc_generations=(\S+) what=(.*)"
)
_STACK = re.compile(r"step-stack: step=([0-9.]+) (.*)")
# Frames that mean "asyncio debug mode recording where a handle/task/future was made".
_DEBUG_BOOKKEEPING = ("extract_stack", "format_helpers.py")
SLOW_MS = 5.0


def verdict(*, wall_ms: float, cpu_ms: float, voluntary: int, gc_ms: float, stack: str) -> str:
    if gc_ms >= cpu_ms / 2 and cpu_ms >= SLOW_MS / 2:
        return "collector"
    slept = voluntary and wall_ms - cpu_ms >= 1.0
    if slept or cpu_ms - gc_ms >= SLOW_MS:
        # Debug mode's tracebacks read source files (linecache), so they can sleep too.
        if any(marker in stack for marker in _DEBUG_BOOKKEEPING):
            return "debug-mode"
        return "blocked" if slept else "cpu-bound"
    return "descheduled"


def step_probes(text: str) -> list[dict[str, Any]]:
    """Every probed step in `text` (a debug server's log), in order, with its verdict."""
    found: list[dict[str, Any]] = []
    # The watchdog's stack of a step, by the step's start time (a step of 4-5 ms has a
    # stack and no probe line).
    stacks: dict[str, str] = {}
    for line in text.splitlines():
        stack_match = _STACK.search(line)
        if stack_match is not None:
            stacks[stack_match.group(1)] = stack_match.group(2)
            continue
        match = _PROBE.search(line)
        if match is None:
            continue
        stack = stacks.pop(match.group(1), "")
        wall, cpu = float(match.group(2)), float(match.group(3))
        voluntary, involuntary = int(match.group(4)), int(match.group(5))
        gc_ms = float(match.group(6))
        found.append(
            {
                "wall_ms": wall,
                "cpu_ms": cpu,
                "voluntary": voluntary,
                "involuntary": involuntary,
                "gc_ms": gc_ms,
                "gc_generations": match.group(7),
                "verdict": verdict(
                    wall_ms=wall, cpu_ms=cpu, voluntary=voluntary, gc_ms=gc_ms, stack=stack
                ),
                "what": match.group(8)[:120],
                "stack": stack[:300],
            }
        )
    return found
