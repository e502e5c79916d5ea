"""Rate limits on GraphQL operations, weighted by their cost.

Runs after validation (so it knows the cost computed by
:class:`graphql_api.hardening.query_limits.guard.QueryCost`) and before any resolver. A
signed-in user draws from their own bucket, an anonymous client from its IP address's;
``placeOrder`` and ``placeOrders`` also draw one point per order from a
stricter bucket of their own. A refusal is the GraphQL error ``RATE_LIMITED`` with ``retryAfter``
seconds; over HTTP the status is 429 with a ``Retry-After`` header.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass

from graphql import ExecutionResult as GraphQLExecutionResult
from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    ListValueNode,
    SelectionSetNode,
    VariableNode,
    get_operation_ast,
)
from starlette.requests import HTTPConnection
from starlette.responses import Response
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from graphql_api.hardening.rate_limits.buckets import (
    BucketSpec,
    Decision,
    RateLimiter,
    retry_after_header,
)


@dataclass(frozen=True, slots=True)
class RateLimits:
    user: BucketSpec
    anonymous: BucketSpec
    place_order: BucketSpec
    # Roles never limited (trusted services, such as a FEED pushing ticks).
    exempt_roles: frozenset[str] = frozenset()


class RateLimit(SchemaExtension):
    """Parameters:
    limiter: the buckets (shared through Redis or per process).
    limits: the bucket sizes and refill rates.
    on_refused: called with the bucket name of each refusal (metrics).
    """

    def __init__(
        self,
        limiter: RateLimiter,
        limits: RateLimits,
        on_refused: Callable[[str], None] | None = None,
    ) -> None:
        self.limiter = limiter
        self.limits = limits
        self.on_refused = on_refused

    async def on_execute(self) -> AsyncIterator[None]:
        refusal = await self._check()
        if refusal is not None:
            if self.execution_context.operation_type is OperationType.SUBSCRIPTION:
                raise refusal  # subscriptions ignore a preset result; Strawberry reports it
            self.execution_context.result = GraphQLExecutionResult(data=None, errors=[refusal])
        yield

    async def _check(self) -> GraphQLError | None:
        context = self.execution_context.context
        principal = getattr(context, "principal", None)
        role = getattr(getattr(principal, "role", None), "value", None)
        if role is not None and role in self.limits.exempt_roles:
            return None
        if principal is not None:
            key, spec = f"user:{principal.user_id}", self.limits.user
        else:
            key, spec = f"ip:{_client_address(context)}", self.limits.anonymous
        cost = (self.execution_context.extensions_results.get("cost") or {}).get("requested", 1)
        decision = await self.limiter.take(key, spec, max(float(cost), 1.0))
        if not decision.allowed:
            return self._refuse(spec, decision)
        orders = self._place_order_count()
        if orders:
            decision = await self.limiter.take(key, self.limits.place_order, float(orders))
            if not decision.allowed:
                return self._refuse(self.limits.place_order, decision)
        return None

    def _place_order_count(self) -> int:
        document = self.execution_context.graphql_document
        if document is None or self.execution_context.operation_type is not OperationType.MUTATION:
            return 0
        operation = get_operation_ast(document, self.execution_context.operation_name)
        if operation is None:
            return 0
        fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        variables = self.execution_context.variables or {}
        return _orders_placed(operation.selection_set, fragments, {}, variables)

    def _refuse(self, spec: BucketSpec, decision: Decision) -> GraphQLError:
        retry_after = round(decision.retry_after, 3)
        if self.on_refused is not None:
            self.on_refused(spec.name)
        response = getattr(self.execution_context.context, "response", None)
        if isinstance(response, Response):
            response.status_code = 429
            response.headers["retry-after"] = retry_after_header(retry_after)
        return GraphQLError(
            f"Rate limit exceeded ({spec.name}): retry in {retry_after:g} s",
            extensions={"code": "RATE_LIMITED", "retryAfter": retry_after, "bucket": spec.name},
        )


def _orders_placed(
    selection_set: SelectionSetNode,
    fragments: Mapping[str, FragmentDefinitionNode],
    known: dict[str, int],
    variables: Mapping[str, object],
) -> int:
    """How many orders the root fields at this level place, through fragments:
    one per ``placeOrder``, one per input of ``placeOrders``.

    A fragment is counted once (``known``) however often it is spread, so this is
    linear in the document; the query limits have already bounded the total.
    """
    count = 0
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            if selection.name.value == "placeOrder":
                count += 1
            elif selection.name.value == "placeOrders":
                count += _inputs_count(selection, variables)
        elif isinstance(selection, InlineFragmentNode):
            count += _orders_placed(selection.selection_set, fragments, known, variables)
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            fragment = fragments.get(name)
            if fragment is None:
                continue
            if name not in known:
                known[name] = 0  # while it is counted: a spread back is a cycle
                known[name] = _orders_placed(fragment.selection_set, fragments, known, variables)
            count += known[name]
    return count


def _inputs_count(field: FieldNode, variables: Mapping[str, object]) -> int:
    """The length of ``placeOrders(inputs:)``, written inline or passed as a variable.

    A single object where a list is expected is a list of one (GraphQL's input
    coercion); anything unreadable counts as one, and the resolver refuses it.
    """
    for argument in field.arguments or ():
        if argument.name.value != "inputs":
            continue
        value = argument.value
        if isinstance(value, ListValueNode):
            return max(len(value.values), 1)
        if isinstance(value, VariableNode):
            passed = variables.get(value.name.value)
            return max(len(passed), 1) if isinstance(passed, list) else 1
    return 1


def _client_address(context: object) -> str:
    request = getattr(context, "request", None)
    if isinstance(request, HTTPConnection) and request.client is not None:
        return request.client.host
    return "unknown"


def rate_limiting(
    limiter: RateLimiter, limits: RateLimits, on_refused: Callable[[str], None] | None = None
) -> Callable[[], SchemaExtension]:
    return lambda: RateLimit(limiter, limits, on_refused)
