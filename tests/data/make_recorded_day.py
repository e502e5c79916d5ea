"""Write ``recorded_day_BTCUSDT.csv.gz``: one day of BTCUSDT ticks for the backtest/live test.

The day is SYNTHETIC. It is not exchange data: there is no network where the
fixture was made, so a seeded random process produced it, and running this
script again writes the same file byte for byte. What makes it a useful
stand-in for a recorded day:

- irregular spacing, as a real feed has: exponential gaps (mean 20 s, at
  least 0.2 s), so a minute holds anywhere from none to a dozen ticks, and a
  few buckets have no tick at all;
- prices on BTCUSDT's grid (0.01), a bid/ask spread of 0.01 to 2.00 around
  the last price, volumes on the lot grid (0.00001);
- regimes that change every one to three hours (calm, volatile, trending up
  or down) plus rare jumps, so every strategy kind finds several crossings
  on 5-minute bars: trends push RSI to its bands, jumps break the Bollinger
  bands.

Run from the repository root: ``python tests/data/make_recorded_day.py``.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import random
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

SYMBOL = "BTCUSDT"
DAY = datetime(2025, 11, 3, tzinfo=UTC)
SEED = 20251110
MEAN_GAP_SECONDS = 20.0
START_PRICE = 95_000.0
OUTPUT = Path(__file__).with_name(f"recorded_day_{SYMBOL}.csv.gz")

CENT = Decimal("0.01")
LOT = Decimal("0.00001")
# (per-tick volatility, per-tick drift) of each regime
REGIMES = [(0.0002, 0.0), (0.0006, 0.0), (0.0003, 0.00012), (0.0003, -0.00012)]


def ticks(rng: random.Random) -> list[tuple[datetime, Decimal, Decimal, Decimal, Decimal]]:
    rows = []
    moment = DAY + timedelta(seconds=rng.uniform(0.5, 5.0))
    end = DAY + timedelta(days=1)
    price = START_PRICE
    regime_ends = DAY
    sigma = drift = 0.0
    while moment < end:
        if moment >= regime_ends:
            sigma, drift = rng.choice(REGIMES)
            regime_ends = moment + timedelta(hours=rng.uniform(1.0, 3.0))
        step = rng.gauss(drift, sigma)
        if rng.random() < 0.002:
            step += rng.choice((-1, 1)) * rng.uniform(0.004, 0.01)  # a jump
        price *= math.exp(step)
        last = Decimal(price).quantize(CENT, rounding=ROUND_HALF_EVEN)
        half_spread = Decimal(rng.randint(1, 100)) * CENT
        bid, ask = last - half_spread, last + half_spread
        volume = (Decimal(rng.expovariate(1 / 0.05)).quantize(LOT) + LOT).normalize()
        rows.append((moment, last, bid, ask, volume))
        gap = max(0.2, rng.expovariate(1 / MEAN_GAP_SECONDS))
        moment += timedelta(milliseconds=round(gap * 1000))
    return rows


def render(rows: list[tuple[datetime, Decimal, Decimal, Decimal, Decimal]]) -> bytes:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["symbol", "time", "last", "bid", "ask", "volume"])
    for moment, last, bid, ask, volume in rows:
        stamp = moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        writer.writerow([SYMBOL, stamp, last, bid, ask, format(volume, "f")])
    # mtime=0: the same bytes on every run
    return gzip.compress(text.getvalue().encode(), compresslevel=9, mtime=0)


def main() -> None:
    OUTPUT.write_bytes(render(ticks(random.Random(SEED))))
    print(f"wrote {OUTPUT}")


if __name__ == "__main__":
    main()
