"""Per-tick alert evaluation cost with 10,000 active alerts on one symbol.

The book of one symbol (:class:`graphql_api.alerts.book.SymbolBook`) holds
10,000 REARM alerts (so the book keeps its size while ticks fire some):
6,000 price crosses (half above, half below, levels spread over +-20 % of the
price), 2,000 moves (rises and falls of 1 to 10 % within 60 s, 5 min, 15 min
and 1 h) and 2,000 indicator crosses (RSI/SMA/EMA of periods 5 to 50 on 1m
bars). It times ``SymbolBook.on_tick`` — everything the engine does per tick
before storing a firing — over a random walk of ticks one second apart
(so a 1m bar closes every 60 ticks and the indicators are evaluated then),
and, as the reference, a scan that tests every price-cross alert on every tick.
Medians of per-tick times over the walk, in microseconds.

    PYTHONPATH=. .venv/bin/python -m bench.alert_book

Writes bench/results/alert_book.json.
"""

from __future__ import annotations

import itertools
import json
import os
import platform
import random
import statistics
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from graphql_api.alerts.book import SymbolBook, WatchedAlert
from graphql_api.alerts.conditions import AlertIndicator, AlertKind, AlertMode
from storage.timeseries import Bar, KlineInterval, Tick

RESULTS = Path(__file__).parent / "results" / "alert_book.json"
T0 = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
PRICE = Decimal("100000.00")
CROSSES, MOVES, INDICATORS = 6_000, 2_000, 2_000
TICKS = 3_000


def alerts(seed: int) -> list[WatchedAlert]:
    rng = random.Random(seed)
    made: list[WatchedAlert] = []

    def add(kind: AlertKind, **fields: object) -> None:
        values: dict[str, object] = {
            "level": None,
            "percent": None,
            "window": None,
            "interval": None,
            "indicator": None,
            "period": None,
        }
        values.update(fields)
        made.append(
            WatchedAlert(
                id=len(made) + 1,
                user_id=1 + len(made) % 100,
                symbol="BTCUSDT",
                kind=kind,
                mode=AlertMode.REARM,
                expires_at=None,
                updated_at=T0,
                **values,  # type: ignore[arg-type]
            )
        )

    for index in range(CROSSES):
        level = (PRICE * Decimal(rng.uniform(0.8, 1.2))).quantize(Decimal("0.01"))
        kind = AlertKind.PRICE_CROSSES_ABOVE if index % 2 else AlertKind.PRICE_CROSSES_BELOW
        add(kind, level=level)
    windows = [timedelta(seconds=s) for s in (60, 300, 900, 3600)]
    for index in range(MOVES):
        kind = AlertKind.PRICE_RISES_PERCENT if index % 2 else AlertKind.PRICE_FALLS_PERCENT
        add(
            kind,
            percent=Decimal(rng.randint(100, 1000)) / 100,
            window=windows[index % len(windows)],
        )
    kinds = list(AlertIndicator)
    for index in range(INDICATORS):
        indicator = kinds[index % len(kinds)]
        if indicator is AlertIndicator.RSI:
            level = Decimal(rng.randint(10, 90))
        else:
            level = (PRICE * Decimal(rng.uniform(0.95, 1.05))).quantize(Decimal("0.01"))
        kind = AlertKind.INDICATOR_CROSSES_ABOVE if index % 2 else AlertKind.INDICATOR_CROSSES_BELOW
        add(
            kind,
            level=level,
            interval=KlineInterval.MINUTE_1,
            indicator=indicator,
            period=5 + index % 46,
        )
    return made


def walk(seed: int, count: int) -> list[Tick]:
    rng = random.Random(seed)
    price, ticks = PRICE, []
    for index in range(count):
        price = max(Decimal("1.00"), price + Decimal(rng.randint(-2000, 2000)) / 100)
        ticks.append(
            Tick("BTCUSDT", T0 + timedelta(seconds=index), price, price, price, Decimal(1))
        )
    return ticks


def history() -> list[Bar]:
    return [
        Bar("BTCUSDT", T0 - timedelta(minutes=200 - m), PRICE, PRICE, PRICE, PRICE, Decimal(1), 1)
        for m in range(200)
    ]


def scan(crosses: list[WatchedAlert], before: Decimal, after: Decimal) -> int:
    """The reference: test every price-cross alert."""
    met = 0
    for alert in crosses:
        level = alert.level
        assert level is not None
        if alert.kind is AlertKind.PRICE_CROSSES_ABOVE:
            met += before < level <= after
        else:
            met += after <= level < before
    return met


def main() -> None:
    made = alerts(7)
    book = SymbolBook("BTCUSDT")
    for alert in made:
        book.add(alert)
    book.warm(KlineInterval.MINUTE_1, history(), T0)
    ticks = walk(11, TICKS)
    per_tick: list[float] = []
    closing: list[float] = []
    fired = 0
    for tick in ticks:
        started = time.perf_counter_ns()
        triggers = book.on_tick(tick, tick.time)
        elapsed = (time.perf_counter_ns() - started) / 1000
        fired += len(triggers)
        (closing if tick.time.second == 0 else per_tick).append(elapsed)
    assert len(book) == len(made), "REARM alerts stay in the book"
    crosses = [a for a in made if a.kind.is_price_cross]
    reference: list[float] = []
    for before, tick in itertools.pairwise(ticks):
        started = time.perf_counter_ns()
        scan(crosses, before.last, tick.last)
        reference.append((time.perf_counter_ns() - started) / 1000)
    result = {
        "command": "PYTHONPATH=. python -m bench.alert_book",
        "active_alerts": len(made),
        "price_crosses": CROSSES,
        "moves": MOVES,
        "indicator_alerts": INDICATORS,
        "ticks": len(ticks),
        "firings": fired,
        "firings_per_tick": round(fired / len(ticks), 3),
        "median_us_per_tick": round(statistics.median(per_tick), 1),
        "p99_us_per_tick": round(sorted(per_tick)[int(len(per_tick) * 0.99)], 1),
        "median_us_per_bar_closing_tick": round(statistics.median(closing), 1),
        "reference_scan_of_price_crosses_median_us": round(statistics.median(reference), 1),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
