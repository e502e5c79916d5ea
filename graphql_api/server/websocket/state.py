"""Per GraphQL view: its shared streams, live connections, and closing them all."""

from __future__ import annotations

import asyncio
import weakref
from collections import Counter
from dataclasses import dataclass, field
from typing import Protocol

from graphql_api.realtime.multiplex import MultiplexRegistry
from graphql_api.server.websocket.messages import GOING_AWAY, GOING_AWAY_REASON


class ClosableConnection(Protocol):
    """What shutdown needs of a socket's connection."""

    async def close_gracefully(self, code: int, reason: str, timeout: float | None) -> None: ...


@dataclass(eq=False)
class RealtimeState:
    """Per GraphQL view: its shared streams, live handlers and connections per user."""

    registry: MultiplexRegistry = field(default_factory=MultiplexRegistry)
    handlers: set[ClosableConnection] = field(default_factory=set)
    connections: Counter[int] = field(default_factory=Counter)


_STATES: weakref.WeakKeyDictionary[object, RealtimeState] = weakref.WeakKeyDictionary()


def realtime_state(view: object) -> RealtimeState:
    state = _STATES.get(view)
    if state is None:
        state = _STATES[view] = RealtimeState()
    return state


async def shutdown_all(
    view: object | None = None,
    *,
    code: int = GOING_AWAY,
    reason: str = GOING_AWAY_REASON,
    timeout: float | None = None,
) -> int:
    """Complete every active operation and close every socket (of ``view``, or all).

    Call it before the server closes connections itself: uvicorn closes sockets
    with 1012 *before* the lifespan shutdown runs, so use
    :class:`graphql_api.server.serving.GracefulServer` (and keep a call in the lifespan
    for other servers). Returns how many sockets were closed.
    """
    states = [realtime_state(view)] if view is not None else list(_STATES.values())
    connections = [c for state in states for c in list(state.handlers)]
    await asyncio.gather(
        *(c.close_gracefully(code, reason, timeout) for c in connections),
        return_exceptions=True,
    )
    return len(connections)
