"""The replay source: recorded spacing at a speed factor, re-stamped to now, looping,
bad files refused whole at start, the end of a recording, and replays of stored ticks.

The ticks go through the real ingest path into the real store (SQLite and
PostgreSQL); a fake clock makes the spacing exact where wall time would be flaky,
and one test checks the pace on the real clock within a loose tolerance.
"""

from __future__ import annotations

import asyncio
import gzip
import itertools
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from graphql_api.market.ingest import TickIngestor
from graphql_api.market.source_health import SourceState, TickSource
from graphql_api.market.sources import Backoff, SourceConfigError, supervise
from graphql_api.market.sources.replay import (
    ReplaySource,
    read_csv_file,
    read_csv_recording,
    read_stored_recording,
)
from graphql_api.market.value_ranges import TimeWindow
from graphql_api.platform.resilience import CircuitBreaker
from storage.timeseries import Tick
from tests.graphql_api.conftest import Embedded
from tests.graphql_api.market.sources.conftest import FakeClock

D = Decimal
SYMBOL = "600519.SH"
RECORDED = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)
HEADER = "symbol,time,last,bid,ask,volume\n"


def csv_of(*offsets_and_prices: tuple[float, str]) -> list[str]:
    rows = [HEADER]
    for offset, price in offsets_and_prices:
        at = (RECORDED + timedelta(seconds=offset)).isoformat()
        rows.append(f"{SYMBOL},{at},{price},{price},{price},100\n")
    return rows


async def recording(parts: Embedded, lines: list[str]) -> list[Tick]:
    specs = {spec.code: spec for spec in parts.catalog.all()}
    window = TimeWindow.around(datetime.now(UTC), 30, timedelta(0))
    return read_csv_recording(lines, specs, window, name="test.csv")


def source_of(ticks: list[Tick], clock: FakeClock | None, **options: object) -> ReplaySource:
    async def load() -> list[Tick]:
        return ticks

    return ReplaySource(
        load,
        frozenset(t.symbol for t in ticks),
        clock=clock.replay_clock() if clock else None,
        **options,  # type: ignore[arg-type]
    )


async def replayed(parts: Embedded, since: datetime) -> list[Tick]:
    """The ticks stored at or after ``since`` (the seeded ones are older)."""
    return await parts.store.ticks(SYMBOL, since, None, 10_000)


async def supervised(source: ReplaySource, ingestor: TickIngestor) -> SourceState:
    breaker = CircuitBreaker("source-replay", failure_threshold=3, reset_timeout=0.05)
    return await supervise(source, ingestor, breaker=breaker, backoff=Backoff(initial=0.01))


async def test_ten_times_faster_keeps_the_recorded_spacing_divided_by_ten(
    parts: Embedded, ingestor: TickIngestor, clock: FakeClock
) -> None:
    # given a recording with gaps of 1 s, 2 s and 0.5 s
    ticks = await recording(
        parts, csv_of((0, "1500.00"), (1, "1500.01"), (3, "1500.02"), (3.5, "1500.03"))
    )
    # when it is replayed at 10x to its end
    state = await supervised(source_of(ticks, clock, speed=10.0), ingestor)
    # then it ended, every tick is stored once, re-stamped to "now" with a tenth of the spacing
    assert state is SourceState.ENDED
    stored = await replayed(parts, clock.start)
    assert [t.last for t in stored] == [D("1500.00"), D("1500.01"), D("1500.02"), D("1500.03")]
    offsets = [(t.time - clock.start).total_seconds() for t in stored]
    assert offsets == pytest.approx([0.0, 0.1, 0.3, 0.35])
    assert sum(clock.sleeps) == pytest.approx(0.35)
    assert ingestor.health.of(TickSource.REPLAY).stored == 4
    assert ingestor.health.of(TickSource.REPLAY).state is SourceState.ENDED
    # and, ended, it is no longer expected: no last-tick age for an alert to page on
    assert ingestor.health.of(TickSource.REPLAY).age(time.monotonic()) is None


async def test_the_pace_on_the_real_clock_is_the_recorded_one_over_the_speed(
    parts: Embedded, ingestor: TickIngestor
) -> None:
    # given 2 s of recording, played at 10x on the wall clock
    ticks = await recording(parts, csv_of((0, "1500.00"), (1, "1500.01"), (2, "1500.02")))
    since = datetime.now(UTC) - timedelta(milliseconds=1)
    started = time.monotonic()
    await source_of(ticks, None, speed=10.0).run(ingestor)
    took = time.monotonic() - started
    # then it took about 0.2 s (never less; loose above: a shared machine is slow)
    assert 0.19 <= took < 1.5
    stored = await replayed(parts, since)
    gaps = [(b.time - a.time).total_seconds() for a, b in itertools.pairwise(stored)]
    assert gaps == pytest.approx([0.1, 0.1], abs=0.02)
    # and the stamps are "now": within the matcher's lag rules
    assert datetime.now(UTC) - stored[-1].time < timedelta(seconds=1)


async def test_a_looping_replay_starts_over_with_later_stamps(
    parts: Embedded, ingestor: TickIngestor, clock: FakeClock
) -> None:
    ticks = await recording(parts, csv_of((0, "1500.00"), (1, "1500.01")))
    source = source_of(ticks, clock, speed=1.0, loop=True)
    task = asyncio.create_task(supervised(source, ingestor))
    while source.passes < 3:  # noqa: ASYNC110 - waits on the replay task
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    stored = await replayed(parts, clock.start)
    assert len(stored) >= 6
    assert [t.last for t in stored[:6]] == [D("1500.00"), D("1500.01")] * 3
    times = [t.time for t in stored]
    assert times == sorted(times)
    assert len(set(times[:6])) == 6  # each pass is stamped after the previous one


