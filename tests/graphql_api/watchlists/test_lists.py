"""Watchlist changes: ordering, the rules as user errors, limits, isolation, one
transaction each, and the change events the live streams follow."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from graphql_api.platform.errors import ErrorCode
from graphql_api.platform.settings import Settings
from graphql_api.realtime.channels import watchlist_channel
from graphql_api.realtime.events import decode_id_event
from graphql_api.services import Services
from graphql_api.watchlists.lists import WatchlistOutcome, WatchlistService, read_watchlists
from storage import models
from tests.conftest import make_settings


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(
        database_url,
        MATCHER_ENABLED="false",
        STRATEGY_ENGINE_ENABLED="false",
        MAX_WATCHLISTS_PER_USER=3,
        MAX_WATCHLIST_SYMBOLS=4,
    )


def codes(outcome: WatchlistOutcome) -> list[str]:
    assert outcome.errors == [] and outcome.watchlist is not None, outcome.errors
    return list(outcome.watchlist.symbols)


def problems(outcome: WatchlistOutcome) -> list[tuple[str, ErrorCode]]:
    assert outcome.watchlist is None
    return [(error.field, error.code) for error in outcome.errors]


async def create(services: Services, name: str = "Crypto", *symbols: str) -> int:
    outcome = await services.watchlists.create(services.demo_user_id, name, list(symbols))
    assert outcome.watchlist is not None, outcome.errors
    return outcome.watchlist.id


async def other_user(services: Services, name: str = "other") -> int:
    async with services.sessions() as session:
        user = models.User(username=name, role="TRADER", created_at=datetime.now(UTC))
        session.add(user)
        await session.commit()
    return user.id


async def stored(services: Services, watchlist_id: int) -> tuple[str, list[str]] | None:
    """What the database holds, read back independently of the service's answer."""
    async with services.sessions() as session:
        row = await session.get(models.Watchlist, watchlist_id)
        if row is None:
            return None
        entries = await session.scalars(
            select(models.WatchlistEntry.symbol_code)
            .where(models.WatchlistEntry.watchlist_id == watchlist_id)
            .order_by(models.WatchlistEntry.position)
        )
        return row.name, list(entries)


async def test_symbols_keep_the_order_they_are_given_and_edited_in(services: Services) -> None:
    user = services.demo_user_id
    service = services.watchlists
    # given a list created with lower-case codes
    watchlist_id = await create(services, "  Crypto ", "btcusdt", "ETHUSDT")
    # when adding at the end, at the front and in the middle, removing and reordering
    assert codes(await service.add(user, watchlist_id, ["600519.sh"], None)) == [
        "BTCUSDT",
        "ETHUSDT",
        "600519.SH",
    ]
    assert codes(await service.add(user, watchlist_id, ["000001.SZ"], 0)) == [
        "000001.SZ",
        "BTCUSDT",
        "ETHUSDT",
        "600519.SH",
    ]
    assert codes(await service.remove(user, watchlist_id, ["BTCUSDT", "600519.SH"])) == [
        "000001.SZ",
        "ETHUSDT",
    ]
    assert codes(await service.add(user, watchlist_id, ["BTCUSDT"], 1)) == [
        "000001.SZ",
        "BTCUSDT",
        "ETHUSDT",
    ]
    assert codes(
        await service.reorder(user, watchlist_id, ["ethusdt", "000001.SZ", "BTCUSDT"])
    ) == [
        "ETHUSDT",
        "000001.SZ",
        "BTCUSDT",
    ]
    renamed = await service.rename(user, watchlist_id, "Mixed")
    # then the database holds exactly that (names trimmed)
    assert codes(renamed) == ["ETHUSDT", "000001.SZ", "BTCUSDT"]
    assert await stored(services, watchlist_id) == ("Mixed", ["ETHUSDT", "000001.SZ", "BTCUSDT"])
    listed = await read_watchlists(services.sessions, user)
    assert [(w.name, list(w.symbols)) for w in listed] == [
        ("Mixed", ["ETHUSDT", "000001.SZ", "BTCUSDT"])
    ]


async def test_duplicates_are_kept_once_where_they_first_stood(services: Services) -> None:
    user = services.demo_user_id
    watchlist_id = await create(services, "Crypto", "BTCUSDT", "btcusdt", "ETHUSDT")
    assert (await stored(services, watchlist_id)) == ("Crypto", ["BTCUSDT", "ETHUSDT"])
    # adding what is already there (again) changes nothing, wherever it is asked for
    assert codes(await services.watchlists.add(user, watchlist_id, ["ETHUSDT", "BTCUSDT"], 0)) == [
        "BTCUSDT",
        "ETHUSDT",
    ]
    # removing what is not there is not an error either
    assert codes(await services.watchlists.remove(user, watchlist_id, ["600519.SH"])) == [
        "BTCUSDT",
        "ETHUSDT",
    ]


