"""What this process's background work has done, for metrics and readiness.

The matcher and the strategy engine run on one process of the cluster at a
time (leader election), so their counters say what *this* process did; a
scrape of every process sums to the cluster's total.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field


@dataclass(slots=True)
class Activity:
    fills: int = 0
    signals: int = 0
    # Long-running background tasks by name ("ingestor", "matcher", …).
    tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)

    def stopped_tasks(self) -> list[str]:
        """Background tasks that ended while the process still serves (a crash)."""
        return sorted(name for name, task in self.tasks.items() if task.done())
