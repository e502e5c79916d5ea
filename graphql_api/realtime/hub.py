"""Per-process realtime fan-out.

One bus subscription per channel, however many GraphQL subscriptions want it;
each subscriber gets its own bounded mailbox so a slow client can never hold up
the channel or grow memory without bound:

- conflating mailboxes (ticks, klines) keep only the latest message per key
  (channel), so a slow reader skips straight to fresh prices;
- lossless mailboxes (orders, signals) keep everything up to a bound and, past
  it, fail the subscription with :class:`SlowConsumerError` rather than drop
  an event silently.

A bus that reconnects (Redis restarted) may have dropped what was published
while this process was not listening. Mailboxes opened with ``resync=True``
then receive :data:`RESYNC` on each of their channels, so their reader can
catch up from the database.

On Redis, the bus backend hands each message it reads straight to the hub
(:meth:`RedisBroadcastBackend.dispatch_to`), which offers it to the channel's
mailboxes in the same step: no queue or task per channel in between, so the
mailboxes are the only place messages wait. The in-process bus goes through
broadcaster's subscriptions, one pump task per channel.

Here first, then the bus (:meth:`Hub.deliver`): what this process produces
itself (the ticks its ingestor wrote) is offered to its own mailboxes at once
and published for the other processes by a :class:`BusRelay`, marked with
this hub's origin; the hub skips its own messages when the bus echoes them.
Its subscribers do not wait for a publish and its echo, and the producer does
not wait for the bus. Socket.IO's Redis adapter skips its own messages the
same way. Every process of a deployment must run a version that knows the
mark (an older one would take a marked message for a malformed event).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import structlog
from broadcaster import Broadcast, BroadcastBackend

from graphql_api.realtime.bus_relay import BusRelay
from graphql_api.realtime.redis_backend import RedisBroadcastBackend

log = structlog.get_logger(__name__)


# Offered to ``resync`` mailboxes after the bus reconnected: events may have been missed.
RESYNC = ""

# Starts and ends the origin that marks a message :meth:`Hub.deliver` published
# (``<mark><origin><mark><message>``). No event starts with it: they are JSON.
ORIGIN_MARK = "\x1e"
# How long closing the hub waits for what it still has to publish.
RELAY_CLOSE_SECONDS = 5.0


class SlowConsumerError(Exception):
    """A lossless subscriber fell further behind than its mailbox allows."""


@dataclass(slots=True)
class HubMessage:
    channel: str
    message: str
    # ``time.monotonic()`` when it reached this process (lossless mailboxes only): how
    # long a consumer let it wait is its lag (``quantgraph_matcher_lag_seconds``).
    received: float | None = None


class Mailbox:
    """A bounded per-subscriber queue; see the module docstring for the two modes."""

    def __init__(self, *, conflate: bool, capacity: int, resync: bool = False) -> None:
        self.conflate = conflate
        self.resync = resync
        self.capacity = capacity
        self._latest: OrderedDict[str, str] = OrderedDict()
        self._queue: deque[HubMessage] = deque()
        self._ready = asyncio.Event()
        self.overflowed = False
        self.conflated = 0
        self.delivered = 0
        # The channels this mailbox is attached to (kept by the hub).
        self.channels: dict[str, _Channel] = {}

    def offer(self, channel: str, message: str) -> None:
        if self.conflate:
            if channel in self._latest:
                self.conflated += 1
            self._latest[channel] = message
            self._latest.move_to_end(channel)
        elif len(self._queue) >= self.capacity:
            self.overflowed = True
        else:
            self._queue.append(HubMessage(channel, message, time.monotonic()))
        self._ready.set()

    def waiting(self) -> int:
        """Messages waiting to be read."""
        return len(self._queue) + len(self._latest)

    def oldest_received(self) -> float | None:
        """When the oldest waiting message arrived (lossless mailboxes); None if none waits."""
        return self._queue[0].received if self._queue else None

    def drop(self, channel: str) -> None:
        """Forget what ``channel`` left undelivered (the mailbox no longer listens to it)."""
        self._latest.pop(channel, None)
        if any(message.channel == channel for message in self._queue):
            self._queue = deque(message for message in self._queue if message.channel != channel)

    def get_nowait(self) -> HubMessage | None:
        """The next message if one is waiting (lossless mailboxes), else None."""
        if self.overflowed or not self._queue:
            return None
        self.delivered += 1
        return self._queue.popleft()

    async def get(self) -> HubMessage:
        while True:
            if self.overflowed:
                raise SlowConsumerError(
                    f"subscriber fell more than {self.capacity} events behind; "
                    "events are never dropped silently, so the subscription is closed"
                )
            if self._queue:
                self.delivered += 1
                return self._queue.popleft()
            if self._latest:
                channel, message = self._latest.popitem(last=False)
                self.delivered += 1
                return HubMessage(channel, message)
            self._ready.clear()
            await self._ready.wait()


@dataclass(eq=False)
class _Channel:
    name: str
    mailboxes: set[Mailbox] = field(default_factory=set)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


class BroadcastWithBackend(Broadcast):
    """A ``broadcaster.Broadcast`` that keeps the backend it was given in reach.

    broadcaster keeps its backend private; the hub asks ours for Redis to batch
    publishes and to report reconnects, and readiness asks it for its health.
    ``backend`` is None when broadcaster picked its own from the URL.
    """

    def __init__(self, url: str | None = None, *, backend: BroadcastBackend | None = None) -> None:
        super().__init__(url, backend=backend)
        self.backend = backend


class Hub:
    """Fans broadcaster channels out to in-process subscribers.

    Parameters:
        broadcast: a connected ``broadcaster.Broadcast`` (memory or Redis).
        capacity: mailbox bound for lossless subscribers.
    """

    def __init__(self, broadcast: Broadcast, *, capacity: int = 256) -> None:
        self._broadcast = broadcast
        self._capacity = capacity
        self._channels: dict[str, _Channel] = {}
        self.origin = secrets.token_hex(8)
        self._own_mark = f"{ORIGIN_MARK}{self.origin}{ORIGIN_MARK}"
        self.relay = BusRelay(self.publish_many)
        backend = self.backend
        self._direct = backend if isinstance(backend, RedisBroadcastBackend) else None
        if self._direct is not None:
            self._direct.reconnect_listeners.append(self.bus_reconnected)
            self._direct.dispatch_to(self._dispatch)

    def _dispatch(self, channel_name: str, message: str) -> None:
        """A message the Redis reader has just read: into each of the channel's mailboxes."""
        channel = self._channels.get(channel_name)
        if channel is not None and (foreign := self._foreign(message)) is not None:
            _offer(channel, foreign)

    def _foreign(self, message: str) -> str | None:
        """A message read from the bus, unmarked; None if this hub delivered it already."""
        if not message.startswith(ORIGIN_MARK):
            return message
        if message.startswith(self._own_mark):
            return None
        end = message.find(ORIGIN_MARK, 1)
        return message[end + 1 :] if end > 0 else message

    def bus_reconnected(self) -> None:
        """Tell ``resync`` mailboxes that events may have been missed meanwhile."""
        for channel in list(self._channels.values()):
            for mailbox in list(channel.mailboxes):
                if mailbox.resync:
                    mailbox.offer(channel.name, RESYNC)

    async def publish(self, channel: str, message: str) -> None:
        await self._broadcast.publish(channel, message)

    @property
    def backend(self) -> object:
        """The bus backend we gave broadcaster (:class:`BroadcastWithBackend`), else None:
        ours for Redis reports its health and batches publishes."""
        if isinstance(self._broadcast, BroadcastWithBackend):
            return self._broadcast.backend
        return None

    async def publish_many(self, messages: Sequence[tuple[str, str]]) -> None:
        """In order; in one round trip when the bus can batch (Redis pipelines)."""
        batched = getattr(self.backend, "publish_many", None)
        if batched is not None:
            await batched(messages)
            return
        for channel, message in messages:
            await self._broadcast.publish(channel, message)

    def deliver(self, messages: Sequence[tuple[str, str]]) -> None:
        """Offer ``messages`` to this process's mailboxes now, and have the relay
        publish them, marked as ours, for the other processes (best effort, in
        order). A producer that must not outrun the bus awaits ``relay.room()``."""
        mark = self._own_mark
        for name, message in messages:
            channel = self._channels.get(name)
            if channel is not None:
                _offer(channel, message)
        self.relay.send([(name, mark + message) for name, message in messages])

    @contextlib.asynccontextmanager
    async def subscribe(
        self,
        channels: Sequence[str],
        *,
        conflate: bool,
        capacity: int | None = None,
        resync: bool = False,
    ) -> AsyncIterator[Mailbox]:
        """Attach a mailbox to ``channels``; on entry the channels are live, so
        anything published after this returns will be delivered. With ``resync``
        the mailbox also gets :data:`RESYNC` whenever the bus reconnected. Inside,
        :meth:`listen` and :meth:`unlisten` change the mailbox's channels."""
        mailbox = Mailbox(conflate=conflate, capacity=capacity or self._capacity, resync=resync)
        try:
            await self.listen(mailbox, channels)
            yield mailbox
        finally:
            self.unlisten(mailbox, list(mailbox.channels))

    async def listen(self, mailbox: Mailbox, channels: Sequence[str]) -> None:
        """Attach ``mailbox`` (from :meth:`subscribe`) to more channels; they are live
        when this returns. A stream whose set of channels changes (a watchlist's
        symbols) moves this way without a gap on the channels it keeps."""
        added: list[_Channel] = []
        for name in dict.fromkeys(channels):
            if name in mailbox.channels:
                continue
            channel = self._channels.get(name)
            if channel is None:
                channel = _Channel(name)
                self._channels[name] = channel
                if self._direct is not None:
                    self._direct.add_channel(name)
                    channel.ready.set()
                else:
                    channel.task = asyncio.create_task(self._pump(channel), name=f"hub:{name}")
            channel.mailboxes.add(mailbox)
            mailbox.channels[name] = channel
            added.append(channel)
        await asyncio.gather(*(channel.ready.wait() for channel in added))

    def unlisten(self, mailbox: Mailbox, channels: Sequence[str]) -> None:
        """Detach ``mailbox`` from ``channels``: nothing more of theirs is delivered,
        including what they left in the mailbox."""
        for name in channels:
            channel = mailbox.channels.pop(name, None)
            if channel is None:
                continue
            mailbox.drop(name)
            channel.mailboxes.discard(mailbox)
            if not channel.mailboxes and self._channels.get(channel.name) is channel:
                del self._channels[channel.name]
                if self._direct is not None:
                    self._direct.remove_channel(channel.name)
                if channel.task is not None:
                    channel.task.cancel()

    @property
    def channel_count(self) -> int:
        return len(self._channels)

    def mailboxes(self) -> set[Mailbox]:
        """Every mailbox attached to a channel now (for metrics)."""
        return {mailbox for channel in self._channels.values() for mailbox in channel.mailboxes}

    async def close(self) -> None:
        await self.relay.close(RELAY_CLOSE_SECONDS)
        tasks = [c.task for c in self._channels.values() if c.task is not None]
        if self._direct is not None:
            for name in self._channels:
                self._direct.remove_channel(name)
        self._channels.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _pump(self, channel: _Channel) -> None:
        async with self._broadcast.subscribe(channel.name) as subscriber:
            channel.ready.set()
            # Ends when broadcaster unsubscribes (its ``Unsubscribed`` is not public).
            # broadcaster annotates ``Subscriber.__aiter__`` as possibly None; it never is.
            async for event in subscriber:  # type: ignore[union-attr]
                if event is None:  # pragma: no cover - broadcaster never yields None
                    continue
                message = self._foreign(event.message)
                if message is not None:
                    _offer(channel, message)


def _offer(channel: _Channel, message: str) -> None:
    for mailbox in list(channel.mailboxes):
        mailbox.offer(channel.name, message)
