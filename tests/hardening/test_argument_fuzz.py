"""Extreme values for every scalar argument of every query and mutation field.

The schema is read the way a client reads it, by introspection over HTTP. For
each root field, each argument (and each field of an input object, at any
depth) gets, in turn, every extreme value of its scalar type while the other
required arguments hold ordinary values: non-ASCII digits, huge and tiny
numbers, negative and empty values, NUL, bidi controls, calendar ends. Each
field is sent as a caller it admits (a signed-in TRADER, a FEED user for
``ingestTicks`` and ``importBars``, an ADMIN for the symbol administration, so
their inputs are read rather than refused) and, for a few values, as the
callers it refuses; no request may end in an internal error and a refusal must
carry a code. The CSV text of ``importBars`` gets extremes in every cell and in
its shape. Sign-in fields (``register``, ``login``, ``refreshToken``) take a
sample of the extremes, anonymously: each request may spend a deliberate
password hash.
``test_every_argument_survives_every_extreme`` sweeps the whole table
deterministically; ``test_extremes_in_combination`` lets hypothesis combine
extremes across several arguments of one field.
"""

from __future__ import annotations

import base64
import itertools
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLField,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    build_client_schema,
    get_introspection_query,
    get_named_type,
    is_leaf_type,
)
from graphql.pyutils import Undefined
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graphql_api.auth import Role
from tests.conftest import http_client, login_token, running_app, user_token
from tests.hardening.conftest import hardened_settings

# ``logout`` takes no argument, so there is nothing to fuzz, and it revokes the
# caller's session: every later request of the sweep would be UNAUTHENTICATED.
# tests/api/test_auth.py covers it.
SKIPPED_FIELDS = {"logout"}

# Before sign-in: sent anonymously, with a sample of the extremes (SIGN_IN_EXTREMES),
# since register and login spend a deliberate password hash per request (about a
# second on a loaded machine). Kept out of the hypothesis combinations for the same
# reason; their arguments are checked one by one anyway.
SIGN_IN_FIELDS = frozenset({"register", "login", "refreshToken"})

Json = dict[str, Any]

NASTY_TEXT = ["", "\x00", "²", "٣", "\u202e1\u202c", "%_\\", "x" * 5000, "-1"]
EXTREMES: dict[str, list[Any]] = {
    "ID": ["²", "９", "-1", "0", "9" * 19, "", "\x00", "\u202e1", 7],
    "Int": [-1, 0, 2**31 - 1, -(2**31)],
    "Float": [-1.0, 1e-308, 1e308],
    "Decimal": [
        "９",
        "٣.٥",
        "1e3",
        "NaN",
        "-1",
        "0",
        "9" * 20 + "." + "9" * 18,  # the largest and finest the scalar reads
        "9" * 40,
        "0." + "0" * 17 + "1",
        "",
        "\x00",
        1,
    ],
    "DateTime": [
        "9999-12-31T23:59:59.999999Z",
        "9999-12-31T23:59:59.999999-14:00",
        "9999-12-31T23:59:59",
        "0001-01-01T00:00:00+14:00",
        "0001-01-01T00:00:00Z",
        "0001-01-01T00:00:00",
        "２０２４-01-01T00:00:00Z",
        "",
        "\x00",
    ],
    "String": NASTY_TEXT,
    "Boolean": [True],
    "JSON": [[], "x", {"fast": 10**30, "slow": -(10**30)}, {"period": "²"}, {"fast": 1e308}],
}
# Cursors are ids of a kind: the kinds are ours, the keys extreme.
CURSOR_EXTREMES = [
    base64.urlsafe_b64encode(f"{kind}:{key}".encode()).decode()
    for kind, key in itertools.product(["symbol", "order", "strategy", "trade"], ["²", "9" * 30])
] + ["", "!!!!", "²", "a" * 5000]


def recent_weekday() -> date:
    """A day inside the bar window on which every market in the catalogue trades."""
    day = datetime.now(UTC).date() - timedelta(days=3)
    while day.weekday() >= 5:
        day -= timedelta(days=1)
    return day


CSV_HEADER = "date,open,high,low,close,volume"
CSV_ROW = {
    "date": recent_weekday().isoformat(),
    "open": "10",
    "high": "11",
    "low": "9",
    "close": "10.5",
    "volume": "1000",
}
ORDINARY_CSV = CSV_HEADER + "\n" + ",".join(CSV_ROW.values()) + "\n"
CELL_EXTREMES: dict[str, list[str]] = {
    "date": [
        "9999-12-31",
        "0001-01-01",
        "２０２６-01-05",
        "2026-02-30",
        "2026-01-05T00:00:00+14:00",
        "",
        "\x00",
        "\u202e2026-01-05",
    ],
    "number": [str(value) for value in EXTREMES["Decimal"]] + ["1e400", "-0", "Infinity", '"1"'],
}


