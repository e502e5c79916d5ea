"""Per-request DataLoaders: one batched query per access path.

Build a fresh :class:`Loaders` for every HTTP request. Over a WebSocket the
GraphQL context lives as long as the connection, so subscriptions build theirs
with ``cache=False``: batching still collapses one event's lookups into one
query, but nothing is remembered from one event to the next.
"""

from loaders.factory import Loaders, create_loaders

__all__ = ["Loaders", "create_loaders"]
