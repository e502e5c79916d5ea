"""Backtests: hand-checked fills and cash, and exact-accounting invariants on random markets."""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graphql_api.strategies.backtest import BacktestResult, Bars, run_backtest
from graphql_api.strategies.rules import InvalidParametersError

D = Decimal
START = datetime(2024, 1, 1, tzinfo=UTC)

# SMA(1) vs SMA(3) on these closes (see strategies/rules/test_signals.py): sell on bar 3
# (ignored when long-only and flat), buy on bar 5, sell on bar 7, buy on bar 9 (the last
# bar: ignored).
CLOSES = ["10", "10", "10", "9", "8", "12", "13", "7", "8", "9"]
OPENS = ["10", "10", "10", "9.5", "8.5", "11", "12.5", "12", "7.5", "8.5"]
CROSS = {"fast": 1, "slow": 3}


def daily_bars(opens: list[str], closes: list[str]) -> Bars:
    times = [START + timedelta(days=i) for i in range(len(closes))]
    o = [D(x) for x in opens]
    c = [D(x) for x in closes]
    return Bars.from_decimals(
        times, o, [max(a, b) + 1 for a, b in zip(o, c, strict=True)], [D("0.01")] * len(c), c
    )


def backtest(bars: Bars, **overrides: object) -> BacktestResult:
    settings_: dict[str, object] = {
        "initial_cash": D(1000),
        "commission_rate": D("0.001"),
        "lot_size": D(1),
        "periods_per_year": 252.0,
    }
    settings_.update(overrides)
    return run_backtest(bars, "SMA_CROSS", CROSS, **settings_)  # type: ignore[arg-type]


def test_long_only_round_trip_by_hand() -> None:
    result = backtest(daily_bars(OPENS, CLOSES))

    # Buy signal on bar 5 fills at bar 6's open, 12.5: floor(1000 / (12.5 * 1.001)) = 79 shares,
    # notional 987.5, commission 0.9875, cash left 11.5125.
    # Sell signal on bar 7 fills at bar 8's open, 7.5: notional 592.5, commission 0.5925.
    [trade] = result.trades
    assert (trade.side, trade.quantity) == ("LONG", D(79))
    assert (trade.entry_index, trade.entry_price) == (6, D("12.5"))
    assert (trade.exit_index, trade.exit_price) == (8, D("7.5"))
    assert trade.entry_time == START + timedelta(days=6)
    assert trade.exit_time == START + timedelta(days=8)
    assert trade.commission == D("0.9875") + D("0.5925")
    assert trade.pnl == D(-5 * 79) - D("1.58")
    assert trade.return_pct == pytest.approx(-396.58 / 987.5 * 100)
    assert result.final_equity == D("11.5125") + D("592.5") - D("0.5925")
    assert result.final_equity == D(1000) + trade.pnl
    assert result.total_commission == D("1.58")

    # Equity at each close: flat 1000 until the fill; 11.5125 + 79 * close while held.
    expected_equity = [1000.0] * 6 + [11.5125 + 79 * 13, 11.5125 + 79 * 7, 603.42, 603.42]
    np.testing.assert_allclose(result.equity, expected_equity, rtol=1e-12)
    assert result.trade_count == 1
    assert result.win_rate_pct == 0.0
    assert result.exposure_pct == pytest.approx(20.0)  # held at the closes of bars 6 and 7
    assert result.total_return_pct == pytest.approx(-39.658)
    peak, trough = 11.5125 + 79 * 13, 11.5125 + 79 * 7
    assert result.max_drawdown_pct == pytest.approx((peak - trough) / peak * 100)


