"""The ``seq`` key column: what keeps two ticks with one timestamp apart in TDengine.

TDengine keys a row by its sub-table and its primary key. With the timestamp
alone, a second tick of a symbol in the same microsecond overwrites the first
(real feeds do print several trades in one microsecond). Since 3.3.0 a second
primary-key column may follow the timestamp; ``ticks`` has ``seq BIGINT
PRIMARY KEY``, so a row's key is ``(ts, seq)`` and ``FIRST``/``LAST``,
``ORDER BY ts`` and ``INTERVAL`` windows follow ``(ts, seq)``.

``seq`` is fixed when a batch is encoded, before anything is sent. Re-sending
the same encoded batch (the store's own retries, the outage buffer, a statement
that landed after its deadline) therefore overwrites its own rows instead of
adding to them. Two kinds of values are handed out:

* **Unkeyed writes** get values that increase in write order: microseconds
  since 2020 on a clock that never goes backwards within the process, shifted
  left by 12 bits with a random per-process tag in the low bits, so two
  processes writing the same symbol and timestamp in the same microsecond
  still get distinct keys (1 in 4,096 chance of equal tags; then they also
  need the same microsecond). One value per tick; a large batch simply takes
  the next microseconds, and the counter falls back in step with the clock.
  51 bits of microseconds last until 2091.
* **Keyed batches** (``ingestTicks(batchId: ...)``) get values derived from
  the key: a retry of the batch by its client is encoded again from scratch,
  so only values that depend on the key alone make it overwrite itself.
  They are negative (``-2**62 + hash(owner, batchId) * 2**20 + index``), so
  within a keyed batch equal timestamps keep their write order, and at one
  timestamp keyed ticks sort before unkeyed ones and among themselves by key.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable

from storage.timeseries.base import BatchKey

TAG_BITS = 12
"""Low bits of an unkeyed ``seq``: the process's random tag."""
SEQ_EPOCH_NS = 1_577_836_800_000_000_000
"""2020-01-01T00:00:00Z in nanoseconds: where the microsecond counter starts."""

KEYED_INDEX_BITS = 20
"""Ticks per keyed batch that get distinct values (1,048,576; far above any batch limit)."""
_KEYED_HASH_BITS = 62 - KEYED_INDEX_BITS
_KEYED_BASE = -(2**62)


class WriteSequence:
    """Hands out unkeyed ``seq`` values, increasing in the order batches are encoded."""

    def __init__(
        self, *, clock_ns: Callable[[], int] = time.time_ns, tag: int | None = None
    ) -> None:
        self._clock_ns = clock_ns
        self._tag = secrets.randbelow(1 << TAG_BITS) if tag is None else tag
        if not 0 <= self._tag < 1 << TAG_BITS:
            raise ValueError(f"tag must be in [0, {1 << TAG_BITS})")
        self._last = 0

    def take(self, count: int) -> list[int]:
        """``count`` increasing values, all greater than any handed out before."""
        now = max(0, (self._clock_ns() - SEQ_EPOCH_NS) // 1000)
        first = max(now, self._last + 1)
        self._last = first + count - 1
        return [(micros << TAG_BITS) | self._tag for micros in range(first, first + count)]


def keyed_sequence(key: BatchKey, count: int) -> list[int]:
    """``seq`` values for a keyed batch's ticks, the same every time the key is written."""
    if count > 1 << KEYED_INDEX_BITS:
        raise ValueError(f"a keyed batch holds at most {1 << KEYED_INDEX_BITS} ticks")
    digest = hashlib.sha256(f"{key.owner_id}\x00{key.batch_id}".encode()).digest()
    bucket = int.from_bytes(digest[:8], "big") >> (64 - _KEYED_HASH_BITS)
    first = _KEYED_BASE + (bucket << KEYED_INDEX_BITS)
    return list(range(first, first + count))
