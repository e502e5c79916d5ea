"""The serve command's garbage-collector tuning."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from graphql_api.server.serving import tune_gc


@pytest.fixture
def restored_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_tune_gc_freezes_startup_objects_and_raises_the_young_threshold(
    restored_gc: None,
) -> None:
    older = gc.get_threshold()[1:]
    tune_gc(25_000)
    assert gc.get_freeze_count() > 0  # start-up objects leave every later pass
    assert gc.get_threshold() == (25_000, *older)
