"""Benchmark data, written straight into the database (deterministic, seconds to load).

- strategies and orders of the demo user, through the ORM rows of ``storage.models``
  (so a renamed column fails loudly here rather than silently in a peer);
- one-minute history for the klines workloads: ``TICKS_PER_MINUTE`` ticks per
  minute for ``KLINE_MINUTES`` minutes of ``KLINES_SYMBOL``, loaded with COPY;
- one recent tick of ``FANOUT_SYMBOL`` so every subscription starts with a snapshot.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
from sqlalchemy import select

from storage import models
from storage.engine import create_engine, create_session_factory
from storage.repositories import reservations
from storage.timeseries import Tick
from storage.timeseries.sql import SqlTimeSeriesStore

FANOUT_SYMBOL = "BTCUSDT"
KLINES_SYMBOL = "ETHUSDT"
KLINE_MINUTES = 10_000
TICKS_PER_MINUTE = 3
ORDER_STATUSES = ("NEW", "FILLED", "CANCELED", "PARTIALLY_FILLED", "REJECTED")


@dataclass(frozen=True)
class Seeded:
    demo_user_id: int
    strategies: int
    orders: int
    kline_ticks: int
    kline_end: datetime


async def seed(database_url: str, dsn: str, *, orders: int, strategies: int) -> Seeded:
    rng = random.Random(6)
    engine = create_engine(database_url)
    try:
        async with create_session_factory(engine)() as session:
            user = await session.scalar(select(models.User).where(models.User.username == "demo"))
            if user is None:
                raise RuntimeError("the demo user is missing: `quantgraph seed` did not run")
            codes = list(await session.scalars(select(models.Symbol.code).order_by("code")))
            now = datetime.now(UTC)
            rows = [
                models.Strategy(
                    user_id=user.id,
                    name=f"bench strategy {index:02d}",
                    kind="SMA_CROSS",
                    symbol_code=codes[index % len(codes)],
                    interval="1m",
                    parameters={"fast": 5, "slow": 20},
                    status="STOPPED",
                    auto_trade=False,
                    created_at=now,
                    updated_at=now,
                )
                for index in range(strategies)
            ]
            session.add_all(rows)
            await session.flush()
            for index in range(orders):
                # One order in five is manual (no strategy), as in real use.
                strategy = rows[index % len(rows)] if rows and index % 5 else None
                status = ORDER_STATUSES[index % len(ORDER_STATUSES)]
                quantity = Decimal(rng.randint(1, 50)) * 100
                price = Decimal(rng.randint(1000, 5000)) / 100
                filled = quantity if status == "FILLED" else Decimal(0)
                created = now - timedelta(seconds=orders - index)
                session.add(
                    models.Order(
                        user_id=user.id,
                        client_order_id=f"bench-{index}",
                        symbol_code=strategy.symbol_code if strategy else codes[index % len(codes)],
                        strategy_id=strategy.id if strategy else None,
                        side="BUY" if index % 2 else "SELL",
                        type="LIMIT",
                        time_in_force="GTC",
                        quantity=quantity,
                        limit_price=price,
                        status=status,
                        filled_quantity=filled,
                        average_fill_price=price if filled else None,
                        reject_reason="INSUFFICIENT_CASH" if status == "REJECTED" else None,
                        reserve_price=price,
                        expires_at=None,
                        version=0,
                        created_at=created,
                        updated_at=created,
                    )
                )
            await session.flush()
            # rows written around the order service: bring the kept reservations up to them
            await reservations.recompute(session, [user.id])
            await session.commit()
            demo_user_id = user.id
    finally:
        await engine.dispose()

    kline_end = datetime.now(UTC).replace(second=0, microsecond=0)
    ticks = kline_ticks(kline_end, rng)
    snapshot = Decimal("95000.00")
    quote = Tick(
        FANOUT_SYMBOL,
        datetime.now(UTC) - timedelta(seconds=1),
        snapshot,
        snapshot,
        snapshot,
        Decimal("0.1"),
    )
    # Through the store, as ingest writes them: it keeps the minute bars klines read.
    engine = create_engine(database_url)
    try:
        store = SqlTimeSeriesStore(engine)
        for start in range(0, len(ticks), 1000):
            await store.write_ticks(ticks[start : start + 1000])
        await store.write_ticks([quote])
    finally:
        await engine.dispose()
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute("ANALYZE")
    finally:
        await connection.close()
    return Seeded(demo_user_id, strategies, orders, len(ticks), kline_end)


def kline_ticks(end: datetime, rng: random.Random) -> list[Tick]:
    """``TICKS_PER_MINUTE`` ticks in each of the ``KLINE_MINUTES`` minutes before ``end``."""
    start = end - timedelta(minutes=KLINE_MINUTES)
    price = 340_000  # cents
    records: list[Tick] = []
    for minute in range(KLINE_MINUTES):
        for index in range(TICKS_PER_MINUTE):
            price = max(100, price + rng.randint(-300, 300))
            last = Decimal(price) / 100
            time = start + timedelta(minutes=minute, seconds=index * 60 // TICKS_PER_MINUTE + 1)
            records.append(
                Tick(
                    KLINES_SYMBOL,
                    time,
                    last,
                    last - Decimal("0.01"),
                    last + Decimal("0.01"),
                    Decimal(rng.randint(1, 100)) / 10,
                )
            )
    return records


async def create_database(server_url: str, name: str) -> str:
    """Create database ``name`` on the server of ``server_url``; its SQLAlchemy URL."""
    from sqlalchemy.engine import make_url

    dsn = make_url(server_url).set(drivername="postgresql").render_as_string(False)
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return make_url(server_url).set(database=name).render_as_string(False)
