"""The cost of an operation, in the style of GitHub's and Shopify's APIs.

An object costs 1, a scalar 0, and a list or connection multiplies everything
under it by its page size (the ``first``/``last``/``limit`` argument, its
default, or ``list_size`` when it has none). ``orders(first: 100)`` with
``fills`` under each node costs 100 + 100 × 20 = 2,100.

Introspection is priced like the rest: ``__schema`` and ``__type`` are objects,
and its lists are as long as this schema makes them on average (``types`` is
every type, ``fields`` the mean number of fields per type…), and ``ofType``
is part of the type reference it unwraps. One full introspection then costs a
few times the objects its answer holds, and thirty aliased copies thirty times
that.

A fragment is priced once per place it can be spread from (its cost is
proportional to the multiplier it is spread under), so fragments spread twice
in each of thirty levels cost thirty steps of work, not 2^30.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLField,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
    get_named_type,
    is_abstract_type,
    is_leaf_type,
)
from graphql.pyutils import Undefined
from graphql.type import GraphQLEnumType, SchemaMetaFieldDef, TypeMetaFieldDef

PAGE_ARGUMENTS = ("first", "last", "limit")


def operation_cost(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None,
    variables: Mapping[str, Any],
    *,
    list_size: int = 20,
) -> int:
    """The cost of the operation that will run (the most expensive one if unclear)."""
    return priced_operation(schema, document, operation_name, variables, list_size=list_size)[0]


def priced_operation(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None,
    variables: Mapping[str, Any],
    *,
    list_size: int = 20,
) -> tuple[int, bool]:
    """:func:`operation_cost`, and whether a variable's value went into it: when none
    did, every request of this document and operation costs the same."""
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is not None:
        operations = [op for op in operations if op.name and op.name.value == operation_name]
    walkers = [_Walker(schema, fragments, op, variables, list_size) for op in operations]
    costs = [walker.operation() for walker in walkers]
    return max(costs, default=0), any(walker.read_variables for walker in walkers)


class _Walker:
    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: Mapping[str, FragmentDefinitionNode],
        operation: OperationDefinitionNode,
        variables: Mapping[str, Any],
        list_size: int,
    ) -> None:
        self.schema = schema
        self.fragments = fragments
        self.operation_node = operation
        self.variables = variables
        self.list_size = list_size
        self.introspection_sizes = introspection_list_sizes(schema)
        self.defaults = {
            d.variable.name.value: d.default_value
            for d in operation.variable_definitions or ()
            if isinstance(d.default_value, IntValueNode)
        }
        # Cost of a fragment spread under a multiplier of 1, by (fragment, parent
        # type, wrapper fields, items per multiplier).
        self.unit_costs: dict[tuple[str, str, tuple[str, ...], int], int] = {}
        self.active: set[str] = set()  # fragments being priced: a spread back is a cycle
        self.read_variables = False  # whether a page size came from a variable

    def operation(self) -> int:
        root = self.schema.get_root_type(self.operation_node.operation)
        if root is None:
            return 0
        return self.selections(root, self.operation_node.selection_set, 1)

    def selections(
        self,
        parent: GraphQLNamedType,
        selection_set: SelectionSetNode | None,
        multiplier: int,
        wrapper: _Wrapper | None = None,
    ) -> int:
        """Cost of a selection set resolved ``multiplier`` times.

        ``wrapper`` is set inside a connection (or an edge): its ``edges``/``nodes``
        (an edge's ``node``) are the connection's items, already paid for.
        """
        if selection_set is None:
            return 0
        total = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                total += self.field(parent, selection, multiplier, wrapper)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                target = self.schema.get_type(condition.name.value) if condition else parent
                total += self.selections(
                    target or parent, selection.selection_set, multiplier, wrapper
                )
            elif isinstance(selection, FragmentSpreadNode):
                total += self.spread(parent, selection.name.value, multiplier, wrapper)
        return total

    def spread(
        self, parent: GraphQLNamedType, name: str, multiplier: int, wrapper: _Wrapper | None
    ) -> int:
        fragment = self.fragments.get(name)
        if fragment is None or name in self.active or multiplier == 0:
            return 0  # unknown or cyclic: the standard rules report it
        target = self.schema.get_type(fragment.type_condition.name.value) or parent
        # Every term of a cost is the multiplier times something (a wrapper's items
        # too), so the fragment is priced once at 1 and scaled.
        items = wrapper.items if wrapper is not None else 0
        per_item, remainder = divmod(items, multiplier)
        fields = wrapper.item_fields if wrapper is not None else ()
        key = (name, parent.name, fields, per_item)
        unit = self.unit_costs.get(key) if remainder == 0 else None
        if unit is None:
            inner = _Wrapper(fields, per_item) if wrapper is not None else None
            self.active.add(name)
            try:
                if remainder:  # pragma: no cover - wrappers always hold whole multiples
                    return self.selections(target, fragment.selection_set, multiplier, wrapper)
                unit = self.selections(target, fragment.selection_set, 1, inner)
            finally:
                self.active.discard(name)
            self.unit_costs[key] = unit
        return multiplier * unit

    def field(
        self,
        parent: GraphQLNamedType,
        node: FieldNode,
        multiplier: int,
        wrapper: _Wrapper | None,
    ) -> int:
        name = node.name.value
        definition = self.definition(parent, name)
        if definition is None:
            return 0
        named = get_named_type(definition.type)
        if is_leaf_type(named):
            return 0
        if (parent.name, name) == ("__Type", "ofType"):
            # The wrapped type of a list or non-null reference: priced with the
            # reference (a chain of them is one type), not per level.
            return self.selections(named, node.selection_set, multiplier)
        selection_set = node.selection_set
        if wrapper is not None and name in wrapper.item_fields:
            inner = _Wrapper(("node",), wrapper.items) if name == "edges" else None
            return self.selections(named, selection_set, wrapper.items, inner)
        size = self.page_size(node, definition.args)
        if size is None and parent.name.startswith("__"):
            size = self.introspection_sizes.get((parent.name, name))
        if _is_connection(named):
            count = multiplier * (size if size is not None else self.list_size)
            connection = _Wrapper(("edges", "nodes"), count)
            return count + self.selections(named, selection_set, multiplier, connection)
        if _is_list(definition.type):
            count = multiplier * (size if size is not None else self.list_size)
            return count + self.selections(named, selection_set, count)
        return multiplier + self.selections(named, selection_set, multiplier)

    def definition(self, parent: GraphQLNamedType, name: str) -> GraphQLField | None:
        if parent is self.schema.query_type:
            if name == "__schema":
                return SchemaMetaFieldDef
            if name == "__type":
                return TypeMetaFieldDef
        if not isinstance(parent, (GraphQLObjectType, GraphQLInterfaceType)):
            return None
        field: GraphQLField | None = parent.fields.get(name)
        return field  # __typename is not there: a scalar, free

    def page_size(self, node: FieldNode, arguments: Mapping[str, Any]) -> int | None:
        given = {argument.name.value: argument.value for argument in node.arguments or ()}
        for name in PAGE_ARGUMENTS:
            if name not in arguments:
                continue
            value = given.get(name)
            size: object = None
            if isinstance(value, IntValueNode):
                size = int(value.value)
            elif isinstance(value, VariableNode):
                self.read_variables = True
                variable = value.name.value
                size = self.variables.get(variable)
                if size is None and variable in self.defaults:
                    size = int(self.defaults[variable].value)
            if size is None or value is None:
                default = arguments[name].default_value
                size = default if default is not Undefined else None
            if isinstance(size, int) and not isinstance(size, bool):
                return max(size, 0)
        return None


_INTROSPECTION_SIZES: weakref.WeakKeyDictionary[GraphQLSchema, dict[tuple[str, str], int]] = (
    weakref.WeakKeyDictionary()
)


def introspection_list_sizes(schema: GraphQLSchema) -> dict[tuple[str, str], int]:
    """The page size of each introspection list: its mean length in this schema.

    Multiplied through, ``__schema { types { fields { args } } }`` then costs as
    many items as the schema has types, fields and arguments.
    """
    sizes = _INTROSPECTION_SIZES.get(schema)
    if sizes is not None:
        return sizes
    types = list(schema.type_map.values())
    composite = [t for t in types if isinstance(t, (GraphQLObjectType, GraphQLInterfaceType))]
    fields = [f for t in composite for f in t.fields.values()]
    directives = schema.directives

    def mean(total: int, count: int) -> int:
        return max(1, math.ceil(total / max(count, 1)))

    sizes = {
        ("__Schema", "types"): max(1, len(types)),
        ("__Schema", "directives"): max(1, len(directives)),
        ("__Type", "fields"): mean(len(fields), len(types)),
        ("__Type", "interfaces"): mean(sum(len(t.interfaces) for t in composite), len(types)),
        ("__Type", "possibleTypes"): mean(
            sum(len(schema.get_possible_types(t)) for t in types if is_abstract_type(t)),
            len(types),
        ),
        ("__Type", "enumValues"): mean(
            sum(len(t.values) for t in types if isinstance(t, GraphQLEnumType)), len(types)
        ),
        ("__Type", "inputFields"): mean(
            sum(len(t.fields) for t in types if isinstance(t, GraphQLInputObjectType)),
            len(types),
        ),
        ("__Field", "args"): mean(sum(len(f.args) for f in fields), len(fields)),
        ("__Directive", "args"): mean(sum(len(d.args) for d in directives), len(directives)),
    }
    _INTROSPECTION_SIZES[schema] = sizes
    return sizes


@dataclass(frozen=True, slots=True)
class _Wrapper:
    item_fields: tuple[str, ...]
    items: int


def _is_list(type_: GraphQLOutputType) -> bool:
    while isinstance(type_, GraphQLNonNull):
        type_ = type_.of_type
    return isinstance(type_, GraphQLList)


def _is_connection(type_: GraphQLNamedType) -> bool:
    return (
        isinstance(type_, GraphQLObjectType)
        and type_.name.endswith("Connection")
        and "edges" in type_.fields
    )