async def test_bad_input_is_refused_and_changes_nothing(services: Services) -> None:
    user = services.demo_user_id
    service = services.watchlists
    watchlist_id = await create(services, "Crypto", "BTCUSDT", "ETHUSDT")
    other_id = await create(services, "Stocks", "600519.SH")
    refusals = {
        "empty name": await service.create(user, "   ", []),
        "NUL in name": await service.create(user, "a\x00b", []),
        "bidi override": await service.rename(user, watchlist_id, "gpj\u202eexe"),
        "too long": await service.rename(user, watchlist_id, "x" * 129),
        "taken (case)": await service.rename(user, watchlist_id, "STOCKS"),
        "taken on create": await service.create(user, "ＣＲＹＰＴＯ ", []),
        "unknown on create": await service.create(user, "New", ["BTCUSDT", "NOPE"]),
        "unknown on add": await service.add(user, watchlist_id, ["NOPE"], None),
        "unknown on remove": await service.remove(user, watchlist_id, ["NOPE"]),
        "nothing to add": await service.add(user, watchlist_id, [], None),
        "position past the end": await service.add(user, watchlist_id, ["600519.SH"], 3),
        "negative position": await service.add(user, watchlist_id, ["600519.SH"], -1),
        "reorder misses one": await service.reorder(user, watchlist_id, ["ETHUSDT"]),
        "reorder repeats": await service.reorder(
            user, watchlist_id, ["ETHUSDT", "BTCUSDT", "BTCUSDT"]
        ),
        "reorder strangers": await service.reorder(user, watchlist_id, ["ETHUSDT", "600519.SH"]),
    }
    assert {what: problems(outcome) for what, outcome in refusals.items()} == {
        "empty name": [("name", ErrorCode.OUT_OF_RANGE)],
        "NUL in name": [("name", ErrorCode.INVALID)],
        "bidi override": [("name", ErrorCode.INVALID)],
        "too long": [("name", ErrorCode.OUT_OF_RANGE)],
        "taken (case)": [("name", ErrorCode.CONFLICT)],
        "taken on create": [("name", ErrorCode.CONFLICT)],
        "unknown on create": [("symbols.1", ErrorCode.UNKNOWN_SYMBOL)],
        "unknown on add": [("symbols.0", ErrorCode.UNKNOWN_SYMBOL)],
        "unknown on remove": [("symbols.0", ErrorCode.UNKNOWN_SYMBOL)],
        "nothing to add": [("symbols", ErrorCode.REQUIRED)],
        "position past the end": [("position", ErrorCode.OUT_OF_RANGE)],
        "negative position": [("position", ErrorCode.OUT_OF_RANGE)],
        "reorder misses one": [("symbols", ErrorCode.INVALID)],
        "reorder repeats": [("symbols", ErrorCode.INVALID)],
        "reorder strangers": [("symbols", ErrorCode.INVALID)],
    }
    assert "missing: BTCUSDT" in refusals["reorder misses one"].errors[0].message
    # nothing changed
    assert await stored(services, watchlist_id) == ("Crypto", ["BTCUSDT", "ETHUSDT"])
    assert await stored(services, other_id) == ("Stocks", ["600519.SH"])
    assert len(await read_watchlists(services.sessions, user)) == 2


async def test_limits_on_lists_per_user_and_symbols_per_list(services: Services) -> None:
    user = services.demo_user_id
    service = services.watchlists
    # at most 4 symbols per list (settings above)
    too_many = ["BTCUSDT", "ETHUSDT", "600519.SH", "000001.SZ", "BNBUSDT"]
    assert problems(await service.create(user, "big", too_many)) == [
        ("symbols", ErrorCode.OUT_OF_RANGE)
    ]
    watchlist_id = await create(services, "four", *too_many[:3])
    assert codes(await service.add(user, watchlist_id, too_many[3:4], None)) == too_many[:4]
    assert problems(await service.add(user, watchlist_id, too_many[4:], None)) == [
        ("symbols", ErrorCode.OUT_OF_RANGE)
    ]
    # ... but adding what is already there never counts twice
    assert codes(await service.add(user, watchlist_id, too_many[:2], None)) == too_many[:4]
    # at most 3 lists per user; another user has their own allowance
    await create(services, "two")
    await create(services, "three")
    assert problems(await service.create(user, "four more", [])) == [
        ("name", ErrorCode.OUT_OF_RANGE)
    ]
    other = await other_user(services)
    assert (await service.create(other, "mine", [])).errors == []
    # a deleted list frees its place
    assert (await service.delete(user, watchlist_id)).errors == []
    assert (await service.create(user, "four more", [])).errors == []


