"""Values a DataLoader already holds, read without awaiting.

A nested field that awaits its loader costs an awaitable, a task and a
gather step in graphql-core for every row of a page, even when the value was
fetched long ago. When a list resolver has prefetched the related rows (one
batched query each, exactly what the loader would have issued), the nested
resolvers can answer synchronously from the loader's cache instead.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Final, TypeVar

from strawberry.dataloader import DataLoader

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()


def known(loader: DataLoader[K, V], key: K) -> V | _Missing:
    """The loaded value for ``key``, or :data:`MISSING` if it must still be awaited."""
    if not loader.cache:
        return MISSING
    future = loader.cache_map.get(key)
    if future is None or not future.done() or future.cancelled() or future.exception():
        return MISSING
    return future.result()
