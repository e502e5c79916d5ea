"""Every channel name on the bus, in one place.

A channel is the contract between the process that stages or publishes an
event and every process that listens for it; keeping the names together shows
the whole bus at a glance and keeps publisher and listener from drifting
apart. What travels on each channel is in :mod:`graphql_api.realtime.events`.
"""

from __future__ import annotations

__all__ = [
    "ALERTS_CONTROL_CHANNEL",
    "CONTROL_CHANNEL",
    "ORDERS_NEW_CHANNEL",
    "REVOCATION_CHANNEL",
    "SYMBOL_CHANGES_CHANNEL",
    "USER_CHANGES_CHANNEL",
    "WEBHOOKS_CHANNEL",
    "alert_channel",
    "order_channel",
    "signal_channel",
    "tick_channel",
    "watchlist_channel",
]

# Every newly accepted (or amended) order, and every canceled one, for the cluster's
# matcher (wherever it runs): it books the first kind and drops the second.
ORDERS_NEW_CHANNEL = "orders.new"

# Strategy status changes, for the strategy engine; the payload is an id event.
CONTROL_CHANNEL = "strategies.control"

# Alerts created, deleted, paused or resumed, for the alert engine; the payload is an id event.
ALERTS_CONTROL_CHANNEL = "alerts.control"

# Webhook deliveries were enqueued: wakes the webhook dispatcher (the payload says nothing more).
WEBHOOKS_CHANNEL = "webhooks.pending"

# Revoked session ids: every process forgets the session's tokens at once.
REVOCATION_CHANNEL = "auth.revocations"

# Ids of users whose role changed or who were removed: every process drops its cached identity.
USER_CHANGES_CHANNEL = "auth.users"

# Codes of symbols an administrator created or changed: every process reloads them.
SYMBOL_CHANGES_CHANNEL = "market.symbols"


def tick_channel(symbol: str) -> str:
    """The accepted ticks of one symbol."""
    return f"ticks.{symbol}"


def signal_channel(user_id: int) -> str:
    """Signals of one user's strategies."""
    return f"signals.{user_id}"


def order_channel(user_id: int) -> str:
    """Changes to one user's orders."""
    return f"orders.{user_id}"


def watchlist_channel(user_id: int) -> str:
    """Changes to one user's watchlists (created, edited, deleted); the payload is an id event."""
    return f"watchlists.{user_id}"


def alert_channel(user_id: int) -> str:
    """Firings of one user's alerts; the payload is an id event."""
    return f"alerts.{user_id}"
