"""The process-wide service container, built once by the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine

from graphql_api.alerts.service import AlertService
from graphql_api.auth import AuthService
from graphql_api.instruments import InstrumentService
from graphql_api.market.ingest import TickIngestor
from graphql_api.market.symbols import SymbolCatalog
from graphql_api.platform.activity import Activity
from graphql_api.platform.settings import Settings
from graphql_api.realtime.hub import Hub
from graphql_api.realtime.outbox import EventOutbox
from graphql_api.strategies.definitions import StrategyService
from graphql_api.trading.orders import OrderService
from graphql_api.watchlists.lists import WatchlistService
from graphql_api.webhooks.registry import WebhookService
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
    watchlists: WatchlistService
    alerts: AlertService
    webhooks: WebhookService
    instruments: InstrumentService
    auth: AuthService
    demo_user_id: int
    activity: Activity = field(default_factory=Activity)
