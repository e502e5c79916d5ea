"""(c) Tick ingest into PostgreSQL, rows/s, in the harness process (core 1).

Four ways to land the same rows, each batch committed on its own:

- ``store``: ``SqlTimeSeriesStore.write_ticks`` in batches of 1000 (our COPY path:
  batch check, pooled connection, transaction, record building, COPY);
- ``ingestor``: ``TickIngestor`` in calls of 1000 ticks (validation against the
  symbol catalogue, batching, ``write_ticks``, then one Redis PUBLISH per tick
  through the same broadcaster backend the server uses); its ``validate_only``
  figure is the validation step alone;
- ``raw_copy_batched``: asyncpg ``copy_records_to_table`` of the prepared records,
  1000 per transaction, into a scratch table created ``LIKE ticks INCLUDING ALL``;
- ``raw_copy_single``: the same records in one COPY (the ceiling).

The ticks (and the minute bars the store keeps of them) carry old timestamps and
are deleted afterwards, so no later workload sees them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg

from bench.cluster import Cluster
from bench.processes import wait_for_quiet
from graphql_api.market.ingest import TickIngestor
from graphql_api.market.symbols import SymbolCatalog
from graphql_api.market.tick_validation import TickDraft
from graphql_api.realtime.hub import Hub
from graphql_api.server.runtime import open_broadcast
from storage.engine import create_engine, create_session_factory
from storage.timeseries import Tick
from storage.timeseries.sql import SqlTimeSeriesStore

BATCH = 1000
SYMBOL = "SOLUSDT"
COLUMNS = ["symbol", "time", "last", "bid", "ask", "volume"]
EPOCH = datetime(2001, 1, 1, tzinfo=UTC)


def make_ticks(count: int, offset: int) -> list[Tick]:
    ticks = []
    for index in range(count):
        last = Decimal(18_500 + (index * 7919) % 1000) / 100
        ticks.append(
            Tick(
                SYMBOL,
                EPOCH + timedelta(milliseconds=offset + index),
                last,
                last - Decimal("0.01"),
                last + Decimal("0.01"),
                Decimal((index % 97) + 1) / 1000,
            )
        )
    return ticks


def batches(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


def rate(rows: int, seconds: float) -> dict[str, float]:
    return {"rows": rows, "seconds": round(seconds, 3), "rows_per_s": round(rows / seconds)}


async def run(cluster: Cluster, rows: int) -> dict[str, Any]:
    engine = create_engine(cluster.database_url)
    store = SqlTimeSeriesStore(engine)
    connection = await asyncpg.connect(cluster.pg_dsn)
    results: dict[str, Any] = {"batch_size": BATCH, "before": await wait_for_quiet()}
    try:
        await connection.execute("DROP TABLE IF EXISTS bench_ticks_raw")
        await connection.execute("CREATE TABLE bench_ticks_raw (LIKE ticks INCLUDING ALL)")
        # Warm both paths (pool, prepared types) outside the timed region.
        await store.write_ticks(make_ticks(BATCH, 10**9))
        warm = [(t.symbol, t.time, t.last, t.bid, t.ask, t.volume) for t in make_ticks(BATCH, 0)]
        await connection.copy_records_to_table("bench_ticks_raw", records=warm, columns=COLUMNS)

        ticks = make_ticks(rows, 0)
        records = [(t.symbol, t.time, t.last, t.bid, t.ask, t.volume) for t in ticks]

        started = time.perf_counter()
        for chunk in batches(records, BATCH):
            async with connection.transaction():
                await connection.copy_records_to_table(
                    "bench_ticks_raw", records=chunk, columns=COLUMNS
                )
        results["raw_copy_batched"] = rate(rows, time.perf_counter() - started)

        started = time.perf_counter()
        for tick_chunk in batches(ticks, BATCH):
            await store.write_ticks(tick_chunk)
        results["store"] = rate(rows, time.perf_counter() - started)

        await connection.execute("TRUNCATE bench_ticks_raw")
        started = time.perf_counter()
        await connection.copy_records_to_table("bench_ticks_raw", records=records, columns=COLUMNS)
        results["raw_copy_single"] = rate(rows, time.perf_counter() - started)

        results["ingestor"] = await _through_ingestor(cluster, store, rows)
        raw = results["raw_copy_batched"]["rows_per_s"]
        results["store_vs_raw_batched"] = round(results["store"]["rows_per_s"] / raw, 3)
        results["ingestor_vs_raw_batched"] = round(results["ingestor"]["rows_per_s"] / raw, 3)
    finally:
        await connection.execute("DROP TABLE IF EXISTS bench_ticks_raw")
        for table, column in (("ticks", "time"), ("minute_bars", "bucket")):
            await connection.execute(
                f"DELETE FROM {table} WHERE symbol = $1 AND {column} < $2",
                SYMBOL,
                EPOCH + timedelta(days=365),
            )
        await connection.close()
        await engine.dispose()
    return results


async def _through_ingestor(
    cluster: Cluster, store: SqlTimeSeriesStore, rows: int
) -> dict[str, Any]:
    engine = create_engine(cluster.database_url)
    try:
        catalog = SymbolCatalog(create_session_factory(engine))
        await catalog.load()
        drafts = [
            TickDraft(t.symbol, t.time, t.last, t.bid, t.ask, t.volume)
            for t in make_ticks(rows, 2 * 10**9)
        ]
        async with open_broadcast(cluster.redis_url) as broadcast:
            ingestor = TickIngestor(
                store, Hub(broadcast), catalog, flush_interval=0.05, batch_size=BATCH
            )
            # Validation alone (no write, no publish), to split the ingestor's cost.
            started = time.perf_counter()
            for chunk in batches(drafts, BATCH):
                await ingestor.validate(chunk)
            validate_seconds = time.perf_counter() - started
            runner = asyncio.create_task(ingestor.run())
            try:
                started = time.perf_counter()
                for chunk in batches(drafts, BATCH):
                    ticks, errors = await ingestor.validate(chunk)
                    if errors:
                        raise RuntimeError(f"ingest benchmark ticks rejected: {errors[:3]}")
                    await ingestor.ingest(ticks)
            finally:
                # The last batch's publishes finish before the clock stops.
                ingestor.stop()
                await runner
            elapsed = time.perf_counter() - started
        return {**rate(rows, elapsed), "validate_only": rate(rows, validate_seconds)}
    finally:
        await engine.dispose()
