"""`token-broker serve`, with asyncio debug on and any callback over 5 ms logged: the
benchmark's check that nothing blocks the event loop. Same settings, same app."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from service.cli import _load, _run

SLOW_CALLBACK_SECONDS = 0.005


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
    import service.web.app as web_app

    create = web_app.create_app
    web_app.create_app = lambda settings, **kw: _DebugLoop(create(settings, **kw))  # type: ignore[assignment]
    _run(_load(os.environ))


if __name__ == "__main__":
    main()
