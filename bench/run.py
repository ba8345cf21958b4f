"""One command: start Redis, the fake upstream and each target, measure, print the table.

    python bench/run.py --quick      # ~2 minutes, for iterating
    python bench/run.py              # full: 5 runs per figure and the 5-minute memory run

Pinning: the target under test (hello-world, bare proxy or broker, one at a time, one
uvicorn worker) runs on core 0; this process (the load generator), Redis, the fake
upstream and the JWKS file server run on core 1.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fixtures as fx
import loadgen
from probes import step_probes

from service.timing import parse_server_timing

PATH = "/v1/realtime/client_secrets"
LEVELS = (0.25, 0.50, 0.75)
TARGETS = ("hello", "proxy", "broker-hs256", "broker-jwks", "broker-adjust", "broker-gemini")
# The Gemini Live mint (README "Gemini Live"): a fourth tenant of the same broker, whose
# upstream is the fake Gemini the fake upstream process serves beside the fake OpenAI
# (`token-broker fake-upstream`, at Google's paths). What an app sends for every session;
# the policy changes some of it (the voice, the instructions), so it is applied for real.
GEMINI_PATH = "/v1alpha/auth_tokens"
GEMINI_MODEL = "gemini-live-2.5-flash-preview"
GEMINI_BODY = {
    "bidiGenerateContentSetup": {
        "model": f"models/{GEMINI_MODEL}",
        "generationConfig": {
            "responseModalities": ["AUDIO"],
            "speechConfig": {"voiceConfig": {"prebuiltVoiceConfig": {"voiceName": "Puck"}}},
        },
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
    }
}
GEMINI_POLICY = {
    **fx.PERMISSIVE_POLICY,
    "roles": {
        "reader": {
            **fx.OPEN_LIMITS,
            "models": [GEMINI_MODEL],
            "voices": ["Kore"],
            "modalities": ["audio"],
            "instructions": {"mode": "prefix", "text": "You are the bench assistant."},
        }
    },
}
# The blocking check's rate, as a share of the 25% point (so 10% of the HS256 ceiling).
DEBUG_SHARE = 0.4


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def median_spread(values: list[float]) -> tuple[float, float]:
    return statistics.median(values), (max(values) - min(values)) / 2


def path_of(target: str) -> str:
    return GEMINI_PATH if target == "broker-gemini" else PATH


def bodies_of(target: str, count: int) -> list[bytes]:
    if target == "broker-gemini":
        return [json.dumps(GEMINI_BODY).encode()] * count
    return fx.bodies(target, count)


def broker_env(port: int, redis_port: int, upstream_port: int, jwks_port: int) -> dict[str, str]:
    """The bench broker's tenants (bench/fixtures.py), and the Gemini one."""
    env = fx.broker_env(port, redis_port, upstream_port, jwks_port)
    env["BROKER_TENANTS"] += ",gemini"
    env.update(
        {
            "BROKER_GEMINI_UPSTREAM": "gemini",
            "BROKER_GEMINI_UPSTREAM_URL": f"http://127.0.0.1:{upstream_port}",
            "BROKER_GEMINI_JWT_SECRET": fx.HS_SECRET,
            "BROKER_GEMINI_JWT_ISSUER": "bench-gemini",
            "BROKER_GEMINI_POLICY": json.dumps(GEMINI_POLICY),
        }
    )
    return env


