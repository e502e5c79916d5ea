"""Ingest-to-subscriber latency: how long a fed tick takes to reach a subscriber.

A tick sent through ``ingestTicks`` (or any feed) is validated, written to the
tick store, and only then published, so a subscriber never sees a tick a query
cannot find. This measures that path inside one server process: ``--writers``
concurrent writers (as concurrent ``ingestTicks`` requests would) each hand
the ingestor one tick at a time, ``--rate`` ticks per second in all, for
``--seconds``; a hub mailbox subscribed to the symbol records when each tick
arrives (lossless, so every tick is counted). Latency is arrival minus the
moment the writer handed the tick over.

For each database (SQLite file, PostgreSQL) it runs the ingestor two ways:
with a 50 ms linger (the former default: a batch is written 50 ms after its
first tick, or when full) and with no linger (group commit: the writer task
writes whatever has arrived as soon as the previous write is done).

    taskset -c 1 .venv/bin/python -m bench.ingest_latency

Starts its own PostgreSQL (``tests.support.servers``). Writes
bench/results/ingest_latency.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench.seed import create_database
from graphql_api.platform.settings import Settings
from graphql_api.realtime.channels import tick_channel
from graphql_api.realtime.events import decode_tick
from graphql_api.server.runtime import open_services
from storage.timeseries import Tick
from tests.support.servers import postgres_server

RESULTS = Path(__file__).parent / "results" / "ingest_latency.json"
SYMBOL = "BTCUSDT"
JWT_SECRET = "bench-ingest-latency-secret-0123456789abcdef"
LINGERS_MS = (50, 0)


def settings_for(database_url: str, linger_ms: int) -> Settings:
    values: dict[str, Any] = {
        "DATABASE_URL": database_url,
        "MARKET_FEED": "none",
        "BROADCAST_URL": "memory://",
        "TICK_FLUSH_INTERVAL_MS": linger_ms,
        "RATE_LIMIT": False,
        "JWT_SECRET": JWT_SECRET,
    }
    return Settings(**values)


async def measure(database_url: str, linger_ms: int, args: argparse.Namespace) -> dict[str, Any]:
    async with open_services(settings_for(database_url, linger_ms)) as services:
        handed: dict[str, float] = {}
        latencies: list[float] = []
        total = int(args.rate * args.seconds)
        loop = asyncio.get_running_loop()
        async with services.hub.subscribe(
            [tick_channel(SYMBOL)], conflate=False, capacity=total + 10
        ) as mailbox:

            async def receive() -> None:
                while len(latencies) < total:
                    message = await mailbox.get()
                    tick = decode_tick(message.message)
                    latencies.append(loop.time() - handed.pop(str(tick.last)))

            async def write(writer: int) -> None:
                interval = args.writers / args.rate
                started = loop.time()
                for n in range(writer, total, args.writers):
                    due = started + (n // args.writers) * interval
                    await asyncio.sleep(max(0.0, due - loop.time()))
                    price = Decimal(90_000) + Decimal(n) / 100
                    now = datetime.now(UTC)
                    tick = Tick(SYMBOL, now, price, price - 1, price + 1, Decimal("0.001"))
                    handed[str(price)] = loop.time()
                    await services.ingestor.ingest([tick])

            receiver = asyncio.create_task(receive())
            cpu = time.process_time()
            await asyncio.gather(*(write(w) for w in range(args.writers)))
            await asyncio.wait_for(receiver, 30)
            cpu = time.process_time() - cpu
    ordered = sorted(latencies)
    return {
        "linger_ms": linger_ms,
        "ticks": len(ordered),
        "latency_ms": {
            "p50": round(statistics.median(ordered) * 1000, 2),
            "p99": round(ordered[int(len(ordered) * 0.99) - 1] * 1000, 2),
            "max": round(ordered[-1] * 1000, 2),
        },
        "cpu_ms_per_tick": round(cpu / len(ordered) * 1000, 3),
    }


async def run(args: argparse.Namespace, databases: dict[str, str]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for name, url in databases.items():
        results[name] = [await measure(url, linger, args) for linger in LINGERS_MS]
        for row in results[name]:
            print(name, json.dumps(row), file=sys.stderr)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest_latency", description=__doc__)
    parser.add_argument("--rate", type=float, default=200.0, help="ticks per second in all")
    parser.add_argument("--writers", type=int, default=20, help="concurrent writers")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as directory, postgres_server() as server_url:
        sqlite_url = f"sqlite+aiosqlite:///{directory}/latency.db"
        postgres_url = asyncio.run(create_database(server_url, "ingest_latency"))
        results = asyncio.run(run(args, {"sqlite": sqlite_url, "postgresql": postgres_url}))
    output = {
        "command": "taskset -c 1 .venv/bin/python -m bench.ingest_latency "
        f"--rate {args.rate:g} --writers {args.writers} --seconds {args.seconds:g}",
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "pinned_cpus": sorted(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "results": results,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(output, indent=2) + "\n")
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
