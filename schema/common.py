"""Shared by every domain: user errors, Relay-style connections, time-range arguments and
lazy references."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar, get_args

import strawberry

from graphql_api.platform import errors
from resolvers.pagination import Check, Page, answer, encode_cursor
from schema.enums import UserErrorCode

NodeT = TypeVar("NodeT")
RowT = TypeVar("RowT")

# The ``from`` / ``to`` arguments of every time-series query (ticks, klines, klineSeries).
From = Annotated[
    datetime | None, strawberry.argument(name="from", description="Inclusive start (UTC).")
]
To = Annotated[datetime | None, strawberry.argument(description="Exclusive end (UTC).")]

# The Relay arguments of every connection field besides ``first``/``after``.
Last = Annotated[
    int | None,
    strawberry.argument(
        description="Page backward: the last items of the list (or of those before `before`)."
    ),
]
Before = Annotated[
    str | None,
    strawberry.argument(description="A cursor: only items before it (pair with `last`)."),
]


@strawberry.type(description="A problem with the mutation's input; nothing was changed.")
class UserError:
    field: str = strawberry.field(
        description="Dotted path of the offending input field, e.g. `limitPrice` or `ticks.3.bid`."
    )
    code: UserErrorCode = strawberry.field(description="Machine-readable reason.")
    message: str = strawberry.field(description="Human-readable explanation.")

    @classmethod
    def from_domain(cls, error: errors.UserError) -> UserError:
        return cls(field=error.field, code=error.code, message=error.message)


def user_errors(found: Sequence[errors.UserError]) -> list[UserError]:
    return [UserError.from_domain(error) for error in found]


@strawberry.type(description="Where a page starts and ends, for asking for the pages around it.")
class PageInfo:
    start_cursor: str | None = strawberry.field(
        description=(
            "Pass as `before` (with `last`) to get the previous page; null on an empty page."
        )
    )
    end_cursor: str | None = strawberry.field(
        description="Pass as `after` (with `first`) to get the next page; null on an empty page."
    )
    next_check: strawberry.Private[bool | Check]
    previous_check: strawberry.Private[bool | Check]

    @strawberry.field(
        description="Whether items follow this page in the list (`after: endCursor`)."
    )
    async def has_next_page(self) -> bool:
        return await answer(self.next_check)

    @strawberry.field(
        description="Whether items precede this page in the list (`before: startCursor`)."
    )
    async def has_previous_page(self) -> bool:
        return await answer(self.previous_check)


@strawberry.type(description="One item of a page and its cursor.")
class Edge(Generic[NodeT]):
    cursor: str = strawberry.field(description="Opaque position of this item.")
    node: NodeT = strawberry.field(description="The item.")


@strawberry.type(
    description=(
        "A page of items (Relay cursor connection): `first`/`after` page forward, "
        "`last`/`before` page backward."
    )
)
class Connection(Generic[NodeT]):
    edges: list[Edge[NodeT]] = strawberry.field(description="The items of this page, in order.")
    page_info: PageInfo = strawberry.field(description="How to fetch the pages around this one.")
    counter: strawberry.Private[Callable[[], Awaitable[int]] | None] = None

    @strawberry.field(
        description=(
            "How many items the whole list holds, over all pages, with the list's filters "
            "applied (counted only when asked for)."
        )
    )
    async def total_count(self) -> int:
        return await self.counter() if self.counter is not None else len(self.edges)

    @classmethod
    def build(
        cls,
        page: Page[RowT],
        *,
        kind: str,
        key: Callable[[RowT], str | int],
        node: Callable[[RowT], NodeT],
    ) -> Connection[NodeT]:
        edges = [Edge(cursor=encode_cursor(kind, key(row)), node=node(row)) for row in page.items]
        return cls(
            edges=edges,
            page_info=PageInfo(
                start_cursor=edges[0].cursor if edges else None,
                end_cursor=edges[-1].cursor if edges else None,
                next_check=page.has_next_page,
                previous_check=page.has_previous_page,
            ),
            counter=page.total_count,
        )


def lazy_class(reference: Any) -> Any:
    """The class an ``Annotated["Name", strawberry.lazy("module")]`` reference names.

    Types that point at each other (``Order.strategy``, ``Strategy.orders``) declare the
    other side with such a reference instead of importing its module, so neither module
    imports the other. A resolver that must build the other side's object looks the class
    up here, the way the schema resolved the same reference when it was built. Callers
    cache the result: the lookup is not free.
    """
    forward, lazy = get_args(reference)
    return lazy.resolve_forward_ref(forward).resolve_type()
