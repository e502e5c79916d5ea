"""The in-memory alert index: which tick meets which alert, once or re-armed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from graphql_api.alerts.book import SymbolBook, Trigger, WatchedAlert
from graphql_api.alerts.conditions import AlertIndicator, AlertKind, AlertMode
from storage.timeseries import Bar, KlineInterval, Tick

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def alert(
    alert_id: int,
    kind: AlertKind,
    *,
    mode: AlertMode = AlertMode.ONCE,
    level: str | None = None,
    percent: str | None = None,
    window: int | None = None,
    indicator: AlertIndicator | None = None,
    period: int | None = None,
    expires_at: datetime | None = None,
) -> WatchedAlert:
    return WatchedAlert(
        id=alert_id,
        user_id=1,
        symbol="BTCUSDT",
        kind=kind,
        mode=mode,
        level=Decimal(level) if level is not None else None,
        percent=Decimal(percent) if percent is not None else None,
        window=timedelta(seconds=window) if window is not None else None,
        interval=KlineInterval.MINUTE_1 if indicator is not None else None,
        indicator=indicator,
        period=period,
        expires_at=expires_at,
        updated_at=T0,
    )


def tick(seconds: float, last: str) -> Tick:
    price = Decimal(last)
    return Tick("BTCUSDT", T0 + timedelta(seconds=seconds), price, price, price, Decimal(1))


def feed(book: SymbolBook, *prices: str, step: float = 1.0) -> list[list[int]]:
    """The ids fired by each tick, one tick per ``step`` seconds."""
    return [[t.alert.id for t in book.on_tick(tick(i * step, p), T0)] for i, p in enumerate(prices)]


def test_a_price_cross_fires_only_when_the_level_is_crossed_in_its_direction() -> None:
    book = SymbolBook("BTCUSDT")
    book.add(alert(1, AlertKind.PRICE_CROSSES_ABOVE, level="100"))
    book.add(alert(2, AlertKind.PRICE_CROSSES_BELOW, level="90"))
    book.add(alert(3, AlertKind.PRICE_CROSSES_ABOVE, level="120"))
    # already above 100 at the start: no cross until it comes back below and up again
    fired = feed(book, "105", "101", "99", "100", "110", "95", "89.5", "121")
    assert fired == [[], [], [], [1], [], [], [2], [3]]
    assert len(book) == 0  # ONCE alerts leave the book


def test_a_rearming_cross_fires_at_every_crossing_one_tick_firing_every_level_passed() -> None:
    book = SymbolBook("BTCUSDT")
    book.add(alert(1, AlertKind.PRICE_CROSSES_ABOVE, level="100", mode=AlertMode.REARM))
    book.add(alert(2, AlertKind.PRICE_CROSSES_ABOVE, level="101", mode=AlertMode.REARM))
    fired = feed(book, "99", "102", "103", "100.5", "101", "99", "100")
    assert fired == [[], [1, 2], [], [], [2], [], [1]]


def test_a_late_tick_moves_nothing() -> None:
    book = SymbolBook("BTCUSDT")
    book.add(alert(1, AlertKind.PRICE_CROSSES_ABOVE, level="100"))
    assert book.on_tick(tick(10, "99"), T0) == []
    assert book.on_tick(tick(5, "101"), T0) == []  # older than the last one seen
    assert [t.alert.id for t in book.on_tick(tick(11, "100"), T0)] == [1]


def test_an_expired_alert_does_not_fire() -> None:
    book = SymbolBook("BTCUSDT")
    book.add(alert(1, AlertKind.PRICE_CROSSES_ABOVE, level="100", expires_at=T0))
    assert feed(book, "99", "101") == [[], []]
    assert len(book) == 0


def test_a_move_fires_when_the_price_is_percent_away_from_the_windows_extreme() -> None:
    book = SymbolBook("BTCUSDT")
    book.add(alert(1, AlertKind.PRICE_RISES_PERCENT, percent="5", window=10))
    book.add(alert(2, AlertKind.PRICE_FALLS_PERCENT, percent="2", window=10, mode=AlertMode.REARM))
    # 100 -> 104.9 is +4.9 %; 105 is +5 %. The fall: 105 -> 102.9 is -2.0 %.
    fired = feed(book, "100", "104.9", "105", "103", "102.9", "102", "101")
    assert fired == [[], [], [1], [], [2], [], []]  # the REARM one sleeps for its window


def test_a_move_outside_the_window_does_not_count() -> None:
    book = SymbolBook("BTCUSDT")
    book.add(alert(1, AlertKind.PRICE_RISES_PERCENT, percent="5", window=10))
    fired = feed(book, "100", "101", "102", "103", "104", "105", step=4)
    # 105 at t=20 looks back to t>=10: the lowest there is 103 (t=12), +1.9 %
    assert fired == [[]] * 6


def test_a_rearmed_move_fires_again_after_its_window() -> None:
    book = SymbolBook("BTCUSDT")
    book.add(alert(1, AlertKind.PRICE_RISES_PERCENT, percent="1", window=5, mode=AlertMode.REARM))
    fired = feed(book, "100", "101", "102", "103", "104", "105", "106", "107", step=1)
    assert fired == [[], [1], [], [], [], [], [1], []]


def test_an_indicator_alert_fires_on_the_bar_whose_close_crosses_the_level() -> None:
    book = SymbolBook("BTCUSDT")
    cold = book.add(
        alert(
            1, AlertKind.INDICATOR_CROSSES_ABOVE, level="15", indicator=AlertIndicator.SMA, period=2
        )
    )
    assert cold is KlineInterval.MINUTE_1
    history = [bar(minute, close) for minute, close in enumerate([10, 10, 10])]
    book.warm(KlineInterval.MINUTE_1, history, T0 + timedelta(minutes=10))
    # SMA(2) of closes 10, 10 | 20 -> 15 (crosses: 10 < 15 <= 15) on bar 3
    triggers: list[Trigger] = []
    for minute, price in ((3, "20"), (4, "20"), (5, "20")):
        at = T0 + timedelta(minutes=minute, seconds=30)
        triggers += book.on_tick(
            Tick("BTCUSDT", at, Decimal(price), Decimal(price), Decimal(price), Decimal(1)), at
        )
    assert [(t.alert.id, t.at, t.price, t.value) for t in triggers] == [
        (1, T0 + timedelta(minutes=3), Decimal("20"), Decimal("15.000000"))
    ]


def bar(minute: int, close: int) -> Bar:
    price = Decimal(close)
    return Bar("BTCUSDT", T0 + timedelta(minutes=minute), price, price, price, price, Decimal(1), 1)


def test_removing_an_alert_takes_it_out_of_every_index() -> None:
    book = SymbolBook("BTCUSDT")
    book.add(alert(1, AlertKind.PRICE_CROSSES_ABOVE, level="100"))
    book.add(alert(2, AlertKind.PRICE_RISES_PERCENT, percent="1", window=60))
    book.add(
        alert(
            3,
            AlertKind.INDICATOR_CROSSES_BELOW,
            level="30",
            indicator=AlertIndicator.RSI,
            period=14,
        )
    )
    for alert_id in (1, 2, 3):
        book.remove(alert_id)
    assert len(book) == 0
    assert feed(book, "99", "200") == [[], []]
