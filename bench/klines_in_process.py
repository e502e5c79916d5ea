"""``klines(limit: 10000)`` through the compiled read path and through the standard path.

In-process and short, beside ``bench/large_klines.py`` (which runs the servers over
HTTP): one PostgreSQL server started for the run, the bench's 10,000 one-minute
bars of ticks (``bench.seed``), two apps on that database (``COMPILED_READS=true``
/ ``false``), requests sent one at a time over httpx's ASGI transport, the two
paths taking turns so both see the same load on a shared machine. Both answers
are checked to be the same bytes first. ``store_ms`` is the time-series store's
read alone (SQL aggregation plus ``Bar`` objects), the floor of either path.
``klineSeries`` (columnar) is timed too, on the compiled app (it is not compiled).

    taskset -c 1 .venv/bin/python -m bench.klines_in_process [--requests 20]

Writes bench/results/klines_in_process.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.engine import make_url

from bench.large_klines import BARS, COLUMNAR_QUERY, QUERY, bars_in, summary
from bench.seed import KLINES_SYMBOL, create_database, seed
from graphql_api.server.app import create_app
from storage.timeseries import KlineInterval
from tests.conftest import make_settings

RESULTS = Path(__file__).parent / "results" / "klines_in_process.json"
WARM_UP = 3


async def _timed(client: httpx.AsyncClient, query: str) -> float:
    started = time.perf_counter()
    response = await client.post("/graphql", json={"query": query})
    body = response.json()  # parsing is part of what a client pays
    elapsed = (time.perf_counter() - started) * 1000
    if body.get("errors") or bars_in(body) != BARS:
        raise RuntimeError(f"large klines: {str(body)[:400]}")
    return elapsed


async def measure(database_url: str, requests: int) -> dict[str, Any]:
    quiet = {"ACCESS_LOG": False, "MATCHER_ENABLED": False, "STRATEGY_ENGINE_ENABLED": False}
    compiled_app = create_app(make_settings(database_url, **quiet))
    standard_app = create_app(make_settings(database_url, **quiet, COMPILED_READS=False))
    async with (
        compiled_app.router.lifespan_context(compiled_app),
        standard_app.router.lifespan_context(standard_app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=compiled_app), base_url="http://bench", timeout=60
        ) as compiled,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=standard_app), base_url="http://bench", timeout=60
        ) as standard,
    ):
        dsn = make_url(database_url).set(drivername="postgresql").render_as_string(False)
        await seed(database_url, dsn, orders=1, strategies=1)
        answers = [
            (await client.post("/graphql", json={"query": QUERY})).content
            for client in (compiled, standard)
        ]
        assert answers[0] == answers[1], "the two paths must answer the same bytes"
        store = compiled_app.state.services.timeseries
        samples: dict[str, list[float]] = {
            "compiled": [],
            "standard": [],
            "series": [],
            "store": [],
        }
        for index in range(WARM_UP + requests):
            took = {
                "compiled": await _timed(compiled, QUERY),
                "standard": await _timed(standard, QUERY),
                "series": await _timed(compiled, COLUMNAR_QUERY),
            }
            started = time.perf_counter()
            await store.klines(KLINES_SYMBOL, KlineInterval.MINUTE_1, None, None, BARS)
            took["store"] = (time.perf_counter() - started) * 1000
            if index >= WARM_UP:
                for name, value in took.items():
                    samples[name].append(value)
    results: dict[str, Any] = {
        "klines_compiled_ms": summary(samples["compiled"]),
        "klines_standard_ms": summary(samples["standard"]),
        "kline_series_ms": summary(samples["series"]),
        "store_ms": summary(samples["store"]),
        "response_bytes": len(answers[0]),
    }
    results["speed-up_p50"] = round(
        statistics.median(samples["standard"]) / statistics.median(samples["compiled"]), 2
    )
    return results


async def on_postgres(requests: int) -> dict[str, Any]:
    from tests.support.servers import postgres_server

    with postgres_server() as server_url:
        url = await create_database(server_url, f"bench_{uuid.uuid4().hex[:8]}")
        return await measure(url, requests)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=20)
    args = parser.parse_args()
    results = asyncio.run(on_postgres(args.requests))
    result = {
        "command": f"taskset -c 1 .venv/bin/python -m bench.klines_in_process "
        f"--requests {args.requests}",
        "machine": {"python": platform.python_version()},
        "document": QUERY,
        "postgresql": results,
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
