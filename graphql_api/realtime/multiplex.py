"""Serialize once: identical subscriptions share one execution and one payload per event.

Subscribers whose subscriptions are the same (same document, variables, operation
name and *scope*: see ``graphql_api.server.websocket``) attach to one
:class:`SharedStream`. Its producer task runs the subscription once; each result
is serialized to JSON text once, and that same string is handed to every
subscriber's per-connection :class:`Outbox`, which wraps it in the protocol frame
(``{"id":…,"type":"next","payload":`` + payload + ``}``) only when it writes it.

Back-pressure never reaches the producer: handing a payload to an outbox is a
synchronous, O(1) call, and each connection has its own writer task, so a slow
or stalled socket delays nobody but itself. What a socket cannot take is bounded:

- conflating streams (ticks) keep only the latest payload per key (symbol) and
  subscription, so a slow socket skips straight to fresh prices;
- lossless streams (order updates, signals) keep every payload up to a bound;
  past it the connection is closed (see ``SLOW_CONSUMER_CLOSE``) rather than an
  event being dropped silently.

Late joiners of a conflating stream first get the latest payload per key that
the stream has produced (its snapshot plus anything newer), then live ones: the
same "snapshot then live" a fresh execution would give, without re-running it.
Late joiners of a lossless stream get events from the moment they join.

This module knows nothing about GraphQL or Strawberry: producers yield
:class:`Next` / :class:`Failure` items and subscribers are :class:`Subscriber`
objects. ``graphql_api.server.websocket`` plugs it into Strawberry's WebSocket handlers.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import structlog

from graphql_api.platform.resilience import as_service_unavailable
from graphql_api.realtime.write_turns import WriteTurns

log = structlog.get_logger(__name__)

# WebSocket close used when a lossless subscriber falls too far behind.
SLOW_CONSUMER_CLOSE = 1013  # "Try Again Later"
SLOW_CONSUMER_REASON = "subscriber too slow"


@dataclass(frozen=True, slots=True)
class StreamKey:
    """What makes two subscriptions identical: they may share one execution."""

    document: str  # a digest of the normalised document
    variables: str  # canonical JSON
    operation_name: str | None
    scope: tuple[Hashable, ...]  # who the execution runs as (see graphql_api.server.websocket)


@dataclass(frozen=True, slots=True)
class Next:
    """One serialized result. ``key`` names what it conflates with (e.g. a symbol)."""

    payload: str
    key: Hashable = None


@dataclass(frozen=True, slots=True)
class Failure:
    """The stream failed before producing results (e.g. validation errors)."""

    errors: Sequence[Mapping[str, object]]


Item = Next | Failure
SourceFactory = Callable[[], AsyncIterator[Item]]


class Subscriber(Protocol):
    """One subscription on one connection. Both calls must be synchronous and cheap."""

    def deliver(self, key: Hashable, payload: str) -> None: ...

    def finish(self, failure: Failure | None) -> None: ...


@dataclass(slots=True)
class MultiplexStats:
    """Counters for tests and benchmarks (per registry, i.e. per GraphQL view)."""

    streams_started: int = 0
    # Results produced by shared executions: one per event per stream, however
    # many subscribers share it. Each is serialized exactly once.
    executions: int = 0
    deliveries: int = 0  # payloads handed to subscribers
    frames_sent: int = 0
    writes: int = 0  # socket writes: frames_sent / writes is the batching achieved
    frames_conflated: int = 0  # pending frames replaced by a newer one
    slow_consumers: int = 0  # connections closed for falling behind


class SharedStream:
    """One execution of one subscription, fanned out to many subscribers."""

    def __init__(
        self,
        registry: MultiplexRegistry,
        key: StreamKey,
        source: SourceFactory,
        *,
        conflate: bool,
    ) -> None:
        self.registry = registry
        self.key = key
        self.conflate = conflate
        self.subscribers: dict[Subscriber, None] = {}
        self.executions = 0
        self.finished = False
        # Conflating streams remember the latest payload per key, for late joiners.
        self.latest: OrderedDict[Hashable, str] = OrderedDict()
        self._source = source
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"multiplex:{self.key.document[:12]}")
        self._task.add_done_callback(_retrieve)

    def attach(self, subscriber: Subscriber) -> None:
        for key, payload in self.latest.items():
            subscriber.deliver(key, payload)
        self.subscribers[subscriber] = None

    def detach(self, subscriber: Subscriber) -> None:
        self.subscribers.pop(subscriber, None)
        if not self.subscribers and not self.finished:
            self.finished = True
            self.registry._forget(self)
            if self._task is not None:
                self._task.cancel()

    async def _run(self) -> None:
        failure: Failure | None = None
        try:
            source = self._source()
            try:
                async for item in source:
                    if isinstance(item, Failure):
                        failure = item
                        break
                    self.executions += 1
                    self.registry.stats.executions += 1
                    if self.conflate:
                        self.latest[item.key] = item.payload
                    for subscriber in list(self.subscribers):
                        subscriber.deliver(item.key, item.payload)
                    self.registry.stats.deliveries += len(self.subscribers)
            finally:
                aclose = getattr(source, "aclose", None)
                if aclose is not None:
                    await aclose()
        except asyncio.CancelledError:
            raise
        except Exception as error:
            unavailable = as_service_unavailable(error)
            if unavailable is not None:
                # Not a bug: say which dependency is down so the client resubscribes.
                log.warning("shared subscription ended", service=unavailable.service)
                failure = Failure(
                    [
                        {
                            "message": f"{unavailable.service} is temporarily unavailable; "
                            "resubscribe later",
                            "extensions": {
                                "code": "SERVICE_UNAVAILABLE",
                                "service": unavailable.service,
                            },
                        }
                    ]
                )
            else:
                log.exception("shared subscription failed", document=self.key.document[:12])
                failure = Failure(
                    [
                        {
                            "message": "Internal server error",
                            "extensions": {"code": "INTERNAL_SERVER_ERROR"},
                        }
                    ]
                )
        self._finish(failure)

    def _finish(self, failure: Failure | None) -> None:
        if not self.finished:
            self.finished = True
            self.registry._forget(self)
        subscribers, self.subscribers = list(self.subscribers), {}
        for subscriber in subscribers:
            subscriber.finish(failure)


class MultiplexRegistry:
    """The shared streams of one GraphQL view (one per server process in production)."""

    def __init__(self) -> None:
        self._streams: dict[StreamKey, SharedStream] = {}
        self.stats = MultiplexStats()
        # One queue of write turns for every connection of the process's view.
        self.turns = WriteTurns()

    def join(
        self, key: StreamKey, source: SourceFactory, subscriber: Subscriber, *, conflate: bool
    ) -> SharedStream:
        """Attach ``subscriber`` to the stream for ``key``, starting it if needed.

        ``source`` is only called when a new stream starts (so it should capture
        the joiner's scope, never anything private to one connection)."""
        stream = self._streams.get(key)
        if stream is None:
            stream = SharedStream(self, key, source, conflate=conflate)
            self._streams[key] = stream
            self.stats.streams_started += 1
            stream.start()
        stream.attach(subscriber)
        return stream

    @property
    def stream_count(self) -> int:
        return len(self._streams)

    def streams(self) -> list[SharedStream]:
        return list(self._streams.values())

    def _forget(self, stream: SharedStream) -> None:
        if self._streams.get(stream.key) is stream:
            del self._streams[stream.key]


# (head, body, tail): the frame is head + body + tail, joined only when written,
# so a pending frame holds a reference to the shared payload, never a copy.
Frame = tuple[str, str, str]
# (operation id, (kind, discriminator)): kind is "latest", "all" or "control".
Slot = tuple[str, tuple[str, Hashable]]


# At most this many frames go out in one write: enough to empty a burst's queue
# in one system call, few enough that one write never holds the loop for long.
MAX_FRAMES_PER_WRITE = 64


class Outbox:
    """A connection's send queue and its single writer task.

    Pending frames are kept in one insertion-ordered map keyed by
    ``(operation id, slot)``: a conflating frame reuses its slot (the newer
    payload replaces the older one in place), a lossless or control frame always
    takes a new slot. Lossless frames are counted per operation; one more than
    ``capacity`` calls ``on_overflow`` once and stops the outbox.

    The writer takes everything pending (up to ``MAX_FRAMES_PER_WRITE``), in
    order, and hands it to ``send`` as one batch: a socket that fell behind
    catches up in one write instead of one await per message, and conflation
    still applies to whatever had not been taken yet.

    With ``turns``, an idle writer with something new to write waits for its
    turn (:mod:`~graphql_api.realtime.write_turns`) instead of running at once,
    so a burst of fan-out never holds the event loop for long; whatever is
    offered meanwhile still conflates into what it will write.

    With ``write_now`` as well, the turn itself writes the batch, synchronously,
    when the socket can take it: no task wakes per delivery, which is most of
    what a delivery cost besides the write. When ``write_now`` declines (the
    transport is above its high-water mark) the writer task takes the batch and
    waits for the socket, as it always did.
    """

    def __init__(
        self,
        send: Callable[[list[str]], Awaitable[None]],
        *,
        capacity: int,
        on_overflow: Callable[[str], None],
        stats: MultiplexStats | None = None,
        turns: WriteTurns | None = None,
        write_now: Callable[[list[str]], bool] | None = None,
    ) -> None:
        self._send = send
        self._turns = turns
        self._write_now = write_now if turns is not None else None
        # A batch taken on a turn that the socket could not take at once: the writer
        # task sends it before anything else.
        self._carried: list[str] = []
        self._turn_asked = False
        self.capacity = capacity
        self._on_overflow = on_overflow
        self._stats = stats or MultiplexStats()
        self._pending: OrderedDict[Slot, Frame] = OrderedDict()
        self._lossless: Counter[str] = Counter()
        self._sequence = itertools.count()
        self._ready = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self.closed = False
        self.overflowed = False
        self.sent = 0

    def __len__(self) -> int:
        return len(self._pending)

    def offer_latest(self, op_id: str, key: Hashable, frame: Frame) -> None:
        """Queue a frame that replaces any pending frame of the same operation and key."""
        if self.closed:
            return
        slot: Slot = (op_id, ("latest", key))
        if slot in self._pending:
            self._stats.frames_conflated += 1
        self._pending[slot] = frame
        self._wake()

    def offer_all(self, op_id: str, frame: Frame) -> None:
        """Queue a frame that must be delivered; past ``capacity`` pending, overflow."""
        if self.closed:
            return
        if self._lossless[op_id] >= self.capacity:
            self.overflowed = True
            self.close()
            self._on_overflow(op_id)
            return
        self._lossless[op_id] += 1
        self._pending[(op_id, ("all", next(self._sequence)))] = frame
        self._wake()

    def offer_control(self, op_id: str, text: str) -> None:
        """Queue a protocol message (complete, error, ping) after what is pending."""
        if self.closed:
            return
        self._pending[(op_id, ("control", next(self._sequence)))] = (text, "", "")
        self._wake()

    def discard(self, op_id: str) -> None:
        """Drop what is pending for one operation (its subscriber left)."""
        for slot in [slot for slot in self._pending if slot[0] == op_id]:
            del self._pending[slot]
        self._lossless.pop(op_id, None)

    async def drain(self, timeout: float) -> bool:
        """Wait until everything queued so far is written; False on timeout."""
        if self._task is None or self.closed:
            return not self._pending
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def close(self) -> None:
        """Stop writing and forget what is pending (the socket is going away)."""
        self.closed = True
        self._pending.clear()
        self._lossless.clear()
        if self._task is not None:
            self._task.cancel()

    def _wake(self) -> None:
        self._idle.clear()
        if self._task is None:
            self._ready.set()
            self._task = asyncio.create_task(self._write(), name="ws-outbox")
            self._task.add_done_callback(_retrieve)
        elif self._turns is None:
            self._ready.set()
        elif not self._ready.is_set() and not self._turn_asked:
            # The writer is idle: it writes on its turn. (A busy writer sees the
            # new frame when its write returns.)
            self._turn_asked = True
            self._turns.request(self._take_turn)

    def _take_turn(self) -> None:
        self._turn_asked = False
        if self._write_now is None or self._ready.is_set():
            self._ready.set()
            return
        if self.closed:
            return
        batch = self._next_batch()
        if not batch:  # what was pending was discarded meanwhile
            self._idle.set()
            return
        try:
            written = self._write_now(batch)
        except Exception as error:  # the peer is gone; the handler cleans up
            self._failed(error)
            self._ready.set()  # the writer task sees the outbox closed and ends
            return
        if not written:
            self._carried = batch
            self._ready.set()
            return
        self._count(batch)
        if self._pending and self._turns is not None:
            self._turn_asked = True  # more than one write's worth: another turn
            self._turns.request(self._take_turn)
        else:
            self._idle.set()

    def _next_batch(self) -> list[str]:
        """What goes out in the next write: everything pending, up to the limit, in order."""
        batch: list[str] = []
        while self._pending and len(batch) < MAX_FRAMES_PER_WRITE:
            (op_id, slot), (head, body, tail) = self._pending.popitem(last=False)
            if slot[0] == "all":
                self._lossless[op_id] -= 1
            batch.append(head + body + tail)
        return batch

    def _count(self, batch: list[str]) -> None:
        self.sent += len(batch)
        self._stats.frames_sent += len(batch)
        self._stats.writes += 1

    def _failed(self, error: Exception) -> None:
        log.debug("websocket send failed", error=repr(error))
        self.closed = True
        self._pending.clear()
        self._idle.set()

    async def _write(self) -> None:
        while not self.closed:
            if self._carried:
                batch, self._carried = self._carried, []
            elif self._pending:
                batch = self._next_batch()
            else:
                self._idle.set()
                self._ready.clear()
                await self._ready.wait()
                continue
            try:
                await self._send(batch)
            except Exception as error:
                self._failed(error)
                return
            self._count(batch)


def _retrieve(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        with contextlib.suppress(BaseException):
            task.exception()
