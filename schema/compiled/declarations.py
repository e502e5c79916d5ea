"""What a type says about reading it in SQL: the vocabulary of the compiled read path.

A type that can be compiled carries an :class:`ObjectReads` in its ``sql_reads``
class attribute, right beside its Strawberry fields: each GraphQL field it lists
is read from a column of its table (or of a related row), every field it does
not list sends any query that selects it down the standard path. So a field
added to a type is compiled only once someone says here how to read it, and a
field added without that still answers correctly, through graphql-core.

The root fields declare themselves the same way on ``Query.sql_reads``
(:class:`RootConnection`, :class:`RootByKey`): which table, which rows the
caller owns, which arguments they take and how each narrows the rows. An
argument not declared there makes the root field take the standard path.

Nothing here imports Strawberry: these are plain values read by the planner.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


class Kind(enum.Enum):
    """How a column's value becomes the field's JSON, as the standard path writes it."""

    TEXT = "text"  # a string as stored
    ID = "id"  # an integer key written as a string
    INT = "int"  # a JSON number
    BOOL = "bool"  # true / false (SQLite stores 0 / 1)
    TIME = "time"  # an aware UTC datetime in Python's isoformat
    ENUM = "enum"  # the GraphQL enum value's name for the stored value


@dataclass(frozen=True, slots=True)
class Column:
    """A scalar read from a column of the type's own row."""

    column: str
    kind: Kind


@dataclass(frozen=True, slots=True)
class Amount:
    """A decimal shown at the scale of a step (see ``resolvers.amounts.at_scale``).

    ``step`` is a column of the row named by ``step_via`` in the ``symbols`` table
    (``symbol_code``: the row's own symbol), or of the type's own row when
    ``step_via`` is None (a symbol's tick size is shown at its own scale).
    """

    column: str
    step: str
    step_via: str | None = None


@dataclass(frozen=True, slots=True)
class Cash:
    """Cash shown at its currency's minor unit (``resolvers.amounts.Amounts.cash``).

    The currency is the ``currency`` column of the symbol named by the row's
    ``currency_via`` column (cash in a symbol's quote currency: commission, P&L,
    cost basis), or the row's own ``currency`` column when ``currency_via`` is None.
    """

    column: str
    currency_via: str | None = None


@dataclass(frozen=True, slots=True)
class Computed:
    """A field Python computes from columns of its row: a batched step after the statement.

    The statement reads ``inputs`` (input name -> column of the row) as text, so a
    decimal arrives exact; after it, ``compute(info, items)`` gets every occurrence of
    the field in the answer at once (``items``: their inputs, ``Decimal`` text left as
    text) and returns each one's JSON value, as the field's scalar writes it. ``info``
    carries only ``context`` (its loaders batch the lookups: quotes by symbol) and
    ``memo``, a dict the computations of one answer share.
    """

    inputs: Mapping[str, str]
    compute: Callable[[Any, Sequence[Mapping[str, Any]]], Awaitable[Sequence[Any]]]


@dataclass(frozen=True, slots=True)
class SameRow:
    """An object read from the parent's own row (``User.account``): the field's type
    declares ``sql_reads`` on the parent's table."""


@dataclass(frozen=True, slots=True)
class Embedded:
    """An object built from columns of the same row (``Symbol.session``)."""

    fields: Mapping[str, Column]


@dataclass(frozen=True, slots=True)
class ToOne:
    """The row of the field's type whose ``remote`` column equals this row's ``local``.

    The target type's own ``sql_reads`` says how to read it. ``nullable``: a
    null ``local`` (or no such row) is a JSON null.
    """

    local: str
    remote: str


@dataclass(frozen=True, slots=True)
class ToMany:
    """The rows of the field's type whose ``remote`` column equals this row's ``local``,
    newest (highest ``key``) first when ``descending`` (lowest first otherwise; a text
    key orders by the database's collation, as the standard path's ``ORDER BY`` does),
    at most ``limit(arguments, cap)`` of them (``cap``: the page size cap; ``limit``
    raises where the resolver would), or all of them when ``limit`` is None.

    ``arguments``: every argument the field takes; a field with another one (added
    later) takes the standard path.
    """

    local: str
    remote: str
    key: str
    descending: bool
    arguments: frozenset[str] = frozenset()
    limit: Callable[[Mapping[str, Any], int], int] | None = None
    nonzero: str | None = None  # a decimal column: rows where it is zero are left out


