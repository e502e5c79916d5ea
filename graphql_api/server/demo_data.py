"""Demo instruments, daily history and the demo user, seeded on first start.

Prices are a seeded geometric random walk, so every fresh database holds the
same history and examples in the README stay reproducible.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.auth.passwords import hash_password
from graphql_api.market.sessions import (
    ALWAYS_OPEN_UTC,
    OffSessionOrders,
    TradingSession,
    parse_hours,
)
from graphql_api.market.symbols import quantize
from graphql_api.platform.settings import DEFAULT_DEMO_PASSWORD
from graphql_api.trading.accounts import StartCash, open_account
from storage import models


@dataclass(frozen=True, slots=True)
class Instrument:
    code: str
    name: str
    exchange: str
    currency: str
    tick_size: str
    lot_size: str
    price: str
    session: TradingSession


# Demo symbols trade around the clock, so the README tour and `make serve` work at
# any hour of any day. Their trading days still end where the real ones do (DAY
# orders expire then): A-shares at 15:00 in Shanghai, crypto at 00:00 UTC. A symbol
# listed with real hours (docs/instruments.md, "Trading sessions") shows sessions
# at work.
A_SHARE_DEMO_SESSION = TradingSession.create("Asia/Shanghai", parse_hours("MON-SUN 15:00-15:00"))
CRYPTO_SESSION = ALWAYS_OPEN_UTC

INSTRUMENTS: tuple[Instrument, ...] = (
    Instrument(
        "600519.SH", "Kweichow Moutai", "SSE", "CNY", "0.01", "100", "1520.00", A_SHARE_DEMO_SESSION
    ),
    Instrument(
        "601318.SH", "Ping An Insurance", "SSE", "CNY", "0.01", "100", "52.30", A_SHARE_DEMO_SESSION
    ),
    Instrument(
        "600036.SH",
        "China Merchants Bank",
        "SSE",
        "CNY",
        "0.01",
        "100",
        "38.60",
        A_SHARE_DEMO_SESSION,
    ),
    Instrument("601398.SH", "ICBC", "SSE", "CNY", "0.01", "100", "6.45", A_SHARE_DEMO_SESSION),
    Instrument(
        "600276.SH",
        "Jiangsu Hengrui Medicine",
        "SSE",
        "CNY",
        "0.01",
        "100",
        "47.80",
        A_SHARE_DEMO_SESSION,
    ),
    Instrument(
        "600900.SH",
        "China Yangtze Power",
        "SSE",
        "CNY",
        "0.01",
        "100",
        "28.90",
        A_SHARE_DEMO_SESSION,
    ),
    Instrument(
        "601012.SH",
        "LONGi Green Energy",
        "SSE",
        "CNY",
        "0.01",
        "100",
        "17.20",
        A_SHARE_DEMO_SESSION,
    ),
    Instrument(
        "000001.SZ", "Ping An Bank", "SZSE", "CNY", "0.01", "100", "11.35", A_SHARE_DEMO_SESSION
    ),
    Instrument(
        "000858.SZ", "Wuliangye Yibin", "SZSE", "CNY", "0.01", "100", "132.50", A_SHARE_DEMO_SESSION
    ),
    Instrument(
        "000333.SZ", "Midea Group", "SZSE", "CNY", "0.01", "100", "71.40", A_SHARE_DEMO_SESSION
    ),
    Instrument("300750.SZ", "CATL", "SZSE", "CNY", "0.01", "100", "245.00", A_SHARE_DEMO_SESSION),
    Instrument("002594.SZ", "BYD", "SZSE", "CNY", "0.01", "100", "268.00", A_SHARE_DEMO_SESSION),
    Instrument(
        "000651.SZ", "Gree Electric", "SZSE", "CNY", "0.01", "100", "41.20", A_SHARE_DEMO_SESSION
    ),
    Instrument(
        "002415.SZ", "Hikvision", "SZSE", "CNY", "0.01", "100", "30.15", A_SHARE_DEMO_SESSION
    ),
    Instrument(
        "BTCUSDT",
        "Bitcoin / Tether",
        "BINANCE",
        "USDT",
        "0.01",
        "0.00001",
        "95000.00",
        CRYPTO_SESSION,
    ),
    Instrument(
        "ETHUSDT", "Ether / Tether", "BINANCE", "USDT", "0.01", "0.0001", "3400.00", CRYPTO_SESSION
    ),
    Instrument(
        "SOLUSDT", "Solana / Tether", "BINANCE", "USDT", "0.01", "0.001", "185.00", CRYPTO_SESSION
    ),
    Instrument(
        "BNBUSDT", "BNB / Tether", "BINANCE", "USDT", "0.01", "0.001", "620.00", CRYPTO_SESSION
    ),
    Instrument(
        "XRPUSDT", "XRP / Tether", "BINANCE", "USDT", "0.0001", "0.1", "2.1500", CRYPTO_SESSION
    ),
    Instrument(
        "DOGEUSDT",
        "Dogecoin / Tether",
        "BINANCE",
        "USDT",
        "0.00001",
        "1",
        "0.32000",
        CRYPTO_SESSION,
    ),
    Instrument(
        "ADAUSDT", "Cardano / Tether", "BINANCE", "USDT", "0.0001", "0.1", "0.9800", CRYPTO_SESSION
    ),
)

HISTORY_DAYS = 365


def daily_history(instrument: Instrument, end: date, rng: random.Random) -> list[models.DailyBar]:
    """About a year of bars ending the day before ``end``; A-shares skip weekends."""
    tick = Decimal(instrument.tick_size)
    lot = Decimal(instrument.lot_size)
    crypto = instrument.exchange == "BINANCE"
    volatility = 0.035 if crypto else 0.018
    days = [end - timedelta(days=offset) for offset in range(HISTORY_DAYS, 0, -1)]
    if not crypto:
        days = [day for day in days if day.weekday() < 5]
    # Walk backwards from today's reference price so the history ends near it.
    price = float(instrument.price)
    closes: list[float] = []
    for _ in days:
        closes.append(price)
        price /= 1 + rng.gauss(0.0002, volatility)
    closes.reverse()
    bars: list[models.DailyBar] = []
    previous = closes[0]
    for day, close in zip(days, closes, strict=True):
        opening = previous * (1 + rng.gauss(0, volatility / 3))
        high = max(opening, close) * (1 + abs(rng.gauss(0, volatility / 2)))
        low = min(opening, close) * (1 - abs(rng.gauss(0, volatility / 2)))
        volume = lot * Decimal(rng.randint(2_000, 200_000))
        o, h, lo_, c = (quantize(Decimal(repr(v)), tick) for v in (opening, high, low, close))
        bars.append(
            models.DailyBar(
                symbol_code=instrument.code,
                day=day,
                open=o,
                high=max(o, h, lo_, c),
                low=min(o, h, lo_, c),
                close=c,
                volume=volume,
            )
        )
        previous = close
    return bars


async def seed_demo_data(
    session: AsyncSession,
    *,
    demo_username: str,
    demo_password: str = DEFAULT_DEMO_PASSWORD,
    start_cash: StartCash = Decimal("1000000"),
    seed: int = 7,
) -> bool:
    """Insert instruments, history and the demo user into an empty database.

    Returns False (and changes nothing) when symbols already exist, so restarts
    and concurrent starts of several processes are harmless.
    """
    if await session.scalar(select(func.count()).select_from(models.Symbol)):
        return False
    rng = random.Random(seed)
    today = datetime.now(UTC).date()
    for instrument in INSTRUMENTS:
        session.add(
            models.Symbol(
                code=instrument.code,
                name=instrument.name,
                exchange=instrument.exchange,
                currency=instrument.currency,
                tick_size=Decimal(instrument.tick_size),
                lot_size=Decimal(instrument.lot_size),
                tradable=True,
                trading_session=instrument.session.to_json(),
                off_session_orders=OffSessionOrders.REFUSE.value,
            )
        )
    await session.flush()
    for instrument in INSTRUMENTS:
        session.add_all(daily_history(instrument, today, rng))
    user = await session.scalar(
        select(models.User).where(models.User.username_key == models.username_key(demo_username))
    )
    if user is None:
        user = models.User(
            username=demo_username,
            password_hash=hash_password(demo_password),
            role="TRADER",
            created_at=datetime.now(UTC),
        )
        session.add(user)
        await session.flush()
    await open_account(session, user.id, sorted({i.currency for i in INSTRUMENTS}), start_cash)
    await session.flush()
    return True
