"""The process-wide service container, built once by the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine

from graphql_api.activity import Activity
from graphql_api.auth import AuthService
from graphql_api.event_outbox import EventOutbox
from graphql_api.hub import Hub
from graphql_api.ingest import TickIngestor
from graphql_api.orders import OrderService
from graphql_api.settings import Settings
from graphql_api.strategies import StrategyService
from graphql_api.symbols import SymbolCatalog
from storage.engine import SessionFactory
from storage.timeseries import TimeSeriesStore


@dataclass(frozen=True, slots=True)
class Services:
    settings: Settings
    engine: AsyncEngine
    sessions: SessionFactory
    timeseries: TimeSeriesStore
    hub: Hub
    outbox: EventOutbox
    catalog: SymbolCatalog
    ingestor: TickIngestor
    orders: OrderService
    strategies: StrategyService
    auth: AuthService
    demo_user_id: int
    activity: Activity = field(default_factory=Activity)
