"""Fan-out writes take turns, a bounded number per event-loop iteration.

When one tick reaches a thousand subscribers, a thousand connection writers
become ready at once. Woken directly, they all run in the *same* loop
iteration: tens of milliseconds during which no socket is read and no
database or Redis reply is handled. Everything else the process does waits one
such iteration per step, and the tick ingest path (``ingestTicks``: read the
request, run it, hand the ticks to the ingestor, several database round trips,
the Redis publish) has many steps. Under fan-out load it fell behind the rate
its feed posted at, requests queued without bound (they are lossless), and
ticks reached subscribers seconds late, or the feed's request timed out.

Writers of conflating streams lose nothing by waiting (a later write sends the
latest price), so they are the ones that wait: an outbox that has something to
write asks for a turn, and turns are granted at most ``per_turn`` at a time,
one batch per loop iteration, in the order they were asked for. Between two
batches the loop polls its sockets, so any other step waits at most about one
batch of writes. The total work is unchanged; only the order is fairer.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

# Writes per loop iteration: about a fifth of a millisecond of socket writes.
# Every other step (a request read, a database reply, a tick from the bus) waits
# about one iteration per hop, and a tick that arrives between two batches is
# what the writers still waiting send (they conflate): fewer writes per turn
# made both fan-out and feed latency lower without fewer deliveries (64, 32, 16,
# 8 and 4 were measured; docs/benchmarks.md).
DEFAULT_PER_TURN = 8


class WriteTurns:
    """Grants write turns in request order, ``per_turn`` per loop iteration.

    Parameters:
        per_turn: how many waiting writers one loop iteration wakes.
    """

    def __init__(self, per_turn: int = DEFAULT_PER_TURN) -> None:
        if per_turn < 1:
            raise ValueError("per_turn must be at least 1")
        self.per_turn = per_turn
        self._waiting: deque[Callable[[], None]] = deque()
        # The loop a grant is scheduled on (None: none is). A loop that ended with
        # a grant pending (tests run one loop each) must not leave the turns stuck.
        self._granting: asyncio.AbstractEventLoop | None = None
        self.granted = 0
        self.batches = 0

    def __len__(self) -> int:
        """Writers waiting for their turn."""
        return len(self._waiting)

    def request(self, grant: Callable[[], None]) -> None:
        """Call ``grant`` (synchronously, cheaply: it wakes a writer) on this writer's turn."""
        loop = asyncio.get_running_loop()
        if self._granting is not None and self._granting.is_closed():
            # The loop those writers waited on is gone, and so are they.
            self._waiting.clear()
            self._granting = None
        self._waiting.append(grant)
        if self._granting is None:
            self._granting = loop
            loop.call_soon(self._grant)

    def _grant(self) -> None:
        waiting = self._waiting
        for _ in range(min(self.per_turn, len(waiting))):
            waiting.popleft()()
            self.granted += 1
        self.batches += 1
        if waiting:
            # The next batch runs in the next iteration, after the sockets were polled.
            asyncio.get_running_loop().call_soon(self._grant)
        else:
            self._granting = None
