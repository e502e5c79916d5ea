"""Cursor, page-size and time-range handling shared by every connection field.

Every connection pages both ways, as Relay specifies: ``first``/``after`` from
the start, ``last``/``before`` from the end. A page answers ``hasNextPage`` and
``hasPreviousPage`` for the side it was read toward from its extra row; for
the other side, and for ``totalCount``, it keeps a check that runs only if the
client selects that field (one indexed ``EXISTS`` or one ``COUNT``).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Generic, TypeVar

from sqlalchemy import ColumnElement, Select

from graphql_api.platform.number_text import NumberTextError, parse_ascii_int
from resolvers.context import Info
from resolvers.errors import bad_user_input
from resolvers.lookahead import wrote_argument
from storage.engine import SessionFactory
from storage.repositories import keyset

T = TypeVar("T")

# Our ids are database keys: positive integers below 2^63 (18 digits always fit).
MAX_ID_DIGITS = 18
# A cursor is "<kind>:<key>" in base64; anything longer is not one of ours.
MAX_CURSOR_LENGTH = 200


def check_page_size(size: int, cap: int, argument: str = "first") -> int:
    if size < 1 or size > cap:
        raise bad_user_input(f"{argument} must be between 1 and {cap}", argument=argument)
    return size


def check_time_range(start: datetime | None, end: datetime | None) -> None:
    """``from`` / ``to`` arguments: each with a UTC offset, and ``from`` before ``to``."""
    for name, moment in (("from", start), ("to", end)):
        if moment is not None and moment.tzinfo is None:
            raise bad_user_input(
                f"{name} must carry a UTC offset, e.g. 2026-03-02T01:30:00Z", argument=name
            )
    if start is not None and end is not None and start >= end:
        raise bad_user_input("from must be before to", argument="from")


def encode_cursor(kind: str, key: str | int) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{key}".encode()).decode()


def decode_cursor(kind: str, cursor: str | None, argument: str = "after") -> str | None:
    """The key of a cursor of this ``kind`` (strict base64: no stray characters)."""
    if cursor is None:
        return None
    try:
        if len(cursor) > MAX_CURSOR_LENGTH or not cursor.isascii():
            raise ValueError(cursor)
        raw = base64.b64decode(cursor.encode("ascii"), altchars=b"-_", validate=True)
        decoded = raw.decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise bad_user_input(f"{argument} is not a valid cursor", argument=argument) from None
    prefix, _, key = decoded.partition(":")
    # Our keys are ids and symbol codes: printable ASCII (no NUL for the database).
    if prefix != kind or not key or not (key.isascii() and key.isprintable()):
        raise bad_user_input(f"{argument} is not a cursor of this list", argument=argument)
    return key


def decode_int_cursor(kind: str, cursor: str | None, argument: str = "after") -> int | None:
    """The id in a cursor of this ``kind``, read like :func:`parse_id`."""
    key = decode_cursor(kind, cursor, argument)
    if key is None:
        return None
    try:
        return parse_ascii_int(key, max_digits=MAX_ID_DIGITS)
    except NumberTextError:
        raise bad_user_input(f"{argument} is not a valid cursor", argument=argument) from None


def parse_id(value: str, argument: str = "id") -> int:
    """Our ids are positive integers in ASCII digits; anything else cannot name an object."""
    try:
        return parse_ascii_int(value, max_digits=MAX_ID_DIGITS)
    except NumberTextError:
        raise bad_user_input(f"{argument} is not a valid id", argument=argument) from None


Check = Callable[[], Awaitable[bool]]


@dataclass(frozen=True, slots=True)
class Paging:
    """A connection field's Relay arguments as given. ``first`` has a default, so
    ``first_given`` says whether the client wrote it (next to ``last`` it is an error)."""

    first: int
    after: str | None
    last: int | None = None
    before: str | None = None
    first_given: bool = False

    @classmethod
    def of(
        cls, info: Info, first: int, after: str | None, last: int | None, before: str | None
    ) -> Paging:
        return cls(first, after, last, before, first_given=wrote_argument(info, "first"))

    def window(self, kind: str, cap: int, *, int_keys: bool = True) -> keyset.Window:
        """The keyset window these arguments ask for, every argument checked."""
        if self.last is not None:
            if self.first_given:
                raise bad_user_input(
                    "give first (to page forward) or last (to page backward), not both",
                    argument="last",
                )
            size, from_end = check_page_size(self.last, cap, "last"), True
        else:
            size, from_end = check_page_size(self.first, cap), False
        decode = decode_int_cursor if int_keys else decode_cursor
        return keyset.Window(
            size=size,
            after=decode(kind, self.after, "after"),
            before=decode(kind, self.before, "before"),
            from_end=from_end,
        )


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """A page's items in list order. Each flag is known (a bool) or a check that
    is run only when the client asks; ``total_count`` likewise."""

    items: list[T]
    has_next_page: bool | Check
    has_previous_page: bool | Check = False
    total_count: Callable[[], Awaitable[int]] | None = None


async def read_page(
    sessions: SessionFactory,
    query: Select[T],
    order: keyset.ListOrder,
    window: keyset.Window,
) -> Page[T]:
    """The page ``window`` asks for from ``query`` (the list's filters, no order),
    with the checks for the side not read and for the count kept for later."""
    async with sessions() as session:
        found = await keyset.read_window(session, query, order, window)

    async def beyond(condition: ColumnElement[bool]) -> bool:
        async with sessions() as session:
            return await keyset.any_row(session, query, condition)

    async def count() -> int:
        async with sessions() as session:
            return await keyset.count_rows(session, query)

    has_next: bool | Check = found.more and not window.from_end
    if not has_next and window.before is not None:
        has_next = partial(beyond, order.at_or_after(window.before))
    has_previous: bool | Check = found.more and window.from_end
    if not has_previous and window.after is not None:
        has_previous = partial(beyond, order.at_or_before(window.after))
    return Page(found.rows, has_next, has_previous, count)


async def answer(flag: bool | Check) -> bool:
    return flag if isinstance(flag, bool) else await flag()
