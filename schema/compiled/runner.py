"""Running a compiled root field: check, plan (once), bind, one statement, decode.

:meth:`CompiledReads.start` is called by the execution context for each root
field of a query. It returns None (the standard path runs the field) unless
every check the standard path would make passes here too: the field's
permission classes allow the caller, its arguments validate exactly as its
resolver validates them, and every selected field is declared compilable.
Anything that would make the standard path report an error therefore runs on
the standard path, so errors are its own, byte for byte.

Plans are kept per root field node (so per document) and per the shape of
what the statement's text depends on: the values of boolean variables (which
``@include``/``@skip`` read), which filters are present and how many values a
list filter has, and whether a cursor was given (a nested connection's too: a
request whose nested filters differ from the plan's is planned once more for
them). Values are bound per request.

After the statement, fields computed in Python (:class:`Computed`) run as one
batch per field over every row that holds one. A :class:`RootRows` field runs
no statement: its declared ``rows`` function reads and serialises, and the
selection is projected onto its rows; a :class:`RootObject` field likewise, onto
its one object.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Awaitable, Mapping, Sequence
from datetime import datetime
from typing import Any

import structlog
from graphql import FieldNode, GraphQLField, GraphQLObjectType
from graphql.execution.collect_fields import FieldDetails
from graphql.execution.values import get_argument_values
from sqlalchemy import text
from strawberry.permission import PermissionExtension

from resolvers.context import Context
from schema.compiled.declarations import (
    Condition,
    RootByKey,
    RootCaller,
    RootConnection,
    RootObject,
    RootRead,
    RootRows,
)
from schema.compiled.dialects import Dialect, dialect_named
from schema.compiled.planner import (
    COMPUTED,
    ArgumentsRefusedError,
    NotCompilableError,
    Planner,
    RootPlan,
    RowsPlan,
    Selection,
    condition_parameters,
    conditions_shape,
    undeclared,
)
from schema.permissions import CONTEXT_ONLY
from storage.types import format_sqlite_time

log = structlog.get_logger("quantgraph.compiled_reads")

Plan = RootPlan | RowsPlan

# Root field nodes whose plans are kept. Each keeps its parsed document alive, so
# this stays near the document cache's own default size (1,000 documents).
MAX_PLANS = 256


class _ContextOnly:
    """What a context-only permission class reads of ``info``; for the computations after
    a statement also ``memo``, a dict they share for one answer (a read two fields need)."""

    __slots__ = ("context", "memo")

    def __init__(self, context: Context) -> None:
        self.context = context
        self.memo: dict[str, Any] = {}


class CompiledReads:
    """The plans of one schema. Not thread-safe: it lives on the event loop."""

    def __init__(self, max_plans: int = MAX_PLANS) -> None:
        self.max_plans = max_plans
        # id(root field node) -> (the node, kept alive so the id stays its own; plans by shape)
        self._plans: OrderedDict[int, tuple[FieldNode, dict[Any, Plan | None]]] = OrderedDict()
        # Counters (tests and the benchmark read them): plans made, plans refused,
        # root fields answered by a compiled statement.
        self.compiled = 0
        self.refused = 0
        self.answered = 0

    def start(
        self,
        selection: Selection,
        context: Any,
        root_type: GraphQLObjectType,
        field_def: GraphQLField,
        details: list[FieldDetails],
    ) -> Awaitable[Any] | None:
        """The root field's value as an awaitable, or None for the standard path."""
        root = _root_reads(root_type).get(details[0].node.name.value)
        if root is None:  # not a compiled field (``__typename`` and the like): nothing to ask
            return None
        if not isinstance(context, Context) or not _over_http(context):
            return None
        services = context.services
        if not services.settings.compiled_reads:
            return None
        dialect = dialect_named(services.engine.dialect.name)
        if dialect is None:
            return None
        # Selected more than once under one key, the field takes the first one's
        # arguments and all of their selections, as graphql-core does.
        node = details[0].node
        if any(d.fragment_variable_values is not None or d.defer_usage for d in details):
            return None
        if not _allowed(field_def, context):
            return None
        if isinstance(root, (RootRows, RootObject)):
            return self._start_rows(selection, dialect, context, root, field_def, details)
        try:
            arguments = get_argument_values(field_def, node, selection.variable_values)
            if undeclared(arguments, root.arguments):
                return None
            parameters, shape = _bind(root, arguments, context)
        except Exception:  # the resolver would refuse these arguments: let it say so
            return None
        plan = self._sql_plan(selection, dialect, root, field_def, details, shape)
        if plan is not None and plan.connection is not None:
            connection = plan.connection
            try:
                nested = get_argument_values(
                    connection.field_def, connection.node, selection.variable_values
                )
                if undeclared(nested, connection.read.connection.arguments):
                    return None
                nested_parameters, nested_shape = _bind(connection.read.connection, nested, context)
            except Exception:  # the resolver would refuse it: let it say so
                return None
            if nested_shape != connection.shape:  # other filters than the plan's: plan for them
                shape = (*shape, nested_shape)
                plan = self._sql_plan(selection, dialect, root, field_def, details, shape)
                if plan is None or plan.connection is None or plan.connection.shape != nested_shape:
                    return None
            parameters.update(nested_parameters)
        if plan is None:
            return None
        cap = services.settings.max_page_size
        for site in plan.sites:
            try:
                nested = get_argument_values(site.field_def, site.node, selection.variable_values)
                if undeclared(nested, site.read.arguments):
                    return None
                limit = site.read.limit
                assert limit is not None, "only limited lists bind an argument"
                parameters[site.parameter] = limit(nested, cap)
            except Exception:  # the resolver would refuse it: let it say so
                return None
        return self._run(context, plan, parameters)

    def _start_rows(
        self,
        selection: Selection,
        dialect: Dialect,
        context: Context,
        root: RootRows | RootObject,
        field_def: GraphQLField,
        details: list[FieldDetails],
    ) -> Awaitable[Any] | None:
        plan = self._plan(selection, dialect, root, field_def, details, ())
        if not isinstance(plan, RowsPlan):
            return None
        try:
            arguments = get_argument_values(field_def, details[0].node, selection.variable_values)
            if undeclared(arguments, root.arguments):
                return None
            if isinstance(root, RootObject):
                return self._run_object(plan, root.value(_ContextOnly(context), arguments))
            rows = root.rows(_ContextOnly(context), arguments)
        except Exception:  # the resolver would refuse these arguments: let it say so
            return None
        return self._run_rows(plan, rows)

    async def _run_rows(
        self, plan: RowsPlan, rows: Awaitable[Sequence[Mapping[str, Any]]]
    ) -> Sequence[Mapping[str, Any]]:
        found = await rows
        self.answered += 1
        return plan.project(found)

    async def _run_object(
        self, plan: RowsPlan, value: Awaitable[Mapping[str, Any]]
    ) -> Mapping[str, Any]:
        found = await value
        self.answered += 1
        return plan.project([found])[0]

    def _sql_plan(
        self,
        selection: Selection,
        dialect: Dialect,
        root: RootRead,
        field_def: GraphQLField,
        details: list[FieldDetails],
        shape: tuple[Any, ...],
    ) -> RootPlan | None:
        plan = self._plan(selection, dialect, root, field_def, details, shape)
        return plan if isinstance(plan, RootPlan) else None

    async def _run(self, context: Context, plan: RootPlan, parameters: dict[str, Any]) -> Any:
        async with context.services.sessions() as session:
            result = await session.execute(text(plan.sql), parameters)
            document = result.scalar()
        if document is None:
            self.answered += 1
            return None
        value = json.loads(document)
        if plan.computed:
            await _compute(plan, value, context)
        self.answered += 1
        return plan.finish(value) if plan.finish is not None else value

    def _plan(
        self,
        selection: Selection,
        dialect: Dialect,
        root: RootRead,
        field_def: GraphQLField,
        details: list[FieldDetails],
        shape: tuple[Any, ...],
    ) -> Plan | None:
        node = details[0].node
        booleans = tuple(
            sorted(
                (name, value)
                for name, value in selection.variable_values.coerced.items()
                if isinstance(value, bool)
            )
        )
        key = (dialect.name, booleans, shape)
        entry = self._plans.get(id(node))
        if entry is None or entry[0] is not node:
            entry = (node, {})
            self._plans[id(node)] = entry
            while len(self._plans) > self.max_plans:
                self._plans.popitem(last=False)
        else:
            self._plans.move_to_end(id(node))
        plans = entry[1]
        if key in plans:
            return plans[key]
        planner = Planner(selection, dialect)
        try:
            plan: Plan | None
            if isinstance(root, (RootRows, RootObject)):
                plan = planner.rows(root, field_def, details)
            elif isinstance(root, RootConnection):
                conditions_key, has_after = shape
                plan = planner.connection(
                    root, field_def, details, _shape_conditions(conditions_key), has_after
                )
            else:
                plan = planner.by_key(root, field_def, details)
            self.compiled += 1
        except ArgumentsRefusedError:
            return None  # this request's arguments only: another request may plan it
        except NotCompilableError as reason:
            log.debug("standard path", field=node.name.value, reason=str(reason))
            plan = None
            self.refused += 1
        if len(plans) < 64:
            plans[key] = plan
        return plan


