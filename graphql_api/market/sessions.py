"""Trading sessions: when a symbol trades, as data (a time zone and weekly windows).

A session is an IANA time zone plus windows such as "Mon-Fri 09:30-11:30 and
13:00-15:00": A-shares in ``Asia/Shanghai``, US equities 09:30-16:00 in
``America/New_York`` (its clock changes with daylight saving time; the UTC
instants follow), crypto 00:00-24:00 every day. Windows are wall-clock times in
the session's zone, so a change of UTC offset never needs a change of data.

Three questions are answered for any instant, all from the same occurrences of
the windows (pure functions, no I/O):

- :meth:`TradingSession.is_open`: is ``at`` inside a window (open inclusive,
  close exclusive)?
- :meth:`TradingSession.next_open` / :meth:`TradingSession.next_close`: when
  trading next starts after a closed spell, and next stops. Windows that touch
  or overlap make one open spell (a 24/7 session never opens or closes: both
  are None);
- :meth:`TradingSession.day_close`: when the trading day in progress, or the
  next one, ends — DAY orders expire then. A trading day is the windows that
  open on one local calendar date, so a lunch break does not end it and a 24/7
  session still has days (they end at each window's close).

Rules for odd wall times: a window's close of ``24:00`` is the next midnight;
a close at or before its open closes on the next day (``07:00-07:00`` is a
24-hour window). A wall time that does not exist on a DST change day (02:30 in
New York on the spring-forward Sunday) is read with the offset before the
change; an ambiguous one is its first occurrence. Holidays are not modelled.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "ALWAYS_OPEN_UTC",
    "OffSessionOrders",
    "SessionError",
    "TradingSession",
    "TradingWindow",
    "Weekday",
    "format_minute",
    "parse_hours",
    "parse_minute",
    "session_from_json",
]

MINUTES_PER_DAY = 24 * 60
# Windows span at most a day, a day's windows open on one date, and every weekday
# recurs within a week: two weeks of dates around an instant hold every answer.
_LOOK_BACK_DAYS = 2
_LOOK_AHEAD_DAYS = 9
_CLOCK = re.compile(r"(\d{2}):(\d{2})")


class Weekday(enum.IntEnum):
    """Days as :meth:`datetime.date.weekday` counts them."""

    MON = 0
    TUE = 1
    WED = 2
    THU = 3
    FRI = 4
    SAT = 5
    SUN = 6


ALL_DAYS = frozenset(Weekday)


class OffSessionOrders(enum.Enum):
    """What happens to an order placed while its symbol's session is closed."""

    REFUSE = "REFUSE"  # rejected at once with MARKET_CLOSED
    REST = "REST"  # accepted; nothing fills it before the next open


