"""Cursor, page-size and time-range handling shared by every connection field."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from graphql_api.platform.number_text import NumberTextError, parse_ascii_int
from resolvers.errors import bad_user_input

T = TypeVar("T")

# Our ids are database keys: positive integers below 2^63 (18 digits always fit).
MAX_ID_DIGITS = 18
# A cursor is "<kind>:<key>" in base64; anything longer is not one of ours.
MAX_CURSOR_LENGTH = 200


def check_page_size(first: int, cap: int) -> int:
    if first < 1 or first > cap:
        raise bad_user_input(f"first must be between 1 and {cap}", argument="first")
    return first


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


def decode_cursor(kind: str, cursor: str | None) -> str | None:
    """The key of a cursor of this ``kind`` (strict base64: no stray characters)."""
    if cursor is None:
        return None
    try:
        if len(cursor) > MAX_CURSOR_LENGTH or not cursor.isascii():
            raise ValueError(cursor)
        raw = base64.b64decode(cursor.encode("ascii"), altchars=b"-_", validate=True)
        decoded = raw.decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise bad_user_input("after is not a valid cursor", argument="after") from None
    prefix, _, key = decoded.partition(":")
    # Our keys are ids and symbol codes: printable ASCII (no NUL for the database).
    if prefix != kind or not key or not (key.isascii() and key.isprintable()):
        raise bad_user_input("after is not a cursor of this list", argument="after")
    return key


def decode_int_cursor(kind: str, cursor: str | None) -> int | None:
    """The id in a cursor of this ``kind``, read like :func:`parse_id`."""
    key = decode_cursor(kind, cursor)
    if key is None:
        return None
    try:
        return parse_ascii_int(key, max_digits=MAX_ID_DIGITS)
    except NumberTextError:
        raise bad_user_input("after is not a valid cursor", argument="after") from None


def parse_id(value: str, argument: str = "id") -> int:
    """Our ids are positive integers in ASCII digits; anything else cannot name an object."""
    try:
        return parse_ascii_int(value, max_digits=MAX_ID_DIGITS)
    except NumberTextError:
        raise bad_user_input(f"{argument} is not a valid id", argument=argument) from None


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    has_next_page: bool


def page_from_rows(rows: list[T], first: int) -> Page[T]:
    """Rows were fetched with ``limit=first + 1``: the extra row only tells us more exist."""
    return Page(rows[:first], len(rows) > first)
