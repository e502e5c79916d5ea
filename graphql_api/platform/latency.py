"""A latency histogram kept as plain counters, rendered for Prometheus when scraped.

Domain code (the matcher, the tick ingestor) records latencies without depending
on a metrics library: an observation is a bisect and two additions. The metrics
layer reads :meth:`LatencyHistogram.cumulative` at scrape time, like every other
read-on-scrape number of the process.
"""

from __future__ import annotations

from bisect import bisect_left

DEFAULT_BUCKETS: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)
"""Upper bounds in seconds, from a millisecond (one in-memory step) to a minute (a stall)."""


class LatencyHistogram:
    """Counts of observations per bucket (upper bounds inclusive, like Prometheus' ``le``).

    Parameters:
        buckets: increasing upper bounds in seconds; ``+Inf`` is implied.
    """

    __slots__ = ("_counts", "bounds", "count", "sum")

    def __init__(self, buckets: tuple[float, ...] = DEFAULT_BUCKETS) -> None:
        if list(buckets) != sorted(set(buckets)):
            raise ValueError("histogram buckets must be strictly increasing")
        self.bounds = buckets
        self._counts = [0] * (len(buckets) + 1)  # the last one is +Inf
        self.sum = 0.0
        self.count = 0

    def observe(self, seconds: float) -> None:
        self._counts[bisect_left(self.bounds, seconds)] += 1
        self.sum += seconds
        self.count += 1

    def cumulative(self) -> list[tuple[float, int]]:
        """``(upper bound, observations <= it)`` for every bucket, ending with ``+Inf``."""
        running = 0
        result: list[tuple[float, int]] = []
        for bound, count in zip((*self.bounds, float("inf")), self._counts, strict=True):
            running += count
            result.append((bound, running))
        return result
