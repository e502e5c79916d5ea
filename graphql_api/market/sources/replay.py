"""The replay source: recorded ticks played into the live path at a speed factor.

The recording comes from a CSV file (``REPLAY_FILE``, the ``import-ticks`` format)
or from the store (``REPLAY_SYMBOLS`` between ``REPLAY_FROM`` and ``REPLAY_TO``).
It is read and checked whole when the source starts: one bad row fails the
source at once, naming the rows, rather than halfway through a replay (and it is
never retried, see :class:`SourceConfigError`).

Ticks are *re-stamped*: a replayed tick carries the time it is played at, not the
time it was recorded at, so the matcher (which ignores ticks older than
``MATCHER_MAX_TICK_LAG_SECONDS``), bars and subscriptions treat it as live. The
spacing between ticks is the recorded spacing divided by the speed; at
``max`` speed ticks go out in chunks as fast as the ingest path takes them, each
chunk stamped with the current time. A replay that falls behind by more than
``MAX_SLIP_SECONDS`` (slow writes) moves its schedule forward instead of
stamping ticks in the past. With ``loop`` the recording starts over when it ends,
one mean tick spacing after its last tick.

As a :class:`~graphql_api.market.sources.base.DailyBarSource` it serves a daily-bar
CSV (``backfill-bars --source replay --file``), the rows dated in the range.
"""

from __future__ import annotations

import asyncio
import csv
import gzip
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import structlog

from graphql_api.market.imports.csv_lines import without_bom
from graphql_api.market.imports.ticks import (
    REQUIRED_COLUMNS,
    RowProblem,
    own_errors,
    parse_row,
)
from graphql_api.market.ingest import TickIngestor
from graphql_api.market.source_health import TickSource
from graphql_api.market.sources.base import BAR_HEADER, SourceConfigError, check_range
from graphql_api.market.symbols import SymbolSpec
from graphql_api.market.tick_validation import check_tick
from graphql_api.market.value_ranges import TimeWindow
from storage.timeseries import Tick, TimeSeriesStore

log = structlog.get_logger(__name__)

MAX_SLIP_SECONDS = 1.0
"""How far behind its schedule a replay may fall before it moves the schedule on."""
MAX_CHUNK = 1000
"""The most ticks handed to the ingestor in one call."""
_REPORTED_ROWS = 5


@dataclass(slots=True)
class ReplayClock:
    """Where the replay reads the time and how it waits (tests pass a fake one)."""

    monotonic: Callable[[], float] = time.monotonic
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep


def read_csv_recording(
    lines: Iterable[str], specs: dict[str, SymbolSpec], window: TimeWindow, *, name: str
) -> list[Tick]:
    """Every row of a tick CSV as ticks in time order; :class:`SourceConfigError`
    naming the first bad rows (and how many there are) if any row is bad."""
    reader = csv.DictReader(without_bom(lines))
    ticks: list[Tick] = []
    problems: list[str] = []
    bad = 0
    try:
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise SourceConfigError(f"{name}: missing columns {', '.join(missing)}")
        for row in reader:
            line = reader.line_num
            draft = parse_row(row)
            if isinstance(draft, RowProblem):
                reasons = [draft.detail]
            else:
                tick, errors = check_tick(draft, specs.get(draft.symbol), window, "row")
                if tick is not None:
                    ticks.append(tick)
                    continue
                reasons = [error.message for error in own_errors(draft, errors)]
            bad += 1
            if len(problems) < _REPORTED_ROWS:
                problems.append(f"line {line}: {'; '.join(reasons)}")
    except (csv.Error, UnicodeDecodeError) as error:
        raise SourceConfigError(f"{name}: line {reader.line_num}: {error}") from error
    if bad:
        more = f" (and {bad - len(problems)} more)" if bad > len(problems) else ""
        raise SourceConfigError(
            f"{name}: {bad} bad row(s), nothing replayed: {' | '.join(problems)}{more}"
        )
    if not ticks:
        raise SourceConfigError(f"{name}: no ticks to replay")
    ticks.sort(key=lambda tick: tick.time)  # stable: equal times keep the file's order
    return ticks


def read_csv_file(path: Path, specs: dict[str, SymbolSpec], window: TimeWindow) -> list[Tick]:
    """:func:`read_csv_recording` of a file (gzip-compressed when it ends in ``.gz``,
    as a recorded day is best kept); a missing or unreadable file is a
    :class:`SourceConfigError` too."""
    name = f"REPLAY_FILE {path}"
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rt", encoding="utf-8-sig", newline="") as unpacked:
                return read_csv_recording(unpacked, specs, window, name=name)
        with path.open(encoding="utf-8-sig", newline="") as lines:
            return read_csv_recording(lines, specs, window, name=name)
    except (OSError, EOFError) as error:
        reason = getattr(error, "strerror", None) or error
        raise SourceConfigError(f"REPLAY_FILE {path}: {reason}") from error


async def read_stored_recording(
    store: TimeSeriesStore,
    symbols: Sequence[str],
    start: datetime,
    end: datetime,
    *,
    limit: int = 1_000_000,
) -> list[Tick]:
    """The stored ticks of ``symbols`` in [start, end], in time order (at most ``limit``)."""
    ticks: list[Tick] = []
    for symbol in symbols:
        ticks.extend(await store.ticks(symbol, start, end, limit))
    if not ticks:
        raise SourceConfigError(
            f"no stored ticks of {', '.join(symbols)} between {start.isoformat()} "
            f"and {end.isoformat()} to replay"
        )
    ticks.sort(key=lambda tick: tick.time)
    return ticks[:limit]