def wrk_rate(
    port: int, path: str, tokens: list[str], bodies: list[bytes], seconds: float, work: Path
) -> float:
    """wrk's closed loop; request i carries tokens[i] and bodies[i] (one line each)."""
    (work / "tokens.txt").write_text("\n".join(tokens) + "\n")
    (work / "body.json").write_bytes(b"\n".join(bodies) + b"\n")
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            "-c64",
            f"-d{int(seconds)}s",
            "-s",
            str(Path(__file__).parent / "post.lua"),
            f"http://127.0.0.1:{port}{path}",
            "--",
            str(work / "tokens.txt"),
            str(work / "body.json"),
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        check=True,
    ).stdout
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        print(f"  WARNING: wrk saw {non2xx.group(1)} error responses on port {port}", flush=True)
    match = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    assert match, out
    return float(match.group(1))


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.procs = fx.Processes(work)
        self.use_wrk = shutil.which("wrk") is not None and not args.no_wrk
        self.results: dict[str, Any] = {"targets": {}, "overhead": {}}

    # -- setup -------------------------------------------------------------------------
    def setup(self) -> None:
        self.redis_port, self.up_port, self.jwks_port = (
            fx.free_port(),
            fx.free_port(),
            fx.free_port(),
        )
        redis = self.procs.start(
            "redis",
            [
                fx.redis_binary(),
                "--port",
                str(self.redis_port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.work),
            ],
            core=fx.OTHER_CORE,
        )
        fx.wait_tcp(self.redis_port, redis)
        up = self.procs.start(
            "fake-upstream",
            [fx.python(), "-m", "service.cli", "fake-upstream", "--port", str(self.up_port)],
            core=fx.OTHER_CORE,
        )
        fx.wait_tcp(self.up_port, up)
        doc, signers = fx.jwks_keys()
        (self.work / "jwks.json").write_text(json.dumps(doc))
        jw = self.procs.start(
            "jwks",
            [
                fx.python(),
                "-m",
                "http.server",
                str(self.jwks_port),
                "--bind",
                "127.0.0.1",
                "--directory",
                str(self.work),
            ],
            core=fx.OTHER_CORE,
        )
        fx.wait_tcp(self.jwks_port, jw)
        n = self.args.tokens
        hs: list[tuple[str, str | None, Any]] = [("HS256", None, fx.HS_SECRET)]
        jw_signers: list[tuple[str, str | None, Any]] = [(a, k, key) for a, k, key in signers]
        self.pools = {
            "broker-hs256": fx.token_pool(n, issuer="bench-hs", signers=hs),
            "broker-jwks": fx.token_pool(n, issuer="bench-jwks", signers=jw_signers),
            "broker-adjust": fx.token_pool(n, issuer="bench-adjust", signers=hs),
            "broker-gemini": fx.token_pool(n, issuer="bench-gemini", signers=hs),
        }

    def start_target(self, name: str, port: int, *, debug: bool = False) -> Any:
        env = broker_env(port, self.redis_port, self.up_port, self.jwks_port)
        if name == "hello":
            argv = [
                fx.python(),
                str(Path(__file__).parent / "targets.py"),
                "hello",
                "--port",
                str(port),
            ]
        elif name == "proxy":
            argv = [
                fx.python(),
                str(Path(__file__).parent / "targets.py"),
                "proxy",
                "--port",
                str(port),
                "--upstream",
                f"http://127.0.0.1:{self.up_port}/v1",
            ]
        elif debug:
            argv = [fx.python(), str(Path(__file__).parent / "debug_serve.py")]
        else:
            argv = [fx.python(), "-m", "service.cli", "serve"]
        proc = self.procs.start(
            f"target-{name}{'-debug' if debug else ''}", argv, core=fx.BROKER_CORE, env=env
        )
        fx.wait_tcp(port, proc)
        return proc

    def requests(self, target: str, port: int) -> tuple[list[bytes], list[str], list[bytes]]:
        tokens = self.pools.get(target, ["none"])
        bodies = bodies_of(target, len(tokens))
        path = path_of(target)
        reqs = [
            loadgen.build_request("127.0.0.1", port, path, body, {"Authorization": f"Bearer {t}"})
            for t, body in zip(tokens, bodies, strict=True)
        ]
        return reqs, tokens, bodies

    # -- measurements ------------------------------------------------------------------
    def closed_once(self, target: str, port: int) -> float:
        reqs, tokens, bodies = self.requests(target, port)
        if self.use_wrk:
            return wrk_rate(
                port, path_of(target), tokens, bodies, self.args.closed_seconds, self.work
            )
        stats = asyncio.run(
            loadgen.closed_loop(
                "127.0.0.1", port, reqs, connections=64, duration=self.args.closed_seconds
            )
        )
        bad = sum(c for s, c in stats.statuses.items() if s != 200)
        if bad:
            raise RuntimeError(f"{target}: {bad} error responses {dict(stats.statuses)}")
        return stats.rate

    def ceilings(self) -> None:
        """Every target's closed-loop ceiling, the targets interleaved: `runs` rounds of
        hello, proxy and the three broker loads one after the other, all servers up
        (idle ones cost nothing). The VM's speed drifts over minutes; measured minutes
        apart, two targets' ceilings would carry that drift into their ratio. Each
        round gives one ratio per broker load; the ratio reported is their median."""
        servers = {name: fx.free_port() for name in ("hello", "proxy", "broker")}
        procs = [self.start_target(name, port) for name, port in servers.items()]
        ports = {t: servers[t.split("-")[0]] for t in TARGETS}
        try:
            for target in TARGETS:
                self.warm(target, ports[target])
            rates: dict[str, list[float]] = {t: [] for t in TARGETS}
            for round_number in range(self.args.runs):
                for target in TARGETS:
                    rates[target].append(self.closed_once(target, ports[target]))
                print(
                    f"  round {round_number + 1}: "
                    + ", ".join(f"{t} {rates[t][-1]:.0f}" for t in TARGETS)
                    + " req/s",
                    flush=True,
                )
        finally:
            for proc in procs:
                self.procs.stop(proc)
        for target in TARGETS:
            med, spread = median_spread(rates[target])
            self.results["targets"].setdefault(target, {})["ceiling"] = {
                "median": med,
                "spread": spread,
                "runs": rates[target],
            }
            print(
                f"  {target:14s} closed loop: {med:8.0f} req/s ± {spread:.0f}  "
                f"({len(rates[target])} interleaved runs)",
                flush=True,
            )
        self.results["ratios"] = {
            target: {
                base: dict(
                    zip(
                        ("median", "spread"),
                        median_spread(
                            [b / r for b, r in zip(rates[target], rates[other], strict=True)]
                        ),
                        strict=True,
                    )
                )
                for base, other in (("vs_proxy", "proxy"), ("vs_hello", "hello"))
            }
            for target in TARGETS
            if target.startswith("broker")
        }

    def open(
        self,
        target: str,
        port: int,
        rate: float,
        *,
        seconds: float | None = None,
        runs: int | None = None,
    ) -> dict[str, Any]:
        reqs, _, _ = self.requests(target, port)
        p50s, p99s, lags, timings = [], [], [], []
        errors = 0
        for _ in range(runs or self.args.open_runs):
            stats = asyncio.run(
                loadgen.open_loop(
                    "127.0.0.1",
                    port,
                    reqs,
                    rate=rate,
                    duration=seconds or self.args.open_seconds,
                    connections=128,
                    timing_every=20,
                )
            )
            bad = sum(c for s, c in stats.statuses.items() if s != 200) + stats.unanswered
            errors += bad
            if bad:
                print(
                    f"  WARNING: {target} at {rate:.0f}/s: {bad} failed {dict(stats.statuses)}",
                    flush=True,
                )
            ms = [x * 1000 for x in stats.latencies]
            p50s.append(pct(ms, 0.50))
            p99s.append(pct(ms, 0.99))
            lags.append(pct([x * 1000 for x in stats.send_lag], 0.99))
            timings += [parse_server_timing(t.decode()) for t in stats.timings]
        out = {
            "rate": rate,
            "p50": median_spread(p50s),
            "p99": median_spread(p99s),
            "send_lag_p99": max(lags),
            "errors": errors,
        }
        if timings:
            names = dict.fromkeys(n for t in timings for n in t)
            out["server_timing_median_ms"] = {
                n: statistics.median(t.get(n, 0.0) for t in timings) for n in names
            }
        return out

    def target(self, target: str) -> None:
        port = fx.free_port()
        proc = self.start_target(target.split("-")[0] if target != "proxy" else "proxy", port)
        try:
            self.warm(target, port)
            ceiling = self.results["targets"][target]["ceiling"]["median"]
            for level in LEVELS:
                res = self.open(target, port, ceiling * level)
                self.results["targets"][target][f"open{int(level * 100)}"] = res
                print(
                    f"  {target:14s} open {int(level * 100)}% ({res['rate']:.0f}/s): "
                    f"p50 {res['p50'][0]:.2f} ms p99 {res['p99'][0]:.2f} ms"
                    f"  (generator send lag p99 {res['send_lag_p99']:.2f} ms)",
                    flush=True,
                )
            if target.startswith("broker"):
                self.round_trips(target, port)
        finally:
            self.procs.stop(proc)

    def warm(self, target: str, port: int, connections: int = 64) -> None:
        """As many connections as the closed loop keeps open, so that the target's
        Redis and upstream pools have grown to their measured size before the first
        round (with 16, the first broker round paid for that growth and read ~20% low)."""
        reqs, _, _ = self.requests(target, port)
        stats = asyncio.run(
            loadgen.closed_loop("127.0.0.1", port, reqs, connections=connections, duration=1.0)
        )
        if set(stats.statuses) != {200}:
            log = (self.work / f"target-{target.split('-')[0]}.log").read_text()[-2000:]
            raise RuntimeError(f"{target} warm-up answered {dict(stats.statuses)}\n{log}")

    def round_trips(self, target: str, port: int) -> None:
        """Round trips, not commands: MONITOR shows the commands a Lua script runs as
        `[0 lua]` lines, which are not round trips of the broker's."""
        import socket
        import threading

        lines: list[bytes] = []
        sock = socket.create_connection(("127.0.0.1", self.redis_port))
        sock.sendall(b"MONITOR\r\n")
        sock.settimeout(0.5)

        def read() -> None:
            buffer = b""
            while not stop.is_set():
                try:
                    buffer += sock.recv(65536)
                except TimeoutError:
                    continue
                *done, buffer = buffer.split(b"\r\n")
                lines.extend(done)

        stop = threading.Event()
        reader = threading.Thread(target=read)
        reader.start()
        reqs, _, _ = self.requests(target, port)
        stats = asyncio.run(
            loadgen.open_loop("127.0.0.1", port, reqs, rate=200, duration=2.0, connections=8)
        )
        time.sleep(0.5)
        stop.set()
        reader.join()
        sock.close()
        trips = [
            line
            for line in lines
            if line[:1] == b"+"
            and b" lua]" not in line
            and b"MONITOR" not in line
            and line != b"+OK"
        ]
        per = len(trips) / len(stats.latencies)
        self.results["targets"][target]["redis_round_trips_per_mint"] = per
        print(f"  {target:14s} Redis round trips per mint: {per:.2f}", flush=True)

    def overhead(self) -> None:
        """Broker minus bare proxy at the same offered rate: 50% of each broker's ceiling."""
        port = fx.free_port()
        proc = self.start_target("proxy", port)
        try:
            self.warm("proxy", port)
            for target in [t for t in self.results["targets"] if t.startswith("broker")]:
                broker = self.results["targets"][target]["open50"]
                res = self.open("proxy", port, broker["rate"])
                o50 = broker["p50"][0] - res["p50"][0]
                o99 = broker["p99"][0] - res["p99"][0]
                self.results["overhead"][target] = {
                    "rate": broker["rate"],
                    "proxy": res,
                    "p50": o50,
                    "p99": o99,
                }
                print(
                    f"  overhead {target:14s} at {broker['rate']:.0f}/s: "
                    f"p50 {o50:+.2f} ms, p99 {o99:+.2f} ms",
                    flush=True,
                )
        finally:
            self.procs.stop(proc)

    def slow_callbacks(self) -> None:
        """Every tenant warmed up first (first connections, the first JWKS fetch: once per
        process, or per JWKS max age), then the three loads. Debug mode costs the broker
        several times its CPU per request (and runs on asyncio's own loop, see
        bench/debug_serve.py), so the offered rate is 10% of its ceiling: the question is
        whether any one callback blocks, not how fast the debug build runs."""
        port = fx.free_port()
        proc = self.start_target("broker", port, debug=True)
        log_path = self.work / "target-broker-debug.log"
        try:
            for target in ("broker-hs256", "broker-jwks", "broker-adjust"):
                # Fewer connections than the closed loop's: 64 in flight on the debug
                # build's loop queue a mint past the store's 250 ms deadline (503), and
                # this stage drives only 10% of the ceiling anyway.
                self.warm(target, port, connections=8)
            warm_end = len(log_path.read_text())
            rate = self.results["targets"]["broker-hs256"]["open25"]["rate"] * DEBUG_SHARE
            for target in ("broker-hs256", "broker-jwks", "broker-adjust"):
                self.open(target, port, rate, seconds=self.args.open_seconds, runs=1)
            measured_end = len(log_path.read_text())
        finally:
            self.procs.stop(proc)
        log = log_path.read_text()

        def slow(text: str) -> list[str]:
            found = []
            for line in text.splitlines():
                took = re.search(r"took ([0-9.]+) seconds", line)
                if "Executing" in line and took:
                    what = re.search(r"coro=<([^ >]+)", line) or re.search(
                        r"<Handle ([^ >]+)", line
                    )
                    found.append(
                        f"{float(took.group(1)) * 1000:.1f} ms in {what.group(1) if what else '?'}"
                    )
            return found

        during, warmup = slow(log[warm_end:measured_end]), slow(log[:warm_end])
        probes = step_probes(log[warm_end:measured_end])
        blocking = [p for p in probes if p["verdict"] in ("blocked", "cpu-bound")]
        self.results["slow_callbacks_over_5ms"] = len(during)
        self.results["slow_callbacks_warmup"] = warmup
        self.results["slow_callbacks"] = during
        self.results["slow_step_probes"] = probes
        self.results["blocking_steps"] = len(blocking)
        print(
            f"  asyncio debug, slow_callback_duration=5 ms, at {rate:.0f}/s: {len(during)} slow "
            f"callbacks under load; {len(warmup)} during start-up and warm-up",
            flush=True,
        )
        for line in [*during, "(warm-up)", *warmup][:12]:
            print("   ", line)
        verdicts = collections.Counter(p["verdict"] for p in probes)
        self.results["slow_step_verdicts"] = dict(verdicts)
        print(
            f"  the same steps by thread counters (bench/probes.py): {len(probes)} over 5 ms; "
            + ", ".join(f"{count} {name}" for name, count in sorted(verdicts.items()))
            + f"; blocking calls or CPU-bound steps: {len(blocking)}",
            flush=True,
        )
        for probe in [*blocking, *(p for p in probes if p not in blocking)][:12]:
            print(
                f"    {probe['verdict']:11s} {probe['wall_ms']:.1f} ms wall, "
                f"{probe['cpu_ms']:.1f} ms CPU ({probe['gc_ms']:.1f} in gc), "
                f"{probe['voluntary']} voluntary / {probe['involuntary']} involuntary switches"
            )
            if probe["verdict"] in ("blocked", "cpu-bound") and probe["stack"]:
                print(f"      at {probe['stack'][:200]}")

    def memory(self) -> None:
        port = fx.free_port()
        proc = self.start_target("broker", port)
        try:
            self.warm("broker-hs256", port)
            rate = self.results["targets"]["broker-hs256"]["open50"]["rate"]
            total, first = self.args.memory_seconds, min(60.0, self.args.memory_seconds / 5)
            self.open("broker-hs256", port, rate, seconds=first, runs=1)
            after_first = rss_mib(proc.pid)
            self.open("broker-hs256", port, rate, seconds=total - first, runs=1)
            after_all = rss_mib(proc.pid)
        finally:
            self.procs.stop(proc)
        growth = (after_all - after_first) / after_first * 100
        self.results["memory"] = {
            "seconds": total,
            "rate": rate,
            "rss_first_mib": after_first,
            "rss_end_mib": after_all,
            "growth_pct": growth,
        }
        print(
            f"  memory at {rate:.0f}/s: RSS {after_first:.1f} MiB after {first:.0f} s, "
            f"{after_all:.1f} MiB after {total:.0f} s ({growth:+.1f}%)",
            flush=True,
        )