def csv_with(column: str, cell: str) -> str:
    row = dict(CSV_ROW, **{column: cell})
    return CSV_HEADER + "\n" + ",".join(row.values()) + "\n"


# Every cell of a row in turn, then the shape of the file itself.
CSV_EXTREMES = (
    [
        csv_with(column, cell)
        for column in CSV_ROW
        for cell in CELL_EXTREMES["date" if column == "date" else "number"]
    ]
    + [
        "",
        CSV_HEADER,
        ",".join(CSV_ROW.values()),  # no header
        "\ufeff" + ORDINARY_CSV,
        ORDINARY_CSV.replace("\n", "\r\n"),
        ORDINARY_CSV.replace("\n", "\r"),
        CSV_HEADER + ",extra\n" + ",".join(CSV_ROW.values()) + ",1\n",
        CSV_HEADER + "\n" + ",".join(CSV_ROW.values())[:-3] + "\n",  # a short row
        CSV_HEADER + "\n" + '"' + ",".join(CSV_ROW.values()) + "\n",  # an unclosed quote
        CSV_HEADER.upper() + "\n" + ",".join(CSV_ROW.values()) + "\n",
        CSV_HEADER + "\n" + ",".join(CSV_ROW.values()) * 2 + "\n",
        CSV_HEADER + "\n" + (",".join(CSV_ROW.values()) + "\n") * 3,  # one day three times
        CSV_HEADER + "\n" + "x" * 200_000 + "\n",
        "\x00" + ORDINARY_CSV,
    ]
)
# A sample for the sign-in fields (each request may cost a password hash).
SIGN_IN_EXTREMES: dict[str, list[Any]] = {
    "username": ["", "\x00", "²", "\u202edemo", "ＤＥＭＯ", "DEMO", "a" * 33, "a" * 65, "x" * 5000],
    "password": ["", "\x00" * 8, " " * 8, "\u202e" + "p" * 8, "p" * 256, "p" * 257, "x" * 5000],
    "refreshToken": [
        "",
        "\x00",
        "a.b.c",
        "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.",  # alg "none"
        "eyJhbGciOiJIUzI1NiJ9." + "A" * 5000 + ".sig",
        "x" * 5000,
    ],
}
# Batch ids are 1 to 64 characters; the neighbours of the bounds too.
BATCH_ID_EXTREMES = [*NASTY_TEXT, "b" * 64, "b" * 65, "²" * 64]


ORDINARY: dict[str, Any] = {
    "ID": "1",
    "Int": 5,
    "Float": 1.0,
    "Decimal": "1",
    "DateTime": "2026-01-01T00:00:00Z",
    "String": "x",
    "Boolean": False,
    "JSON": {},
}
ORDINARY_BY_NAME: dict[str, Any] = {
    "symbol": "600519.SH",
    "code": "600519.SH",
    "from": "2025-01-01T00:00:00Z",
    "to": "2026-12-01T00:00:00Z",
    "first": 5,
    "limit": 5,
    "time": (datetime.now(UTC) - timedelta(seconds=5)).isoformat(),
    "csv": ORDINARY_CSV,
    "username": "fuzz_user",
    "password": "a-good-password",
}


def extremes_for(type_: GraphQLScalarType, name: str) -> list[Any]:
    if name in ("after", "before"):
        return CURSOR_EXTREMES
    if name == "csv":
        return CSV_EXTREMES
    if name == "batchId":
        return BATCH_ID_EXTREMES
    if name in SIGN_IN_EXTREMES:
        return SIGN_IN_EXTREMES[name]
    return EXTREMES.get(type_.name, NASTY_TEXT)


def ordinary(type_: GraphQLInputType, name: str) -> Any:
    """A value that passes coercion, so the request reaches the resolver."""
    if isinstance(type_, GraphQLNonNull):
        return ordinary(type_.of_type, name)
    if isinstance(type_, GraphQLList):
        return [ordinary(type_.of_type, name)]
    if isinstance(type_, GraphQLEnumType):
        return next(iter(type_.values))
    if isinstance(type_, GraphQLInputObjectType):
        return {
            field_name: ordinary(field.type, field_name)
            for field_name, field in type_.fields.items()
            if isinstance(field.type, GraphQLNonNull)
        }
    assert isinstance(type_, GraphQLScalarType)
    if name in ORDINARY_BY_NAME and type_.name in ("String", "DateTime", "Int"):
        return ORDINARY_BY_NAME[name]
    return ORDINARY.get(type_.name, "x")


@dataclass(frozen=True)
class Target:
    """One scalar slot of one root field: ``path`` runs from the argument into inputs."""

    operation: str
    field: str
    path: tuple[str, ...]
    scalar: GraphQLScalarType
    in_list: bool

    def __str__(self) -> str:
        return f"{self.operation} {self.field}({'.'.join(self.path)})"


