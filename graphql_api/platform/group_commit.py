"""Group commit: callers that arrive while a batch is being written form the next batch.

One database client commits only a few hundred transactions per second however
fast the code around it is, so a server that writes each request in its own
transaction tops out there. The classic answer (databases' own WAL group
commit, LMAX's batching consumer) is to let requests that arrive while a write
is in flight ride together in the next one. There is no timer: a lone caller
is written at once, and under load the window is simply the previous batch's
commit time, so batches grow exactly as much as the load needs.

One batch is in flight per :class:`GroupCommit` at a time, in arrival order.
The writer runs as its own task, so a caller that gives up (a cancelled
request) cancels neither its batch nor anyone else's: its item is written all
the same and the caller just does not hear the answer, as with a single
transaction whose caller disconnects after sending the commit. The writer
task ends when the queue is empty; nothing needs starting or stopping.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

BatchWriter = Callable[[list[Item]], Awaitable[list[Result | BaseException]]]
"""Writes a batch; returns one result (or the exception that failed it) per item, in order."""


@dataclass(slots=True)
class _Waiting(Generic[Item, Result]):
    item: Item
    answer: asyncio.Future[Result]


class GroupCommit(Generic[Item, Result]):
    """Parameters:
    write: writes one batch (see :data:`BatchWriter`); it must answer every item.
    max_batch: the most items one batch takes; the rest wait for the next.
    """

    def __init__(self, write: BatchWriter[Item, Result], *, max_batch: int = 100) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._write = write
        self._max_batch = max_batch
        self._queue: list[_Waiting[Item, Result]] = []
        self._writer: asyncio.Task[None] | None = None
        self.batches = 0
        """Batches written so far (for metrics and tests)."""
        self.largest_batch = 0

    async def submit(self, items: Sequence[Item]) -> list[Result]:
        """Queue ``items`` (contiguously, in order) and wait for all their answers."""
        loop = asyncio.get_running_loop()
        waiting = [_Waiting(item, loop.create_future()) for item in items]
        self._queue.extend(waiting)
        if self._writer is None or self._writer.done():
            self._writer = loop.create_task(self._drain(), name="group-commit")
        # Every answer is collected, so none is left with an exception nobody read.
        answers = await asyncio.gather(*(entry.answer for entry in waiting), return_exceptions=True)
        results: list[Result] = []
        for answer in answers:
            if isinstance(answer, BaseException):
                raise answer
            results.append(answer)
        return results

    async def _drain(self) -> None:
        while self._queue:
            batch = self._queue[: self._max_batch]
            del self._queue[: self._max_batch]
            self.batches += 1
            self.largest_batch = max(self.largest_batch, len(batch))
            try:
                results = await self._write([entry.item for entry in batch])
                if len(results) != len(batch):
                    raise RuntimeError(
                        f"batch writer answered {len(results)} of {len(batch)} items"
                    )
            except Exception as error:  # a writer that fails must not strand callers
                for entry in batch:
                    if not entry.answer.done():
                        entry.answer.set_exception(error)
                continue
            except BaseException:  # cancelled at shutdown: nobody is left waiting
                for entry in [*batch, *self._queue]:
                    entry.answer.cancel()
                self._queue.clear()
                raise
            for entry, result in zip(batch, results, strict=True):
                if entry.answer.done():
                    continue  # its caller was cancelled; the item is written all the same
                if isinstance(result, BaseException):
                    entry.answer.set_exception(result)
                else:
                    entry.answer.set_result(result)
