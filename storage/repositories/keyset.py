"""One page of a list kept in a fixed order by a unique key, read from either end.

Every connection of the API is such a list: orders newest first by id, symbols
in code order. A page is a *window* of it (after one key, before another) and
the first or the last ``size`` rows of that window. Either way it is one range
scan on the key's index with ``LIMIT size + 1``, whatever page it is: the extra
row only says that the window holds more, which offset paging cannot say
without counting. Backward pages are read in the reverse order and turned
around, so the rows always come back in the list's order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Select, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

RowT = TypeVar("RowT")


@dataclass(frozen=True, slots=True)
class ListOrder:
    """How a list is ordered: by ``key`` (unique), descending or ascending."""

    key: Any  # a mapped column: ``models.Order.id``
    descending: bool

    def after(self, bound: object) -> ColumnElement[bool]:
        """Rows that come after ``bound`` in the list."""
        return self.key < bound if self.descending else self.key > bound  # type: ignore[no-any-return]

    def before(self, bound: object) -> ColumnElement[bool]:
        """Rows that come before ``bound`` in the list."""
        return self.key > bound if self.descending else self.key < bound  # type: ignore[no-any-return]

    def at_or_after(self, bound: object) -> ColumnElement[bool]:
        return self.key <= bound if self.descending else self.key >= bound  # type: ignore[no-any-return]

    def at_or_before(self, bound: object) -> ColumnElement[bool]:
        return self.key >= bound if self.descending else self.key <= bound  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class Window:
    """The rows strictly between ``after`` and ``before`` (either may be open);
    the page is the first ``size`` of them, or the last ``size`` with ``from_end``."""

    size: int
    after: object | None = None
    before: object | None = None
    from_end: bool = False


@dataclass(frozen=True, slots=True)
class Slice(Generic[RowT]):
    """A page's rows in list order, and whether the window holds more rows past them
    on the side the page was read toward (past the end, or before the start with
    ``from_end``)."""

    rows: list[RowT]
    more: bool


def _bounded(query: Select[Any], order: ListOrder, window: Window) -> Select[Any]:
    if window.after is not None:
        query = query.where(order.after(window.after))
    if window.before is not None:
        query = query.where(order.before(window.before))
    return query


async def read_window(
    session: AsyncSession, query: Select[RowT], order: ListOrder, window: Window
) -> Slice[RowT]:
    """The page ``window`` asks for, from ``query`` (filters only, no order or limit)."""
    backwards = order.descending != window.from_end
    ordered = _bounded(query, order, window).order_by(
        order.key.desc() if backwards else order.key.asc()
    )
    rows = list(await session.scalars(ordered.limit(window.size + 1)))
    more = len(rows) > window.size
    del rows[window.size :]
    if window.from_end:
        rows.reverse()
    return Slice(rows, more)


async def count_rows(session: AsyncSession, query: Select[Any]) -> int:
    """How many rows ``query`` (filters only) selects, whatever the page."""
    counted = select(func.count()).select_from(query.order_by(None).subquery())
    return int(await session.scalar(counted) or 0)


async def any_row(
    session: AsyncSession, query: Select[Any], condition: ColumnElement[bool]
) -> bool:
    """Does ``query`` select at least one row meeting ``condition``?"""
    return bool(await session.scalar(select(exists(query.where(condition).order_by(None)))))
