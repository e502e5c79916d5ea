"""Build the market-data sources ``MARKET_FEED`` names and run each under supervision,
on exactly one process of the cluster (leader-elected per source, like the matcher).

Sources own their symbols: the replay's symbols are left out of the random walk,
so two sources never quote one symbol.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from graphql_api.market.ingest import TickIngestor
from graphql_api.market.simulated_feed import RandomWalk
from graphql_api.market.sources import (
    Backoff,
    DailyBarSource,
    MarketDataSource,
    SourceConfigError,
    supervise,
)
from graphql_api.market.sources.binance import BinanceEndpoints, BinanceSource
from graphql_api.market.sources.replay import (
    ReplayClock,
    ReplaySource,
    read_csv_file,
    read_stored_recording,
)
from graphql_api.market.sources.simulated import SimulatedSource
from graphql_api.market.value_ranges import TimeWindow
from graphql_api.platform.leader import Leadership
from graphql_api.platform.resilience import CircuitBreaker
from graphql_api.platform.settings import Settings
from graphql_api.services import Services
from storage.timeseries import Tick


async def build_sources(
    services: Services, start_prices: Callable[[], Awaitable[dict[str, Decimal]]]
) -> list[MarketDataSource]:
    """The sources to run; the walk quotes only the symbols no other source owns."""
    settings = services.settings
    names = settings.market_feeds
    sources: list[MarketDataSource] = []
    if "binance" in names:
        sources.append(
            BinanceSource(
                settings.binance_symbol_list,
                BinanceEndpoints(settings.binance_ws_url, settings.binance_rest_url),
                services.catalog.cached,
                stall_seconds=settings.binance_stall_seconds,
                max_connection_seconds=settings.binance_max_connection_seconds,
                max_tick_age_years=settings.max_tick_age_years,
                max_future=timedelta(seconds=settings.max_tick_future_seconds),
            )
        )
    if "replay" in names:
        replay = await replay_source(services)
        if settings.replay_ignore_sessions:
            services.catalog.trade_around_the_clock(replay.symbols())
        sources.append(replay)
    owned: set[str] = set()
    for source in sources:
        twice = owned & source.symbols()
        if twice:
            raise RuntimeError(
                f"MARKET_FEED: {', '.join(sorted(twice))} would be quoted by two sources "
                f"({source.name} and another); one source per symbol"
            )
        owned |= source.symbols()
    if "simulated" in names:
        prices = {code: p for code, p in (await start_prices()).items() if code not in owned}
        walk = RandomWalk(
            [spec for spec in services.catalog.all() if spec.code not in owned],
            prices,
            seed=settings.feed_seed,
            ignore_sessions=settings.feed_ignore_sessions,
            current=services.catalog.cached,
        )
        sources.append(SimulatedSource(walk, ticks_per_second=settings.feed_ticks_per_second))
    return sources


async def replay_source(services: Services, *, clock: ReplayClock | None = None) -> ReplaySource:
    """The replay of ``REPLAY_FILE`` (read and checked now, off the event loop) or of
    the stored ticks of ``REPLAY_SYMBOLS``. A bad file gives a source that fails at
    once with the file's problems (reported, not retried), not a server that will
    not start. ``clock``: the replay's time source (tests pass one they drive)."""
    settings = services.settings
    speed, loop = settings.replay_speed_factor, settings.replay_loop
    if settings.replay_file is None:
        assert settings.replay_from is not None and settings.replay_to is not None
        symbols = settings.replay_symbol_list
        start, end = settings.replay_from, settings.replay_to
        timeseries = services.timeseries

        async def from_store() -> list[Tick]:
            return await read_stored_recording(timeseries, symbols, start, end)

        return ReplaySource(from_store, frozenset(symbols), speed=speed, loop=loop, clock=clock)
    specs = {spec.code: spec for spec in services.catalog.all()}
    window = TimeWindow.around(datetime.now(UTC), settings.max_tick_age_years, timedelta(seconds=0))
    path = settings.replay_file
    try:
        ticks = await asyncio.to_thread(read_csv_file, path, specs, window)
    except SourceConfigError as error:
        problem = error

        async def failing() -> list[Tick]:
            raise problem

        return ReplaySource(failing, frozenset(), speed=speed, loop=loop, clock=clock)

    async def recorded() -> list[Tick]:
        return ticks

    return ReplaySource(
        recorded, frozenset(tick.symbol for tick in ticks), speed=speed, loop=loop, clock=clock
    )


def source_task(
    source: MarketDataSource, services: Services, settings: Settings
) -> asyncio.Task[None]:
    """Run ``source`` under its own leadership (``feed-<name>``), breaker and backoff.

    A source that ended or cannot run keeps its leadership (and its task) until the
    process stops: otherwise the next election would replay it from the start, on
    this process or another.
    """
    ingestor: TickIngestor = services.ingestor
    breaker = CircuitBreaker(
        f"source-{source.name}",
        failure_threshold=settings.breaker_failure_threshold,
        reset_timeout=settings.breaker_reset_seconds,
    )
    backoff = Backoff(maximum=settings.source_backoff_max_seconds)

    async def work() -> None:
        await supervise(source, ingestor, breaker=breaker, backoff=backoff)
        await asyncio.Event().wait()

    name = f"feed-{source.name}"
    leadership = Leadership(services.engine, name, retry_interval=settings.leader_lease_seconds / 5)
    services.activity.leaders[name] = leadership
    return asyncio.create_task(leadership.run(work), name=name)


SOURCE_NAMES = ("simulated", "replay", "binance")


def history_source(name: str, settings: Settings, bars_file: Path | None) -> DailyBarSource:
    """The source ``name`` as ``quantgraph backfill-bars`` uses it: only for its daily bars,
    so it is built without its live settings (no symbols, no replay recording).
    :class:`SourceConfigError` when that source keeps no history."""
    source: MarketDataSource
    if name == "binance":
        source = BinanceSource(
            [], BinanceEndpoints(settings.binance_ws_url, settings.binance_rest_url), lambda _: None
        )
    elif name == "replay":

        async def nothing() -> list[Tick]:
            return []

        source = ReplaySource(nothing, frozenset(), speed=None, bars_file=bars_file)
    elif name == "simulated":
        source = SimulatedSource(RandomWalk([], {}, seed=0), ticks_per_second=1)
    else:
        raise SourceConfigError(f"no market-data source named {name!r}")
    if not isinstance(source, DailyBarSource):
        raise SourceConfigError(
            f"source {name} provides no daily bars (it has no history); "
            "sources that do: replay, binance"
        )
    return source
