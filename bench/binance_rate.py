"""The Binance source at full speed: how many stream messages per second become ticks.

A local server speaking Binance's documented combined-stream format (the one the
conformance tests use) sends ``--trades`` trade messages for BTCUSDT, each after
a bookTicker update, as fast as the socket takes them. A server on a fresh
SQLite file (``MARKET_FEED=binance`` pointed at it, matcher and strategy engine
running as in ``make serve``) parses them, keeps each trade's decimals on the
exchange's grid, and stores and publishes the ticks through the ingest path.
Reported: ticks stored per second from the first to the last, and the stream
messages per second that represents (two per tick).

    PYTHONPATH=. .venv/bin/python -m bench.binance_rate --trades 20000

Writes bench/results/binance_rate.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from websockets.asyncio.server import ServerConnection

from graphql_api.market.source_health import TickSource
from graphql_api.platform.settings import Settings
from graphql_api.server.runtime import open_services
from tests.graphql_api.market.sources.fake_binance import book_ticker, running_fake, trade

RESULTS = Path(__file__).parent / "results" / "binance_rate.json"


def stream(trades: int) -> list[str]:
    """``trades`` trades, each after a bookTicker update, prices on BTCUSDT's 0.01 grid."""
    now_ms = int(time.time() * 1000)
    messages: list[str] = []
    for n in range(trades):
        cents = 9_500_000 + n % 1000
        price = f"{cents // 100}.{cents % 100:02d}000000"
        ask = f"{(cents + 1) // 100}.{(cents + 1) % 100:02d}000000"
        messages.append(book_ticker(n + 1, price, ask))
        messages.append(trade(n + 1, price, "0.00100000", now_ms))
    return messages


async def measure(trades: int) -> dict[str, object]:
    messages = stream(trades)
    async with running_fake() as fake:

        async def send_all(connection: ServerConnection) -> None:
            for message in messages:
                await connection.send(message)

        fake.scripts.append(send_all)
        with tempfile.TemporaryDirectory(prefix="quantgraph-binance-") as folder:
            settings = Settings(
                DATABASE_URL=f"sqlite+aiosqlite:///{folder}/bench.db",
                MARKET_FEED="binance",
                BINANCE_SYMBOLS="BTCUSDT",
                BINANCE_WS_URL=fake.ws_url,
                BINANCE_REST_URL=fake.rest_url,
                LOG_LEVEL="warning",
            )
            async with open_services(settings) as services:
                health = services.ingestor.health.of(TickSource.BINANCE)
                async with asyncio.timeout(600):
                    while health.stored == 0:  # noqa: ASYNC110 - polls the source task
                        await asyncio.sleep(0.001)
                    first, stored_at_first = time.perf_counter(), health.stored
                    while health.stored < trades:  # noqa: ASYNC110 - polls the source task
                        await asyncio.sleep(0.005)
                    done = time.perf_counter()
                stored = health.stored
    rate = (stored - stored_at_first) / (done - first)
    return {
        "trades": trades,
        "stored": stored,
        "database": "sqlite",
        "seconds": round(done - first, 3),
        "ticks_per_second": round(rate),
        "stream_messages_per_second": round(2 * rate),
        "python": platform.python_version(),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trades", type=int, default=20_000)
    result = asyncio.run(measure(parser.parse_args().trades))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
