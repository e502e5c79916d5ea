"""Tick publisher for the fan-out workload, run as its own process on core 1.

``python -m bench.publisher --mode redis|mutation --target URL --rate R --duration S``

Every ``--interval`` seconds (10 ms) it sends the ticks due so far, stamped with
the current wall-clock time (the subscribers' latency reference):

- ``redis``: PUBLISH on ``ticks.<SYMBOL>`` in quantgraph's wire format
  (``graphql_api.realtime.events.encode_tick``), the channel every server process fans out
  from; the same input for our server and the yoga peer;
- ``mutation``: one ``ingestTicks`` mutation per batch to our server (the full
  path: validation, batched COPY into PostgreSQL, then publish), with a bounded
  number of requests in flight, as the FEED user whose access token is in
  ``$BENCH_FEED_TOKEN``.

Prints ``{"event": "started"}`` and, at the end, one JSON result line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
from redis import asyncio as redis

from graphql_api.realtime.channels import tick_channel
from graphql_api.realtime.events import encode_tick
from storage.timeseries import Tick

INGEST = """
mutation Ingest($ticks: [TickInput!]!) {
  ingestTicks(ticks: $ticks) { accepted userErrors { field code message } }
}
"""
MAX_IN_FLIGHT = 256
# The access token of a FEED user, for the mutation mode (kept out of argv).
TOKEN_VARIABLE = "BENCH_FEED_TOKEN"


class Walk:
    def __init__(self, symbol: str, start_cents: int, seed: int) -> None:
        self.symbol = symbol
        self.cents = start_cents
        self.rng = random.Random(seed)

    def next(self) -> Tick:
        self.cents = max(100, self.cents + self.rng.randint(-500, 500))
        last = Decimal(self.cents) / 100
        return Tick(
            self.symbol,
            datetime.now(UTC),
            last,
            last - Decimal("0.01"),
            last + Decimal("0.01"),
            Decimal(self.rng.randint(1, 1000)) / 1000,
        )


async def publish_loop(
    send: Callable[[list[Tick]], Awaitable[None]],
    walk: Walk,
    rate: float,
    duration: float,
    interval: float,
) -> dict[str, Any]:
    print(json.dumps({"event": "started"}), flush=True)
    started = time.monotonic()
    due = 0.0
    sent = 0
    batches = 0
    late = 0
    step = 0
    while True:
        step += 1
        deadline = started + step * interval
        if deadline > started + duration:
            break
        delay = deadline - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -interval:
            late += 1
        due += rate * interval
        count = int(due) - sent
        if count <= 0:
            continue
        await send([walk.next() for _ in range(count)])
        sent += count
        batches += 1
    seconds = time.monotonic() - started
    return {"sent": sent, "batches": batches, "late_batches": late, "seconds": seconds}


async def run_redis(args: argparse.Namespace, walk: Walk) -> dict[str, Any]:
    client = redis.Redis.from_url(args.target)
    channel = tick_channel(args.symbol)

    async def send(ticks: list[Tick]) -> None:
        async with client.pipeline(transaction=False) as pipe:
            for tick in ticks:
                pipe.publish(channel, encode_tick(tick))
            await pipe.execute()

    try:
        return await publish_loop(send, walk, args.rate, args.duration, args.interval)
    finally:
        await client.aclose()


async def run_mutation(args: argparse.Namespace, walk: Walk) -> dict[str, Any]:
    in_flight: set[asyncio.Task[None]] = set()
    stats = {"accepted": 0, "errors": 0, "dropped_batches": 0}
    last_error: list[str] = []
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    token = os.environ.get(TOKEN_VARIABLE)
    headers = {"authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(timeout=30, limits=limits, headers=headers) as client:

        async def post(ticks: list[Tick]) -> None:
            body = {
                "query": INGEST,
                "variables": {
                    "ticks": [
                        {
                            "symbol": t.symbol,
                            "time": t.time.isoformat(),
                            "last": str(t.last),
                            "bid": str(t.bid),
                            "ask": str(t.ask),
                            "volume": str(t.volume),
                        }
                        for t in ticks
                    ]
                },
            }
            try:
                response = await client.post(args.target, json=body)
                payload = response.json()
                result = (payload.get("data") or {}).get("ingestTicks") or {}
                if payload.get("errors") or result.get("userErrors"):
                    stats["errors"] += 1
                    last_error[:] = [json.dumps(payload)[:300]]
                stats["accepted"] += int(result.get("accepted") or 0)
            except (httpx.HTTPError, ValueError) as error:
                stats["errors"] += 1
                last_error[:] = [repr(error)[:300]]

        async def send(ticks: list[Tick]) -> None:
            if len(in_flight) >= MAX_IN_FLIGHT:
                stats["dropped_batches"] += 1
                return
            task = asyncio.create_task(post(ticks))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)

        result = await publish_loop(send, walk, args.rate, args.duration, args.interval)
        if in_flight:
            await asyncio.wait(in_flight, timeout=30)
    return {**result, **stats, "last_error": last_error[0] if last_error else None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mode", choices=("redis", "mutation"), required=True)
    parser.add_argument("--target", required=True, help="redis:// URL or the GraphQL HTTP URL")
    parser.add_argument("--symbol", default="BTCUSDT")
    parser.add_argument("--rate", type=float, required=True, help="ticks per second")
    parser.add_argument("--duration", type=float, required=True, help="seconds")
    parser.add_argument("--interval", type=float, default=0.01, help="seconds between batches")
    args = parser.parse_args(argv)
    walk = Walk(args.symbol, 9_500_000, seed=42)
    runner = run_redis if args.mode == "redis" else run_mutation
    result = asyncio.run(runner(args, walk))
    print(json.dumps({"event": "result", "mode": args.mode, "rate": args.rate, **result}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
