"""Leaf-only input objects built by :mod:`schema.input_builders` equal Strawberry's own.

Every input type of the schema is checked: the ones given a builder must build
the same instance as Strawberry's field-by-field conversion for any mix of
present, null and omitted fields (hypothesis), and the ones with nested inputs
must be left to Strawberry.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from graphql import GraphQLInputObjectType
from hypothesis import given
from hypothesis import strategies as st
from strawberry.types.arguments import convert_argument
from strawberry.types.base import StrawberryObjectDefinition

from schema import schema
from schema.input_builders import LeafInputBuilder, leaf_input_builder

INPUT_TYPES = {
    graphql_type.name: graphql_type.extensions["strawberry-definition"]
    for graphql_type in schema._schema.type_map.values()
    if isinstance(graphql_type, GraphQLInputObjectType)
}
BUILT = sorted(
    name
    for name, definition in INPUT_TYPES.items()
    if isinstance(definition.from_input, LeafInputBuilder)
)

# Leaves arrive parsed by graphql-core (a list field always as a list); any
# value passes through unchanged.
LEAF_VALUES = st.one_of(
    st.none(),
    st.text(max_size=5),
    st.integers(),
    st.booleans(),
    st.decimals(allow_nan=False, allow_infinity=False, places=4),
    st.just(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
)
LIST_VALUES = st.one_of(st.none(), st.lists(LEAF_VALUES, max_size=3))


def test_leaf_only_inputs_get_a_builder_and_nested_ones_keep_strawberrys() -> None:
    # the hot ones are built by the renaming
    assert {"TickInput", "PlaceOrderInput"} <= set(BUILT)
    # an input with a nested input object (a session's windows) is not
    assert "CreateSymbolInput" in INPUT_TYPES
    assert "CreateSymbolInput" not in BUILT
    assert "TradingSessionInput" not in BUILT


def strawberrys_own(definition: StrawberryObjectDefinition, value: dict[str, Any]) -> Any:
    """The instance Strawberry's field-by-field conversion builds from ``value``."""
    builder = definition.from_input
    definition.from_input = None
    try:
        return convert_argument(
            value,
            definition.origin,
            schema.schema_converter.scalar_registry,
            schema.config,
        )
    finally:
        definition.from_input = builder


def fields_of(instance: Any) -> dict[str, Any]:
    return {field.name: getattr(instance, field.name) for field in dataclasses.fields(instance)}


@st.composite
def input_values(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """A leaf-only input type and a value with each of its fields set, null or omitted."""
    name = draw(st.sampled_from(BUILT))
    definition = INPUT_TYPES[name]
    builder = definition.from_input
    assert isinstance(builder, LeafInputBuilder)
    value: dict[str, Any] = {}
    for field in builder.fields:
        if draw(st.booleans()):
            value[field.graphql_name] = draw(LIST_VALUES if field.is_list else LEAF_VALUES)
    return name, value


@given(input_values())
def test_a_built_input_equals_strawberrys(case: tuple[str, dict[str, Any]]) -> None:
    name, value = case
    definition = INPUT_TYPES[name]
    built = definition.from_input(definition.origin, value, None)
    expected = strawberrys_own(definition, value)
    assert type(built) is type(expected)
    assert fields_of(built) == fields_of(expected)


def test_a_list_in_the_value_is_copied_not_shared() -> None:
    # graphql-core hands every request the same default list object
    lists = 0
    for name in BUILT:
        definition = INPUT_TYPES[name]
        for field in definition.from_input.fields:
            if field.is_list:
                lists += 1
                shared = [1, 2]
                built = definition.from_input(definition.origin, {field.graphql_name: shared}, None)
                assert getattr(built, field.python_name) == shared
                assert getattr(built, field.python_name) is not shared
    assert lists, "no leaf-only input has a list field: this test checks nothing"


def test_a_tick_through_the_schema_is_built_with_its_values() -> None:
    definition = INPUT_TYPES["TickInput"]
    assert (
        leaf_input_builder(definition, schema.config, schema.schema_converter.scalar_registry)
        == definition.from_input
    )
    at = datetime(2026, 1, 2, tzinfo=UTC)
    tick = definition.from_input(
        definition.origin, {"symbol": "btcusdt", "time": at, "last": Decimal("1.50")}, None
    )
    assert (tick.symbol, tick.time, tick.last) == ("btcusdt", at, Decimal("1.50"))
    assert (tick.bid, tick.ask, tick.volume) == (None, None, Decimal(0))


@pytest.fixture(autouse=True)
def _no_leaks() -> Iterator[None]:
    """Every test leaves each type's builder as it found it."""
    before = {name: definition.from_input for name, definition in INPUT_TYPES.items()}
    yield
    assert {name: d.from_input for name, d in INPUT_TYPES.items()} == before
