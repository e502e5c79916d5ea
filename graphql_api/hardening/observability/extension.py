"""What every operation did, for metrics and the access log; unavailable services as such.

:class:`OperationMetrics` counts operations by type, name and outcome, times
them, tracks running subscriptions, and tells the access log the user and the
operation. Put it first among the extensions after ``ErrorCodes`` and
``MaskInternalErrors``, so it sees every refusal.

:class:`ServiceErrors` turns failures of a dependency (an open circuit, a
refused connection) into ``SERVICE_UNAVAILABLE`` errors with ``retryAfter``
instead of masked internal errors: the client learns to retry, the logs get a
warning rather than a traceback per request. It must come after
``MaskInternalErrors`` in the list (its ``on_operation`` then runs first on
the way out).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import structlog
from graphql import GraphQLError
from starlette.websockets import WebSocket
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from graphql_api.hardening.error_codes import is_internal
from graphql_api.hardening.http_guards import request_record
from graphql_api.hardening.observability.metrics import Metrics
from graphql_api.platform.resilience import as_service_unavailable

log = structlog.get_logger("quantgraph.graphql")


class OperationMetrics(SchemaExtension):
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self._subscribed = False

    def on_operation(self) -> Iterator[None]:
        started = time.perf_counter()
        error: GraphQLError | None = None
        try:
            yield
        except GraphQLError as raised:  # refusals raised before parsing (persisted queries)
            error = raised
            raise
        finally:
            self._record(started, error)

    def on_execute(self) -> Iterator[None]:
        if self._operation_type() == "subscription":
            self._subscribed = True
            self.metrics.subscriptions.inc()
        yield

    def _record(self, started: float, raised: GraphQLError | None) -> None:
        context = self.execution_context
        errors = [raised] if raised is not None else list(_errors(context.result))
        if not errors:
            errors = list(context.pre_execution_errors or [])
        outcome = _code(errors[0]) if errors else "ok"
        kind = self._operation_type()
        name = self.metrics.operation_name(_safe_operation_name(context))
        if self._subscribed:
            self.metrics.subscriptions.dec()
        else:
            elapsed = time.perf_counter() - started
            self.metrics.labelled(self.metrics.operation_seconds, kind).observe(elapsed)
        self.metrics.labelled(self.metrics.operations, kind, name, outcome).inc()
        cost = (context.extensions_results.get("cost") or {}).get("requested")
        if isinstance(cost, int):
            self.metrics.query_cost.observe(cost)
        record = request_record.get()
        if record is not None and not isinstance(
            getattr(context.context, "request", None), WebSocket
        ):
            principal = getattr(context.context, "principal", None)
            record.update(
                operation=name,
                operation_type=kind,
                user_id=principal.user_id if principal is not None else None,
                outcome=outcome,
                cost=cost,
            )

    def _operation_type(self) -> str:
        try:
            operation_type = self.execution_context.operation_type
        except Exception:  # not parsed, or no such operation in the document
            return "unknown"
        return operation_type.value if isinstance(operation_type, OperationType) else "unknown"


def _safe_operation_name(context: object) -> str | None:
    try:
        name = context.operation_name  # type: ignore[attr-defined]
    except Exception:
        return None
    return name if isinstance(name, str) else None


def _errors(result: object) -> list[GraphQLError]:
    return list(getattr(result, "errors", None) or [])


def _code(error: GraphQLError) -> str:
    code = (error.extensions or {}).get("code")
    if isinstance(code, str):
        return code
    if is_internal(error):
        return "INTERNAL_SERVER_ERROR"
    return "BAD_USER_INPUT"


class ServiceErrors(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        errors = getattr(result, "errors", None)
        if not errors:
            return
        for index, error in enumerate(errors):
            if not is_internal(error):
                continue
            unavailable = as_service_unavailable(error.original_error)
            if unavailable is None:
                continue
            log.warning(
                "service unavailable",
                service=unavailable.service,
                reason=unavailable.reason,
                path=error.path,
            )
            extensions: dict[str, object] = {
                "code": "SERVICE_UNAVAILABLE",
                "service": unavailable.service,
                # The same id as the access log line, for whoever reports it.
                "requestId": getattr(self.execution_context.context, "request_id", None),
            }
            if unavailable.retry_after:
                extensions["retryAfter"] = round(unavailable.retry_after, 3)
            errors[index] = GraphQLError(
                f"{unavailable.service} is temporarily unavailable; retry later",
                nodes=error.nodes,
                path=error.path,
                extensions=extensions,
            )


def operation_metrics(metrics: Metrics) -> Callable[[], SchemaExtension]:
    return lambda: OperationMetrics(metrics)
