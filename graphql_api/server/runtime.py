"""Start and stop everything a server process runs, in dependency order.

``open_services`` is an async context manager so the app's lifespan, the CLI
and tests all get the same wiring and the same clean shutdown: stop the feed,
flush the tick buffer, close the hub and broadcaster, release the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable
from datetime import timedelta
from decimal import Decimal
from typing import Any

import structlog
from broadcaster import Broadcast
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from graphql_api.alerts.engine import AlertEngine
from graphql_api.alerts.service import AlertService
from graphql_api.auth import AuthService
from graphql_api.auth.secret import signing_secret
from graphql_api.hardening.guarded_timeseries import GuardedTimeSeriesStore
from graphql_api.hardening.rate_limits.buckets import RateLimiter
from graphql_api.instruments import InstrumentService
from graphql_api.market.ingest import TickIngestor
from graphql_api.market.source_health import TickSource
from graphql_api.market.symbols import SymbolCatalog
from graphql_api.platform.leader import Leadership, Membership
from graphql_api.platform.resilience import CircuitBreaker
from graphql_api.platform.settings import Settings
from graphql_api.realtime.hub import BroadcastWithBackend, Hub
from graphql_api.realtime.outbox import EventOutbox
from graphql_api.realtime.redis_backend import RedisBroadcastBackend
from graphql_api.server.database import open_database
from graphql_api.server.demo_data import seed_demo_data
from graphql_api.server.market_sources import build_sources, source_task
from graphql_api.services import Services
from graphql_api.strategies.definitions import StrategyService
from graphql_api.strategies.engine.engine import StrategyEngine
from graphql_api.trading.equity import EquitySnapshots
from graphql_api.trading.matcher import PaperMatcher
from graphql_api.trading.orders import OrderService
from graphql_api.trading.risk import RiskPolicy
from graphql_api.trading.shards import MatcherShard
from graphql_api.watchlists.lists import WatchlistService
from graphql_api.webhooks.dispatcher import WebhookDispatcher
from graphql_api.webhooks.registry import WebhookService
from storage.engine import SessionFactory
from storage.repositories import symbols as symbol_repo
from storage.repositories import users as user_repo
from storage.timeseries import TimeSeriesStore
from storage.timeseries.sql import SqlTimeSeriesStore

log = structlog.get_logger(__name__)


@contextlib.asynccontextmanager
async def open_services(
    settings: Settings, *, limiter: RateLimiter | None = None
) -> AsyncIterator[Services]:
    """``limiter``: the rate limiter's buckets (Redis-backed when configured), which
    also count failed sign-ins; per process when None."""
    secret = signing_secret(settings)  # before anything starts: a missing one stops start-up
    async with open_database(
        settings, migrate=settings.auto_migrate, pool_size=settings.database_pool_size
    ) as database:
        engine, sessions = database.engine, database.sessions
        if settings.seed_demo_data:
            await _seed(sessions, settings)
        demo_user_id = await _demo_user_id(sessions, settings)
        timeseries = await _open_timeseries(settings, engine)
        try:
            async with open_broadcast(settings.broadcast_url) as broadcast:
                hub = Hub(broadcast, capacity=settings.subscriber_queue_size)
                outbox = EventOutbox(sessions, hub)
                catalog = SymbolCatalog(sessions)
                await catalog.load()
                ingestor = TickIngestor(
                    timeseries,
                    hub,
                    catalog,
                    flush_interval=settings.tick_flush_interval_ms / 1000,
                    batch_size=settings.tick_batch_size,
                    writes_in_flight=_tick_writes_in_flight(settings, timeseries),
                    max_future=timedelta(seconds=settings.max_tick_future_seconds),
                    max_age_years=settings.max_tick_age_years,
                )
                auth = AuthService(sessions, settings, hub, outbox, secret=secret, limiter=limiter)
                await auth.load_revocations()
                services = Services(
                    settings=settings,
                    engine=engine,
                    sessions=sessions,
                    timeseries=timeseries,
                    hub=hub,
                    outbox=outbox,
                    catalog=catalog,
                    ingestor=ingestor,
                    orders=OrderService(
                        sessions, catalog, timeseries, outbox, risk_policy(settings)
                    ),
                    strategies=StrategyService(sessions, catalog),
                    watchlists=WatchlistService(
                        sessions,
                        catalog,
                        outbox,
                        max_watchlists=settings.max_watchlists_per_user,
                        max_symbols=settings.max_watchlist_symbols,
                    ),
                    alerts=AlertService(
                        sessions, catalog, outbox, max_alerts=settings.max_alerts_per_user
                    ),
                    webhooks=WebhookService(
                        sessions,
                        max_webhooks=settings.max_webhooks_per_user,
                        allow_private=settings.webhook_allow_private_addresses,
                    ),
                    instruments=InstrumentService(
                        sessions, catalog, outbox, start_cash=settings.start_cash
                    ),
                    auth=auth,
                    demo_user_id=demo_user_id,
                )
                try:
                    async with _background(services) as tasks:
                        yield services
                        await _stop(services, tasks)
                finally:
                    auth.close()
                await hub.close()
        finally:
            await timeseries.close()


def _tick_writes_in_flight(settings: Settings, timeseries: TimeSeriesStore) -> int:
    """PostgreSQL writes several tick batches side by side (row locks order the
    minute bars' merges); SQLite's one write lock would only queue them, and
    TDengine's writer keeps its own order, so both take one at a time."""
    if isinstance(timeseries, SqlTimeSeriesStore) and timeseries.postgres:
        return settings.tick_writes_in_flight
    return 1


def _shards_led(services: Services, name: str, retry: float) -> Callable[[], float]:
    """How much longer shard ``name``'s election waits: a retry interval per other
    matcher shard this process already leads."""

    def patience() -> float:
        leaders = services.activity.leaders
        led = sum(
            1
            for other, leader in leaders.items()
            if other != name and other.startswith("matcher") and leader.is_leader
        )
        return led * retry

    return patience


LeaderWork = Callable[[], Coroutine[Any, Any, None]]
"""What a cluster singleton runs while its process leads it."""


def retry_of(settings: Settings) -> float:
    """How often followers try to take a singleton over (a fifth of the lease)."""
    return settings.leader_lease_seconds / 5


def _led_shards(services: Services) -> list[str]:
    """The matcher shards this process leads now, by index."""
    led = [
        name
        for name, leader in services.activity.leaders.items()
        if name.startswith("matcher-") and leader.is_leader
    ]
    return sorted(led, key=lambda name: int(name.rsplit("-", 1)[1]))


def _over_fair_share(
    services: Services, shard: MatcherShard, membership: Membership
) -> Callable[[], Awaitable[bool]] | None:
    """Whether shard ``shard`` should be handed over: this process leads more shards
    than its fair share (shards / live members, rounded up) and this is the
    highest-numbered of them (one hand-over at a time)."""
    if shard.count == 1:
        return None

    async def should_yield() -> bool:
        led = _led_shards(services)
        if not led or led[-1] != shard.name:
            return False
        fair = math.ceil(shard.count / await membership.count())
        return len(led) > fair

    return should_yield


@contextlib.asynccontextmanager
async def _background(services: Services) -> AsyncIterator[dict[str, asyncio.Task[None]]]:
    tasks: dict[str, asyncio.Task[None]] = {
        "ingestor": asyncio.create_task(services.ingestor.run(), name="tick-ingestor"),
        "revocations": asyncio.create_task(services.auth.run(), name="auth-revocations"),
        "event-relay": asyncio.create_task(services.outbox.run(), name="event-relay"),
        "symbol-catalogue": asyncio.create_task(
            services.catalog.follow(services.hub), name="symbol-catalogue"
        ),
    }
    settings = services.settings
    if settings.matcher_enabled:
        membership = Membership(services.engine, "matcher", retry_interval=retry_of(settings))
        if settings.matcher_shards > 1:
            tasks["matcher-members"] = asyncio.create_task(membership.run(), name="matcher-members")
        for index in range(settings.matcher_shards):
            shard = MatcherShard(index, settings.matcher_shards)
            matcher = PaperMatcher(
                services.sessions,
                services.hub,
                services.catalog,
                services.orders,
                services.orders.risk_policy,
                partial_fills=settings.partial_fills,
                clock_tolerance=timedelta(milliseconds=settings.matcher_clock_tolerance_ms),
                max_tick_lag=timedelta(seconds=settings.matcher_max_tick_lag_seconds),
                activity=services.activity,
                shard=shard,
            )
            retry = settings.leader_lease_seconds / 5
            leadership = Leadership(
                services.engine,
                shard.name,
                retry_interval=retry,
                # spread the shards over the processes: see Leadership's ``patience``
                start_delay=index * retry / 2 if settings.matcher_shards > 1 else 0.0,
                patience=_shards_led(services, shard.name, retry),
                should_yield=_over_fair_share(services, shard, membership),
            )
            tasks[shard.name] = asyncio.create_task(leadership.run(matcher.run), name=shard.name)
            services.activity.leaders[shard.name] = leadership
    # The other cluster singletons: each elected on its own (one process runs it).
    singletons: list[tuple[str, bool, Callable[[], LeaderWork]]] = [
        (
            "strategy-engine",
            settings.strategy_engine_enabled,
            lambda: strategy_engine(services).run,
        ),
        (
            "equity-snapshots",
            settings.equity_snapshots_enabled,
            lambda: EquitySnapshots(services.sessions, services.catalog, services.timeseries).run,
        ),
        ("alert-engine", settings.alert_engine_enabled, lambda: alert_engine(services).run),
        ("webhooks", settings.webhooks_enabled, lambda: webhook_dispatcher(services).run),
    ]
    for name, enabled, work in singletons:
        if enabled:
            leadership = Leadership(services.engine, name, retry_interval=retry_of(settings))
            tasks[name] = asyncio.create_task(leadership.run(work()), name=name)
            services.activity.leaders[name] = leadership
    for source in await build_sources(services, lambda: _start_prices(services)):
        tasks[f"feed-{source.name}"] = source_task(source, services, settings)
    if settings.external_feed_expected:
        services.ingestor.health.expect(TickSource.API)
    services.activity.tasks.update(tasks)
    try:
        yield tasks
    finally:
        for task in tasks.values():
            task.cancel()
        await _await_stopped(tasks.values())


SHUTDOWN_GRACE_SECONDS = 15.0
"""How long shutdown waits for cancelled background tasks before giving up on them."""


async def _await_stopped(tasks: Iterable[asyncio.Task[None]]) -> list[str]:
    """Wait for cancelled tasks to end, but not forever: a task stuck in a driver call
    must not keep the process (or a test's teardown) from shutting down. One that
    does not end in time is logged with where it is stuck, and left behind; the
    names of those are returned."""
    done, pending = await asyncio.wait(set(tasks), timeout=SHUTDOWN_GRACE_SECONDS)
    for task in done:
        if not task.cancelled() and task.exception() is not None:
            log.error("background task failed", task=task.get_name(), exc_info=task.exception())
    for task in pending:
        where = io.StringIO()
        task.print_stack(limit=30, file=where)
        log.error(
            "background task did not stop at shutdown",
            task=task.get_name(),
            grace_seconds=SHUTDOWN_GRACE_SECONDS,
            where=where.getvalue()[-4000:],
        )
    return sorted(task.get_name() for task in pending)


async def _stop(services: Services, tasks: dict[str, asyncio.Task[None]]) -> None:
    """Stop producers before the ingestor, so its final flush catches every accepted tick."""
    feeds = [task for name, task in tasks.items() if name.startswith("feed")]
    for feed in feeds:
        feed.cancel()
    for feed in feeds:
        with contextlib.suppress(asyncio.CancelledError):
            await feed
    services.ingestor.stop()
    ingestor = tasks["ingestor"]
    await asyncio.wait([ingestor], timeout=SHUTDOWN_GRACE_SECONDS)
    if not ingestor.done():
        ingestor.cancel()  # its final flush is stuck; _await_stopped reports it
    # What was committed just before shutdown goes out now if the bus takes it;
    # otherwise it stays staged for the next process to relay.
    with contextlib.suppress(Exception):
        await asyncio.wait_for(services.outbox.relay_once(), 5)


def strategy_engine(services: Services, **timings: Any) -> StrategyEngine:
    """The strategy engine on this process's stores; ``timings`` (poll and timer
    intervals, grace, mailbox capacity, replay cap) keep :class:`StrategyEngine`'s defaults unless
    given (tests tune them)."""
    return StrategyEngine(
        sessions=services.sessions,
        hub=services.hub,
        timeseries=services.timeseries,
        catalog=services.catalog,
        outbox=services.outbox,
        orders=services.orders,
        activity=services.activity,
        **{"max_replay_bars": services.settings.strategy_max_replay_bars, **timings},
    )


def alert_engine(services: Services, **timings: Any) -> AlertEngine:
    """The alert engine on this process's stores; ``timings`` (poll and timer
    intervals, grace, mailbox capacity) keep :class:`AlertEngine`'s defaults unless
    given (tests tune them)."""
    return AlertEngine(
        sessions=services.sessions,
        hub=services.hub,
        timeseries=services.timeseries,
        outbox=services.outbox,
        activity=services.activity,
        **timings,
    )


def webhook_dispatcher(services: Services, **timings: Any) -> WebhookDispatcher:
    """The webhook dispatcher with the settings' limits (``timings``: poll interval,
    concurrency, batch size, for tests)."""
    settings = services.settings
    return WebhookDispatcher(
        sessions=services.sessions,
        hub=services.hub,
        allow_private=settings.webhook_allow_private_addresses,
        timeout=settings.webhook_timeout_seconds,
        max_attempts=settings.webhook_max_attempts,
        backoff=settings.webhook_backoff_seconds,
        max_backoff=settings.webhook_max_backoff_seconds,
        activity=services.activity,
        **timings,
    )


def risk_policy(settings: Settings) -> RiskPolicy:
    return RiskPolicy(
        commission_rate=settings.commission_rate,
        max_order_notional=settings.max_order_notional,
        price_band_percent=settings.price_band_percent,
        market_order_buffer_percent=settings.market_order_buffer_percent,
        allow_short_selling=settings.allow_short_selling,
    )


def open_broadcast(url: str) -> Broadcast:
    """broadcaster for ``memory://``; our reconnecting backend for Redis (kept in the
    hub's reach, see :class:`BroadcastWithBackend`)."""
    if url.startswith(("redis://", "rediss://")):
        return BroadcastWithBackend(backend=RedisBroadcastBackend(url))
    return Broadcast(url)


async def _seed(sessions: SessionFactory, settings: Settings) -> None:
    async with sessions() as session:
        try:
            seeded = await seed_demo_data(
                session,
                demo_username=settings.demo_username,
                demo_password=settings.demo_password,
                start_cash=settings.start_cash,
            )
            if seeded:
                await session.commit()
                log.info("seeded demo data")
        except IntegrityError:
            # Another process seeded at the same moment; its data is as good as ours.
            await session.rollback()


async def _demo_user_id(sessions: SessionFactory, settings: Settings) -> int:
    async with sessions() as session:
        user = await user_repo.user_by_username(session, settings.demo_username)
        if user is None:
            raise RuntimeError(
                f"demo user {settings.demo_username!r} does not exist: run `quantgraph seed` "
                "or start once with SEED_DEMO_DATA=true"
            )
        return user.id


async def _open_timeseries(settings: Settings, engine: AsyncEngine) -> TimeSeriesStore:
    """Ticks go to TDengine when configured; everything relational stays in SQL."""
    if settings.tdengine_url:
        from storage.timeseries.tdengine import TDengineTimeSeriesStore

        store: TimeSeriesStore = await TDengineTimeSeriesStore.open(
            settings.tdengine_url,
            precision=settings.tdengine_precision,
            keep_days=settings.tdengine_keep_days,
            pool_size=settings.tdengine_pool_size,
            buffer_max_rows=settings.tdengine_buffer_rows,
            write_timeout=settings.tdengine_write_timeout_seconds,
        )
        breaker = CircuitBreaker(
            "tdengine",
            failure_threshold=settings.breaker_failure_threshold,
            reset_timeout=settings.breaker_reset_seconds,
        )
        timeout = (settings.db_statement_timeout_ms or 30_000) / 1000
        return GuardedTimeSeriesStore(store, breaker, timeout=timeout)
    return SqlTimeSeriesStore(engine)


async def _start_prices(services: Services) -> dict[str, Decimal]:
    """Resume the walk from the latest tick, or the last daily close for a fresh database."""
    codes = [spec.code for spec in services.catalog.all()]
    latest = await services.timeseries.latest_ticks(codes)
    prices = {code: tick.last for code, tick in latest.items()}
    missing = [code for code in codes if code not in prices]
    if missing:
        async with services.sessions() as session:
            bars = await symbol_repo.latest_daily_bars_by_codes(session, missing, 1)
        prices.update({code: rows[-1].close for code, rows in bars.items() if rows})
    return prices


@contextlib.asynccontextmanager
async def open_admin_services(settings: Settings | None = None) -> AsyncIterator[AuthService]:
    """Just enough of the runtime for CLI administration (no feed, matcher or listeners).

    It issues no tokens, so it needs no signing secret; it is on the servers' bus
    (``BROADCAST_URL``), so a role change or a removal reaches every running process.
    """
    settings = settings or Settings()
    async with open_database(settings) as database, Broadcast("memory://") as broadcast:
        sessions = database.sessions
        hub = Hub(broadcast)
        # Revocations and user changes made here are staged in the database;
        # the servers' relays put them on the cluster's bus.
        auth = AuthService(sessions, settings, hub, EventOutbox(sessions, hub), secret=None)
        try:
            yield auth
        finally:
            auth.close()


@contextlib.asynccontextmanager
async def open_instrument_admin(
    settings: Settings | None = None,
) -> AsyncIterator[tuple[InstrumentService, SessionFactory]]:
    """Instrument administration for the CLI (``import-symbols``), like
    :func:`open_admin_services`: changes are staged in the database and the servers'
    relays put them on the cluster's bus, so every running process reloads them."""
    settings = settings or Settings()
    async with open_database(settings) as database, Broadcast("memory://") as broadcast:
        sessions = database.sessions
        hub = Hub(broadcast)
        catalog = SymbolCatalog(sessions)
        await catalog.load()
        outbox = EventOutbox(sessions, hub)
        yield InstrumentService(sessions, catalog, outbox, start_cash=settings.start_cash), sessions


@contextlib.asynccontextmanager
async def open_storage(
    settings: Settings | None = None,
) -> AsyncIterator[tuple[SymbolCatalog, TimeSeriesStore]]:
    """The symbol catalogue and the time-series store, for offline imports."""
    settings = settings or Settings()
    async with open_database(settings) as database:
        catalog = SymbolCatalog(database.sessions)
        await catalog.load()
        store = await _open_timeseries(settings, database.engine)
        try:
            yield catalog, store
        finally:
            await store.close()
