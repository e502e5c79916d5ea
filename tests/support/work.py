"""Work measured deterministically: Python function calls, not seconds.

Tests never assert on wall-clock speed; they can assert that handling a request
made at most so many calls. :func:`call_budget` counts every Python function
call on this thread and raises :class:`WorkBudgetExceededError` inside the code under
test once the budget is spent, so a runaway (exponential) walk fails the test
quickly instead of hanging it.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from types import FrameType
from typing import Any


class WorkBudgetExceededError(Exception):
    pass


@dataclass
class Work:
    calls: int = 0


@contextlib.contextmanager
def call_budget(limit: int) -> Iterator[Work]:
    """Count calls meanwhile; past ``limit`` the next call raises ``WorkBudgetExceededError``."""
    work = Work()

    def profile(_frame: FrameType, event: str, _arg: Any) -> None:
        if event == "call":
            work.calls += 1
            if work.calls > limit:
                sys.setprofile(None)
                raise WorkBudgetExceededError(f"more than {limit} calls")

    previous = sys.getprofile()
    sys.setprofile(profile)
    try:
        yield work
    finally:
        sys.setprofile(previous)