def scalar_slots(
    type_: GraphQLInputType, path: tuple[str, ...], in_list: bool = False
) -> Iterator[tuple[tuple[str, ...], GraphQLScalarType, bool]]:
    if isinstance(type_, GraphQLNonNull):
        yield from scalar_slots(type_.of_type, path, in_list)
    elif isinstance(type_, GraphQLList):
        yield from scalar_slots(type_.of_type, path, True)
    elif isinstance(type_, GraphQLInputObjectType):
        for name, field in type_.fields.items():
            yield from scalar_slots(field.type, (*path, name), in_list)
    elif isinstance(type_, GraphQLScalarType):
        yield path, type_, in_list


def roots(
    schema: GraphQLSchema, leave_out: frozenset[str] = frozenset()
) -> Iterator[tuple[str, str, GraphQLField]]:
    for operation, root in (("query", schema.query_type), ("mutation", schema.mutation_type)):
        assert root is not None
        for name, field in root.fields.items():
            if name not in SKIPPED_FIELDS | leave_out:
                yield operation, name, field


def targets(schema: GraphQLSchema) -> list[Target]:
    found = []
    for operation, name, field in roots(schema):
        for arg_name, arg in field.args.items():
            for path, scalar, in_list in scalar_slots(arg.type, (arg_name,)):
                found.append(Target(operation, name, path, scalar, in_list))
    return found


def selection(type_: Any, depth: int = 0) -> str:
    """Every leaf without required arguments, two levels deep (enough to render each value)."""
    named = get_named_type(type_)
    if is_leaf_type(named):
        return ""
    assert isinstance(named, GraphQLObjectType)
    parts = ["__typename"]
    for name, field in named.fields.items():
        if any(
            isinstance(a.type, GraphQLNonNull) and a.default_value is Undefined
            for a in field.args.values()
        ):
            continue
        if is_leaf_type(get_named_type(field.type)):
            parts.append(name)
        elif depth < 2:
            parts.append(f"{name} {selection(field.type, depth + 1)}")
    return "{ " + " ".join(parts) + " }"


def document(schema: GraphQLSchema, operation: str, field_name: str, values: Json) -> Json:
    """The request for ``field_name`` with every argument as a variable."""
    root = schema.query_type if operation == "query" else schema.mutation_type
    assert root is not None
    field = root.fields[field_name]
    given_args = [name for name in field.args if name in values]
    header = ", ".join(f"${name}: {field.args[name].type}" for name in given_args)
    arguments = ", ".join(f"{name}: ${name}" for name in given_args)
    query = (
        f"{operation} Fuzz{f'({header})' if header else ''} "
        f"{{ {field_name}{f'({arguments})' if arguments else ''} {selection(field.type)} }}"
    )
    return {"query": query, "variables": values, "operationName": "Fuzz"}


def baseline(field: GraphQLField) -> Json:
    return {
        name: ordinary(arg.type, name)
        for name, arg in field.args.items()
        if isinstance(arg.type, GraphQLNonNull)
    }


def with_value(values: Json, field: GraphQLField, target: Target, value: Any) -> Json:
    """``values`` with ``value`` at the target's path (inputs filled in as needed)."""
    result = dict(values)
    head, *rest = target.path
    slot: Any = value if not target.in_list or rest else [value]
    if not rest:
        result[head] = slot
        return result
    arg_type = field.args[head].type
    container = ordinary(arg_type, head) if head not in result else result[head]
    container = container[0] if isinstance(container, list) else container
    container = dict(container)
    node = container
    for step in rest[:-1]:
        child = node.get(step)
        if isinstance(child, list):  # a list of inputs inside the input: fuzz its first
            item = dict(child[0]) if child else {}
            node[step] = [item]
            node = item
        else:
            node[step] = dict(child or {})
            node = node[step]
    node[rest[-1]] = value
    result[head] = [container] if target.in_list else container
    return result


@dataclass
class Fuzzing:
    schema: GraphQLSchema
    clients: dict[str, httpx.AsyncClient]

    async def send(self, who: str, body: Json) -> bool:
        """Send and check; whether the caller was let in (not refused for who it is)."""
        response = await self.clients[who].post("/graphql", json=body)
        assert response.status_code < 500, (who, response.status_code, response.text, body)
        payload = response.json()
        codes = []
        for error in payload.get("errors", []) if isinstance(payload, dict) else []:
            code = error.get("extensions", {}).get("code")
            assert isinstance(code, str), (who, error, body)
            assert code != "INTERNAL_SERVER_ERROR", (who, error, body)
            codes.append(code)
        return not {"UNAUTHENTICATED", "FORBIDDEN"} & set(codes)


