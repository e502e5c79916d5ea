"""CPU per message of the Redis bus reader (:class:`RedisBroadcastBackend`).

Every tick a server process fans out arrives as one Redis pub/sub message, so
the reader's cost per message is paid once per tick per process, before any
subscriber sees it. A publisher process (on another core) sends ``--messages``
tick-sized messages in pipelines; this process reads them and measures its own
CPU time. Three readers, alternating, ``--runs`` times each:

- ``redis-py get_message (python parser)``: the backend's former loop, one
  ``PubSub.get_message`` per message, with redis-py's pure-Python RESP3 parser;
- ``redis-py get_message (hiredis)``: the same loop with the hiredis parser;
- ``bulk reader (hiredis)``: the backend as it is (a buffer per read, parsed by
  hiredis in one go), up to the queue broadcaster reads from;
- ``hub mailbox via broadcaster``: the backend, broadcaster's queues and the
  hub's per-channel pump task, up to a subscriber's mailbox (the former path);
- ``hub mailbox, direct``: the backend handing each message to the hub, which
  puts it in the mailbox in the same step (the path now).

Medians in microseconds of CPU per message.

    taskset -c 1 .venv/bin/python -m bench.bus_reader

Starts its own Redis (``tests.support.servers``). Writes bench/results/bus_reader.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from broadcaster import BroadcastBackend, Event
from redis import asyncio as redis
from redis._parsers import _AsyncHiredisParser, _AsyncRESP3Parser

from graphql_api.realtime.channels import tick_channel
from graphql_api.realtime.events import encode_tick
from graphql_api.realtime.hub import BroadcastWithBackend, Hub
from graphql_api.realtime.redis_backend import RedisBroadcastBackend
from storage.timeseries import Tick
from tests.support.servers import redis_server

RESULTS = Path(__file__).parent / "results" / "bus_reader.json"
SYMBOL = "BTCUSDT"
READERS = (
    "redis-py get_message (python parser)",
    "redis-py get_message (hiredis)",
    "bulk reader (hiredis)",
    "hub mailbox via broadcaster",
    "hub mailbox, direct",
)
PARSERS: dict[str, Any] = {READERS[0]: _AsyncRESP3Parser, READERS[1]: _AsyncHiredisParser}


def sample_message() -> str:
    price = Decimal("95012.35")
    tick = Tick(SYMBOL, datetime.now(UTC), price, price - 1, price + 1, Decimal("0.125"))
    return encode_tick(tick)


async def publish(url: str, count: int, message: str) -> None:
    """The publisher process: ``count`` messages in pipelines of 500."""
    client = redis.Redis.from_url(url)
    channel = tick_channel(SYMBOL)
    for _ in range(0, count, 500):
        pipeline = client.pipeline(transaction=False)
        for _ in range(500):
            pipeline.publish(channel, message)
        await pipeline.execute()
        await asyncio.sleep(0.001)  # let the reader keep up: a stream, not one burst
    await client.aclose()


def _other_cores() -> None:
    """The publisher runs off the reader's core(s) when the machine has others."""
    mine = os.sched_getaffinity(0)
    others = set(range(os.cpu_count() or 1)) - mine
    if others:
        os.sched_setaffinity(0, others)


async def start_publisher(url: str, count: int) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.bus_reader", "--publish", url, "--messages", str(count),
        preexec_fn=_other_cores,
    )  # fmt: skip


async def read_with_backend(url: str, count: int) -> float:
    """Microseconds of this process' CPU per message read through the backend."""
    backend = RedisBroadcastBackend(url)
    await backend.connect()
    try:
        await backend.subscribe(tick_channel(SYMBOL))
        await asyncio.sleep(0.2)
        publisher = await start_publisher(url, count)
        await backend.next_published()
        started = time.process_time()
        for _ in range(count - 1):
            await backend.next_published()
        spent = time.process_time() - started
        await asyncio.wait_for(publisher.wait(), 60)
        return spent / (count - 1) * 1e6
    finally:
        await backend.disconnect()