async def _compute(plan: RootPlan, value: Any, context: Context) -> None:
    """Replace every computed field's placeholder in ``value`` with its value: one batch
    per declared field, however many rows hold it."""
    found: dict[int, list[tuple[Any, Any, Mapping[str, Any]]]] = {}
    stack = [value]
    while stack:
        node = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, child in items:
            if isinstance(child, dict) and COMPUTED in child:
                found.setdefault(int(child[COMPUTED]), []).append((node, key, child["i"]))
            elif isinstance(child, (dict, list)):
                stack.append(child)
    info = _ContextOnly(context)
    for index, places in found.items():
        values = await plan.computed[index].compute(info, [inputs for _, _, inputs in places])
        for (node, key, _), computed in zip(places, values, strict=True):
            node[key] = computed


def _over_http(context: Context) -> bool:
    # WebSocket operations keep the standard path (their context outlives a request).
    return context.request.scope.get("type") == "http"


def _root_reads(root_type: GraphQLObjectType) -> Mapping[str, RootRead]:
    """The root type's compiled fields, found once and kept on it (types live as long
    as their schema): every root field of every query asks."""
    reads = root_type.__dict__.get("_quantgraph_sql_reads")
    if reads is None:
        definition = (root_type.extensions or {}).get("strawberry-definition")
        found = getattr(getattr(definition, "origin", None), "sql_reads", None)
        reads = dict(found) if isinstance(found, Mapping) else {}
        root_type._quantgraph_sql_reads = reads  # type: ignore[attr-defined]
    return reads


