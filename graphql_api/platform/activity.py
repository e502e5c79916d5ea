"""What this process's background work has done, for metrics and readiness.

The matcher and the strategy engine run on one process of the cluster at a
time (leader election), so their counters say what *this* process did; a
scrape of every process sums to the cluster's total.

Everything here is plain attributes the workers set as they go and the
``/metrics`` endpoint reads when scraped, so the hot paths pay next to nothing.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Protocol

from graphql_api.platform.latency import LatencyHistogram


class Leader(Protocol):
    """A cluster singleton's election (:class:`graphql_api.platform.leader.Leadership`)."""

    @property
    def is_leader(self) -> bool: ...


class Backlog(Protocol):
    """What waits for a stream consumer: the matcher's hub mailbox."""

    def waiting(self) -> int:
        """Messages waiting to be read."""

    def oldest_received(self) -> float | None:
        """``time.monotonic()`` when the oldest waiting message arrived; None if none waits."""


@dataclass(slots=True)
class StreamProgress:
    """How far a stream consumer (the matcher) is behind the messages it subscribed to.

    Measured on this process's monotonic clock from when each message arrived
    here, so neither a feed's clock nor back-dated ticks distort it. The consumer
    calls :meth:`attach` when it has subscribed, :meth:`take` with each message's
    arrival time, :meth:`done` when it has processed it, and :meth:`detach` when
    it stops.
    """

    backlog: Backlog | None = None
    # Arrival of the message being processed (None between messages).
    in_flight: float | None = None
    # When the consumer last took a message (or subscribed): a subscribed consumer
    # that takes nothing while ticks are stored is cut off from the bus.
    last_taken: float | None = None

    def attach(self, backlog: Backlog) -> None:
        self.backlog, self.in_flight, self.last_taken = backlog, None, time.monotonic()

    def take(self, received: float | None) -> None:
        self.in_flight, self.last_taken = received, time.monotonic()

    def done(self) -> None:
        self.in_flight = None

    def detach(self) -> None:
        self.backlog = self.in_flight = self.last_taken = None

    def idle(self, now: float) -> float:
        """Seconds since a subscribed consumer last took a message; 0 when not subscribed."""
        return 0.0 if self.last_taken is None else max(0.0, now - self.last_taken)

    def waiting(self) -> int:
        """Messages received and not yet fully processed (the one in hand included)."""
        queued = self.backlog.waiting() if self.backlog is not None else 0
        return queued + (self.in_flight is not None)

    def lag(self, now: float) -> float:
        """Seconds the oldest unprocessed message has waited; 0 when caught up."""
        arrivals = [self.in_flight]
        if self.backlog is not None:
            arrivals.append(self.backlog.oldest_received())
        known = [arrival for arrival in arrivals if arrival is not None]
        return max(0.0, now - min(known)) if known else 0.0


@dataclass(slots=True)
class Activity:
    fills: int = 0
    signals: int = 0
    alert_firings: int = 0
    # Webhook deliveries this process' dispatcher finished, and its failed attempts.
    webhooks_delivered: int = 0
    webhooks_dead: int = 0
    webhook_attempts_failed: int = 0
    # Long-running background tasks by name ("ingestor", "matcher", …).
    tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    # Cluster singletons this process takes part in the election of, by name.
    leaders: dict[str, Leader] = field(default_factory=dict)
    matcher: StreamProgress = field(default_factory=StreamProgress)
    # The other matcher shards this process takes part in, by leader name
    # ("matcher-1", …; shard 0, or the only matcher, is ``matcher``).
    matcher_shards: dict[str, StreamProgress] = field(default_factory=dict)
    # The matcher fell so far behind that its mailbox overflowed (ticks were skipped).
    matcher_overflows: int = 0
    # From a tick's arrival in this process to the commit of a fill it made.
    fill_latency: LatencyHistogram = field(default_factory=LatencyHistogram)

    def stopped_tasks(self) -> list[str]:
        """Background tasks that ended while the process still serves (a crash)."""
        return sorted(name for name, task in self.tasks.items() if task.done())

    def matcher_progress(self, name: str) -> StreamProgress:
        """The progress of the matcher (shard) elected as ``name``."""
        if name == "matcher":
            return self.matcher
        return self.matcher_shards.setdefault(name, StreamProgress())

    def all_matcher_progress(self) -> list[StreamProgress]:
        return [self.matcher, *self.matcher_shards.values()]

    def fill_committed(self, progress: StreamProgress | None = None) -> None:
        """Count a fill; time it from its tick's arrival when the matcher (shard) whose
        ``progress`` it is works on a stream tick (a tick handed to the matcher
        directly has no arrival time)."""
        self.fills += 1
        received = (progress or self.matcher).in_flight
        if received is not None:
            self.fill_latency.observe(time.monotonic() - received)
