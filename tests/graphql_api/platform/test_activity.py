"""The read-on-scrape numbers of a process's background work: matcher lag and
backlog, fill latency, and the latency histogram they use."""

from __future__ import annotations

import asyncio
import time

import pytest

from graphql_api.platform.activity import Activity, StreamProgress
from graphql_api.platform.latency import LatencyHistogram
from graphql_api.realtime.hub import Mailbox


def test_a_histogram_counts_each_observation_in_its_bucket_and_above() -> None:
    histogram = LatencyHistogram((0.1, 1.0))
    for seconds in (0.05, 0.1, 0.5, 3.0):
        histogram.observe(seconds)
    # upper bounds are inclusive, like Prometheus' le
    assert histogram.cumulative() == [(0.1, 2), (1.0, 3), (float("inf"), 4)]
    assert histogram.count == 4
    assert histogram.sum == pytest.approx(3.65)


def test_histogram_buckets_must_increase() -> None:
    with pytest.raises(ValueError, match="increasing"):
        LatencyHistogram((1.0, 0.5))


async def test_lag_is_how_long_the_oldest_unprocessed_message_waited() -> None:
    progress = StreamProgress()
    assert (progress.lag(time.monotonic()), progress.waiting()) == (0.0, 0)
    mailbox = Mailbox(conflate=False, capacity=10)
    progress.backlog = mailbox
    # given two messages that arrived, one after the other
    mailbox.offer("ticks.A", "1")
    await asyncio.sleep(0.05)
    mailbox.offer("ticks.A", "2")
    now = time.monotonic()
    assert progress.waiting() == 2
    assert progress.lag(now) >= 0.05
    # when the consumer takes the first, it still counts until it is processed
    first = await mailbox.get()
    progress.in_flight = first.received
    assert progress.waiting() == 2
    assert progress.lag(now) >= 0.05
    # and once processed, only the second one's wait is left
    progress.in_flight = None
    second = mailbox.oldest_received()
    assert second is not None
    assert progress.waiting() == 1
    assert progress.lag(now) == pytest.approx(now - second)
    await mailbox.get()
    assert (progress.lag(time.monotonic()), progress.waiting()) == (0.0, 0)


def test_a_fill_is_timed_from_its_tick_arrival_only_when_there_is_one() -> None:
    activity = Activity()
    # a tick handed to the matcher directly (tests, replays) has no arrival time
    activity.fill_committed()
    assert (activity.fills, activity.fill_latency.count) == (1, 0)
    # a tick from the stream does
    activity.matcher.in_flight = time.monotonic() - 0.2
    activity.fill_committed()
    assert (activity.fills, activity.fill_latency.count) == (2, 1)
    assert activity.fill_latency.sum >= 0.2


def test_idle_is_the_time_since_a_subscribed_consumer_last_took_a_message() -> None:
    progress = StreamProgress()
    assert progress.idle(time.monotonic() + 100) == 0.0  # not subscribed: not idle
    progress.attach(Mailbox(conflate=False, capacity=10))
    attached = time.monotonic()
    assert progress.idle(attached + 30) >= 29.9  # counts from the subscription
    progress.take(attached)
    assert progress.in_flight == attached
    taken = progress.last_taken
    assert taken is not None and taken >= attached
    progress.done()
    assert progress.in_flight is None
    assert progress.idle(taken + 5) == pytest.approx(5)
    progress.detach()
    assert (progress.backlog, progress.last_taken, progress.idle(taken + 100)) == (None, None, 0.0)
