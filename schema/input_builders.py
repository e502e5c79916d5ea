"""Input objects whose fields are all leaves, built without Strawberry's per-field work.

Strawberry turns each input object of an argument into an instance field by
field, and for every field of every object it resolves the field's type and
works out its GraphQL name again. ``ingestTicks`` carries thousands of
``TickInput`` objects per call, and that bookkeeping was about 40 % of the
call's time in Python, holding the event loop for over a second per 5,000
ticks (long enough for other work's timeouts to fire).

When every field of an input type is a leaf (a scalar or an enum, optional or
not, or a list of them), graphql-core has already parsed every value and
Strawberry's conversion is only a renaming: GraphQL names to Python names,
``None`` for omitted fields without a default, lists copied. This module works
that renaming out once per type and installs it through Strawberry's
``from_input`` hook, which is made for types that build their own value. Input
types with nested inputs, ``Maybe`` fields or global ids keep Strawberry's own
conversion, so the instance built is the same either way.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from graphql import GraphQLInputObjectType
from strawberry.relay import GlobalID
from strawberry.scalars import is_scalar
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.arguments import InputContext
from strawberry.types.base import (
    StrawberryList,
    StrawberryMaybe,
    StrawberryObjectDefinition,
    StrawberryOptional,
    StrawberryType,
)
from strawberry.types.enum import StrawberryEnumDefinition, has_enum_definition
from strawberry.types.scalar import ScalarDefinition, ScalarWrapper

ScalarRegistry = Mapping[object, ScalarWrapper | ScalarDefinition]


class LeafField(NamedTuple):
    """One field of a leaf-only input: where its value is, where it goes, if it is a list."""

    graphql_name: str
    python_name: str
    is_list: bool


@dataclasses.dataclass(frozen=True)
class LeafInputBuilder:
    """Builds an instance of one leaf-only input type from its GraphQL value.

    Called by Strawberry as ``from_input(cls, value, context)``; ``cls`` may be a
    subclass of the type it was made for.
    """

    fields: tuple[LeafField, ...]
    unset_to_none: tuple[str, ...]
    """Fields without a default: ``None`` unless the value has them (as Strawberry does)."""

    def __call__(self, cls: type, value: Mapping[str, Any], _context: InputContext) -> Any:
        kwargs: dict[str, Any] = dict.fromkeys(self.unset_to_none)
        for graphql_name, python_name, is_list in self.fields:
            if graphql_name in value:
                item = value[graphql_name]
                # Lists are copied: graphql-core shares a default between requests.
                kwargs[python_name] = list(item) if is_list and item is not None else item
        return cls(**kwargs)


def install_leaf_input_builders(
    input_types: Iterable[GraphQLInputObjectType],
    config: StrawberryConfig,
    registry: ScalarRegistry,
) -> list[str]:
    """Give every leaf-only input type among ``input_types`` its builder; their names.

    ``registry`` is the schema's whole scalar registry (built-ins and overrides).
    The builder is kept on the type's definition, as Strawberry reads it from
    there; a later schema built from the same classes finds it and keeps it.
    """
    installed: list[str] = []
    for graphql_type in input_types:
        definition = graphql_type.extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)
        if not isinstance(definition, StrawberryObjectDefinition) or not definition.is_input:
            continue
        if definition.from_input is not None and not isinstance(
            definition.from_input, LeafInputBuilder
        ):
            continue  # the type builds its own value already
        builder = leaf_input_builder(definition, config, registry)
        if builder is not None:
            definition.from_input = builder
            installed.append(graphql_type.name)
    return installed


def leaf_input_builder(
    definition: StrawberryObjectDefinition, config: StrawberryConfig, registry: ScalarRegistry
) -> LeafInputBuilder | None:
    """The builder for ``definition``, or ``None`` when a field is not a leaf."""
    fields: list[LeafField] = []
    for field in definition.fields:
        shape = _leaf_shape(field.resolve_type(type_definition=definition), registry)
        if shape is None:
            return None
        graphql_name = config.name_converter.from_field(field)
        fields.append(LeafField(graphql_name, field.python_name, is_list=shape == "list"))
    unset_to_none = tuple(
        field.python_name
        for field in definition.fields
        if field.default_value is dataclasses.MISSING
        and field.default_factory is dataclasses.MISSING
    )
    return LeafInputBuilder(tuple(fields), unset_to_none)


def _leaf_shape(type_: StrawberryType | type, registry: ScalarRegistry) -> str | None:
    """``"leaf"``, ``"list"`` (of leaves) or ``None`` (needs Strawberry's conversion)."""
    if isinstance(type_, StrawberryMaybe):
        return None  # its null check lives in Strawberry's conversion
    if isinstance(type_, StrawberryOptional):
        return _leaf_shape(type_.of_type, registry)
    if isinstance(type_, StrawberryList):
        return "list" if _leaf_shape(type_.of_type, registry) == "leaf" else None
    return "leaf" if _is_leaf(type_, registry) else None


def _is_leaf(type_: StrawberryType | type, registry: ScalarRegistry) -> bool:
    if type_ is GlobalID:
        return False  # converted from its text by Strawberry
    if isinstance(type_, StrawberryEnumDefinition) or has_enum_definition(type_):
        return True
    return is_scalar(type_, registry)
