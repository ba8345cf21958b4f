"""`token-broker serve`, with asyncio debug on and any callback over 5 ms logged: the
benchmark's check that nothing blocks the event loop. Same settings, same app.

asyncio's own report ("Executing <Task ...> took 0.012 seconds") says a step was slow in
wall time, not why: a step that blocks (a synchronous syscall that sleeps, or 5 ms of
CPU) looks the same as one during which the VM or the kernel ran something else. So each
loop step is also measured with the thread's own counters (`getrusage(RUSAGE_THREAD)`):

- CPU time of the step: 5 ms of it is a CPU-bound callback (key parsing, a big JSON);
- voluntary context switches: the thread went to sleep inside the step, which on an event
  loop thread means a blocking call (file, DNS, a lock, `time.sleep`);
- involuntary ones: the kernel preempted the thread; with neither and little CPU, the
  time went to the hypervisor (steal), which the guest cannot see;
- the cycle collector's passes inside the step (gc.callbacks): CPU that no code asked
  for, and whose cost grows with the objects alive (debug mode keeps a traceback per
  task and handle, so it is far heavier here than in production).

Each slow step prints one `step-probe:` line with those numbers; bench/run.py classifies
them. This needs asyncio's own loop (uvloop's steps run in C and cannot be wrapped), so
uvloop is hidden from uvicorn's loop="auto" here: the app and every setting are unchanged.
"""

from __future__ import annotations

import asyncio
import asyncio.events
import gc
import logging
import os
import resource
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

SLOW_CALLBACK_SECONDS = 0.005


def _install_step_probe() -> None:
    original = asyncio.events.Handle._run
    # Collector passes inside a step: (generation, seconds), from gc.callbacks.
    collections: list[tuple[int, float]] = []
    started_at = [0.0]

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started_at[0] = time.perf_counter()
        else:
            collections.append((info["generation"], time.perf_counter() - started_at[0]))

    gc.callbacks.append(on_gc)
    # When the current step started (0: between steps), for the watchdog below.
    step_started = [0.0]
    _start_watchdog(step_started)

    def probed(handle: asyncio.events.Handle) -> None:
        before = resource.getrusage(resource.RUSAGE_THREAD)
        cpu_before = time.thread_time()
        collections.clear()
        started = time.perf_counter()
        step_started[0] = started
        original(handle)
        step_started[0] = 0.0
        wall = time.perf_counter() - started
        if wall < SLOW_CALLBACK_SECONDS:
            return
        gc_ms = sum(seconds for _, seconds in collections) * 1000
        generations = ",".join(str(generation) for generation, _ in collections) or "-"
        cpu = time.thread_time() - cpu_before
        after = resource.getrusage(resource.RUSAGE_THREAD)
        print(
            f"step-probe: step={started:.6f} wall_ms={wall * 1000:.1f} cpu_ms={cpu * 1000:.1f} "
            f"voluntary={after.ru_nvcsw - before.ru_nvcsw} "
            f"involuntary={after.ru_nivcsw - before.ru_nivcsw} "
            f"gc_ms={gc_ms:.1f} gc_generations={generations} "
            f"what={asyncio.base_events._format_handle(handle)[:160]}",  # type: ignore[attr-defined]
            flush=True,
        )

    asyncio.events.Handle._run = probed  # type: ignore[method-assign,assignment]


def _start_watchdog(step_started: list[float]) -> None:
    """A thread that looks at the loop thread every millisecond and, once a step has run
    for 4 ms, prints where it is (`step-stack:`): names the code of a slow step, which
    the step's repr (the task) does not. The switch interval is lowered so that this
    thread gets the GIL within a millisecond even from a CPU-bound step."""
    loop_thread = threading.get_ident()
    sys.setswitchinterval(0.001)

    def watch() -> None:
        reported = 0.0
        while True:
            time.sleep(0.001)
            started = step_started[0]
            if not started or started == reported or time.perf_counter() - started < 0.004:
                continue
            reported = started
            frame = sys._current_frames().get(loop_thread)
            stack = traceback.extract_stack(frame) if frame is not None else []
            # The import machinery's own frames say only "importing": named once, so
            # that the frames kept are the ones that show what imports.
            importing = any(entry.filename.startswith("<frozen") for entry in stack)
            kept = [entry for entry in stack if not entry.filename.startswith("<frozen")]
            where = ("(importing) <- " if importing else "") + " <- ".join(
                f"{Path(entry.filename).name}:{entry.lineno} {entry.name}"
                for entry in reversed(kept[-10:])
            )
            print(f"step-stack: step={started:.6f} {where}", flush=True)

    threading.Thread(target=watch, name="step-watchdog", daemon=True).start()


class _DebugLoop:
    """ASGI wrapper that turns on loop debugging at the first event it sees (lifespan)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        # The CLI reads the app's state (its metrics) once it has made it.
        self.state = app.state
        self.armed = False

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if not self.armed:
            loop = asyncio.get_running_loop()
            loop.set_debug(True)
            loop.slow_callback_duration = SLOW_CALLBACK_SECONDS
            logging.getLogger("asyncio").setLevel(logging.WARNING)
            print(f"debug loop: {type(loop).__module__}, slow callbacks > 5 ms logged", flush=True)
            self.armed = True
        await self.app(scope, receive, send)


def main() -> None:
    # uvicorn's loop="auto" takes uvloop when it imports; None in sys.modules makes the
    # import fail, so asyncio's loop (whose steps can be probed) is used.
    sys.modules["uvloop"] = None  # type: ignore[assignment]
    _install_step_probe()
    import service.web.app as web_app
    from service.cli import _load, _run

    create = web_app.create_app
    web_app.create_app = lambda settings, **kw: _DebugLoop(create(settings, **kw))  # type: ignore[assignment]
    _run(_load(os.environ))


if __name__ == "__main__":
    main()
