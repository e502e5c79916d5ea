"""Time-series backends side by side: tick ingest rows/s and kline latency over one trading day.

For each backend, one trading day of synthetic ticks for a few symbols goes
through the store's own write path (``TimeSeriesStore.write_ticks``) in
batches of ``--batch`` (default 1000, the ingestor's ``TICK_BATCH_SIZE``),
ticks interleaved across symbols in time order as a feed delivers them. A
second, shorter phase writes batches of ``--small-batch`` ticks (a quiet live
feed, where each 50 ms flush carries a handful of ticks) on the following day,
so it does not touch the day that is queried. Then ``klines`` for the whole
day of one symbol is timed at 1m (1,440 bars for crypto, 240 for the SSE
session), 5m and 1h: ``--repeats`` sequential calls after warm-up calls (or
as many as fit in ``--budget-s``, at least 3: SQLite takes seconds per call),
reported as p50/p90/p99 (nearest rank) in milliseconds. Every backend's bars
must match the bars computed in Python from the generated ticks. Before the
ingest and before the queries it waits up to ``--quiet-wait`` s for the shared
machine's other users to go quiet, and records how busy they still were.

Backends:

- ``sqlite``: a migrated database in a temporary file (WAL, as the app runs it);
- ``postgresql``: ``--postgres-url`` / ``TEST_DATABASE_URL`` (a server-level URL:
  a scratch database is created and dropped), else a throwaway server started
  like the test suite's (``tests/support/servers.py``); ``ANALYZE ticks`` runs
  after ingest, as autovacuum would;
- ``tdengine``: only when ``--tdengine-url`` / ``TEST_TDENGINE_URL`` is set (its
  database part is replaced by a scratch database, dropped afterwards);
  otherwise recorded as skipped.

Prices are Decimals on the symbol's tick size (a seeded random walk), sizes
multiples of its lot size, bid/ask one tick either side.

    .venv/bin/python -m bench.timeseries_backends [--market crypto|sse] [--symbols 3]
        [--tick-ms 1000] [--batch 1000] [--repeats 30] [--backends sqlite,postgresql,tdengine]

Writes bench/results/timeseries_backends.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import platform
import random
import shutil
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import text
from sqlalchemy.engine import make_url

from bench.processes import wait_for_quiet
from graphql_api.server.demo_data import CRYPTO_SESSION, INSTRUMENTS, Instrument
from storage.engine import create_engine
from storage.migrate import upgrade_to_head
from storage.timeseries import Bar, KlineInterval, Tick, TimeSeriesStore
from storage.timeseries.sql import SqlTimeSeriesStore
from tests.support.minute_bars import reference_bars
from tests.support.servers import postgres_server

RESULTS = Path(__file__).parent / "results" / "timeseries_backends.json"
BACKENDS = ("sqlite", "postgresql", "tdengine")
INTERVALS = (KlineInterval.MINUTE_1, KlineInterval.MINUTE_5, KlineInterval.HOUR_1)
WARMUP = 3
SLOW_CALL_MS = 500.0
MIN_SAMPLES = 3
DEFAULT_DAY = date(2026, 3, 2)  # a Monday
TDENGINE_SKIPPED = "skipped: no TDengine server configured"
# SSE continuous trading, 09:30-11:30 and 13:00-15:00 Beijing time, in seconds after 00:00 UTC.
SSE_SESSIONS = ((5400, 12600), (18000, 25200))
CRYPTO_SESSIONS = ((0, 86400),)


# --- the workload -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Workload:
    market: str
    day: date
    symbols: tuple[Instrument, ...]
    tick_ms: int
    seed: int

    @property
    def sessions(self) -> tuple[tuple[int, int], ...]:
        return SSE_SESSIONS if self.market == "sse" else CRYPTO_SESSIONS

    @property
    def start(self) -> datetime:
        return datetime(self.day.year, self.day.month, self.day.day, tzinfo=UTC)

    @property
    def query_symbol(self) -> str:
        return self.symbols[0].code


def pick_symbols(market: str, count: int) -> tuple[Instrument, ...]:
    """The demo catalogue's instruments of the market, then synthetic ones if more are asked for."""
    crypto = market == "crypto"
    known = [i for i in INSTRUMENTS if (i.exchange == "BINANCE") == crypto]
    chosen = known[:count]
    for n in range(count - len(chosen)):
        code = f"BENCH{n:03d}USDT" if crypto else f"{690000 + n:06d}.SH"
        chosen.append(Instrument(code, code, "BENCH", "USD", "0.01", "1", "100.00", CRYPTO_SESSION))
    return tuple(chosen)


