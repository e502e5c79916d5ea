"""The product's own parts, wired by hand on the embedded database.

Unit tests of one module build what that module talks to the way the server
does, but without the server: a fresh copy of the migrated, seeded SQLite
database, the in-process broadcaster behind a real :class:`Hub`, the symbol
catalogue, the SQL time-series store, the event outbox and the order service.
No matcher, strategy engine or relay runs, so nothing moves unless a test
moves it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal

import pytest
from broadcaster import Broadcast
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from graphql_api.market.symbols import SymbolCatalog
from graphql_api.realtime.hub import Hub
from graphql_api.realtime.outbox import EventOutbox
from graphql_api.trading.orders import OrderService
from graphql_api.trading.risk import RiskPolicy
from storage import models
from storage.engine import SessionFactory, create_engine, create_session_factory
from storage.timeseries.sql import SqlTimeSeriesStore
from tests.conftest import sql_database

# The server's defaults (see Settings), spelled out so the arithmetic in tests is visible.
POLICY = RiskPolicy(
    commission_rate=Decimal("0.0003"),
    max_order_notional=Decimal("5000000"),
    price_band_percent=Decimal("10"),
    market_order_buffer_percent=Decimal("5"),
    allow_short_selling=False,
)


@dataclass(frozen=True, slots=True)
class Embedded:
    engine: AsyncEngine
    sessions: SessionFactory
    hub: Hub
    catalog: SymbolCatalog
    store: SqlTimeSeriesStore
    outbox: EventOutbox
    orders: OrderService
    demo_user_id: int


@contextlib.asynccontextmanager
async def open_embedded(url: str) -> AsyncIterator[Embedded]:
    """The parts over the database at ``url`` (migrated and seeded), closed on exit."""
    engine = create_engine(url)
    try:
        sessions = create_session_factory(engine)
        async with Broadcast("memory://") as broadcast:
            hub = Hub(broadcast)
            catalog = SymbolCatalog(sessions)
            await catalog.load()
            store = SqlTimeSeriesStore(engine)
            outbox = EventOutbox(sessions, hub)
            async with sessions() as session:
                demo = await session.scalar(
                    select(models.User.id).where(models.User.username == "demo")
                )
            assert demo is not None
            yield Embedded(
                engine=engine,
                sessions=sessions,
                hub=hub,
                catalog=catalog,
                store=store,
                outbox=outbox,
                orders=OrderService(sessions, catalog, store, outbox, POLICY),
                demo_user_id=demo,
            )
            await hub.close()
    finally:
        await engine.dispose()


@pytest.fixture
async def embedded(request: pytest.FixtureRequest) -> AsyncIterator[Embedded]:
    async with sql_database(request, "sqlite") as url, open_embedded(url) as parts:
        yield parts