@pytest.fixture
async def fuzzing(sqlite_url: str) -> AsyncIterator[Fuzzing]:
    settings = hardened_settings(
        sqlite_url,
        RATE_LIMIT=False,
        QUERY_MAX_COST=1_000_000,
        ACCESS_LOG=False,
        # Failed sign-ins are the sweep's business: let each reach the password check.
        LOGIN_FAILURES_PER_ACCOUNT=100_000,
        LOGIN_FAILURES_PER_ADDRESS=100_000,
    )
    async with running_app(settings) as app:
        trader_token = await login_token(app)
        feed_token = await user_token(app, "fuzz_feed", Role.FEED)
        admin_token = await user_token(app, "fuzz_admin", Role.ADMIN)
        async with (
            http_client(app, trader_token) as trader,
            http_client(app, feed_token) as feed,
            http_client(app, admin_token) as admin,
            http_client(app, None) as anonymous,
        ):
            response = await anonymous.post("/graphql", json={"query": get_introspection_query()})
            schema = build_client_schema(response.json()["data"])
            yield Fuzzing(
                schema,
                {"trader": trader, "feed": feed, "admin": admin, "anonymous": anonymous},
            )


async def member_for(fuzzing: Fuzzing, operation: str, name: str, field: GraphQLField) -> str:
    """The first of our signed-in callers the field lets in with ordinary arguments."""
    body = document(fuzzing.schema, operation, name, baseline(field))
    for who in ("trader", "feed", "admin"):
        if await fuzzing.send(who, body):
            return who
    raise AssertionError(f"no caller of the sweep may call {name}")


async def test_every_argument_survives_every_extreme(fuzzing: Fuzzing) -> None:
    schema = fuzzing.schema
    table = targets(schema)
    # The walk reaches every kind of argument the brief names, and every field but logout.
    kinds = {target.scalar.name for target in table}
    assert {"ID", "Decimal", "DateTime", "Int", "String"} <= kinds, kinds
    assert any(target.path[-1] == "after" for target in table)
    reached = {target.field for target in table}
    assert SIGN_IN_FIELDS | {"ingestTicks", "importBars"} <= reached, reached
    assert {("ticks", "time"), ("ticks", "last"), ("batchId",), ("csv",)} <= {
        target.path for target in table if target.field in ("ingestTicks", "importBars")
    }
    members: dict[str, str] = {}
    open_to_anonymous: dict[str, bool] = {}
    for target in table:
        root = schema.query_type if target.operation == "query" else schema.mutation_type
        assert root is not None
        field = root.fields[target.field]
        if target.field not in members:
            body = document(schema, target.operation, target.field, baseline(field))
            open_to_anonymous[target.field] = await fuzzing.send("anonymous", body)
            members[target.field] = (
                "anonymous"
                if target.field in SIGN_IN_FIELDS
                else await member_for(fuzzing, target.operation, target.field, field)
            )
        member = members[target.field]
        for index, value in enumerate(extremes_for(target.scalar, target.path[-1])):
            values = with_value(baseline(field), field, target, value)
            body = document(schema, target.operation, target.field, values)
            assert await fuzzing.send(member, body) or target.field in SIGN_IN_FIELDS, (
                member,
                body,
            )
            if target.field in SIGN_IN_FIELDS:
                continue  # one caller is enough before sign-in; each one may cost a hash
            # Callers a field refuses are refused whatever the input: a few values
            # show it, the rest would only repeat the refusal.
            for who in sorted(fuzzing.clients.keys() - {member}):
                if index < 3 or (who == "anonymous" and open_to_anonymous[target.field]):
                    await fuzzing.send(who, body)
    assert members["ingestTicks"] == members["importBars"] == "feed", members
    assert members["createSymbol"] == members["symbolAudit"] == "admin", members


@st.composite
def combined_extremes(draw: st.DrawFn, schema: GraphQLSchema) -> tuple[str, Json]:
    operation, name, field = draw(st.sampled_from(list(roots(schema, SIGN_IN_FIELDS))))
    values = baseline(field)
    slots = [
        Target(operation, name, path, scalar, in_list)
        for arg_name, arg in field.args.items()
        for path, scalar, in_list in scalar_slots(arg.type, (arg_name,))
    ]
    if slots:
        for target in draw(st.lists(st.sampled_from(slots), max_size=4, unique=True)):
            value = draw(st.sampled_from(extremes_for(target.scalar, target.path[-1])))
            values = with_value(values, field, target, value)
    who = draw(st.sampled_from(["trader", "feed", "admin", "anonymous"]))
    return who, document(schema, operation, name, values)


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
async def test_extremes_in_combination(fuzzing: Fuzzing, data: st.DataObject) -> None:
    who, body = data.draw(combined_extremes(fuzzing.schema))
    await fuzzing.send(who, body)
