"""Matcher shards: a stable spread of symbols, and a matcher that keeps to its own."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator

import pytest

from graphql_api.trading.matcher import PaperMatcher
from graphql_api.trading.order_types import TimeInForce
from graphql_api.trading.shards import MatcherShard, shard_of
from tests.graphql_api.conftest import POLICY, Embedded, open_embedded
from tests.graphql_api.trading.test_fill_batch import SYMBOL, crossing, resting_buys


@pytest.fixture
async def parts(database_url: str) -> AsyncIterator[Embedded]:
    async with open_embedded(database_url) as embedded:
        yield embedded


def test_a_symbol_has_one_shard_everywhere_and_symbols_spread_evenly() -> None:
    assert shard_of("BTCUSDT", 4) == shard_of("BTCUSDT", 4)  # no per-process salt
    spread = Counter(shard_of(f"{n:06d}.SZ", 4) for n in range(4000))
    assert set(spread) == {0, 1, 2, 3}
    assert all(800 < count < 1200 for count in spread.values()), spread


def test_a_single_shard_is_the_matcher_of_old_and_owns_everything() -> None:
    only = MatcherShard(0, 1)
    assert only.name == "matcher" and only.owns("ANYTHING")
    second = MatcherShard(1, 3)
    assert second.name == "matcher-1"
    assert second.owns("BTCUSDT") is (shard_of("BTCUSDT", 3) == 1)
    with pytest.raises(ValueError, match="shard 3 of 3"):
        MatcherShard(3, 3)


async def test_a_shard_books_and_fills_only_its_own_symbols(parts: Embedded) -> None:
    ids = await resting_buys(parts, 3, TimeInForce.GTC, lots=1)
    mine = shard_of(SYMBOL, 2)

    def matcher(index: int) -> PaperMatcher:
        return PaperMatcher(
            parts.sessions, parts.hub, parts.catalog, parts.orders, POLICY,
            shard=MatcherShard(index, 2),
        )  # fmt: skip

    other, owner = matcher(1 - mine), matcher(mine)
    await other.resync()
    await owner.resync()
    assert other.book(SYMBOL) is None  # not its symbol: never booked
    owned = owner.book(SYMBOL)
    assert owned is not None and len(owned) == 3
    # a crossing tick handed to the other shard fills nothing
    await other.on_tick(crossing())
    assert len(owned) == 3
    await owner.on_tick(crossing())
    assert len(owned) == 0, ids
