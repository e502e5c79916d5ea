"""(d) A large result: ``klines(limit: 10000)`` of one-minute bars, end to end over HTTP.

Sequential requests from the harness (core 1), after warm-up requests; each
answer is checked to hold every bar. For our server the same bars are also
timed below GraphQL, to split the latency into database and API shares:
``store_ms`` is ``SqlTimeSeriesStore.klines`` (SQLAlchemy + asyncpg + Bar
objects) and ``sql_ms`` the bare SQL through asyncpg (the stored minute bars).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import asyncpg
import httpx

from bench.cluster import Cluster, Server
from bench.processes import CpuMeter, wait_for_quiet
from bench.seed import KLINE_MINUTES, KLINES_SYMBOL
from storage.engine import create_engine
from storage.timeseries import KlineInterval
from storage.timeseries.sql import _PG_MINUTE_KLINES, SqlTimeSeriesStore

BARS = KLINE_MINUTES
QUERY = (
    f'query LargeKlines {{ klines(symbol: "{KLINES_SYMBOL}", interval: MINUTE_1, limit: {BARS}) '
    "{ time open high low close volume tradeCount } }"
)
# The same bars as one array per field (``klineSeries``), for charting clients.
COLUMNAR_QUERY = (
    f'query LargeKlineSeries {{ klineSeries(symbol: "{KLINES_SYMBOL}", interval: MINUTE_1, '
    f"limit: {BARS}) {{ times opens highs lows closes volumes }} }}"
)
WARMUP = 3


def bars_in(body: dict[str, Any]) -> int:
    data = body.get("data") or {}
    if "klineSeries" in data:
        return len(data["klineSeries"]["times"])
    return len(data.get("klines") or [])


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def at(fraction: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))], 2)

    return {
        "p50": round(statistics.median(ordered), 2),
        "p90": at(0.9),
        "p99": at(0.99),
        "min": round(ordered[0], 2),
        "max": round(ordered[-1], 2),
    }


async def over_http(server: Server, requests: int, *, columnar: bool = False) -> dict[str, Any]:
    """``columnar``: ask ``klineSeries`` (our server only) instead of ``klines``."""
    samples: list[float] = []
    size = 0
    quiet = await wait_for_quiet()
    async with httpx.AsyncClient(timeout=60) as client:
        meter = CpuMeter(server.pid)
        for index in range(WARMUP + requests):
            if index == WARMUP:
                meter.start()
            started = time.perf_counter()
            query = COLUMNAR_QUERY if columnar else QUERY
            response = await client.post(server.http_url, json={"query": query})
            body = response.json()  # parsing is part of what a client pays
            elapsed = (time.perf_counter() - started) * 1000
            if body.get("errors") or bars_in(body) != BARS:
                raise RuntimeError(f"{server.kind} large klines: {str(body)[:400]}")
            size = len(response.content)
            if index >= WARMUP:
                samples.append(elapsed)
        cpu = meter.percent()
    return {
        "server": server.kind,
        "shape": "columnar" if columnar else "rows",
        "bars": BARS,
        "requests": requests,
        "latency_ms": summary(samples),
        "response_bytes": size,
        "cpu_percent": {"server": cpu},
        "before": quiet,
    }


async def below_graphql(cluster: Cluster, requests: int) -> dict[str, Any]:
    """The same bars from the store and from bare SQL, in the harness process."""
    engine = create_engine(cluster.database_url)
    store = SqlTimeSeriesStore(engine)
    connection = await asyncpg.connect(cluster.pg_dsn)
    sql = _PG_MINUTE_KLINES.format(bounds="", direction="DESC")
    store_samples: list[float] = []
    sql_samples: list[float] = []
    quiet = await wait_for_quiet()
    try:
        for index in range(WARMUP + requests):
            started = time.perf_counter()
            bars = await store.klines(KLINES_SYMBOL, KlineInterval.MINUTE_1, None, None, BARS)
            store_ms = (time.perf_counter() - started) * 1000
            started = time.perf_counter()
            rows = await connection.fetch(sql, KLINES_SYMBOL, BARS)
            sql_ms = (time.perf_counter() - started) * 1000
            if len(bars) != BARS or len(rows) != BARS:
                raise RuntimeError(f"expected {BARS} bars, got {len(bars)} / {len(rows)}")
            if index >= WARMUP:
                store_samples.append(store_ms)
                sql_samples.append(sql_ms)
    finally:
        await connection.close()
        await engine.dispose()
    return {"store_ms": summary(store_samples), "sql_ms": summary(sql_samples), "before": quiet}
