"""Idempotency keys of tick batches: remembered for a day, then pruned by later writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.models import TickBatchKey, User
from storage.timeseries import Tick
from storage.timeseries.base import BatchKey, BatchOutcome, TickBatch
from storage.timeseries.sql import BATCH_KEY_RETENTION, SqlTimeSeriesStore


def batch(owner_id: int, batch_id: str, last: str) -> TickBatch:
    price = Decimal(last)
    tick = Tick("BTCUSDT", datetime.now(UTC), price, price, price, Decimal("1"))
    return TickBatch([tick], BatchKey(owner_id, batch_id, f"digest-{last}"))


async def test_keys_older_than_the_retention_are_pruned_by_later_writes(
    sql_engine: AsyncEngine,
) -> None:
    # given: one key recorded just inside the retention, one just past it
    async with sql_engine.begin() as connection:
        owner_id = (await connection.execute(select(User.id).limit(1))).scalar_one()
        now = datetime.now(UTC)
        await connection.execute(
            insert(TickBatchKey),
            [
                {
                    "owner_id": owner_id,
                    "batch_id": name,
                    "digest": "old",
                    "created_at": now - age,
                }
                for name, age in (
                    ("kept", BATCH_KEY_RETENTION - timedelta(minutes=5)),
                    ("expired", BATCH_KEY_RETENTION + timedelta(minutes=5)),
                )
            ],
        )
    store = SqlTimeSeriesStore(sql_engine)
    # when: a keyed batch is written
    assert await store.write_batches([batch(owner_id, "new", "1.00")]) == [BatchOutcome.STORED]
    # then: the expired key is gone, the others stay and still guard their batches
    async with sql_engine.connect() as connection:
        names = set((await connection.execute(select(TickBatchKey.batch_id))).scalars())
    assert names == {"kept", "new"}
    outcomes = await store.write_batches(
        [batch(owner_id, "kept", "2.00"), batch(owner_id, "new", "1.00")]
    )
    assert outcomes == [BatchOutcome.CONFLICT, BatchOutcome.REPLAYED]