@dataclass(frozen=True, slots=True)
class NestedConnection:
    """A Relay connection under a root that reads the caller's own row
    (``me { account { trades } }``): ``connection`` says how, as for a root field;
    its ``owner`` column is bound to the caller. At most one per statement."""

    connection: RootConnection


FieldRead = (
    Column | Amount | Cash | Computed | Embedded | SameRow | ToOne | ToMany | NestedConnection
)


@dataclass(frozen=True, slots=True)
class ObjectReads:
    """How to read a type from ``table``: its compiled fields by GraphQL name."""

    table: str
    fields: Mapping[str, FieldRead]


@dataclass(frozen=True, slots=True)
class Condition:
    """``column op value`` in a root field's WHERE; ``op`` is ``=``, ``in``, ``>=`` or ``<``."""

    column: str
    op: str
    value: Any


# The arguments (GraphQL names, coerced and defaulted by graphql-core) -> the rows'
# conditions. It validates as the resolver does and raises where the resolver would
# (then the root field takes the standard path, which reports the error).
Narrowing = Callable[[Mapping[str, Any]], Sequence[Condition]]


@dataclass(frozen=True, slots=True)
class Page:
    """A page request checked as the resolver checks it: ``limit`` rows after ``after_key``."""

    limit: int
    after_key: str | int | None


@dataclass(frozen=True, slots=True)
class RootConnection:
    """A Relay connection over ``table``'s rows, keyset-paged on ``key``.

    Parameters:
    table: the rows' table; the node type's ``sql_reads`` must name the same one.
    key: the column the pages are ordered and cut on (also the cursor's key).
    cursor_kind: the prefix of its cursors (``order`` makes ``base64("order:42")``).
    descending: newest (highest key) first.
    owner: the column holding the owning user's id (only the caller's rows), or None.
    arguments: every argument the field takes; another one sends it down the standard path.
    narrowing: the conditions its filter arguments add.
    page: ``(arguments, max page size) -> Page``, validating ``first`` and ``after``.
    """

    table: str
    key: str
    cursor_kind: str
    descending: bool
    owner: str | None
    arguments: frozenset[str]
    page: Callable[[Mapping[str, Any], int], Page]
    narrowing: Narrowing = field(default=lambda _arguments: ())


@dataclass(frozen=True, slots=True)
class RootByKey:
    """One row by key, or null: ``key(arguments)`` validates and returns the key value.

    ``owner``: the column holding the owning user's id; another user's row is null.
    """

    table: str
    column: str
    owner: str | None
    arguments: frozenset[str]
    key: Callable[[Mapping[str, Any]], Any]


@dataclass(frozen=True, slots=True)
class RootCaller:
    """The caller's own row (``me``): the row of ``table`` whose ``column`` is the
    signed-in user's id, or null."""

    table: str
    column: str
    arguments: frozenset[str] = frozenset()
    owner: None = None


@dataclass(frozen=True, slots=True)
class RootRows:
    """A list root field whose rows Python reads (from any store, not only SQL) and
    writes as JSON values itself, skipping graphql-core's completion of every field
    of every row (``klines``: 10,000 bars are 70,000 fields).

    ``rows(info, arguments)`` validates the arguments as the resolver does, raising
    where it would (then the standard path answers and reports the error), and
    returns an awaitable of the rows: one mapping per item, from each GraphQL field
    name in ``fields`` to its value already serialised exactly as the field's scalar
    serialises it. ``info`` carries only ``context``.
    """

    arguments: frozenset[str]
    fields: frozenset[str]
    rows: Callable[[Any, Mapping[str, Any]], Awaitable[Sequence[Mapping[str, Any]]]]
    owner: None = None


@dataclass(frozen=True, slots=True)
class RootObject:
    """An object root field whose fields Python reads and writes as JSON values
    itself, as :class:`RootRows` does for a list (``klineSeries``: six columns of
    10,000 values each are 60,000 list items for graphql-core to complete).

    ``value(info, arguments)`` validates as the resolver does, raising where it
    would, and returns an awaitable of one mapping from each GraphQL field name in
    ``fields`` to its value already serialised exactly as the standard path writes it.
    """

    arguments: frozenset[str]
    fields: frozenset[str]
    value: Callable[[Any, Mapping[str, Any]], Awaitable[Mapping[str, Any]]]
    owner: None = None


RootRead = RootConnection | RootByKey | RootCaller | RootRows | RootObject
