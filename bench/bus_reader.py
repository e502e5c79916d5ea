"""CPU per message of the Redis bus reader (:class:`RedisBroadcastBackend`).

Every tick a server process fans out arrives as one Redis pub/sub message, so
the reader's cost per message is paid once per tick per process, before any
subscriber sees it. A publisher process (on the other core) sends ``--messages``
tick-sized messages in pipelines; this process reads them through the backend
and measures its own CPU time, once with redis-py's pure-Python RESP3 parser
and once with the hiredis parser (the default when ``hiredis`` is installed),
alternating, ``--runs`` times each. Medians in microseconds of CPU per message.

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

from redis._parsers import _AsyncHiredisParser, _AsyncRESP3Parser
from redis.utils import HIREDIS_AVAILABLE

from graphql_api.realtime.channels import tick_channel
from graphql_api.realtime.events import encode_tick
from graphql_api.realtime.redis_backend import RedisBroadcastBackend
from storage.timeseries import Tick
from tests.support.servers import redis_server

RESULTS = Path(__file__).parent / "results" / "bus_reader.json"
SYMBOL = "BTCUSDT"
PARSERS: dict[str, Any] = {"python (RESP3)": _AsyncRESP3Parser, "hiredis": _AsyncHiredisParser}


def sample_message() -> str:
    price = Decimal("95012.35")
    tick = Tick(SYMBOL, datetime.now(UTC), price, price - 1, price + 1, Decimal("0.125"))
    return encode_tick(tick)


async def publish(url: str, count: int, message: str) -> None:
    """The publisher process: ``count`` messages in pipelines of 500."""
    from redis import asyncio as redis

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


async def read_once(url: str, parser: Any, count: int) -> float:
    """Microseconds of this process' CPU per message read through the backend."""
    backend = RedisBroadcastBackend(url, parser_class=parser)
    await backend.connect()
    try:
        await backend.subscribe(tick_channel(SYMBOL))
        await asyncio.sleep(0.2)
        publisher = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.bus_reader", "--publish", url, "--messages", str(count),
            preexec_fn=_other_cores,
        )  # fmt: skip
        await backend.next_published()
        started = time.process_time()
        for _ in range(count - 1):
            await backend.next_published()
        spent = time.process_time() - started
        await asyncio.wait_for(publisher.wait(), 60)
        return spent / (count - 1) * 1e6
    finally:
        await backend.disconnect()


async def measure(url: str, count: int, runs: int) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {name: [] for name in PARSERS}
    for _ in range(runs):
        for name, parser in PARSERS.items():
            samples[name].append(await read_once(url, parser, count))
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
    if not HIREDIS_AVAILABLE:
        print("hiredis is not installed (pip install -e .)", file=sys.stderr)
        return 1
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
        "hiredis_vs_python": round(medians["python (RESP3)"] / medians["hiredis"], 2),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["cpu_us_per_message_median"]), "ratio", result["hiredis_vs_python"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
