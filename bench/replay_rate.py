"""Replay at max speed: how many recorded ticks per second the ingest path takes.

A CSV of ``--ticks`` ticks over two demo symbols is replayed by a server process
(``MARKET_FEED=replay``, ``REPLAY_SPEED=max``) on a fresh SQLite file, with the
matcher and strategy engine running as in ``make serve``. Reported: the time to
read and check the file at start-up, and the rate from the first replayed tick
stored to the last (validation is done by then: this is storage plus publish).

    PYTHONPATH=. .venv/bin/python -m bench.replay_rate --ticks 50000

Writes bench/results/replay_rate.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from graphql_api.market.source_health import SourceState, TickSource
from graphql_api.platform.settings import Settings
from graphql_api.server.runtime import open_services

RESULTS = Path(__file__).parent / "results" / "replay_rate.json"
SYMBOLS = (("600519.SH", 1500), ("BTCUSDT", 95000))


def write_recording(path: Path, ticks: int) -> None:
    start = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)
    with path.open("w") as out:
        out.write("symbol,time,last,bid,ask,volume\n")
        for i in range(ticks):
            symbol, base = SYMBOLS[i % 2]
            price = f"{base + (i % 100) / 100:.2f}"
            at = (start + timedelta(milliseconds=100 * i)).isoformat()
            out.write(f"{symbol},{at},{price},{price},{price},1\n")


async def measure(ticks: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="quantgraph-replay-") as folder:
        recording = Path(folder) / "day.csv"
        write_recording(recording, ticks)
        settings = Settings(
            DATABASE_URL=f"sqlite+aiosqlite:///{folder}/bench.db",
            MARKET_FEED="replay",
            REPLAY_FILE=str(recording),
            REPLAY_SPEED="max",
            LOG_LEVEL="warning",
        )
        started = time.perf_counter()
        async with open_services(settings) as services:
            loaded = time.perf_counter()
            health = services.ingestor.health.of(TickSource.REPLAY)
            while health.stored == 0:  # noqa: ASYNC110 - polls the source task
                await asyncio.sleep(0.001)
            first = time.perf_counter()
            while health.state is not SourceState.ENDED:  # noqa: ASYNC110 - polls the source task
                await asyncio.sleep(0.01)
            done = time.perf_counter()
            stored = health.stored
    rate = stored / (done - first)
    return {
        "ticks": ticks,
        "stored": stored,
        "database": "sqlite",
        "startup_seconds_including_file_check": round(loaded - started, 3),
        "replay_seconds": round(done - first, 3),
        "ticks_per_second": round(rate),
        "python": platform.python_version(),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ticks", type=int, default=50_000)
    result = asyncio.run(measure(parser.parse_args().ticks))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
