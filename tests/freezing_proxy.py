"""A TCP proxy whose open connections can be frozen: a network path that died silently (a
NAT or load balancer that forgot it), for tests of what notices one. Framework-free.

    proxy = FreezingProxy(target_port).start()   # 127.0.0.1:proxy.port → 127.0.0.1:target
    proxy.freeze()      # every connection open now: held open, nothing forwarded either
                        # way, nothing closed (no FIN, no RST); later ones are forwarded
    proxy.cut()         # as freeze, and every later connection frozen as it opens: the
                        # path is dead for new connections too (a partition)
    proxy.mend()        # the path works again: frozen connections forward what they held
                        # and what comes next; later ones are forwarded
    proxy.stop()

It runs on an event loop in a thread of its own, so sync tests (driving processes) and
async tests (on their own loop) use it alike. Written by hand: the proxies that fault
tests use (toxiproxy and the like) are servers of their own to install, and this needs
only to forward bytes and stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")
READ_SIZE = 65536


@dataclass
class _Path:
    """One connection through the proxy: both sockets and the two pumps between them."""

    readers: list[asyncio.StreamReader] = field(default_factory=list)
    writers: list[asyncio.StreamWriter] = field(default_factory=list)
    pumps: list[asyncio.Task[None]] = field(default_factory=list)


class FreezingProxy:
    def __init__(self, target_port: int, *, host: str = "127.0.0.1") -> None:
        self.target = (host, target_port)
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._paths: list[_Path] = []
        self._frozen: list[_Path] = []
        # Set by `cut`: connections that open are frozen at once.
        self._cut = False

    def start(self) -> FreezingProxy:
        self._thread.start()
        self._server = self._run(asyncio.start_server(self._accept, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def freeze(self) -> int:
        """Freeze every connection open now; how many."""
        return self._run(self._freeze())

    def cut(self) -> int:
        """Freeze every connection open now, and every later one as it opens (accepted,
        then nothing through), until `mend`; how many were open."""
        return self._run(self._freeze(cut=True))

    def mend(self) -> int:
        """Forward again: the frozen connections (what their sockets buffered meanwhile
        first) and every later one; how many frozen ones were still open."""
        return self._run(self._mend())

    @property
    def frozen(self) -> int:
        return len(self._frozen)

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        self._run(self._close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    # --- on the proxy's loop ---------------------------------------------------------

    def _run(self, work: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(work, self._loop).result(10)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        path = _Path(readers=[reader, up_reader], writers=[writer, up_writer])
        if self._cut:
            self._frozen.append(path)
            return
        self._forward(path)

    def _forward(self, path: _Path) -> None:
        (reader, up_reader), (writer, up_writer) = path.readers, path.writers
        path.pumps = [
            asyncio.create_task(self._pump(reader, up_writer, path)),
            asyncio.create_task(self._pump(up_reader, writer, path)),
        ]
        self._paths.append(path)

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: _Path
    ) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(READ_SIZE):
                writer.write(data)
                await writer.drain()
        # One side closed: the other is told, as a live path would.
        for each in path.writers:
            each.close()

    async def _freeze(self, *, cut: bool = False) -> int:
        self._cut = self._cut or cut
        frozen = [p for p in self._paths if all(not w.is_closing() for w in p.writers)]
        for path in frozen:
            # Nothing read, nothing written; the sockets stay open (kept in _frozen).
            for pump in path.pumps:
                pump.cancel()
            await asyncio.gather(*path.pumps, return_exceptions=True)
        self._paths = [p for p in self._paths if p not in frozen]
        self._frozen += frozen
        return len(frozen)

    async def _mend(self) -> int:
        self._cut = False
        frozen, self._frozen = self._frozen, []
        resumed = 0
        for path in frozen:
            if any(w.is_closing() for w in path.writers):
                # One side went away for good while frozen: the other is told now.
                for writer in path.writers:
                    writer.close()
                continue
            # A side that only half-closed (FIN) is read to its end, then closed, as a
            # live path would have done.
            self._forward(path)
            resumed += 1
        return resumed

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        for path in self._paths + self._frozen:
            for pump in path.pumps:
                pump.cancel()
            await asyncio.gather(*path.pumps, return_exceptions=True)
            for writer in path.writers:
                writer.transport.abort()
        if self._server is not None:
            await self._server.wait_closed()