async def test_another_users_list_does_not_exist_for_you(services: Services) -> None:
    service = services.watchlists
    watchlist_id = await create(services, "Crypto", "BTCUSDT")
    intruder = await other_user(services)
    outcomes = [
        await service.rename(intruder, watchlist_id, "mine"),
        await service.add(intruder, watchlist_id, ["ETHUSDT"], None),
        await service.remove(intruder, watchlist_id, ["BTCUSDT"]),
        await service.reorder(intruder, watchlist_id, ["BTCUSDT"]),
        await service.delete(intruder, watchlist_id),
    ]
    for outcome in outcomes:
        assert problems(outcome) == [("id", ErrorCode.NOT_FOUND)]
    # exactly as for a list that does not exist at all
    assert problems(await service.delete(services.demo_user_id, 999_999)) == [
        ("id", ErrorCode.NOT_FOUND)
    ]
    assert await read_watchlists(services.sessions, intruder) == []
    assert await read_watchlists(services.sessions, intruder, watchlist_id) == []
    assert await stored(services, watchlist_id) == ("Crypto", ["BTCUSDT"])
    # and the same name is free for the other user
    assert (await service.create(intruder, "crypto", [])).errors == []


async def test_delete_removes_the_list_and_its_entries(services: Services) -> None:
    watchlist_id = await create(services, "Crypto", "BTCUSDT", "ETHUSDT")
    outcome = await services.watchlists.delete(services.demo_user_id, watchlist_id)
    assert codes(outcome) == ["BTCUSDT", "ETHUSDT"]  # what was deleted
    assert await stored(services, watchlist_id) is None
    async with services.sessions() as session:
        left = await session.scalar(
            select(func.count())
            .select_from(models.WatchlistEntry)
            .where(models.WatchlistEntry.watchlist_id == watchlist_id)
        )
    assert left == 0


async def test_concurrent_edits_of_one_list_lose_nothing(services: Services) -> None:
    user = services.demo_user_id
    watchlist_id = await create(services, "Crypto")
    symbols = ["BTCUSDT", "ETHUSDT", "600519.SH", "000001.SZ"]
    await asyncio.gather(
        *(services.watchlists.add(user, watchlist_id, [code], None) for code in symbols)
    )
    found = await stored(services, watchlist_id)
    assert found is not None and sorted(found[1]) == sorted(symbols)


async def test_concurrent_creates_respect_the_limit_and_names(services: Services) -> None:
    outcomes = await asyncio.gather(
        *(services.watchlists.create(services.demo_user_id, f"list {n % 4}", []) for n in range(8))
    )
    assert sum(1 for outcome in outcomes if not outcome.errors) == 3
    assert len(await read_watchlists(services.sessions, services.demo_user_id)) == 3


async def test_every_change_is_announced_on_the_owners_channel(services: Services) -> None:
    user = services.demo_user_id
    service = services.watchlists
    async with services.hub.subscribe([watchlist_channel(user)], conflate=False) as box:
        watchlist_id = await create(services, "Crypto", "BTCUSDT")
        await service.add(user, watchlist_id, ["ETHUSDT"], None)
        await service.add(user, watchlist_id, ["ETHUSDT"], None)  # no change: no event
        await service.add(user, watchlist_id, ["NOPE"], None)  # refused: no event
        await service.reorder(user, watchlist_id, ["ETHUSDT", "BTCUSDT"])
        await service.remove(user, watchlist_id, ["BTCUSDT"])
        await service.rename(user, watchlist_id, "Renamed")
        await service.delete(user, watchlist_id)
        events = [decode_id_event((await asyncio.wait_for(box.get(), 5)).message) for _ in range(6)]
        await asyncio.sleep(0.2)
        assert box.get_nowait() is None
    assert [(e["kind"], e["id"], e["change"]) for e in events] == [
        ("watchlist", watchlist_id, change)
        for change in ("created", "changed", "changed", "changed", "renamed", "deleted")
    ]


@pytest.mark.parametrize(
    "database_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
async def test_edits_from_two_processes_are_serialised_by_the_database(
    services: Services,
) -> None:
    """Two services with their own in-process locks stand for two server processes:
    only the lock on the user's row keeps their edits of one list apart."""
    user = services.demo_user_id
    first, second = (
        WatchlistService(
            services.sessions, services.catalog, services.outbox, max_watchlists=3, max_symbols=8
        )
        for _ in range(2)
    )
    watchlist_id = await create(services, "Crypto")
    symbols = ["BTCUSDT", "ETHUSDT", "600519.SH", "000001.SZ", "BNBUSDT", "SOLUSDT"]
    outcomes = await asyncio.gather(
        *(
            (first if n % 2 else second).add(user, watchlist_id, [code], None)
            for n, code in enumerate(symbols)
        ),
        *(first.create(user, f"list {n}", []) for n in range(2)),
        *(second.create(user, f"list {n + 2}", []) for n in range(2)),
    )
    assert all(outcome.errors == [] for outcome in outcomes[: len(symbols)])
    found = await stored(services, watchlist_id)
    assert found is not None and sorted(found[1]) == sorted(symbols)
    # one list existed: two more fit under the limit of three, whichever process asked
    created = [outcome for outcome in outcomes[len(symbols) :] if not outcome.errors]
    assert len(created) == 2
    assert len(await read_watchlists(services.sessions, user)) == 3
