"""A broadcaster backend over Redis pub/sub that survives Redis restarts.

broadcaster 0.3.1's own Redis backend neither reconnects nor, with redis-py 8,
reliably starts listening (it flags itself ready before SUBSCRIBE completes,
sees no subscription and stops). This backend keeps the set of subscribed
channels itself, reads from one dedicated pub/sub connection
(:class:`~graphql_api.realtime.redis_subscriber.RedisSubscriber`, which parses a
whole network buffer at a time), and when that connection fails it reconnects
with exponential backoff and resubscribes every channel. ``healthy`` tells
readiness checks whether delivery is live. Publishing goes through redis-py.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import structlog
from broadcaster import BroadcastBackend, Event
from redis import asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from graphql_api.realtime.redis_subscriber import RedisSubscriber

log = structlog.get_logger(__name__)


def redis_client(url: str, **options: Any) -> redis.Redis:
    """A client whose commands survive a Redis restart.

    ``Redis.from_url`` builds connections without any retry, so after a restart
    every idle pooled connection fails its next command once ("Connection
    closed by server"). Retrying once on a connection error, after a short
    backoff, reconnects that connection and runs the command again; a Redis
    that is really down still fails fast (then the callers' breakers take over).
    """
    return redis.Redis.from_url(
        url,
        retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), retries=1),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        **options,
    )


_FAILURES = (RedisConnectionError, RedisTimeoutError, RedisError, OSError)


class RedisBroadcastBackend(BroadcastBackend):
    """Parameters:
    url: ``redis://`` or ``rediss://`` URL.
    min_backoff / max_backoff: reconnect delays in seconds (doubling in between).
    ping_interval: seconds of silence on the subscriber connection before it is
        pinged (as many again without an answer and it is reconnected).
    """

    def __init__(
        self,
        url: str,
        *,
        min_backoff: float = 0.1,
        max_backoff: float = 5.0,
        ping_interval: float = 10.0,
    ) -> None:
        self._url = url
        self._ping_interval = ping_interval
        self._client = redis_client(url)
        self._channels: set[str] = set()
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self._pubsub: RedisSubscriber | None = None
        self._deliver: Callable[[str, str], None] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._min_backoff = min_backoff
        self._max_backoff = max_backoff
        self.healthy = asyncio.Event()
        self.reconnects = 0
        # Called after each reconnect: what was published meanwhile never reached us.
        self.reconnect_listeners: list[Callable[[], None]] = []

    async def connect(self) -> None:
        # Fail fast at start-up: a server configured for Redis without one is misconfigured.
        await self._open()
        self._reader = asyncio.create_task(self._read_forever(), name="redis-broadcast-reader")

    async def disconnect(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        await self._close_pubsub()
        await self._client.aclose()

    async def subscribe(self, channel: str) -> None:
        self.add_channel(channel)

    async def unsubscribe(self, channel: str) -> None:
        self.remove_channel(channel)

    def add_channel(self, channel: str) -> None:
        """Subscribe to ``channel`` now: the command is written before this returns, so
        a :meth:`remove_channel` after it is always sent after it."""
        self._channels.add(channel)
        if self._pubsub is not None:
            with contextlib.suppress(*_FAILURES):  # the reader resubscribes on reconnect
                self._pubsub.subscribe([channel])

    def remove_channel(self, channel: str) -> None:
        self._channels.discard(channel)
        if self._pubsub is not None:
            with contextlib.suppress(*_FAILURES):
                self._pubsub.unsubscribe([channel])

    def dispatch_to(self, deliver: Callable[[str, str], None]) -> None:
        """Hand every message read to ``deliver(channel, message)``, in the reader task
        and in arrival order, instead of queueing it for broadcaster. The hub takes
        this path: no queue and no task switch per message, and nothing piles up
        here when a subscriber falls behind (its mailbox bounds it). One hub per
        backend: channels are not counted per taker, so a second one is refused."""
        if self._deliver is not None:
            raise RuntimeError("this bus backend already delivers to a hub")
        self._deliver = deliver

    async def publish(self, channel: str, message: Any) -> None:
        await self._client.publish(channel, message)

    async def publish_many(self, messages: Sequence[tuple[str, str]]) -> None:
        """One round trip for a batch (a pipeline keeps their order on the bus)."""
        pipeline = self._client.pipeline(transaction=False)
        for channel, message in messages:
            pipeline.publish(channel, message)
        await pipeline.execute()

    async def next_published(self) -> Event:
        return await self._queue.get()

    async def _open(self) -> None:
        pubsub = RedisSubscriber(self._url, ping_interval=self._ping_interval)
        try:
            await pubsub.open()
            pubsub.subscribe(sorted(self._channels))
        except BaseException:
            await pubsub.close()
            raise
        self._pubsub = pubsub
        self.healthy.set()

    async def _close_pubsub(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(*_FAILURES, RuntimeError):
                await pubsub.close()

    async def _read_forever(self) -> None:
        backoff = self._min_backoff
        while True:
            try:
                if self._pubsub is None:
                    await self._open()
                    self.reconnects += 1
                    backoff = self._min_backoff
                    log.info("redis broadcast reconnected", channels=len(self._channels))
                    for listener in list(self.reconnect_listeners):
                        listener()
                assert self._pubsub is not None
                messages = await self._pubsub.read()
                deliver = self._deliver
                if deliver is not None:
                    for channel, message in messages:
                        deliver(channel, message)
                else:
                    for channel, message in messages:
                        self._queue.put_nowait(Event(channel=channel, message=message))
            except Exception as error:
                # Any failure (a lost connection, a protocol error, a bug) takes the
                # same path: mark delivery unhealthy, reconnect with backoff and
                # resubscribe, so the reader never dies silently.
                if self.healthy.is_set():
                    log.warning("redis broadcast connection lost", error=repr(error))
                self.healthy.clear()
                await self._close_pubsub()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff)
