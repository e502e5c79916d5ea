"""The bounded retry buffer that carries ingestion over short TDengine outages.

Batches wait here, fully encoded, in arrival order. The bound is in rows, not
batches, because rows are what costs memory; a batch that does not fit is
refused whole (the caller gets ``TimeSeriesWriteError``), never split.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass(slots=True)
class PendingBatch:
    """An encoded batch and how far through its statements delivery has got.

    Statements before ``next_statement`` are known to have succeeded; a retry
    resumes at the first one not known to have succeeded. Re-sending a
    statement that in fact landed is harmless: tick rows are keyed by
    ``(sub-table, ts, seq)`` with ``seq`` fixed when the batch was encoded (bars
    by ``(sub-table, ts)``), so the same rows simply overwrite themselves.
    """

    statements: tuple[str, ...]
    rows: int
    next_statement: int = 0
    attempts: int = field(default=0, compare=False)

    @property
    def done(self) -> bool:
        return self.next_statement >= len(self.statements)


class RetryBuffer:
    def __init__(self, max_rows: int) -> None:
        if max_rows < 0:
            raise ValueError("max_rows must not be negative")
        self.max_rows = max_rows
        self._batches: deque[PendingBatch] = deque()
        self._rows = 0

    @property
    def rows(self) -> int:
        return self._rows

    def __len__(self) -> int:
        return len(self._batches)

    def offer(self, batch: PendingBatch) -> bool:
        """Queue ``batch`` behind the others if its rows fit; ``False`` (and no change) if not."""
        if self._rows + batch.rows > self.max_rows:
            return False
        self._batches.append(batch)
        self._rows += batch.rows
        return True

    def peek(self) -> PendingBatch | None:
        return self._batches[0] if self._batches else None

    def pop(self) -> PendingBatch:
        batch = self._batches.popleft()
        self._rows -= batch.rows
        return batch

    def discard(self, batch: PendingBatch) -> None:
        """Remove ``batch`` if it is still at the head (delivery does not hold a lock,
        so the buffer may have been cleared meanwhile)."""
        if self._batches and self._batches[0] is batch:
            self.pop()

    def clear(self) -> int:
        """Drop everything; the number of rows dropped."""
        dropped = self._rows
        self._batches.clear()
        self._rows = 0
        return dropped