def test_stop_and_reverse_when_shorts_are_allowed() -> None:
    result = backtest(daily_bars(OPENS, CLOSES), allow_short=True)

    short, long_, last = result.trades
    # Sell on bar 3 -> short at 8.5: floor(1000 / 8.5085) = 117; proceeds 994.5 - 0.9945.
    # Buy on bar 5 -> cover at 12.5 (1462.5 + 1.4625) and go long with what is left.
    assert (short.side, short.quantity, short.entry_price, short.exit_price) == (
        "SHORT",
        D(117),
        D("8.5"),
        D("12.5"),
    )
    assert short.pnl == D(-4 * 117) - D("0.9945") - D("1.4625")
    # Cash after covering: 1000 - 470.457 = 529.543 -> floor(529.543 / 12.5125) = 42 shares.
    assert (long_.side, long_.quantity) == ("LONG", D(42))
    assert (long_.entry_index, long_.exit_index) == (6, 8)
    assert long_.pnl == D(-5 * 42) - D("0.525") - D("0.315")
    # Sell on bar 7 -> out of the long and short again at 7.5 with cash 318.703:
    # floor(318.703 / 7.5075) = 42. The buy on the last bar is ignored, so the short is
    # covered at the last close, 9.
    assert (last.side, last.quantity, last.exit_index, last.exit_price) == (
        "SHORT",
        D(42),
        9,
        D(9),
    )
    assert last.pnl == D("-1.5") * 42 - D("0.315") - D("0.378")
    assert result.final_equity == D("255.01")
    assert result.final_equity == D(1000) + short.pnl + long_.pnl + last.pnl
    # Short from bar 4's open: marked at bar 4's close as cash 1993.5055 - 117 * 8.
    assert result.equity[4] == pytest.approx(1993.5055 - 117 * 8)
    assert result.exposure_pct == pytest.approx(60.0)  # bars 4 to 9


def test_fixed_quantity() -> None:
    result = backtest(daily_bars(OPENS, CLOSES), fixed_quantity=D(10))
    [trade] = result.trades
    assert trade.quantity == D(10)
    assert trade.commission == D("0.125") + D("0.075")
    assert result.final_equity == D(1000) - D(50) - D("0.2")


def test_fixed_quantity_beyond_the_cash_is_not_traded() -> None:
    result = backtest(daily_bars(OPENS, CLOSES), fixed_quantity=D(80))  # 80 * 12.5 > 1000
    assert result.trades == ()
    assert result.final_equity == D(1000)


def test_no_signals_no_trades_flat_equity() -> None:
    flat = ["10"] * 50
    result = backtest(daily_bars(flat, flat))
    assert result.trades == ()
    assert result.final_equity == D(1000)
    assert (result.equity == 1000.0).all()
    assert result.total_return_pct == 0.0
    assert result.sharpe == 0.0
    assert result.max_drawdown_pct == 0.0
    assert result.exposure_pct == 0.0
    assert result.win_rate_pct is None
    assert result.cagr_pct == 0.0


# A cross above on bar 3 (close 11 vs SMA(3) 31/3) and a steady rise afterwards.
RISING_CLOSES = ["10", "10", "10", "11", "12", "13"]


def test_a_position_still_open_is_closed_at_the_last_close() -> None:
    bars = daily_bars(["10", "10", "10", "10.5", "11.5", "12.5"], RISING_CLOSES)
    result = backtest(bars, commission_rate=D(0))
    [trade] = result.trades
    # Filled at bar 4's open, 11.5: floor(1000 / 11.5) = 86 shares, 11 cash left.
    assert (trade.quantity, trade.entry_price) == (D(86), D("11.5"))
    assert (trade.exit_index, trade.exit_price, trade.exit_time) == (
        5,
        D(13),
        START + timedelta(days=5),
    )
    assert trade.pnl == D("1.5") * 86
    assert result.final_equity == D(1129)
    assert result.equity[-1] == 1129.0
    assert result.win_rate_pct == 100.0
    assert result.exposure_pct == pytest.approx(2 / 6 * 100)


def test_default_sizing_rounds_down_to_whole_lots() -> None:
    bars = daily_bars(["10", "10", "10", "10.5", "11.5", "12.5"], RISING_CLOSES)
    result = backtest(bars, initial_cash=D(10_000), lot_size=D(100))
    [trade] = result.trades
    # 10000 / (11.5 * 1.001) = 868.7 shares -> 8 lots of 100.
    assert trade.quantity == D(800)
    assert trade.commission == D("9.2") + D("10.4")
    assert result.final_equity == D(10_000) + D("1.5") * 800 - D("19.6")


