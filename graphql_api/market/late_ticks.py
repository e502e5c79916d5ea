"""When a tick is too late to act on: one rule for the matcher and the strategy engine.

Every tick that passes validation is stored, whatever its time: history may be
backfilled. But engines that act *now* — the matcher filling orders, the
strategy engine closing bars and trading on them — must not act on a price
the market had before what they already saw, or long ago. A tick is late when

- it is older than the latest tick already seen for its symbol (a feed that
  replays or reorders; the strategy engine compares bar buckets instead, since
  ticks within the open bar may arrive slightly out of order), or
- it is older than ``now - max_lag`` (a back-dated tick, a feed that stalled).

Late ticks are kept as history and drive nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from storage.timeseries import Tick

__all__ = ["TickWatermark", "is_late"]


def is_late(
    time: datetime,
    *,
    latest: datetime | None = None,
    now: datetime | None = None,
    max_lag: timedelta | None = None,
) -> bool:
    """True when ``time`` is before ``latest``, or more than ``max_lag`` before ``now``."""
    if latest is not None and time < latest:
        return True
    return now is not None and max_lag is not None and now - time > max_lag


class TickWatermark:
    """The latest tick time seen per symbol, and :func:`is_late` against it.

    Parameters:
        max_lag: how far behind the clock a tick may be and still be acted on.
    """

    def __init__(self, max_lag: timedelta) -> None:
        self.max_lag = max_lag
        self._latest: dict[str, datetime] = {}
        self.late_ticks = 0

    def admit(self, tick: Tick, now: datetime) -> bool:
        """Record ``tick``; True when it is on time (neither reordered nor stale)."""
        latest = self._latest.get(tick.symbol)
        late = is_late(tick.time, latest=latest, now=now, max_lag=self.max_lag)
        if latest is None or tick.time > latest:
            self._latest[tick.symbol] = tick.time
        if late:
            self.late_ticks += 1
        return not late