def generate_ticks(workload: Workload, day_offset: int = 0, limit: int | None = None) -> list[Tick]:
    """One day of ticks, every symbol every ``tick_ms``, interleaved in time order."""
    rng = random.Random(workload.seed + day_offset)
    start = workload.start + timedelta(days=day_offset)
    walks: list[tuple[str, Decimal, Decimal, int]] = []
    for instrument in workload.symbols:
        tick_size = Decimal(instrument.tick_size)
        walks.append(
            (
                instrument.code,
                tick_size,
                Decimal(instrument.lot_size),
                int(Decimal(instrument.price) / tick_size),
            )
        )
    steps = [walk[3] for walk in walks]
    ticks: list[Tick] = []
    for first, end in workload.sessions:
        for millis in range(first * 1000, end * 1000, workload.tick_ms):
            for index, (symbol, tick_size, lot, _) in enumerate(walks):
                steps[index] = max(10, steps[index] + rng.randint(-2, 2))
                last = tick_size * steps[index]
                # A few ms apart per symbol, so symbols do not share timestamps.
                offset = (index * 7) % workload.tick_ms
                ticks.append(
                    Tick(
                        symbol,
                        start + timedelta(milliseconds=millis + offset),
                        last,
                        last - tick_size,
                        last + tick_size,
                        lot * rng.randint(1, 50),
                    )
                )
                if limit is not None and len(ticks) >= limit:
                    return ticks
    return ticks


def expected_bars(ticks: Sequence[Tick], symbol: str, interval: KlineInterval) -> list[Bar]:
    """The bars every backend must return, folded in Python from the generated ticks."""
    return reference_bars([tick for tick in ticks if tick.symbol == symbol], interval)


