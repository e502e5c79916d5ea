"""Publishing to the other processes, behind the writer's back.

A tick the ingestor has written reaches this process's subscribers at once
(:meth:`Hub.deliver`); the other processes hear of it through the bus. Waiting
for the bus's reply before the next write put a Redis round trip (and, under
fan-out load, a turn of a busy event loop) in front of every following batch:
the feed's ticks queued behind publishes. The relay takes that wait off the
writer: messages are queued here and one task publishes them, in the order
they were queued, a pipeline of up to ``chunk`` at a time.

Best effort, as the publish it replaces: a chunk the bus refuses, or does not
take within ``timeout`` seconds, is logged and dropped (those ticks are
stored; other processes' live subscribers miss them). The queue is bounded by
back-pressure, not by dropping: past ``high_water`` queued messages
:meth:`BusRelay.room` waits until the publisher has caught up, so a slow bus
slows the writer down as the awaited publish did, instead of growing memory or
losing ticks.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable, Sequence

import structlog

log = structlog.get_logger(__name__)

Publish = Callable[[Sequence[tuple[str, str]]], Awaitable[None]]


class BusRelay:
    """Parameters:
    publish: sends a batch to the bus in order (``Hub.publish_many``).
    chunk: messages per publish (one round trip each).
    high_water: queued messages past which :meth:`room` waits.
    timeout: seconds one publish may take before its chunk counts as failed (a
        bus that hangs must not hold the writers back for good).
    """

    def __init__(
        self,
        publish: Publish,
        *,
        chunk: int = 500,
        high_water: int = 10_000,
        timeout: float = 5.0,
    ) -> None:
        self._publish = publish
        self._chunk = chunk
        self._high_water = high_water
        self._timeout = timeout
        self._queue: deque[tuple[str, str]] = deque()
        self._ready = asyncio.Event()
        self._empty = asyncio.Event()
        self._empty.set()
        self._below_high_water = asyncio.Event()
        self._below_high_water.set()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.published = 0
        self.failed = 0

    @property
    def waiting(self) -> int:
        """Messages queued and not yet handed to the bus."""
        return len(self._queue)

    def send(self, messages: Sequence[tuple[str, str]]) -> None:
        """Queue ``messages`` for the bus, after everything queued before them."""
        if not messages:
            return
        if self._closed:
            raise RuntimeError("bus relay is closed")
        self._queue.extend(messages)
        self._empty.clear()
        if len(self._queue) >= self._high_water:
            self._below_high_water.clear()
        self._ready.set()
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="bus-relay")

    async def room(self) -> None:
        """Return once fewer than ``high_water`` messages wait (at once, normally)."""
        await self._below_high_water.wait()

    async def close(self, timeout: float) -> None:
        """Publish what is queued (for up to ``timeout`` seconds), then stop."""
        self._closed = True
        task, self._task = self._task, None
        if task is None:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._empty.wait()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if self._queue:
            log.warning("bus relay closed with messages unpublished", unpublished=len(self._queue))
            self._queue.clear()
        self._empty.set()
        self._below_high_water.set()

    async def _run(self) -> None:
        queue = self._queue
        while True:
            if not queue:
                self._empty.set()
                self._ready.clear()
                await self._ready.wait()
                continue
            batch = [queue.popleft() for _ in range(min(self._chunk, len(queue)))]
            try:
                async with asyncio.timeout(self._timeout):
                    await self._publish(batch)
                self.published += len(batch)
            except Exception as error:  # TimeoutError included
                self.failed += len(batch)
                log.warning("bus publish failed", unpublished=len(batch), error=repr(error))
            if len(queue) < self._high_water:
                self._below_high_water.set()
