"""(a) Subscription fan-out: N graphql-ws subscribers to one symbol's ticks while a
publisher sends R ticks/s; deliveries/s, end-to-end latency, server CPU and RSS.

The load generator is ``peers/loadgen/fanout.mjs`` (npm ``graphql-ws`` + ``ws``) and
the publisher ``bench.publisher``, both on core 1. The server under test is on core 0.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from bench import profile
from bench.cluster import PEERS, Cluster, Server
from bench.processes import (
    LOAD_CPU,
    SERVER_CPU,
    Child,
    CoreMeter,
    CpuMeter,
    memory_mb,
    spawn,
    wait_for_quiet,
)
from bench.publisher import TOKEN_VARIABLE
from bench.seed import FANOUT_SYMBOL

SUBSCRIPTION = f'subscription {{ ticks(symbols: ["{FANOUT_SYMBOL}"]) {{ symbol last time }} }}'
CONNECT_TIMEOUT = 180.0


async def read_event(child: Child, wanted: str, timeout: float) -> dict[str, Any]:
    """The next JSON line on the child's stdout whose ``event`` is ``wanted`` (or an error)."""
    stdout = child.process.stdout
    assert stdout is not None
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            raise TimeoutError(f"{child.name}: no {wanted!r} event in {timeout}s")
        line = await asyncio.wait_for(stdout.readline(), remaining)
        if not line:
            raise RuntimeError(f"{child.name} exited before {wanted!r}:\n{child.log_tail()}")
        try:
            event: dict[str, Any] = json.loads(line)
        except ValueError:
            continue
        if event.get("event") == "error":
            raise RuntimeError(f"{child.name}: {event}")
        if event.get("event") == wanted:
            return event


async def run_cell(
    cluster: Cluster,
    server: Server,
    *,
    subscribers: int,
    rate: int,
    mode: str,
    warmup: float,
    duration: float,
    feed_token: str | None = None,
    profile_to: Path | None = None,
    stalled: int = 0,
) -> dict[str, Any]:
    """One measurement: ``subscribers`` clients, ``rate`` ticks/s published via ``mode``.

    ``stalled``: that many of the subscribers stop reading when publishing starts
    (slow consumers); the figures are the others', and the server's RSS is taken
    at the start and the end of the measured window.

    ``feed_token`` authenticates the ``mutation`` publisher (a FEED user of our server).
    With ``profile_to``, py-spy samples the server during the measured window.
    """
    label = f"{server.kind}-{mode}-{subscribers}x{rate}" + (f"-stalled{stalled}" if stalled else "")
    quiet = await wait_for_quiet()
    loadgen = await spawn(
        "loadgen",
        [
            "node",
            "fanout.mjs",
            "--url",
            server.ws_url,
            "--query",
            SUBSCRIPTION,
            "--subscribers",
            str(subscribers),
            "--warmup",
            str(warmup),
            "--duration",
            str(duration),
            "--connect-timeout",
            str(CONNECT_TIMEOUT),
            "--stalled",
            str(stalled),
        ],
        cpu=LOAD_CPU,
        cwd=PEERS / "loadgen",
        log_path=cluster.workdir / f"loadgen-{label}.log",
        pipe_stdio=True,
    )
    publisher: Child | None = None
    try:
        ready = await read_event(loadgen, "ready", CONNECT_TIMEOUT + 15)
        target = cluster.redis_url if mode == "redis" else server.http_url
        publisher = await spawn(
            "publisher",
            [
                sys.executable,
                "-m",
                "bench.publisher",
                "--mode",
                mode,
                "--target",
                target,
                "--symbol",
                FANOUT_SYMBOL,
                "--rate",
                str(rate),
                "--duration",
                str(warmup + duration + 1.0),
            ],
            cpu=LOAD_CPU,
            env={TOKEN_VARIABLE: feed_token or ""},
            log_path=cluster.workdir / f"publisher-{label}.log",
            pipe_stdio=True,
        )
        await read_event(publisher, "started", 30)
        stdin = loadgen.process.stdin
        assert stdin is not None
        stdin.write(b"go\n")
        await stdin.drain()
        await asyncio.sleep(warmup)
        memory_at_start = memory_mb(server.pid)
        server_cpu, loadgen_cpu, cores = CpuMeter(server.pid), CpuMeter(loadgen.pid), CoreMeter()
        server_cpu.start()
        loadgen_cpu.start()
        cores.start()
        sampling = (
            asyncio.create_task(profile.record(server.pid, duration - 1, profile_to))
            if profile_to is not None
            else None
        )
        await asyncio.sleep(duration)
        cpu = {"server": server_cpu.percent(), "loadgen": loadgen_cpu.percent()}
        core_busy = cores.percent()
        memory = memory_mb(server.pid)
        result = await read_event(loadgen, "result", 30)
        published = await read_event(publisher, "result", warmup + duration + 40)
        profiled = await sampling if sampling is not None else None
    finally:
        await loadgen.stop()
        if publisher is not None:
            await publisher.stop()
    # Let the server notice the closed sockets before the next cell starts.
    await asyncio.sleep(1.5)
    published_rate = published["sent"] / published["seconds"] if published["seconds"] else 0.0
    offered = published_rate * subscribers
    delivered = float(result["deliveriesPerSecond"])
    return {
        "server": server.kind,
        "publish_via": mode,
        "subscribers": subscribers,
        "stalled_subscribers": stalled,
        "rate": rate,
        "published_per_s": round(published_rate, 1),
        "offered_per_s": round(offered),
        "deliveries_per_s": round(delivered),
        "delivered_ratio": round(delivered / offered, 3) if offered else None,
        "latency_ms": result["latencyMs"],
        "per_subscriber_messages": result["perSubscriber"],
        "connect_s": round(float(ready["connectSeconds"]), 2),
        "cpu_percent": cpu,
        "server_memory": {**memory, "rss_mb_at_start": memory_at_start["rss_mb"]},
        # Core 0 busy beyond the server: other processes competing with it.
        "core0_other_percent": round(max(0.0, core_busy.get(SERVER_CPU, 0.0) - cpu["server"]), 1),
        "core_busy_percent": core_busy,
        "before": quiet,
        "errors": result["errors"] + int(published.get("errors", 0)),
        "last_error": result.get("lastError") or published.get("last_error"),
        "seconds": round(float(result["seconds"]), 2),
        **({"profile": profiled} if profiled is not None else {}),
    }
