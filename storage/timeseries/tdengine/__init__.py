"""The TDengine time-series backend (``taos://`` native or ``taosws://`` WebSocket).

Nothing here imports a TDengine connector at module import time: the connector
is loaded when a store is opened, so the embedded SQL default never needs
``libtaos`` or ``taos-ws-py``.
"""

from storage.timeseries.tdengine.errors import TDengineConfigError, TDengineError
from storage.timeseries.tdengine.store import TDengineTimeSeriesStore
from storage.timeseries.tdengine.url import TDengineURL, parse_url

__all__ = [
    "TDengineConfigError",
    "TDengineError",
    "TDengineTimeSeriesStore",
    "TDengineURL",
    "parse_url",
]
