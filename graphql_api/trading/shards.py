"""Matcher shards: which process matches which symbols.

Symbols are spread over a fixed number of shards by a stable hash of their code
(CRC-32, the same in every process and across restarts). Each shard is a
cluster singleton led by one process (``Leadership(engine, shard.name)``, an
advisory lock, as the single matcher was), so with several server processes the
shards' fills proceed in parallel, and the shards of a process that dies move
to the others within the lease. With one shard (the default) the only shard is
named ``matcher``, as the single matcher always was.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass


def shard_of(symbol: str, count: int) -> int:
    """The shard ``symbol`` belongs to, out of ``count``."""
    return zlib.crc32(symbol.encode()) % count


@dataclass(frozen=True, slots=True)
class MatcherShard:
    index: int
    count: int

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ValueError(f"shard {self.index} of {self.count}")

    @property
    def name(self) -> str:
        """The leader election's name (and the metrics' ``singleton`` label)."""
        return "matcher" if self.count == 1 else f"matcher-{self.index}"

    def owns(self, symbol: str) -> bool:
        return self.count == 1 or shard_of(symbol, self.count) == self.index


ALL_SYMBOLS = MatcherShard(0, 1)