@pytest.mark.parametrize(("cash", "expected"), [("1001", 100), ("1000.99", 99)])
def test_default_sizing_spends_up_to_the_last_cent_exactly(cash: str, expected: int) -> None:
    # At a fill price of 10 with 0.1% commission, 100 shares cost exactly 1001.
    bars = daily_bars(["10", "10", "10", "10.5", "10", "12.5"], RISING_CLOSES)
    result = backtest(bars, initial_cash=D(cash))
    assert result.trades[0].quantity == D(expected)


def test_commission_is_rounded_half_up_to_eight_places() -> None:
    bars = daily_bars(["0.25"] * 5, ["0.25", "0.25", "0.25", "0.3", "0.3"])
    result = backtest(bars, commission_rate=D("0.0000001"), fixed_quantity=D(1))
    [trade] = result.trades
    # Entry 0.25 * 1e-7 = 2.5e-8 -> 3e-8 (half up; half even would give 2e-8); exit 0.3 -> 3e-8.
    assert trade.commission == D("0.00000006")
    assert trade.pnl == D("0.04999994")
    assert result.final_equity == D("1000.04999994")


def test_fractional_lots_for_crypto() -> None:
    bars = daily_bars(["10", "10", "10", "10.5", "11.5", "12.5"], RISING_CLOSES)
    result = backtest(bars, commission_rate=D(0), lot_size=D("0.001"))
    # 1000 / 11.5 = 86.9565... -> 86.956 in lots of 0.001
    assert result.trades[0].quantity == D("86.956")


def test_bars_from_float_arrays_fill_at_the_quoted_prices() -> None:
    times = np.array([np.datetime64("2024-01-01T00:00") + np.timedelta64(i, "m") for i in range(6)])
    closes = [10.0, 10.0, 10.0, 11.0, 12.0, 13.0]
    opens = [10.0, 10.0, 10.0, 10.5, 11.1, 12.5]
    bars = Bars.from_arrays(times, opens, [14.0] * 6, [9.0] * 6, closes)
    result = backtest(bars, commission_rate=D(0))
    assert result.trades[0].entry_price == D("11.1")  # not 11.0999999999999996447...
    assert result.trades[0].entry_time == datetime(2024, 1, 1, 0, 4, tzinfo=UTC)


def test_settings_and_bars_are_checked() -> None:
    bars = daily_bars(OPENS, CLOSES)
    with pytest.raises(ValueError, match="multiple of lot_size"):
        backtest(bars, lot_size=D(10), fixed_quantity=D(15))
    with pytest.raises(ValueError, match="commission_rate"):
        backtest(bars, commission_rate=D(1))
    with pytest.raises(ValueError, match="initial_cash"):
        backtest(bars, initial_cash=D(0))
    with pytest.raises(InvalidParametersError):
        run_backtest(
            bars,
            "SMA_CROSS",
            {"fast": 5, "slow": 5},
            initial_cash=D(1000),
            commission_rate=D(0),
            lot_size=D(1),
            periods_per_year=252,
        )
    with pytest.raises(ValueError, match="timezone-aware"):
        Bars.from_arrays([datetime(2024, 1, 1)], [1.0], [1.0], [1.0], [1.0])
    with pytest.raises(ValueError, match="strictly increasing"):
        Bars.from_arrays([START, START], [1.0] * 2, [1.0] * 2, [1.0] * 2, [1.0] * 2)
    with pytest.raises(ValueError, match="positive"):
        Bars.from_arrays([START], [0.0], [1.0], [1.0], [1.0])


def test_times_in_other_zones_are_converted_to_utc() -> None:
    tokyo = timezone(timedelta(hours=9))
    bars = Bars.from_arrays([datetime(2024, 1, 1, 9, tzinfo=tokyo)], [1.0], [1.0], [1.0], [1.0])
    assert bars.time_at(0) == datetime(2024, 1, 1, 0, tzinfo=UTC)


