"""The GraphQL schema: types, inputs, enums and the ``Schema`` object."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import strawberry
import structlog
from graphql import GraphQLError, GraphQLInputObjectType
from strawberry.extensions import SchemaExtension
from strawberry.extensions.runner import SchemaExtensionsRunner
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types import ExecutionContext

from graphql_api.hardening.error_codes import (
    ErrorCodes,
    MaskInternalErrors,
    OperationSelection,
    is_internal,
)
from graphql_api.hardening.prepared_operations import prepare_operation
from graphql_api.hardening.query_limits.guard import ExtensionFactory
from graphql_api.hardening.text_inputs import RefuseNulCharacters
from schema.extension_hooks import CachedHooksRunner
from schema.fast_execution import FastExecutionContext
from schema.input_builders import install_leaf_input_builders
from schema.mutation import Mutation
from schema.query import Query
from schema.scalars import DateTimeScalar, DecimalScalar
from schema.subscription import Subscription

log = structlog.get_logger("quantgraph.graphql")


class QuantgraphSchema(strawberry.Schema):
    """Logs client mistakes briefly and internal errors with their traceback (once, masked);
    runs the extensions' hooks found once per class (:mod:`schema.extension_hooks`);
    skips parsing and validation for a prepared operation
    (:mod:`graphql_api.hardening.prepared_operations`);
    builds leaf-only input objects with a renaming worked out once (:mod:`schema.input_builders`).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        input_types = (
            graphql_type
            for graphql_type in self._schema.type_map.values()
            if isinstance(graphql_type, GraphQLInputObjectType)
        )
        install_leaf_input_builders(input_types, self.config, self.schema_converter.scalar_registry)

    def create_extensions_runner(
        self, execution_context: ExecutionContext, extensions: list[SchemaExtension]
    ) -> SchemaExtensionsRunner:
        return CachedHooksRunner(execution_context=execution_context, extensions=extensions)

    async def _prepare_operation_async(
        self, context: ExecutionContext, extensions_runner: SchemaExtensionsRunner
    ) -> Any:
        if not prepare_operation(context, extensions_runner.extensions):
            return await super()._prepare_operation_async(context, extensions_runner)
        # What Strawberry checks between parsing and validation.
        try:
            operation_type = context.operation_type
        except RuntimeError as error:
            raise CannotGetOperationTypeError(context.operation_name) from error
        if operation_type not in context.allowed_operations:
            raise InvalidOperationTypeError(operation_type)
        return None

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        for error in errors:
            if is_internal(error):
                continue  # MaskInternalErrors logs it with the request id
            log.info("graphql client error", message=error.message, code=_code(error))


def _code(error: GraphQLError) -> Any:
    return (error.extensions or {}).get("code")


def build_schema(extensions: Sequence[ExtensionFactory] = ()) -> QuantgraphSchema:
    """The schema, with ``extensions`` after error codes, masking and operation selection
    (hardening's, per app)."""
    return QuantgraphSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=[
            ErrorCodes,
            MaskInternalErrors,
            RefuseNulCharacters,
            OperationSelection,
            *extensions,
        ],
        config=StrawberryConfig(scalar_map={Decimal: DecimalScalar, datetime: DateTimeScalar}),
        execution_context_class=FastExecutionContext,
    )


schema = build_schema()

__all__ = ["QuantgraphSchema", "build_schema", "schema"]