class ReplaySource:
    """Parameters:
    load: reads the recording (ticks in time order) when the source starts; raises
        :class:`SourceConfigError` when there is nothing valid to replay.
    symbols: the symbols the recording quotes (known before it is read, for ownership).
    speed: the speed factor; None plays as fast as the ingest path takes it.
    loop: start over at the end instead of ending.
    clock: the time source and sleep (tests pass a fake one).
    bars_file: a daily-bar CSV (the ``import-bars`` format) this source serves as
        history through :meth:`daily_bars`.
    """

    def __init__(
        self,
        load: Callable[[], Awaitable[list[Tick]]],
        symbols: frozenset[str],
        *,
        speed: float | None,
        loop: bool = False,
        clock: ReplayClock | None = None,
        bars_file: Path | None = None,
    ) -> None:
        self._load = load
        self._bars_file = bars_file
        self._symbols = symbols
        self._speed = speed
        self._loop = loop
        self._clock = clock or ReplayClock()
        self.passes = 0  # complete passes over the recording

    @property
    def name(self) -> TickSource:
        return TickSource.REPLAY

    def symbols(self) -> frozenset[str]:
        return self._symbols

    async def daily_bars(self, symbol: str, start: date, end: date) -> AsyncIterator[list[str]]:
        """The rows of ``bars_file`` dated in the range, in one chunk (the file holds one
        symbol's days, so ``symbol`` only names them for the import)."""
        check_range(start, end)
        if self._bars_file is None:
            raise SourceConfigError("replay: no daily-bar file to read (backfill-bars --file)")
        yield await asyncio.to_thread(bar_lines_in_range, self._bars_file, start, end)

    async def run(self, ingestor: TickIngestor) -> None:
        ticks = await self._load()
        log.info("replay starting", ticks=len(ticks), speed=self._speed or "max", loop=self._loop)
        while True:
            await self._play(ticks, ingestor)
            self.passes += 1
            if not self._loop:
                return
            if self._speed is not None:
                # The recording says nothing about the gap from its end to its start:
                # one mean spacing keeps the pace (and each pass stamped after the last).
                span = (ticks[-1].time - ticks[0].time).total_seconds()
                await self._clock.sleep(span / max(len(ticks) - 1, 1) / self._speed or 0.001)

    async def _play(self, ticks: list[Tick], ingestor: TickIngestor) -> None:
        clock, speed = self._clock, self._speed
        first = ticks[0].time
        started, anchor = clock.monotonic(), clock.now()
        index = 0
        while index < len(ticks):
            if speed is None:
                chunk = ticks[index : index + MAX_CHUNK]
                stamp = clock.now()
                await _hand_over(ingestor, [replace(tick, time=stamp) for tick in chunk])
                index += len(chunk)
                await asyncio.sleep(0)  # let subscribers and the matcher run
                continue
            due = (ticks[index].time - first).total_seconds() / speed
            wait = started + due - clock.monotonic()
            if wait > 0:
                await clock.sleep(wait)
            elif -wait > MAX_SLIP_SECONDS:
                started -= wait  # behind schedule: move the schedule on, not the stamps back
                anchor += timedelta(seconds=-wait)
                log.warning("replay fell behind; schedule moved on", seconds=round(-wait, 3))
            # Every tick due by now goes in one call; each keeps its scheduled offset.
            elapsed = clock.monotonic() - started
            end = index + 1
            while (
                end < len(ticks)
                and end - index < MAX_CHUNK
                and (ticks[end].time - first).total_seconds() / speed <= elapsed
            ):
                end += 1
            batch = [
                replace(tick, time=anchor + (tick.time - first) / speed)
                for tick in ticks[index:end]
            ]
            await _hand_over(ingestor, batch)
            index = end


def bar_lines_in_range(path: Path, start: date, end: date) -> list[str]:
    """The lines of a daily-bar CSV with the rows dated outside ``start``..``end``
    blanked (the import skips blank lines but counts them, so a rejected row is
    reported with its line in the file).

    A header that is not the ``import-bars`` one is kept as is (the import refuses it
    with its reason); so are rows whose date does not parse (the import reports them).
    """
    try:
        with path.open(encoding="utf-8-sig", newline="") as file:
            lines = file.read().splitlines()
    except OSError as error:
        raise SourceConfigError(f"{path}: {error.strerror or error}") from error
    except UnicodeDecodeError as error:
        raise SourceConfigError(f"{path}: not UTF-8 text ({error.reason})") from error
    kept = lines[:1] or [BAR_HEADER]
    for line in lines[1:]:
        try:
            day = date.fromisoformat(line.split(",", 1)[0].strip())
        except ValueError:
            kept.append(line)
            continue
        kept.append(line if start <= day <= end else "")
    return kept


async def _hand_over(ingestor: TickIngestor, ticks: list[Tick]) -> None:
    """Store and publish; a failed write loses these ticks (counted in the source's
    failures), not the replay."""
    try:
        await ingestor.ingest(ticks, source=TickSource.REPLAY)
    except Exception as error:
        log.warning("replayed ticks not stored", ticks=len(ticks), error=str(error))
