"""Query limits, checked before any resolver runs.

- tokens (``TOO_MANY_TOKENS``): the parser stops past the limit, so a huge
  document costs no more than the limit to reject;
- depth (``QUERY_TOO_DEEP``) and aliases (``TOO_MANY_ALIASES``): Strawberry's own
  validation rules, with our error codes;
- cost (``QUERY_TOO_COMPLEX``): a budget in the style of GitHub's and Shopify's.
  An object costs 1, a scalar 0, and a list or connection multiplies everything
  under it by its page size (the ``first``/``last``/``limit`` argument, its
  default, or ``list_size`` when it has none). ``orders(first: 100)`` with
  ``fills`` under each node costs 100 + 100 × 20 = 2,100. The cost is reported
  in the response (``extensions.cost``) and weights rate limits;
- introspection can be switched off (``INTROSPECTION_DISABLED``).

Refusals are validation errors, so the GraphQL-over-HTTP layer answers 400.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
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
    ValidationContext,
    ValidationRule,
    VariableNode,
    get_named_type,
    is_leaf_type,
)
from graphql.pyutils import Undefined
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.extensions import AddValidationRules, MaxTokensLimiter, SchemaExtension
from strawberry.extensions.max_aliases import create_validator as alias_validator
from strawberry.extensions.query_depth_limiter import create_validator as depth_validator

ExtensionFactory = Callable[[], SchemaExtension]
PAGE_ARGUMENTS = ("first", "last", "limit")


@dataclass(frozen=True, slots=True)
class QueryLimits:
    max_depth: int = 12
    max_aliases: int = 30
    max_tokens: int = 5000
    max_cost: int = 10_000
    list_size: int = 20
    introspection: bool = True


def limit_extensions(limits: QueryLimits) -> list[ExtensionFactory]:
    """The extensions enforcing ``limits``, as per-request factories."""
    rules = (
        _with_code(depth_validator(limits.max_depth, None), "QUERY_TOO_DEEP"),
        _with_code(alias_validator(limits.max_aliases), "TOO_MANY_ALIASES"),
    )
    factories: list[ExtensionFactory] = [
        lambda: TokenLimit(limits.max_tokens),
        lambda: AddValidationRules(list(rules)),
        lambda: QueryCost(limits.max_cost, limits.list_size),
    ]
    if not limits.introspection:
        factories.append(lambda: AddValidationRules([NoIntrospection]))
    return factories


class NoIntrospection(NoSchemaIntrospectionCustomRule):
    """graphql-core's rule (what Strawberry's ``DisableIntrospection`` adds), with a code."""

    def report_error(self, error: GraphQLError) -> None:
        error.extensions = {**(error.extensions or {}), "code": "INTROSPECTION_DISABLED"}
        super().report_error(error)


def _with_code(rule: type[ValidationRule], code: str) -> type[ValidationRule]:
    """Strawberry's rules report plain errors from ``__init__``; give them our code."""

    class Coded(ValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            report = context.on_error

            def tagged(error: GraphQLError) -> None:
                error.extensions = {**(error.extensions or {}), "code": code}
                report(error)

            context.on_error = tagged  # type: ignore[method-assign]
            try:
                rule(context)
            finally:
                context.on_error = report  # type: ignore[method-assign]
            super().__init__(context)

    Coded.__name__ = f"{rule.__name__}With{code.title().replace('_', '')}"
    return Coded


class TokenLimit(MaxTokensLimiter):
    """Strawberry's token limit, with its own error code instead of a parse failure."""

    def on_parse(self) -> Iterator[None]:
        yield
        for error in self.execution_context.pre_execution_errors or []:
            if "tokens. Parsing aborted." in error.message:
                error.extensions = {
                    **(error.extensions or {}),
                    "code": "TOO_MANY_TOKENS",
                    "maximumTokens": self.max_token_count,
                }


class QueryCost(SchemaExtension):
    """Computes the operation's cost during validation and refuses it over ``max_cost``.

    The cost lands in ``extensions_results["cost"]`` (``{"requested", "maximum"}``),
    which Strawberry returns as ``extensions.cost`` and the rate limit reads.
    """

    def __init__(self, max_cost: int, list_size: int) -> None:
        self.max_cost = max_cost
        self.list_size = list_size

    def on_validate(self) -> Iterator[None]:
        execution_context = self.execution_context
        max_cost, list_size = self.max_cost, self.list_size

        class CostRule(ValidationRule):
            def __init__(self, context: ValidationContext) -> None:
                super().__init__(context)
                cost = operation_cost(
                    context.schema,
                    context.document,
                    execution_context.operation_name,
                    execution_context.variables or {},
                    list_size=list_size,
                )
                execution_context.extensions_results["cost"] = {
                    "requested": cost,
                    "maximum": max_cost,
                }
                if cost > max_cost:
                    context.report_error(
                        GraphQLError(
                            f"Query cost {cost} exceeds the maximum of {max_cost}: "
                            "ask for smaller pages or fewer nested lists",
                            extensions={
                                "code": "QUERY_TOO_COMPLEX",
                                "cost": cost,
                                "maximumCost": max_cost,
                            },
                        )
                    )

        execution_context.validation_rules = (*execution_context.validation_rules, CostRule)
        yield


def operation_cost(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None,
    variables: Mapping[str, Any],
    *,
    list_size: int = 20,
) -> int:
    """The cost of the operation that will run (the most expensive one if unclear)."""
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is not None:
        operations = [op for op in operations if op.name and op.name.value == operation_name]
    costs = [_Walker(schema, fragments, op, variables, list_size).operation() for op in operations]
    return max(costs, default=0)


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
        self.defaults = {
            d.variable.name.value: d.default_value
            for d in operation.variable_definitions or ()
            if isinstance(d.default_value, IntValueNode)
        }

    def operation(self) -> int:
        root = self.schema.get_root_type(self.operation_node.operation)
        if root is None:
            return 0
        return self.selections(root, self.operation_node.selection_set, 1, frozenset())

    def selections(
        self,
        parent: GraphQLNamedType,
        selection_set: SelectionSetNode | None,
        multiplier: int,
        fragments_seen: frozenset[str],
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
                total += self.field(parent, selection, multiplier, fragments_seen, wrapper)
                continue
            if isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                target = self.schema.get_type(condition.name.value) if condition else parent
                fragment_set, seen = selection.selection_set, fragments_seen
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = self.fragments.get(name)
                if fragment is None or name in fragments_seen:
                    continue  # unknown or cyclic: the standard rules report it
                target = self.schema.get_type(fragment.type_condition.name.value)
                fragment_set, seen = fragment.selection_set, fragments_seen | {name}
            else:
                continue
            total += self.selections(target or parent, fragment_set, multiplier, seen, wrapper)
        return total

    def field(
        self,
        parent: GraphQLNamedType,
        node: FieldNode,
        multiplier: int,
        fragments_seen: frozenset[str],
        wrapper: _Wrapper | None,
    ) -> int:
        name = node.name.value
        if name.startswith("__") or not isinstance(
            parent, (GraphQLObjectType, GraphQLInterfaceType)
        ):
            return 0
        definition = parent.fields.get(name)
        if definition is None:
            return 0
        named = get_named_type(definition.type)
        if is_leaf_type(named):
            return 0
        selection_set = node.selection_set
        if wrapper is not None and name in wrapper.item_fields:
            inner = _Wrapper(("node",), wrapper.items) if name == "edges" else None
            return self.selections(named, selection_set, wrapper.items, fragments_seen, inner)
        size = self.page_size(node, definition.args)
        if _is_connection(named):
            count = multiplier * (size if size is not None else self.list_size)
            connection = _Wrapper(("edges", "nodes"), count)
            return count + self.selections(
                named, selection_set, multiplier, fragments_seen, connection
            )
        if _is_list(definition.type):
            count = multiplier * (size if size is not None else self.list_size)
            return count + self.selections(named, selection_set, count, fragments_seen)
        return multiplier + self.selections(named, selection_set, multiplier, fragments_seen)

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
