"""Extreme values for every scalar argument of every query and mutation field.

The schema is read the way a client reads it, by introspection over HTTP. For
each root field, each argument (and each field of an input object, at any
depth) gets, in turn, every extreme value of its scalar type while the other
required arguments hold ordinary values: non-ASCII digits, huge and tiny
numbers, negative and empty values, NUL, bidi controls, calendar ends. Sent
as a signed-in TRADER and anonymously, no request may end in an internal
error; a refusal must carry a code. ``test_every_argument_survives_every_extreme``
sweeps the whole table deterministically; ``test_extremes_in_combination``
lets hypothesis combine extremes across several arguments of one field.
"""

from __future__ import annotations

import base64
import itertools
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
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

from tests.conftest import http_client, login_token, running_app
from tests.hardening.conftest import hardened_settings

# Signs the client out for the rest of the run; tests/api/test_auth.py covers it.
SKIPPED_FIELDS = {"logout"}

# Auth inputs are being hardened separately; left out here until that lands
# (they passed this sweep when it was written, but login spends a deliberate
# password hash per request, about a second on a loaded machine: re-enable
# them with a sample of the values rather than all of them).
DEFERRED = {"register", "login", "refreshToken"}

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
}


def extremes_for(type_: GraphQLScalarType, name: str) -> list[Any]:
    if name in ("after", "before"):
        return CURSOR_EXTREMES
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


def roots(schema: GraphQLSchema) -> Iterator[tuple[str, str, GraphQLField]]:
    for operation, root in (("query", schema.query_type), ("mutation", schema.mutation_type)):
        assert root is not None
        for name, field in root.fields.items():
            if name not in SKIPPED_FIELDS | DEFERRED:
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
        node[step] = dict(node.get(step) or {})
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
        sqlite_url, RATE_LIMIT=False, QUERY_MAX_COST=1_000_000, ACCESS_LOG=False
    )
    async with running_app(settings) as app:
        token = await login_token(app)
        async with http_client(app, token) as trader, http_client(app, None) as anonymous:
            response = await anonymous.post("/graphql", json={"query": get_introspection_query()})
            schema = build_client_schema(response.json()["data"])
            yield Fuzzing(schema, {"trader": trader, "anonymous": anonymous})


async def test_every_argument_survives_every_extreme(fuzzing: Fuzzing) -> None:
    schema = fuzzing.schema
    table = targets(schema)
    # The walk reaches every kind of argument the brief names.
    kinds = {target.scalar.name for target in table}
    assert {"ID", "Decimal", "DateTime", "Int", "String"} <= kinds, kinds
    assert any(target.path[-1] == "after" for target in table)
    open_to_anonymous: dict[str, bool] = {}
    for target in table:
        root = schema.query_type if target.operation == "query" else schema.mutation_type
        assert root is not None
        field = root.fields[target.field]
        if target.field not in open_to_anonymous:
            body = document(schema, target.operation, target.field, baseline(field))
            open_to_anonymous[target.field] = await fuzzing.send("anonymous", body)
        for index, value in enumerate(extremes_for(target.scalar, target.path[-1])):
            values = with_value(baseline(field), field, target, value)
            body = document(schema, target.operation, target.field, values)
            await fuzzing.send("trader", body)
            # A field closed to anonymous callers refuses them whatever the input:
            # a few values show it, the rest would only repeat the refusal.
            if open_to_anonymous[target.field] or index < 3:
                await fuzzing.send("anonymous", body)


@st.composite
def combined_extremes(draw: st.DrawFn, schema: GraphQLSchema) -> tuple[str, Json]:
    operation, name, field = draw(st.sampled_from(list(roots(schema))))
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
    return draw(st.sampled_from(["trader", "anonymous"])), document(schema, operation, name, values)


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
async def test_extremes_in_combination(fuzzing: Fuzzing, data: st.DataObject) -> None:
    who, body = data.draw(combined_extremes(fuzzing.schema))
    await fuzzing.send(who, body)
