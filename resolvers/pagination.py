"""Cursor and page-size handling shared by every connection field."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Generic, TypeVar

from resolvers.errors import bad_user_input

T = TypeVar("T")


def check_page_size(first: int, cap: int) -> int:
    if first < 1 or first > cap:
        raise bad_user_input(f"first must be between 1 and {cap}", argument="first")
    return first


def encode_cursor(kind: str, key: str | int) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{key}".encode()).decode()


def decode_cursor(kind: str, cursor: str | None) -> str | None:
    if cursor is None:
        return None
    try:
        decoded = base64.urlsafe_b64decode(cursor.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise bad_user_input("after is not a valid cursor", argument="after") from None
    prefix, _, key = decoded.partition(":")
    if prefix != kind or not key:
        raise bad_user_input("after is not a cursor of this list", argument="after")
    return key


def decode_int_cursor(kind: str, cursor: str | None) -> int | None:
    key = decode_cursor(kind, cursor)
    if key is None:
        return None
    if not key.isdigit():
        raise bad_user_input("after is not a valid cursor", argument="after")
    return int(key)


def parse_id(value: str, argument: str = "id") -> int:
    """Our ids are positive integers; anything else cannot name an object."""
    if not value.isdigit() or len(value) > 18:
        raise bad_user_input(f"{argument} is not a valid id", argument=argument)
    return int(value)


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    has_next_page: bool


def page_from_rows(rows: list[T], first: int) -> Page[T]:
    """Rows were fetched with ``limit=first + 1``: the extra row only tells us more exist."""
    return Page(rows[:first], len(rows) > first)
