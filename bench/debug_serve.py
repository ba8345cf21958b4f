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
  time went to the hypervisor (steal), which the guest cannot see.

Each slow step prints one `step-probe:` line with those numbers; bench/run.py classifies
them. This needs asyncio's own loop (uvloop's steps run in C and cannot be wrapped), so
uvloop is hidden from uvicorn's loop="auto" here: the app and every setting are unchanged.
"""

from __future__ import annotations

import asyncio
import asyncio.events
import logging
import os
import resource
import sys
import time
from typing import Any

SLOW_CALLBACK_SECONDS = 0.005


def _install_step_probe() -> None:
    original = asyncio.events.Handle._run

    def probed(handle: asyncio.events.Handle) -> None:
        before = resource.getrusage(resource.RUSAGE_THREAD)
        cpu_before = time.thread_time()
        started = time.perf_counter()
        original(handle)
        wall = time.perf_counter() - started
        if wall < SLOW_CALLBACK_SECONDS:
            return
        cpu = time.thread_time() - cpu_before
        after = resource.getrusage(resource.RUSAGE_THREAD)
        print(
            f"step-probe: wall_ms={wall * 1000:.1f} cpu_ms={cpu * 1000:.1f} "
            f"voluntary={after.ru_nvcsw - before.ru_nvcsw} "
            f"involuntary={after.ru_nivcsw - before.ru_nivcsw} "
            f"what={asyncio.base_events._format_handle(handle)[:160]}",  # type: ignore[attr-defined]
            flush=True,
        )

    asyncio.events.Handle._run = probed  # type: ignore[method-assign,assignment]


class _DebugLoop:
    """ASGI wrapper that turns on loop debugging at the first event it sees (lifespan)."""

    def __init__(self, app: Any) -> None:
        self.app = app
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
