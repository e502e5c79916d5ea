"""Time-series storage for ticks and minute-level klines.

One protocol (:class:`TimeSeriesStore`) with one SQL implementation and one
TDengine implementation; :func:`storage.timeseries.factory.open_timeseries_store`
picks one from configuration.
"""

from storage.timeseries.base import (
    AmountPlaces,
    Bar,
    BarText,
    KlineInterval,
    Tick,
    TimeSeriesStore,
    TimeSeriesWriteError,
)

__all__ = [
    "AmountPlaces",
    "Bar",
    "BarText",
    "KlineInterval",
    "Tick",
    "TimeSeriesStore",
    "TimeSeriesWriteError",
]