def _allowed(field_def: GraphQLField, context: Context) -> bool:
    """Do the field's permission classes let this caller in? Only classes known to read
    nothing but the context are asked; any other extension means the standard path."""
    definition = (field_def.extensions or {}).get("strawberry-definition")
    for extension in getattr(definition, "extensions", None) or ():
        if not isinstance(extension, PermissionExtension):
            return False
        for permission in extension.permissions:
            permission_class = type(permission)
            if permission_class not in CONTEXT_ONLY:
                return False
            try:
                allowed = permission_class().has_permission(None, _ContextOnly(context))  # type: ignore[arg-type]
            except Exception:
                return False
            if allowed is not True:
                return False
    return True


def _bind(
    root: RootConnection | RootByKey | RootCaller, arguments: Mapping[str, Any], context: Context
) -> tuple[dict[str, Any], tuple[Any, ...]]:
    """The statement's parameters and the shape its text depends on; raises on arguments
    the resolver refuses."""
    parameters: dict[str, Any] = {}
    if root.owner is not None:
        parameters["_owner"] = context.user_id
    if isinstance(root, RootCaller):
        parameters["_key"] = context.user_id
        return parameters, ()
    if isinstance(root, RootByKey):
        parameters["_key"] = root.key(arguments)
        return parameters, ()
    page = root.page(arguments, context.services.settings.max_page_size)
    conditions = list(root.narrowing(arguments))
    convert = _converter(context.services.engine.dialect.name)
    parameters.update(condition_parameters(conditions, convert))
    parameters["_first"] = page.limit
    parameters["_limit"] = page.limit + 1
    if page.after_key is not None:
        parameters["_after"] = page.after_key
    return parameters, (conditions_shape(conditions), page.after_key is not None)


def _shape_conditions(shape: tuple[tuple[str, str, int], ...]) -> list[Condition]:
    return [
        Condition(column, op, [None] * size if op == "in" else None) for column, op, size in shape
    ]


def _converter(dialect_name: str) -> Any:
    def convert(value: Any) -> Any:
        if dialect_name == "sqlite" and isinstance(value, datetime):
            return format_sqlite_time(value)
        return value

    return convert