async def test_max_speed_stores_everything_without_waiting(
    parts: Embedded, ingestor: TickIngestor, clock: FakeClock
) -> None:
    rows = [(i * 60.0, f"{1500 + i * 0.01:.2f}") for i in range(2500)]
    ticks = await recording(parts, csv_of(*rows))
    await source_of(ticks, clock, speed=None).run(ingestor)
    assert clock.sleeps == []
    stored = await replayed(parts, clock.start)
    assert len(stored) == 2500
    assert [t.last for t in stored] == [t.last for t in ticks]


async def test_a_file_with_bad_rows_fails_at_start_naming_them_and_is_not_retried(
    parts: Embedded, ingestor: TickIngestor, tmp_path: Path
) -> None:
    # given a file with one good row, an off-grid price, an unknown symbol and a bad time
    path = tmp_path / "day.csv"
    path.write_text(
        HEADER
        + f"{SYMBOL},{RECORDED.isoformat()},1500.00,,,100\n"
        + f"{SYMBOL},{RECORDED.isoformat()},1500.001,,,100\n"
        + f"NOPE.SH,{RECORDED.isoformat()},1,,,100\n"
        + f"{SYMBOL},yesterday,1500.00,,,100\n"
    )
    specs = {spec.code: spec for spec in parts.catalog.all()}
    window = TimeWindow.around(datetime.now(UTC), 30, timedelta(0))
    with pytest.raises(SourceConfigError) as refused:
        read_csv_file(path, specs, window)
    message = str(refused.value)
    assert "3 bad row(s), nothing replayed" in message
    assert "line 3: last 1500.001 is not a multiple of the tick size" in message
    assert "line 4: unknown symbol 'NOPE.SH'" in message
    assert "line 5: time 'yesterday' is not ISO 8601" in message

    # when a source with that problem is supervised
    loads = 0

    async def load() -> list[Tick]:
        nonlocal loads
        loads += 1
        raise refused.value

    state = await supervised(ReplaySource(load, frozenset(), speed=1.0), ingestor)
    # then it failed once, with the reason kept for /readyz, and stored nothing
    assert state is SourceState.FAILED
    assert loads == 1
    health = ingestor.health.of(TickSource.REPLAY)
    assert health.state is SourceState.FAILED
    assert health.last_error is not None and "line 3" in health.last_error
    assert health.stored == 0
    assert health.age(time.monotonic()) is not None  # still expected: the alert sees it


def test_a_missing_file_or_header_is_a_clear_start_error(tmp_path: Path) -> None:
    window = TimeWindow.around(datetime.now(UTC), 30, timedelta(0))
    with pytest.raises(SourceConfigError, match=r"REPLAY_FILE .*nope\.csv: No such file"):
        read_csv_file(tmp_path / "nope.csv", {}, window)
    with pytest.raises(SourceConfigError, match="missing columns last"):
        read_csv_recording(["symbol,time\n"], {}, window, name="x.csv")
    with pytest.raises(SourceConfigError, match="no ticks to replay"):
        read_csv_recording([HEADER], {}, window, name="x.csv")


async def test_a_gzipped_file_reads_as_its_plain_text(parts: Embedded, tmp_path: Path) -> None:
    # given the same recording as plain text and gzip-compressed
    text = "".join(csv_of((0.0, "1500.00"), (2.5, "1500.01"), (7.0, "1499.99")))
    plain, packed = tmp_path / "day.csv", tmp_path / "day.csv.gz"
    plain.write_text(text)
    packed.write_bytes(gzip.compress(text.encode()))
    specs = {spec.code: spec for spec in parts.catalog.all()}
    window = TimeWindow.around(datetime.now(UTC), 30, timedelta(0))
    # then both give the same ticks, and a damaged archive is a clear start error
    assert read_csv_file(packed, specs, window) == read_csv_file(plain, specs, window)
    packed.write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(SourceConfigError, match=r"REPLAY_FILE .*day\.csv\.gz"):
        read_csv_file(packed, specs, window)


async def test_stored_ticks_of_a_past_day_replay_into_the_present(
    parts: Embedded, ingestor: TickIngestor, clock: FakeClock
) -> None:
    # given three ticks stored for a past morning
    history = [
        Tick(SYMBOL, RECORDED + timedelta(seconds=s), D(p), D(p), D(p), D(100))
        for s, p in ((0, "1400.00"), (2, "1400.50"), (4, "1401.00"))
    ]
    await parts.store.write_ticks(history)
    start, end = RECORDED, RECORDED + timedelta(seconds=10)
    ticks = await read_stored_recording(parts.store, [SYMBOL], start, end)
    assert [t.time for t in ticks] == [t.time for t in history]

    async def load() -> list[Tick]:
        return await read_stored_recording(parts.store, [SYMBOL], start, end)

    # when they are replayed at 2x
    await ReplaySource(load, frozenset({SYMBOL}), speed=2.0, clock=clock.replay_clock()).run(
        ingestor
    )
    # then copies are stored now, a second apart; the history itself is untouched
    stored = await replayed(parts, clock.start)
    assert [t.last for t in stored] == [D("1400.00"), D("1400.50"), D("1401.00")]
    assert [(t.time - clock.start).total_seconds() for t in stored] == pytest.approx([0, 1, 2])
    assert len(await parts.store.ticks(SYMBOL, start, end, 100)) == 3
    with pytest.raises(SourceConfigError, match=r"no stored ticks of 600519\.SH"):
        await read_stored_recording(parts.store, [SYMBOL], end, end + timedelta(seconds=1))