class SessionError(ValueError):
    """A session definition that cannot be used; ``field`` is a dotted path into it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class TradingWindow:
    """Trading from ``open`` to ``close`` (minutes after local midnight) on ``days``
    (the days it opens on). ``close`` is 0 to 1440; at or before ``open`` it is on
    the next day (so ``22:00-00:00`` ends at midnight, like ``22:00-24:00``)."""

    days: frozenset[Weekday]
    open: int
    close: int

    @property
    def length(self) -> timedelta:
        minutes = self.close - self.open
        return timedelta(minutes=minutes if minutes > 0 else minutes + MINUTES_PER_DAY)

    def check(self, field: str) -> None:
        if not self.days:
            raise SessionError(f"{field}.days", "a window trades on at least one day")
        if not 0 <= self.open < MINUTES_PER_DAY:
            raise SessionError(f"{field}.open", "open must be 00:00 to 23:59")
        if not 0 <= self.close <= MINUTES_PER_DAY:
            raise SessionError(f"{field}.close", "close must be 00:00 to 24:00")


@dataclass(frozen=True, slots=True)
class _Occurrence:
    day: date
    open: datetime
    close: datetime


@dataclass(frozen=True, slots=True)
class TradingSession:
    """Parameters:
    timezone: IANA name the windows' wall times are in (``Asia/Shanghai``).
    windows: the weekly windows (at least one).

    Build it with :meth:`create` (checks the definition); the answers for the
    last instant asked about are memoised, as the matcher asks once per tick.
    """

    timezone: str
    windows: tuple[TradingWindow, ...]
    _zone: ZoneInfo = field(compare=False, hash=False, repr=False)
    # (from, until, open): the state holds for every instant in [from, until).
    _memo: list[tuple[datetime, datetime, bool]] = field(
        default_factory=list, compare=False, hash=False, repr=False
    )

    @classmethod
    def create(cls, timezone: str, windows: Iterable[TradingWindow]) -> TradingSession:
        """A checked session; :class:`SessionError` says what is wrong."""
        zone = zone_named(timezone)
        ordered = tuple(sorted(windows, key=lambda w: (w.open, w.close, sorted(w.days))))
        if not ordered:
            raise SessionError("windows", "a session has at least one window")
        for index, window in enumerate(ordered):
            window.check(f"windows.{index}")
        return cls(timezone=zone.key, windows=ordered, _zone=zone)

    # -- the questions --------------------------------------------------------

    def is_open(self, at: datetime) -> bool:
        memo = self._memo
        if memo and memo[0][0] <= at < memo[0][1]:
            return memo[0][2]
        start, until, state = self._state(at)
        memo[:] = [(start, until, state)]
        return state

    def next_open(self, after: datetime) -> datetime | None:
        """The first instant after ``after`` at which trading starts following a
        closed spell; None if the session never closes."""
        horizon = self._horizon(after)
        for start, end in self._spells(after):
            if start > after and end < horizon:
                return start
        return None

    def next_close(self, after: datetime) -> datetime | None:
        """The first instant after ``after`` at which trading stops (a lunch break,
        the day's end); None if the session never closes."""
        horizon = self._horizon(after)
        for _, end in self._spells(after):
            if after < end < horizon:
                return end
        return None

    def day_close(self, after: datetime) -> datetime:
        """The end of the trading day in progress at ``after`` or, between days, of
        the next one: when a DAY order placed at ``after`` expires."""
        ends: dict[date, datetime] = {}
        for occurrence in self._occurrences(after):
            ends[occurrence.day] = max(ends.get(occurrence.day, occurrence.close), occurrence.close)
        return min(end for end in ends.values() if end > after)

    # -- serialised forms -----------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """The stored form (``symbols.session``) and the audit's."""
        return {
            "timezone": self.timezone,
            "windows": [
                {
                    "days": [day.name for day in sorted(window.days)],
                    "open": format_minute(window.open),
                    "close": format_minute(window.close),
                }
                for window in self.windows
            ],
        }

    def hours_text(self) -> str:
        """The compact form of the windows the CSV import reads (:func:`parse_hours`)."""
        groups: dict[tuple[Weekday, ...], list[str]] = {}
        for window in self.windows:
            span = f"{format_minute(window.open)}-{format_minute(window.close)}"
            groups.setdefault(tuple(sorted(window.days)), []).append(span)
        return "; ".join(f"{_days_text(days)} {' '.join(spans)}" for days, spans in groups.items())

    # -- the occurrences ------------------------------------------------------

    def _occurrences(self, around: datetime) -> list[_Occurrence]:
        """Every window occurrence opening on a local date from two days before
        ``around`` to nine after, by open time."""
        first = around.astimezone(self._zone).date() - timedelta(days=_LOOK_BACK_DAYS)
        found: list[_Occurrence] = []
        for offset in range(_LOOK_BACK_DAYS + _LOOK_AHEAD_DAYS + 1):
            day = first + timedelta(days=offset)
            for window in self.windows:
                if Weekday(day.weekday()) in window.days:
                    opens = self._instant(day, window.open)
                    found.append(_Occurrence(day, opens, self._close_instant(day, window)))
        found.sort(key=lambda o: o.open)
        return found

    def _horizon(self, around: datetime) -> datetime:
        """Local midnight starting the last date :meth:`_occurrences` looks at: a spell
        ending before it really ends there (later dates' windows open after it)."""
        first = around.astimezone(self._zone).date() - timedelta(days=_LOOK_BACK_DAYS)
        return self._instant(first + timedelta(days=_LOOK_BACK_DAYS + _LOOK_AHEAD_DAYS), 0)

    def _instant(self, day: date, minute: int) -> datetime:
        """The UTC instant of a wall time ``minute`` after local midnight of ``day``
        (1440 is the next midnight)."""
        whole_days, minute = divmod(minute, MINUTES_PER_DAY)
        local = datetime.combine(
            day + timedelta(days=whole_days), time(minute // 60, minute % 60), tzinfo=self._zone
        )
        return local.astimezone(UTC)

    def _close_instant(self, day: date, window: TradingWindow) -> datetime:
        overnight = window.close <= window.open
        return self._instant(day, window.close + (MINUTES_PER_DAY if overnight else 0))

    def _spells(self, around: datetime) -> Iterator[tuple[datetime, datetime]]:
        """Maximal open spells (touching or overlapping occurrences merged), by start.

        The first may really have started earlier and the last may go on later
        (they are cut at the ends of the dates looked at); callers only ask about
        instants well inside.
        """
        spell: tuple[datetime, datetime] | None = None
        for occurrence in self._occurrences(around):
            if spell is not None and occurrence.open <= spell[1]:
                spell = (spell[0], max(spell[1], occurrence.close))
                continue
            if spell is not None:
                yield spell
            spell = (occurrence.open, occurrence.close)
        if spell is not None:
            yield spell

    def _state(self, at: datetime) -> tuple[datetime, datetime, bool]:
        """Whether ``at`` is open, and the span around it in that state."""
        previous_end: datetime | None = None
        spells = list(self._spells(at))
        for start, end in spells:
            if at < start:
                return (previous_end or at, start, False)
            if at < end:
                return (start, end, True)
            previous_end = end
        return (at, at + timedelta(microseconds=1), False)  # not reached: windows recur weekly


def zone_named(timezone: str) -> ZoneInfo:
    """The IANA zone ``timezone`` names, or :class:`SessionError`."""
    name = timezone.strip()
    try:
        if not name or len(name) > 64:
            raise ValueError(name)
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        shown = repr(name) if len(name) <= 64 else "that name"
        raise SessionError(
            "timezone",
            f"{shown} is not an IANA time zone (e.g. Asia/Shanghai, America/New_York, UTC)",
        ) from None


def parse_minute(text: str, field: str, *, closing: bool) -> int:
    """``HH:MM`` as minutes after midnight; ``24:00`` only as a close."""
    match = _CLOCK.fullmatch(text.strip())
    if match is None:
        raise SessionError(field, f"{text.strip()[:16]!r} is not a time of day HH:MM")
    hours, minutes = int(match[1]), int(match[2])
    value = hours * 60 + minutes
    if minutes >= 60 or value > MINUTES_PER_DAY or (value == MINUTES_PER_DAY and not closing):
        raise SessionError(field, f"{text.strip()!r} is not a time of day (00:00 to 23:59)")
    return value


def format_minute(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def parse_hours(text: str, field: str = "hours") -> list[TradingWindow]:
    """Windows from their compact form: ``MON-FRI 09:30-11:30 13:00-15:00``, day
    groups separated by ``;`` (``MON-FRI 09:30-16:00; SAT 10:00-12:00``); days as a
    range or comma list (``MON,WED``)."""
    windows: list[TradingWindow] = []
    groups = [group.strip() for group in text.split(";")]
    if not any(groups):
        raise SessionError(field, "no trading hours given (e.g. MON-FRI 09:30-16:00)")
    for group in groups:
        days_text, _, spans_text = group.partition(" ")
        days = _parse_days(days_text, field)
        spans = spans_text.split()
        if not spans:
            raise SessionError(field, f"{group[:32]!r} has days but no HH:MM-HH:MM hours")
        for span in spans:
            opens, dash, closes = span.partition("-")
            if not dash:
                raise SessionError(field, f"{span[:16]!r} is not HH:MM-HH:MM")
            windows.append(
                TradingWindow(
                    days,
                    parse_minute(opens, field, closing=False),
                    parse_minute(closes, field, closing=True),
                )
            )
    return windows


def session_from_json(data: Any) -> TradingSession:
    """A session from its stored form (:meth:`TradingSession.to_json`)."""
    if not isinstance(data, dict) or not isinstance(data.get("windows"), list):
        raise SessionError("session", "a session is {timezone, windows}")
    windows = []
    for index, raw in enumerate(data["windows"]):
        where = f"windows.{index}"
        days = frozenset(_parse_day(str(day), f"{where}.days") for day in raw["days"])
        windows.append(
            TradingWindow(
                days,
                parse_minute(str(raw["open"]), f"{where}.open", closing=False),
                parse_minute(str(raw["close"]), f"{where}.close", closing=True),
            )
        )
    return TradingSession.create(str(data.get("timezone", "")), windows)


def _parse_days(text: str, field: str) -> frozenset[Weekday]:
    days: set[Weekday] = set()
    for part in text.upper().split(","):
        first, dash, last = part.partition("-")
        if dash:
            start, end = _parse_day(first, field), _parse_day(last, field)
            span = range(start, end + 1) if start <= end else [*range(start, 7), *range(end + 1)]
            days.update(Weekday(day) for day in span)
        else:
            days.add(_parse_day(first, field))
    return frozenset(days)


def _parse_day(text: str, field: str) -> Weekday:
    try:
        return Weekday[text.strip().upper()]
    except KeyError:
        raise SessionError(field, f"{text.strip()[:8]!r} is not a day (MON to SUN)") from None


def _days_text(days: tuple[Weekday, ...]) -> str:
    values = [int(day) for day in days]
    if len(values) > 2 and values == list(range(values[0], values[-1] + 1)):
        return f"{days[0].name}-{days[-1].name}"
    return ",".join(day.name for day in days)


ALWAYS_OPEN_UTC = TradingSession.create("UTC", [TradingWindow(ALL_DAYS, 0, MINUTES_PER_DAY)])