# Random markets: tick-grid random walks, opens one small move away from the previous close.
@st.composite
def markets(draw: st.DrawFn) -> Bars:
    start = draw(st.integers(200, 20_000))
    # Long enough for every strategy below to warm up and trade several times.
    moves = draw(st.lists(st.integers(-30, 30), min_size=40, max_size=160))
    gaps = draw(st.lists(st.integers(-10, 10), min_size=len(moves) + 1, max_size=len(moves) + 1))
    closes = np.maximum(start + np.cumsum([0, *moves]), 1)
    opens = np.maximum(np.concatenate([[closes[0]], closes[:-1]]) + gaps, 1)
    times = [START + timedelta(hours=i) for i in range(closes.size)]
    as_price = [D(int(x)) / 100 for x in opens], [D(int(x)) / 100 for x in closes]
    highs = [max(o, c) for o, c in zip(*as_price, strict=True)]
    lows = [min(o, c) for o, c in zip(*as_price, strict=True)]
    return Bars.from_decimals(times, as_price[0], highs, lows, as_price[1])


strategies = st.sampled_from(
    [
        ("SMA_CROSS", {"fast": 2, "slow": 5}),
        ("EMA_CROSS", {"fast": 3, "slow": 8}),
        ("RSI_REVERSION", {"period": 5, "lower": 40, "upper": 60}),
        ("MACD_CROSS", {"fast": 3, "slow": 7, "signal": 3}),
        ("BOLLINGER_BREAKOUT", {"period": 5, "stddev": 1.0}),
    ]
)


@settings(max_examples=150, deadline=None)
@given(
    markets(),
    strategies,
    st.sampled_from([D(0), D("0.0003"), D("0.001"), D("0.0025")]),
    st.sampled_from([D(1), D(10), D("0.001")]),
    st.booleans(),
    st.sampled_from([None, D(5)]),
)
def test_accounting_invariants(
    bars: Bars,
    strategy: tuple[str, dict[str, object]],
    rate: Decimal,
    lot: Decimal,
    allow_short: bool,
    fixed: Decimal | None,
) -> None:
    kind, params = strategy
    initial = D("10000")
    result = run_backtest(
        bars,
        kind,
        params,
        initial_cash=initial,
        commission_rate=rate,
        lot_size=lot,
        periods_per_year=24 * 365,
        allow_short=allow_short,
        fixed_quantity=None if fixed is None else fixed * lot,
    )
    trades = result.trades
    last = len(bars) - 1

    # Money is exact: the final equity is the initial cash plus every trade's P&L.
    assert result.final_equity == initial + sum((t.pnl for t in trades), D(0))
    assert result.total_commission == sum((t.commission for t in trades), D(0))
    for trade in trades:
        direction = 1 if trade.side == "LONG" else -1
        gross = direction * (trade.exit_price - trade.entry_price) * trade.quantity
        assert trade.pnl == gross - trade.commission
        assert trade.quantity > 0 and trade.quantity % lot == 0
        assert trade.entry_price == bars.open_price(trade.entry_index)
        assert trade.exit_price in (bars.open_price(trade.exit_index), bars.close_price(last))
        assert allow_short or trade.side == "LONG"
    for earlier, later in itertools.pairwise(trades):
        assert earlier.exit_index <= later.entry_index

    # The vectorised equity curve, rebuilt trade by trade: realised P&L so far plus the
    # open trade marked at the close, less its entry commission.
    closes = [float(bars.close_price(i)) for i in range(len(bars))]
    for t in range(len(bars)):
        expected = float(initial)
        for trade in trades:
            direction = 1 if trade.side == "LONG" else -1
            if trade.exit_index <= t:
                expected += float(trade.pnl)
            elif trade.entry_index <= t:
                entry_fee = float(trade.quantity * trade.entry_price * rate)
                expected += direction * (closes[t] - float(trade.entry_price)) * float(
                    trade.quantity
                ) - round(entry_fee, 8)
        assert result.equity[t] == pytest.approx(expected, rel=1e-9, abs=1e-6), t

    assert result.trade_count == len(trades)
    assert 0.0 <= result.exposure_pct <= 100.0
    assert result.max_drawdown_pct >= 0.0
    assert math.isfinite(result.sharpe)
