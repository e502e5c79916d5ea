"""What the WebSocket handlers read besides Strawberry's own view attributes."""

from __future__ import annotations

from dataclasses import dataclass

from graphql_api.platform.settings import Settings


@dataclass(frozen=True, slots=True)
class RealtimeOptions:
    """What the handlers read besides Strawberry's own view attributes.

    ``multiplex``: share identical subscriptions (off: Strawberry's per-socket path).
    ``send_queue_size``: undelivered lossless events one subscription may have on a
    socket before the socket is closed (1013).
    ``max_connections_per_user``: authenticated sockets per user id and process.
    ``shutdown_timeout``: how long :func:`shutdown_all` waits per socket.
    """

    multiplex: bool = True
    send_queue_size: int = 256
    max_connections_per_user: int | None = 20
    shutdown_timeout: float = 2.0

    @classmethod
    def from_settings(cls, settings: Settings) -> RealtimeOptions:
        # getattr: these settings are new; the defaults apply until they exist.
        return cls(
            multiplex=bool(getattr(settings, "ws_multiplex", True)),
            send_queue_size=int(
                getattr(settings, "ws_send_queue_size", settings.subscriber_queue_size)
            ),
            max_connections_per_user=getattr(settings, "ws_max_connections_per_user", 20) or None,
        )