def environment(use_wrk: bool) -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    versions = {
        p: metadata.version(p)
        for p in ("starlette", "uvicorn", "httpx", "httpx-aiohttp", "aiohttp", "redis", "PyJWT")
    }
    for opt in ("uvloop", "httptools"):
        try:
            versions[opt] = metadata.version(opt)
        except metadata.PackageNotFoundError:
            versions[opt] = "absent"
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "redis": subprocess.run(
            [fx.redis_binary(), "--version"], capture_output=True, text=True
        ).stdout.strip(),
        "closed_loop_generator": "wrk (-t1 -c64, bench/post.lua)"
        if use_wrk
        else "bench/loadgen.py closed_loop (64 connections)",
        "open_loop_generator": (
            "bench/loadgen.py open_loop (128 connections, send times scheduled in advance)"
        ),
        "pinning": "target on core 0; load generator, Redis, fake upstream, JWKS server on core 1",
        "versions": versions,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="short runs (~2 minutes in all)")
    parser.add_argument("--no-wrk", action="store_true", help="closed loop with bench/loadgen.py")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "latest.json"))
    parser.add_argument("--tokens", type=int, default=4096)
    args = parser.parse_args()
    args.runs, args.closed_seconds, args.open_runs, args.open_seconds, args.memory_seconds = (
        (3, 3, 1, 4, 30) if args.quick else (5, 10, 3, 10, 300)
    )
    if not shutil.which("taskset") or (os.cpu_count() or 1) < 2:
        print("bench: needs taskset and two cores", file=sys.stderr)
        return 2
    os.sched_setaffinity(0, {int(fx.OTHER_CORE)})  # this process is the load generator
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        bench = Bench(args, Path(tmp))
        env = environment(bench.use_wrk)
        print(f"bench: {env['cpu']}, {env['cores']} cores; {env['pinning']}")
        print(
            f"bench: closed loop by {env['closed_loop_generator']}; "
            f"open loop by {env['open_loop_generator']}"
        )
        started = time.monotonic()
        try:
            bench.setup()
            bench.ceilings()
            for target in TARGETS:
                bench.target(target)
            bench.overhead()
            bench.slow_callbacks()
            bench.memory()
        except KeyboardInterrupt:
            print("bench: interrupted; stopping everything", file=sys.stderr)
            return 130
        finally:
            bench.procs.stop_all()
        res = bench.results
        res["environment"] = env
        res["mode"] = "quick" if args.quick else "full"
        res["seconds"] = time.monotonic() - started
        for name, r in res["ratios"].items():
            print(
                f"  {name:14s} throughput (median of per-round ratios): "
                f"{r['vs_proxy']['median'] * 100:.1f}% ± {r['vs_proxy']['spread'] * 100:.1f} "
                "of bare proxy (target ≥ 50%), "
                f"{r['vs_hello']['median'] * 100:.1f}% ± {r['vs_hello']['spread'] * 100:.1f} "
                "of hello-world (target ≥ 15%)"
            )
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(res, indent=2))
        print(f"bench: results in {args.out} ({res['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