async def read_with_get_message(url: str, parser: Any, count: int) -> float:
    """The same through redis-py's ``PubSub.get_message``, one call per message (the
    backend's former loop, into the same kind of queue)."""
    client = redis.Redis.from_url(url, health_check_interval=10, parser_class=parser)
    pubsub = client.pubsub()
    queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
    try:
        await pubsub.subscribe(tick_channel(SYMBOL))
        publisher = await start_publisher(url, count)
        received = 0
        started = 0.0
        while received < count:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if message is not None and message["type"] == "message":
                queue.put_nowait((message["channel"].decode(), message["data"].decode()))
                queue.get_nowait()
                received += 1
                if received == 1:
                    started = time.process_time()
        spent = time.process_time() - started
        await asyncio.wait_for(publisher.wait(), 60)
        return spent / (count - 1) * 1e6
    finally:
        await pubsub.aclose()
        await client.aclose()


class QueuedBackend(BroadcastBackend):
    """Our backend behind broadcaster's interface only, so the hub takes broadcaster's
    path (queues and a pump task per channel), as it did before ``dispatch_to``."""

    def __init__(self, url: str) -> None:
        self.inner = RedisBroadcastBackend(url)

    async def connect(self) -> None:
        await self.inner.connect()

    async def disconnect(self) -> None:
        await self.inner.disconnect()

    async def subscribe(self, channel: str) -> None:
        await self.inner.subscribe(channel)

    async def unsubscribe(self, channel: str) -> None:
        await self.inner.unsubscribe(channel)

    async def publish(self, channel: str, message: Any) -> None:
        await self.inner.publish(channel, message)

    async def next_published(self) -> Event:
        return await self.inner.next_published()


async def read_through_hub(url: str, count: int, *, direct: bool) -> float:
    """Microseconds of CPU per message from the socket to a subscriber's mailbox."""
    backend: BroadcastBackend = RedisBroadcastBackend(url) if direct else QueuedBackend(url)
    broadcast = BroadcastWithBackend(backend=backend)
    await broadcast.connect()
    hub = Hub(broadcast, capacity=count + 10)
    try:
        async with hub.subscribe([tick_channel(SYMBOL)], conflate=False) as mailbox:
            await asyncio.sleep(0.2)
            publisher = await start_publisher(url, count)
            await mailbox.get()
            started = time.process_time()
            for _ in range(count - 1):
                await mailbox.get()
            spent = time.process_time() - started
            await asyncio.wait_for(publisher.wait(), 60)
        return spent / (count - 1) * 1e6
    finally:
        await hub.close()
        await broadcast.disconnect()


async def measure(url: str, count: int, runs: int) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {name: [] for name in READERS}
    for _ in range(runs):
        for name, parser in PARSERS.items():
            samples[name].append(await read_with_get_message(url, parser, count))
        samples[READERS[2]].append(await read_with_backend(url, count))
        samples[READERS[3]].append(await read_through_hub(url, count, direct=False))
        samples[READERS[4]].append(await read_through_hub(url, count, direct=True))
    return samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bus_reader", description=__doc__)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--publish", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.publish:
        asyncio.run(publish(args.publish, args.messages, sample_message()))
        return 0
    with redis_server() as url:
        samples = asyncio.run(measure(url, args.messages, args.runs))
    medians = {name: round(statistics.median(values), 1) for name, values in samples.items()}
    result = {
        "command": "taskset -c 1 .venv/bin/python -m bench.bus_reader "
        f"--messages {args.messages} --runs {args.runs}",
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "pinned_cpus": sorted(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "messages_per_run": args.messages,
        "cpu_us_per_message_median": medians,
        "samples_us": {name: [round(v, 1) for v in values] for name, values in samples.items()},
        "ratios_vs_bulk_reader": {
            name: round(medians[name] / medians[READERS[2]], 2) for name in READERS[:2]
        },
        "hub_via_broadcaster_vs_direct": round(medians[READERS[3]] / medians[READERS[4]], 2),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(medians, indent=1))
    print("vs bulk reader:", json.dumps(result["ratios_vs_bulk_reader"]))
    print("hub via broadcaster / direct:", result["hub_via_broadcaster_vs_direct"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