def bars_digest(bars: Sequence[Bar]) -> str:
    canonical = "\n".join(
        f"{b.time.isoformat()} {b.open.normalize()} {b.high.normalize()} {b.low.normalize()} "
        f"{b.close.normalize()} {b.volume.normalize()} {b.trade_count}"
        for b in bars
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


# --- measuring ----------------------------------------------------------------------------


def summary(samples_ms: Sequence[float]) -> dict[str, float]:
    ordered = sorted(samples_ms)

    def rank(percent: int) -> float:
        index = -(-percent * len(ordered) // 100) - 1  # nearest rank: ceil(p * n) - 1
        return round(ordered[max(0, index)], 2)

    return {
        "p50": round(statistics.median(ordered), 2),
        "p90": rank(90),
        "p99": rank(99),
        "min": round(ordered[0], 2),
        "max": round(ordered[-1], 2),
    }


async def ingest(store: TimeSeriesStore, ticks: Sequence[Tick], batch: int) -> dict[str, Any]:
    batch_ms: list[float] = []
    started = time.perf_counter()
    for first in range(0, len(ticks), batch):
        chunk = ticks[first : first + batch]
        before = time.perf_counter()
        await store.write_ticks(chunk)
        batch_ms.append((time.perf_counter() - before) * 1000)
    seconds = time.perf_counter() - started
    return {
        "rows": len(ticks),
        "batch_size": batch,
        "batches": len(batch_ms),
        "seconds": round(seconds, 3),
        "rows_per_s": round(len(ticks) / seconds),
        "batch_ms": summary(batch_ms),
    }


async def kline_latency(
    store: TimeSeriesStore,
    workload: Workload,
    interval: KlineInterval,
    expected: list[Bar],
    repeats: int,
    budget: float,
) -> dict[str, Any]:
    start, end = workload.start, workload.start + timedelta(days=1)
    limit = 86400 // interval.seconds

    async def timed() -> tuple[list[Bar], float]:
        before = time.perf_counter()
        bars = await store.klines(workload.query_symbol, interval, start, end, limit)
        return bars, (time.perf_counter() - before) * 1000

    bars, first_ms = await timed()
    # A slow backend gets one warm-up call and a time budget instead of every repeat.
    for _ in range(WARMUP - 1 if first_ms < SLOW_CALL_MS else 0):
        await timed()
    samples: list[float] = []
    deadline = time.perf_counter() + budget
    while len(samples) < repeats and (len(samples) < MIN_SAMPLES or time.perf_counter() < deadline):
        bars, elapsed = await timed()
        samples.append(elapsed)
    if bars != expected:
        raise RuntimeError(
            f"{interval.value} klines differ from the ticks' bars: got {len(bars)} bars "
            f"({bars_digest(bars)}), expected {len(expected)} ({bars_digest(expected)})"
        )
    return {
        "bars": len(bars),
        "samples": len(samples),
        "budget_limited": len(samples) < repeats,
        "latency_ms": summary(samples),
    }


async def quiet(args: argparse.Namespace) -> dict[str, float]:
    """Wait (up to ``--quiet-wait`` s) for the machine's other users to go quiet; say how busy."""
    if args.quiet_wait <= 0:
        return {}
    return await wait_for_quiet(max_wait=args.quiet_wait)


async def measure(
    store: TimeSeriesStore, args: argparse.Namespace, workload: Workload
) -> tuple[dict[str, Any], list[Tick]]:
    day = generate_ticks(workload)
    result: dict[str, Any] = {"before_ingest": await quiet(args)}
    result["ingest"] = await ingest(store, day, args.batch)
    if args.small_rows:
        live = generate_ticks(workload, day_offset=1, limit=args.small_rows)
        result["ingest_small_batches"] = await ingest(store, live, args.small_batch)
    return result, day


async def query_all(
    store: TimeSeriesStore, day: Sequence[Tick], args: argparse.Namespace, workload: Workload
) -> dict[str, Any]:
    klines: dict[str, Any] = {"before": await quiet(args)}
    for interval in INTERVALS:
        expected = expected_bars(day, workload.query_symbol, interval)
        klines[interval.value] = await kline_latency(
            store, workload, interval, expected, args.repeats, args.budget_s
        )
    return klines


# --- the backends -------------------------------------------------------------------------


async def run_sql(url: str, args: argparse.Namespace, workload: Workload) -> dict[str, Any]:
    engine = create_engine(url)
    try:
        await upgrade_to_head(engine)
        store = SqlTimeSeriesStore(engine)
        result, day = await measure(store, args, workload)
        if engine.dialect.name == "postgresql":
            async with engine.begin() as connection:
                await connection.execute(text("ANALYZE ticks"))
                version = (await connection.execute(text("SHOW server_version"))).scalar_one()
            result["server"] = f"PostgreSQL {version}"
        else:
            result["server"] = f"SQLite {sqlite3.sqlite_version}"
        result["klines"] = await query_all(store, day, args, workload)
        return result
    finally:
        await engine.dispose()


async def run_sqlite(args: argparse.Namespace, workload: Workload) -> dict[str, Any]:
    directory = Path(tempfile.mkdtemp(prefix="quantgraph-bench-ts-"))
    try:
        return await run_sql(f"sqlite+aiosqlite:///{directory / 'bench.db'}", args, workload)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def run_postgresql(
    server_url: str, args: argparse.Namespace, workload: Workload
) -> dict[str, Any]:
    name = f"bench_ts_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(_asyncpg_dsn(server_url))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
        return await run_sql(url, args, workload)
    finally:
        admin = await asyncpg.connect(_asyncpg_dsn(server_url))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def run_tdengine(url: str, args: argparse.Namespace, workload: Workload) -> dict[str, Any]:
    from storage.timeseries.tdengine import TDengineTimeSeriesStore, parse_url

    base = url.rstrip("/")
    scratch = f"{base.rsplit('/', 1)[0]}/bench_ts_{uuid.uuid4().hex[:8]}"
    if "/" not in base.split("://", 1)[-1]:  # no database part to replace
        scratch = f"{base}/bench_ts_{uuid.uuid4().hex[:8]}"
    store = await TDengineTimeSeriesStore.open(
        scratch, precision=args.tdengine_precision, vgroups=args.tdengine_vgroups
    )
    try:
        result, day = await measure(store, args, workload)
        result["server"] = f"TDengine via {parse_url(scratch).scheme}://"
        result["precision"] = store.precision.value
        result["klines"] = await query_all(store, day, args, workload)
        return result
    finally:
        await store.drop_database()


@contextlib.contextmanager
def postgres_for(args: argparse.Namespace) -> Iterator[tuple[str, str]]:
    """A server-level URL and where it came from."""
    if args.postgres_url:
        yield args.postgres_url, "given"
        return
    with postgres_server() as url:
        yield url, "started (tests/support/servers.py: fsync=off, synchronous_commit=off)"


async def run_backends(args: argparse.Namespace, workload: Workload) -> dict[str, Any]:
    results: dict[str, Any] = {}
    wanted = [name.strip() for name in args.backends.split(",") if name.strip()]
    for name in wanted:
        if name not in BACKENDS:
            raise SystemExit(f"unknown backend {name!r}: choose from {', '.join(BACKENDS)}")
    if "sqlite" in wanted:
        results["sqlite"] = await run_sqlite(args, workload)
    if "postgresql" in wanted:
        with postgres_for(args) as (server_url, origin):
            results["postgresql"] = await run_postgresql(server_url, args, workload)
            results["postgresql"]["origin"] = origin
    if "tdengine" in wanted:
        if args.tdengine_url:
            results["tdengine"] = await run_tdengine(args.tdengine_url, args, workload)
        else:
            results["tdengine"] = TDENGINE_SKIPPED
    return results


# --- reporting ----------------------------------------------------------------------------


def command_line(args: argparse.Namespace, defaults: argparse.Namespace) -> str:
    """The command to rerun, with server URLs left to the environment (they may hold passwords)."""
    env = []
    if args.postgres_url:
        env.append("TEST_DATABASE_URL=...")
    if args.tdengine_url:
        env.append("TEST_TDENGINE_URL=...")
    flags = []
    for name, value in vars(args).items():
        if name in ("postgres_url", "tdengine_url") or value == getattr(defaults, name):
            continue
        flags.append(f"--{name.replace('_', '-')} {value}")
    return " ".join([*env, ".venv/bin/python -m bench.timeseries_backends", *flags])


def table(results: dict[str, Any]) -> str:
    header = (
        f"{'backend':<11} {'rows/s':>9} {'batch p50/p99 ms':>17} {'small rows/s':>13}"
        + "".join(f" {f'{i.value} p50/p99 ms':>17}" for i in INTERVALS)
    )
    lines = [header, "-" * len(header)]
    for name, result in results.items():
        if isinstance(result, str):
            lines.append(f"{name:<11} {result}")
            continue
        small = result.get("ingest_small_batches", {}).get("rows_per_s", "-")
        cells = [
            f"{name:<11}",
            f"{result['ingest']['rows_per_s']:>9}",
            f"{_pair(result['ingest']['batch_ms']):>17}",
            f"{small:>13}",
        ]
        for interval in INTERVALS:
            cells.append(f"{_pair(result['klines'][interval.value]['latency_ms']):>17}")
        lines.append(" ".join(cells))
    return "\n".join(lines)


def _pair(latency: dict[str, float]) -> str:
    return f"{latency['p50']}/{latency['p99']}"


def parser() -> argparse.ArgumentParser:
    parse = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parse.add_argument("--market", choices=("crypto", "sse"), default="crypto")
    parse.add_argument("--symbols", type=int, default=3, help="symbols ticking all day")
    parse.add_argument("--tick-ms", type=int, default=1000, help="ms between a symbol's ticks")
    parse.add_argument("--day", type=date.fromisoformat, default=DEFAULT_DAY)
    parse.add_argument("--batch", type=int, default=1000, help="ticks per write_ticks call")
    parse.add_argument("--small-batch", type=int, default=10)
    parse.add_argument("--small-rows", type=int, default=5000, help="0 skips the small batches")
    parse.add_argument("--repeats", type=int, default=30, help="timed klines calls per interval")
    parse.add_argument(
        "--budget-s",
        type=float,
        default=15.0,
        help=f"stop timing an interval after this long (at least {MIN_SAMPLES} samples)",
    )
    parse.add_argument(
        "--quiet-wait",
        type=float,
        default=10.0,
        help="before ingest and before klines, wait up to this long for a quiet machine",
    )
    parse.add_argument("--seed", type=int, default=7)
    parse.add_argument("--backends", default=",".join(BACKENDS))
    parse.add_argument("--postgres-url", default=os.environ.get("TEST_DATABASE_URL") or None)
    parse.add_argument("--tdengine-url", default=os.environ.get("TEST_TDENGINE_URL") or None)
    parse.add_argument("--tdengine-precision", choices=("ms", "us", "ns"), default="us")
    parse.add_argument("--tdengine-vgroups", type=int, default=None)
    return parse


def main() -> None:
    parse = parser()
    args = parse.parse_args()
    if args.tick_ms < 1 or args.symbols < 1 or args.batch < 1 or args.repeats < 1:
        parse.error("--tick-ms, --symbols, --batch and --repeats must be positive")
    defaults = parse.parse_args([])
    workload = Workload(
        args.market, args.day, pick_symbols(args.market, args.symbols), args.tick_ms, args.seed
    )
    started = time.perf_counter()
    load_before = os.getloadavg()
    results = asyncio.run(run_backends(args, workload))
    ticks_per_symbol = sum(end - first for first, end in workload.sessions) * 1000 // args.tick_ms
    report = {
        "benchmark": "timeseries_backends",
        "command": command_line(args, defaults),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "note": "database servers run on the same machine as the benchmark",
            "load_average_1m": {
                "before": round(load_before[0], 2),
                "after": round(os.getloadavg()[0], 2),
            },
        },
        "workload": {
            "market": args.market,
            "day": args.day.isoformat(),
            "sessions_utc_seconds": [list(session) for session in workload.sessions],
            "symbols": [instrument.code for instrument in workload.symbols],
            "tick_ms": args.tick_ms,
            "ticks_per_symbol": ticks_per_symbol,
            "rows": ticks_per_symbol * len(workload.symbols),
            "write_path": "TimeSeriesStore.write_ticks, ticks interleaved across symbols",
            "kline_query": (
                f"klines({workload.query_symbol}, interval, start=day 00:00Z, end=+1 day, "
                f"limit=bars per day); {WARMUP} warm-up calls (1 when a call takes over "
                f"{SLOW_CALL_MS:.0f} ms), then --repeats timed calls or as many as fit in "
                f"--budget-s (at least {MIN_SAMPLES})"
            ),
            "percentiles": "nearest rank; below 100 samples p99 is the maximum",
        },
        "backends": results,
        "total_seconds": round(time.perf_counter() - started, 1),
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(table(results))
    print(f"\nwrote {RESULTS}")


if __name__ == "__main__":
    main()
