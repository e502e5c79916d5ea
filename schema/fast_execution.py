"""A shorter path through graphql-core for plain leaf fields and leaf lists.

Most fields of a large response are plain data: ``Order.status``,
``Symbol.code``, the ``closes`` of a kline series. For each of them
graphql-core builds a ``ResolveInfo``, calls Strawberry's resolver wrapper,
checks for awaitables and completes the value through several generic steps,
which is where a 100-order page or a 10,000-bar series spends most of its time
(strawberry-graphql/strawberry#3544). A *plain leaf* here is a scalar or enum
field with no resolver function, no arguments and no field extensions
(permissions): its value is an attribute of the parent object, so reading it
and coercing it is all the full path would do. Leaf lists (``[Decimal!]!``)
are coerced in one comprehension.

Whenever a value is not the simple case (missing, ``None`` for a non-null
field, a coercion error) the standard path runs instead, so errors are
reported exactly as before. Field shortcuts are off when a schema extension
hooks ``resolve`` (tracing), since that hook must see every field.

Root fields of a query may skip graphql-core altogether: the compiled read path
(:mod:`schema.compiled`) answers a declared relational field with one SQL
statement that builds its JSON, and hands the value back here as the field's
completed result. Everything before execution (parsing, validation, the query
limits, rate limits, metrics) has run as usual by then; when the compiled path
declines a field, or its statement fails, the field runs as below.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import structlog
from graphql import (
    GraphQLField,
    GraphQLLeafType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLResolveInfo,
    OperationType,
    is_leaf_type,
)
from graphql.pyutils import Path
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.types.field import StrawberryField

from schema.compiled.planner import Selection
from schema.compiled.runner import CompiledReads

log = structlog.get_logger("quantgraph.compiled_reads")

Coerce = Callable[[Any], Any]
_MISSING = object()
# (attribute name, coerce, nullable) for a plain leaf field; None for any other.
_Plan = tuple[str, Coerce, bool] | None


def plain_leaf_plan(field_def: GraphQLField) -> _Plan:
    definition = (field_def.extensions or {}).get("strawberry-definition")
    if not isinstance(definition, StrawberryField):
        return None
    if definition.base_resolver is not None or definition.extensions or field_def.args:
        return None
    nullable = not isinstance(field_def.type, GraphQLNonNull)
    named = field_def.type.of_type if isinstance(field_def.type, GraphQLNonNull) else field_def.type
    if not is_leaf_type(named):
        return None
    leaf: GraphQLLeafType = named
    return definition.python_name, leaf.coerce_output_value, nullable


def leaf_items(return_type: GraphQLList[GraphQLOutputType]) -> Coerce | None:
    """The coercion of a ``[Leaf!]`` list's items, or None for other lists."""
    item_type = return_type.of_type
    if isinstance(item_type, GraphQLNonNull) and is_leaf_type(item_type.of_type):
        leaf: GraphQLLeafType = item_type.of_type
        return leaf.coerce_output_value
    return None


_NOT_PLANNED = object()


def compiled_reads_of(schema: Any) -> CompiledReads:
    """The compiled-read plans of a schema, kept on it (they live as long as it does)."""
    reads = getattr(schema, "_quantgraph_compiled_reads", None)
    if reads is None:
        reads = CompiledReads()
        schema._quantgraph_compiled_reads = reads
    assert isinstance(reads, CompiledReads)
    return reads


def plan_of(field_def: GraphQLField) -> _Plan:
    """Computed once per field and kept on it (fields live as long as their schema)."""
    plan = getattr(field_def, "_quantgraph_plan", _NOT_PLANNED)
    if plan is _NOT_PLANNED:
        plan = plain_leaf_plan(field_def)
        field_def._quantgraph_plan = plan  # type: ignore[attr-defined]
    return plan  # type: ignore[return-value]


class FastExecutionContext(StrawberryGraphQLCoreExecutionContext):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Strawberry turns extensions that hook ``resolve`` (tracing) into
        # middleware, which must see every field: no shortcut then.
        manager = self.middleware_manager
        self._shortcut = not (manager is not None and manager.middlewares)

    def execute_field(
        self,
        parent_type: GraphQLObjectType,
        source: Any,
        field_details_list: Any,
        path: Path,
        position_context: Any,
    ) -> Any:
        field_def = self.schema.get_field(parent_type, field_details_list[0].node.name.value)
        if (
            path.prev is None
            and field_def is not None
            and self._shortcut
            and parent_type is self.schema.query_type
            and self.operation.operation is OperationType.QUERY
        ):
            compiled = compiled_reads_of(self.schema).start(
                Selection(self.schema, self.fragments, self.variable_values, self.operation),
                self.context_value,
                parent_type,
                field_def,
                field_details_list,
            )
            if compiled is not None:
                return self._compiled_or_standard(
                    compiled, parent_type, source, field_details_list, path, position_context
                )
        if field_def is not None and self._shortcut:
            plan = plan_of(field_def)
            if plan is not None:
                attribute, coerce, nullable = plan
                value = getattr(source, attribute, _MISSING)
                if value is None and nullable:
                    return None
                if value is not None and value is not _MISSING:
                    try:
                        coerced = coerce(value)
                    except Exception:
                        coerced = None
                    if coerced is not None:
                        return coerced
        return super().execute_field(
            parent_type, source, field_details_list, path, position_context
        )

    async def _compiled_or_standard(
        self,
        compiled: Awaitable[Any],
        parent_type: GraphQLObjectType,
        source: Any,
        field_details_list: Any,
        path: Path,
        position_context: Any,
    ) -> Any:
        try:
            return await compiled
        except Exception:
            # The statement failed (the database went away, a type it did not expect):
            # the standard path runs the field and reports what it finds, as usual.
            log.warning("compiled read failed; standard path", field=path.key, exc_info=True)
        result = super().execute_field(
            parent_type, source, field_details_list, path, position_context
        )
        return await result if self.is_awaitable(result) else result

    def complete_list_value(
        self,
        return_type: GraphQLList[GraphQLOutputType],
        field_details_list: Any,
        info: GraphQLResolveInfo[Any],
        path: Path,
        result: Any,
        position_context: Any,
    ) -> Any:
        coerce = leaf_items(return_type)
        if coerce is not None and isinstance(result, (list, tuple)):
            completed = _coerce_all(coerce, result)
            if completed is not None:
                return completed
        return super().complete_list_value(
            return_type, field_details_list, info, path, result, position_context
        )


def _coerce_all(coerce: Coerce, items: Iterable[Any]) -> list[Any] | None:
    """All items coerced, or None when any needs the full path (None, error)."""
    try:
        completed = [coerce(item) for item in items]
    except Exception:
        return None
    return None if any(value is None for value in completed) else completed
