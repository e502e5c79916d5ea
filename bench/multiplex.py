"""Serialize once, measured: N identical ``ticks`` subscribers, R ticks/s for S seconds,
with the multiplexing WebSocket handlers and with Strawberry's per-socket path.

The server runs in a child process pinned to core 0 (its CPU time is read from
/proc); the subscribers run here, pinned to core 1, and only count frames. Results
go to ``bench/results/multiplex.json``.

    python -m bench.multiplex [--subscribers 500] [--rate 200] [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

RESULTS = Path(__file__).parent / "results" / "multiplex.json"
SUBSCRIPTION = 'subscription { ticks(symbols: ["BTCUSDT"]) { symbol last bid ask volume time } }'
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# --- the server (child process) ------------------------------------------------------


def serve(mode: str, port: int, database_url: str) -> None:
    import uvicorn
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response

    from graphql_api.platform.settings import Settings
    from graphql_api.server.app import QuantgraphGraphQL, create_app
    from graphql_api.server.websocket import RealtimeOptions, install, realtime_state
    from storage.timeseries import Tick

    settings = Settings(
        DATABASE_URL=database_url,
        MARKET_FEED="none",
        TICK_FLUSH_INTERVAL_MS=5,
        LOG_LEVEL="warning",
        MAX_TICK_FUTURE_SECONDS=5,
    )
    app = create_app(settings)
    view = next(
        route.endpoint  # type: ignore[attr-defined]
        for route in app.routes
        if isinstance(getattr(route, "endpoint", None), QuantgraphGraphQL)
    )
    if mode != "strawberry":
        install(view, RealtimeOptions(multiplex=mode == "multiplex"))

    async def feed(request: Request) -> Response:
        rate = float(request.query_params["rate"])
        seconds = float(request.query_params["seconds"])
        services = app.state.services
        loop = asyncio.get_running_loop()
        start = loop.time()
        count = 0
        pending: set[asyncio.Task[None]] = set()
        # at most ``rate`` ticks a second, for ``seconds`` of wall time: a saturated
        # server ingests fewer (the feed shares its event loop)
        while loop.time() - start < seconds:
            delay = start + count / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            price = Decimal("95000.00") + Decimal(count) / 100
            tick = Tick("BTCUSDT", datetime.now(UTC), price, price, price, Decimal(1))
            # not awaited one by one: the ingestor batches what arrives within a flush
            pending.add(asyncio.create_task(services.ingestor.ingest([tick])))
            count += 1
        await asyncio.gather(*pending)
        stats = realtime_state(view).registry.stats
        return JSONResponse(
            {"ticks": count, "executions": stats.executions, "frames": stats.frames_sent}
        )

    app.add_route("/bench/feed", feed, methods=["POST"])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", ws="websockets-sansio")


# --- the driver ----------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def subscriber(url: str, counts: list[int], index: int, ready: asyncio.Event) -> None:
    connection: ClientConnection = await connect(
        url,
        subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
        compression=None,
        max_queue=64,
    )
    try:
        await connection.send(json.dumps({"type": "connection_init", "payload": {}}))
        await connection.recv()
        await connection.send(
            json.dumps({"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIPTION}})
        )
        while True:
            message = await connection.recv()
            if isinstance(message, str) and '"type":"ping"' in message:
                continue
            counts[index] += 1
            if counts[index] == 1:
                ready.set()
    finally:
        await connection.close()


async def run_cell(mode: str, subscribers: int, rate: float, seconds: float) -> dict[str, Any]:
    port = _free_port()
    database = Path(tempfile.mkdtemp(prefix="qg-bench-")) / "bench.db"
    server = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "bench.multiplex", "--serve", mode, str(port), str(database)],
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    os.sched_setaffinity(server.pid, {0})
    try:
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base, timeout=120) as http:
            for _ in range(600):
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get("/healthz")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
            # one tick first, so every subscription starts with a snapshot
            await http.post("/bench/feed", params={"rate": 100, "seconds": 0.01})
            counts = [0] * subscribers
            readies = [asyncio.Event() for _ in range(subscribers)]
            url = f"ws://127.0.0.1:{port}/graphql"
            tasks = []
            for i in range(subscribers):
                tasks.append(asyncio.create_task(subscriber(url, counts, i, readies[i])))
                if i % 50 == 49:
                    await asyncio.sleep(0.05)
            await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 120)
            await asyncio.sleep(1)
            before_counts = sum(counts)
            cpu_before, wall_before = cpu_seconds(server.pid), time.monotonic()
            client_before = time.process_time()
            response = await http.post("/bench/feed", params={"rate": rate, "seconds": seconds})
            feed_wall = time.monotonic() - wall_before
            # let queued frames drain (the count stops moving)
            last = -1
            while sum(counts) != last:
                last = sum(counts)
                await asyncio.sleep(0.5)
            cpu_after, wall_after = cpu_seconds(server.pid), time.monotonic()
            client_cpu = time.process_time() - client_before
            memory = rss_mb(server.pid)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        delivered = sum(counts) - before_counts
        cpu = cpu_after - cpu_before
        ticks = response.json()["ticks"]
        return {
            "mode": mode,
            "subscribers": subscribers,
            "ticks_per_second": rate,
            "seconds": seconds,
            "feed_wall_seconds": round(feed_wall, 2),
            "wall_seconds": round(wall_after - wall_before, 2),
            "deliveries": delivered,
            "deliveries_per_second": round(delivered / (wall_after - wall_before)),
            "ticks_ingested": ticks,
            "deliveries_of_ingested": round(delivered / max(subscribers * ticks, 1), 3),
            "server_cpu_seconds": round(cpu, 2),
            "server_cpu_ms_per_1000_deliveries": round(1000 * cpu / max(delivered, 1) * 1000, 2),
            "server_rss_mb": round(memory, 1),
            "client_cpu_seconds": round(client_cpu, 2),
            "server_stats": response.json(),
        }
    finally:
        server.terminate()
        await asyncio.wait_for(server.wait(), 30)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def main(subscribers: int, rate: float, seconds: float) -> None:
    with contextlib.suppress(OSError):
        os.sched_setaffinity(0, {1})
    results = []
    for mode in ("multiplex", "strawberry"):
        cell = await run_cell(mode, subscribers, rate, seconds)
        print(json.dumps(cell))
        results.append(cell)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--serve", nargs=3, metavar=("MODE", "PORT", "DB"))
    parser.add_argument("--subscribers", type=int, default=500)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=5)
    args = parser.parse_args()
    if args.serve:
        mode, port, db = args.serve
        serve(mode, int(port), f"sqlite+aiosqlite:///{db}")
    else:
        asyncio.run(main(args.subscribers, args.rate, args.seconds))
